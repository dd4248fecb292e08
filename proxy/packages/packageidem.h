/* packageidem: Idempotency-Key records of package imports, in memory (one instance):
 * (scope, key) -> SHA-256 of the package and the execution id fogate chose for it.
 * A record is reserved when an import starts (content unknown) and completed when the
 * package is uploaded, so a second request with the same key during the first sees it.
 * Invariant: at most `max` records, each dropped `ttl_s` after it was made; no I/O. */
#ifndef FOGATE_PACKAGEIDEM_H
#define FOGATE_PACKAGEIDEM_H

#include <stdbool.h>
#include <stddef.h>

#define PACKAGEIDEM_KEY_MAX 256     /* scope or key, NUL included */

struct packageidem;

/* A store of at most `max` records living `ttl_s` seconds. NULL when out of memory. */
struct packageidem *packageidem_new(size_t max, unsigned ttl_s);

/* NULL is a no-op. */
void packageidem_free(struct packageidem *pi);

enum packageidem_verdict {
    PACKAGEIDEM_NEW,        /* no record: reserved now for `exec_id` */
    PACKAGEIDEM_PENDING,    /* a request with this key is still uploading */
    PACKAGEIDEM_DONE,       /* a completed record: *exec_id and *sha256 are its own */
    PACKAGEIDEM_FULL,       /* no room (all records younger than ttl_s) or no memory */
};

/* Looks (scope, key) up at time `now` (seconds); when absent reserves it for `exec_id`
 * (copied). On DONE, *exec_id_out and *sha256_out point into the store (valid until the
 * next call). Keys and scopes over PACKAGEIDEM_KEY_MAX - 1 bytes are FULL. */
enum packageidem_verdict packageidem_begin(struct packageidem *pi, const char *scope,
                                           const char *key, const char *exec_id, double now,
                                           const char **exec_id_out,
                                           const unsigned char **sha256_out);

/* Completes the reservation of (scope, key) with the package's SHA-256 (32 bytes). */
void packageidem_complete(struct packageidem *pi, const char *scope, const char *key,
                          const unsigned char sha256[32]);

/* Drops the record of (scope, key) (the import failed before D365 got it). */
void packageidem_drop(struct packageidem *pi, const char *scope, const char *key);

/* Records held now (expired ones included until reused). */
size_t packageidem_count(const struct packageidem *pi);

#endif
