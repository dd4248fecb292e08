/* http1: strict HTTP/1.1 request-head parsing (pure, no I/O).
 *
 * Why not evhttp, and why not http_parser alone: evhttp (libevent 2.1.12) buffers every
 * request body whole before a handler runs and accepted 68 of 120 malformed or smuggling
 * requests (two Content-Length, "0x0" chunk sizes, NUL in values, bare LF, obs-fold,
 * missing or repeated Host, absolute-form, HTTP/1.9). Debian's http_parser 2.9.4 alone
 * still let 58 of 120 through: it accepts bare LF, trailing whitespace in values, any
 * HTTP/x.y version, anything inside chunk extensions. So a head passes two independent
 * checks that must agree:
 *   1. a raw-byte scan here: CRLF only, no NUL or control bytes, tchar header names, no
 *      whitespace before the colon, no obs-fold, one SP between request-line parts,
 *      HTTP/1.0 or 1.1, origin-form target; then header semantics (one Host, one valid
 *      Content-Length, Transfer-Encoding exactly "chunked" and never with Content-Length);
 *   2. http_parser over the same bytes; its URL, header names and values, method and
 *      version must equal what the scan found, or the request is refused.
 * Decisions where the RFCs leave room (every refusal closes the connection, see conn.c):
 * - Transfer-Encoding: only "chunked". A list whose final coding is not chunked
 *   ("xchunked", "chunked, identity") is 400 (RFC 9112 6.3); other codings before chunked
 *   ("gzip, chunked") are 501; TE with Content-Length, TE on HTTP/1.0 and repeated TE
 *   lines are 400.
 * - Content-Length: 1 to 18 digits, once; a repeat is 400 even with the same value.
 * - Targets: origin-form only ("*" for OPTIONS). Absolute-form is refused although RFC
 *   9112 3.2.2 asks servers to accept it: fogate is not a forward proxy, and two views of
 *   the host are a smuggling lever. '#', '\', bad %-escapes and non-ASCII bytes are 400.
 * - Empty lines before the request line are skipped (RFC 9112 2.2) within the size limit.
 * - Expect: only 100-continue (417 otherwise).
 * - Methods: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS; anything else (TRACE, CONNECT,
 *   PURGE, unknown) is 501 whatever the target, checked right after the version.
 * - Host: present on HTTP/1.1 and never empty. Upgrade, HTTP2-Settings, or a Connection
 *   naming either: 400 (refused, not ignored).
 * Bodies are decoded by h1body.c, continuing http_parser's state after the head. */
#include "http1.h"

#include "hex.h"

#include <string.h>
#include <strings.h>

#define HPARSER_MAX_HEAD (80 * 1024) /* http_parser's compiled-in HTTP_MAX_HEADER_SIZE */

/* tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~" DIGIT ALPHA */
static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int refuse(struct http1_verdict *v, int status, const char *code, const char *msg)
{
    v->status = status;
    v->code = code;
    v->message = msg;
    return -1;
}

static bool slice_ieq(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(s, lit, len) == 0;
}

/* ---- finding the end of a head --------------------------------------------------- */

/* Checks one byte at i for line-ending rules. Returns 1 if buf[i-3..i] ends the head,
 * 0 to go on, -1 on a bare CR or LF, 2 if a CR is the last byte (need more). */
static int line_byte(const char *buf, size_t len, size_t i, size_t start)
{
    if (buf[i] == '\r') {
        if (i + 1 == len)
            return 2;
        return buf[i + 1] == '\n' ? 0 : -1;
    }
    if (buf[i] != '\n')
        return 0;
    if (i == 0 || buf[i - 1] != '\r')
        return -1;
    return i >= start + 3 && buf[i - 2] == '\n' ? 1 : 0;
}

static size_t leading_crlfs(const char *buf, size_t len)
{
    size_t n = 0;
    while (n + 1 < len && buf[n] == '\r' && buf[n + 1] == '\n')
        n += 2;
    return n;
}

enum http1_find http1_head_find(const char *buf, size_t len, size_t max_header_bytes,
                                size_t *scanned, size_t *head_start, size_t *head_end,
                                struct http1_verdict *v)
{
    size_t start = leading_crlfs(buf, len);
    size_t i = *scanned > start ? *scanned : start;
    size_t stop = len < max_header_bytes ? len : max_header_bytes;

    for (; i < stop; i++) {
        if (buf[i] == '\0') { /* e.g. TLS spoken to a plain port: no need to wait for more */
            refuse(v, 400, "nul_byte", "the request head contains a NUL byte");
            return HTTP1_FIND_ERROR;
        }
        int r = line_byte(buf, len, i, start);
        if (r == 2)
            break;
        if (r < 0) {
            refuse(v, 400, buf[i] == '\n' ? "bare_lf" : "bare_cr",
                   buf[i] == '\n' ? "line ends must be CRLF; a bare LF was found"
                                  : "a CR not followed by LF was found in the request head");
            return HTTP1_FIND_ERROR;
        }
        if (r == 1) {
            *head_start = start;
            *head_end = i + 1;
            return HTTP1_FIND_DONE;
        }
    }
    *scanned = i;
    if (len >= max_header_bytes) {
        refuse(v, 431, "header_too_large", "the request head is larger than allowed");
        return HTTP1_FIND_ERROR;
    }
    return HTTP1_FIND_MORE;
}

/* ---- raw scan of the request line -------------------------------------------------- */

struct reqline {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    unsigned minor;
};

/* "HTTP/" DIGIT "." DIGIT. Returns 0 and the minor version, 505 for a well-formed
 * version other than 1.0/1.1, -1 if not a version at all. */
static int scan_version(const char *p, size_t len, unsigned *minor)
{
    if (len != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.')
        return -1;
    if (p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
        return -1;
    if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
        return 505;
    *minor = (unsigned)(p[7] - '0');
    return 0;
}

/* Origin-form: "/" then visible ASCII; no '#' (fragments never travel), no '\' (IIS
 * behind D365 reads it as '/'), every '%' followed by two hex digits. */
static bool target_ok(const char *t, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f || c == '#' || c == '\\')
            return false;
        if (c == '%' && (i + 2 >= len || hex_digit((unsigned char)t[i + 1]) < 0 ||
                         hex_digit((unsigned char)t[i + 2]) < 0))
            return false;
    }
    return true;
}

static int check_target(const struct reqline *rl, struct http1_verdict *v)
{
    if (rl->target_len == 1 && rl->target[0] == '*') {
        if (rl->method_len == 7 && memcmp(rl->method, "OPTIONS", 7) == 0)
            return 0;
        return refuse(v, 400, "target_not_origin_form",
                      "the asterisk target is only allowed with OPTIONS");
    }
    if (rl->target[0] != '/')
        return refuse(v, 400, "target_not_origin_form",
                      "the request target must be a path starting with '/' (origin-form)");
    if (!target_ok(rl->target, rl->target_len))
        return refuse(v, 400, "bad_target",
                      "the request target has a byte or escape that is not allowed");
    return 0;
}

/* The methods any route serves. TRACE (it would echo the forwarded bearer token),
 * CONNECT, PURGE, WebDAV and unknown methods end here, before routing and authentication,
 * with one 501 for all of them; each route then allows its own subset (405 with Allow). */
static bool method_served(const char *m, size_t len)
{
    static const char *const served[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                          "OPTIONS" };

    for (size_t i = 0; i < sizeof served / sizeof served[0]; i++)
        if (strlen(served[i]) == len && memcmp(served[i], m, len) == 0)
            return true;
    return false;
}

static int scan_request_line(const char *p, const char *eol, struct reqline *rl,
                             struct http1_verdict *v)
{
    const char *s = p;
    while (s < eol && is_tchar((unsigned char)*s))
        s++;
    const char *t = s + 1;
    const char *sp2 = t < eol ? memchr(t, ' ', (size_t)(eol - t)) : NULL;
    if (s == p || s == eol || *s != ' ' || !sp2 || sp2 == t)
        return refuse(v, 400, "bad_request_line",
                      "the request line must be: METHOD SP target SP HTTP/1.1");
    rl->method = p;
    rl->method_len = (size_t)(s - p);
    rl->target = t;
    rl->target_len = (size_t)(sp2 - t);
    int r = scan_version(sp2 + 1, (size_t)(eol - sp2 - 1), &rl->minor);
    if (r == 505)
        return refuse(v, 505, "version_not_supported", "only HTTP/1.0 and HTTP/1.1 are supported");
    if (r < 0)
        return refuse(v, 400, "bad_request_line",
                      "the request line must be: METHOD SP target SP HTTP/1.1");
    if (!method_served(rl->method, rl->method_len))
        return refuse(v, 501, "method_not_implemented",
                      "the request method is not supported (GET, HEAD, POST, PUT, PATCH, "
                      "DELETE, OPTIONS are)");
    return check_target(rl, v);
}

/* ---- raw scan of header lines ------------------------------------------------------ */

/* Scans a field value from p to the CR that ends its line. Returns the CR or NULL. */
static const char *scan_value(const char *p, const char *end, struct http1_verdict *v)
{
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '\r')
            return p;
        if (c == 0) {
            refuse(v, 400, "nul_byte", "a header value contains a NUL byte");
            return NULL;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            refuse(v, 400, "control_char", "a header value contains a control character");
            return NULL;
        }
    }
    refuse(v, 400, "malformed_request", "the request head is malformed");
    return NULL;
}

static void trim_value(const char **val, const char *cr, size_t *len)
{
    const char *a = *val;
    const char *b = cr;
    while (a < b && (*a == ' ' || *a == '\t'))
        a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
        b--;
    *val = a;
    *len = (size_t)(b - a);
}

/* Scans one header line at p. Returns the start of the next line or NULL. */
static const char *scan_header(const char *p, const char *end, struct http1_header *h,
                               struct http1_verdict *v)
{
    if (*p == ' ' || *p == '\t') {
        refuse(v, 400, "obs_fold", "header line folding (obs-fold) is not allowed");
        return NULL;
    }
    const char *n = p;
    while (n < end && is_tchar((unsigned char)*n))
        n++;
    if (n < end && (*n == ' ' || *n == '\t') && n > p) {
        refuse(v, 400, "space_before_colon", "whitespace between a header name and ':'");
        return NULL;
    }
    if (n == p || n == end || *n != ':') {
        refuse(v, 400, "bad_header_name", "a header name is empty or not a token");
        return NULL;
    }
    const char *cr = scan_value(n + 1, end, v);
    if (!cr)
        return NULL;
    h->name = p;
    h->name_len = (size_t)(n - p);
    h->value = n + 1;
    trim_value(&h->value, cr, &h->value_len);
    return cr + 2;
}

static int scan_headers(const char *p, const char *end, struct http1_head *out, size_t cap,
                        struct http1_verdict *v)
{
    out->n_headers = 0;
    while (p < end) {
        if (out->n_headers == cap)
            return refuse(v, 431, "too_many_headers", "the request has too many header fields");
        p = scan_header(p, end, &out->headers[out->n_headers], v);
        if (!p)
            return -1;
        out->n_headers++;
    }
    return 0;
}

/* NUL, bare CR and bare LF anywhere in the head, before any structure is read. */
static int scan_bytes(const char *head, size_t len, struct http1_verdict *v)
{
    if (memchr(head, 0, len))
        return refuse(v, 400, "nul_byte", "the request head contains a NUL byte");
    for (size_t i = 0; i < len; i++) {
        int r = line_byte(head, len, i, 0);
        if (r < 0 || r == 2)
            return refuse(v, 400, head[i] == '\n' ? "bare_lf" : "bare_cr",
                          "line ends in the request head must be CRLF");
    }
    if (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0)
        return refuse(v, 400, "malformed_request", "the request head is incomplete");
    return 0;
}

/* ---- header semantics -------------------------------------------------------------- */

/* uri-host [":" port]: unreserved, pct-encoded, sub-delims, ':' and IP-literal brackets. */
static bool host_ok(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (c == 0 || !strchr("-._~%!$&'()*+,;=:[]", c)))
            return false;
    }
    return true;
}

static int parse_length(const struct http1_header *h, uint64_t *out, struct http1_verdict *v)
{
    uint64_t n = 0;
    if (h->value_len == 0 || h->value_len > 18)
        return refuse(v, 400, "bad_content_length", "Content-Length must be 1 to 18 digits");
    for (size_t i = 0; i < h->value_len; i++) {
        if (h->value[i] < '0' || h->value[i] > '9')
            return refuse(v, 400, "bad_content_length", "Content-Length must be digits only");
        n = n * 10 + (uint64_t)(h->value[i] - '0');
    }
    *out = n;
    return 0;
}

/* The value is a comma list of codings; only exactly "chunked" is accepted. */
static int check_te(const struct http1_header *h, struct http1_verdict *v)
{
    const char *p = h->value;
    const char *end = h->value + h->value_len;
    const char *last = p;
    size_t last_len = 0, count = 0;
    while (p <= end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end;
        const char *a = p;
        trim_value(&a, e, &last_len);
        last = a;
        count++;
        p = e + 1;
    }
    if (!slice_ieq(last, last_len, "chunked"))
        return refuse(v, 400, "transfer_encoding_not_chunked",
                      "Transfer-Encoding must end in chunked; only chunked is supported");
    if (count > 1)
        return refuse(v, 501, "transfer_encoding_unsupported",
                      "only Transfer-Encoding: chunked is supported");
    return 0;
}

struct seen {
    const struct http1_header *host, *cl, *te;
};

/* True when the comma list h->value names `token` (case-insensitive). */
static bool list_has(const struct http1_header *h, const char *token)
{
    const char *p = h->value, *end = h->value + h->value_len;

    while (p < end) {
        const char *c = memchr(p, ',', (size_t)(end - p));
        const char *e = c ? c : end, *a = p;
        size_t n;
        trim_value(&a, e, &n);
        if (slice_ieq(a, n, token))
            return true;
        p = e + 1;
    }
    return false;
}

/* fogate speaks HTTP/1.1 only and never switches protocols: a request asking to (h2c,
 * websocket, anything) is refused whole rather than served with the wish ignored, so no
 * hop after fogate can read it differently (h2c smuggling). */
static bool asks_upgrade(const struct http1_header *h)
{
    if (slice_ieq(h->name, h->name_len, "upgrade") ||
        slice_ieq(h->name, h->name_len, "http2-settings"))
        return true;
    return slice_ieq(h->name, h->name_len, "connection") &&
           (list_has(h, "upgrade") || list_has(h, "http2-settings"));
}

static int note_header(const struct http1_header *h, struct seen *s, struct http1_head *out,
                       struct http1_verdict *v)
{
    const char *n = h->name;
    size_t nl = h->name_len;
    if (asks_upgrade(h))
        return refuse(v, 400, "upgrade_not_supported",
                      "protocol upgrades (Upgrade, HTTP2-Settings) are not supported: "
                      "send plain HTTP/1.1 without them");
    if (slice_ieq(n, nl, "host")) {
        if (s->host)
            return refuse(v, 400, "duplicate_host", "the Host header appears more than once");
        s->host = h;
    } else if (slice_ieq(n, nl, "content-length")) {
        if (s->cl)
            return refuse(v, 400, "duplicate_content_length",
                          "the Content-Length header appears more than once");
        s->cl = h;
    } else if (slice_ieq(n, nl, "transfer-encoding")) {
        if (s->te)
            return refuse(v, 400, "duplicate_transfer_encoding",
                          "the Transfer-Encoding header appears more than once");
        s->te = h;
    } else if (slice_ieq(n, nl, "expect") && out->version_minor == 1) {
        if (!slice_ieq(h->value, h->value_len, "100-continue"))
            return refuse(v, 417, "expectation_failed", "only Expect: 100-continue is supported");
        out->expect_continue = true;
    }
    return 0;
}

static int check_host(const struct seen *s, struct http1_head *out, struct http1_verdict *v)
{
    if (!s->host) {
        if (out->version_minor == 1)
            return refuse(v, 400, "missing_host", "HTTP/1.1 requests must have a Host header");
        return 0;
    }
    if (s->host->value_len == 0)
        return refuse(v, 400, "empty_host", "the Host header is empty");
    if (!host_ok(s->host->value, s->host->value_len))
        return refuse(v, 400, "bad_host", "the Host header is not a valid host[:port]");
    out->host = s->host->value;
    out->host_len = s->host->value_len;
    return 0;
}

static int check_framing(const struct seen *s, struct http1_head *out, struct http1_verdict *v)
{
    out->framing = HTTP1_BODY_NONE;
    if (s->te) {
        if (s->cl)
            return refuse(v, 400, "te_with_content_length",
                          "Transfer-Encoding and Content-Length must not both be sent");
        if (out->version_minor == 0)
            return refuse(v, 400, "te_on_http10", "Transfer-Encoding is not allowed in HTTP/1.0");
        if (check_te(s->te, v) < 0)
            return -1;
        out->framing = HTTP1_BODY_CHUNKED;
        return 0;
    }
    if (s->cl) {
        if (parse_length(s->cl, &out->content_length, v) < 0)
            return -1;
        if (out->content_length > 0)
            out->framing = HTTP1_BODY_LENGTH;
    }
    return 0;
}

static int check_semantics(struct http1_head *out, struct http1_verdict *v)
{
    struct seen s = { 0 };
    for (size_t i = 0; i < out->n_headers; i++)
        if (note_header(&out->headers[i], &s, out, v) < 0)
            return -1;
    if (check_host(&s, out, v) < 0 || check_framing(&s, out, v) < 0)
        return -1;
    return 0;
}

/* ---- the http_parser cross-check --------------------------------------------------- */

struct agree {
    struct http1_head *head;
    size_t field;             /* header fields seen so far */
    bool ok;                  /* every slice matched */
    bool complete;            /* on_headers_complete ran */
    bool keep_alive;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct agree *a = p->data;
    if (at != a->head->target || len != a->head->target_len)
        a->ok = false;
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    struct agree *a = p->data;
    if (a->field >= a->head->n_headers || a->head->headers[a->field].name != at ||
        a->head->headers[a->field].name_len != len)
        a->ok = false;
    a->field++;
    return a->ok ? 0 : -1;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    struct agree *a = p->data;
    if (a->field == 0)
        return -1;
    const struct http1_header *h = &a->head->headers[a->field - 1];
    trim_value(&at, at + len, &len);
    if (len == 0 ? h->value_len != 0 : (h->value != at || h->value_len != len))
        a->ok = false;
    return a->ok ? 0 : -1;
}

static int on_headers_complete(http_parser *p)
{
    struct agree *a = p->data;
    a->complete = true;
    a->keep_alive = http_should_keep_alive(p) != 0;
    return 0;
}

static int on_head_message_complete(http_parser *p)
{
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings head_settings = {
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_head_message_complete,
};

static bool parser_agrees(struct http1_head *out, const char *head, size_t len,
                          struct agree *a)
{
    http_parser_init(&out->parser, HTTP_REQUEST);
    out->parser.data = a;
    size_t n = http_parser_execute(&out->parser, &head_settings, head, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&out->parser);
    if (n != len || (e != HPE_OK && e != HPE_PAUSED) || !a->ok || !a->complete)
        return false;
    if (a->field != out->n_headers || out->parser.http_major != 1 ||
        out->parser.http_minor != out->version_minor)
        return false;
    /* http_parser's method table is the one we accept; its name must match the token */
    out->method = (enum http_method)out->parser.method;
    out->method_name = http_method_str(out->method);
    return true;
}

static int cross_check(struct http1_head *out, const char *head, size_t len,
                       const struct reqline *rl, struct http1_verdict *v)
{
    struct agree a = { .head = out, .ok = true };
    bool agreed = parser_agrees(out, head, len, &a);
    enum http_errno e = HTTP_PARSER_ERRNO(&out->parser);
    out->parser.data = NULL;
    if (!agreed && e == HPE_INVALID_METHOD)
        return refuse(v, 501, "method_not_implemented", "the request method is not supported");
    if (!agreed && e == HPE_HEADER_OVERFLOW)
        return refuse(v, 431, "header_too_large", "the request head is larger than allowed");
    if (!agreed || strlen(out->method_name) != rl->method_len ||
        memcmp(out->method_name, rl->method, rl->method_len) != 0)
        return refuse(v, 400, "malformed_request", "the request head is malformed");
    out->keep_alive = a.keep_alive;
    return 0;
}

static void head_reset(struct http1_head *out, struct http1_header *headers)
{
    memset(out, 0, sizeof *out);
    out->headers = headers;
}

static void finish_head(struct http1_head *out)
{
    const char *q = memchr(out->target, '?', out->target_len);
    out->path_len = q ? (size_t)(q - out->target) : out->target_len;
}

int http1_parse(const char *head, size_t len, const struct http1_limits *lim,
                struct http1_header *headers, size_t cap, struct http1_head *out,
                struct http1_verdict *v)
{
    struct reqline rl;
    size_t max_headers = cap < lim->max_headers ? cap : lim->max_headers;

    head_reset(out, headers);
    if (len > lim->max_header_bytes || len > HPARSER_MAX_HEAD)
        return refuse(v, 431, "header_too_large", "the request head is larger than allowed");
    if (scan_bytes(head, len, v) < 0)
        return -1;
    const char *eol = memchr(head, '\r', len);
    if (scan_request_line(head, eol, &rl, v) < 0)
        return -1;
    out->target = rl.target;
    out->target_len = rl.target_len;
    out->version_minor = rl.minor;
    if (scan_headers(eol + 2, head + len - 2, out, max_headers, v) < 0)
        return -1;
    if (check_semantics(out, v) < 0)
        return -1;
    if (cross_check(out, head, len, &rl, v) < 0)
        return -1;
    finish_head(out);
    return 0;
}

const struct http1_header *http1_header_find(const struct http1_head *h, const char *name)
{
    for (size_t i = 0; i < h->n_headers; i++)
        if (slice_ieq(h->headers[i].name, h->headers[i].name_len, name))
            return &h->headers[i];
    return NULL;
}

const char *http1_reason(int status)
{
    const char *s = http_status_str((enum http_status)status);
    return s && s[0] != '<' ? s : "Unknown";
}
