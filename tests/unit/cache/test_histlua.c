/* Tests for cache/histlua's PUT script against a real redis-server: a final record is
 * counted in today's hash exactly once, whichever order its writes arrive in (the final
 * ack without a job before the delivery that names it, or after), and never again. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredict/hiredict.h>

#include "check.h"
#include "histlua.h"
#include "testproc.h"

#define PREFIX "fogate:hist:r:"
#define TODAY "fogate:hist:t:"

static redictContext *rc;

/* One PUT of record `id` (no indexes: keys are the record's own) with `status`
 * (final when final), then NULL-terminated field, value pairs. */
static void put(const char *id, const char *status, bool final, ...)
{
    char key[128];
    const char *argv[40];
    int argc = 0;
    va_list ap;

    snprintf(key, sizeof key, PREFIX "%s", id);
    const char *head[] = { "EVAL", histlua_body(HISTLUA_PUT), "4", key, key, key,
                           "fogate:hist:receipts", id, PREFIX, "60000", "100", "0", status,
                           final ? "1" : "0", "", TODAY };
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        argv[argc++] = head[i];
    va_start(ap, final);
    for (const char *a; argc < 40 && (a = va_arg(ap, const char *));)
        argv[argc++] = a;
    va_end(ap);
    redictReply *r = redictCommandArgv(rc, argc, argv, NULL);
    CHECK(r != NULL && r->type == REDICT_REPLY_STRING);
    freeReplyObject(r);
}

/* Today's count of job `job` with status `st` in environment env (0 if none). */
static long long counted(const char *env, const char *job, const char *st)
{
    char key[128], field[128];
    time_t now = time(NULL);
    struct tm tm;

    gmtime_r(&now, &tm);
    snprintf(key, sizeof key, TODAY "%s:%04d-%02d-%02d", env, tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday);
    snprintf(field, sizeof field, "%s\t%s", job, st);
    redictReply *r = redictCommand(rc, "HGET %s %s", key, field);
    long long n = r && r->type == REDICT_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return n;
}

/* The outbox's ack (final, no env or job) lands before the delivery that names them. */
static void test_final_before_job(void)
{
    put("x1", "Acked", true, "?acked", "@now", NULL);
    CHECK(counted("envA", "exp", "Acked") == 0);
    put("x1", "?Delivered", false, "dir", "export", "env", "envA", "job", "exp", NULL);
    CHECK(counted("envA", "exp", "Acked") == 1);
    put("x1", "Acked", true, "?acked", "@now", NULL); /* a second ack: not again */
    put("x1", "?Delivered", false, "env", "envA", "job", "exp", NULL);
    CHECK(counted("envA", "exp", "Acked") == 1);
}

/* The usual order, and two instances finalising the same record. */
static void test_job_before_final(void)
{
    put("x2", "?Delivered", false, "dir", "export", "env", "envA", "job", "exp", NULL);
    CHECK(counted("envA", "exp", "Acked") == 1); /* x1's, from the test above */
    put("x2", "Confirmed", false, "confirmed_by", "c", NULL);
    put("x2", "Acked", true, NULL);
    CHECK(counted("envA", "exp", "Acked") == 2);
    put("x2", "Acked", true, "env", "envA", "job", "exp", NULL);
    CHECK(counted("envA", "exp", "Acked") == 2);
    /* an import that turns final with its job known from the start */
    put("i1", "Processed", true, "dir", "import", "env", "envA", "job", "imp", NULL);
    put("i1", "Processed", true, NULL);
    CHECK(counted("envA", "imp", "Processed") == 1);
    CHECK(counted("envA", "exp", "Confirmed") == 0);
}

/* A record that never learns its job is never counted, and costs nothing. */
static void test_no_job_never_counted(void)
{
    put("x3", "Acked", true, NULL);
    put("x3", "Acked", true, "?acked", "@now", NULL);
    redictReply *r = redictCommand(rc, "HGET " PREFIX "x3 counted");
    CHECK(r && r->type == REDICT_REPLY_NIL);
    freeReplyObject(r);
}

int main(void)
{
    char dir[] = "/tmp/fogate-histlua-XXXXXX";
    struct testproc redis = { 0 };

    CHECK(histlua_body(HISTLUA_COUNT) == NULL);
    if (!mkdtemp(dir) || testproc_start_redis_plain(&redis, dir) < 0) {
        fprintf(stderr, "cannot start redis-server\n");
        return 1;
    }
    rc = redictConnect("127.0.0.1", redis.port);
    CHECK(rc && !rc->err);
    if (rc && !rc->err) {
        test_final_before_job();
        test_job_before_final();
        test_no_job_never_counted();
    }
    redictFree(rc);
    testproc_stop(&redis, 15);
    testproc_rmtree(dir);
    return check_done();
}
