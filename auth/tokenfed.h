/* tokenfed: the federated client assertion of workload identity federation: a JWT an
 * identity provider Entra trusts (the Kubernetes service account token on AKS) read from
 * client_assertion_file. Pure: checks its shape and reads its exp claim WITHOUT verifying
 * the signature (Entra does that); fogate only refuses to send one that has run out.
 * Invariant: an assertion accepted here is three base64url parts and has an exp. */
#ifndef FOGATE_TOKENFED_H
#define FOGATE_TOKENFED_H

#include <stddef.h>
#include <stdint.h>

enum tokenfed_verdict {
    TOKENFED_OK,        /* well formed, exp > now */
    TOKENFED_MALFORMED, /* not a compact JWS, payload not a JSON object, no integer exp */
    TOKENFED_EXPIRED    /* exp <= now */
};

/* Drops trailing whitespace (a newline added by an editor or `echo`) from the `*len`
 * bytes at `jwt`, updating *len. */
void tokenfed_trim(const char *jwt, size_t *len);

/* Looks at `len` bytes of `jwt` (borrowed; it is a credential: never logged) at unix time
 * `now`. Stores the exp claim in *exp (0 when there is none). Returns the verdict. */
enum tokenfed_verdict tokenfed_check(const char *jwt, size_t len, int64_t now, int64_t *exp);

#endif
