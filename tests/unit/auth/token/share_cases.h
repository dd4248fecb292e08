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
    struct token_options o = opts();
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
    char v[16384];
};

static void on_val(void *arg, enum rconn_result res, const redictReply *r)
{
    struct val *v = arg;
    v->n = 1;
    if (res == RCONN_OK && r && r->type == REDICT_REPLY_STRING)
        snprintf(v->v, sizeof(v->v), "%.*s", (int)r->len, r->str);
}

/* Every key and value in Redis: the blob exists, and neither the token nor the secret
 * appears in any key or value. */
static void check_redis_clean(struct rconn *rc, const char *tok)
{
    struct keys k = { .n = -2 };
    int blob = 0, dirty = 0;

    CHECK(rconn_command(rc, on_keys, &k, 0, "KEYS *") == 0);
    CHECK(WAIT_FOR(k.n != -2, 2000) && k.n >= 1 && k.n <= 8);
    for (int i = 0; i < k.n && i < 8; i++) {
        struct val v = { 0 };
        blob += strncmp(k.names[i], "fogate:token:prod:", 18) == 0;
        CHECK(rconn_command(rc, on_val, &v, 0, "GET %s", k.names[i]) == 0);
        CHECK(WAIT_FOR(v.n, 2000));
        dirty += strstr(v.v, tok) || strstr(v.v, "eyJ") || strstr(v.v, APP_SECRET) ||
                 strstr(k.names[i], tok) || strstr(k.names[i], APP_SECRET);
    }
    CHECK(blob == 1 && dirty == 0);
}

/* Two instances on one Redis with 5 s tokens: one token request per refresh for both. */
static void test_shared_two_instances(void)
{
    struct testproc redis = { 0 };
    struct inst a = { 0 }, b = { 0 };
    char ta[4096], tb[4096];
    struct token_view va, vb;
    int not_ok = 0, expired = 0;

    CHECK(testproc_start_redis_plain(&redis, dir) == 0);
    sim_post(sim.port, "/_sim/reset", "{}");
    sim_post(sim.port, "/_sim/config", "{\"token_lifetime\": 5}");
    struct conf *c = make_conf(sim.port, 0, CRED_FILE);
    inst_connect(&a, redis.port, true);
    inst_connect(&b, redis.port, true);
    inst_start(&a, c);
    inst_start(&b, c);
    CHECK(WAIT_FOR(ready(a.m) && ready(b.m), 4000));
    CHECK(sim_tokens(sim.port) == 1); /* cold start: the lock winner fetched, the other read */
    CHECK(counter(a.m, "share_hits") + counter(b.m, "share_hits") == 1);
    CHECK(get_now(a.m, &va, ta, sizeof(ta)) == TOKEN_OK);
    CHECK(get_now(b.m, &vb, tb, sizeof(tb)) == TOKEN_OK);
    CHECK(strcmp(ta, tb) == 0);
    check_redis_clean(a.rc, ta);
    for (long long end = testproc_now_ms() + 12000; testproc_now_ms() < end; spin_ms(50)) {
        int oka = get_now(a.m, &va, ta, sizeof(ta)) == TOKEN_OK;
        int okb = get_now(b.m, &vb, tb, sizeof(tb)) == TOKEN_OK;
        not_ok += !oka + !okb;
        if (oka && okb)
            expired += (claim_int(ta, "exp") <= (long long)time(NULL)) +
                       (claim_int(tb, "exp") <= (long long)time(NULL));
    }
    long total = sim_tokens(sim.port);
    long long fetches = counter(a.m, "fetches") + counter(b.m, "fetches");
    long long hits = counter(a.m, "share_hits") + counter(b.m, "share_hits");
    fprintf(stderr, "shared: %ld token requests, %lld fetches, %lld shared reads, "
            "generations %llu/%llu\n", total, fetches, hits,
            (unsigned long long)va.generation, (unsigned long long)vb.generation);
    CHECK(not_ok == 0 && expired == 0);
    CHECK(total >= 4);              /* refreshes happened (about every 3 s) */
    CHECK(fetches == total);        /* every request at fosim came from one of the two */
    CHECK((uint64_t)total <= va.generation + 1 && (uint64_t)total <= vb.generation + 1);
    CHECK(hits >= total - 1);       /* each fetched token was read by the other instance */
    check_redis_clean(b.rc, tb);

    /* Redis goes away: an instance keeps working on its own. */
    testproc_stop(&redis, SIGTERM);
    CHECK(WAIT_FOR(!connected(a.rc), 3000));
    CHECK(get_now(a.m, &va, ta, sizeof(ta)) == TOKEN_OK);
    CHECK(token_invalidate(a.m, "prod", va.generation) == 1);
    CHECK(WAIT_FOR(ready(a.m), 3000));
    CHECK(sim_tokens(sim.port) == total + 1);
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
    int locked = -1;
    char name[TOKENBLOB_NAME_MAX + 1], url[64];

    CHECK(testproc_start_redis_plain(&redis, dir) == 0);
    sim_post(sim.port, "/_sim/reset", "{}");
    struct conf *c = make_conf(sim.port, 0, CRED_FILE);
    inst_connect(&a, redis.port, true);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", sim.port);
    CHECK(tokenblob_name("prod", TENANT, APP_ID, url, name, sizeof(name)) == 0);
    CHECK(tokenshare_lock(a.ts, name, "dead-instance", 1000, on_lock_result, &locked) == 0);
    CHECK(WAIT_FOR(locked != -1, 2000) && locked == TOKENSHARE_OK);
    long long t0 = testproc_now_ms();
    inst_start(&a, c);
    spin_ms(600);
    CHECK(!ready(a.m) && sim_tokens(sim.port) == 0); /* waiting for the holder */
    CHECK(WAIT_FOR(ready(a.m), 3000));
    CHECK(testproc_now_ms() - t0 >= 900);
    CHECK(sim_tokens(sim.port) == 1 && counter(a.m, "fetches") == 1);
    inst_free(&a);
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
