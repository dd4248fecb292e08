/* ledgerflow: the dequeue loop and the consumer ack on the ack ledger (see ledgerflow.h).
 *
 *   next: PING (one per batch of dequeues, see pingbatch)
 *          --ok--> d365_dequeue --200--> ledger_on_dequeue_body (keys it once)
 *          |                 |204: EMPTY       |unkeyed: deliver, counted
 *          |fail: 503 (or fail_open: dequeue, deliver unledgered)
 *          verdict NEW / REDELIVERY: deliver; DUPLICATE_CONFIRMED: outbox_ack, skip;
 *          LEASED_ELSEWHERE: skip; a skip dequeues again until max_skips, then EMPTY.
 *   confirm: ledger_confirm --DONE--> outbox_ack --> ACKED / PENDING */
#include "ledgerflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/dns.h>

#include "ledger.h"
#include "ledgerkey.h"
#include "ledgerstat.h"
#include "log.h"
#include "outbox.h"
#include "rconn.h"
#include "redisopen.h"


enum op_kind { OP_NEXT, OP_CONFIRM };

struct ledgerflow_op {
    struct ledgerflow *lf;             /* borrowed; NULL once detached by ledgerflow_free */
    struct ledgerflow_op *prev, *next; /* registry */
    struct ledgerflow_op *ping_next;   /* the PING batch or the wait list it is in */
    enum op_kind kind;
    char env[LEDGERKEY_ENV_MAX + 1];
    char activity[GUID_CANON_SIZE];
    char client[LEDGER_NAME_MAX + 1];
    char *body;                        /* owned: the dequeue body awaiting its verdict */
    size_t body_len;
    struct d365_call *call;            /* owned while D365 answers */
    struct outbox_job *job;            /* confirm: the upstream ack under way */
    bool redis_pending;                /* a Redis call will call back */
    bool cancelled;
    bool no_ledger;                    /* fail open: this dequeue skips the ledger */
    unsigned skips;
    ledgerflow_next_cb *next_cb;
    ledgerflow_ack_cb *ack_cb;
    void *arg;                         /* borrowed */
};

struct ledgerflow {
    struct event_base *base;    /* borrowed */
    struct upcall_ctx *uc;      /* borrowed */
    struct conf_ledger lc;
    struct evdns_base *dns;     /* owned, only for a host name */
    struct rconn *rc;           /* owned */
    struct ledger *l;           /* owned */
    struct outbox *ob;          /* owned */
    struct ledgerstat *st;      /* owned */
    struct ledgerflow_op *ops;  /* owned list */
    struct ledgerflow_op *wait_head, *wait_tail; /* arrived while a PING was in flight */
    bool ping_in_flight;
    bool closing;
    int command_timeout_ms;
    char instance[LEDGER_NAME_MAX + 1];
};

/* ---- setup ---- */

static int open_redis(struct ledgerflow *lf, const struct conf_redis *r)
{
    lf->command_timeout_ms = (int)r->command_timeout_ms;
    lf->rc = redisopen_new(lf->base, r, "ledger: ", &lf->dns);
    return lf->rc ? 0 : -1;
}

/* "<host>-<pid>-<random hex>", host reduced to the ledger's name alphabet. */
static void make_instance(char *out, size_t cap)
{
    char host[64] = "host";
    unsigned char rnd[6] = { 0 };

    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        memcpy(rnd, &(long){ (long)rnd ^ (long)getpid() }, sizeof rnd);
    snprintf(out, cap, "%s-%ld-%02x%02x%02x%02x%02x%02x", host[0] ? host : "host",
             (long)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
}

struct ledgerflow *ledgerflow_new(struct event_base *base, struct upcall_ctx *uc,
                                  const struct conf *conf)
{
    struct ledgerflow *lf = calloc(1, sizeof *lf);
    struct ledger_opts lo = { 0 };

    if (!lf)
        return NULL;
    lf->base = base;
    lf->uc = uc;
    lf->lc = conf->ledger;
    make_instance(lf->instance, sizeof lf->instance);
    lo.instance = lf->instance;
    lo.outbox_lease_ms = lf->lc.outbox_lease_ms;
    if (open_redis(lf, &conf->redis) < 0 || !(lf->l = ledger_new(lf->rc, &lo)) ||
        !(lf->ob = outbox_new(base, uc, lf->l, &lf->lc)) || outbox_start(lf->ob) < 0 ||
        !(lf->st = ledgerstat_new(base, lf->l, &lf->lc))) {
        log_msg(LOG_LVL_ERROR, "ledger: cannot set up the ack ledger on Redis %s",
                conf->redis.url);
        ledgerflow_free(lf);
        return NULL;
    }
    log_msg(LOG_LVL_INFO, "ledger: instance %s on %s (fail %s)", lf->instance, conf->redis.url,
            lf->lc.fail_open ? "open" : "closed");
    return lf;
}

static void op_unlink(struct ledgerflow_op *op)
{
    struct ledgerflow *lf = op->lf;

    if (!lf)
        return;
    if (op->prev)
        op->prev->next = op->next;
    else
        lf->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

static void op_free(struct ledgerflow_op *op)
{
    op_unlink(op);
    free(op->body);
    free(op);
}

void ledgerflow_set_acked_hook(struct ledgerflow *lf,
                               void (*fn)(void *arg, const char *env, const char *msg_id),
                               void *arg)
{
    outbox_set_acked_hook(lf->ob, fn, arg);
}

void ledgerflow_free(struct ledgerflow *lf)
{
    if (!lf)
        return;
    lf->closing = true;
    for (struct ledgerflow_op *op = lf->wait_head, *next; op; op = next) {
        next = op->ping_next; /* no PING will answer these: they are plain ops again */
        op->ping_next = NULL;
        op->redis_pending = false;
        if (op->cancelled)
            op_free(op);
    }
    lf->wait_head = lf->wait_tail = NULL;
    while (lf->ops) {
        struct ledgerflow_op *op = lf->ops;
        op_unlink(op);
        op->lf = NULL; /* an op still waiting for Redis is freed by its CANCELLED callback */
        ledgerflow_cancel(op);
    }
    ledgerstat_free(lf->st);
    outbox_free(lf->ob);
    ledger_free(lf->l);
    rconn_free(lf->rc); /* pending Redis callbacks run now, with CANCELLED */
    if (lf->dns)
        evdns_base_free(lf->dns, 0);
    free(lf);
}

/* ---- operations ---- */

static struct ledgerflow_op *op_new(struct ledgerflow *lf, enum op_kind kind, void *arg)
{
    struct ledgerflow_op *op = calloc(1, sizeof *op);

    if (!op)
        return NULL;
    op->lf = lf;
    op->kind = kind;
    op->arg = arg;
    op->next = lf->ops;
    if (lf->ops)
        lf->ops->prev = op;
    lf->ops = op;
    return op;
}

void ledgerflow_cancel(struct ledgerflow_op *op)
{
    if (!op)
        return;
    op->cancelled = true;
    op->next_cb = NULL;
    op->ack_cb = NULL;
    d365_cancel(op->call);
    op->call = NULL;
    outbox_forget(op->job);
    op->job = NULL;
    if (!op->redis_pending)
        op_free(op);
}

/* A Redis callback arrived: false (op freed) when the op was cancelled meanwhile. */
static bool op_back(struct ledgerflow_op *op)
{
    op->redis_pending = false;
    if (!op->cancelled && op->lf)
        return true;
    op_free(op);
    return false;
}

static void finish_next(struct ledgerflow_op *op, const struct ledgerflow_delivery *d)
{
    ledgerflow_next_cb *cb = op->next_cb;
    void *arg = op->arg;

    op_free(op);
    cb(arg, d);
}

static void fail_next(struct ledgerflow_op *op, int status, const char *code, const char *msg,
                      unsigned retry_after)
{
    struct d365_err e = { .status = status, .code = code, .retry_after_s = retry_after };
    struct ledgerflow_delivery d = { .kind = LEDGERFLOW_FAILED, .err = &e, .id = "" };

    snprintf(e.message, sizeof e.message, "%s", msg);
    finish_next(op, &d);
}

static void redis_down(struct ledgerflow_op *op, const char *why);
static void start_dequeue(struct ledgerflow_op *op);

static void deliver(struct ledgerflow_op *op, const char *body, size_t len, const char *id,
                    bool redelivery, unsigned deliveries, const char *unledgered)
{
    struct ledgerflow_delivery d = { .kind = LEDGERFLOW_MESSAGE, .body = body, .len = len,
                                     .redelivery = redelivery, .deliveries = deliveries,
                                     .id = id, .unledgered = unledgered };

    ledgerstat_count(op->lf->st, unledgered ? (unledgered[0] == 'u' ? LS_UNKEYED : LS_FAIL_OPEN)
                                            : redelivery ? LS_REDELIVERED : LS_NEW);
    finish_next(op, &d);
}

/* A message this consumer must not get: dequeue the next one, within max_skips. */
static void skip(struct ledgerflow_op *op)
{
    struct ledgerflow_delivery d = { .kind = LEDGERFLOW_EMPTY, .id = "" };

    if (++op->skips >= op->lf->lc.max_skips) {
        log_msg(LOG_LVL_INFO, "ledger: %u messages skipped on %s:%s; answering 204",
                op->skips, op->env, op->activity);
        finish_next(op, &d);
        return;
    }
    start_dequeue(op);
}

static void on_verdict(void *arg, enum ledger_err err, const struct ledger_dequeue_result *r)
{
    struct ledgerflow_op *op = arg;
    /* d365's result is gone by now: the copy kept in on_dequeued is what is delivered */
    char *body = op->body;
    size_t len = op->body_len;

    op->body = NULL;
    if (!op_back(op)) {
        free(body);
        return;
    }
    if (err != LEDGER_OK) {
        if (op->lf->lc.fail_open)
            deliver(op, body, len, "", false, 0, "fail_open");
        else
            redis_down(op, ledger_err_str(err));
        free(body);
        return;
    }
    switch (r->verdict) {
    case LEDGER_NEW:
    case LEDGER_REDELIVERY:
        deliver(op, body, len, r->id, r->verdict == LEDGER_REDELIVERY, r->deliveries, NULL);
        break;
    case LEDGER_DUPLICATE_CONFIRMED:
        ledgerstat_count(op->lf->st, LS_DUPLICATE);
        log_msg(LOG_LVL_INFO, "ledger: %s was confirmed before: not delivered, acked again",
                r->id);
        outbox_ack(op->lf->ob, r->id, r->body, r->body_len, 1, NULL, NULL);
        skip(op);
        break;
    case LEDGER_LEASED_ELSEWHERE:
        ledgerstat_count(op->lf->st, LS_LEASED_ELSEWHERE);
        log_msg(LOG_LVL_INFO, "ledger: %s is leased to %s for %lld ms more: left alone", r->id,
                r->holder, r->lease_left_ms);
        skip(op);
        break;
    }
    free(body);
}

static void on_dequeued(void *arg, const struct d365_result *res)
{
    struct ledgerflow_op *op = arg;
    struct ledgerflow *lf = op->lf;
    struct ledgerflow_delivery d = { .kind = LEDGERFLOW_EMPTY, .id = "" };
    enum ledgerkey_err ke = LEDGERKEY_OK;
    int rc;

    op->call = NULL;
    if (!res->ok) {
        d.kind = LEDGERFLOW_FAILED;
        d.err = &res->err;
        finish_next(op, &d);
        return;
    }
    if (res->status == 204) {
        finish_next(op, &d);
        return;
    }
    if (op->no_ledger) {
        deliver(op, res->body, res->body_len, "", false, 0, "fail_open");
        return;
    }
    if (!(op->body = malloc(res->body_len + 1))) {
        fail_next(op, 503, "out_of_memory", "the server is out of memory, retry later", 1);
        return;
    }
    memcpy(op->body, res->body, res->body_len);
    op->body[res->body_len] = '\0';
    op->body_len = res->body_len;
    /* keyed once, inside: parsing it here and again there cost ~13% of a dequeue's CPU */
    rc = ledger_on_dequeue_body(lf->l, op->env, op->activity, res->body, res->body_len,
                                op->client, lf->lc.lease_s * 1000u, &ke, on_verdict, op);
    if (rc == 0) {
        op->redis_pending = true;
        return;
    }
    free(op->body);
    op->body = NULL;
    if (rc == -2) {
        log_msg(LOG_LVL_WARN, "ledger: a dequeue body on %s:%s cannot be keyed (%s): delivered "
                "without the ledger", op->env, op->activity, ledgerkey_err_str(ke));
        deliver(op, res->body, res->body_len, "", false, 0, "unkeyed");
        return;
    }
    redis_down(op, "the ledger call could not be queued");
}

static void start_dequeue(struct ledgerflow_op *op)
{
    struct d365_cbs cbs = { .on_result = on_dequeued, .arg = op };

    op->call = d365_dequeue(op->lf->uc, op->env, op->activity, &cbs);
    if (!op->call)
        fail_next(op, 500, "internal", "cannot start the dequeue call", 0);
}

/* Redis cannot be used for this dequeue: fail closed (503, nothing dequeued) or open. */
static void redis_down(struct ledgerflow_op *op, const char *why)
{
    char msg[256];

    if (op->lf->lc.fail_open && !op->no_ledger && op->skips == 0) {
        op->no_ledger = true;
        start_dequeue(op);
        return;
    }
    ledgerstat_count(op->lf->st, LS_REFUSED);
    snprintf(msg, sizeof msg, "the ack ledger (Redis) is unavailable (%s); nothing was "
             "dequeued, retry later", why);
    fail_next(op, 503, "ledger_unavailable", msg, op->lf->lc.retry_after_s);
}

/* Liveness before D365 is asked, one PING for many dequeues: a PING answers for the
 * dequeues that arrived before it was sent (its batch); one arriving while a PING is in
 * flight waits for the next, sent when that one returns. So every dequeue still sees
 * Redis answer a command sent after it arrived, as with a PING of its own, at one PING
 * per round trip instead of one per dequeue. A PING that fails fails its waiters too:
 * Redis did not answer within the timeout, so they would not be recorded either. */
struct pingbatch {
    struct ledgerflow *lf;     /* borrowed */
    struct ledgerflow_op *ops; /* borrowed: the ops it answers for, by ping_next */
};

static void on_ping(void *arg, enum rconn_result res, const redictReply *reply);

/* Sends a PING answering for `ops`. Returns 0 (on_ping will run) or -1. */
static int send_ping(struct ledgerflow *lf, struct ledgerflow_op *ops, int timeout_ms)
{
    struct pingbatch *b = malloc(sizeof *b);

    if (!b)
        return -1;
    b->lf = lf;
    b->ops = ops;
    if (rconn_command(lf->rc, on_ping, b, timeout_ms, "PING") != 0) {
        free(b);
        return -1;
    }
    lf->ping_in_flight = true;
    return 0;
}

/* Answers every op of the list starting at `op`: dequeue from D365 if Redis answered. */
static void answer_batch(struct ledgerflow_op *op, const char *why)
{
    for (struct ledgerflow_op *next; op; op = next) {
        next = op->ping_next;
        op->ping_next = NULL;
        if (!op_back(op))
            continue;
        if (why)
            redis_down(op, why);
        else
            start_dequeue(op);
    }
}

static void on_ping(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct pingbatch *b = arg;
    struct ledgerflow *lf = b->lf;
    struct ledgerflow_op *ops = b->ops, *waiting = lf->wait_head;
    const char *why = res != RCONN_OK ? rconn_result_str(res)
                      : !reply || reply->type == REDICT_REPLY_ERROR ? "error reply" : NULL;

    free(b);
    lf->ping_in_flight = false;
    if (!why && waiting && !lf->closing) {
        lf->wait_head = lf->wait_tail = NULL;
        if (send_ping(lf, waiting, lf->command_timeout_ms) < 0)
            answer_batch(waiting, "the PING could not be queued");
    } else if (why && waiting && !lf->closing) {
        lf->wait_head = lf->wait_tail = NULL;
        answer_batch(waiting, why);
    }
    answer_batch(ops, why);
}

struct ledgerflow_op *ledgerflow_next(struct ledgerflow *lf, const char *env,
                                      const char *activity, const char *client,
                                      ledgerflow_next_cb *cb, void *arg)
{
    struct ledgerflow_op *op = op_new(lf, OP_NEXT, arg);
    struct rconn_health h;

    if (!op)
        return NULL;
    op->next_cb = cb;
    snprintf(op->env, sizeof op->env, "%s", env);
    snprintf(op->activity, sizeof op->activity, "%s", activity);
    snprintf(op->client, sizeof op->client, "%s", client);
    op->redis_pending = true;
    if (lf->ping_in_flight) { /* the next PING, sent when this one returns, answers it */
        if (lf->wait_tail)
            lf->wait_tail->ping_next = op;
        else
            lf->wait_head = op;
        lf->wait_tail = op;
        return op;
    }
    rconn_get_health(lf->rc, &h);
    /* Redis is checked before D365 is asked, so a message waits in D365 while it is away */
    if (h.connected && send_ping(lf, op, lf->command_timeout_ms) == 0)
        return op;
    op->redis_pending = false;
    if (lf->lc.fail_open) {
        op->no_ledger = true;
        start_dequeue(op); /* d365 calls back later, never from inside */
        return op;
    }
    /* not connected: the PING fails at once (nothing is sent) and answers 503 from the
     * loop, never from inside this call */
    if (send_ping(lf, op, 1) == 0) {
        op->redis_pending = true;
        return op;
    }
    op_free(op);
    return NULL;
}

/* ---- confirm ---- */

static void finish_ack(struct ledgerflow_op *op, enum ledgerflow_ack_kind kind,
                       const struct d365_err *err)
{
    ledgerflow_ack_cb *cb = op->ack_cb;
    void *arg = op->arg;

    op_free(op);
    cb(arg, kind, err);
}

static void on_job_done(void *arg, bool acked)
{
    struct ledgerflow_op *op = arg;

    op->job = NULL;
    finish_ack(op, acked ? LEDGERFLOW_ACKED : LEDGERFLOW_PENDING, NULL);
}

static void on_confirmed(void *arg, enum ledger_err err, const struct ledger_result *r)
{
    struct ledgerflow_op *op = arg;
    struct d365_err e = { .status = 503, .code = "ledger_unavailable",
                          .retry_after_s = 0 };

    if (!op_back(op))
        return;
    e.retry_after_s = op->lf->lc.retry_after_s;
    if (err != LEDGER_OK && op->lf->lc.fail_open) { /* the caller acks D365 itself */
        finish_ack(op, LEDGERFLOW_UNKNOWN, NULL);
        return;
    }
    if (err != LEDGER_OK) {
        snprintf(e.message, sizeof e.message, "the ack ledger (Redis) is unavailable (%s); "
                 "the ack was not recorded, retry it", ledger_err_str(err));
        finish_ack(op, LEDGERFLOW_ACK_FAILED, &e);
        return;
    }
    if (r->status == LEDGER_NOT_FOUND) {
        finish_ack(op, LEDGERFLOW_UNKNOWN, NULL);
        return;
    }
    if (r->status != LEDGER_DONE) {
        finish_ack(op, LEDGERFLOW_ALREADY, NULL);
        return;
    }
    ledgerstat_count(op->lf->st, LS_CONFIRMED);
    op->job = outbox_ack(op->lf->ob, r->id, r->body, r->body_len, 1, on_job_done, op);
    if (!op->job) /* already being acked here, or no memory: the outbox finishes it */
        finish_ack(op, LEDGERFLOW_PENDING, NULL);
}

struct ledgerflow_op *ledgerflow_confirm(struct ledgerflow *lf, const char *id,
                                         const char *client, ledgerflow_ack_cb *cb, void *arg)
{
    struct ledgerflow_op *op;

    if (ledgerkey_id_check(id, NULL) < 0 || !(op = op_new(lf, OP_CONFIRM, arg)))
        return NULL;
    op->ack_cb = cb;
    snprintf(op->client, sizeof op->client, "%s", client);
    if (ledger_confirm(lf->l, id, op->client, on_confirmed, op) < 0) {
        op_free(op);
        return NULL;
    }
    op->redis_pending = true;
    return op;
}

/* ---- delivered, ids, status ---- */

static void on_marked(void *arg, enum ledger_err err, const struct ledger_result *r)
{
    (void)arg;
    if (err != LEDGER_OK)
        log_msg(LOG_LVL_WARN, "ledger: cannot mark a delivery (%s); it stays leased until its "
                "lease ends", ledger_err_str(err));
    else if (r->status == LEDGER_NOT_HOLDER)
        log_msg(LOG_LVL_WARN, "ledger: %s was delivered after its lease ran out (another "
                "instance holds it now)", r->id);
}

void ledgerflow_delivered(struct ledgerflow *lf, const char *id)
{
    if (id && id[0] && ledger_mark_delivered(lf->l, id, on_marked, NULL) == 0)
        ledgerstat_count(lf->st, LS_DELIVERED);
}

int ledgerflow_corr_id(const char *env, const char *activity, const char *correlation,
                       char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s:%s:corr:%s", env, activity, correlation);

    return n > 0 && (size_t)n < cap && ledgerkey_id_check(out, NULL) == LEDGERKEY_CORR ? 0 : -1;
}

const struct ledgerstat *ledgerflow_stat(const struct ledgerflow *lf)
{
    return lf->st;
}

const struct rconn_stats *ledgerflow_redis_stats(const struct ledgerflow *lf)
{
    return rconn_stats(lf->rc);
}

json_t *ledgerflow_status(const struct ledgerflow *lf)
{
    struct rconn_health h;
    struct outbox_counts oc;
    json_t *o = ledgerstat_json(lf->st);

    rconn_get_health(lf->rc, &h);
    outbox_get_counts(lf->ob, &oc);
    json_object_set_new(o, "instance", json_string(lf->instance));
    json_object_set_new(o, "fail_open", json_boolean(lf->lc.fail_open));
    json_object_set_new(o, "redis", json_pack("{s:b, s:s, s:I, s:s, s:s?}", "connected",
                                              h.connected, "last_error", h.last_error,
                                              "failures", (json_int_t)h.failures,
                                              "address", h.address, "sentinel",
                                              h.named_by[0] ? h.named_by : NULL));
    json_object_set_new(o, "upstream_acks", json_pack("{s:I, s:I, s:I, s:I}", "ok",
                                                      (json_int_t)oc.acks_ok, "failed",
                                                      (json_int_t)oc.acks_failed, "claimed",
                                                      (json_int_t)oc.claimed, "in_flight",
                                                      (json_int_t)oc.in_flight));
    return o;
}

bool ledgerflow_ready(const struct ledgerflow *lf, char *why, size_t cap)
{
    struct rconn_health h;

    rconn_get_health(lf->rc, &h);
    if (!h.connected)
        snprintf(why, cap, "ack ledger: Redis not connected%s%s", h.last_error[0] ? ": " : "",
                 h.last_error);
    return h.connected;
}
