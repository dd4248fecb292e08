/* test_heaptrim: freed heap pages go back to the kernel once heaptrim's trim runs on the
 * loop: 4 MiB freed below a live block stay resident after free() (glibc only returns the
 * heap's top) and leave with the trim. RSS figures belong to glibc's malloc: under
 * AddressSanitizer only the calls are exercised. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "check.h"
#include "heaptrim.h"

enum { BLOCKS = 256, BLOCK = 16 * 1024 }; /* 4 MiB, each block under the mmap threshold */

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

int main(void)
{
    static char *blocks[BLOCKS];

    heaptrim_setup();
    struct event_base *base = event_base_new();
    struct heaptrim *t = heaptrim_new(base);
    CHECK(base && t);
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(BLOCK);
        CHECK(blocks[i] != NULL);
        memset(blocks[i], 0x5a, BLOCK);
    }
    char *pin = malloc(64); /* above the blocks: the heap's top cannot shrink past it */
    memset(pin, 1, 64);
    long full = rss_kb();
    for (int i = 0; i < BLOCKS; i++)
        free(blocks[i]);
    long freed = rss_kb();
    heaptrim_note(t);
    heaptrim_note(t); /* one trim is owed, however many closes told it */
    event_base_loop(base, EVLOOP_ONCE);
    long trimmed = rss_kb();
    printf("RSS: %ld kB with the blocks, %ld after free, %ld after the trim\n", full, freed,
           trimmed);
#ifndef CHECK_ASAN
    CHECK(full - freed < 1024);        /* free() alone kept the pages */
    CHECK(freed - trimmed >= 3 * 1024); /* the trim gave most of the 4 MiB back */
#endif
    CHECK(rss_kb() > 0);
    free(pin);
    heaptrim_free(t);
    heaptrim_free(NULL); /* a no-op */
    event_base_free(base);
    return check_done();
}
