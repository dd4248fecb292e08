/* Test helper for test_token and test_tokenshare (which define _GNU_SOURCE first): real
 * redis-server and fosim processes on free 127.0.0.1 ports, started with fork/exec and
 * stopped by PID, plus a tiny blocking HTTP client for fosim's control API.
 * Every wait has a deadline. */
#ifndef FOGATE_TEST_TOKEN_PROCS_H
#define FOGATE_TEST_TOKEN_PROCS_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct t_proc {
    pid_t pid;
    int port;
};

static inline long long t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int t_free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static inline int t_connect(int port)
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

static inline int t_port_open(int port)
{
    int fd = t_connect(port);
    if (fd >= 0)
        close(fd);
    return fd >= 0;
}

/* Forks and execs argv; stdout goes to out_fd (-1: /dev/null), stderr to err_path. */
static inline pid_t t_spawn(const char *const *argv, int out_fd, const char *err_path)
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

/* redis-server on `port` (0 = a free one) without persistence; waits up to 5 s. */
static inline int t_start_redis(struct t_proc *p, const char *dir, int port)
{
    char ports[16], log[512];

    p->port = port ? port : t_free_port();
    snprintf(ports, sizeof(ports), "%d", p->port);
    snprintf(log, sizeof(log), "%s/redis-%d.log", dir, p->port);
    const char *argv[] = { "redis-server", "--port", ports, "--bind", "127.0.0.1",
                           "--dir", dir, "--save", "", "--appendonly", "no",
                           "--logfile", log, NULL };
    p->pid = t_spawn(argv, -1, NULL);
    for (long long end = t_now_ms() + 5000; p->pid > 0 && t_now_ms() < end; usleep(20000)) {
        if (t_port_open(p->port))
            return 0;
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid)
            break;
    }
    p->pid = 0;
    return -1;
}

/* Reads one line from fd within ms; returns its length or -1. */
static inline int t_read_line(int fd, char *buf, size_t cap, int ms)
{
    size_t n = 0;
    long long end = t_now_ms() + ms;

    while (n + 1 < cap) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int left = (int)(end - t_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0 || read(fd, buf + n, 1) != 1)
            return -1;
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = '\0';
    return (int)n;
}

/* fosim with `config` on 127.0.0.1:`port` (0 = any); learns the port from its first line
 * {"listening":"127.0.0.1:PORT",...}. Logs go to <dir>/fosim-<n>.log. */
static inline int t_start_fosim(struct t_proc *p, const char *bin, const char *config,
                                const char *dir, int port)
{
    char listen[64], data[512], log[512], line[512];
    int fds[2];
    static int seq;

    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(data, sizeof(data), "%s/fosim-data-%d", dir, ++seq);
    snprintf(log, sizeof(log), "%s/fosim-%d.log", dir, seq);
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    const char *argv[] = { bin, "--config", config, "--listen", listen, "--data-dir", data, NULL };
    p->pid = t_spawn(argv, fds[1], log);
    close(fds[1]);
    const char *at = NULL;
    if (p->pid > 0 && t_read_line(fds[0], line, sizeof(line), 10000) > 0)
        at = strstr(line, "\"listening\":\"127.0.0.1:");
    close(fds[0]);
    p->port = at ? atoi(at + 23) : 0;
    return p->port > 0 ? 0 : -1;
}

/* SIGTERM (SIGKILL after 3 s), then reaps. */
static inline void t_stop(struct t_proc *p)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, SIGTERM);
    for (long long end = t_now_ms() + 3000; t_now_ms() < end; usleep(10000))
        if (waitpid(p->pid, NULL, WNOHANG) == p->pid) {
            p->pid = 0;
            return;
        }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, NULL, 0);
    p->pid = 0;
}

/* One blocking HTTP/1.1 request (Connection: close) to 127.0.0.1:port, 5 s limit. Stores
 * the body (NUL-terminated, cut at cap) in out; returns the status or -1. */
static inline int t_http(int port, const char *method, const char *path, const char *body,
                         char *out, size_t cap)
{
    char req[4096], resp[65536];
    size_t n = 0;
    int fd = t_connect(port), status = -1;
    long long end = t_now_ms() + 5000;

    if (fd < 0)
        return -1;
    int len = snprintf(req, sizeof(req),
                       "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                       "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                       method, path, body ? strlen(body) : 0, body ? body : "");
    if (write(fd, req, (size_t)len) != len)
        goto out;
    while (n + 1 < sizeof(resp)) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int left = (int)(end - t_now_ms());
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            goto out;
        ssize_t r = read(fd, resp + n, sizeof(resp) - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
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

#endif
