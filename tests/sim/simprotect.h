/* simprotect: service protection on live requests (reference §5). Takes the identity from
 * the bearer token, asks simspl, answers 429 with the §5.1 message and an integer
 * Retry-After, measures execution time from the head to the end of the exchange, and keeps
 * a bounded log of D365 calls so tests can assert "no call between t1 and t2".
 * Control routes: GET /_sim/protection, GET /_sim/calls. Invariant: every admitted request
 * is released exactly once, when simhttp frees it. */
#ifndef SIMPROTECT_H
#define SIMPROTECT_H

#include "sim.h"

struct simprotect;

struct simprotect *simprotect_new(void);
void simprotect_free(struct simprotect *p);
/* Forgets identities, windows, gates and the call log (POST /_sim/reset). */
void simprotect_reset(struct simprotect *p);

/* The control route for /_sim/protection and /_sim/calls, else NULL. Static storage. */
const struct sim_route *simprotect_route(const char *path);

/* Logs a non-control request as it arrives (first thing in on_head). */
void simprotect_log(struct sim *s, struct simhttp_req *req);
/* Applies the limits to a logged request. Returns 1 when it has been answered 429, 0 to let
 * the endpoint handle it. Call from on_head after the front-end faults. */
int simprotect_admit(struct sim *s, struct simhttp_req *req);
/* Records the status of a logged request (on_reply). */
void simprotect_reply(struct sim *s, struct simhttp_req *req, int status);
/* Releases the request's slot and tag (on_free). */
void simprotect_release(struct sim *s, struct simhttp_req *req);

#endif
