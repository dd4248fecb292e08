/* apikey: authenticate an internal client by API key against configured SHA-256 digests.
 * Invariant: the time taken does not depend on which digest (if any) matched or on how
 * many leading bytes agreed; only the presented key's length and shape show. */
#ifndef FOGATE_APIKEY_H
#define FOGATE_APIKEY_H

#include <stddef.h>

#define APIKEY_DIGEST_LEN 32
#define APIKEY_MIN_LEN 16  /* shorter keys are refused before hashing */
#define APIKEY_MAX_LEN 256 /* longer keys are refused before hashing */

/* apikey_match verdicts below 0. */
#define APIKEY_NONE (-1)      /* well-formed key, no configured digest matched */
#define APIKEY_MALFORMED (-2) /* refused before hashing: length or characters */

/* Checks the `len` bytes of `key` (borrowed; not NUL-terminated necessarily): it must be
 * APIKEY_MIN_LEN..APIKEY_MAX_LEN visible ASCII characters (0x21-0x7e: no NUL, control
 * bytes, spaces, DEL or non-ASCII), then compares SHA-256(key) with every one of the
 * `n` configured digests (borrowed) with CRYPTO_memcmp, always all of them.
 * Returns the index of the matching digest (the last one if several are equal),
 * APIKEY_NONE or APIKEY_MALFORMED. The hash of the key is wiped before returning. */
int apikey_match(const char *key, size_t len, const unsigned char (*digests)[APIKEY_DIGEST_LEN],
                 size_t n);

/* SHA-256 of a key, as configured digests are made. Returns 0, or -1 (then `out` is
 * zeroed) if the key is not well-formed as apikey_match defines it. */
int apikey_digest(const char *key, size_t len, unsigned char out[APIKEY_DIGEST_LEN]);

/* Parses a configured digest given as 64 hex digits (either case; exactly 64 characters
 * of `hex`, NUL-terminated). Returns 0, or -1 if malformed. */
int apikey_digest_parse(const char *hex, unsigned char out[APIKEY_DIGEST_LEN]);

#endif
