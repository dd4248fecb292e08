/* simmemq: export messages generated on demand (see simmemq.h).
 * Ids: CorrelationId NNNNNNNN-JJJJ-4000-8000-SSSSSSSSSSSS, blob id the same with 9000,
 * N the job's random nonce, J its index, S the message number (hex). */
#include "simmemq.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "simguid.h"

struct job {
    char id[37];
    uint32_t nonce;
    uint64_t key;                /* PopReceipt secret */
    long long next, end;         /* numbers [next, end) are still to hand out */
    long long size;
    unsigned char *acked;        /* owned: one bit per number below `end` */
    size_t acked_cap;            /* bytes */
};

struct simmemq {
    struct job jobs[SIMMEMQ_MAX_JOBS];
    int njobs;
};

struct simmemq *simmemq_new(void)
{
    return calloc(1, sizeof(struct simmemq));
}

void simmemq_clear(struct simmemq *q)
{
    for (int i = 0; i < q->njobs; i++)
        free(q->jobs[i].acked);
    memset(q, 0, sizeof *q);
}

void simmemq_free(struct simmemq *q)
{
    if (!q)
        return;
    simmemq_clear(q);
    free(q);
}

static struct job *find(struct simmemq *q, const char *job)
{
    for (int i = 0; i < q->njobs; i++)
        if (strcmp(q->jobs[i].id, job) == 0)
            return &q->jobs[i];
    return NULL;
}

int simmemq_add(struct simmemq *q, const char *job, long long count, long long size)
{
    struct job *j = find(q, job);
    size_t need;
    unsigned char *bits;

    if (count < 1 || size < 0 || size > SIMMEMQ_MAX_SIZE)
        return -1;
    if (!j) {
        if (q->njobs == SIMMEMQ_MAX_JOBS)
            return -1;
        j = &q->jobs[q->njobs++];
        memset(j, 0, sizeof *j);
        snprintf(j->id, sizeof j->id, "%s", job);
        if (RAND_bytes((unsigned char *)&j->nonce, sizeof j->nonce) != 1 ||
            RAND_bytes((unsigned char *)&j->key, sizeof j->key) != 1) {
            q->njobs--;
            return -1;
        }
    }
    if (j->end + count > SIMMEMQ_MAX_COUNT)
        return -1;
    need = (size_t)((j->end + count + 7) / 8);
    if (need > j->acked_cap) {
        if (!(bits = realloc(j->acked, need)))
            return -1;
        memset(bits + j->acked_cap, 0, need - j->acked_cap);
        j->acked = bits;
        j->acked_cap = need;
    }
    j->end += count;
    j->size = size;
    return 0;
}

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* PopReceipt of number n: base64 of 20 bytes keyed by the job's secret. */
static void pop_of(const struct job *j, long long n, char out[29])
{
    unsigned char b[24];
    uint64_t h = j->key ^ (uint64_t)n;

    for (int i = 0; i < 3; i++) {
        h = mix(h);
        memcpy(b + 8 * i, &h, 8);
    }
    EVP_EncodeBlock((unsigned char *)out, b, 20);
}

static void id_of(const struct simmemq *q, const struct job *j, long long n, int blob,
                  char out[37])
{
    snprintf(out, 37, "%08x-%04x-4000-%s-%012llx", (unsigned)j->nonce,
             (unsigned)(j - q->jobs), blob ? "9000" : "8000", n);
}

int simmemq_dequeue(struct simmemq *q, const char *job, struct simmemq_msg *out)
{
    struct job *j = find(q, job);

    if (!j || j->next >= j->end)
        return -1;
    id_of(q, j, j->next, 0, out->correlation);
    id_of(q, j, j->next, 1, out->blob);
    pop_of(j, j->next, out->pop);
    out->size = j->size;
    j->next++;
    return 0;
}

/* The job and number a handed-out id names (kind "8000" CorrelationId, "9000" blob). */
static struct job *parse(const struct simmemq *q, const char *id, const char *kind,
                         long long *n)
{
    char canon[37], k[5];
    unsigned nonce, ji;
    const struct job *j;

    if (simguid_parse(id, strlen(id), canon) != 0 ||
        sscanf(canon, "%8x-%4x-4000-%4[0-9a-f]-%12llx", &nonce, &ji, k, n) != 4 ||
        strcmp(k, kind) != 0 || ji >= (unsigned)q->njobs)
        return NULL;
    j = &q->jobs[ji];
    if (j->nonce != nonce || *n < 0 || *n >= j->next)
        return NULL;
    return (struct job *)j;
}

enum simmemq_ack simmemq_ack(struct simmemq *q, const char *corr, const char *pop)
{
    long long n;
    char want[29];
    struct job *j = parse(q, corr, "8000", &n);

    if (!j)
        return SMQ_UNKNOWN;
    pop_of(j, n, want);
    if (strcmp(want, pop) != 0)
        return SMQ_UNKNOWN;
    if (j->acked[n / 8] & (1u << (n % 8)))
        return SMQ_ALREADY;
    j->acked[n / 8] |= (unsigned char)(1u << (n % 8));
    return SMQ_OK;
}

long long simmemq_blob_size(const struct simmemq *q, const char *blob, char *corr)
{
    long long n;
    const struct job *j = parse(q, blob, "9000", &n);

    if (!j)
        return -1;
    if (corr)
        id_of(q, j, n, 0, corr);
    return j->size;
}

long long simmemq_left(const struct simmemq *q)
{
    long long t = 0;

    for (int i = 0; i < q->njobs; i++)
        t += q->jobs[i].end - q->jobs[i].next;
    return t;
}

long long simmemq_handed(const struct simmemq *q)
{
    long long t = 0;

    for (int i = 0; i < q->njobs; i++)
        t += q->jobs[i].next;
    return t;
}
