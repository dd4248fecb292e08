/* tokenblob: the sealed form of a token in the shared cache, and the names that go with
 * it. Pure (no I/O). The plaintext inside the seal is
 *   "1 <obtained_at> <expires_at> <serial>\n<access token>"
 * and the seal's context (GCM AAD) binds environment, tenant, client id and resource, so
 * a blob cannot be replayed for another environment or app.
 * Invariant: plaintext copies of the token made here are wiped before they are freed. */
#ifndef FOGATE_TOKENBLOB_H
#define FOGATE_TOKENBLOB_H

#include <stddef.h>
#include <stdint.h>

#include "seal.h"

#define TOKENBLOB_SERIAL_LEN 32    /* hex digits of a token's random serial */
#define TOKENBLOB_NAME_MAX 128     /* share name: "<env>:<16 hex>" */
#define TOKENBLOB_CONTEXT_MAX SEAL_CONTEXT_MAX

/* A token as shared: everything but the token is public. */
struct tokenblob {
    char *token;        /* owned (tokenblob_open), NUL-terminated; never log it */
    size_t token_len;
    int64_t obtained_at; /* unix seconds */
    int64_t expires_at;  /* unix seconds */
    char serial[TOKENBLOB_SERIAL_LEN + 1];
};

/* The share name (key suffix) for an environment: "<env>:<first 16 hex digits of
 * SHA-256(tenant \n client_id \n resource)>". No secret goes in. Returns 0, or -1 if it
 * does not fit in out (outsz bytes). All strings borrowed. */
int tokenblob_name(const char *env, const char *tenant, const char *client_id,
                   const char *resource, char *out, size_t outsz);

/* The seal context: "fogate-token-v1|<env>|<tenant>|<client_id>|<resource>".
 * Returns 0, or -1 if it does not fit. */
int tokenblob_context(const char *env, const char *tenant, const char *client_id,
                      const char *resource, char *out, size_t outsz);

/* Writes a fresh random serial (TOKENBLOB_SERIAL_LEN hex digits + NUL). Returns 0 or -1. */
int tokenblob_serial(char out[TOKENBLOB_SERIAL_LEN + 1]);

/* Seals `b` (borrowed) under key and context into base64 text. Returns a NUL-terminated
 * string the caller owns (free()) and its length in *len; NULL on failure. */
char *tokenblob_seal(const unsigned char key[SEAL_KEY_LEN], const char *context,
                     const struct tokenblob *b, size_t *len);

/* Opens `len` bytes of base64 text from tokenblob_seal. On success returns 0 and fills
 * *b (b->token owned: release with tokenblob_cleanup). Returns -1 if the blob does not
 * open under key and context (tampered, other key or context) or its plaintext is not
 * well-formed; *b is then zeroed. */
int tokenblob_open(const unsigned char key[SEAL_KEY_LEN], const char *context,
                   const char *text, size_t len, struct tokenblob *b);

/* Wipes and frees b->token and zeroes *b. Safe to call twice. */
void tokenblob_cleanup(struct tokenblob *b);

#endif
