/* d365: typed D365 operations on top of upcall (see d365.h). One struct d365_call per
 * operation wraps one upcall and turns its end into one d365_result. */
#include "d365.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "retryafter.h"

#define ACTION_PREFIX "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
#define SMALL_ANSWER_MAX (1024 * 1024)   /* OData values, dequeue JSON, enqueue id */
#define ERROR_BODY_MAX (64 * 1024)       /* a streamed call's error body kept for its message */

enum op { OP_ACTION, OP_ENQUEUE, OP_DEQUEUE, OP_DOWNLOAD, OP_ACK };

struct d365_call {
    enum op op;
    char what[96];               /* operation name for messages */
    struct upcall *uc;           /* owned until on_done; NULL afterwards */
    struct d365_cbs cbs;
    bool streaming_ok;           /* download: the 200 head was passed on */
    char *buf;              /* owned: download error body (capped) */
    size_t buf_len;
};

static const char *const json_headers[] = {
    "Accept: application/json",
    "Content-Type: application/json; charset=utf-8",
};

static void set_err(struct d365_err *e, int status, const char *code)
{
    e->status = status;
    e->code = code;
    e->retry_after_s = 0;
}

static void error_from_status(const struct upcall_done *d, const char *what, struct d365_err *e)
{
    char dmsg[D365PARSE_MSG_MAX];
    bool has = d->body && d365parse_error_message(d->body, d->body_len, dmsg, sizeof dmsg) == 0;
    const char *ra = d->head ? uphead_find(d->head, "Retry-After") : NULL;

    if (d->status == 401 && !d->retried_401) {
        /* refused before any processing, and not sent again (a streamed body too large to
         * keep): the token is refreshed meanwhile, so the client's retry is safe */
        set_err(e, 503, "d365_token_retry");
        e->retry_after_s = 1;
        snprintf(e->message, sizeof e->message,
                 "D365 refused fogate's token (401) for %s, which was not processed; the token "
                 "is being renewed: send the request again", what);
        return;
    }
    if (d->status == 401 || d->status == 403)
        set_err(e, 502, "d365_unauthorized");
    else if (d->status == 429)
        set_err(e, 429, "d365_throttled");
    else if (d->status == 400)
        set_err(e, 400, "d365_rejected");
    else if (d->status == 404)
        set_err(e, 404, "d365_not_found");
    else if (d->status == 413)
        set_err(e, 413, "d365_too_large");
    else
        set_err(e, 502, "d365_error");
    if (d->status == 429) /* the parse and clamp the gate used (upcall.c) */
        e->retry_after_s = retryafter_seconds(ra, time(NULL), NULL);
    if (d->status == 401)
        snprintf(e->message, sizeof e->message,
                 "D365 refused fogate's token (401) for %s, also a freshly fetched one: check "
                 "that the Entra app is registered in D365 (Microsoft Entra ID applications) "
                 "and that its user may run this job", what);
    else
        snprintf(e->message, sizeof e->message, "D365 answered %d to %s%s%s", d->status, what,
                 has ? ": " : "", has ? dmsg : "");
}

void d365_error_from(const struct upcall_done *d, const char *what, struct d365_err *out)
{
    memset(out, 0, sizeof *out);
    switch (d->st) {
    case UPCALL_OK:
        error_from_status(d, what, out);
        return;
    case UPCALL_THROTTLED:
        set_err(out, 429, "d365_throttled");
        out->retry_after_s = d->retry_after_s ? d->retry_after_s : 1;
        snprintf(out->message, sizeof out->message,
                 "D365 is throttling this environment; %s not sent, retry after %u s", what,
                 out->retry_after_s);
        return;
    case UPCALL_BUDGET:
        set_err(out, 503, "d365_budget_exhausted");
        out->retry_after_s = d->retry_after_s ? d->retry_after_s : 1;
        snprintf(out->message, sizeof out->message,
                 "the environment's D365 budget (d365_budget) had no free slot in time; %s "
                 "not sent, retry after %u s", what, out->retry_after_s);
        return;
    case UPCALL_NO_TOKEN:
        set_err(out, 503, "d365_no_token");
        snprintf(out->message, sizeof out->message, "no D365 token for %s: %s", what,
                 d->token_reason ? d->token_reason : "unavailable");
        return;
    case UPCALL_NO_ENV:
        set_err(out, 500, "no_environment");
        snprintf(out->message, sizeof out->message, "the job's environment is not configured");
        return;
    case UPCALL_FAILED:
        break;
    }
    if (d->transport == UPSTREAM_STALLED || d->transport == UPSTREAM_FIRST_BYTE) {
        set_err(out, 504, "d365_stalled");
        snprintf(out->message, sizeof out->message, "%s: D365 %s (%u attempt%s within the "
                 "deadline)", what, d->transport == UPSTREAM_STALLED ? "stopped sending "
                 "mid-transfer" : "did not answer in time", d->attempts,
                 d->attempts == 1 ? "" : "s");
        return;
    }
    if (d->transport == UPSTREAM_TIMEOUT)
        set_err(out, 504, "d365_timeout");
    else if (d->transport == UPSTREAM_TRUNCATED || d->transport == UPSTREAM_TOO_LARGE)
        set_err(out, 502, "d365_error");
    else
        set_err(out, 502, "d365_unreachable");
    snprintf(out->message, sizeof out->message, "%s failed: %s%s%s", what,
             upstream_result_name(d->transport), d->error && *d->error ? ": " : "",
             d->error ? d->error : "");
}

static void result_err(struct d365_call *c, const struct upcall_done *d)
{
    struct d365_result r;

    memset(&r, 0, sizeof r);
    d365_error_from(d, c->what, &r.err);
    c->cbs.on_result(c->cbs.arg, &r);
}

static void result_bad(struct d365_call *c, const char *why)
{
    struct d365_result r;

    memset(&r, 0, sizeof r);
    set_err(&r.err, 502, "d365_bad_answer");
    snprintf(r.err.message, sizeof r.err.message, "D365's answer to %s %s", c->what, why);
    c->cbs.on_result(c->cbs.arg, &r);
}

static void result_ok(struct d365_call *c, const struct upcall_done *d, const char *value)
{
    struct d365_result r;

    memset(&r, 0, sizeof r);
    r.ok = true;
    r.status = d->status;
    r.body = d->body;
    r.body_len = d->body_len;
    r.value = value;
    c->cbs.on_result(c->cbs.arg, &r);
}

/* An Edm.Boolean envelope's value as "true" / "false" (malloc'd), else NULL. */
static char *value_boolean(const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    json_t *v = json_object_get(root, "value");
    char *out = json_is_boolean(v) ? strdup(json_is_true(v) ? "true" : "false") : NULL;

    json_decref(root);
    return out;
}

static void done_action(struct d365_call *c, const struct upcall_done *d)
{
    char *v;

    if (d->st != UPCALL_OK || d->status != 200)
        return result_err(c, d);
    v = d365parse_value_string(d->body, d->body_len);
    if (!v)
        v = value_boolean(d->body, d->body_len);
    if (!v)
        return result_bad(c, "is not an OData string value");
    result_ok(c, d, v);
    free(v);
}

/* A streamed call's upcall_done with the body collected by on_body. */
static struct upcall_done with_body(const struct d365_call *c, const struct upcall_done *d)
{
    struct upcall_done copy = *d;

    copy.body = c->buf ? c->buf : "";
    copy.body_len = c->buf_len;
    if (copy.st == UPCALL_OK && d->transport != UPSTREAM_OK) { /* cut off after the head */
        copy.st = UPCALL_FAILED;
        copy.transport = UPSTREAM_TRUNCATED;
    }
    return copy;
}

/* The whole enqueue went out but no (complete) answer came: never re-sent (reference
 * §8.2), and the client must know that D365 may hold the message. */
static void enqueue_unknown(struct d365_call *c, const struct upcall_done *d)
{
    struct d365_result r;

    memset(&r, 0, sizeof r);
    set_err(&r.err, 504, "d365_outcome_unknown");
    snprintf(r.err.message, sizeof r.err.message, "the enqueue was sent whole to D365 but no "
             "answer came (%s); D365 may have received it, and fogate did not send it again. "
             "Check the job's messages in D365 (or GetMessageStatus of a message id you know) "
             "before sending the file again", upstream_result_name(d->transport));
    c->cbs.on_result(c->cbs.arg, &r);
}

static void enqueue_too_large(struct d365_call *c)
{
    struct d365_result r;

    memset(&r, 0, sizeof r);
    set_err(&r.err, 413, "d365_enqueue_too_large");
    snprintf(r.err.message, sizeof r.err.message, "D365 refused this enqueue body with 413 "
             "Request Entity Too Large: D365 caps connector enqueues below fogate's own limit "
             "(refusals seen at about 36-50 MB). Send files this large as a data package "
             "(POST /v1/packages/import), which goes to blob storage in blocks");
    c->cbs.on_result(c->cbs.arg, &r);
}

static void done_enqueue(struct d365_call *c, const struct upcall_done *d)
{
    struct upcall_done b = with_body(c, d);
    char id[GUID_CANON_SIZE];

    if (b.st == UPCALL_FAILED && b.request_sent)
        return enqueue_unknown(c, &b);
    if (b.st == UPCALL_OK && b.status == 413)
        return enqueue_too_large(c);
    if (b.st != UPCALL_OK || b.status != 200)
        return result_err(c, &b);
    if (d365parse_message_id(b.body, b.body_len, id) < 0)
        return result_bad(c, "holds no message id");
    result_ok(c, &b, id);
}

static void done_plain(struct d365_call *c, const struct upcall_done *d)
{
    bool ok = d->st == UPCALL_OK &&
              (d->status == 200 || (c->op == OP_DEQUEUE && d->status == 204));

    if (!ok)
        return result_err(c, d);
    result_ok(c, d, NULL);
}

static void done_download(struct d365_call *c, const struct upcall_done *d)
{
    struct upcall_done b = with_body(c, d);

    if (b.st == UPCALL_OK && b.status == 200 && c->streaming_ok)
        return result_ok(c, &b, NULL);
    result_err(c, &b);
}

static void on_done(void *arg, const struct upcall_done *d)
{
    struct d365_call *c = arg;

    c->uc = NULL;
    switch (c->op) {
    case OP_ACTION:
        done_action(c, d);
        break;
    case OP_ENQUEUE:
        done_enqueue(c, d);
        break;
    case OP_DOWNLOAD:
        done_download(c, d);
        break;
    case OP_DEQUEUE:
    case OP_ACK:
        done_plain(c, d);
        break;
    }
    free(c->buf);
    free(c);
}

static void on_send_space(void *arg)
{
    struct d365_call *c = arg;

    if (c->cbs.on_send_space)
        c->cbs.on_send_space(c->cbs.arg);
}

static void on_head(void *arg, const struct uphead *head)
{
    struct d365_call *c = arg;

    if (uphead_status(head) != 200 || c->op != OP_DOWNLOAD)
        return;
    c->streaming_ok = true;
    if (c->cbs.on_head)
        c->cbs.on_head(c->cbs.arg, head);
}

static enum upstream_flow on_body(void *arg, const char *data, size_t len)
{
    struct d365_call *c = arg;
    size_t take;

    if (c->streaming_ok)
        return c->cbs.on_body ? c->cbs.on_body(c->cbs.arg, data, len) : UPSTREAM_CONTINUE;
    if (!c->buf && !(c->buf = malloc(ERROR_BODY_MAX + 1)))
        return UPSTREAM_CONTINUE;
    take = len < ERROR_BODY_MAX - c->buf_len ? len : ERROR_BODY_MAX - c->buf_len;
    memcpy(c->buf + c->buf_len, data, take);
    c->buf_len += take;
    c->buf[c->buf_len] = '\0';
    return UPSTREAM_CONTINUE;
}

static struct d365_call *start(struct upcall_ctx *ctx, enum op op, const char *what,
                               struct upcall_req *req, const struct d365_cbs *cbs)
{
    struct d365_call *c = calloc(1, sizeof *c);
    struct upcall_cbs ucb = { NULL, NULL, NULL, on_done, c };

    if (!c)
        return NULL;
    c->op = op;
    c->cbs = *cbs;
    snprintf(c->what, sizeof c->what, "%s", what);
    if (op == OP_ENQUEUE)
        ucb.on_send_space = on_send_space;
    if (op == OP_DOWNLOAD || op == OP_ENQUEUE) {
        ucb.on_head = on_head;
        ucb.on_body = on_body;
    }
    c->uc = upcall_start(ctx, req, &ucb);
    if (!c->uc) {
        free(c);
        return NULL;
    }
    return c;
}

/* An action call with `body` (borrowed: the call copies it; NULL: out of memory). */
static struct d365_call *action_start(struct upcall_ctx *ctx, const char *env,
                                      const char *action, const char *body,
                                      const struct d365_cbs *cbs)
{
    char path[256];
    struct upcall_req req = {
        .env = env, .method = "POST", .path_query = path, .headers = json_headers,
        .n_headers = 2, .retry = UPCALL_RETRY_SAFE, .body = body,
        .body_len = body ? strlen(body) : 0, .max_response_bytes = SMALL_ANSWER_MAX,
    };
    struct d365_call *c = NULL;

    snprintf(path, sizeof path, "%s%s", ACTION_PREFIX, action);
    if (body)
        c = start(ctx, OP_ACTION, action, &req, cbs);
    return c;
}

struct d365_call *d365_action(struct upcall_ctx *ctx, const char *env, const char *action,
                              const char *param, const char *value,
                              const struct d365_cbs *cbs)
{
    char small[512];
    char *body = d365parse_action_body(param, value, small, sizeof small);
    struct d365_call *c = action_start(ctx, env, action, body, cbs);

    if (body != small)
        free(body);
    return c;
}

struct d365_call *d365_action_json(struct upcall_ctx *ctx, const char *env,
                                   const char *action, const json_t *params,
                                   const struct d365_cbs *cbs)
{
    char *body = json_dumps(params, JSON_COMPACT | JSON_PRESERVE_ORDER);
    struct d365_call *c = action_start(ctx, env, action, body, cbs);

    free(body);
    return c;
}

struct d365_call *d365_enqueue(struct upcall_ctx *ctx, const char *env, const char *activity,
                               const char *entity, const char *company,
                               const char *file_name, int64_t len,
                               const struct d365_cbs *cbs)
{
    char *path = d365parse_enqueue_path(activity, entity, company);
    char ext[300];
    const char *headers[1] = { ext };
    struct upcall_req req = {
        .env = env, .method = "POST", .path_query = path, .headers = headers,
        .n_headers = file_name ? 1 : 0, .retry = UPCALL_RETRY_NONE, .stream = true,
        .stream_len = len, .max_response_bytes = SMALL_ANSWER_MAX, .job = activity,
    };
    struct d365_call *c = NULL;

    if (file_name)
        snprintf(ext, sizeof ext, "x-ms-dyn-externalidentifier: %s", file_name);
    if (path)
        c = start(ctx, OP_ENQUEUE, "enqueue", &req, cbs);
    free(path);
    return c;
}

size_t d365_send_space(const struct d365_call *c)
{
    return c->uc ? upcall_send_space(c->uc) : 0;
}

size_t d365_send(struct d365_call *c, const void *data, size_t len)
{
    return c->uc ? upcall_send(c->uc, data, len) : 0;
}

void d365_send_eof(struct d365_call *c)
{
    if (c->uc)
        upcall_send_eof(c->uc);
}

struct d365_call *d365_dequeue(struct upcall_ctx *ctx, const char *env, const char *activity,
                               const struct d365_cbs *cbs)
{
    char path[128];
    struct upcall_req req = {
        .env = env, .method = "GET", .path_query = path, .headers = json_headers,
        .n_headers = 1, .retry = UPCALL_RETRY_SAFE, .max_response_bytes = SMALL_ANSWER_MAX,
        .job = activity,
    };

    snprintf(path, sizeof path, "/api/connector/dequeue/%s", activity);
    return start(ctx, OP_DEQUEUE, "dequeue", &req, cbs);
}

struct d365_call *d365_download(struct upcall_ctx *ctx, const char *env,
                                const char *path_query, const struct d365_cbs *cbs)
{
    struct upcall_req req = {
        .env = env, .method = "GET", .path_query = path_query, .retry = UPCALL_RETRY_SAFE,
    };

    return start(ctx, OP_DOWNLOAD, "download", &req, cbs);
}

void d365_resume(struct d365_call *c)
{
    if (c->uc)
        upcall_resume_recv(c->uc);
}

struct d365_call *d365_ack(struct upcall_ctx *ctx, const char *env, const char *activity,
                           const char *body, size_t len, const struct d365_cbs *cbs)
{
    char path[128];
    struct upcall_req req = {
        .env = env, .method = "POST", .path_query = path, .headers = json_headers + 1,
        .n_headers = 1, .retry = UPCALL_RETRY_SAFE, .body = body, .body_len = len,
        .max_response_bytes = SMALL_ANSWER_MAX, .job = activity,
    };

    snprintf(path, sizeof path, "/api/connector/ack/%s", activity);
    return start(ctx, OP_ACK, "ack", &req, cbs);
}

void d365_cancel(struct d365_call *c)
{
    if (!c)
        return;
    upcall_cancel(c->uc);
    free(c->buf);
    free(c);
}
