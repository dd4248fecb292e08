/* simpleack: pending acks in memory, oldest first (see simpleack.h). */
#include "simpleack.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *prev, *next;   /* list links, oldest first */
    char *job;                   /* owned */
    char *id;                    /* owned */
    char *body;                  /* owned */
    size_t len;
    double expires;
};

struct simpleack {
    struct entry *first, *last;  /* owned list */
    size_t count;
    size_t max_entries;
    size_t max_body;
    unsigned ttl_s;
};

struct simpleack *simpleack_new(size_t max_entries, size_t max_body_bytes, unsigned ttl_s)
{
    struct simpleack *s = calloc(1, sizeof *s);

    if (s) {
        s->max_entries = max_entries ? max_entries : 1;
        s->max_body = max_body_bytes;
        s->ttl_s = ttl_s;
    }
    return s;
}

static void unlink_free(struct simpleack *s, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->first = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->last = e->prev;
    s->count--;
    free(e->job);
    free(e->id);
    free(e->body);
    free(e);
}

void simpleack_free(struct simpleack *s)
{
    if (!s)
        return;
    while (s->first)
        unlink_free(s, s->first);
    free(s);
}

static struct entry *find(struct simpleack *s, const char *job, const char *id)
{
    for (struct entry *e = s->first; e; e = e->next)
        if (strcmp(e->id, id) == 0 && strcmp(e->job, job) == 0)
            return e;
    return NULL;
}

/* Entries are put in time order with one TTL, so the expired ones are at the front. */
static void expire(struct simpleack *s, double now)
{
    while (s->first && s->first->expires <= now)
        unlink_free(s, s->first);
}

int simpleack_put(struct simpleack *s, const char *job, const char *id, const char *body,
                  size_t len, double now)
{
    struct entry *e, *old;

    if (len > s->max_body)
        return -1;
    e = calloc(1, sizeof *e);
    if (!e || !(e->job = strdup(job)) || !(e->id = strdup(id)) || !(e->body = malloc(len + 1)))
        goto fail;
    memcpy(e->body, body, len);
    e->body[len] = '\0';
    e->len = len;
    e->expires = now + s->ttl_s;
    expire(s, now);
    if ((old = find(s, job, id)))
        unlink_free(s, old);
    while (s->count >= s->max_entries)
        unlink_free(s, s->first);
    e->prev = s->last;
    if (s->last)
        s->last->next = e;
    else
        s->first = e;
    s->last = e;
    s->count++;
    return 0;
fail:
    if (e) {
        free(e->job);
        free(e->id);
    }
    free(e);
    return -1;
}

const char *simpleack_get(struct simpleack *s, const char *job, const char *id, double now,
                          size_t *len)
{
    struct entry *e;

    expire(s, now);
    e = find(s, job, id);
    if (!e)
        return NULL;
    *len = e->len;
    return e->body;
}

int simpleack_remove(struct simpleack *s, const char *job, const char *id)
{
    struct entry *e = find(s, job, id);

    if (!e)
        return -1;
    unlink_free(s, e);
    return 0;
}

size_t simpleack_count(const struct simpleack *s)
{
    return s->count;
}
