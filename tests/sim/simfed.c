/* simfed: federated assertion verification with OpenSSL 3 (see simfed.h). */
#include "simfed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "simconf.h"
#include "simjwt.h"

#define SKEW 300     /* seconds of clock skew allowed, as for certificate assertions */
#define PART_MAX 2048

long simfed_code(enum simfed_verdict v)
{
    static const long codes[] = { 0, 50027, 70021, 700027, 700024 };
    return codes[v];
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

int simfed_is_federated(const char *jwt, const char *client_id)
{
    json_t *hdr = NULL, *claims = NULL;
    int fed = 0;

    if (simjwt_peek(jwt, &hdr, &claims) == 0) {
        const char *iss = str(claims, "iss");
        fed = iss && strcasecmp(iss, client_id) != 0;
    }
    json_decref(hdr);
    json_decref(claims);
    return fed;
}

/* A BIGNUM from a base64url JWK member, or NULL. */
static BIGNUM *jwk_bn(const json_t *jwk, const char *name)
{
    const char *v = str(jwk, name);
    unsigned char buf[PART_MAX];
    size_t n = v ? strlen(v) : 0;
    if (!v || n == 0 || n > (PART_MAX / 3) * 4 - 8)
        return NULL;
    long len = simjwt_b64url_decode(v, n, buf);
    return len > 0 ? BN_bin2bn(buf, (int)len, NULL) : NULL;
}

/* The RSA public key of a JWK, or NULL. */
static EVP_PKEY *jwk_key(const json_t *jwk)
{
    BIGNUM *n = jwk_bn(jwk, "n"), *e = jwk_bn(jwk, "e");
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;

    if (!n || !e || !bld || !str(jwk, "kty") || strcmp(str(jwk, "kty"), "RSA") != 0 ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pk;
}

/* 1 if a key of `jwks` (the one named by kid, or any when the header has none) verifies. */
static int signed_by(const json_t *jwks, const json_t *hdr, const char *jwt)
{
    const char *kid = str(hdr, "kid");
    const json_t *keys = json_object_get(jwks, "keys");
    size_t i;
    json_t *k;

    if (!str(hdr, "alg") || strcmp(str(hdr, "alg"), "RS256") != 0)
        return 0;
    json_array_foreach(keys, i, k) {
        if (kid && (!str(k, "kid") || strcmp(str(k, "kid"), kid) != 0))
            continue;
        EVP_PKEY *pk = jwk_key(k);
        int ok = simjwt_rsa_signed(pk, jwt, 0);
        EVP_PKEY_free(pk);
        if (ok)
            return 1;
    }
    return 0;
}

static int aud_has(const json_t *aud, const char *want)
{
    size_t i;
    json_t *v;

    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    json_array_foreach(aud, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
            return 1;
    return 0;
}

static const struct simconf_fed *match(const struct simconf_app *app, const json_t *c)
{
    for (size_t i = 0; i < app->nfed; i++) {
        const struct simconf_fed *f = &app->fed[i];
        if (strcmp(f->issuer, str(c, "iss")) == 0 && strcmp(f->subject, str(c, "sub")) == 0 &&
            aud_has(json_object_get(c, "aud"), f->audience))
            return f;
    }
    return NULL;
}

static enum simfed_verdict check(const struct simconf_app *app, const char *jwt,
                                 const json_t *hdr, const json_t *c, double now, char *sub,
                                 size_t subcap, char *why, size_t cap)
{
    const json_t *aud = json_object_get(c, "aud");
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");

    if (!str(c, "iss") || !str(c, "sub") || !aud || !json_is_integer(exp)) {
        snprintf(why, cap, "JWT token is invalid or malformed.");
        return SIMFED_MALFORMED;
    }
    const struct simconf_fed *f = match(app, c);
    if (!f) {
        snprintf(why, cap, "No matching federated identity record found for presented "
                 "assertion. Assertion Issuer: '%.200s'. Assertion Subject: '%.200s'. "
                 "Assertion Audience: '%.200s'.", str(c, "iss"), str(c, "sub"),
                 json_is_string(aud) ? json_string_value(aud) : "(list)");
        return SIMFED_NO_MATCH;
    }
    if (!signed_by(f->jwks, hdr, jwt)) {
        snprintf(why, cap, "Client assertion failed signature validation.");
        return SIMFED_BAD_SIGNATURE;
    }
    if ((double)json_integer_value(exp) + SKEW < now ||
        (json_is_integer(nbf) && (double)json_integer_value(nbf) - SKEW > now)) {
        snprintf(why, cap, "Client assertion is not within its valid time range. Current "
                 "time: %.0f, expiry time of assertion %lld.", now,
                 (long long)json_integer_value(exp));
        return SIMFED_EXPIRED;
    }
    snprintf(sub, subcap, "%s", f->subject);
    return SIMFED_OK;
}

enum simfed_verdict simfed_verify(const struct simconf_app *app, const char *jwt, double now,
                                  char *sub, size_t subcap, char *why, size_t cap)
{
    json_t *hdr = NULL, *claims = NULL;
    enum simfed_verdict v = SIMFED_MALFORMED;

    if (simjwt_peek(jwt, &hdr, &claims) != 0)
        snprintf(why, cap, "JWT token is invalid or malformed.");
    else
        v = check(app, jwt, hdr, claims, now, sub, subcap, why, cap);
    json_decref(hdr);
    json_decref(claims);
    return v;
}
