/* d365log: the one log line per D365 call attempt ("d365_call"): what Microsoft support
 * needs to find the call (D365's ms-dyn-aid and other ms-dyn-* headers), and the trace and
 * request it belongs to. Built without jansson when every value is plain ASCII.
 * Invariant: never the URL or a header other than ms-dyn-* (a download URL may carry a SAS,
 * a request header the token). */
#include "d365log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "log.h"

/* The d365_call line's members, built without jansson (one line per D365 call). */
struct line {
    char buf[2048];
    size_t n;
    bool ok;                    /* false once something did not fit or is not plain ASCII */
};

static void put(struct line *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct line *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (!o->ok)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->n, sizeof o->buf - o->n, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof o->buf - o->n)
        o->ok = false;
    else
        o->n += (size_t)n;
}

/* ,"name":"value" for printable ASCII without quote or backslash; else the line falls
 * back to jansson. */
static void put_str(struct line *o, const char *name, const char *v)
{
    for (const char *p = v; *p && o->ok; p++)
        if (*p < 0x20 || *p > 0x7e || *p == '"' || *p == '\\')
            o->ok = false;
    put(o, ",\"%s\":\"%s\"", name, v);
}

/* D365's ms-dyn-* / x-ms-dyn-* correlation headers, for Microsoft support. */
static bool dyn_header(const char *n, const char *v)
{
    return (strncasecmp(n, "ms-dyn-", 7) == 0 || strncasecmp(n, "x-ms-dyn-", 9) == 0) &&
           v[0] && strlen(n) < 48 && strlen(v) <= 128;
}

static void log_call_slow(const struct d365log_call *c, enum log_level lvl,
                          const struct uphead *head)
{
    json_t *f = json_object();

    json_object_set_new(f, "environment", json_string(c->environment));
    json_object_set_new(f, "operation", json_string(c->operation));
    json_object_set_new(f, "method", json_string(c->method));
    json_object_set_new(f, "status", json_integer(c->status));
    json_object_set_new(f, "duration_ms", json_integer((json_int_t)(c->duration_us / 1000)));
    json_object_set_new(f, "attempt", json_integer((json_int_t)c->attempt));
    json_object_set_new(f, "trace_id", json_string(c->trace_id));
    json_object_set_new(f, "span_id", json_stringn(c->span_id, 16));
    if (c->request_id && c->request_id[0])
        json_object_set_new(f, "request_id", json_string(c->request_id));
    if (c->result != UPSTREAM_OK) {
        json_object_set_new(f, "result", json_string(upstream_result_name(c->result)));
        if (c->error && c->error[0])
            json_object_set_new(f, "error", json_string(c->error));
    }
    for (size_t i = 0; head && i < uphead_count(head); i++)
        if (dyn_header(uphead_name(head, i), uphead_value(head, i)))
            json_object_set_new(f, uphead_name(head, i), json_string(uphead_value(head, i)));
    log_json(lvl, "d365_call", f);
}

void d365log_call(const struct d365log_call *c, const struct uphead *head)
{
    enum log_level lvl = c->status >= 500 || c->status == 0 ? LOG_LVL_WARN : LOG_LVL_INFO;
    struct line o = { .ok = true };

    put(&o, "\"status\":%d,\"duration_ms\":%lld,\"attempt\":%u,\"span_id\":\"%.16s\"",
        c->status, (long long)(c->duration_us / 1000), c->attempt, c->span_id);
    put_str(&o, "environment", c->environment);
    put_str(&o, "operation", c->operation);
    put_str(&o, "method", c->method);
    put_str(&o, "trace_id", c->trace_id);
    if (c->request_id && c->request_id[0])
        put_str(&o, "request_id", c->request_id);
    if (c->result != UPSTREAM_OK) {
        put_str(&o, "result", upstream_result_name(c->result));
        if (c->error && c->error[0])
            put_str(&o, "error", c->error);
    }
    for (size_t i = 0; head && i < uphead_count(head); i++)
        if (dyn_header(uphead_name(head, i), uphead_value(head, i)))
            put_str(&o, uphead_name(head, i), uphead_value(head, i));
    if (!o.ok || log_json_text(lvl, "d365_call", o.buf) < 0)
        log_call_slow(c, lvl, head);
}
