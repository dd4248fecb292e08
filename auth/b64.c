/* b64: strict base64 / base64url codec. Decoding is canonical-only, so a blob has one
 * spelling (a sealed cache entry or a JWT segment cannot be varied without detection). */
#include "b64.h"

#include <stdint.h>
#include <stdlib.h>

static const char std_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

char *b64_encode(const void *in, size_t len, enum b64_alphabet alpha, size_t *out_len)
{
    const unsigned char *p = in;
    const char *chars = alpha == B64_URL ? url_chars : std_chars;
    if (len > B64_MAX_INPUT)
        return NULL;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = chars[v >> 18 & 63];
        out[o++] = chars[v >> 12 & 63];
        out[o++] = chars[v >> 6 & 63];
        out[o++] = chars[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = chars[v >> 18 & 63];
        out[o++] = chars[v >> 12 & 63];
        if (i + 1 < len)
            out[o++] = chars[v >> 6 & 63];
        if (alpha == B64_STD) {
            if (i + 1 >= len)
                out[o++] = '=';
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    if (out_len)
        *out_len = o;
    return out;
}

/* Value of one character in the alphabet, or -1. */
static int sextet(char c, enum b64_alphabet alpha)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (alpha == B64_URL ? '-' : '+'))
        return 62;
    if (c == (alpha == B64_URL ? '_' : '/'))
        return 63;
    return -1;
}

/* Number of data characters once padding is removed, or -1 if the length or the padding
 * is not canonical for the alphabet. */
static long data_chars(const char *in, size_t len, enum b64_alphabet alpha)
{
    if (alpha == B64_URL)
        return len % 4 == 1 ? -1 : (long)len;
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    while (pad < 2 && pad < len && in[len - 1 - pad] == '=')
        pad++;
    return (long)(len - pad);
}

int b64_decode(const char *in, size_t len, enum b64_alphabet alpha, unsigned char **out,
               size_t *out_len)
{
    *out = NULL;
    if (len > B64_MAX_INPUT)
        return -1;
    long n = data_chars(in, len, alpha);
    if (n < 0 || n % 4 == 1)
        return -1;
    unsigned char *buf = malloc((size_t)n / 4 * 3 + 3);
    if (!buf)
        return -1;
    uint32_t acc = 0;
    size_t o = 0;
    int bits = 0;
    for (long i = 0; i < n; i++) {
        int v = sextet(in[i], alpha);
        if (v < 0)
            goto fail;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-zero trailing bits: a second spelling of the same bytes */
        goto fail;
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
fail:
    free(buf);
    return -1;
}
