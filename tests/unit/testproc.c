/* testproc: helper processes and sockets for C tests (see testproc.h). */
#define _GNU_SOURCE
#include "testproc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 40

long long testproc_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The ports tests pick from: below the kernel's ephemeral range (no outgoing connection can
 * take a chosen port before it is bound), or above it if the range starts too low. */
static void port_range(int *lo, int *hi)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    int low = 32768, high = 60999;

    if (f != NULL) {
        if (fscanf(f, "%d %d", &low, &high) != 2) {
            low = 32768;
            high = 60999;
        }
        fclose(f);
    }
    *lo = low > 11000 ? 10000 : high + 1;
    *hi = low > 11000 ? low : 65536;
}

/* Reserves a port for this process, as tests/harness.py free_port() does: an flock on a
 * file named after the port, held (the descriptor deliberately left open) until the process
 * exits, so tests running at the same time (ctest -j) never pick the same one. */
int testproc_free_port(void)
{
    char dir[256], path[300];
    const char *tmp = getenv("TMPDIR");
    int lo, hi;

    snprintf(dir, sizeof(dir), "%s/fogate-test-ports-%u", tmp && *tmp ? tmp : "/tmp",
             (unsigned)getuid());
    mkdir(dir, 0700);
    port_range(&lo, &hi);
    static bool seeded;
    if (!seeded) {
        srand((unsigned)(getpid() ^ testproc_now_ms()));
        seeded = true;
    }
    for (int i = 0; i < 2000; i++) {
        int port = lo + rand() % (hi - lo);
        snprintf(path, sizeof(path), "%s/%d", dir, port);
        int lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock < 0)
            return -1;
        if (flock(lock, LOCK_EX | LOCK_NB) != 0) {
            close(lock);
            continue;
        }
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool bound = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0)
            close(fd);
        if (bound)
            return port; /* the lock stays held */
        close(lock);
    }
    return -1;
}

int testproc_connect(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

int testproc_port_open(int port)
{
    int fd = testproc_connect(port);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

pid_t testproc_spawn(const char *const *argv, int out_fd, const char *err_path)
{
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphaned servers if the test crashes */
    int null = open("/dev/null", O_RDWR);
    int err = err_path ? open(err_path, O_WRONLY | O_CREAT | O_APPEND, 0600) : null;
    dup2(null, 0);
    dup2(out_fd >= 0 ? out_fd : null, 1);
    dup2(err >= 0 ? err : null, 2);
    execvp(argv[0], (char *const *)argv);
    _exit(127);
}

int testproc_start_redis(struct testproc *p, int probe_port, const char *dir,
                         const char *const *args)
{
    const char *argv[MAX_ARGS] = { "redis-server" };
    int n = 1;

    snprintf(p->log, sizeof(p->log), "%s/redis-%d.log", dir, probe_port);
    const char *common[] = { "--bind", "127.0.0.1", "--dir", dir, "--save", "",
                             "--appendonly", "no", "--logfile", p->log, NULL };
    for (int i = 0; common[i] && n < MAX_ARGS - 1; i++)
        argv[n++] = common[i];
    for (int i = 0; args && args[i] && n < MAX_ARGS - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    p->port = probe_port;
    p->pid = testproc_spawn(argv, -1, NULL);
    for (long long end = testproc_now_ms() + TESTPROC_START_MS;
         p->pid > 0 && testproc_now_ms() < end; usleep(20000)) {
        if (testproc_port_open(probe_port))
            return 0;
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid)
            break;
    }
    testproc_stop(p, SIGKILL);
    return -1;
}

int testproc_start_redis_plain(struct testproc *p, const char *dir)
{
    char port[16];
    int n = testproc_free_port();

    snprintf(port, sizeof(port), "%d", n);
    const char *args[] = { "--port", port, NULL };
    return testproc_start_redis(p, n, dir, args);
}

int testproc_start_fosim(struct testproc *p, const char *bin, const char *config,
                         const char *dir, int port)
{
    char listen[64], data[512], line[512];
    int fds[2];
    static int seq;

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/fosim-data-%d", dir, ++seq);
    snprintf(p->log, sizeof(p->log), "%s/fosim-%d.log", dir, seq);
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    const char *argv[] = { bin, "--config", config, "--listen", listen, "--data-dir", data, NULL };
    p->pid = testproc_spawn(argv, fds[1], p->log);
    close(fds[1]);
    const char *at = NULL;
    if (p->pid > 0 && testproc_read_line(fds[0], line, sizeof(line), TESTPROC_START_MS) > 0)
        at = strstr(line, "\"listening\":\"127.0.0.1:");
    close(fds[0]);
    p->port = at ? atoi(at + 23) : 0;
    return p->port > 0 ? 0 : -1;
}

void testproc_stop(struct testproc *p, int sig)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGCONT); /* a SIGSTOPped server must see the signal */
    kill(p->pid, sig);
    for (long long end = testproc_now_ms() + 3000; testproc_now_ms() < end; usleep(10000))
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

int testproc_read_line(int fd, char *buf, size_t cap, int ms)
{
    size_t n = 0;
    long long end = testproc_now_ms() + ms;

    while (n + 1 < cap) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int left = (int)(end - testproc_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0 || read(fd, buf + n, 1) != 1)
            return -1;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return (int)n;
}

/* Reads until EOF, the cap or the deadline; returns the bytes read or -1 on timeout. */
static ssize_t read_all(int fd, char *buf, size_t cap, long long end)
{
    size_t n = 0;

    while (n < cap) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int left = (int)(end - testproc_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            return -1;
        ssize_t r = read(fd, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    return (ssize_t)n;
}

int testproc_http(int port, const char *method, const char *path, const char *body,
                  char *out, size_t cap)
{
    char req[4096], resp[65536];
    int fd = testproc_connect(port), status = -1;

    if (fd < 0)
        return -1;
    int len = snprintf(req, sizeof(req),
                       "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       method, path, body ? strlen(body) : 0, body ? body : "");
    if (len < 0 || (size_t)len >= sizeof(req) || write(fd, req, (size_t)len) != len)
        goto out;
    ssize_t n = read_all(fd, resp, sizeof(resp) - 1, testproc_now_ms() + 5000);
    if (n < 0)
        goto out;
    resp[n] = '\0';
    const char *b = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.1 %d", &status) != 1 || !b)
        status = -1;
    if (out && cap)
        snprintf(out, cap, "%s", b ? b + 4 : "");
out:
    close(fd);
    return status;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

void testproc_rmtree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int testproc_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}
