/* blockcache: a few freed blocks of one size kept for reuse (LIFO), so that a buffer every
 * request needs and gives back (a connection's head buffers) costs no malloc while the
 * traffic is steady. Bounded: at most `max` blocks are kept. Single-threaded: one per
 * worker. Under AddressSanitizer nothing is kept (a block is freed at once), so a use after
 * blockcache_put is still caught. */
#ifndef FOGATE_BLOCKCACHE_H
#define FOGATE_BLOCKCACHE_H

#include <stddef.h>

#define BLOCKCACHE_MAX 16

struct blockcache {
    size_t size;                  /* the size of the blocks kept; 0 before the first put */
    size_t count;
    void *blocks[BLOCKCACHE_MAX]; /* owned: blocks[0..count) */
};

/* A block of `size` bytes (not zeroed): a kept one of that size, or a new one. NULL when
 * out of memory. */
void *blockcache_get(struct blockcache *bc, size_t size);

/* Gives back a block of `size` bytes from blockcache_get: kept, or freed when the cache is
 * full. Blocks of another size than the ones kept replace them (the size changed with a
 * reload). NULL is a no-op. */
void blockcache_put(struct blockcache *bc, void *block, size_t size);

/* Frees every kept block (embedded: the struct itself is the caller's). */
void blockcache_cleanup(struct blockcache *bc);

#endif
