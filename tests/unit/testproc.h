/* testproc: real helper processes for C tests (redis-server, fosim) on free 127.0.0.1
 * ports, started with fork/exec and stopped by PID, plus the small blocking socket and
 * file helpers those tests need. Invariant: every wait has a deadline, and a started
 * process dies with the test (PR_SET_PDEATHSIG). */
#ifndef FOGATE_TESTPROC_H
#define FOGATE_TESTPROC_H

#include <stddef.h>
#include <sys/types.h>

struct testproc {
    pid_t pid;     /* 0 when not running */
    int port;      /* the port probed for readiness (plain or TLS) */
    char log[512]; /* the process's own log file */
};

/* CLOCK_MONOTONIC in milliseconds. */
long long testproc_now_ms(void);

/* A 127.0.0.1 TCP port that was free a moment ago, or -1. */
int testproc_free_port(void);

/* A connected blocking socket to 127.0.0.1:port (close-on-exec), or -1. */
int testproc_connect(int port);

/* 1 if 127.0.0.1:port accepts a connection now, else 0. */
int testproc_port_open(int port);

/* Forks and execs argv (NULL-terminated, borrowed); stdin is /dev/null, stdout goes to
 * out_fd (-1: /dev/null), stderr to err_path (appended; NULL: /dev/null). Returns the
 * child's PID or -1. */
pid_t testproc_spawn(const char *const *argv, int out_fd, const char *err_path);

/* How long a helper server may take to come up: a deadline against a hang, not an
 * expectation. A sanitizer build of fosim (which makes its signing keys at start) on a
 * machine loaded with parallel tests has been seen to take more than 10 s. */
#define TESTPROC_START_MS 60000

/* Starts redis-server without persistence in `dir`, logging to <dir>/redis-<port>.log,
 * with `args` (NULL-terminated, may be NULL) after the common ones, and waits up to
 * TESTPROC_START_MS for `probe_port` to accept. The caller passes --port/--tls-port in
 * args. Returns 0, or -1 with p->pid 0. */
int testproc_start_redis(struct testproc *p, int probe_port, const char *dir,
                         const char *const *args);

/* redis-server as testproc_start_redis does, on a free port with no other options.
 * Returns 0 (p->port set) or -1. */
int testproc_start_redis_plain(struct testproc *p, const char *dir);

/* fosim with `config` on 127.0.0.1:`port` (0 = any); learns the port from its first
 * stdout line {"listening":"127.0.0.1:PORT",...} within TESTPROC_START_MS. Logs go to
 * <dir>/fosim-<n>.log. Returns 0, or -1 with p->port 0. */
int testproc_start_fosim(struct testproc *p, const char *bin, const char *config,
                         const char *dir, int port);

/* Resumes (SIGCONT) and sends `sig`, then reaps, escalating to SIGKILL after 3 s.
 * A no-op when p->pid is 0. */
void testproc_stop(struct testproc *p, int sig);

/* Reads one line from fd within ms; returns its length or -1. */
int testproc_read_line(int fd, char *buf, size_t cap, int ms);

/* One blocking HTTP/1.1 request (Connection: close) to 127.0.0.1:port, 5 s limit, body
 * (may be NULL) sent as JSON. Stores the response body (NUL-terminated, cut at cap) in
 * out (may be NULL); returns the status or -1. */
int testproc_http(int port, const char *method, const char *path, const char *body,
                  char *out, size_t cap);

/* Removes `dir` and everything below it (no symlinks followed). */
void testproc_rmtree(const char *dir);

/* Runs a shell command line built from fmt (test-controlled strings only); returns
 * system()'s result. */
int testproc_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
