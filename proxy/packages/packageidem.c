/* packageidem: in-memory Idempotency-Key records (see packageidem.h). A flat array
 * scanned linearly: the cap is small and a scan is cheap next to a package upload. */
#include "packageidem.h"

#include <stdlib.h>
#include <string.h>

#include "packagename.h"

struct record {
    bool used;
    bool done;
    double at;                            /* when it was reserved */
    char scope[PACKAGEIDEM_KEY_MAX];
    char key[PACKAGEIDEM_KEY_MAX];
    char exec_id[PACKAGENAME_EXEC_MAX];
    unsigned char sha256[32];
};

struct packageidem {
    struct record *r;                     /* owned array of max records */
    size_t max;
    unsigned ttl_s;
};

struct packageidem *packageidem_new(size_t max, unsigned ttl_s)
{
    struct packageidem *pi = calloc(1, sizeof *pi);

    if (!pi || !(pi->r = calloc(max ? max : 1, sizeof *pi->r))) {
        free(pi);
        return NULL;
    }
    pi->max = max ? max : 1;
    pi->ttl_s = ttl_s;
    return pi;
}

void packageidem_free(struct packageidem *pi)
{
    if (!pi)
        return;
    free(pi->r);
    free(pi);
}

static bool live(const struct packageidem *pi, const struct record *r, double now)
{
    return r->used && now - r->at < (double)pi->ttl_s;
}

static struct record *find(struct packageidem *pi, const char *scope, const char *key)
{
    for (size_t i = 0; i < pi->max; i++) {
        struct record *r = &pi->r[i];
        if (r->used && strcmp(r->key, key) == 0 && strcmp(r->scope, scope) == 0)
            return r;
    }
    return NULL;
}

static struct record *free_slot(struct packageidem *pi, double now)
{
    for (size_t i = 0; i < pi->max; i++)
        if (!live(pi, &pi->r[i], now))
            return &pi->r[i];
    return NULL;
}

enum packageidem_verdict packageidem_begin(struct packageidem *pi, const char *scope,
                                           const char *key, const char *exec_id, double now,
                                           const char **exec_id_out,
                                           const unsigned char **sha256_out)
{
    struct record *r;

    if (strlen(scope) >= PACKAGEIDEM_KEY_MAX || strlen(key) >= PACKAGEIDEM_KEY_MAX ||
        strlen(exec_id) >= PACKAGENAME_EXEC_MAX)
        return PACKAGEIDEM_FULL;
    r = find(pi, scope, key);
    if (r && live(pi, r, now)) {
        if (!r->done)
            return PACKAGEIDEM_PENDING;
        *exec_id_out = r->exec_id;
        *sha256_out = r->sha256;
        return PACKAGEIDEM_DONE;
    }
    if (!r && !(r = free_slot(pi, now)))
        return PACKAGEIDEM_FULL;
    memset(r, 0, sizeof *r);
    r->used = true;
    r->at = now;
    strcpy(r->scope, scope);
    strcpy(r->key, key);
    strcpy(r->exec_id, exec_id);
    return PACKAGEIDEM_NEW;
}

void packageidem_complete(struct packageidem *pi, const char *scope, const char *key,
                          const unsigned char sha256[32])
{
    struct record *r = find(pi, scope, key);

    if (!r)
        return;
    memcpy(r->sha256, sha256, 32);
    r->done = true;
}

void packageidem_drop(struct packageidem *pi, const char *scope, const char *key)
{
    struct record *r = find(pi, scope, key);

    if (r)
        r->used = false;
}

size_t packageidem_count(const struct packageidem *pi)
{
    size_t n = 0;

    for (size_t i = 0; i < pi->max; i++)
        n += pi->r[i].used;
    return n;
}
