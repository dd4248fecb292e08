/* ledger/harness: shared by test_ledger and test_ledgerlua (include it first: it defines
 * _GNU_SOURCE): one real redis-server on a free port, two instances (conn_a,
 * conn_b) and an admin connection on one event loop, result holders that count their
 * callbacks, D365-shaped dequeue bodies, and synchronous wrappers for the ledger calls. */
#ifndef FOGATE_TEST_LEDGER_HARNESS_H
#define FOGATE_TEST_LEDGER_HARNESS_H

#define _GNU_SOURCE
#include "check.h"
#include "ledger.h"
#include "ledgerlua.h"
#include "log.h"
#include "rconn.h"
#include "../rconn/server.h"
#include "testloop.h"

#include <event2/event.h>
#include <stdbool.h>

#define SLACK_MS 1000 /* allowed lateness of a timeout on a loaded 2-core machine */
#define ACT "b0b5401e-56ca-4dc8-b566-84389a001236"
#define MARGIN_MS 3600000LL
#define TTL_MS (7 * 24 * 3600 * 1000LL + MARGIN_MS)
#define BODY_CAP 2048

static struct event_base *base;
static char tmpdir[256];
static struct srv server;
static struct rconn *conn_a, *conn_b, *admin;

/* ---- loop and result holders ---- */

/* The loop helpers of testloop.h on the harness's base. */
#define spin_ms(ms) testloop_spin_ms(base, (ms))
#define WAIT_FOR(cond, ms) TESTLOOP_WAIT_FOR(base, cond, ms, 1)

static inline void copy(char *dst, size_t cap, const char *src, size_t len)
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

static inline void on_dq(void *arg, enum ledger_err err,
                         const struct ledger_dequeue_result *r)
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

static inline void on_dn(void *arg, enum ledger_err err, const struct ledger_result *r)
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

static inline void on_cl(void *arg, enum ledger_err err, const struct ledger_claim *e,
                         size_t n)
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

static inline void on_st(void *arg, enum ledger_err err, const struct ledger_stats *s)
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

static inline void on_raw(void *arg, enum rconn_result res, const redictReply *r)
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
static inline struct raw redis_do(const char *a0, ...)
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

static inline bool is_up(struct rconn *c)
{
    struct rconn_health h;

    rconn_get_health(c, &h);
    return h.connected;
}

static inline struct rconn *connect_redis(int port)
{
    struct rconn_options o = { .host = "127.0.0.1", .port = port, .connect_timeout_ms = 1000,
                               .command_timeout_ms = 1000, .reconnect_min_ms = 50,
                               .reconnect_max_ms = 200 };
    struct rconn *c = rconn_new(base, &o);

    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    return c;
}

/* ---- bodies and calls ---- */

static inline long long wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A GUID that differs by `n` and by `tag` (a hex digit naming its role). */
static inline void guid(char out[GUID_CANON_SIZE], char tag, unsigned n)
{
    snprintf(out, GUID_CANON_SIZE, "%c%07x-0000-4000-8000-00000000%04x", tag, n, n & 0xffff);
}

/* A dequeue body as D365 sends it; blob NULL gives DownloadLocation null. */
static inline void body_for(char *out, size_t cap, const char *corr, const char *pop,
                            const char *blob, bool http80, const char *last)
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

static inline struct ledger *mk(struct rconn *c, const char *prefix, const char *inst,
                                int timeout_ms, unsigned ob_lease_ms)
{
    struct ledger_opts o = { .prefix = prefix, .instance = inst, .timeout_ms = timeout_ms,
                             .margin_ms = MARGIN_MS, .outbox_lease_ms = ob_lease_ms };
    struct ledger *l = ledger_new(c, &o);

    CHECK(l != NULL);
    return l;
}

static inline int send_dequeue(struct ledger *l, const char *body, const char *client,
                               unsigned lease, struct dq *d)
{
    struct ledgerkey k;

    memset(d, 0, sizeof(*d));
    d->sent_ms = srv_now_ms();
    if (ledgerkey_parse(body, strlen(body), "prod", ACT, &k) != LEDGERKEY_OK)
        return -1;
    return ledger_on_dequeue(l, &k, body, strlen(body), client, lease, on_dq, d);
}

static inline struct dq dequeue(struct ledger *l, const char *body, const char *client,
                                unsigned lease)
{
    struct dq d;

    CHECK(send_dequeue(l, body, client, lease, &d) == 0);
    CHECK(d.n == 0); /* never from inside the call */
    CHECK(WAIT_FOR(d.n > 0, 3000) && d.n == 1 && d.err == LEDGER_OK);
    return d;
}

enum dn_op { DN_DELIVER, DN_CONFIRM, DN_ACK, DN_RENEW, DN_RELEASE };

static inline int send_dn(struct ledger *l, enum dn_op op, const char *id, struct dn *d)
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

static inline struct dn call(struct ledger *l, enum dn_op op, const char *id)
{
    struct dn d;

    CHECK(send_dn(l, op, id, &d) == 0);
    CHECK(d.n == 0);
    CHECK(WAIT_FOR(d.n > 0, 3000) && d.n == 1 && d.err == LEDGER_OK);
    return d;
}

static inline struct cl claim(struct ledger *l, unsigned max)
{
    struct cl c;

    memset(&c, 0, sizeof(c));
    CHECK(ledger_outbox_claim(l, max, on_cl, &c) == 0);
    CHECK(WAIT_FOR(c.n > 0, 3000) && c.n == 1 && c.err == LEDGER_OK);
    return c;
}

static inline struct ledger_stats stats(struct ledger *l)
{
    struct st t;

    memset(&t, 0, sizeof(t));
    CHECK(ledger_stats(l, on_st, &t) == 0);
    CHECK(WAIT_FOR(t.n > 0, 3000) && t.n == 1 && t.err == LEDGER_OK);
    return t.s;
}

static inline struct raw hget(const char *prefix, const char *id, const char *field)
{
    char key[300];

    snprintf(key, sizeof(key), "%sledger:m:%s", prefix, id);
    return redis_do("HGET", key, field, NULL);
}

/* Starts redis-server and the three connections. Returns 0 or -1. */
static inline int harness_start(void)
{
    char port[16];
    const char *args[] = { "--port", port, NULL };

    (void)srv_sh; /* part of the shared helper, not needed here */
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_ERROR);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fogate-test-ledger-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    base = event_base_new();
    int p = srv_free_port();
    snprintf(port, sizeof(port), "%d", p);
    if (srv_start(&server, p, tmpdir, args) != 0)
        return -1;
    conn_a = connect_redis(p);
    conn_b = connect_redis(p);
    admin = connect_redis(p);
    return 0;
}

static inline void harness_stop(void)
{
    rconn_free(conn_a);
    rconn_free(conn_b);
    rconn_free(admin);
    srv_stop(&server, SIGTERM);
    srv_rmtree(tmpdir);
    event_base_free(base);
}

#endif
