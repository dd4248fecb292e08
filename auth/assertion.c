/* assertion: Entra ID client assertions signed with a certificate's private key.
 * Invariant: a credential is only built from a key that matches its certificate, so the
 * thumbprints in the header always name the key that signed. */
#include "assertion.h"

#include "b64.h"
#include "secretfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define ARG_MAX 1024

struct assertion_cred {
    EVP_PKEY *key;     /* owned */
    char x5t[32];      /* base64url SHA-1 of the DER certificate (27 chars) */
    char x5t_s256[48]; /* base64url SHA-256 of the DER certificate (43 chars) */
    int64_t not_after;
};

static void set_err(char *err, size_t errlen, const char *why)
{
    if (errlen)
        snprintf(err, errlen, "%s", why);
}

/* Refuses passphrases: an encrypted key would otherwise make OpenSSL prompt on a tty. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static EVP_PKEY *read_key(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    return key;
}

static X509 *read_cert(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    return cert;
}

/* base64url of the certificate's digest under md, into out (outsz bytes). */
static int thumbprint(X509 *cert, const EVP_MD *md, char *out, size_t outsz)
{
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    size_t elen = 0;
    if (X509_digest(cert, md, dig, &n) != 1)
        return -1;
    char *enc = b64_encode(dig, n, B64_URL, &elen);
    int rc = enc && elen < outsz ? 0 : -1;
    if (rc == 0)
        memcpy(out, enc, elen + 1);
    free(enc);
    return rc;
}

static int64_t cert_not_after(X509 *cert)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1)
        return 0;
    return (int64_t)timegm(&tm);
}

/* Checks the key is a large enough RSA key and belongs to cert; returns a reason or NULL. */
static const char *check_pair(EVP_PKEY *key, X509 *cert)
{
    if (!EVP_PKEY_is_a(key, "RSA"))
        return "private key is not an RSA key (RS256/PS256 need RSA)";
    if (EVP_PKEY_get_bits(key) < ASSERTION_RSA_MIN_BITS)
        return "RSA key shorter than 2048 bits";
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), key) != 1)
        return "private key does not match the certificate";
    return NULL;
}

struct assertion_cred *assertion_cred_from_pem(const char *key_pem, size_t key_len,
                                               const char *cert_pem, size_t cert_len,
                                               char *err, size_t errlen)
{
    struct assertion_cred *cred = NULL;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    const char *why = "PEM text too large";
    if (!key_pem || !cert_pem || key_len > ASSERTION_PEM_MAX || cert_len > ASSERTION_PEM_MAX)
        goto out;
    why = "cannot read the private key (PEM, unencrypted)";
    if (!(key = read_key(key_pem, key_len)))
        goto out;
    why = "cannot read the certificate (PEM)";
    if (!(cert = read_cert(cert_pem, cert_len)))
        goto out;
    if ((why = check_pair(key, cert)))
        goto out;
    why = "out of memory";
    if (!(cred = calloc(1, sizeof(*cred))))
        goto out;
    why = "cannot compute the certificate thumbprints";
    if (thumbprint(cert, EVP_sha1(), cred->x5t, sizeof(cred->x5t)) != 0 ||
        thumbprint(cert, EVP_sha256(), cred->x5t_s256, sizeof(cred->x5t_s256)) != 0) {
        free(cred);
        cred = NULL;
        goto out;
    }
    cred->not_after = cert_not_after(cert);
    cred->key = key;
    key = NULL;
out:
    if (!cred) {
        set_err(err, errlen, why);
        ERR_clear_error(); /* leave no stale errors for later TLS calls */
    }
    EVP_PKEY_free(key);
    X509_free(cert);
    return cred;
}

struct assertion_cred *assertion_cred_load(const char *key_path, const char *cert_path,
                                           char *err, size_t errlen)
{
    char *key = NULL, *cert = NULL;
    size_t klen = 0, clen = 0;
    struct assertion_cred *cred = NULL;
    char why[256];
    if (secretfile_read(key_path, ASSERTION_PEM_MAX, SECRETFILE_PRIVATE, &key, &klen, err,
                        errlen) != 0 ||
        secretfile_read(cert_path, ASSERTION_PEM_MAX, 0, &cert, &clen, err, errlen) != 0)
        goto out;
    cred = assertion_cred_from_pem(key, klen, cert, clen, why, sizeof(why));
    if (!cred && errlen)
        snprintf(err, errlen, "%s, %s: %s", key_path, cert_path, why);
out:
    secretfile_free(key, klen);
    secretfile_free(cert, clen);
    return cred;
}

void assertion_cred_free(struct assertion_cred *cred)
{
    if (!cred)
        return;
    EVP_PKEY_free(cred->key);
    free(cred);
}

int64_t assertion_cred_not_after(const struct assertion_cred *cred)
{
    return cred->not_after;
}

/* A random (version 4) GUID, lower-case, into out[37]. */
static int random_guid(char out[37])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return -1;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
    return 0;
}

/* base64url of the compact serialisation of obj (stolen). */
static char *encode_json(json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    char *enc = text ? b64_encode(text, strlen(text), B64_URL, NULL) : NULL;
    free(text);
    json_decref(obj);
    return enc;
}

/* "header.claims", base64url, owned by the caller. */
static char *signing_input(const struct assertion_cred *cred, enum assertion_alg alg,
                           const char *aud, const char *client_id, int64_t now)
{
    char jti[37];
    if (random_guid(jti) != 0)
        return NULL;
    char *h = encode_json(json_pack("{s:s,s:s,s:s,s:s}", "alg",
                                    alg == ASSERTION_PS256 ? "PS256" : "RS256", "typ", "JWT",
                                    "x5t", cred->x5t, "x5t#S256", cred->x5t_s256));
    char *c = encode_json(json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "aud", aud, "iss",
                                    client_id, "sub", client_id, "jti", jti, "nbf",
                                    (json_int_t)now, "iat", (json_int_t)now, "exp",
                                    (json_int_t)(now + ASSERTION_LIFETIME)));
    char *out = NULL;
    size_t n = h && c ? strlen(h) + strlen(c) + 2 : 0;
    if (n && (out = malloc(n)))
        snprintf(out, n, "%s.%s", h, c);
    free(h);
    free(c);
    return out;
}

/* Signs msg; returns the signature (caller frees) and its length, or NULL. */
static unsigned char *sign(EVP_PKEY *key, enum assertion_alg alg, const char *msg,
                           size_t *siglen)
{
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *sig = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key) != 1)
        goto fail;
    if (alg == ASSERTION_PS256 &&
        (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1))
        goto fail;
    if (EVP_DigestSign(md, NULL, siglen, (const unsigned char *)msg, strlen(msg)) != 1 ||
        !(sig = malloc(*siglen)) ||
        EVP_DigestSign(md, sig, siglen, (const unsigned char *)msg, strlen(msg)) != 1)
        goto fail;
    EVP_MD_CTX_free(md);
    return sig;
fail:
    ERR_clear_error();
    free(sig);
    EVP_MD_CTX_free(md);
    return NULL;
}

static int arg_ok(const char *s)
{
    size_t n = s ? strnlen(s, ARG_MAX + 1) : 0;
    return n > 0 && n <= ARG_MAX;
}

char *assertion_build(const struct assertion_cred *cred, enum assertion_alg alg,
                      const char *token_url, const char *client_id, int64_t now)
{
    char *input = NULL, *sig64 = NULL, *jwt = NULL;
    unsigned char *sig = NULL;
    size_t siglen = 0;
    if (!cred || (alg != ASSERTION_RS256 && alg != ASSERTION_PS256) || !arg_ok(token_url) ||
        !arg_ok(client_id) || now < 0 || now > INT64_MAX / 2)
        return NULL;
    if (!(input = signing_input(cred, alg, token_url, client_id, now)))
        goto out;
    if (!(sig = sign(cred->key, alg, input, &siglen)))
        goto out;
    if (!(sig64 = b64_encode(sig, siglen, B64_URL, NULL)))
        goto out;
    size_t n = strlen(input) + strlen(sig64) + 2;
    if ((jwt = malloc(n)))
        snprintf(jwt, n, "%s.%s", input, sig64);
out:
    free(input);
    free(sig);
    free(sig64);
    return jwt;
}

void assertion_free(char *jwt)
{
    if (jwt)
        OPENSSL_clear_free(jwt, strlen(jwt) + 1);
}
