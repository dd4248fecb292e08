/* routes: the client listener's request routing and client authentication; /healthz and
 * /readyz stay here for load balancers (the admin listener serves them too). */
#include "routes.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "clientauth.h"
#include "jobpause.h"
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

/* Route indexes for the request counters (conn_req_set_route); the order of names[]. */
enum route_index {
    R_OTHER, R_HEALTHZ, R_READYZ, R_ENQUEUE, R_DEQUEUE, R_ACK, R_JOBSTATUS, R_DOWNLOAD, R_DATA,
    R_PACKAGES, R_SIMPLE, R_COUNT
};

static const char *const names[R_COUNT] = {
    "other", "healthz", "readyz", "connector_enqueue", "connector_dequeue", "connector_ack",
    "connector_jobstatus", "connector_download", "data", "packages", "jobs",
};

const char *const *routes_names(unsigned *n)
{
    *n = R_COUNT;
    return names;
}

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
    rt->timeouts.first_byte_ms = d->conf->timeouts.upstream_first_byte_ms;
    rt->timeouts.stall_ms = d->conf->timeouts.upstream_stall_ms;
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

/* A consumer's ack through the ledger's pass-through was confirmed: the export's record
 * (the outbox's later upstream ack names no job; this write does). */
static void on_ledger_confirmed(void *arg, const char *env, const char *job,
                                const char *msg_id, const char *client, bool acked)
{
    history_confirmed(arg, env, job, msg_id, client);
    if (acked)
        history_acked(arg, env, job, msg_id);
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
    if ((op == ROUTES_ENQUEUE || op == ROUTES_DEQUEUE) && jobpause_paused(d->pause, job->name)) {
        jobpause_refuse(req, job->name);
        return;
    }
    if (d->ledger && op == ROUTES_DEQUEUE) {
        ledgerpass_dequeue(d->ledger, req, job, client, d->conf->public_base_url);
        return;
    }
    if (d->ledger && op == ROUTES_ACK) {
        struct ledgerpass_hook hook = { d->history ? on_ledger_confirmed : NULL, d->history };
        ledgerpass_ack(d->ledger, d->uc, req, job, client, d->conf->limits.max_body_bytes,
                       &hook);
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
    if (d->history && (op == ROUTES_DEQUEUE || op == ROUTES_ACK)) { /* the ledger is off */
        passtap_export(d->history, d->uc, req, &rt, job, client, op == ROUTES_ACK);
        return;
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
    conn_req_set_route(req, path_is(h, "/healthz") ? R_HEALTHZ
                            : path_is(h, "/readyz") ? R_READYZ
                            : conn_route            ? R_ENQUEUE + (unsigned)op
                            : is_data(h)            ? R_DATA
                            : package_owns(h)       ? R_PACKAGES
                            : simple_owns(h)        ? R_SIMPLE
                                                    : R_OTHER);
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
            admin_readyz(req, d->conf, d->tm, d->ledger, d->draining);
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
