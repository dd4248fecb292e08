/* workers: one app per thread, the signal fan-out from the main thread, startup and join.
 *
 *   main thread: block signals -> build apps -> listen (worker 0 first) -> start threads
 *                -> READY=1 -> sigtimedwait: TERM/INT -> STOPPING=1, write the number to
 *                                                       every worker's pipe
 *                                            HUP -> RELOADING=1, the same; READY=1 once
 *                                                   every worker has reloaded
 *                                            USR1 (a worker ended or reloaded) -> all
 *                                                   ended? join, free
 *   worker i:    event loop; pipe readable -> app_signal(app, sig) on its own thread;
 *                with NOTIFY_SOCKET, its app_health published every second (atomics)
 */
#define _GNU_SOURCE
#include "workers.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "app.h"
#include "conf.h"
#include "confcheck.h"
#include "log.h"
#include "sdnotify.h"

#define WAIT_SLICE_S 1 /* the main thread rechecks the workers at least this often */
#define HEALTH_MS 1000 /* how often a worker publishes its health (with NOTIFY_SOCKET) */

struct worker {
    struct app *app;        /* owned */
    struct event *wake;     /* owned; on the app's loop: the pipe became readable */
    int pipe[2];            /* owned; [1] is written by the main thread */
    pthread_t thread;
    bool started;           /* thread created (join it) */
    int log_index;          /* "worker" in its log lines; -1 with one worker */
    struct pool *pool;      /* borrowed */
    struct event *health;   /* owned; on the app's loop, only with NOTIFY_SOCKET */
    atomic_uint reloads;    /* SIGHUPs handled */
    atomic_bool reload_failed; /* the last one was refused */
    atomic_size_t conns;    /* app_health, published for the main thread */
    atomic_uint envs, envs_ready;
    atomic_int ledger;
};

struct pool {
    struct worker *w;       /* owned array */
    unsigned n;
    atomic_uint running;    /* threads still in their loop */
    pthread_t main_thread;
    struct sdnotify *notify; /* owned; NULL without NOTIFY_SOCKET */
    unsigned hups;          /* SIGHUPs passed on */
    bool reloading;         /* RELOADING=1 sent, READY=1 not yet */
    char status[SDNOTIFY_STATUS_MAX]; /* the last STATUS= sent */
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

unsigned long long workers_nofile_need(unsigned max_connections, unsigned workers)
{
    return 2ull * max_connections + 64ull * workers;
}

/* A limit below the need shows as refused connections under load: say so at start. */
static void check_nofile(const struct conf *conf, unsigned n)
{
    struct rlimit rl;
    unsigned long long need = workers_nofile_need(conf->limits.max_connections, n);

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        log_msg(LOG_LVL_WARN, "the open-file limit is %llu, below the %llu that "
                "limits.max_connections %u with %u worker(s) may need; raise it "
                "(LimitNOFILE= in the systemd unit, ulimit -n)", (unsigned long long)rl.rlim_cur,
                need, conf->limits.max_connections, n);
}

/* On the worker's loop: each byte in the pipe is one signal number. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    unsigned char sigs[16];
    ssize_t n = read(fd, sigs, sizeof sigs);

    for (ssize_t i = 0; i < n; i++) {
        int rc = app_signal(w->app, sigs[i]);
        if (sigs[i] != SIGHUP)
            continue;
        atomic_store(&w->reload_failed, rc < 0);
        atomic_fetch_add(&w->reloads, 1);
        pthread_kill(w->pool->main_thread, SIGUSR1); /* the main thread may say READY=1 */
    }
}

/* On the worker's loop: publish how the app is doing for the main thread's STATUS=. */
static void on_health(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    struct app_health h;

    app_health(w->app, &h);
    atomic_store(&w->conns, h.connections);
    atomic_store(&w->envs, h.envs);
    atomic_store(&w->envs_ready, h.envs_ready);
    atomic_store(&w->ledger, h.ledger);
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
    if (!w->wake || event_add(w->wake, NULL) < 0)
        return -1;
    if (!sdnotify_enabled(w->pool->notify))
        return 0;
    struct timeval every = { .tv_sec = HEALTH_MS / 1000, .tv_usec = HEALTH_MS % 1000 * 1000 };
    on_health(-1, 0, w);
    w->health = event_new(app_base(w->app), -1, EV_PERSIST, on_health, w);
    return w->health && event_add(w->health, &every) == 0 ? 0 : -1;
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

/* Worker 0 binds the configured port; the others bind the port it got (port 0 = any).
 * Returns the port bound, or -1. */
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
    return port;
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

/* ---- the service manager (sdnotify; all no-ops without NOTIFY_SOCKET) ---- */

static void notify_status(struct pool *p)
{
    struct sdnotify_health h = { .workers = p->n, .envs_ready = UINT_MAX };
    char text[SDNOTIFY_STATUS_MAX];
    bool ledger_off = false;

    for (unsigned i = 0; i < p->n; i++) { /* a token counts when every worker holds it */
        struct worker *w = &p->w[i];
        unsigned ready = atomic_load(&w->envs_ready);
        int ledger = atomic_load(&w->ledger);
        h.connections += atomic_load(&w->conns);
        h.envs = atomic_load(&w->envs);
        h.envs_ready = ready < h.envs_ready ? ready : h.envs_ready;
        ledger_off |= ledger < 0;
        h.ledger += ledger > 0;
    }
    h.ledger = ledger_off ? -1 : h.ledger;
    sdnotify_status_text(text, sizeof text, &h);
    if (strcmp(text, p->status) != 0 && sdnotify_send(p->notify, SDNOTIFY_STATUS_ONLY, text) == 0)
        memcpy(p->status, text, sizeof text);
}

/* READY=1 once every worker listens. Tokens are not waited for: fetching them needs Entra,
 * and a service that cannot start while Entra is away would be restarted in a loop;
 * /readyz tells load balancers about tokens, and STATUS= tells the operator. */
static void notify_ready(struct pool *p, int port)
{
    char text[SDNOTIFY_STATUS_MAX];

    snprintf(text, sizeof text, "listening on port %d with %u worker%s; fetching tokens", port,
             p->n, p->n == 1 ? "" : "s");
    sdnotify_send(p->notify, SDNOTIFY_READY, text);
}

static void notify_reloading(struct pool *p)
{
    p->hups++;
    p->reloading = true;
    sdnotify_send(p->notify, SDNOTIFY_RELOADING, "reloading the configuration");
}

/* READY=1 once every worker has handled every SIGHUP passed on. */
static void notify_reloaded(struct pool *p)
{
    bool failed = false;

    for (unsigned i = 0; i < p->n; i++) {
        if (atomic_load(&p->w[i].reloads) < p->hups)
            return;
        failed |= atomic_load(&p->w[i].reload_failed);
    }
    p->reloading = false;
    p->status[0] = '\0'; /* the next STATUS= is sent even if unchanged */
    sdnotify_send(p->notify, SDNOTIFY_READY,
                  failed ? "reload refused (see the log); running the previous configuration"
                         : "configuration reloaded");
}

/* Until every worker has left its loop. A worker that ends without being told to (it
 * cannot serve any more) stops the others too, so that the process exits and restarts. */
static void wait_signals(struct pool *p, const sigset_t *set, bool stopping)
{
    while (atomic_load(&p->running) > 0) {
        struct timespec slice = { .tv_sec = WAIT_SLICE_S };
        int sig = sigtimedwait(set, NULL, &slice);

        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
            if (sig != SIGHUP && !stopping)
                sdnotify_send(p->notify, SDNOTIFY_STOPPING, "stopping: draining connections");
            else if (sig == SIGHUP && !stopping)
                notify_reloading(p);
            stopping |= sig != SIGHUP;
            fan_out(p, sig);
        } else if (!stopping && atomic_load(&p->running) < p->n) {
            log_msg(LOG_LVL_ERROR, "a worker stopped unexpectedly; stopping the others");
            stopping = true;
            sdnotify_send(p->notify, SDNOTIFY_STOPPING, "stopping: a worker stopped unexpectedly");
            fan_out(p, SIGTERM);
        }
        if (p->reloading && !stopping)
            notify_reloaded(p);
        if (!p->reloading && !stopping && sdnotify_enabled(p->notify))
            notify_status(p);
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
        if (w->health)
            event_free(w->health);
        app_free(w->app);
        if (w->pipe[0] >= 0)
            close(w->pipe[0]);
        if (w->pipe[1] >= 0)
            close(w->pipe[1]);
    }
    free(p->w);
    sdnotify_free(p->notify);
}

int workers_run(struct conf *conf)
{
    struct pool p = { .n = workers_resolve(conf->workers, workers_cpus()) };
    sigset_t set;
    int rc = 1;

    /* blocked before any thread exists, so that every thread inherits the mask and only
     * the main thread's sigtimedwait takes them */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    p.main_thread = pthread_self();
    (void)sdnotify_open(&p.notify); /* an unusable NOTIFY_SOCKET is logged; runs without */
    struct conf_error err = { 0 };
    if (confcheck_workers(conf, p.n, &err) < 0) {
        log_msg(LOG_LVL_ERROR, "%s: %s: %s", conf->path, err.path, err.message);
        conf_free(conf);
        sdnotify_free(p.notify);
        return 1;
    }
    if (!(p.w = calloc(p.n, sizeof *p.w))) {
        conf_free(conf);
        sdnotify_free(p.notify);
        log_msg(LOG_LVL_ERROR, "cannot set up %u workers: out of memory", p.n);
        return 1;
    }
    check_nofile(conf, p.n);
    for (unsigned i = 0; i < p.n; i++) {
        p.w[i].pool = &p;
        p.w[i].pipe[0] = p.w[i].pipe[1] = -1;
        p.w[i].log_index = p.n > 1 ? (int)i : -1;
    }
    int port = -1;
    if (build(&p, conf) == 0 && (port = listen_all(&p)) >= 0) {
        if (p.n > 1)
            log_msg(LOG_LVL_INFO, "starting %u workers", p.n);
        rc = start(&p) == 0 ? 0 : 1;
        if (rc != 0) { /* the workers already started end at once: stop, then stop again */
            fan_out(&p, SIGTERM);
            fan_out(&p, SIGTERM);
        } else {
            notify_ready(&p, port);
        }
        wait_signals(&p, &set, rc != 0);
    } else {
        log_msg(LOG_LVL_ERROR, "cannot set up the workers");
    }
    pool_free(&p);
    return rc;
}
