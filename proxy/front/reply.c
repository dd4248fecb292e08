/* reply: error responses in fogate's JSON shape, and the request log line.
 * reply and conn include each other: reply answers through conn_req_respond, and conn
 * answers its own framing errors (bad body, timeouts) through reply_error so that every
 * error leaves in one shape and one log line. Both are the front layer's; nothing above
 * it is involved. */
#include "reply.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "logline.h"

char *reply_error_body(const char *code, const char *message, const char *request_id,
                       const char *trace_id)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "code", code, "message", message,
                          "request_id", request_id);
    if (!o)
        return NULL;
    if (trace_id && trace_id[0])
        json_object_set_new(o, "trace_id", json_string(trace_id));
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

/* The head is assembled with memcpy (one per piece, no printf: it is written for every
 * response). Appends s[0..n) at buf[*at] when it fits with room left for the NUL. */
static bool add(char *buf, size_t cap, size_t *at, const char *s, size_t n)
{
    if (n >= cap - *at)
        return false;
    memcpy(buf + *at, s, n);
    *at += n;
    return true;
}

static bool add_uns(char *buf, size_t cap, size_t *at, unsigned long long u, bool minus)
{
    char digits[LOGLINE_DIGITS_SIZE];
    const char *d = logline_digits(digits, u, minus);

    return add(buf, cap, at, d, (size_t)(digits + sizeof digits - d));
}

#define ADD_LIT(l) add(buf, cap, &n, l, sizeof l - 1)
#define ADD_STR(s) add(buf, cap, &n, s, strlen(s))

size_t reply_format_head(char *buf, size_t cap, const struct reply_head *h)
{
    bool no_body = h->status == 204 || h->status == 304;
    size_t n = 0;

    if (cap == 0)
        return 0;
    bool ok = ADD_LIT("HTTP/1.1 ") && add_uns(buf, cap, &n, h->status < 0 ? 0U - (unsigned)h->status : (unsigned)h->status, h->status < 0) && ADD_LIT(" ") &&
              ADD_STR(http1_reason(h->status)) && ADD_LIT("\r\nDate: ") && ADD_STR(h->date) &&
              ADD_LIT("\r\n") &&
              (!h->content_type || (ADD_LIT("Content-Type: ") && ADD_STR(h->content_type) &&
                                    ADD_LIT("\r\n"))) &&
              (no_body || h->no_length ||
               (ADD_LIT("Content-Length: ") &&
                add_uns(buf, cap, &n, h->content_length, false) && ADD_LIT("\r\n"))) &&
              ADD_LIT("X-Request-Id: ") && ADD_STR(h->request_id) && ADD_LIT("\r\n") &&
              (!h->extra || ADD_STR(h->extra)) &&
              (!h->chunked || ADD_LIT("Transfer-Encoding: chunked\r\n")) &&
              (!h->connection || (ADD_LIT("Connection: ") && ADD_STR(h->connection) &&
                                  ADD_LIT("\r\n"))) &&
              ADD_LIT("\r\n");
    if (!ok)
        return 0;
    buf[n] = '\0';
    return n;
}

#undef ADD_LIT
#undef ADD_STR

static void send_error(struct conn_req *req, int status, const char *extra_headers,
                       const char *code, const char *message)
{
    static const char fallback[] = "{\"code\":\"internal\",\"message\":\"out of memory\"}";
    char *body = reply_error_body(code, message, conn_req_id(req), conn_req_trace(req)->trace_id);

    conn_req_note_error(req, code, message);
    if (body)
        conn_req_respond(req, status, extra_headers, "application/json", body, strlen(body));
    else
        conn_req_respond(req, status, extra_headers, "application/json", fallback,
                         sizeof fallback - 1);
    free(body);
}

void reply_error(struct conn_req *req, int status, const char *code, const char *fmt, ...)
{
    char message[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    send_error(req, status, NULL, code, message);
}

void reply_method_not_allowed(struct conn_req *req, const char *allow)
{
    char hdr[128];
    char message[160];

    snprintf(hdr, sizeof hdr, "Allow: %s\r\n", allow);
    snprintf(message, sizeof message, "this path only accepts %s", allow);
    send_error(req, 405, hdr, "method_not_allowed", message);
}

void reply_json(struct conn_req *req, int status, const char *json, size_t len)
{
    conn_req_respond(req, status, NULL, "application/json", json, len);
}

/* The request log line, built without jansson (one line per request). */
static bool log_fast(const struct conn_req_log *l, enum log_level lvl)
{
    struct logline o;

    logline_init(&o);
    logline_str(&o, "request_id", l->id, strlen(l->id));
    if (l->trace_id)
        logline_str(&o, "trace_id", l->trace_id, strlen(l->trace_id));
    if (l->method)
        logline_str(&o, "method", l->method, strlen(l->method));
    if (l->path)
        logline_str(&o, "path", l->path, l->path_len);
    logline_int(&o, "status", l->status);
    logline_uint(&o, "bytes_in", l->bytes_in);
    logline_uint(&o, "bytes_out", l->bytes_out);
    logline_int(&o, "duration_us", l->duration_us);
    logline_str(&o, "client", l->client, strlen(l->client));
    logline_str(&o, "outcome", l->outcome, strlen(l->outcome));
    if (l->body_expected >= 0)
        logline_int(&o, "body_expected", l->body_expected);
    logline_uint(&o, "body_sent", l->body_sent);
    if (l->error_code) {
        logline_str(&o, "code", l->error_code, strlen(l->error_code));
        logline_str(&o, "error", l->error_message, strlen(l->error_message));
    }
    return o.ok && log_json_text(lvl, "request", o.buf) == 0;
}

void reply_log(const struct conn_req_log *l)
{
    bool cut = strcmp(l->outcome, "ok") != 0 && strcmp(l->outcome, "client_closed") != 0;
    enum log_level lvl = l->status >= 500 || cut ? LOG_LVL_WARN : LOG_LVL_INFO;

    if (log_fast(l, lvl))
        return;
    json_t *f = json_object();

    json_object_set_new(f, "request_id", json_string(l->id));
    if (l->trace_id)
        json_object_set_new(f, "trace_id", json_string(l->trace_id));
    if (l->method)
        json_object_set_new(f, "method", json_string(l->method));
    if (l->path)
        json_object_set_new(f, "path", json_stringn(l->path, l->path_len));
    json_object_set_new(f, "status", json_integer(l->status));
    json_object_set_new(f, "bytes_in", json_integer((json_int_t)l->bytes_in));
    json_object_set_new(f, "bytes_out", json_integer((json_int_t)l->bytes_out));
    json_object_set_new(f, "duration_us", json_integer((json_int_t)l->duration_us));
    json_object_set_new(f, "client", json_string(l->client));
    json_object_set_new(f, "outcome", json_string(l->outcome));
    if (l->body_expected >= 0)
        json_object_set_new(f, "body_expected", json_integer((json_int_t)l->body_expected));
    json_object_set_new(f, "body_sent", json_integer((json_int_t)l->body_sent));
    if (l->error_code) {
        json_object_set_new(f, "code", json_string(l->error_code));
        json_object_set_new(f, "error", json_string(l->error_message));
    }
    log_json(lvl, "request", f);
}
