/* logline: log line members appended with memcpy (see logline.h). */
#include "logline.h"

#include <stdint.h>
#include <string.h>

void logline_init(struct logline *o)
{
    o->buf[0] = '\0';
    o->n = 0;
    o->ok = true;
}

void logline_raw(struct logline *o, const char *s, size_t n)
{
    if (!o->ok)
        return;
    if (n >= sizeof o->buf - o->n) {
        o->ok = false;
        return;
    }
    memcpy(o->buf + o->n, s, n);
    o->n += n;
    o->buf[o->n] = '\0';
}

/* ,"name": (no comma on an empty line): one bounds check, then plain copies */
static void name(struct logline *o, const char *n)
{
    size_t len = strlen(n), comma = o->n != 0;
    char *p;

    if (!o->ok)
        return;
    if (comma + len + 3 >= sizeof o->buf - o->n) {
        o->ok = false;
        return;
    }
    p = o->buf + o->n;
    *p = ',';
    p += comma;
    *p++ = '"';
    memcpy(p, n, len);
    p[len] = '"';
    p[len + 1] = ':';
    p[len + 2] = '\0';
    o->n += comma + len + 3;
}

/* True when s[0..len) needs no escaping and nothing refused: printable ASCII without quote
 * or backslash. Eight bytes at a time (exact tests for "some byte below 0x20, above 0x7e,
 * equal to 0x22 or to 0x5c"), the tail byte by byte. */
static bool plain(const char *s, size_t len)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w, q, b;
        memcpy(&w, s + i, 8);
        q = w ^ (0x22 * ones);
        b = w ^ (0x5c * ones);
        if (((w - 0x20 * ones) & ~w & highs) || (((w + 0x01 * ones) | w) & highs) ||
            ((q - ones) & ~q & highs) || ((b - ones) & ~b & highs))
            return false;
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            return false;
    }
    return true;
}

/* "s" with quote and backslash escaped; the common string needs none: one copy. */
void logline_str(struct logline *o, const char *n, const char *s, size_t len)
{
    size_t run = 0;

    name(o, n);
    if (!o->ok)
        return;
    if (len + 2 < sizeof o->buf - o->n && plain(s, len)) { /* fits as it is: one copy */
        char *p = o->buf + o->n;
        p[0] = '"';
        memcpy(p + 1, s, len);
        p[len + 1] = '"';
        p[len + 2] = '\0';
        o->n += len + 2;
        return;
    }
    logline_raw(o, "\"", 1);
    for (size_t i = 0; i < len && o->ok; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e) {
            o->ok = false;
        } else if (c == '"' || c == '\\') {
            logline_raw(o, s + run, i - run);
            logline_raw(o, c == '"' ? "\\\"" : "\\\\", 2);
            run = i + 1;
        }
    }
    logline_raw(o, s + run, len - run);
    logline_raw(o, "\"", 1);
}

const char *logline_digits(char out[LOGLINE_DIGITS_SIZE], uint64_t u, bool minus)
{
    size_t at = LOGLINE_DIGITS_SIZE;

    do {
        out[--at] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (minus)
        out[--at] = '-';
    return out + at;
}

void logline_uint(struct logline *o, const char *n, uint64_t v)
{
    char digits[LOGLINE_DIGITS_SIZE];
    const char *d = logline_digits(digits, v, false);

    name(o, n);
    logline_raw(o, d, (size_t)(digits + sizeof digits - d));
}

void logline_int(struct logline *o, const char *n, int64_t v)
{
    char digits[LOGLINE_DIGITS_SIZE];
    const char *d = logline_digits(digits, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v,
                                   v < 0);

    name(o, n);
    logline_raw(o, d, (size_t)(digits + sizeof digits - d));
}
