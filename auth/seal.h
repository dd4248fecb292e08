/* seal: AES-256-GCM sealing of tokens for the shared Redis cache, bound to a context
 * (environment + resource) so a sealed token cannot be replayed under another context.
 * Blob layout (version 1), optionally base64 (standard alphabet, padded):
 *
 *   +---------+------------+----------------------+-------------+
 *   | 0x01 1B | nonce 12 B | ciphertext (= len pt) | GCM tag 16 B |
 *   +---------+------------+----------------------+-------------+
 *   GCM AAD = version byte || context string
 */
#ifndef FOGATE_SEAL_H
#define FOGATE_SEAL_H

#include <stddef.h>

#define SEAL_KEY_LEN 32
#define SEAL_VERSION 1
#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_OVERHEAD (1 + SEAL_NONCE_LEN + SEAL_TAG_LEN)
#define SEAL_PLAIN_MAX (64 * 1024) /* larger plaintexts are refused */
#define SEAL_CONTEXT_MAX 1024      /* longer context strings are refused */

enum seal_format {
    SEAL_RAW,   /* the bytes as drawn above */
    SEAL_BASE64 /* the same bytes in base64, NUL-terminated */
};

enum seal_status {
    SEAL_OK,
    SEAL_MALFORMED,   /* not base64, too short or too long */
    SEAL_UNSUPPORTED, /* unknown version byte */
    SEAL_AUTH_FAILED, /* tampered, truncated, other key or other context */
    SEAL_ERROR        /* bad arguments, out of memory or an OpenSSL failure */
};

/* Loads a key file: exactly 64 hex digits (e.g. `openssl rand -hex 32`), optionally
 * followed by one "\n" or "\r\n". The file must be a regular file not readable or
 * writable by others and not writable by the group (0600 or 0640). On success returns 0
 * and fills key. On failure returns -1, leaves key zeroed and writes a reason (naming
 * the path, never the contents) into err (errlen bytes). */
int seal_key_load(const char *path, unsigned char key[SEAL_KEY_LEN], char *err,
                  size_t errlen);

/* Seals `len` bytes of `plain` (borrowed) under `key` and `context` (a NUL-terminated
 * string, may be empty) with a fresh random nonce. The context is compared byte for byte,
 * so build it unambiguously (e.g. "<env>\n<resource>" with no "\n" in either part). Stores a buffer the caller owns
 * (free()) in *out and its length in *out_len (NUL not counted in SEAL_BASE64).
 * Returns SEAL_OK or SEAL_ERROR (*out is then NULL). */
enum seal_status seal_seal(const unsigned char key[SEAL_KEY_LEN], const char *context,
                           const void *plain, size_t len, enum seal_format fmt,
                           unsigned char **out, size_t *out_len);

/* Opens a blob made by seal_seal with the same key, context and format. On SEAL_OK
 * stores the plaintext in *out (owned by the caller, NUL-terminated for convenience,
 * release with seal_plain_free) and its length in *out_len. On any other status *out is
 * NULL and nothing of the plaintext remains in memory. */
enum seal_status seal_open(const unsigned char key[SEAL_KEY_LEN], const char *context,
                           const void *blob, size_t len, enum seal_format fmt,
                           unsigned char **out, size_t *out_len);

/* Wipes `len` + 1 bytes of a plaintext from seal_open and frees it. NULL is a no-op. */
void seal_plain_free(unsigned char *plain, size_t len);

#endif
