/* history: the record of every file through fogate, kept in Redis and shared by every
 * instance (docs/history.md): the features call the history_* recorders below; the
 * /v1/history routes read pages and records back; a background follow-up polls each
 * import's status until it is final.
 * Invariant: recording never blocks or fails a transfer. Every write is fire-and-forget
 * with its own timeout; a write that cannot be made is counted in the stats, not retried.
 * A NULL history (history.enabled false) is accepted everywhere and records nothing. */
#ifndef FOGATE_HISTORY_H
#define FOGATE_HISTORY_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "conf.h"
#include "histrec.h"
#include "upcall.h"

#define HISTORY_ID_SIZE HISTREC_ID_SIZE

struct history;

/* Plain per-worker counters (no lock: read on the worker's thread, summed by the reader). */
struct history_stats {
    unsigned long writes;        /* history writes Redis applied */
    unsigned long lost;          /* writes not recorded: Redis down, timed out or refused */
    unsigned long follow_polls;  /* background status polls made */
    unsigned long follow_final;  /* imports the follow-up saw become final */
    unsigned long receipts_sent; /* receipts a receiver took (2xx) */
    unsigned long receipts_given_up; /* receipts dropped after receipts.max_attempts */
};

/* The history of this worker on `base`, polling D365 through `uc` (both borrowed, must
 * outlive it), for `conf` (borrowed: Redis settings read now; history.* while running).
 * Returns NULL when history.enabled is false or on failure (logged): both mean "off". */
struct history *history_new(struct event_base *base, struct upcall_ctx *uc,
                            const struct conf *conf);

/* A new config snapshot (borrowed) from now on. NULL h is a no-op. */
void history_set_conf(struct history *h, const struct conf *conf);

/* Stops the follow-up, drops pending writes (counted lost) and frees h. NULL is a no-op. */
void history_free(struct history *h);

/* Fills *out (zeros for NULL h). */
void history_get_stats(const struct history *h, struct history_stats *out);

/* ---- recorders (all strings borrowed for the call; NULL strings are left out) ---- */

/* A new random record id (32 hex digits). */
void history_id_new(char id[HISTORY_ID_SIZE]);

/* An import file arrived: creates its record now (received time, indexed by environment
 * and job). `via`: "simple", "passthru" or "package". Uses id when it is not "" (from
 * history_id_new), else fills it with a new one; "" when h is NULL. */
void history_received(struct history *h, const char *env, const char *job,
                      const char *client, const char *via, const char *file_name,
                      char id[HISTORY_ID_SIZE]);

/* D365 took import `id` as message `msg_id` (size bytes, SHA-256 in hex): status
 * "Enqueued", sent time; the message is followed in the background until final. */
void history_sent(struct history *h, const char *id, const char *env, const char *msg_id,
                  uint64_t size, const char *sha256_hex);

/* An enqueue repeated import `id`'s Idempotency-Key and content: counted in the record
 * (idempotent_replays); nothing was sent. */
void history_replayed(struct history *h, const char *id);

/* Package import `id` was taken by D365 as execution `exec_id` (ImportFromPackage): as
 * history_sent, the execution followed with the poll set by history_set_exec_poll. */
void history_sent_exec(struct history *h, const char *id, const char *env,
                       const char *exec_id, uint64_t size, const char *sha256_hex);

struct msgwait_opts;

/* How package executions are polled (GetExecutionSummaryStatus; `opts` static, from the
 * package API, which knows their final statuses). Until set, package imports are not
 * followed in the background. NULL h is a no-op. */
void history_set_exec_poll(struct history *h, const struct msgwait_opts *opts);

/* A package export (ExportToPackage) of definition group `group` was asked for by
 * `client` on `job`: creates its
 * record now (direction export, via package, status "Requested", indexed), id as for
 * history_received. D365's answer follows as history_sent_exec (status "Started", the
 * execution followed until final, errors fetched unless Succeeded) or
 * history_export_failed. */
void history_export_requested(struct history *h, const char *env, const char *job,
                              const char *client, const char *group,
                              char id[HISTORY_ID_SIZE]);

/* Package export `id` was not started (code: fogate's error code): status "NotStarted",
 * final. */
void history_export_failed(struct history *h, const char *id, const char *code);

/* The package of execution `exec_id` (environment `env`) went out whole to `client`
 * (size bytes, SHA-256 hex or NULL, taken as it streamed): delivered time, delivered_to,
 * deliveries + 1, size, sha256 of the record the execution maps to (none: nothing). */
void history_package_delivered(struct history *h, const char *env, const char *exec_id,
                               const char *client, uint64_t size, const char *sha256_hex);

/* Import `id` never reached D365 (code: fogate's error code) or was answered from an
 * earlier enqueue (Idempotency-Key replay: code "replayed", msg_id the first message). */
void history_failed(struct history *h, const char *id, const char *code, uint64_t size,
                    const char *sha256_hex);

/* Message `msg_id` of environment `env` has status `status` (final or not), as seen by a
 * client's status poll or the follow-up. Unknown messages are ignored. */
void history_status(struct history *h, const char *env, const char *msg_id,
                    const char *status, bool final);

/* Export message `msg_id` went out whole to `client` (size bytes, SHA-256 hex or NULL):
 * creates the record on the first delivery, counts deliveries. */
void history_delivered(struct history *h, const char *env, const char *job,
                       const char *client, const char *msg_id, uint64_t size,
                       const char *sha256_hex);

/* A pass-through dequeue handed export message `msg_id` of `job` to `client` (the file
 * itself is history_delivered when its download goes through fogate): creates the record
 * (indexed) if needed, dequeued time, delivered_to; status "Dequeued" unless it has one. */
void history_dequeued(struct history *h, const char *env, const char *job,
                      const char *client, const char *msg_id);

/* The consumer `client` confirmed export `msg_id` (ack through fogate). With `job`
 * (NULL: unknown here) the record is made and indexed if no delivery made it. */
void history_confirmed(struct history *h, const char *env, const char *job,
                       const char *msg_id, const char *client);

/* D365 took the upstream ack of export `msg_id`; `job` as for history_confirmed. */
void history_acked(struct history *h, const char *env, const char *job, const char *msg_id);

/* ---- reads ---- */

struct history_op;

/* status 0: `result` (borrowed for the call) is the page {"records":[..],"next_cursor":..}
 * or the record (NULL: no such record); status -1: Redis unavailable. */
typedef void history_done(void *arg, int status, const json_t *result);

/* A page of the records of the jobs `jobs` (n_jobs names, borrowed for the call) passing
 * `f`, newest first. Returns the op (valid until its callback returns or history_cancel),
 * or NULL (h NULL, out of memory, connection being freed): cb is never called then. */
struct history_op *history_page(struct history *h, const char *const *jobs, size_t n_jobs,
                                const struct histrec_filter *f, history_done *cb, void *arg);

/* The record `id` (32 hex digits). As history_page. */
struct history_op *history_get(struct history *h, const char *id, history_done *cb,
                               void *arg);

/* Today's (UTC, the Redis server's clock) counts of records that turned final, per job
 * and final status, cluster-wide, and each job's newest record time: result
 * {"date", "time_zone": "UTC", "jobs": {job: {"counts": {status: n}, "last_ms": ms|null}}}
 * for every job of the current config. As history_page. */
struct history_op *history_today(struct history *h, history_done *cb, void *arg);

/* Withdraws op: no callback afterwards. NULL is a no-op. */
void history_cancel(struct history_op *op);

/* The largest page size (history.max_page); 0 for NULL h. */
unsigned history_max_page(const struct history *h);



/* ---- for the history's own modules (histfollow, histidem) ---- */

struct pkgstore;

/* The history's lease store on its Redis connection (owned by h), its loop and its
 * current config. */
struct pkgstore *history_store(struct history *h);
struct event_base *history_base(struct history *h);
const struct conf *history_conf(const struct history *h);

/* Import `id` ended with errors: the execution id and D365's error text (stored as
 * given; JSON when D365's text is). NULL h is a no-op. */
void history_errors(struct history *h, const char *id, const char *exec_id,
                    const char *errors);

/* Marks import `id` as no longer followed (history.follow_hours passed). */
void history_unfollowed(struct history *h, const char *id);

/* Sets (or, for "+f", increments; for "-f", adds to the set f) one field of record `id`. */
void history_note(struct history *h, const char *id, const char *field, const char *value);

/* Counts one background poll of import `id` (the follow-up's backoff step). */
void history_polled(struct history *h, const char *id);
#endif
