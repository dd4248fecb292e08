/* test_reply: response-head formatting, the JSON error body and the request log line. */
#include "check.h"
#include "reply.h"

#include <stdlib.h>

#include <jansson.h>

#include "log.h"

static void test_head(void)
{
    char buf[512];
    struct reply_head h = {
        .status = 404, .date = "Mon, 23 Nov 2026 04:30:11 GMT",
        .content_type = "application/json", .content_length = 87,
        .request_id = "0123456789abcdef", .extra = "Allow: GET, HEAD\r\n",
        .connection = "close",
    };
    size_t n = reply_format_head(buf, sizeof buf, &h);
    CHECK(n == strlen(buf));
    CHECK_STR(buf, "HTTP/1.1 404 Not Found\r\nDate: Mon, 23 Nov 2026 04:30:11 GMT\r\n"
                   "Content-Type: application/json\r\nContent-Length: 87\r\n"
                   "X-Request-Id: 0123456789abcdef\r\nAllow: GET, HEAD\r\nConnection: close\r\n\r\n");

    struct reply_head bare = { .status = 204, .date = "D", .request_id = "r" };
    reply_format_head(buf, sizeof buf, &bare);
    CHECK_STR(buf, "HTTP/1.1 204 No Content\r\nDate: D\r\nX-Request-Id: r\r\n\r\n");

    struct reply_head ok = { .status = 200, .date = "D", .request_id = "r",
                             .content_length = 0, .connection = "keep-alive" };
    reply_format_head(buf, sizeof buf, &ok);
    CHECK_STR(buf, "HTTP/1.1 200 OK\r\nDate: D\r\nContent-Length: 0\r\nX-Request-Id: r\r\n"
                   "Connection: keep-alive\r\n\r\n");
    CHECK(reply_format_head(buf, 20, &h) == 0); /* does not fit */
    CHECK(reply_format_head(buf, n, &h) == 0);  /* no room for the NUL */
    CHECK(reply_format_head(buf, n + 1, &h) == n);
    CHECK(reply_format_head(buf, 0, &h) == 0);
}

static void test_error_body(void)
{
    char *body = reply_error_body("bad_host", "a \"quoted\" message\n", "00ff00ff00ff00ff", NULL);
    json_error_t err;
    json_t *o = json_loads(body, JSON_REJECT_DUPLICATES, &err);
    CHECK(o != NULL);
    CHECK(json_object_size(o) == 3);
    CHECK_STR(json_string_value(json_object_get(o, "code")), "bad_host");
    CHECK_STR(json_string_value(json_object_get(o, "message")), "a \"quoted\" message\n");
    CHECK_STR(json_string_value(json_object_get(o, "request_id")), "00ff00ff00ff00ff");
    CHECK(strncmp(body, "{\"code\":", 8) == 0); /* field order is part of the shape */
    json_decref(o);
    free(body);
}

static void test_log_line(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    struct conn_req_log l = {
        .id = "0123456789abcdef", .method = "GET", .path = "/healthz?key=SECRET",
        .path_len = 8, .client = "127.0.0.1:5555", .status = 404, .bytes_in = 40,
        .bytes_out = 200, .duration_us = 17, .error_code = "not_found",
        .error_message = "no route for this path", .outcome = "ok", .body_expected = 80,
        .body_sent = 80,
    };

    log_set_stream(mem);
    reply_log(&l);
    l.error_code = NULL;
    l.method = NULL;
    l.path = NULL;
    l.status = 200;
    l.outcome = "client_timeout"; /* a download cut short: not a success */
    l.body_expected = -1;
    l.body_sent = 65536;
    reply_log(&l);
    fclose(mem);
    log_set_stream(NULL);

    char *second = strchr(text, '\n');
    CHECK(second != NULL);
    json_t *a = json_loadb(text, (size_t)(second - text), 0, NULL);
    json_t *b = json_loads(second + 1, JSON_DISABLE_EOF_CHECK, NULL);
    CHECK(a && b);
    CHECK_STR(json_string_value(json_object_get(a, "msg")), "request");
    CHECK_STR(json_string_value(json_object_get(a, "path")), "/healthz");
    CHECK_STR(json_string_value(json_object_get(a, "code")), "not_found");
    CHECK(json_integer_value(json_object_get(a, "duration_us")) == 17);
    CHECK(json_integer_value(json_object_get(a, "bytes_out")) == 200);
    CHECK_STR(json_string_value(json_object_get(a, "level")), "info");
    CHECK_STR(json_string_value(json_object_get(a, "outcome")), "ok");
    CHECK(json_integer_value(json_object_get(a, "body_expected")) == 80);
    CHECK(json_integer_value(json_object_get(a, "body_sent")) == 80);
    CHECK_STR(json_string_value(json_object_get(b, "outcome")), "client_timeout");
    CHECK(json_object_get(b, "body_expected") == NULL);
    CHECK(json_integer_value(json_object_get(b, "body_sent")) == 65536);
    CHECK(strstr(text, "SECRET") == NULL);
    CHECK(json_object_get(b, "method") == NULL && json_object_get(b, "code") == NULL);
    CHECK_STR(json_string_value(json_object_get(b, "level")), "warn");
    json_decref(a);
    json_decref(b);
    free(text);
}

/* The line reply_log writes without jansson, from "level" on (ts differs). */
static char *logged(void (*emit)(const void *), const void *arg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);

    log_set_stream(mem);
    emit(arg);
    fclose(mem);
    log_set_stream(NULL);
    char *from = strstr(text, "\"level\"");
    char *out = strdup(from ? from : "");
    free(text);
    return out;
}

static void emit_reply_log(const void *arg)
{
    reply_log(arg);
}

/* What the jansson path (log_json) writes for the same record. */
static void emit_jansson(const void *arg)
{
    const struct conn_req_log *l = arg;
    json_t *f = json_object();

    json_object_set_new(f, "request_id", json_string(l->id));
    json_object_set_new(f, "method", json_string(l->method));
    json_object_set_new(f, "path", json_stringn(l->path, l->path_len));
    json_object_set_new(f, "status", json_integer(l->status));
    json_object_set_new(f, "bytes_in", json_integer((json_int_t)l->bytes_in));
    json_object_set_new(f, "bytes_out", json_integer((json_int_t)l->bytes_out));
    json_object_set_new(f, "duration_us", json_integer((json_int_t)l->duration_us));
    json_object_set_new(f, "client", json_string(l->client));
    json_object_set_new(f, "outcome", json_string(l->outcome));
    json_object_set_new(f, "body_expected", json_integer((json_int_t)l->body_expected));
    json_object_set_new(f, "body_sent", json_integer((json_int_t)l->body_sent));
    json_object_set_new(f, "code", json_string(l->error_code));
    json_object_set_new(f, "error", json_string(l->error_message));
    log_json(LOG_LVL_INFO, "request", f);
}

static void test_log_line_same_as_jansson(void)
{
    static const char *const paths[] = { "/data/Things('a\"b')", "/x\\y/%7B{}",
                                         "/ctl\001/", "/utf8-\xc3\xa9", "/bad-\xff" };
    char longpath[3000];

    memset(longpath, 'p', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    for (size_t i = 0; i <= sizeof paths / sizeof paths[0]; i++) {
        const char *path = i < sizeof paths / sizeof paths[0] ? paths[i] : longpath;
        struct conn_req_log l = {
            .id = "0123456789abcdef", .method = "PATCH", .path = path,
            .path_len = strlen(path), .client = "[::1]:5555", .status = 201,
            .bytes_in = 12345678901ULL, .bytes_out = 7, .duration_us = 123456789012LL,
            .error_code = "d365_throttled", .error_message = "retry \"later\" \\ now",
            .outcome = "ok", .body_expected = 9000000000LL, .body_sent = 3,
        };
        char *fast = logged(emit_reply_log, &l), *slow = logged(emit_jansson, &l);
        CHECK_STR(fast, slow);
        free(fast);
        free(slow);
    }
}

int main(void)
{
    test_head();
    test_error_body();
    test_log_line();
    test_log_line_same_as_jansson();
    return check_done();
}
