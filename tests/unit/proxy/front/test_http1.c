/* test_http1: table-driven checks of the strict request-head parser and the head finder.
 * Each row is a raw head and the status/code it must get. */
#include "check.h"
#include "http1.h"


#define HOST "Host: fogate.example\r\n"

struct row {
    const char *head;
    size_t len;        /* 0 = strlen(head); set for heads with NUL bytes */
    int status;        /* 0 = accepted */
    const char *code;  /* expected verdict code, or for accepted rows the method */
};

static const struct row rows[] = {
    /* accepted */
    { "GET / HTTP/1.1\r\n" HOST "\r\n", 0, 0, "GET" },
    { "GET /healthz?x=1 HTTP/1.1\r\n" HOST "Accept: */*\r\n\r\n", 0, 0, "GET" },
    { "HEAD /healthz HTTP/1.1\r\n" HOST "\r\n", 0, 0, "HEAD" },
    { "GET / HTTP/1.0\r\n\r\n", 0, 0, "GET" },
    { "OPTIONS * HTTP/1.1\r\n" HOST "\r\n", 0, 0, "OPTIONS" },
    { "POST /api/connector/enqueue/%7Bab%7D?entity=Customers%20V3 HTTP/1.1\r\n" HOST
      "Content-Length: 5\r\n\r\n", 0, 0, "POST" },
    { "POST /x HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n", 0, 0, "POST" },
    { "POST /x HTTP/1.1\r\n" HOST "Transfer-Encoding:  Chunked \r\n\r\n", 0, 0, "POST" },
    { "PUT /x HTTP/1.1\r\n" HOST "Content-Length: 0\r\nExpect: 100-continue\r\n\r\n", 0, 0, "PUT" },
    { "GET / HTTP/1.1\r\nHost: [::1]:8080\r\nX-Empty:\r\nX-Tab:\tv\t\r\n\r\n", 0, 0, "GET" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX-Obs: caf\xc3\xa9\r\n\r\n", 0, 0, "GET" },
    { "DELETE /a/{b} HTTP/1.1\r\n" HOST "\r\n", 0, 0, "DELETE" },
    { "PATCH /data/A(1) HTTP/1.1\r\n" HOST "Content-Length: 2\r\n\r\n", 0, 0, "PATCH" },
    { "GET / HTTP/1.1\r\n" HOST "Connection: keep-alive, X-Up\r\n\r\n", 0, 0, "GET" },
    /* methods no route serves, and protocol upgrades: refused before routing */
    { "M-SEARCH / HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    { "TRACE / HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    { "TRACE * HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    { "PURGE /data/A HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    { "PROPFIND / HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    { "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, 400, "empty_host" },
    { "GET / HTTP/1.1\r\nHost:  \t\r\n\r\n", 0, 400, "empty_host" },
    { "GET / HTTP/1.0\r\nHost:\r\n\r\n", 0, 400, "empty_host" },
    { "GET / HTTP/1.1\r\n" HOST "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
      "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 0, 400, "upgrade_not_supported" },
    { "GET / HTTP/1.1\r\n" HOST "Upgrade: websocket\r\n\r\n", 0, 400, "upgrade_not_supported" },
    { "GET / HTTP/1.1\r\n" HOST "HTTP2-Settings: AAMAAABk\r\n\r\n", 0, 400,
      "upgrade_not_supported" },
    { "GET / HTTP/1.1\r\n" HOST "Connection: keep-alive, upgrade\r\n\r\n", 0, 400,
      "upgrade_not_supported" },
    /* request line */
    { "GET  / HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_request_line" },
    { "GET / HTTP/1.1 \r\n" HOST "\r\n", 0, 400, "bad_request_line" },
    { "GET /\r\n\r\n", 0, 400, "bad_request_line" },
    { "GET\t/ HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_request_line" },
    { "GET / http/1.1\r\n" HOST "\r\n", 0, 400, "bad_request_line" },
    { "GET / HTTP/1.10\r\n" HOST "\r\n", 0, 400, "bad_request_line" },
    { "GET / HTTP/1\r\n" HOST "\r\n", 0, 400, "bad_request_line" },
    { " GET / HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_request_line" },
    { "GET /a b HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_request_line" },
    { "GET / HTTP/1.9\r\n" HOST "\r\n", 0, 505, "version_not_supported" },
    { "GET / HTTP/2.0\r\n" HOST "\r\n", 0, 505, "version_not_supported" },
    { "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 0, 505, "version_not_supported" },
    { "GET / HTTP/0.9\r\n" HOST "\r\n", 0, 505, "version_not_supported" },
    { "FOO / HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    { "get / HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    { "GETS / HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    /* targets */
    { "GET http://fogate.example/ HTTP/1.1\r\n" HOST "\r\n", 0, 400, "target_not_origin_form" },
    { "CONNECT fogate.example:443 HTTP/1.1\r\n" HOST "\r\n", 0, 501, "method_not_implemented" },
    { "GET * HTTP/1.1\r\n" HOST "\r\n", 0, 400, "target_not_origin_form" },
    { "GET /a#frag HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_target" },
    { "GET /a\\..\\b HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_target" },
    { "GET /a%zz HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_target" },
    { "GET /a% HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_target" },
    { "GET /caf\xc3\xa9 HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_target" },
    { "GET /a\x7f HTTP/1.1\r\n" HOST "\r\n", 0, 400, "bad_target" },
    /* line endings and bytes */
    { "GET / HTTP/1.1\n" HOST "\r\n", 0, 400, "bare_lf" },
    { "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", 0, 400, "bare_lf" },
    { "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 0, 400, "bare_cr" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 35, 400, "nul_byte" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", 0, 400, "control_char" },
    { "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 0, 400, "control_char" },
    { "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n", 0, 400, "control_char" },
    { "GET / HTTP/1.1\r\n" HOST "X: a\r\n b\r\n\r\n", 0, 400, "obs_fold" },
    { "GET / HTTP/1.1\r\n" HOST "\tX: a\r\n\r\n", 0, 400, "obs_fold" },
    { "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, 400, "space_before_colon" },
    { "GET / HTTP/1.1\r\n" HOST "Content-Length\t: 0\r\n\r\n", 0, 400, "space_before_colon" },
    { "GET / HTTP/1.1\r\n" HOST "Bad Name: a\r\n\r\n", 0, 400, "space_before_colon" },
    { "GET / HTTP/1.1\r\n" HOST ": a\r\n\r\n", 0, 400, "bad_header_name" },
    { "GET / HTTP/1.1\r\n" HOST "X(y): a\r\n\r\n", 0, 400, "bad_header_name" },
    { "GET / HTTP/1.1\r\n" HOST "NoColon\r\n\r\n", 0, 400, "bad_header_name" },
    { "GET / HTTP/1.1\r\n" HOST "X\xc3\xa9: a\r\n\r\n", 0, 400, "bad_header_name" },
    /* Host */
    { "GET / HTTP/1.1\r\n\r\n", 0, 400, "missing_host" },
    { "GET / HTTP/1.1\r\n" HOST HOST "\r\n", 0, 400, "duplicate_host" },
    { "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 0, 400, "duplicate_host" },
    { "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 0, 400, "duplicate_host" },
    { "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0, 400, "bad_host" },
    { "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0, 400, "bad_host" },
    { "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 0, 400, "bad_host" },
    /* Content-Length */
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, 400,
      "duplicate_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0, 400,
      "duplicate_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: 5, 5\r\n\r\n", 0, 400, "bad_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: +5\r\n\r\n", 0, 400, "bad_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: -1\r\n\r\n", 0, 400, "bad_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: 1 2\r\n\r\n", 0, 400, "bad_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: 0x10\r\n\r\n", 0, 400, "bad_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Content-Length:\r\n\r\n", 0, 400, "bad_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: 1234567890123456789\r\n\r\n", 0, 400,
      "bad_content_length" },
    /* Transfer-Encoding */
    { "POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
      400, "te_with_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0,
      400, "te_with_content_length" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: xchunked\r\n\r\n", 0, 400,
      "transfer_encoding_not_chunked" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked, identity\r\n\r\n", 0, 400,
      "transfer_encoding_not_chunked" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: identity\r\n\r\n", 0, 400,
      "transfer_encoding_not_chunked" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: \"chunked\"\r\n\r\n", 0, 400,
      "transfer_encoding_not_chunked" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked;q=1\r\n\r\n", 0, 400,
      "transfer_encoding_not_chunked" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding:\r\n\r\n", 0, 400,
      "transfer_encoding_not_chunked" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: gzip, chunked\r\n\r\n", 0, 501,
      "transfer_encoding_unsupported" },
    { "POST / HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
      0, 400, "duplicate_transfer_encoding" },
    { "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400, "te_on_http10" },
    /* Expect */
    { "POST / HTTP/1.1\r\n" HOST "Expect: 200-ok\r\nContent-Length: 1\r\n\r\n", 0, 417,
      "expectation_failed" },
    { "POST / HTTP/1.0\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\n", 0, 0, "POST" },
    /* incomplete */
    { "GET / HTTP/1.1\r\n" HOST, 0, 400, "malformed_request" },
};

static void check_row(const struct row *r)
{
    struct http1_header hdrs[16];
    struct http1_head h;
    struct http1_verdict v = { 0 };
    struct http1_limits lim = { .max_header_bytes = 8192, .max_headers = 16 };
    size_t len = r->len ? r->len : strlen(r->head);

    int rc = http1_parse(r->head, len, &lim, hdrs, 16, &h, &v);
    if (r->status == 0) {
        CHECK(rc == 0);
        if (rc == 0)
            CHECK_STR(h.method_name, r->code);
        if (rc != 0)
            fprintf(stderr, "  refused %s: %d %s\n", r->head, v.status, v.code);
        return;
    }
    CHECK(rc == -1);
    CHECK(v.status == r->status);
    CHECK_STR(v.code, r->code);
    if (rc != -1 || v.status != r->status)
        fprintf(stderr, "  head: %s\n", r->head);
}

static int parse_str(const char *head, struct http1_head *h, struct http1_header *hdrs,
                     struct http1_verdict *v)
{
    struct http1_limits lim = { .max_header_bytes = 8192, .max_headers = 16 };
    return http1_parse(head, strlen(head), &lim, hdrs, 16, h, v);
}

static void test_fields(void)
{
    struct http1_header hdrs[16];
    struct http1_head h;
    struct http1_verdict v;
    const char *req = "POST /api/x?secret=1 HTTP/1.1\r\nHost: fogate.example:8443\r\n"
                      "Content-Length: 42\r\nExpect: 100-continue\r\nX-A:  v a  \r\n\r\n";

    CHECK(parse_str(req, &h, hdrs, &v) == 0);
    CHECK(h.method == HTTP_POST);
    CHECK(h.target_len == strlen("/api/x?secret=1"));
    CHECK(h.path_len == strlen("/api/x"));
    CHECK(h.version_minor == 1);
    CHECK(h.n_headers == 4);
    CHECK(h.framing == HTTP1_BODY_LENGTH && h.content_length == 42);
    CHECK(h.keep_alive && h.expect_continue);
    CHECK(h.host_len == strlen("fogate.example:8443") && memcmp(h.host, "fogate.example:8443", 19) == 0);
    const struct http1_header *x = http1_header_find(&h, "x-a");
    CHECK(x && x->value_len == 3 && memcmp(x->value, "v a", 3) == 0);
    CHECK(http1_header_find(&h, "x-b") == NULL);

    CHECK(parse_str("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", &h, hdrs, &v) == 0);
    CHECK(!h.keep_alive && h.framing == HTTP1_BODY_NONE && !h.expect_continue);
    CHECK(parse_str("GET / HTTP/1.0\r\n\r\n", &h, hdrs, &v) == 0);
    CHECK(!h.keep_alive && h.host == NULL && h.version_minor == 0);
    CHECK(parse_str("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &h, hdrs, &v) == 0);
    CHECK(h.keep_alive);
    CHECK(parse_str("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
                    &h, hdrs, &v) == 0);
    CHECK(!h.expect_continue);
    CHECK(parse_str("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 000\r\n\r\n", &h, hdrs, &v) == 0);
    CHECK(h.framing == HTTP1_BODY_NONE && h.content_length == 0);
}

static void test_limits(void)
{
    struct http1_header hdrs[4];
    struct http1_head h;
    struct http1_verdict v;
    struct http1_limits lim = { .max_header_bytes = 8192, .max_headers = 3 };
    const char *three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    const char *four = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

    CHECK(http1_parse(three, strlen(three), &lim, hdrs, 4, &h, &v) == 0);
    CHECK(http1_parse(four, strlen(four), &lim, hdrs, 4, &h, &v) == -1);
    CHECK(v.status == 431);
    CHECK_STR(v.code, "too_many_headers");
    lim.max_headers = 10; /* the array capacity limits too */
    CHECK(http1_parse(four, strlen(four), &lim, hdrs, 3, &h, &v) == -1 && v.status == 431);
    lim.max_header_bytes = 20;
    CHECK(http1_parse(three, strlen(three), &lim, hdrs, 4, &h, &v) == -1);
    CHECK(v.status == 431);
    CHECK_STR(v.code, "header_too_large");
}

static enum http1_find find_all(const char *buf, size_t max, size_t *start, size_t *end,
                                struct http1_verdict *v)
{
    size_t scanned = 0;
    return http1_head_find(buf, strlen(buf), max, &scanned, start, end, v);
}

static void test_find(void)
{
    struct http1_verdict v;
    size_t start = 9, end = 9, scanned = 0;
    const char *req = "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next";

    CHECK(find_all(req, 1024, &start, &end, &v) == HTTP1_FIND_DONE);
    CHECK(start == 0 && end == strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    CHECK(find_all("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 1024, &start, &end, &v) ==
          HTTP1_FIND_DONE);
    CHECK(start == 4 && end == 4 + strlen("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    CHECK(find_all("GET / HTTP/1.1\r\nHost: a\r\n", 1024, &start, &end, &v) == HTTP1_FIND_MORE);
    CHECK(find_all("GET / HTTP/1.1\r\nHost: a\r", 1024, &start, &end, &v) == HTTP1_FIND_MORE);
    CHECK(find_all("GET / HTTP/1.1\nHost: a\r\n", 1024, &start, &end, &v) == HTTP1_FIND_ERROR);
    CHECK(v.status == 400);
    CHECK_STR(v.code, "bare_lf");
    CHECK(find_all("GET / HTTP/1.1\r\n\n", 1024, &start, &end, &v) == HTTP1_FIND_ERROR);
    CHECK_STR(v.code, "bare_lf");
    CHECK(find_all("GET / HTTP/1.1\rX", 1024, &start, &end, &v) == HTTP1_FIND_ERROR);
    CHECK_STR(v.code, "bare_cr");
    scanned = 0;
    CHECK(http1_head_find("\x16\x03\x01\x00\xa5", 5, 1024, &scanned, &start, &end, &v) ==
          HTTP1_FIND_ERROR);
    CHECK_STR(v.code, "nul_byte");
    scanned = 0;
    /* over the limit without an end: 431 at once */
    CHECK(find_all("GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 16, &start, &end, &v) ==
          HTTP1_FIND_ERROR);
    CHECK(v.status == 431);
    /* exactly at the limit is fine */
    const char *exact = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK(find_all(exact, strlen(exact), &start, &end, &v) == HTTP1_FIND_DONE);
    CHECK(find_all(exact, strlen(exact) - 1, &start, &end, &v) == HTTP1_FIND_ERROR);

    /* byte by byte with a resume point gives the same answer */
    enum http1_find r = HTTP1_FIND_MORE;
    size_t n = 1;
    for (; n <= strlen(req) && r == HTTP1_FIND_MORE; n++)
        r = http1_head_find(req, n, 1024, &scanned, &start, &end, &v);
    CHECK(r == HTTP1_FIND_DONE && n - 1 == end && end == 27);
}

int main(void)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(&rows[i]);
    test_fields();
    test_limits();
    test_find();
    CHECK_STR(http1_reason(404), "Not Found");
    CHECK_STR(http1_reason(799), "Unknown");
    return check_done();
}
