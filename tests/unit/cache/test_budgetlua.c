/* Tests for cache/budgetlua against a real redis-server: the key names, the replies, and
 * the scripts' semaphore (leases expire and renew), sliding window (the wait until a place
 * frees), and the 429 gate that only ever extends and is seen by ACQUIRE and PEEK. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredict/hiredict.h>

#include "budgetlua.h"
#include "check.h"
#include "testproc.h"

static redictContext *rc;
static const struct budgetlua_keys *K;

/* EVAL of script id with keys then args (NULL-terminated, keys first, nkeys of them). */
static redictReply *eval(enum budgetlua_id id, int nkeys, ...)
{
    const char *argv[40];
    int argc = 0;
    va_list ap;
    char nk[8];

    snprintf(nk, sizeof nk, "%d", nkeys);
    argv[argc++] = "EVAL";
    argv[argc++] = budgetlua_script(id);
    argv[argc++] = nk;
    va_start(ap, nkeys);
    for (const char *a; argc < 40 && (a = va_arg(ap, const char *));)
        argv[argc++] = a;
    va_end(ap);
    return redictCommandArgv(rc, argc, argv, NULL);
}

static enum budgetlua_verdict acquire(const char *conc, const char *rate, const char *win,
                                      const char *lease, const char *id, int64_t *ms)
{
    redictReply *r = eval(BUDGETLUA_ACQUIRE, 3, K->sem, K->win, K->gate, conc, rate, win,
                          lease, id, NULL);
    enum budgetlua_verdict v = budgetlua_acquire_reply(r, ms);
    freeReplyObject(r);
    return v;
}

static void test_keys(void)
{
    struct budgetlua_keys a, b, c;
    CHECK(budgetlua_keys("https://x.operations.dynamics.com", "app-1", &a) == 0);
    CHECK(budgetlua_keys("https://x.operations.dynamics.com", "app-1", &b) == 0);
    CHECK(budgetlua_keys("https://x.operations.dynamics.com", "app-2", &c) == 0);
    CHECK(strcmp(a.sem, b.sem) == 0 && strcmp(a.sem, c.sem) != 0);
    CHECK(strncmp(a.sem, "fogate:d365:{", 13) == 0 && strlen(a.sem) == 13 + 16 + 5);
    CHECK(strcmp(a.sem + strlen(a.sem) - 4, ":sem") == 0);
    CHECK(strcmp(a.gate + strlen(a.gate) - 5, ":gate") == 0);
    CHECK(budgetlua_keys(NULL, "x", &a) == -1);
    CHECK(budgetlua_script(BUDGETLUA_COUNT) == NULL);
}

static void test_semaphore(void)
{
    int64_t ms;
    CHECK(acquire("2", "100", "60000", "300", "a", &ms) == BUDGETLUA_GRANTED);
    CHECK(acquire("2", "100", "60000", "300", "b", &ms) == BUDGETLUA_GRANTED);
    CHECK(acquire("2", "100", "60000", "300", "c", &ms) == BUDGETLUA_BUSY && ms == 0);
    redictReply *r = eval(BUDGETLUA_RELEASE, 1, K->sem, "a", NULL);
    CHECK(r && r->type == REDICT_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    CHECK(acquire("2", "100", "60000", "300", "c", &ms) == BUDGETLUA_GRANTED);
    /* renew keeps b, not an unknown lease; c is not renewed and expires */
    usleep(150 * 1000);
    r = eval(BUDGETLUA_RENEW, 1, K->sem, "1000", "b", "zz", NULL);
    CHECK(r && r->type == REDICT_REPLY_INTEGER && r->integer == 1);
    freeReplyObject(r);
    usleep(250 * 1000); /* c (300 ms) has expired, b (renewed to 1000 ms) has not */
    CHECK(acquire("2", "100", "60000", "300", "d", &ms) == BUDGETLUA_GRANTED);
    CHECK(acquire("2", "100", "60000", "300", "e", &ms) == BUDGETLUA_BUSY);
}

static void test_window(void)
{
    int64_t ms;
    redictReply *r = redictCommand(rc, "DEL %s %s", K->sem, K->win);
    freeReplyObject(r);
    CHECK(acquire("100", "3", "1000", "60000", "w1", &ms) == BUDGETLUA_GRANTED);
    CHECK(acquire("100", "3", "1000", "60000", "w2", &ms) == BUDGETLUA_GRANTED);
    CHECK(acquire("100", "3", "1000", "60000", "w3", &ms) == BUDGETLUA_GRANTED);
    CHECK(acquire("100", "3", "1000", "60000", "w4", &ms) == BUDGETLUA_RATE);
    CHECK(ms >= 900 && ms <= 1000);
    /* a refused call is not recorded; neither in the window nor the semaphore */
    r = redictCommand(rc, "ZCARD %s", K->win);
    CHECK(r && r->integer == 3);
    freeReplyObject(r);
    usleep((useconds_t)(ms + 20) * 1000);
    CHECK(acquire("100", "3", "1000", "60000", "w5", &ms) == BUDGETLUA_GRANTED);
    r = redictCommand(rc, "PTTL %s", K->win);
    CHECK(r && r->integer > 0 && r->integer <= 1000);
    freeReplyObject(r);
}

static void test_gate(void)
{
    int64_t ms, left[2];
    struct budgetlua_keys other;
    redictReply *r;

    CHECK(budgetlua_keys("https://y", "app", &other) == 0);
    r = eval(BUDGETLUA_CLOSE, 1, K->gate, "5000", NULL);
    CHECK(r && r->integer == 5000);
    freeReplyObject(r);
    r = eval(BUDGETLUA_CLOSE, 1, K->gate, "1000", NULL); /* shorter: kept */
    CHECK(r && r->integer > 4000 && r->integer <= 5000);
    freeReplyObject(r);
    r = eval(BUDGETLUA_CLOSE, 1, K->gate, "8000", NULL); /* D365 extended it */
    CHECK(r && r->integer == 8000);
    freeReplyObject(r);
    CHECK(acquire("100", "100", "1000", "60000", "g1", &ms) == BUDGETLUA_GATED);
    CHECK(ms > 7000 && ms <= 8000);
    r = eval(BUDGETLUA_PEEK, 2, K->gate, other.gate, NULL);
    CHECK(budgetlua_peek_reply(r, left, 2) == 0 && left[0] > 7000 && left[1] == 0);
    CHECK(budgetlua_peek_reply(r, left, 3) == -1);
    freeReplyObject(r);
    r = redictCommand(rc, "DEL %s", K->gate);
    freeReplyObject(r);
    CHECK(acquire("100", "100", "1000", "60000", "g2", &ms) == BUDGETLUA_GRANTED);
}

static void test_bad_replies(void)
{
    int64_t ms;
    redictReply *r = redictCommand(rc, "PING");
    CHECK(budgetlua_acquire_reply(r, &ms) == BUDGETLUA_BAD);
    freeReplyObject(r);
    r = redictCommand(rc, "EVAL %s 0", "return {7, 1}");
    CHECK(budgetlua_acquire_reply(r, &ms) == BUDGETLUA_BAD);
    freeReplyObject(r);
    CHECK(budgetlua_acquire_reply(NULL, &ms) == BUDGETLUA_BAD);
}

int main(void)
{
    char dir[] = "/tmp/fogate-budgetlua-XXXXXX";
    struct testproc redis = { 0 };
    struct budgetlua_keys keys;

    test_keys();
    if (!mkdtemp(dir) || testproc_start_redis_plain(&redis, dir) < 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return 1;
    }
    rc = redictConnect("127.0.0.1", redis.port);
    CHECK(rc && !rc->err);
    CHECK(budgetlua_keys("https://x.operations.dynamics.com", "app-1", &keys) == 0);
    K = &keys;
    if (rc && !rc->err) {
        test_semaphore();
        test_window();
        test_gate();
        test_bad_replies();
    }
    redictFree(rc);
    testproc_stop(&redis, 15);
    testproc_rmtree(dir);
    return check_done();
}
