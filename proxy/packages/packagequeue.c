/* packagequeue: an uploaded package's way to ImportFromPackage. Imports of one
 * environment wait in a local queue in arrival order (each at most packages.lock_wait_ms);
 * the head takes the environment's lock (packageshare: in Redis with packages.shared, so
 * across instances), turns its Idempotency-Key reservation into a done record, then sends
 * ImportFromPackage once (never retried) and releases the lock:
 *   queue --> lock --(OK)--> key done --(OK)--> ImportFromPackage --> 202 --> unlock
 *              \--(timeout / Redis down)--> 503, key released: a retry is safe
 * Invariant: at most one import per environment holds the lock; nothing is sent to
 * ImportFromPackage unless both the lock and the key record are ours. */
#include "packagereq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the per-environment queue ---- */

static struct package_queue *queue_get(struct package *p, const char *env)
{
    struct package_queue *q;

    for (q = p->queues; q; q = q->next)
        if (strcmp(q->env, env) == 0)
            return q;
    if (!(q = calloc(1, sizeof *q)) || !(q->env = strdup(env))) {
        free(q);
        return NULL;
    }
    q->next = p->queues;
    p->queues = q;
    return q;
}

static void acquire(struct package_req *r);

static void queue_next(struct package *p, const char *env)
{
    struct package_queue *q = queue_get(p, env);
    struct package_req *r;

    while (q && !q->running && (r = q->head)) {
        q->head = r->qnext;
        if (!q->head)
            q->tail = NULL;
        r->qnext = NULL;
        q->running = r;
        acquire(r);
    }
}

void packagequeue_drop_key(struct package_req *r)
{
    if (r->idem_key[0] && !r->replay && !r->idem_done)
        packageshare_drop(r->p->share, r->job, r->idem_key, r->exec_id, NULL);
    r->idem_key[0] = '\0';
}

/* r leaves its queue's running slot (and the lock): the next import may go. */
static void leave_queue(struct package_req *r)
{
    struct package_queue *q = queue_get(r->p, r->env);

    if (r->locked)
        packageshare_unlock(r->p->share, r->env, r->exec_id);
    r->locked = false;
    r->queued = false;
    if (q && q->running == r)
        q->running = NULL;
    queue_next(r->p, r->env);
}

/* D365 took (or, on a timeout, is taking) the import: the record follows the execution. */
static void hist_sent(struct package_req *r)
{
    char hex[65];

    if (!r->hist_id[0] || r->hist_done)
        return;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", r->sha256[i]);
    r->hist_done = true;
    history_sent_exec(r->p->hist, r->hist_id, r->env, r->exec_id, r->size, hex);
}

/* The status check after a failed ImportFromPackage (check_started): an execution D365 knows
 * (Executing, Succeeded, Failed...) was started, and its Idempotency-Key keeps answering it;
 * one it does not know ("Execution details were not found"), or NotRun/Unknown, was never
 * started: the key is released so that the client's retry imports. */
static void on_checked(void *arg, const struct d365_result *res)
{
    struct package_req *r = arg;
    struct d365_err *e = &r->import_err;
    size_t n = strlen(e->message);
    const char *st = res->ok ? res->value : packagename_not_yet(&res->err);

    r->check = NULL;
    if (st && (!*st || strcmp(st, "NotRun") == 0 || strcmp(st, "Unknown") == 0)) {
        if (r->idem_key[0] && !r->replay)
            packageshare_drop(r->p->share, r->job, r->idem_key, r->exec_id,
                              r->idem_done ? r->sha256 : NULL);
        r->idem_done = false;
        snprintf(e->message + n, sizeof e->message - n, ". D365 did not start execution %s: "
                 "nothing was imported, and sending the import again (with the same "
                 "Idempotency-Key, if any) is safe", r->exec_id);
    } else if (st) {
        hist_sent(r); /* D365 runs it: the record follows the execution */
        snprintf(e->message + n, sizeof e->message - n, ". Execution %s did start (status "
                 "%s): poll it; the same Idempotency-Key answers it", r->exec_id, st);
    } else {
        snprintf(e->message + n, sizeof e->message - n, ". Whether execution %s started "
                 "could not be told (%s): poll it before sending the import again", r->exec_id,
                 res->err.code);
    }
    package_req_fail(r, e);
    package_req_settle(r);
}

/* ImportFromPackage failed with an answer or a broken connection: ask D365 whether the
 * execution started before answering (a 202 is only ever for an import D365 took). */
static void check_started(struct package_req *r, const struct upcall_done *d)
{
    struct d365_cbs cbs = { .on_result = on_checked, .arg = r };

    d365_error_from(d, "ImportFromPackage", &r->import_err);
    r->check = d365_action(r->p->ctx, r->env, "GetExecutionSummaryStatus", "executionId",
                           r->exec_id, &cbs);
    if (!r->check)
        package_req_fail(r, &r->import_err);
}

static void on_imported(void *arg, const struct upcall_done *d)
{
    struct package_req *r = arg;
    json_t *o;

    r->import = NULL;
    bool unknown = d->st == UPCALL_FAILED && (d->transport == UPSTREAM_TIMEOUT ||
                                              d->transport == UPSTREAM_FIRST_BYTE ||
                                              (d->transport == UPSTREAM_STALLED &&
                                               d->request_sent));

    if (d->st == UPCALL_OK ? d->status == 200 : unknown)
        hist_sent(r);
    if (unknown) {
        /* no answer in time: D365 keeps going (reference §4.7); never re-send, the status
         * tells (a broken connection is checked at once by check_started) */
        o = package_req_accepted(r);
        json_object_set_new(o, "outcome", json_string("unknown"));
        json_object_set_new(o, "note", json_string("ImportFromPackage was sent but did not "
                                                   "answer in time (it was not sent again); "
                                                   "poll the execution's status"));
        package_req_json(r, 202, o);
    } else if (d->st != UPCALL_OK || d->status != 200) {
        check_started(r, d);
    } else {
        package_req_json(r, 202, package_req_accepted(r));
    }
    leave_queue(r);
    package_req_settle(r);
}

static void run_import(struct package_req *r)
{
    static const char *const headers[] = { "Accept: application/json",
                                           "Content-Type: application/json; charset=utf-8" };
    json_t *b = json_pack("{s:s, s:s, s:s, s:b, s:b, s:s}", "packageUrl", r->blob_url,
                          "definitionGroupId", r->project, "executionId", r->exec_id,
                          "execute", r->execute, "overwrite", r->overwrite,
                          "legalEntityId", r->company);
    char *body = b ? json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct upcall_req req = {
        .env = r->env, .method = "POST", .headers = headers, .n_headers = 2,
        .path_query = "/data/DataManagementDefinitionGroups/"
                      "Microsoft.Dynamics.DataEntities.ImportFromPackage",
        .retry = UPCALL_RETRY_NONE, .body = body, .body_len = body ? strlen(body) : 0,
        .max_response_bytes = 1024 * 1024,
        .timeouts = { .total_ms = r->p->conf->timeouts.upstream_total_ms,
                      .first_byte_ms = r->p->conf->timeouts.import_first_byte_ms },
        .trace = r->req ? conn_req_trace(r->req) : NULL,
        .request_id = r->req ? conn_req_id(r->req) : NULL,
    };
    struct upcall_cbs cbs = { .on_done = on_imported, .arg = r };

    json_decref(b);
    statcell_inc(&r->p->stats.imports_started);
    r->import = body ? upcall_start(r->p->ctx, &req, &cbs) : NULL;
    free(body);
    if (!r->import) {
        package_req_error(r, 500, "internal", "cannot start the ImportFromPackage call");
        leave_queue(r);
    }
}

/* The import's turn did not come, or the shared state is unavailable: nothing was sent to
 * ImportFromPackage, so the key is dropped and a retry with it is safe. */
static void not_imported(struct package_req *r, const char *code, const char *why)
{
    if (strcmp(code, "package_lock_timeout") == 0)
        statcell_inc(&r->p->stats.lock_timeouts);
    packagequeue_drop_key(r);
    package_req_error(r, 503, code, "%s; the package was uploaded but ImportFromPackage was not "
                      "sent, so nothing was imported. Retrying (with the same Idempotency-Key, "
                      "if any) is safe", why);
}

static void on_recorded(void *arg, const struct packageshare_res *res)
{
    struct package_req *r = arg;

    r->op = NULL;
    if (res->result == PACKAGESHARE_OK) {
        r->idem_done = true;
        run_import(r);
    } else {
        not_imported(r, "idempotency_store_unavailable", "the Idempotency-Key could not be "
                     "recorded in Redis");
        leave_queue(r);
    }
    package_req_settle(r);
}

static void on_locked(void *arg, const struct packageshare_res *res)
{
    struct package_req *r = arg;

    r->op = NULL;
    if (res->result == PACKAGESHARE_OK) {
        r->locked = true;
        if (!r->idem_key[0] || r->replay)
            run_import(r);
        else if (!(r->op = packageshare_complete(r->p->share, r->job, r->idem_key, r->exec_id,
                                                 r->sha256, on_recorded, r))) {
            not_imported(r, "internal", "out of memory");
            leave_queue(r);
        }
    } else {
        not_imported(r, res->result == PACKAGESHARE_TIMEOUT ? "package_lock_timeout" :
                     "package_lock_unavailable", res->result == PACKAGESHARE_TIMEOUT ?
                     "another import held this environment for longer than "
                     "packages.lock_wait_ms" : "the import lock in Redis is unavailable");
        leave_queue(r);
    }
    package_req_settle(r);
}

/* r is at the head of its local queue: take the environment's lock (Redis: shared with
 * the other instances) within what is left of packages.lock_wait_ms. */
static void acquire(struct package_req *r)
{
    double left = r->p->conf->packages.lock_wait_ms / 1000.0 - (now_s() - r->wait_since);

    if (r->wait_timer)
        evtimer_del(r->wait_timer);
    r->op = packageshare_lock(r->p->share, r->env, r->exec_id,
                              left > 0 ? (unsigned)(left * 1000) : 0, on_locked, r);
    if (!r->op) {
        not_imported(r, "internal", "out of memory");
        leave_queue(r);
    }
}

static void unlink_waiting(struct package_req *r)
{
    struct package_queue *q = r->env ? queue_get(r->p, r->env) : NULL;

    for (struct package_req **pp = q ? &q->head : NULL; pp && *pp; pp = &(*pp)->qnext)
        if (*pp == r) {
            *pp = r->qnext;
            break;
        }
    if (q) {
        q->tail = NULL;
        for (struct package_req *w = q->head; w; w = w->qnext)
            q->tail = w;
    }
    r->qnext = NULL;
}

/* packages.lock_wait_ms passed while r waited behind the local queue. */
static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct package_req *r = arg;
    struct package_queue *q = queue_get(r->p, r->env);

    (void)fd, (void)what;
    if (!q || q->running == r || !r->queued)
        return;
    unlink_waiting(r);
    r->queued = false;
    not_imported(r, "package_lock_timeout", "earlier imports held this environment for longer "
                 "than packages.lock_wait_ms");
    package_req_settle(r);
}

void packagequeue_enqueue(struct package_req *r)
{
    struct package_queue *q = queue_get(r->p, r->env);
    unsigned ms = r->p->conf->packages.lock_wait_ms;
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    r->wait_since = now_s();
    if (!q || !(r->wait_timer = evtimer_new(r->p->base, on_wait_timeout, r)) ||
        evtimer_add(r->wait_timer, &tv) < 0) {
        not_imported(r, "internal", "out of memory");
        return;
    }
    r->queued = true;
    if (q->running || q->head)
        statcell_inc(&r->p->stats.lock_waits);
    if (q->tail)
        q->tail->qnext = r;
    else
        q->head = r;
    q->tail = r;
    queue_next(r->p, r->env);
}

void packagequeue_stop(struct package_req *r)
{
    struct package_queue *q = r->env ? queue_get(r->p, r->env) : NULL;

    upcall_cancel(r->import);
    r->import = NULL;
    packageshare_cancel(r->op);
    r->op = NULL;
    packagequeue_drop_key(r);
    if (r->locked)
        packageshare_unlock(r->p->share, r->env, r->exec_id);
    r->locked = false;
    unlink_waiting(r);
    if (q && q->running == r)
        q->running = NULL;
    r->queued = false;
    if (r->wait_timer)
        event_free(r->wait_timer);
    r->wait_timer = NULL;
}
