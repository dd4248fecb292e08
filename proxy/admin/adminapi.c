/* adminapi: the JSON admin API under /admin/api/ that the operator page (/ui) and
 * fogatectl share. Reads (GET) are open to whoever may use the admin listener; every
 * action (POST) needs the admin token, from loopback too, and writes one audit line
 * ("msg":"admin_action": who, peer, action, target, result; never the token).
 *
 *   GET  overview                     environments, jobs (paused?, today's final counts),
 *                                     ledger, instance
 *   GET  exports                      unconfirmed and unacked exports (ledger in Redis)
 *   GET  history[?job,status,...]     every job's records;  GET history/{id}: one record
 *   POST jobs/{job}/pause|resume      cluster-wide (jobpause.h)
 *   POST exports/{id}/release         end the delivery lease (ledgerops.h)
 *   POST exports/{id}/retry-ack       make the upstream ack due now
 *   POST history/{id}/repoll          poll an import's status now (history follow-up)
 *   POST drain                        /readyz 503, then SIGTERM's drain (workers.c)
 */
#include "adminapi.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "adminauth.h"
#include "adminroutes.h"
#include "hex.h"
#include "conf.h"
#include "d365stats.h"
#include "history.h"
#include "jobpause.h"
#include "ledgerflow.h"
#include "ledgerops.h"
#include "log.h"
#include "reply.h"
#include "simpleroute.h"
#include "token.h"
#include "upcall.h"

#define SEG_MAX 320
#define DEFAULT_LIMIT 100

struct apiop {
    const struct admin_deps *d; /* borrowed from the admin (overview) */
    struct conn_req *req;      /* borrowed; NULL once the client went away */
    struct history_op *hop;    /* owned while a history read runs */
    char action[24];
    char target[SEG_MAX];
    char who[40];              /* "token:<fingerprint>" */
    char peer[64];
    struct rconn_script script; /* repoll: must live until its callback */
};

/* Decodes %XX in one path segment [s, e) into out (cap). Returns 0, or -1 when malformed,
 * empty, too long or holding a byte outside [A-Za-z0-9_.:@~-] once decoded. Pure. */
static int segment(const char *s, const char *e, char *out, size_t cap)
{
    size_t n = 0;

    for (; s < e; s++) {
        int c = (unsigned char)*s;
        if (c == '%') {
            unsigned char v; /* exactly two hex digits (sscanf's %2x takes "+f" and " f") */
            if (e - s < 3 || hex_decode(s + 1, 2, &v, 1) != 0)
                return -1;
            c = v;
            s += 2;
        }
        if (!(c == '-' || c == '_' || c == '.' || c == ':' || c == '@' || c == '~' ||
              (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ||
            n + 1 >= cap)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n ? 0 : -1;
}

/* Splits the path after /admin/api/ into up to 3 segments. Returns the count, -1 bad. */
static int split(const char *path, size_t len, char seg[3][SEG_MAX])
{
    static const char base[] = "/admin/api/";
    const char *p = path + sizeof base - 1, *end = path + len;
    int n = 0;

    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *e = slash ? slash : end;
        if (n == 3 || segment(p, e, seg[n], SEG_MAX) < 0)
            return -1;
        n++;
        p = slash ? slash + 1 : end;
    }
    return n;
}

static long long now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- pending operations ---- */

static void on_gone(void *arg)
{
    struct apiop *op = arg;

    op->req = NULL;
    if (op->hop) { /* a history read is withdrawn; a Redis action completes on its own */
        history_cancel(op->hop);
        free(op);
    }
}

static struct apiop *op_new(struct conn_req *req, const char *action, const char *target)
{
    struct apiop *op = calloc(1, sizeof *op);
    struct conn_req_events ev = { .on_gone = on_gone, .arg = op };

    if (!op) {
        reply_error(req, 503, "out_of_memory", "the server is out of memory, retry later");
        return NULL;
    }
    op->req = req;
    snprintf(op->action, sizeof op->action, "%s", action);
    snprintf(op->target, sizeof op->target, "%s", target);
    snprintf(op->peer, sizeof op->peer, "%s", conn_req_client(req));
    conn_req_set_events(req, &ev);
    return op;
}

/* Detaches op from its request before it is answered (so that nothing calls back into
 * op) and frees op. Returns the request to answer, or NULL when the client went away. */
static struct conn_req *op_end(struct apiop *op)
{
    struct conn_req *req = op->req;

    if (req)
        conn_req_set_events(req, NULL);
    free(op);
    return req;
}

static void audit(const char *who, const char *peer, const char *action, const char *target,
                  const char *result)
{
    log_json(LOG_LVL_INFO, "admin_action",
             json_pack("{s:s, s:s, s:s, s:s, s:s}", "who", who, "peer", peer, "action", action,
                       "target", target, "result", result));
}

static void answer(struct apiop *op, int status, const char *code, const char *message,
                   json_t *doc)
{
    struct conn_req *req;

    audit(op->who, op->peer, op->action, op->target, code ? code : "ok");
    req = op_end(op);
    if (req && code)
        reply_error(req, status, code, "%s", message);
    else if (req)
        adminroutes_reply_json(req, status, doc);
    else
        json_decref(doc);
}

/* ---- reads ---- */

static json_t *jobs_json(const struct admin_deps *d)
{
    json_t *paused = jobpause_list(d->pause), *jobs = json_array();

    for (size_t i = 0; jobs && i < d->conf->n_jobs; i++) {
        const struct conf_job *j = &d->conf->jobs[i];
        json_t *p = json_object_get(paused, j->name);
        json_array_append_new(jobs, json_pack("{s:s, s:s, s:s, s:s, s:O}", "name", j->name,
                                              "environment", j->env_name, "direction",
                                              j->direction == CONF_DIR_IMPORT ? "import"
                                                                              : "export",
                                              "kind", j->project ? "package" : "recurring",
                                              "paused", p ? p : json_null()));
    }
    json_decref(paused);
    return jobs;
}

/* Worker 0's last D365 answer >= 400 (or none) for environment `name`, or null. */
static json_t *last_d365_error(const struct admin_deps *d, const char *name)
{
    const struct d365stats *s = upcall_ctx_stats(d->uc);
    size_t n = s ? atomic_load_explicit(&((struct d365stats *)s)->n, memory_order_acquire) : 0;

    for (size_t i = 0; i < n; i++) {
        const struct d365stats_env *e = &s->env[i];
        int64_t at = statgauge_get(&e->last_error_at);
        if (strcmp(e->name, name) == 0 && at > 0)
            return json_pack("{s:I, s:I}", "status",
                             (json_int_t)statgauge_get(&e->last_error_status), "at",
                             (json_int_t)at);
    }
    return json_null();
}

static json_t *envs_json(const struct admin_deps *d)
{
    json_t *envs = token_mgr_status(d->tm);
    size_t i;
    json_t *e;

    json_array_foreach(envs, i, e) {
        const char *name = json_string_value(json_object_get(e, "environment"));
        json_object_del(e, "counters");
        if (!name)
            continue;
        json_object_set_new(e, "throttled_for_s",
                            json_integer(upcall_gate_remaining(d->uc, name)));
        json_object_set_new(e, "last_d365_error", last_d365_error(d, name));
    }
    return envs;
}

/* The overview; `today` (borrowed; NULL: history off or unreadable) the history's
 * counts of the day (history_today), each job's under its "today". */
static json_t *overview_json(const struct admin_deps *d, const json_t *today)
{
    json_t *jobs = jobs_json(d), *j, *day = json_null();
    const json_t *per = json_object_get(today, "jobs");
    size_t i;

    json_array_foreach(jobs, i, j) {
        json_t *t = json_object_get(per, json_string_value(json_object_get(j, "name")));
        json_object_set_new(j, "today", t ? json_deep_copy(t) : json_null());
    }
    if (today)
        day = json_pack("{s:O, s:O}", "date", json_object_get(today, "date"), "time_zone",
                        json_object_get(today, "time_zone"));
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:{s:b, s:b, s:b, s:I, s:b}}", "now_ms",
                     (json_int_t)now_ms(), "environments", envs_json(d), "jobs", jobs,
                     "today", day ? day : json_null(),
                     "ledger", d->ledger ? ledgerflow_status(d->ledger) : json_null(),
                     "instance", "draining", d->draining && atomic_load(d->draining),
                     "history", d->history != NULL, "pause", d->pause != NULL, "workers",
                     (json_int_t)d->workers, "actions_need_token", true);
}

static void on_today(void *arg, int status, const json_t *result)
{
    struct apiop *op = arg;
    const struct admin_deps *d = op->d;
    struct conn_req *req = op_end(op); /* a withdrawn read never calls back: req is set */

    adminroutes_reply_json(req, 200, overview_json(d, status == 0 ? result : NULL));
}

static void overview(const struct admin_deps *d, struct conn_req *req)
{
    struct apiop *op;

    if (!d->history) {
        adminroutes_reply_json(req, 200, overview_json(d, NULL));
        return;
    }
    if (!(op = op_new(req, "overview", "")))
        return;
    op->d = d;
    if (!(op->hop = history_today(d->history, on_today, op))) {
        (void)op_end(op);
        adminroutes_reply_json(req, 200, overview_json(d, NULL)); /* counts unavailable */
    }
}

static void on_list(void *arg, const char *text, size_t len)
{
    struct conn_req *req = op_end(arg);
    json_t *doc = text ? json_loadb(text, len, 0, NULL) : NULL;

    if (req && !doc)
        reply_error(req, 503, "admin_redis_unavailable", "the ledger cannot be read now "
                    "(Redis unavailable), retry later");
    else if (req)
        adminroutes_reply_json(req, 200, doc);
    else
        json_decref(doc);
}

static void exports(const struct admin_deps *d, struct conn_req *req)
{
    struct apiop *op;

    if (!d->ledger || !d->rc) {
        adminroutes_reply_json(req, 200, json_pack("{s:I, s:b, s:[], s:[]}", "now_ms",
                                                   (json_int_t)now_ms(), "ledger_enabled", 0,
                                                   "unconfirmed", "unacked"));
        return;
    }
    if (!(op = op_new(req, "exports", "")))
        return;
    if (ledgerops_list(d->rc, LEDGEROPS_LIST_MAX, on_list, op) < 0) {
        (void)op_end(op);
        reply_error(req, 503, "admin_redis_unavailable", "the ledger cannot be read now");
    }
}

static void on_history(void *arg, int status, const json_t *result)
{
    struct conn_req *req = op_end(arg); /* a withdrawn read never calls back: req is set */

    if (status < 0)
        reply_error(req, 503, "history_unavailable", "the history cannot be read now "
                    "(Redis unavailable), retry later");
    else if (!result)
        reply_error(req, 404, "record_not_found", "no history record with that id");
    else
        adminroutes_reply_json(req, 200, json_deep_copy(result));
}

/* Query parameter `name` into buf; false (answered 400) when malformed. */
static bool param(struct conn_req *req, const char *name, char *buf, size_t cap)
{
    const struct http1_head *h = conn_req_head(req);

    if (simpleroute_query(h->target, h->target_len, name, buf, cap) == -2) {
        reply_error(req, 400, "bad_query", "the %s parameter is malformed or too long", name);
        return false;
    }
    return true;
}

static bool filter(const struct admin_deps *d, struct conn_req *req, struct histrec_filter *f)
{
    char limit[16], cursor[HISTREC_CURSOR_SIZE + 8], since[64], until[64];
    unsigned max = history_max_page(d->history);

    memset(f, 0, sizeof *f);
    if (!param(req, "job", f->job, sizeof f->job) ||
        !param(req, "status", f->status, sizeof f->status) ||
        !param(req, "file", f->file, sizeof f->file) ||
        !param(req, "limit", limit, sizeof limit) || !param(req, "cursor", cursor, sizeof cursor) ||
        !param(req, "since", since, sizeof since) || !param(req, "until", until, sizeof until))
        return false;
    if ((since[0] && histrec_time_parse(since, &f->since_ms) < 0) ||
        (until[0] && histrec_time_parse(until, &f->until_ms) < 0)) {
        reply_error(req, 400, "bad_query", "since and until are RFC 3339 UTC times or "
                    "milliseconds since 1970");
        return false;
    }
    f->limit = DEFAULT_LIMIT < max ? DEFAULT_LIMIT : max;
    if (limit[0]) {
        char *end;
        unsigned long v = strtoul(limit, &end, 10);
        if (*end || limit[0] == '-' || v < 1 || v > max) {
            reply_error(req, 400, "bad_query", "limit must be 1 to %u", max);
            return false;
        }
        f->limit = (unsigned)v;
    }
    if (cursor[0] && histrec_cursor_decode(cursor, f) < 0) {
        reply_error(req, 400, "bad_cursor", "the cursor is not one this API handed out");
        return false;
    }
    return true;
}

static void history(const struct admin_deps *d, struct conn_req *req, const char *id)
{
    struct histrec_filter f;
    const char **jobs = NULL;
    size_t n = 0;
    struct apiop *op;

    if (!d->history) {
        reply_error(req, 404, "history_disabled", "this fogate keeps no history "
                    "(history.enabled is false)");
        return;
    }
    if (!id && !filter(d, req, &f))
        return;
    if (!id && f.job[0] && !conf_job_find(d->conf, f.job)) {
        reply_error(req, 404, "job_not_found", "no job named '%s'", f.job);
        return;
    }
    if (!id && !(jobs = calloc(d->conf->n_jobs + 1, sizeof *jobs))) {
        reply_error(req, 503, "out_of_memory", "the server is out of memory, retry later");
        return;
    }
    for (size_t i = 0; !id && i < d->conf->n_jobs; i++)
        if (!f.job[0] || strcmp(f.job, d->conf->jobs[i].name) == 0)
            jobs[n++] = d->conf->jobs[i].name;
    if ((op = op_new(req, "history", id ? id : ""))) {
        op->hop = id ? history_get(d->history, id, on_history, op)
                     : history_page(d->history, jobs, n, &f, on_history, op);
        if (!op->hop) {
            (void)op_end(op);
            reply_error(req, 503, "history_unavailable", "the history cannot be read now");
        }
    }
    free(jobs);
}

/* ---- actions ---- */

static void on_paused(void *arg, int status)
{
    struct apiop *op = arg;
    bool pause = strcmp(op->action, "pause") == 0;

    if (status < 0)
        answer(op, 503, "admin_redis_unavailable", "Redis did not take the change; nothing "
               "changed, retry", NULL);
    else
        answer(op, 200, NULL, NULL, json_pack("{s:s, s:b, s:s, s:i}", "job", op->target,
                                              "paused", pause, "by", op->who,
                                              "honoured_within_ms", JOBPAUSE_REFRESH_MS));
}

static void pause_job(const struct admin_deps *d, struct apiop *op, bool pause)
{
    if (!conf_job_find(d->conf, op->target))
        answer(op, 404, "job_not_found", "no job with that name", NULL);
    else if (!d->pause)
        answer(op, 503, "admin_redis_unavailable", "pausing needs Redis (redis.url), which "
               "this fogate does not use", NULL);
    else if (jobpause_set(d->pause, op->target, pause, op->who, on_paused, op) < 0)
        answer(op, 503, "admin_redis_unavailable", "the change could not be sent to Redis",
               NULL);
}

static void on_ledger(void *arg, const char *outcome)
{
    struct apiop *op = arg;
    bool release = strcmp(op->action, "release") == 0;

    if (!outcome)
        answer(op, 503, "admin_redis_unavailable", "Redis did not answer; retry", NULL);
    else if (strcmp(outcome, "not_found") == 0)
        answer(op, 404, "export_not_found", "the ledger has no export with that id (never "
               "seen, or expired)", NULL);
    else if (strcmp(outcome, "done") != 0 && release)
        answer(op, 409, "export_not_leased", "the export is no longer waiting for its "
               "consumer's confirmation: it was confirmed", NULL);
    else if (strcmp(outcome, "acked") == 0)
        answer(op, 409, "export_already_acked", "D365 already took the ack of this export",
               NULL);
    else if (strcmp(outcome, "done") != 0)
        answer(op, 409, "export_not_confirmed", "the consumer has not confirmed this export "
               "yet: there is no ack to retry", NULL);
    else if (release)
        answer(op, 200, NULL, NULL, json_pack("{s:s, s:b}", "id", op->target, "released", 1));
    else
        answer(op, 202, NULL, NULL, json_pack("{s:s, s:s}", "id", op->target, "ack_due",
                                              "now"));
}

static void ledger_action(const struct admin_deps *d, struct apiop *op, bool release)
{
    int rc;

    if (!d->ledger || !d->rc) {
        answer(op, 404, "ledger_disabled", "this fogate keeps no ledger (ledger.enabled is "
               "false)", NULL);
        return;
    }
    rc = release ? ledgerops_release(d->rc, op->target, on_ledger, op)
                 : ledgerops_retry_ack(d->rc, op->target, on_ledger, op);
    if (rc < 0)
        answer(op, 400, "bad_export_id", "the export id is not a ledger id", NULL);
}

/* KEYS[1] the record, KEYS[2] the follow-up queue; ARGV[1] the record id. */
static const char repoll_body[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local h = redis.call('HMGET', KEYS[1], 'msg', 'final')\n"
    "if not h[1] then return 'not_found' end\n"
    "if h[2] == '1' then return 'final' end\n"
    "redis.call('ZADD', KEYS[2], now, ARGV[1])\n"
    "return 'done'\n";

static void on_repoll(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct apiop *op = arg;
    const char *s = res == RCONN_OK && reply && reply->type == REDICT_REPLY_STRING ? reply->str
                                                                                     : NULL;

    if (!s)
        answer(op, 503, "admin_redis_unavailable", "Redis did not answer; retry", NULL);
    else if (strcmp(s, "not_found") == 0)
        answer(op, 404, "record_not_found", "no import record with a message id by that id",
               NULL);
    else if (strcmp(s, "final") == 0)
        answer(op, 409, "record_final", "the record's status is final; nothing to poll", NULL);
    else
        answer(op, 202, NULL, NULL, json_pack("{s:s, s:s}", "id", op->target, "poll", "now"));
}

static void repoll(const struct admin_deps *d, struct apiop *op)
{
    char key[HISTREC_KEY_SIZE];

    if (!d->history || !d->rc) {
        answer(op, 404, "history_disabled", "this fogate keeps no history", NULL);
        return;
    }
    if (strlen(op->target) != HISTREC_ID_SIZE - 1 ||
        strspn(op->target, "0123456789abcdef") != HISTREC_ID_SIZE - 1) {
        answer(op, 400, "bad_record_id", "a record id is 32 hex digits", NULL);
        return;
    }
    if (rconn_script_init(&op->script, repoll_body) < 0) {
        answer(op, 503, "out_of_memory", "the poll could not be queued", NULL);
        return;
    }
    snprintf(key, sizeof key, "%s%s", HISTREC_PREFIX, op->target);
    if (rconn_eval(d->rc, &op->script, on_repoll, op, 0, 2, key, "fogate:hist:follow", op->target,
                   NULL) < 0)
        answer(op, 503, "admin_redis_unavailable", "the poll could not be queued", NULL);
}

static void drain(const struct admin_deps *d, struct apiop *op)
{
    if (!d->draining || atomic_exchange(d->draining, true)) {
        answer(op, 409, "already_draining", "this instance is draining already", NULL);
        return;
    }
    /* every worker's /readyz sees the flag now; the main thread (workers.c) takes the
     * signal and sends SIGTERM's drain after the notice */
    kill(getpid(), SIGUSR2);
    answer(op, 202, NULL, NULL, json_pack("{s:b, s:i}", "draining", 1, "notice_ms",
                                          (int)d->conf->admin.drain_notice_ms));
}

/* The verdict on the admin token for an action; answers and audits a refusal. */
static bool action_allowed(const struct admin_deps *d, struct conn_req *req, struct apiop *op)
{
    const struct http1_header *auth = http1_header_find(conn_req_head(req), "Authorization");
    char fp[13];
    enum adminauth_verdict v = adminauth_action(d->token, auth ? auth->value : NULL,
                                                auth ? auth->value_len : 0, fp);

    if (v == ADMINAUTH_OK) {
        snprintf(op->who, sizeof op->who, "token:%s", fp);
        return true;
    }
    snprintf(op->who, sizeof op->who, "peer");
    if (!d->token->set)
        answer(op, 403, "admin_token_required", "actions need the admin token, and none is "
               "configured (admin.token_file)", NULL);
    else if (v == ADMINAUTH_MISSING)
        answer(op, 401, "admin_unauthorized", "actions need the admin token: send "
               "Authorization: Bearer <token> (from loopback too)", NULL);
    else
        answer(op, 403, "admin_forbidden", "the admin token is wrong", NULL);
    return false;
}

static void post(const struct admin_deps *d, struct conn_req *req, int n, char seg[3][SEG_MAX])
{
    const char *action = n == 1   ? seg[0]
                         : n == 3 ? seg[2]
                                  : "";
    struct apiop *op;
    bool known = (n == 1 && strcmp(seg[0], "drain") == 0) ||
                 (n == 3 && strcmp(seg[0], "jobs") == 0 &&
                  (strcmp(seg[2], "pause") == 0 || strcmp(seg[2], "resume") == 0)) ||
                 (n == 3 && strcmp(seg[0], "exports") == 0 &&
                  (strcmp(seg[2], "release") == 0 || strcmp(seg[2], "retry-ack") == 0)) ||
                 (n == 3 && strcmp(seg[0], "history") == 0 && strcmp(seg[2], "repoll") == 0);

    if (!known) {
        reply_error(req, 404, "not_found", "no admin action at this path");
        return;
    }
    if (!(op = op_new(req, action, n == 3 ? seg[1] : "")) || !action_allowed(d, req, op))
        return;
    if (n == 1)
        drain(d, op);
    else if (strcmp(seg[0], "jobs") == 0)
        pause_job(d, op, strcmp(action, "pause") == 0);
    else if (strcmp(seg[0], "exports") == 0)
        ledger_action(d, op, strcmp(action, "release") == 0);
    else
        repoll(d, op);
}

void adminapi_handle(const struct admin_deps *d, struct conn_req *req)
{
    const struct http1_head *h = conn_req_head(req);
    char seg[3][SEG_MAX];
    int n = split(h->target, h->path_len, seg);
    bool get = strcmp(h->method_name, "GET") == 0 || strcmp(h->method_name, "HEAD") == 0;

    if (n < 0) {
        reply_error(req, 404, "not_found", "no admin API route for this path");
        return;
    }
    if (!get) {
        post(d, req, n, seg);
        return;
    }
    if (n == 1 && strcmp(seg[0], "overview") == 0)
        overview(d, req);
    else if (n == 1 && strcmp(seg[0], "exports") == 0)
        exports(d, req);
    else if (n == 1 && strcmp(seg[0], "history") == 0)
        history(d, req, NULL);
    else if (n == 2 && strcmp(seg[0], "history") == 0)
        history(d, req, seg[1]);
    else
        reply_error(req, 404, "not_found", "no admin API route for this path");
}
