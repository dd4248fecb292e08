/* simjwt: RS256 JSON Web Tokens with a key generated at start-up (pure apart from key
 * generation). Invariant: a token verifies only if its signature matches this key. */
#ifndef SIMJWT_H
#define SIMJWT_H

#include <stddef.h>
#include <jansson.h>
#include <openssl/evp.h>

struct simjwt_key;

enum simjwt_verdict { SIMJWT_OK, SIMJWT_MALFORMED, SIMJWT_BAD_SIGNATURE };

/* Generates a fresh RSA-2048 key. Returns NULL on failure. Free with simjwt_key_free. */
struct simjwt_key *simjwt_key_new(void);
void simjwt_key_free(struct simjwt_key *k);
/* The key id put into the header "kid" (static per key). */
const char *simjwt_kid(const struct simjwt_key *k);

/* Signs `claims` (borrowed) into "header.payload.signature". Returns a malloc'd string
 * (caller frees) or NULL. */
char *simjwt_sign(const struct simjwt_key *k, const json_t *claims);

/* Verifies `token` (len bytes). On SIMJWT_OK *claims receives a new reference (caller
 * decrefs); otherwise *claims is NULL. */
enum simjwt_verdict simjwt_verify(const struct simjwt_key *k, const char *token, size_t len,
                                  json_t **claims);

/* Decodes a token's header and payload without checking the signature (for client
 * assertions whose key is not ours). New references or NULL; returns 0 or -1. */
int simjwt_peek(const char *token, json_t **header, json_t **payload);

/* base64url without padding. encode: out must hold 4*((n+2)/3)+1; returns length.
 * decode: returns the decoded length or -1; out must hold 3*(n/4)+3 bytes. */
/* 1 if the compact JWS `jwt` (NUL-terminated) carries a valid RSA SHA-256 signature by
 * `pk` (borrowed): PKCS#1 v1.5 (RS256), or PSS with pss != 0 (PS256); else 0. */
int simjwt_rsa_signed(EVP_PKEY *pk, const char *jwt, int pss);

size_t simjwt_b64url_encode(const unsigned char *in, size_t n, char *out);
long simjwt_b64url_decode(const char *in, size_t n, unsigned char *out);

#endif
