/* ledgerstat: local counters and the cached cluster gauges (see ledgerstat.h). */
#include "ledgerstat.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "ledger.h"
#include "log.h"

#define WARN_EVERY_MS 60000 /* at most one age warning a minute */

static const char *const names[LS_N_COUNTERS] = {
    "new", "redeliveries", "duplicates_suppressed", "leased_elsewhere_skipped",
    "unkeyed_delivered", "fail_open_delivered", "refused_redis_down", "delivered",
    "confirmed",
};

/* A read in flight: outlives the ledgerstat if Redis answers after ledgerstat_free. */
struct readref {
    struct ledgerstat *st;      /* borrowed; NULL once freed */
};

struct ledgerstat {
    struct ledger *l;           /* borrowed */
    struct conf_ledger lc;
    struct event *tick;         /* owned */
    struct readref *read;       /* owned by the read's callback while set */
    unsigned long long n[LS_N_COUNTERS];
    struct ledger_stats last;
    bool have;
    long long last_at_ms, warned_at_ms;
};

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void check_ages(struct ledgerstat *st)
{
    long long limit = (long long)st->lc.warn_unacked_s * 1000, t = now_ms();
    const struct ledger_stats *s = &st->last;

    if (s->oldest_unconfirmed_ms < limit && s->oldest_unacked_ms < limit)
        return;
    if (st->warned_at_ms && t - st->warned_at_ms < WARN_EVERY_MS)
        return;
    st->warned_at_ms = t;
    json_t *f = json_pack("{s:I, s:I, s:I, s:I, s:I}", "oldest_unconfirmed_ms",
                          (json_int_t)s->oldest_unconfirmed_ms, "oldest_unacked_ms",
                          (json_int_t)s->oldest_unacked_ms, "unconfirmed",
                          (json_int_t)s->unconfirmed, "outbox_depth",
                          (json_int_t)s->outbox_depth, "warn_after_ms", (json_int_t)limit);
    log_json(LOG_LVL_WARN, "ledger: a message has waited long for its confirmation or "
             "upstream ack; D365 offers it again after 30 minutes", f);
}

static void on_stats(void *arg, enum ledger_err err, const struct ledger_stats *s)
{
    struct readref *ref = arg;
    struct ledgerstat *st = ref->st;

    free(ref);
    if (!st)
        return;
    st->read = NULL;
    if (err != LEDGER_OK)
        return;
    st->last = *s;
    st->have = true;
    st->last_at_ms = now_ms();
    check_ages(st);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ledgerstat *st = arg;
    struct readref *ref;

    (void)fd;
    (void)what;
    if (st->read || !(ref = calloc(1, sizeof *ref)))
        return;
    ref->st = st;
    if (ledger_stats(st->l, on_stats, ref) < 0) {
        free(ref);
        return;
    }
    st->read = ref;
}

struct ledgerstat *ledgerstat_new(struct event_base *base, struct ledger *l,
                                  const struct conf_ledger *lc)
{
    struct ledgerstat *st = calloc(1, sizeof *st);
    struct timeval tv = { .tv_sec = lc->stats_interval_ms / 1000,
                          .tv_usec = (lc->stats_interval_ms % 1000) * 1000 };

    if (!st)
        return NULL;
    st->l = l;
    st->lc = *lc;
    st->tick = event_new(base, -1, EV_PERSIST, on_tick, st);
    if (!st->tick || event_add(st->tick, &tv) < 0) {
        ledgerstat_free(st);
        return NULL;
    }
    return st;
}

void ledgerstat_free(struct ledgerstat *st)
{
    if (!st)
        return;
    if (st->tick)
        event_free(st->tick);
    if (st->read)
        st->read->st = NULL;
    free(st);
}

void ledgerstat_count(struct ledgerstat *st, enum ledgerstat_counter c)
{
    if (c < LS_N_COUNTERS)
        st->n[c]++;
}

static json_t *cluster_json(const struct ledger_stats *s)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                     "new_messages", (json_int_t)s->new_messages,
                     "redeliveries", (json_int_t)s->redeliveries,
                     "duplicates_suppressed", (json_int_t)s->duplicates_suppressed,
                     "leased_elsewhere", (json_int_t)s->leased_elsewhere,
                     "fallback_ids", (json_int_t)s->fallback_ids,
                     "confirmed", (json_int_t)s->confirmed,
                     "acked", (json_int_t)s->acked,
                     "outbox_depth", (json_int_t)s->outbox_depth,
                     "unconfirmed", (json_int_t)s->unconfirmed,
                     "oldest_unconfirmed_ms", (json_int_t)s->oldest_unconfirmed_ms,
                     "unacked", (json_int_t)s->unacked,
                     "oldest_unacked_ms", (json_int_t)s->oldest_unacked_ms);
}

json_t *ledgerstat_json(const struct ledgerstat *st)
{
    json_t *local = json_object();

    for (int i = 0; i < LS_N_COUNTERS; i++)
        json_object_set_new(local, names[i], json_integer((json_int_t)st->n[i]));
    return json_pack("{s:o, s:o, s:I}", "local", local, "cluster",
                     st->have ? cluster_json(&st->last) : json_null(), "cluster_age_ms",
                     (json_int_t)(st->have ? now_ms() - st->last_at_ms : -1));
}
