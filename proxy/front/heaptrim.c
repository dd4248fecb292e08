/* heaptrim: mallopt once, malloc_trim after connections close (see heaptrim.h).
 * Invariant: the timer is pending exactly while a trim is owed. */
#include "heaptrim.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "asan.h"

/* Blocks this large are mmap'd and unmapped when freed. Above every buffer allocated per
 * piece of a stream (a 256 KiB read lands in a 512 KiB evbuffer chain), so streaming never
 * maps and unmaps per piece; below nothing. */
#define MMAP_THRESHOLD (1024 * 1024)
/* Free memory at the top of a heap kept for the next allocations: a stream's buffers come
 * and go without the heap shrinking and regrowing (page faults) every turn. */
#define TRIM_THRESHOLD (1024 * 1024)

struct heaptrim {
    struct event *timer; /* owned */
    int64_t last_ms;     /* monotonic time of the last trim */
};

void heaptrim_setup(void)
{
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD); /* also stops glibc's dynamic thresholds */
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Under AddressSanitizer glibc's malloc is not the allocator and stays uninitialised (ASan
 * makes mallopt a no-op). malloc_trim would initialise it from whichever worker thread gets
 * there first, and two workers doing that at once leave glibc's arena count wrong: it then
 * aborts at thread exit ("malloc assertion failure in __malloc_arena_thread_freeres", seen
 * in an ASan e2e_sdnotify run with 2 workers). A normal build's first malloc, in the main
 * thread before any worker exists, initialises it. */

static void on_trim(evutil_socket_t fd, short what, void *arg)
{
    struct heaptrim *t = arg;

    (void)fd;
    (void)what;
#ifndef FOGATE_ASAN
    malloc_trim(0); /* every arena, and the free pages inside them, not only the tops */
#endif
    t->last_ms = now_ms();
}

struct heaptrim *heaptrim_new(struct event_base *base)
{
    struct heaptrim *t = calloc(1, sizeof *t);

    if (!t)
        return NULL;
    t->timer = evtimer_new(base, on_trim, t);
    if (!t->timer) {
        free(t);
        return NULL;
    }
    t->last_ms = now_ms() - HEAPTRIM_GAP_MS;
    return t;
}

void heaptrim_free(struct heaptrim *t)
{
    if (!t)
        return;
    event_free(t->timer);
    free(t);
}

void heaptrim_note(struct heaptrim *t)
{
    if (!t || evtimer_pending(t->timer, NULL))
        return;
    int64_t wait = t->last_ms + HEAPTRIM_GAP_MS - now_ms();
    if (wait < HEAPTRIM_SETTLE_MS) /* what a close frees later in the loop (libevent's */
        wait = HEAPTRIM_SETTLE_MS; /* deferred finalizers) is freed by then */
    struct timeval tv = { wait / 1000, (wait % 1000) * 1000 };
    evtimer_add(t->timer, &tv);
}
