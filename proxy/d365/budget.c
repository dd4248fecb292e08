/* budget: D365 slots and the cluster 429 gate of one worker. See budget.h.
 *
 *   acquire --> fairq (per job) --pump--> shared & Redis up?  --yes--> ACQUIRE script
 *                  ^                         | no                        |
 *                  |                    budgetwin (local share)          v
 *                  |                         |            granted: pop next waiter (round
 *                  |                         v                     robin), callback, pump
 *                  `-- timer (poll_ms, window hint) <-- busy / window full
 *   deadline of a waiter --> EXHAUSTED (Retry-After: the last known wait, at least 1 s)
 *
 * Each environment asks Redis one question at a time; a grant goes to whichever waiter is
 * next in the rotation when the answer comes. */
#include "budget.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "budgetlua.h"
#include "budgetwin.h"
#include "conf.h"
#include "deadline.h"
#include "fairq.h"
#include "log.h"
#include "rconn.h"
#include "redisopen.h"

#define MAX_JOBS 4096            /* jobs waiting at once per environment */
#define LEASE_ID_SIZE 48

struct benv;

struct budget_lease {
    struct benv *e;              /* borrowed */
    bool shared;                 /* held in Redis (else only locally) */
    char id[LEASE_ID_SIZE];
    struct budget_lease *prev, *next; /* e's list of shared leases */
};

struct budget_wait {
    struct fairq_item item;      /* first: the fairq item is the wait */
    struct benv *e;              /* borrowed */
    struct event *deadline;      /* owned */
    budget_cb *cb;
    void *arg;
};

struct benv {
    struct budget *b;            /* borrowed */
    char name[72];
    struct budgetlua_keys keys;
    bool keys_ok;
    struct fairq *q;             /* owned */
    struct budgetwin win;        /* local in-flight count and window */
    struct event *timer;         /* owned: the next pump */
    struct budget_lease *ask;    /* owned: the lease an ACQUIRE in flight is for */
    struct budget_lease *leases; /* owned list of shared leases held */
    size_t n_leases;
    int64_t gate_until_us;       /* monotonic; closed while now < it */
    int64_t hint_ms;             /* last known wait for a place (Retry-After) */
    unsigned long granted, refused;
    bool fell_back;              /* logged "Redis unavailable" */
};

struct budget {
    struct event_base *base;     /* borrowed */
    const struct conf *conf;     /* borrowed: the current snapshot */
    unsigned workers;
    struct rconn *rc;            /* owned; NULL unless shared */
    struct evdns_base *dns;      /* owned or NULL */
    struct rconn_script scripts[BUDGETLUA_COUNT];
    struct benv **envs;          /* owned */
    size_t n_envs;
    struct event *gate_timer;    /* owned: refreshes the gate cache (shared) */
    struct event *renew_timer;   /* owned: renews shared leases */
    bool peeking;
    char instance[24];           /* random: names this worker's leases */
    unsigned long long seq;
    uint64_t rng;
};

static void pump(struct benv *e);

static const struct conf_budget *cfg(const struct budget *b)
{
    return &b->conf->d365_budget;
}

static bool shared_mode(const struct budget *b)
{
    struct rconn_health h;

    if (!b->rc)
        return false;
    rconn_get_health(b->rc, &h);
    return h.connected;
}

static unsigned jitter(struct budget *b, unsigned max)
{
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return max ? (unsigned)(b->rng % (max + 1)) : 0;
}

static void arm(struct event *ev, int64_t ms)
{
    struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

    evtimer_add(ev, &tv);
}

/* ---- environments ---------------------------------------------------------------------- */

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    pump(arg);
}

static void benv_free(struct benv *e)
{
    if (!e)
        return;
    fairq_free(e->q);
    budgetwin_cleanup(&e->win);
    if (e->timer)
        event_free(e->timer);
    free(e->ask);
    while (e->leases) { /* only at shutdown; Redis lets them expire */
        struct budget_lease *l = e->leases;
        e->leases = l->next;
        free(l);
    }
    free(e);
}

static struct benv *benv_new(struct budget *b, const struct conf_env *env)
{
    struct benv *e = calloc(1, sizeof *e);

    if (!e)
        return NULL;
    e->b = b;
    snprintf(e->name, sizeof e->name, "%s", env->name);
    e->keys_ok = budgetlua_keys(env->resource, env->client_id, &e->keys) == 0;
    e->q = fairq_new(cfg(b)->queue_per_job, MAX_JOBS);
    e->timer = evtimer_new(b->base, on_pump, e);
    if (!e->q || !e->timer || budgetwin_init(&e->win, cfg(b)->requests) < 0) {
        benv_free(e);
        return NULL;
    }
    return e;
}

static struct benv *benv_find(const struct budget *b, const char *name)
{
    for (size_t i = 0; name && i < b->n_envs; i++)
        if (strcmp(b->envs[i]->name, name) == 0)
            return b->envs[i];
    return NULL;
}

/* Adds the environments of b->conf not known yet. Returns 0 or -1 (no memory). */
static int add_envs(struct budget *b)
{
    for (size_t i = 0; i < b->conf->n_envs; i++) {
        const struct conf_env *env = &b->conf->envs[i];
        struct benv *e = benv_find(b, env->name), **n;
        if (e) {
            e->keys_ok = budgetlua_keys(env->resource, env->client_id, &e->keys) == 0;
            if (e->win.cap != cfg(b)->requests && budgetwin_resize(&e->win, cfg(b)->requests) < 0)
                return -1;
            continue;
        }
        n = realloc(b->envs, (b->n_envs + 1) * sizeof *n);
        if (!n)
            return -1;
        b->envs = n;
        if (!(b->envs[b->n_envs] = benv_new(b, env)))
            return -1;
        b->n_envs++;
    }
    return 0;
}

/* ---- leases -------------------------------------------------------------------------------- */

static struct budget_lease *lease_new(struct benv *e)
{
    struct budget_lease *l = calloc(1, sizeof *l);

    if (l) {
        l->e = e;
        snprintf(l->id, sizeof l->id, "%s:%llu", e->b->instance, ++e->b->seq);
    }
    return l;
}

static void link_lease(struct benv *e, struct budget_lease *l)
{
    l->shared = true;
    l->prev = NULL;
    l->next = e->leases;
    if (e->leases)
        e->leases->prev = l;
    e->leases = l;
    e->n_leases++;
}

static void on_ignored(void *arg, enum rconn_result res, const redictReply *reply)
{
    (void)arg;
    (void)res;
    (void)reply;
}

static void redis_release(struct benv *e, const char *id)
{
    struct budget *b = e->b;

    if (b->rc && e->keys_ok)
        rconn_eval(b->rc, &b->scripts[BUDGETLUA_RELEASE], on_ignored, NULL,
                   (int)cfg(b)->redis_timeout_ms, 1, e->keys.sem, id, NULL);
}

void budget_release(struct budget_lease *l)
{
    struct benv *e;

    if (!l)
        return;
    e = l->e;
    budgetwin_release(&e->win);
    if (l->shared) {
        if (l->prev)
            l->prev->next = l->next;
        else
            e->leases = l->next;
        if (l->next)
            l->next->prev = l->prev;
        e->n_leases--;
        redis_release(e, l->id);
    }
    free(l);
    if (fairq_len(e->q) > 0 && !e->ask)
        arm(e->timer, 0); /* not pump(): the caller may be inside a budget callback */
}

/* ---- waiters ------------------------------------------------------------------------------- */

static void wait_free(struct budget_wait *w)
{
    if (w->deadline)
        event_free(w->deadline);
    free(w);
}

static void deliver(struct budget_wait *w, enum budget_verdict v, struct budget_lease *l,
                    unsigned retry_after)
{
    budget_cb *cb = w->cb;
    void *arg = w->arg;

    wait_free(w);
    cb(arg, v, l, retry_after); /* last: it may acquire or release again */
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct budget_wait *w = arg;
    struct benv *e = w->e;

    fairq_remove(e->q, &w->item);
    e->refused++;
    deliver(w, BUDGET_EXHAUSTED, NULL, budgetwin_retry_after(e->hint_ms));
}

/* Hands a granted slot to the next waiter; releases it when nobody waits any more. */
static void grant(struct benv *e, struct budget_lease *l)
{
    struct fairq_item *it = fairq_pop(e->q);

    if (!it) {
        budget_release(l);
        return;
    }
    e->granted++;
    deliver((struct budget_wait *)it, BUDGET_GRANTED, l, 0);
}

static void fail_all_gated(struct benv *e, int64_t ms)
{
    struct fairq_item *it;

    while ((it = fairq_pop(e->q)))
        deliver((struct budget_wait *)it, BUDGET_GATED, NULL, budgetwin_retry_after(ms));
}

/* ---- pump ---------------------------------------------------------------------------------- */

static void pump_local(struct benv *e)
{
    struct budget *b = e->b;
    const struct conf_budget *c = cfg(b);
    unsigned conc = budgetwin_share(c->concurrent, c->instances, b->workers);
    unsigned rate = budgetwin_share(c->requests, c->instances, b->workers);
    int64_t wait_ms;

    while (fairq_len(e->q) > 0) {
        if (budgetwin_take(&e->win, conc, rate, c->window_ms, deadline_now_us() / 1000,
                           &wait_ms) < 0) {
            if (wait_ms > 0) {
                e->hint_ms = wait_ms;
                arm(e->timer, wait_ms);
            }
            return; /* else a release pumps again */
        }
        struct budget_lease *l = lease_new(e);
        if (!l) {
            budgetwin_release(&e->win);
            arm(e->timer, c->poll_ms);
            return;
        }
        grant(e, l);
    }
}

static void fall_back(struct benv *e, const char *why)
{
    if (!e->fell_back)
        log_msg(LOG_LVL_WARN, "budget: Redis unavailable for environment %s (%s): this worker "
                "uses its own share of the D365 budget", e->name, why);
    e->fell_back = true;
    pump_local(e);
}

static void on_acquired(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct benv *e = arg;
    struct budget_lease *l = e->ask;
    int64_t ms = 0;
    enum budgetlua_verdict v = res == RCONN_OK ? budgetlua_acquire_reply(reply, &ms)
                                                : BUDGETLUA_BAD;

    e->ask = NULL;
    if (res == RCONN_CANCELLED) {
        free(l);
        return;
    }
    if (v != BUDGETLUA_GRANTED)
        free(l);
    switch (v) {
    case BUDGETLUA_GRANTED:
        if (e->fell_back)
            log_msg(LOG_LVL_INFO, "budget: environment %s shares its budget through Redis "
                    "again", e->name);
        e->fell_back = false;
        link_lease(e, l);
        budgetwin_note(&e->win, deadline_now_us() / 1000);
        grant(e, l);
        arm(e->timer, 0);
        return;
    case BUDGETLUA_BUSY:
        e->hint_ms = 1000;
        arm(e->timer, cfg(e->b)->poll_ms + jitter(e->b, cfg(e->b)->poll_ms / 2));
        return;
    case BUDGETLUA_RATE:
        e->hint_ms = ms;
        arm(e->timer, ms);
        return;
    case BUDGETLUA_GATED:
        if (deadline_now_us() + ms * 1000 > e->gate_until_us)
            e->gate_until_us = deadline_now_us() + ms * 1000;
        fail_all_gated(e, ms);
        return;
    case BUDGETLUA_BAD:
        break;
    }
    fall_back(e, res == RCONN_OK ? "unexpected reply" : rconn_result_str(res));
}

static void pump(struct benv *e)
{
    struct budget *b = e->b;

    if (e->ask || fairq_len(e->q) == 0)
        return;
    if (!shared_mode(b) || !e->keys_ok) {
        if (b->rc)
            fall_back(e, "not connected");
        else
            pump_local(e);
        return;
    }
    const struct conf_budget *c = cfg(b);
    char conc[16], rate[16], win[16], lease[16];
    snprintf(conc, sizeof conc, "%u", c->concurrent);
    snprintf(rate, sizeof rate, "%u", c->requests);
    snprintf(win, sizeof win, "%u", c->window_ms);
    snprintf(lease, sizeof lease, "%u", c->lease_ms);
    if (!(e->ask = lease_new(e))) {
        arm(e->timer, c->poll_ms);
        return;
    }
    if (rconn_eval(b->rc, &b->scripts[BUDGETLUA_ACQUIRE], on_acquired, e,
                   (int)c->redis_timeout_ms, 3, e->keys.sem, e->keys.win, e->keys.gate, conc,
                   rate, win, lease, e->ask->id, NULL) < 0) {
        free(e->ask); /* out of memory: try again soon (never grant from here) */
        e->ask = NULL;
        arm(e->timer, c->poll_ms);
    }
}

/* ---- acquire ------------------------------------------------------------------------------- */

enum budget_start budget_acquire(struct budget *b, const char *env, const char *job,
                                 unsigned wait_ms, budget_cb *cb, void *arg,
                                 struct budget_wait **wait, unsigned *retry_after_s)
{
    const struct conf_budget *c = cfg(b);
    struct benv *e = c->enabled ? benv_find(b, env) : NULL;
    struct budget_wait *w;

    *wait = NULL;
    *retry_after_s = 0;
    if (!e)
        return BUDGET_FREE;
    if (wait_ms > c->wait_ms)
        wait_ms = c->wait_ms;
    w = calloc(1, sizeof *w);
    if (w) {
        w->e = e;
        w->cb = cb;
        w->arg = arg;
        w->deadline = evtimer_new(b->base, on_deadline, w);
    }
    if (!w || !w->deadline || fairq_push(e->q, job ? job : "", &w->item) < 0) {
        if (w)
            wait_free(w);
        e->refused++;
        *retry_after_s = budgetwin_retry_after(e->hint_ms);
        return BUDGET_FULL;
    }
    arm(w->deadline, wait_ms);
    *wait = w;
    if (!e->ask && shared_mode(b) && e->keys_ok)
        pump(e); /* only sends ACQUIRE: its answer comes from the loop, never from here */
    else if (!e->ask)
        arm(e->timer, 0); /* the local path may grant at once: not from inside this call */
    return BUDGET_PENDING;
}

void budget_cancel(struct budget_wait *w)
{
    if (!w)
        return;
    fairq_remove(w->e->q, &w->item);
    wait_free(w);
}

/* ---- gate ---------------------------------------------------------------------------------- */

int64_t budget_gate_left_us(const struct budget *b, const char *env)
{
    const struct benv *e = benv_find(b, env);
    int64_t left = e ? e->gate_until_us - deadline_now_us() : 0;

    return left > 0 ? left : 0;
}

void budget_gate_close(struct budget *b, const char *env, unsigned secs)
{
    struct benv *e = benv_find(b, env);
    int64_t until = deadline_now_us() + (int64_t)secs * 1000000;
    char ms[24];

    if (!e)
        return;
    if (until > e->gate_until_us)
        e->gate_until_us = until;
    log_msg(LOG_LVL_WARN, "D365 environment %s throttled (429): gate closed for %u s", env, secs);
    if (!b->rc || !e->keys_ok)
        return;
    snprintf(ms, sizeof ms, "%lld", (long long)secs * 1000);
    rconn_eval(b->rc, &b->scripts[BUDGETLUA_CLOSE], on_ignored, NULL,
               (int)cfg(b)->redis_timeout_ms, 1, e->keys.gate, ms, NULL);
}

static void on_peeked(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct budget *b = arg;
    int64_t *ms;

    if (res == RCONN_CANCELLED)
        return;
    b->peeking = false;
    if (res != RCONN_OK || !(ms = calloc(b->n_envs + 1, sizeof *ms)))
        return;
    if (budgetlua_peek_reply(reply, ms, b->n_envs) == 0) {
        int64_t now = deadline_now_us();
        for (size_t i = 0; i < b->n_envs; i++)
            if (ms[i] > 0 && now + ms[i] * 1000 > b->envs[i]->gate_until_us)
                b->envs[i]->gate_until_us = now + ms[i] * 1000;
    }
    free(ms);
}

static void on_gate_timer(evutil_socket_t fd, short what, void *arg)
{
    struct budget *b = arg;
    const char **argv;

    arm(b->gate_timer, cfg(b)->gate_refresh_ms);
    if (b->peeking || !shared_mode(b) || b->n_envs == 0)
        return;
    if (!(argv = calloc(b->n_envs, sizeof *argv)))
        return;
    for (size_t i = 0; i < b->n_envs; i++)
        argv[i] = b->envs[i]->keys.gate;
    b->peeking = rconn_evalv(b->rc, &b->scripts[BUDGETLUA_PEEK], on_peeked, b,
                             (int)cfg(b)->redis_timeout_ms, (int)b->n_envs, (int)b->n_envs,
                             argv, NULL) == 0;
    free(argv);
}

/* ---- lease renewal -------------------------------------------------------------------------- */

static void renew(struct budget *b, struct benv *e)
{
    const char **argv = calloc(e->n_leases + 2, sizeof *argv);
    char lease[16];
    size_t n = 0;

    if (!argv)
        return;
    snprintf(lease, sizeof lease, "%u", cfg(b)->lease_ms);
    argv[n++] = e->keys.sem;
    argv[n++] = lease;
    for (struct budget_lease *l = e->leases; l; l = l->next)
        argv[n++] = l->id;
    rconn_evalv(b->rc, &b->scripts[BUDGETLUA_RENEW], on_ignored, NULL,
                (int)cfg(b)->redis_timeout_ms, 1, (int)n, argv, NULL);
    free(argv);
}

static void on_renew_timer(evutil_socket_t fd, short what, void *arg)
{
    struct budget *b = arg;

    arm(b->renew_timer, cfg(b)->lease_ms / 3);
    for (size_t i = 0; b->rc && i < b->n_envs; i++)
        if (b->envs[i]->n_leases > 0 && b->envs[i]->keys_ok)
            renew(b, b->envs[i]);
}

/* ---- life ----------------------------------------------------------------------------------- */

static int open_redis(struct budget *b)
{
    for (int i = 0; i < BUDGETLUA_COUNT; i++)
        if (rconn_script_init(&b->scripts[i], budgetlua_script((enum budgetlua_id)i)) < 0)
            return -1;
    b->rc = redisopen_new(b->base, &b->conf->redis, "budget: ", &b->dns);
    b->gate_timer = evtimer_new(b->base, on_gate_timer, b);
    b->renew_timer = evtimer_new(b->base, on_renew_timer, b);
    if (!b->rc || !b->gate_timer || !b->renew_timer)
        return -1;
    arm(b->gate_timer, cfg(b)->gate_refresh_ms);
    arm(b->renew_timer, cfg(b)->lease_ms / 3);
    return 0;
}

struct budget *budget_new(struct event_base *base, const struct conf *conf, unsigned workers)
{
    struct budget *b = calloc(1, sizeof *b);
    unsigned char rnd[8];

    if (!b || RAND_bytes(rnd, sizeof rnd) != 1) {
        free(b);
        log_msg(LOG_LVL_ERROR, "budget: out of memory or no randomness");
        return NULL;
    }
    b->base = base;
    b->conf = conf;
    b->workers = workers ? workers : 1;
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(b->instance + 2 * i, 3, "%02x", rnd[i]);
    memcpy(&b->rng, rnd, sizeof b->rng);
    b->rng |= 1;
    if (add_envs(b) < 0 || (conf->d365_budget.shared && open_redis(b) < 0)) {
        log_msg(LOG_LVL_ERROR, "budget: cannot set up the D365 budget");
        budget_free(b);
        return NULL;
    }
    return b;
}

void budget_set_conf(struct budget *b, const struct conf *conf)
{
    b->conf = conf;
    if (add_envs(b) < 0)
        log_msg(LOG_LVL_ERROR, "budget: out of memory adding environments");
}

void budget_free(struct budget *b)
{
    if (!b)
        return;
    rconn_free(b->rc); /* pending callbacks run now, with CANCELLED */
    if (b->dns)
        evdns_base_free(b->dns, 0);
    if (b->gate_timer)
        event_free(b->gate_timer);
    if (b->renew_timer)
        event_free(b->renew_timer);
    for (size_t i = 0; i < b->n_envs; i++)
        benv_free(b->envs[i]);
    free(b->envs);
    free(b);
}

json_t *budget_status(const struct budget *b)
{
    json_t *o = json_object();
    const char *mode = !cfg(b)->enabled ? "off" : shared_mode(b) ? "shared" : "local";

    for (size_t i = 0; i < b->n_envs; i++) {
        const struct benv *e = b->envs[i];
        json_object_set_new(o, e->name, json_pack(
            "{s:s, s:I, s:I, s:I, s:I, s:I}", "mode", mode, "inflight",
            (json_int_t)e->win.inflight, "waiting", (json_int_t)fairq_len(e->q), "gate_ms",
            (json_int_t)(budget_gate_left_us(b, e->name) / 1000), "granted",
            (json_int_t)e->granted, "refused", (json_int_t)e->refused));
    }
    return o;
}
