/* routes: request routing, client authentication and the small JSON endpoints. */
#include "routes.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "budget.h"
#include "clientauth.h"
#include "conf.h"
#include "history.h"
#include "ledgerflow.h"
#include "ledgerpass.h"
#include "passtap.h"
#include "passthru.h"
#include "reply.h"
#include "package.h"
#include "simple.h"
#include "token.h"
#include "upcall.h"

static bool path_is(const struct http1_head *h, const char *path)
{
    size_t n = strlen(path);
    return h->path_len == n && memcmp(h->target, path, n) == 0;
}

static bool get_or_head(struct conn_req *req, const struct http1_head *h)
{
    if (h->method == HTTP_GET || h->method == HTTP_HEAD)
        return true;
    reply_method_not_allowed(req, "GET, HEAD");
    return false;
}

static void reply_json_t(struct conn_req *req, int status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    if (text)
        reply_json(req, status, text, strlen(text));
    else
        reply_error(req, 503, "out_of_memory", "the server is out of memory, retry later");
    free(text);
    json_decref(o);
}

/* The worker's history counters for /admin/status, or null when history is off. */
static json_t *history_json(const struct history *h)
{
    struct history_stats st;

    if (!h)
        return json_null();
    history_get_stats(h, &st);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "writes", (json_int_t)st.writes,
                     "lost", (json_int_t)st.lost, "follow_polls", (json_int_t)st.follow_polls,
                     "follow_final", (json_int_t)st.follow_final, "receipts_sent",
                     (json_int_t)st.receipts_sent, "receipts_given_up",
                     (json_int_t)st.receipts_given_up);
}

/* {env: what to do} for the environments of `why` that have a hint. */
static json_t *readyz_hints(const struct token_mgr *tm, json_t *why)
{
    json_t *hints = json_object(), *v;
    const char *env;

    json_object_foreach(why, env, v) {
        const char *h = token_hint(tm, env);
        if (h)
            json_object_set_new(hints, env, json_string(h));
    }
    return hints;
}

static void route_readyz(const struct routes_deps *d, struct conn_req *req)
{
    json_t *why = NULL;
    bool ready = token_mgr_ready(d->tm, &why);
    char lwhy[256] = "";
    /* a ledger that fails closed cannot serve dequeues without Redis */
    bool lready = !d->ledger || ledgerflow_ready(d->ledger, lwhy, sizeof lwhy) ||
                  d->conf->ledger.fail_open;
    json_t *o = json_pack("{s:s, s:o}", "status", ready && lready ? "ready" : "not_ready",
                          "environments", why ? why : json_object());

    if (o && d->ledger)
        json_object_set_new(o, "ledger", json_pack("{s:b, s:s}", "ready", lwhy[0] == '\0',
                                                   "reason", lwhy));
    if (o && !ready)
        json_object_set_new(o, "hints", readyz_hints(d->tm, json_object_get(o, "environments")));
    reply_json_t(req, ready && lready ? 200 : 503, o);
}

/* Admin view of tokens and gates: only from loopback (an operator on the host or a
 * sidecar), never a token or a secret. */
static void route_admin(const struct routes_deps *d, struct conn_req *req)
{
    json_t *gates = json_object();

    if (!routes_loopback(conn_req_client(req))) {
        json_decref(gates);
        reply_error(req, 403, "admin_loopback_only", "the admin view is served on loopback only");
        return;
    }
    for (size_t i = 0; i < d->conf->n_envs; i++)
        json_object_set_new(gates, d->conf->envs[i].name,
                            json_integer(upcall_gate_remaining(d->uc, d->conf->envs[i].name)));
    reply_json_t(req, 200,
                 json_pack("{s:o, s:o, s:o, s:b, s:o, s:I, s:I, s:o}", "environments",
                           token_mgr_status(d->tm), "throttled_for_s", gates, "d365_budget",
                           budget_status(d->budget), "tokens_shared",
                           d->token_shared, "ledger",
                           d->ledger ? ledgerflow_status(d->ledger) : json_null(), "worker",
                           (json_int_t)d->worker, "workers", (json_int_t)d->workers,
                           "history", history_json(d->history)));
}

bool routes_loopback(const char *client)
{
    return strncmp(client, "127.", 4) == 0 || strncmp(client, "[::1]:", 6) == 0 ||
           strncmp(client, "[::ffff:127.", 12) == 0;
}

int routes_parse_connector(const char *path, size_t len, enum routes_op *op, const char **id,
                           size_t *id_len)
{
    static const char pre[] = "/api/connector/";
    static const char *const ops[] = { "enqueue", "dequeue", "ack", "jobstatus", "download" };

    if (len > 4 && strncasecmp(path, "/en/", 4) == 0) {
        path += 3;
        len -= 3;
    }
    if (len <= sizeof pre - 1 || strncasecmp(path, pre, sizeof pre - 1) != 0)
        return -1;
    path += sizeof pre - 1;
    len -= sizeof pre - 1;
    for (int i = 0; i < 5; i++) {
        size_t n = strlen(ops[i]);
        if (len > n + 1 && strncasecmp(path, ops[i], n) == 0 && path[n] == '/') {
            *op = (enum routes_op)i;
            *id = path + n + 1;
            *id_len = len - n - 1;
            return memchr(*id, '/', *id_len) ? -1 : 0;
        }
    }
    return -1;
}

static bool authenticate(const struct routes_deps *d, struct conn_req *req,
                         const struct http1_head *h, const struct conf_client **client)
{
    enum clientauth_verdict v = clientauth_check(d->conf, h, client);

    if (v == CLIENTAUTH_OK)
        return true;
    reply_error(req, 401, clientauth_code(v), "%s", clientauth_message(v));
    return false;
}

static void route_base(const struct routes_deps *d, struct passthru_route *rt)
{
    memset(rt, 0, sizeof *rt);
    rt->public_base_url = d->conf->public_base_url;
    rt->body = PASSTHRU_BODY_BUFFER;
    rt->body_limit = d->conf->limits.max_body_bytes;
    rt->retry = UPCALL_RETRY_SAFE;
    rt->timeouts.connect_ms = d->conf->timeouts.upstream_connect_ms;
    rt->timeouts.total_ms = d->conf->timeouts.upstream_total_ms;
}

static bool method_ok(struct conn_req *req, const struct http1_head *h, enum routes_op op)
{
    bool post = op == ROUTES_ENQUEUE || op == ROUTES_ACK;

    if (post && h->method == HTTP_POST)
        return true;
    if (!post && (h->method == HTTP_GET || (op == ROUTES_DOWNLOAD && h->method == HTTP_HEAD)))
        return true;
    reply_method_not_allowed(req, post ? "POST" : op == ROUTES_DOWNLOAD ? "GET, HEAD" : "GET");
    return false;
}

/* A download through fogate went out whole: the consumer has the file. */
static void on_download_complete(void *ctx, const char *tag)
{
    ledgerflow_delivered(ctx, tag);
}

static void route_connector(const struct routes_deps *d, struct conn_req *req,
                            const struct http1_head *h, enum routes_op op, const char *id,
                            size_t id_len)
{
    const struct conf_client *client;
    const struct conf_job *job;
    struct passthru_route rt;

    if (!authenticate(d, req, h, &client) || !method_ok(req, h, op))
        return;
    if (clientauth_job(d->conf, client, id, id_len, &job) < 0) {
        reply_error(req, 403, "job_forbidden", "this API key may not use that activity id");
        return;
    }
    if (d->ledger && op == ROUTES_DEQUEUE) {
        ledgerpass_dequeue(d->ledger, req, job, client, d->conf->public_base_url);
        return;
    }
    if (d->ledger && op == ROUTES_ACK) {
        ledgerpass_ack(d->ledger, d->uc, req, job, client, d->conf->limits.max_body_bytes);
        return;
    }
    route_base(d, &rt);
    rt.env = job->env;
    rt.dequeue = op == ROUTES_DEQUEUE;
    if (d->ledger && op == ROUTES_DOWNLOAD && h->method == HTTP_GET &&
        ledgerpass_download_id(job, h->target, h->target_len, rt.complete_tag,
                               sizeof rt.complete_tag) == 0) {
        rt.on_complete = on_download_complete;
        rt.complete_ctx = d->ledger;
    }
    if (op == ROUTES_ENQUEUE) {
        rt.body = PASSTHRU_BODY_STREAM;
        rt.body_limit = d->conf->limits.max_enqueue_bytes;
        rt.retry = UPCALL_RETRY_NONE;
        if (d->history) { /* the file's record, and its Idempotency-Key */
            passtap_enqueue(d->history, d->uc, req, &rt, job, client);
            return;
        }
    }
    if (d->history && op == ROUTES_DOWNLOAD && h->method == HTTP_GET) {
        passtap_download(d->history, d->uc, req, &rt, job, client);
        return;
    }
    passthru_start(d->uc, req, &rt);
}

/* POST actions that start work in D365 are never retried; reads (GET, Get*) are. */
static enum upcall_retry data_retry(const struct http1_head *h)
{
    static const char ns[] = "Microsoft.Dynamics.DataEntities.";
    const char *end = h->target + h->path_len, *a = h->target;

    if (h->method == HTTP_GET || h->method == HTTP_HEAD)
        return UPCALL_RETRY_SAFE;
    for (const char *p = h->target; p + sizeof ns - 1 <= end; p++)
        if (strncmp(p, ns, sizeof ns - 1) == 0)
            a = p + sizeof ns - 1;
    return h->method == HTTP_POST && end - a >= 3 && strncmp(a, "Get", 3) == 0
               ? UPCALL_RETRY_SAFE
               : UPCALL_RETRY_NONE;
}

/* The methods D365 defines for a /data path (docs/api-methods.md): the service document
 * and $metadata are read-only, $batch and actions (Microsoft.Dynamics.DataEntities.X) are
 * POST, entity sets and keys take OData's CRUD. */
const char *routes_data_allow(const char *path, size_t len)
{
    static const char ns[] = "Microsoft.Dynamics.DataEntities.";
    static const char batch[] = "/data/$batch";
    static const char meta[] = "/data/$metadata";

    if (len <= 6 || (len >= sizeof meta - 1 && strncasecmp(path, meta, sizeof meta - 1) == 0))
        return "GET, HEAD";
    if (len == sizeof batch - 1 && strncasecmp(path, batch, len) == 0)
        return "POST";
    for (size_t i = 0; i + sizeof ns - 1 <= len; i++) /* any case: never less strict */
        if (strncasecmp(path + i, ns, sizeof ns - 1) == 0)
            return "POST";
    return "GET, HEAD, POST, PATCH, PUT, DELETE";
}

/* True when `allow` ("GET, HEAD") lists the method name exactly. */
static bool allow_has(const char *allow, const char *method)
{
    size_t n = strlen(method);

    for (const char *p = allow; (p = strstr(p, method)) != NULL; p += n)
        if ((p == allow || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

static void route_data(const struct routes_deps *d, struct conn_req *req,
                       const struct http1_head *h)
{
    const struct conf_client *client;
    const struct conf_env *env;
    struct passthru_route rt;
    const char *allow = routes_data_allow(h->target, h->path_len);

    if (!allow_has(allow, h->method_name)) { /* locally, before authentication */
        reply_method_not_allowed(req, allow);
        return;
    }
    if (!authenticate(d, req, h, &client))
        return;
    int rc = clientauth_data_env(d->conf, client, h, &env);
    if (rc == -1) {
        reply_error(req, 400, "environment_required",
                    "this API key has several environments: name one in X-Fogate-Environment");
        return;
    }
    if (rc < 0) {
        reply_error(req, 403, "environment_forbidden", "this API key may not use that environment");
        return;
    }
    route_base(d, &rt);
    rt.env = env;
    rt.retry = data_retry(h);
    passthru_start(d->uc, req, &rt);
}

static bool is_data(const struct http1_head *h)
{
    return h->path_len >= 5 && strncasecmp(h->target, "/data", 5) == 0 &&
           (h->path_len == 5 || h->target[5] == '/');
}

void routes_dispatch(const struct routes_deps *d, struct conn_req *req)
{
    static const char ok[] = "{\"status\":\"ok\"}";
    const struct http1_head *h = conn_req_head(req);
    enum routes_op op;
    const char *id;
    size_t id_len;

    bool conn_route = routes_parse_connector(h->target, h->path_len, &op, &id, &id_len) == 0;
    uint64_t limit = conn_route && op == ROUTES_ENQUEUE ? d->conf->limits.max_enqueue_bytes
                     : package_is_import(h)             ? d->conf->limits.max_package_bytes
                     : simple_owns(h)                   ? simple_body_limit(d->conf, h)
                                                        : d->conf->limits.max_body_bytes;
    if (h->framing == HTTP1_BODY_LENGTH && h->content_length > limit) {
        /* before authentication and routing: nothing of the body is read */
        conn_req_close_after(req);
        reply_error(req, 413, "body_too_large", "the request body is larger than allowed");
        return;
    }
    if (path_is(h, "/healthz")) {
        if (get_or_head(req, h))
            reply_json(req, 200, ok, sizeof ok - 1);
    } else if (path_is(h, "/readyz")) {
        if (get_or_head(req, h))
            route_readyz(d, req);
    } else if (path_is(h, "/admin/status")) {
        if (get_or_head(req, h))
            route_admin(d, req);
    } else if (conn_route) {
        route_connector(d, req, h, op, id, id_len);
    } else if (is_data(h)) {
        route_data(d, req, h);
    } else if (package_owns(h)) {
        const struct conf_client *client;
        if (authenticate(d, req, h, &client))
            package_handle(d->package, req, client);
    } else if (simple_owns(h)) {
        const struct conf_client *client;
        if (authenticate(d, req, h, &client))
            simple_handle(d->simple, req, client);
    } else {
        reply_error(req, 404, "not_found", "no route for this path");
    }
}
