/* upcall: one call to D365 with token, 429 gate and the retry rules of upcall.h.
 *
 *   start --timer--> attempt --gate closed, fits budget--> timer --> attempt
 *                      |  `--gate closed otherwise--> finish(THROTTLED)
 *                      v
 *                   budget_acquire --pending--> on_slot --none in time--> finish(BUDGET)
 *                      v granted (the slot is held until this attempt's answer ends)
 *                   token_get --pending--> on_token --no token--> finish(NO_TOKEN)
 *                      v ok
 *                    send --> upstream ... on_done --retry planned--> timer --> attempt
 *                                              `--> finish(OK / FAILED)
 *
 * finish() runs only from the event loop (timer, token or upstream callbacks), never
 * from upcall_start, and frees the call after on_done returns. */
#include "upcall.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "blockcache.h"
#include "budget.h"
#include "conf.h"
#include "d365log.h"
#include "deadline.h"
#include "log.h"
#include "uphead.h"
#include "retryafter.h"
#include "token.h"

#define DEFAULT_WAIT_MS 10000
#define MAX_5XX_RETRIES 2
#define MAX_CONN_RETRIES 2
#define MAX_STALL_RETRIES 2   /* stalled or unanswered attempts of an idempotent call */
#define BACKOFF_BASE_MS 200
#define JITTER_MS 250
#define STATS_SPARE_ENVS 16 /* environments a reload may add and still be counted */
#define CALL_BLOCK 2048     /* a call that fits (the usual) comes from ctx->calls */

struct upcall_ctx {
    struct event_base *base;     /* borrowed */
    struct upstream *up;         /* borrowed */
    struct token_mgr *tm;        /* borrowed */
    const struct conf *conf;     /* borrowed: the current snapshot */
    struct budget *budget;       /* borrowed: D365 budget and 429 gates */
    uint64_t rng;
    struct d365stats *stats;     /* owned */
    const struct tracectx *cur_trace; /* borrowed: the request being dispatched, or NULL */
    const char *cur_request_id;  /* borrowed, likewise */
    char *auth;                  /* owned, wiped after each use: the attempt's
                                    "Authorization: Bearer ..." line, reused by every call */
    size_t auth_cap;
    struct blockcache calls;     /* owned: CALL_BLOCK blocks of ended calls, for new ones */
};

enum action { ACT_NONE, ACT_ATTEMPT, ACT_KICK, ACT_FINISH, ACT_RESUME_FAILED };

/* A call is one allocation (a CALL_BLOCK from the context's cache when it fits): the
 * struct, its timer's room, then the copies of the request (copy_request): the header line
 * array, the strings, the buffered body. */
struct upcall {
    struct upcall_ctx *ctx;      /* borrowed */
    char *env;                   /* in the call's allocation, like the copies below */
    char *method;
    char *url;
    const char **lines;          /* n_headers caller lines, then Authorization and
                                    traceparent of the current attempt (send_attempt) */
    size_t n_headers;
    enum upcall_retry retry;
    char *body;                  /* the buffered request body, or NULL */
    size_t body_len, body_off;
    bool has_body, stream;
    int64_t stream_len;
    struct evbuffer *replay;     /* owned: a streamed body's bytes kept for a 401 replay;
                                    NULL once over replay_max (or with none) */
    size_t replay_max, replay_off; /* replay_off: bytes of it sent in this attempt */
    bool stream_eof;             /* the caller sent upcall_send_eof */
    bool eof_sent;               /* ... and this attempt passed it on */
    size_t max_resp;
    struct upstream_timeouts timeouts;
    struct upcall_cbs cbs;
    int64_t wait_until_us;
    int64_t deadline_us;         /* the call's total deadline (stall retries fit in it) */
    unsigned total_ms;           /* the call's total time limit */
    int64_t first_len;           /* streamed: Content-Length of the delivered head, or -1 */
    uint64_t delivered;          /* streamed: body bytes passed to on_body */
    uint64_t skip;               /* a resumed download: bytes of the new answer to drop */
    int64_t retry_delay_us;      /* a swallowed answer's retry waits this long */
    char *job;                   /* in the call's allocation, or NULL */
    struct budget_wait *bw;      /* pending budget wait, or NULL */
    struct budget_lease *lease;  /* the slot this attempt holds, or NULL */
    struct token_wait *tw;       /* pending token wait, or NULL */
    struct upstream_xfer *x;     /* current transfer, or NULL */
    struct event *timer;         /* in the call's allocation (event_assign) */
    enum action action;
    enum upcall_status fin_st;   /* ACT_FINISH: what to report */
    unsigned fin_retry_after;
    uint64_t generation;
    unsigned attempts, retries_5xx, retries_conn, retries_stall;
    bool retried_401, swallow, head_delivered, resuming, request_sent;
    enum d365stats_op op;
    bool cached;                 /* the call is a CALL_BLOCK block from ctx->calls */
    struct d365stats_env *st;    /* borrowed from ctx->stats; NULL when the table is full */
    int64_t attempt_us;          /* when the current attempt was sent */
    struct tracectx trace;
    char request_id[TRACECTX_REQUEST_ID_MAX + 1]; /* "" when not made for a request */
    char traceparent[72];        /* "traceparent: 00-..." of the current attempt */
};

/* ---- context and gates --------------------------------------------------------------- */

struct upcall_ctx *upcall_ctx_new(struct event_base *base, struct upstream *up,
                                  struct token_mgr *tm, struct budget *budget,
                                  const struct conf *conf)
{
    struct upcall_ctx *ctx = calloc(1, sizeof *ctx);

    if (!ctx)
        return NULL;
    ctx->base = base;
    ctx->up = up;
    ctx->tm = tm;
    ctx->budget = budget;
    ctx->conf = conf;
    ctx->rng = (uint64_t)deadline_now_us() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15u;
    ctx->rng ^= (uint64_t)(uintptr_t)ctx; /* workers started in the same microsecond */
    if (!(ctx->stats = d365stats_new(conf->n_envs + STATS_SPARE_ENVS))) {
        free(ctx);
        return NULL;
    }
    for (size_t i = 0; i < conf->n_envs; i++)
        d365stats_env(ctx->stats, conf->envs[i].name);
    return ctx;
}

void upcall_ctx_set_conf(struct upcall_ctx *ctx, const struct conf *conf)
{
    ctx->conf = conf;
}

void upcall_ctx_free(struct upcall_ctx *ctx)
{
    if (!ctx)
        return;
    d365stats_free(ctx->stats);
    if (ctx->auth)
        explicit_bzero(ctx->auth, ctx->auth_cap);
    free(ctx->auth);
    blockcache_cleanup(&ctx->calls);
    free(ctx);
}

const struct d365stats *upcall_ctx_stats(const struct upcall_ctx *ctx)
{
    return ctx->stats;
}

void upcall_ctx_set_request(struct upcall_ctx *ctx, const struct tracectx *trace,
                            const char *request_id)
{
    ctx->cur_trace = trace;
    ctx->cur_request_id = request_id;
}

struct d365stats_env *upcall_ctx_env_stats(struct upcall_ctx *ctx, const char *env)
{
    return d365stats_env(ctx->stats, env);
}

static uint64_t next_rand(struct upcall_ctx *ctx)
{
    ctx->rng ^= ctx->rng << 13;
    ctx->rng ^= ctx->rng >> 7;
    ctx->rng ^= ctx->rng << 17;
    return ctx->rng;
}

static unsigned jitter_ms(struct upcall_ctx *ctx, unsigned max)
{
    ctx->rng ^= ctx->rng << 13;
    ctx->rng ^= ctx->rng >> 7;
    ctx->rng ^= ctx->rng << 17;
    return max ? (unsigned)(ctx->rng % (max + 1)) : 0;
}

static void gate_close(struct upcall_ctx *ctx, const char *env, unsigned secs)
{
    budget_gate_close(ctx->budget, env, secs);
    struct d365stats_env *st = d365stats_env(ctx->stats, env);
    if (st)
        statgauge_set(&st->gate_until, (int64_t)time(NULL) + secs);
}

static int64_t gate_left_us(const struct upcall_ctx *ctx, const char *env)
{
    return budget_gate_left_us(ctx->budget, env);
}

unsigned upcall_gate_remaining(const struct upcall_ctx *ctx, const char *env)
{
    int64_t left = gate_left_us(ctx, env);

    return (unsigned)((left + 999999) / 1000000);
}

/* ---- finishing ------------------------------------------------------------------------ */

static void release_slot(struct upcall *c)
{
    budget_release(c->lease);
    c->lease = NULL;
}

static void call_free(struct upcall *c)
{
    budget_cancel(c->bw);
    release_slot(c);
    if (c->tw)
        token_cancel(c->tw);
    if (c->x)
        upstream_abort(c->x);
    event_del(c->timer);
    if (c->replay)
        evbuffer_free(c->replay);
    if (c->cached)
        blockcache_put(&c->ctx->calls, c, CALL_BLOCK);
    else
        free(c);
}

static void finish(struct upcall *c, struct upcall_done *d)
{
    d->attempts = c->attempts;
    d->head_delivered = c->head_delivered;
    d->request_sent = c->request_sent;
    d->retried_401 = c->retried_401;
    if (!d->error)
        d->error = "";
    c->cbs.on_done(c->cbs.arg, d);
    call_free(c);
}

static void finish_simple(struct upcall *c, enum upcall_status st, unsigned retry_after)
{
    struct upcall_done d = { .st = st, .retry_after_s = retry_after };

    if (st == UPCALL_NO_TOKEN)
        d.token_reason = token_reason(c->ctx->tm, c->env);
    if (st == UPCALL_NO_TOKEN && !d.token_reason)
        d.token_reason = "unknown_environment";
    finish(c, &d);
}

static void schedule(struct upcall *c, enum action a, int64_t delay_us)
{
    struct timeval tv = { .tv_sec = (time_t)(delay_us / 1000000),
                          .tv_usec = (suseconds_t)(delay_us % 1000000) };

    c->action = a;
    evtimer_add(c->timer, &tv);
}

/* ---- sending --------------------------------------------------------------------------- */

/* A buffered body can always be sent again; a streamed one while all its bytes so far are
 * kept in c->replay (limits.replay_body_bytes). */
static bool replayable(const struct upcall *c)
{
    return !c->stream || c->replay;
}

/* Streamed mode, a new attempt: sends the kept bytes first; the caller's stream resumes
 * (upcall_send) only once they are all out. Returns true when they are. */
static bool push_replay(struct upcall *c)
{
    size_t kept = c->replay ? evbuffer_get_length(c->replay) : 0;

    while (c->x && c->replay_off < kept) {
        struct evbuffer_ptr pos;
        struct evbuffer_iovec v;
        evbuffer_ptr_set(c->replay, &pos, c->replay_off, EVBUFFER_PTR_SET);
        if (evbuffer_peek(c->replay, -1, &pos, &v, 1) < 1)
            break;
        size_t took = upstream_send(c->x, v.iov_base, v.iov_len);
        if (took == 0)
            return false;
        c->replay_off += took;
    }
    if (c->replay_off < kept)
        return false;
    if (c->x && c->stream_eof && !c->eof_sent) {
        c->eof_sent = true;
        upstream_send_eof(c->x);
    }
    return true;
}

/* Keeps `len` bytes just sent for a replay, or gives the replay up past replay_max. */
static void keep_for_replay(struct upcall *c, const void *data, size_t len)
{
    if (!c->replay)
        return;
    if (evbuffer_get_length(c->replay) + len > c->replay_max ||
        evbuffer_add(c->replay, data, len) != 0) {
        evbuffer_free(c->replay);
        c->replay = NULL;
    }
    c->replay_off = c->replay ? evbuffer_get_length(c->replay) : 0;
}

static bool fits_budget(const struct upcall *c, int64_t delay_us)
{
    return deadline_now_us() + delay_us <= c->wait_until_us;
}

/* Decides whether the answer `status` is retried; closes the gate on 429. Sets *delay_us. */
static bool plan_retry(struct upcall *c, int status, const struct uphead *head,
                       int64_t *delay_us)
{
    struct upcall_ctx *ctx = c->ctx;

    *delay_us = 0;
    if (status == 401) {
        if (c->st)
            statcell_inc(&c->st->refreshes_401);
        token_invalidate(ctx->tm, c->env, c->generation);
        if (c->retried_401 || !replayable(c))
            return false;
        c->retried_401 = true;
        return true;
    }
    if (status == 429) {
        if (c->st)
            statcell_inc(&c->st->throttled);
        const char *ra = head ? uphead_find(head, "Retry-After") : NULL;
        unsigned secs = retryafter_seconds(ra, time(NULL), NULL);
        gate_close(ctx, c->env, secs);
        *delay_us = (int64_t)secs * 1000000 + (int64_t)jitter_ms(ctx, JITTER_MS) * 1000;
        return c->retry == UPCALL_RETRY_SAFE && replayable(c) && fits_budget(c, *delay_us);
    }
    if (status >= 500 && status <= 599 && c->retry == UPCALL_RETRY_SAFE && replayable(c) &&
        c->retries_5xx < MAX_5XX_RETRIES) {
        unsigned base = BACKOFF_BASE_MS << c->retries_5xx;
        *delay_us = (int64_t)(base / 2 + jitter_ms(ctx, base)) * 1000;
        if (!fits_budget(c, *delay_us))
            return false;
        c->retries_5xx++;
        return true;
    }
    return false;
}

static bool stalled(enum upstream_result r)
{
    return r == UPSTREAM_STALLED || r == UPSTREAM_FIRST_BYTE;
}

/* A stalled or unanswered attempt of an idempotent call: again, if it fits the deadline. */
static bool plan_stall_retry(struct upcall *c, int64_t *delay_us)
{
    unsigned base = BACKOFF_BASE_MS << c->retries_stall;

    if (c->retry != UPCALL_RETRY_SAFE || !replayable(c) || c->retries_stall >= MAX_STALL_RETRIES)
        return false;
    *delay_us = (int64_t)(base / 2 + jitter_ms(c->ctx, base)) * 1000;
    if (deadline_now_us() + *delay_us + 1000000 > c->deadline_us)
        return false; /* less than a second would be left for the new attempt */
    c->retries_stall++;
    log_msg(LOG_LVL_WARN, "D365 call %s %s on %s stalled: attempt %u of %u", c->method,
            c->head_delivered ? "(resuming the body)" : "", c->env, c->retries_stall + 1,
            MAX_STALL_RETRIES + 1);
    return true;
}

static bool plan_conn_retry(struct upcall *c, enum upstream_result r, int64_t *delay_us)
{
    unsigned base = BACKOFF_BASE_MS << c->retries_conn;

    if (stalled(r))
        return plan_stall_retry(c, delay_us);

    if (c->retry != UPCALL_RETRY_SAFE || !replayable(c) || c->retries_conn >= MAX_CONN_RETRIES ||
        (r != UPSTREAM_CONNECT_FAILED && r != UPSTREAM_TRUNCATED && r != UPSTREAM_OTHER))
        return false;
    *delay_us = (int64_t)(base / 2 + jitter_ms(c->ctx, base)) * 1000;
    if (!fits_budget(c, *delay_us))
        return false;
    c->retries_conn++;
    return true;
}

/* One attempt got its answer (or none): counted and logged. */
static void on_answer(struct upcall *c, int status, const struct uphead *head,
                      enum upstream_result result, const char *error)
{
    int64_t us = deadline_now_us() - c->attempt_us;

    if (c->st) {
        statcell_inc(&c->st->requests[c->op][d365stats_code_index(status)]);
        stathist_observe(&c->st->duration[c->op], us);
        if (status == 0 || status >= 400) { /* for the operator page's "last D365 error" */
            statgauge_set(&c->st->last_error_status, status);
            statgauge_set(&c->st->last_error_at, (int64_t)time(NULL));
        }
    }
    struct d365log_call call = {
        .environment = c->env, .operation = d365stats_op_name(c->op), .method = c->method,
        .status = status, .duration_us = us, .attempt = c->attempts,
        .trace_id = c->trace.trace_id, .span_id = c->traceparent + 49,
        .request_id = c->request_id, .result = result, .error = error,
    };
    d365log_call(&call, head);
}

static void schedule_retry(struct upcall *c, int64_t delay)
{
    if (c->st)
        statcell_inc(&c->st->retries);
    schedule(c, ACT_ATTEMPT, delay);
}

static void fetch_done(struct upcall *c, const struct upstream_done *ud)
{
    struct upcall_done d = { .st = UPCALL_OK };
    int64_t delay;

    c->x = NULL;
    on_answer(c, ud->result == UPSTREAM_OK ? ud->status : 0, ud->head, ud->result, ud->error);
    c->request_sent |= ud->request_sent;
    release_slot(c);
    if (ud->result == UPSTREAM_OK && plan_retry(c, ud->status, ud->head, &delay)) {
        schedule_retry(c, delay);
        return;
    }
    if (ud->result != UPSTREAM_OK && plan_conn_retry(c, ud->result, &delay)) {
        schedule_retry(c, delay);
        return;
    }
    if (ud->result != UPSTREAM_OK)
        d.st = UPCALL_FAILED;
    d.status = ud->result == UPSTREAM_OK ? ud->status : 0;
    d.head = ud->head;
    d.body = ud->body;
    d.body_len = ud->body_len;
    d.transport = ud->result;
    d.error = ud->error;
    finish(c, &d);
}

static void push_body(struct upcall *c)
{
    while (c->x && c->body_off < c->body_len) {
        size_t took = upstream_send(c->x, c->body + c->body_off, c->body_len - c->body_off);
        if (took == 0)
            return;
        c->body_off += took;
    }
    if (c->x && c->body_off == c->body_len)
        upstream_send_eof(c->x);
}

static int64_t content_length(const struct uphead *head)
{
    const char *v = uphead_find(head, "Content-Length");
    char *end = NULL;
    long long n = v ? strtoll(v, &end, 10) : -1;

    return v && end != v && n >= 0 ? (int64_t)n : -1;
}

/* A resumed download's new answer must be the same 200 of the same length; its first
 * `delivered` bytes (already passed on) are dropped. Anything else ends the call. */
static void resume_head(struct upcall *c, const struct uphead *head)
{
    c->resuming = false;
    if (uphead_status(head) == 200 && content_length(head) == c->first_len) {
        c->skip = c->delivered;
        return;
    }
    upstream_abort(c->x);
    c->x = NULL;
    release_slot(c); /* this attempt's answer ends here */
    schedule(c, ACT_RESUME_FAILED, 0);
}

static void on_xfer_head(void *arg, const struct uphead *head)
{
    struct upcall *c = arg;
    int64_t delay;

    if (c->resuming) {
        resume_head(c, head);
        return;
    }
    if (plan_retry(c, uphead_status(head), head, &delay)) {
        /* the retry starts from on_xfer_done, after this answer's body was dropped */
        c->swallow = true;
        c->retry_delay_us = delay;
        return;
    }
    c->head_delivered = true;
    c->first_len = content_length(head);
    if (c->cbs.on_head)
        c->cbs.on_head(c->cbs.arg, head); /* last: it may cancel c */
}

static enum upstream_flow on_xfer_body(void *arg, const char *data, size_t len)
{
    struct upcall *c = arg;

    if (c->swallow || !c->cbs.on_body)
        return UPSTREAM_CONTINUE;
    if (c->skip > 0) {
        size_t drop = c->skip < len ? (size_t)c->skip : len;
        c->skip -= drop;
        data += drop;
        len -= drop;
        if (len == 0)
            return UPSTREAM_CONTINUE;
    }
    c->delivered += len;
    return c->cbs.on_body(c->cbs.arg, data, len);
}

static void on_xfer_space(void *arg)
{
    struct upcall *c = arg;

    if (!c->stream) {
        push_body(c);
        return;
    }
    if (!push_replay(c) || c->stream_eof)
        return;
    if (c->cbs.on_send_space)
        c->cbs.on_send_space(c->cbs.arg);
}

/* A streamed GET whose body stalled after its head went to the caller: asked again, the
 * bytes already passed on are skipped (no Range needed; the length must match). */
static bool resumable(const struct upcall *c)
{
    return !c->has_body && !c->stream && strcmp(c->method, "GET") == 0 && c->first_len >= 0;
}

static void xfer_done(struct upcall *c, const struct upstream_done *ud)
{
    struct upcall_done d = { .st = UPCALL_OK };
    int64_t delay;

    c->x = NULL;
    on_answer(c, ud->status > 0 ? ud->status : 0, ud->head, ud->result, ud->error);
    c->request_sent |= ud->request_sent;
    release_slot(c);
    if (c->swallow) {
        c->swallow = false;
        schedule_retry(c, c->retry_delay_us);
        return;
    }
    if (ud->result != UPSTREAM_OK && !c->head_delivered &&
        plan_conn_retry(c, ud->result, &delay)) {
        schedule_retry(c, delay);
        return;
    }
    if (stalled(ud->result) && c->head_delivered && resumable(c) &&
        plan_stall_retry(c, &delay)) {
        c->resuming = true;
        schedule(c, ACT_ATTEMPT, delay);
        return;
    }
    if (ud->result != UPSTREAM_OK)
        d.st = c->head_delivered ? UPCALL_OK : UPCALL_FAILED;
    d.status = ud->status;
    d.head = ud->head;
    d.transport = ud->result;
    d.error = ud->error;
    finish(c, &d);
}

/* The d365_call line and whatever the caller logs while it answers (its request line)
 * leave in one write. */
static void on_fetch_done(void *arg, const struct upstream_done *ud)
{
    log_hold();
    fetch_done(arg, ud);
    log_release();
}

static void on_xfer_done(void *arg, const struct upstream_done *ud)
{
    log_hold();
    xfer_done(arg, ud);
    log_release();
}

#define AUTH_PREFIX "Authorization: Bearer "

/* The Authorization line of this attempt in the context's buffer (grown when a token is
 * longer than any before): the upstream copies header lines, and wipe_auth clears it
 * right after, so a token is not kept once per call in flight. Returns the line or NULL. */
static const char *set_auth(struct upcall *c, const struct token_view *v)
{
    struct upcall_ctx *ctx = c->ctx;
    size_t n = sizeof AUTH_PREFIX + v->len;

    if (n > ctx->auth_cap) {
        char *p = malloc(n);
        if (!p)
            return NULL;
        if (ctx->auth)
            explicit_bzero(ctx->auth, ctx->auth_cap);
        free(ctx->auth);
        ctx->auth = p;
        ctx->auth_cap = n;
    }
    memcpy(ctx->auth, AUTH_PREFIX, sizeof AUTH_PREFIX - 1);
    memcpy(ctx->auth + sizeof AUTH_PREFIX - 1, v->token, v->len);
    ctx->auth[n - 1] = '\0';
    c->generation = v->generation;
    return ctx->auth;
}

static void wipe_auth(struct upcall_ctx *ctx)
{
    if (ctx->auth)
        explicit_bzero(ctx->auth, ctx->auth_cap);
}

/* A child span of the call's trace per attempt: "traceparent: 00-<trace>-<span>-<flags>". */
static const char *new_traceparent(struct upcall *c)
{
    char span[17];

    tracectx_hex(next_rand(c->ctx), 0, span, 16);
    memcpy(c->traceparent, "traceparent: ", 13);
    tracectx_format(&c->trace, span, c->traceparent + 13);
    return c->traceparent;
}

static void send_attempt(struct upcall *c, const struct token_view *v)
{
    const char **lines = c->lines;
    int64_t body_len, left_ms;

    if (!(lines[c->n_headers] = set_auth(c, v))) {
        finish_simple(c, UPCALL_FAILED, 0);
        return;
    }
    lines[c->n_headers + 1] = new_traceparent(c);
    c->attempts++;
    c->attempt_us = deadline_now_us();
    left_ms = (c->deadline_us - deadline_now_us()) / 1000;
    c->timeouts.total_ms = left_ms < 1 ? 1 : left_ms < c->total_ms ? (unsigned)left_ms
                                                                     : c->total_ms;
    if (c->max_resp > 0 && !c->stream) {
        c->x = upstream_fetch(c->ctx->up, c->method, c->url, lines, c->n_headers + 2,
                              c->has_body ? c->body : NULL, c->body_len, c->max_resp,
                              c->timeouts, on_fetch_done, c);
    } else {
        body_len = c->stream ? c->stream_len
                   : c->has_body ? (int64_t)c->body_len : UPSTREAM_BODY_NONE;
        struct upstream_req r = { .method = c->method, .url = c->url, .headers = lines,
                                  .n_headers = c->n_headers + 2, .body_len = body_len,
                                  .timeouts = c->timeouts,
                                  .bulk = strcmp(c->method, "GET") == 0 }; /* a download */
        struct upstream_cbs cbs = { on_xfer_head, on_xfer_body, on_xfer_space, on_xfer_done, c };
        c->body_off = 0;
        c->replay_off = 0;
        c->eof_sent = false;
        c->x = upstream_start(c->ctx->up, &r, &cbs);
        if (c->x && c->has_body)
            push_body(c);
        if (c->x && c->stream)
            schedule(c, ACT_KICK, 0);
    }
    wipe_auth(c->ctx); /* the upstream has its copy */
    lines[c->n_headers] = NULL;
    if (!c->x)
        finish_simple(c, UPCALL_FAILED, 0);
}

static void on_token(void *arg, enum token_status st, const struct token_view *view)
{
    struct upcall *c = arg;

    c->tw = NULL;
    if (st == TOKEN_OK)
        send_attempt(c, view);
    else
        finish_simple(c, st == TOKEN_NO_ENV ? UPCALL_NO_ENV : UPCALL_NO_TOKEN, 0);
}

/* The environment's gate is closed for `left_us`: wait and try again when the call may
 * and the wait fits, else end THROTTLED with the seconds left. */
static void wait_gate(struct upcall *c, int64_t left_us)
{
    struct upcall_ctx *ctx = c->ctx;
    int64_t delay = left_us + (int64_t)jitter_ms(ctx, JITTER_MS) * 1000;
    unsigned left_s = upcall_gate_remaining(ctx, c->env);

    if (c->retry == UPCALL_RETRY_SAFE && replayable(c) && fits_budget(c, delay))
        schedule(c, ACT_ATTEMPT, delay);
    else
        finish_simple(c, UPCALL_THROTTLED, left_s ? left_s : (unsigned)((left_us + 999999) / 1000000));
}

static unsigned wait_left_ms(const struct upcall *c)
{
    int64_t wait = (c->wait_until_us - deadline_now_us()) / 1000;

    return wait > 1 ? (unsigned)wait : 1;
}

static void get_token(struct upcall *c)
{
    struct token_view view;

    switch (token_get(c->ctx->tm, c->env, wait_left_ms(c), on_token, c, &view, &c->tw)) {
    case TOKEN_OK:
        c->tw = NULL;
        send_attempt(c, &view);
        break;
    case TOKEN_PENDING:
        break;
    case TOKEN_NO_ENV:
        c->tw = NULL;
        finish_simple(c, UPCALL_NO_ENV, 0);
        break;
    default:
        c->tw = NULL;
        finish_simple(c, UPCALL_NO_TOKEN, 0);
        break;
    }
}

static void on_slot(void *arg, enum budget_verdict v, struct budget_lease *lease,
                    unsigned retry_after_s)
{
    struct upcall *c = arg;
    int64_t left;

    c->bw = NULL;
    if (v == BUDGET_EXHAUSTED) {
        finish_simple(c, UPCALL_BUDGET, retry_after_s);
        return;
    }
    if (v == BUDGET_GATED) {
        wait_gate(c, (int64_t)retry_after_s * 1000000);
        return;
    }
    c->lease = lease;
    if ((left = gate_left_us(c->ctx, c->env)) > 0) { /* a 429 came while it waited */
        release_slot(c);
        wait_gate(c, left);
        return;
    }
    get_token(c);
}

static void attempt(struct upcall *c)
{
    struct upcall_ctx *ctx = c->ctx;
    int64_t left = gate_left_us(ctx, c->env);
    unsigned retry_after = 0;

    if (left > 0) {
        wait_gate(c, left);
        return;
    }
    switch (budget_acquire(ctx->budget, c->env, c->job, wait_left_ms(c), on_slot, c, &c->bw,
                           &retry_after)) {
    case BUDGET_PENDING:
        return;
    case BUDGET_FULL:
        finish_simple(c, UPCALL_BUDGET, retry_after);
        return;
    case BUDGET_FREE:
        break;
    }
    get_token(c);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct upcall *c = arg;
    enum action a = c->action;

    c->action = ACT_NONE;
    switch (a) {
    case ACT_ATTEMPT:
        attempt(c);
        break;
    case ACT_KICK:
        if (!push_replay(c) || c->stream_eof)
            break;
        if (c->x && c->cbs.on_send_space)
            c->cbs.on_send_space(c->cbs.arg); /* last: it may cancel c */
        break;
    case ACT_FINISH:
        finish_simple(c, c->fin_st, c->fin_retry_after);
        break;
    case ACT_RESUME_FAILED: {
        struct upcall_done d = { .st = UPCALL_OK, .status = 200,
                                 .transport = UPSTREAM_TRUNCATED,
                                 .error = "the download stalled and its retry answered "
                                          "differently (status or length)" };
        finish(c, &d);
        break;
    }
    case ACT_NONE:
        break;
    }
}

/* ---- public ------------------------------------------------------------------------------ */

#define ALIGN16(n) (((n) + 15) & ~(size_t)15)

/* Bytes of the call's allocation after the struct and its timer: the line array
 * (n_headers + Authorization + traceparent), the strings with their NULs, the body. */
static size_t copies_size(const struct upcall_req *req, size_t base_len)
{
    size_t n = (req->n_headers + 2) * sizeof(char *) + strlen(req->env) + 1 +
               strlen(req->method) + 1 + base_len + strlen(req->path_query) + 1 +
               (req->job ? strlen(req->job) + 1 : 0);

    for (size_t i = 0; i < req->n_headers; i++)
        n += strlen(req->headers[i]) + 1;
    if (req->body && !req->stream)
        n += req->body_len;
    return n;
}

static char *put(char **at, const char *s, size_t len)
{
    char *out = *at;

    memcpy(out, s, len);
    out[len] = '\0';
    *at += len + 1;
    return out;
}

/* Copies the request into the room after the struct (sized by copies_size). */
static void copy_request(struct upcall *c, char *room, const struct upcall_req *req,
                         const char *base_url, size_t base_len)
{
    char *at = room + (req->n_headers + 2) * sizeof(char *);

    c->lines = (const char **)(void *)room;
    c->env = put(&at, req->env, strlen(req->env));
    c->job = req->job ? put(&at, req->job, strlen(req->job)) : NULL;
    c->method = put(&at, req->method, strlen(req->method));
    c->url = at;
    memcpy(at, base_url, base_len);
    at += base_len;
    put(&at, req->path_query, strlen(req->path_query)); /* after the base URL */
    for (size_t i = 0; i < req->n_headers; i++)
        c->lines[i] = put(&at, req->headers[i], strlen(req->headers[i]));
    c->n_headers = req->n_headers;
    c->lines[c->n_headers] = c->lines[c->n_headers + 1] = NULL;
    if (req->body && !req->stream) {
        c->body = at;
        memcpy(c->body, req->body, req->body_len);
        c->body_len = req->body_len;
        c->has_body = true;
    }
}

struct upcall *upcall_start(struct upcall_ctx *ctx, const struct upcall_req *req,
                            const struct upcall_cbs *cbs)
{
    const struct conf_env *env;
    struct upcall *c;

    if (!req->env || !req->method || !req->path_query || req->path_query[0] != '/' ||
        !cbs->on_done)
        return NULL;
    env = conf_env_find(ctx->conf, req->env);
    const char *base_url = env ? env->base_url : "";
    size_t base_len = strlen(base_url), ev_size = ALIGN16(event_get_struct_event_size());
    size_t size = ALIGN16(sizeof *c) + ev_size + copies_size(req, base_len);
    c = size <= CALL_BLOCK ? blockcache_get(&ctx->calls, CALL_BLOCK) : malloc(size);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    c->cached = size <= CALL_BLOCK;
    c->timer = (struct event *)(void *)((char *)c + ALIGN16(sizeof *c));
    evtimer_assign(c->timer, ctx->base, on_timer, c);
    copy_request(c, (char *)c->timer + ev_size, req, base_url, base_len);
    c->ctx = ctx;
    c->cbs = *cbs;
    c->retry = req->retry;
    c->stream = req->stream;
    c->stream_len = req->stream_len;
    c->replay_max = ctx->conf->limits.replay_body_bytes;
    if (c->stream && c->replay_max > 0 && !(c->replay = evbuffer_new())) {
        call_free(c);
        return NULL;
    }
    c->max_resp = req->max_response_bytes;
    c->timeouts = req->timeouts;
    c->first_len = -1;
    c->total_ms = req->timeouts.total_ms ? req->timeouts.total_ms
                                         : ctx->conf->timeouts.upstream_total_ms;
    c->deadline_us = deadline_now_us() + (int64_t)c->total_ms * 1000;
    c->wait_until_us = deadline_now_us() +
                       (int64_t)(req->wait_ms ? req->wait_ms : DEFAULT_WAIT_MS) * 1000;
    c->op = d365stats_op(req->path_query);
    c->st = d365stats_env(ctx->stats, req->env);
    const struct tracectx *trace = req->trace ? req->trace : ctx->cur_trace;
    const char *rid = req->trace ? req->request_id : ctx->cur_request_id;
    if (trace) {
        c->trace = *trace;
    } else {
        tracectx_hex(next_rand(ctx), next_rand(ctx), c->trace.trace_id, 32);
        c->trace.flags = 0;
    }
    if (rid) {
        size_t n = strnlen(rid, sizeof c->request_id - 1);
        memcpy(c->request_id, rid, n);
        c->request_id[n] = '\0';
    }
    if (!env) {
        c->fin_st = UPCALL_NO_ENV;
        schedule(c, ACT_FINISH, 0);
    } else {
        schedule(c, ACT_ATTEMPT, 0);
    }
    return c;
}

void upcall_cancel(struct upcall *c)
{
    if (c)
        call_free(c);
}

/* True while a new attempt is still sending the kept bytes: the caller's stream waits. */
static bool replaying(const struct upcall *c)
{
    return c->replay && c->replay_off < evbuffer_get_length(c->replay);
}

size_t upcall_send_space(const struct upcall *c)
{
    return c->x && c->stream && !replaying(c) ? upstream_send_space(c->x) : 0;
}

size_t upcall_send(struct upcall *c, const void *data, size_t len)
{
    if (!c->x || !c->stream || replaying(c))
        return 0;
    size_t took = upstream_send(c->x, data, len);
    keep_for_replay(c, data, took);
    return took;
}

void upcall_send_eof(struct upcall *c)
{
    if (!c->stream)
        return;
    c->stream_eof = true;
    if (c->x && !replaying(c) && !c->eof_sent) {
        c->eof_sent = true;
        upstream_send_eof(c->x);
    }
}

void upcall_resume_recv(struct upcall *c)
{
    if (c->x)
        upstream_resume_recv(c->x);
}
