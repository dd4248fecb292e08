/* simassert: client_assertion verification with OpenSSL 3. See simassert.h. */
#include "simassert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "simjwt.h"

#define SKEW 300

static X509 *load_cert(const char *path)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    return x;
}

/* 1 if the header's thumbprint(s) name this certificate. */
static int thumb_ok(X509 *x, const json_t *hdr)
{
    const char *t1 = json_string_value(json_object_get(hdr, "x5t"));
    const char *t2 = json_string_value(json_object_get(hdr, "x5t#S256"));
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n;
    char enc[EVP_MAX_MD_SIZE * 2];
    if (!t1 && !t2)
        return 0;
    if (t1 && (!X509_digest(x, EVP_sha1(), md, &n) ||
               (simjwt_b64url_encode(md, n, enc), strcmp(enc, t1) != 0)))
        return 0;
    if (t2 && (!X509_digest(x, EVP_sha256(), md, &n) ||
               (simjwt_b64url_encode(md, n, enc), strcmp(enc, t2) != 0)))
        return 0;
    return 1;
}

static int str_is(const json_t *obj, const char *key, const char *want)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v && strcmp(v, want) == 0;
}

static enum simassert_verdict claims_ok(const json_t *c, const char *client_id,
                                        const char *const *auds, double now, char *why,
                                        size_t cap)
{
    int aud = 0;
    for (size_t i = 0; auds[i]; i++)
        aud |= str_is(c, "aud", auds[i]);
    if (!str_is(c, "iss", client_id) || !str_is(c, "sub", client_id) || !aud ||
        !json_is_string(json_object_get(c, "jti"))) {
        snprintf(why, cap, "The client assertion's iss, sub, aud or jti is not valid for "
                           "app '%s'.", client_id);
        return SIMASSERT_INVALID;
    }
    json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf");
    if (!json_is_integer(exp) || (double)json_integer_value(exp) + SKEW < now ||
        (json_is_integer(nbf) && (double)json_integer_value(nbf) - SKEW > now)) {
        snprintf(why, cap, "Client assertion is not within its valid time range.");
        return SIMASSERT_EXPIRED;
    }
    return SIMASSERT_OK;
}

enum simassert_verdict simassert_verify(const char *cert_path, const char *jwt,
                                        const char *client_id, const char *const *auds,
                                        double now, char *why, size_t cap)
{
    json_t *hdr = NULL, *claims = NULL;
    enum simassert_verdict v = SIMASSERT_INVALID;
    X509 *x = load_cert(cert_path);
    if (!x) {
        snprintf(why, cap, "No certificate credential is registered for app '%s'.", client_id);
        v = SIMASSERT_NO_CERT;
        goto out;
    }
    if (simjwt_peek(jwt, &hdr, &claims) != 0) {
        snprintf(why, cap, "JWT token is invalid or malformed.");
        goto out;
    }
    int rs = str_is(hdr, "alg", "RS256"), ps = str_is(hdr, "alg", "PS256");
    if ((!rs && !ps) || !thumb_ok(x, hdr) || !simjwt_rsa_signed(X509_get0_pubkey(x), jwt, ps)) {
        snprintf(why, cap, "Client assertion failed signature validation.");
        v = SIMASSERT_BAD_SIGNATURE;
        goto out;
    }
    v = claims_ok(claims, client_id, auds, now, why, cap);
out:
    json_decref(hdr);
    json_decref(claims);
    X509_free(x);
    return v;
}
