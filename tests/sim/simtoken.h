/* simtoken: the Entra ID token endpoints, v1 (/{tenant}/oauth2/token, resource=) and v2
 * (/{tenant}/oauth2/v2.0/token, scope=), client-credentials grant, with AADSTS errors.
 * Invariant: a secret is never echoed in a response or a log line. */
#ifndef SIMTOKEN_H
#define SIMTOKEN_H

#include <stddef.h>
#include "sim.h"

/* The route for `path` if it is a token endpoint, else NULL. Static storage. */
const struct sim_route *simtoken_route(const char *path);

/* Certificate credentials: verifies a client_assertion JWT (RS256/PS256 with an x5t or
 * x5t#S256 thumbprint) for `app` against its configured certificate; aud may be either token
 * endpoint of `tenant`, here or at login.microsoftonline.com. Returns an enum
 * simassert_verdict (0 = valid); otherwise a reason (no secrets) is written to why. */
int simtoken_check_assertion(const struct sim *s, const struct simconf_app *app,
                             const char *tenant, const char *assertion, char *why,
                             size_t whycap);

/* 1 if a and b name the same resource as D365 registers it: case-insensitive, trailing
 * slashes ignored. */
int simtoken_same_resource(const char *a, const char *b);

/* A v1 access token for `app` of `tenant` with audience `aud` (a managed identity's:
 * appidacr 2), signed with fosim's key. Returns a malloc'd JWT (caller frees) or NULL. */
char *simtoken_mint(struct sim *s, const struct simconf_app *app, const char *tenant,
                    const char *aud);

/* Replies with an Entra ID error body (reference §2.4): error, error_description with the
 * AADSTS code, Trace ID, Correlation ID and Timestamp, error_codes, timestamp, trace_id,
 * correlation_id, error_uri. `msg` must not contain secrets. */
void simtoken_reply_error(struct sim *s, struct simhttp_req *req, int status,
                          const char *error, long code, const char *msg);

#endif
