/* test_blockcache: a freed block comes back for the next get of its size (last in, first
 * out), at most BLOCKCACHE_MAX are kept, a block of another size replaces the kept ones,
 * and cleanup empties it. Under AddressSanitizer nothing is kept: gets are new blocks. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asan.h"
#include "blockcache.h"
#include "check.h"

int main(void)
{
    struct blockcache bc = { 0 };
    void *b[BLOCKCACHE_MAX + 1];

    for (int i = 0; i <= BLOCKCACHE_MAX; i++) {
        CHECK((b[i] = blockcache_get(&bc, 256)) != NULL);
        memset(b[i], i, 256); /* writable, all of it */
    }
    for (int i = 0; i <= BLOCKCACHE_MAX; i++)
        blockcache_put(&bc, b[i], 256);
#ifdef FOGATE_ASAN
    CHECK(bc.count == 0);
#else
    CHECK(bc.count == BLOCKCACHE_MAX);              /* the one over the bound was freed */
    CHECK(blockcache_get(&bc, 256) == b[BLOCKCACHE_MAX - 1]); /* the last kept first */
    CHECK(bc.count == BLOCKCACHE_MAX - 1);
    void *other = blockcache_get(&bc, 512);          /* another size: a new block */
    CHECK(other != NULL);
    CHECK(bc.count == BLOCKCACHE_MAX - 1);
    blockcache_put(&bc, b[BLOCKCACHE_MAX - 1], 256);
    blockcache_put(&bc, other, 512);                 /* the 256-byte ones are let go */
    CHECK(bc.count == 1 && bc.size == 512);
    CHECK(blockcache_get(&bc, 512) == other);
    blockcache_put(&bc, other, 512);
#endif
    blockcache_put(&bc, NULL, 512);                  /* a no-op */
    blockcache_cleanup(&bc);
    CHECK(bc.count == 0);
    return check_done();
}
