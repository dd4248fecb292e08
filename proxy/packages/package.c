/* package: routes of the package API, authorisation by package job, export, and the
 * execution routes (status with shared polls, package download, errors). The import
 * flow is in packageimport.c. */
#include "packagereq.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <jansson.h>

#include "reply.h"
#include "reqcore.h"

enum route { R_NONE, R_IMPORT, R_EXPORT, R_STATUS, R_PACKAGE, R_ERRORS };

static const struct msgwait_opts exec_wait = {
    .action = "GetExecutionSummaryStatus", .param = "executionId",
    .is_final = packagename_status_final, .not_yet = packagename_not_yet,
};

struct package *package_new(struct event_base *base, struct upcall_ctx *ctx,
                            struct upstream *up, const struct conf *conf)
{
    struct package *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    p->base = base;
    p->ctx = ctx;
    p->up = up;
    p->conf = conf;
    p->mw = msgwait_new(base, ctx, &exec_wait);
    p->share = packageshare_new(base, conf, PACKAGE_IDEM_MAX, PACKAGE_IDEM_TTL_S);
    if (!p->mw || !p->share) {
        package_free(p);
        return NULL;
    }
    return p;
}

const struct packagestats *package_stats(const struct package *p)
{
    return &p->stats;
}

const struct rconn_stats *package_redis_stats(const struct package *p)
{
    return packageshare_redis_stats(p->share);
}

void package_set_history(struct package *p, struct history *h)
{
    p->hist = h;
    history_set_exec_poll(h, &exec_wait);
}

/* An import or export with a record that ends without D365 taking it: recorded once. */
static void hist_failed(struct package_req *r, const char *code)
{
    if (r->hist_id[0] && !r->hist_done) {
        r->hist_done = true;
        if (r->hist_export)
            history_export_failed(r->p->hist, r->hist_id, code);
        else
            history_failed(r->p->hist, r->hist_id, code, r->size, NULL);
    }
}

void package_set_conf(struct package *p, const struct conf *conf)
{
    p->conf = conf;
}

static void req_free(struct package_req *r)
{
    struct package *p = r->p;

    hist_failed(r, "client_gone");
    packageimport_stop(r);
    packageerrors_stop(r);
    d365_cancel(r->call);
    d365_cancel(r->check);
    msgwait_cancel(r->waiter);
    if (r->prev)
        r->prev->next = r->next;
    else
        p->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r->env);
    free(r);
}

void package_free(struct package *p)
{
    if (!p)
        return;
    while (p->reqs) {
        struct package_req *r = p->reqs;
        if (r->req)
            conn_req_set_events(r->req, NULL);
        r->req = NULL;
        req_free(r);
    }
    while (p->queues) {
        struct package_queue *q = p->queues;
        p->queues = q->next;
        free(q->env);
        free(q);
    }
    msgwait_free(p->mw);
    packageshare_free(p->share);
    free(p);
}

static bool path_has(const struct http1_head *h, const char *prefix)
{
    size_t n = strlen(prefix);

    return h->path_len >= n && memcmp(h->target, prefix, n) == 0 &&
           (h->path_len == n || h->target[n] == '/');
}

bool package_owns(const struct http1_head *h)
{
    return path_has(h, "/v1/packages") || path_has(h, "/v1/executions");
}

bool package_is_import(const struct http1_head *h)
{
    return h->path_len == 19 && memcmp(h->target, "/v1/packages/import", 19) == 0;
}

/* ---- answers and lifetime ---- */

static struct reqcore core(struct package_req *r)
{
    return (struct reqcore){ &r->req, &r->responded, r->body_reading };
}

static struct conn_req *take(struct package_req *r)
{
    return reqcore_take(core(r));
}

void package_req_fail(struct package_req *r, const struct d365_err *e)
{
    hist_failed(r, e->code);
    reqcore_fail(core(r), e);
}

void package_req_error(struct package_req *r, int status, const char *code, const char *fmt,
                       ...)
{
    char message[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    hist_failed(r, code);
    reqcore_error(core(r), status, status == 409 || status == 503 ? "Retry-After: 5\r\n" : NULL,
                  code, message);
}

void package_req_json(struct package_req *r, int status, json_t *o)
{
    reqcore_json(core(r), status, o);
}

bool package_req_settle(struct package_req *r)
{
    if (r->busy || r->call || r->check || r->import || r->xfer || r->put || r->queued ||
        r->waiter || r->op ||
        r->body_reading || r->req)
        return false;
    req_free(r);
    return true;
}

static void on_gone(void *arg)
{
    struct package_req *r = arg;

    r->req = NULL;
    r->body_reading = false;
    d365_cancel(r->call);
    r->call = NULL;
    msgwait_cancel(r->waiter);
    r->waiter = NULL;
    packageerrors_stop(r);
    packageimport_cancel(r); /* an upload stops; a queued or running import goes on */
    package_req_settle(r);
}

void package_req_sas_expired(struct package_req *r, const char *which, const char *advice)
{
    char when[32] = "?";
    time_t se;
    struct tm tm;

    if (packagename_sas_expiry(r->blob_url, &se) == 0 && gmtime_r(&se, &tm))
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    package_req_error(r, 502, "blob_sas_expired", "the %s expired at %s; %s; if this repeats, "
                      "check the clocks of D365's storage and of this host", which, when, advice);
}

json_t *package_req_accepted(struct package_req *r)
{
    char url[1024], job[3 * SIMPLEROUTE_NAME_MAX + 1] = "";
    size_t jl = 0;

    d365parse_query_encode(job, sizeof job, &jl, r->job);
    snprintf(url, sizeof url, "%s/v1/executions/%s?job=%s", r->p->conf->public_base_url,
             r->exec_id, job);
    return json_pack("{s:s, s:s}", "execution_id", r->exec_id, "status_url", url);
}

/* ---- jobs and environments ---- */

/* ?name= into buf; -1 absent, -2 (answered 400) malformed. */
static int query(struct package_req *r, const char *name, char *buf, size_t cap)
{
    const struct http1_head *h = conn_req_head(r->req);
    int n = simpleroute_query(h->target, h->target_len, name, buf, cap);

    if (n == -2)
        package_req_error(r, 400, "bad_query", "the %s parameter is malformed or too long",
                          name);
    return n;
}

/* The package job ?job= names, if the client may use it. Answers when not. */
static const struct conf_job *package_job(struct package_req *r,
                                          const struct conf_client *client, int dir)
{
    const struct conf_job *job;
    int n = query(r, "job", r->job, sizeof r->job);

    if (n == -2)
        return NULL;
    if (n <= 0) {
        package_req_error(r, 400, "job_required", "name the package job: ?job=<name>");
        return NULL;
    }
    job = conf_job_find(r->p->conf, r->job);
    if (!job || !conf_client_allows(client, job)) {
        package_req_error(r, 403, "job_forbidden", "this client may not use job '%s'", r->job);
        return NULL;
    }
    if (!job->project) {
        package_req_error(r, 400, "not_package_job", "job '%s' is a recurring data job, "
                          "not a package job", r->job);
        return NULL;
    }
    if (dir >= 0 && (int)job->direction != dir) {
        package_req_error(r, 400, dir == CONF_DIR_IMPORT ? "not_import_job" : "not_export_job",
                          "job '%s' is not an %s job", r->job,
                          dir == CONF_DIR_IMPORT ? "import" : "export");
        return NULL;
    }
    return job;
}

/* The environment of an execution: ?job= names a package job of the client; without it
 * the client's package jobs must all be in one environment. */
static const char *exec_env(struct package_req *r, const struct conf_client *client)
{
    const struct http1_head *h = conn_req_head(r->req);
    const struct conf_env *env = NULL;
    char tmp[8];

    if (simpleroute_query(h->target, h->target_len, "job", tmp, sizeof tmp) != -1) {
        const struct conf_job *job = package_job(r, client, -1);
        return job ? job->env->name : NULL;
    }
    for (size_t i = 0; i < client->n_jobs; i++) {
        if (!client->jobs[i]->project)
            continue;
        if (env && env != client->jobs[i]->env) {
            package_req_error(r, 400, "job_required", "this client's package jobs span "
                              "several environments: add ?job=<name>");
            return NULL;
        }
        env = client->jobs[i]->env;
    }
    if (!env)
        package_req_error(r, 403, "job_forbidden", "this client has no package jobs");
    return env ? env->name : NULL;
}

/* ---- GET /v1/executions/{id} ---- */

static void on_status(void *arg, const struct msgwait_result *res)
{
    struct package_req *r = arg;

    r->waiter = NULL;
    if (res->ok)
        history_status(r->p->hist, r->env, r->exec_id, res->status, res->final);
    if (!res->ok)
        package_req_fail(r, res->err);
    else
        package_req_json(r, 200, json_pack("{s:s, s:s, s:b}", "execution_id", r->exec_id,
                                           "status", res->status, "final", res->final));
    package_req_settle(r);
}

static void route_status(struct package_req *r)
{
    char w[24];
    unsigned wait_s = 0;
    int n = query(r, "wait", w, sizeof w);

    if (n == -2)
        return;
    if (n >= 0 && simpleroute_wait(w, PACKAGE_WAIT_MAX_S, &wait_s) < 0) {
        package_req_error(r, 400, "bad_query", "wait must be whole seconds (at most %d)",
                          PACKAGE_WAIT_MAX_S);
        return;
    }
    r->waiter = msgwait_add(r->p->mw, r->env, r->exec_id, wait_s * 1000u, on_status, r);
    if (!r->waiter)
        package_req_error(r, 503, "too_many_waiters", "too many status requests waiting");
}

/* ---- GET /v1/executions/{id}/package ---- */

static void on_drained(void *arg)
{
    struct package_req *r = arg;

    if (r->xfer)
        upstream_resume_recv(r->xfer);
}

static void on_blob_head(void *arg, const struct uphead *head)
{
    struct package_req *r = arg;
    const char *cl = uphead_find(head, "Content-Length");
    struct conn_req_events ev = { .on_gone = on_gone, .on_drained = on_drained, .arg = r };
    int64_t len = cl && cl[0] >= '0' && cl[0] <= '9' ? (int64_t)strtoll(cl, NULL, 10) : -1;

    if (!r->req || uphead_status(head) != 200)
        return;
    if (r->p->hist && !r->sha && (r->sha = EVP_MD_CTX_new()) &&
        EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(r->sha);
        r->sha = NULL;
    }
    r->responded = true;
    conn_req_set_events(r->req, &ev);
    conn_req_start(r->req, 200, NULL, "application/zip", len);
}

static enum upstream_flow on_blob_body(void *arg, const char *data, size_t len)
{
    struct package_req *r = arg;

    if (!r->responded) /* an error body from blob storage: dropped (it may quote the SAS) */
        return UPSTREAM_CONTINUE;
    if (!r->req)
        return UPSTREAM_PAUSE;
    r->size += len; /* the package's bytes and SHA-256 as they go out, for the history */
    if (r->sha)
        EVP_DigestUpdate(r->sha, data, len);
    return conn_req_write(r->req, data, len) == 0 ? UPSTREAM_CONTINUE : UPSTREAM_PAUSE;
}

/* The package went out whole: its export's record gets the delivery. */
static void hist_delivered(struct package_req *r)
{
    unsigned char raw[32];
    unsigned n = 0;
    char hex[65] = "";

    if (!r->p->hist)
        return;
    if (r->sha && EVP_DigestFinal_ex(r->sha, raw, &n) == 1 && n == 32)
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    history_package_delivered(r->p->hist, r->env, r->exec_id, r->client, r->size,
                              hex[0] ? hex : NULL);
}

static void on_blob_done(void *arg, const struct upstream_done *d)
{
    struct package_req *r = arg;
    struct conn_req *req = r->req;

    r->xfer = NULL;
    if (r->responded && req) {
        r->req = NULL;
        conn_req_set_events(req, NULL);
        if (d->result == UPSTREAM_OK) {
            hist_delivered(r);
            conn_req_end(req);
        } else {
            conn_req_abort(req);
        }
    } else if (d->result != UPSTREAM_OK) {
        package_req_error(r, 502, "blob_unreachable", "blob storage failed: %s",
                          upstream_result_name(d->result));
    } else if (d->status == 403 && packagename_sas_expired(r->blob_url, time(NULL))) {
        package_req_sas_expired(r, "package URL D365 gave (GetExportedPackageUrl)",
                                "ask for the package again (a new URL is made each time)");
    } else {
        package_req_error(r, 502, "blob_download_failed", "blob storage answered %d to the "
                          "package download (SAS expired or package gone?)", d->status);
    }
    package_req_settle(r);
}

static void on_package_url(void *arg, const struct d365_result *res)
{
    struct package_req *r = arg;
    struct upstream_cbs cbs = { on_blob_head, on_blob_body, NULL, on_blob_done, r };
    struct upstream_req ureq = { .method = "GET", .url = res->ok ? res->value : "",
                                 .body_len = UPSTREAM_BODY_NONE, .bulk = true };

    r->call = NULL;
    if (!res->ok)
        package_req_fail(r, &res->err);
    else if (!res->value[0])
        package_req_error(r, 409, "package_not_ready", "D365 has no package for execution %s "
                          "yet; poll its status", r->exec_id);
    else if (!(r->blob_url = strdup(res->value)))
        package_req_error(r, 500, "internal", "out of memory");
    else if (!(r->xfer = upstream_start(r->p->up, &ureq, &cbs)))
        package_req_error(r, 502, "d365_bad_answer", "D365's package URL is not usable");
    package_req_settle(r);
}

static void route_package(struct package_req *r)
{
    struct d365_cbs cbs = { .on_result = on_package_url, .arg = r };

    r->call = d365_action(r->p->ctx, r->env, "GetExportedPackageUrl", "executionId",
                          r->exec_id, &cbs);
    if (!r->call)
        package_req_error(r, 500, "internal", "cannot start the GetExportedPackageUrl call");
}

/* ---- POST /v1/packages/export ---- */

static void on_exported(void *arg, const struct upcall_done *d)
{
    struct package_req *r = arg;
    struct d365_err err;
    char *v = NULL;

    r->import = NULL;
    if (d->st != UPCALL_OK || d->status != 200) {
        d365_error_from(d, "ExportToPackage", &err);
        package_req_fail(r, &err);
    } else if (!(v = d365parse_value_string(d->body, d->body_len)) || !v[0] ||
               strcmp(v, "00000000-0000-0000-0000-000000000000") == 0) {
        package_req_error(r, 502, "export_not_started", "D365 did not start the export");
    } else {
        snprintf(r->exec_id, sizeof r->exec_id, "%s", v);
        statcell_inc(&r->p->stats.exports_started);
        if (r->hist_id[0] && !r->hist_done) { /* followed until final from now on */
            r->hist_done = true;
            history_sent_exec(r->p->hist, r->hist_id, r->env, r->exec_id, 0, NULL);
        }
        package_req_json(r, 202, package_req_accepted(r));
    }
    free(v);
    package_req_settle(r);
}

static void route_export(struct package_req *r)
{
    static const char *const headers[] = { "Accept: application/json",
                                           "Content-Type: application/json; charset=utf-8" };
    json_t *b = json_pack("{s:s, s:s, s:s, s:b, s:s}", "definitionGroupId", r->project,
                          "packageName", r->exec_id, "executionId", r->exec_id,
                          "reExecute", 0, "legalEntityId", r->company);
    char *body = b ? json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    struct upcall_req req = {
        .env = r->env, .method = "POST", .headers = headers, .n_headers = 2,
        .path_query = "/data/DataManagementDefinitionGroups/"
                      "Microsoft.Dynamics.DataEntities.ExportToPackage",
        .retry = UPCALL_RETRY_NONE, .body = body, .body_len = body ? strlen(body) : 0,
        .max_response_bytes = 1024 * 1024,
    };
    struct upcall_cbs cbs = { .on_done = on_exported, .arg = r };

    json_decref(b);
    if (r->p->hist) { /* before the call: a failure is recorded against it */
        r->hist_export = true;
        history_export_requested(r->p->hist, r->env, r->job, r->client, r->project,
                                 r->hist_id);
    }
    if (!body || !(r->import = upcall_start(r->p->ctx, &req, &cbs)))
        package_req_error(r, 500, "internal", "cannot start the ExportToPackage call");
    free(body);
}

/* ---- dispatch ---- */

static enum route match(const struct http1_head *h, char *id, size_t cap)
{
    const char *p = h->target;
    size_t n = h->path_len, pre = strlen("/v1/executions/"), idl;
    const char *slash;

    if (n == 19 && memcmp(p, "/v1/packages/import", 19) == 0)
        return R_IMPORT;
    if (n == 19 && memcmp(p, "/v1/packages/export", 19) == 0)
        return R_EXPORT;
    if (n <= pre || memcmp(p, "/v1/executions/", pre) != 0)
        return R_NONE;
    slash = memchr(p + pre, '/', n - pre);
    idl = slash ? (size_t)(slash - (p + pre)) : n - pre;
    if (!packagename_exec_ok(p + pre, idl) || idl >= cap)
        return R_NONE;
    memcpy(id, p + pre, idl);
    id[idl] = '\0';
    if (!slash)
        return R_STATUS;
    if ((size_t)(p + n - slash) == 8 && memcmp(slash, "/package", 8) == 0)
        return R_PACKAGE;
    if ((size_t)(p + n - slash) == 7 && memcmp(slash, "/errors", 7) == 0)
        return R_ERRORS;
    return R_NONE;
}

/* project/company: ?project= and ?company= override the job's. */
static int targets(struct package_req *r, const struct conf_job *job)
{
    int n = query(r, "project", r->project, sizeof r->project);

    if (n == -2)
        return -1;
    if (n <= 0)
        snprintf(r->project, sizeof r->project, "%s", job->project);
    n = query(r, "company", r->company, sizeof r->company);
    if (n == -2)
        return -1;
    if (n <= 0)
        snprintf(r->company, sizeof r->company, "%s", job->company ? job->company : "");
    return 0;
}

static void dispatch(struct package_req *r, enum route rt, const struct conf_client *client)
{
    const char *method = conn_req_head(r->req)->method_name;
    bool post = rt == R_IMPORT || rt == R_EXPORT;
    const struct conf_job *job;
    const char *env;
    unsigned char rnd[16];

    if (!simpleroute_allows(post ? "POST" : "GET, HEAD", method)) {
        reply_method_not_allowed(take(r), post ? "POST" : "GET, HEAD");
        return;
    }
    if (!post) {
        if (!(env = exec_env(r, client)) || !(r->env = strdup(env)))
            return package_req_error(r, 500, "internal", "out of memory");
        if (rt == R_STATUS)
            return route_status(r);
        return rt == R_ERRORS ? packageerrors_start(r) : route_package(r);
    }
    job = package_job(r, client, rt == R_IMPORT ? CONF_DIR_IMPORT : CONF_DIR_EXPORT);
    if (!job || targets(r, job) < 0)
        return;
    /* getrandom, not libevent's RNG: that one is unlocked across worker threads */
    if (!(r->env = strdup(job->env->name)) || getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
        return package_req_error(r, 500, "internal", "out of memory");
    packagename_exec_id(r->project, rnd, r->exec_id);
    if (rt == R_IMPORT)
        packageimport_start(r, job);
    else
        route_export(r);
}

void package_handle(struct package *p, struct conn_req *req, const struct conf_client *client)
{
    struct package_req *r = calloc(1, sizeof *r);
    struct conn_req_events ev = { .on_gone = on_gone, .arg = r };
    enum route rt;

    if (!r) {
        reply_error(req, 500, "internal", "out of memory");
        return;
    }
    r->p = p;
    r->req = req;
    r->client = client->name;
    r->busy = 1; /* the body may end (and the request settle) inside dispatch */
    r->next = p->reqs;
    if (r->next)
        r->next->prev = r;
    p->reqs = r;
    conn_req_set_events(req, &ev);
    rt = match(conn_req_head(req), r->exec_id, sizeof r->exec_id);
    if (rt == R_NONE)
        package_req_error(r, 404, "not_found", "no such package API route");
    else
        dispatch(r, rt, client);
    r->busy = 0;
    package_req_settle(r);
}
