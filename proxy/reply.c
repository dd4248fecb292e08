/* reply: error responses in fogate's JSON shape, and the request log line. */
#include "reply.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"

char *reply_error_body(const char *code, const char *message, const char *request_id)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "code", code, "message", message,
                          "request_id", request_id);
    if (!o)
        return NULL;
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

size_t reply_format_head(char *buf, size_t cap, const struct reply_head *h)
{
    bool no_body = h->status == 204 || h->status == 304;
    char length[48] = "";

    if (!no_body && !h->no_length)
        snprintf(length, sizeof length, "Content-Length: %zu\r\n", h->content_length);
    int n = snprintf(buf, cap,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\n%s%s%s%sX-Request-Id: %s\r\n%s%s%s%s\r\n",
                     h->status, http1_reason(h->status), h->date,
                     h->content_type ? "Content-Type: " : "",
                     h->content_type ? h->content_type : "", h->content_type ? "\r\n" : "",
                     length, h->request_id, h->extra ? h->extra : "",
                     h->connection ? "Connection: " : "", h->connection ? h->connection : "",
                     h->connection ? "\r\n" : "");
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static void send_error(struct conn_req *req, int status, const char *extra_headers,
                       const char *code, const char *message)
{
    static const char fallback[] = "{\"code\":\"internal\",\"message\":\"out of memory\"}";
    char *body = reply_error_body(code, message, conn_req_id(req));

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

void reply_log(const struct conn_req_log *l)
{
    json_t *f = json_object();

    json_object_set_new(f, "request_id", json_string(l->id));
    if (l->method)
        json_object_set_new(f, "method", json_string(l->method));
    if (l->path)
        json_object_set_new(f, "path", json_stringn(l->path, l->path_len));
    json_object_set_new(f, "status", json_integer(l->status));
    json_object_set_new(f, "bytes_in", json_integer((json_int_t)l->bytes_in));
    json_object_set_new(f, "bytes_out", json_integer((json_int_t)l->bytes_out));
    json_object_set_new(f, "duration_us", json_integer((json_int_t)l->duration_us));
    json_object_set_new(f, "client", json_string(l->client));
    if (l->error_code) {
        json_object_set_new(f, "code", json_string(l->error_code));
        json_object_set_new(f, "error", json_string(l->error_message));
    }
    log_json(l->status >= 500 ? LOG_LVL_WARN : LOG_LVL_INFO, "request", f);
}
