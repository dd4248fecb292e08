/* tokenfed: shape and expiry of a federated client assertion (see tokenfed.h).
 * Invariant: the payload is decoded into a private buffer that is wiped before it is
 * freed; nothing here logs. */
#include "tokenfed.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "b64.h"
#include "tokenform.h"

#define EXP_MAX 99999999999LL /* year 5138: beyond it the claim is nonsense */

static int b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

void tokenfed_trim(const char *jwt, size_t *len)
{
    while (*len > 0 && strchr(" \t\r\n", jwt[*len - 1]))
        (*len)--;
}

/* Splits "h.p.s" into its dots; 0 if every byte is base64url or one of two dots and the
 * header and payload are not empty. */
static int split(const char *jwt, size_t len, size_t *d1, size_t *d2)
{
    int dots = 0;

    for (size_t i = 0; i < len; i++) {
        if (jwt[i] == '.') {
            if (dots == 0)
                *d1 = i;
            else if (dots == 1)
                *d2 = i;
            if (++dots > 2)
                return -1;
        } else if (!b64url_char(jwt[i])) {
            return -1;
        }
    }
    return dots == 2 && *d1 > 0 && *d2 > *d1 + 1 ? 0 : -1;
}

/* The payload's integer exp, 0 if absent, -1 if the payload is not a JSON object. */
static int64_t payload_exp(const char *p, size_t n)
{
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    int64_t exp = -1;

    if (b64_decode(p, n, B64_URL, &raw, &rawlen) != 0)
        return -1;
    json_t *claims = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
    OPENSSL_clear_free(raw, rawlen + 1);
    if (json_is_object(claims)) {
        json_t *v = json_object_get(claims, "exp");
        json_int_t i = json_is_integer(v) ? json_integer_value(v) : 0;
        exp = i > 0 && i <= EXP_MAX ? (int64_t)i : 0;
    }
    json_decref(claims);
    return exp;
}

enum tokenfed_verdict tokenfed_check(const char *jwt, size_t len, int64_t now, int64_t *exp)
{
    size_t d1 = 0, d2 = 0;

    *exp = 0;
    if (!jwt || len == 0 || len > TOKENFORM_ASSERTION_MAX || split(jwt, len, &d1, &d2) != 0)
        return TOKENFED_MALFORMED;
    int64_t e = payload_exp(jwt + d1 + 1, d2 - d1 - 1);
    if (e <= 0)
        return TOKENFED_MALFORMED;
    *exp = e;
    return e <= now ? TOKENFED_EXPIRED : TOKENFED_OK;
}
