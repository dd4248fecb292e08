/* simurl: form and query decoding. See simurl.h. */
#include "simurl.h"

#include "hex.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

long simurl_decode(const char *in, size_t n, char *out, size_t cap, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        int hi = i + 2 < n ? hex_digit((unsigned char)in[i + 1]) : -1;
        int lo = i + 2 < n ? hex_digit((unsigned char)in[i + 2]) : -1;
        if (ch == '%' && hi >= 0 && lo >= 0) {
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_space) {
            ch = ' ';
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}

int simurl_param(const char *qs, const char *name, int nocase, char *out, size_t cap)
{
    const char *p = qs;
    char key[256];
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', seg);
        size_t klen = eq ? (size_t)(eq - p) : seg;
        if (simurl_decode(p, klen, key, sizeof(key), 1) >= 0 &&
            (nocase ? strcasecmp(key, name) : strcmp(key, name)) == 0) {
            const char *v = eq ? eq + 1 : p + seg;
            size_t vlen = eq ? seg - klen - 1 : 0;
            return simurl_decode(v, vlen, out, cap, 1) < 0 ? -1 : 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

int simurl_encode(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in; in++) {
        unsigned char c = (unsigned char)*in;
        int plain = isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
        if (o + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain)
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", c);
    }
    if (cap == 0)
        return -1;
    out[o] = '\0';
    return 0;
}
