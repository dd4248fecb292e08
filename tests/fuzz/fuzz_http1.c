/* fuzz_http1: libFuzzer target for proxy/http1 and proxy/h1body (head finding, head
 * parsing, body decoding).
 * Invariant checked on every input: whatever http1 accepts, http_parser alone accepts too,
 * with the same method, target, framing, Content-Length and decoded body bytes.
 * Built with -DFOGATE_FUZZ=ON under clang it links libFuzzer; otherwise replay.c's main()
 * replays corpus files, and a file named accept-* or reject-* must be accepted or refused
 * by http1 (body included). */
#include "h1body.h"
#include "http1.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HEADERS 64

struct capture {
    const char *url;
    size_t url_len;
    bool complete;
    bool done;
    unsigned flags;
    uint64_t content_length;
    char *body;               /* owned by the caller */
    size_t body_len;
    size_t body_cap;
};

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_http1: invariant broken: %s\n", why);
    abort();
}

static int append(struct capture *c, const char *at, size_t len)
{
    if (c->body_len + len > c->body_cap)
        return -1;
    memcpy(c->body + c->body_len, at, len);
    c->body_len += len;
    return 0;
}

static int cap_url(http_parser *p, const char *at, size_t len)
{
    struct capture *c = p->data;
    if (c->url) /* one contiguous buffer gives one slice */
        fail("url reported twice");
    c->url = at;
    c->url_len = len;
    return 0;
}

static int cap_headers_complete(http_parser *p)
{
    struct capture *c = p->data;
    c->complete = true;
    c->flags = p->flags;
    c->content_length = p->content_length;
    return 0;
}

static int cap_body(http_parser *p, const char *at, size_t len)
{
    return append(p->data, at, len);
}

static int cap_message_complete(http_parser *p)
{
    ((struct capture *)p->data)->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings plain_settings = {
    .on_url = cap_url,
    .on_headers_complete = cap_headers_complete,
    .on_body = cap_body,
    .on_message_complete = cap_message_complete,
};

/* Runs http_parser alone over buf; returns bytes parsed, -1 on error. */
static long plain_parse(const char *buf, size_t len, struct capture *c)
{
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = c;
    size_t n = http_parser_execute(&p, &plain_settings, buf, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    return e == HPE_OK || e == HPE_PAUSED ? (long)n : -1;
}

static void check_head(const char *head, size_t len, const struct http1_head *h)
{
    struct capture c = { 0 };
    if (plain_parse(head, len, &c) != (long)len || !c.complete)
        fail("http1 accepted a head http_parser refuses");
    if (c.url != h->target || c.url_len != h->target_len)
        fail("target differs");
    if (strcmp(http_method_str(h->method), h->method_name) != 0)
        fail("method name differs");
    bool chunked = (c.flags & F_CHUNKED) != 0;
    bool has_cl = (c.flags & F_CONTENTLENGTH) != 0;
    if (chunked != (h->framing == HTTP1_BODY_CHUNKED))
        fail("chunked flag differs");
    if (h->framing == HTTP1_BODY_LENGTH && (!has_cl || c.content_length != h->content_length))
        fail("content length differs");
    if (h->framing == HTTP1_BODY_NONE && has_cl && c.content_length != 0)
        fail("http1 sees no body, http_parser does");
}

static int sink(void *arg, const char *data, size_t len)
{
    return append(arg, data, len);
}

/* Decodes the body after an accepted head; on success compares with http_parser's body. */
static int check_body(struct http1_head *h, const char *msg, size_t head_len, size_t size)
{
    struct http1_verdict v;
    struct h1body body;
    char *mine = malloc(size + 1), *theirs = malloc(size + 1);
    struct capture a = { .body = mine, .body_cap = size }, b = { .body = theirs, .body_cap = size };
    h1body_init(&body, h);
    ssize_t n = h1body_feed(&body, msg + head_len, size - head_len, sink, &a, &v);
    int rc = -1;
    if (n < 0 || !h1body_done(&body))
        goto out;
    if ((size_t)n > size - head_len)
        fail("body consumed more than given");
    rc = 0;
    if (h->framing == HTTP1_BODY_NONE)
        goto out;
    if (plain_parse(msg, head_len + (size_t)n, &b) != (long)(head_len + (size_t)n) || !b.done)
        fail("http1 decoded a body http_parser refuses");
    if (a.body_len != b.body_len || memcmp(mine, theirs, a.body_len) != 0)
        fail("decoded body differs");
out:
    free(mine);
    free(theirs);
    return rc;
}

/* Returns 1 if a whole request (head and body) was accepted, 0 if refused or incomplete. */
static int one_input(const char *buf, size_t size)
{
    struct http1_limits lim = { .max_header_bytes = 8192, .max_headers = MAX_HEADERS };
    struct http1_header hdrs[MAX_HEADERS];
    struct http1_head h;
    struct http1_verdict v;
    size_t scanned = 0, start = 0, end = 0;

    /* the parser must survive any bytes, head-shaped or not */
    (void)http1_parse(buf, size, &lim, hdrs, MAX_HEADERS, &h, &v);
    if (http1_head_find(buf, size, lim.max_header_bytes, &scanned, &start, &end, &v) !=
        HTTP1_FIND_DONE)
        return 0;
    if (start > end || end > size)
        fail("head bounds out of range");
    if (http1_parse(buf + start, end - start, &lim, hdrs, MAX_HEADERS, &h, &v) != 0) {
        if (v.status < 400 || v.status > 505 || !v.code || !v.message)
            fail("verdict incomplete");
        return 0;
    }
    check_head(buf + start, end - start, &h);
    return check_body(&h, buf + start, end - start, size - start) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)one_input((const char *)data, size);
    return 0;
}

/* Seeds named accept-* must be accepted whole (body included), reject-* refused. */
int replay_check(const char *name, const uint8_t *data, size_t size)
{
    int accepted = one_input((const char *)data, size);
    bool want_accept = strncmp(name, "accept-", 7) == 0;
    bool want_reject = strncmp(name, "reject-", 7) == 0;

    if ((want_accept && !accepted) || (want_reject && accepted)) {
        fprintf(stderr, "%s: expected %s, got %s\n", name, want_accept ? "accept" : "reject",
                accepted ? "accept" : "reject");
        return -1;
    }
    return 0;
}
