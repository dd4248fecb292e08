/* uphead: collects one upstream response head line by line (see uphead.h).
 * Fields are stored as "name\0value\0" in one buffer; stored bytes never exceed bytes fed,
 * so the buffer stays within the cap. */
#include "uphead.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct uphead {
    size_t cap;          /* bytes that may be fed in total */
    size_t fed;          /* bytes fed so far */
    char *buf;           /* owned; "name\0value\0" pairs */
    size_t buf_len;
    size_t buf_size;
    size_t *fields;      /* owned; offsets of names in buf */
    size_t n_fields;
    size_t fields_size;
    int status;          /* of the head being read; 0 = no status line yet */
    int minor;
    bool done;
    enum uphead_verdict failed;  /* UPHEAD_MORE unless TOO_BIG or BAD happened */
};

struct uphead *uphead_new(size_t cap)
{
    struct uphead *h = calloc(1, sizeof(*h));

    if (!h)
        return NULL;
    h->cap = cap;
    h->minor = -1;
    h->failed = UPHEAD_MORE;
    return h;
}

void uphead_reset(struct uphead *h)
{
    h->fed = 0;
    h->buf_len = 0;
    h->n_fields = 0;
    h->status = 0;
    h->minor = -1;
    h->done = false;
    h->failed = UPHEAD_MORE;
}

void uphead_free(struct uphead *h)
{
    if (!h)
        return;
    free(h->buf);
    free(h->fields);
    free(h);
}

static bool is_tchar(unsigned char c)
{
    /* RFC 9110 tchar: DIGIT, ALPHA and !#$%&'*+-.^_`|~, one bit per byte value */
    static const uint32_t bits[8] = { 0, 0x03ff6cfa, 0xc7fffffe, 0x57ffffff };

    return bits[c >> 5] >> (c & 31) & 1;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* No control byte but HTAB (obs-text allowed). Eight bytes at a time: a word goes byte by
 * byte only when it may hold a byte under 0x20 or a DEL. */
static bool text_ok(const char *s, size_t len)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t k = 0;

    for (; k + 8 <= len; k += 8) {
        uint64_t w;
        memcpy(&w, s + k, 8);
        uint64_t del = w ^ (0x7f * ones);
        if (((w - 0x20 * ones) & ~w & highs) == 0 && ((del - ones) & ~del & highs) == 0)
            continue;
        for (size_t j = k; j < k + 8; j++) {
            unsigned char c = (unsigned char)s[j];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return false;
        }
    }
    for (; k < len; k++) {
        unsigned char c = (unsigned char)s[k];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* "HTTP/1.x NNN[ reason]": libcurl is told to speak HTTP/1.1 only. */
static bool parse_status(struct uphead *h, const char *s, size_t len)
{
    if (len < 12 || memcmp(s, "HTTP/1.", 7) != 0 || !is_digit(s[7]) || s[8] != ' ')
        return false;
    if (!is_digit(s[9]) || !is_digit(s[10]) || !is_digit(s[11]) || (len > 12 && s[12] != ' '))
        return false;
    if (!text_ok(s + 12, len - 12))
        return false;
    h->minor = s[7] - '0';
    h->status = (s[9] - '0') * 100 + (s[10] - '0') * 10 + (s[11] - '0');
    return h->status >= 100;
}

/* Grows *p to hold `need` elements: `first` at first, then doubling. */
static bool reserve(void **p, size_t *size, size_t need, size_t elem, size_t first)
{
    size_t n = *size ? *size : first;
    void *np;

    if (need <= *size)
        return true;
    while (n < need)
        n *= 2;
    np = realloc(*p, n * elem);
    if (!np)
        return false;
    *p = np;
    *size = n;
    return true;
}

static bool store_field(struct uphead *h, const char *name, size_t nlen, const char *val,
                        size_t vlen)
{
    size_t need = h->buf_len + nlen + vlen + 2;

    /* a typical head's fields fit the first sizes: one allocation each */
    if (!reserve((void **)&h->buf, &h->buf_size, need, 1, 512) ||
        !reserve((void **)&h->fields, &h->fields_size, h->n_fields + 1, sizeof(size_t), 16))
        return false;
    h->fields[h->n_fields++] = h->buf_len;
    memcpy(h->buf + h->buf_len, name, nlen);
    h->buf[h->buf_len + nlen] = '\0';
    memcpy(h->buf + h->buf_len + nlen + 1, val, vlen);
    h->buf[need - 1] = '\0';
    h->buf_len = need;
    return true;
}

/* The length of the name of a well-formed "name: value", or 0. */
static size_t field_name_len(const char *s, size_t len)
{
    size_t n = 0;

    while (n < len && is_tchar((unsigned char)s[n]))
        n++;
    if (n == 0 || n == len || s[n] != ':' || !text_ok(s + n + 1, len - n - 1))
        return 0;
    return n;
}

bool uphead_field_ok(const char *s, size_t len)
{
    return field_name_len(s, len) != 0;
}

/* "name: value" without its line end. */
static bool parse_field(struct uphead *h, const char *s, size_t len)
{
    size_t n = field_name_len(s, len), v, e;

    if (!n)
        return false;
    v = n + 1;
    while (v < len && is_ows(s[v]))
        v++;
    e = len;
    while (e > v && is_ows(s[e - 1]))
        e--;
    return store_field(h, s, n, s + v, e - v);
}

static enum uphead_verdict end_of_head(struct uphead *h)
{
    if (h->status == 0)
        return UPHEAD_BAD;
    if (h->status < 200 && h->status != 101) {
        h->status = 0;
        h->minor = -1;
        h->n_fields = 0;
        h->buf_len = 0;
        return UPHEAD_INTERIM;
    }
    h->done = true;
    return UPHEAD_DONE;
}

static enum uphead_verdict feed_line(struct uphead *h, const char *line, size_t len)
{
    if (len == 0 || line[len - 1] != '\n')
        return UPHEAD_BAD;
    len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return end_of_head(h);
    if (h->status == 0)
        return parse_status(h, line, len) ? UPHEAD_MORE : UPHEAD_BAD;
    return parse_field(h, line, len) ? UPHEAD_MORE : UPHEAD_BAD;
}

enum uphead_verdict uphead_feed(struct uphead *h, const char *line, size_t len)
{
    enum uphead_verdict v;

    if (h->failed != UPHEAD_MORE)
        return h->failed;
    if (h->done)
        return UPHEAD_BAD;
    if (len > h->cap - h->fed) {
        h->failed = UPHEAD_TOO_BIG;
        return h->failed;
    }
    h->fed += len;
    v = feed_line(h, line, len);
    if (v == UPHEAD_BAD)
        h->failed = UPHEAD_BAD;
    return v;
}

int uphead_status(const struct uphead *h)
{
    return h->done ? h->status : 0;
}

int uphead_minor(const struct uphead *h)
{
    return h->done ? h->minor : -1;
}

size_t uphead_count(const struct uphead *h)
{
    return h->done ? h->n_fields : 0;
}

const char *uphead_name(const struct uphead *h, size_t i)
{
    return h->buf + h->fields[i];
}

const char *uphead_value(const struct uphead *h, size_t i)
{
    const char *name = uphead_name(h, i);

    return name + strlen(name) + 1;
}

const char *uphead_find(const struct uphead *h, const char *name)
{
    for (size_t i = 0; i < uphead_count(h); i++)
        if (strcasecmp(uphead_name(h, i), name) == 0)
            return uphead_value(h, i);
    return NULL;
}

bool uphead_body_over(const struct uphead *h, bool is_head, uint64_t cap)
{
    const char *cl = uphead_find(h, "Content-Length");
    int st = uphead_status(h);
    char *end;
    unsigned long long n;

    if (!cl || is_head || st < 200 || st == 204 || st == 304)
        return false;
    n = strtoull(cl, &end, 10);
    return end != cl && n > cap;
}

size_t uphead_bytes(const struct uphead *h)
{
    return h->fed;
}
