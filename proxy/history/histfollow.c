/* histfollow: the background status follow-up of imports (see histfollow.h).
 *   tick --CLAIM--> due ids --GetMessageStatus (msgwait)--> history_status
 *     final: drop from the queue; errors: GetExecutionIdByMessageId, GetExecutionErrors
 *     not final: DUE with the next backoff delay; past follow_hours: drop */
#include "histfollow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "d365.h"
#include "d365parse.h"
#include "history.h"
#include "histlua.h"
#include "msgwait.h"
#include "rbackoff.h"
#include "rconn.h"

#define QUEUE "fogate:hist:follow"
#define CLAIM_MAX "16"          /* members claimed per tick */
#define CLAIM_LEASE_MS 120000   /* a claimed member is ours this long */
#define MAX_INFLIGHT 64         /* polls at once per worker */

struct item {
    struct histfollow *f;               /* borrowed */
    struct item *prev, *next;           /* links of f->items */
    char id[HISTREC_ID_SIZE];
    char env[128], msg[64], exec[200];
    unsigned polls;
    bool is_exec;                       /* a package execution (msg holds its id) */
    struct msgwait_waiter *w;           /* owned while polling */
    struct d365_call *call;             /* owned while fetching errors */
};

struct histfollow {
    struct event_base *base;            /* borrowed */
    struct upcall_ctx *uc;              /* borrowed */
    struct history *h;                  /* borrowed */
    struct rconn *rc;                   /* borrowed from h */
    const struct conf *conf;            /* borrowed */
    struct rconn_script due, claim;
    struct msgwait *mw;                 /* owned: GetMessageStatus */
    struct msgwait *ew;                 /* owned: package executions; NULL until set */
    struct event *tick;                 /* owned */
    struct item *items;                 /* owned list: polls in flight */
    size_t n_items;
    bool claiming;                      /* a CLAIM is in flight */
    uint32_t rnd;
    unsigned long polls, finals;
};

static void on_noop(void *arg, enum rconn_result res, const redictReply *reply)
{
    (void)arg, (void)res, (void)reply;
}

static void schedule(struct histfollow *f, const char *id, long delay_ms, bool nx)
{
    char d[24];

    snprintf(d, sizeof d, "%ld", delay_ms);
    rconn_eval(f->rc, &f->due, on_noop, NULL, (int)f->conf->history.write_timeout_ms, 1,
               QUEUE, id, d, nx ? "nx" : "", NULL);
}

void histfollow_add(struct histfollow *f, const char *id)
{
    if (f)
        schedule(f, id, f->conf->history.follow_min_ms, true);
}

static void item_free(struct item *it)
{
    struct histfollow *f = it->f;

    msgwait_cancel(it->w);
    d365_cancel(it->call);
    if (it->prev)
        it->prev->next = it->next;
    else
        f->items = it->next;
    if (it->next)
        it->next->prev = it->prev;
    f->n_items--;
    free(it);
}

/* ---- errors of a final status ---- */

static void on_errors(void *arg, const struct d365_result *res)
{
    struct item *it = arg;

    it->call = NULL;
    history_errors(it->f->h, it->id, it->exec, res->ok ? res->value : res->err.message);
    item_free(it);
}

static void on_exec_id(void *arg, const struct d365_result *res)
{
    struct item *it = arg;
    struct d365_cbs cbs = { .on_result = on_errors, .arg = it };

    it->call = NULL;
    if (!res->ok || !res->value || !res->value[0]) {
        item_free(it);
        return;
    }
    snprintf(it->exec, sizeof it->exec, "%s", res->value);
    it->call = d365_action(it->f->uc, it->env, "GetExecutionErrors", "executionId", it->exec,
                           &cbs);
    if (!it->call)
        item_free(it);
}

/* ---- one poll ---- */

static void on_status(void *arg, const struct msgwait_result *r)
{
    struct item *it = arg;
    struct histfollow *f = it->f;
    struct d365_cbs cbs = { .on_result = on_exec_id, .arg = it };
    unsigned delay;

    it->w = NULL;
    if (r->ok)
        history_status(f->h, it->env, it->msg, r->status, r->final);
    if (r->ok && r->final) {
        f->finals++;
        schedule(f, it->id, -1, false);
        if (it->is_exec && strcmp(r->status, "Succeeded") != 0) {
            struct d365_result known = { .ok = true, .value = it->msg };
            on_exec_id(it, &known); /* the execution id is known: its errors at once */
            return;
        }
        if (!it->is_exec && strcmp(r->status, "Processed") != 0 &&
            (it->call = d365_action(f->uc, it->env, "GetExecutionIdByMessageId", "_messageId",
                                    it->msg, &cbs)))
            return;
        item_free(it);
        return;
    }
    delay = rbackoff_delay_ms(f->conf->history.follow_min_ms, f->conf->history.follow_max_ms,
                              it->polls, rbackoff_rand(&f->rnd));
    schedule(f, it->id, delay, false);
    item_free(it);
}

static void start_poll(struct histfollow *f, const char *id, const redictReply *vals)
{
    struct item *it;
    const char *env = vals->element[0]->str, *msg = vals->element[1]->str;
    bool is_exec = strcmp(vals->element[5]->str, "package") == 0;

    if (is_exec)
        msg = vals->element[6]->str; /* a package import is followed by its execution id */
    long long received = strtoll(vals->element[2]->str, NULL, 10);
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    if (!env[0] || !msg[0] || vals->element[3]->str[0] == '1' || (is_exec && !f->ew)) {
        /* gone, final, or a package execution this fogate cannot poll */
        schedule(f, id, -1, false);
        return;
    }
    if ((long long)now.tv_sec * 1000 - received >
        (long long)f->conf->history.follow_hours * 3600000) {
        history_unfollowed(f->h, id);
        schedule(f, id, -1, false);
        return;
    }
    if (!(it = calloc(1, sizeof *it)))
        return; /* the member comes back after the lease */
    it->f = f;
    snprintf(it->id, sizeof it->id, "%s", id);
    snprintf(it->env, sizeof it->env, "%s", env);
    snprintf(it->msg, sizeof it->msg, "%s", msg);
    it->polls = (unsigned)strtoul(vals->element[4]->str, NULL, 10);
    it->is_exec = is_exec;
    it->next = f->items;
    if (f->items)
        f->items->prev = it;
    f->items = it;
    f->n_items++;
    f->polls++;
    it->w = msgwait_add(is_exec ? f->ew : f->mw, it->env, it->msg, 0, on_status, it);
    if (!it->w)
        item_free(it);
    else
        history_polled(f->h, id);
}

static void on_claim(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct histfollow *f = arg;

    f->claiming = false;
    if (res == RCONN_CANCELLED || res != RCONN_OK || reply->type != REDICT_REPLY_ARRAY)
        return;
    for (size_t i = 0; i < reply->elements; i++) {
        const redictReply *e = reply->element[i];
        if (e->type == REDICT_REPLY_ARRAY && e->elements == 2 &&
            e->element[0]->type == REDICT_REPLY_STRING &&
            e->element[1]->type == REDICT_REPLY_ARRAY && e->element[1]->elements == 7)
            start_poll(f, e->element[0]->str, e->element[1]);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct histfollow *f = arg;
    char lease[16];

    (void)fd, (void)what;
    if (f->claiming || f->n_items >= MAX_INFLIGHT)
        return;
    snprintf(lease, sizeof lease, "%d", CLAIM_LEASE_MS);
    f->claiming = rconn_eval(f->rc, &f->claim, on_claim, f,
                             (int)f->conf->history.write_timeout_ms, 1, QUEUE, HISTREC_PREFIX,
                             CLAIM_MAX, lease, "env", "msg", "received", "final", "npolls",
                             "via", "exec", NULL) == 0;
}

struct histfollow *histfollow_new(struct event_base *base, struct upcall_ctx *uc,
                                  struct history *h, struct rconn *rc,
                                  const struct conf *conf)
{
    struct histfollow *f = calloc(1, sizeof *f);
    struct msgwait_opts mo = { 0 };
    unsigned period = conf->history.follow_min_ms < 1000 ? conf->history.follow_min_ms : 1000;
    struct timeval tv = { period / 1000, (period % 1000) * 1000 };

    if (!f)
        return NULL;
    f->base = base;
    f->uc = uc;
    f->h = h;
    f->rc = rc;
    f->conf = conf;
    if (getrandom(&f->rnd, sizeof f->rnd, 0) != (ssize_t)sizeof f->rnd || !f->rnd)
        f->rnd = 0x9e3779b9u;
    if (rconn_script_init(&f->due, histlua_body(HISTLUA_DUE)) < 0 ||
        rconn_script_init(&f->claim, histlua_body(HISTLUA_CLAIM)) < 0 ||
        !(f->mw = msgwait_new(base, uc, &mo)) ||
        !(f->tick = event_new(base, -1, EV_PERSIST, on_tick, f)) || event_add(f->tick, &tv) < 0) {
        histfollow_free(f);
        return NULL;
    }
    return f;
}

void histfollow_set_exec_poll(struct histfollow *f, const struct msgwait_opts *opts)
{
    if (f && !f->ew)
        f->ew = msgwait_new(f->base, f->uc, opts); /* NULL: executions stay unfollowed */
}

void histfollow_set_conf(struct histfollow *f, const struct conf *conf)
{
    if (f)
        f->conf = conf;
}

void histfollow_free(struct histfollow *f)
{
    if (!f)
        return;
    while (f->items)
        item_free(f->items);
    if (f->tick)
        event_free(f->tick);
    msgwait_free(f->mw);
    msgwait_free(f->ew);
    free(f);
}

void histfollow_stats(const struct histfollow *f, unsigned long *polls, unsigned long *final)
{
    *polls = f ? f->polls : 0;
    *final = f ? f->finals : 0;
}
