/* d365log: the one log line per D365 call attempt ("d365_call"): what Microsoft support
 * needs to find the call (D365's ms-dyn-aid and other ms-dyn-* headers), and the trace and
 * request it belongs to. Built without jansson when every value is plain ASCII.
 * Invariant: never the URL or a header other than ms-dyn-* (a download URL may carry a SAS,
 * a request header the token). */
#include "d365log.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "log.h"
#include "logline.h"

/* D365's ms-dyn-* / x-ms-dyn-* correlation headers, for Microsoft support. */
static bool dyn_header(const char *n, const char *v)
{
    char c = (char)(n[0] | 0x20);

    if (c != 'm' && c != 'x') /* most names: one comparison */
        return false;
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
    struct logline o;

    logline_init(&o);
    logline_int(&o, "status", c->status);
    logline_int(&o, "duration_ms", c->duration_us / 1000);
    logline_uint(&o, "attempt", c->attempt);
    logline_str(&o, "span_id", c->span_id, strnlen(c->span_id, 16));
    logline_str(&o, "environment", c->environment, strlen(c->environment));
    logline_str(&o, "operation", c->operation, strlen(c->operation));
    logline_str(&o, "method", c->method, strlen(c->method));
    logline_str(&o, "trace_id", c->trace_id, strlen(c->trace_id));
    if (c->request_id && c->request_id[0])
        logline_str(&o, "request_id", c->request_id, strlen(c->request_id));
    if (c->result != UPSTREAM_OK) {
        const char *r = upstream_result_name(c->result);
        logline_str(&o, "result", r, strlen(r));
        if (c->error && c->error[0])
            logline_str(&o, "error", c->error, strlen(c->error));
    }
    for (size_t i = 0; head && i < uphead_count(head); i++)
        if (dyn_header(uphead_name(head, i), uphead_value(head, i)))
            logline_str(&o, uphead_name(head, i), uphead_value(head, i),
                        strlen(uphead_value(head, i)));
    if (!o.ok || log_json_text(lvl, "d365_call", o.buf) < 0)
        log_call_slow(c, lvl, head);
}
