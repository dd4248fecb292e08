/* reqcore: one answer per request, for simple_req and package_req (see reqcore.h). */
#include "reqcore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

struct conn_req *reqcore_take(struct reqcore c)
{
    struct conn_req *req = *c.req;

    *c.responded = true;
    if (!c.body_reading) {
        conn_req_set_events(req, NULL);
        *c.req = NULL;
    }
    return req;
}

void reqcore_error(struct reqcore c, int status, const char *extra, const char *code,
                   const char *message)
{
    struct conn_req *req;
    char *body;

    if (!*c.req || *c.responded)
        return;
    req = reqcore_take(c);
    body = reply_error_body(code, message, conn_req_id(req),
                                  conn_req_trace(req)->trace_id);
    conn_req_note_error(req, code, message);
    conn_req_respond(req, status, extra, "application/json", body ? body : "{}",
                     body ? strlen(body) : 2);
    free(body);
}

void reqcore_fail(struct reqcore c, const struct d365_err *e)
{
    char extra[64] = "";

    if (e->status == 429 || e->retry_after_s) /* throttled, or the ledger's 503 */
        snprintf(extra, sizeof extra, "Retry-After: %u\r\n", e->retry_after_s);
    reqcore_error(c, e->status, extra[0] ? extra : NULL, e->code, e->message);
}

void reqcore_json(struct reqcore c, int status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(o);
    if (!text) {
        reqcore_error(c, 500, NULL, "internal", "out of memory");
        return;
    }
    if (*c.req && !*c.responded)
        conn_req_respond(reqcore_take(c), status, NULL, "application/json", text, strlen(text));
    free(text);
}

void reqcore_json_text(struct reqcore c, int status, const char *text, size_t len)
{
    if (*c.req && !*c.responded)
        conn_req_respond(reqcore_take(c), status, NULL, "application/json", text, len);
}

void reqcore_body_over(struct reqcore c, struct conn_req *req)
{
    conn_req_set_events(req, NULL);
    *c.req = NULL;
    *c.responded = true;
}

void reqcore_push_pending(const struct reqcore_pipe *p, struct evbuffer *pending)
{
    while (p->dst && evbuffer_get_length(pending) > 0) {
        size_t n = evbuffer_get_length(pending), room = p->space(p->dst), took;
        if (room == 0)
            return;
        n = n < room ? n : room;
        took = p->send(p->dst, evbuffer_pullup(pending, (ev_ssize_t)n), n);
        evbuffer_drain(pending, took);
        if (took == 0)
            return;
    }
}

int reqcore_offer(const struct reqcore_pipe *p, struct evbuffer *pending,
                  struct conn_req *req, const char *data, size_t len)
{
    size_t took = 0;

    if (p->dst && evbuffer_get_length(pending) == 0)
        took = p->send(p->dst, data, len);
    if (took < len) {
        if (evbuffer_add(pending, data + took, len - took) < 0)
            return -1;
        conn_req_pause_body(req);
    }
    return 0;
}
