/* test_tracectx: W3C traceparent validation and formatting, client request ids. */
#include <string.h>

#include "check.h"
#include "tracectx.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static int parse(const char *v, struct tracectx *t)
{
    return tracectx_parse(v, strlen(v), t);
}

static void test_parse(void)
{
    struct tracectx t = { 0 };

    CHECK(parse(TP, &t) == 0);
    CHECK_STR(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    CHECK(t.flags == 1);
    CHECK(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", &t) == 0 &&
          t.flags == 0);
    /* a later version: the first four fields, more may follow after a dash */
    CHECK(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what", &t) == 0);
    CHECK(parse("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01xwhat", &t) == -1);
    CHECK(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", &t) == -1);
    CHECK(parse("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t) == -1);
    CHECK(parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01", &t) == -1);
    CHECK(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", &t) == -1);
    CHECK(parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", &t) == -1);
    CHECK(parse("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", &t) == -1);
    CHECK(parse("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &t) == -1);
    CHECK(parse("", &t) == -1);
    CHECK(parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", &t) == -1);
}

static void test_format(void)
{
    struct tracectx t = { .trace_id = "4bf92f3577b34da6a3ce929d0e0e4736", .flags = 1 };
    char out[56], span[17], id[33];

    CHECK_STR(tracectx_format(&t, "00f067aa0ba902b7", out), TP);
    tracectx_hex(0, 0, span, 16);
    CHECK(strlen(span) == 16 && strspn(span, "0") < 16);
    tracectx_hex(0x0123456789abcdefULL, 1, id, 32);
    CHECK(strlen(id) == 32 && strspn(id, "0123456789abcdef") == 32);
    struct tracectx back;
    tracectx_format(&t, span, out);
    CHECK(tracectx_parse(out, strlen(out), &back) == 0);
}

static void test_request_id(void)
{
    char big[80];

    CHECK(tracectx_request_id_ok("abc-123_X.y:z", 13));
    CHECK(!tracectx_request_id_ok("", 0));
    CHECK(!tracectx_request_id_ok("a b", 3));
    CHECK(!tracectx_request_id_ok("a\"b", 3));
    CHECK(!tracectx_request_id_ok("a\nb", 3));
    CHECK(!tracectx_request_id_ok("caf\xc3\xa9", 5));
    memset(big, 'a', sizeof big);
    CHECK(tracectx_request_id_ok(big, TRACECTX_REQUEST_ID_MAX));
    CHECK(!tracectx_request_id_ok(big, TRACECTX_REQUEST_ID_MAX + 1));
}

int main(void)
{
    test_parse();
    test_format();
    test_request_id();
    return check_done();
}
