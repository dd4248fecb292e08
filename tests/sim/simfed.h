/* simfed: Entra ID's check of a federated client assertion (workload identity
 * federation): an RS256 JWT from an external issuer that an app trusts through a
 * federated identity credential {issuer, subject, audience}, verified with that issuer's
 * signing keys (a JWKS given in the config, as Entra would fetch from the issuer's
 * discovery document). Pure: no I/O.
 * Invariant: an assertion is accepted only if one record matches iss, sub and aud, a key
 * of that record verifies the signature and the time range holds. */
#ifndef SIMFED_H
#define SIMFED_H

#include <stddef.h>

struct simconf_app;

enum simfed_verdict {
    SIMFED_OK,
    SIMFED_MALFORMED,     /* AADSTS50027: not a JWT, no iss/sub/aud/exp */
    SIMFED_NO_MATCH,      /* AADSTS70021: no federated identity record matches */
    SIMFED_BAD_SIGNATURE, /* AADSTS700027: no key of the issuer verifies it, alg not RS256 */
    SIMFED_EXPIRED        /* AADSTS700024: not within its valid time range */
};

/* 1 if `jwt` looks like a federated assertion for `client_id` (its iss is not the client
 * id itself, as it is in a certificate assertion), else 0. */
int simfed_is_federated(const char *jwt, const char *client_id);

/* Verifies `jwt` against app->federated at unix time `now`. On success stores the
 * matching record's subject in sub (subcap bytes). Otherwise writes Entra's wording (no
 * key material) into why. */
enum simfed_verdict simfed_verify(const struct simconf_app *app, const char *jwt, double now,
                                  char *sub, size_t subcap, char *why, size_t whycap);

/* The AADSTS code of a verdict (0 for OK). */
long simfed_code(enum simfed_verdict v);

#endif
