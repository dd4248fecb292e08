/* budgetwin: the local half of a D365 budget: requests in flight and a sliding window of
 * the times requests were let through, checked against a concurrency limit and a request
 * rate. Used alone while Redis is down (with this instance's share of the limits) and to
 * keep the local picture while Redis decides. Pure: the caller passes the time.
 * Invariant: the window never holds more than `cap` times (the largest rate it serves). */
#ifndef FOGATE_BUDGETWIN_H
#define FOGATE_BUDGETWIN_H

#include <stddef.h>
#include <stdint.h>

struct budgetwin {
    int64_t *at;           /* owned ring of grant times (ms), oldest at `head` */
    size_t cap, head, n;
    unsigned inflight;     /* granted and not yet released */
};

/* Sets up an empty window able to hold `cap` (>= 1) times. Returns 0 or -1 (no memory). */
int budgetwin_init(struct budgetwin *w, size_t cap);
/* Gives the window room for `cap` (>= 1) times (a reload changed the rate), keeping the
 * newest ones. Returns 0, or -1 (no memory; the window is unchanged). */
int budgetwin_resize(struct budgetwin *w, size_t cap);

/* Frees the ring. Safe on a zeroed or cleaned-up struct. */
void budgetwin_cleanup(struct budgetwin *w);

/* Lets one request through when fewer than `conc` are in flight and fewer than `rate`
 * (capped at cap) were let through in the `window_ms` before `now_ms`: records it and
 * returns 0. Otherwise returns -1 and sets *wait_ms: how long until the window has room
 * (0 when only the concurrency limit stands in the way: a release frees it). */
int budgetwin_take(struct budgetwin *w, unsigned conc, unsigned rate, int64_t window_ms,
                   int64_t now_ms, int64_t *wait_ms);

/* Records a request let through by someone else (Redis) at now_ms: in flight, and in the
 * window (the oldest time is dropped when the ring is full). */
void budgetwin_note(struct budgetwin *w, int64_t now_ms);

/* One request in flight ended (never below zero). */
void budgetwin_release(struct budgetwin *w);

/* Times in the window ending at now_ms. */
size_t budgetwin_count(struct budgetwin *w, int64_t window_ms, int64_t now_ms);

/* This worker's share of a cluster-wide `limit` spread over `instances` instances of
 * `workers` workers each: limit / (instances * workers), at least 1. */
unsigned budgetwin_share(unsigned limit, unsigned instances, unsigned workers);

/* Whole seconds (>= 1) a client should wait for `wait_ms`, rounded up. */
unsigned budgetwin_retry_after(int64_t wait_ms);

#endif
