/* tokencred: an environment's credential (secret from a file or an environment variable,
 * certificate + key, federated assertion file, or managed identity) and the token request
 * built from it: a form POST to Entra, or a GET to a managed identity endpoint.
 * Invariant: the secret, the private key, the identity header and the assertion live only
 * inside struct tokencred and the requests it builds, and every copy is wiped before it
 * is freed. */
#ifndef FOGATE_TOKENCRED_H
#define FOGATE_TOKENCRED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf_env;
struct tokencred;

#define TOKENCRED_HEADERS_MAX 2

/* One token request, owned by the caller; release with tokencred_req_cleanup. */
struct tokencred_req {
    bool get;           /* GET url with headers (managed identity), else POST body to url */
    const char *url;    /* POST: borrowed from env->token_endpoint; GET: == get_url */
    char *get_url;      /* owned (no secret in it) */
    char *body;         /* owned, POST only: holds the secret or assertion */
    size_t len;
    char *headers[TOKENCRED_HEADERS_MAX]; /* owned "Name: value" lines; one may hold the
                                             App Service identity header (a secret) */
    size_t n_headers;
};

enum tokencred_result {
    TOKENCRED_OK,
    TOKENCRED_INTERNAL,    /* out of memory, signing failed, a value over its cap */
    TOKENCRED_UNREADABLE,  /* the assertion file is missing, unreadable or not a JWT */
    TOKENCRED_EXPIRED      /* the assertion's exp has passed: it is not sent */
};

/* Loads the credential `env` (borrowed, only during the call) names: reads the secret
 * file (one trailing "\n" or "\r\n" is dropped), the environment variable, the key and
 * certificate files, or for a managed identity IDENTITY_ENDPOINT/IDENTITY_HEADER (App
 * Service style when both are set, IMDS when neither). An assertion file is not read
 * here but for every request. Returns a credential the caller owns (tokencred_free), or
 * NULL with a reason in err (errlen bytes; names the file or variable, never contents). */
struct tokencred *tokencred_load(const struct conf_env *env, char *err, size_t errlen);

/* Wipes and frees. NULL is a no-op. */
void tokencred_free(struct tokencred *cred);

/* Builds the token request for `env` (borrowed: token_version, client_id, resource,
 * token_endpoint, client_assertion_file, mi_client_id) at unix time `now`: re-reads the
 * assertion file and refuses an expired or malformed one. Fills *out (zeroed first) and
 * returns TOKENCRED_OK; otherwise *out holds nothing and a reason (never a secret) is in
 * err. */
enum tokencred_result tokencred_request(const struct tokencred *cred,
                                        const struct conf_env *env, int64_t now,
                                        struct tokencred_req *out, char *err, size_t errlen);

/* Wipes and frees what a request owns, and zeroes it. Safe to call twice. */
void tokencred_req_cleanup(struct tokencred_req *r);

/* "imds" or "app_service" for a managed identity credential, else NULL. Static. */
const char *tokencred_mi_style(const struct tokencred *cred);

/* 1 if the secret value occurs in the `len` bytes of `text` (so a caller can refuse to
 * log text that echoes it), else 0. Always 0 for certificate and federated credentials. */
int tokencred_leaks(const struct tokencred *cred, const char *text, size_t len);

#endif
