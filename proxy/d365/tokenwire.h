/* tokenwire: builds the token manager of an app: its transport (POST form on
 * upstream_fetch) and, when tokens.cache_key_file is set, the shared token cache on a
 * Redis connection (rconn + tokenshare). Redis unavailable -> each instance fetches for
 * itself (the token manager falls back on share errors).
 * Invariant: the form body (it holds the secret) and the token response are wiped after
 * use; nothing here logs either. */
#ifndef FOGATE_TOKENWIRE_H
#define FOGATE_TOKENWIRE_H

struct conf;
struct event_base;
struct token_mgr;
struct upstream;
struct tokenwire;

/* Builds everything for `conf` (borrowed during the call) on `base` and `up` (borrowed,
 * must outlive the result). Returns NULL after logging why. */
struct tokenwire *tokenwire_new(struct event_base *base, struct upstream *up,
                                const struct conf *conf);

/* The token manager (owned by tw). */
struct token_mgr *tokenwire_mgr(const struct tokenwire *tw);

/* True when tokens are shared through Redis. */
int tokenwire_shared(const struct tokenwire *tw);

/* Frees the manager, the pending token requests, the share store and the Redis
 * connection. NULL is a no-op. Not from inside a callback. */
void tokenwire_free(struct tokenwire *tw);

#endif
