/* budgetlua: the Redis side of the D365 budget and the cluster throttle gate of one D365
 * identity (environment URL + Entra app): key names, the Lua scripts and their replies.
 * Pure: no I/O. Invariant: time is the Redis server's (TIME), so every instance judges
 * leases, windows and gates by one clock.
 *
 * Keys (one hash tag per identity, so they also sit in one Redis Cluster slot):
 *   fogate:d365:{<id>}:sem   sorted set: lease id -> lease end (ms)   (the semaphore)
 *   fogate:d365:{<id>}:win   sorted set: lease id -> grant time (ms)  (the window)
 *   fogate:d365:{<id>}:gate  string with PX = D365's Retry-After       (the 429 gate)
 * where <id> is 16 hex digits of SHA-256(resource "\n" client_id).
 *
 * Scripts:
 *   ACQUIRE KEYS sem win gate; ARGV conc rate window_ms lease_ms lease_id
 *           -> {1, 0} granted | {0, 0} concurrency used up | {0, ms} window full for ms
 *              | {-1, ms} gate closed for ms (nothing recorded unless granted)
 *   RENEW   KEYS sem; ARGV lease_ms id... -> number of leases still held (extended)
 *   RELEASE KEYS sem; ARGV id             -> 1 | 0
 *   CLOSE   KEYS gate; ARGV ms            -> the gate's ms left after the call
 *           (set when longer than what is left: a gate only ever extends)
 *   PEEK    KEYS gate... -> {ms left or 0, ...} */
#ifndef FOGATE_BUDGETLUA_H
#define FOGATE_BUDGETLUA_H

#include <stddef.h>
#include <stdint.h>
#include <hiredict/hiredict.h>

#define BUDGETLUA_KEY_SIZE 48

enum budgetlua_id { BUDGETLUA_ACQUIRE, BUDGETLUA_RENEW, BUDGETLUA_RELEASE, BUDGETLUA_CLOSE,
                    BUDGETLUA_PEEK, BUDGETLUA_COUNT };

struct budgetlua_keys {
    char sem[BUDGETLUA_KEY_SIZE], win[BUDGETLUA_KEY_SIZE], gate[BUDGETLUA_KEY_SIZE];
};

/* The script text (static storage), or NULL when id is out of range. */
const char *budgetlua_script(enum budgetlua_id id);

/* Fills the keys of the identity (resource, client_id), both borrowed. Returns 0 or -1. */
int budgetlua_keys(const char *resource, const char *client_id, struct budgetlua_keys *out);

enum budgetlua_verdict {
    BUDGETLUA_GRANTED,
    BUDGETLUA_BUSY,      /* concurrency used up: ask again after a release */
    BUDGETLUA_RATE,      /* window full: *ms until a place frees */
    BUDGETLUA_GATED,     /* the 429 gate is closed: *ms left */
    BUDGETLUA_BAD,       /* not a reply of ACQUIRE (an error reply, a wrong shape) */
};

/* Reads an ACQUIRE reply (borrowed). Sets *ms for RATE and GATED (>= 1), else 0. */
enum budgetlua_verdict budgetlua_acquire_reply(const redictReply *r, int64_t *ms);

/* Reads a PEEK reply (borrowed) into ms[0..n): ms left per gate (0 when open). Returns 0,
 * or -1 when the reply is not an array of n integers. */
int budgetlua_peek_reply(const redictReply *r, int64_t *ms, size_t n);

#endif
