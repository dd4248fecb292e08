/* clientauth: who is calling (an API key in "Authorization: Bearer <key>" or "X-Api-Key"),
 * and whether that client may use a job or an environment. Pure: a parsed request head
 * and a config snapshot in, a verdict out.
 * Invariant: a key is never copied, logged or put in a message; digests are compared in
 * constant time (conf_client_find_by_key). */
#ifndef FOGATE_CLIENTAUTH_H
#define FOGATE_CLIENTAUTH_H

#include "conf.h"
#include "http1.h"

enum clientauth_verdict {
    CLIENTAUTH_OK,
    CLIENTAUTH_MISSING,     /* 401 api_key_missing: neither header */
    CLIENTAUTH_BOTH,        /* 401 api_key_ambiguous: Authorization and X-Api-Key */
    CLIENTAUTH_DUPLICATE,   /* 401 api_key_duplicated: a header given twice */
    CLIENTAUTH_MALFORMED,   /* 401 api_key_malformed: not "Bearer <key>", empty, bad bytes */
    CLIENTAUTH_UNKNOWN,     /* 401 api_key_invalid: no client has this key */
};

/* Authenticates the request `h` against `conf` (both borrowed). On CLIENTAUTH_OK stores
 * the client (borrowed from conf) in *out. */
enum clientauth_verdict clientauth_check(const struct conf *conf, const struct http1_head *h,
                                         const struct conf_client **out);

/* Stable error code and a message safe to send, for a verdict other than OK. */
const char *clientauth_code(enum clientauth_verdict v);
const char *clientauth_message(enum clientauth_verdict v);

/* The job with activity id `id` (`len` bytes as in the URL: any case, braces, %7B/%7D)
 * if `client` may use it. Returns 0 with *job set, -1 when no such job exists, -2 when
 * the job exists but belongs to other clients. Both answer 403 to the client, so that a
 * client cannot probe for other clients' jobs. */
int clientauth_job(const struct conf *conf, const struct conf_client *client, const char *id,
                   size_t len, const struct conf_job **job);

/* The environment a /data call of `client` goes to: the one named by the
 * X-Fogate-Environment header (it must be the environment of one of the client's jobs),
 * or, without the header, the client's only environment. Returns 0 with *env set,
 * -1 when the header is needed (several environments) or given twice (400), -2 when the
 * named environment is not one of the client's (403). */
int clientauth_data_env(const struct conf *conf, const struct conf_client *client,
                        const struct http1_head *h, const struct conf_env **env);

#endif
