/* test_h1body: request bodies after a parsed head: Content-Length, strict chunked
 * decoding fed in pieces of every size, and chunked framing that must be refused. */
#include "check.h"
#include "h1body.h"

static int parse_str(const char *head, struct http1_head *h, struct http1_header *hdrs,
                     struct http1_verdict *v)
{
    struct http1_limits lim = { .max_header_bytes = 8192, .max_headers = 16 };
    return http1_parse(head, strlen(head), &lim, hdrs, 16, h, v);
}

struct sink {
    char buf[256];
    size_t len;
    bool refuse;
};

static int on_data(void *arg, const char *data, size_t len)
{
    struct sink *s = arg;
    if (s->refuse || s->len + len > sizeof s->buf)
        return -1;
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

/* Parses `head`, then feeds `body` in pieces of `step` bytes. Returns the total consumed
 * or -1 on a decode error (*v filled). */
static long feed(const char *head, const char *body, size_t step, struct sink *s,
                 struct http1_verdict *v)
{
    struct http1_header hdrs[16];
    struct http1_head h;
    struct h1body b;
    size_t off = 0, blen = strlen(body);

    if (parse_str(head, &h, hdrs, v) != 0)
        return -2;
    h1body_init(&b, &h);
    while (off < blen && !h1body_done(&b)) {
        size_t n = blen - off < step ? blen - off : step;
        ssize_t r = h1body_feed(&b, body + off, n, on_data, s, v);
        if (r < 0)
            return -1;
        off += (size_t)r;
        if ((size_t)r < n)
            break;
    }
    return h1body_done(&b) ? (long)off : -3;
}

#define CHUNKED "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"

static void test_body_ok(void)
{
    struct http1_verdict v;
    const char *body = "3\r\nabc\r\n0A\r\n0123456789\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
    size_t body_len = strlen("3\r\nabc\r\n0A\r\n0123456789\r\n0\r\n\r\n");

    for (size_t step = 1; step <= strlen(body); step += 3) {
        struct sink s = { .len = 0 };
        long n = feed(CHUNKED, body, step, &s, &v);
        CHECK(n == (long)body_len);
        CHECK(s.len == 13 && memcmp(s.buf, "abc0123456789", 13) == 0);
    }
    struct sink s = { .len = 0 };
    CHECK(feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n", "abcdGET", 2, &s, &v) == 4);
    CHECK(s.len == 4 && memcmp(s.buf, "abcd", 4) == 0);
    struct sink r = { .refuse = true };
    CHECK(feed(CHUNKED, "3\r\nabc\r\n0\r\n\r\n", 100, &r, &v) == -1);
    CHECK_STR(v.code, "body_rejected");
}

static void test_body_bad(void)
{
    static const char *const bad[] = {
        "0x0\r\n\r\n",                 /* hex prefix */
        "3;ext=1\r\nabc\r\n0\r\n\r\n", /* chunk extension */
        "3 \r\nabc\r\n0\r\n\r\n",      /* whitespace after size */
        " 3\r\nabc\r\n0\r\n\r\n",      /* whitespace before size */
        "3\nabc\r\n0\r\n\r\n",         /* bare LF after size */
        "3\r\nabcX\r\n0\r\n\r\n",      /* data longer than size */
        "3\r\nabc\n0\r\n\r\n",         /* bare LF after data */
        "0\r\nX-Trailer: 1\r\n\r\n",   /* trailer */
        "0\r\n\n",                     /* bare LF ends the body */
        "-1\r\n\r\n",                  /* sign */
        "g\r\n\r\n",                   /* not hex */
        "fffffffffffffffff\r\n",       /* overflow */
        "\r\n3\r\nabc\r\n0\r\n\r\n",   /* empty size line */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (size_t step = 1; step <= 64; step += 63) {
            struct sink s = { .len = 0 };
            struct http1_verdict v = { 0 };
            long n = feed(CHUNKED, bad[i], step, &s, &v);
            CHECK(n == -1);
            CHECK(v.status == 400);
            if (n != -1)
                fprintf(stderr, "  accepted chunked body #%zu (step %zu): %ld\n", i, step, n);
        }
    }
}

static void test_no_body(void)
{
    struct http1_header hdrs[16];
    struct http1_head h;
    struct http1_verdict v;
    struct h1body b;

    CHECK(parse_str("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &h, hdrs, &v) == 0);
    h1body_init(&b, &h);
    CHECK(h1body_done(&b));
    CHECK(h1body_feed(&b, "GET / HTTP/1.1\r\n", 16, NULL, NULL, &v) == 0);
    CHECK(parse_str("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", &h, hdrs, &v) == 0);
    h1body_init(&b, &h);
    CHECK(!h1body_done(&b));
    CHECK(h1body_feed(&b, "ab", 2, NULL, NULL, &v) == 2 && !h1body_done(&b));
    CHECK(h1body_feed(&b, "cdef", 4, NULL, NULL, &v) == 1 && h1body_done(&b));
}

int main(void)
{
    test_body_ok();
    test_body_bad();
    test_no_body();
    return check_done();
}
