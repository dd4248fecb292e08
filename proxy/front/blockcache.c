/* blockcache: freed blocks of one size kept for reuse (see blockcache.h). */
#include "blockcache.h"

#include <stdlib.h>

#include "asan.h"

void *blockcache_get(struct blockcache *bc, size_t size)
{
    if (bc->count > 0 && bc->size == size)
        return bc->blocks[--bc->count];
    return malloc(size);
}

void blockcache_put(struct blockcache *bc, void *block, size_t size)
{
#ifdef FOGATE_ASAN
    (void)bc;
    (void)size;
    free(block); /* kept blocks would hide a use after free from ASan */
#else
    if (!block)
        return;
    if (bc->size != size) {
        blockcache_cleanup(bc);
        bc->size = size;
    }
    if (bc->count < BLOCKCACHE_MAX)
        bc->blocks[bc->count++] = block;
    else
        free(block);
#endif
}

void blockcache_cleanup(struct blockcache *bc)
{
    while (bc->count > 0)
        free(bc->blocks[--bc->count]);
}
