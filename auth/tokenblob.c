/* tokenblob: seal and open shared tokens (see tokenblob.h).
 * Invariant: a blob only opens to a token whose fields are all well-formed. */
#include "tokenblob.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tokenresp.h"

#define HEADER_MAX 96 /* "1 <int64> <int64> <32 hex>\n" */

int tokenblob_name(const char *env, const char *tenant, const char *client_id,
                   const char *resource, char *out, size_t outsz)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char id[1600], hex[17];

    int n = snprintf(id, sizeof(id), "%s\n%s\n%s", tenant, client_id, resource);
    if (n < 0 || (size_t)n >= sizeof(id) ||
        EVP_Digest(id, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 8)
        return -1;
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    n = snprintf(out, outsz, "%s:%s", env, hex);
    return n > 0 && (size_t)n < outsz && n <= TOKENBLOB_NAME_MAX ? 0 : -1;
}

int tokenblob_context(const char *env, const char *tenant, const char *client_id,
                      const char *resource, char *out, size_t outsz)
{
    int n = snprintf(out, outsz, "fogate-token-v1|%s|%s|%s|%s", env, tenant, client_id,
                     resource);
    return n > 0 && (size_t)n < outsz && (size_t)n <= TOKENBLOB_CONTEXT_MAX ? 0 : -1;
}

int tokenblob_serial(char out[TOKENBLOB_SERIAL_LEN + 1])
{
    unsigned char r[TOKENBLOB_SERIAL_LEN / 2];

    if (RAND_bytes(r, sizeof(r)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

static int valid_serial(const char *s, size_t len)
{
    if (len != TOKENBLOB_SERIAL_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

char *tokenblob_seal(const unsigned char key[SEAL_KEY_LEN], const char *context,
                     const struct tokenblob *b, size_t *len)
{
    char header[HEADER_MAX];
    unsigned char *out = NULL;
    size_t out_len = 0, plen;
    char *plain;

    if (!b->token || b->token_len == 0 || b->token_len > TOKENRESP_TOKEN_MAX ||
        !valid_serial(b->serial, strlen(b->serial)))
        return NULL;
    int n = snprintf(header, sizeof(header), "1 %" PRId64 " %" PRId64 " %s\n", b->obtained_at,
                     b->expires_at, b->serial);
    if (n < 0 || (size_t)n >= sizeof(header))
        return NULL;
    plen = (size_t)n + b->token_len;
    if (!(plain = malloc(plen)))
        return NULL;
    memcpy(plain, header, (size_t)n);
    memcpy(plain + n, b->token, b->token_len);
    if (seal_seal(key, context, plain, plen, SEAL_BASE64, &out, &out_len) != SEAL_OK)
        out = NULL;
    OPENSSL_clear_free(plain, plen);
    if (out && len)
        *len = out_len;
    return (char *)out;
}

/* Parses "1 <obtained> <expires> <serial>\n" at the start of p; returns the header
 * length, or -1. */
static int parse_header(const char *p, size_t len, struct tokenblob *b)
{
    const char *nl = memchr(p, '\n', len < HEADER_MAX ? len : HEADER_MAX);
    char line[HEADER_MAX + 1], serial[TOKENBLOB_SERIAL_LEN + 2];
    long long ob, ex;
    int used = 0;

    if (!nl)
        return -1;
    memcpy(line, p, (size_t)(nl - p));
    line[nl - p] = '\0';
    if (sscanf(line, "1 %lld %lld %33s%n", &ob, &ex, serial, &used) != 3 ||
        used != nl - p || !valid_serial(serial, strlen(serial)) || ob <= 0 || ex <= ob)
        return -1;
    b->obtained_at = ob;
    b->expires_at = ex;
    memcpy(b->serial, serial, TOKENBLOB_SERIAL_LEN + 1);
    return (int)(nl - p) + 1;
}

/* 1 if the token is non-empty and of RFC 6750 b64token characters (as tokenresp). */
static int valid_token(const char *t, size_t len)
{
    static const char extra[] = "-._~+/=";
    if (len == 0 || len > TOKENRESP_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && strchr(extra, c))))
            return 0;
    }
    return 1;
}

int tokenblob_open(const unsigned char key[SEAL_KEY_LEN], const char *context,
                   const char *text, size_t len, struct tokenblob *b)
{
    unsigned char *plain = NULL;
    size_t plen = 0;
    int rc = -1;

    memset(b, 0, sizeof(*b));
    if (seal_open(key, context, text, len, SEAL_BASE64, &plain, &plen) != SEAL_OK)
        return -1;
    int h = parse_header((const char *)plain, plen, b);
    if (h < 0 || !valid_token((const char *)plain + h, plen - (size_t)h))
        goto out;
    b->token_len = plen - (size_t)h;
    if (!(b->token = malloc(b->token_len + 1)))
        goto out;
    memcpy(b->token, plain + h, b->token_len);
    b->token[b->token_len] = '\0';
    rc = 0;
out:
    seal_plain_free(plain, plen);
    if (rc != 0)
        tokenblob_cleanup(b);
    return rc;
}

void tokenblob_cleanup(struct tokenblob *b)
{
    if (b->token)
        OPENSSL_clear_free(b->token, b->token_len + 1);
    memset(b, 0, sizeof(*b));
}
