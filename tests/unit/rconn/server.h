/* Test helper for test_rconn (which defines _GNU_SOURCE first): real redis-server processes on free 127.0.0.1 ports in a
 * temporary directory, started with fork/exec and stopped by PID. */
#ifndef FOGATE_TEST_RCONN_SERVER_H
#define FOGATE_TEST_RCONN_SERVER_H

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SRV_MAX_ARGS 40

struct srv {
    pid_t pid;
    int port;      /* the port probed for readiness (plain or TLS) */
    char log[512]; /* redis-server's own log file */
};

static long long srv_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int srv_free_port(void)
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

static int srv_port_open(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts redis-server with `args` (NULL-terminated, after the binary name) and waits up
 * to 5 s for `probe_port` to accept. Returns 0 or -1. */
static int srv_start(struct srv *s, int probe_port, const char *dir, const char **args)
{
    const char *argv[SRV_MAX_ARGS] = { "redis-server" };
    int n = 1;

    snprintf(s->log, sizeof(s->log), "%s/redis-%d.log", dir, probe_port);
    const char *common[] = { "--bind", "127.0.0.1", "--dir", dir, "--save", "",
                             "--appendonly", "no", "--logfile", s->log, NULL };
    for (int i = 0; common[i] && n < SRV_MAX_ARGS - 1; i++)
        argv[n++] = common[i];
    for (int i = 0; args[i] && n < SRV_MAX_ARGS - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    s->port = probe_port;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphaned servers if the test crashes */
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (long long end = srv_now_ms() + 5000; srv_now_ms() < end; usleep(20000)) {
        if (srv_port_open(probe_port))
            return 0;
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
    }
    return -1;
}

/* Sends `sig` and reaps the process, escalating to SIGKILL after 3 s. */
static void srv_stop(struct srv *s, int sig)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGCONT);
    kill(s->pid, sig);
    for (long long end = srv_now_ms() + 3000; srv_now_ms() < end; usleep(10000))
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static int srv_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void srv_rmtree(const char *dir)
{
    nftw(dir, srv_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Runs a shell command line built from fmt (test-controlled strings only). */
static int srv_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int srv_sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    return system(cmd);
}

#endif
