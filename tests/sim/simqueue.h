/* simqueue: the recurring-integration message store and its state machine (pure: every
 * call takes `now`; no I/O except unlinking message files on free).
 *
 *   export: Enqueued --dequeue--> Dequeued --download--> Downloaded --ack--> Acked
 *              ^                      |  (no ack within the visibility timeout:
 *              +----------------------+   visible again, same blob, new PopReceipt)
 *   import: Enqueued -> Processing -> Processed | ProcessedWithErrors   (by elapsed time)
 */
#ifndef SIMQUEUE_H
#define SIMQUEUE_H

#include <stddef.h>

#define SIMQUEUE_STALE 8

enum simqueue_state { SQ_ENQUEUED, SQ_DEQUEUED, SQ_DOWNLOADED, SQ_ACKED };
enum simqueue_import { SQI_ENQUEUED, SQI_PROCESSING, SQI_PROCESSED, SQI_ERRORS };
enum simqueue_ack { SQA_OK, SQA_ALREADY, SQA_STALE, SQA_UNKNOWN };

struct simqueue_msg {
    char id[37];              /* message id (export: the first CorrelationId) */
    char job[37];             /* activity id, canonical */
    int is_export;
    char *path;               /* owned: file holding the bytes */
    long long size;
    long long lines;
    char *entity, *company, *external_id; /* owned, may be NULL */
    double created;
    /* export */
    enum simqueue_state state;
    char correlation[37];
    char pop[64];
    char stale_pops[SIMQUEUE_STALE][64];
    char old_corr[SIMQUEUE_STALE][37];
    int nstale, nold;
    char blob[37];
    double visible_at, last_dequeue, prev_dequeue; /* 0 = never */
    int dequeues;
    long downloads;
    /* import */
    char execution_id[128];
    int has_errors;
    struct simqueue_msg *next;
};

struct simqueue;

struct simqueue *simqueue_new(void);
/* Frees all messages and unlinks their files. NULL is a no-op. */
void simqueue_free(struct simqueue *q);
/* Drops every message (files unlinked). */
void simqueue_clear(struct simqueue *q);

/* Adds a message owning `path` (copied). Strings are copied; NULL allowed. Returns the
 * message (borrowed from q) or NULL on allocation failure. */
struct simqueue_msg *simqueue_add(struct simqueue *q, const char *job, int is_export,
                                  const char *path, long long size, const char *entity,
                                  const char *company, const char *external_id, double now);

/* The next visible export message of `job`, marked dequeued until now + visibility. On a
 * redelivery with change_corr the CorrelationId is renewed. NULL when none is visible. */
struct simqueue_msg *simqueue_dequeue(struct simqueue *q, const char *job, double now,
                                      double visibility, int change_corr);

/* Ack by CorrelationId (current or a previous one) and PopReceipt. */
enum simqueue_ack simqueue_ack(struct simqueue *q, const char *corr, const char *pop);

struct simqueue_msg *simqueue_find(struct simqueue *q, const char *id);
/* The import message whose execution id is `exec`, or NULL. */
struct simqueue_msg *simqueue_by_execution(struct simqueue *q, const char *exec);
struct simqueue_msg *simqueue_find_blob(struct simqueue *q, const char *blob);

/* Import processing status at `now`. */
enum simqueue_import simqueue_import_status(const struct simqueue_msg *m, double now,
                                            double enqueued_secs, double processing_secs);
/* 1 when the message's blob is past retention at `now`. */
int simqueue_blob_expired(const struct simqueue_msg *m, double now, double retention);

/* Number of messages. */
size_t simqueue_count(const struct simqueue *q);

#endif
