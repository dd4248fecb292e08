/* Tests for cache/tokenshare against a real redis-server on a free port: lock exclusivity,
 * lease expiry takeover, compare-and-delete unlock, sealed blob round trip (with auth's
 * tokenblob), TTLs, Redis down, and nothing plaintext in Redis. */
#define _GNU_SOURCE
#include "check.h"
#include "log.h"
#include "rconn.h"
#include "seal.h"
#include "tokenblob.h"
#include "tokenshare.h"
#include "testloop.h"
#include "testproc.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TOKEN "eyJ0eXAiOiJKV1QifQ.eyJhdWQiOiJodHRwOi8vc2VjcmV0LXRva2VuIn0.c2lnbmF0dXJl"
#define NAME "prod:0123456789abcdef"
#define CTX "fogate-token-v1|prod|tenant|client|http://127.0.0.1"

static struct event_base *base;
static char tmpdir[] = "/tmp/fogate-test-tokenshare-XXXXXX";

struct res {
    int n;
    int result;
    char val[70000];
    size_t len;
};

static void on_done(void *arg, int result, const char *val, size_t len)
{
    struct res *r = arg;
    r->n++;
    r->result = result;
    r->len = len;
    if (val && len < sizeof(r->val)) {
        memcpy(r->val, val, len);
        r->val[len] = '\0';
    }
}

/* The loop helpers of testloop.h on this file's base. */
#define spin_ms(ms) testloop_spin_ms(base, (ms))
#define WAIT_FOR(cond, ms) TESTLOOP_WAIT_FOR(base, cond, ms, 5)

/* Waits for one callback and returns its result (-1 if none came). */
static int wait_res(struct res *r)
{
    if (!WAIT_FOR(r->n > 0, 3000))
        return -1;
    CHECK(r->n == 1);
    return r->result;
}

static int get(struct tokenshare *ts, const char *name, struct res *r)
{
    memset(r, 0, sizeof(*r));
    CHECK(tokenshare_get(ts, name, on_done, r) == 0);
    return wait_res(r);
}

static int lock(struct tokenshare *ts, const char *owner, unsigned lease)
{
    struct res r = { 0 };
    CHECK(tokenshare_lock(ts, NAME, owner, lease, on_done, &r) == 0);
    return wait_res(&r);
}

static int unlock(struct tokenshare *ts, const char *owner)
{
    struct res r = { 0 };
    CHECK(tokenshare_unlock(ts, NAME, owner, on_done, &r) == 0);
    return wait_res(&r);
}

static int put(struct tokenshare *ts, const char *blob, size_t len, unsigned ttl)
{
    struct res r = { 0 };
    CHECK(tokenshare_put(ts, NAME, blob, len, ttl, on_done, &r) == 0);
    return wait_res(&r);
}

/* A raw command through rconn; the reply's integer or string goes into r. */
static void on_raw(void *arg, enum rconn_result res, const redictReply *rep)
{
    struct res *r = arg;
    r->n++;
    r->result = res == RCONN_OK && rep ? rep->type : -1;
    if (res == RCONN_OK && rep && rep->type == REDICT_REPLY_INTEGER)
        r->len = (size_t)rep->integer;
    if (res == RCONN_OK && rep && rep->str && rep->len < sizeof(r->val)) {
        memcpy(r->val, rep->str, rep->len);
        r->val[rep->len] = '\0';
        r->len = rep->len;
    }
}

static struct rconn *connect_to(int port)
{
    struct rconn_options o = { .host = "127.0.0.1", .port = port, .connect_timeout_ms = 1000,
                               .command_timeout_ms = 1000, .reconnect_min_ms = 50,
                               .reconnect_max_ms = 200 };
    struct rconn *c = rconn_new(base, &o);
    struct rconn_health h = { 0 };
    WAIT_FOR((rconn_get_health(c, &h), h.connected), 3000);
    CHECK(h.connected);
    return c;
}

static void test_script_sha(void)
{
    const struct rconn_script *s = tokenshare_unlock_script();
    struct rconn_script mine;
    CHECK(rconn_script_init(&mine, s->body) == 0);
    CHECK_STR(mine.sha1, s->sha1);
}

static void test_bad_args(struct tokenshare *ts)
{
    char big[TOKENSHARE_BLOB_MAX + 2];
    memset(big, 'a', sizeof(big));
    CHECK(tokenshare_new(NULL, NULL, 0) == NULL);
    CHECK(tokenshare_get(ts, "", on_done, NULL) == -1);
    CHECK(tokenshare_get(ts, "has space", on_done, NULL) == -1);
    CHECK(tokenshare_get(ts, "a\r\nb", on_done, NULL) == -1);
    CHECK(tokenshare_get(ts, NAME, NULL, NULL) == -1);
    CHECK(tokenshare_lock(ts, NAME, "", 1000, on_done, NULL) == -1);
    CHECK(tokenshare_lock(ts, NAME, "own er", 1000, on_done, NULL) == -1);
    CHECK(tokenshare_lock(ts, NAME, "owner", 0, on_done, NULL) == -1);
    CHECK(tokenshare_put(ts, NAME, "x", 1, 0, on_done, NULL) == -1);
    CHECK(tokenshare_put(ts, NAME, big, sizeof(big), 1000, on_done, NULL) == -1);
    CHECK(tokenshare_unlock(ts, NAME, NULL, on_done, NULL) == -1);
}

static void test_lock(struct tokenshare *ts)
{
    CHECK(lock(ts, "ownerA", 5000) == TOKENSHARE_OK);
    CHECK(lock(ts, "ownerB", 5000) == TOKENSHARE_MISS); /* exclusive */
    CHECK(lock(ts, "ownerA", 5000) == TOKENSHARE_MISS); /* NX, even for the holder */
    CHECK(unlock(ts, "ownerB") == TOKENSHARE_MISS);     /* not B's: compare-and-delete */
    CHECK(lock(ts, "ownerB", 5000) == TOKENSHARE_MISS); /* still A's */
    CHECK(unlock(ts, "ownerA") == TOKENSHARE_OK);
    CHECK(unlock(ts, "ownerA") == TOKENSHARE_MISS);     /* already released */
    CHECK(lock(ts, "ownerB", 5000) == TOKENSHARE_OK);
    CHECK(unlock(ts, "ownerB") == TOKENSHARE_OK);
}

static void test_lease_takeover(struct tokenshare *ts)
{
    /* 2 s: still held at the next command on a loaded machine */
    CHECK(lock(ts, "dead-owner", 2000) == TOKENSHARE_OK); /* the winner "dies" */
    CHECK(lock(ts, "ownerB", 5000) == TOKENSHARE_MISS);
    spin_ms(2100);
    CHECK(lock(ts, "ownerB", 5000) == TOKENSHARE_OK);    /* lease ran out: taken over */
    CHECK(unlock(ts, "dead-owner") == TOKENSHARE_MISS);  /* a late unlock frees nothing */
    CHECK(lock(ts, "ownerC", 5000) == TOKENSHARE_MISS);
    CHECK(unlock(ts, "ownerB") == TOKENSHARE_OK);
}

static void seal_test_blob(char **blob, size_t *len, const unsigned char *key)
{
    struct tokenblob b = { .token = TOKEN, .token_len = strlen(TOKEN),
                           .obtained_at = 1700000000, .expires_at = 1700003599 };
    CHECK(tokenblob_serial(b.serial) == 0);
    *blob = tokenblob_seal(key, CTX, &b, len);
    CHECK(*blob != NULL);
}

static void test_blob_round_trip(struct tokenshare *ts, const unsigned char *key)
{
    struct res r;
    struct tokenblob out;
    char *blob = NULL;
    size_t len = 0;

    CHECK(get(ts, NAME, &r) == TOKENSHARE_MISS && r.len == 0);
    seal_test_blob(&blob, &len, key);
    CHECK(put(ts, blob, len, 60000) == TOKENSHARE_OK);
    CHECK(get(ts, NAME, &r) == TOKENSHARE_OK);
    CHECK(r.len == len && memcmp(r.val, blob, len) == 0);
    CHECK(tokenblob_open(key, CTX, r.val, r.len, &out) == 0);
    CHECK_STR(out.token, TOKEN);
    CHECK(out.obtained_at == 1700000000 && out.expires_at == 1700003599);
    tokenblob_cleanup(&out);
    /* Another context (environment) or another key cannot open it. */
    CHECK(tokenblob_open(key, CTX "x", r.val, r.len, &out) == -1 && out.token == NULL);
    unsigned char other[SEAL_KEY_LEN];
    memcpy(other, key, sizeof(other));
    other[0] ^= 1;
    CHECK(tokenblob_open(other, CTX, r.val, r.len, &out) == -1);
    /* Truncated, tampered or garbage blobs in Redis are refused. */
    CHECK(tokenblob_open(key, CTX, r.val, r.len - 4, &out) == -1);
    r.val[10] = r.val[10] == 'A' ? 'B' : 'A';
    CHECK(tokenblob_open(key, CTX, r.val, r.len, &out) == -1 && out.token == NULL);
    CHECK(tokenblob_open(key, CTX, "not base64!", 11, &out) == -1);
    CHECK(tokenblob_open(key, CTX, "", 0, &out) == -1);
    /* A sealed plaintext that is not "1 <obtained> <expires> <serial>\n<token>". */
    static const char *const bad[] = { "junk", "1 5 4 0123456789abcdef0123456789abcdef\nTOK",
                                       "1 4 5 xyz\nTOK", "1 4 5 0123456789abcdef0123456789abcdef\n",
                                       "1 4 5 0123456789abcdef0123456789abcdef\nbad token" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned char *sealed = NULL;
        size_t slen = 0;
        CHECK(seal_seal(key, CTX, bad[i], strlen(bad[i]), SEAL_BASE64, &sealed, &slen) == SEAL_OK);
        CHECK(tokenblob_open(key, CTX, (const char *)sealed, slen, &out) == -1);
        free(sealed);
    }
    /* Names carry no secret and are bounded; contexts bind every identity field. */
    char name[TOKENBLOB_NAME_MAX + 1], ctx1[256], ctx2[256];
    CHECK(tokenblob_name("prod", "t", "c", "http://x", name, sizeof(name)) == 0);
    CHECK(strncmp(name, "prod:", 5) == 0 && strlen(name) == 5 + 16);
    CHECK(tokenblob_context("prod", "t", "c", "http://x", ctx1, sizeof(ctx1)) == 0);
    CHECK(tokenblob_context("prod", "t", "c2", "http://x", ctx2, sizeof(ctx2)) == 0);
    CHECK(strcmp(ctx1, ctx2) != 0);
    free(blob);
}

static void test_ttl(struct tokenshare *ts, struct rconn *c)
{
    struct res r = { 0 };
    CHECK(put(ts, "short-lived", 11, 2000) == TOKENSHARE_OK); /* alive at the next command */
    CHECK(rconn_command(c, on_raw, &r, 0, "PTTL %s", "fogate:token:" NAME) == 0);
    CHECK(WAIT_FOR(r.n == 1, 2000) && r.len > 0 && r.len <= 2000);
    spin_ms(2100);
    CHECK(get(ts, NAME, &r) == TOKENSHARE_MISS);
}

/* Collects the names of a KEYS reply, one per line, into r->val. */
static void on_keys(void *arg, enum rconn_result res, const redictReply *rep)
{
    struct res *r = arg;
    r->n++;
    for (size_t i = 0; res == RCONN_OK && rep && rep->type == REDICT_REPLY_ARRAY &&
                       i < rep->elements; i++) {
        const redictReply *e = rep->element[i];
        if (r->len + e->len + 2 < sizeof(r->val)) {
            memcpy(r->val + r->len, e->str, e->len);
            r->len += e->len;
            r->val[r->len++] = '\n';
            r->val[r->len] = '\0';
        }
    }
}

/* Every key and value in Redis: none may contain the token. */
static void test_nothing_plaintext(struct tokenshare *ts, struct rconn *c, const unsigned char *key)
{
    char *blob = NULL, *save = NULL;
    size_t len = 0;
    struct res keys = { 0 };
    int seen = 0;

    seal_test_blob(&blob, &len, key);
    CHECK(put(ts, blob, len, 60000) == TOKENSHARE_OK);
    CHECK(lock(ts, "ownerZ", 60000) == TOKENSHARE_OK);
    free(blob);
    CHECK(rconn_command(c, on_keys, &keys, 0, "KEYS *") == 0);
    CHECK(WAIT_FOR(keys.n == 1, 2000));
    CHECK(strstr(keys.val, "fogate:token:" NAME "\n") != NULL);
    CHECK(strstr(keys.val, "fogate:token-lock:" NAME "\n") != NULL);
    for (char *k = strtok_r(keys.val, "\n", &save); k; k = strtok_r(NULL, "\n", &save)) {
        struct res v = { 0 };
        CHECK(rconn_command(c, on_raw, &v, 0, "GET %s", k) == 0);
        CHECK(WAIT_FOR(v.n == 1, 2000) && v.result == REDICT_REPLY_STRING && v.len > 0);
        CHECK(memmem(v.val, v.len, "eyJ0eXAiOiJKV1Qi", 16) == NULL);
        CHECK(memmem(v.val, v.len, "c2lnbmF0dXJl", 12) == NULL);
        CHECK(strstr(k, "eyJ") == NULL);
        seen++;
    }
    CHECK(seen >= 2);
    CHECK(unlock(ts, "ownerZ") == TOKENSHARE_OK);
}

/* Pending operations complete after tokenshare_free; Redis down gives ERROR. */
static void test_free_and_down(struct testproc *redis, struct rconn *c)
{
    struct tokenshare *ts = tokenshare_new(c, "other:", 500);
    struct res r = { 0 }, down = { 0 };
    CHECK(tokenshare_get(ts, NAME, on_done, &r) == 0);
    tokenshare_free(ts);
    CHECK(wait_res(&r) == TOKENSHARE_MISS);

    ts = tokenshare_new(c, NULL, 500);
    testproc_stop(redis, SIGTERM);
    struct rconn_health h = { .connected = true };
    CHECK(WAIT_FOR((rconn_get_health(c, &h), !h.connected), 3000));
    CHECK(get(ts, NAME, &down) == TOKENSHARE_ERROR);
    memset(&down, 0, sizeof(down));
    int rc = tokenshare_lock(ts, NAME, "ownerD", 1000, on_done, &down);
    CHECK(rc == 0 && wait_res(&down) == TOKENSHARE_ERROR);
    tokenshare_free(ts);
}

int main(void)
{
    struct testproc redis = { 0 };
    unsigned char key[SEAL_KEY_LEN];

    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_LVL_ERROR);
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (unsigned char)(i * 7 + 3);
    test_script_sha();
    if (!mkdtemp(tmpdir) || !(base = event_base_new()) || testproc_start_redis_plain(&redis, tmpdir)) {
        CHECK(!"redis-server could not be started");
        return check_done();
    }
    struct rconn *c = connect_to(redis.port);
    struct tokenshare *ts = tokenshare_new(c, NULL, 1000);
    CHECK(ts != NULL);
    test_bad_args(ts);
    test_lock(ts);
    test_lease_takeover(ts);
    test_blob_round_trip(ts, key);
    test_ttl(ts, c);
    test_nothing_plaintext(ts, c, key);
    tokenshare_free(ts);
    test_free_and_down(&redis, c);
    rconn_free(c);
    event_base_free(base);
    testproc_stop(&redis, SIGTERM);
    testproc_rmtree(tmpdir);
    return check_done();
}
