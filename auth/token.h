/* token: the token manager. Per environment it gets an OAuth 2.0 client-credentials token
 * from Entra ID, caches it, refreshes it ahead of expiry on an event timer, and shares it
 * with the other instances through an optional store (Redis, see cache/tokenshare.h).
 * I/O is injected: a transport posts the form, the share ops reach the store.
 * Invariants: at most one fetch per environment is in flight; a token handed out stays
 * valid for more than the policy's margin; no token or secret is ever logged, put in an
 * error or a status view, or handed to the share store unsealed. */
#ifndef FOGATE_TOKEN_H
#define FOGATE_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tokentime.h"

struct event_base;
struct conf;
struct conf_tokens;
struct token_mgr;
struct token_wait;

/* ---- transport: POST a form to the token endpoint, or GET a managed identity endpoint
 * (proxy/ implements it) ---- */

/* status: the HTTP status, or TOKEN_HTTP_FAILED (<= 0) when no response came (connect
 * error, TLS failure, timeout, response too large). body/len: the response body, borrowed
 * for the call (it holds a token: the transport wipes its buffer afterwards). */
#define TOKEN_HTTP_FAILED 0
typedef void token_http_done(void *arg, int status, const char *body, size_t len);

struct token_transport {
    void *ctx; /* borrowed: the transport's own state */
    /* Starts POST url with Content-Type application/x-www-form-urlencoded and `len` bytes
     * of `body` (borrowed for the call only; it holds a secret: copy it, wipe the copy),
     * within timeout_ms in total. Returns 0: done(arg, ...) is called exactly once, later,
     * never from inside post_form. Returns -1: done is never called. */
    int (*post_form)(void *ctx, const char *url, const char *body, size_t len,
                     unsigned timeout_ms, token_http_done *done, void *arg);
    /* Starts GET url with the `n` header lines "Name: value" of `headers` (borrowed for
     * the call only; one may hold a secret: copy, then wipe the copies), within
     * timeout_ms in total. Same contract as post_form. NULL: managed identity credentials
     * fail with reason "internal". */
    int (*get)(void *ctx, const char *url, const char *const *headers, size_t n,
               unsigned timeout_ms, token_http_done *done, void *arg);
    /* Abandons the request started with `arg` (either kind): done is not called for it
     * afterwards. */
    void (*cancel)(void *ctx, void *arg);
};

/* ---- share: the cluster-wide cache (cache/tokenshare.c implements it on Redis) ---- */

#define TOKEN_SHARE_OK 0    /* get: found; lock: acquired; put: stored; unlock: released */
#define TOKEN_SHARE_MISS 1  /* get: none; lock: held by another; unlock: not ours */
#define TOKEN_SHARE_ERROR 2 /* the store is unavailable or failed */

/* val/len: get's value, borrowed for the call; NULL otherwise. */
typedef void token_share_done(void *arg, int result, const char *val, size_t len);

/* Every op returns 0 (done is called exactly once, later, never from inside the op; it
 * must come even when the store shuts down, with TOKEN_SHARE_ERROR) or -1 (done is never
 * called). Strings are borrowed for the call. `name` is an environment's share name
 * ("<env>:<hex>", no secret), `owner` a random lock owner token, blobs are sealed text. */
struct token_share_ops {
    void *ctx; /* borrowed */
    int (*get)(void *ctx, const char *name, token_share_done *done, void *arg);
    int (*lock)(void *ctx, const char *name, const char *owner, unsigned lease_ms,
                token_share_done *done, void *arg);
    int (*put)(void *ctx, const char *name, const char *blob, size_t len, unsigned ttl_ms,
               token_share_done *done, void *arg);
    int (*unlock)(void *ctx, const char *name, const char *owner, token_share_done *done,
                  void *arg);
};

/* ---- the manager ---- */

struct token_options {
    struct tokentime_policy policy;     /* refresh ratio/jitter, margin, retry backoff */
    unsigned http_timeout_ms;           /* one token request; 0 = 10000 */
    unsigned lock_lease_ms;             /* share lock lease; 0 = http_timeout_ms + 2000 */
    unsigned share_poll_ms;             /* lock loser's re-read interval; 0 = 100 */
    size_t max_waiters;                 /* queued token_get calls per environment; 0 = 1024 */
    struct token_transport transport;   /* required */
    const struct token_share_ops *share; /* copied; NULL = no shared cache */
    const unsigned char *seal_key;      /* 32 bytes (SEAL_KEY_LEN), copied and wiped on
                                           free; required when share is set */
};

/* Fills the policy and http_timeout_ms of *o from the config's "tokens" section
 * (borrowed): refresh at refresh_percent (jitter 10 points), safety margin, retry backoff,
 * request timeout. Leaves the other fields alone (transport, share and seal key are the caller's;
 * the key comes from seal_key_load(tokens.cache_key_file)). */
void token_options_from_conf(struct token_options *o, const struct conf_tokens *t);

enum token_status {
    TOKEN_OK,          /* *out / the callback's view holds a usable token */
    TOKEN_PENDING,     /* queued: the callback will be called exactly once */
    TOKEN_UNAVAILABLE, /* no usable token (not ready, or the wait ran out) */
    TOKEN_BUSY,        /* the environment's wait queue is full */
    TOKEN_NO_ENV,      /* no such environment */
    TOKEN_CLOSED       /* the environment went away (reload) or the manager is freed */
};

/* A token as handed out. `token` is borrowed: valid until control returns to the event
 * loop or another token_* call is made; copy it (into the Authorization header) at once. */
struct token_view {
    const char *token;
    size_t len;
    int64_t expires_at;  /* unix seconds */
    uint64_t generation; /* pass to token_invalidate when D365 answers 401 */
};

/* view is non-NULL only with TOKEN_OK. Must not free the manager or reload it. */
typedef void token_cb(void *arg, enum token_status st, const struct token_view *view);

/* Creates a manager for every environment of `conf` (borrowed during the call; the
 * manager copies what it needs) on `base` (borrowed, must outlive it), loads each
 * credential and starts fetching at once (warm-up). Returns NULL on bad options or out
 * of memory (the reason is logged). */
struct token_mgr *token_mgr_new(struct event_base *base, const struct conf *conf,
                                const struct token_options *opts);

/* Frees the manager: pending waiters get TOKEN_CLOSED, requests in flight are cancelled,
 * tokens and secrets wiped. NULL is a no-op. Not from inside a callback. */
void token_mgr_free(struct token_mgr *m);

/* Applies a new config snapshot (borrowed during the call): environments whose identity
 * (tenant, client id, resource, endpoint, version) is unchanged keep their token; every
 * credential is re-read; an environment that is failing retries at once (so fixing the
 * secret file and reloading recovers without restart); removed or changed environments
 * close (their waiters get TOKEN_CLOSED). Returns 0, or -1 out of memory (nothing
 * changed). Not from inside a callback. */
int token_mgr_reload(struct token_mgr *m, const struct conf *conf);

/* Gets the token of environment `env`. If a usable one is cached, fills *out and returns
 * TOKEN_OK (cb is not called). Otherwise, if wait_ms > 0 and a fetch can still succeed,
 * queues the call and returns TOKEN_PENDING: cb(arg, ...) runs exactly once, later, with
 * TOKEN_OK, or TOKEN_UNAVAILABLE when the fetch failed or wait_ms passed, or TOKEN_CLOSED;
 * *wait (if wait is not NULL) is then a handle for token_cancel, valid until cb runs.
 * Other returns: TOKEN_UNAVAILABLE, TOKEN_BUSY, TOKEN_NO_ENV (cb is not called). */
enum token_status token_get(struct token_mgr *m, const char *env, unsigned wait_ms,
                            token_cb *cb, void *arg, struct token_view *out,
                            struct token_wait **wait);

/* Withdraws a queued call (the client went away): its cb is never called. */
void token_cancel(struct token_wait *w);

/* D365 answered 401 to a request sent with the token of `generation`. If that token is
 * still the current one, drops it (also in the shared cache's eyes) and starts ONE
 * refresh; later calls with the same generation do nothing. Returns 1 if this call
 * invalidated, 0 if it was stale, -1 if there is no such environment. */
int token_invalidate(struct token_mgr *m, const char *env, uint64_t generation);

/* True if every environment has a usable token. If why is not NULL, stores a new JSON
 * object {env: reason} of the environments that are not ready (empty when ready). */
bool token_mgr_ready(const struct token_mgr *m, json_t **why);

/* The reason an environment is not ready ("starting", "unreachable", "wrong_secret", ...),
 * or "ok"; NULL if there is no such environment. Static storage. */
const char *token_reason(const struct token_mgr *m, const char *env);

/* What a person should do about the environment's current failure (one sentence, worded
 * for its credential kind), or NULL if it is ready, starting, or there is no such
 * environment. Static storage. */
const char *token_hint(const struct token_mgr *m, const char *env);

/* Admin view, a new JSON array with one object per environment: environment, ready,
 * reason, token_present, expires_in_s, generation, last_refresh, last_error {reason,
 * aadsts, http_status, error, at, hint, detail}, credential, next_attempt_in_ms, fetching, waiters, counters
 * {fetches, failures, share_hits, shared_publishes, refreshes, invalidations,
 * by_reason {...}}. Never a token or secret. */
json_t *token_mgr_status(const struct token_mgr *m);

#endif
