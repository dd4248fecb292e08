/* test_simpleroute: /v1 route matching, query decoding and ?wait parsing. */
#include "check.h"
#include "simpleroute.h"

#define ID "84a383c8-336d-45e4-9933-0c3e8bfb734a"

static enum simpleroute_kind m(const char *path, struct simpleroute *r)
{
    return simpleroute_match(path, strlen(path), r);
}

static void test_match(void)
{
    struct simpleroute r;

    CHECK(m("/v1/jobs/cust-import/messages", &r) == SIMPLEROUTE_ENQUEUE);
    CHECK_STR(r.job, "cust-import");
    CHECK_STR(r.allow, "POST");
    CHECK(m("/v1/jobs/sales%20orders/next", &r) == SIMPLEROUTE_NEXT);
    CHECK_STR(r.job, "sales orders");
    CHECK(m("/v1/jobs/exp/messages/{84A383C8-336D-45E4-9933-0C3E8BFB734A}/ack", &r) ==
          SIMPLEROUTE_ACK);
    CHECK_STR(r.job, "exp");
    CHECK_STR(r.message_id, ID);
    CHECK(m("/v1/jobs/exp/messages/%7B" ID "%7D/ack", &r) == SIMPLEROUTE_ACK);
    CHECK_STR(r.message_id, ID);
    CHECK(m("/v1/messages/" ID, &r) == SIMPLEROUTE_STATUS);
    CHECK_STR(r.message_id, ID);
    CHECK_STR(r.allow, "GET, HEAD");
    CHECK_STR(r.job, "");
    CHECK(m("/v1/messages/" ID "/errors", &r) == SIMPLEROUTE_ERRORS);

    CHECK(m("/v1/messages/not-a-guid", &r) == SIMPLEROUTE_BAD_ID);
    CHECK(m("/v1/jobs/exp/messages/xyz/ack", &r) == SIMPLEROUTE_BAD_ID);
    CHECK(m("/v1/jobs//messages", &r) == SIMPLEROUTE_BAD_JOB);
    CHECK(m("/v1/jobs/a%2/messages", &r) == SIMPLEROUTE_BAD_JOB);
    CHECK(m("/v1/jobs/a%00b/messages", &r) == SIMPLEROUTE_BAD_JOB);
    CHECK(m("/v1/messages/" ID "/nope", &r) == SIMPLEROUTE_UNKNOWN);
    CHECK(m("/v1/jobs/a/other", &r) == SIMPLEROUTE_UNKNOWN);
    CHECK(m("/v1/jobs/a/messages/" ID "/ack/more", &r) == SIMPLEROUTE_UNKNOWN);
    CHECK(m("/v1/jobs/a/messages/", &r) == SIMPLEROUTE_UNKNOWN);
    CHECK(m("/v1/messages/" ID "/", &r) == SIMPLEROUTE_UNKNOWN);
    CHECK(m("/v1", &r) == SIMPLEROUTE_UNKNOWN);
    CHECK(m("/v1/", &r) == SIMPLEROUTE_UNKNOWN);
    CHECK(m("/v1/a/b/c/d/e/f/g/h", &r) == SIMPLEROUTE_UNKNOWN);
    CHECK(m("/v2/jobs/a/messages", &r) == SIMPLEROUTE_NONE);
    CHECK(m("/healthz", &r) == SIMPLEROUTE_NONE);
    CHECK(m("/v1x/jobs", &r) == SIMPLEROUTE_NONE);
    CHECK(m("", &r) == SIMPLEROUTE_NONE);

    char longjob[400] = "/v1/jobs/";
    memset(longjob + 9, 'a', 300);
    strcpy(longjob + 309, "/messages");
    CHECK(m(longjob, &r) == SIMPLEROUTE_BAD_JOB);
}

static void test_allows(void)
{
    CHECK(simpleroute_allows("GET, HEAD", "GET"));
    CHECK(simpleroute_allows("GET, HEAD", "HEAD"));
    CHECK(!simpleroute_allows("GET, HEAD", "POST"));
    CHECK(!simpleroute_allows("GET, HEAD", "GE"));
    CHECK(simpleroute_allows("POST", "POST"));
    CHECK(!simpleroute_allows("", "GET"));
}

static void test_query(void)
{
    char v[16];
    const char t[] = "/v1/jobs/a/messages?entity=Customer+groups&company=us%6Df&x&wait=5&wait=9";
    size_t n = sizeof t - 1;

    CHECK(simpleroute_query(t, n, "entity", v, sizeof v) == 15);
    CHECK_STR(v, "Customer groups");
    CHECK(simpleroute_query(t, n, "company", v, sizeof v) == 4);
    CHECK_STR(v, "usmf");
    CHECK(simpleroute_query(t, n, "x", v, sizeof v) == 0);
    CHECK_STR(v, "");
    CHECK(simpleroute_query(t, n, "wait", v, sizeof v) == 1);
    CHECK_STR(v, "5");
    CHECK(simpleroute_query(t, n, "job", v, sizeof v) == -1);
    CHECK(simpleroute_query(t, n, "entit", v, sizeof v) == -1);
    CHECK(simpleroute_query("/a", 2, "x", v, sizeof v) == -1);
    char tiny[4];
    CHECK(simpleroute_query(t, n, "entity", tiny, sizeof tiny) == -2);
    CHECK(simpleroute_query("/a?x=%zz", 8, "x", v, sizeof v) == -2);
    CHECK(simpleroute_query("/a?x=%4", 7, "x", v, sizeof v) == -2);
    CHECK(simpleroute_query("/a?x=%0A", 8, "x", v, sizeof v) == -2);
    CHECK(simpleroute_query("/a?x=%20", 8, "x", v, sizeof v) == 1);
}

static void test_wait(void)
{
    unsigned w = 99;
    CHECK(simpleroute_wait("0", 60, &w) == 0 && w == 0);
    CHECK(simpleroute_wait("15", 60, &w) == 0 && w == 15);
    CHECK(simpleroute_wait("61", 60, &w) == 0 && w == 60);
    CHECK(simpleroute_wait("99999999999999999999999", 60, &w) == 0 && w == 60);
    CHECK(simpleroute_wait("", 60, &w) == -1);
    CHECK(simpleroute_wait("-1", 60, &w) == -1);
    CHECK(simpleroute_wait("1.5", 60, &w) == -1);
    CHECK(simpleroute_wait("x", 60, &w) == -1);
}

int main(void)
{
    test_match();
    test_allows();
    test_query();
    test_wait();
    return check_done();
}
