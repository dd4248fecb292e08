/* Tests for cache/ledger against a real redis-server on a free port, two instances (two
 * rconns, two ledgers) on one event loop: the lifecycle, redelivery with the same and a
 * new CorrelationId, lease expiry, the outbox passing from a dead instance to a live one,
 * TTLs, 20 racing dequeues, Redis stopped, SCRIPT FLUSH, and the Lua scripts agreeing with
 * ledgerrule on every state. Every callback is counted: each must run exactly once. */
#define _GNU_SOURCE
#include "check.h"
#include "ledger.h"
#include "ledgerlua.h"
#include "log.h"
#include "rconn.h"
#include "rconn/server.h"

#include <event2/event.h>
#include <stdbool.h>

#define SLACK_MS 250 /* allowed lateness of a timeout on a busy 2-core machine */
#define ACT "b0b5401e-56ca-4dc8-b566-84389a001236"
#define MARGIN_MS 3600000LL
#define TTL_MS (7 * 24 * 3600 * 1000LL + MARGIN_MS)
#define BODY_CAP 2048

static struct event_base *base;
static char tmpdir[256];
static struct srv server;
static struct rconn *conn_a, *conn_b, *admin;

/* ---- loop and result holders ---- */

static void spin_ms(int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

#define WAIT_FOR(cond, ms)                                                 \
    ({                                                                     \
        long long end_ = srv_now_ms() + (ms);                              \
        while (!(cond) && srv_now_ms() < end_)                             \
            spin_ms(1);                                                    \
        (cond);                                                            \
    })

static void copy(char *dst, size_t cap, const char *src, size_t len)
{
    len = len < cap - 1 ? len : cap - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

struct dq {
    int n;
    enum ledger_err err;
    enum ledger_verdict verdict;
    char id[LEDGERKEY_ID_SIZE];
    unsigned deliveries;
    char holder[LEDGER_NAME_MAX + 1];
    long long left, sent_ms, done_ms;
    bool has_body;
    char body[BODY_CAP];
    size_t body_len;
};

static void on_dq(void *arg, enum ledger_err err, const struct ledger_dequeue_result *r)
{
    struct dq *d = arg;

    d->n++;
    d->err = err;
    d->done_ms = srv_now_ms();
    if (!r)
        return;
    d->verdict = r->verdict;
    copy(d->id, sizeof(d->id), r->id, strlen(r->id));
    copy(d->holder, sizeof(d->holder), r->holder, strlen(r->holder));
    d->deliveries = r->deliveries;
    d->left = r->lease_left_ms;
    d->has_body = r->body != NULL;
    if (r->body) {
        copy(d->body, sizeof(d->body), r->body, r->body_len);
        d->body_len = r->body_len;
    }
}

struct dn {
    int n;
    enum ledger_err err;
    enum ledger_status status;
    char id[LEDGERKEY_ID_SIZE];
    bool has_body;
    char body[BODY_CAP];
    size_t body_len;
    long long sent_ms, done_ms;
};

static void on_dn(void *arg, enum ledger_err err, const struct ledger_result *r)
{
    struct dn *d = arg;

    d->n++;
    d->err = err;
    d->done_ms = srv_now_ms();
    if (!r)
        return;
    d->status = r->status;
    copy(d->id, sizeof(d->id), r->id, strlen(r->id));
    d->has_body = r->body != NULL;
    if (r->body) {
        copy(d->body, sizeof(d->body), r->body, r->body_len);
        d->body_len = r->body_len;
    }
}

struct cl {
    int n;
    enum ledger_err err;
    size_t count;
    char ids[8][LEDGERKEY_ID_SIZE];
    char bodies[8][BODY_CAP];
    unsigned attempts[8];
    long long sent_ms, done_ms;
};

static void on_cl(void *arg, enum ledger_err err, const struct ledger_claim *e, size_t n)
{
    struct cl *c = arg;

    c->n++;
    c->err = err;
    c->count = n;
    c->done_ms = srv_now_ms();
    for (size_t i = 0; i < n && i < 8; i++) {
        copy(c->ids[i], sizeof(c->ids[i]), e[i].id, strlen(e[i].id));
        copy(c->bodies[i], sizeof(c->bodies[i]), e[i].body, e[i].body_len);
        c->attempts[i] = e[i].attempts;
    }
}

struct st {
    int n;
    enum ledger_err err;
    struct ledger_stats s;
    long long sent_ms, done_ms;
};

static void on_st(void *arg, enum ledger_err err, const struct ledger_stats *s)
{
    struct st *t = arg;

    t->n++;
    t->err = err;
    t->done_ms = srv_now_ms();
    if (s)
        t->s = *s;
}

/* ---- raw Redis (through the admin connection) ---- */

struct raw {
    int n;
    enum rconn_result res;
    int type;
    long long integer;
    char str[BODY_CAP];
    size_t len, elements;
    char elems[128][160];
};

static void on_raw(void *arg, enum rconn_result res, const redictReply *r)
{
    struct raw *w = arg;

    w->n++;
    w->res = res;
    w->type = r ? r->type : -1;
    if (r && r->type == REDICT_REPLY_INTEGER)
        w->integer = r->integer;
    if (r && r->str) {
        copy(w->str, sizeof(w->str), r->str, r->len);
        w->len = r->len;
    }
    for (size_t i = 0; r && r->type == REDICT_REPLY_ARRAY && i < r->elements && i < 128; i++) {
        const redictReply *e = r->element[i];
        if (e->type == REDICT_REPLY_INTEGER)
            snprintf(w->elems[i], sizeof(w->elems[i]), "%lld", e->integer);
        else if (e->str)
            copy(w->elems[i], sizeof(w->elems[i]), e->str, e->len);
        w->elements = i + 1;
    }
}

/* Runs one command (NULL-terminated words) on the admin connection. */
static struct raw redis_do(const char *a0, ...)
{
    const char *argv[16] = { a0 };
    int argc = 1;
    struct raw w;
    va_list ap;

    memset(&w, 0, sizeof(w));
    va_start(ap, a0);
    while (argc < 16 && (argv[argc] = va_arg(ap, const char *)))
        argc++;
    va_end(ap);
    CHECK(rconn_command_argv(admin, on_raw, &w, 2000, argc, argv, NULL) == 0);
    CHECK(WAIT_FOR(w.n > 0, 3000) && w.n == 1 && w.res == RCONN_OK);
    return w;
}

static bool is_up(struct rconn *c)
{
    struct rconn_health h;

    rconn_get_health(c, &h);
    return h.connected;
}

static struct rconn *connect_redis(int port)
{
    struct rconn_options o = { .host = "127.0.0.1", .port = port, .connect_timeout_ms = 1000,
                               .command_timeout_ms = 1000, .reconnect_min_ms = 50,
                               .reconnect_max_ms = 200 };
    struct rconn *c = rconn_new(base, &o);

    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    return c;
}

/* ---- bodies and calls ---- */

static long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A GUID that differs by `n` and by `tag` (a hex digit naming its role). */
static void guid(char out[GUID_CANON_SIZE], char tag, unsigned n)
{
    snprintf(out, GUID_CANON_SIZE, "%c%07x-0000-4000-8000-00000000%04x", tag, n, n & 0xffff);
}

/* A dequeue body as D365 sends it; blob NULL gives DownloadLocation null. */
static void body_for(char *out, size_t cap, const char *corr, const char *pop, const char *blob,
                     bool http80, const char *last)
{
    char loc[400] = "null";

    if (blob)
        snprintf(loc, sizeof(loc), "\"%s/api/connector/download/%%7B%s%%7D?correlation-id=%s"
                 "&blob=%s\"", http80 ? "http://fo.example.com:80" : "https://fo.example.com",
                 ACT, corr, blob);
    snprintf(out, cap, "{\"CorrelationId\":\"%s\",\"PopReceipt\":\"%s\",\"DownloadLocation\":%s,"
             "\"IsDownLoadFileExist\":true,\"FileDownLoadErrorMessage\":\"\","
             "\"LastDequeueDateTime\":%s}", corr, pop, loc, last ? last : "null");
}

static struct ledger *mk(struct rconn *c, const char *prefix, const char *inst, int timeout_ms,
                         unsigned ob_lease_ms)
{
    struct ledger_opts o = { .prefix = prefix, .instance = inst, .timeout_ms = timeout_ms,
                             .margin_ms = MARGIN_MS, .outbox_lease_ms = ob_lease_ms };
    struct ledger *l = ledger_new(c, &o);

    CHECK(l != NULL);
    return l;
}

static int send_dequeue(struct ledger *l, const char *body, const char *client, unsigned lease,
                        struct dq *d)
{
    struct ledgerkey k;

    memset(d, 0, sizeof(*d));
    d->sent_ms = srv_now_ms();
    if (ledgerkey_parse(body, strlen(body), "prod", ACT, &k) != LEDGERKEY_OK)
        return -1;
    return ledger_on_dequeue(l, &k, body, strlen(body), client, lease, on_dq, d);
}

static struct dq dequeue(struct ledger *l, const char *body, const char *client, unsigned lease)
{
    struct dq d;

    CHECK(send_dequeue(l, body, client, lease, &d) == 0);
    CHECK(d.n == 0); /* never from inside the call */
    CHECK(WAIT_FOR(d.n > 0, 3000) && d.n == 1 && d.err == LEDGER_OK);
    return d;
}

enum dn_op { DN_DELIVER, DN_CONFIRM, DN_ACK, DN_RENEW, DN_RELEASE };

static int send_dn(struct ledger *l, enum dn_op op, const char *id, struct dn *d)
{
    memset(d, 0, sizeof(*d));
    d->sent_ms = srv_now_ms();
    switch (op) {
    case DN_DELIVER: return ledger_mark_delivered(l, id, on_dn, d);
    case DN_CONFIRM: return ledger_confirm(l, id, "client-x", on_dn, d);
    case DN_ACK: return ledger_mark_acked(l, id, on_dn, d);
    case DN_RENEW: return ledger_outbox_renew(l, id, on_dn, d);
    case DN_RELEASE: return ledger_outbox_release(l, id, 0, on_dn, d);
    }
    return -1;
}

static struct dn call(struct ledger *l, enum dn_op op, const char *id)
{
    struct dn d;

    CHECK(send_dn(l, op, id, &d) == 0);
    CHECK(d.n == 0);
    CHECK(WAIT_FOR(d.n > 0, 3000) && d.n == 1 && d.err == LEDGER_OK);
    return d;
}

static struct cl claim(struct ledger *l, unsigned max)
{
    struct cl c;

    memset(&c, 0, sizeof(c));
    CHECK(ledger_outbox_claim(l, max, on_cl, &c) == 0);
    CHECK(WAIT_FOR(c.n > 0, 3000) && c.n == 1 && c.err == LEDGER_OK);
    return c;
}

static struct ledger_stats stats(struct ledger *l)
{
    struct st t;

    memset(&t, 0, sizeof(t));
    CHECK(ledger_stats(l, on_st, &t) == 0);
    CHECK(WAIT_FOR(t.n > 0, 3000) && t.n == 1 && t.err == LEDGER_OK);
    return t.s;
}

static struct raw hget(const char *prefix, const char *id, const char *field)
{
    char key[300];

    snprintf(key, sizeof(key), "%sledger:m:%s", prefix, id);
    return redis_do("HGET", key, field, NULL);
}


/* ---- tests ---- */

static void test_script_shas(void)
{
    for (int i = 0; i < LEDGERLUA_COUNT; i++) {
        const struct rconn_script *s = ledgerlua_script((enum ledgerlua_id)i);
        struct rconn_script mine;
        CHECK(s != NULL && rconn_script_init(&mine, s->body) == 0);
        CHECK_STR(mine.sha1, s->sha1);
    }
    CHECK(ledgerlua_script(LEDGERLUA_COUNT) == NULL);
}

/* new -> delivered -> confirmed -> acked, byte-exact bodies, idempotent repeats. */
static void test_lifecycle(void)
{
    struct ledger *la = mk(conn_a, "t-life:", "inst-A", 0, 60000);
    struct ledger *lb = mk(conn_b, "t-life:", "inst-B", 0, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP];

    guid(corr, 'c', 1);
    guid(blob, 'b', 1);
    /* Spacing, an escaped non-ASCII character and the field order kept as received. */
    snprintf(body, sizeof(body), "{ \"CorrelationId\" : \"%s\",\n \"PopReceipt\":\"P1+/=\","
             "\"DownloadLocation\":\"http://fo.example.com:80/api/connector/download/%s"
             "?correlation-id=%s&blob=%s\",\"IsDownLoadFileExist\":true,"
             "\"FileDownLoadErrorMessage\":\"caf\\u00e9\",\"LastDequeueDateTime\":null }",
             corr, ACT, corr, blob);
    struct dq d = dequeue(la, body, "consumer-1", 60000);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "prod:%s:blob:%s", ACT, blob);
    CHECK(d.verdict == LEDGER_NEW && d.deliveries == 1 && !d.has_body);
    CHECK_STR(d.id, id);
    struct raw w = hget("t-life:", id, "body");
    CHECK(w.len == strlen(body) && strcmp(w.str, body) == 0);
    CHECK_STR(hget("t-life:", id, "state").str, "leased");
    CHECK_STR(hget("t-life:", id, "holder").str, "inst-A");
    CHECK_STR(hget("t-life:", id, "client").str, "consumer-1");
    CHECK_STR(hget("t-life:", id, "pop").str, "P1+/=");

    CHECK(call(lb, DN_DELIVER, id).status == LEDGER_NOT_HOLDER);
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_DONE);
    CHECK_STR(hget("t-life:", id, "state").str, "delivered");
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_RENEW, id).status == LEDGER_NOT_FOUND); /* no outbox entry yet */

    struct dn c = call(lb, DN_CONFIRM, id); /* the consumer's ack reached instance B */
    CHECK(c.status == LEDGER_DONE && c.has_body && c.body_len == strlen(body));
    CHECK(strcmp(c.body, body) == 0);
    CHECK_STR(c.id, id);
    CHECK_STR(hget("t-life:", id, "state").str, "confirmed");
    CHECK_STR(hget("t-life:", id, "confirmed_by").str, "client-x");
    CHECK(call(lb, DN_CONFIRM, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_ALREADY);
    struct ledger_stats s = stats(la);
    CHECK(s.new_messages == 1 && s.confirmed == 1 && s.confirm_repeats == 2);
    CHECK(s.outbox_depth == 1 && s.unacked == 1 && s.unconfirmed == 0 && s.acked == 0);
    CHECK(claim(la, 10).count == 0); /* leased to B, which acks upstream now */

    CHECK(call(lb, DN_ACK, id).status == LEDGER_DONE);
    CHECK_STR(hget("t-life:", id, "state").str, "acked");
    CHECK(redis_do("ZSCORE", "t-life:ledger:outbox", id, NULL).type == REDICT_REPLY_NIL);
    CHECK(call(la, DN_ACK, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_ALREADY);
    CHECK(call(lb, DN_RELEASE, id).status == LEDGER_ALREADY);
    s = stats(lb);
    CHECK(s.acked == 1 && s.outbox_depth == 0 && s.unacked == 0 && s.oldest_unacked_ms == 0);
    CHECK(s.confirmed == 1 && s.redeliveries == 0 && s.duplicates_suppressed == 0);

    /* Unknown ids. */
    char other[LEDGERKEY_ID_SIZE];
    snprintf(other, sizeof(other), "prod:%s:blob:%s", ACT, corr);
    CHECK(call(la, DN_DELIVER, other).status == LEDGER_NOT_FOUND);
    CHECK(call(la, DN_CONFIRM, other).status == LEDGER_NOT_FOUND);
    CHECK(call(la, DN_ACK, other).status == LEDGER_NOT_FOUND);
    CHECK(call(la, DN_RELEASE, other).status == LEDGER_NOT_FOUND);
    CHECK(redis_do("EXISTS", "t-life:ledger:m:prod:" ACT ":blob:c0000001-0000-4000-8000-000000000001",
               NULL).integer == 0);

    /* Only the known fields are stored: no header, no token. */
    char key[300];
    snprintf(key, sizeof(key), "t-life:ledger:m:%s", id);
    static const char *const known[] = {
        "state", "body", "corr", "pop", "holder", "client", "lease_until", "first_ms",
        "last_dequeue_ms", "dequeues", "deliveries", "delivered_ms", "confirmed_ms",
        "confirmed_by", "acked_ms", "ob_owner", "ob_attempts",
    };
    w = redis_do("HKEYS", key, NULL);
    CHECK(w.elements >= 10);
    for (size_t i = 0; i < w.elements; i++) {
        bool ok = false;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
            ok = ok || strcmp(w.elems[i], known[j]) == 0;
        if (!ok)
            fprintf(stderr, "unexpected field %s\n", w.elems[i]);
        CHECK(ok);
    }
    ledger_free(la);
    ledger_free(lb);
}

/* Redelivery after confirmation, with the same and with a new CorrelationId, and after
 * the ack: never delivered again, the newest body kept for the re-ack. */
static void test_redelivery_after_confirm(void)
{
    struct ledger *la = mk(conn_a, "t-dup:", "inst-A", 0, 60000);
    struct ledger *lb = mk(conn_b, "t-dup:", "inst-B", 0, 60000);
    char c1[GUID_CANON_SIZE], c2[GUID_CANON_SIZE], blob[GUID_CANON_SIZE];
    char b1[BODY_CAP], b2[BODY_CAP], b3[BODY_CAP], b4[BODY_CAP];

    guid(c1, 'c', 2);
    guid(c2, 'd', 2);
    guid(blob, 'b', 2);
    body_for(b1, sizeof(b1), c1, "POP-1", blob, false, NULL);
    body_for(b2, sizeof(b2), c1, "POP-2", blob, false, "\"2024-05-01T10:30:00Z\"");
    body_for(b3, sizeof(b3), c2, "POP-3", blob, true, "\"2024-05-01T11:00:00Z\"");
    body_for(b4, sizeof(b4), c2, "POP-4", blob, true, "\"2024-05-01T11:30:00Z\"");
    struct dq d = dequeue(la, b1, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_NEW);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "%s", d.id);
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_DONE);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_DONE);

    /* Same CorrelationId, new PopReceipt, at instance B. */
    d = dequeue(lb, b2, "consumer-2", 60000);
    CHECK(d.verdict == LEDGER_DUPLICATE_CONFIRMED && d.has_body);
    CHECK(d.body_len == strlen(b2) && strcmp(d.body, b2) == 0);
    CHECK_STR(d.id, id);
    CHECK_STR(hget("t-dup:", id, "body").str, b2);
    CHECK_STR(hget("t-dup:", id, "ob_owner").str, "inst-B"); /* B re-acks at once */
    CHECK(claim(la, 10).count == 0);
    /* A new CorrelationId (fosim "change" mode), http://host:80: still the same message. */
    d = dequeue(la, b3, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_DUPLICATE_CONFIRMED && strcmp(d.body, b3) == 0);
    CHECK_STR(d.id, id);
    CHECK_STR(hget("t-dup:", id, "pop").str, "POP-3");
    CHECK_STR(hget("t-dup:", id, "corr").str, c2);
    CHECK(call(lb, DN_RELEASE, id).status == LEDGER_NOT_HOLDER); /* A re-acks it now */
    CHECK(call(la, DN_ACK, id).status == LEDGER_DONE);
    /* Offered again after the ack (it did not stick upstream): re-ack, never deliver. */
    d = dequeue(lb, b4, "consumer-2", 60000);
    CHECK(d.verdict == LEDGER_DUPLICATE_CONFIRMED && strcmp(d.body, b4) == 0);
    CHECK_STR(hget("t-dup:", id, "state").str, "confirmed");
    CHECK(redis_do("ZSCORE", "t-dup:ledger:outbox", id, NULL).type == REDICT_REPLY_STRING);
    struct ledger_stats s = stats(la);
    CHECK(s.duplicates_suppressed == 3 && s.new_messages == 1 && s.redeliveries == 0);
    CHECK(s.outbox_depth == 1 && s.confirmed == 1);
    CHECK_STR(hget("t-dup:", id, "deliveries").str, "1");
    CHECK_STR(hget("t-dup:", id, "dequeues").str, "4");
    CHECK(call(lb, DN_ACK, id).status == LEDGER_DONE);
    /* Both CorrelationIds are aliases of the blob id. */
    char alias[300];
    snprintf(alias, sizeof(alias), "t-dup:ledger:alias:prod:%s:%s", ACT, c1);
    CHECK_STR(redis_do("GET", alias, NULL).str, id);
    snprintf(alias, sizeof(alias), "t-dup:ledger:alias:prod:%s:%s", ACT, c2);
    CHECK_STR(redis_do("GET", alias, NULL).str, id);
    ledger_free(la);
    ledger_free(lb);
}

/* A live lease is left alone (even by its own instance); an expired one is redelivered. */
static void test_lease_expiry(void)
{
    struct ledger *la = mk(conn_a, "t-lease:", "inst-A", 0, 60000);
    struct ledger *lb = mk(conn_b, "t-lease:", "inst-B", 0, 60000);
    char c1[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b1[BODY_CAP], b2[BODY_CAP], b3[BODY_CAP];

    guid(c1, 'c', 3);
    guid(blob, 'b', 3);
    body_for(b1, sizeof(b1), c1, "POP-1", blob, false, NULL);
    body_for(b2, sizeof(b2), c1, "POP-2", blob, false, "\"x\"");
    body_for(b3, sizeof(b3), c1, "POP-3", blob, false, "\"y\"");
    struct dq d = dequeue(la, b1, "consumer-1", 400);
    CHECK(d.verdict == LEDGER_NEW);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "%s", d.id);
    d = dequeue(lb, b2, "consumer-2", 400);
    CHECK(d.verdict == LEDGER_LEASED_ELSEWHERE && !d.has_body && d.deliveries == 1);
    CHECK_STR(d.holder, "inst-A");
    CHECK(d.left > 0 && d.left <= 400);
    CHECK_STR(hget("t-lease:", id, "pop").str, "POP-2"); /* the newest PopReceipt is kept */
    d = dequeue(la, b2, "consumer-3", 400);
    CHECK(d.verdict == LEDGER_LEASED_ELSEWHERE);
    spin_ms(500);
    d = dequeue(lb, b3, "consumer-2", 60000);
    CHECK(d.verdict == LEDGER_REDELIVERY && d.deliveries == 2 && !d.has_body);
    CHECK_STR(d.id, id);
    CHECK_STR(hget("t-lease:", id, "holder").str, "inst-B");
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_NOT_HOLDER);
    CHECK(call(lb, DN_DELIVER, id).status == LEDGER_DONE);
    /* The first consumer confirms late: any confirmation counts, the body is the newest. */
    struct dn c = call(la, DN_CONFIRM, id);
    CHECK(c.status == LEDGER_DONE && strcmp(c.body, b3) == 0);
    struct ledger_stats s = stats(la);
    CHECK(s.new_messages == 1 && s.redeliveries == 1 && s.leased_elsewhere == 2);
    ledger_free(la);
    ledger_free(lb);
}

/* DownloadLocation null: keyed by CorrelationId, redirected through the alias table. */
static void test_fallback_ids(void)
{
    struct ledger *la = mk(conn_a, "t-fb:", "inst-A", 0, 60000);
    char c1[GUID_CANON_SIZE], c9[GUID_CANON_SIZE], blob[GUID_CANON_SIZE];
    char b1[BODY_CAP], b2[BODY_CAP], b3[BODY_CAP], b9[BODY_CAP];

    guid(c1, 'c', 4);
    guid(c9, 'c', 9);
    guid(blob, 'b', 4);
    body_for(b1, sizeof(b1), c1, "POP-1", blob, false, NULL);
    body_for(b2, sizeof(b2), c1, "POP-2", NULL, false, "\"x\"");
    body_for(b3, sizeof(b3), c1, "POP-3", NULL, false, "\"y\"");
    body_for(b9, sizeof(b9), c9, "POP-9", NULL, false, NULL);
    struct dq d = dequeue(la, b1, "consumer-1", 60000);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "%s", d.id);
    CHECK(d.verdict == LEDGER_NEW && strstr(id, ":blob:") != NULL);
    d = dequeue(la, b2, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_LEASED_ELSEWHERE);
    CHECK_STR(d.id, id); /* resolved to the blob id */
    /* The consumer's ack carries only CorrelationId and PopReceipt. */
    char ack_id[LEDGERKEY_ID_SIZE];
    snprintf(ack_id, sizeof(ack_id), "prod:%s:corr:%s", ACT, c1);
    struct dn c = call(la, DN_CONFIRM, ack_id);
    CHECK(c.status == LEDGER_DONE && strcmp(c.body, b2) == 0);
    CHECK_STR(c.id, id);
    d = dequeue(la, b3, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_DUPLICATE_CONFIRMED && strcmp(d.body, b3) == 0);
    CHECK(call(la, DN_ACK, ack_id).status == LEDGER_DONE);
    CHECK_STR(hget("t-fb:", id, "state").str, "acked");
    /* Never seen with a blob: its own CORR id. */
    d = dequeue(la, b9, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_NEW && strstr(d.id, ":corr:") != NULL);
    CHECK(stats(la).fallback_ids == 3);
    ledger_free(la);
}

/* The outbox: A confirms and "dies"; B takes the entry over when A's lease runs out. */
static void test_outbox_takeover(void)
{
    struct ledger *la = mk(conn_a, "t-ob:", "inst-A", 0, 400);
    struct ledger *lb = mk(conn_b, "t-ob:", "inst-B", 0, 400);
    char c1[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b1[BODY_CAP];

    guid(c1, 'c', 5);
    guid(blob, 'b', 5);
    body_for(b1, sizeof(b1), c1, "POP-1", blob, false, NULL);
    struct dq d = dequeue(la, b1, "consumer-1", 60000);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "%s", d.id);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_DONE);
    /* A stays alive for a while: its renewals keep B out past the first lease. */
    for (int i = 0; i < 3; i++) {
        spin_ms(200);
        CHECK(call(la, DN_RENEW, id).status == LEDGER_DONE);
        CHECK(claim(lb, 10).count == 0);
    }
    /* Then A dies (no more renewals). */
    spin_ms(500);
    struct cl c = claim(lb, 10);
    CHECK(c.count == 1 && c.attempts[0] == 1);
    CHECK_STR(c.ids[0], id);
    CHECK_STR(c.bodies[0], b1);
    CHECK(call(la, DN_RENEW, id).status == LEDGER_NOT_HOLDER);
    CHECK(call(la, DN_RELEASE, id).status == LEDGER_NOT_HOLDER);
    /* B's upstream ack fails: it gives the entry back with a backoff of 300 ms. */
    struct dn r;
    memset(&r, 0, sizeof(r));
    CHECK(ledger_outbox_release(lb, id, 300, on_dn, &r) == 0);
    CHECK(WAIT_FOR(r.n, 3000) && r.err == LEDGER_OK && r.status == LEDGER_DONE);
    CHECK(claim(la, 10).count == 0);
    spin_ms(400);
    c = claim(la, 10);
    CHECK(c.count == 1 && c.attempts[0] == 2 && strcmp(c.bodies[0], b1) == 0);
    CHECK(call(lb, DN_RENEW, id).status == LEDGER_NOT_HOLDER);
    CHECK(call(la, DN_ACK, id).status == LEDGER_DONE);
    CHECK(redis_do("ZCARD", "t-ob:ledger:outbox", NULL).integer == 0);
    spin_ms(500);
    CHECK(claim(lb, 10).count == 0);
    CHECK(call(lb, DN_RELEASE, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_RENEW, id).status == LEDGER_ALREADY);
    /* Entries that are not confirmed any more (or gone) are dropped, not handed out. */
    CHECK(redis_do("ZADD", "t-ob:ledger:outbox", "0", "prod:" ACT ":blob:ghost", NULL).res == RCONN_OK);
    CHECK(redis_do("ZADD", "t-ob:ledger:outbox", "0", id, NULL).res == RCONN_OK);
    CHECK(claim(lb, 10).count == 0);
    CHECK(redis_do("ZCARD", "t-ob:ledger:outbox", NULL).integer == 0);
    /* A claim hands out at most `max`, oldest due first. */
    char ids[3][LEDGERKEY_ID_SIZE];
    for (unsigned i = 0; i < 3; i++) {
        char c2[GUID_CANON_SIZE], blob2[GUID_CANON_SIZE], b2[BODY_CAP];
        guid(c2, 'c', 50 + i);
        guid(blob2, 'b', 50 + i);
        body_for(b2, sizeof(b2), c2, "POP-1", blob2, false, NULL);
        d = dequeue(la, b2, "consumer-1", 60000);
        snprintf(ids[i], sizeof(ids[i]), "%s", d.id);
        CHECK(call(la, DN_CONFIRM, ids[i]).status == LEDGER_DONE);
        spin_ms(20);
    }
    spin_ms(450);
    c = claim(lb, 2);
    CHECK(c.count == 2 && strcmp(c.ids[0], ids[0]) == 0 && strcmp(c.ids[1], ids[1]) == 0);
    c = claim(lb, 2);
    CHECK(c.count == 1 && strcmp(c.ids[0], ids[2]) == 0);
    CHECK(stats(la).outbox_depth == 3);
    ledger_free(la);
    ledger_free(lb);
}

/* 20 dequeues of one message at once from two instances: exactly one NEW. */
static void test_concurrency(void)
{
    struct ledger *la = mk(conn_a, "t-race:", "inst-A", 0, 60000);
    struct ledger *lb = mk(conn_b, "t-race:", "inst-B", 0, 60000);
    char c1[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b[20][BODY_CAP];
    struct dq d[20];
    int new = 0, elsewhere = 0, once = 0;

    guid(c1, 'c', 6);
    guid(blob, 'b', 6);
    for (int i = 0; i < 20; i++) {
        char pop[16];
        snprintf(pop, sizeof(pop), "POP-%d", i);
        body_for(b[i], sizeof(b[i]), c1, pop, blob, i % 3 == 0, NULL);
        CHECK(send_dequeue(i % 2 ? lb : la, b[i], "consumer-1", 60000, &d[i]) == 0);
    }
    CHECK(WAIT_FOR(d[19].n && d[18].n, 3000));
    spin_ms(50);
    for (int i = 0; i < 20; i++) {
        once += d[i].n == 1 && d[i].err == LEDGER_OK;
        new += d[i].verdict == LEDGER_NEW;
        elsewhere += d[i].verdict == LEDGER_LEASED_ELSEWHERE;
    }
    CHECK(once == 20 && new == 1 && elsewhere == 19);
    struct ledger_stats s = stats(la);
    CHECK(s.new_messages == 1 && s.leased_elsewhere == 19 && s.unconfirmed == 1);
    ledger_free(la);
    ledger_free(lb);
}

/* Gauges: ages of the oldest unconfirmed and unacked messages; expired members dropped. */
static void test_stats_ages(void)
{
    struct ledger *la = mk(conn_a, "t-age:", "inst-A", 0, 60000);
    char c[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b[BODY_CAP], id[LEDGERKEY_ID_SIZE];

    struct ledger_stats s = stats(la);
    CHECK(s.new_messages == 0 && s.outbox_depth == 0 && s.oldest_unconfirmed_ms == 0 &&
          s.oldest_unacked_ms == 0);
    guid(c, 'c', 7);
    guid(blob, 'b', 7);
    body_for(b, sizeof(b), c, "POP-1", blob, false, NULL);
    snprintf(id, sizeof(id), "%s", dequeue(la, b, "consumer-1", 60000).id);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_DONE);
    spin_ms(300);
    guid(c, 'c', 8);
    guid(blob, 'b', 8);
    body_for(b, sizeof(b), c, "POP-1", blob, false, NULL);
    CHECK(dequeue(la, b, "consumer-1", 60000).verdict == LEDGER_NEW);
    spin_ms(300);
    /* A member whose entry expired long ago must not count as the oldest. */
    CHECK(redis_do("ZADD", "t-age:ledger:unconfirmed", "1", "prod:" ACT ":blob:expired", NULL)
              .res == RCONN_OK);
    s = stats(la);
    CHECK(s.unconfirmed == 1 && s.unacked == 1 && s.outbox_depth == 1);
    CHECK(s.oldest_unconfirmed_ms >= 250 && s.oldest_unconfirmed_ms < 5000);
    CHECK(s.oldest_unacked_ms >= 550 && s.oldest_unacked_ms < 5000);
    CHECK(redis_do("ZSCORE", "t-age:ledger:unconfirmed", "prod:" ACT ":blob:expired", NULL).type ==
          REDICT_REPLY_NIL);
    ledger_free(la);
}

/* The Lua scripts and ledgerrule agree on every state, lease, holder and outbox owner. */
static const char *const M_PREFIX = "t-mirror:";

static void mirror_setup(const char *key, int state, long long until, const char *holder,
                         const char *owner, const char *body)
{
    char until_s[24], last_s[24];

    snprintf(until_s, sizeof(until_s), "%lld", until);
    snprintf(last_s, sizeof(last_s), "%lld", wall_ms());
    redis_do("DEL", key, NULL);
    if (state != LEDGER_S_NONE)
        redis_do("HSET", key, "state", ledgerrule_state_str((enum ledger_state)state), "holder",
             holder, "lease_until", until_s, "ob_owner", owner, "body", body,
             "last_dequeue_ms", last_s, NULL);
}

static enum ledger_state stored_state(const char *id)
{
    enum ledger_state s = LEDGER_S_NONE;
    struct raw w = hget(M_PREFIX, id, "state");

    if (w.type == REDICT_REPLY_STRING)
        CHECK(ledgerrule_state_parse(w.str, &s) == 0);
    return s;
}

static int mirror_case(struct ledger *la, const char *key, const char *id, const char *body,
                       int op, const struct ledgerrule_entry *e)
{
    enum ledger_state next = e->state;
    long long now = wall_ms();
    int want, got;

    if (op == 0) {
        want = ledgerrule_dequeue(e, now, &next);
        struct dq d = dequeue(la, body, "consumer-m", 60000);
        got = d.verdict;
        if (got == LEDGER_LEASED_ELSEWHERE)
            CHECK_STR(d.holder, e->holder);
    } else {
        static const enum dn_op ops[] = { DN_DELIVER, DN_CONFIRM, DN_ACK, DN_RENEW, DN_RELEASE };
        if (op == 1)
            want = ledgerrule_deliver(e, "inst-A", &next);
        else if (op == 2)
            want = ledgerrule_confirm(e, &next);
        else if (op == 3)
            want = ledgerrule_ack(e, &next);
        else
            want = ledgerrule_outbox(e, "inst-A");
        got = call(la, ops[op - 1], id).status;
    }
    int ok = want == got && stored_state(id) == next;
    if (!ok)
        fprintf(stderr, "mirror: state %s op %d: rule %d lua %d, next %s stored %s\n",
                ledgerrule_state_str(e->state), op, want, got, ledgerrule_state_str(next),
                ledgerrule_state_str(stored_state(id)));
    return ok;
}

static void test_mirror(void)
{
    struct ledger *la = mk(conn_a, M_PREFIX, "inst-A", 0, 60000);
    static const char *const names[] = { "inst-A", "inst-B" };
    static const char *const owners[] = { "inst-A", "inst-B", "" };
    char c[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP], id[LEDGERKEY_ID_SIZE];
    char key[300];
    int cases = 0, agree = 0;

    guid(c, 'c', 10);
    guid(blob, 'b', 10);
    body_for(body, sizeof(body), c, "POP-M", blob, false, NULL);
    snprintf(id, sizeof(id), "prod:%s:blob:%s", ACT, blob);
    snprintf(key, sizeof(key), "%sledger:m:%s", M_PREFIX, id);
    for (int s = LEDGER_S_NONE; s <= LEDGER_S_ACKED; s++)
        for (int live = 0; live < 2; live++)
            for (int h = 0; h < 2; h++)
                for (int o = 0; o < 3; o++)
                    for (int op = 0; op < 6; op++) {
                        long long until = wall_ms() + (live ? 3600000 : -3600000);
                        struct ledgerrule_entry e = { (enum ledger_state)s, names[h], until,
                                                      owners[o] };
                        mirror_setup(key, s, until, names[h], owners[o], body);
                        agree += mirror_case(la, key, id, body, op, &e);
                        cases++;
                    }
    CHECK(cases == 360 && agree == cases);
    redis_do("DEL", key, NULL);
    ledger_free(la);
}

/* Redis stopped: every call ends with a timeout within its limit, exactly once. */
static void test_redis_stopped(void)
{
    struct rconn *c = connect_redis(server.port);
    struct ledger *l = mk(c, "t-stop:", "inst-S", 300, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP], id[LEDGERKEY_ID_SIZE];
    struct dq d;
    struct dn dn[5];
    struct cl cl;
    struct st st;

    guid(corr, 'c', 11);
    guid(blob, 'b', 11);
    body_for(body, sizeof(body), corr, "POP-S", blob, false, NULL);
    snprintf(id, sizeof(id), "%s", dequeue(l, body, "consumer-1", 60000).id);
    kill(server.pid, SIGSTOP);
    long long t0 = srv_now_ms();
    CHECK(send_dequeue(l, body, "consumer-1", 60000, &d) == 0);
    for (int i = 0; i < 5; i++)
        CHECK(send_dn(l, (enum dn_op)i, id, &dn[i]) == 0);
    memset(&cl, 0, sizeof(cl));
    memset(&st, 0, sizeof(st));
    CHECK(ledger_outbox_claim(l, 5, on_cl, &cl) == 0);
    CHECK(ledger_stats(l, on_st, &st) == 0);
    CHECK(WAIT_FOR(d.n && dn[4].n && cl.n && st.n, 300 + 2 * SLACK_MS));
    long long worst = 0;
    int timeouts = d.err == LEDGER_ERR_TIMEOUT;
    worst = d.done_ms - t0;
    for (int i = 0; i < 5; i++) {
        timeouts += dn[i].err == LEDGER_ERR_TIMEOUT;
        worst = dn[i].done_ms - t0 > worst ? dn[i].done_ms - t0 : worst;
    }
    timeouts += (cl.err == LEDGER_ERR_TIMEOUT) + (st.err == LEDGER_ERR_TIMEOUT);
    worst = cl.done_ms - t0 > worst ? cl.done_ms - t0 : worst;
    worst = st.done_ms - t0 > worst ? st.done_ms - t0 : worst;
    CHECK(timeouts == 8);
    CHECK(worst >= 280 && worst <= 300 + SLACK_MS);
    kill(server.pid, SIGCONT);
    spin_ms(1500); /* late replies (if any) must be dropped */
    int once = (d.n == 1) + (cl.n == 1) + (st.n == 1);
    for (int i = 0; i < 5; i++)
        once += dn[i].n == 1;
    CHECK(once == 8);
    CHECK(WAIT_FOR(is_up(c) && is_up(conn_a) && is_up(conn_b) && is_up(admin), 5000));
    CHECK(dequeue(l, body, "consumer-1", 60000).verdict == LEDGER_LEASED_ELSEWHERE);
    ledger_free(l);
    rconn_free(c);
}

/* SCRIPT FLUSH: the next call reloads its script transparently. */
static void test_noscript(void)
{
    struct ledger *la = mk(conn_a, "t-flush:", "inst-A", 0, 60000);
    const char *sha = ledgerlua_script(LEDGERLUA_DEQUEUE)->sha1;
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP];

    guid(corr, 'c', 12);
    guid(blob, 'b', 12);
    body_for(body, sizeof(body), corr, "POP-F", blob, false, NULL);
    CHECK(dequeue(la, body, "consumer-1", 60000).verdict == LEDGER_NEW);
    CHECK(redis_do("SCRIPT", "FLUSH", NULL).res == RCONN_OK);
    CHECK_STR(redis_do("SCRIPT", "EXISTS", sha, NULL).elems[0], "0");
    struct dq d = dequeue(la, body, "consumer-1", 60000);
    CHECK(d.n == 1 && d.err == LEDGER_OK && d.verdict == LEDGER_LEASED_ELSEWHERE);
    CHECK_STR(redis_do("SCRIPT", "EXISTS", sha, NULL).elems[0], "1");
    CHECK(stats(la).leased_elsewhere == 1);
    ledger_free(la);
}

/* Not connected: errors come fast, later, once; freeing the rconn cancels. */
static void test_unavailable_and_free(void)
{
    struct rconn_options o = { .host = "127.0.0.1", .port = srv_free_port(),
                               .connect_timeout_ms = 500, .command_timeout_ms = 500,
                               .reconnect_min_ms = 50, .reconnect_max_ms = 100 };
    struct rconn *down = rconn_new(base, &o);
    struct ledger *l = mk(down, "t-down:", "inst-D", 0, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP];
    struct dq d;

    guid(corr, 'c', 13);
    guid(blob, 'b', 13);
    body_for(body, sizeof(body), corr, "POP-D", blob, false, NULL);
    spin_ms(100);
    CHECK(send_dequeue(l, body, "consumer-1", 60000, &d) == 0 && d.n == 0);
    CHECK(WAIT_FOR(d.n, 1000) && d.err == LEDGER_ERR_UNAVAILABLE);
    ledger_free(l);
    rconn_free(down);

    /* ledger_free with a call in flight: the call still completes. */
    struct rconn *c = connect_redis(server.port);
    l = mk(c, "t-down:", "inst-D", 0, 60000);
    CHECK(send_dequeue(l, body, "consumer-1", 60000, &d) == 0);
    ledger_free(l);
    CHECK(WAIT_FOR(d.n, 3000) && d.n == 1 && d.err == LEDGER_OK && d.verdict == LEDGER_NEW);
    /* rconn_free with a call in flight: cancelled, once, before rconn_free returns. */
    l = mk(c, "t-down:", "inst-D", 0, 60000);
    CHECK(send_dequeue(l, body, "consumer-1", 60000, &d) == 0);
    rconn_free(c);
    CHECK(d.n == 1 && d.err == LEDGER_ERR_CANCELLED);
    ledger_free(l);
}

static int never_called;
static void on_never(void *arg, enum ledger_err err, const struct ledger_result *r)
{
    never_called++;
}
static void on_never_dq(void *arg, enum ledger_err err, const struct ledger_dequeue_result *r)
{
    never_called++;
}

static void test_bad_args(void)
{
    struct ledger_opts o = { .instance = "inst-A" };
    struct ledger *la = mk(conn_a, "t-bad:", "inst-A", 0, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b1[BODY_CAP], b2[BODY_CAP];
    struct ledgerkey k;

    CHECK(ledger_new(NULL, &o) == NULL);
    CHECK(ledger_new(conn_a, NULL) == NULL);
    o.instance = "has space";
    CHECK(ledger_new(conn_a, &o) == NULL);
    o.instance = "";
    CHECK(ledger_new(conn_a, &o) == NULL);
    o.instance = "inst-A";
    o.prefix = "bad prefix";
    CHECK(ledger_new(conn_a, &o) == NULL);
    o.prefix = NULL;
    o.retention_ms = -1;
    CHECK(ledger_new(conn_a, &o) == NULL);
    o.retention_ms = 0;
    struct ledger *def = ledger_new(conn_a, &o);
    CHECK(def != NULL);
    ledger_free(def);
    ledger_free(NULL);

    guid(corr, 'c', 14);
    guid(blob, 'b', 14);
    body_for(b1, sizeof(b1), corr, "POP-1", blob, false, NULL);
    body_for(b2, sizeof(b2), corr, "POP-2", blob, false, NULL);
    CHECK(ledgerkey_parse(b1, strlen(b1), "prod", ACT, &k) == LEDGERKEY_OK);
    size_t n1 = strlen(b1);
    CHECK(ledger_on_dequeue(NULL, &k, b1, n1, "c", 1000, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, NULL, b1, n1, "c", 1000, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, n1, "c", 1000, NULL, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, n1, "c", 0, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, n1, "bad client", 1000, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, 0, "c", 1000, on_never_dq, NULL) == -1);
    /* The body must be the one the key came from (same id, same PopReceipt). */
    CHECK(ledger_on_dequeue(la, &k, b2, strlen(b2), "c", 1000, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, n1 - 1, "c", 1000, on_never_dq, NULL) == -1);
    struct ledgerkey forged = k;
    forged.id[strlen(forged.id) - 1] = 'f';
    CHECK(ledger_on_dequeue(la, &forged, b1, n1, "c", 1000, on_never_dq, NULL) == -1);
    forged = k;
    forged.pop_receipt[0] = '\0';
    CHECK(ledger_on_dequeue(la, &forged, b1, n1, "c", 1000, on_never_dq, NULL) == -1);
    /* A PopReceipt is required to record a dequeue. */
    char nopop[BODY_CAP];
    snprintf(nopop, sizeof(nopop), "{\"CorrelationId\":\"%s\"}", corr);
    CHECK(ledgerkey_parse(nopop, strlen(nopop), "prod", ACT, &k) == LEDGERKEY_OK);
    CHECK(ledger_on_dequeue(la, &k, nopop, strlen(nopop), "c", 1000, on_never_dq, NULL) == -1);

    CHECK(ledger_mark_delivered(la, "prod:not-an-id", on_never, NULL) == -1);
    CHECK(ledger_mark_delivered(la, NULL, on_never, NULL) == -1);
    CHECK(ledger_mark_delivered(la, k.id, NULL, NULL) == -1);
    CHECK(ledger_confirm(la, k.id, "", on_never, NULL) == -1);
    CHECK(ledger_confirm(NULL, k.id, "c", on_never, NULL) == -1);
    CHECK(ledger_mark_acked(la, "x", on_never, NULL) == -1);
    CHECK(ledger_outbox_renew(NULL, k.id, on_never, NULL) == -1);
    CHECK(ledger_outbox_release(la, "", 0, on_never, NULL) == -1);
    CHECK(ledger_outbox_claim(la, 0, on_cl, NULL) == -1);
    CHECK(ledger_outbox_claim(la, LEDGER_CLAIM_MAX + 1, on_cl, NULL) == -1);
    CHECK(ledger_outbox_claim(la, 1, NULL, NULL) == -1);
    CHECK(ledger_stats(la, NULL, NULL) == -1);
    spin_ms(50);
    CHECK(never_called == 0);
    CHECK_STR(ledger_err_str(LEDGER_ERR_TIMEOUT), "timeout");
    ledger_free(la);
}

/* Every key the ledger wrote expires after retention + margin. */
static void test_ttls(void)
{
    struct raw w = redis_do("KEYS", "t-*", NULL);
    int with_ttl = 0, kinds = 0;
    static const char *const must[] = { "ledger:m:", "ledger:alias:", "ledger:outbox",
                                        "ledger:unconfirmed", "ledger:unacked", "ledger:stats" };

    CHECK(w.elements >= 20 && w.elements < 128);
    for (size_t i = 0; i < w.elements; i++) {
        struct raw t = redis_do("PTTL", w.elems[i], NULL);
        bool ok = t.integer > TTL_MS - 120000 && t.integer <= TTL_MS;
        if (!ok)
            fprintf(stderr, "key %s: PTTL %lld\n", w.elems[i], t.integer);
        with_ttl += ok;
    }
    CHECK(with_ttl == (int)w.elements);
    for (size_t j = 0; j < sizeof(must) / sizeof(must[0]); j++) {
        bool seen = false;
        for (size_t i = 0; i < w.elements; i++)
            seen = seen || strstr(w.elems[i], must[j]) != NULL;
        kinds += seen;
    }
    CHECK(kinds == 6);
}

int main(void)
{
    char port[16];
    const char *args[] = { "--port", port, NULL };

    (void)srv_sh; /* part of the shared helper, not needed here */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_ERROR);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fogate-test-ledger-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    base = event_base_new();
    int p = srv_free_port();
    snprintf(port, sizeof(port), "%d", p);
    CHECK(srv_start(&server, p, tmpdir, args) == 0);
    conn_a = connect_redis(p);
    conn_b = connect_redis(p);
    admin = connect_redis(p);

    test_script_shas();
    test_lifecycle();
    test_redelivery_after_confirm();
    test_lease_expiry();
    test_fallback_ids();
    test_outbox_takeover();
    test_concurrency();
    test_stats_ages();
    test_mirror();
    test_noscript();
    test_unavailable_and_free();
    test_bad_args();
    test_ttls();
    test_redis_stopped();

    rconn_free(conn_a);
    rconn_free(conn_b);
    rconn_free(admin);
    srv_stop(&server, SIGTERM);
    srv_rmtree(tmpdir);
    event_base_free(base);
    return check_done();
}
