/* simconnector: connector API handlers. See simconnector.h and reference §3. */
#include "simconnector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "simbearer.h"
#include "simfault.h"
#include "simguid.h"
#include "simjson.h"
#include "simmemq.h"
#include "simqueue.h"
#include "simurl.h"

enum op { OP_ENQUEUE, OP_DEQUEUE, OP_DOWNLOAD, OP_ACK, OP_JOBSTATUS };

static void head(struct sim *s, struct simhttp_req *req);
static void handle(struct sim *s, struct simhttp_req *req);
static const char *const opnames[] = {"enqueue", "dequeue", "download", "ack", "jobstatus"};
static const struct sim_route routes[] = {
    {"enqueue", head, handle}, {"dequeue", head, handle}, {"download", head, handle},
    {"ack", head, handle}, {"jobstatus", head, handle},
};

struct target {
    enum op op;
    const char *seg; /* raw activity segment inside req->path */
    size_t seglen;
    char guid[37];
    int guid_ok;
};

/* Splits "[/en]/api/connector/<op>/<activity>". Returns 0 or -1. */
static int split(const char *path, struct target *t)
{
    if (strncasecmp(path, "/en/", 4) == 0)
        path += 3;
    if (strncmp(path, "/api/connector/", 15) != 0)
        return -1;
    path += 15;
    const char *slash = strchr(path, '/');
    if (!slash)
        return -1;
    for (int i = 0; i < 5; i++) {
        if (strlen(opnames[i]) == (size_t)(slash - path) &&
            strncasecmp(path, opnames[i], (size_t)(slash - path)) == 0) {
            t->op = (enum op)i;
            t->seg = slash + 1;
            t->seglen = strlen(slash + 1);
            t->guid_ok = simguid_parse(t->seg, t->seglen, t->guid) == 0;
            return 0;
        }
    }
    return -1;
}

const struct sim_route *simconnector_route(const char *path)
{
    struct target t;
    return split(path, &t) == 0 ? &routes[t.op] : NULL;
}

static void reply_message(struct simhttp_req *req, int status, const char *msg)
{
    sim_d365_headers(req);
    sim_reply_json(req, status, "application/json; charset=utf-8",
                   json_pack("{s:s}", "Message", msg));
}

static void head(struct sim *s, struct simhttp_req *req)
{
    struct target t;
    struct simbearer_who who;
    const char *why;
    if (req->replied || split(req->path, &t) != 0)
        return;
    enum simbearer_verdict v = simbearer_check(s, req, &who, &why);
    if (v != SIMBEARER_OK) {
        simbearer_reply(req, v, why);
        return;
    }
    const struct simconf_job *job = t.guid_ok ? simconf_job(s->conf, t.guid) : NULL;
    if (!job) {
        reply_message(req, 500, "An error has occurred.");
        return;
    }
    if (!simconf_job_allows(job, who.client_id)) {
        simbearer_reply(req, SIMBEARER_UNAUTHORIZED, "application not on the job's authorization policy");
        return;
    }
    if (t.op == OP_ENQUEUE) {
        char path[512];
        sim_data_path(s, "enqueue", path, sizeof(path));
        req->body_cap = (size_t)s->conf->max_enqueue_bytes;
        simhttp_sink_file(req, path);
        req->needle = "FOSIM-ERROR";
    } else if (t.op == OP_ACK) {
        req->body_cap = 64 * 1024;
    }
}

static void execution_id(const char *project, double now, char *out, size_t cap)
{
    char ts[32], hex[33];
    sim_iso8601(now, 0, ts, sizeof(ts));
    ts[19] = '\0'; /* drop the Z */
    simguid_hex32(hex);
    snprintf(out, cap, "%s-%s-%s", project, ts, hex);
}

static void enqueue(struct sim *s, struct simhttp_req *req, const struct simconf_job *job)
{
    char entity[512], company[64], body[48];
    if (req->body_too_large) {
        reply_message(req, 413, "Request Entity Too Large");
        return;
    }
    if (req->body_io_error || job->is_export) {
        unlink(req->body_path);
        reply_message(req, req->body_io_error ? 500 : 400, job->is_export
                      ? "The recurring job is an export job." : "An error has occurred.");
        return;
    }
    int has_entity = simurl_param(req->query, "entity", 1, entity, sizeof(entity)) == 1;
    int has_company = simurl_param(req->query, "company", 1, company, sizeof(company)) == 1;
    double now = sim_now(s);
    struct simqueue_msg *m = simqueue_add(s->queue, job->id, 0, req->body_path,
                                          (long long)req->body_len, has_entity ? entity : job->entity,
                                          has_company ? company : NULL,
                                          simhttp_header(req, "x-ms-dyn-externalidentifier"), now);
    if (!m) {
        reply_message(req, 500, "An error has occurred.");
        return;
    }
    m->lines = req->body_newlines;
    m->has_errors = s->conf->import_outcome == SIMCONF_OUT_ERRORS ||
                    (s->conf->import_outcome == SIMCONF_OUT_AUTO && req->needle_found);
    execution_id("FosimImport", now, m->execution_id, sizeof(m->execution_id));
    int n = snprintf(body, sizeof(body), "\"%s\"", m->id);
    sim_d365_headers(req);
    simhttp_reply(req, 200, "application/json; charset=utf-8", body, (size_t)n);
}

static json_t *location(struct sim *s, const struct target *t, const char *corr,
                        const char *blob)
{
    char url[1024], host[64];
    const char *base = s->base_url;
    if (s->conf->location == SIMCONF_LOC_HTTP80) {
        snprintf(host, sizeof(host), "%s", s->hostport);
        char *colon = strrchr(host, ':');
        if (colon)
            *colon = '\0';
        snprintf(url, sizeof(url), "http://%s:80", host);
        base = url;
    }
    char full[1200];
    snprintf(full, sizeof(full), "%s/api/connector/download/%.*s?correlation-id=%s&blob=%s",
             base, (int)t->seglen, t->seg, corr, blob);
    return json_string(full);
}

/* The dequeue answer: the six fields in D365's order. */
static void reply_dequeue(struct simhttp_req *req, const char *corr, const char *pop,
                          json_t *loc, int exists, const char *err, const char *last)
{
    json_t *j = json_object();
    json_object_set_new(j, "CorrelationId", json_string(corr));
    json_object_set_new(j, "PopReceipt", json_string(pop));
    json_object_set_new(j, "DownloadLocation", loc);
    json_object_set_new(j, "IsDownLoadFileExist", json_boolean(exists));
    json_object_set_new(j, "FileDownLoadErrorMessage", json_string(err));
    json_object_set_new(j, "LastDequeueDateTime", last ? json_string(last) : json_null());
    sim_reply_json(req, 200, "application/json; charset=utf-8", j);
}

static void dequeue(struct sim *s, struct simhttp_req *req, const struct target *t)
{
    double now = sim_now(s);
    struct simqueue_msg *m = simqueue_dequeue(s->queue, t->guid, now,
                                              (double)s->conf->visibility_timeout,
                                              s->conf->redelivery_change);
    struct simmemq_msg mm;
    sim_d365_headers(req);
    if (!m && simmemq_dequeue(s->memq, t->guid, &mm) == 0) {
        int null_loc = simfault_take(s->faults, "dequeue", "null_location");
        reply_dequeue(req, mm.correlation, mm.pop,
                      null_loc ? json_null() : location(s, t, mm.correlation, mm.blob), 1, "",
                      NULL);
        return;
    }
    if (!m) {
        simhttp_reply(req, 204, NULL, NULL, 0);
        return;
    }
    int expired = simqueue_blob_expired(m, now, (double)s->conf->retention_secs);
    char last[40], err[200] = "";
    if (m->prev_dequeue > 0)
        sim_iso8601(m->prev_dequeue, 0, last, sizeof(last));
    if (expired)
        snprintf(err, sizeof(err), "The file for message %s no longer exists in blob storage.",
                 m->id);
    int null_loc = simfault_take(s->faults, "dequeue", "null_location");
    reply_dequeue(req, m->correlation, m->pop,
                  null_loc ? json_null() : location(s, t, m->correlation, m->blob), !expired, err,
                  m->prev_dequeue > 0 ? last : NULL);
}

/* A download of a message made on demand: `size` bytes of a fixed pattern. */
static void download_memory(struct simhttp_req *req, long long size)
{
    char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf) {
        simhttp_reply(req, 500, NULL, NULL, 0);
        return;
    }
    for (long long i = 0; i < size; i++)
        buf[i] = (char)('a' + i % 26);
    simhttp_reply(req, 200, "application/octet-stream", buf, (size_t)size);
    free(buf);
}

static void download(struct sim *s, struct simhttp_req *req)
{
    char blob[64];
    struct simqueue_msg *m = NULL;
    char corr[37];
    long long msize = -1;
    if (simurl_param(req->query, "blob", 1, blob, sizeof(blob)) == 1) {
        m = simqueue_find_blob(s->queue, blob);
        msize = m ? -1 : simmemq_blob_size(s->memq, blob, corr);
    }
    sim_d365_headers(req);
    if (msize >= 0) {
        sim_count(s, "downloads", corr, 1);
        download_memory(req, msize);
        return;
    }
    if (!m || !m->is_export ||
        simqueue_blob_expired(m, sim_now(s), (double)s->conf->retention_secs)) {
        simhttp_reply(req, 404, NULL, NULL, 0);
        return;
    }
    m->downloads++;
    sim_count(s, "downloads", m->id, 1);
    if (m->state == SQ_DEQUEUED)
        m->state = SQ_DOWNLOADED;
    if (s->conf->chunked_downloads) {
        struct simhttp_shape sh = req->shape;
        sh.chunked = 1;
        simhttp_set_shape(req, &sh);
    }
    simhttp_reply_file(req, 200, "application/octet-stream", m->path);
}

static void ack(struct sim *s, struct simhttp_req *req)
{
    json_t *b = req->body_too_large ? NULL : simjson_lenient_load(req->body, req->body_len);
    const char *corr = simjson_str_ci(b, "CorrelationId");
    const char *pop = simjson_str_ci(b, "PopReceipt");
    enum simqueue_ack a = corr && pop ? simqueue_ack(s->queue, corr, pop) : SQA_UNKNOWN;
    if (a == SQA_UNKNOWN && corr && pop) {
        enum simmemq_ack ma = simmemq_ack(s->memq, corr, pop);
        a = ma == SMQ_OK ? SQA_OK : ma == SMQ_ALREADY ? SQA_ALREADY : SQA_UNKNOWN;
    }
    json_decref(b);
    sim_count(s, NULL, "acks", 1);
    if (a == SQA_OK || a == SQA_ALREADY) {
        sim_d365_headers(req);
        simhttp_reply(req, 200, NULL, NULL, 0);
        return;
    }
    reply_message(req, 400, a == SQA_STALE
                  ? "The pop receipt does not match: the message was redelivered."
                  : "The message could not be found for the acknowledgement.");
}

int simconnector_job_state(const struct sim *s, const struct simqueue_msg *m, double now)
{
    if (m->is_export)
        return (int)m->state; /* Enqueued 0, Dequeued 1, Downloaded 2, Acked 3 */
    switch (simqueue_import_status(m, now, s->conf->enqueued_secs, s->conf->processing_secs)) {
    case SQI_ENQUEUED: return 0;
    case SQI_PROCESSING: return 4;
    case SQI_PROCESSED: return 5;
    default: return 6;
    }
}

static json_t *detail(const struct sim *s, const struct simqueue_msg *m, int state)
{
    char start[40], end[40];
    double done = m->created + s->conf->enqueued_secs + s->conf->processing_secs;
    sim_iso8601(m->created + s->conf->enqueued_secs, 0, start, sizeof(start));
    sim_iso8601(done, 0, end, sizeof(end));
    start[19] = end[19] = '\0';
    long long records = m->lines > 1 ? m->lines - 1 : 1, errs = m->has_errors ? 1 : 0;
    return json_pack("[{s:s?, s:s?, s:I, s:s, s:I, s:I, s:s, s:I, s:s, s:s, s:I}]", "EntityName",
                     m->entity, "Company", m->company, "StagingRecords", (json_int_t)records,
                     "StagingStatus", "Finished", "StagingErrorCount", (json_int_t)0,
                     "TargetRecords", (json_int_t)(records - errs), "TargetStatus",
                     errs ? "Error" : "Finished", "TargetErrorCount", (json_int_t)errs,
                     "ExecutionStartedDateTime", start, "ExecutionCompletedDateTime", end,
                     "TotalRecords", (json_int_t)records);
}

static void jobstatus(struct sim *s, struct simhttp_req *req)
{
    char id[128], created[40], done[40];
    struct simqueue_msg *m = NULL;
    if (simurl_param(req->query, "jobId", 1, id, sizeof(id)) == 1) {
        char *p = id, *q;
        while (*p == '"')
            p++;
        if ((q = strchr(p, '"')))
            *q = '\0';
        m = simqueue_find(s->queue, p);
    }
    if (!m) {
        reply_message(req, 400, "The job could not be found.");
        return;
    }
    double now = sim_now(s);
    int state = simconnector_job_state(s, m, now);
    int finished = !m->is_export && state >= 5;
    sim_iso8601(m->created, 0, created, sizeof(created));
    sim_iso8601(m->created + s->conf->enqueued_secs + s->conf->processing_secs, 0, done, sizeof(done));
    created[19] = done[19] = '\0';
    json_t *st = json_pack("{s:s, s:s, s:s?, s:s, s:s, s:s?, s:i}", "DataProject",
                           m->entity ? m->entity : "Fosim", "DataJobIdentifier", m->id,
                           "ExternalIdentifier", m->external_id, "ExecutionIdentifier",
                           m->execution_id[0] ? m->execution_id : m->id,
                           "DataJobStartedDateTime", created, "DataJobCompletedDateTime",
                           finished ? done : NULL, "DataJobState", state);
    json_t *j = json_pack("{s:o, s:s, s:o}", "DataJobStatus", st, "ExecutionLog", "",
                          "ExecutionDetail", finished ? detail(s, m, state) : json_null());
    sim_d365_headers(req);
    sim_reply_json(req, 200, "application/json; charset=utf-8", j);
}

static void handle(struct sim *s, struct simhttp_req *req)
{
    struct target t;
    split(req->path, &t);
    const struct simconf_job *job = simconf_job(s->conf, t.guid);
    if (!job) { /* config changed between head and body */
        reply_message(req, 500, "An error has occurred.");
        return;
    }
    const char *want = t.op == OP_ENQUEUE || t.op == OP_ACK ? "POST" : "GET";
    if (strcmp(req->method, want) != 0) {
        if (req->body_path)
            unlink(req->body_path);
        reply_message(req, 405, "The requested resource does not support this http method.");
        return;
    }
    switch (t.op) {
    case OP_ENQUEUE: enqueue(s, req, job); break;
    case OP_DEQUEUE: dequeue(s, req, &t); break;
    case OP_DOWNLOAD: download(s, req); break;
    case OP_ACK: ack(s, req); break;
    case OP_JOBSTATUS: jobstatus(s, req); break;
    }
}

struct simqueue_msg *simconnector_feed(struct sim *s, const char *job, const char *path,
                                       long long size)
{
    const struct simconf_job *j = simconf_job(s->conf, job);
    return simqueue_add(s->queue, job, 1, path, size, j ? j->entity : NULL, NULL, NULL,
                        sim_now(s));
}
