/* slab: fixed-size objects in 64 KiB blocks mapped for them alone (mmap), so that memory a
 * burst of connections took goes back to the kernel once they close, whatever else the
 * heap holds. (In malloc's heap, libevent's per-descriptor entries, made for each new
 * descriptor number between the connections' blocks and never freed, pin their pages.)
 * A block is unmapped when its last object is freed, except one kept empty, so that a count
 * hovering at a block's edge does not map and unmap per object. Single-threaded: one pool
 * per worker.
 * Invariant: a block is on the pool's list of blocks with room exactly while it has a free
 * slot and at least one object in use. */
#ifndef FOGATE_SLAB_H
#define FOGATE_SLAB_H

#include <stddef.h>

#define SLAB_BLOCK (64 * 1024)

struct slab_pool;

/* A pool of objects of obj_size bytes (1 .. SLAB_BLOCK / 4, rounded up to 16). Returns NULL
 * on allocation failure or a size out of range. */
struct slab_pool *slab_pool_new(size_t obj_size);

/* Unmaps every block and frees the pool. Every object must have been freed (objects still
 * in use are lost with their blocks). NULL is a no-op. */
void slab_pool_free(struct slab_pool *p);

/* A zeroed object, 16-byte aligned; NULL when no block could be mapped. */
void *slab_alloc(struct slab_pool *p);

/* Gives an object of this pool back. NULL is a no-op. */
void slab_free(struct slab_pool *p, void *obj);

/* Blocks mapped now, the empty one kept included (for tests and counters). */
size_t slab_blocks(const struct slab_pool *p);

#endif
