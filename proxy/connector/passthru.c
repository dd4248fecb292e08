/* passthru: one client request forwarded through an upcall.
 *
 *   start --buffered body--> read body --end ok--> upcall --head--> stream to client --> end
 *     `----streamed body--> upcall + body pushed as it arrives (client paused when full)
 *   any failure before the head: fogate's own error reply; after it: the connection closes.
 *
 * One finish path (done()) clears the conn events, drops an unread body, frees. */
#include "passthru.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "conf.h"
#include "d365.h"
#include "dlrewrite.h"
#include "log.h"
#include "reply.h"

#define DEQUEUE_MAX (1024 * 1024)   /* a dequeue answer is six short fields */
#define MAX_FWD_HEADERS 128

struct pt {
    struct conn_req *req;        /* borrowed until done() */
    struct upcall_ctx *ctx;      /* borrowed */
    struct passthru_route rt;
    bool streamed;               /* the request body is streamed (never re-sent) */
    struct upcall *up;           /* owned until its on_done */
    struct evbuffer *body;       /* owned: buffered body, or the streamed overflow; NULL
                                    for a request without a body */
    char **lines;                /* forwarded header lines, in p's allocation (new_pt) */
    size_t n_lines;
    char *target;                /* the request target, NUL-terminated, likewise */
    bool body_eof;               /* the client body ended (streamed mode) */
    bool eof_sent;
    bool own_401;                /* D365's final 401: fogate answers, not D365 */
    bool recv_paused;
    int status;                  /* the upstream status, streamed answers */
    char answer[PASSTHRU_TAP_ANSWER]; /* for rt.tap: the answer's first bytes */
    size_t answer_len;
};

#define NAME(s) { s, sizeof s - 1 }
static const struct { const char *name; size_t len; } hop[] = {
    NAME("Connection"), NAME("Keep-Alive"), NAME("TE"), NAME("Trailer"),
    NAME("Transfer-Encoding"), NAME("Upgrade"), NAME("Content-Length"), NAME("Expect"),
    NAME("Host"), NAME("Authorization"), NAME("X-Api-Key"), NAME("X-Fogate-Environment"),
    NAME("Proxy-Connection"),
};

bool passthru_drop_header(const char *name, size_t len)
{
    if (len >= 6 && strncasecmp(name, "Proxy-", 6) == 0)
        return true;
    for (size_t i = 0; i < sizeof hop / sizeof hop[0]; i++)
        if (hop[i].len == len && strncasecmp(name, hop[i].name, len) == 0)
            return true;
    return false;
}

bool passthru_keep_response_header(const char *name)
{
    static const struct { const char *name; size_t len; } keep[] = {
        NAME("Retry-After"), NAME("OData-Version"), NAME("Content-Encoding"),
        NAME("Content-Disposition"), NAME("Location"),
    };
    size_t len = strlen(name);

    if (len >= 7 && strncasecmp(name, "ms-dyn-", 7) == 0)
        return true;
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) /* by length first */
        if (keep[i].len == len && strcasecmp(name, keep[i].name) == 0)
            return true;
    return false;
}

/* ---- finishing ---------------------------------------------------------------------- */

static void pt_free(struct pt *p)
{
    if (p->rt.tap) /* the answer did not reach the client whole */
        p->rt.tap->on_end(p->rt.tap_ctx, 0, p->answer, p->answer_len);
    if (p->up)
        upcall_cancel(p->up);
    if (p->body)
        evbuffer_free(p->body);
    free(p);
}

/* Detaches from the request before answering, so that nothing calls back into p. */
static struct conn_req *detach(struct pt *p)
{
    struct conn_req *req = p->req;

    conn_req_set_events(req, NULL);
    conn_req_drop_body(req);
    return req;
}

static void fail_reply(struct pt *p, int status, const char *code, const char *msg,
                       unsigned retry_after)
{
    struct conn_req *req = detach(p);
    char hdr[48];

    if (retry_after) {
        snprintf(hdr, sizeof hdr, "Retry-After: %u\r\n", retry_after);
        char *body = reply_error_body(code, msg, conn_req_id(req),
                                  conn_req_trace(req)->trace_id);
        conn_req_note_error(req, code, msg);
        conn_req_respond(req, status, hdr, "application/json", body ? body : "{}",
                         body ? strlen(body) : 2);
        free(body);
    } else {
        reply_error(req, status, code, "%s", msg);
    }
    pt_free(p);
}

/* A call that ended without D365's answer, or with a 401 fogate does not pass on: the
 * codes and messages of d365_error_from, the ones docs/openapi.yaml lists. */
static void fail_upcall(struct pt *p, const struct upcall_done *d)
{
    struct d365_err e;

    if (d->st == UPCALL_FAILED && d->request_sent &&
        (p->rt.retry == UPCALL_RETRY_NONE || p->streamed)) {
        /* never re-sent (reference §8.2): the client must know D365 may have it */
        fail_reply(p, 504, "d365_outcome_unknown", "the request was sent whole to D365 but "
                   "no answer came; D365 may have received it and fogate did not send it "
                   "again: check before sending it again", 0);
        return;
    }
    d365_error_from(d, "the pass-through call", &e);
    fail_reply(p, e.status, e.code, e.message, e.retry_after_s);
}

/* "Name: value\r\n" lines of the upstream head worth passing back, in buf (cap bytes)
 * when they fit, or else allocated (then the caller frees it). NULL when out of memory. */
static char *response_headers(const struct uphead *h, char *buf, size_t cap)
{
    size_t n = 0, count = h ? uphead_count(h) : 0;
    char *out = buf;

    for (int pass = 0; pass < 2; pass++) {
        size_t at = 0;
        for (size_t i = 0; i < count; i++) {
            const char *name = uphead_name(h, i), *value = uphead_value(h, i);
            if (!passthru_keep_response_header(name))
                continue;
            size_t nl = strlen(name), vl = strlen(value);
            if (at + nl + vl + 5 <= cap) {
                memcpy(out + at, name, nl);
                memcpy(out + at + nl, ": ", 2);
                memcpy(out + at + nl + 2, value, vl);
                memcpy(out + at + nl + 2 + vl, "\r\n", 2);
            }
            at += nl + vl + 4;
        }
        if (at < cap) {
            out[at] = '\0';
            return out;
        }
        n = at; /* did not fit: once more into a buffer of the size found */
        if (pass == 0 && !(out = malloc(n + 1)))
            return NULL;
        cap = n + 1;
    }
    return out; /* not reached: the second pass fits */
}

/* ---- dequeue: buffered answer with the rewrite ---------------------------------------- */

static void on_dequeue_done(void *arg, const struct upcall_done *d)
{
    struct pt *p = arg;
    char *rewritten = NULL, *extra = NULL;
    size_t len = d->body_len;
    const char *body = d->body;

    p->up = NULL;
    if (d->st != UPCALL_OK) {
        fail_upcall(p, d);
        return;
    }
    if (d->status == 401) {
        fail_upcall(p, d);
        return;
    }
    if (d->status == 200 &&
        dlrewrite(d->body, d->body_len, p->rt.public_base_url, &rewritten, &len) ==
            DLREWRITE_REWRITTEN)
        body = rewritten;
    else
        len = d->body_len;
    /* With the ack ledger on, dequeues go through ledgerpass.c instead. */
    if (p->rt.tap) { /* D365's whole answer (the message id is in it), before the client's */
        p->rt.tap->on_end(p->rt.tap_ctx, d->status, d->body, d->body_len);
        p->rt.tap = NULL;
    }
    char small[1024];
    extra = response_headers(d->head, small, sizeof small);
    const char *ctype = d->head ? uphead_find(d->head, "Content-Type") : NULL;
    struct conn_req *req = detach(p);
    conn_req_respond(req, d->status, extra, d->status == 204 ? NULL : ctype, body ? body : "",
                     body ? len : 0);
    if (extra != small)
        free(extra);
    free(rewritten);
    pt_free(p);
}

/* ---- streamed answers ------------------------------------------------------------------ */

static void on_up_head(void *arg, const struct uphead *h)
{
    struct pt *p = arg;
    int status = uphead_status(h);
    const char *cl = uphead_find(h, "Content-Length");
    int64_t len = -1;

    p->status = status;
    if (status == 401) {
        p->own_401 = true; /* answered in on_done; the body is dropped */
        return;
    }
    if (cl && *cl) {
        char *end;
        unsigned long long v = strtoull(cl, &end, 10);
        if (*end == '\0')
            len = (int64_t)v;
    }
    if (status == 204 || status == 304)
        len = 0;
    char small[1024];
    char *extra = response_headers(h, small, sizeof small);
    const char *ctype = status == 204 ? NULL : uphead_find(h, "Content-Type");
    conn_req_start(p->req, status, extra ? extra : "", ctype, len);
    if (extra != small)
        free(extra);
}

static enum upstream_flow on_up_body(void *arg, const char *data, size_t len)
{
    struct pt *p = arg;

    if (p->own_401)
        return UPSTREAM_CONTINUE;
    if (p->rt.tap && p->rt.tap->on_answer_body)
        p->rt.tap->on_answer_body(p->rt.tap_ctx, data, len);
    if (p->rt.tap && p->answer_len < sizeof p->answer) {
        size_t n = len < sizeof p->answer - p->answer_len ? len : sizeof p->answer - p->answer_len;
        memcpy(p->answer + p->answer_len, data, n);
        p->answer_len += n;
    }
    if (conn_req_write(p->req, data, len) == 1) {
        p->recv_paused = true;
        return UPSTREAM_PAUSE;
    }
    return UPSTREAM_CONTINUE;
}

static void on_drained(void *arg)
{
    struct pt *p = arg;

    if (p->recv_paused && p->up) {
        p->recv_paused = false;
        upcall_resume_recv(p->up);
    }
}

static void on_stream_done(void *arg, const struct upcall_done *d)
{
    struct pt *p = arg;

    p->up = NULL;
    if (p->own_401) {
        fail_upcall(p, d);
        return;
    }
    if (!d->head_delivered) {
        fail_upcall(p, d);
        return;
    }
    struct conn_req *req = detach(p);
    if (d->transport == UPSTREAM_OK) {
        if (p->rt.tap) { /* before the client's answer ends: the record goes out first */
            p->rt.tap->on_end(p->rt.tap_ctx, p->status, p->answer, p->answer_len);
            p->rt.tap = NULL;
        }
        if (p->status == 200 && p->rt.on_complete)
            p->rt.on_complete(p->rt.complete_ctx, p->rt.complete_tag);
        conn_req_end(req);
    } else {
        log_msg(LOG_LVL_WARN, "request %s: D365 response cut off (%s): closing the client "
                "connection", conn_req_id(req), upstream_result_name(d->transport));
        conn_req_abort(req);
    }
    pt_free(p);
}

/* ---- request bodies --------------------------------------------------------------------- */

static void flush_stream(struct pt *p)
{
    struct evbuffer *b = p->body;

    while (evbuffer_get_length(b) > 0) {
        size_t n = evbuffer_get_contiguous_space(b);
        size_t took = upcall_send(p->up, evbuffer_pullup(b, (ev_ssize_t)n), n);
        evbuffer_drain(b, took);
        if (took < n)
            return;
    }
    if (p->body_eof && !p->eof_sent) {
        p->eof_sent = true;
        upcall_send_eof(p->up);
    }
}

static void on_send_space(void *arg)
{
    struct pt *p = arg;

    flush_stream(p);
    if (evbuffer_get_length(p->body) == 0 && !p->body_eof)
        conn_req_resume_body(p->req); /* may call on_body_data at once */
}

static int on_body_data(struct conn_req *req, const char *data, size_t len, void *arg)
{
    struct pt *p = arg;

    if (p->rt.tap && p->rt.tap->on_body)
        p->rt.tap->on_body(p->rt.tap_ctx, data, len);
    if (p->rt.body == PASSTHRU_BODY_BUFFER)
        return evbuffer_add(p->body, data, len);
    size_t took = evbuffer_get_length(p->body) == 0 && p->up ? upcall_send(p->up, data, len) : 0;
    if (took < len) {
        if (evbuffer_add(p->body, data + took, len - took) != 0)
            return -1;
        conn_req_pause_body(req); /* the overflow is one read's worth at most */
    }
    return 0;
}

static int start_upcall(struct pt *p);

static void on_body_end(struct conn_req *req, bool ok, void *arg)
{
    struct pt *p = arg;

    if (!ok) { /* conn answers with the reason (or the connection is gone) */
        conn_req_set_events(req, NULL);
        pt_free(p);
        return;
    }
    if (p->rt.body == PASSTHRU_BODY_BUFFER) {
        start_upcall(p);
        return;
    }
    p->body_eof = true;
    if (p->up)
        flush_stream(p);
}

static void on_gone(void *arg)
{
    pt_free(arg); /* cancels the upcall: its transfer is aborted, its socket closed */
}

/* ---- starting ----------------------------------------------------------------------------- */

/* True when the client's field f goes on to D365 (`conn`: the client's Connection field). */
static bool forwarded(const struct passthru_route *rt, const struct http1_header *conn,
                      const struct http1_header *f)
{
    if (passthru_drop_header(f->name, f->name_len))
        return false;
    if (rt->dequeue && f->name_len == 15 && strncasecmp(f->name, "Accept-Encoding", 15) == 0)
        return false; /* the dequeue body is rewritten: keep it plain */
    if (conn && f->name_len > 0) { /* fields named in Connection are hop-by-hop too */
        const char *v = conn->value, *e = v + conn->value_len;
        while (v < e) {
            while (v < e && (*v == ' ' || *v == ','))
                v++;
            const char *t = v;
            while (v < e && *v != ',' && *v != ' ')
                v++;
            if ((size_t)(v - t) == f->name_len && strncasecmp(t, f->name, f->name_len) == 0)
                return false;
        }
    }
    return true;
}

/* A pass-through's state, its forwarded header lines ("Name: value", at most
 * MAX_FWD_HEADERS) and its target in one zeroed allocation. NULL when out of memory. */
static struct pt *new_pt(const struct passthru_route *rt, const struct http1_head *h)
{
    const struct http1_header *conn = http1_header_find(h, "Connection");
    size_t n = 0, text = h->target_len + 1;
    struct pt *p;

    for (size_t i = 0; i < h->n_headers && n < MAX_FWD_HEADERS; i++)
        if (forwarded(rt, conn, &h->headers[i])) {
            text += h->headers[i].name_len + h->headers[i].value_len + 3;
            n++;
        }
    if (!(p = calloc(1, sizeof *p + (n + 1) * sizeof *p->lines + text)))
        return NULL;
    p->lines = (char **)(void *)(p + 1);
    char *at = (char *)(p->lines + n + 1);
    for (size_t i = 0; i < h->n_headers && p->n_lines < n; i++) {
        const struct http1_header *f = &h->headers[i];
        if (!forwarded(rt, conn, f))
            continue;
        p->lines[p->n_lines++] = at;
        memcpy(at, f->name, f->name_len);
        memcpy(at + f->name_len, ": ", 2);
        memcpy(at + f->name_len + 2, f->value, f->value_len);
        at += f->name_len + 2 + f->value_len + 1; /* the NUL: calloc's */
    }
    p->target = at;
    memcpy(p->target, h->target, h->target_len);
    return p;
}

/* The fair-queue job of a connector path: its activity id segment
 * ("/[en/]api/connector/<op>/<id>[/?...]"), or "" for other paths. */
static void job_of(const char *target, char *out, size_t cap)
{
    const char *at = target ? strstr(target, "/api/connector/") : NULL;
    size_t n = 0;

    out[0] = '\0';
    if (!at || !(at = strchr(at + 15, '/')))
        return;
    at++;
    while (at[n] && at[n] != '/' && at[n] != '?' && n + 1 < cap)
        n++;
    memcpy(out, at, n);
    out[n] = '\0';
}

/* Returns 0, or -1 after answering and freeing p. */
static int start_upcall(struct pt *p)
{
    const struct http1_head *h = conn_req_head(p->req);
    const char *target = p->target;
    char *body = NULL;
    size_t blen = p->body ? evbuffer_get_length(p->body) : 0;
    bool stream = p->rt.body == PASSTHRU_BODY_STREAM && h->framing != HTTP1_BODY_NONE;
    char job[80];

    p->streamed = stream; /* a streamed body is never re-sent */
    job_of(target, job, sizeof job);
    if (!stream && h->framing != HTTP1_BODY_NONE && p->body)
        body = (char *)evbuffer_pullup(p->body, -1);
    struct upcall_req r = {
        .env = p->rt.env->name, .method = h->method_name, .path_query = target,
        .headers = (const char *const *)p->lines, .n_headers = p->n_lines,
        .retry = stream ? UPCALL_RETRY_NONE : p->rt.retry,
        .body = body ? body : (h->framing != HTTP1_BODY_NONE ? "" : NULL),
        .body_len = body ? blen : 0, .stream = stream,
        .stream_len = h->framing == HTTP1_BODY_LENGTH ? (int64_t)h->content_length
                                                      : UPSTREAM_BODY_CHUNKED,
        .max_response_bytes = p->rt.dequeue ? DEQUEUE_MAX : 0,
        .timeouts = p->rt.timeouts, .job = job,
    };
    struct upcall_cbs cbs = {
        .on_head = on_up_head, .on_body = on_up_body, .on_send_space = on_send_space,
        .on_done = p->rt.dequeue ? on_dequeue_done : on_stream_done, .arg = p,
    };
    p->up = upcall_start(p->ctx, &r, &cbs);
    if (p->up)
        return 0;
    fail_reply(p, 500, "internal", "the request could not be forwarded", 0);
    return -1;
}

void passthru_start(struct upcall_ctx *ctx, struct conn_req *req, const struct passthru_route *rt)
{
    const struct http1_head *h = conn_req_head(req);
    struct pt *p = new_pt(rt, h);

    /* a body evbuffer only for a request with a body (buffered, or a stream's overflow) */
    if (!p || (h->framing != HTTP1_BODY_NONE && !(p->body = evbuffer_new()))) {
        free(p);
        if (rt->tap)
            rt->tap->on_end(rt->tap_ctx, 0, NULL, 0);
        reply_error(req, 503, "out_of_memory", "the server is out of memory, retry later");
        return;
    }
    p->req = req;
    p->ctx = ctx;
    p->rt = *rt;
    struct conn_req_events ev = { .on_gone = on_gone, .on_drained = on_drained, .arg = p };
    conn_req_set_events(req, &ev);
    if (h->framing == HTTP1_BODY_LENGTH && h->content_length > rt->body_limit) {
        conn_req_close_after(req);
        fail_reply(p, 413, "body_too_large", "the request body is larger than allowed here", 0);
        return;
    }
    if (h->framing == HTTP1_BODY_NONE) {
        start_upcall(p);
        return;
    }
    struct conn_body_sink sink = { on_body_data, on_body_end, p };
    conn_req_set_body_limit(req, rt->body_limit);
    if (rt->body == PASSTHRU_BODY_STREAM) {
        if (start_upcall(p) < 0)
            return;
        conn_req_pause_body(req); /* until the transfer has room (on_send_space) */
    }
    conn_req_read_body(req, &sink);
}
