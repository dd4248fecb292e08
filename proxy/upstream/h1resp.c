/* h1resp: one HTTP/1.1 response from arriving bytes (see h1resp.h).
 *
 *   head: lines (memchr '\n'; a line split across feeds waits in `line`) -> uphead_feed
 *     -> INTERIM: the next status line | DONE: framing from the fields -> on_head
 *   body: none | Content-Length counted down | chunked, decoded here | until close
 *     -> on_body -> DONE (bytes after the body stay unread)
 *
 * A line that is whole in the bytes given goes to uphead where it lies: no copy. */
#include "h1resp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int line_add(struct h1resp *r, const char *s, size_t n)
{
    size_t need = r->line_len + n, cap = r->line_cap ? r->line_cap : 256;
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

/* A status line starts "HTTP/1.": checked as its bytes come, so that a peer that does not
 * speak HTTP fails at once instead of filling the head's cap. */
static int check_prefix(struct h1resp *r, const char *data, size_t len)
{
    static const char want[] = "HTTP/1.";

    for (size_t i = 0; i < len && r->prefix < sizeof want - 1; i++, r->prefix++)
        if (data[i] != want[r->prefix])
            return set_fail(r, UPSTREAM_OTHER, "malformed response head");
    return 0;
}

/* ---- the final head's framing ---- */

/* Calls fn on each element of a comma-separated list (OWS trimmed, empty ones skipped);
 * returns how many there were. */
static unsigned each_token(const char *v, void (*fn)(void *, const char *, size_t), void *arg)
{
    unsigned count = 0;

    while (*v) {
        size_t n = strcspn(v, ",");
        size_t a = 0, e = n;
        while (a < e && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (e > a && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e > a) {
            fn(arg, v + a, e - a);
            count++;
        }
        v += n + (v[n] == ',');
    }
    return count;
}

static bool token_is(const char *t, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(t, word, n) == 0;
}

struct fields {
    bool close, keep_alive;   /* Connection tokens */
    bool te, chunked_last;    /* Transfer-Encoding seen; its last coding is chunked */
    bool te_empty;            /* a Transfer-Encoding field without a coding */
    int n_length;             /* Content-Length fields */
    bool length_ok;
    uint64_t length;
};

static void on_connection(void *arg, const char *t, size_t n)
{
    struct fields *f = arg;

    f->close |= token_is(t, n, "close");
    f->keep_alive |= token_is(t, n, "keep-alive");
}

static void on_coding(void *arg, const char *t, size_t n)
{
    struct fields *f = arg;

    f->chunked_last = token_is(t, n, "chunked");
}

/* 1*DIGIT up to 2^62: a larger or signed or listed length is no length. */
static bool parse_length(const char *v, uint64_t *out)
{
    uint64_t n = 0;

    if (!*v)
        return false;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || n > (UINT64_C(1) << 62) / 10)
            return false;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    *out = n;
    return true;
}

static void read_fields(const struct uphead *h, struct fields *f)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < uphead_count(h); i++) {
        const char *name = uphead_name(h, i), *value = uphead_value(h, i);
        if (strcasecmp(name, "Connection") == 0) {
            each_token(value, on_connection, f);
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            f->te = true;
            f->te_empty |= each_token(value, on_coding, f) == 0;
        } else if (strcasecmp(name, "Content-Length") == 0) {
            f->n_length++;
            f->length_ok = parse_length(value, &f->length);
        }
    }
}

/* The final head is in: how its body is framed and whether the connection may be kept.
 * Two lengths, a length beside Transfer-Encoding, or a Transfer-Encoding without a coding
 * make the framing ambiguous (a response split differently by another reader): refused. */
static int framing(struct h1resp *r)
{
    struct fields f;
    int st = uphead_status(r->head);

    read_fields(r->head, &f);
    if (f.n_length > 1 || (f.n_length && (!f.length_ok || f.te)) || f.te_empty)
        return set_fail(r, UPSTREAM_OTHER, "malformed response head");
    if (r->is_head || st < 200 || st == 204 || st == 304)
        r->framing = H1RESP_BODY_NONE;
    else if (f.te)
        r->framing = f.chunked_last ? H1RESP_BODY_CHUNKED : H1RESP_BODY_CLOSE;
    else if (f.n_length)
        r->framing = H1RESP_BODY_LENGTH;
    else
        r->framing = H1RESP_BODY_CLOSE;
    r->left = r->framing == H1RESP_BODY_LENGTH ? f.length : 0;
    r->keep = (uphead_minor(r->head) >= 1 ? !f.close : f.keep_alive && !f.close) &&
              st != 101 && r->framing != H1RESP_BODY_CLOSE;
    return 0;
}

/* ---- chunked bodies ----
 *   SIZE line (hex [ext]) -> DATA (size bytes, no copy) -> DATA_END (CRLF) -> SIZE ...
 *   SIZE 0 -> TRAILER lines ("name: value", ignored) until an empty one -> done
 * Framing lines are gathered in `line` when split (size lines up to CHUNK_LINE_MAX, the
 * trailers within the head's cap); every framing line ends in CRLF (RFC 9112 7.1: a bare
 * LF, which the head tolerates, would let two readers split a body differently). Anything
 * else between the data is refused, not skipped. */

#define CHUNK_LINE_MAX 4096

static bool is_hex(char c, unsigned *v)
{
    if (c >= '0' && c <= '9')
        *v = (unsigned)(c - '0');
    else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        *v = (unsigned)((c | 0x20) - 'a' + 10);
    else
        return false;
    return true;
}

/* "1*HEXDIG [ BWS ; ext ]" without its line end: the size, or -1. An extension is
 * ignored but may hold no control byte. */
static int parse_size(const char *s, size_t len, uint64_t *size)
{
    size_t i = 0;
    unsigned v;

    *size = 0;
    for (; i < len && is_hex(s[i], &v); i++) {
        if (i >= 15)
            return -1; /* over 2^60: no length of ours */
        *size = *size << 4 | v;
    }
    if (i == 0)
        return -1;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i == len)
        return 0;
    if (s[i] != ';')
        return -1;
    for (; i < len; i++)
        if (((unsigned char)s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f)
            return -1;
    return 0;
}

static int bad_chunk(struct h1resp *r)
{
    return set_fail(r, UPSTREAM_TRUNCATED, "malformed chunked response body");
}

/* One framing line (size or trailer), its line end included; 0 or -1. */
static int chunk_line(struct h1resp *r, const char *s, size_t len)
{
    if (len < 2 || s[len - 2] != '\r')
        return bad_chunk(r); /* a bare LF */
    len -= 2;
    if (memchr(s, '\r', len))
        return bad_chunk(r); /* a bare CR */
    if (r->chunk == H1RESP_CHUNK_TRAILER) { /* well-formed, else ignored */
        if (len == 0)
            r->done = true;
        return len == 0 || uphead_field_ok(s, len) ? 0 : bad_chunk(r);
    }
    if (parse_size(s, len, &r->left) != 0)
        return bad_chunk(r);
    r->chunk = r->left ? H1RESP_CHUNK_DATA : H1RESP_CHUNK_TRAILER;
    return 0;
}

/* Takes a framing line from data[*used..len): 0 to go on, -1 on failure. */
static int chunk_line_step(struct h1resp *r, const char *data, size_t len, size_t *used)
{
    const char *p = data + *used, *nl = memchr(p, '\n', len - *used);
    size_t n = nl ? (size_t)(nl - p) + 1 : len - *used;
    /* one cap whether the line came whole or in pieces (line_add stops at max_head) */
    size_t cap = r->chunk == H1RESP_CHUNK_TRAILER || r->max_head < CHUNK_LINE_MAX
                     ? r->max_head : CHUNK_LINE_MAX;
    int rc;

    *used += n;
    if (r->chunk == H1RESP_CHUNK_TRAILER && (r->trailer += n) > r->max_head)
        return set_fail(r, UPSTREAM_TOO_LARGE, "response trailers too large");
    if (!nl || r->line_len) {
        if (r->line_len + n > cap || line_add(r, p, n) != 0)
            return bad_chunk(r);
        if (!nl)
            return 0;
        rc = chunk_line(r, r->line, r->line_len);
        r->line_len = 0;
        return rc;
    }
    return n > cap ? bad_chunk(r) : chunk_line(r, p, n);
}

static enum h1resp_state chunked(struct h1resp *r, const char *data, size_t len, size_t *used)
{
    while (*used < len && !r->done) {
        size_t n = len - *used;
        switch (r->chunk) {
        case H1RESP_CHUNK_SIZE:
        case H1RESP_CHUNK_TRAILER:
            if (chunk_line_step(r, data, len, used) != 0)
                return H1RESP_FAILED;
            break;
        case H1RESP_CHUNK_DATA:
            if (n > r->left)
                n = (size_t)r->left;
            r->left -= n;
            *used += n;
            if (!r->left)
                r->chunk = H1RESP_CHUNK_CR;
            if (r->cbs.on_body && !r->cbs.on_body(r->cbs.arg, data + *used - n, n))
                return H1RESP_STOPPED;
            break;
        case H1RESP_CHUNK_CR: /* the CRLF after the data */
        case H1RESP_CHUNK_LF:
            if (data[(*used)++] != (r->chunk == H1RESP_CHUNK_CR ? '\r' : '\n')) {
                bad_chunk(r);
                return H1RESP_FAILED;
            }
            r->chunk = r->chunk == H1RESP_CHUNK_CR ? H1RESP_CHUNK_LF : H1RESP_CHUNK_SIZE;
            break;
        }
    }
    return r->done ? H1RESP_DONE : H1RESP_MORE;
}

/* ---- head ---- */

/* The final head is complete: 0 to go on with the body, 1 when on_head asked to stop,
 * -1 on failure. */
static int head_done(struct h1resp *r)
{
    r->head_done = true;
    if (framing(r) != 0)
        return -1;
    if (r->framing == H1RESP_BODY_NONE || (r->framing == H1RESP_BODY_LENGTH && !r->left))
        r->done = true;
    return r->cbs.on_head && !r->cbs.on_head(r->cbs.arg, r->head) ? 1 : 0;
}

/* Takes one head line (or the start of one) from data[*used..len). Returns 0 to go on,
 * 1 when on_head asked to stop, -1 on failure. */
static int head_step(struct h1resp *r, const char *data, size_t len, size_t *used)
{
    const char *p = data + *used, *nl = memchr(p, '\n', len - *used);
    size_t n = nl ? (size_t)(nl - p) + 1 : len - *used;
    enum uphead_verdict v;

    if (r->at_status && check_prefix(r, p, n) != 0)
        return -1;
    *used += n;
    if (!nl || r->line_len) { /* a split line: gathered until its end */
        if (line_add(r, p, n) != 0)
            return bad_head(r, UPHEAD_TOO_BIG);
        if (!nl)
            return 0;
        v = uphead_feed(r->head, r->line, r->line_len);
        r->line_len = 0;
    } else {
        v = uphead_feed(r->head, p, n);
    }
    r->at_status = false;
    switch (v) {
    case UPHEAD_MORE:
        return 0;
    case UPHEAD_INTERIM: /* a 1xx head ended: a status line follows */
        r->at_status = true;
        r->prefix = 0;
        return 0;
    case UPHEAD_DONE:
        return head_done(r);
    default:
        return bad_head(r, v);
    }
}

void h1resp_start(struct h1resp *r, struct uphead *head, bool is_head, size_t max_head,
                  const struct h1resp_cbs *cbs)
{
    r->head = head;
    r->cbs = *cbs;
    r->max_head = max_head;
    r->line_len = 0;
    r->framing = H1RESP_BODY_NONE;
    r->chunk = H1RESP_CHUNK_SIZE;
    r->left = 0;
    r->trailer = 0;
    r->prefix = 0;
    r->is_head = is_head;
    r->head_done = r->done = r->keep = false;
    r->at_status = true;
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

/* ---- body ---- */

static enum h1resp_state body(struct h1resp *r, const char *data, size_t len, size_t *used)
{
    size_t n = len - *used;
    bool go_on;

    if (!n)
        return H1RESP_MORE;
    switch (r->framing) {
    case H1RESP_BODY_LENGTH:
        if (n > r->left)
            n = (size_t)r->left;
        r->left -= n;
        r->done = r->left == 0;
        *used += n;
        go_on = !r->cbs.on_body || r->cbs.on_body(r->cbs.arg, data + *used - n, n);
        return r->done ? H1RESP_DONE : go_on ? H1RESP_MORE : H1RESP_STOPPED;
    case H1RESP_BODY_CLOSE:
        *used += n;
        go_on = !r->cbs.on_body || r->cbs.on_body(r->cbs.arg, data + *used - n, n);
        return go_on ? H1RESP_MORE : H1RESP_STOPPED;
    case H1RESP_BODY_CHUNKED:
        return chunked(r, data, len, used);
    case H1RESP_BODY_NONE:
        break;
    }
    return H1RESP_DONE;
}

enum h1resp_state h1resp_feed(struct h1resp *r, const char *data, size_t len, size_t *used)
{
    *used = 0;
    if (r->fail_text)
        return H1RESP_FAILED;
    while (!r->head_done) {
        if (*used == len)
            return H1RESP_MORE;
        int rc = head_step(r, data, len, used);
        if (rc < 0)
            return failed(r);
        if (rc > 0)
            return r->done ? H1RESP_DONE : H1RESP_STOPPED;
    }
    if (r->done)
        return H1RESP_DONE;
    return body(r, data, len, used);
}

enum h1resp_state h1resp_eof(struct h1resp *r)
{
    if (!r->done && !r->fail_text && r->head_done && r->framing == H1RESP_BODY_CLOSE)
        r->done = true; /* the close ends a body read until close */
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
    return r->done && r->keep; /* trailers do not count (RFC 9110 6.5.1) */
}

uint64_t h1resp_body_left(const struct h1resp *r)
{
    return r->head_done && r->framing == H1RESP_BODY_LENGTH ? r->left : UINT64_MAX;
}

void h1resp_cleanup(struct h1resp *r)
{
    free(r->line);
    r->line = NULL;
    r->line_cap = r->line_len = 0;
}
