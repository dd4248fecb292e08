/* ledgerpass: pass-through dequeue and ack on the ack ledger (see ledgerpass.h).
 *
 *   dequeue: ledgerflow_next --> 200 rewritten body | 204 | error (503 + Retry-After)
 *   ack: read body --> ledgerkey --> ledgerflow_confirm --> 200 | 202 pending | 503
 *                          `-- unkeyed / unknown to the ledger --> d365_ack as sent */
#include "ledgerpass.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "d365.h"
#include "dlrewrite.h"
#include "ledger.h"
#include "ledgerkey.h"
#include "log.h"
#include "reply.h"

struct lp {
    struct conn_req *req;        /* borrowed until answered or gone */
    struct ledgerflow *lf;       /* borrowed */
    struct upcall_ctx *uc;       /* borrowed */
    struct ledgerflow_op *op;    /* owned while the ledger works */
    struct d365_call *call;      /* owned while D365 answers */
    struct evbuffer *body;       /* owned: the ack body */
    char *base_url;              /* owned */
    char env[LEDGERKEY_ENV_MAX + 1];
    char activity[GUID_CANON_SIZE];
    char client[LEDGER_NAME_MAX + 1];
    char job[LEDGER_NAME_MAX + 1];
    char msg[GUID_CANON_SIZE];   /* the ack's CorrelationId, once keyed */
    struct ledgerpass_hook hook; /* copied from the caller */
};

static void lp_free(struct lp *p)
{
    ledgerflow_cancel(p->op);
    d365_cancel(p->call);
    if (p->body)
        evbuffer_free(p->body);
    free(p->base_url);
    free(p);
}

static void on_gone(void *arg)
{
    struct lp *p = arg;

    p->req = NULL;
    lp_free(p);
}

static struct lp *lp_new(struct ledgerflow *lf, struct conn_req *req, const struct conf_job *job,
                         const struct conf_client *client)
{
    struct lp *p = calloc(1, sizeof *p);
    struct conn_req_events ev = { .on_gone = on_gone };

    if (!p || !(p->body = evbuffer_new())) {
        free(p);
        reply_error(req, 503, "out_of_memory", "the server is out of memory, retry later");
        return NULL;
    }
    p->req = req;
    p->lf = lf;
    snprintf(p->env, sizeof p->env, "%s", job->env->name);
    snprintf(p->activity, sizeof p->activity, "%s", job->activity_id);
    snprintf(p->client, sizeof p->client, "%s", client->name);
    snprintf(p->job, sizeof p->job, "%s", job->name);
    ev.arg = p;
    conn_req_set_events(req, &ev);
    return p;
}

/* Detaches from the request for its one answer. */
static struct conn_req *take(struct lp *p)
{
    struct conn_req *req = p->req;

    conn_req_set_events(req, NULL);
    p->req = NULL;
    return req;
}

static void answer_err(struct lp *p, const struct d365_err *e)
{
    struct conn_req *req = take(p);
    char hdr[48] = "";
    char *body = reply_error_body(e->code, e->message, conn_req_id(req),
                                  conn_req_trace(req)->trace_id);

    if (e->retry_after_s)
        snprintf(hdr, sizeof hdr, "Retry-After: %u\r\n", e->retry_after_s);
    conn_req_note_error(req, e->code, e->message);
    conn_req_respond(req, e->status, hdr[0] ? hdr : NULL, "application/json",
                     body ? body : "{}", body ? strlen(body) : 2);
    free(body);
    lp_free(p);
}

/* ---- dequeue ---- */

/* Appends a formatted header line to buf (cap bytes, *n used): cut, never past cap. */
static void add_header(char *buf, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void add_header(char *buf, size_t cap, size_t *n, const char *fmt, ...)
{
    va_list ap;
    int w;

    if (*n >= cap - 1)
        return;
    va_start(ap, fmt);
    w = vsnprintf(buf + *n, cap - *n, fmt, ap);
    va_end(ap);
    if (w > 0)
        *n = *n + (size_t)w < cap ? *n + (size_t)w : cap - 1;
}

static void answer_delivery(struct lp *p, const struct ledgerflow_delivery *d)
{
    char extra[256] = "", *rewritten = NULL;
    size_t len = d->len, n = 0;
    const char *body = d->body;

    if (dlrewrite(d->body, d->len, p->base_url, &rewritten, &len) == DLREWRITE_REWRITTEN)
        body = rewritten;
    else
        len = d->len;
    if (d->redelivery)
        add_header(extra, sizeof extra, &n, "X-Fogate-Redelivery: true\r\n");
    if (d->deliveries)
        add_header(extra, sizeof extra, &n, "X-Fogate-Delivery-Count: %u\r\n", d->deliveries);
    if (d->unledgered)
        add_header(extra, sizeof extra, &n, "X-Fogate-Ledger: %s\r\n", d->unledgered);
    conn_req_respond(take(p), 200, extra, "application/json; charset=utf-8", body, len);
    free(rewritten);
    lp_free(p);
}

static void on_next(void *arg, const struct ledgerflow_delivery *d)
{
    struct lp *p = arg;

    p->op = NULL;
    if (d->kind == LEDGERFLOW_FAILED) {
        answer_err(p, d->err);
    } else if (d->kind == LEDGERFLOW_EMPTY) {
        conn_req_respond(take(p), 204, NULL, NULL, NULL, 0);
        lp_free(p);
    } else {
        answer_delivery(p, d);
    }
}

void ledgerpass_dequeue(struct ledgerflow *lf, struct conn_req *req, const struct conf_job *job,
                        const struct conf_client *client, const char *public_base_url)
{
    struct lp *p = lp_new(lf, req, job, client);

    if (!p)
        return;
    if (!(p->base_url = strdup(public_base_url)) ||
        !(p->op = ledgerflow_next(lf, p->env, p->activity, p->client, on_next, p))) {
        struct d365_err e = { .status = 500, .code = "internal",
                              .message = "cannot start the dequeue" };
        answer_err(p, &e);
    }
}

/* ---- ack ---- */

static void on_raw_acked(void *arg, const struct d365_result *res)
{
    struct lp *p = arg;

    p->call = NULL;
    if (!res->ok) {
        answer_err(p, &res->err);
        return;
    }
    conn_req_respond(take(p), 200, NULL, NULL, "", 0);
    lp_free(p);
}

/* A body the ledger cannot key or does not know: D365 decides, as without the ledger. */
static void ack_raw(struct lp *p)
{
    struct d365_cbs cbs = { .on_result = on_raw_acked, .arg = p };
    size_t len = evbuffer_get_length(p->body);
    const char *body = (const char *)evbuffer_pullup(p->body, -1);

    p->call = d365_ack(p->uc, p->env, p->activity, body ? body : "", len, &cbs);
    if (!p->call) {
        struct d365_err e = { .status = 500, .code = "internal",
                              .message = "cannot start the ack call" };
        answer_err(p, &e);
    }
}

static void on_confirmed(void *arg, enum ledgerflow_ack_kind kind, const struct d365_err *err)
{
    static const char pending[] = "{\"ack\":\"pending\"}";
    struct lp *p = arg;

    p->op = NULL;
    if ((kind == LEDGERFLOW_ACKED || kind == LEDGERFLOW_PENDING) && p->hook.fn)
        p->hook.fn(p->hook.arg, p->env, p->job, p->msg, p->client, kind == LEDGERFLOW_ACKED);
    switch (kind) {
    case LEDGERFLOW_ACKED:
    case LEDGERFLOW_ALREADY:
        conn_req_respond(take(p), 200, NULL, NULL, "", 0);
        lp_free(p);
        break;
    case LEDGERFLOW_PENDING:
        conn_req_respond(take(p), 202, NULL, "application/json", pending, sizeof pending - 1);
        lp_free(p);
        break;
    case LEDGERFLOW_UNKNOWN:
        ack_raw(p);
        break;
    case LEDGERFLOW_ACK_FAILED:
        answer_err(p, err);
        break;
    }
}

static int on_ack_data(struct conn_req *req, const char *data, size_t len, void *arg)
{
    struct lp *p = arg;

    (void)req;
    return evbuffer_add(p->body, data, len);
}

static void on_ack_end(struct conn_req *req, bool ok, void *arg)
{
    struct lp *p = arg;
    struct ledgerkey k;
    size_t len = evbuffer_get_length(p->body);
    const char *body = (const char *)evbuffer_pullup(p->body, -1);

    if (!ok) { /* conn answers with the reason */
        conn_req_set_events(req, NULL);
        p->req = NULL;
        lp_free(p);
        return;
    }
    if (ledgerkey_parse(body ? body : "", len, p->env, p->activity, &k) != LEDGERKEY_OK) {
        log_msg(LOG_LVL_WARN, "request %s: an ack body the ledger cannot key: sent to D365 "
                "as it is", conn_req_id(req));
        ack_raw(p);
        return;
    }
    snprintf(p->msg, sizeof p->msg, "%s", k.correlation);
    if (!(p->op = ledgerflow_confirm(p->lf, k.id, p->client, on_confirmed, p))) {
        struct d365_err e = { .status = 500, .code = "internal",
                              .message = "cannot record the ack" };
        answer_err(p, &e);
    }
}

void ledgerpass_ack(struct ledgerflow *lf, struct upcall_ctx *uc, struct conn_req *req,
                    const struct conf_job *job, const struct conf_client *client,
                    uint64_t body_limit, const struct ledgerpass_hook *hook)
{
    const struct http1_head *h = conn_req_head(req);
    struct conn_body_sink sink = { on_ack_data, on_ack_end, NULL };
    struct lp *p;

    if (h->framing == HTTP1_BODY_NONE) {
        reply_error(req, 400, "empty_body", "the ack body is the dequeue answer");
        return;
    }
    if (h->framing == HTTP1_BODY_LENGTH && h->content_length > body_limit) {
        conn_req_close_after(req);
        reply_error(req, 413, "body_too_large", "the request body is larger than allowed here");
        return;
    }
    if (!(p = lp_new(lf, req, job, client)))
        return;
    p->uc = uc;
    if (hook)
        p->hook = *hook;
    sink.arg = p;
    conn_req_set_body_limit(req, body_limit);
    if (conn_req_read_body(req, &sink) < 0) {
        struct d365_err e = { .status = 500, .code = "internal",
                              .message = "cannot read the request body" };
        answer_err(p, &e);
    }
}

int ledgerpass_download_id(const struct conf_job *job, const char *target, size_t len,
                           char *out, size_t cap)
{
    char blob[GUID_CANON_SIZE];
    int n;

    if (ledgerkey_blob_from_url(target, len, blob) < 0)
        return -1;
    n = snprintf(out, cap, "%s:%s:blob:%s", job->env->name, job->activity_id, blob);
    return n > 0 && (size_t)n < cap && ledgerkey_id_check(out, NULL) == LEDGERKEY_BLOB ? 0 : -1;
}
