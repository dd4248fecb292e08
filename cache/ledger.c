/* ledger: the ack ledger's calls on an rconn (see ledger.h); the rules are in ledgerrule.c
 * and their Redis twins in ledgerlua.c. Invariant: a call's state lives in its own struct
 * op, never in the ledger, so a reply that arrives after ledger_free touches nothing freed. */
#include "ledger.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledgerlua.h"
#include "log.h"
#include "rconn.h"

#define PREFIX_MAX 64
#define KEY_SIZE (PREFIX_MAX + 16 + LEDGERKEY_ID_SIZE)
#define DAY_MS (24LL * 3600 * 1000)
#define MSG_ARGC 12 /* 6 keys + 6 common arguments */
#define MAX_ARGC (MSG_ARGC + 6)

struct ledger {
    struct rconn *conn; /* borrowed */
    char prefix[PREFIX_MAX + 1];
    char instance[LEDGER_NAME_MAX + 1];
    int timeout_ms;
    long long ttl_ms;
    unsigned outbox_lease_ms;
    unsigned refresh_ms;
    int64_t refreshed_ms; /* monotonic: the last call that asked for the TTL refresh */
};

enum op_kind { OP_DEQUEUE, OP_DONE, OP_CLAIM, OP_STATS };

/* One pending call: whom to tell and how to read the reply. */
struct op {
    enum op_kind kind;
    union {
        ledger_dequeue_cb *dequeue;
        ledger_done_cb *done;
        ledger_claim_cb *claim;
        ledger_stats_cb *stats;
    } cb;
    void *arg; /* borrowed: the caller's */
};

/* The keys and common arguments of a message script, with their storage. */
struct msgcall {
    char keys[6][KEY_SIZE];
    char ttl[24];
    const char *argv[MAX_ARGC];
    size_t argvlen[MAX_ARGC];
    int argc;
};

static int name_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

struct ledger *ledger_new(struct rconn *conn, const struct ledger_opts *o)
{
    const char *prefix = o && o->prefix ? o->prefix : "fogate:";
    struct ledger *l;

    if (!conn || !o || (prefix[0] && !name_ok(prefix, PREFIX_MAX)) ||
        !name_ok(o->instance, LEDGER_NAME_MAX) || o->retention_ms < 0 || o->margin_ms < 0 ||
        o->retention_ms > 365 * DAY_MS || o->margin_ms > 365 * DAY_MS)
        return NULL;
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->conn = conn;
    snprintf(l->prefix, sizeof(l->prefix), "%s", prefix);
    snprintf(l->instance, sizeof(l->instance), "%s", o->instance);
    l->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 0;
    l->ttl_ms = (o->retention_ms ? o->retention_ms : 7 * DAY_MS) +
                (o->margin_ms ? o->margin_ms : DAY_MS);
    l->outbox_lease_ms = o->outbox_lease_ms ? o->outbox_lease_ms : 60000;
    l->refresh_ms = o->refresh_ms ? o->refresh_ms : 1000;
    return l;
}

void ledger_free(struct ledger *l)
{
    free(l);
}

const char *ledger_err_str(enum ledger_err err)
{
    switch (err) {
    case LEDGER_OK: return "ok";
    case LEDGER_ERR_TIMEOUT: return "timeout";
    case LEDGER_ERR_UNAVAILABLE: return "unavailable";
    case LEDGER_ERR_REPLY: return "bad_reply";
    case LEDGER_ERR_CANCELLED: return "cancelled";
    }
    return "?";
}

/* ---- replies ---- */

static enum ledger_err map_result(enum rconn_result res, const redictReply *r)
{
    switch (res) {
    case RCONN_OK:
        if (!r || r->type == REDICT_REPLY_ERROR) {
            log_json(LOG_LVL_WARN, "ledger: Redis refused a script",
                     json_pack("{s:s%}", "error", r ? r->str : "", r ? (size_t)r->len : 0));
            return LEDGER_ERR_REPLY;
        }
        return LEDGER_OK;
    case RCONN_TIMEOUT: return LEDGER_ERR_TIMEOUT;
    case RCONN_CANCELLED: return LEDGER_ERR_CANCELLED;
    case RCONN_DISCONNECTED:
    case RCONN_NOT_CONNECTED:
    case RCONN_OVERLOADED: return LEDGER_ERR_UNAVAILABLE;
    }
    return LEDGER_ERR_UNAVAILABLE;
}

static const char *str_at(const redictReply *r, size_t i)
{
    const redictReply *e = r->type == REDICT_REPLY_ARRAY && i < r->elements ? r->element[i]
                                                                             : NULL;
    return e && (e->type == REDICT_REPLY_STRING || e->type == REDICT_REPLY_STATUS) ? e->str
                                                                                 : NULL;
}

static size_t len_at(const redictReply *r, size_t i)
{
    return r->element[i]->len;
}

/* Integer element i into *out. Returns 0 or -1. */
static int int_at(const redictReply *r, size_t i, long long *out)
{
    const redictReply *e = r->type == REDICT_REPLY_ARRAY && i < r->elements ? r->element[i]
                                                                             : NULL;
    if (!e || e->type != REDICT_REPLY_INTEGER)
        return -1;
    *out = e->integer;
    return 0;
}

static void finish_dequeue(struct op *o, const redictReply *r)
{
    struct ledger_dequeue_result d = { .holder = "" };
    long long deliveries = 0;
    const char *v = str_at(r, 0);

    d.id = str_at(r, 1);
    d.holder = str_at(r, 3);
    if (r->elements != 6 || !v || ledgerrule_verdict_parse(v, &d.verdict) != 0 || !d.id ||
        !d.holder || int_at(r, 2, &deliveries) != 0 || int_at(r, 4, &d.lease_left_ms) != 0 ||
        !str_at(r, 5)) {
        o->cb.dequeue(o->arg, LEDGER_ERR_REPLY, NULL);
        return;
    }
    d.deliveries = deliveries > 0 ? (unsigned)deliveries : 0;
    if (d.verdict == LEDGER_DUPLICATE_CONFIRMED) {
        d.body = str_at(r, 5);
        d.body_len = len_at(r, 5);
    }
    o->cb.dequeue(o->arg, LEDGER_OK, &d);
}

static void finish_done(struct op *o, const redictReply *r)
{
    struct ledger_result res = { 0 };
    const char *st = str_at(r, 0);

    res.id = str_at(r, 1);
    if (r->elements != 3 || !st || ledgerrule_status_parse(st, &res.status) != 0 || !res.id ||
        !str_at(r, 2)) {
        o->cb.done(o->arg, LEDGER_ERR_REPLY, NULL);
        return;
    }
    if (len_at(r, 2) > 0) {
        res.body = str_at(r, 2);
        res.body_len = len_at(r, 2);
    }
    o->cb.done(o->arg, LEDGER_OK, &res);
}

static void finish_claim(struct op *o, const redictReply *r)
{
    struct ledger_claim e[LEDGER_CLAIM_MAX];
    size_t n = r->type == REDICT_REPLY_ARRAY ? r->elements / 3 : 0;
    long long attempts = 0;

    if (r->type != REDICT_REPLY_ARRAY || r->elements % 3 || n > LEDGER_CLAIM_MAX)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        e[i].id = str_at(r, 3 * i);
        e[i].body = str_at(r, 3 * i + 1);
        if (!e[i].id || !e[i].body || int_at(r, 3 * i + 2, &attempts) != 0 || attempts < 1)
            goto bad;
        e[i].body_len = len_at(r, 3 * i + 1);
        e[i].attempts = (unsigned)attempts;
    }
    o->cb.claim(o->arg, LEDGER_OK, e, n);
    return;
bad:
    o->cb.claim(o->arg, LEDGER_ERR_REPLY, NULL, 0);
}

/* Copies the counter pairs of an HGETALL reply into s. */
static void read_counters(const redictReply *pairs, struct ledger_stats *s)
{
    static const struct { const char *name; size_t off; } names[] = {
        { "new", offsetof(struct ledger_stats, new_messages) },
        { "redeliveries", offsetof(struct ledger_stats, redeliveries) },
        { "duplicates_suppressed", offsetof(struct ledger_stats, duplicates_suppressed) },
        { "leased_elsewhere", offsetof(struct ledger_stats, leased_elsewhere) },
        { "fallback_ids", offsetof(struct ledger_stats, fallback_ids) },
        { "confirmed", offsetof(struct ledger_stats, confirmed) },
        { "confirm_repeats", offsetof(struct ledger_stats, confirm_repeats) },
        { "acked", offsetof(struct ledger_stats, acked) },
    };
    for (size_t i = 0; i + 1 < pairs->elements; i += 2) {
        const char *k = str_at(pairs, i), *v = str_at(pairs, i + 1);
        for (size_t j = 0; k && v && j < sizeof(names) / sizeof(names[0]); j++)
            if (strcmp(k, names[j].name) == 0)
                *(long long *)((char *)s + names[j].off) = strtoll(v, NULL, 10);
    }
}

static void finish_stats(struct op *o, const redictReply *r)
{
    struct ledger_stats s = { 0 };

    if (r->type != REDICT_REPLY_ARRAY || r->elements != 6 || int_at(r, 0, &s.outbox_depth) ||
        int_at(r, 1, &s.unconfirmed) || int_at(r, 2, &s.oldest_unconfirmed_ms) ||
        int_at(r, 3, &s.unacked) || int_at(r, 4, &s.oldest_unacked_ms) ||
        r->element[5]->type != REDICT_REPLY_ARRAY) {
        o->cb.stats(o->arg, LEDGER_ERR_REPLY, NULL);
        return;
    }
    read_counters(r->element[5], &s);
    o->cb.stats(o->arg, LEDGER_OK, &s);
}

static void fail(struct op *o, enum ledger_err err)
{
    switch (o->kind) {
    case OP_DEQUEUE: o->cb.dequeue(o->arg, err, NULL); break;
    case OP_DONE: o->cb.done(o->arg, err, NULL); break;
    case OP_CLAIM: o->cb.claim(o->arg, err, NULL, 0); break;
    case OP_STATS: o->cb.stats(o->arg, err, NULL); break;
    }
}

static void on_reply(void *arg, enum rconn_result res, const redictReply *r)
{
    struct op *o = arg;
    enum ledger_err err = map_result(res, r);

    if (err != LEDGER_OK)
        fail(o, err);
    else if (r->type != REDICT_REPLY_ARRAY)
        fail(o, LEDGER_ERR_REPLY);
    else if (o->kind == OP_DEQUEUE)
        finish_dequeue(o, r);
    else if (o->kind == OP_DONE)
        finish_done(o, r);
    else if (o->kind == OP_CLAIM)
        finish_claim(o, r);
    else
        finish_stats(o, r);
    free(o);
}

/* ---- sending ---- */

static struct op *op_new(enum op_kind kind, void *arg)
{
    struct op *o = calloc(1, sizeof(*o));

    if (o) {
        o->kind = kind;
        o->arg = arg;
    }
    return o;
}

/* Sends script s with m's arguments for op o (owned: freed here on failure). Returns 0,
 * or -1 (the callback is never called). */
static int send(struct ledger *l, enum ledgerlua_id s, int nkeys, struct msgcall *m,
                struct op *o)
{
    if (!o)
        return -1;
    if (rconn_evalv(l->conn, ledgerlua_script(s), on_reply, o, l->timeout_ms, nkeys, m->argc,
                    m->argv, m->argvlen) == 0)
        return 0;
    free(o);
    return -1;
}

static struct op *done_op(ledger_done_cb *cb, void *arg)
{
    struct op *o = cb ? op_new(OP_DONE, arg) : NULL;
    if (o)
        o->cb.done = cb;
    return o;
}

static void push(struct msgcall *m, const char *s, size_t len)
{
    m->argv[m->argc] = s;
    m->argvlen[m->argc++] = len;
}

static void push_str(struct msgcall *m, const char *s)
{
    push(m, s, strlen(s));
}

/* The four cluster-wide keys, into m->keys[from..from+3]. */
static void global_keys(const struct ledger *l, struct msgcall *m, int from)
{
    static const char *const names[] = { "stats", "outbox", "unconfirmed", "unacked" };
    for (int i = 0; i < 4; i++)
        snprintf(m->keys[from + i], KEY_SIZE, "%sledger:%s", l->prefix, names[i]);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "1" when this call should refresh the index keys' TTLs (the first call, then at most
 * once per refresh_ms; a call that fails only delays the next refresh by that much,
 * against a TTL of days), else "0". */
static const char *refresh_flag(struct ledger *l)
{
    int64_t now = mono_ms();

    if (l->refreshed_ms && now - l->refreshed_ms < l->refresh_ms)
        return "0";
    l->refreshed_ms = now ? now : 1;
    return "1";
}

/* Keys and common arguments of a message script. `alias` is the alias-table suffix, or
 * NULL for none (the slot is then the message key, unused by the script). */
static void msg_call(struct ledger *l, struct msgcall *m, const char *id,
                     enum ledgerkey_kind kind, const char *alias, char *msgprefix)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->keys[0], KEY_SIZE, "%sledger:m:%s", l->prefix, id);
    if (alias)
        snprintf(m->keys[1], KEY_SIZE, "%sledger:alias:%s", l->prefix, alias);
    else
        memcpy(m->keys[1], m->keys[0], KEY_SIZE);
    global_keys(l, m, 2);
    for (int i = 0; i < 6; i++)
        push_str(m, m->keys[i]);
    snprintf(msgprefix, KEY_SIZE, "%sledger:m:", l->prefix);
    snprintf(m->ttl, sizeof(m->ttl), "%lld", l->ttl_ms);
    push_str(m, kind == LEDGERKEY_BLOB ? "blob" : "corr");
    push_str(m, msgprefix);
    push_str(m, id);
    push_str(m, m->ttl);
    push_str(m, l->instance);
    push_str(m, refresh_flag(l));
}

/* A call on an existing id: DELIVER, CONFIRM, ACK, OUTBOX, with extra arguments. */
static int id_call(struct ledger *l, enum ledgerlua_id s, const char *id, int nextra,
                   const char **extra, ledger_done_cb *cb, void *arg)
{
    char alias[LEDGERKEY_ID_SIZE], msgprefix[KEY_SIZE];
    struct msgcall m;
    int kind = l ? ledgerkey_id_check(id, alias) : -1;

    if (kind < 0)
        return -1;
    msg_call(l, &m, id, (enum ledgerkey_kind)kind, kind == LEDGERKEY_CORR ? alias : NULL,
             msgprefix);
    for (int i = 0; i < nextra; i++)
        push_str(&m, extra[i]);
    return send(l, s, 6, &m, done_op(cb, arg));
}

/* True if body parses to the same id and PopReceipt as k (the caller's key is checked
 * against the bytes that will be stored and sent back upstream). */
static int body_matches(const struct ledgerkey *k, const char *body, size_t len)
{
    char env[LEDGERKEY_ENV_MAX + 1];
    size_t sl = strlen(k->scope);
    struct ledgerkey again;

    if (sl < GUID_CANON_SIZE + 1 || sl - GUID_CANON_SIZE > LEDGERKEY_ENV_MAX)
        return 0;
    memcpy(env, k->scope, sl - GUID_CANON_SIZE);
    env[sl - GUID_CANON_SIZE] = '\0';
    if (ledgerkey_parse(body, len, env, k->scope + sl - (GUID_CANON_SIZE - 1), &again) !=
        LEDGERKEY_OK)
        return 0;
    return strcmp(again.id, k->id) == 0 && strcmp(again.pop_receipt, k->pop_receipt) == 0;
}

/* The checks of ledger_on_dequeue but the body's parse (the caller vouches for k). */
static int dequeue_args_ok(const struct ledger *l, const struct ledgerkey *k, const char *body,
                           size_t len, const char *client, unsigned lease_ms,
                           ledger_dequeue_cb *cb)
{
    return l && k && cb && body && len > 0 && len <= LEDGERKEY_BODY_MAX && k->pop_receipt[0] &&
           lease_ms > 0 && name_ok(client, LEDGER_NAME_MAX) &&
           ledgerkey_id_check(k->id, NULL) == (int)k->kind;
}

/* Sends the dequeue script for a key already checked against its body. */
static int record_dequeue(struct ledger *l, const struct ledgerkey *k, const char *body,
                          size_t len, const char *client, unsigned lease_ms,
                          ledger_dequeue_cb *cb, void *arg)
{
    char alias[LEDGERKEY_ID_SIZE], msgprefix[KEY_SIZE], lease[16], oblease[16];
    struct msgcall m;

    snprintf(alias, sizeof(alias), "%s:%s", k->scope, k->correlation);
    msg_call(l, &m, k->id, k->kind, alias, msgprefix);
    snprintf(lease, sizeof(lease), "%u", lease_ms);
    snprintf(oblease, sizeof(oblease), "%u", l->outbox_lease_ms);
    push(&m, body, len);
    push_str(&m, k->correlation);
    push_str(&m, k->pop_receipt);
    push_str(&m, client);
    push_str(&m, lease);
    push_str(&m, oblease);
    struct op *o = op_new(OP_DEQUEUE, arg);
    if (o)
        o->cb.dequeue = cb;
    return send(l, LEDGERLUA_DEQUEUE, 6, &m, o);
}

int ledger_on_dequeue(struct ledger *l, const struct ledgerkey *k, const char *body,
                      size_t len, const char *client, unsigned lease_ms, ledger_dequeue_cb *cb,
                      void *arg)
{
    if (!dequeue_args_ok(l, k, body, len, client, lease_ms, cb) || !body_matches(k, body, len))
        return -1;
    return record_dequeue(l, k, body, len, client, lease_ms, cb, arg);
}

int ledger_on_dequeue_body(struct ledger *l, const char *env, const char *activity,
                           const char *body, size_t len, const char *client, unsigned lease_ms,
                           enum ledgerkey_err *why, ledger_dequeue_cb *cb, void *arg)
{
    struct ledgerkey k;
    enum ledgerkey_err e = ledgerkey_parse(body, len, env, activity, &k);

    if (why)
        *why = e;
    if (e != LEDGERKEY_OK)
        return -2;
    if (!dequeue_args_ok(l, &k, body, len, client, lease_ms, cb))
        return -1;
    return record_dequeue(l, &k, body, len, client, lease_ms, cb, arg);
}

int ledger_mark_delivered(struct ledger *l, const char *id, ledger_done_cb *cb, void *arg)
{
    return id_call(l, LEDGERLUA_DELIVER, id, 0, NULL, cb, arg);
}

int ledger_confirm(struct ledger *l, const char *id, const char *client, ledger_done_cb *cb,
                   void *arg)
{
    char oblease[16];

    if (!l || !name_ok(client, LEDGER_NAME_MAX))
        return -1;
    snprintf(oblease, sizeof(oblease), "%u", l->outbox_lease_ms);
    const char *extra[] = { client, oblease };
    return id_call(l, LEDGERLUA_CONFIRM, id, 2, extra, cb, arg);
}

int ledger_mark_acked(struct ledger *l, const char *id, ledger_done_cb *cb, void *arg)
{
    return id_call(l, LEDGERLUA_ACK, id, 0, NULL, cb, arg);
}

int ledger_outbox_renew(struct ledger *l, const char *id, ledger_done_cb *cb, void *arg)
{
    char ms[16];

    if (!l)
        return -1;
    snprintf(ms, sizeof(ms), "%u", l->outbox_lease_ms);
    const char *extra[] = { "renew", ms };
    return id_call(l, LEDGERLUA_OUTBOX, id, 2, extra, cb, arg);
}

int ledger_outbox_release(struct ledger *l, const char *id, unsigned delay_ms,
                          ledger_done_cb *cb, void *arg)
{
    char ms[16];

    snprintf(ms, sizeof(ms), "%u", delay_ms);
    const char *extra[] = { "release", ms };
    return id_call(l, LEDGERLUA_OUTBOX, id, 2, extra, cb, arg);
}

int ledger_outbox_claim(struct ledger *l, unsigned max, ledger_claim_cb *cb, void *arg)
{
    char msgprefix[KEY_SIZE], n[16], lease[16];
    struct msgcall m;

    if (!l || !cb || max == 0 || max > LEDGER_CLAIM_MAX)
        return -1;
    memset(&m, 0, sizeof(m));
    global_keys(l, &m, 0);
    for (int i = 0; i < 4; i++)
        push_str(&m, m.keys[i]);
    snprintf(msgprefix, sizeof(msgprefix), "%sledger:m:", l->prefix);
    snprintf(m.ttl, sizeof(m.ttl), "%lld", l->ttl_ms);
    snprintf(n, sizeof(n), "%u", max);
    snprintf(lease, sizeof(lease), "%u", l->outbox_lease_ms);
    const char *args[] = { msgprefix, m.ttl, l->instance, n, lease };
    for (int i = 0; i < 5; i++)
        push_str(&m, args[i]);
    struct op *o = op_new(OP_CLAIM, arg);
    if (o)
        o->cb.claim = cb;
    return send(l, LEDGERLUA_CLAIM, 4, &m, o);
}

int ledger_stats(struct ledger *l, ledger_stats_cb *cb, void *arg)
{
    char msgprefix[KEY_SIZE];
    struct msgcall m;

    if (!l || !cb)
        return -1;
    memset(&m, 0, sizeof(m));
    global_keys(l, &m, 0);
    for (int i = 0; i < 4; i++)
        push_str(&m, m.keys[i]);
    snprintf(msgprefix, sizeof(msgprefix), "%sledger:m:", l->prefix);
    push_str(&m, msgprefix);
    struct op *o = op_new(OP_STATS, arg);
    if (o)
        o->cb.stats = cb;
    return send(l, LEDGERLUA_STATS, 4, &m, o);
}
