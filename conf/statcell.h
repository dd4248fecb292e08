/* statcell: lock-free per-worker counters and histograms, shared by every layer the way
 * log.h is. One writer per cell (the worker thread that owns the stats struct); any
 * thread may read it at scrape time. Relaxed C11 atomic loads and stores make that
 * race-free without a lock prefix on the hot path (on x86-64 and arm64 an increment is a
 * plain load, add and store). Building with -DFOGATE_NO_METRICS turns every update into
 * nothing: only to measure what the counting costs. Invariant: never two writers. */
#ifndef FOGATE_STATCELL_H
#define FOGATE_STATCELL_H

#include <stdatomic.h>
#include <stdint.h>

typedef _Atomic uint64_t statcell;
typedef _Atomic int64_t statgauge;

/* Histogram bucket upper bounds in microseconds: 1 ms .. 1 h (base unit seconds in the
 * exposition). */
#define STATHIST_BUCKETS 19
#define STATHIST_BOUNDS_US                                                                \
    { 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,   \
      5000000, 10000000, 30000000, 60000000, 300000000, 900000000, 1800000000,           \
      3600000000 }

/* Non-cumulative buckets (the renderer sums them); bucket[STATHIST_BUCKETS] is +Inf. */
struct stathist {
    statcell bucket[STATHIST_BUCKETS + 1];
    statcell count;
    statcell sum_us;
};

static inline void statcell_add(statcell *c, uint64_t n)
{
#ifndef FOGATE_NO_METRICS
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
#else
    (void)c;
    (void)n;
#endif
}

static inline void statcell_inc(statcell *c)
{
    statcell_add(c, 1);
}

static inline uint64_t statcell_get(const statcell *c)
{
    return atomic_load_explicit((statcell *)c, memory_order_relaxed);
}

static inline void statgauge_set(statgauge *g, int64_t v)
{
#ifndef FOGATE_NO_METRICS
    atomic_store_explicit(g, v, memory_order_relaxed);
#else
    (void)g;
    (void)v;
#endif
}

static inline int64_t statgauge_get(const statgauge *g)
{
    return atomic_load_explicit((statgauge *)g, memory_order_relaxed);
}

/* Records one observation of `us` microseconds (negative counts as 0). */
static inline void stathist_observe(struct stathist *h, int64_t us)
{
    static const int64_t bounds[STATHIST_BUCKETS] = STATHIST_BOUNDS_US;
    unsigned i = 0;

    if (us < 0)
        us = 0;
    while (i < STATHIST_BUCKETS && us > bounds[i])
        i++;
    statcell_inc(&h->bucket[i]);
    statcell_inc(&h->count);
    statcell_add(&h->sum_us, (uint64_t)us);
}

#endif
