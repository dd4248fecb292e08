/* Unit tests for client assertion JWTs: key/certificate loading and checks, the header
 * and claims, and RS256/PS256 signatures verified with OpenSSL against the certificate.
 * The test key pairs and certificates are generated here at run time (no fixtures). */
#include "check.h"
#include "assertion.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#define NOW 1700000000LL
#define NOT_AFTER 1900000000LL
#define AUD "https://login.microsoftonline.com/tenant-id/oauth2/v2.0/token"
#define CLIENT "11111111-2222-3333-4444-555555555555"

static char dir[] = "/tmp/fogate-test-assertion-XXXXXX";

static X509 *self_signed(EVP_PKEY *key)
{
    X509 *c = X509_new();
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), 42);
    ASN1_TIME_set(X509_getm_notBefore(c), NOW - 86400);
    ASN1_TIME_set(X509_getm_notAfter(c), NOT_AFTER);
    X509_set_pubkey(c, key);
    X509_NAME *n = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"fogate test",
                               -1, -1, 0);
    X509_set_issuer_name(c, n);
    X509_sign(c, key, EVP_sha256());
    return c;
}

/* PEM text of a key (optionally encrypted) or certificate; owned by the caller. */
static char *pem_of(EVP_PKEY *key, X509 *cert, int encrypt, size_t *len)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (key)
        PEM_write_bio_PrivateKey(b, key, encrypt ? EVP_aes_256_cbc() : NULL,
                                 (unsigned char *)"pass", encrypt ? 4 : 0, NULL, NULL);
    else
        PEM_write_bio_X509(b, cert);
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1);
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    *len = (size_t)n;
    BIO_free(b);
    return out;
}

static const char *write_file(const char *name, const char *data, size_t len, mode_t mode)
{
    static char paths[8][256];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    chmod(p, mode);
    return p;
}

/* base64url without padding, computed with OpenSSL's encoder (independent of b64.c). */
static void b64url(const unsigned char *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    while (len > 0 && out[len - 1] == '=')
        out[--len] = '\0';
}

/* Decodes a base64url segment with OpenSSL into a fresh buffer; sets *n. */
static unsigned char *unb64url(const char *s, size_t len, size_t *n)
{
    char *std = malloc(len + 4);
    size_t i;
    for (i = 0; i < len; i++)
        std[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (i % 4)
        std[i++] = '=';
    unsigned char *out = malloc(i / 4 * 3 + 1);
    int got = EVP_DecodeBlock(out, (unsigned char *)std, (int)i);
    size_t pad = i - len;
    *n = got < 0 ? 0 : (size_t)got - pad;
    free(std);
    return out;
}

static json_t *segment_json(const char *s, size_t len)
{
    size_t n = 0;
    unsigned char *raw = unb64url(s, len, &n);
    json_t *j = json_loadb((char *)raw, n, 0, NULL);
    free(raw);
    return j;
}

static int is_guid_v4(const char *s)
{
    if (!s || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return 0;
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

/* Verifies the JWT's signature over "header.claims" with the certificate's key. */
static int verify(const char *jwt, X509 *cert, int pss)
{
    const char *dot2 = strrchr(jwt, '.');
    size_t siglen = 0;
    unsigned char *sig = unb64url(dot2 + 1, strlen(dot2 + 1), &siglen);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    int ok = EVP_DigestVerifyInit(md, &pctx, EVP_sha256(), NULL, X509_get0_pubkey(cert)) == 1;
    if (ok && pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32) == 1; /* exactly the digest length */
    ok = ok && EVP_DigestVerify(md, sig, siglen, (const unsigned char *)jwt,
                                (size_t)(dot2 - jwt)) == 1;
    EVP_MD_CTX_free(md);
    free(sig);
    return ok;
}

static void check_jwt(const char *jwt, X509 *cert, enum assertion_alg alg, char *jti_out)
{
    CHECK(jwt != NULL);
    if (!jwt)
        return;
    /* Three base64url segments, no padding. */
    CHECK(strspn(jwt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") ==
          strlen(jwt));
    const char *d1 = strchr(jwt, '.'), *d2 = strrchr(jwt, '.');
    CHECK(d1 && d2 && d1 != d2 && strchr(d1 + 1, '.') == d2);
    if (!d1 || d1 == d2)
        return;
    json_t *h = segment_json(jwt, (size_t)(d1 - jwt));
    json_t *c = segment_json(d1 + 1, (size_t)(d2 - d1 - 1));
    CHECK(h && c && json_object_size(h) == 4 && json_object_size(c) == 7);

    unsigned char dig[32];
    unsigned int n = 0;
    char want[64];
    CHECK_STR(json_string_value(json_object_get(h, "alg")),
              alg == ASSERTION_PS256 ? "PS256" : "RS256");
    CHECK_STR(json_string_value(json_object_get(h, "typ")), "JWT");
    X509_digest(cert, EVP_sha1(), dig, &n);
    b64url(dig, n, want);
    CHECK(strlen(want) == 27);
    CHECK_STR(json_string_value(json_object_get(h, "x5t")), want);
    X509_digest(cert, EVP_sha256(), dig, &n);
    b64url(dig, n, want);
    CHECK(strlen(want) == 43);
    CHECK_STR(json_string_value(json_object_get(h, "x5t#S256")), want);

    CHECK_STR(json_string_value(json_object_get(c, "aud")), AUD);
    CHECK_STR(json_string_value(json_object_get(c, "iss")), CLIENT);
    CHECK_STR(json_string_value(json_object_get(c, "sub")), CLIENT);
    const char *jti = json_string_value(json_object_get(c, "jti"));
    CHECK(is_guid_v4(jti));
    if (jti && jti_out)
        snprintf(jti_out, 40, "%s", jti);
    CHECK(json_integer_value(json_object_get(c, "nbf")) == NOW);
    CHECK(json_integer_value(json_object_get(c, "iat")) == NOW);
    CHECK(json_integer_value(json_object_get(c, "exp")) == NOW + 600);
    json_decref(h);
    json_decref(c);

    /* The signature verifies with the certificate's key, with the right scheme only. */
    CHECK(verify(jwt, cert, alg == ASSERTION_PS256));
    CHECK(!verify(jwt, cert, alg != ASSERTION_PS256));
    /* and not over altered claims. */
    char *t = strdup(jwt);
    t[d1 - jwt + 5] = t[d1 - jwt + 5] == 'A' ? 'B' : 'A';
    CHECK(!verify(t, cert, alg == ASSERTION_PS256));
    free(t);
}

static void test_build(EVP_PKEY *key, X509 *cert)
{
    size_t klen = 0, clen = 0;
    char *kpem = pem_of(key, NULL, 0, &klen), *cpem = pem_of(NULL, cert, 0, &clen);
    char err[256] = "";
    const char *kp = write_file("key.pem", kpem, klen, 0600);
    const char *cp = write_file("cert.pem", cpem, clen, 0644);
    struct assertion_cred *cred = assertion_cred_load(kp, cp, err, sizeof(err));
    CHECK(cred != NULL);
    if (!cred) {
        fprintf(stderr, "load: %s\n", err);
        goto out;
    }
    CHECK(assertion_cred_not_after(cred) == NOT_AFTER);
    char jti1[40] = "", jti2[40] = "";
    char *rs = assertion_build(cred, ASSERTION_RS256, AUD, CLIENT, NOW);
    check_jwt(rs, cert, ASSERTION_RS256, jti1);
    char *ps = assertion_build(cred, ASSERTION_PS256, AUD, CLIENT, NOW);
    check_jwt(ps, cert, ASSERTION_PS256, jti2);
    CHECK(strcmp(jti1, jti2) != 0); /* a fresh jti each time */
    assertion_free(rs);
    assertion_free(ps);
    assertion_free(NULL);

    /* Bad arguments. */
    char longaud[1100];
    memset(longaud, 'a', sizeof(longaud) - 1);
    longaud[sizeof(longaud) - 1] = '\0';
    CHECK(assertion_build(NULL, ASSERTION_RS256, AUD, CLIENT, NOW) == NULL);
    CHECK(assertion_build(cred, (enum assertion_alg)5, AUD, CLIENT, NOW) == NULL);
    CHECK(assertion_build(cred, ASSERTION_RS256, "", CLIENT, NOW) == NULL);
    CHECK(assertion_build(cred, ASSERTION_RS256, AUD, NULL, NOW) == NULL);
    CHECK(assertion_build(cred, ASSERTION_RS256, longaud, CLIENT, NOW) == NULL);
    CHECK(assertion_build(cred, ASSERTION_RS256, AUD, CLIENT, -1) == NULL);
    CHECK(assertion_build(cred, ASSERTION_RS256, AUD, "bad\xff", NOW) == NULL); /* not UTF-8 */
    assertion_cred_free(cred);

    /* The same from memory, and with the arguments swapped. */
    cred = assertion_cred_from_pem(kpem, klen, cpem, clen, err, sizeof(err));
    CHECK(cred != NULL);
    assertion_cred_free(cred);
    CHECK(assertion_cred_from_pem(cpem, clen, kpem, klen, err, sizeof(err)) == NULL);
    /* A world-readable key file is refused; a readable certificate is fine (above). */
    kp = write_file("key-open.pem", kpem, klen, 0644);
    CHECK(assertion_cred_load(kp, cp, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "key-open.pem") != NULL && strstr(err, "BEGIN") == NULL);
    CHECK(assertion_cred_load(cp, cp, err, sizeof(err)) == NULL); /* cert as key: refused */
out:
    assertion_cred_free(NULL);
    free(kpem);
    free(cpem);
}

/* Expects assertion_cred_from_pem(key, cert) to fail with a reason containing `why`. */
static void check_refused(EVP_PKEY *key, int encrypt, X509 *cert, const char *why)
{
    size_t klen = 0, clen = 0;
    char *kpem = pem_of(key, NULL, encrypt, &klen), *cpem = pem_of(NULL, cert, 0, &clen);
    char err[256] = "";
    struct assertion_cred *cred = assertion_cred_from_pem(kpem, klen, cpem, clen, err,
                                                          sizeof(err));
    CHECK(cred == NULL);
    if (!strstr(err, why))
        fprintf(stderr, "reason \"%s\", wanted \"%s\"\n", err, why);
    CHECK(strstr(err, why) != NULL);
    assertion_cred_free(cred);
    free(kpem);
    free(cpem);
}

static void test_refusals(EVP_PKEY *key, X509 *cert)
{
    EVP_PKEY *other = EVP_RSA_gen(2048), *small = EVP_RSA_gen(1024);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    X509 *small_cert = self_signed(small), *ec_cert = self_signed(ec);
    check_refused(other, 0, cert, "does not match");
    check_refused(key, 1, cert, "unencrypted"); /* no passphrase prompt */
    check_refused(small, 0, small_cert, "2048");
    check_refused(ec, 0, ec_cert, "not an RSA key");
    char err[128] = "";
    CHECK(assertion_cred_from_pem("junk", 4, "junk", 4, err, sizeof(err)) == NULL);
    CHECK(assertion_cred_from_pem(NULL, 0, NULL, 0, err, sizeof(err)) == NULL);
    size_t klen = 0;
    char *kpem = pem_of(key, NULL, 0, &klen);
    CHECK(assertion_cred_from_pem(kpem, klen, "junk", 4, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "certificate") != NULL);
    CHECK(assertion_cred_from_pem(kpem, ASSERTION_PEM_MAX + 1, "x", 1, err, 0) == NULL);
    free(kpem);
    CHECK(assertion_cred_load("/nonexistent/key.pem", "/nonexistent/cert.pem", err,
                              sizeof(err)) == NULL);
    CHECK(strstr(err, "/nonexistent/key.pem") != NULL);
    EVP_PKEY_free(other);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec);
    X509_free(small_cert);
    X509_free(ec_cert);
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    EVP_PKEY *key = EVP_RSA_gen(2048);
    X509 *cert = self_signed(key);
    CHECK(key && cert);
    test_build(key, cert);
    test_refusals(key, cert);
    EVP_PKEY_free(key);
    X509_free(cert);
    const char *names[] = {"key.pem", "cert.pem", "key-open.pem"};
    for (int i = 0; i < 3; i++) {
        char p[300];
        snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
        unlink(p);
    }
    CHECK(rmdir(dir) == 0);
    return check_done();
}
