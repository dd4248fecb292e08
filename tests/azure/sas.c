/* sas: Azure Blob shared access signatures, signed with HMAC-SHA256 via OpenSSL.
 * Pure: the string-to-sign is built from the un-encoded values, the query from the encoded
 * ones; nothing here reads a clock, a file or the network. */
#include "sas.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Real account keys are 64 bytes; leave room for longer ones, but bound it. */
#define KEY_MAX 256

/* snprintf that reports truncation as an error. */
static int fmt(char *out, size_t cap, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fmt(char *out, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(out, cap, f, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static int empty(const char *s)
{
    return s == NULL || *s == '\0';
}

int sas_format_time(char *out, size_t cap, time_t t)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return -1;
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return n == 0 ? -1 : 0;
}

static int unreserved(unsigned char c, int keep_slash)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
        return 1;
    return c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
}

int sas_url_encode(char *out, size_t cap, const char *in, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        size_t need = unreserved(*p, keep_slash) ? 1 : 3;
        if (o + need >= cap)
            return -1;
        if (need == 1) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 0x0f];
        }
    }
    if (o >= cap)
        return -1;
    out[o] = '\0';
    return 0;
}

/* Decodes strict base64 (length a multiple of 4, '=' only as padding) into key.
 * Returns the decoded length or -1. */
static int decode_key(unsigned char *key, size_t cap, const char *b64)
{
    size_t len = strlen(b64);
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
        return -1;
    size_t pad = 0;
    while (pad < 2 && b64[len - 1 - pad] == '=')
        pad++;
    if (strcspn(b64, "=") != len - pad)
        return -1; /* '=' in the middle */
    int n = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return -1;
    return n - (int)pad; /* EVP_DecodeBlock counts the padding as zero bytes */
}

int sas_sign(char *out, size_t cap, const char *key_b64, const char *msg)
{
    unsigned char key[KEY_MAX];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int rc = -1;

    int keylen = decode_key(key, sizeof key, key_b64);
    if (keylen <= 0 || cap < SAS_SIG_LEN)
        goto out;
    if (HMAC(EVP_sha256(), key, keylen, (const unsigned char *)msg, strlen(msg), mac,
             &maclen) == NULL)
        goto out;
    EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen);
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

/* Times as they are signed and sent; start 0 gives an empty st. */
struct window {
    char st[SAS_TIME_LEN];
    char se[SAS_TIME_LEN];
};

static int window_init(struct window *w, time_t start, time_t expiry)
{
    w->st[0] = '\0';
    if (start != 0 && sas_format_time(w->st, sizeof w->st, start) != 0)
        return -1;
    if (expiry <= start || sas_format_time(w->se, sizeof w->se, expiry) != 0)
        return -1;
    return 0;
}

static int blob_sts(char *out, size_t cap, const char *account, const char *container,
                    const char *blob, const char *perms, const struct window *w)
{
    /* Version 2018-11-09 and later (before 2020-12-06), one field per line:
     * sp st se canonicalized-resource si sip spr sv sr snapshot rscc rscd rsce rscl rsct */
    return fmt(out, cap, "%s\n%s\n%s\n/blob/%s/%s/%s\n\n\n\n%s\nb\n\n\n\n\n\n", perms, w->st,
               w->se, account, container, blob, SAS_VERSION);
}

/* Azure's container rule: 3-63 of lower-case letters, digits and '-'. */
static int container_ok(const char *c)
{
    size_t n = c ? strlen(c) : 0;
    return n >= 3 && n <= 63 && strspn(c, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* Blob names: 1-1024 bytes, no control characters (they would forge string-to-sign lines). */
static int blob_ok(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n == 0 || n > 1024)
        return 0;
    for (const unsigned char *p = (const unsigned char *)b; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static int blob_args_ok(const char *container, const char *blob, const char *perms)
{
    return container_ok(container) && blob_ok(blob) && !empty(perms) &&
           strspn(perms, "racwdxyltmeopi") == strlen(perms);
}

int sas_blob_string_to_sign(char *out, size_t cap, const char *account, const char *container,
                            const char *blob, const char *perms, time_t start, time_t expiry)
{
    struct window w;
    if (empty(account) || !blob_args_ok(container, blob, perms) ||
        window_init(&w, start, expiry) != 0)
        return -1;
    return blob_sts(out, cap, account, container, blob, perms, &w);
}

/* Appends "&name=<encoded value>" (no '&' when first) at *o. */
static int add_param(char *out, size_t cap, size_t *o, const char *name, const char *value)
{
    char enc[SAS_URL_MAX];
    if (sas_url_encode(enc, sizeof enc, value, 0) != 0)
        return -1;
    if (fmt(out + *o, cap - *o, "%s%s=%s", *o ? "&" : "", name, enc) != 0)
        return -1;
    *o += strlen(out + *o);
    return 0;
}

int sas_blob_query(char *out, size_t cap, const struct sas_account *acct,
                   const char *container, const char *blob, const char *perms, time_t start,
                   time_t expiry)
{
    char sts[SAS_URL_MAX];
    char sig[SAS_SIG_LEN];
    struct window w;
    size_t o = 0;

    if (cap == 0 || acct == NULL || empty(acct->name) || empty(acct->key_b64))
        return -1;
    if (!blob_args_ok(container, blob, perms) || window_init(&w, start, expiry) != 0)
        return -1;
    if (blob_sts(sts, sizeof sts, acct->name, container, blob, perms, &w) != 0 ||
        sas_sign(sig, sizeof sig, acct->key_b64, sts) != 0)
        return -1;
    out[0] = '\0';
    /* The order D365 uses: sv, sr, sig, st, se, sp. */
    if (add_param(out, cap, &o, "sv", SAS_VERSION) != 0 || add_param(out, cap, &o, "sr", "b") != 0 ||
        add_param(out, cap, &o, "sig", sig) != 0)
        return -1;
    if (w.st[0] && add_param(out, cap, &o, "st", w.st) != 0)
        return -1;
    if (add_param(out, cap, &o, "se", w.se) != 0 || add_param(out, cap, &o, "sp", perms) != 0)
        return -1;
    return 0;
}

int sas_blob_url(char *out, size_t cap, const struct sas_account *acct, const char *container,
                 const char *blob, const char *perms, time_t start, time_t expiry)
{
    char path[SAS_URL_MAX];
    char query[SAS_URL_MAX];

    if (acct == NULL || empty(acct->endpoint))
        return -1;
    if (sas_blob_query(query, sizeof query, acct, container, blob, perms, start, expiry) != 0)
        return -1;
    if (sas_url_encode(path, sizeof path, blob, 1) != 0)
        return -1;
    return fmt(out, cap, "%s/%s/%s?%s", acct->endpoint, container, path, query);
}

int sas_account_query(char *out, size_t cap, const struct sas_account *acct,
                      const char *resource_types, const char *perms, time_t start,
                      time_t expiry)
{
    char sts[SAS_URL_MAX];
    char sig[SAS_SIG_LEN];
    struct window w;
    size_t o = 0;

    if (cap == 0 || acct == NULL || empty(acct->name) || empty(acct->key_b64) ||
        empty(resource_types) || empty(perms) || window_init(&w, start, expiry) != 0)
        return -1;
    /* Account SAS, version 2018-11-09: account sp ss srt st se sip spr sv, then a final \n. */
    if (fmt(sts, sizeof sts, "%s\n%s\nb\n%s\n%s\n%s\n\n\n%s\n", acct->name, perms,
            resource_types, w.st, w.se, SAS_VERSION) != 0 ||
        sas_sign(sig, sizeof sig, acct->key_b64, sts) != 0)
        return -1;
    out[0] = '\0';
    if (add_param(out, cap, &o, "sv", SAS_VERSION) != 0 || add_param(out, cap, &o, "ss", "b") != 0 ||
        add_param(out, cap, &o, "srt", resource_types) != 0 ||
        add_param(out, cap, &o, "sp", perms) != 0)
        return -1;
    if (w.st[0] && add_param(out, cap, &o, "st", w.st) != 0)
        return -1;
    if (add_param(out, cap, &o, "se", w.se) != 0 || add_param(out, cap, &o, "sig", sig) != 0)
        return -1;
    return 0;
}
