/* histreceipt: signed receipts from the Redis queue (see histreceipt.h).
 *   tick --CLAIM--> due "<id>:<status>" + the record's fields
 *     --build JSON, sign--> POST callback_url
 *     2xx: removed, record notes it | else: rescheduled (backoff) or given up */
#include "histreceipt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "history.h"
#include "histlua.h"
#include "histrec.h"
#include "log.h"
#include "rbackoff.h"
#include "rconn.h"
#include "secretfile.h"
#include "upstream.h"

#define CLAIM_MAX "16"
#define MAX_INFLIGHT 32
#define KEY_MAX 4096
#define ERRORS_MAX 10          /* error entries copied into a receipt */

/* Fields the claim reads, in this order. */
enum { F_DIR, F_ENV, F_JOB, F_FILE, F_SHA, F_SIZE, F_MSG, F_EXEC, F_STATUS, F_FINAL,
       F_ERRORS, F_CONFIRMED, F_RTRY, F_COUNT };

struct rcpt {
    struct histreceipt *hr;             /* borrowed */
    struct rcpt *prev, *next;           /* links of hr->items */
    char member[HISTREC_ID_SIZE + 80];
    char id[HISTREC_ID_SIZE];
    unsigned attempts;                  /* failed attempts before this one */
    struct upstream_xfer *x;            /* owned by hr->up while in flight */
};

struct histreceipt {
    struct event_base *base;            /* borrowed */
    struct history *h;                  /* borrowed */
    struct rconn *rc;                   /* borrowed from h */
    const struct conf *conf;            /* borrowed */
    struct rconn_script due, claim;
    struct upstream *up;                /* owned */
    struct event *tick;                 /* owned */
    char *key;                          /* owned secret (secretfile) */
    size_t keylen;
    struct rcpt *items;                 /* owned list: POSTs in flight */
    size_t n_items;
    bool claiming;
    uint32_t rnd;
    unsigned long sent, given_up;
};

static void on_noop(void *arg, enum rconn_result res, const redictReply *reply)
{
    (void)arg, (void)res, (void)reply;
}

static void schedule(struct histreceipt *hr, const char *member, long delay_ms, bool nx)
{
    char d[24];

    snprintf(d, sizeof d, "%ld", delay_ms);
    rconn_eval(hr->rc, &hr->due, on_noop, NULL, (int)hr->conf->history.write_timeout_ms, 1,
               HISTREC_RECEIPTS, member, d, nx ? "nx" : "", NULL);
}

void histreceipt_unconfirmed(struct histreceipt *hr, const char *id)
{
    char member[HISTREC_ID_SIZE + 16];

    if (!hr)
        return;
    snprintf(member, sizeof member, "%s:unconfirmed", id);
    schedule(hr, member, (long)hr->conf->receipts.unconfirmed_s * 1000, true);
}

static void item_free(struct rcpt *it)
{
    struct histreceipt *hr = it->hr;

    upstream_abort(it->x);
    if (it->prev)
        it->prev->next = it->next;
    else
        hr->items = it->next;
    if (it->next)
        it->next->prev = it->prev;
    hr->n_items--;
    free(it);
}

/* ---- one POST ---- */

static void on_posted(void *arg, const struct upstream_done *d)
{
    struct rcpt *it = arg;
    struct histreceipt *hr = it->hr;
    const char *tag = strchr(it->member, ':') + 1;

    it->x = NULL;
    if (d->result == UPSTREAM_OK && d->status >= 200 && d->status < 300) {
        hr->sent++;
        schedule(hr, it->member, -1, false);
        history_note(hr->h, it->id, "-receipts", tag);
    } else if (it->attempts + 1 >= hr->conf->receipts.max_attempts) {
        hr->given_up++;
        schedule(hr, it->member, -1, false);
        history_note(hr->h, it->id, "receipt_failed", tag);
        log_msg(LOG_LVL_WARN, "receipt %s given up after %u attempts (last: %d %s)",
                it->member, it->attempts + 1, d->status, upstream_result_name(d->result));
    } else {
        history_note(hr->h, it->id, "+rtry", "1");
        schedule(hr, it->member,
                 rbackoff_delay_ms(hr->conf->receipts.retry_min_ms,
                                   hr->conf->receipts.retry_max_ms, it->attempts,
                                   rbackoff_rand(&hr->rnd)), false);
    }
    item_free(it);
}

static void set_str(json_t *o, const char *name, const redictReply *v)
{
    if (v->len)
        json_object_set_new(o, name, json_stringn(v->str, v->len));
}

/* The receipt's JSON (docs/history.md) from the claimed fields. */
static char *receipt_body(const char *member, const char *id, const char *tag,
                          const redictReply *const *f)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "receipt_id", member, "record_id", id, "status",
                          tag);
    json_t *errors = f[F_ERRORS]->len ? json_loadb(f[F_ERRORS]->str, f[F_ERRORS]->len, 0, NULL)
                                      : NULL;
    char now[32], *text;

    if (!o)
        return NULL;
    set_str(o, "direction", f[F_DIR]);
    set_str(o, "environment", f[F_ENV]);
    set_str(o, "job", f[F_JOB]);
    set_str(o, "file_name", f[F_FILE]);
    set_str(o, "sha256", f[F_SHA]);
    set_str(o, "message_id", f[F_MSG]);
    set_str(o, "execution_id", f[F_EXEC]);
    if (f[F_SIZE]->len)
        json_object_set_new(o, "size", json_integer(strtoll(f[F_SIZE]->str, NULL, 10)));
    json_object_set_new(o, "final", json_boolean(strcmp(tag, "unconfirmed") != 0));
    while (json_is_array(errors) && json_array_size(errors) > ERRORS_MAX)
        json_array_remove(errors, ERRORS_MAX);
    if (errors)
        json_object_set_new(o, "errors", errors);
    else if (f[F_ERRORS]->len) /* D365's text when it is not JSON, cut short */
        json_object_set_new(o, "errors", json_stringn(f[F_ERRORS]->str,
                                                      f[F_ERRORS]->len < 2048 ? f[F_ERRORS]->len
                                                                              : 2048));
    histrec_time_format((int64_t)time(NULL) * 1000, now, sizeof now);
    json_object_set_new(o, "sent_at", json_string(now));
    text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}

static void post(struct histreceipt *hr, struct rcpt *it, const char *url, const char *body)
{
    char sig[HISTREC_SIG_SIZE], h1[HISTREC_SIG_SIZE + 32], h2[sizeof it->member + 32];
    const char *headers[] = { "Content-Type: application/json", h1, h2 };
    struct upstream_timeouts to = { .connect_ms = hr->conf->receipts.timeout_ms,
                                    .total_ms = hr->conf->receipts.timeout_ms };

    if (histrec_sign((const unsigned char *)hr->key, hr->keylen, (long long)time(NULL), body,
                     strlen(body), sig) < 0)
        return;
    snprintf(h1, sizeof h1, "X-Fogate-Signature: %s", sig);
    snprintf(h2, sizeof h2, "X-Fogate-Receipt-Id: %s", it->member);
    it->x = upstream_fetch(hr->up, "POST", url, headers, 3, body, strlen(body), 4096, to,
                           on_posted, it);
}

static void start(struct histreceipt *hr, const char *member, const redictReply *vals)
{
    const redictReply *const *f = (const redictReply *const *)vals->element;
    const char *colon = strchr(member, ':'), *tag = colon ? colon + 1 : "";
    const struct conf_job *job = f[F_JOB]->len ? conf_job_find(hr->conf, f[F_JOB]->str) : NULL;
    struct rcpt *it;
    char *body;

    if (!colon || (size_t)(colon - member) != HISTREC_ID_SIZE - 1 || !f[F_ENV]->len || !job ||
        !job->callback_url || (strcmp(tag, "unconfirmed") == 0 && f[F_CONFIRMED]->len)) {
        schedule(hr, member, -1, false); /* gone, no callback (any more), or confirmed */
        return;
    }
    if (!(it = calloc(1, sizeof *it)))
        return; /* comes back after the lease */
    it->hr = hr;
    snprintf(it->member, sizeof it->member, "%s", member);
    memcpy(it->id, member, HISTREC_ID_SIZE - 1);
    it->attempts = (unsigned)strtoul(f[F_RTRY]->str, NULL, 10);
    it->next = hr->items;
    if (hr->items)
        hr->items->prev = it;
    hr->items = it;
    hr->n_items++;
    body = receipt_body(member, it->id, tag, f);
    if (body)
        post(hr, it, job->callback_url, body);
    free(body);
    if (!it->x)
        item_free(it);
}

static void on_claim(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct histreceipt *hr = arg;

    hr->claiming = false;
    if (res != RCONN_OK || reply->type != REDICT_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const redictReply *e = reply->element[i];
        if (e->type == REDICT_REPLY_ARRAY && e->elements == 2 &&
            e->element[0]->type == REDICT_REPLY_STRING &&
            e->element[1]->type == REDICT_REPLY_ARRAY && e->element[1]->elements == F_COUNT)
            start(hr, e->element[0]->str, e->element[1]);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct histreceipt *hr = arg;
    char lease[24];

    (void)fd, (void)what;
    if (hr->claiming || hr->n_items >= MAX_INFLIGHT)
        return;
    snprintf(lease, sizeof lease, "%u", hr->conf->receipts.timeout_ms + 2000);
    hr->claiming = rconn_eval(hr->rc, &hr->claim, on_claim, hr,
                              (int)hr->conf->history.write_timeout_ms, 1, HISTREC_RECEIPTS,
                              HISTREC_PREFIX, CLAIM_MAX, lease, "dir", "env", "job", "file",
                              "sha256", "size", "msg", "exec", "status", "final", "errors",
                              "confirmed", "rtry", NULL) == 0;
}

struct histreceipt *histreceipt_new(struct event_base *base, struct history *h,
                                    struct rconn *rc, const struct conf *conf)
{
    struct histreceipt *hr = calloc(1, sizeof *hr);
    struct upstream_opts o = { .allow_http = conf->receipts.allow_http,
                               .connect_timeout_ms = conf->receipts.timeout_ms,
                               .total_timeout_ms = conf->receipts.timeout_ms };
    unsigned period = conf->receipts.interval_ms;
    struct timeval tv = { period / 1000, (period % 1000) * 1000 };
    char err[256] = "";

    if (!hr)
        return NULL;
    hr->base = base;
    hr->h = h;
    hr->rc = rc;
    hr->conf = conf;
    if (getrandom(&hr->rnd, sizeof hr->rnd, 0) != (ssize_t)sizeof hr->rnd || !hr->rnd)
        hr->rnd = 0x6a09e667u;
    if (secretfile_read(conf->receipts.key_file, KEY_MAX, SECRETFILE_PRIVATE, &hr->key,
                        &hr->keylen, err, sizeof err) < 0 || hr->keylen == 0) {
        log_msg(LOG_LVL_ERROR, "receipts: %s", err[0] ? err : "the key file is empty");
        histreceipt_free(hr);
        return NULL;
    }
    while (hr->keylen && (hr->key[hr->keylen - 1] == '\n' || hr->key[hr->keylen - 1] == '\r'))
        hr->key[--hr->keylen] = '\0'; /* a trailing newline is not part of the key */
    if (rconn_script_init(&hr->due, histlua_body(HISTLUA_DUE)) < 0 ||
        rconn_script_init(&hr->claim, histlua_body(HISTLUA_CLAIM)) < 0 ||
        !(hr->up = upstream_new(base, &o)) ||
        !(hr->tick = event_new(base, -1, EV_PERSIST, on_tick, hr)) ||
        event_add(hr->tick, &tv) < 0) {
        histreceipt_free(hr);
        return NULL;
    }
    return hr;
}

void histreceipt_set_conf(struct histreceipt *hr, const struct conf *conf)
{
    if (hr)
        hr->conf = conf;
}

void histreceipt_free(struct histreceipt *hr)
{
    if (!hr)
        return;
    while (hr->items)
        item_free(hr->items);
    if (hr->tick)
        event_free(hr->tick);
    upstream_free(hr->up);
    secretfile_free(hr->key, hr->keylen);
    free(hr);
}

void histreceipt_stats(const struct histreceipt *hr, unsigned long *sent,
                       unsigned long *given_up)
{
    *sent = hr ? hr->sent : 0;
    *given_up = hr ? hr->given_up : 0;
}
