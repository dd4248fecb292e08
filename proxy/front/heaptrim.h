/* heaptrim: the allocator's policy and giving freed memory back (glibc malloc).
 * glibc keeps what is freed inside its heaps: after a burst of connections, or after
 * transfers whose buffers sat between live allocations, RSS stays at its peak. A loop's
 * heaptrim returns those pages with malloc_trim once connections have closed, at most once
 * per HEAPTRIM_GAP_MS. */
#ifndef FOGATE_HEAPTRIM_H
#define FOGATE_HEAPTRIM_H

#include <event2/event.h>

#define HEAPTRIM_GAP_MS 250 /* malloc_trim at most this often per loop */
#define HEAPTRIM_SETTLE_MS 50 /* and no sooner than this after the close that asked */

struct heaptrim;

/* The process-wide malloc settings; call once, before any thread starts. Fixes the mmap
 * and trim thresholds (glibc otherwise raises them to the largest block freed, after which
 * 256 KiB streaming buffers live in the heap and are never given back). */
void heaptrim_setup(void);

/* A trimmer on `base` (borrowed). Returns NULL when out of memory. */
struct heaptrim *heaptrim_new(struct event_base *base);

/* Frees it (NULL: a no-op). */
void heaptrim_free(struct heaptrim *t);

/* Memory was freed (a connection closed): malloc_trim on the next loop turn, or at the end
 * of the gap since the last one. */
void heaptrim_note(struct heaptrim *t);

#endif
