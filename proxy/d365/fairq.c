/* fairq: round-robin across jobs, FIFO within one. See fairq.h.
 *
 *   jobs with items form a ring:  A -> B -> C -> A      `next` = the job served next
 *   pop takes next's head item, then next = next->right (or the ring empties)
 */
#include "fairq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fairq_job {
    char name[FAIRQ_JOB_MAX];
    struct fairq_item *head, *tail; /* borrowed items */
    size_t n;
    struct fairq_job *left, *right; /* the ring of jobs with items */
};

struct fairq {
    struct fairq_job *next;        /* owned ring; the job served next, NULL when empty */
    size_t n, njobs, per_job, max_jobs;
};

struct fairq *fairq_new(size_t per_job, size_t max_jobs)
{
    struct fairq *q = calloc(1, sizeof *q);

    if (!q)
        return NULL;
    q->per_job = per_job;
    q->max_jobs = max_jobs;
    return q;
}

static void unlink_job(struct fairq *q, struct fairq_job *j)
{
    if (j->right == j) {
        q->next = NULL;
    } else {
        j->left->right = j->right;
        j->right->left = j->left;
        if (q->next == j)
            q->next = j->right;
    }
    q->njobs--;
    free(j);
}

void fairq_free(struct fairq *q)
{
    if (!q)
        return;
    while (q->next) {
        struct fairq_job *j = q->next;
        for (struct fairq_item *it = j->head; it; it = it->next)
            it->job = NULL;
        unlink_job(q, j);
    }
    free(q);
}

static struct fairq_job *find(const struct fairq *q, const char *job)
{
    struct fairq_job *j = q->next;

    for (size_t i = 0; j && i < q->njobs; i++, j = j->right)
        if (strncmp(j->name, job, sizeof j->name - 1) == 0)
            return j;
    return NULL;
}

/* A new job joins the ring just before `next`: it is served after every waiting job. */
static struct fairq_job *add_job(struct fairq *q, const char *job)
{
    struct fairq_job *j;

    if (q->njobs >= q->max_jobs || !(j = calloc(1, sizeof *j)))
        return NULL;
    snprintf(j->name, sizeof j->name, "%s", job);
    if (!q->next) {
        j->left = j->right = j;
        q->next = j;
    } else {
        j->right = q->next;
        j->left = q->next->left;
        j->left->right = j;
        q->next->left = j;
    }
    q->njobs++;
    return j;
}

int fairq_push(struct fairq *q, const char *job, struct fairq_item *it)
{
    struct fairq_job *j = find(q, job ? job : "");

    if (!j && !(j = add_job(q, job ? job : "")))
        return -1;
    if (j->n >= q->per_job)
        return -1;
    it->job = j;
    it->next = NULL;
    it->prev = j->tail;
    if (j->tail)
        j->tail->next = it;
    else
        j->head = it;
    j->tail = it;
    j->n++;
    q->n++;
    return 0;
}

void fairq_remove(struct fairq *q, struct fairq_item *it)
{
    struct fairq_job *j = it->job;

    if (!j)
        return;
    if (it->prev)
        it->prev->next = it->next;
    else
        j->head = it->next;
    if (it->next)
        it->next->prev = it->prev;
    else
        j->tail = it->prev;
    it->job = NULL;
    it->prev = it->next = NULL;
    j->n--;
    q->n--;
    if (j->n == 0)
        unlink_job(q, j);
}

struct fairq_item *fairq_pop(struct fairq *q)
{
    struct fairq_job *j = q->next;
    struct fairq_item *it;

    if (!j)
        return NULL;
    it = j->head;
    q->next = j->right; /* rotate before removing: an emptied job leaves the ring */
    fairq_remove(q, it);
    return it;
}

size_t fairq_len(const struct fairq *q)
{
    return q->n;
}

size_t fairq_job_len(const struct fairq *q, const char *job)
{
    const struct fairq_job *j = find(q, job ? job : "");

    return j ? j->n : 0;
}
