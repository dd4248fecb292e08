/* simpleroute: pure target parsing for the /v1 routes (see simpleroute.h). */
#include "simpleroute.h"

#include "hex.h"

#include <string.h>

/* Percent-decodes s[0..n) into out (cap bytes). plus_space: '+' means ' '. Returns the
 * length or -1 (bad escape, control byte, does not fit). */
static int decode(const char *s, size_t n, char *out, size_t cap, bool plus_space)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n || hex_digit((unsigned char)s[i + 1]) < 0 ||
                hex_digit((unsigned char)s[i + 2]) < 0)
                return -1;
            c = hex_digit((unsigned char)s[i + 1]) * 16 + hex_digit((unsigned char)s[i + 2]);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c < 0x20 || c == 0x7f || o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return (int)o;
}

/* Splits path[0..len) on '/' into at most max segments (the leading '/' required). */
static size_t split(const char *path, size_t len, const char **seg, size_t *seglen, size_t max)
{
    size_t n = 0, i = 1;

    if (len == 0 || path[0] != '/')
        return 0;
    while (i <= len && n < max) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        seg[n] = path + i;
        seglen[n++] = j - i;
        i = j + 1;
    }
    return i <= len ? max + 1 : n; /* max + 1: too many segments */
}

static bool seg_is(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static enum simpleroute_kind set(struct simpleroute *out, enum simpleroute_kind k,
                                 const char *allow)
{
    out->kind = k;
    out->allow = allow;
    return k;
}

static enum simpleroute_kind job_routes(const char **seg, size_t *sl, size_t n,
                                        struct simpleroute *out)
{
    if (sl[2] == 0 || decode(seg[2], sl[2], out->job, sizeof out->job, false) <= 0)
        return set(out, SIMPLEROUTE_BAD_JOB, "");
    if (n == 4 && seg_is(seg[3], sl[3], "messages"))
        return set(out, SIMPLEROUTE_ENQUEUE, "POST");
    if (n == 4 && seg_is(seg[3], sl[3], "next"))
        return set(out, SIMPLEROUTE_NEXT, "POST");
    if (n == 6 && seg_is(seg[3], sl[3], "messages") && seg_is(seg[5], sl[5], "ack")) {
        if (guid_canonical(seg[4], sl[4], out->message_id) < 0)
            return set(out, SIMPLEROUTE_BAD_ID, "");
        return set(out, SIMPLEROUTE_ACK, "POST");
    }
    return set(out, SIMPLEROUTE_UNKNOWN, "");
}

/* /v1/history/{id}: 32 hex digits, either case (kept lower-case). */
static enum simpleroute_kind record_route(const char *s, size_t n, struct simpleroute *out)
{
    if (n != sizeof out->record_id - 1)
        return set(out, SIMPLEROUTE_BAD_RECORD, "");
    for (size_t i = 0; i < n; i++) {
        int d = hex_digit((unsigned char)s[i]);
        if (d < 0)
            return set(out, SIMPLEROUTE_BAD_RECORD, "");
        out->record_id[i] = "0123456789abcdef"[d];
    }
    out->record_id[n] = '\0';
    return set(out, SIMPLEROUTE_RECORD, "GET, HEAD");
}

enum simpleroute_kind simpleroute_match(const char *path, size_t len, struct simpleroute *out)
{
    const char *seg[7];
    size_t sl[7];
    size_t n = split(path, len, seg, sl, 6);

    memset(out, 0, sizeof *out);
    out->allow = "";
    if (n == 0 || !seg_is(seg[0], sl[0], "v1"))
        return set(out, SIMPLEROUTE_NONE, "");
    if (n >= 3 && n <= 6 && seg_is(seg[1], sl[1], "jobs"))
        return job_routes(seg, sl, n, out);
    if ((n == 3 || n == 4) && seg_is(seg[1], sl[1], "messages")) {
        if (n == 4 && !seg_is(seg[3], sl[3], "errors"))
            return set(out, SIMPLEROUTE_UNKNOWN, "");
        if (guid_canonical(seg[2], sl[2], out->message_id) < 0)
            return set(out, SIMPLEROUTE_BAD_ID, "");
        return set(out, n == 3 ? SIMPLEROUTE_STATUS : SIMPLEROUTE_ERRORS, "GET, HEAD");
    }
    if (n == 2 && seg_is(seg[1], sl[1], "history"))
        return set(out, SIMPLEROUTE_HISTORY, "GET, HEAD");
    if (n == 3 && seg_is(seg[1], sl[1], "history"))
        return record_route(seg[2], sl[2], out);
    return set(out, SIMPLEROUTE_UNKNOWN, "");
}

bool simpleroute_allows(const char *allow, const char *method)
{
    size_t m = strlen(method);

    for (const char *p = allow; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == m && memcmp(p, method, m) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
        while (*p == ' ')
            p++;
    }
    return false;
}

int simpleroute_query(const char *target, size_t len, const char *name, char *out, size_t cap)
{
    const char *q = memchr(target, '?', len);
    const char *end = target + len;
    size_t nl = strlen(name);

    if (cap)
        out[0] = '\0';
    if (!q)
        return -1;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        const char *k_end = eq ? eq : e;
        if ((size_t)(k_end - p) == nl && memcmp(p, name, nl) == 0) {
            const char *v = eq ? eq + 1 : e;
            int r = decode(v, (size_t)(e - v), out, cap, true);
            return r < 0 ? -2 : r;
        }
        p = e + 1;
    }
    return -1;
}

int simpleroute_wait(const char *s, unsigned cap, unsigned *out)
{
    unsigned long v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v <= cap)
            v = v * 10 + (unsigned long)(*s - '0');
    }
    *out = v > cap ? cap : (unsigned)v;
    return 0;
}
