/* pkgstore: owner-checked leases on Redis keys for package imports shared between fogate
 * instances (the per-environment import lock, Idempotency-Key records; names and values
 * from pkgkey.h). Every write is one atomic command or Lua script that compares the
 * current value first, so an instance never touches a key another one took over.
 * Invariant: each accepted operation calls back exactly once, later (rconn's contract);
 * an operation's state lives in its own allocation, never in the store. */
#ifndef FOGATE_PKGSTORE_H
#define FOGATE_PKGSTORE_H

#include <stddef.h>

struct rconn;
struct rconn_script;
struct pkgstore;

enum pkgstore_result {
    PKGSTORE_OK,        /* take: the key was free and is now ours; renew/swap/release: done */
    PKGSTORE_HELD,      /* take: the key exists (its value is passed); others: not ours */
    PKGSTORE_ERROR,     /* Redis unavailable, timed out, refused, or being freed */
};

/* `val` (take with HELD: the current value) is borrowed for the call; NULL otherwise. */
typedef void pkgstore_done(void *arg, enum pkgstore_result res, const char *val, size_t len);

/* A store on `conn` (borrowed; it must outlive every pending operation). timeout_ms <= 0
 * uses the connection's command timeout. NULL when out of memory or conn is NULL. */
struct pkgstore *pkgstore_new(struct rconn *conn, int timeout_ms);

/* NULL is a no-op. Pending operations still complete. */
void pkgstore_free(struct pkgstore *ps);

/* Each operation returns 0 (done is called exactly once, later) or -1 (bad arguments, out
 * of memory, connection being freed: done is never called). `done` may be NULL for a
 * release nobody waits for. Keys and values are borrowed for the call. */

/* Sets `key` to `val` with a lease of ttl_ms if it does not exist; else HELD with the
 * current value. */
int pkgstore_take(struct pkgstore *ps, const char *key, const char *val, unsigned ttl_ms,
                  pkgstore_done *done, void *arg);

/* Extends `key`'s lease to ttl_ms if it still holds `val`. */
int pkgstore_renew(struct pkgstore *ps, const char *key, const char *val, unsigned ttl_ms,
                   pkgstore_done *done, void *arg);

/* Replaces `old` by `val` with a lease of ttl_ms if `key` still holds `old`. */
int pkgstore_swap(struct pkgstore *ps, const char *key, const char *old, const char *val,
                  unsigned ttl_ms, pkgstore_done *done, void *arg);

/* Deletes `key` if it still holds `val`. */
int pkgstore_release(struct pkgstore *ps, const char *key, const char *val,
                     pkgstore_done *done, void *arg);

/* The four scripts (static storage), for tests: 0 take, 1 renew, 2 swap, 3 release;
 * NULL past the last. Their SHA1s are hard-coded. */
const struct rconn_script *pkgstore_script(unsigned i);

#endif
