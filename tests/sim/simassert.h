/* simassert: Entra ID's check of a client_assertion (certificate credentials): an RS256 or
 * PS256 JWT whose x5t / x5t#S256 thumbprint names the app's registered certificate, signed
 * by its key, with iss == sub == client_id, an accepted aud, a valid time range and a jti.
 * Pure apart from reading the certificate file. */
#ifndef SIMASSERT_H
#define SIMASSERT_H

#include <stddef.h>

enum simassert_verdict {
    SIMASSERT_OK,
    SIMASSERT_BAD_SIGNATURE, /* AADSTS700027: unknown thumbprint, bad signature, bad alg */
    SIMASSERT_EXPIRED,       /* AADSTS700024: not within its valid time range */
    SIMASSERT_INVALID,       /* AADSTS50027: malformed, wrong iss/sub/aud, no jti */
    SIMASSERT_NO_CERT,       /* AADSTS700027: no certificate registered / unreadable */
};

/* Verifies `jwt` for `client_id` against the PEM certificate at cert_path. auds is a
 * NULL-terminated list of accepted audiences. `now` in unix seconds. On failure a reason
 * (no key material) is written to why. */
enum simassert_verdict simassert_verify(const char *cert_path, const char *jwt,
                                        const char *client_id, const char *const *auds,
                                        double now, char *why, size_t whycap);

#endif
