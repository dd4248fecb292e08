/* assertion: certificate credentials for Entra ID, i.e. the signed JWT sent as
 * client_assertion (RS256 or PS256, with x5t and x5t#S256 thumbprints of the certificate).
 * Invariant: the private key lives only inside struct assertion_cred (OpenSSL frees
 * private keys with a wipe); an assertion is itself a credential for its 10 minutes. */
#ifndef FOGATE_ASSERTION_H
#define FOGATE_ASSERTION_H

#include <stddef.h>
#include <stdint.h>

#define ASSERTION_PEM_MAX (64 * 1024) /* larger key or certificate files are refused */
#define ASSERTION_LIFETIME 600        /* exp = now + 10 min */
#define ASSERTION_RSA_MIN_BITS 2048

enum assertion_alg {
    ASSERTION_RS256, /* RSASSA-PKCS1-v1_5 with SHA-256 */
    ASSERTION_PS256  /* RSASSA-PSS with SHA-256, MGF1-SHA-256, salt length 32 */
};

/* A loaded key and certificate. Opaque. */
struct assertion_cred;

/* Loads an unencrypted PEM private key (RSA, >= 2048 bits; the file must not be readable
 * by others, see secretfile.h) and a PEM certificate, and checks the key belongs to the
 * certificate. Returns a credential the caller owns (assertion_cred_free), or NULL with a
 * reason in err (errlen bytes; never key material). */
struct assertion_cred *assertion_cred_load(const char *key_path, const char *cert_path,
                                           char *err, size_t errlen);

/* The same from PEM text in memory (borrowed; need not be NUL-terminated). */
struct assertion_cred *assertion_cred_from_pem(const char *key_pem, size_t key_len,
                                               const char *cert_pem, size_t cert_len,
                                               char *err, size_t errlen);

/* Frees the credential (OpenSSL wipes the key). NULL is a no-op. */
void assertion_cred_free(struct assertion_cred *cred);

/* The certificate's notAfter as unix seconds, so the caller can warn before it lapses. */
int64_t assertion_cred_not_after(const struct assertion_cred *cred);

/* Builds a signed client assertion:
 *   header {"alg":"RS256"|"PS256","typ":"JWT","x5t":<b64url SHA-1 of DER cert>,
 *           "x5t#S256":<b64url SHA-256 of DER cert>}
 *   claims {"aud":token_url,"iss":client_id,"sub":client_id,"jti":<random GUID>,
 *           "nbf":now,"iat":now,"exp":now+ASSERTION_LIFETIME}
 * as base64url(header).base64url(claims).base64url(signature), no padding.
 * token_url and client_id are borrowed, non-empty, at most 1024 bytes.
 * Returns a NUL-terminated JWT owned by the caller (release with assertion_free), or
 * NULL on bad arguments or an OpenSSL failure. */
char *assertion_build(const struct assertion_cred *cred, enum assertion_alg alg,
                      const char *token_url, const char *client_id, int64_t now);

/* Wipes and frees an assertion from assertion_build. NULL is a no-op. */
void assertion_free(char *jwt);

#endif
