/* test_upreq: outbound method checks and the exact header list handed to libcurl. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "upreq.h"

/* The list joined with '|' into buf. */
static const char *joined(const struct curl_slist *l, char *buf, size_t size)
{
    buf[0] = '\0';
    for (; l; l = l->next) {
        strncat(buf, l->data, size - strlen(buf) - 1);
        if (l->next)
            strncat(buf, "|", size - strlen(buf) - 1);
    }
    return buf;
}

static void expect_list(const char *const *lines, size_t n, const char *want)
{
    struct curl_slist *l = (struct curl_slist *)1;
    char buf[512];

    CHECK(upreq_headers(lines, n, &l) == 0);
    CHECK_STR(joined(l, buf, sizeof(buf)), want);
    free(l);
}

static void expect_refused(const char *line)
{
    const char *lines[] = {"Host: a", line};
    struct curl_slist *l = (struct curl_slist *)1;

    CHECK(upreq_headers(lines, 2, &l) == -1);
    CHECK(l == NULL);
}

static void test_headers(void)
{
    const char *plain[] = {"Authorization: Bearer x", "Content-Type: application/json"};
    const char *managed[] = {"Content-Length: 10", "transfer-encoding: chunked",
                             "Expect: 100-continue", "X-Keep: 1"};
    const char *accept[] = {"accept: application/json", "Accept-Encoding: gzip"};
    const char *empty[] = {"X-Empty:", "X-Blank:   "};

    expect_list(NULL, 0, "Expect:|Accept:");
    expect_list(plain, 2, "Authorization: Bearer x|Content-Type: application/json|Expect:|Accept:");
    expect_list(managed, 4, "X-Keep: 1|Expect:|Accept:");
    expect_list(accept, 2, "accept: application/json|Accept-Encoding: gzip|Expect:");
    expect_list(empty, 2, "X-Empty;|X-Blank;|Expect:|Accept:");

    expect_refused("X-Injected: a\r\nEvil: b");
    expect_refused("X-Lf: a\nb");
    expect_refused("No colon");
    expect_refused(": no name");
    expect_refused("Bad Name: x");
    expect_refused(NULL);
}

static void test_method(void)
{
    CHECK(upreq_method_ok("GET"));
    CHECK(upreq_method_ok("PATCH"));
    CHECK(upreq_method_ok("M-SEARCH"));
    CHECK(!upreq_method_ok(""));
    CHECK(!upreq_method_ok(NULL));
    CHECK(!upreq_method_ok("GET /"));
    CHECK(!upreq_method_ok("GET\r\n"));
    CHECK(upreq_method_ok("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEF"));   /* 32 */
    CHECK(!upreq_method_ok("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG")); /* 33 */
}

static void test_options(void)
{
    struct upstream_opts o = {.max_header_bytes = 1024, .recv_buffer_bytes = 16384,
                              .connect_timeout_ms = 1000, .total_timeout_ms = 2000};
    struct upstream_req r = {.method = "POST", .url = "https://example.invalid/x?y=1",
                             .body_len = UPSTREAM_BODY_CHUNKED};
    CURL *e = curl_easy_init();

    CHECK(e != NULL);
    CHECK(upreq_transport(e, &o) == CURLE_OK);
    CHECK(upreq_target(e, &o, &r) == CURLE_OK);
    CHECK(upreq_method(e, "POST", UPSTREAM_BODY_CHUNKED) == CURLE_OK);
    CHECK(upreq_method(e, "HEAD", UPSTREAM_BODY_NONE) == CURLE_OK);
    CHECK(upreq_method(e, "DELETE", UPSTREAM_BODY_NONE) == CURLE_OK);
    CHECK(upreq_method(e, "PUT", 10) == CURLE_OK);
    curl_easy_cleanup(e);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_headers();
    test_method();
    test_options();
    curl_global_cleanup();
    return check_done();
}
