/* passtap: history and Idempotency-Key on the pass-through enqueue, history on its
 * downloads, and on its dequeues and acks without the ack ledger (see passtap.h).
 *   [Idempotency-Key?] --no--> record, passthru_start with the tap
 *        | yes: histidem_begin
 *        +-- new: as "no", the reservation completed or dropped at the end
 *        +-- done: read the body, hash it, answer from the first enqueue (or 422)
 *        +-- in flight: 409; Redis down: 503 */
#include "passtap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "d365parse.h"
#include "hex.h"
#include "histidem.h"
#include "history.h"
#include "reply.h"

#define KEY_MAX 255

struct tap {
    struct history *h;                  /* borrowed */
    struct upcall_ctx *ctx;             /* borrowed */
    struct conn_req *req;               /* borrowed until answered or handed to passthru */
    struct passthru_route rt;
    const struct conf_job *job;         /* borrowed from the request's snapshot */
    const char *client;                 /* borrowed from the same */
    char id[HISTORY_ID_SIZE];
    EVP_MD_CTX *sha;                    /* owned */
    uint64_t bytes;
    struct histidem_op *iop;            /* owned while the key is looked up */
    struct histidem_hold *hold;         /* owned: our reservation */
    struct histidem_res first;          /* replay: the first enqueue */
};

static void tap_free(struct tap *t)
{
    histidem_cancel(t->iop);
    histidem_drop(t->hold);
    EVP_MD_CTX_free(t->sha);
    free(t);
}

/* The body's SHA-256 into raw and hex ("" when there is none). */
static void digest(struct tap *t, unsigned char raw[32], char hex[65])
{
    unsigned n = 0;

    hex[0] = '\0';
    if (t->sha && EVP_DigestFinal_ex(t->sha, raw, &n) == 1 && n == 32)
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    EVP_MD_CTX_free(t->sha);
    t->sha = NULL;
}

static void on_body(void *arg, const char *data, size_t len)
{
    struct tap *t = arg;

    t->bytes += len;
    if (t->sha)
        EVP_DigestUpdate(t->sha, data, len);
}

static void on_end(void *arg, int status, const char *answer, size_t len)
{
    struct tap *t = arg;
    unsigned char raw[32];
    char hex[65], msg[GUID_CANON_SIZE];

    digest(t, raw, hex);
    if (status == 200 && d365parse_message_id(answer, len, msg) == 0) {
        history_sent(t->h, t->id, t->rt.env->name, msg, t->bytes, hex[0] ? hex : NULL);
        if (t->hold && hex[0])
            histidem_done(t->hold, msg, raw);
        else
            histidem_drop(t->hold);
        t->hold = NULL;
    } else {
        history_failed(t->h, t->id, status ? "d365_refused" : "not_enqueued", t->bytes,
                       hex[0] ? hex : NULL);
    }
    tap_free(t); /* drops a reservation left: nothing was enqueued */
}

static const struct passthru_tap tap_cbs = { on_body, NULL, on_end };

static void go(struct tap *t)
{
    const struct http1_header *f = http1_header_find(conn_req_head(t->req),
                                                     "x-ms-dyn-externalidentifier");
    char file[256] = "";

    if (f)
        snprintf(file, sizeof file, "%.*s", (int)(f->value_len < 255 ? f->value_len : 255),
                 f->value);
    t->sha = EVP_MD_CTX_new();
    if (t->sha && EVP_DigestInit_ex(t->sha, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(t->sha);
        t->sha = NULL;
    }
    history_received(t->h, t->rt.env->name, t->job->name, t->client, "passthru",
                     file[0] ? file : NULL, t->id);
    t->rt.tap = &tap_cbs;
    t->rt.tap_ctx = t;
    conn_req_set_events(t->req, NULL);
    passthru_start(t->ctx, t->req, &t->rt); /* on_end frees t, exactly once */
}

/* ---- answers of its own (replay, refusals) ---- */

static void answer_error(struct tap *t, int status, unsigned retry_s, const char *code,
                         const char *msg)
{
    struct conn_req *req = t->req;
    char extra[48], *body;

    conn_req_set_events(req, NULL);
    snprintf(extra, sizeof extra, "Retry-After: %u\r\n", retry_s);
    body = reply_error_body(code, msg, conn_req_id(req), conn_req_trace(req)->trace_id);
    conn_req_note_error(req, code, msg);
    conn_req_respond(req, status, retry_s ? extra : NULL, "application/json",
                     body ? body : "{}", body ? strlen(body) : 2);
    free(body);
    tap_free(t);
}

static int replay_data(struct conn_req *req, const char *data, size_t len, void *arg)
{
    (void)req;
    on_body(arg, data, len);
    return 0;
}

static void replay_end(struct conn_req *req, bool ok, void *arg)
{
    struct tap *t = arg;
    unsigned char raw[32];
    char hex[65], body[sizeof t->first.msg_id + 2];

    conn_req_set_events(req, NULL);
    if (!ok) { /* conn answers with the reason */
        tap_free(t);
        return;
    }
    digest(t, raw, hex);
    if (!hex[0] || memcmp(raw, t->first.sha256, 32) != 0) {
        answer_error(t, 422, 0, "idempotency_key_reused", "this Idempotency-Key was used for "
                     "a different file on this activity");
        return;
    }
    history_replayed(t->h, t->first.record_id);
    snprintf(body, sizeof body, "\"%s\"", t->first.msg_id);
    conn_req_respond(req, 200, "X-Fogate-Replayed: true\r\n", "application/json; charset=utf-8",
                     body, strlen(body));
    tap_free(t);
}

static void on_gone(void *arg)
{
    tap_free(arg);
}

static void replay(struct tap *t)
{
    struct conn_body_sink sink = { replay_data, replay_end, t };

    t->sha = EVP_MD_CTX_new();
    if (!t->sha || EVP_DigestInit_ex(t->sha, EVP_sha256(), NULL) != 1) {
        answer_error(t, 500, 0, "internal", "out of memory");
        return;
    }
    conn_req_set_body_limit(t->req, t->rt.body_limit);
    if (conn_req_read_body(t->req, &sink) < 0)
        answer_error(t, 500, 0, "internal", "cannot read the request body");
}

static void on_idem(void *arg, const struct histidem_res *res)
{
    struct tap *t = arg;

    t->iop = NULL;
    switch (res->verdict) {
    case HISTIDEM_NEW:
        t->hold = res->hold;
        go(t);
        break;
    case HISTIDEM_DONE:
        t->first = *res;
        replay(t);
        break;
    case HISTIDEM_BUSY:
        answer_error(t, 409, 1, "idempotency_key_in_use", "an enqueue with this "
                     "Idempotency-Key is still in flight; retry later with the same key and file");
        break;
    case HISTIDEM_DOWN:
        answer_error(t, 503, 1, "idempotency_store_unavailable", "Redis, which holds "
                     "Idempotency-Keys, is unavailable; nothing was enqueued: retry with the "
                     "same key");
        break;
    }
}

void passtap_enqueue(struct history *h, struct upcall_ctx *ctx, struct conn_req *req,
                     const struct passthru_route *rt, const struct conf_job *job,
                     const struct conf_client *client)
{
    const struct http1_header *k = http1_header_find(conn_req_head(req), "Idempotency-Key");
    struct tap *t = calloc(1, sizeof *t);
    struct conn_req_events ev = { .on_gone = on_gone };

    if (!t) {
        reply_error(req, 503, "out_of_memory", "the server is out of memory, retry later");
        return;
    }
    *t = (struct tap){ .h = h, .ctx = ctx, .req = req, .rt = *rt, .job = job,
                       .client = client->name };
    history_id_new(t->id);
    if (!k) {
        go(t);
        return;
    }
    if (k->value_len == 0 || k->value_len > KEY_MAX) {
        answer_error(t, 400, 0, "bad_idempotency_key", "Idempotency-Key must be 1 to 255 bytes");
        return;
    }
    ev.arg = t;
    conn_req_set_events(req, &ev);
    t->iop = histidem_begin(h, job->name, k->value, k->value_len, t->id, on_idem, t);
    if (!t->iop)
        answer_error(t, 503, 1, "idempotency_store_unavailable", "the Idempotency-Key cannot "
                     "be looked up now; nothing was enqueued");
}

/* ---- downloads: the export's record when its file went out whole ---- */

struct dl {
    struct history *h;                  /* borrowed */
    char env[128], job[128], client[128];
    char msg[GUID_CANON_SIZE];
    EVP_MD_CTX *sha;                    /* owned */
    uint64_t bytes;
};

static void dl_body(void *arg, const char *data, size_t len)
{
    struct dl *d = arg;

    d->bytes += len;
    if (d->sha)
        EVP_DigestUpdate(d->sha, data, len);
}

static void dl_end(void *arg, int status, const char *answer, size_t len)
{
    struct dl *d = arg;
    unsigned char raw[32];
    unsigned n = 0;
    char hex[65] = "";

    (void)answer, (void)len;
    if (status == 200 && d->sha && EVP_DigestFinal_ex(d->sha, raw, &n) == 1 && n == 32)
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    if (status == 200)
        history_delivered(d->h, d->env, d->job, d->client, d->msg, d->bytes,
                          hex[0] ? hex : NULL);
    EVP_MD_CTX_free(d->sha);
    free(d);
}

static const struct passthru_tap dl_cbs = { NULL, dl_body, dl_end };

/* The correlation-id (the message id) of a download target, canonical. 0 / -1. */
static int correlation_id(const char *target, size_t len, char out[GUID_CANON_SIZE])
{
    static const char name[] = "correlation-id=";
    const char *q = memchr(target, '?', len), *end = target + len;

    for (const char *p = q; p && p + sizeof name - 1 < end;
         p = memchr(p + 1, '&', (size_t)(end - p - 1)))
        if (strncmp(p + 1, name, sizeof name - 1) == 0) {
            const char *v = p + sizeof name, *e = memchr(v, '&', (size_t)(end - v));
            return guid_canonical(v, (size_t)((e ? e : end) - v), out);
        }
    return -1;
}

void passtap_download(struct history *h, struct upcall_ctx *ctx, struct conn_req *req,
                      const struct passthru_route *rt, const struct conf_job *job,
                      const struct conf_client *client)
{
    const struct http1_head *hd = conn_req_head(req);
    struct passthru_route r = *rt;
    struct dl *d = calloc(1, sizeof *d);

    if (d && correlation_id(hd->target, hd->target_len, d->msg) == 0) {
        d->h = h;
        snprintf(d->env, sizeof d->env, "%s", rt->env->name);
        snprintf(d->job, sizeof d->job, "%s", job->name);
        snprintf(d->client, sizeof d->client, "%s", client->name);
        d->sha = EVP_MD_CTX_new();
        if (d->sha && EVP_DigestInit_ex(d->sha, EVP_sha256(), NULL) != 1) {
            EVP_MD_CTX_free(d->sha);
            d->sha = NULL;
        }
        r.tap = &dl_cbs;
        r.tap_ctx = d;
    } else {
        free(d); /* no message id to record it under: passed through unrecorded */
    }
    passthru_start(ctx, req, &r);
}

/* ---- dequeue and ack without the ack ledger: the export's record ---- */

struct xq {
    struct history *h;                  /* borrowed */
    char env[128], job[128], client[128];
    bool ack;
    struct evbuffer *body;              /* owned: the ack's body (the dequeue JSON) */
    uint64_t limit;                     /* the route's body limit: no more is kept */
};

static void xq_body(void *arg, const char *data, size_t len)
{
    struct xq *x = arg;

    if (x->body && evbuffer_get_length(x->body) + len <= x->limit)
        evbuffer_add(x->body, data, len);
}

/* The canonical message id (CorrelationId) of a dequeue JSON. 0 / -1. */
static int dequeue_msg(const char *json, size_t len, char out[GUID_CANON_SIZE])
{
    struct d365parse_dequeue d;
    int rc;

    if (!json || d365parse_dequeue(json, len, &d) < 0)
        return -1;
    rc = guid_canonical(d.correlation_id, strlen(d.correlation_id), out);
    d365parse_dequeue_cleanup(&d);
    return rc;
}

static void xq_end(void *arg, int status, const char *answer, size_t len)
{
    struct xq *x = arg;
    char msg[GUID_CANON_SIZE];

    if (status == 200 && !x->ack && dequeue_msg(answer, len, msg) == 0) {
        history_dequeued(x->h, x->env, x->job, x->client, msg);
    } else if (status == 200 && x->ack && x->body &&
               dequeue_msg((const char *)evbuffer_pullup(x->body, -1),
                           evbuffer_get_length(x->body), msg) == 0) {
        history_confirmed(x->h, x->env, x->job, msg, x->client);
        history_acked(x->h, x->env, x->job, msg);
    }
    if (x->body)
        evbuffer_free(x->body);
    free(x);
}

static const struct passthru_tap xq_cbs = { xq_body, NULL, xq_end };

void passtap_export(struct history *h, struct upcall_ctx *ctx, struct conn_req *req,
                    const struct passthru_route *rt, const struct conf_job *job,
                    const struct conf_client *client, bool ack)
{
    struct passthru_route r = *rt;
    struct xq *x = calloc(1, sizeof *x);

    if (x && (!ack || (x->body = evbuffer_new()))) {
        x->h = h;
        x->ack = ack;
        x->limit = rt->body_limit;
        snprintf(x->env, sizeof x->env, "%s", rt->env->name);
        snprintf(x->job, sizeof x->job, "%s", job->name);
        snprintf(x->client, sizeof x->client, "%s", client->name);
        r.tap = &xq_cbs;
        r.tap_ctx = x;
    } else {
        free(x); /* out of memory: passed through unrecorded */
    }
    passthru_start(ctx, req, &r);
}
