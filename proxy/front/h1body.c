/* h1body: request-body framing. http_parser (2.9.4) decodes chunk sizes and data well but
 * skips anything inside chunk extensions (bare LF and NUL included) and accepts a bare LF
 * to end the trailers; those are request-smuggling levers, so every byte that is not data
 * is checked here as well: hex digits, and CR always followed by LF. */
#include "h1body.h"

#include <string.h>

struct feed_ctx {
    struct h1body *body;
    h1body_data_cb on_data;
    void *arg;
    const char *framing_from; /* start of bytes not yet checked as framing */
    bool bad_framing;
};

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int refuse(struct http1_verdict *v, const char *code, const char *message)
{
    v->status = 400;
    v->code = code;
    v->message = message;
    return -1;
}

/* Framing bytes between data: hex digits, and CR always followed by LF. */
static void check_framing(struct feed_ctx *c, const char *to)
{
    for (const char *p = c->framing_from; p < to; p++) {
        bool cr = c->body->cr;
        c->body->cr = *p == '\r';
        if (cr ? *p != '\n' : (*p == '\n' || (*p != '\r' && !is_hex((unsigned char)*p))))
            c->bad_framing = true;
    }
    c->framing_from = to;
}

static int on_chunk_data(http_parser *p, const char *at, size_t len)
{
    struct feed_ctx *c = p->data;

    check_framing(c, at);
    if (c->bad_framing || c->body->cr)
        return -1;
    c->framing_from = at + len;
    return c->on_data && c->on_data(c->arg, at, len) < 0 ? -1 : 0;
}

static int on_body_complete(http_parser *p)
{
    struct feed_ctx *c = p->data;

    c->body->done = true;
    http_parser_pause(p, 1); /* stop right here: what follows is the next request */
    return 0;
}

static const http_parser_settings chunk_settings = {
    .on_body = on_chunk_data,
    .on_message_complete = on_body_complete,
};

static ssize_t feed_chunked(struct h1body *b, const char *buf, size_t len,
                            h1body_data_cb on_data, void *arg, struct http1_verdict *v)
{
    struct feed_ctx c = { .body = b, .on_data = on_data, .arg = arg, .framing_from = buf };

    b->parser.data = &c;
    size_t n = http_parser_execute(&b->parser, &chunk_settings, buf, len);
    b->parser.data = NULL;
    enum http_errno e = HTTP_PARSER_ERRNO(&b->parser);
    if (!c.bad_framing)
        check_framing(&c, buf + n);
    if (!c.bad_framing && (e == HPE_OK || (e == HPE_PAUSED && b->done)))
        return (ssize_t)n;
    if (e == HPE_CB_body && !c.bad_framing)
        return refuse(v, "body_rejected", "the request body was refused");
    return refuse(v, "bad_chunked_body",
                  "the chunked request body is malformed (chunk extensions and trailers are "
                  "not accepted)");
}

void h1body_init(struct h1body *b, const struct http1_head *head)
{
    memset(b, 0, sizeof *b);
    b->framing = head->framing;
    b->parser = head->parser;
    b->left = head->framing == HTTP1_BODY_LENGTH ? head->content_length : 0;
    b->done = head->framing == HTTP1_BODY_NONE;
}

ssize_t h1body_feed(struct h1body *b, const char *buf, size_t len, h1body_data_cb on_data,
                    void *arg, struct http1_verdict *v)
{
    if (b->done || len == 0)
        return 0;
    if (b->framing == HTTP1_BODY_CHUNKED)
        return feed_chunked(b, buf, len, on_data, arg, v);
    size_t n = len < b->left ? len : (size_t)b->left;
    if (on_data && on_data(arg, buf, n) < 0)
        return refuse(v, "body_rejected", "the request body was refused");
    b->left -= n;
    b->done = b->left == 0;
    return (ssize_t)n;
}

bool h1body_done(const struct h1body *b)
{
    return b->done;
}
