/* simctl: control API. See simctl.h and README.md for the endpoints. */
#include "simctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <unistd.h>

#include "simconnector.h"
#include "simblob.h"
#include "simfault.h"
#include "simguid.h"
#include "simjson.h"
#include "simpkg.h"
#include "simprotect.h"
#include "simmemq.h"
#include "simqueue.h"
#include "simurl.h"

#define EXPORT_CAP (8LL * 1024 * 1024 * 1024)
#define BULK_CAP (2LL * 1024 * 1024 * 1024)

static void head(struct sim *s, struct simhttp_req *req);
static void handle(struct sim *s, struct simhttp_req *req);
static const struct sim_route route = {"control", head, handle};

const struct sim_route *simctl_route(const char *path)
{
    return strncmp(path, "/_sim/", 6) == 0 ? &route : NULL;
}

/* "/_sim/exports/{activity}" (single, streamed) or ".../bulk"; writes the GUID. */
static int export_target(const char *path, char guid[37], int *bulk)
{
    if (strncmp(path, "/_sim/exports/", 14) != 0)
        return -1;
    const char *act = path + 14, *slash = strchr(act, '/');
    size_t n = slash ? (size_t)(slash - act) : strlen(act);
    *bulk = slash && strcmp(slash, "/bulk") == 0;
    if (slash && !*bulk)
        return -1;
    return simguid_parse(act, n, guid);
}

static void head(struct sim *s, struct simhttp_req *req)
{
    char guid[37], path[512];
    int bulk;
    req->body_cap = 1024 * 1024;
    if (strcmp(req->method, "POST") == 0 && export_target(req->path, guid, &bulk) == 0 && !bulk) {
        sim_data_path(s, "export", path, sizeof(path));
        simhttp_sink_file(req, path);
        req->body_cap = (size_t)EXPORT_CAP;
    }
}

static void reply_err(struct simhttp_req *req, int status, const char *msg)
{
    sim_reply_json(req, status, "application/json", json_pack("{s:s}", "error", msg));
}

static int is(const struct simhttp_req *req, const char *method, const char *path)
{
    return strcmp(req->method, method) == 0 && strcmp(req->path, path) == 0;
}

/* A copy of the config document with secrets replaced. */
static json_t *redacted_config(const struct sim *s)
{
    json_t *doc = json_deep_copy(s->conf_doc), *t, *a;
    size_t i, k;
    json_array_foreach(json_object_get(doc, "tenants"), i, t) {
        json_array_foreach(json_object_get(t, "apps"), k, a) {
            if (json_object_get(a, "secret"))
                json_object_set_new(a, "secret", json_string("***"));
        }
    }
    json_t *az = json_object_get(doc, "azurite");
    if (json_is_object(az) && json_object_get(az, "key"))
        json_object_set_new(az, "key", json_string("***"));
    json_object_set_new(doc, "effective_audience", json_string(sim_audience(s)));
    return doc;
}

static void config_patch(struct sim *s, struct simhttp_req *req)
{
    char err[256];
    json_t *patch = simjson_lenient_load(req->body, req->body_len);
    if (!patch || sim_reconfigure(s, patch, err, sizeof(err)) != 0) {
        reply_err(req, 400, patch ? err : "body must be JSON");
    } else {
        sim_reply_json(req, 200, "application/json", redacted_config(s));
    }
    json_decref(patch);
}

static void clock_set(struct sim *s, struct simhttp_req *req)
{
    json_t *b = simjson_lenient_load(req->body, req->body_len);
    json_t *adv = json_object_get(b, "advance"), *off = json_object_get(b, "offset");
    int ok = json_is_number(adv) || json_is_number(off);
    if (json_is_number(adv))
        s->clock_offset += json_number_value(adv);
    else if (json_is_number(off))
        s->clock_offset = json_number_value(off);
    json_decref(b);
    if (!ok) {
        reply_err(req, 400, "expected {\"advance\": seconds} or {\"offset\": seconds}");
        return;
    }
    sim_reply_json(req, 200, "application/json",
                   json_pack("{s:f, s:f}", "offset", s->clock_offset, "now", sim_now(s)));
}

static json_t *describe(const struct sim *s, const struct simqueue_msg *m)
{
    static const char *const st[] = {"Enqueued", "Dequeued", "Downloaded", "Acked"};
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:i, s:I, s:i, s:s, s:b}", "message_id",
                     m->id, "activity_id", m->job, "correlation_id", m->correlation, "blob",
                     m->blob, "state", m->is_export ? st[m->state] : "Import", "size",
                     (json_int_t)m->size, "dequeues", m->dequeues, "downloads",
                     (json_int_t)m->downloads, "job_state",
                     simconnector_job_state(s, m, sim_now(s)), "execution_id",
                     m->execution_id, "has_errors", m->has_errors);
}

static void export_one(struct sim *s, struct simhttp_req *req, const char *guid)
{
    if (!simconf_job(s->conf, guid)) {
        unlink(req->body_path);
        reply_err(req, 404, "no such job in the config");
        return;
    }
    struct simqueue_msg *m = simconnector_feed(s, guid, req->body_path, (long long)req->body_len);
    if (!m)
        reply_err(req, 500, "cannot add the message");
    else
        sim_reply_json(req, 200, "application/json", describe(s, m));
}

static int write_pattern(const char *path, long long size, long long seq)
{
    char buf[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -1;
    int n = snprintf(buf, sizeof(buf), "FOSIM export %lld\n", seq);
    for (size_t i = (size_t)n; i < sizeof(buf); i++)
        buf[i] = (char)('a' + i % 26);
    for (long long left = size; left > 0;) {
        size_t chunk = left < (long long)sizeof(buf) ? (size_t)left : sizeof(buf);
        if (write(fd, buf, chunk) != (ssize_t)chunk) {
            close(fd);
            return -1;
        }
        left -= (long long)chunk;
    }
    return close(fd);
}

/* bulk?memory=1: `count` messages made on demand at dequeue (simmemq), no files. */
static void export_memory(struct sim *s, struct simhttp_req *req, const char *guid,
                          long long count, long long size)
{
    if (!simconf_job(s->conf, guid) || simmemq_add(s->memq, guid, count, size) != 0) {
        reply_err(req, 400, "need a configured job, 1 <= count, at most 10^8 messages per "
                  "job, 16 jobs and size <= 1 MiB");
        return;
    }
    sim_reply_json(req, 200, "application/json",
                   json_pack("{s:I, s:b, s:I}", "count", (json_int_t)count, "memory", 1,
                             "left", (json_int_t)simmemq_left(s->memq)));
}

static void export_bulk(struct sim *s, struct simhttp_req *req, const char *guid)
{
    char v[32], path[512];
    long long count = simurl_param(req->query, "count", 0, v, sizeof(v)) == 1 ? atoll(v) : 1;
    long long size = simurl_param(req->query, "size", 0, v, sizeof(v)) == 1 ? atoll(v) : 1024;
    if (simurl_param(req->query, "memory", 0, v, sizeof(v)) == 1 && strcmp(v, "1") == 0) {
        export_memory(s, req, guid, count, size);
        return;
    }
    if (!simconf_job(s->conf, guid) || count < 1 || count > 100000 || size < 0 ||
        count * size > BULK_CAP) {
        reply_err(req, 400, "need a configured job, 1 <= count <= 100000, count*size <= 2 GiB");
        return;
    }
    json_t *ids = json_array();
    for (long long i = 0; i < count; i++) {
        sim_data_path(s, "export", path, sizeof(path));
        struct simqueue_msg *m = write_pattern(path, size, i) == 0
                                     ? simconnector_feed(s, guid, path, size) : NULL;
        if (!m) {
            json_decref(ids);
            reply_err(req, 500, "cannot write export files");
            return;
        }
        json_array_append_new(ids, json_string(m->id));
    }
    sim_reply_json(req, 200, "application/json",
                   json_pack("{s:I, s:o}", "count", (json_int_t)count, "message_ids", ids));
}

static void faults(struct sim *s, struct simhttp_req *req)
{
    char err[256];
    if (strcmp(req->method, "DELETE") == 0) {
        simfault_clear(s->faults);
        simhttp_reply(req, 204, NULL, NULL, 0);
        return;
    }
    if (strcmp(req->method, "GET") == 0) {
        sim_reply_json(req, 200, "application/json", simfault_list(s->faults));
        return;
    }
    json_t *rule = simjson_lenient_load(req->body, req->body_len);
    int rc = rule ? simfault_add(s->faults, rule, err, sizeof(err)) : -1;
    json_decref(rule);
    if (rc != 0)
        reply_err(req, 400, rule ? err : "body must be a JSON fault rule");
    else
        sim_reply_json(req, 200, "application/json", simfault_list(s->faults));
}

static void message(struct sim *s, struct simhttp_req *req)
{
    struct simqueue_msg *m = simqueue_find(s->queue, req->path + 15);
    if (!m)
        reply_err(req, 404, "no such message");
    else
        sim_reply_json(req, 200, "application/json", describe(s, m));
}

static void reset(struct sim *s, struct simhttp_req *req)
{
    sim_counters_reset(s);
    simfault_clear(s->faults);
    simqueue_clear(s->queue);
    simmemq_clear(s->memq);
    simpkg_clear(s->pkg);
    simblob_clear(s->blobs);
    simprotect_reset(s->protect);
    s->clock_offset = 0;
    s->revoked_below = 0;
    simhttp_reply(req, 204, NULL, NULL, 0);
}

static void handle(struct sim *s, struct simhttp_req *req)
{
    char guid[37];
    int bulk;
    if (strcmp(req->method, "POST") == 0 && export_target(req->path, guid, &bulk) == 0) {
        if (req->body_too_large)
            reply_err(req, 413, "export body too large");
        else if (bulk)
            export_bulk(s, req, guid);
        else
            export_one(s, req, guid);
        return;
    }
    if (strcmp(req->path, "/_sim/faults") == 0) {
        faults(s, req);
        return;
    }
    if (strcmp(req->method, "GET") == 0 && strncmp(req->path, "/_sim/messages/", 15) == 0) {
        message(s, req);
        return;
    }
    if (strcmp(req->method, "GET") == 0 && strncmp(req->path, "/_sim/blobs/", 12) == 0) {
        json_t *info = simblob_info(s, req->path + 12);
        if (info)
            sim_reply_json(req, 200, "application/json", info);
        else
            reply_err(req, 404, "the blob store never saw this blob");
        return;
    }
    if (req->body_too_large) {
        reply_err(req, 413, "control body too large");
    } else if (is(req, "GET", "/_sim/healthz")) {
        simhttp_reply(req, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (is(req, "GET", "/_sim/counters")) {
        sim_reply_json(req, 200, "application/json", json_incref(s->counters));
    } else if (is(req, "POST", "/_sim/reset")) {
        reset(s, req);
    } else if (is(req, "GET", "/_sim/config")) {
        sim_reply_json(req, 200, "application/json", redacted_config(s));
    } else if (is(req, "POST", "/_sim/config")) {
        config_patch(s, req);
    } else if (is(req, "POST", "/_sim/clock")) {
        clock_set(s, req);
    } else if (is(req, "POST", "/_sim/tokens/revoke")) {
        s->revoked_below = s->tokens_issued; /* every token issued so far */
        sim_reply_json(req, 200, "application/json",
                       json_pack("{s:I}", "revoked", (json_int_t)s->revoked_below));
    } else {
        reply_err(req, 404, "no such control endpoint");
    }
}
