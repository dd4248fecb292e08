/* h1out: request bytes of an HTTP/1.1 upstream connection (see h1out.h). */
#include "h1out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upreq.h"

#define OUT_FIRST 4096 /* first size of the buffer: a whole small request */

void h1out_reset(struct h1out *o, size_t keep_cap)
{
    o->off = o->len = 0;
    o->whole = true;
    if (o->cap > keep_cap) {
        free(o->buf);
        o->buf = NULL;
        o->cap = 0;
    }
}

void h1out_cleanup(struct h1out *o)
{
    free(o->buf);
    memset(o, 0, sizeof *o);
}

size_t h1out_pending(const struct h1out *o)
{
    return o->len - o->off;
}

int h1out_reserve(struct h1out *o, size_t n)
{
    size_t cap = o->cap ? o->cap : OUT_FIRST;
    char *p;

    if (o->len + n <= o->cap)
        return 0;
    if (o->off > 0) {
        memmove(o->buf, o->buf + o->off, h1out_pending(o));
        o->len -= o->off;
        o->off = 0;
        o->whole = false;
        if (o->len + n <= o->cap)
            return 0;
    }
    while (cap < o->len + n)
        cap *= 2;
    if (!(p = realloc(o->buf, cap)))
        return -1;
    o->buf = p;
    o->cap = cap;
    return 0;
}

int h1out_add(struct h1out *o, const void *s, size_t n)
{
    if (h1out_reserve(o, n) != 0)
        return -1;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    return 0;
}

static int add_str(struct h1out *o, const char *s)
{
    return h1out_add(o, s, strlen(s));
}

/* The caller's lines, checked; *has_host when one of them is Host. */
static int check_lines(const struct upstream_req *req, bool *has_host)
{
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *l = req->headers[i];
        if (!l || !upreq_name_len(l) || strpbrk(l, "\r\n"))
            return -1;
        *has_host |= upreq_named(l, upreq_name_len(l), "Host");
    }
    return 0;
}

int h1out_head(struct h1out *o, const struct upstream_req *req, const char *target,
               const char *authority)
{
    bool has_host = false;
    char num[64];
    int rc = 0;

    if (check_lines(req, &has_host) != 0)
        return -1;
    rc |= add_str(o, req->method);
    rc |= h1out_add(o, " ", 1);
    rc |= *target == '/' ? 0 : h1out_add(o, "/", 1);
    rc |= h1out_add(o, target, strcspn(target, "#"));
    rc |= h1out_add(o, " HTTP/1.1\r\n", 11);
    if (!has_host) {
        rc |= h1out_add(o, "Host: ", 6);
        rc |= add_str(o, authority);
        rc |= h1out_add(o, "\r\n", 2);
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        const char *l = req->headers[i];
        if (upreq_framing(l, upreq_name_len(l)))
            continue;
        rc |= add_str(o, l);
        rc |= h1out_add(o, "\r\n", 2);
    }
    if (req->body_len >= 0) {
        int n = snprintf(num, sizeof num, "Content-Length: %lld\r\n", (long long)req->body_len);
        rc |= h1out_add(o, num, (size_t)n);
    } else if (req->body_len == UPSTREAM_BODY_CHUNKED) {
        rc |= add_str(o, "Transfer-Encoding: chunked\r\n");
    }
    rc |= h1out_add(o, "\r\n", 2);
    return rc ? -1 : 0;
}

int h1out_chunk(struct h1out *o, const void *data, size_t n)
{
    char sz[24];
    int k = snprintf(sz, sizeof sz, "%zx\r\n", n);

    /* reserved at once, so that a failure leaves no half chunk behind */
    if (h1out_reserve(o, (size_t)k + n + 2) != 0)
        return -1;
    h1out_add(o, sz, (size_t)k);
    h1out_add(o, data, n);
    return h1out_add(o, "\r\n", 2);
}

int h1out_last_chunk(struct h1out *o)
{
    return h1out_add(o, "0\r\n\r\n", 5);
}
