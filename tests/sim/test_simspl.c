/* Unit tests for simspl: fosim's service-protection window arithmetic (reference §5). */
#include <stdlib.h>
#include <string.h>

#include "../unit/check.h"
#include "simspl.h"

static const char *const WHO = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

static struct simspl_conf conf_from(const char *text)
{
    struct simspl_conf c;
    char err[256] = "";
    json_t *j = json_loads(text, 0, NULL);
    simspl_conf_defaults(&c);
    CHECK(simspl_conf_parse(j, &c, err, sizeof(err)) == 0);
    json_decref(j);
    return c;
}

static void test_conf(void)
{
    struct simspl_conf c;
    char err[256], msg[512];
    simspl_conf_defaults(&c);
    CHECK(!c.enabled && c.concurrent == 52 && c.requests == 6000);
    CHECK(simspl_conf_parse(NULL, &c, err, sizeof(err)) == 0 && !c.enabled);
    /* D365's numbers give the verbatim §5.1 texts, typo included */
    CHECK_STR(simspl_message(&c, SIMSPL_REQUESTS, msg, sizeof(msg)),
              "Number of requests exeeded the limit of 6000 over the time window of 300 seconds.");
    CHECK_STR(simspl_message(&c, SIMSPL_CONCURRENT, msg, sizeof(msg)),
              "Number of concurrent requests exceeded the limit of 52.");
    CHECK_STR(simspl_message(&c, SIMSPL_TIME, msg, sizeof(msg)),
              "Combined execution time of incoming requests exceeded limit of 1200 seconds over "
              "time window of 300 seconds. Decrease number of concurrent requests or reduce the "
              "duration of requests and try again later.");
    c = conf_from("{\"requests\": 100, \"window_secs\": 2.5}");
    CHECK(c.enabled && c.requests == 100);
    CHECK_STR(simspl_message(&c, SIMSPL_REQUESTS, msg, sizeof(msg)),
              "Number of requests exeeded the limit of 100 over the time window of 2.5 seconds.");
    const char *bad[] = {"{\"concurrent\": 0}", "{\"window_secs\": -1}", "{\"bogus\": 1}",
                         "{\"enabled\": 1}", "{\"endpoints\": \"dequeue\"}", "[]"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        simspl_conf_defaults(&c);
        err[0] = '\0';
        CHECK(simspl_conf_parse(j, &c, err, sizeof(err)) == -1 &&
              strncmp(err, "service_protection", 18) == 0);
        json_decref(j);
    }
    c = conf_from("{\"endpoints\": [\"dequeue\", \"odata\"]}");
    CHECK(simspl_counts(&c, "dequeue") && simspl_counts(&c, "odata:GetMessageStatus"));
    CHECK(!simspl_counts(&c, "enqueue") && !simspl_counts(&c, "token"));
    c = conf_from("{}");
    CHECK(simspl_counts(&c, "ack") && !simspl_counts(&c, "control") && !simspl_counts(&c, "token"));
    c = conf_from("{\"enabled\": false}");
    CHECK(!simspl_counts(&c, "dequeue"));
}

static void test_concurrency(void)
{
    struct simspl_conf c = conf_from("{\"concurrent\": 2, \"concurrent_retry_after\": 3}");
    struct simspl *p = simspl_new();
    long ra;
    CHECK(simspl_admit(p, &c, WHO, 10.0, &ra) == SIMSPL_OK);
    CHECK(simspl_admit(p, &c, WHO, 10.1, &ra) == SIMSPL_OK);
    CHECK(simspl_admit(p, &c, WHO, 10.2, &ra) == SIMSPL_CONCURRENT && ra == 3);
    CHECK(simspl_admit(p, &c, "other-app", 10.2, &ra) == SIMSPL_OK); /* per identity */
    simspl_done(p, WHO, 10.0, 10.5);
    CHECK(simspl_admit(p, &c, WHO, 10.6, &ra) == SIMSPL_OK);         /* no gate */
    json_t *st = simspl_stats(p, &c, 10.7);
    json_t *me = json_object_get(st, WHO);
    CHECK(json_integer_value(json_object_get(me, "inflight")) == 2);
    CHECK(json_integer_value(json_object_get(me, "max_inflight")) == 2);
    CHECK(json_integer_value(json_object_get(json_object_get(me, "throttled"), "concurrent")) == 1);
    json_decref(st);
    simspl_free(p);
}

static void test_request_window(void)
{
    struct simspl_conf c = conf_from("{\"requests\": 3, \"window_secs\": 10}");
    struct simspl *p = simspl_new();
    long ra;
    double t[] = {100.0, 101.0, 104.5};
    for (int i = 0; i < 3; i++) {
        CHECK(simspl_admit(p, &c, WHO, t[i], &ra) == SIMSPL_OK);
        simspl_done(p, WHO, t[i], t[i] + 0.01);
    }
    /* the oldest (100.0) leaves at 110.0: from 105.2 that is 4.8 s -> "5" */
    CHECK(simspl_admit(p, &c, WHO, 105.2, &ra) == SIMSPL_REQUESTS && ra == 5);
    /* gated: still refused just before, with the remaining whole seconds */
    CHECK(simspl_admit(p, &c, WHO, 109.9, &ra) == SIMSPL_REQUESTS && ra == 1);
    CHECK(simspl_admit(p, &c, WHO, 110.0, &ra) == SIMSPL_OK);
    /* the next slot frees when 101.0 leaves */
    CHECK(simspl_admit(p, &c, WHO, 110.5, &ra) == SIMSPL_REQUESTS && ra == 1);
    CHECK(simspl_admit(p, &c, WHO, 111.0, &ra) == SIMSPL_OK);
    json_t *st = simspl_stats(p, &c, 111.0);
    json_t *me = json_object_get(st, WHO);
    CHECK(json_integer_value(json_object_get(me, "max_window_requests")) == 3);
    CHECK(json_integer_value(json_object_get(me, "admitted")) == 5);
    json_decref(st);
    simspl_reset(p);
    CHECK(simspl_admit(p, &c, WHO, 111.0, &ra) == SIMSPL_OK);
    simspl_free(p);
}

static void test_exec_window(void)
{
    struct simspl_conf c = conf_from("{\"execution_secs\": 3, \"window_secs\": 10}");
    struct simspl *p = simspl_new();
    long ra;
    CHECK(simspl_admit(p, &c, WHO, 0.0, &ra) == SIMSPL_OK);
    simspl_done(p, WHO, 0.0, 2.0);   /* 2 s, ends at 2 */
    CHECK(simspl_admit(p, &c, WHO, 3.0, &ra) == SIMSPL_OK);
    simspl_done(p, WHO, 3.0, 4.5);   /* 1.5 s, ends at 4.5: 3.5 s in the window */
    /* below the limit again once the first (ended at 2) leaves at 12 */
    CHECK(simspl_admit(p, &c, WHO, 5.0, &ra) == SIMSPL_TIME && ra == 7);
    CHECK(simspl_admit(p, &c, WHO, 12.0, &ra) == SIMSPL_OK);
    simspl_free(p);
}

static void test_extend(void)
{
    struct simspl_conf c = conf_from("{\"requests\": 1, \"window_secs\": 10, \"extend_secs\": 2}");
    struct simspl *p = simspl_new();
    long ra;
    CHECK(simspl_admit(p, &c, WHO, 0.0, &ra) == SIMSPL_OK);
    simspl_done(p, WHO, 0.0, 0.1);
    CHECK(simspl_admit(p, &c, WHO, 1.0, &ra) == SIMSPL_REQUESTS && ra == 9);  /* gate at 10 */
    CHECK(simspl_admit(p, &c, WHO, 2.0, &ra) == SIMSPL_REQUESTS && ra == 10); /* pushed: 12 */
    CHECK(simspl_admit(p, &c, WHO, 3.0, &ra) == SIMSPL_REQUESTS && ra == 11); /* 14 */
    CHECK(simspl_admit(p, &c, WHO, 13.9, &ra) == SIMSPL_REQUESTS && ra == 3); /* 16 */
    CHECK(simspl_admit(p, &c, WHO, 16.0, &ra) == SIMSPL_OK);
    simspl_free(p);
}

int main(void)
{
    test_conf();
    test_concurrency();
    test_request_window();
    test_exec_window();
    test_extend();
    return check_done();
}
