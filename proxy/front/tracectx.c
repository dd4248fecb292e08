/* tracectx: traceparent parsing and formatting, request id validation. */
#include "tracectx.h"

#include <stdio.h>
#include <string.h>

static bool hex_lower(const char *s, size_t n)
{
    bool nonzero = false;

    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        nonzero |= c != '0';
    }
    return nonzero || n == 2; /* flags may be 00 */
}

int tracectx_parse(const char *v, size_t len, struct tracectx *t)
{
    /* 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 */
    if (len < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return -1;
    if (!hex_lower(v, 2) || (v[0] == 'f' && v[1] == 'f'))
        return -1;
    if (memcmp(v, "00", 2) == 0 ? len != 55 : (len > 55 && v[55] != '-'))
        return -1;
    if (!hex_lower(v + 3, 32) || !hex_lower(v + 36, 16) || !hex_lower(v + 53, 2))
        return -1;
    memcpy(t->trace_id, v + 3, 32);
    t->trace_id[32] = '\0';
    unsigned flags = 0;
    sscanf(v + 53, "%2x", &flags);
    t->flags = (uint8_t)(flags & 0x01); /* only "sampled" is defined */
    return 0;
}

void tracectx_hex(uint64_t r1, uint64_t r2, char *out, size_t digits)
{
    static const char hex[] = "0123456789abcdef";

    if (r1 == 0 && r2 == 0)
        r1 = 1;
    for (size_t i = 0; i < digits; i++) {
        uint64_t *r = i < 16 ? &r1 : &r2;
        out[i] = hex[*r & 15];
        *r >>= 4;
    }
    out[digits] = '\0';
    if (digits <= 16 && strspn(out, "0") == digits)
        out[digits - 1] = '1';
}

/* With memcpy, not snprintf: it is written for every D365 attempt. */
char *tracectx_format(const struct tracectx *t, const char *span, char out[56])
{
    static const char hex[] = "0123456789abcdef";
    size_t tl = strnlen(t->trace_id, 32), sl = strnlen(span, 16), n = 0;

    memcpy(out, "00-", 3);
    n = 3;
    memcpy(out + n, t->trace_id, tl);
    n += tl;
    out[n++] = '-';
    memcpy(out + n, span, sl);
    n += sl;
    out[n++] = '-';
    out[n++] = hex[t->flags >> 4];
    out[n++] = hex[t->flags & 15];
    out[n] = '\0';
    return out;
}

bool tracectx_request_id_ok(const char *v, size_t len)
{
    if (len == 0 || len > TRACECTX_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-'))
            return false;
    }
    return true;
}
