/* b64: strict base64 (RFC 4648 §4, padded) and base64url (§5, unpadded, as JWTs use).
 * Invariant: decoding accepts only the canonical encoding; anything else is rejected. */
#ifndef FOGATE_B64_H
#define FOGATE_B64_H

#include <stddef.h>

enum b64_alphabet {
    B64_STD, /* A-Z a-z 0-9 + /, padded with '=' to a multiple of 4 */
    B64_URL  /* A-Z a-z 0-9 - _, never padded */
};

/* Largest input b64_encode and b64_decode accept (bytes); larger inputs fail. */
#define B64_MAX_INPUT (16u * 1024 * 1024)

/* Encodes `len` bytes of `in`. Returns a NUL-terminated string the caller owns (free()),
 * and stores its length in *out_len if out_len is not NULL; NULL if too large or out of
 * memory. */
char *b64_encode(const void *in, size_t len, enum b64_alphabet alpha, size_t *out_len);

/* Decodes `len` characters of `in`. No whitespace, wrong padding, characters of the other
 * alphabet or non-zero trailing bits are accepted. On success returns 0, stores a buffer
 * the caller owns (free(); NUL-terminated for convenience, the NUL not counted) in *out
 * and its length in *out_len. Returns -1 on any error (*out is then NULL). */
int b64_decode(const char *in, size_t len, enum b64_alphabet alpha, unsigned char **out,
               size_t *out_len);

#endif
