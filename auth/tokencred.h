/* tokencred: an environment's client credential (secret from a file or an environment
 * variable, or certificate + key) and the token request body built from it.
 * Invariant: the secret and the private key live only inside struct tokencred and the
 * bodies it builds, and every copy is wiped before it is freed. */
#ifndef FOGATE_TOKENCRED_H
#define FOGATE_TOKENCRED_H

#include <stddef.h>
#include <stdint.h>

struct conf_env;
struct tokencred;

/* Loads the credential `env` (borrowed, only during the call) names: reads the secret
 * file (one trailing "\n" or "\r\n" is dropped), the environment variable, or the key and
 * certificate files. Returns a credential the caller owns (tokencred_free), or NULL with a
 * reason in err (errlen bytes; names the file or variable, never the contents). */
struct tokencred *tokencred_load(const struct conf_env *env, char *err, size_t errlen);

/* Wipes and frees. NULL is a no-op. */
void tokencred_free(struct tokencred *cred);

/* Builds the client-credentials request body for `env` (borrowed: token_version,
 * client_id, resource, token_endpoint) at unix time `now` (for a client assertion).
 * Returns a NUL-terminated body the caller owns (release with tokenform_free, which wipes
 * it) and its length in *len; NULL on failure. */
char *tokencred_body(const struct tokencred *cred, const struct conf_env *env, int64_t now,
                     size_t *len);

/* When the credential lapses, as unix seconds: the certificate's notAfter, or for a
 * secret `env`'s client_secret_expires (borrowed; 0 = not configured). 0 = unknown. */
int64_t tokencred_expires_at(const struct tokencred *cred, const struct conf_env *env);

/* 1 if the secret value occurs in the `len` bytes of `text` (so a caller can refuse to
 * log text that echoes it), else 0. Always 0 for certificate credentials. */
int tokencred_leaks(const struct tokencred *cred, const char *text, size_t len);

#endif
