/* app: wires config, event loop, connection layer, upstream, tokens and routes; reloads. */
#include "app.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "admin.h"
#include "adminstats.h"
#include "budget.h"
#include "confcheck.h"
#include "conn.h"
#include "history.h"
#include "jobpause.h"
#include "ledgerflow.h"
#include "log.h"
#include "reply.h"
#include "routes.h"
#include "package.h"
#include "simple.h"
#include "token.h"
#include "tokenwire.h"
#include "upcall.h"
#include "upstream.h"

/* A config snapshot and who holds it: the app while it is current, and each request
 * routed with it, from dispatch to its end (conn_req_hold). The last one out frees it, at
 * the next turn of the loop, so that no callback still on the stack can be using it. */
struct snap {
    struct conf *conf;          /* owned */
    unsigned refs;
    struct snap *next;          /* on app->dead, once refs is 0 */
};

struct app {
    struct conf *conf;              /* borrowed from snap: the current config */
    struct snap *snap;              /* one reference: the current snapshot */
    struct snap *dead;              /* owned list: snapshots to free at the next turn */
    struct event *reap;             /* owned: frees app->dead */
    struct event_base *base;        /* owned */
    struct conn_server *server;     /* owned */
    struct upstream *up;            /* owned */
    struct tokenwire *tokens;       /* owned */
    struct budget *budget;          /* owned: D365 budget and 429 gates */
    struct upcall_ctx *uc;          /* owned */
    struct simple *simple;          /* owned: the /v1 API */
    struct package *package;        /* owned: the package API */
    struct ledgerflow *ledger;      /* owned: the ack ledger, NULL unless ledger.enabled */
    struct admin *admin;            /* owned: worker 0's admin listener, NULL if none */
    struct history *history;        /* owned: the file history, NULL unless history.enabled */
    struct jobpause *pause;         /* owned: paused jobs, NULL without Redis */
    unsigned worker, workers;       /* this app's index and the worker count */
    atomic_bool *draining;          /* borrowed from the pool: a drain was asked; NULL none */
    bool stopping;
};

static size_t max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

void app_conn_options(const struct conf *conf, unsigned workers, struct conn_options *out)
{
    memset(out, 0, sizeof *out);
    out->head.max_header_bytes = conf->limits.max_header_bytes;
    out->head.max_headers = conf->limits.max_headers;
    /* the largest route limit; each route applies its own before reading (routes.c) */
    out->max_body_bytes = max3(conf->limits.max_body_bytes, conf->limits.max_enqueue_bytes,
                               conf->limits.max_package_bytes);
    if (workers < 1)
        workers = 1;
    out->max_connections = (conf->limits.max_connections + workers - 1) / workers;
    out->max_per_ip = (conf->limits.max_connections_per_ip + workers - 1) / workers;
    out->reuseport = workers > 1;
    out->head_timeout_ms = conf->timeouts.request_head_ms;
    out->idle_timeout_ms = conf->timeouts.idle_ms;
}

static struct snap *snap_new(struct conf *conf)
{
    struct snap *s = calloc(1, sizeof *s);

    if (s) {
        s->conf = conf;
        s->refs = 1;
    }
    return s;
}

static void snap_free_all(struct snap *s)
{
    while (s) {
        struct snap *next = s->next;
        conf_free(s->conf);
        free(s);
        s = next;
    }
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;
    struct snap *dead = app->dead;

    app->dead = NULL;
    snap_free_all(dead);
}

static void snap_put(struct app *app, struct snap *s)
{
    if (--s->refs > 0)
        return;
    s->next = app->dead;
    app->dead = s;
    event_active(app->reap, EV_TIMEOUT, 0);
}

static void on_release(void *hold, void *arg)
{
    snap_put(arg, hold);
}

static void on_request(struct conn_req *req, void *arg)
{
    struct app *app = arg;

    app->snap->refs++;
    conn_req_hold(req, app->snap); /* the routes below may point into it until the end */
    struct routes_deps d = { .conf = app->conf, .uc = app->uc, .budget = app->budget,
                             .tm = tokenwire_mgr(app->tokens),
                             .simple = app->simple, .package = app->package,
                             .ledger = app->ledger, .history = app->history,
                             .pause = app->pause,
                             .draining = app->draining && atomic_load(app->draining) };

    upcall_ctx_set_request(app->uc, conn_req_trace(req), conn_req_id(req));
    routes_dispatch(&d, req);
    upcall_ctx_set_request(app->uc, NULL, NULL);
}

static void on_drained(void *arg)
{
    struct app *app = arg;
    event_base_loopexit(app->base, NULL);
}

static void on_stop(struct app *app, int sig)
{
    unsigned grace = app->conf->timeouts.shutdown_grace_ms;

    if (app->stopping) {
        log_msg(LOG_LVL_WARN, "second signal %d: closing %zu connection(s) now", (int)sig,
                conn_server_count(app->server));
        event_base_loopbreak(app->base);
        return;
    }
    app->stopping = true;
    log_msg(LOG_LVL_INFO, "signal %d: shutting down; %zu connection(s), grace %u ms", (int)sig,
            conn_server_count(app->server), grace);
    if (app->admin)
        admin_drain(app->admin);
    conn_server_drain(app->server, grace, on_drained, app);
}

/* SIGHUP: a new snapshot replaces the old one; listener, limits, workers and Redis
 * settings stay as they were at start. A config that does not load is logged and ignored. */
static int on_reload(struct app *app)
{
    struct conf_error err = { 0 };
    struct conf *n = conf_load(app->conf->path, &err);
    struct snap *r = n ? snap_new(n) : NULL;

    if (n && confcheck_workers(n, app->workers, &err) < 0) {
        log_msg(LOG_LVL_ERROR, "reload ignored, the running config stays: %s: %s", err.path,
                err.message);
        conf_free(n);
        free(r);
        return -1;
    }
    if (!n || !r) {
        log_msg(LOG_LVL_ERROR, "reload ignored, the running config stays: %s",
                n ? "out of memory" : err.message);
        conf_free(n);
        free(r);
        return -1;
    }
    if (token_mgr_reload(tokenwire_mgr(app->tokens), n) < 0) {
        log_msg(LOG_LVL_ERROR, "reload ignored: out of memory");
        conf_free(n);
        free(r);
        return -1;
    }
    snap_put(app, app->snap); /* freed now unless requests in flight hold it */
    app->snap = r;
    app->conf = n;
    upcall_ctx_set_conf(app->uc, n);
    budget_set_conf(app->budget, n);
    simple_set_conf(app->simple, n);
    package_set_conf(app->package, n);
    if (app->admin)
        admin_set_conf(app->admin, n);
    history_set_conf(app->history, n);
    log_set_level(n->log_level);
    log_msg(LOG_LVL_INFO, "config reloaded from %s", n->path);
    return 0;
}

static struct upstream *make_upstream(struct event_base *base, const struct conf *conf)
{
    struct upstream_opts o = { 0 };

    /* http:// is only possible where the config allowed it per environment (conf checks
     * base_url and token_endpoint), so one client allowing http serves them all */
    for (size_t i = 0; i < conf->n_envs; i++)
        o.allow_http |= conf->envs[i].allow_http;
    o.connect_timeout_ms = conf->timeouts.upstream_connect_ms;
    o.total_timeout_ms = conf->timeouts.upstream_total_ms;
    o.first_byte_timeout_ms = conf->timeouts.upstream_first_byte_ms;
    o.stall_timeout_ms = conf->timeouts.upstream_stall_ms;
    o.client = conf->upstream.native ? UPSTREAM_CLIENT_NATIVE : UPSTREAM_CLIENT_CURL;
    return upstream_new(base, &o);
}

int app_signal(struct app *app, int sig)
{
    if (sig == SIGHUP)
        return on_reload(app);
    on_stop(app, sig);
    return 0;
}

void app_health(const struct app *app, struct app_health *out)
{
    char why[8];

    memset(out, 0, sizeof *out);
    out->connections = conn_server_count(app->server);
    out->envs = (unsigned)app->conf->n_envs;
    for (size_t i = 0; i < app->conf->n_envs; i++) {
        const char *r = token_reason(tokenwire_mgr(app->tokens), app->conf->envs[i].name);
        out->envs_ready += r && strcmp(r, "ok") == 0;
    }
    out->ledger = app->ledger ? ledgerflow_ready(app->ledger, why, sizeof why) : -1;
}

void app_stats(const struct app *app, struct adminstats_worker *row)
{
    memset(row, 0, sizeof *row);
    row->front = conn_server_stats(app->server);
    row->d365 = upcall_ctx_stats(app->uc);
    row->packages = package_stats(app->package);
    row->upstream = app->up;
    row->redis[ADMINSTATS_REDIS_TOKENS] = tokenwire_redis_stats(app->tokens);
    row->redis[ADMINSTATS_REDIS_PACKAGES] = package_redis_stats(app->package);
    if (app->ledger) {
        row->ledger = ledgerflow_stat(app->ledger);
        row->redis[ADMINSTATS_REDIS_LEDGER] = ledgerflow_redis_stats(app->ledger);
    }
}

void app_set_drain_flag(struct app *app, atomic_bool *flag)
{
    app->draining = flag;
    if (app->admin)
        admin_set_drain_flag(app->admin, flag);
}

void app_set_admin_stats(struct app *app, const struct adminstats *t)
{
    if (app->admin)
        admin_set_stats(app->admin, t);
}

struct event_base *app_base(const struct app *app)
{
    return app->base;
}

/* Worker 0 serves the admin listener on its own loop: the handlers read worker 0's token
 * manager, gates and ledger directly, and the other workers' counters through atomics
 * (no extra thread, no lock). */
static struct admin *make_admin(struct app *app, const struct conn_options *opt)
{
    struct admin_deps d = { .conf = app->conf, .uc = app->uc, .budget = app->budget,
                            .tm = tokenwire_mgr(app->tokens),
                            .token_shared = tokenwire_shared(app->tokens),
                            .ledger = app->ledger, .package = app->package,
                            .history = app->history, .pause = app->pause,
                            .workers = app->workers };

    return admin_new(app->base, opt, &d);
}

static void on_outbox_acked(void *arg, const char *env, const char *msg_id)
{
    history_acked(arg, env, NULL, msg_id);
}

struct app *app_new(struct conf *conf, unsigned worker, unsigned workers)
{
    struct app *app = calloc(1, sizeof *app);
    struct conn_options opt;

    if (app && !(app->snap = snap_new(conf))) {
        free(app);
        app = NULL;
    }
    if (!app) {
        conf_free(conf);
        return NULL;
    }
    app->conf = conf;
    app->worker = worker;
    app->workers = workers;
    app_conn_options(conf, workers, &opt);
    app->base = event_base_new();
    if (app->base && (app->reap = event_new(app->base, -1, 0, on_reap, app))) {
        app->server = conn_server_new(app->base, &opt, on_request, app);
        if (app->server)
            conn_server_on_release(app->server, on_release);
        app->up = make_upstream(app->base, conf);
    }
    if (app->up)
        app->tokens = tokenwire_new(app->base, app->up, conf);
    if (app->tokens)
        app->budget = budget_new(app->base, conf, workers);
    if (app->budget)
        app->uc = upcall_ctx_new(app->base, app->up, tokenwire_mgr(app->tokens), app->budget,
                                 conf);
    if (app->uc)
        app->simple = simple_new(app->base, app->uc, conf);
    if (app->simple)
        app->package = package_new(app->base, app->uc, app->up, conf);
    if (app->package && conf->ledger.enabled) {
        if (!(app->ledger = ledgerflow_new(app->base, app->uc, conf))) {
            app_free(app);
            return NULL;
        }
        simple_set_ledger(app->simple, app->ledger);
    }
    if (app->package && conf->history.enabled) {
        if (!(app->history = history_new(app->base, app->uc, conf))) {
            app_free(app);
            return NULL;
        }
        simple_set_history(app->simple, app->history);
        package_set_history(app->package, app->history);
        if (app->ledger) /* an ack the outbox made later ends the export's record */
            ledgerflow_set_acked_hook(app->ledger, on_outbox_acked, app->history);
    }
    if (app->package && conf->redis.url) {
        if (!(app->pause = jobpause_new(app->base, conf))) {
            app_free(app);
            return NULL;
        }
        simple_set_pause(app->simple, app->pause);
    }
    if (app->package && worker == 0 && conf->admin.listen_host &&
        !(app->admin = make_admin(app, &opt))) {
        app_free(app);
        return NULL;
    }
    if (!app->server || !app->simple || !app->package) {
        log_msg(LOG_LVL_ERROR, "cannot set up the event loop, upstream client or tokens");
        app_free(app);
        return NULL;
    }
    return app;
}

static void log_listening(const char *bound)
{
    json_t *f = json_object();
    json_object_set_new(f, "address", json_string(bound));
    log_json(LOG_LVL_INFO, "listening", f);
}

static void log_listening_admin(const char *bound)
{
    json_t *f = json_object();
    json_object_set_new(f, "address", json_string(bound));
    json_object_set_new(f, "listener", json_string("admin"));
    log_json(LOG_LVL_INFO, "listening", f);
}

int app_listen(struct app *app, int port)
{
    char bound[80], admin_bound[80];

    if (port < 0)
        port = app->conf->listen_port;
    if (conn_server_listen(app->server, app->conf->listen_host, port, bound, sizeof bound) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot listen on %s port %d: %s", app->conf->listen_host, port,
                strerror(errno));
        return -1;
    }
    log_listening(bound);
    if (app->admin && admin_listen(app->admin, admin_bound, sizeof admin_bound) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot listen on admin.listen %s port %d: %s",
                app->conf->admin.listen_host, app->conf->admin.listen_port, strerror(errno));
        return -1;
    }
    if (app->admin)
        log_listening_admin(admin_bound);
    const char *colon = strrchr(bound, ':');
    return colon ? atoi(colon + 1) : -1;
}

int app_serve(struct app *app)
{
    event_base_dispatch(app->base);
    log_msg(LOG_LVL_INFO, "stopped");
    return 0;
}

void app_free(struct app *app)
{
    if (!app)
        return;
    admin_free(app->admin);
    conn_server_free(app->server); /* requests in flight cancel their upcalls */
    simple_free(app->simple);
    package_free(app->package);
    ledgerflow_free(app->ledger); /* after the requests that use it, before upcalls */
    history_free(app->history);
    jobpause_free(app->pause);   /* the same: its follow-up calls D365 through upcalls */
    upcall_ctx_free(app->uc);
    budget_free(app->budget); /* after the calls that hold its slots */
    tokenwire_free(app->tokens);
    upstream_free(app->up);
    if (app->reap)
        event_free(app->reap);
    if (app->base)
        event_base_free(app->base);
    snap_free_all(app->dead); /* the requests released theirs in conn_server_free */
    snap_free_all(app->snap); /* holders are gone: the current one is the last */
    free(app);
}
