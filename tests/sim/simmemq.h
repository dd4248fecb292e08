/* simmemq: export messages generated on demand, for load tests (opt-in with
 * `POST /_sim/exports/{activity}/bulk?memory=1`). A job holds a count of messages that
 * exist only as a sequence number: CorrelationId, PopReceipt and blob id are derived from
 * (per-job random nonce, number), so a dequeue costs no search and no file, and an ack
 * is checked by recomputing the PopReceipt (one bit per message records acks).
 * Invariant: number n is handed out at most once (no visibility timeout, no redelivery). */
#ifndef SIMMEMQ_H
#define SIMMEMQ_H

#include <stddef.h>

#define SIMMEMQ_MAX_JOBS 16
#define SIMMEMQ_MAX_COUNT 100000000LL  /* messages per job over its life */
#define SIMMEMQ_MAX_SIZE (1 << 20)     /* bytes of one message's download */

struct simmemq;

/* One message handed out (all canonical lower-case GUIDs; pop is base64, 28 chars). */
struct simmemq_msg {
    char correlation[37];
    char blob[37];
    char pop[29];
    long long size;
};

enum simmemq_ack { SMQ_OK, SMQ_ALREADY, SMQ_UNKNOWN };

struct simmemq *simmemq_new(void);
/* NULL is a no-op. */
void simmemq_free(struct simmemq *q);
/* Forgets every job (control API reset). */
void simmemq_clear(struct simmemq *q);

/* Adds `count` messages of `size` bytes to export job `job` (canonical GUID). The size of
 * the last call applies to messages not yet handed out. Returns 0, or -1 when over
 * SIMMEMQ_MAX_JOBS / SIMMEMQ_MAX_COUNT / SIMMEMQ_MAX_SIZE or out of memory. */
int simmemq_add(struct simmemq *q, const char *job, long long count, long long size);

/* The next message of `job` into *out: 0, or -1 when the job has none left. */
int simmemq_dequeue(struct simmemq *q, const char *job, struct simmemq_msg *out);

/* An ack by CorrelationId (any GUID spelling) and PopReceipt of a message handed out. */
enum simmemq_ack simmemq_ack(struct simmemq *q, const char *corr, const char *pop);

/* The download size of blob `blob` (any GUID spelling) if it belongs to a message handed
 * out, else -1; then writes that message's CorrelationId (its message id) into corr
 * (37 bytes) unless corr is NULL. */
long long simmemq_blob_size(const struct simmemq *q, const char *blob, char *corr);

/* Messages left (not handed out) over all jobs, and handed out so far. */
long long simmemq_left(const struct simmemq *q);
long long simmemq_handed(const struct simmemq *q);

#endif
