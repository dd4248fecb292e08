/* fairq: requests waiting for a D365 budget slot, grouped by job and served round-robin
 * across jobs (FIFO within a job), so one busy job cannot starve the others; each job's
 * queue is bounded. Pure: no I/O, no clock. Invariant: an item is in at most one queue, and
 * a job with no waiting item holds no memory. */
#ifndef FOGATE_FAIRQ_H
#define FOGATE_FAIRQ_H

#include <stddef.h>

#define FAIRQ_JOB_MAX 80 /* longest job name kept (longer names are cut) */

struct fairq;
struct fairq_job;

/* Embedded in the caller's waiter; zero it before fairq_push. */
struct fairq_item {
    struct fairq_item *prev, *next; /* within the job, borrowed */
    struct fairq_job *job;          /* borrowed; NULL while not queued */
};

/* A queue holding at most `per_job` items per job and `max_jobs` jobs with waiters.
 * Returns NULL when out of memory. */
struct fairq *fairq_new(size_t per_job, size_t max_jobs);

/* Frees the queue and its job records; items still queued are only unlinked (they belong
 * to the caller). NULL is a no-op. */
void fairq_free(struct fairq *q);

/* Appends `it` to job `job`'s queue. Returns 0, or -1 when that queue (or the job table)
 * is full or memory ran out; `it` is then not queued. */
int fairq_push(struct fairq *q, const char *job, struct fairq_item *it);

/* Takes the first item of the next job in the rotation (the job after the one served last
 * with items left), or NULL when empty. */
struct fairq_item *fairq_pop(struct fairq *q);

/* Takes `it` out wherever it is; a no-op when it is not queued. */
void fairq_remove(struct fairq *q, struct fairq_item *it);

/* Items queued in all jobs, and in job `job`. */
size_t fairq_len(const struct fairq *q);
size_t fairq_job_len(const struct fairq *q, const char *job);

#endif
