/* guid: canonical GUID spelling. Clients send activity IDs with or without braces, braces
 * URL-encoded or not, in any case (reference §3); all of them map to one 36-char form. */
#include "guid.h"

#include <string.h>
#include <strings.h>

/* Length of the opening brace at the start of s (0 if none). */
static size_t open_brace(const char *s, size_t len)
{
    if (len >= 1 && s[0] == '{')
        return 1;
    if (len >= 3 && strncasecmp(s, "%7B", 3) == 0)
        return 3;
    return 0;
}

/* Length of the closing brace at the end of s (0 if none). */
static size_t close_brace(const char *s, size_t len)
{
    if (len >= 1 && s[len - 1] == '}')
        return 1;
    if (len >= 3 && strncasecmp(s + len - 3, "%7D", 3) == 0)
        return 3;
    return 0;
}

static int hex_lower(char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
        return c;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 'a';
    return -1;
}

int guid_canonical(const char *in, size_t len, char out[GUID_CANON_SIZE])
{
    out[0] = '\0';
    if (!in)
        return -1;
    size_t open = open_brace(in, len);
    size_t close = len > open ? close_brace(in + open, len - open) : 0;
    if ((open == 0) != (close == 0))
        return -1;
    if (len - open - close != GUID_CANON_SIZE - 1)
        return -1;
    const char *p = in + open;
    for (size_t i = 0; i < GUID_CANON_SIZE - 1; i++) {
        bool dash_pos = i == 8 || i == 13 || i == 18 || i == 23;
        int c = dash_pos ? (p[i] == '-' ? '-' : -1) : hex_lower(p[i]);
        if (c < 0) {
            out[0] = '\0';
            return -1;
        }
        out[i] = (char)c;
    }
    out[GUID_CANON_SIZE - 1] = '\0';
    return 0;
}

bool guid_equal(const char *a, size_t alen, const char *b, size_t blen)
{
    char ca[GUID_CANON_SIZE], cb[GUID_CANON_SIZE];

    if (guid_canonical(a, alen, ca) < 0 || guid_canonical(b, blen, cb) < 0)
        return false;
    return memcmp(ca, cb, GUID_CANON_SIZE) == 0;
}
