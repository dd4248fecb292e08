/* histidem: Idempotency-Key records of enqueues, in Redis beside the history (the key's
 * SHA-256 only; names and values from cache/pkgkey, owner-checked leases from
 * cache/pkgstore, as the package imports use them):
 *   fogate:pkg:idem:<job>:<sha256 of key> = "R <record id>"                 in flight
 *                                         = "D <sha256 of body> <msg>,<rid>" done
 * A reservation lives packages.lock_lease_ms and is renewed while its enqueue runs, so a
 * crashed instance's key frees itself; a done record lives history.retention_days.
 * Invariant: a key is reserved before any byte goes to D365, and only its owner (the
 * record id) completes or drops it. */
#ifndef FOGATE_HISTIDEM_H
#define FOGATE_HISTIDEM_H

#include <stddef.h>

#include "histrec.h"

struct history;
struct histidem_op;
struct histidem_hold;

enum histidem_verdict {
    HISTIDEM_NEW,      /* reserved for us: go on (a hold keeps it alive) */
    HISTIDEM_BUSY,     /* an enqueue with this key is in flight (409) */
    HISTIDEM_DONE,     /* enqueued before: msg_id, record_id, sha256 are the first's */
    HISTIDEM_DOWN,     /* Redis unavailable or the key unusable: nothing reserved (503) */
};

struct histidem_res {
    enum histidem_verdict verdict;
    struct histidem_hold *hold;       /* NEW: owned by the caller (histidem_done/_drop) */
    char msg_id[64];                  /* DONE */
    char record_id[HISTREC_ID_SIZE];  /* DONE */
    unsigned char sha256[32];         /* DONE */
};

/* `res` is borrowed for the call (take res->hold out of it). */
typedef void histidem_cb(void *arg, const struct histidem_res *res);

/* Looks the key (`len` bytes of `key`, hashed at once) of job `job` up and, when free,
 * reserves it for record `rid`. Returns the op (until its callback returns or
 * histidem_cancel) or NULL (h NULL, bad job name, out of memory): cb is never called. */
struct histidem_op *histidem_begin(struct history *h, const char *job, const char *key,
                                   size_t len, const char *rid, histidem_cb *cb, void *arg);

/* Withdraws op: no callback. A reservation it makes meanwhile is released. NULL: no-op. */
void histidem_cancel(struct histidem_op *op);

/* The enqueue behind `hold` got message `msg_id` for a body of SHA-256 `sha256`: the
 * reservation becomes the done record. Frees hold. */
void histidem_done(struct histidem_hold *hold, const char *msg_id,
                   const unsigned char sha256[32]);

/* Nothing was enqueued: the reservation is released. Frees hold. NULL is a no-op. */
void histidem_drop(struct histidem_hold *hold);

#endif
