/* dlrewrite: a minimal JSON scanner over the raw bytes (no re-serialisation) that finds
 * the top-level "DownloadLocation" string and splices a new value in its place. */
#include "dlrewrite.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hex.h"

#define DL_PATH "/api/connector/download/"

struct scan {
    const char *p, *end;
};

static void ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* Skips a string starting at '"'; returns false if unterminated or with raw controls. */
static bool skip_string(struct scan *s)
{
    if (s->p >= s->end || *s->p != '"')
        return false;
    for (s->p++; s->p < s->end; s->p++) {
        unsigned char c = (unsigned char)*s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c < 0x20)
            return false;
        if (c == '\\' && ++s->p >= s->end)
            return false;
    }
    return false;
}

static bool skip_value(struct scan *s, int depth);

static bool skip_container(struct scan *s, int depth, char close, bool keys)
{
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
    }
    for (;;) {
        if (keys) {
            if (!skip_string(s))
                return false;
            ws(s);
            if (s->p >= s->end || *s->p++ != ':')
                return false;
        }
        if (!skip_value(s, depth + 1))
            return false;
        ws(s);
        if (s->p >= s->end)
            return false;
        if (*s->p == close) {
            s->p++;
            return true;
        }
        if (*s->p++ != ',')
            return false;
        ws(s);
    }
}

static bool skip_value(struct scan *s, int depth)
{
    ws(s);
    if (s->p >= s->end || depth > DLREWRITE_MAX_DEPTH)
        return false;
    if (*s->p == '"')
        return skip_string(s);
    if (*s->p == '{')
        return skip_container(s, depth, '}', true);
    if (*s->p == '[')
        return skip_container(s, depth, ']', false);
    const char *start = s->p; /* number or literal: a run of its characters */
    while (s->p < s->end && strchr("+-.0123456789eEtruefalsn", *s->p))
        s->p++;
    return s->p > start;
}

/* Decodes the JSON string at [a, b) (quotes excluded) into buf (cap bytes). Only ASCII
 * \u escapes are decoded; a URL has nothing else. Returns the length or -1. */
static long decode(const char *a, const char *b, char *buf, size_t cap)
{
    size_t n = 0;

    for (const char *p = a; p < b; p++) {
        char c = *p;
        if (c == '\\') {
            if (++p >= b)
                return -1;
            switch (*p) {
            case '/': case '\\': case '"': c = *p; break;
            case 'u': {
                unsigned char u[2]; /* exactly four hex digits (not sscanf: the body is not
                                       NUL-terminated, and %4x takes signs and spaces) */
                if (b - p < 5 || hex_decode(p + 1, 4, u, 2) != 0 || u[0] || !u[1] ||
                    u[1] > 0x7e)
                    return -1;
                unsigned v = u[1];
                c = (char)v;
                p += 4;
                break;
            }
            default: return -1;
            }
        }
        if (n + 1 >= cap)
            return -1;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return (long)n;
}

/* The part of `url` from the D365 download path on ("/api/..." or "/en/api/..."), or
 * NULL when it is not an absolute http(s) URL of a connector download. */
static const char *download_tail(const char *url)
{
    const char *p;

    if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    else
        return NULL;
    p += strcspn(p, "/?#");
    if (*p != '/')
        return NULL;
    if (strncasecmp(p, DL_PATH, sizeof DL_PATH - 1) == 0 ||
        (strncasecmp(p, "/en" DL_PATH, sizeof DL_PATH + 2) == 0))
        return p;
    return NULL;
}

/* Writes the new JSON string value for `tail` into a fresh buffer. */
static char *encode(const char *base, const char *tail, size_t *len)
{
    size_t cap = 2 + 6 * (strlen(base) + strlen(tail)) + 1, n = 0;
    char *v = malloc(cap);

    if (!v)
        return NULL;
    v[n++] = '"';
    for (int part = 0; part < 2; part++) {
        for (const char *p = part ? tail : base; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if (c == '"' || c == '\\')
                n += (size_t)snprintf(v + n, cap - n, "\\%c", c);
            else if (c < 0x20)
                n += (size_t)snprintf(v + n, cap - n, "\\u%04x", c);
            else
                v[n++] = (char)c;
        }
    }
    v[n++] = '"';
    v[n] = '\0';
    *len = n;
    return v;
}

/* Finds the top-level "DownloadLocation" string value: [*vs, *ve) including quotes. */
static enum dlrewrite_result find_location(struct scan *s, const char **vs, const char **ve)
{
    static const char key[] = "DownloadLocation";
    bool found = false;

    ws(s);
    if (s->p >= s->end || *s->p != '{')
        return DLREWRITE_MALFORMED;
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == '}')
        return DLREWRITE_UNCHANGED;
    for (;;) {
        const char *ks = s->p;
        if (!skip_string(s))
            return DLREWRITE_MALFORMED;
        bool is_key = (size_t)(s->p - ks) == sizeof key + 1 &&
                      strncasecmp(ks + 1, key, sizeof key - 1) == 0;
        ws(s);
        if (s->p >= s->end || *s->p++ != ':')
            return DLREWRITE_MALFORMED;
        ws(s);
        const char *start = s->p;
        if (!skip_value(s, 1))
            return DLREWRITE_MALFORMED;
        if (is_key && !found && *start == '"') {
            *vs = start;
            *ve = s->p;
            found = true;
        }
        ws(s);
        if (s->p < s->end && *s->p == '}')
            break;
        if (s->p >= s->end || *s->p++ != ',')
            return DLREWRITE_MALFORMED;
        ws(s);
    }
    return found ? DLREWRITE_REWRITTEN : DLREWRITE_UNCHANGED;
}

enum dlrewrite_result dlrewrite(const char *body, size_t len, const char *public_base,
                                char **out, size_t *out_len)
{
    struct scan s = { body, body + len };
    const char *vs = NULL, *ve = NULL, *tail;
    char url[8192];
    size_t nl;

    *out = NULL;
    *out_len = 0;
    enum dlrewrite_result r = find_location(&s, &vs, &ve);
    if (r != DLREWRITE_REWRITTEN)
        return r;
    if (decode(vs + 1, ve - 1, url, sizeof url) < 0 || !(tail = download_tail(url)))
        return DLREWRITE_UNCHANGED;
    char *v = encode(public_base, tail, &nl);
    size_t before = (size_t)(vs - body), after = len - (size_t)(ve - body);
    char *o = v ? malloc(before + nl + after + 1) : NULL;
    if (!o) {
        free(v);
        return DLREWRITE_NOMEM;
    }
    memcpy(o, body, before);
    memcpy(o + before, v, nl);
    memcpy(o + before + nl, ve, after);
    o[before + nl + after] = '\0';
    free(v);
    *out = o;
    *out_len = before + nl + after;
    return DLREWRITE_REWRITTEN;
}
