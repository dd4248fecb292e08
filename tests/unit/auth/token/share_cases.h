/* Part of test_token.c (included once, after its helpers): the token manager with the
 * shared cache, i.e. two "instances" (each its own rconn, tokenshare and manager) on one
 * real redis-server, a dead lock holder, and Redis down. */
#ifndef FOGATE_TEST_TOKEN_SHARE_CASES_H
#define FOGATE_TEST_TOKEN_SHARE_CASES_H

struct inst {
    struct rconn *rc;
    struct tokenshare *ts;
    struct token_share_ops ops;
    struct token_mgr *m;
};

static const unsigned char seal_key[SEAL_KEY_LEN] = {
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,
};

static bool connected(struct rconn *rc)
{
    struct rconn_health h;
    rconn_get_health(rc, &h);
    return h.connected;
}

/* The Redis side of an instance; waits for the connection when `wait` is set. */
static void inst_connect(struct inst *in, int redis_port, bool wait)
{
    struct rconn_options ro = { .host = "127.0.0.1", .port = redis_port,
                                .connect_timeout_ms = 500, .command_timeout_ms = 500,
                                .reconnect_min_ms = 50, .reconnect_max_ms = 200 };
    in->rc = rconn_new(base, &ro);
    in->ts = tokenshare_new(in->rc, NULL, 500);
    CHECK(in->rc && in->ts);
    in->ops = (struct token_share_ops){ .ctx = in->ts, .get = tokenshare_get,
                                        .lock = tokenshare_lock, .put = tokenshare_put,
                                        .unlock = tokenshare_unlock };
    if (wait)
        CHECK(WAIT_FOR(connected(in->rc), 3000));
}

static void inst_start(struct inst *in, const struct conf *c)
{
    struct token_options o = opts_short();
    o.share = &in->ops;
    o.seal_key = seal_key;
    o.share_poll_ms = 50;
    in->m = token_mgr_new(base, c, &o);
    CHECK(in->m != NULL);
}

/* The manager first (it unlocks through the store), then the store, then Redis. */
static void inst_free(struct inst *in)
{
    token_mgr_free(in->m);
    tokenshare_free(in->ts);
    rconn_free(in->rc);
    memset(in, 0, sizeof(*in));
}

struct keys {
    int n;
    char names[8][256];
};

static void on_keys(void *arg, enum rconn_result res, const redictReply *r)
{
    struct keys *k = arg;
    for (size_t i = 0; res == RCONN_OK && r && r->type == REDICT_REPLY_ARRAY &&
                       i < r->elements && i < 8; i++)
        snprintf(k->names[i], sizeof(k->names[i]), "%s", r->element[i]->str);
    k->n = res == RCONN_OK && r && r->type == REDICT_REPLY_ARRAY ? (int)r->elements : -1;
}

struct val {
    int n;
    long long i;
    char v[16384];
};

static void on_val(void *arg, enum rconn_result res, const redictReply *r)
{
    struct val *v = arg;
    v->n = 1;
    if (res == RCONN_OK && r && r->type == REDICT_REPLY_STRING)
        snprintf(v->v, sizeof(v->v), "%.*s", (int)r->len, r->str);
    if (res == RCONN_OK && r && r->type == REDICT_REPLY_INTEGER)
        v->i = r->integer;
}

/* Every key and value in Redis: one token blob, which opens under the seal key to a token
 * of this app and does not carry it in plaintext; the token `tok` (the instance's, maybe
 * one refresh older than the blob's) and the secret appear in no key or value. */
static void check_redis_clean(struct rconn *rc, const char *tok)
{
    struct keys k = { .n = -2 };
    int blob = 0, opened = 0, dirty = 0;
    char ctx[TOKENBLOB_CONTEXT_MAX + 1], url[64];

    CHECK(tokenblob_context("prod", TENANT, APP_ID, base_url(sim.port, url, sizeof(url)), ctx,
                            sizeof(ctx)) == 0);
    CHECK(rconn_command(rc, on_keys, &k, 0, "KEYS *") == 0);
    CHECK(WAIT_FOR(k.n != -2, 2000) && k.n >= 1 && k.n <= 8);
    for (int i = 0; i < k.n && i < 8; i++) {
        struct val v = { 0 };
        struct tokenblob b;
        CHECK(rconn_command(rc, on_val, &v, 0, "GET %s", k.names[i]) == 0);
        CHECK(WAIT_FOR(v.n, 2000));
        dirty += strstr(v.v, tok) || strstr(v.v, APP_SECRET) || strstr(k.names[i], tok) ||
                 strstr(k.names[i], APP_SECRET);
        if (strncmp(k.names[i], "fogate:token:prod:", 18) != 0) {
            dirty += strstr(v.v, "eyJ") != NULL; /* a lock: its owner is random hex */
            continue;
        }
        blob++;
        if (tokenblob_open(seal_key, ctx, v.v, strlen(v.v), &b) == 0) {
            opened += claim_is(b.token, "azp", APP_ID) && !strstr(v.v, b.token);
            tokenblob_cleanup(&b);
        }
    }
    CHECK(blob == 1 && opened == 1 && dirty == 0);
}

/* The token counts of fosim and of two instances, read while none of their token requests
 * is in flight: the reads are synchronous (the loop does not run between them), so no
 * refresh can start or land between fosim's count and the managers'. */
struct counts {
    long total;                  /* tokens fosim issued */
    long long fetches, hits;     /* both instances */
    long long fetches_a, hits_a; /* instance a */
    uint64_t gen_a, gen_b;       /* their current generations */
};

static uint64_t generation(struct token_mgr *m)
{
    json_t *s = status0(m);
    uint64_t gen = (uint64_t)json_integer_value(json_object_get(s, "generation"));
    json_decref(s);
    return gen;
}

static void read_counts(struct inst *a, struct inst *b, struct counts *n)
{
    CHECK(WAIT_FOR(tx.in_flight == 0, 10000));
    n->total = sim_tokens(sim.port);
    n->fetches_a = counter(a->m, "fetches");
    n->hits_a = counter(a->m, "share_hits");
    n->fetches = n->fetches_a + counter(b->m, "fetches");
    n->hits = n->hits_a + counter(b->m, "share_hits");
    n->gen_a = generation(a->m);
    n->gen_b = generation(b->m);
}

/* A fresh pair of instances on Redis at `port` (nothing in it), both ready. */
static void pair_start(struct inst *a, struct inst *b, int port, const struct conf *c)
{
    inst_connect(a, port, true);
    inst_connect(b, port, true);
    inst_start(a, c);
    inst_start(b, c);
    CHECK(WAIT_FOR(ready(a->m) && ready(b->m), 10000));
}

static void on_flushed(void *arg, enum rconn_result res, const redictReply *r)
{
    *(int *)arg = res == RCONN_OK ? 1 : -1;
}

/* Two instances on one Redis: one token request at a cold start for both; then with 5 s
 * tokens, one token request per refresh for both. */
static void test_shared_two_instances(void)
{
    struct testproc redis = { 0 };
    struct inst a = { 0 }, b = { 0 };
    char ta[4096], tb[4096];
    struct token_view va, vb;
    struct counts n;
    int not_ok = 0, expired = 0, flushed = 0;

    CHECK(testproc_start_redis_plain(&redis, dir) == 0);
    sim_post(sim.port, "/_sim/reset", "{}");
    struct conf *c = make_conf(sim.port, 0, CRED_FILE);
    /* Cold start with hour-long tokens, so that no scheduled refresh can land in it. */
    pair_start(&a, &b, redis.port, c);
    read_counts(&a, &b, &n);
    CHECK(n.total == 1 && n.fetches == 1); /* the lock winner fetched, the other read */
    CHECK(n.hits == 1 && n.gen_a == 1 && n.gen_b == 1);
    CHECK(get_now(a.m, &va, ta, sizeof(ta)) == TOKEN_OK);
    CHECK(get_now(b.m, &vb, tb, sizeof(tb)) == TOKEN_OK);
    CHECK(strcmp(ta, tb) == 0);
    check_redis_clean(a.rc, ta);

    /* Again from nothing, with 5 s tokens. */
    inst_free(&a);
    inst_free(&b);
    sim_post(sim.port, "/_sim/reset", "{}");
    sim_post(sim.port, "/_sim/config", "{\"token_lifetime\": 5}");
    inst_connect(&a, redis.port, true);
    CHECK(rconn_command(a.rc, on_flushed, &flushed, 0, "FLUSHALL") == 0);
    CHECK(WAIT_FOR(flushed != 0, 2000) && flushed == 1);
    inst_free(&a);
    pair_start(&a, &b, redis.port, c);
    long long end = testproc_now_ms() + 12000;
    do {
        spin_ms(50);
        int oka = get_now(a.m, &va, ta, sizeof(ta)) == TOKEN_OK;
        int okb = get_now(b.m, &vb, tb, sizeof(tb)) == TOKEN_OK;
        not_ok += !oka + !okb;
        if (oka && okb)
            expired += (claim_int(ta, "exp") <= (long long)time(NULL)) +
                       (claim_int(tb, "exp") <= (long long)time(NULL));
    } while (testproc_now_ms() < end);
    read_counts(&a, &b, &n);
    fprintf(stderr, "shared: %ld token requests, %lld fetches, %lld shared reads, "
            "generations %llu/%llu\n", n.total, n.fetches, n.hits,
            (unsigned long long)n.gen_a, (unsigned long long)n.gen_b);
    CHECK(not_ok == 0 && expired == 0);
    CHECK(n.total >= 4);             /* refreshes happened (about every 2-3 s) */
    CHECK(n.fetches == n.total);     /* every request at fosim came from one of the two */
    CHECK((uint64_t)n.total <= n.gen_a + 1 && (uint64_t)n.total <= n.gen_b + 1);
    CHECK(n.hits >= n.total - 1);    /* each fetched token was read by the other instance */
    check_redis_clean(b.rc, tb);

    /* Redis goes away: an instance keeps working on its own. */
    testproc_stop(&redis, SIGTERM);
    CHECK(WAIT_FOR(!connected(a.rc), 3000));
    struct counts before;
    read_counts(&a, &b, &before);
    CHECK(get_now(a.m, &va, ta, sizeof(ta)) == TOKEN_OK);
    CHECK(token_invalidate(a.m, "prod", va.generation) == 1);
    CHECK(WAIT_FOR(ready(a.m), 10000));
    read_counts(&a, &b, &n);
    CHECK(n.gen_a > before.gen_a && n.fetches_a > before.fetches_a);
    CHECK(n.hits_a == before.hits_a);  /* its own token, not one read from Redis */
    CHECK(n.total == n.fetches);
    sim_post(sim.port, "/_sim/config", "{\"token_lifetime\": 3599}");
    inst_free(&a);
    inst_free(&b);
    conf_free(c);
}

static void on_lock_result(void *arg, int result, const char *val, size_t len)
{
    *(int *)arg = result;
}

/* A lock holder that died without publishing: its lease runs out and we take over. */
static void test_dead_lock_holder(void)
{
    struct testproc redis = { 0 };
    struct inst a = { 0 };
    struct val ttl = { 0 };
    int locked = -1;
    const int lease = 2500;
    char name[TOKENBLOB_NAME_MAX + 1], url[64];

    CHECK(testproc_start_redis_plain(&redis, dir) == 0);
    sim_post(sim.port, "/_sim/reset", "{}");
    struct conf *c = make_conf(sim.port, 0, CRED_FILE);
    inst_connect(&a, redis.port, true);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim.port);
    CHECK(tokenblob_name("prod", TENANT, APP_ID, url, name, sizeof(name)) == 0);
    long long t0 = testproc_now_ms(); /* the lease ends no earlier than t0 + lease */
    CHECK(tokenshare_lock(a.ts, name, "dead-instance", lease, on_lock_result, &locked) == 0);
    CHECK(WAIT_FOR(locked != -1, 2000) && locked == TOKENSHARE_OK);
    inst_start(&a, c);
    spin_ms(500);
    CHECK(!ready(a.m) && sim_tokens(sim.port) == 0); /* waiting for the holder... */
    CHECK(rconn_command(a.rc, on_val, &ttl, 0, "PTTL fogate:token-lock:%s", name) == 0);
    CHECK(WAIT_FOR(ttl.n, 2000) && ttl.i > 0);       /* ...whose lease was still running */
    CHECK(WAIT_FOR(ready(a.m), lease + 10000));
    CHECK(testproc_now_ms() - t0 >= lease);
    CHECK(sim_tokens(sim.port) == 1 && counter(a.m, "fetches") == 1);
    inst_free(&a);
    conf_free(c);
    testproc_stop(&redis, SIGTERM);
}

/* ---- another instance publishes between our read and our lock ---- */

/* Share ops over a real tokenshare that, at the first lock, first publishes `blob` (as
 * another instance finishing its fetch would) and only then takes the lock. */
struct race {
    struct tokenshare *ts; /* borrowed */
    char *blob;            /* owned: a sealed token of "another instance" */
    size_t len;
    int locks;
    char name[TOKENBLOB_NAME_MAX + 1], owner[TOKENBLOB_SERIAL_LEN + 1];
    unsigned lease_ms;
    token_share_done *done;
    void *arg;
};

static int race_get(void *ctx, const char *name, token_share_done *done, void *arg)
{
    return tokenshare_get(((struct race *)ctx)->ts, name, done, arg);
}

static int race_put(void *ctx, const char *name, const char *blob, size_t len,
                    unsigned ttl_ms, token_share_done *done, void *arg)
{
    return tokenshare_put(((struct race *)ctx)->ts, name, blob, len, ttl_ms, done, arg);
}

static int race_unlock(void *ctx, const char *name, const char *owner, token_share_done *done,
                       void *arg)
{
    return tokenshare_unlock(((struct race *)ctx)->ts, name, owner, done, arg);
}

static void race_on_put(void *arg, int result, const char *val, size_t len)
{
    struct race *r = arg;

    CHECK(result == TOKENSHARE_OK);
    if (tokenshare_lock(r->ts, r->name, r->owner, r->lease_ms, r->done, r->arg) != 0)
        r->done(r->arg, TOKENSHARE_ERROR, NULL, 0);
}

static int race_lock(void *ctx, const char *name, const char *owner, unsigned lease_ms,
                     token_share_done *done, void *arg)
{
    struct race *r = ctx;

    if (r->locks++ > 0)
        return tokenshare_lock(r->ts, name, owner, lease_ms, done, arg);
    snprintf(r->name, sizeof(r->name), "%s", name);
    snprintf(r->owner, sizeof(r->owner), "%s", owner);
    r->lease_ms = lease_ms, r->done = done, r->arg = arg;
    return tokenshare_put(r->ts, name, r->blob, r->len, 60000, race_on_put, r);
}

/* The cache was empty when read, and holds another instance's token by the time the lock
 * is ours: the manager reads again under the lock and takes that token instead of asking
 * Entra for a second one (two instances refreshing together did fetch twice). */
static void test_share_race(void)
{
    struct testproc redis = { 0 };
    struct inst a = { 0 };
    struct race r = { 0 };
    struct token_view v;
    struct val lock = { 0 };
    char tok[4096], url[64], ctx[TOKENBLOB_CONTEXT_MAX + 1], name[TOKENBLOB_NAME_MAX + 1];
    struct tokenblob other = { .token = "token-of-another-instance", .obtained_at = time(NULL),
                               .expires_at = time(NULL) + 3600 };

    CHECK(testproc_start_redis_plain(&redis, dir) == 0);
    sim_post(sim.port, "/_sim/reset", "{}");
    struct conf *c = make_conf(sim.port, 0, CRED_FILE);
    inst_connect(&a, redis.port, true);
    base_url(sim.port, url, sizeof(url));
    other.token_len = strlen(other.token);
    CHECK(tokenblob_serial(other.serial) == 0);
    CHECK(tokenblob_context("prod", TENANT, APP_ID, url, ctx, sizeof(ctx)) == 0);
    CHECK(tokenblob_name("prod", TENANT, APP_ID, url, name, sizeof(name)) == 0);
    CHECK((r.blob = tokenblob_seal(seal_key, ctx, &other, &r.len)) != NULL);
    r.ts = a.ts;
    a.ops = (struct token_share_ops){ .ctx = &r, .get = race_get, .lock = race_lock,
                                      .put = race_put, .unlock = race_unlock };
    inst_start(&a, c);
    CHECK(WAIT_FOR(ready(a.m), 10000));
    CHECK(r.locks == 1);
    CHECK(get_now(a.m, &v, tok, sizeof(tok)) == TOKEN_OK && strcmp(tok, other.token) == 0);
    CHECK(counter(a.m, "fetches") == 0 && counter(a.m, "share_hits") == 1);
    CHECK(sim_tokens(sim.port) == 0);
    /* and the lock is given back (the unlock went first on this connection) */
    lock.i = -1;
    CHECK(rconn_command(a.rc, on_val, &lock, 0, "EXISTS fogate:token-lock:%s", name) == 0);
    CHECK(WAIT_FOR(lock.n, 2000) && lock.i == 0);
    inst_free(&a);
    free(r.blob);
    conf_free(c);
    testproc_stop(&redis, SIGTERM);
}

/* No Redis at all: each instance fetches for itself. */
static void test_redis_down(void)
{
    struct inst a = { 0 }, b = { 0 };
    int port = testproc_free_port();

    sim_post(sim.port, "/_sim/reset", "{}");
    struct conf *c = make_conf(sim.port, 0, CRED_FILE);
    inst_connect(&a, port, false);
    inst_connect(&b, port, false);
    inst_start(&a, c);
    inst_start(&b, c);
    CHECK(WAIT_FOR(ready(a.m) && ready(b.m), 4000));
    CHECK(sim_tokens(sim.port) == 2);
    CHECK(counter(a.m, "share_hits") == 0 && counter(b.m, "share_hits") == 0);
    CHECK(counter(a.m, "fetches") == 1 && counter(b.m, "fetches") == 1);
    inst_free(&a);
    inst_free(&b);
    conf_free(c);
}

#endif
