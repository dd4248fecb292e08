/* Tests for proxy/d365/budget on a real event loop: callbacks never from inside
 * budget_acquire, slots given back, round-robin across jobs, the wait bound, cancel, the
 * per-job queue bound; with a real redis-server two budgets (two instances) sharing one
 * semaphore and one 429 gate, and the local share while Redis is unreachable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "budget.h"
#include "check.h"
#include "conf.h"
#include "log.h"
#include "testloop.h"
#include "testproc.h"

struct got {
    int n;                        /* callbacks so far */
    enum budget_verdict v;
    unsigned retry_after;
    struct budget_lease *lease;
    int order;                    /* n of the whole test when it came */
};

static int calls;                 /* callbacks of the whole test, for ordering */

static void on_slot(void *arg, enum budget_verdict v, struct budget_lease *lease, unsigned ra)
{
    struct got *g = arg;
    g->n++;
    g->v = v;
    g->lease = lease;
    g->retry_after = ra;
    g->order = ++calls;
}

static struct conf *load(const char *budget, int redis_port)
{
    char text[2048];
    struct conf_error err;
    snprintf(text, sizeof text,
             "{\"listen\": \"127.0.0.1:8080\", \"public_base_url\": \"http://127.0.0.1:1\",\n"
             " \"environments\": {\"e\": {\"base_url\": \"https://x.operations.dynamics.com\","
             " \"tenant\": \"t.example\", \"client_id\": \"532a7a3b-4cfe-44de-b694-7a36916c3ae7\","
             " \"client_secret_env\": \"FOGATE_TEST_SECRET\"}},\n"
             " \"jobs\": {}, \"clients\": {}, \"redis\": {\"url\": \"redis://127.0.0.1:%d\","
             " \"connect_timeout_ms\": 300}, \"d365_budget\": %s}\n", redis_port, budget);
    struct conf *c = conf_load_buffer(text, strlen(text), "mem.json", &err);
    if (!c)
        fprintf(stderr, "config: %s\n", err.message);
    return c;
}

static enum budget_start ask(struct budget *b, const char *job, unsigned wait_ms, struct got *g,
                             struct budget_wait **w)
{
    unsigned ra;
    enum budget_start s = budget_acquire(b, "e", job, wait_ms, on_slot, g, w, &ra);
    CHECK(g->n == 0); /* never from inside */
    return s;
}

static void test_local(struct event_base *base)
{
    struct conf *c = load("{\"concurrent\": 1, \"queue_per_job\": 3}", 1);
    struct budget *b = c ? budget_new(base, c, 1) : NULL;
    struct got a[3] = { 0 }, q = { 0 }, x = { 0 };
    struct budget_wait *w;
    unsigned ra;

    CHECK(b != NULL);
    if (!b)
        return;
    calls = 0;
    for (int i = 0; i < 3; i++)
        CHECK(ask(b, "busy", 5000, &a[i], &w) == BUDGET_PENDING);
    CHECK(ask(b, "quiet", 5000, &q, &w) == BUDGET_PENDING);
    CHECK(budget_acquire(b, "e", "busy", 5000, on_slot, &x, &w, &ra) == BUDGET_FULL && ra >= 1);
    CHECK(budget_acquire(b, "nope", "busy", 5000, on_slot, &x, &w, &ra) == BUDGET_FREE);
    CHECK(TESTLOOP_WAIT_FOR(base, a[0].n == 1, 2000, 5) && a[0].v == BUDGET_GRANTED);
    testloop_spin_ms(base, 20);
    CHECK(q.n == 0 && a[1].n == 0); /* one slot: nobody else yet */
    /* each release serves the next job in turn: quiet before the busy job's second */
    budget_release(a[0].lease);
    CHECK(TESTLOOP_WAIT_FOR(base, q.n == 1, 2000, 5) && a[1].n == 0);
    budget_release(q.lease);
    CHECK(TESTLOOP_WAIT_FOR(base, a[1].n == 1, 2000, 5));
    budget_release(a[1].lease);
    CHECK(TESTLOOP_WAIT_FOR(base, a[2].n == 1, 2000, 5));
    CHECK(a[0].order < q.order && q.order < a[1].order && a[1].order < a[2].order);
    /* the wait bound, and a cancelled wait that never hears back */
    struct got late = { 0 }, gone = { 0 };
    struct budget_wait *wg;
    CHECK(ask(b, "busy", 60, &late, &w) == BUDGET_PENDING);
    CHECK(ask(b, "busy", 5000, &gone, &wg) == BUDGET_PENDING);
    budget_cancel(wg);
    CHECK(TESTLOOP_WAIT_FOR(base, late.n == 1, 2000, 5));
    CHECK(late.v == BUDGET_EXHAUSTED && late.lease == NULL && late.retry_after >= 1);
    budget_release(a[2].lease);
    testloop_spin_ms(base, 30);
    CHECK(gone.n == 0);
    json_t *st = budget_status(b);
    json_t *e = json_object_get(st, "e");
    CHECK_STR(json_string_value(json_object_get(e, "mode")), "local");
    CHECK(json_integer_value(json_object_get(e, "inflight")) == 0);
    CHECK(json_integer_value(json_object_get(e, "granted")) == 4);
    CHECK(json_integer_value(json_object_get(e, "refused")) == 2);
    json_decref(st);
    /* the local gate */
    CHECK(budget_gate_left_us(b, "e") == 0);
    budget_gate_close(b, "e", 2);
    CHECK(budget_gate_left_us(b, "e") > 1900000 && budget_gate_left_us(b, "nope") == 0);
    budget_free(b);
    conf_free(c);
}

static void test_off(struct event_base *base)
{
    struct conf *c = load("{\"enabled\": false}", 1);
    struct budget *b = c ? budget_new(base, c, 1) : NULL;
    struct got g = { 0 };
    struct budget_wait *w;
    CHECK(b && ask(b, "j", 100, &g, &w) == BUDGET_FREE && w == NULL);
    budget_free(b);
    conf_free(c);
}

static void test_shared(struct event_base *base, int port)
{
    struct conf *c = load("{\"shared\": true, \"concurrent\": 1, \"poll_ms\": 5, "
                          "\"gate_refresh_ms\": 20}", port);
    struct budget *a = c ? budget_new(base, c, 1) : NULL, *b = c ? budget_new(base, c, 1) : NULL;
    struct got ga = { 0 }, gb = { 0 };
    struct budget_wait *w;

    CHECK(a && b);
    if (!a || !b)
        goto out;
    CHECK(TESTLOOP_WAIT_FOR(base, ({ json_t *s = budget_status(a); int ok = strcmp(
              json_string_value(json_object_get(json_object_get(s, "e"), "mode")), "shared") == 0;
              json_decref(s); ok; }), 3000, 10));
    CHECK(ask(a, "j", 5000, &ga, &w) == BUDGET_PENDING);
    CHECK(TESTLOOP_WAIT_FOR(base, ga.n == 1, 2000, 5) && ga.v == BUDGET_GRANTED);
    CHECK(ask(b, "j", 5000, &gb, &w) == BUDGET_PENDING);
    testloop_spin_ms(base, 100);
    CHECK(gb.n == 0); /* the one slot is held by the other instance */
    budget_release(ga.lease);
    CHECK(TESTLOOP_WAIT_FOR(base, gb.n == 1, 2000, 5) && gb.v == BUDGET_GRANTED);
    budget_release(gb.lease);
    /* a 429 on one instance: the other sees the gate within a refresh or two */
    long long t0 = testproc_now_ms();
    budget_gate_close(a, "e", 3);
    CHECK(TESTLOOP_WAIT_FOR(base, budget_gate_left_us(b, "e") > 2000000, 1000, 2));
    CHECK(testproc_now_ms() - t0 < 100);
    /* and a slot asked meanwhile is refused as gated, not granted */
    struct got gg = { 0 };
    CHECK(ask(b, "j", 5000, &gg, &w) == BUDGET_PENDING);
    CHECK(TESTLOOP_WAIT_FOR(base, gg.n == 1, 2000, 5) && gg.v == BUDGET_GATED);
    CHECK(gg.retry_after >= 2 && gg.retry_after <= 3);
out:
    budget_free(a);
    budget_free(b);
    conf_free(c);
}

static void test_redis_unreachable(struct event_base *base)
{
    int port = testproc_free_port(); /* nobody listens */
    struct conf *c = load("{\"shared\": true, \"concurrent\": 4, \"instances\": 2}", port);
    struct budget *b = c ? budget_new(base, c, 1) : NULL;
    struct got g[3] = { { 0 } };
    struct budget_wait *w;

    CHECK(b != NULL);
    if (!b)
        goto out;
    for (int i = 0; i < 3; i++)
        CHECK(ask(b, "j", 300, &g[i], &w) == BUDGET_PENDING);
    /* the share: 4 / 2 instances = 2 slots; the third waits out its bound */
    CHECK(TESTLOOP_WAIT_FOR(base, g[0].n && g[1].n && g[2].n, 3000, 5));
    CHECK(g[0].v == BUDGET_GRANTED && g[1].v == BUDGET_GRANTED && g[2].v == BUDGET_EXHAUSTED);
    budget_release(g[0].lease);
    budget_release(g[1].lease);
out:
    budget_free(b);
    conf_free(c);
}

int main(void)
{
    char dir[] = "/tmp/fogate-budget-XXXXXX";
    struct testproc redis = { 0 };
    struct event_base *base = event_base_new();

    log_set_level(LOG_LVL_ERROR);
    setenv("FOGATE_TEST_SECRET", "x", 1);
    test_off(base);
    test_local(base);
    test_redis_unreachable(base);
    if (!mkdtemp(dir) || testproc_start_redis_plain(&redis, dir) < 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return 1;
    }
    test_shared(base, redis.port);
    testproc_stop(&redis, 15);
    testproc_rmtree(dir);
    event_base_free(base);
    return check_done();
}
