/* simjwt: RS256 signing and verification with OpenSSL 3 EVP. See simjwt.h. */
#include "simjwt.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "simguid.h"

#define MAX_TOKEN 16384

struct simjwt_key {
    EVP_PKEY *pkey; /* owned */
    char kid[40];
};

struct simjwt_key *simjwt_key_new(void)
{
    struct simjwt_key *k = calloc(1, sizeof(*k));
    if (!k)
        return NULL;
    k->pkey = EVP_RSA_gen(2048);
    if (!k->pkey) {
        free(k);
        return NULL;
    }
    char g[SIMGUID_LEN + 1];
    simguid_new(g);
    memcpy(k->kid, g, 8);
    k->kid[8] = '\0';
    return k;
}

void simjwt_key_free(struct simjwt_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

const char *simjwt_kid(const struct simjwt_key *k)
{
    return k->kid;
}

size_t simjwt_b64url_encode(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    out[len] = '\0';
    return (size_t)len;
}

long simjwt_b64url_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 1 || n > MAX_TOKEN)
        return -1;
    char *tmp = malloc(n + 4);
    if (!tmp)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '=' || c == '+' || c == '/')
            break;
        tmp[m++] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    size_t pad = (4 - m % 4) % 4;
    for (size_t i = 0; i < pad; i++)
        tmp[m++] = '=';
    int len = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)m);
    free(tmp);
    return len < 0 ? -1 : (long)len - (long)pad;
}

static char *b64_json(const json_t *j)
{
    char *txt = json_dumps(j, JSON_COMPACT);
    if (!txt)
        return NULL;
    size_t n = strlen(txt);
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out)
        simjwt_b64url_encode((unsigned char *)txt, n, out);
    free(txt);
    return out;
}

static int rsa_sign(EVP_PKEY *pkey, const char *msg, size_t n, unsigned char *sig, size_t *slen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
             EVP_DigestSign(md, sig, slen, (const unsigned char *)msg, n) == 1;
    EVP_MD_CTX_free(md);
    return ok ? 0 : -1;
}

char *simjwt_sign(const struct simjwt_key *k, const json_t *claims)
{
    char *result = NULL, *h = NULL, *p = NULL, *input = NULL;
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "typ", "JWT", "alg", "RS256", "kid", k->kid);
    unsigned char sig[512];
    size_t slen = sizeof(sig);
    h = b64_json(hdr);
    p = b64_json(claims);
    if (!h || !p)
        goto out;
    size_t n = strlen(h) + 1 + strlen(p);
    input = malloc(n + 1 + 700);
    if (!input)
        goto out;
    snprintf(input, n + 1, "%s.%s", h, p);
    if (rsa_sign(k->pkey, input, n, sig, &slen) != 0)
        goto out;
    input[n] = '.';
    simjwt_b64url_encode(sig, slen, input + n + 1);
    result = input;
    input = NULL;
out:
    json_decref(hdr);
    free(h);
    free(p);
    free(input);
    return result;
}

static json_t *decode_part(const char *s, size_t n)
{
    unsigned char *buf = malloc(n + 4);
    json_t *j = NULL;
    json_error_t err;
    long len = buf ? simjwt_b64url_decode(s, n, buf) : -1;
    if (len >= 0)
        j = json_loadb((char *)buf, (size_t)len, 0, &err);
    free(buf);
    return j;
}

/* Splits a token into its three parts; returns 0 when there are exactly three. */
static int split(const char *t, size_t len, size_t *d1, size_t *d2)
{
    const char *a = memchr(t, '.', len);
    const char *b = a ? memchr(a + 1, '.', len - (size_t)(a + 1 - t)) : NULL;
    if (!a || !b || memchr(b + 1, '.', len - (size_t)(b + 1 - t)))
        return -1;
    *d1 = (size_t)(a - t);
    *d2 = (size_t)(b - t);
    return 0;
}

int simjwt_peek(const char *token, json_t **header, json_t **payload)
{
    size_t len = strlen(token), d1, d2;
    *header = *payload = NULL;
    if (len > MAX_TOKEN || split(token, len, &d1, &d2) != 0)
        return -1;
    *header = decode_part(token, d1);
    *payload = decode_part(token + d1 + 1, d2 - d1 - 1);
    if (json_is_object(*header) && json_is_object(*payload))
        return 0;
    json_decref(*header);
    json_decref(*payload);
    *header = *payload = NULL;
    return -1;
}

enum simjwt_verdict simjwt_verify(const struct simjwt_key *k, const char *token, size_t len,
                                  json_t **claims)
{
    size_t d1, d2;
    unsigned char sig[600];
    *claims = NULL;
    if (len > MAX_TOKEN || split(token, len, &d1, &d2) != 0 || len - d2 - 1 > 800)
        return SIMJWT_MALFORMED;
    json_t *hdr = decode_part(token, d1);
    int rs256 = hdr && json_is_string(json_object_get(hdr, "alg")) &&
                strcmp(json_string_value(json_object_get(hdr, "alg")), "RS256") == 0;
    json_decref(hdr);
    if (!rs256)
        return SIMJWT_MALFORMED;
    long slen = simjwt_b64url_decode(token + d2 + 1, len - d2 - 1, sig);
    if (slen <= 0)
        return SIMJWT_BAD_SIGNATURE;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_DigestVerify(md, sig, (size_t)slen, (const unsigned char *)token, d2) == 1;
    EVP_MD_CTX_free(md);
    if (!ok)
        return SIMJWT_BAD_SIGNATURE;
    *claims = decode_part(token + d1 + 1, d2 - d1 - 1);
    return json_is_object(*claims) ? SIMJWT_OK : SIMJWT_MALFORMED;
}

int simjwt_rsa_signed(EVP_PKEY *pk, const char *jwt, int pss)
{
    const char *d2 = strrchr(jwt, '.');
    unsigned char sig[1024];
    size_t slen = d2 ? strlen(d2 + 1) : 0;
    if (!d2 || slen > 1300 || !pk || EVP_PKEY_base_id(pk) != EVP_PKEY_RSA)
        return 0;
    long n = simjwt_b64url_decode(d2 + 1, slen, sig);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = n > 0 && md && EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, pk) == 1;
    if (ok && pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) == 1;
    ok = ok && EVP_DigestVerify(md, sig, (size_t)n, (const unsigned char *)jwt,
                                (size_t)(d2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}
