/* simpleidem: Idempotency-Key on the simple enqueue (see simpleidem.h). */
#include "simpleidem.h"

#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "d365parse.h"
#include "hex.h"
#include "reqcore.h"

static int replay_data(struct conn_req *req, const char *data, size_t len, void *arg)
{
    struct simple_req *r = arg;

    (void)req;
    simple_req_hash(r, data, len);
    return 0;
}

static void replay_answer(struct simple_req *r)
{
    char hex[65], url[1024], job[3 * SIMPLEROUTE_NAME_MAX + 1] = "";
    unsigned char raw[32];
    size_t jl = 0;
    json_t *o;

    simple_req_hash_end(r, hex);
    if (!hex[0] || hex_decode(hex, 64, raw, 32) < 0 ||
        memcmp(raw, r->first.sha256, 32) != 0) {
        simple_req_error(r, 422, "idempotency_key_reused", "this Idempotency-Key was used "
                         "for a different file on job '%s'", r->route.job);
        return;
    }
    history_replayed(r->s->hist, r->first.record_id);
    d365parse_query_encode(job, sizeof job, &jl, r->route.job);
    snprintf(url, sizeof url, "%s/v1/messages/%s?job=%s", r->s->conf->public_base_url,
             r->first.msg_id, job);
    o = json_pack("{s:s, s:s, s:s, s:b}", "message_id", r->first.msg_id, "status_url", url,
                  "record_id", r->first.record_id, "replayed", 1);
    simple_req_json(r, 202, o);
}

static void replay_end(struct conn_req *req, bool ok, void *arg)
{
    struct simple_req *r = arg;

    r->body_reading = false;
    if (ok && !r->responded)
        replay_answer(r);
    else
        reqcore_body_over((struct reqcore){ &r->req, &r->responded, false }, req);
    if (!r->replay_starting) /* else start_replay's caller settles, after it returns */
        simple_req_settle(r);
}

/* The key was done: read the body only to compare its SHA-256. */
static void start_replay(struct simple_req *r)
{
    struct conn_body_sink sink = { replay_data, replay_end, r };

    r->replay = true;
    simple_req_hash_start(r);
    if (!r->sha) {
        simple_req_error(r, 500, "internal", "out of memory");
        return;
    }
    conn_req_set_body_limit(r->req, r->s->conf->limits.max_enqueue_bytes);
    r->body_reading = true;
    r->replay_starting = true; /* a body already read ends within the call */
    if (conn_req_read_body(r->req, &sink) != 0) {
        r->body_reading = false;
        simple_req_error(r, 500, "internal", "cannot read the request body");
    }
    r->replay_starting = false;
}

static void on_idem(void *arg, const struct histidem_res *res)
{
    struct simple_req *r = arg;

    r->iop = NULL;
    switch (res->verdict) {
    case HISTIDEM_NEW:
        r->hold = res->hold;
        if (r->req)
            simplexfer_enqueue_go(r, r->job);
        break;
    case HISTIDEM_BUSY:
        simple_req_retry(r, 409, 1, "idempotency_key_in_use", "an enqueue with this "
                         "Idempotency-Key is still in flight; retry later with the same key "
                         "and file");
        break;
    case HISTIDEM_DONE:
        r->first = *res;
        start_replay(r);
        break;
    case HISTIDEM_DOWN:
        simple_req_retry(r, 503, 1, "idempotency_store_unavailable", "Redis, which holds "
                         "Idempotency-Keys, is unavailable; nothing was enqueued: retry with "
                         "the same key");
        break;
    }
    simple_req_settle(r);
}

void simpleidem_begin(struct simple_req *r, const struct conf_job *job,
                      const struct http1_header *k)
{
    if (!r->s->hist) {
        simple_req_error(r, 400, "idempotency_not_enabled", "Idempotency-Key needs "
                         "history.enabled (the keys live in Redis with the history)");
        return;
    }
    if (k->value_len == 0 || k->value_len > SIMPLEIDEM_KEY_MAX) {
        simple_req_error(r, 400, "bad_idempotency_key", "Idempotency-Key must be 1 to %d "
                         "bytes", SIMPLEIDEM_KEY_MAX);
        return;
    }
    r->job = job;
    history_id_new(r->hist_id);
    r->iop = histidem_begin(r->s->hist, job->name, k->value, k->value_len, r->hist_id,
                            on_idem, r);
    if (!r->iop)
        simple_req_retry(r, 503, 1, "idempotency_store_unavailable", "the Idempotency-Key "
                         "cannot be looked up now; nothing was enqueued");
}
