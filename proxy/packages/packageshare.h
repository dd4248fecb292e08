/* packageshare: the state package imports share, behind one interface with two
 * implementations: in memory (one process, one worker: Idempotency-Key records in
 * packageidem, the local queue is the only lock) and in Redis with packages.shared
 * (several instances or workers: cache/pkgstore leases on fogate:pkg:lock:<env> and
 * fogate:pkg:idem:<scope>:<sha256 of key>, renewed while held, expiring after a crash).
 * Invariant: an operation's callback runs exactly once, later, unless it was cancelled;
 * Redis failures are reported as PACKAGESHARE_DOWN (imports fail closed). */
#ifndef FOGATE_PACKAGESHARE_H
#define FOGATE_PACKAGESHARE_H

#include <stdbool.h>

#include <event2/event.h>

#include "conf.h"

struct packageshare;
struct packageshare_op;

enum packageshare_result {
    PACKAGESHARE_OK,      /* begin: reserved for us; lock: held; complete: recorded */
    PACKAGESHARE_BUSY,    /* begin: another request holds this key and is not done */
    PACKAGESHARE_DONE,    /* begin: done earlier: exec_id and sha256 are the first's */
    PACKAGESHARE_FULL,    /* begin: the in-memory store is full */
    PACKAGESHARE_TIMEOUT, /* lock: not ours within the wait */
    PACKAGESHARE_DOWN,    /* Redis unavailable, or our reservation was lost meanwhile */
};

struct packageshare_res {
    enum packageshare_result result;
    const char *exec_id;          /* DONE: borrowed for the call; else NULL */
    const unsigned char *sha256;  /* DONE: 32 bytes, borrowed for the call; else NULL */
};

typedef void packageshare_cb(void *arg, const struct packageshare_res *res);

/* The shared state on `base` (borrowed) for `conf` (borrowed for the call: Redis from
 * conf->redis when packages.shared, leases from conf->packages), remembering at most
 * idem_max keys (memory) for idem_ttl_s seconds. NULL on failure (logged). */
struct packageshare *packageshare_new(struct event_base *base, const struct conf *conf,
                                      size_t idem_max, unsigned idem_ttl_s);

/* Cancels every operation (callbacks are not called) and frees `ps`; leases still held
 * are left to expire. NULL is a no-op. */
void packageshare_free(struct packageshare *ps);

/* True iff the state lives in Redis. */
bool packageshare_shared(const struct packageshare *ps);

/* Every operation below returns a handle (owned by `ps` until the callback has run or
 * packageshare_cancel) or NULL (bad arguments, out of memory: cb is never called).
 * Strings are copied. */

/* Looks the Idempotency-Key (scope, key) up; when absent reserves it for exec_id (the
 * reservation is kept alive until complete or drop). */
struct packageshare_op *packageshare_begin(struct packageshare *ps, const char *scope,
                                           const char *key, const char *exec_id,
                                           packageshare_cb *cb, void *arg);

/* Turns our reservation of (scope, key) into a done record of exec_id with the package's
 * SHA-256 (kept idem_ttl_s). OK, or DOWN when it cannot be recorded. */
struct packageshare_op *packageshare_complete(struct packageshare *ps, const char *scope,
                                              const char *key, const char *exec_id,
                                              const unsigned char sha256[32],
                                              packageshare_cb *cb, void *arg);

/* Drops our record of (scope, key) for exec_id: the reservation (sha256 NULL: the import
 * failed before D365 got it), or the done record with that SHA-256 (D365 refused the
 * import without starting it). Best effort: a lost reservation expires after the lease. */
void packageshare_drop(struct packageshare *ps, const char *scope, const char *key,
                       const char *exec_id, const unsigned char *sha256);

/* Takes the import lock of `env` for `owner` (the execution id), waiting up to wait_ms.
 * OK (held, renewed until unlock), TIMEOUT or DOWN. In memory it is granted at once:
 * the caller's local queue serialises. */
struct packageshare_op *packageshare_lock(struct packageshare *ps, const char *env,
                                          const char *owner, unsigned wait_ms,
                                          packageshare_cb *cb, void *arg);

/* Releases the lock of `env` if `owner` still holds it. */
void packageshare_unlock(struct packageshare *ps, const char *env, const char *owner);

/* Stops a pending operation: its callback is never called. NULL is a no-op. */
void packageshare_cancel(struct packageshare_op *op);

#endif
