/* simbearer: how D365 validates a bearer token (reference §2.6): signature, expiry,
 * aud == environment URL exactly, tid, oid, app mapped to a user. Keeps a small cache of
 * verified signatures so a hot path does not pay for RSA on every request.
 * Invariant: a token never appears in a reply or a log line. */
#ifndef SIMBEARER_H
#define SIMBEARER_H

#include "sim.h"

struct simbearer;

enum simbearer_verdict { SIMBEARER_OK, SIMBEARER_UNAUTHORIZED, SIMBEARER_FORBIDDEN };

struct simbearer_who {
    char client_id[128]; /* appid or azp */
};

struct simbearer *simbearer_new(void);
void simbearer_free(struct simbearer *b);

/* Checks req's Authorization header. On OK fills who. Otherwise *why is a static reason
 * string (no token material). Counts expired tokens in s->counters. */
enum simbearer_verdict simbearer_check(struct sim *s, struct simhttp_req *req,
                                       struct simbearer_who *who, const char **why);

/* The identity D365 throttles by (§5.2: per user, i.e. per Entra app): the appid (v1) or
 * azp (v2) of a token whose signature verifies, else its oid; written to out. Returns 0, or -1
 * when there is no verifiable token (the endpoint's own check then answers 401). */
int simbearer_identity(struct sim *s, const struct simhttp_req *req, char *out, size_t cap);

/* Replies 401 (empty body, WWW-Authenticate: Bearer error="invalid_token") or 403 (empty). */
void simbearer_reply(struct simhttp_req *req, enum simbearer_verdict v, const char *why);

#endif
