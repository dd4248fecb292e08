/* simplexfer: the simple API's file routes. Enqueue streams the client's body to D365 with
 * backpressure both ways; next dequeues and streams the export's file in the same
 * response; ack sends D365 the original dequeue body kept by simpleack. */
#include "simplexfer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "hex.h"
#include "ledgerkey.h"
#include "simpleidem.h"
#include "reqcore.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- POST /v1/jobs/{job}/messages ---- */

static size_t call_space(void *c)
{
    return d365_send_space(c);
}

static size_t call_send(void *c, const void *data, size_t len)
{
    return d365_send(c, data, len);
}

/* Moves pending body bytes to D365 while it has room. */
static void push_pending(struct simple_req *r)
{
    struct reqcore_pipe p = { r->call, call_space, call_send };

    reqcore_push_pending(&p, r->pending);
}

static void on_send_space(void *arg)
{
    struct simple_req *r = arg;

    push_pending(r);
    if (evbuffer_get_length(r->pending) > 0 || !r->call)
        return;
    if (r->body_eof)
        d365_send_eof(r->call);
    else if (r->req && r->body_reading)
        conn_req_resume_body(r->req);
}

static int on_body_data(struct conn_req *req, const char *data, size_t len, void *arg)
{
    struct simple_req *r = arg;
    struct reqcore_pipe p = { r->call, call_space, call_send };

    if (!r->call || r->responded)
        return 0; /* answered already: the rest is dropped */
    simple_req_hash(r, data, len);
    return reqcore_offer(&p, r->pending, req, data, len);
}

static void on_body_end(struct conn_req *req, bool ok, void *arg)
{
    struct simple_req *r = arg;

    r->body_reading = false;
    if (ok && !r->responded) {
        r->body_eof = true;
        if (r->call && evbuffer_get_length(r->pending) == 0)
            d365_send_eof(r->call);
        return;
    }
    /* The body failed (conn answers with the reason) or we answered already: either way
     * the request is conn's again once this returns. */
    reqcore_body_over((struct reqcore){ &r->req, &r->responded, false }, req);
    if (r->call) { /* the body broke before D365 answered: nothing was enqueued */
        history_failed(r->s->hist, r->hist_id, "body_failed", r->bytes, NULL);
        histidem_drop(r->hold);
        r->hold = NULL;
    }
    d365_cancel(r->call);
    r->call = NULL;
    simple_req_settle(r);
}

static void on_enqueued(void *arg, const struct d365_result *res)
{
    struct simple_req *r = arg;
    char url[1024], job[3 * SIMPLEROUTE_NAME_MAX + 1] = "", sha[65];
    size_t jl = 0;

    r->call = NULL;
    if (r->req && r->body_reading) { /* D365 answered before the body ended: stop reading */
        conn_req_drop_body(r->req);
        r->body_reading = false;
    }
    simple_req_hash_end(r, sha);
    if (!res->ok) {
        history_failed(r->s->hist, r->hist_id, res->err.code, r->bytes, sha[0] ? sha : NULL);
        histidem_drop(r->hold); /* a refused enqueue may be sent again with the key */
        r->hold = NULL;
    }
    if (!res->ok && strcmp(res->err.code, "d365_enqueue_too_large") == 0) {
        struct d365_err e = res->err;
        size_t n = strlen(e.message);
        snprintf(e.message + n, sizeof e.message - n, " (fogate's limits.max_enqueue_bytes "
                 "is %zu bytes)", r->s->conf->limits.max_enqueue_bytes);
        simple_req_fail(r, &e);
    } else if (!res->ok) {
        simple_req_fail(r, &res->err);
    } else {
        unsigned char raw[32];
        if (r->hold && hex_decode(sha, 64, raw, 32) == 0)
            histidem_done(r->hold, res->value, raw);
        else
            histidem_drop(r->hold);
        r->hold = NULL;
        history_sent(r->s->hist, r->hist_id, r->env, res->value, r->bytes,
                     sha[0] ? sha : NULL);
        d365parse_query_encode(job, sizeof job, &jl, r->route.job);
        snprintf(url, sizeof url, "%s/v1/messages/%s?job=%s", r->s->conf->public_base_url,
                 res->value, job);
        json_t *o = json_pack("{s:s, s:s}", "message_id", res->value, "status_url", url);
        if (o && r->hist_id[0])
            json_object_set_new(o, "record_id", json_string(r->hist_id));
        simple_req_json(r, 202, o);
    }
    simple_req_settle(r);
}

/* A file name header value fit for x-ms-dyn-externalidentifier: 1..255 visible bytes. */
static bool file_name_ok(const struct http1_header *f)
{
    if (f->value_len == 0 || f->value_len > 255)
        return false;
    for (size_t i = 0; i < f->value_len; i++)
        if ((unsigned char)f->value[i] < 0x20 || f->value[i] == 0x7f)
            return false;
    return true;
}

/* ?entity= / ?company= override the job's value; an empty value omits it. */
static int query_override(struct simple_req *r, const char *name, const char *dflt,
                          char *buf, size_t cap, const char **out)
{
    const struct http1_head *h = conn_req_head(r->req);
    int n = simpleroute_query(h->target, h->target_len, name, buf, cap);

    if (n == -2) {
        simple_req_error(r, 400, "bad_query", "the %s parameter is malformed or too long",
                         name);
        return -1;
    }
    *out = n < 0 ? dflt : n == 0 ? NULL : buf;
    return 0;
}

static int start_enqueue(struct simple_req *r, const struct conf_job *job)
{
    const struct http1_head *h = conn_req_head(r->req);
    const struct http1_header *fh = http1_header_find(h, "X-File-Name");
    char entity[256], company[64], file[256];
    const char *e, *c;
    struct d365_cbs cbs = { .on_result = on_enqueued, .on_send_space = on_send_space,
                            .arg = r };

    if (query_override(r, "entity", job->entity, entity, sizeof entity, &e) < 0 ||
        query_override(r, "company", job->company, company, sizeof company, &c) < 0)
        return -1;
    if (fh && !file_name_ok(fh)) {
        simple_req_error(r, 400, "bad_file_name",
                         "X-File-Name must be 1 to 255 bytes without control characters");
        return -1;
    }
    if (fh)
        snprintf(file, sizeof file, "%.*s", (int)fh->value_len, fh->value);
    r->call = d365_enqueue(r->s->ctx, r->env, r->activity, e, c, fh ? file : NULL,
                           h->framing == HTTP1_BODY_LENGTH ? (int64_t)h->content_length
                                                           : UPSTREAM_BODY_CHUNKED,
                           &cbs);
    if (!r->call) {
        simple_req_error(r, 500, "internal", "cannot start the enqueue call");
        return -1;
    }
    if (r->s->hist) {
        history_received(r->s->hist, r->env, job->name, r->client, "simple", fh ? file : NULL,
                         r->hist_id);
        simple_req_hash_start(r);
    }
    return 0;
}

void simplexfer_enqueue(struct simple_req *r, const struct conf_job *job)
{
    const struct http1_head *h = conn_req_head(r->req);
    const struct http1_header *k = http1_header_find(h, "Idempotency-Key");

    if (h->framing == HTTP1_BODY_NONE) {
        simple_req_error(r, 400, "empty_body", "the request body is the file to enqueue");
        return;
    }
    if (k)
        simpleidem_begin(r, job, k);
    else
        simplexfer_enqueue_go(r, job);
}

void simplexfer_enqueue_go(struct simple_req *r, const struct conf_job *job)
{
    size_t limit = r->s->conf->limits.max_enqueue_bytes;
    struct conn_body_sink sink = { on_body_data, on_body_end, r };

    if (!(r->pending = evbuffer_new())) {
        histidem_drop(r->hold);
        r->hold = NULL;
        simple_req_error(r, 500, "internal", "out of memory");
        return;
    }
    if (start_enqueue(r, job) < 0) {
        histidem_drop(r->hold);
        r->hold = NULL;
        return;
    }
    conn_req_set_body_limit(r->req, limit);
    r->body_reading = conn_req_read_body(r->req, &sink) == 0;
    if (!r->body_reading) {
        d365_cancel(r->call);
        r->call = NULL;
        histidem_drop(r->hold);
        r->hold = NULL;
        simple_req_error(r, 500, "internal", "cannot read the request body");
    }
}

/* ---- POST /v1/jobs/{job}/next ---- */

static void on_drained(void *arg)
{
    struct simple_req *r = arg;

    if (r->call)
        d365_resume(r->call);
}

/* Appends "Name: value\r\n" when value is made of safe visible bytes only. */
static void add_header(char *buf, size_t cap, const char *name, const char *value)
{
    size_t n = strlen(buf);

    for (const char *p = value; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return;
    snprintf(buf + n, cap - n, "%s: %s\r\n", name, value);
}

/* X-Fogate-Redelivery (ledger REDELIVERY), X-Fogate-Delivery-Count, X-Fogate-Ledger
 * (why the ledger was not used). */
static void ledger_headers(const struct simple_req *r, char *extra, size_t cap)
{
    char n[16];

    if (r->redelivery)
        add_header(extra, cap, "X-Fogate-Redelivery", "true");
    if (r->deliveries) {
        snprintf(n, sizeof n, "%u", r->deliveries);
        add_header(extra, cap, "X-Fogate-Delivery-Count", n);
    }
    if (r->unledgered)
        add_header(extra, cap, "X-Fogate-Ledger", r->unledgered);
}

static void on_dl_head(void *arg, const struct uphead *head)
{
    struct simple_req *r = arg;
    const char *cl = uphead_find(head, "Content-Length");
    const char *ct = uphead_find(head, "Content-Type");
    char extra[1536] = "", url[1024], job[3 * SIMPLEROUTE_NAME_MAX + 1] = "";
    size_t jl = 0;
    int64_t len = -1;

    if (!r->req)
        return;
    if (cl && cl[0] >= '0' && cl[0] <= '9')
        len = (int64_t)strtoll(cl, NULL, 10);
    d365parse_query_encode(job, sizeof job, &jl, r->route.job);
    snprintf(url, sizeof url, "%s/v1/jobs/%s/messages/%s/ack", r->s->conf->public_base_url,
             job, r->route.message_id);
    add_header(extra, sizeof extra, "X-Fogate-Message-Id", r->route.message_id);
    add_header(extra, sizeof extra, "X-Fogate-Ack-Url", url);
    if (r->last_dequeue) /* LastDequeueDateTime: D365 handed this message out before */
        add_header(extra, sizeof extra, "X-Fogate-Last-Dequeue", r->last_dequeue);
    ledger_headers(r, extra, sizeof extra);
    r->responded = true;
    simple_req_watch(r, on_drained);
    conn_req_start(r->req, 200, extra, ct ? ct : "application/octet-stream", len);
}

static enum upstream_flow on_dl_body(void *arg, const char *data, size_t len)
{
    struct simple_req *r = arg;

    if (!r->req)
        return UPSTREAM_PAUSE;
    simple_req_hash(r, data, len);
    return conn_req_write(r->req, data, len) == 0 ? UPSTREAM_CONTINUE : UPSTREAM_PAUSE;
}

static void on_downloaded(void *arg, const struct d365_result *res)
{
    struct simple_req *r = arg;
    struct conn_req *req = r->req;

    r->call = NULL;
    if (r->responded && req) { /* streaming: end it, or cut it off so the client sees */
        r->req = NULL;
        if (res->ok && r->ledger_id && r->s->lf) /* the whole body went out */
            ledgerflow_delivered(r->s->lf, r->ledger_id);
        if (res->ok && r->s->hist) {
            char sha[65];
            simple_req_hash_end(r, sha);
            history_delivered(r->s->hist, r->env, r->route.job, r->client, r->route.message_id,
                              r->bytes, sha[0] ? sha : NULL);
        }
        if (res->ok)
            conn_req_end(req);
        else
            conn_req_abort(req);
    } else if (!res->ok) {
        simple_req_fail(r, &res->err);
    }
    simple_req_settle(r);
}

/* Remembers the dequeue for the ack and starts the download; answers on failure. */
static void start_download(struct simple_req *r, const struct d365_result *res)
{
    struct d365parse_dequeue d;
    struct d365_cbs cbs = { .on_result = on_downloaded, .on_head = on_dl_head,
                            .on_body = on_dl_body, .arg = r };
    char *path = NULL;

    if (d365parse_dequeue(res->body, res->body_len, &d) < 0 ||
        guid_canonical(d.correlation_id, strlen(d.correlation_id), r->route.message_id) < 0) {
        simple_req_error(r, 502, "d365_bad_answer", "D365's dequeue answer is unreadable");
        return;
    }
    if (simpleack_put(r->s->acks, r->route.job, r->route.message_id, res->body, res->body_len,
                      now_s()) < 0)
        simple_req_error(r, 502, "d365_bad_answer", "D365's dequeue answer is too large");
    else if (!d.file_exists || !d.download_location)
        simple_req_error(r, 502, "export_file_missing", "D365 has no file for message %s "
                         "(ack it to drop it): %s", r->route.message_id,
                         d.file_error ? d.file_error : "no download location");
    else if (!(path = d365parse_download_path(d.download_location)))
        simple_req_error(r, 502, "d365_bad_answer", "D365's download location for message "
                         "%s is not a connector download URL", r->route.message_id);
    else if (!(r->call = d365_download(r->s->ctx, r->env, path, &cbs)))
        simple_req_error(r, 500, "internal", "cannot start the download");
    else if (r->s->hist)
        simple_req_hash_start(r);
    else if (d.last_dequeue)
        r->last_dequeue = strdup(d.last_dequeue); /* NULL when out of memory: no header */
    free(path);
    d365parse_dequeue_cleanup(&d);
}

static void on_dequeued(void *arg, const struct d365_result *res)
{
    struct simple_req *r = arg;

    r->call = NULL;
    if (!res->ok)
        simple_req_fail(r, &res->err);
    else if (res->status == 204)
        conn_req_respond(simple_req_take(r), 204, NULL, NULL, NULL, 0);
    else
        start_download(r, res);
    simple_req_settle(r);
}

static void on_ledger_next(void *arg, const struct ledgerflow_delivery *d)
{
    struct simple_req *r = arg;
    struct d365_result res = { .ok = true, .status = 200, .body = d->body, .body_len = d->len };

    r->lop = NULL;
    if (d->kind == LEDGERFLOW_FAILED) {
        simple_req_fail(r, d->err);
    } else if (d->kind == LEDGERFLOW_EMPTY) {
        conn_req_respond(simple_req_take(r), 204, NULL, NULL, NULL, 0);
    } else {
        r->redelivery = d->redelivery;
        r->deliveries = d->deliveries;
        r->unledgered = d->unledgered;
        if (d->id[0] && !(r->ledger_id = strdup(d->id)))
            simple_req_error(r, 500, "internal", "out of memory");
        else
            start_download(r, &res);
    }
    simple_req_settle(r);
}

void simplexfer_next(struct simple_req *r, const struct conf_job *job)
{
    struct d365_cbs cbs = { .on_result = on_dequeued, .arg = r };

    (void)job;
    if (r->s->lf) {
        r->lop = ledgerflow_next(r->s->lf, r->env, r->activity, r->client, on_ledger_next, r);
        if (!r->lop)
            simple_req_error(r, 500, "internal", "cannot start the dequeue");
        return;
    }
    r->call = d365_dequeue(r->s->ctx, r->env, r->activity, &cbs);
    if (!r->call)
        simple_req_error(r, 500, "internal", "cannot start the dequeue call");
}

/* ---- POST /v1/jobs/{job}/messages/{id}/ack ---- */

static void on_acked(void *arg, const struct d365_result *res)
{
    struct simple_req *r = arg;

    r->call = NULL;
    if (!res->ok) {
        simple_req_fail(r, &res->err);
    } else {
        simpleack_remove(r->s->acks, r->route.job, r->route.message_id);
        history_confirmed(r->s->hist, r->env, r->route.job, r->route.message_id, r->client);
        history_acked(r->s->hist, r->env, r->route.job, r->route.message_id);
        simple_req_json(r, 200, json_pack("{s:s, s:b}", "message_id", r->route.message_id,
                                          "acked", 1));
    }
    simple_req_settle(r);
}

/* The ack without the ledger: the body kept in memory by /next. */
static void ack_from_memory(struct simple_req *r)
{
    struct d365_cbs cbs = { .on_result = on_acked, .arg = r };
    size_t len = 0;
    const char *body = simpleack_get(r->s->acks, r->route.job, r->route.message_id, now_s(),
                                     &len);

    if (!body) {
        simple_req_error(r, 404, "unknown_delivery", "no delivery of message %s on job '%s' "
                         "is waiting for an ack here (acked, expired or never delivered)",
                         r->route.message_id, r->route.job);
        return;
    }
    r->call = d365_ack(r->s->ctx, r->env, r->activity, body, len, &cbs);
    if (!r->call)
        simple_req_error(r, 500, "internal", "cannot start the ack call");
}

static void on_ledger_ack(void *arg, enum ledgerflow_ack_kind kind, const struct d365_err *err)
{
    struct simple_req *r = arg;
    const char *id = r->route.message_id;

    r->lop = NULL;
    switch (kind) {
    case LEDGERFLOW_ACKED:
        simpleack_remove(r->s->acks, r->route.job, id);
        history_confirmed(r->s->hist, r->env, r->route.job, id, r->client);
        history_acked(r->s->hist, r->env, r->route.job, id);
        simple_req_json(r, 200, json_pack("{s:s, s:b}", "message_id", id, "acked", 1));
        break;
    case LEDGERFLOW_ALREADY:
        simple_req_json(r, 200, json_pack("{s:s, s:b, s:s}", "message_id", id, "acked", 1,
                                          "ack", "already_confirmed"));
        break;
    case LEDGERFLOW_PENDING: /* confirmed: never delivered again; the outbox acks D365 */
        simpleack_remove(r->s->acks, r->route.job, id);
        history_confirmed(r->s->hist, r->env, r->route.job, id, r->client);
        simple_req_json(r, 202, json_pack("{s:s, s:s}", "message_id", id, "ack", "pending"));
        break;
    case LEDGERFLOW_UNKNOWN:
        ack_from_memory(r);
        break;
    case LEDGERFLOW_ACK_FAILED:
        simple_req_fail(r, err);
        break;
    }
    simple_req_settle(r);
}

void simplexfer_ack(struct simple_req *r, const struct conf_job *job)
{
    char id[LEDGERKEY_ID_SIZE];

    (void)job;
    if (!r->s->lf) {
        ack_from_memory(r);
        return;
    }
    if (ledgerflow_corr_id(r->env, r->activity, r->route.message_id, id, sizeof id) < 0 ||
        !(r->lop = ledgerflow_confirm(r->s->lf, id, r->client, on_ledger_ack, r)))
        simple_req_error(r, 500, "internal", "cannot start the ack");
}
