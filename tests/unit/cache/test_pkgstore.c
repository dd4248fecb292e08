/* Tests for cache/pkgkey (key names, records: pure) and cache/pkgstore (leases) against a
 * real redis-server on a free port: take is exclusive and reports the holder's value,
 * renew/swap/release touch a key only while it holds the caller's value, leases expire. */
#define _GNU_SOURCE
#include "check.h"
#include "log.h"
#include "pkgkey.h"
#include "pkgstore.h"
#include "rconn.h"
#include "testloop.h"
#include "testproc.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct event_base *base;
static char tmpdir[] = "/tmp/fogate-test-pkgstore-XXXXXX";

#define WAIT_FOR(cond, ms) TESTLOOP_WAIT_FOR(base, cond, ms, 5)

/* ---- pkgkey ---- */

static void test_keys(void)
{
    char k[PKGKEY_KEY_SIZE], big[100];

    CHECK(pkgkey_lock("prod-1", k) == 0);
    CHECK_STR(k, "fogate:pkg:lock:prod-1");
    CHECK(pkgkey_lock("", k) < 0);
    CHECK(pkgkey_lock("a:b", k) < 0);
    memset(big, 'e', 65);
    big[65] = '\0';
    CHECK(pkgkey_lock(big, k) < 0);
    /* SHA-256("abc"): the key value itself never appears */
    CHECK(pkgkey_idem("pkg-in", "abc", 3, k) == 0);
    CHECK_STR(k, "fogate:pkg:idem:pkg-in:"
                 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(pkgkey_idem("pkg in", "abc", 3, k) < 0);
    CHECK(pkgkey_idem("pkg-in", "abc", 0, k) < 0);
}

static void test_records(void)
{
    struct pkgkey_record rec = { .state = PKGKEY_RESERVED, .exec_id = "Customers-fogate-00ff" };
    struct pkgkey_record back;
    char out[PKGKEY_RECORD_SIZE];

    CHECK(pkgkey_record_format(&rec, out) == 0);
    CHECK_STR(out, "R Customers-fogate-00ff");
    CHECK(pkgkey_record_parse(out, strlen(out), &back) == 0);
    CHECK(back.state == PKGKEY_RESERVED);
    CHECK_STR(back.exec_id, "Customers-fogate-00ff");
    rec.state = PKGKEY_DONE;
    for (int i = 0; i < 32; i++)
        rec.sha256[i] = (unsigned char)(i * 9);
    CHECK(pkgkey_record_format(&rec, out) == 0);
    CHECK(strncmp(out, "D 0009121b", 10) == 0 && strlen(out) == 2 + 64 + 1 + 21);
    CHECK(pkgkey_record_parse(out, strlen(out), &back) == 0);
    CHECK(back.state == PKGKEY_DONE && memcmp(back.sha256, rec.sha256, 32) == 0);
    CHECK_STR(back.exec_id, rec.exec_id);
    /* malformed records are refused */
    CHECK(pkgkey_record_parse("R ", 2, &back) < 0);
    CHECK(pkgkey_record_parse("X id", 4, &back) < 0);
    CHECK(pkgkey_record_parse("R a b", 5, &back) < 0);
    CHECK(pkgkey_record_parse(out, 60, &back) < 0);
    out[5] = 'z'; /* not hex */
    CHECK(pkgkey_record_parse(out, strlen(out), &back) < 0);
    strcpy(rec.exec_id, "has space");
    CHECK(pkgkey_record_format(&rec, out) < 0);
}

static void test_script_shas(void)
{
    unsigned i;

    for (i = 0; pkgstore_script(i); i++) {
        struct rconn_script mine;
        CHECK(rconn_script_init(&mine, pkgstore_script(i)->body) == 0);
        CHECK_STR(mine.sha1, pkgstore_script(i)->sha1);
    }
    CHECK(i == 4);
}

/* ---- pkgstore against redis-server ---- */

struct res {
    int n;
    enum pkgstore_result result;
    char val[256];
};

static void on_done(void *arg, enum pkgstore_result result, const char *val, size_t len)
{
    struct res *r = arg;

    r->n++;
    r->result = result;
    r->val[0] = '\0';
    if (val && len < sizeof r->val) {
        memcpy(r->val, val, len);
        r->val[len] = '\0';
    }
}

static int wait_res(struct res *r)
{
    if (!WAIT_FOR(r->n > 0, 3000))
        return -1;
    CHECK(r->n == 1);
    return (int)r->result;
}

#define OP(call)                                                                        \
    ({                                                                                  \
        struct res r_ = { 0 };                                                          \
        int rc_ = (call);                                                               \
        CHECK(rc_ == 0);                                                                \
        rc_ == 0 ? wait_res(&r_) : -1;                                                  \
    })
#define R (&r_)

static void test_leases(struct pkgstore *ps)
{
    struct res held = { 0 };

    CHECK(OP(pkgstore_take(ps, "k1", "owner-a", 5000, on_done, R)) == PKGSTORE_OK);
    CHECK(pkgstore_take(ps, "k1", "owner-b", 5000, on_done, &held) == 0);
    CHECK(wait_res(&held) == PKGSTORE_HELD);
    CHECK_STR(held.val, "owner-a");
    CHECK(OP(pkgstore_renew(ps, "k1", "owner-b", 5000, on_done, R)) == PKGSTORE_HELD);
    CHECK(OP(pkgstore_renew(ps, "k1", "owner-a", 5000, on_done, R)) == PKGSTORE_OK);
    CHECK(OP(pkgstore_release(ps, "k1", "owner-b", on_done, R)) == PKGSTORE_HELD);
    CHECK(OP(pkgstore_swap(ps, "k1", "owner-b", "x", 5000, on_done, R)) == PKGSTORE_HELD);
    CHECK(OP(pkgstore_swap(ps, "k1", "owner-a", "D done", 5000, on_done, R)) == PKGSTORE_OK);
    memset(&held, 0, sizeof held);
    CHECK(pkgstore_take(ps, "k1", "owner-c", 5000, on_done, &held) == 0);
    CHECK(wait_res(&held) == PKGSTORE_HELD);
    CHECK_STR(held.val, "D done");
    CHECK(OP(pkgstore_release(ps, "k1", "owner-a", on_done, R)) == PKGSTORE_HELD);
    CHECK(OP(pkgstore_release(ps, "k1", "D done", on_done, R)) == PKGSTORE_OK);
    CHECK(OP(pkgstore_take(ps, "k1", "owner-c", 5000, on_done, R)) == PKGSTORE_OK);
    /* a release nobody waits for */
    CHECK(pkgstore_release(ps, "k1", "owner-c", NULL, NULL) == 0);
    CHECK(OP(pkgstore_take(ps, "k1", "owner-d", 5000, on_done, R)) == PKGSTORE_OK);
}

static void test_expiry(struct pkgstore *ps)
{
    /* 1.5 s: still held at the next command on a loaded machine */
    CHECK(OP(pkgstore_take(ps, "k2", "short", 1500, on_done, R)) == PKGSTORE_OK);
    CHECK(OP(pkgstore_take(ps, "k2", "next", 5000, on_done, R)) == PKGSTORE_HELD);
    testloop_spin_ms(base, 1600);
    CHECK(OP(pkgstore_renew(ps, "k2", "short", 5000, on_done, R)) == PKGSTORE_HELD);
    CHECK(OP(pkgstore_take(ps, "k2", "next", 5000, on_done, R)) == PKGSTORE_OK);
}

static void test_bad_args_and_down(struct pkgstore *ps, struct testproc *redis,
                                   struct rconn *c)
{
    struct res r = { 0 };
    struct rconn_health h = { .connected = true };

    CHECK(pkgstore_take(ps, "k3", "v", 0, on_done, &r) < 0);
    CHECK(pkgstore_take(ps, NULL, "v", 10, on_done, &r) < 0);
    CHECK(pkgstore_release(NULL, "k3", "v", on_done, &r) < 0);
    CHECK(r.n == 0);
    testproc_stop(redis, SIGTERM);
    CHECK(WAIT_FOR((rconn_get_health(c, &h), !h.connected), 3000));
    CHECK(OP(pkgstore_take(ps, "k3", "v", 1000, on_done, R)) == PKGSTORE_ERROR);
    CHECK(OP(pkgstore_release(ps, "k3", "v", on_done, R)) == PKGSTORE_ERROR);
}

int main(void)
{
    struct testproc redis = { 0 };
    struct rconn_options o = { .host = "127.0.0.1", .connect_timeout_ms = 1000,
                               .command_timeout_ms = 1000, .reconnect_min_ms = 50,
                               .reconnect_max_ms = 200 };
    struct rconn_health h = { 0 };
    struct rconn *c;
    struct pkgstore *ps;

    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_ERROR);
    test_keys();
    test_records();
    test_script_shas();
    if (!mkdtemp(tmpdir) || !(base = event_base_new()) ||
        testproc_start_redis_plain(&redis, tmpdir)) {
        CHECK(!"redis-server could not be started");
        return check_done();
    }
    o.port = redis.port;
    c = rconn_new(base, &o);
    WAIT_FOR((rconn_get_health(c, &h), h.connected), 3000);
    CHECK(h.connected);
    ps = pkgstore_new(c, 1000);
    CHECK(ps != NULL && pkgstore_new(NULL, 0) == NULL);
    test_leases(ps);
    test_expiry(ps);
    test_bad_args_and_down(ps, &redis, c);
    pkgstore_free(ps);
    rconn_free(c);
    event_base_free(base);
    testproc_stop(&redis, SIGTERM);
    testproc_rmtree(tmpdir);
    return check_done();
}
