/* app: wires config, event loop and connection layer; owns the routes. */
#include "app.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conn.h"
#include "log.h"
#include "reply.h"

struct app {
    struct conf *conf;              /* owned */
    struct event_base *base;        /* owned */
    struct conn_server *server;     /* owned */
    struct event *sigterm;          /* owned */
    struct event *sigint;           /* owned */
    bool stopping;
};

void app_conn_options(const struct conf *conf, struct conn_options *out)
{
    memset(out, 0, sizeof *out);
    out->head.max_header_bytes = conf->limits.max_header_bytes;
    out->head.max_headers = conf->limits.max_headers;
    out->max_body_bytes = conf->limits.max_body_bytes;
    out->max_connections = conf->limits.max_connections;
    out->head_timeout_ms = conf->timeouts.request_head_ms;
    out->idle_timeout_ms = conf->timeouts.idle_ms;
}

static bool path_is(const struct http1_head *h, const char *path)
{
    size_t n = strlen(path);
    return h->path_len == n && memcmp(h->target, path, n) == 0;
}

static void route_healthz(struct conn_req *req, const struct http1_head *h)
{
    static const char ok[] = "{\"status\":\"ok\"}";

    if (h->method != HTTP_GET && h->method != HTTP_HEAD) {
        reply_method_not_allowed(req, "GET, HEAD");
        return;
    }
    reply_json(req, 200, ok, sizeof ok - 1);
}

static void on_request(struct conn_req *req, void *arg)
{
    const struct http1_head *h = conn_req_head(req);

    if (path_is(h, "/healthz"))
        route_healthz(req, h);
    else
        reply_error(req, 404, "not_found", "no route for this path");
}

static void on_drained(void *arg)
{
    struct app *app = arg;
    event_base_loopexit(app->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
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
    conn_server_drain(app->server, grace, on_drained, app);
}

struct app *app_new(struct conf *conf)
{
    struct app *app = calloc(1, sizeof *app);
    struct conn_options opt;

    if (!app) {
        conf_free(conf);
        return NULL;
    }
    app->conf = conf;
    app_conn_options(conf, &opt);
    app->base = event_base_new();
    if (app->base) {
        app->server = conn_server_new(app->base, &opt, on_request, app);
        app->sigterm = evsignal_new(app->base, SIGTERM, on_signal, app);
        app->sigint = evsignal_new(app->base, SIGINT, on_signal, app);
    }
    if (!app->server || !app->sigterm || !app->sigint || evsignal_add(app->sigterm, NULL) ||
        evsignal_add(app->sigint, NULL)) {
        log_msg(LOG_LVL_ERROR, "cannot set up the event loop");
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

int app_run(struct app *app)
{
    char bound[80];

    if (conn_server_listen(app->server, app->conf->listen_host, app->conf->listen_port, bound,
                           sizeof bound) < 0) {
        log_msg(LOG_LVL_ERROR, "cannot listen on %s port %d: %s", app->conf->listen_host,
                app->conf->listen_port, strerror(errno));
        return 1;
    }
    log_listening(bound);
    event_base_dispatch(app->base);
    log_msg(LOG_LVL_INFO, "stopped");
    return 0;
}

void app_free(struct app *app)
{
    if (!app)
        return;
    conn_server_free(app->server);
    if (app->sigterm)
        event_free(app->sigterm);
    if (app->sigint)
        event_free(app->sigint);
    if (app->base)
        event_base_free(app->base);
    conf_free(app->conf);
    free(app);
}
