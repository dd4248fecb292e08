/* slab: fixed-size objects in blocks of their own (see slab.h). A block is SLAB_BLOCK bytes
 * aligned to SLAB_BLOCK, so an object finds its block by masking its address; the block's
 * header sits at its start, the objects after it. Free slots are a list threaded through
 * the slots themselves; slots never used yet are handed out from `bump` onwards, so a new
 * block touches (and costs RSS for) only the pages its objects use. Under AddressSanitizer
 * slots not in use are poisoned, so a connection used after it was freed is still caught
 * (the heap's quarantine does not apply here: a slot can be reused at once). */
#include "slab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "asan.h"

#ifdef FOGATE_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct block {
    struct block *prev, *next; /* the pool's blocks with room */
    void *free_list;           /* freed slots: each holds the next one's address */
    char *bump;                /* the first slot never used (used < cap: one is left) */
    size_t used;
    size_t cap;
};

struct slab_pool {
    size_t size;               /* object size, a multiple of 16 */
    struct block *room;        /* blocks with a free slot and an object in use */
    struct block *spare;       /* one empty block kept mapped; NULL if none */
    size_t blocks;
};

#define HEADER (((sizeof(struct block)) + 63) & ~(size_t)63)

struct slab_pool *slab_pool_new(size_t obj_size)
{
    struct slab_pool *p;

    if (obj_size == 0 || obj_size > SLAB_BLOCK / 4)
        return NULL;
    p = calloc(1, sizeof *p);
    if (p)
        p->size = (obj_size + 15) & ~(size_t)15;
    return p;
}

/* Maps SLAB_BLOCK bytes aligned to SLAB_BLOCK: twice that, then the ends trimmed off. */
static struct block *block_map(struct slab_pool *p)
{
    char *raw = mmap(NULL, 2 * SLAB_BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                     -1, 0);

    if (raw == MAP_FAILED)
        return NULL;
    uintptr_t at = ((uintptr_t)raw + SLAB_BLOCK - 1) & ~(uintptr_t)(SLAB_BLOCK - 1);
    char *start = (char *)at;
    if (start > raw)
        munmap(raw, (size_t)(start - raw));
    if (raw + 2 * SLAB_BLOCK > start + SLAB_BLOCK)
        munmap(start + SLAB_BLOCK, (size_t)(raw + 2 * SLAB_BLOCK - (start + SLAB_BLOCK)));
    struct block *b = (struct block *)start;
    b->prev = b->next = NULL;
    b->free_list = NULL;
    b->bump = start + HEADER;
    b->cap = (SLAB_BLOCK - HEADER) / p->size;
    b->used = 0;
    POISON(b->bump, b->cap * p->size);
    p->blocks++;
    return b;
}

static void block_unmap(struct slab_pool *p, struct block *b)
{
    UNPOISON(b, SLAB_BLOCK); /* the range may be mapped again for anything */
    munmap(b, SLAB_BLOCK);
    p->blocks--;
}

static void room_add(struct slab_pool *p, struct block *b)
{
    b->prev = NULL;
    b->next = p->room;
    if (p->room)
        p->room->prev = b;
    p->room = b;
}

static void room_remove(struct slab_pool *p, struct block *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        p->room = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
}

void *slab_alloc(struct slab_pool *p)
{
    struct block *b = p->room;
    void *obj;

    if (!b) {
        b = p->spare ? p->spare : block_map(p);
        if (!b)
            return NULL;
        p->spare = NULL;
        room_add(p, b);
    }
    if (b->free_list) {
        obj = b->free_list;
        UNPOISON(obj, p->size);
        memcpy(&b->free_list, obj, sizeof b->free_list);
    } else {
        obj = b->bump;
        b->bump += p->size;
        UNPOISON(obj, p->size);
    }
    b->used++;
    if (b->used == b->cap)
        room_remove(p, b);
    memset(obj, 0, p->size);
    return obj;
}

void slab_free(struct slab_pool *p, void *obj)
{
    struct block *b;

    if (!obj)
        return;
    b = (struct block *)((uintptr_t)obj & ~(uintptr_t)(SLAB_BLOCK - 1));
    memcpy(obj, &b->free_list, sizeof b->free_list);
    POISON(obj, p->size);
    b->free_list = obj;
    if (b->used-- == b->cap)
        room_add(p, b); /* it was full: it has room again */
    if (b->used > 0)
        return;
    room_remove(p, b);
    if (p->spare) {
        block_unmap(p, b);
        return;
    }
    b->free_list = NULL; /* kept empty: handed out from the start again (all poisoned) */
    b->bump = (char *)b + HEADER;
    p->spare = b;
}

size_t slab_blocks(const struct slab_pool *p)
{
    return p->blocks;
}

void slab_pool_free(struct slab_pool *p)
{
    if (!p)
        return;
    while (p->room) {
        struct block *b = p->room;
        room_remove(p, b);
        block_unmap(p, b);
    }
    if (p->spare)
        block_unmap(p, p->spare);
    free(p);
}
