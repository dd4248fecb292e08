/* outbox: upstream acks of confirmed messages (see outbox.h).
 *
 *   outbox_ack --> d365_ack --ok--> ledger_mark_acked ---> end
 *        |            `-fail-> ledger_outbox_release(backoff) -> end
 *        `-- every lease/3 while the ack runs: ledger_outbox_renew
 *   timer --> ledger_outbox_claim --> outbox_ack per entry not already running here */
#include "outbox.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "d365.h"
#include "d365parse.h"
#include "ledger.h"
#include "log.h"
#include "rbackoff.h"

#define CLAIM_BATCH 10
#define MAX_JOBS 64             /* claims stop while this many acks run */

/* A claim in flight: outlives the outbox if Redis answers after outbox_free. */
struct claimref {
    struct outbox *ob;          /* borrowed; NULL once the outbox is gone */
};

struct outbox_job {
    struct outbox *ob;          /* borrowed; NULL once detached by outbox_free */
    struct outbox_job *prev, *next;
    char *id;                   /* owned */
    char *body;                 /* owned */
    size_t len;
    unsigned attempts;
    char env[LEDGERKEY_ENV_MAX + 1];
    char activity[GUID_CANON_SIZE];
    struct d365_call *call;     /* owned while the upstream ack runs */
    struct event *renew;        /* owned */
    unsigned redis_pending;     /* ledger calls whose callback has not come */
    bool ended;                 /* the upstream ack ended */
    outbox_done_cb *cb;
    void *arg;                  /* borrowed */
};

struct outbox {
    struct event_base *base;    /* borrowed */
    struct upcall_ctx *uc;      /* borrowed */
    struct ledger *l;           /* borrowed */
    struct conf_ledger lc;
    struct event *tick;         /* owned */
    struct claimref *claim;     /* owned by the claim callback while set */
    struct outbox_job *jobs;    /* owned list */
    struct outbox_counts n;
    uint32_t rnd;
    outbox_acked_hook *hook;    /* NULL = none */
    void *hook_arg;             /* borrowed */
};

int outbox_id_scope(const char *id, char *env, size_t cap, char *activity)
{
    const char *c = id ? strchr(id, ':') : NULL;
    size_t n = c ? (size_t)(c - id) : 0;

    if (!c || n == 0 || n >= cap || strlen(c + 1) < GUID_CANON_SIZE ||
        c[GUID_CANON_SIZE] != ':')
        return -1;
    memcpy(env, id, n);
    env[n] = '\0';
    memcpy(activity, c + 1, GUID_CANON_SIZE - 1);
    activity[GUID_CANON_SIZE - 1] = '\0';
    return 0;
}

struct outbox *outbox_new(struct event_base *base, struct upcall_ctx *uc, struct ledger *l,
                          const struct conf_ledger *lc)
{
    struct outbox *ob = calloc(1, sizeof *ob);

    if (!ob)
        return NULL;
    ob->base = base;
    ob->uc = uc;
    ob->l = l;
    ob->lc = *lc;
    ob->rnd = (uint32_t)getpid() ^ (uint32_t)time(NULL) ^ 0x9e3779b9u;
    if (!ob->rnd)
        ob->rnd = 1;
    return ob;
}

/* ---- jobs ---- */

static void job_unlink(struct outbox_job *j)
{
    struct outbox *ob = j->ob;

    if (!ob)
        return;
    if (j->prev)
        j->prev->next = j->next;
    else
        ob->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    ob->n.in_flight--;
    j->prev = j->next = NULL;
}

static void job_free(struct outbox_job *j)
{
    if (j->renew)
        event_free(j->renew);
    free(j->id);
    if (j->body)
        explicit_bzero(j->body, j->len);
    free(j->body);
    free(j);
}

/* Frees the job once the upstream ack ended and no ledger call can call back. */
static void job_settle(struct outbox_job *j)
{
    if (!j->ended || j->call || j->redis_pending)
        return;
    job_unlink(j);
    job_free(j);
}

static void on_ledger_done(void *arg, enum ledger_err err, const struct ledger_result *r)
{
    struct outbox_job *j = arg;

    j->redis_pending--;
    if (err != LEDGER_OK && j->ob)
        log_msg(LOG_LVL_WARN, "ledger: outbox update of %s failed (%s); the entry comes due "
                "again after its lease", j->id, ledger_err_str(err));
    else if (r && r->status == LEDGER_NOT_HOLDER)
        log_msg(LOG_LVL_INFO, "ledger: outbox entry %s is held by another instance now", j->id);
    job_settle(j);
}

static void on_renew_timer(evutil_socket_t fd, short what, void *arg)
{
    struct outbox_job *j = arg;

    (void)fd;
    (void)what;
    if (j->ended || !j->ob)
        return;
    if (ledger_outbox_renew(j->ob->l, j->id, on_ledger_done, j) == 0)
        j->redis_pending++;
}

static unsigned retry_delay(struct outbox *ob, unsigned attempts)
{
    return rbackoff_delay_ms(ob->lc.ack_retry_min_ms, ob->lc.ack_retry_max_ms,
                             attempts ? attempts - 1 : 0, rbackoff_rand(&ob->rnd));
}

/* The hook learns the message id from the acked body (the original dequeue answer). */
static void tell_acked(struct outbox *ob, const struct outbox_job *j)
{
    struct d365parse_dequeue d;
    char msg[GUID_CANON_SIZE];

    if (!ob->hook || d365parse_dequeue(j->body, j->len, &d) < 0)
        return;
    if (d.correlation_id && guid_canonical(d.correlation_id, strlen(d.correlation_id), msg) == 0)
        ob->hook(ob->hook_arg, j->env, msg);
    d365parse_dequeue_cleanup(&d);
}

void outbox_set_acked_hook(struct outbox *ob, outbox_acked_hook *fn, void *arg)
{
    ob->hook = fn;
    ob->hook_arg = arg;
}

static void on_acked(void *arg, const struct d365_result *res)
{
    struct outbox_job *j = arg;
    struct outbox *ob = j->ob;
    outbox_done_cb *cb = j->cb;
    int rc;

    j->call = NULL;
    j->ended = true;
    j->cb = NULL;
    event_del(j->renew);
    if (res->ok) {
        ob->n.acks_ok++;
        tell_acked(ob, j);
        rc = ledger_mark_acked(ob->l, j->id, on_ledger_done, j);
    } else {
        unsigned delay = retry_delay(ob, j->attempts);
        ob->n.acks_failed++;
        log_msg(LOG_LVL_WARN, "ledger: upstream ack of %s failed (%s, attempt %u); retry in "
                "%u ms", j->id, res->err.code, j->attempts, delay);
        rc = ledger_outbox_release(ob->l, j->id, delay, on_ledger_done, j);
    }
    if (rc == 0)
        j->redis_pending++;
    if (cb)
        cb(j->arg, res->ok);
    job_settle(j);
}

static struct outbox_job *find_job(struct outbox *ob, const char *id)
{
    for (struct outbox_job *j = ob->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

struct outbox_job *outbox_ack(struct outbox *ob, const char *id, const char *body, size_t len,
                              unsigned attempts, outbox_done_cb *cb, void *arg)
{
    struct d365_cbs cbs = { .on_result = on_acked };
    unsigned renew_ms = (ob->lc.outbox_lease_ms ? ob->lc.outbox_lease_ms : 60000) / 3;
    struct timeval tv = { .tv_sec = renew_ms / 1000, .tv_usec = (renew_ms % 1000) * 1000 };
    struct outbox_job *j;

    if (find_job(ob, id) || !(j = calloc(1, sizeof *j)))
        return NULL;
    if (outbox_id_scope(id, j->env, sizeof j->env, j->activity) < 0 ||
        !(j->id = strdup(id)) || !(j->body = malloc(len + 1)) ||
        !(j->renew = event_new(ob->base, -1, EV_PERSIST, on_renew_timer, j)))
        goto fail;
    memcpy(j->body, body, len);
    j->body[len] = '\0';
    j->len = len;
    j->attempts = attempts ? attempts : 1;
    j->cb = cb;
    j->arg = arg;
    j->ob = ob;
    cbs.arg = j;
    if (!(j->call = d365_ack(ob->uc, j->env, j->activity, j->body, len, &cbs)))
        goto fail;
    event_add(j->renew, &tv);
    j->next = ob->jobs;
    if (ob->jobs)
        ob->jobs->prev = j;
    ob->jobs = j;
    ob->n.in_flight++;
    return j;
fail:
    job_free(j);
    return NULL;
}

void outbox_forget(struct outbox_job *j)
{
    if (j) {
        j->cb = NULL;
        j->arg = NULL;
    }
}

/* ---- claims ---- */

static void on_claimed(void *arg, enum ledger_err err, const struct ledger_claim *e, size_t n)
{
    struct claimref *ref = arg;
    struct outbox *ob = ref->ob;

    free(ref);
    if (!ob)
        return;
    ob->claim = NULL;
    if (err != LEDGER_OK) {
        log_msg(LOG_LVL_DEBUG, "ledger: outbox claim failed (%s)", ledger_err_str(err));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        ob->n.claimed++;
        if (!outbox_ack(ob, e[i].id, e[i].body, e[i].body_len, e[i].attempts, NULL, NULL) &&
            !find_job(ob, e[i].id))
            log_msg(LOG_LVL_WARN, "ledger: cannot start the upstream ack of claimed %s", e[i].id);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct outbox *ob = arg;
    struct claimref *ref;

    (void)fd;
    (void)what;
    if (ob->claim || ob->n.in_flight >= MAX_JOBS || !(ref = calloc(1, sizeof *ref)))
        return;
    ref->ob = ob;
    if (ledger_outbox_claim(ob->l, CLAIM_BATCH, on_claimed, ref) < 0) {
        free(ref);
        return;
    }
    ob->claim = ref;
}

int outbox_start(struct outbox *ob)
{
    struct timeval tv = { .tv_sec = ob->lc.outbox_interval_ms / 1000,
                          .tv_usec = (ob->lc.outbox_interval_ms % 1000) * 1000 };

    ob->tick = event_new(ob->base, -1, EV_PERSIST, on_tick, ob);
    return ob->tick && event_add(ob->tick, &tv) == 0 ? 0 : -1;
}

void outbox_get_counts(const struct outbox *ob, struct outbox_counts *out)
{
    *out = ob->n;
}

void outbox_free(struct outbox *ob)
{
    if (!ob)
        return;
    if (ob->tick)
        event_free(ob->tick);
    if (ob->claim)
        ob->claim->ob = NULL;
    while (ob->jobs) {
        struct outbox_job *j = ob->jobs;
        job_unlink(j);
        j->ob = NULL;
        j->ended = true;
        j->cb = NULL;
        d365_cancel(j->call);
        j->call = NULL;
        event_del(j->renew);
        if (!j->redis_pending)
            job_free(j);
    }
    free(ob);
}
