/* simqueue: message store and state machine. See simqueue.h. */
#include "simqueue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "simguid.h"

struct simqueue {
    struct simqueue_msg *head, *tail; /* owned, in creation order */
    size_t n;
};

struct simqueue *simqueue_new(void)
{
    return calloc(1, sizeof(struct simqueue));
}

static void msg_free(struct simqueue_msg *m)
{
    if (m->path)
        unlink(m->path);
    free(m->path);
    free(m->entity);
    free(m->company);
    free(m->external_id);
    free(m);
}

void simqueue_clear(struct simqueue *q)
{
    while (q->head) {
        struct simqueue_msg *m = q->head;
        q->head = m->next;
        msg_free(m);
    }
    q->tail = NULL;
    q->n = 0;
}

void simqueue_free(struct simqueue *q)
{
    if (!q)
        return;
    simqueue_clear(q);
    free(q);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* An Azure-queue-like pop receipt: base64 of 20 random bytes (28 characters). */
static void new_pop(char out[64])
{
    unsigned char b[20];
    RAND_bytes(b, sizeof(b));
    EVP_EncodeBlock((unsigned char *)out, b, sizeof(b));
}

struct simqueue_msg *simqueue_add(struct simqueue *q, const char *job, int is_export,
                                  const char *path, long long size, const char *entity,
                                  const char *company, const char *external_id, double now)
{
    struct simqueue_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    simguid_new(m->id);
    snprintf(m->job, sizeof(m->job), "%s", job);
    m->is_export = is_export;
    m->path = strdup(path);
    m->size = size;
    m->entity = dup_or_null(entity);
    m->company = dup_or_null(company);
    m->external_id = dup_or_null(external_id);
    m->created = now;
    memcpy(m->correlation, m->id, sizeof(m->id));
    simguid_new(m->blob);
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->n++;
    return m;
}

static void push(char arr[][64], int *n, const char *v)
{
    if (*n == SIMQUEUE_STALE) {
        memmove(arr[0], arr[1], (SIMQUEUE_STALE - 1) * 64);
        (*n)--;
    }
    snprintf(arr[(*n)++], 64, "%s", v);
}

struct simqueue_msg *simqueue_dequeue(struct simqueue *q, const char *job, double now,
                                      double visibility, int change_corr)
{
    struct simqueue_msg *m;
    for (m = q->head; m; m = m->next)
        if (m->is_export && m->state != SQ_ACKED && m->visible_at <= now &&
            strcmp(m->job, job) == 0)
            break;
    if (!m)
        return NULL;
    if (m->dequeues > 0) {
        push(m->stale_pops, &m->nstale, m->pop);
        if (change_corr) {
            if (m->nold == SIMQUEUE_STALE) {
                memmove(m->old_corr[0], m->old_corr[1], (SIMQUEUE_STALE - 1) * 37);
                m->nold--;
            }
            memcpy(m->old_corr[m->nold++], m->correlation, 37);
            simguid_new(m->correlation);
        }
    }
    new_pop(m->pop);
    m->prev_dequeue = m->last_dequeue;
    m->last_dequeue = now;
    m->visible_at = now + visibility;
    m->state = SQ_DEQUEUED;
    m->dequeues++;
    return m;
}

static int corr_matches(const struct simqueue_msg *m, const char *corr)
{
    if (strcmp(m->correlation, corr) == 0)
        return 1;
    for (int i = 0; i < m->nold; i++)
        if (strcmp(m->old_corr[i], corr) == 0)
            return 1;
    return 0;
}

enum simqueue_ack simqueue_ack(struct simqueue *q, const char *corr, const char *pop)
{
    char canon[37];
    if (simguid_parse(corr, strlen(corr), canon) != 0)
        return SQA_UNKNOWN;
    for (struct simqueue_msg *m = q->head; m; m = m->next) {
        if (!m->is_export || !corr_matches(m, canon))
            continue;
        if (m->state == SQ_ACKED)
            return SQA_ALREADY;
        if (m->dequeues > 0 && strcmp(m->pop, pop) == 0) {
            m->state = SQ_ACKED;
            return SQA_OK;
        }
        for (int i = 0; i < m->nstale; i++)
            if (strcmp(m->stale_pops[i], pop) == 0)
                return SQA_STALE;
        return SQA_UNKNOWN;
    }
    return SQA_UNKNOWN;
}

struct simqueue_msg *simqueue_find(struct simqueue *q, const char *id)
{
    char canon[37];
    if (simguid_parse(id, strlen(id), canon) != 0)
        return NULL;
    for (struct simqueue_msg *m = q->head; m; m = m->next)
        if (strcmp(m->id, canon) == 0)
            return m;
    return NULL;
}

struct simqueue_msg *simqueue_find_blob(struct simqueue *q, const char *blob)
{
    char canon[37];
    if (simguid_parse(blob, strlen(blob), canon) != 0)
        return NULL;
    for (struct simqueue_msg *m = q->head; m; m = m->next)
        if (strcmp(m->blob, canon) == 0)
            return m;
    return NULL;
}

enum simqueue_import simqueue_import_status(const struct simqueue_msg *m, double now,
                                            double enqueued_secs, double processing_secs)
{
    double age = now - m->created;
    if (age < enqueued_secs)
        return SQI_ENQUEUED;
    if (age < enqueued_secs + processing_secs)
        return SQI_PROCESSING;
    return m->has_errors ? SQI_ERRORS : SQI_PROCESSED;
}

int simqueue_blob_expired(const struct simqueue_msg *m, double now, double retention)
{
    return now - m->created >= retention;
}

size_t simqueue_count(const struct simqueue *q)
{
    return q->n;
}

struct simqueue_msg *simqueue_by_execution(struct simqueue *q, const char *exec)
{
    for (struct simqueue_msg *m = q->head; m; m = m->next)
        if (!m->is_export && strcmp(m->execution_id, exec) == 0)
            return m;
    return NULL;
}
