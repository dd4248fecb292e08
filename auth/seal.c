/* seal: AES-256-GCM with a random 96-bit nonce per blob. The version byte is part of the
 * AAD, so it cannot be changed without failing authentication either. */
#include "seal.h"

#include "b64.h"
#include "hex.h"
#include "secretfile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

/* 0 if text is exactly 64 hex digits plus an optional line end; fills key. */
static int parse_hex_key(const char *text, size_t len, unsigned char key[SEAL_KEY_LEN])
{
    if (len == 66 && text[64] == '\r' && text[65] == '\n')
        len = 64;
    else if (len == 65 && text[64] == '\n')
        len = 64;
    return hex_decode(text, len, key, SEAL_KEY_LEN);
}

int seal_key_load(const char *path, unsigned char key[SEAL_KEY_LEN], char *err,
                  size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    memset(key, 0, SEAL_KEY_LEN);
    if (secretfile_read(path, 128, SECRETFILE_PRIVATE, &text, &len, err, errlen) != 0)
        return -1;
    int rc = parse_hex_key(text, len, key);
    secretfile_free(text, len);
    if (rc != 0) {
        OPENSSL_cleanse(key, SEAL_KEY_LEN);
        if (errlen)
            snprintf(err, errlen, "%s: a seal key file holds exactly 64 hex digits", path);
    }
    return rc;
}

/* One AES-256-GCM pass. enc=1: in -> out and writes tag; enc=0: in -> out, checks tag.
 * Returns 0, or -1 on failure (including a tag mismatch). */
static int gcm(int enc, const unsigned char *key, const unsigned char *nonce,
               const unsigned char *aad, size_t aadlen, const unsigned char *in, size_t len,
               unsigned char *out, unsigned char *tag)
{
    int rc = -1, n = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, SEAL_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
        goto out;
    if (EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto out;
    if (len && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1)
        goto out;
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* AAD = version || context, in a buffer the caller frees. */
static unsigned char *make_aad(unsigned char version, const char *context, size_t *len)
{
    size_t n = strlen(context);
    unsigned char *aad = malloc(n + 1);
    if (!aad)
        return NULL;
    aad[0] = version;
    memcpy(aad + 1, context, n);
    *len = n + 1;
    return aad;
}

static int context_ok(const char *context)
{
    return context && strnlen(context, SEAL_CONTEXT_MAX + 1) <= SEAL_CONTEXT_MAX;
}

/* The raw blob for plain, in a buffer of SEAL_OVERHEAD + len + 1 bytes. */
static unsigned char *seal_raw(const unsigned char *key, const char *context,
                               const unsigned char *plain, size_t len)
{
    size_t aadlen = 0;
    unsigned char *aad = make_aad(SEAL_VERSION, context, &aadlen);
    unsigned char *blob = malloc(SEAL_OVERHEAD + len + 1);
    if (!aad || !blob)
        goto fail;
    unsigned char *nonce = blob + 1, *ct = nonce + SEAL_NONCE_LEN;
    if (RAND_bytes(nonce, SEAL_NONCE_LEN) != 1)
        goto fail;
    blob[0] = SEAL_VERSION;
    if (gcm(1, key, nonce, aad, aadlen, plain, len, ct, ct + len) != 0)
        goto fail;
    free(aad);
    return blob;
fail:
    free(aad);
    free(blob);
    return NULL;
}

enum seal_status seal_seal(const unsigned char key[SEAL_KEY_LEN], const char *context,
                           const void *plain, size_t len, enum seal_format fmt,
                           unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!key || !context_ok(context) || (!plain && len) || len > SEAL_PLAIN_MAX)
        return SEAL_ERROR;
    unsigned char *raw = seal_raw(key, context, plain, len);
    if (!raw)
        return SEAL_ERROR;
    size_t rawlen = SEAL_OVERHEAD + len;
    if (fmt == SEAL_RAW) {
        *out = raw;
        *out_len = rawlen;
        return SEAL_OK;
    }
    *out = (unsigned char *)b64_encode(raw, rawlen, B64_STD, out_len);
    free(raw);
    return *out ? SEAL_OK : SEAL_ERROR;
}

/* Opens a raw blob. */
static enum seal_status open_raw(const unsigned char *key, const char *context,
                                 const unsigned char *blob, size_t len, unsigned char **out,
                                 size_t *out_len)
{
    if (len < SEAL_OVERHEAD || len - SEAL_OVERHEAD > SEAL_PLAIN_MAX)
        return SEAL_MALFORMED;
    if (blob[0] != SEAL_VERSION)
        return SEAL_UNSUPPORTED;
    size_t n = len - SEAL_OVERHEAD, aadlen = 0;
    const unsigned char *nonce = blob + 1, *ct = nonce + SEAL_NONCE_LEN;
    unsigned char tag[SEAL_TAG_LEN];
    memcpy(tag, ct + n, SEAL_TAG_LEN); /* OpenSSL wants a writable tag buffer */
    unsigned char *aad = make_aad(blob[0], context, &aadlen);
    unsigned char *plain = malloc(n + 1);
    enum seal_status st = SEAL_ERROR;
    if (!aad || !plain)
        goto out;
    st = SEAL_AUTH_FAILED;
    if (gcm(0, key, nonce, aad, aadlen, ct, n, plain, tag) != 0)
        goto out;
    plain[n] = '\0';
    *out = plain;
    *out_len = n;
    plain = NULL;
    st = SEAL_OK;
out:
    if (plain)
        OPENSSL_clear_free(plain, n + 1); /* unauthenticated plaintext must not linger */
    free(aad);
    return st;
}

enum seal_status seal_open(const unsigned char key[SEAL_KEY_LEN], const char *context,
                           const void *blob, size_t len, enum seal_format fmt,
                           unsigned char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!key || !context_ok(context) || (!blob && len))
        return SEAL_ERROR;
    if (fmt == SEAL_RAW)
        return open_raw(key, context, blob, len, out, out_len);
    /* Cheap bound before decoding: 4 characters per 3 bytes. */
    if (len > (SEAL_OVERHEAD + SEAL_PLAIN_MAX + 2) / 3 * 4)
        return SEAL_MALFORMED;
    unsigned char *raw = NULL;
    size_t rawlen = 0;
    if (b64_decode(blob, len, B64_STD, &raw, &rawlen) != 0)
        return SEAL_MALFORMED;
    enum seal_status st = open_raw(key, context, raw, rawlen, out, out_len);
    free(raw);
    return st;
}

void seal_plain_free(unsigned char *plain, size_t len)
{
    if (plain)
        OPENSSL_clear_free(plain, len + 1);
}
