/* simpleack: the original dequeue bodies of exports handed out by /v1/jobs/{job}/next,
 * kept until the consumer acks, so fogate can ack upstream byte for byte (reference §3.4).
 * In memory, capped in entries and bytes per body, entries expire after a TTL.
 * This is the seam for the ack ledger: a Redis-backed store replaces this module's four
 * calls (put, get, remove, count) and nothing else changes.
 * Invariant: pure, no I/O; time is passed in. */
#ifndef FOGATE_SIMPLEACK_H
#define FOGATE_SIMPLEACK_H

#include <stddef.h>

struct simpleack;

/* A store of at most `max_entries` bodies of at most `max_body_bytes` each, which expire
 * `ttl_s` seconds after they were put. NULL when out of memory. Free with simpleack_free. */
struct simpleack *simpleack_new(size_t max_entries, size_t max_body_bytes, unsigned ttl_s);

/* Frees the store and every body. NULL is a no-op. */
void simpleack_free(struct simpleack *s);

/* Remembers a copy of `body` (`len` bytes) for message `id` of job `job` (both copied) at
 * time `now` (seconds, monotonic), replacing an earlier body for the same pair. Expired
 * entries go first; when the store is full the oldest entry is dropped. Returns 0, or -1
 * when the body is over max_body_bytes or memory ran out (nothing stored). */
int simpleack_put(struct simpleack *s, const char *job, const char *id, const char *body,
                  size_t len, double now);

/* The body remembered for (job, id) and not expired at `now`, with its length in *len;
 * borrowed until the next put or remove. NULL when unknown or expired. */
const char *simpleack_get(struct simpleack *s, const char *job, const char *id, double now,
                          size_t *len);

/* Forgets (job, id). Returns 0, or -1 when it was not there. */
int simpleack_remove(struct simpleack *s, const char *job, const char *id);

/* Entries held (expired ones included until a put or get drops them). */
size_t simpleack_count(const struct simpleack *s);

#endif
