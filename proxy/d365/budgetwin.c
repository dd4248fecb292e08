/* budgetwin: local concurrency count and sliding window. See budgetwin.h. */
#include "budgetwin.h"

#include <stdlib.h>

int budgetwin_init(struct budgetwin *w, size_t cap)
{
    w->at = calloc(cap ? cap : 1, sizeof *w->at);
    w->cap = cap ? cap : 1;
    w->head = w->n = 0;
    w->inflight = 0;
    return w->at ? 0 : -1;
}

int budgetwin_resize(struct budgetwin *w, size_t cap)
{
    int64_t *at = calloc(cap ? cap : 1, sizeof *at);
    size_t keep;

    if (!at)
        return -1;
    cap = cap ? cap : 1;
    keep = w->n < cap ? w->n : cap;
    for (size_t i = 0; i < keep; i++) /* the newest `keep`, oldest first */
        at[i] = w->at[(w->head + w->n - keep + i) % w->cap];
    free(w->at);
    w->at = at;
    w->cap = cap;
    w->head = 0;
    w->n = keep;
    return 0;
}

void budgetwin_cleanup(struct budgetwin *w)
{
    free(w->at);
    w->at = NULL;
    w->cap = w->head = w->n = 0;
}

static void expire(struct budgetwin *w, int64_t window_ms, int64_t now_ms)
{
    while (w->n > 0 && w->at[w->head] <= now_ms - window_ms) {
        w->head = (w->head + 1) % w->cap;
        w->n--;
    }
}

size_t budgetwin_count(struct budgetwin *w, int64_t window_ms, int64_t now_ms)
{
    expire(w, window_ms, now_ms);
    return w->n;
}

static void record(struct budgetwin *w, int64_t now_ms)
{
    if (w->n == w->cap) { /* full: the oldest goes (only budgetwin_note gets here) */
        w->head = (w->head + 1) % w->cap;
        w->n--;
    }
    w->at[(w->head + w->n) % w->cap] = now_ms;
    w->n++;
    w->inflight++;
}

int budgetwin_take(struct budgetwin *w, unsigned conc, unsigned rate, int64_t window_ms,
                   int64_t now_ms, int64_t *wait_ms)
{
    size_t limit = rate < w->cap ? rate : w->cap;

    expire(w, window_ms, now_ms);
    *wait_ms = 0;
    if (w->n >= limit && w->n > 0) {
        /* the (n - limit + 1)-th oldest must leave: then the count drops below limit */
        int64_t t = w->at[(w->head + (w->n - limit)) % w->cap];
        *wait_ms = t + window_ms - now_ms;
        if (*wait_ms < 1)
            *wait_ms = 1;
        return -1;
    }
    if (w->inflight >= conc)
        return -1;
    record(w, now_ms);
    return 0;
}

void budgetwin_note(struct budgetwin *w, int64_t now_ms)
{
    record(w, now_ms);
}

void budgetwin_release(struct budgetwin *w)
{
    if (w->inflight > 0)
        w->inflight--;
}

unsigned budgetwin_share(unsigned limit, unsigned instances, unsigned workers)
{
    unsigned long long d = (unsigned long long)(instances ? instances : 1) * (workers ? workers : 1);
    unsigned long long s = limit / d;

    return s ? (unsigned)s : 1;
}

unsigned budgetwin_retry_after(int64_t wait_ms)
{
    if (wait_ms <= 1000)
        return 1;
    return (unsigned)((wait_ms + 999) / 1000);
}
