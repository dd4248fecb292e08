/* workers: one app per thread, the signal fan-out from the main thread, startup and join.
 *
 *   main thread: block signals -> build apps -> listen (worker 0 first) -> start threads
 *                -> sigtimedwait: TERM/INT/HUP -> write the number to every worker's pipe
 *                                 USR1 (a worker ended) -> all ended? join, free
 *                                 USR2 (drain, e.g. POST /admin/api/drain) -> the shared
 *                                   drain flag (/readyz 503), TERM to all after the notice
 *   worker i:    event loop; pipe readable -> app_signal(app, sig) on its own thread
 */
#define _GNU_SOURCE
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "adminstats.h"
#include "app.h"
#include "conf.h"
#include "confcheck.h"
#include "log.h"
#include "routes.h"

#define WAIT_SLICE_S 1 /* the main thread rechecks the workers at least this often */

struct worker {
    struct app *app;        /* owned */
    struct event *wake;     /* owned; on the app's loop: the pipe became readable */
    int pipe[2];            /* owned; [1] is written by the main thread */
    pthread_t thread;
    bool started;           /* thread created (join it) */
    int log_index;          /* "worker" in its log lines; -1 with one worker */
    struct pool *pool;      /* borrowed */
};

struct pool {
    struct worker *w;       /* owned array */
    unsigned drain_notice_ms; /* admin.drain_notice_ms, read at start */
    atomic_bool draining;   /* set by SIGUSR2 or the admin API; every app reads it */
    struct adminstats *stats; /* owned: every worker's counters, for worker 0's /metrics */
    unsigned n;
    atomic_uint running;    /* threads still in their loop */
    pthread_t main_thread;
};

unsigned workers_cpus(void)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (unsigned)online : 1;
}

unsigned workers_resolve(unsigned configured, unsigned cpus)
{
    if (configured > 0)
        return configured;
    return cpus > 0 ? cpus : 1;
}

/* On the worker's loop: each byte in the pipe is one signal number. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    unsigned char sigs[16];
    ssize_t n = read(fd, sigs, sizeof sigs);

    for (ssize_t i = 0; i < n; i++)
        app_signal(w->app, sigs[i]);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    log_set_worker(w->log_index);
    app_serve(w->app);
    atomic_fetch_sub(&w->pool->running, 1);
    pthread_kill(w->pool->main_thread, SIGUSR1); /* wakes the main thread's wait */
    return NULL;
}

/* One worker's app on `conf` (taken), or, for conf NULL, on a fresh load of `path` (each
 * app owns and reloads its own snapshot, on its own thread), and its wake-up pipe. */
static int build_one(struct worker *w, struct conf *conf, const char *path, unsigned i,
                     unsigned n)
{
    struct conf_error err = { 0 };

    if (!conf && !(conf = conf_load(path, &err))) {
        log_msg(LOG_LVL_ERROR, "worker %u: the config did not load again: %s", i, err.message);
        return -1;
    }
    if (!(w->app = app_new(conf, i, n)))
        return -1;
    if (pipe2(w->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
        log_msg(LOG_LVL_ERROR, "worker %u: cannot make its pipe: %s", i, strerror(errno));
        return -1;
    }
    w->wake = event_new(app_base(w->app), w->pipe[0], EV_READ | EV_PERSIST, on_wake, w);
    return w->wake && event_add(w->wake, NULL) == 0 ? 0 : -1;
}

/* Worker 0 gets `conf` (taken); the others load their own. */
static int build(struct pool *p, struct conf *conf)
{
    char *path = strdup(conf->path);
    int rc = path ? 0 : -1;

    if (!path)
        conf_free(conf);
    for (unsigned i = 0; i < p->n && rc == 0; i++) {
        log_set_worker(p->w[i].log_index);
        rc = build_one(&p->w[i], i == 0 ? conf : NULL, path, i, p->n);
    }
    log_set_worker(-1);
    free(path);
    return rc;
}

/* Worker 0 binds the configured port; the others bind the port it got (port 0 = any). */
static int listen_all(struct pool *p)
{
    int port = -1;

    for (unsigned i = 0; i < p->n; i++) {
        log_set_worker(p->w[i].log_index);
        port = app_listen(p->w[i].app, i == 0 ? -1 : port);
        if (port < 0)
            break;
    }
    log_set_worker(-1);
    return port < 0 ? -1 : 0;
}

static int start(struct pool *p)
{
    for (unsigned i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        int e;

        atomic_fetch_add(&p->running, 1);
        if ((e = pthread_create(&w->thread, NULL, worker_main, w)) != 0) {
            atomic_fetch_sub(&p->running, 1);
            log_msg(LOG_LVL_ERROR, "cannot start worker %u: %s", i, strerror(e));
            return -1;
        }
        w->started = true;
    }
    return 0;
}

static void fan_out(struct pool *p, int sig)
{
    unsigned char b = (unsigned char)sig;

    for (unsigned i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        /* a full pipe holds 64 KiB of unread signals: that worker is stuck anyway */
        if (w->pipe[1] >= 0 && write(w->pipe[1], &b, 1) < 0 && errno != EAGAIN)
            log_msg(LOG_LVL_ERROR, "cannot signal worker %u: %s", i, strerror(errno));
    }
}

/* Until every worker has left its loop. A worker that ends without being told to (it
 * cannot serve any more) stops the others too, so that the process exits and restarts. */
static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_signals(struct pool *p, const sigset_t *set, bool stopping)
{
    long long drain_at = -1; /* monotonic ms when a drain's notice ends; -1 = none */

    while (atomic_load(&p->running) > 0) {
        struct timespec slice = { .tv_sec = WAIT_SLICE_S };
        long long left = drain_at < 0 ? -1 : drain_at - mono_ms();

        if (left >= 0 && left < WAIT_SLICE_S * 1000)
            slice = (struct timespec){ .tv_sec = 0, .tv_nsec = left * 1000000 };
        int sig = sigtimedwait(set, NULL, &slice);

        if (drain_at >= 0 && !stopping && mono_ms() >= drain_at) {
            stopping = true;
            fan_out(p, SIGTERM);
        }
        if (sig == SIGUSR2 && !stopping && drain_at < 0) {
            log_msg(LOG_LVL_INFO, "drain asked: /readyz answers 503 for %u ms, then stopping",
                    p->drain_notice_ms);
            drain_at = mono_ms() + p->drain_notice_ms;
            atomic_store(&p->draining, true);
        } else if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            stopping |= sig != SIGHUP;
            fan_out(p, sig);
        } else if (!stopping && atomic_load(&p->running) < p->n) {
            log_msg(LOG_LVL_ERROR, "a worker stopped unexpectedly; stopping the others");
            stopping = true;
            fan_out(p, SIGTERM);
        }
    }
}

static void pool_free(struct pool *p)
{
    for (unsigned i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        if (w->started)
            pthread_join(w->thread, NULL);
    }
    for (unsigned i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        if (w->wake)
            event_free(w->wake);
        app_free(w->app);
        if (w->pipe[0] >= 0)
            close(w->pipe[0]);
        if (w->pipe[1] >= 0)
            close(w->pipe[1]);
    }
    free(p->w);
    free(p->stats);
}

/* The table /metrics reads: each app's counters, given to worker 0 (the admin listener);
 * and the drain flag every app reads. */
static int share_stats(struct pool *p)
{
    unsigned n_routes;
    const char *const *names = routes_names(&n_routes);

    if (!(p->stats = adminstats_new(p->n, names, n_routes)))
        return -1;
    for (unsigned i = 0; i < p->n; i++) {
        app_stats(p->w[i].app, &p->stats->w[i]);
        app_set_drain_flag(p->w[i].app, &p->draining);
    }
    app_set_admin_stats(p->w[0].app, p->stats);
    return 0;
}

int workers_run(struct conf *conf)
{
    struct pool p = { .n = workers_resolve(conf->workers, workers_cpus()),
                      .drain_notice_ms = conf->admin.drain_notice_ms };
    sigset_t set;
    int rc = 1;

    /* blocked before any thread exists, so that every thread inherits the mask and only
     * the main thread's sigtimedwait takes them */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    p.main_thread = pthread_self();
    struct conf_error err = { 0 };
    if (confcheck_workers(conf, p.n, &err) < 0) {
        log_msg(LOG_LVL_ERROR, "%s: %s: %s", conf->path, err.path, err.message);
        conf_free(conf);
        return 1;
    }
    if (!(p.w = calloc(p.n, sizeof *p.w))) {
        conf_free(conf);
        log_msg(LOG_LVL_ERROR, "cannot set up %u workers: out of memory", p.n);
        return 1;
    }
    for (unsigned i = 0; i < p.n; i++) {
        p.w[i].pool = &p;
        p.w[i].pipe[0] = p.w[i].pipe[1] = -1;
        p.w[i].log_index = p.n > 1 ? (int)i : -1;
    }
    if (build(&p, conf) == 0 && share_stats(&p) == 0 && listen_all(&p) == 0) {
        if (p.n > 1)
            log_msg(LOG_LVL_INFO, "starting %u workers", p.n);
        rc = start(&p) == 0 ? 0 : 1;
        if (rc != 0) { /* the workers already started end at once: stop, then stop again */
            fan_out(&p, SIGTERM);
            fan_out(&p, SIGTERM);
        }
        wait_signals(&p, &set, rc != 0);
    } else {
        log_msg(LOG_LVL_ERROR, "cannot set up the workers");
    }
    pool_free(&p);
    return rc;
}
