/* tokenfetch: the fetch state machine of one environment (see tokenfetch.h for the
 * diagram). Invariant: an attempt is attached to its environment (f->env) until it
 * finishes; callbacks that arrive after that only count down and free the attempt. */
#include "tokenfetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "log.h"
#include "tokenblob.h"
#include "tokencred.h"
#include "tokenenv.h"
#include "tokenform.h"
#include "tokenresp.h"

struct tfetch {
    struct tenv *env;      /* borrowed; NULL once detached */
    int pending;           /* share operations in flight */
    bool http_pending;     /* a transport request in flight */
    bool locked;           /* we hold the share lock */
    bool direct;           /* the store failed or stalled: fetch without it */
    char owner[TOKENBLOB_SERIAL_LEN + 1];
    int64_t poll_until_ms; /* give up waiting for the lock holder then (monotonic) */
    int64_t sent_at;       /* unix seconds the request left: lifetimes count from here */
    struct event *poll;    /* owned until detached */
};

static void share_get(struct tfetch *f);
static void http_start(struct tfetch *f);

/* ---- attempt lifecycle ---- */

static void maybe_free(struct tfetch *f)
{
    if (!f->env && f->pending == 0 && !f->http_pending)
        free(f);
}

static void detach(struct tfetch *f)
{
    struct tenv *e = f->env;
    struct token_mgr *m = e->mgr;

    if (f->http_pending) {
        m->opts.transport.cancel(m->opts.transport.ctx, f);
        f->http_pending = false;
    }
    if (f->poll)
        event_free(f->poll);
    f->poll = NULL;
    e->fetch = NULL;
    f->env = NULL;
    maybe_free(f);
}

/* A fire-and-forget share operation (put, unlock) came back. */
static void on_fire(void *arg, int result, const char *val, size_t len)
{
    struct tfetch *f = arg;

    f->pending--;
    maybe_free(f);
}

/* Releases the lock if held, then detaches. */
static void finish(struct tfetch *f)
{
    struct token_mgr *m = f->env->mgr;

    if (f->locked && m->has_share) {
        f->pending++;
        if (m->share.unlock(m->share.ctx, f->env->share_name, f->owner, on_fire, f) != 0)
            f->pending--;
    }
    f->locked = false;
    detach(f);
}

/* A share callback came back: 1 if the attempt is still attached. */
static int op_back(struct tfetch *f)
{
    f->pending--;
    if (f->env)
        return 1;
    maybe_free(f);
    return 0;
}

/* ---- outcomes ---- */

static void log_failure(struct tenv *e, enum tokenenv_reason r, const struct tokenresp *resp,
                        const char *detail, int64_t retry_ms)
{
    int first = e->logged != r;
    int retryable = tokenenv_reason_retryable(r);
    json_t *f = json_pack("{s:s, s:s, s:s, s:b, s:i, s:I, s:b}", "env", e->ce.name,
                          "client_id", e->ce.client_id, "reason", tokenenv_reason_name(r),
                          "retryable", retryable, "attempt", e->attempt, "retry_in_ms",
                          (json_int_t)retry_ms, "token_valid",
                          tokenenv_usable(e, tokenenv_now()));
    if (resp) {
        json_object_set_new(f, "http_status", json_integer(resp->http_status));
        json_object_set_new(f, "aadsts", json_integer(resp->aadsts));
        json_object_set_new(f, "error", json_string(resp->error));
        json_object_set_new(f, "trace_id", json_string(resp->trace_id));
        json_object_set_new(f, "correlation_id", json_string(resp->correlation_id));
        /* Entra never echoes the secret; refuse to log a description that would. */
        if (!tokencred_leaks(e->cred, resp->description, strlen(resp->description)))
            json_object_set_new(f, "description", json_string(resp->description));
    }
    if (detail)
        json_object_set_new(f, "detail", json_string(detail));
    if (tokenenv_hint(e, r))
        json_object_set_new(f, "hint", json_string(tokenenv_hint(e, r)));
    json_object_set_new(f, "credential", json_string(tokenenv_credential_name(e)));
    e->logged = r;
    log_json(!first ? LOG_LVL_DEBUG : retryable ? LOG_LVL_WARN : LOG_LVL_ERROR,
             "token fetch failed", f);
}

static void record_failure(struct tenv *e, enum tokenenv_reason r,
                           const struct tokenresp *resp, const char *detail)
{
    const struct tokentime_policy *p = &e->mgr->opts.policy;
    int64_t delay = tokentime_backoff_ms(p, e->attempt, tokenenv_rnd());

    e->failures++;
    e->by_reason[r]++;
    e->last_fail = e->err_reason = r;
    e->last_aadsts = resp ? resp->aadsts : 0;
    e->last_http = resp ? resp->http_status : 0;
    snprintf(e->last_error, sizeof(e->last_error), "%s", resp ? resp->error : "");
    snprintf(e->last_detail, sizeof(e->last_detail), "%s", detail ? detail : "");
    e->last_hint = tokenenv_hint(e, r);
    e->last_error_at = tokenenv_now();
    log_failure(e, r, resp, detail, delay);
    e->attempt++;
    tokenfetch_arm(e, delay);
    tokenenv_fail_waiters(e, tokenenv_mono_ms() + delay, tokenenv_reason_retryable(r));
}

static void fail(struct tfetch *f, enum tokenenv_reason r, const struct tokenresp *resp,
                 const char *detail)
{
    struct tenv *e = f->env;

    finish(f);
    record_failure(e, r, resp, detail);
}

/* Installs a token (taken) after the attempt has been finished. */
static void succeed(struct tenv *e, char *token, size_t len, int64_t obtained,
                    int64_t expires, const char *serial, int from_http)
{
    const struct tokentime_policy *p = &e->mgr->opts.policy;
    int64_t now = tokenenv_now();
    int64_t at = tokentime_refresh_at(p, obtained, expires, now, tokenenv_rnd());
    int64_t delay = (at - now) * 1000;

    if (from_http && delay < p->backoff_base_ms)
        delay = p->backoff_base_ms; /* never hammer Entra, whatever the lifetime */
    if (e->logged != TR_OK)
        log_json(LOG_LVL_INFO, "token fetch recovered",
                 json_pack("{s:s, s:s, s:s}", "env", e->ce.name, "client_id", e->ce.client_id,
                           "after", tokenenv_reason_name(e->logged)));
    e->attempt = 0;
    e->last_fail = e->logged = TR_OK;
    /* Arm first: waiters served by install may invalidate, which re-arms for now. */
    tokenfetch_arm(e, delay);
    tokenenv_install(e, token, len, obtained, expires, serial);
}

/* ---- shared cache ---- */

static void go_direct(struct tfetch *f)
{
    f->direct = true;
    http_start(f);
}

/* Adopts a shared blob if it opens, is usable, newer than ours and not invalidated, and
 * (after a 401) was obtained after that 401: one obtained before it may have been revoked
 * with ours, and the call's single retry must not be spent on it. */
static int adopt(struct tfetch *f, const char *val, size_t len)
{
    struct tenv *e = f->env;
    struct tokenblob b;
    int64_t now = tokenenv_now();

    if (tokenblob_open(e->mgr->key, e->seal_ctx, val, len, &b) != 0) {
        log_json(LOG_LVL_DEBUG, "shared token does not open; ignored",
                 json_pack("{s:s}", "env", e->ce.name));
        return 0;
    }
    if (strcmp(b.serial, e->bad_serial) == 0 || strcmp(b.serial, e->serial) == 0 ||
        !tokentime_usable(&e->mgr->opts.policy, b.expires_at, now) ||
        (e->invalidated_at && b.obtained_at <= e->invalidated_at) ||
        (e->token && b.expires_at <= e->expires_at)) {
        tokenblob_cleanup(&b);
        return 0;
    }
    e->share_hits++;
    char *tok = b.token;
    b.token = NULL;
    finish(f);
    succeed(e, tok, b.token_len, b.obtained_at, b.expires_at, b.serial, 0);
    tokenblob_cleanup(&b);
    return 1;
}

static void publish(struct tfetch *f, const char *token, size_t len, int64_t obtained,
                    int64_t expires, const char *serial)
{
    struct tenv *e = f->env;
    struct token_mgr *m = e->mgr;
    struct tokenblob b = { .token = (char *)token, .token_len = len, .obtained_at = obtained,
                           .expires_at = expires };
    size_t blen = 0;
    int64_t ttl_ms = (expires - tokenenv_now()) * 1000;

    if (ttl_ms <= 0 || ttl_ms > UINT32_MAX)
        return;
    memcpy(b.serial, serial, sizeof(b.serial));
    char *blob = tokenblob_seal(m->key, e->seal_ctx, &b, &blen);
    if (!blob)
        return;
    f->pending++;
    if (m->share.put(m->share.ctx, e->share_name, blob, blen, (unsigned)ttl_ms, on_fire, f) == 0)
        e->publishes++;
    else
        f->pending--;
    free(blob);
}

static void on_get(void *arg, int result, const char *val, size_t len);

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    share_get(arg);
}

/* The lock is held by another instance: re-read soon, up to twice its lease. */
static void wait_poll(struct tfetch *f)
{
    struct token_mgr *m = f->env->mgr;
    int64_t now = tokenenv_mono_ms();
    int64_t ms = (int64_t)(m->opts.share_poll_ms * (0.5 + tokenenv_rnd()));
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    if (!f->poll_until_ms)
        f->poll_until_ms = now + 2 * (int64_t)m->opts.lock_lease_ms;
    if (now >= f->poll_until_ms) {
        log_json(LOG_LVL_WARN, "shared token lock held too long; fetching directly",
                 json_pack("{s:s}", "env", f->env->ce.name));
        go_direct(f);
        return;
    }
    if (!f->poll)
        f->poll = evtimer_new(m->base, on_poll, f);
    if (!f->poll || evtimer_add(f->poll, &tv) != 0)
        go_direct(f);
}

static void on_lock(void *arg, int result, const char *val, size_t len)
{
    struct tfetch *f = arg;

    if (!op_back(f))
        return;
    if (result == TOKEN_SHARE_OK) {
        /* Another instance may have published and unlocked between our read and our
         * lock: read again under the lock before asking Entra. */
        f->locked = true;
        share_get(f);
    } else if (result == TOKEN_SHARE_MISS) {
        wait_poll(f);
    } else {
        go_direct(f);
    }
}

static void share_lock(struct tfetch *f)
{
    struct token_mgr *m = f->env->mgr;

    if (!f->owner[0] && tokenblob_serial(f->owner) != 0) {
        go_direct(f);
        return;
    }
    f->pending++;
    if (m->share.lock(m->share.ctx, f->env->share_name, f->owner, m->opts.lock_lease_ms,
                      on_lock, f) != 0) {
        f->pending--;
        go_direct(f);
    }
}

static void on_get(void *arg, int result, const char *val, size_t len)
{
    struct tfetch *f = arg;

    if (!op_back(f))
        return;
    if (result == TOKEN_SHARE_OK && val && adopt(f, val, len))
        return;
    if (f->locked)
        http_start(f); /* the read under our lock: nothing newer, fetch */
    else if (result == TOKEN_SHARE_ERROR)
        go_direct(f);
    else
        share_lock(f);
}

static void share_get(struct tfetch *f)
{
    struct token_mgr *m = f->env->mgr;

    f->pending++;
    if (m->share.get(m->share.ctx, f->env->share_name, on_get, f) != 0) {
        f->pending--;
        go_direct(f);
    }
}

/* ---- the token request ---- */

static void on_http(void *arg, int status, const char *body, size_t len)
{
    struct tfetch *f = arg;
    struct tokenresp r;
    char serial[TOKENBLOB_SERIAL_LEN + 1];

    f->http_pending = false;
    if (!f->env) {
        maybe_free(f);
        return;
    }
    struct tenv *e = f->env;
    int64_t now = f->sent_at; /* the token's life began no earlier than this */
    if (status <= 0) {
        fail(f, TR_UNREACHABLE, NULL, "no response from the token endpoint");
        return;
    }
    enum tokenresp_class cls = tokenresp_parse(&r, body, len, status, now);
    if (e->ce.credential == CONF_CRED_MANAGED_IDENTITY)
        cls = tokenresp_mi_class(&r);
    if (cls != TOKENRESP_OK)
        fail(f, (enum tokenenv_reason)(TR_RESP + cls - 1), &r, NULL);
    else if (!tokentime_usable(&e->mgr->opts.policy, r.expires_at, tokenenv_now()))
        fail(f, TR_SHORT_LIFETIME, &r, "the token expires within the safety margin");
    else if (tokenblob_serial(serial) != 0)
        fail(f, TR_INTERNAL, NULL, "no random serial");
    else {
        size_t tlen = r.access_token_len;
        int64_t expires = r.expires_at;
        char *tok = tokenresp_take_token(&r);
        if (e->mgr->has_share)
            publish(f, tok, tlen, now, expires, serial);
        e->refreshes++;
        finish(f);
        succeed(e, tok, tlen, now, expires, serial, 1);
    }
    tokenresp_cleanup(&r);
}

static enum tokenenv_reason reason_of(enum tokencred_result rc)
{
    switch (rc) {
    case TOKENCRED_UNREADABLE: return TR_ASSERTION_UNREADABLE;
    case TOKENCRED_EXPIRED: return TR_ASSERTION_EXPIRED;
    case TOKENCRED_OK:
    case TOKENCRED_INTERNAL: break;
    }
    return TR_INTERNAL;
}

/* Sends the request through the transport; returns its result (0 or -1). */
static int send_request(struct tfetch *f, const struct tokencred_req *rq)
{
    const struct token_transport *t = &f->env->mgr->opts.transport;
    unsigned ms = f->env->mgr->opts.http_timeout_ms;

    if (!rq->get)
        return t->post_form(t->ctx, rq->url, rq->body, rq->len, ms, on_http, f);
    return t->get(t->ctx, rq->url, (const char *const *)rq->headers, rq->n_headers, ms,
                  on_http, f);
}

static void http_start(struct tfetch *f)
{
    struct tenv *e = f->env;
    struct tokencred_req rq;
    char err[256] = "";

    if (!e->cred && !(e->cred = tokencred_load(&e->ce, err, sizeof(err)))) {
        fail(f, TR_CREDENTIAL, NULL, err);
        return;
    }
    f->sent_at = tokenenv_now();
    enum tokencred_result rc = tokencred_request(e->cred, &e->ce, f->sent_at, &rq, err,
                                                 sizeof(err));
    if (rc != TOKENCRED_OK) {
        fail(f, reason_of(rc), NULL, err);
        return;
    }
    if (rq.get && !e->mgr->opts.transport.get) {
        tokencred_req_cleanup(&rq);
        fail(f, TR_INTERNAL, NULL, "the transport cannot GET (managed identity)");
        return;
    }
    e->fetches++;
    f->http_pending = true;
    int sent = send_request(f, &rq);
    tokencred_req_cleanup(&rq);
    if (sent != 0) {
        f->http_pending = false;
        fail(f, TR_UNREACHABLE, NULL, "the transport refused the request");
    }
}

/* ---- timer ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct tenv *e = arg;
    struct tfetch *f;

    e->timer_at_ms = 0;
    if (e->fetch)
        return;
    if (!(f = calloc(1, sizeof(*f)))) {
        record_failure(e, TR_INTERNAL, NULL, "out of memory");
        return;
    }
    f->env = e;
    e->fetch = f;
    if (e->mgr->has_share)
        share_get(f);
    else
        http_start(f);
}

int tokenfetch_init(struct tenv *e)
{
    e->timer = evtimer_new(e->mgr->base, on_timer, e);
    return e->timer ? 0 : -1;
}

void tokenfetch_cleanup(struct tenv *e)
{
    if (e->fetch)
        finish(e->fetch);
    if (e->timer)
        event_free(e->timer);
    e->timer = NULL;
    e->timer_at_ms = 0;
}

void tokenfetch_arm(struct tenv *e, int64_t delay_ms)
{
    if (e->fetch || !e->timer)
        return;
    if (delay_ms < 0)
        delay_ms = 0;
    struct timeval tv = { (time_t)(delay_ms / 1000), (suseconds_t)((delay_ms % 1000) * 1000) };
    if (evtimer_add(e->timer, &tv) == 0)
        e->timer_at_ms = tokenenv_mono_ms() + delay_ms;
}

void tokenfetch_kick(struct tenv *e)
{
    if (e->fetch || (e->timer_at_ms && e->attempt > 0))
        return;
    tokenfetch_arm(e, 0);
}
