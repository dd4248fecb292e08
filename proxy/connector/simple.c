/* simple: /v1 dispatch, authorisation per job, the message status and error routes, and
 * the per-request state's answer and lifetime helpers (see simple.h, simplexfer.h). */
#include "simple.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "jobpause.h"
#include "logline.h"
#include "reply.h"
#include "reqcore.h"
#include "simplehist.h"
#include "simplexfer.h"

struct simple *simple_new(struct event_base *base, struct upcall_ctx *ctx,
                          const struct conf *conf)
{
    struct simple *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->base = base;
    s->ctx = ctx;
    s->conf = conf;
    s->mw = msgwait_new(base, ctx, NULL);
    s->acks = simpleack_new(SIMPLE_ACK_MAX, SIMPLE_ACK_BODY_MAX, SIMPLE_ACK_TTL_S);
    if (!s->mw || !s->acks) {
        simple_free(s);
        return NULL;
    }
    return s;
}

void simple_set_ledger(struct simple *s, struct ledgerflow *lf)
{
    s->lf = lf;
}

void simple_set_history(struct simple *s, struct history *h)
{
    s->hist = h;
}

void simple_set_pause(struct simple *s, struct jobpause *jp)
{
    s->pause = jp;
}

void simple_set_conf(struct simple *s, const struct conf *conf)
{
    s->conf = conf;
}

void simple_free(struct simple *s)
{
    if (!s)
        return;
    msgwait_free(s->mw);
    simpleack_free(s->acks);
    free(s);
}

bool simple_owns(const struct http1_head *h)
{
    return h->path_len >= 3 && memcmp(h->target, "/v1", 3) == 0 &&
           (h->path_len == 3 || h->target[3] == '/');
}

uint64_t simple_body_limit(const struct conf *conf, const struct http1_head *h)
{
    struct simpleroute r;

    if (h->method == HTTP_POST &&
        simpleroute_match(h->target, h->path_len, &r) == SIMPLEROUTE_ENQUEUE)
        return conf->limits.max_enqueue_bytes;
    return conf->limits.max_body_bytes;
}

/* ---- answers and lifetime ---- */

static struct reqcore core(struct simple_req *r)
{
    return (struct reqcore){ &r->req, &r->responded, r->body_reading };
}

struct conn_req *simple_req_take(struct simple_req *r)
{
    return reqcore_take(core(r));
}

void simple_req_fail(struct simple_req *r, const struct d365_err *e)
{
    reqcore_fail(core(r), e);
}

void simple_req_error(struct simple_req *r, int status, const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    reqcore_error(core(r), status, NULL, code, message);
}

void simple_req_retry(struct simple_req *r, int status, unsigned retry_s, const char *code,
                      const char *message)
{
    char extra[40];

    snprintf(extra, sizeof extra, "Retry-After: %u\r\n", retry_s);
    reqcore_error(core(r), status, extra, code, message);
}

void simple_req_json(struct simple_req *r, int status, json_t *o)
{
    reqcore_json(core(r), status, o);
}

void simple_req_hash_start(struct simple_req *r)
{
    r->sha = EVP_MD_CTX_new();
    if (r->sha && EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(r->sha);
        r->sha = NULL;
    }
}

void simple_req_hash(struct simple_req *r, const void *data, size_t len)
{
    r->bytes += len;
    if (r->sha)
        EVP_DigestUpdate(r->sha, data, len);
}

void simple_req_hash_end(struct simple_req *r, char hex[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned n = 0;

    hex[0] = '\0';
    if (r->sha && EVP_DigestFinal_ex(r->sha, md, &n) == 1 && n == 32)
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(r->sha);
    r->sha = NULL;
}

/* r->env = a copy of env, in r when it fits (the usual short names), else allocated. Set
 * once per request. Returns r->env, NULL when out of memory. */
static const char *set_env(struct simple_req *r, const char *env)
{
    size_t n = strlen(env) + 1;

    r->env = n <= sizeof r->env_buf ? r->env_buf : malloc(n);
    if (r->env)
        memcpy(r->env, env, n);
    return r->env;
}

static void req_free(struct simple_req *r)
{
    history_cancel(r->hop);
    histidem_cancel(r->iop);
    histidem_drop(r->hold); /* the client went away before the enqueue ended */
    EVP_MD_CTX_free(r->sha);
    d365_cancel(r->call);
    msgwait_cancel(r->waiter);
    ledgerflow_cancel(r->lop);
    free(r->ledger_id);
    if (r->pending)
        evbuffer_free(r->pending);
    if (r->env != r->env_buf)
        free(r->env);
    free(r->exec_id);
    free(r->last_dequeue);
    free(r);
}

bool simple_req_settle(struct simple_req *r)
{
    if (r->call || r->waiter || r->lop || r->hop || r->iop || r->body_reading || r->req)
        return false;
    req_free(r);
    return true;
}

static void on_gone(void *arg)
{
    struct simple_req *r = arg;

    r->req = NULL;
    r->body_reading = false;
    d365_cancel(r->call);
    r->call = NULL;
    msgwait_cancel(r->waiter);
    r->waiter = NULL;
    ledgerflow_cancel(r->lop);
    r->lop = NULL;
    history_cancel(r->hop);
    r->hop = NULL;
    histidem_cancel(r->iop);
    r->iop = NULL;
    req_free(r);
}

/* ---- jobs and environments ---- */

/* The job `name` if `client` may use it (else answers 403), and of direction `dir`
 * (else answers 400). */
static const struct conf_job *job_for(struct simple_req *r, const struct conf_client *client,
                                      const char *name, int dir)
{
    const struct conf_job *job = conf_job_find(r->s->conf, name);

    if (!job || !conf_client_allows(client, job)) {
        simple_req_error(r, 403, "job_forbidden", "this client may not use job '%s'", name);
        return NULL;
    }
    if (dir >= 0 && (int)job->direction != dir) {
        simple_req_error(r, 400, dir == CONF_DIR_IMPORT ? "not_import_job" : "not_export_job",
                         "job '%s' is an %s job; this route needs an %s job", name,
                         job->direction == CONF_DIR_IMPORT ? "import" : "export",
                         dir == CONF_DIR_IMPORT ? "import" : "export");
        return NULL;
    }
    return job;
}

/* The environment a message id lives in: ?job= names a job of the client; without it the
 * client's jobs must all be in one environment. Answers the request when it cannot. */
static const char *message_env(struct simple_req *r, const struct conf_client *client)
{
    const struct http1_head *h = conn_req_head(r->req);
    char name[SIMPLEROUTE_NAME_MAX];
    int n = simpleroute_query(h->target, h->target_len, "job", name, sizeof name);
    const struct conf_env *env = NULL;

    if (n == -2 || n == 0) {
        simple_req_error(r, 400, "bad_query", "the job parameter is empty or malformed");
        return NULL;
    }
    if (n > 0) {
        const struct conf_job *job = job_for(r, client, name, -1);
        return job ? job->env->name : NULL;
    }
    for (size_t i = 0; i < client->n_jobs; i++) {
        if (env && env != client->jobs[i]->env) {
            simple_req_error(r, 400, "job_required",
                             "this client's jobs span several environments: add ?job=<name>");
            return NULL;
        }
        env = client->jobs[i]->env;
    }
    if (!env)
        simple_req_error(r, 403, "job_forbidden", "this client has no jobs");
    return env ? env->name : NULL;
}

/* ---- GET /v1/messages/{id} ---- */

/* {"message_id":..,"status":..,"final":..}: the API's most asked answer, built by hand
 * when D365's status is plain ASCII (as documented), else by jansson. */
static void answer_status(struct simple_req *r, const char *status, bool final)
{
    struct logline o;
    char text[sizeof o.buf + 2];

    logline_init(&o);
    logline_str(&o, "message_id", r->route.message_id, strlen(r->route.message_id));
    logline_str(&o, "status", status, strlen(status));
    if (final)
        logline_raw(&o, ",\"final\":true", 13);
    else
        logline_raw(&o, ",\"final\":false", 14);
    if (o.ok) {
        text[0] = '{';
        memcpy(text + 1, o.buf, o.n);
        text[o.n + 1] = '}';
        reqcore_json_text(core(r), 200, text, o.n + 2);
        return;
    }
    simple_req_json(r, 200, json_pack("{s:s, s:s, s:b}", "message_id", r->route.message_id,
                                      "status", status, "final", final));
}

static void on_status(void *arg, const struct msgwait_result *res)
{
    struct simple_req *r = arg;

    r->waiter = NULL;
    if (res->ok && r->env)
        history_status(r->s->hist, r->env, r->route.message_id, res->status, res->final);
    if (!res->ok)
        simple_req_fail(r, res->err);
    else
        answer_status(r, res->status, res->final);
    simple_req_settle(r);
}

static void route_status(struct simple_req *r, const struct conf_client *client)
{
    const struct http1_head *h = conn_req_head(r->req);
    const char *env = message_env(r, client);
    char w[24];
    unsigned wait_s = 0;
    int n;

    if (!env)
        return;
    n = simpleroute_query(h->target, h->target_len, "wait", w, sizeof w);
    if (n == -2 || (n >= 0 && simpleroute_wait(w, SIMPLE_WAIT_MAX_S, &wait_s) < 0)) {
        simple_req_error(r, 400, "bad_query", "wait must be whole seconds (at most %d)",
                         SIMPLE_WAIT_MAX_S);
        return;
    }
    set_env(r, env); /* NULL when out of memory: no history then */
    r->waiter = msgwait_add(r->s->mw, env, r->route.message_id, wait_s * 1000u, on_status, r);
    if (!r->waiter)
        simple_req_error(r, 503, "too_many_waiters", "too many status requests waiting");
}

/* ---- GET /v1/messages/{id}/errors ---- */

static void on_errors(void *arg, const struct d365_result *res)
{
    struct simple_req *r = arg;
    json_t *errors, *o;

    r->call = NULL;
    if (!res->ok) {
        simple_req_fail(r, &res->err);
        simple_req_settle(r);
        return;
    }
    errors = d365parse_errors_array(res->value);
    o = json_pack("{s:s, s:s}", "message_id", r->route.message_id, "execution_id", r->exec_id);
    if (errors) {
        json_object_set_new(o, "errors", errors);
    } else { /* D365's string is not valid JSON (reference §4.4): hand it over as text */
        json_object_set_new(o, "errors", json_null());
        json_object_set_new(o, "errors_raw", json_string(res->value));
    }
    simple_req_json(r, 200, o);
    simple_req_settle(r);
}

static void on_execution_id(void *arg, const struct d365_result *res)
{
    struct simple_req *r = arg;
    struct d365_cbs cbs = { .on_result = on_errors, .arg = r };

    r->call = NULL;
    if (!res->ok) {
        simple_req_fail(r, &res->err);
    } else if (!res->value[0]) {
        simple_req_error(r, 409, "no_execution_yet",
                         "D365 has not started processing this message yet");
    } else if (!(r->exec_id = strdup(res->value)) ||
               !(r->call = d365_action(r->s->ctx, r->env, "GetExecutionErrors",
                                       "executionId", r->exec_id, &cbs))) {
        simple_req_error(r, 500, "internal", "cannot start the GetExecutionErrors call");
    }
    simple_req_settle(r);
}

static void route_errors(struct simple_req *r, const struct conf_client *client)
{
    const char *env = message_env(r, client);
    struct d365_cbs cbs = { .on_result = on_execution_id, .arg = r };

    if (!env)
        return;
    if (!set_env(r, env) ||
        !(r->call = d365_action(r->s->ctx, env, "GetExecutionIdByMessageId", "_messageId",
                                r->route.message_id, &cbs)))
        simple_req_error(r, 500, "internal", "cannot start the GetExecutionIdByMessageId call");
}

/* ---- dispatch ---- */

static bool route_ok(struct simple_req *r, const struct http1_head *h)
{
    switch (r->route.kind) {
    case SIMPLEROUTE_NONE:
    case SIMPLEROUTE_UNKNOWN:
        simple_req_error(r, 404, "not_found", "no such /v1 route");
        return false;
    case SIMPLEROUTE_BAD_RECORD:
        simple_req_error(r, 404, "record_not_found", "no history record with that id");
        return false;
    case SIMPLEROUTE_BAD_ID:
        simple_req_error(r, 400, "bad_message_id", "the message id is not a GUID");
        return false;
    case SIMPLEROUTE_BAD_JOB:
        simple_req_error(r, 400, "bad_job_name", "the job name is empty, too long or "
                         "badly encoded");
        return false;
    default:
        break;
    }
    if (!simpleroute_allows(r->route.allow, h->method_name)) {
        reply_method_not_allowed(simple_req_take(r), r->route.allow);
        return false;
    }
    if (h->framing == HTTP1_BODY_LENGTH &&
        h->content_length > simple_body_limit(r->s->conf, h)) {
        simple_req_error(r, 413, "body_too_large", "the request body is over %s (%llu bytes)",
                         r->route.kind == SIMPLEROUTE_ENQUEUE ? "max_enqueue_bytes"
                                                              : "max_body_bytes",
                         (unsigned long long)simple_body_limit(r->s->conf, h));
        return false;
    }
    return true;
}

static void dispatch(struct simple_req *r, const struct conf_client *client)
{
    const struct conf_job *job = NULL;
    int dir = r->route.kind == SIMPLEROUTE_ENQUEUE ? CONF_DIR_IMPORT : CONF_DIR_EXPORT;

    if (r->route.kind == SIMPLEROUTE_STATUS)
        return route_status(r, client);
    if (r->route.kind == SIMPLEROUTE_ERRORS)
        return route_errors(r, client);
    if (r->route.kind == SIMPLEROUTE_HISTORY)
        return simplehist_list(r, client);
    if (r->route.kind == SIMPLEROUTE_RECORD)
        return simplehist_get(r, client);
    job = job_for(r, client, r->route.job, dir);
    if (!job)
        return;
    if (job->project) { /* a package job has no activity id: /v1/packages serves it */
        simple_req_error(r, 400, "not_recurring_job", "job '%s' is a package job; use "
                         "/v1/packages/import or /export?job=%s", job->name, job->name);
        return;
    }
    if (!set_env(r, job->env->name)) {
        simple_req_error(r, 500, "internal", "out of memory");
        return;
    }
    memcpy(r->activity, job->activity_id, sizeof r->activity);
    if (r->route.kind != SIMPLEROUTE_ACK && jobpause_paused(r->s->pause, job->name)) {
        /* a paused import enqueues nothing, a paused export hands out nothing; acks go on */
        simple_req_retry(r, 503, JOBPAUSE_RETRY_AFTER_S, "job_paused", "the job is paused by "
                         "an operator; retry after it is resumed");
        return;
    }
    if (r->route.kind == SIMPLEROUTE_ENQUEUE)
        simplexfer_enqueue(r, job);
    else if (r->route.kind == SIMPLEROUTE_NEXT)
        simplexfer_next(r, job);
    else
        simplexfer_ack(r, job);
}

void simple_req_watch(struct simple_req *r, void (*on_drained)(void *arg))
{
    struct conn_req_events ev = { .on_gone = on_gone, .on_drained = on_drained, .arg = r };

    if (r->req)
        conn_req_set_events(r->req, &ev);
}

void simple_handle(struct simple *s, struct conn_req *req, const struct conf_client *client)
{
    const struct http1_head *h = conn_req_head(req);
    struct simple_req *r = calloc(1, sizeof *r);

    if (!r) {
        reply_error(req, 500, "internal", "out of memory");
        return;
    }
    r->s = s;
    r->req = req;
    r->client = client->name;
    simpleroute_match(h->target, h->path_len, &r->route);
    simple_req_watch(r, NULL);
    if (route_ok(r, h))
        dispatch(r, client);
    simple_req_settle(r);
}
