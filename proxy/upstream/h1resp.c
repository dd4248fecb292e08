/* h1resp: one HTTP/1.1 response from arriving bytes (see h1resp.h).
 *
 *   field/value callbacks -> line buffer -> uphead_feed (status line first, made from the
 *   parser's numbers) -> headers complete: 1xx skipped | final: on_head -> body: on_body
 *   -> message complete: DONE (the parser is paused there so the next bytes stay unread)
 *
 * http_parser stops only by pausing: a callback that wants to stop pauses it, and feed
 * tells STOPPED from DONE by `done`. */
#include "h1resp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int line_add(struct h1resp *r, const char *s, size_t n)
{
    size_t need = r->line_len + n + 2, cap = r->line_cap ? r->line_cap : 256;
    char *p;

    if (need > r->max_head)
        return -1;
    if (need > r->line_cap) {
        while (cap < need)
            cap *= 2;
        if (!(p = realloc(r->line, cap)))
            return -1;
        r->line = p;
        r->line_cap = cap;
    }
    memcpy(r->line + r->line_len, s, n);
    r->line_len += n;
    return 0;
}

static int set_fail(struct h1resp *r, enum upstream_result res, const char *text)
{
    if (!r->fail_text) {
        r->fail = res;
        r->fail_text = text;
    }
    return -1;
}

static int bad_head(struct h1resp *r, enum uphead_verdict v)
{
    return v == UPHEAD_TOO_BIG ? set_fail(r, UPSTREAM_TOO_LARGE, "response head too large")
                               : set_fail(r, UPSTREAM_OTHER, "malformed response head");
}

/* Feeds the status line once per head, then the line built so far; -1 stops the parser. */
static int feed_pending(struct h1resp *r, http_parser *p)
{
    enum uphead_verdict v;

    if (!r->status_fed) {
        char st[32];
        int n = snprintf(st, sizeof st, "HTTP/1.%u %03u\r\n", p->http_minor % 10,
                         p->status_code % 1000);
        r->status_fed = true;
        v = uphead_feed(r->head, st, (size_t)n);
        if (v != UPHEAD_MORE)
            return bad_head(r, v);
    }
    if (!r->line_len)
        return 0;
    if (line_add(r, "\r\n", 2) != 0)
        return bad_head(r, UPHEAD_TOO_BIG);
    v = uphead_feed(r->head, r->line, r->line_len);
    r->line_len = 0;
    r->in_value = false;
    return v == UPHEAD_MORE ? 0 : bad_head(r, v);
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct h1resp *r = p->data;

    if (r->head_done) /* a chunked body's trailers: ignored (http_parser bounds them) */
        return 0;
    if ((r->in_value || !r->status_fed) && feed_pending(r, p) != 0)
        return -1;
    return line_add(r, at, len) == 0 ? 0 : bad_head(r, UPHEAD_TOO_BIG);
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    struct h1resp *r = p->data;
    char before = at > r->feed_start ? at[-1] : r->prev_byte;

    if (r->head_done)
        return 0;
    /* http_parser passes an obs-fold continuation (CRLF + SP/HT) as more value: refused
     * as uphead refuses it on libcurl's path (a value never starts with blanks else) */
    if (len && (at[0] == ' ' || at[0] == '\t') && before == '\n')
        return bad_head(r, UPHEAD_BAD);
    if ((!r->in_value && line_add(r, ": ", 2) != 0) || line_add(r, at, len) != 0)
        return bad_head(r, UPHEAD_TOO_BIG);
    r->in_value = true;
    return 0;
}

static int on_headers_done(http_parser *p)
{
    struct h1resp *r = p->data;
    enum uphead_verdict v;

    if (feed_pending(r, p) != 0)
        return -1;
    v = uphead_feed(r->head, "\r\n", 2);
    r->status_fed = false;
    if (v == UPHEAD_INTERIM) {
        r->interim = true; /* its message_complete is not ours */
        return 0;
    }
    if (v != UPHEAD_DONE)
        return bad_head(r, v);
    r->head_done = true;
    if (r->cbs.on_head && !r->cbs.on_head(r->cbs.arg, r->head))
        http_parser_pause(p, 1);
    /* 1: no body follows (http_parser 2.9 would read a 304's Content-Length worth) */
    return r->is_head || uphead_status(r->head) == 204 || uphead_status(r->head) == 304;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct h1resp *r = p->data;

    if (r->cbs.on_body && !r->cbs.on_body(r->cbs.arg, at, len))
        http_parser_pause(p, 1);
    return 0;
}

static int on_message_done(http_parser *p)
{
    struct h1resp *r = p->data;

    if (r->interim) {
        r->interim = false;
        r->prefix = 0;
        r->next_head = true; /* paused so that feed checks the next status line's start */
        http_parser_pause(p, 1);
        return 0;
    }
    r->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_done,
    .on_body = on_body,
    .on_message_complete = on_message_done,
};

void h1resp_start(struct h1resp *r, struct uphead *head, bool is_head, size_t max_head,
                  const struct h1resp_cbs *cbs)
{
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
    r->is_head = is_head;
    r->head = head;
    r->cbs = *cbs;
    r->max_head = max_head;
    r->line_len = 0;
    r->in_value = r->status_fed = r->interim = r->head_done = r->done = false;
    r->next_head = false;
    r->prefix = 0;
    r->prev_byte = 0;
    r->fail_text = NULL;
    r->fail = UPSTREAM_OK;
}

static enum h1resp_state failed(struct h1resp *r)
{
    if (!r->fail_text)
        set_fail(r, r->head_done ? UPSTREAM_TRUNCATED : UPSTREAM_OTHER,
                 r->head_done ? "malformed response body" : "malformed response head");
    return H1RESP_FAILED;
}

/* A status line starts "HTTP/1." (http_parser 2.9 takes "HTTX/1.1" or "HTTP/2.0" too). */
static int check_prefix(struct h1resp *r, const char *data, size_t len)
{
    static const char want[] = "HTTP/1.";

    for (size_t i = 0; i < len && r->prefix < sizeof want - 1; i++, r->prefix++)
        if (data[i] != want[r->prefix])
            return set_fail(r, UPSTREAM_OTHER, "malformed response head");
    return 0;
}

enum h1resp_state h1resp_feed(struct h1resp *r, const char *data, size_t len, size_t *used)
{
    enum http_errno e;
    size_t n;

    *used = 0;
    if (r->done)
        return H1RESP_DONE;
    if (r->fail_text)
        return H1RESP_FAILED;
    r->feed_start = data;
    do {
        r->next_head = false;
        if (check_prefix(r, data + *used, len - *used) != 0)
            return H1RESP_FAILED;
        http_parser_pause(&r->parser, 0);
        n = http_parser_execute(&r->parser, &settings, data + *used, len - *used);
        *used += n;
        e = HTTP_PARSER_ERRNO(&r->parser);
    } while (e == HPE_PAUSED && r->next_head && *used < len);
    if (*used)
        r->prev_byte = data[*used - 1];
    if (e == HPE_PAUSED)
        return r->done ? H1RESP_DONE : r->next_head ? H1RESP_MORE : H1RESP_STOPPED;
    if (e != HPE_OK)
        return failed(r);
    return H1RESP_MORE;
}

enum h1resp_state h1resp_eof(struct h1resp *r)
{
    if (!r->done && !r->fail_text && r->head_done) {
        http_parser_pause(&r->parser, 0);
        http_parser_execute(&r->parser, &settings, NULL, 0); /* ends a body read until close */
    }
    if (r->done)
        return H1RESP_DONE;
    if (!r->fail_text || r->fail == UPSTREAM_OK)
        set_fail(r, r->head_done ? UPSTREAM_TRUNCATED : UPSTREAM_OTHER,
                 r->head_done ? "upstream closed the connection mid-body"
                              : "upstream closed the connection mid-head");
    return H1RESP_FAILED;
}

bool h1resp_keep_alive(const struct h1resp *r)
{
    return r->done && http_should_keep_alive(&r->parser);
}

void h1resp_cleanup(struct h1resp *r)
{
    free(r->line);
    r->line = NULL;
    r->line_cap = r->line_len = 0;
}
