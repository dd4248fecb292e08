/* Tests for auth/token with the secretless credential kinds, on a real libevent loop
 * against a real fosim and redis-server: a federated assertion file (workload identity
 * federation, signed here by a test issuer whose keys fosim trusts) and managed identity
 * (IMDS, system- and user-assigned, and the App Service endpoint). The shared token cache,
 * single flight, refresh ahead and 401 invalidation work the same for every kind; each
 * failure has its reason and hint. Needs FOSIM_BIN (set by CTest) and redis-server. */
#define _GNU_SOURCE
#include "check.h"
#include "b64.h"
#include "conf.h"
#include "log.h"
#include "rconn.h"
#include "seal.h"
#include "token.h"
#include "tokenshare.h"
#include "token/evtransport.h"
#include "testloop.h"
#include "testproc.h"

#include <event2/event.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TENANT "8c1f0a6e-2b7d-4c55-9f3e-6a1d2b3c4d5e"
#define FED_APP "a7e3c1d2-1111-4222-8333-0000000000fe"
#define MI_USER "0d6b5a4c-2222-4333-8444-00000000a51d"
#define MI_SYSTEM "5e4f3a2b-3333-4444-8555-00000000575e"
#define ISSUER "https://oidc.test.example/cluster-1"
#define SUB1 "system:serviceaccount:fogate:fogate"
#define SUB2 "system:serviceaccount:fogate:rotated"
#define HDR_VALUE "x-identity-header-test-value-7"
#define NWAIT 100

static struct event_base *base;
static char dir[] = "/tmp/fogate-test-tokenkinds-XXXXXX";
static char sim_conf_path[600], jwt_path[600], log_path[600];
static const char *fosim_bin;
static struct testproc sim, redis;
static struct tx tx;
static FILE *logfile;
static EVP_PKEY *issuer_key;

#define spin_ms(ms) testloop_spin_ms(base, (ms))
#define WAIT_FOR(cond, ms) TESTLOOP_WAIT_FOR(base, cond, ms, 5)

enum kind { K_FED, K_IMDS, K_IMDS_SYSTEM, K_APP_SERVICE, K_COUNT };
static const char *const kind_names[] = { "client_assertion_file", "managed_identity_imds",
                                          "managed_identity_imds", "managed_identity_app_service" };
static const char *const kind_apps[] = { FED_APP, MI_USER, MI_SYSTEM, MI_USER };

/* ---- the test issuer (plays the Kubernetes service account issuer) ---- */

static char *b64u(const void *p, size_t n)
{
    return b64_encode(p, n, B64_URL, NULL);
}

static char *bn_b64u(const char *param)
{
    BIGNUM *bn = NULL;
    unsigned char buf[512];
    char *out = NULL;

    if (EVP_PKEY_get_bn_param(issuer_key, param, &bn) == 1) {
        int n = BN_bn2bin(bn, buf);
        out = b64u(buf, (size_t)n);
    }
    BN_free(bn);
    return out;
}

/* A JWT of the issuer for `sub` that expires at `exp`. Caller frees. */
static char *assertion(const char *sub, long long exp)
{
    char payload[512], *input = NULL, *out = NULL;
    const char *hdr = "{\"alg\":\"RS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}";
    unsigned char sig[512];
    size_t slen = sizeof(sig);
    long long now = (long long)time(NULL);

    snprintf(payload, sizeof payload, "{\"iss\":\"%s\",\"sub\":\"%s\",\"aud\":"
             "[\"api://AzureADTokenExchange\"],\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld}",
             ISSUER, sub, now, now, exp);
    char *h = b64u(hdr, strlen(hdr)), *p = b64u(payload, strlen(payload));
    if (asprintf(&input, "%s.%s", h, p) < 0)
        input = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (input && md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, issuer_key) == 1 &&
        EVP_DigestSign(md, sig, &slen, (unsigned char *)input, strlen(input)) == 1) {
        char *s = b64u(sig, slen);
        if (asprintf(&out, "%s.%s", input, s) < 0)
            out = NULL;
        free(s);
    }
    EVP_MD_CTX_free(md);
    free(h);
    free(p);
    free(input);
    return out;
}

/* Writes the projected token file the way the kubelet swaps it (rename). */
static void project(const char *sub, long long exp)
{
    char tmp[700];
    char *jwt = assertion(sub, exp);
    snprintf(tmp, sizeof tmp, "%s.new", jwt_path);
    FILE *f = fopen(tmp, "w");
    CHECK(f && jwt);
    if (f) {
        fputs(jwt ? jwt : "", f);
        fclose(f);
    }
    CHECK(rename(tmp, jwt_path) == 0);
    free(jwt);
}

/* ---- fosim ---- */

static json_t *sim_call(const char *method, const char *path, const char *body)
{
    char out[65536];
    int st = testproc_http(sim.port, method, path, body, out, sizeof(out));
    CHECK(st >= 200 && st < 300);
    return json_loads(out, 0, NULL);
}

static void sim_post(const char *path, const char *body)
{
    json_decref(sim_call("POST", path, body));
}

static long sim_counter(const char *group, const char *key)
{
    json_t *c = sim_call("GET", "/_sim/counters", NULL);
    json_t *g = group ? json_object_get(c, group) : c;
    long n = (long)json_integer_value(json_object_get(g, key));
    json_decref(c);
    return n;
}

/* ---- config and manager ---- */

static struct conf *make_conf(enum kind k, const char *mi_client_id, int imds_port)
{
    char json[4096], cred[1024], id[80] = "";
    struct conf_error err;

    if (mi_client_id)
        snprintf(id, sizeof id, "\"client_id\": \"%s\", ", mi_client_id);
    if (k == K_FED)
        snprintf(cred, sizeof cred, "\"client_assertion_file\": \"%s\"", jwt_path);
    else
        snprintf(cred, sizeof cred, "\"managed_identity\": {%s\"endpoint\": "
                 "\"http://127.0.0.1:%d/metadata/identity/oauth2/token\"}", id, imds_port);
    snprintf(json, sizeof(json),
             "{\"listen\": \"127.0.0.1:1\", \"public_base_url\": \"http://127.0.0.1:1\","
             " \"environments\": {\"prod\": {\"base_url\": \"http://127.0.0.1:%d\","
             " \"tenant\": \"%s\", \"client_id\": \"%s\", %s,"
             " \"token_endpoint\": \"http://127.0.0.1:%d/%s/oauth2/v2.0/token\","
             " \"allow_http\": true}},"
             " \"jobs\": {\"j\": {\"environment\": \"prod\", \"activity_id\":"
             " \"6d31e09f-0249-459f-94f0-aad9c2c47b64\", \"direction\": \"import\"}},"
             " \"clients\": {\"c\": {\"api_key_sha256\":"
             " \"15ccb0a2d317eea674b286e5db62073676d6113880134fa9f4a1217813d7b9ab\","
             " \"jobs\": [\"j\"]}}}",
             sim.port, TENANT, kind_apps[k], cred, sim.port, TENANT);
    struct conf *c = conf_load_buffer(json, strlen(json), "test", &err);
    if (!c)
        fprintf(stderr, "conf: %s\n", err.message);
    CHECK(c != NULL);
    return c;
}

static struct conf *kind_conf(enum kind k)
{
    char url[128];

    unsetenv("IDENTITY_ENDPOINT");
    unsetenv("IDENTITY_HEADER");
    if (k == K_APP_SERVICE) { /* the platform's variables, read at load */
        snprintf(url, sizeof url, "http://127.0.0.1:%d/msi/token", sim.port);
        setenv("IDENTITY_ENDPOINT", url, 1);
        setenv("IDENTITY_HEADER", HDR_VALUE, 1);
    }
    return make_conf(k, k == K_IMDS_SYSTEM || k == K_FED ? NULL : MI_USER, sim.port);
}

static struct token_options opts(void)
{
    struct token_options o = { .http_timeout_ms = 2000, .transport = tx_transport(&tx) };
    o.policy = (struct tokentime_policy){ .refresh_ratio = 0.75, .jitter = 0.1, .margin_s = 1,
                                          .backoff_base_ms = 200, .backoff_cap_ms = 1000 };
    return o;
}

static bool ready(struct token_mgr *m)
{
    return token_mgr_ready(m, NULL);
}

static json_t *status0(struct token_mgr *m)
{
    json_t *a = token_mgr_status(m);
    json_t *o = json_incref(json_array_get(a, 0));
    json_decref(a);
    return o;
}

static bool fetching(struct token_mgr *m)
{
    json_t *s = status0(m);
    bool f = json_is_true(json_object_get(s, "fetching"));
    json_decref(s);
    return f;
}

static bool reason_is(struct token_mgr *m, const char *want)
{
    const char *r = token_reason(m, "prod");
    return r && strcmp(r, want) == 0;
}

/* last_error's field `name` as text ("" if absent). */
static const char *last_error(struct token_mgr *m, const char *name, char *buf, size_t cap)
{
    json_t *s = status0(m);
    json_t *v = json_object_get(json_object_get(s, "last_error"), name);
    if (json_is_integer(v))
        snprintf(buf, cap, "%lld", (long long)json_integer_value(v));
    else
        snprintf(buf, cap, "%s", json_is_string(v) ? json_string_value(v) : "");
    json_decref(s);
    return buf;
}

static enum token_status get_now(struct token_mgr *m, struct token_view *v, char *buf,
                                 size_t cap)
{
    enum token_status st = token_get(m, "prod", 0, NULL, NULL, v, NULL);
    if (st == TOKEN_OK && buf && v->len < cap) {
        memcpy(buf, v->token, v->len);
        buf[v->len] = '\0';
    }
    return st;
}

static json_t *claims(const char *tok)
{
    const char *a = strchr(tok, '.'), *b = a ? strchr(a + 1, '.') : NULL;
    unsigned char *raw = NULL;
    size_t len = 0;
    json_t *j = NULL;

    if (b && b64_decode(a + 1, (size_t)(b - a - 1), B64_URL, &raw, &len) == 0)
        j = json_loadb((const char *)raw, len, 0, NULL);
    free(raw);
    return j;
}

/* The token was issued to `app` (appid of a v1/IMDS token, azp of a v2 one). */
static bool issued_to(const char *tok, const char *app)
{
    json_t *c = claims(tok);
    const char *a = json_string_value(json_object_get(c, "appid"));
    if (!a)
        a = json_string_value(json_object_get(c, "azp"));
    bool ok = a && strcmp(a, app) == 0;
    json_decref(c);
    return ok;
}

struct got {
    int n;
    enum token_status st;
    uint64_t gen;
};

static void on_got(void *arg, enum token_status st, const struct token_view *v)
{
    struct got *g = arg;
    g->n++;
    g->st = st;
    g->gen = v ? v->generation : 0;
}

static struct got g[NWAIT];

static int all_called(int n)
{
    for (int i = 0; i < n; i++)
        if (g[i].n == 0)
            return 0;
    return 1;
}

/* ---- the same behaviour for every kind ---- */

/* Cold cache, NWAIT concurrent gets: one request, one token, for the right identity;
 * then a 401 invalidates once (stale generations do nothing) and one refresh follows. */
static void test_single_flight_and_401(enum kind k)
{
    struct token_view v;
    char tok[8192], tok2[8192];
    int pending = 0, ok = 0, reqs = tx.posts + tx.gets;

    sim_post("/_sim/reset", "{}");
    memset(g, 0, sizeof(g));
    struct conf *c = kind_conf(k);
    struct token_options o = opts();
    struct token_mgr *m = token_mgr_new(base, c, &o);
    CHECK(m != NULL);
    for (int i = 0; i < NWAIT; i++)
        pending += token_get(m, "prod", 5000, on_got, &g[i], &v, NULL) == TOKEN_PENDING;
    CHECK(pending == NWAIT);
    CHECK(WAIT_FOR(all_called(NWAIT), 5000));
    for (int i = 0; i < NWAIT; i++)
        ok += g[i].st == TOKEN_OK && g[i].gen == 1;
    CHECK(ok == NWAIT);
    CHECK(tx.posts + tx.gets - reqs == 1 && sim_counter(NULL, "tokens_total") == 1);
    CHECK(k == K_FED ? tx.posts - reqs >= 0 : tx.gets >= 1);
    CHECK(get_now(m, &v, tok, sizeof tok) == TOKEN_OK && issued_to(tok, kind_apps[k]));
    json_t *s = status0(m);
    CHECK_STR(json_string_value(json_object_get(s, "credential")), kind_names[k]);
    json_decref(s);
    /* 401 */
    CHECK(token_invalidate(m, "prod", 1) == 1);
    CHECK(token_invalidate(m, "prod", 1) == 0);
    CHECK(WAIT_FOR(get_now(m, &v, tok2, sizeof tok2) == TOKEN_OK && v.generation == 2, 3000));
    CHECK(strcmp(tok, tok2) != 0 && sim_counter(NULL, "tokens_total") == 2);
    token_mgr_free(m);
    conf_free(c);
}

/* Short-lived tokens are replaced before they run out: every get is served at once. */
static void test_refresh_ahead(enum kind k)
{
    char tok[8192];
    struct token_view v;
    uint64_t last = 0;
    int gens = 0, not_ok = 0;

    sim_post("/_sim/reset", "{}");
    sim_post("/_sim/config", "{\"token_lifetime\": 4}");
    struct conf *c = kind_conf(k);
    struct token_options o = opts();
    struct token_mgr *m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(ready(m), 3000));
    for (long long end = testproc_now_ms() + 10000; testproc_now_ms() < end; spin_ms(50)) {
        if (get_now(m, &v, tok, sizeof(tok)) != TOKEN_OK) {
            not_ok++;
            continue;
        }
        if (v.generation != last) {
            last = v.generation;
            gens++;
        }
    }
    fprintf(stderr, "%s: refresh ahead: %d tokens in 10 s, %d gets not served\n", kind_names[k],
            gens, not_ok);
    CHECK(not_ok == 0 && gens >= 3); /* 10 s / at most 3.4 s of use per token */
    /* one token per request: fosim's count equals the generation once no fetch is out */
    CHECK(WAIT_FOR(!fetching(m), 3000));
    json_t *s = status0(m);
    CHECK(sim_counter(NULL, "tokens_total") ==
          (long)json_integer_value(json_object_get(s, "generation")));
    json_decref(s);
    sim_post("/_sim/config", "{\"token_lifetime\": 3599}");
    token_mgr_free(m);
    conf_free(c);
}

struct inst {
    struct rconn *rc;
    struct tokenshare *ts;
    struct token_share_ops ops;
    struct token_mgr *m;
};

static const unsigned char seal_key[SEAL_KEY_LEN] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3,
                                                      4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                                                      15, 16, 17, 18, 19, 20, 21, 22 };

static bool connected(struct rconn *rc)
{
    struct rconn_health h;
    rconn_get_health(rc, &h);
    return h.connected;
}

static void inst_start(struct inst *in, const struct conf *c)
{
    struct rconn_options ro = { .host = "127.0.0.1", .port = redis.port,
                                .connect_timeout_ms = 500, .command_timeout_ms = 500,
                                .reconnect_min_ms = 50, .reconnect_max_ms = 200 };
    in->rc = rconn_new(base, &ro);
    in->ts = tokenshare_new(in->rc, NULL, 500);
    CHECK(in->rc && in->ts);
    in->ops = (struct token_share_ops){ .ctx = in->ts, .get = tokenshare_get,
                                        .lock = tokenshare_lock, .put = tokenshare_put,
                                        .unlock = tokenshare_unlock };
    CHECK(WAIT_FOR(connected(in->rc), 3000));
    struct token_options o = opts();
    o.share = &in->ops;
    o.seal_key = seal_key;
    o.share_poll_ms = 50;
    in->m = token_mgr_new(base, c, &o);
    CHECK(in->m != NULL);
}

static void inst_free(struct inst *in)
{
    token_mgr_free(in->m);
    tokenshare_free(in->ts);
    rconn_free(in->rc);
    memset(in, 0, sizeof(*in));
}

/* Two instances on one Redis: one token request between them, the same token; a 401 seen
 * by one is not undone by the other adopting the old token. */
static void test_shared(enum kind k)
{
    struct inst a = { 0 }, b = { 0 };
    struct token_view v;
    char ta[8192], tb[8192];

    sim_post("/_sim/reset", "{}");
    testproc_sh("redis-cli -p %d FLUSHALL >/dev/null", redis.port);
    struct conf *c = kind_conf(k);
    inst_start(&a, c);
    inst_start(&b, c);
    CHECK(WAIT_FOR(ready(a.m) && ready(b.m), 5000));
    CHECK(get_now(a.m, &v, ta, sizeof ta) == TOKEN_OK);
    CHECK(get_now(b.m, &v, tb, sizeof tb) == TOKEN_OK);
    CHECK(strcmp(ta, tb) == 0 && sim_counter(NULL, "tokens_total") == 1);
    CHECK(token_invalidate(a.m, "prod", 1) == 1);
    CHECK(WAIT_FOR(get_now(a.m, &v, ta, sizeof ta) == TOKEN_OK && strcmp(ta, tb) != 0, 3000));
    CHECK(sim_counter(NULL, "tokens_total") == 2);
    inst_free(&a);
    inst_free(&b);
    conf_free(c);
}

/* ---- failures of each kind ---- */

/* Missing at start, then projected: recovers without a reload. Expired: never sent. */
static void test_assertion_missing_and_expired(void)
{
    char buf[512];

    sim_post("/_sim/reset", "{}");
    unlink(jwt_path);
    struct conf *c = kind_conf(K_FED);
    struct token_options o = opts();
    struct token_mgr *m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(reason_is(m, "assertion_unreadable"), 3000));
    CHECK(strstr(token_hint(m, "prod"), "AZURE_FEDERATED_TOKEN_FILE") != NULL);
    CHECK(strstr(last_error(m, "detail", buf, sizeof buf), jwt_path) != NULL);
    CHECK(tx.posts == 0 || sim_counter(NULL, "tokens_total") == 0);
    project(SUB1, (long long)time(NULL) + 600);
    CHECK(WAIT_FOR(ready(m), 3000)); /* the retry timer re-reads the file */
    CHECK(token_hint(m, "prod") == NULL);
    token_mgr_free(m);
    conf_free(c);

    sim_post("/_sim/reset", "{}");
    project(SUB1, (long long)time(NULL) - 30);
    int posts = tx.posts;
    m = token_mgr_new(base, c = kind_conf(K_FED), &o);
    CHECK(WAIT_FOR(reason_is(m, "assertion_expired"), 3000));
    CHECK(strstr(last_error(m, "detail", buf, sizeof buf), "expired") != NULL);
    CHECK(strstr(token_hint(m, "prod"), "rotates") != NULL);
    spin_ms(500);
    CHECK(tx.posts == posts && sim_counter(NULL, "tokens_total") == 0); /* never sent */
    project(SUB1, (long long)time(NULL) + 600);
    CHECK(WAIT_FOR(ready(m), 3000));
    token_mgr_free(m);
    conf_free(c);
}

/* The kubelet rotates the file: the next fetch (here after a 401) sends the new one. */
static void test_assertion_rotation(void)
{
    struct token_view v;

    sim_post("/_sim/reset", "{}");
    project(SUB1, (long long)time(NULL) + 600);
    struct conf *c = kind_conf(K_FED);
    struct token_options o = opts();
    struct token_mgr *m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(ready(m), 3000));
    CHECK(sim_counter("federated_by_subject", SUB1) == 1);
    project(SUB2, (long long)time(NULL) + 900);
    CHECK(token_invalidate(m, "prod", 1) == 1);
    CHECK(WAIT_FOR(get_now(m, &v, NULL, 0) == TOKEN_OK && v.generation == 2, 3000));
    CHECK(sim_counter("federated_by_subject", SUB2) == 1);
    CHECK(sim_counter("federated_by_subject", SUB1) == 1);
    token_mgr_free(m);
    conf_free(c);
}

/* Entra's refusals of a federated assertion: reason, AADSTS code and hint. */
static void test_assertion_refused(void)
{
    char buf[512];

    sim_post("/_sim/reset", "{}");
    project("system:serviceaccount:other:sa", (long long)time(NULL) + 600);
    struct conf *c = kind_conf(K_FED);
    struct token_options o = opts();
    struct token_mgr *m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(reason_is(m, "no_federation"), 3000));
    CHECK_STR(last_error(m, "aadsts", buf, sizeof buf), "70021");
    CHECK(strstr(token_hint(m, "prod"), "federated identity credential") != NULL);
    token_mgr_free(m);

    /* valid for fogate's clock, expired for Entra's */
    project(SUB1, (long long)time(NULL) + 600);
    sim_post("/_sim/clock", "{\"advance\": 1000}");
    m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(reason_is(m, "assertion_time_range"), 3000));
    CHECK_STR(last_error(m, "aadsts", buf, sizeof buf), "700024");
    CHECK(strstr(token_hint(m, "prod"), "AADSTS700024") != NULL);
    sim_post("/_sim/reset", "{}");
    CHECK(WAIT_FOR(ready(m), 3000)); /* retryable: recovers by itself */
    token_mgr_free(m);
    conf_free(c);
}

static void test_mi_failures(void)
{
    char buf[512];
    int closed = testproc_free_port();

    /* IMDS down (nothing listens) */
    struct conf *c = make_conf(K_IMDS, MI_USER, closed);
    struct token_options o = opts();
    struct token_mgr *m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(reason_is(m, "unreachable"), 3000));
    CHECK(strstr(token_hint(m, "prod"), "managed identity endpoint") != NULL);
    token_mgr_free(m);
    conf_free(c);

    /* an identity not assigned here */
    c = make_conf(K_IMDS, "00000000-0000-4000-8000-0000000000aa", sim.port);
    m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(reason_is(m, "identity_not_found"), 3000));
    CHECK_STR(last_error(m, "http_status", buf, sizeof buf), "400");
    token_mgr_free(m);
    conf_free(c);

    /* App Service: a wrong IDENTITY_HEADER, never in the log or status */
    c = kind_conf(K_APP_SERVICE);
    setenv("IDENTITY_HEADER", "wrong-" HDR_VALUE, 1);
    m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(token_reason(m, "prod") && !reason_is(m, "starting"), 3000));
    CHECK(!ready(m));
    CHECK_STR(last_error(m, "http_status", buf, sizeof buf), "401");
    json_t *s = status0(m);
    char *dump = json_dumps(s, 0);
    CHECK(dump && !strstr(dump, HDR_VALUE));
    free(dump);
    json_decref(s);
    token_mgr_free(m);
    conf_free(c);
    unsetenv("IDENTITY_HEADER");
    unsetenv("IDENTITY_ENDPOINT");

    /* only one of the two variables: a credential error naming them */
    setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token", 1);
    c = make_conf(K_IMDS, MI_USER, sim.port);
    m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(reason_is(m, "credential"), 3000));
    CHECK(strstr(last_error(m, "detail", buf, sizeof buf), "IDENTITY_HEADER") != NULL);
    token_mgr_free(m);
    unsetenv("IDENTITY_ENDPOINT");

    /* a transport that cannot GET */
    o.transport.get = NULL;
    m = token_mgr_new(base, c, &o);
    CHECK(WAIT_FOR(reason_is(m, "internal"), 3000));
    token_mgr_free(m);
    conf_free(c);
}

static void test_logs_clean(void)
{
    char line[16384];
    int lines = 0, leaks = 0, hints = 0;

    fflush(logfile);
    FILE *f = fopen(log_path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        lines++;
        leaks += strstr(line, HDR_VALUE) || strstr(line, "eyJ");
        hints += strstr(line, "\"hint\"") != NULL;
    }
    if (f)
        fclose(f);
    CHECK(lines > 10 && leaks == 0 && hints > 3);
}

static int setup(void)
{
    char conf[8192];

    if (!(fosim_bin = getenv("FOSIM_BIN")) || !mkdtemp(dir) || !(base = event_base_new()) ||
        !(issuer_key = EVP_RSA_gen(2048)))
        return -1;
    tx.base = base;
    snprintf(jwt_path, sizeof(jwt_path), "%s/azure-identity-token", dir);
    snprintf(sim_conf_path, sizeof(sim_conf_path), "%s/fosim.json", dir);
    snprintf(log_path, sizeof(log_path), "%s/log.jsonl", dir);
    char *n = bn_b64u(OSSL_PKEY_PARAM_RSA_N), *e = bn_b64u(OSSL_PKEY_PARAM_RSA_E);
    if (!n || !e)
        return -1;
    snprintf(conf, sizeof(conf),
             "{\"tenant\": \"%s\", \"identity_header\": \"%s\", \"tenants\": [{\"id\": \"%s\","
             " \"apps\": [{\"client_id\": \"%s\", \"user\": \"Admin\", \"federated\": ["
             "{\"issuer\": \"%s\", \"subject\": \"%s\", \"jwks\": {\"keys\": [{\"kty\": \"RSA\","
             " \"kid\": \"k1\", \"n\": \"%s\", \"e\": \"%s\"}]}},"
             "{\"issuer\": \"%s\", \"subject\": \"%s\", \"jwks\": {\"keys\": [{\"kty\": \"RSA\","
             " \"kid\": \"k1\", \"n\": \"%s\", \"e\": \"%s\"}]}}]},"
             "{\"client_id\": \"%s\", \"user\": \"Admin\", \"managed_identity\": true},"
             "{\"client_id\": \"%s\", \"user\": \"Admin\", \"managed_identity\": true,"
             " \"system_assigned\": true}]}], \"token_lifetime\": 3599}",
             TENANT, HDR_VALUE, TENANT, FED_APP, ISSUER, SUB1, n, e, ISSUER, SUB2, n, e, MI_USER,
             MI_SYSTEM);
    free(n);
    free(e);
    FILE *f = fopen(sim_conf_path, "w");
    if (!f)
        return -1;
    fputs(conf, f);
    fclose(f);
    if (!(logfile = fopen(log_path, "w+")))
        return -1;
    log_set_stream(logfile);
    log_set_level(LOG_LVL_DEBUG);
    if (testproc_start_redis_plain(&redis, dir) != 0)
        return -1;
    return testproc_start_fosim(&sim, fosim_bin, sim_conf_path, dir, 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (setup() != 0) {
        CHECK(!"setup failed: FOSIM_BIN, redis-server or fosim missing");
        return check_done();
    }
    project(SUB1, (long long)time(NULL) + 3600);
    for (int k = 0; k < K_COUNT; k++) {
        test_single_flight_and_401((enum kind)k);
        test_shared((enum kind)k);
        test_refresh_ahead((enum kind)k);
    }
    unsetenv("IDENTITY_ENDPOINT");
    unsetenv("IDENTITY_HEADER");
    test_assertion_missing_and_expired();
    test_assertion_rotation();
    test_assertion_refused();
    test_mi_failures();
    test_logs_clean();
    testproc_stop(&sim, SIGTERM);
    testproc_stop(&redis, SIGTERM);
    event_base_free(base);
    EVP_PKEY_free(issuer_key);
    log_set_stream(stderr);
    fclose(logfile);
    if (!check_failed)
        testproc_rmtree(dir);
    else
        fprintf(stderr, "kept %s\n", dir);
    return check_done();
}
