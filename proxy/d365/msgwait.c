/* msgwait: shared GetMessageStatus polling (see msgwait.h). Entries are keyed by
 * (environment, message id) and live while they have waiters. */
#include "msgwait.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "d365stats.h"
#include "upcall.h"

#define FINALS_SEEN 1024 /* ids whose final status was counted, remembered against repeats */
#define ALIGN16(n) (((n) + 15) & ~(size_t)15)
#define LAST_INLINE 48   /* a status name ("Processed", "PreProcessingError") fits here */

struct entry;

struct msgwait_waiter {
    struct entry *e;             /* borrowed: the entry it waits on */
    struct msgwait_waiter *next; /* entry's list */
    struct event *timer;         /* in the waiter's allocation (new_waiter): deadline, or the
                                    deferred answer */
    unsigned wait_ms;
    msgwait_on_result cb;
    void *arg;
};

struct entry {
    struct msgwait *mw;          /* borrowed */
    struct entry *prev, *next;   /* registry list */
    char *env;                   /* in the entry's allocation (entry_get), like timer */
    char id[256];
    struct d365_call *poll;      /* owned while in flight */
    struct event *timer;         /* next poll */
    struct msgwait_waiter *waiters;
    unsigned interval_ms;
    char *last;                  /* last status seen, NULL before the first: last_buf, or
                                    owned when longer */
    char last_buf[LAST_INLINE];
    bool last_final;
    double last_at;              /* monotonic seconds */
};

struct msgwait {
    struct event_base *base;     /* borrowed */
    struct upcall_ctx *ctx;      /* borrowed */
    struct msgwait_opts o;
    struct entry *entries;       /* owned list */
    size_t n_waiters, n_entries;
    unsigned long polls;
    uint64_t counted[FINALS_SEEN];  /* hashes of ids whose final status was counted */
    size_t counted_next;
};

/* Counts a final status once per (environment, id), however many clients ask: the last
 * FINALS_SEEN ids counted are remembered by hash. */
static void count_final(struct msgwait *mw, const struct entry *e, const char *status)
{
    uint64_t h = 1469598103934665603ULL;
    struct d365stats_env *st;

    for (const char *p = e->env; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (const char *p = e->id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    for (size_t i = 0; i < FINALS_SEEN; i++)
        if (mw->counted[i] == h)
            return;
    mw->counted[mw->counted_next] = h;
    mw->counted_next = (mw->counted_next + 1) % FINALS_SEEN;
    if ((st = upcall_ctx_env_stats(mw->ctx, e->env)))
        statcell_inc(&st->finals[strcmp(mw->o.action, "GetMessageStatus") != 0]
                                [d365stats_final_index(status)]);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct timeval tv_ms(unsigned ms)
{
    struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    return tv;
}

struct msgwait *msgwait_new(struct event_base *base, struct upcall_ctx *ctx,
                            const struct msgwait_opts *opts)
{
    struct msgwait *mw = calloc(1, sizeof *mw);

    if (!mw)
        return NULL;
    mw->base = base;
    mw->ctx = ctx;
    if (opts)
        mw->o = *opts;
    mw->o.first_interval_ms = mw->o.first_interval_ms ? mw->o.first_interval_ms : 1000;
    mw->o.max_interval_ms = mw->o.max_interval_ms ? mw->o.max_interval_ms : 5000;
    mw->o.fresh_ms = mw->o.fresh_ms ? mw->o.fresh_ms : 500;
    mw->o.max_waiters = mw->o.max_waiters ? mw->o.max_waiters : 10000;
    mw->o.action = mw->o.action ? mw->o.action : "GetMessageStatus";
    mw->o.param = mw->o.param ? mw->o.param : "messageId";
    mw->o.is_final = mw->o.is_final ? mw->o.is_final : d365parse_status_final;
    return mw;
}

static void on_waiter_timer(evutil_socket_t fd, short what, void *arg);

/* A waiter and its timer's room in one allocation. NULL when out of memory. */
static struct msgwait_waiter *new_waiter(struct msgwait *mw)
{
    struct msgwait_waiter *w = calloc(1, ALIGN16(sizeof *w) + event_get_struct_event_size());

    if (!w)
        return NULL;
    w->timer = (struct event *)(void *)((char *)w + ALIGN16(sizeof *w));
    evtimer_assign(w->timer, mw->base, on_waiter_timer, w);
    return w;
}

static void waiter_free(struct msgwait *mw, struct msgwait_waiter *w)
{
    event_del(w->timer);
    mw->n_waiters--;
    free(w);
}

static void set_last(struct entry *e, const char *status)
{
    size_t n = strlen(status);

    if (e->last != e->last_buf)
        free(e->last);
    e->last = n < sizeof e->last_buf ? e->last_buf : malloc(n + 1);
    if (e->last)
        memcpy(e->last, status, n + 1);
}

static void entry_free(struct entry *e)
{
    struct msgwait *mw = e->mw;

    while (e->waiters) {
        struct msgwait_waiter *w = e->waiters;
        e->waiters = w->next;
        waiter_free(mw, w);
    }
    d365_cancel(e->poll);
    event_del(e->timer);
    if (e->prev)
        e->prev->next = e->next;
    else
        mw->entries = e->next;
    if (e->next)
        e->next->prev = e->prev;
    mw->n_entries--;
    if (e->last != e->last_buf)
        free(e->last);
    free(e);
}

void msgwait_free(struct msgwait *mw)
{
    if (!mw)
        return;
    while (mw->entries)
        entry_free(mw->entries);
    free(mw);
}

/* Answers a detached waiter and frees it. */
static void answer(struct msgwait *mw, struct msgwait_waiter *w, const struct msgwait_result *r)
{
    msgwait_on_result cb = w->cb;
    void *arg = w->arg;

    waiter_free(mw, w);
    cb(arg, r);
}

/* Calls back every waiter of `list` (already detached from its entry). */
static void answer_all(struct msgwait *mw, struct msgwait_waiter *list,
                       const struct msgwait_result *r)
{
    while (list) {
        struct msgwait_waiter *w = list;
        list = w->next;
        answer(mw, w, r);
    }
}

static void detach(struct entry *e, struct msgwait_waiter *w)
{
    for (struct msgwait_waiter **p = &e->waiters; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    w->next = NULL;
    w->e = NULL;
}

static int start_poll(struct entry *e);

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    struct entry *e = arg;
    struct d365_err err = { .status = 500, .code = "internal",
                            .message = "cannot start a status call" };
    struct msgwait_result r = { .ok = false, .err = &err };
    struct msgwait_waiter *all;

    (void)fd;
    (void)what;
    if (start_poll(e) == 0)
        return;
    all = e->waiters;
    e->waiters = NULL;
    answer_all(e->mw, all, &r);
    entry_free(e);
}

/* Not final: answer the waiters that wanted the current status, keep polling for the
 * others, or free the entry when none is left. */
static void after_progress(struct entry *e, const struct msgwait_result *r)
{
    struct msgwait *mw = e->mw;
    struct msgwait_waiter *now = NULL, **p = &e->waiters;
    struct timeval tv;

    while (*p) {
        struct msgwait_waiter *w = *p;
        if (w->wait_ms == 0) {
            *p = w->next;
            w->next = now;
            now = w;
        } else {
            p = &w->next;
        }
    }
    if (e->waiters) {
        tv = tv_ms(e->interval_ms);
        evtimer_add(e->timer, &tv);
        e->interval_ms += e->interval_ms / 2;
        if (e->interval_ms > mw->o.max_interval_ms)
            e->interval_ms = mw->o.max_interval_ms;
    }
    answer_all(mw, now, r); /* `r` points into `e`: answer before freeing it */
    if (!e->waiters)
        entry_free(e);
}

static void on_poll(void *arg, const struct d365_result *dr)
{
    struct entry *e = arg;
    struct msgwait *mw = e->mw;
    struct msgwait_result r = { 0 };
    struct msgwait_waiter *all;
    const char *not_yet = NULL;

    e->poll = NULL;
    if (dr->ok || (mw->o.not_yet && (not_yet = mw->o.not_yet(&dr->err)))) {
        set_last(e, dr->ok ? dr->value : not_yet);
        e->last_final = dr->ok && mw->o.is_final(dr->value);
        e->last_at = now_s();
        r.ok = true;
        r.status = dr->ok ? dr->value : not_yet;
        r.final = e->last_final;
        if (!r.final)
            return after_progress(e, &r);
        count_final(mw, e, r.status);
    } else {
        r.err = &dr->err;
    }
    all = e->waiters;      /* final or failed: everyone gets it, the entry goes */
    e->waiters = NULL;
    answer_all(mw, all, &r);
    entry_free(e);
}

/* Starts the entry's one GetMessageStatus call. Returns 0, or -1 when it could not. */
static int start_poll(struct entry *e)
{
    struct d365_cbs cbs = { .on_result = on_poll, .arg = e };

    e->poll = d365_action(e->mw->ctx, e->env, e->mw->o.action, e->mw->o.param, e->id, &cbs);
    if (!e->poll)
        return -1;
    e->mw->polls++;
    return 0;
}

/* A waiter's own timer: its wait ended, or a fresh result is served to it. */
static void on_waiter_timer(evutil_socket_t fd, short what, void *arg)
{
    struct msgwait_waiter *w = arg;
    struct entry *e = w->e;
    struct msgwait *mw = e->mw;
    struct d365_err err = { .status = 504, .code = "status_timeout" };
    struct msgwait_result r = { .ok = e->last != NULL, .status = e->last,
                                .final = e->last_final, .err = &err };

    (void)fd;
    (void)what;
    strcpy(err.message, "D365 gave no message status within the wait");
    detach(e, w);
    answer(mw, w, &r);
    if (!e->waiters) /* a poll in flight or a loop would serve nobody now */
        entry_free(e);
}

static struct entry *entry_get(struct msgwait *mw, const char *env, const char *id)
{
    struct entry *e;

    for (e = mw->entries; e; e = e->next)
        if (strcmp(e->id, id) == 0 && strcmp(e->env, env) == 0)
            return e;
    size_t el = strlen(env) + 1, ev = ALIGN16(event_get_struct_event_size());
    if (strlen(id) >= sizeof e->id || !(e = calloc(1, ALIGN16(sizeof *e) + ev + el)))
        return NULL;
    e->timer = (struct event *)(void *)((char *)e + ALIGN16(sizeof *e));
    evtimer_assign(e->timer, mw->base, on_poll_timer, e);
    e->env = (char *)e->timer + ev;
    memcpy(e->env, env, el);
    strcpy(e->id, id);
    e->mw = mw;
    e->interval_ms = mw->o.first_interval_ms;
    e->next = mw->entries;
    if (e->next)
        e->next->prev = e;
    mw->entries = e;
    mw->n_entries++;
    return e;
}

/* Starts polling for a new waiter when nothing else will answer it in time: no poll in
 * flight and either no loop running or a caller wanting the current status now. */
static int kick(struct entry *e, unsigned wait_ms, bool fresh)
{
    if (e->poll)
        return 0;
    if (evtimer_pending(e->timer, NULL) && (wait_ms || fresh))
        return 0;
    evtimer_del(e->timer);
    return start_poll(e);
}

struct msgwait_waiter *msgwait_add(struct msgwait *mw, const char *env, const char *id,
                                   unsigned wait_ms, msgwait_on_result cb, void *arg)
{
    struct msgwait_waiter *w;
    struct entry *e;
    bool fresh;
    struct timeval tv;

    if (mw->n_waiters >= mw->o.max_waiters || !(w = new_waiter(mw)))
        return NULL;
    mw->n_waiters++;
    w->wait_ms = wait_ms;
    w->cb = cb;
    w->arg = arg;
    e = entry_get(mw, env, id);
    if (!e)
        goto fail;
    fresh = e->last && (now_s() - e->last_at) * 1000.0 < mw->o.fresh_ms;
    if (!(fresh && wait_ms == 0) && kick(e, wait_ms, fresh) < 0)
        goto fail;
    w->e = e;
    w->next = e->waiters;
    e->waiters = w;
    tv = tv_ms(wait_ms); /* wait 0 with a fresh result: answered from the loop at once */
    if (wait_ms || fresh)
        evtimer_add(w->timer, &tv);
    return w;
fail:
    waiter_free(mw, w);
    if (e && !e->waiters && !e->poll)
        entry_free(e);
    return NULL;
}

void msgwait_cancel(struct msgwait_waiter *w)
{
    struct entry *e;

    if (!w)
        return;
    e = w->e;
    detach(e, w);
    waiter_free(e->mw, w);
    if (!e->waiters)
        entry_free(e);
}

void msgwait_stats(const struct msgwait *mw, struct msgwait_stats *out)
{
    out->waiters = mw->n_waiters;
    out->entries = mw->n_entries;
    out->polls = mw->polls;
}
