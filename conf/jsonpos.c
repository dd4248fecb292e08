/* jsonpos: a minimal JSON scanner that walks down a path and counts newlines. It trusts
 * nothing: on malformed text it stops at the end of the buffer and reports what it has. */
#include "jsonpos.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *p;
    const char *end;
    int line;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n')) {
        if (*s->p == '\n')
            s->line++;
        s->p++;
    }
}

/* At an opening quote: moves past the closing quote; returns the bytes in between. */
static size_t skip_string(struct scan *s, const char **start)
{
    s->p++;
    *start = s->p;
    while (s->p < s->end && *s->p != '"') {
        if (*s->p == '\\' && s->p + 1 < s->end)
            s->p++;
        s->p++;
    }
    size_t n = (size_t)(s->p - *start);
    if (s->p < s->end)
        s->p++;
    return n;
}

/* Skips one whole value (scalar, or container with everything inside). */
static void skip_value(struct scan *s)
{
    long depth = 0;
    const char *ignored;

    do {
        skip_ws(s);
        if (s->p >= s->end)
            return;
        char c = *s->p;
        if (c == '"') {
            skip_string(s, &ignored);
        } else if (c == '{' || c == '[') {
            depth++;
            s->p++;
        } else if (c == '}' || c == ']') {
            depth--;
            s->p++;
        } else if (c == ',' || c == ':') {
            s->p++;
        } else {
            s->p++; /* at least one byte, so a stray NUL cannot stall the loop */
            while (s->p < s->end && !strchr(",:{}[]\" \t\r\n", *s->p))
                s->p++;
        }
    } while (depth > 0);
}

/* Skips whitespace and one expected separator; false if it is not there. */
static bool expect(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p >= s->end || *s->p != c)
        return false;
    s->p++;
    return true;
}

static int find(struct scan *s, const char *path, int best);

static int find_index(struct scan *s, const char *path, int best)
{
    char *rest;
    unsigned long idx = strtoul(path + 1, &rest, 10);

    if (*rest != ']' || !expect(s, '['))
        return best;
    for (unsigned long i = 0; i < idx; i++) {
        skip_value(s);
        if (!expect(s, ','))
            return best;
    }
    skip_ws(s);
    if (s->p >= s->end || *s->p == ']')
        return best;
    return find(s, rest + 1, s->line);
}

static int find_key(struct scan *s, const char *path, int best)
{
    size_t want = strcspn(path, ".[");
    const char *rest = path + want + (path[want] == '.');
    const char *key;

    if (!expect(s, '{'))
        return best;
    for (;;) {
        skip_ws(s);
        if (s->p >= s->end || *s->p != '"')
            return best;
        int line = s->line;
        size_t n = skip_string(s, &key);
        if (!expect(s, ':'))
            return best;
        if (n == want && memcmp(key, path, n) == 0)
            return find(s, rest, line);
        skip_value(s);
        if (!expect(s, ','))
            return best;
    }
}

static int find(struct scan *s, const char *path, int best)
{
    if (*path == '\0')
        return best;
    return *path == '[' ? find_index(s, path, best) : find_key(s, path, best);
}

int jsonpos_line(const char *text, size_t len, const char *path)
{
    struct scan s = { .p = text, .end = text + len, .line = 1 };

    if (!text || !path || !*path)
        return 0;
    return find(&s, path, 0);
}
