/* test_uphead: the upstream response head collector, fed as libcurl feeds it. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "uphead.h"

static enum uphead_verdict feed(struct uphead *h, const char *line)
{
    return uphead_feed(h, line, strlen(line));
}

static void test_simple(void)
{
    struct uphead *h = uphead_new(1024);

    CHECK(feed(h, "HTTP/1.1 200 OK\r\n") == UPHEAD_MORE);
    CHECK(uphead_status(h) == 0);  /* not before the blank line */
    CHECK(feed(h, "Content-Type:  text/plain \r\n") == UPHEAD_MORE);
    CHECK(feed(h, "X-Empty:\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "content-length: 5\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_DONE);
    CHECK(uphead_status(h) == 200);
    CHECK(uphead_minor(h) == 1);
    CHECK(uphead_count(h) == 3);
    CHECK_STR(uphead_name(h, 0), "Content-Type");
    CHECK_STR(uphead_value(h, 0), "text/plain");
    CHECK_STR(uphead_value(h, 1), "");
    CHECK_STR(uphead_find(h, "Content-Length"), "5");
    CHECK(uphead_find(h, "Location") == NULL);
    CHECK(uphead_bytes(h) == strlen("HTTP/1.1 200 OK\r\nContent-Type:  text/plain \r\n"
                                      "X-Empty:\r\ncontent-length: 5\n\r\n"));
    CHECK(feed(h, "Trailer: x\r\n") == UPHEAD_BAD);  /* after DONE */
    uphead_free(h);
}

static void test_interim(void)
{
    struct uphead *h = uphead_new(1024);

    CHECK(feed(h, "HTTP/1.1 100 Continue\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "X-Interim: 1\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_INTERIM);
    CHECK(feed(h, "HTTP/1.1 103 Early Hints\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_INTERIM);
    CHECK(feed(h, "HTTP/1.0 302 Found\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "Location: /login?x=1\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_DONE);
    CHECK(uphead_status(h) == 302);
    CHECK(uphead_minor(h) == 0);
    CHECK(uphead_count(h) == 1);
    CHECK(uphead_find(h, "X-Interim") == NULL);
    CHECK_STR(uphead_find(h, "location"), "/login?x=1");
    uphead_free(h);
}

static void test_cap(void)
{
    struct uphead *h = uphead_new(40);

    CHECK(feed(h, "HTTP/1.1 200 OK\r\n") == UPHEAD_MORE);          /* 17 */
    CHECK(feed(h, "A: 0123456789\r\n") == UPHEAD_MORE);             /* 32 */
    CHECK(feed(h, "B: 0123456\r\n") == UPHEAD_TOO_BIG);             /* 44 > 40 */
    CHECK(feed(h, "\r\n") == UPHEAD_TOO_BIG);                       /* sticky */
    CHECK(uphead_status(h) == 0);
    uphead_free(h);

    /* interim heads count against the same cap */
    h = uphead_new(40);
    CHECK(feed(h, "HTTP/1.1 100 Continue\r\n") == UPHEAD_MORE);    /* 23 */
    CHECK(feed(h, "\r\n") == UPHEAD_INTERIM);                       /* 25 */
    CHECK(feed(h, "HTTP/1.1 200 OK\r\n") == UPHEAD_TOO_BIG);        /* 42 */
    uphead_free(h);

    /* exactly at the cap is fine */
    h = uphead_new(19);
    CHECK(feed(h, "HTTP/1.1 204 Nope\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_TOO_BIG);
    uphead_free(h);
    h = uphead_new(21);
    CHECK(feed(h, "HTTP/1.1 204 Nope\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_DONE);
    uphead_free(h);
}

static void expect_bad(const char *status, const char *field)
{
    struct uphead *h = uphead_new(1024);
    enum uphead_verdict v = feed(h, status);

    if (field && v == UPHEAD_MORE)
        v = feed(h, field);
    CHECK(v == UPHEAD_BAD);
    if (v != UPHEAD_BAD)
        fprintf(stderr, "  accepted: %s / %s\n", status, field ? field : "-");
    CHECK(feed(h, "\r\n") == UPHEAD_BAD);
    uphead_free(h);
}

static void test_bad(void)
{
    expect_bad("HTTP/2 200\r\n", NULL);
    expect_bad("HTTP/1.1 20 OK\r\n", NULL);
    expect_bad("HTTP/1.1 2000 OK\r\n", NULL);
    expect_bad("HTTP/1.1 099 Low\r\n", NULL);
    expect_bad("HTTP/1.1 200 OK", NULL);           /* no line end */
    expect_bad("ICY 200 OK\r\n", NULL);
    expect_bad("HTTP/1.1 200 OK\r\n", "No-Colon\r\n");
    expect_bad("HTTP/1.1 200 OK\r\n", ": no name\r\n");
    expect_bad("HTTP/1.1 200 OK\r\n", "Bad Name: x\r\n");
    expect_bad("HTTP/1.1 200 OK\r\n", " folded continuation\r\n");
    expect_bad("HTTP/1.1 200 OK\r\n", "X: a\x01b\r\n");
    expect_bad("HTTP/1.1 200 OK\r\n", "X: a\rb\r\n");
    /* control bytes anywhere in a long value or a reason (checked eight bytes at a time) */
    expect_bad("HTTP/1.1 200 OK\r\n", "X: 0123456789abcdef\x1f" "0123456789\r\n");
    expect_bad("HTTP/1.1 200 OK\r\n", "X: 0123456789abcdef0123456\x7f\r\n");
    expect_bad("HTTP/1.1 200 O\x01K\r\n", NULL);
    expect_bad("HTTP/1.1 200 Quite a long reason\x7f phrase\r\n", NULL);
    expect_bad("HTTP/1.1 200 OK\rX\r\n", NULL);

    /* what a value may hold: HTAB, obs-text (bytes over 0x7f), 0x7e */
    struct uphead *ok = uphead_new(1024);
    CHECK(feed(ok, "HTTP/1.1 200 R\xe9" "ason\tok\r\n") == UPHEAD_MORE);
    CHECK(feed(ok, "X: \t0123456789\tabcdef~\xff\x80" " 0123456789abcdef\r\n") == UPHEAD_MORE);
    CHECK(feed(ok, "\r\n") == UPHEAD_DONE);
    CHECK(strcmp(uphead_value(ok, 0), "0123456789\tabcdef~\xff\x80" " 0123456789abcdef") == 0);
    uphead_free(ok);

    struct uphead *h = uphead_new(64);
    CHECK(feed(h, "\r\n") == UPHEAD_BAD);          /* blank line before any status */
    uphead_free(h);
}

static void test_many_fields(void)
{
    struct uphead *h = uphead_new(100000);
    char line[64];

    CHECK(feed(h, "HTTP/1.1 200 OK\r\n") == UPHEAD_MORE);
    for (int i = 0; i < 1000; i++) {
        snprintf(line, sizeof(line), "X-F%d: value-%d\r\n", i, i);
        CHECK(feed(h, line) == UPHEAD_MORE);
    }
    CHECK(feed(h, "\r\n") == UPHEAD_DONE);
    CHECK(uphead_count(h) == 1000);
    CHECK_STR(uphead_name(h, 999), "X-F999");
    CHECK_STR(uphead_find(h, "x-f500"), "value-500");
    uphead_free(h);
    uphead_free(NULL);
}

/* A reset head (reused by the h1 prototype) reads a new response from scratch, its cap
 * counted again, after DONE and after BAD alike. */
static void test_reset(void)
{
    struct uphead *h = uphead_new(64);

    CHECK(feed(h, "HTTP/1.1 200 OK\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "A: 1\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_DONE);
    uphead_reset(h);
    CHECK(uphead_status(h) == 0);
    CHECK(uphead_count(h) == 0);
    CHECK(uphead_bytes(h) == 0);
    CHECK(feed(h, "HTTP/1.0 404 Not Found\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "B: 2\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_DONE);
    CHECK(uphead_status(h) == 404);
    CHECK(uphead_minor(h) == 0);
    CHECK(uphead_count(h) == 1);
    CHECK(uphead_find(h, "A") == NULL);
    CHECK_STR(uphead_find(h, "B"), "2");
    CHECK(feed(h, "junk\r\n") == UPHEAD_BAD);
    uphead_reset(h);
    CHECK(feed(h, "HTTP/1.1 204 No Content\r\n") == UPHEAD_MORE);
    CHECK(feed(h, "\r\n") == UPHEAD_DONE);
    CHECK(uphead_status(h) == 204);
    uphead_free(h);
}

/* A fetch's early cap check: only a body the response really has counts. */
static void test_body_over(void)
{
    static const struct { const char *status, *cl; bool is_head, over; } cases[] = {
        {"200 OK", "1001", false, true},
        {"200 OK", "1000", false, false},
        {"200 OK", NULL, false, false},            /* chunked or until close: as it comes */
        {"200 OK", "1001", true, false},           /* HEAD: the length of a body not sent */
        {"204 No Content", "1001", false, false},
        {"304 Not Modified", "1001", false, false},
        {"404 Not Found", "99999999999999999999", false, true}, /* strtoull saturates */
        {"200 OK", "junk", false, false},          /* left to the reader to refuse */
    };
    char line[128];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct uphead *h = uphead_new(1024);

        snprintf(line, sizeof line, "HTTP/1.1 %s\r\n", cases[i].status);
        feed(h, line);
        if (cases[i].cl) {
            snprintf(line, sizeof line, "Content-Length: %s\r\n", cases[i].cl);
            feed(h, line);
        }
        CHECK(feed(h, "\r\n") == UPHEAD_DONE);
        CHECK(uphead_body_over(h, cases[i].is_head, 1000) == cases[i].over);
        uphead_free(h);
    }
}

int main(void)
{
    test_simple();
    test_interim();
    test_cap();
    test_bad();
    test_many_fields();
    test_reset();
    test_body_over();
    return check_done();
}
