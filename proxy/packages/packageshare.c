/* packageshare: package-import state in memory or in Redis (see packageshare.h).
 * A Redis lease we hold (a lock, a reservation) is a `hold`, renewed every lease/3 by one
 * timer; an operation waiting for Redis or for its deferred answer is an `op`. */
#include "packageshare.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/dns.h>
#include <event2/util.h>

#include "log.h"
#include "packageidem.h"
#include "pkgkey.h"
#include "pkgstore.h"
#include "rconn.h"
#include "redisopen.h"

#define POLL_MS 200              /* lock retry period (plus up to 100 ms of jitter) */

enum kind { K_BEGIN, K_COMPLETE, K_LOCK };

struct hold {
    struct hold *next;
    unsigned long id;                   /* names it to a renewal's callback */
    char key[PKGKEY_KEY_SIZE];
    char val[PKGKEY_RECORD_SIZE];
};

struct packageshare_op {
    struct packageshare *ps;            /* borrowed */
    struct packageshare_op *prev, *next; /* ps->ops */
    enum kind kind;
    packageshare_cb *cb;
    void *arg;                          /* borrowed: the caller's */
    bool cancelled, in_redis;
    struct event *timer;                /* owned: deferred answer or next lock try */
    struct timespec deadline;           /* lock: give up after */
    char key[PKGKEY_KEY_SIZE];
    char val[PKGKEY_RECORD_SIZE];       /* the value we set (or hold) */
    char next_val[PKGKEY_RECORD_SIZE];  /* complete: the done record */
    enum packageshare_result result;    /* a deferred (memory) answer */
    char exec_id[PKGKEY_EXEC_MAX];
    unsigned char sha256[32];
};

struct packageshare {
    struct event_base *base;            /* borrowed */
    struct packageidem *idem;           /* owned; memory only */
    struct evdns_base *dns;             /* owned; Redis by host name only */
    struct rconn *rc;                   /* owned; Redis only */
    struct pkgstore *store;             /* owned; Redis only */
    struct event *renew;                /* owned; Redis only */
    struct hold *holds;                 /* owned list */
    struct packageshare_op *ops;        /* owned list */
    unsigned lease_ms, idem_ttl_s;
    unsigned long next_hold_id;
};

/* One renewal in flight: which hold it renews (the hold may be gone by the answer). */
struct renewal {
    struct packageshare *ps;            /* borrowed: rconn_free ends renewals before ps goes */
    unsigned long id;
};

/* ---- holds ---- */

static void hold_add(struct packageshare *ps, const char *key, const char *val)
{
    struct hold *h = calloc(1, sizeof *h);

    if (!h)
        return; /* not renewed: the lease expires, as after a crash */
    h->id = ++ps->next_hold_id;
    snprintf(h->key, sizeof h->key, "%s", key);
    snprintf(h->val, sizeof h->val, "%s", val);
    h->next = ps->holds;
    ps->holds = h;
}

static void hold_remove(struct packageshare *ps, const char *key, const char *val)
{
    for (struct hold **pp = &ps->holds; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->key, key) == 0 && strcmp((*pp)->val, val) == 0) {
            struct hold *h = *pp;
            *pp = h->next;
            free(h);
            return;
        }
}

static void on_renewed(void *arg, enum pkgstore_result res, const char *val, size_t len)
{
    struct renewal *rn = arg;

    (void)val, (void)len;
    if (res == PKGSTORE_ERROR)
        log_msg(LOG_LVL_WARN, "packages: cannot renew a package lease in Redis; retrying");
    for (struct hold **pp = &rn->ps->holds; res == PKGSTORE_HELD && *pp; pp = &(*pp)->next)
        if ((*pp)->id == rn->id) { /* lost: stop renewing it */
            struct hold *h = *pp;
            *pp = h->next;
            log_msg(LOG_LVL_ERROR, "packages: %s expired before it was renewed (Redis "
                    "stalled longer than packages.lock_lease_ms?)",
                    strncmp(h->key, "fogate:pkg:lock:", 16) == 0 ? h->key :
                    "an Idempotency-Key reservation");
            free(h);
            break;
        }
    free(rn);
}

static void on_renew_tick(evutil_socket_t fd, short what, void *arg)
{
    struct packageshare *ps = arg;

    (void)fd, (void)what;
    for (struct hold *h = ps->holds; h; h = h->next) {
        struct renewal *rn = malloc(sizeof *rn);
        if (!rn)
            return;
        *rn = (struct renewal){ ps, h->id };
        if (pkgstore_renew(ps->store, h->key, h->val, ps->lease_ms, on_renewed, rn) < 0)
            free(rn);
    }
}

/* ---- operations ---- */

static void op_free(struct packageshare_op *op)
{
    struct packageshare *ps = op->ps;

    if (op->prev)
        op->prev->next = op->next;
    else
        ps->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    if (op->timer)
        event_free(op->timer);
    free(op);
}

static void finish(struct packageshare_op *op, enum packageshare_result result,
                   const char *exec_id, const unsigned char *sha256)
{
    struct packageshare_res res = { result, exec_id, sha256 };

    if (!op->cancelled)
        op->cb(op->arg, &res);
    op_free(op);
}

static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct packageshare_op *op = arg;

    (void)fd, (void)what;
    finish(op, op->result, op->result == PACKAGESHARE_DONE ? op->exec_id : NULL,
           op->result == PACKAGESHARE_DONE ? op->sha256 : NULL);
}

static struct packageshare_op *op_new(struct packageshare *ps, enum kind kind,
                                      packageshare_cb *cb, void *arg)
{
    struct packageshare_op *op = cb ? calloc(1, sizeof *op) : NULL;

    if (!op)
        return NULL;
    *op = (struct packageshare_op){ .ps = ps, .kind = kind, .cb = cb, .arg = arg };
    op->next = ps->ops;
    if (op->next)
        op->next->prev = op;
    ps->ops = op;
    return op;
}

/* A memory answer, given later from the loop. */
static struct packageshare_op *defer(struct packageshare_op *op, enum packageshare_result r)
{
    struct timeval zero = { 0, 0 };

    op->result = r;
    if (!(op->timer = evtimer_new(op->ps->base, on_deferred, op)) ||
        evtimer_add(op->timer, &zero) < 0) {
        op_free(op);
        return NULL;
    }
    return op;
}

void packageshare_cancel(struct packageshare_op *op)
{
    if (!op)
        return;
    op->cancelled = true;
    if (!op->in_redis)
        op_free(op);
}

/* ---- Idempotency-Key records ---- */

static void on_taken_key(void *arg, enum pkgstore_result res, const char *val, size_t len)
{
    struct packageshare_op *op = arg;
    struct packageshare *ps = op->ps;
    struct pkgkey_record rec;

    op->in_redis = false;
    if (res == PKGSTORE_OK && op->cancelled)
        pkgstore_release(ps->store, op->key, op->val, NULL, NULL);
    else if (res == PKGSTORE_OK)
        hold_add(ps, op->key, op->val);
    if (res == PKGSTORE_OK)
        return finish(op, PACKAGESHARE_OK, NULL, NULL);
    if (res == PKGSTORE_ERROR)
        return finish(op, PACKAGESHARE_DOWN, NULL, NULL);
    if (pkgkey_record_parse(val, len, &rec) < 0) {
        log_msg(LOG_LVL_ERROR, "packages: an Idempotency-Key record in Redis is unreadable");
        return finish(op, PACKAGESHARE_DOWN, NULL, NULL);
    }
    if (rec.state == PKGKEY_RESERVED)
        return finish(op, PACKAGESHARE_BUSY, NULL, NULL);
    finish(op, PACKAGESHARE_DONE, rec.exec_id, rec.sha256);
}

static int record(const char *exec_id, const unsigned char *sha256, char *out)
{
    struct pkgkey_record rec = { .state = sha256 ? PKGKEY_DONE : PKGKEY_RESERVED };

    snprintf(rec.exec_id, sizeof rec.exec_id, "%s", exec_id);
    if (sha256)
        memcpy(rec.sha256, sha256, 32);
    return strlen(exec_id) < sizeof rec.exec_id ? pkgkey_record_format(&rec, out) : -1;
}

static struct packageshare_op *begin_memory(struct packageshare_op *op, const char *scope,
                                            const char *key, const char *exec_id)
{
    const char *first = NULL;
    const unsigned char *sha = NULL;
    struct timespec ts;
    enum packageidem_verdict v;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = packageidem_begin(op->ps->idem, scope, key, exec_id, (double)ts.tv_sec, &first, &sha);
    if (v == PACKAGEIDEM_DONE) {
        snprintf(op->exec_id, sizeof op->exec_id, "%s", first);
        memcpy(op->sha256, sha, 32);
    }
    return defer(op, v == PACKAGEIDEM_NEW ? PACKAGESHARE_OK : v == PACKAGEIDEM_PENDING ?
                 PACKAGESHARE_BUSY : v == PACKAGEIDEM_DONE ? PACKAGESHARE_DONE :
                 PACKAGESHARE_FULL);
}

struct packageshare_op *packageshare_begin(struct packageshare *ps, const char *scope,
                                           const char *key, const char *exec_id,
                                           packageshare_cb *cb, void *arg)
{
    struct packageshare_op *op = op_new(ps, K_BEGIN, cb, arg);

    if (!op)
        return NULL;
    if (!ps->store)
        return begin_memory(op, scope, key, exec_id);
    if (pkgkey_idem(scope, key, strlen(key), op->key) < 0 || record(exec_id, NULL, op->val) < 0 ||
        pkgstore_take(ps->store, op->key, op->val, ps->lease_ms, on_taken_key, op) < 0)
        return defer(op, PACKAGESHARE_DOWN);
    op->in_redis = true;
    return op;
}

static void on_completed(void *arg, enum pkgstore_result res, const char *val, size_t len)
{
    struct packageshare_op *op = arg;

    (void)val, (void)len;
    op->in_redis = false;
    if (res == PKGSTORE_HELD)
        log_msg(LOG_LVL_ERROR, "packages: an Idempotency-Key reservation expired before its "
                "import was recorded; the import is not sent");
    finish(op, res == PKGSTORE_OK ? PACKAGESHARE_OK : PACKAGESHARE_DOWN, NULL, NULL);
}

struct packageshare_op *packageshare_complete(struct packageshare *ps, const char *scope,
                                              const char *key, const char *exec_id,
                                              const unsigned char sha256[32],
                                              packageshare_cb *cb, void *arg)
{
    struct packageshare_op *op = op_new(ps, K_COMPLETE, cb, arg);

    if (!op)
        return NULL;
    if (!ps->store) {
        packageidem_complete(ps->idem, scope, key, sha256);
        return defer(op, PACKAGESHARE_OK);
    }
    if (pkgkey_idem(scope, key, strlen(key), op->key) < 0 || record(exec_id, NULL, op->val) < 0 ||
        record(exec_id, sha256, op->next_val) < 0)
        return defer(op, PACKAGESHARE_DOWN);
    hold_remove(ps, op->key, op->val); /* a done record lives idem_ttl_s, unrenewed */
    if (pkgstore_swap(ps->store, op->key, op->val, op->next_val, ps->idem_ttl_s * 1000u,
                      on_completed, op) < 0)
        return defer(op, PACKAGESHARE_DOWN);
    op->in_redis = true;
    return op;
}

void packageshare_drop(struct packageshare *ps, const char *scope, const char *key,
                       const char *exec_id, const unsigned char *sha256)
{
    char k[PKGKEY_KEY_SIZE], v[PKGKEY_RECORD_SIZE];

    if (!ps->store) {
        packageidem_drop(ps->idem, scope, key);
        return;
    }
    if (pkgkey_idem(scope, key, strlen(key), k) < 0 || record(exec_id, sha256, v) < 0)
        return;
    hold_remove(ps, k, v);
    pkgstore_release(ps->store, k, v, NULL, NULL);
}

/* ---- the per-environment import lock ---- */

static void try_lock(struct packageshare_op *op);

static void on_lock_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    try_lock(arg);
}

static bool past(const struct timespec *deadline, unsigned extra_ms)
{
    struct timespec n;

    clock_gettime(CLOCK_MONOTONIC, &n);
    return (double)n.tv_sec + (double)n.tv_nsec / 1e9 + extra_ms / 1000.0 >=
           (double)deadline->tv_sec + (double)deadline->tv_nsec / 1e9;
}

static void on_taken_lock(void *arg, enum pkgstore_result res, const char *val, size_t len)
{
    struct packageshare_op *op = arg;
    struct packageshare *ps = op->ps;
    unsigned char jitter = 0;
    struct timeval tv;

    (void)val, (void)len;
    op->in_redis = false;
    if (res == PKGSTORE_OK && op->cancelled)
        pkgstore_release(ps->store, op->key, op->val, NULL, NULL);
    else if (res == PKGSTORE_OK)
        hold_add(ps, op->key, op->val);
    if (res != PKGSTORE_HELD || op->cancelled)
        return finish(op, res == PKGSTORE_OK ? PACKAGESHARE_OK : PACKAGESHARE_DOWN, NULL, NULL);
    evutil_secure_rng_get_bytes(&jitter, 1);
    tv = (struct timeval){ 0, (POLL_MS + jitter % 100) * 1000 };
    if (past(&op->deadline, POLL_MS))
        return finish(op, PACKAGESHARE_TIMEOUT, NULL, NULL);
    if ((!op->timer && !(op->timer = evtimer_new(ps->base, on_lock_retry, op))) ||
        evtimer_add(op->timer, &tv) < 0)
        return finish(op, PACKAGESHARE_DOWN, NULL, NULL);
}

static void try_lock(struct packageshare_op *op)
{
    if (pkgstore_take(op->ps->store, op->key, op->val, op->ps->lease_ms, on_taken_lock, op) < 0)
        return finish(op, PACKAGESHARE_DOWN, NULL, NULL);
    op->in_redis = true;
}

struct packageshare_op *packageshare_lock(struct packageshare *ps, const char *env,
                                          const char *owner, unsigned wait_ms,
                                          packageshare_cb *cb, void *arg)
{
    struct packageshare_op *op = op_new(ps, K_LOCK, cb, arg);

    if (!op)
        return NULL;
    if (!ps->store)
        return defer(op, PACKAGESHARE_OK);
    if (pkgkey_lock(env, op->key) < 0 || strlen(owner) >= sizeof op->val)
        return defer(op, PACKAGESHARE_DOWN);
    snprintf(op->val, sizeof op->val, "%s", owner);
    clock_gettime(CLOCK_MONOTONIC, &op->deadline);
    op->deadline.tv_sec += wait_ms / 1000;
    op->deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (op->deadline.tv_nsec >= 1000000000L) {
        op->deadline.tv_sec++;
        op->deadline.tv_nsec -= 1000000000L;
    }
    if (pkgstore_take(ps->store, op->key, op->val, ps->lease_ms, on_taken_lock, op) < 0)
        return defer(op, PACKAGESHARE_DOWN);
    op->in_redis = true;
    return op;
}

void packageshare_unlock(struct packageshare *ps, const char *env, const char *owner)
{
    char key[PKGKEY_KEY_SIZE];

    if (!ps->store || pkgkey_lock(env, key) < 0)
        return;
    hold_remove(ps, key, owner);
    pkgstore_release(ps->store, key, owner, NULL, NULL);
}

/* ---- lifetime ---- */

static int open_redis(struct packageshare *ps, const struct conf *conf)
{
    unsigned period = ps->lease_ms / 3;
    struct timeval tv = { period / 1000, (period % 1000) * 1000 };

    ps->rc = redisopen_new(ps->base, &conf->redis, "packages: ", &ps->dns);
    if (!ps->rc || !(ps->store = pkgstore_new(ps->rc, 0)) ||
        !(ps->renew = event_new(ps->base, -1, EV_PERSIST, on_renew_tick, ps)) ||
        event_add(ps->renew, &tv) < 0)
        return -1;
    return 0;
}

struct packageshare *packageshare_new(struct event_base *base, const struct conf *conf,
                                      size_t idem_max, unsigned idem_ttl_s)
{
    struct packageshare *ps = calloc(1, sizeof *ps);

    if (!ps)
        return NULL;
    ps->base = base;
    ps->lease_ms = conf->packages.lock_lease_ms ? conf->packages.lock_lease_ms : 30000;
    ps->idem_ttl_s = idem_ttl_s;
    if (conf->packages.shared ? open_redis(ps, conf) < 0
                        : !(ps->idem = packageidem_new(idem_max, idem_ttl_s))) {
        log_msg(LOG_LVL_ERROR, "packages: cannot set up the import lock and "
                "Idempotency-Key store%s", conf->packages.shared ? " on Redis" : "");
        packageshare_free(ps);
        return NULL;
    }
    return ps;
}

void packageshare_free(struct packageshare *ps)
{
    struct packageshare_op *op, *next;

    if (!ps)
        return;
    for (op = ps->ops; op; op = next) {
        next = op->next;
        packageshare_cancel(op); /* those in Redis end in rconn_free, below */
    }
    rconn_free(ps->rc);
    if (ps->renew)
        event_free(ps->renew);
    while (ps->holds) {
        struct hold *h = ps->holds;
        ps->holds = h->next;
        free(h);
    }
    pkgstore_free(ps->store);
    if (ps->dns)
        evdns_base_free(ps->dns, 0);
    packageidem_free(ps->idem);
    free(ps);
}

bool packageshare_shared(const struct packageshare *ps)
{
    return ps->store != NULL;
}
