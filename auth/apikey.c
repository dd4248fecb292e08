/* apikey: constant-time API key check. The presented key is hashed first so the
 * comparisons run on fixed-size digests, and every configured digest is compared with
 * CRYPTO_memcmp; the matching index is selected with masks, not branches. */
/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 but hash without allocating or
 * looking the algorithm up in the provider table (SHA256() and EVP do both, per call, on
 * every request's key): the hot path keeps the low-level calls. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "apikey.h"

#include "hex.h"

#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

static int well_formed(const char *key, size_t len)
{
    if (!key || len < APIKEY_MIN_LEN || len > APIKEY_MAX_LEN)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] < 0x21 || (unsigned char)key[i] > 0x7e)
            return 0;
    return 1;
}

int apikey_digest(const char *key, size_t len, unsigned char out[APIKEY_DIGEST_LEN])
{
    if (!well_formed(key, len)) {
        memset(out, 0, APIKEY_DIGEST_LEN);
        return -1;
    }
    SHA256_CTX ctx;

    SHA256_Init(&ctx);
    SHA256_Update(&ctx, key, len);
    SHA256_Final(out, &ctx);
    OPENSSL_cleanse(&ctx, sizeof ctx);
    return 0;
}

int apikey_match(const char *key, size_t len, const unsigned char (*digests)[APIKEY_DIGEST_LEN],
                 size_t n)
{
    unsigned char dig[APIKEY_DIGEST_LEN];
    if (apikey_digest(key, len, dig) != 0)
        return APIKEY_MALFORMED;
    /* found/idx updated through masks: mask is all ones exactly when digest i matched. */
    uint64_t idx = 0, found = 0;
    for (size_t i = 0; i < n && i < INT32_MAX; i++) {
        uint64_t eq = (uint64_t)(CRYPTO_memcmp(dig, digests[i], APIKEY_DIGEST_LEN) == 0);
        uint64_t mask = (uint64_t)0 - eq;
        idx = (idx & ~mask) | ((uint64_t)i & mask);
        found |= mask;
    }
    OPENSSL_cleanse(dig, sizeof(dig));
    return found ? (int)idx : APIKEY_NONE;
}

int apikey_digest_parse(const char *hex, unsigned char out[APIKEY_DIGEST_LEN])
{
    return hex ? hex_decode(hex, strlen(hex), out, APIKEY_DIGEST_LEN) : -1;
}
