/* history: the recorders and reads of the file history in Redis (see history.h). Writes
 * go through the PUT script of cache/histlua.c on the history's own Redis connection, so
 * a slow history never queues behind the ledger and the other way round. */
#include "history.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "hex.h"
#include "histfollow.h"
#include "histlua.h"
#include "histreceipt.h"
#include "log.h"
#include "pkgstore.h"
#include "rconn.h"
#include "redisopen.h"

#define PAGE_SCAN_MIN 100   /* index entries examined per page, at least */
#define PAGE_SCAN_MAX 2000  /* and at most */
#define PUT_MAX_ARGS 48

struct history {
    struct event_base *base;            /* borrowed */
    struct upcall_ctx *uc;              /* borrowed */
    const struct conf *conf;            /* borrowed: the current snapshot */
    struct rconn *rc;                   /* owned */
    struct evdns_base *dns;             /* owned; NULL for IP literals */
    struct rconn_script scripts[HISTLUA_COUNT];
    struct history_stats stats;
    struct histfollow *follow;          /* owned; NULL when follow_hours is 0 */
    struct pkgstore *idem;              /* owned: Idempotency-Key leases (histidem) */
    struct histreceipt *receipts;       /* owned; NULL without receipts.key_file */
};

struct history_op {
    struct history *h;                  /* borrowed */
    history_done *cb;                   /* NULL once cancelled */
    void *arg;
    struct histrec_filter f;
    bool one;                           /* history_get */
    bool today;                         /* history_today */
};

struct history *history_new(struct event_base *base, struct upcall_ctx *uc,
                            const struct conf *conf)
{
    struct history *h;

    if (!conf->history.enabled || !(h = calloc(1, sizeof *h)))
        return NULL;
    h->base = base;
    h->uc = uc;
    h->conf = conf;
    for (int i = 0; i < HISTLUA_COUNT; i++)
        if (rconn_script_init(&h->scripts[i], histlua_body((enum histlua_id)i)) < 0)
            goto fail;
    if (!(h->rc = redisopen_new(base, &conf->redis, "history: ", &h->dns)) ||
        !(h->idem = pkgstore_new(h->rc, (int)conf->history.write_timeout_ms)))
        goto fail;
    if (conf->receipts.key_file &&
        !(h->receipts = histreceipt_new(base, h, h->rc, conf)))
        goto fail;
    if (conf->history.follow_hours > 0 &&
        !(h->follow = histfollow_new(base, uc, h, h->rc, conf)))
        goto fail;
    return h;
fail:
    log_msg(LOG_LVL_ERROR, "history: cannot start");
    history_free(h);
    return NULL;
}

void history_set_conf(struct history *h, const struct conf *conf)
{
    if (!h)
        return;
    h->conf = conf;
    histfollow_set_conf(h->follow, conf);
    histreceipt_set_conf(h->receipts, conf);
}

void history_free(struct history *h)
{
    if (!h)
        return;
    rconn_free(h->rc); /* pending writes call back now, CANCELLED: counted lost */
    histfollow_free(h->follow); /* after: a pending claim calls back into it */
    histreceipt_free(h->receipts);
    pkgstore_free(h->idem);
    if (h->dns)
        evdns_base_free(h->dns, 0);
    free(h);
}

void history_get_stats(const struct history *h, struct history_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!h)
        return;
    *out = h->stats;
    histfollow_stats(h->follow, &out->follow_polls, &out->follow_final);
    histreceipt_stats(h->receipts, &out->receipts_sent, &out->receipts_given_up);
}

struct pkgstore *history_store(struct history *h)
{
    return h->idem;
}

struct event_base *history_base(struct history *h)
{
    return h->base;
}

const struct conf *history_conf(const struct history *h)
{
    return h->conf;
}

unsigned history_max_page(const struct history *h)
{
    return h ? h->conf->history.max_page : 0;
}

/* ---- writes ---- */

/* One PUT being built: keys and arguments borrowed from the caller's buffers. */
struct put {
    char key[HISTREC_KEY_SIZE], env_idx[HISTREC_KEY_SIZE], job_idx[HISTREC_KEY_SIZE];
    char map[HISTREC_KEY_SIZE], ttl[24], cap[24], num[4][24];
    char id[HISTORY_ID_SIZE];           /* a derived record id (export_begin) */
    const char *argv[PUT_MAX_ARGS];
    int argc, nums;
};

static void on_written(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct history *h = arg;

    if (res == RCONN_OK && reply->type != REDICT_REPLY_ERROR)
        h->stats.writes++;
    else
        h->stats.lost++;
}

/* Starts a PUT: KEYS record (or map) key, env index, job index, receipts; ARGV 1..9. */
static void put_begin(struct history *h, struct put *p, const char *id, const char *env,
                      const char *job, const char *status, bool final)
{
    unsigned long long ttl = (unsigned long long)h->conf->history.retention_days * 86400000ull;

    snprintf(p->ttl, sizeof p->ttl, "%llu", ttl);
    snprintf(p->cap, sizeof p->cap, "%u", h->conf->history.max_records);
    if (!job) /* not indexed by this write: the index keys are the record's own */
        memcpy(p->job_idx, p->key, sizeof p->key);
    if (!env)
        memcpy(p->env_idx, p->key, sizeof p->key);
    p->argv[0] = p->key;
    p->argv[1] = env ? p->env_idx : p->key;
    p->argv[2] = job ? p->job_idx : p->key;
    p->argv[3] = HISTREC_RECEIPTS;
    p->argv[4] = id ? id : "";
    p->argv[5] = HISTREC_PREFIX;
    p->argv[6] = p->ttl;
    p->argv[7] = p->cap;
    p->argv[8] = env && job ? "1" : "0";
    p->argv[9] = status ? status : "";
    p->argv[10] = final ? "1" : "0";
    p->argv[11] = p->map[0] ? p->map : "";
    p->argv[12] = HISTREC_TODAY;
    p->argc = 13;
}

static void put_field(struct put *p, const char *name, const char *value)
{
    if (value && p->argc + 2 <= PUT_MAX_ARGS) {
        p->argv[p->argc++] = name;
        p->argv[p->argc++] = value;
    }
}

static void put_num(struct put *p, const char *name, uint64_t v)
{
    if (p->nums < 4) {
        snprintf(p->num[p->nums], sizeof p->num[0], "%" PRIu64, v);
        put_field(p, name, p->num[p->nums++]);
    }
}

static void put_send(struct history *h, struct put *p)
{
    if (rconn_evalv(h->rc, &h->scripts[HISTLUA_PUT], on_written, h,
                    (int)h->conf->history.write_timeout_ms, 4, p->argc, p->argv, NULL) < 0)
        h->stats.lost++;
}

/* The job `job` sends receipts (callback_url) and this fogate can sign them. */
static bool receipts_for(const struct history *h, const char *job)
{
    const struct conf_job *j = conf_job_find(h->conf, job);

    return h->receipts && j && j->callback_url;
}

void history_id_new(char id[HISTORY_ID_SIZE])
{
    unsigned char raw[16];
    static const char digits[] = "0123456789abcdef";

    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        memset(raw, 0, sizeof raw); /* cannot happen for 16 bytes after boot */
    for (int i = 0; i < 16; i++) {
        id[2 * i] = digits[raw[i] >> 4];
        id[2 * i + 1] = digits[raw[i] & 15];
    }
    id[32] = '\0';
}

/* Creates (or completes) record `id` as new in `dir`, indexed by env and job. */
static void opened(struct history *h, const char *env, const char *job, const char *client,
                   const char *via, const char *dir, const char *status,
                   const char *file_name, const char *group, char id[HISTORY_ID_SIZE])
{
    struct put p = { 0 };

    if (!h) {
        id[0] = '\0';
        return;
    }
    if (!id[0])
        history_id_new(id);
    if (histrec_key(p.key, "r", id, NULL) < 0 || histrec_key(p.env_idx, "e", env, NULL) < 0 ||
        histrec_key(p.job_idx, "j", job, NULL) < 0) {
        h->stats.lost++;
        return;
    }
    put_begin(h, &p, id, env, job, status, false);
    put_field(&p, "dir", dir);
    put_field(&p, "env", env);
    put_field(&p, "job", job);
    put_field(&p, "client", client);
    put_field(&p, "via", via);
    put_field(&p, "file", file_name);
    put_field(&p, "group", group);
    if (strcmp(dir, "import") == 0 && receipts_for(h, job))
        put_field(&p, "cb", "1");
    put_send(h, &p);
}

void history_received(struct history *h, const char *env, const char *job,
                      const char *client, const char *via, const char *file_name,
                      char id[HISTORY_ID_SIZE])
{
    opened(h, env, job, client, via, "import", "Received", file_name, NULL, id);
}

void history_export_requested(struct history *h, const char *env, const char *job,
                              const char *client, const char *group,
                              char id[HISTORY_ID_SIZE])
{
    opened(h, env, job, client, "package", "export", "Requested", NULL, group, id);
}

/* The file went to D365 as `field` (msg or exec) `value`, now in `status`: recorded, the
 * id mapped for the status follow-up, which starts now. */
static void sent(struct history *h, const char *id, const char *env, const char *field,
                 const char *value, const char *status, uint64_t size, const char *sha256_hex)
{
    struct put p = { 0 };

    if (!h || !id[0])
        return;
    if (histrec_key(p.key, "r", id, NULL) < 0 || histrec_key(p.map, "m", env, value) < 0) {
        h->stats.lost++;
        return;
    }
    put_begin(h, &p, id, NULL, NULL, status, false);
    put_field(&p, field, value);
    put_field(&p, "sent", "@now");
    if (size || sha256_hex) /* a package export has neither until its download */
        put_num(&p, "size", size);
    put_field(&p, "sha256", sha256_hex);
    put_send(h, &p);
    histfollow_add(h->follow, id);
}

void history_sent(struct history *h, const char *id, const char *env, const char *msg_id,
                  uint64_t size, const char *sha256_hex)
{
    sent(h, id, env, "msg", msg_id, "Enqueued", size, sha256_hex);
}

void history_sent_exec(struct history *h, const char *id, const char *env,
                       const char *exec_id, uint64_t size, const char *sha256_hex)
{
    sent(h, id, env, "exec", exec_id, "Started", size, sha256_hex);
}

void history_set_exec_poll(struct history *h, const struct msgwait_opts *opts)
{
    if (h)
        histfollow_set_exec_poll(h->follow, opts);
}

static void failed(struct history *h, const char *id, const char *status, const char *code,
                   uint64_t size, const char *sha256_hex)
{
    struct put p = { 0 };

    if (!h || !id[0])
        return;
    if (histrec_key(p.key, "r", id, NULL) < 0) {
        h->stats.lost++;
        return;
    }
    put_begin(h, &p, id, NULL, NULL, status, true);
    put_field(&p, "error", code);
    if (size)
        put_num(&p, "size", size);
    put_field(&p, "sha256", sha256_hex);
    put_send(h, &p);
}

void history_failed(struct history *h, const char *id, const char *code, uint64_t size,
                    const char *sha256_hex)
{
    failed(h, id, "NotEnqueued", code, size, sha256_hex);
}

void history_export_failed(struct history *h, const char *id, const char *code)
{
    failed(h, id, "NotStarted", code, 0, NULL);
}

void history_status(struct history *h, const char *env, const char *msg_id,
                    const char *status, bool final)
{
    struct put p = { 0 };

    if (!h)
        return;
    if (histrec_key(p.key, "m", env, msg_id) < 0) {
        h->stats.lost++;
        return;
    }
    put_begin(h, &p, NULL, NULL, NULL, status, final);
    put_send(h, &p);
}

/* Starts a PUT on the export record of message `msg_id` (its id derived from env and
 * message id, so every instance names it alike). With `job`, the record is made whole
 * (direction, environment, job, message) and indexed if it was not. -1 when the keys do
 * not fit (counted lost). */
static int export_begin(struct history *h, struct put *p, const char *env, const char *job,
                        const char *msg_id, const char *status, bool final)
{
    if (histrec_export_id(env, msg_id, p->id) < 0 || histrec_key(p->key, "r", p->id, NULL) < 0 ||
        (job && (histrec_key(p->env_idx, "e", env, NULL) < 0 ||
                 histrec_key(p->job_idx, "j", job, NULL) < 0 ||
                 histrec_key(p->map, "m", env, msg_id) < 0))) {
        h->stats.lost++;
        return -1;
    }
    put_begin(h, p, p->id, job ? env : NULL, job, status, final);
    if (job) {
        put_field(p, "dir", "export");
        put_field(p, "env", env);
        put_field(p, "job", job);
        put_field(p, "msg", msg_id);
    }
    return 0;
}

void history_delivered(struct history *h, const char *env, const char *job,
                       const char *client, const char *msg_id, uint64_t size,
                       const char *sha256_hex)
{
    struct put p = { 0 };

    /* "?": a confirm (on another instance) may have come first; it stays the status */
    if (!h || export_begin(h, &p, env, job, msg_id, "?Delivered", false) < 0)
        return;
    put_field(&p, "delivered", "@now");
    put_field(&p, "-delivered_to", client);
    put_field(&p, "+deliveries", "1");
    put_num(&p, "size", size);
    put_field(&p, "sha256", sha256_hex);
    put_send(h, &p);
    if (receipts_for(h, job))
        histreceipt_unconfirmed(h->receipts, p.id);
}

void history_dequeued(struct history *h, const char *env, const char *job,
                      const char *client, const char *msg_id)
{
    struct put p = { 0 };

    if (!h || export_begin(h, &p, env, job, msg_id, "?Dequeued", false) < 0)
        return;
    put_field(&p, "via", "passthru");
    put_field(&p, "dequeued", "@now");
    put_field(&p, "-delivered_to", client);
    put_send(h, &p);
}

void history_package_delivered(struct history *h, const char *env, const char *exec_id,
                               const char *client, uint64_t size, const char *sha256_hex)
{
    struct put p = { 0 };

    if (!h)
        return;
    if (histrec_key(p.key, "m", env, exec_id) < 0) {
        h->stats.lost++;
        return;
    }
    put_begin(h, &p, NULL, NULL, NULL, NULL, false); /* the record the map names, if any */
    put_field(&p, "delivered", "@now");
    put_field(&p, "-delivered_to", client);
    put_field(&p, "+deliveries", "1");
    put_num(&p, "size", size);
    put_field(&p, "sha256", sha256_hex);
    put_send(h, &p);
}

void history_confirmed(struct history *h, const char *env, const char *job,
                       const char *msg_id, const char *client)
{
    struct put p = { 0 };

    if (!h || export_begin(h, &p, env, job, msg_id, "Confirmed", false) < 0)
        return;
    put_field(&p, "?confirmed", "@now");
    put_field(&p, "confirmed_by", client);
    put_send(h, &p);
}

void history_acked(struct history *h, const char *env, const char *job, const char *msg_id)
{
    struct put p = { 0 };

    if (!h || export_begin(h, &p, env, job, msg_id, "Acked", true) < 0)
        return;
    put_field(&p, "?acked", "@now");
    put_send(h, &p);
}

/* ---- reads ---- */

/* The API JSON of one HGETALL-shaped reply array (NULL: empty or unreadable). */
static json_t *fields_json(const redictReply *a)
{
    const char *names[64], *vals[64];
    size_t vlen[64], n = 0;

    if (!a || a->type != REDICT_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < a->elements && n < 64; i += 2) {
        if (a->element[i]->type != REDICT_REPLY_STRING ||
            a->element[i + 1]->type != REDICT_REPLY_STRING)
            continue;
        names[n] = a->element[i]->str;
        vals[n] = a->element[i + 1]->str;
        vlen[n++] = a->element[i + 1]->len;
    }
    return histrec_json(n, names, vals, vlen);
}

static json_t *page_json(const struct histrec_filter *f, const redictReply *r)
{
    json_t *records = json_array(), *o;
    char cursor[HISTREC_CURSOR_SIZE] = "";
    size_t i;
    bool more = r->elements > 0 && r->element[0]->type == REDICT_REPLY_INTEGER &&
                r->element[0]->integer == 1;

    for (i = 1; i < r->elements && json_array_size(records) < f->limit; i++) {
        const redictReply *e = r->element[i];
        if (e->type != REDICT_REPLY_ARRAY || e->elements != 3)
            continue;
        json_t *rec = fields_json(e->element[2]);
        if (rec && histrec_match(f, rec))
            json_array_append(records, rec);
        json_decref(rec);
        if (json_array_size(records) == f->limit || i + 1 == r->elements)
            histrec_cursor_encode(strtoll(e->element[1]->str, NULL, 10), e->element[0]->str,
                                  cursor);
    }
    if (i >= r->elements && !more)
        cursor[0] = '\0';
    o = json_pack("{s:o}", "records", records);
    if (o)
        json_object_set_new(o, "next_cursor", cursor[0] ? json_string(cursor) : json_null());
    return o;
}

static bool is_str(const redictReply *r)
{
    return r && r->type == REDICT_REPLY_STRING;
}

/* Adds one "<job>\t<status>" count of an environment's day hash to jobs[job].counts. */
static void today_count(json_t *jobs, const redictReply *field, const redictReply *value)
{
    const char *tab = is_str(field) ? strrchr(field->str, '\t') : NULL;
    char job[256];
    json_t *j;

    if (!tab || !is_str(value) || (size_t)(tab - field->str) >= sizeof job)
        return;
    snprintf(job, sizeof job, "%.*s", (int)(tab - field->str), field->str);
    if ((j = json_object_get(jobs, job)))
        json_object_set_new(json_object_get(j, "counts"), tab + 1,
                            json_integer(strtoll(value->str, NULL, 10)));
}

/* {"date", "time_zone": "UTC", "jobs": {job: {"counts": {status: n}, "last_ms"}}} from
 * the TODAY script's reply; NULL when it is not that shape. */
static json_t *today_json(const redictReply *r)
{
    json_t *jobs, *o;
    const redictReply *counts, *last;

    if (r->elements != 3 || !is_str(r->element[0]) || r->element[1]->type != REDICT_REPLY_ARRAY ||
        r->element[2]->type != REDICT_REPLY_ARRAY || !(jobs = json_object()))
        return NULL;
    counts = r->element[1];
    last = r->element[2];
    for (size_t i = 0; i < last->elements; i++) {
        const redictReply *e = last->element[i];
        if (e->type != REDICT_REPLY_ARRAY || e->elements != 2 || !is_str(e->element[0]) ||
            !is_str(e->element[1]))
            continue;
        json_object_set_new(jobs, e->element[0]->str,
                            json_pack("{s:{}, s:o}", "counts", "last_ms",
                                      e->element[1]->str[0]
                                          ? json_integer(strtoll(e->element[1]->str, NULL, 10))
                                          : json_null()));
    }
    for (size_t i = 0; i < counts->elements; i++) {
        const redictReply *e = counts->element[i];
        if (e->type != REDICT_REPLY_ARRAY || e->elements != 2 ||
            e->element[1]->type != REDICT_REPLY_ARRAY)
            continue;
        for (size_t k = 0; k + 1 < e->element[1]->elements; k += 2)
            today_count(jobs, e->element[1]->element[k], e->element[1]->element[k + 1]);
    }
    o = json_pack("{s:s, s:s, s:o}", "date", r->element[0]->str, "time_zone", "UTC", "jobs",
                  jobs);
    return o;
}

static void on_read(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct history_op *op = arg;
    json_t *result = NULL;
    bool ok = res == RCONN_OK && reply->type == REDICT_REPLY_ARRAY;

    if (ok)
        result = op->today ? today_json(reply)
                 : op->one ? fields_json(reply)
                           : page_json(&op->f, reply);
    if (op->cb)
        op->cb(op->arg, ok && (op->one || result) ? 0 : -1, result);
    json_decref(result);
    free(op);
}

void history_cancel(struct history_op *op)
{
    if (op)
        op->cb = NULL;
}

static struct history_op *op_new(struct history *h, history_done *cb, void *arg)
{
    struct history_op *op = h ? calloc(1, sizeof *op) : NULL;

    if (op) {
        op->h = h;
        op->cb = cb;
        op->arg = arg;
    }
    return op;
}

struct history_op *history_get(struct history *h, const char *id, history_done *cb,
                               void *arg)
{
    struct history_op *op = op_new(h, cb, arg);
    char key[HISTREC_KEY_SIZE];

    if (!op)
        return NULL;
    op->one = true;
    if (histrec_key(key, "r", id, NULL) < 0 ||
        rconn_command(h->rc, on_read, op, (int)h->conf->history.write_timeout_ms, "HGETALL %s",
                      key) < 0) {
        free(op);
        return NULL;
    }
    return op;
}

struct history_op *history_page(struct history *h, const char *const *jobs, size_t n_jobs,
                                const struct histrec_filter *f, history_done *cb, void *arg)
{
    struct history_op *op = n_jobs ? op_new(h, cb, arg) : NULL;
    char (*keys)[HISTREC_KEY_SIZE] = op ? calloc(n_jobs, HISTREC_KEY_SIZE) : NULL;
    const char **argv = keys ? calloc(n_jobs + 5, sizeof *argv) : NULL;
    char max[32], min[32], budget[16];
    unsigned scan = f->limit * 4;
    int rc = -1;

    if (!argv)
        goto out;
    op->f = *f;
    for (size_t i = 0; i < n_jobs; i++) {
        if (histrec_key(keys[i], "j", jobs[i], NULL) < 0)
            goto out;
        argv[i] = keys[i];
    }
    if (f->has_cursor)
        snprintf(max, sizeof max, "%" PRId64, f->cursor_score);
    else if (f->until_ms)
        snprintf(max, sizeof max, "%" PRId64, f->until_ms);
    else
        snprintf(max, sizeof max, "+inf");
    if (f->since_ms)
        snprintf(min, sizeof min, "%" PRId64, f->since_ms);
    else
        snprintf(min, sizeof min, "-inf");
    scan = scan < PAGE_SCAN_MIN ? PAGE_SCAN_MIN : scan > PAGE_SCAN_MAX ? PAGE_SCAN_MAX : scan;
    snprintf(budget, sizeof budget, "%u", scan);
    argv[n_jobs] = HISTREC_PREFIX;
    argv[n_jobs + 1] = max;
    argv[n_jobs + 2] = f->has_cursor ? f->cursor_id : "";
    argv[n_jobs + 3] = min;
    argv[n_jobs + 4] = budget;
    rc = rconn_evalv(h->rc, &h->scripts[HISTLUA_PAGE], on_read, op,
                     (int)h->conf->history.write_timeout_ms, (int)n_jobs, (int)n_jobs + 5,
                     argv, NULL);
out:
    free(argv);
    free(keys);
    if (rc < 0) {
        free(op);
        return NULL;
    }
    return op;
}

struct history_op *history_today(struct history *h, history_done *cb, void *arg)
{
    struct history_op *op = op_new(h, cb, arg);
    const struct conf *c = h ? h->conf : NULL;
    const char **argv = op ? calloc(3 + c->n_envs + c->n_jobs, sizeof *argv) : NULL;
    char n[16];
    size_t argc = 0;
    int rc = -1;

    if (!argv)
        goto out;
    op->today = true;
    snprintf(n, sizeof n, "%zu", c->n_envs);
    argv[argc++] = HISTREC_TODAY;
    argv[argc++] = HISTREC_JOB_INDEX;
    argv[argc++] = n;
    for (size_t i = 0; i < c->n_envs; i++)
        argv[argc++] = c->envs[i].name;
    for (size_t i = 0; i < c->n_jobs; i++)
        argv[argc++] = c->jobs[i].name;
    rc = rconn_evalv(h->rc, &h->scripts[HISTLUA_TODAY], on_read, op,
                     (int)h->conf->history.write_timeout_ms, 0, (int)argc, argv, NULL);
out:
    free(argv);
    if (rc < 0) {
        free(op);
        return NULL;
    }
    return op;
}

void history_errors(struct history *h, const char *id, const char *exec_id,
                    const char *errors)
{
    struct put p = { 0 };

    if (!h || histrec_key(p.key, "r", id, NULL) < 0)
        return;
    put_begin(h, &p, id, NULL, NULL, NULL, false);
    put_field(&p, "exec", exec_id);
    put_field(&p, "errors", errors);
    put_send(h, &p);
}

void history_unfollowed(struct history *h, const char *id)
{
    history_note(h, id, "follow", "expired");
}

void history_polled(struct history *h, const char *id)
{
    history_note(h, id, "+npolls", "1");
}

void history_replayed(struct history *h, const char *id)
{
    history_note(h, id, "+idem", "1");
}

void history_note(struct history *h, const char *id, const char *field, const char *value)
{
    struct put p = { 0 };

    if (!h || histrec_key(p.key, "r", id, NULL) < 0)
        return;
    put_begin(h, &p, id, NULL, NULL, NULL, false);
    put_field(&p, field, value);
    put_send(h, &p);
}
