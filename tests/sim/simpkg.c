/* simpkg: package API executions. See simpkg.h and reference §4.
 *
 *   export: created --(exec_not_found window: 400 "not found")--> NotRun/Executing
 *           --(export_secs elapsed and package uploaded)--> package_outcome
 *   import: created --(HEAD of packageUrl in a worker, import_package_secs)--> outcome | Failed
 */
#include "simpkg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sas.h"
#include "simblob.h"
#include "simguid.h"
#include "simjson.h"
#include "simodata.h"
#include "simworker.h"

#define CONTAINER "dmf"

struct exec {
    char id[160];
    char entity[128];
    int is_export;
    double created, done_at;
    char outcome[24];      /* Succeeded | PartiallySucceeded | Failed, when checked == 1 */
    int checked;           /* worker: 0 running, 1 ok, -1 failed */
    char failure[256];
    char blob[80];         /* export package blob */
    int keys_state, staging_state; /* error files: 0 none, 1 uploading, 2 ready, -1 failed */
    char keys_blob[80], staging_blob[80];
    struct exec *next;
};

struct simpkg {
    struct sim *s;            /* borrowed */
    struct simworker *w;      /* owned */
    struct exec *execs;       /* owned */
    int import_running;       /* a synchronous ImportFromPackage is in progress */
    struct simworker_job *sync_job; /* its job once the worker finished (waits for the timer) */
    int container_ready;
};

struct simpkg *simpkg_new(struct sim *s)
{
    struct simpkg *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->s = s;
    p->w = simworker_new(s->base);
    if (!p->w) {
        free(p);
        return NULL;
    }
    return p;
}

void simpkg_clear(struct simpkg *p)
{
    while (p->execs) {
        struct exec *e = p->execs;
        p->execs = e->next;
        free(e);
    }
}

void simpkg_free(struct simpkg *p)
{
    if (!p)
        return;
    if (p->sync_job && p->sync_job->worker_done)
        simworker_job_free(p->sync_job); /* otherwise still on the worker's list */
    simworker_free(p->w);
    simpkg_clear(p);
    free(p);
}

static struct exec *find(struct simpkg *p, const char *id)
{
    for (struct exec *e = p->execs; id && e; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

static const char *param(const json_t *params, const char *name)
{
    const char *v = simjson_str_ci(params, name);
    return v ? v : "";
}

static int have_azurite(struct sim *s, struct simhttp_req *req, const char *action)
{
    if (s->conf->az_endpoint || (s->conf->blob_self && strcmp(action, "GetAzureWriteUrl") == 0))
        return 1;
    simodata_reply_error(req, 400, action, "Azure storage is not configured for this environment.");
    return 0;
}

static void fill_account(struct sim *s, struct simworker_job *j)
{
    snprintf(j->endpoint, sizeof(j->endpoint), "%s", s->conf->az_endpoint);
    snprintf(j->account, sizeof(j->account), "%s", s->conf->az_name);
    snprintf(j->key, sizeof(j->key), "%s", s->conf->az_key);
}

/* A SAS URL for dmf/<blob>; "" when it cannot be made. Uses the real clock: Azurite checks
 * st/se against its own. */
static json_t *sas_url(struct sim *s, const char *blob, const char *perms, long before, long after)
{
    char url[SAS_URL_MAX];
    struct sas_account a = {s->conf->az_endpoint, s->conf->az_name, s->conf->az_key};
    time_t now = time(NULL);
    if (!a.endpoint || sas_blob_url(url, sizeof(url), &a, CONTAINER, blob, perms, now - before,
                                    now + after) != 0)
        return json_string("");
    return json_string(url);
}

static struct exec *exec_new(struct simpkg *p, const char *given, const char *group, int is_export,
                             double duration)
{
    struct exec *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    double now = sim_now(p->s);
    if (given && *given) {
        snprintf(e->id, sizeof(e->id), "%s", given);
    } else {
        char ts[32], hex[33];
        sim_iso8601(now, 0, ts, sizeof(ts));
        ts[19] = '\0';
        simguid_hex32(hex);
        snprintf(e->id, sizeof(e->id), "%s-%s-%s", *group ? group : "Fosim", ts, hex);
    }
    snprintf(e->entity, sizeof(e->entity), "%s", *group ? group : "Fosim");
    snprintf(e->outcome, sizeof(e->outcome), "%s", p->s->conf->package_outcome);
    e->is_export = is_export;
    e->created = now;
    e->done_at = now + duration;
    e->next = p->execs;
    p->execs = e;
    return e;
}

static void job_done_common(struct simworker_job *j)
{
    struct simpkg *p = j->owner;
    struct exec *e = find(p, j->exec_id);
    if (e) {
        e->checked = j->rc == 0 ? 1 : -1;
        if (j->rc != 0)
            snprintf(e->failure, sizeof(e->failure), "%s", j->err);
    }
}

/* ---- GetAzureWriteUrl (§4.5) ---- */

static void reply_write_url(struct sim *s, struct simhttp_req *req, const char *name)
{
    char g[SIMGUID_LEN + 1], blobid[48];
    simguid_new(g);
    for (char *c = g; *c; c++)
        *c = (char)(*c >= 'a' && *c <= 'f' ? *c - 32 : *c);
    snprintf(blobid, sizeof(blobid), "{%s}", g);
    long after = s->conf->write_sas_secs; /* < 0: already expired (a knob for clients) */
    long before = after < 0 ? 300 - after : 300;
    json_t *url = s->conf->blob_self ? simblob_sas_url(s, *name ? name : g, "rw", before, after)
                                     : sas_url(s, *name ? name : g, "rw", before, after);
    json_t *inner = json_pack("{s:s, s:o}", "BlobId", blobid, "BlobUrl", url);
    char *txt = json_dumps(inner, JSON_COMPACT);
    json_decref(inner);
    simodata_reply_value(s, req, "Edm.String", json_string(txt ? txt : ""));
    free(txt);
}

static void container_done(struct simworker_job *j)
{
    struct simpkg *p = j->owner;
    p->container_ready = j->rc == 0;
    if (j->rc == 0)
        reply_write_url(p->s, j->req, j->path);
    else
        simodata_reply_error(j->req, 500, "GetAzureWriteUrl", j->err);
    simworker_job_free(j);
}

void simpkg_get_azure_write_url(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    const char *name = param(params, "uniqueFileName");
    if (!have_azurite(s, req, "GetAzureWriteUrl"))
        return;
    if (s->pkg->container_ready || s->conf->blob_self) {
        reply_write_url(s, req, name);
        return;
    }
    struct simworker_job *j = simworker_job_new(SW_CONTAINER);
    if (!j) {
        simodata_reply_error(req, 500, "GetAzureWriteUrl", "out of memory");
        return;
    }
    fill_account(s, j);
    snprintf(j->path, sizeof(j->path), "%s", name); /* carried to the reply */
    j->req = req;
    j->owner = s->pkg;
    if (simworker_start(s->pkg->w, j, container_done) != 0) {
        simworker_job_free(j);
        simodata_reply_error(req, 500, "GetAzureWriteUrl", "cannot start a worker");
    }
}

/* ---- ImportFromPackage (§4.7) ---- */

static void import_maybe_reply(struct simworker_job *j)
{
    if (!j->worker_done || !j->timer_done)
        return;
    struct simpkg *p = j->owner;
    struct exec *e = find(p, j->exec_id);
    p->import_running = 0;
    p->sync_job = NULL;
    if (e)
        e->done_at = sim_now(p->s); /* the answer marks the end, whatever the timers said */
    if (j->rc != 0) {
        if (e)
            e->checked = -1;
        simodata_reply_error(j->req, 400, "ImportFromPackage", j->err);
    } else {
        if (e)
            e->checked = 1;
        simodata_reply_value(p->s, j->req, "Edm.String", json_string(j->exec_id));
    }
    simworker_job_free(j);
}

static void import_worker_done(struct simworker_job *j)
{
    job_done_common(j);
    import_maybe_reply(j);
}

static void import_timer(evutil_socket_t fd, short what, void *arg)
{
    struct simworker_job *j = arg;
    j->timer_done = 1;
    import_maybe_reply(j);
}

static struct simworker_job *head_job(struct sim *s, const struct exec *e, const char *url)
{
    struct simworker_job *j = simworker_job_new(SW_HEAD_URL);
    if (!j)
        return NULL;
    snprintf(j->url, sizeof(j->url), "%s", url);
    snprintf(j->exec_id, sizeof(j->exec_id), "%s", e->id);
    j->owner = s->pkg;
    return j;
}

/* The synchronous import: answers after import_package_secs and the blob check, and refuses
 * to run next to another one, like D365 (reference §4.7, §7.8). */
void simpkg_import_from_package(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    const char *action = "ImportFromPackage";
    const char *url = param(params, "packageUrl");
    if (!*url) {
        simodata_reply_error(req, 400, action, "The parameter 'packageUrl' is missing.");
        return;
    }
    if (s->pkg->import_running) {
        sim_count(s, NULL, "import_overlaps", 1);
        simodata_reply_error(req, 400, action, "Deadlock, where one or more users have "
                             "simultaneously locked the whole table or part of it.");
        return;
    }
    struct exec *e = exec_new(s->pkg, param(params, "executionId"),
                              param(params, "definitionGroupId"), 0, s->conf->import_package_secs);
    struct simworker_job *j = e ? head_job(s, e, url) : NULL;
    if (j) {
        j->req = req;
        j->timer = evtimer_new(s->base, import_timer, j);
    }
    if (!j || !j->timer || simworker_start(s->pkg->w, j, import_worker_done) != 0) {
        simworker_job_free(j);
        simodata_reply_error(req, 500, action, "cannot start the import");
        return;
    }
    s->pkg->import_running = 1;
    s->pkg->sync_job = j;
    double d = s->conf->import_package_secs;
    struct timeval tv = {(time_t)d, (suseconds_t)((d - (double)(time_t)d) * 1e6)};
    evtimer_add(j->timer, &tv);
}

static void async_done(struct simworker_job *j)
{
    job_done_common(j);
    simworker_job_free(j);
}

void simpkg_import_from_package_async(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    const char *url = param(params, "packageUrl");
    if (!*url) {
        simodata_reply_error(req, 400, "ImportFromPackageAsync", "The parameter 'packageUrl' is missing.");
        return;
    }
    struct exec *e = exec_new(s->pkg, param(params, "executionId"),
                              param(params, "definitionGroupId"), 0, s->conf->import_package_secs);
    struct simworker_job *j = e ? head_job(s, e, url) : NULL;
    if (!j || simworker_start(s->pkg->w, j, async_done) != 0) {
        simworker_job_free(j);
        simodata_reply_error(req, 500, "ImportFromPackageAsync", "cannot start the import");
        return;
    }
    simodata_reply_value(s, req, "Edm.String", json_string(e->id));
}

/* ---- ExportToPackage(Async) (§4.8) ---- */

void simpkg_export_to_package(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    const char *action = simodata_action(req);
    if (!have_azurite(s, req, action))
        return;
    struct exec *e = exec_new(s->pkg, param(params, "executionId"),
                              param(params, "definitionGroupId"), 1, s->conf->export_secs);
    struct simworker_job *j = e ? simworker_job_new(SW_EXPORT) : NULL;
    if (!j) {
        simodata_reply_error(req, 500, action, "out of memory");
        return;
    }
    char g[SIMGUID_LEN + 1];
    simguid_new(g);
    snprintf(e->blob, sizeof(e->blob), "%s.zip", g);
    fill_account(s, j);
    snprintf(j->blob, sizeof(j->blob), "%s", e->blob);
    snprintf(j->exec_id, sizeof(j->exec_id), "%s", e->id);
    snprintf(j->entity, sizeof(j->entity), "%s", e->entity);
    sim_data_path(s, "package", j->path, sizeof(j->path));
    j->bytes = s->conf->package_bytes;
    j->owner = s->pkg;
    if (simworker_start(s->pkg->w, j, async_done) != 0) {
        simworker_job_free(j);
        simodata_reply_error(req, 500, action, "cannot start the export");
        return;
    }
    simodata_reply_value(s, req, "Edm.String", json_string(e->id));
}

/* ---- status and URLs (§4.8-§4.10) ---- */

/* The summary status at now, or NULL when "Execution details were not found". */
static const char *status_of(const struct sim *s, const struct exec *e, double now)
{
    if (e->is_export && now < e->created + s->conf->exec_not_found_secs)
        return NULL;
    if (e->checked == 0 || now < e->done_at)
        return now < e->created + (e->done_at - e->created) / 4 ? "NotRun" : "Executing";
    return e->checked < 0 ? "Failed" : e->outcome;
}

static int has_errors(const struct sim *s, const struct exec *e, double now)
{
    const char *st = status_of(s, e, now);
    return st && (strcmp(st, "PartiallySucceeded") == 0 || strcmp(st, "Failed") == 0);
}

static struct exec *exec_param(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    const char *id = param(params, "executionId");
    struct exec *e = find(s->pkg, id);
    if (!e || !status_of(s, e, sim_now(s))) {
        char msg[300];
        snprintf(msg, sizeof(msg), "Execution details were not found for execution id: %s", id);
        simodata_reply_error(req, 400, simodata_action(req), msg);
        return NULL;
    }
    return e;
}

void simpkg_get_execution_summary_status(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    struct exec *e = exec_param(s, req, params);
    if (e)
        simodata_reply_value(s, req, "Edm.String", json_string(status_of(s, e, sim_now(s))));
}

void simpkg_get_exported_package_url(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    struct exec *e = find(s->pkg, param(params, "executionId"));
    const char *st = e && e->is_export ? status_of(s, e, sim_now(s)) : NULL;
    int ready = st && (strcmp(st, "Succeeded") == 0 || strcmp(st, "PartiallySucceeded") == 0);
    long after = s->conf->read_sas_secs; /* < 0: already expired (a knob for clients) */
    simodata_reply_value(s, req, "Edm.String",
                         ready ? sas_url(s, e->blob, "r", after < 0 ? 300 - after : 300, after)
                               : json_string(""));
}

static void upload_done(struct simworker_job *j)
{
    struct exec *e = find(j->owner, j->exec_id);
    if (e) {
        int *state = j->bytes ? &e->keys_state : &e->staging_state;
        *state = j->rc == 0 ? 2 : -1;
    }
    simworker_job_free(j);
}

/* Starts uploading an error file for e; keys = 1 for the target keys file. */
static void start_error_file(struct sim *s, struct exec *e, int keys)
{
    int *state = keys ? &e->keys_state : &e->staging_state;
    char *blob = keys ? e->keys_blob : e->staging_blob;
    struct simworker_job *j = s->conf->az_endpoint ? simworker_job_new(SW_UPLOAD_TEXT) : NULL;
    if (!j)
        return;
    char g[SIMGUID_LEN + 1];
    simguid_new(g);
    snprintf(blob, 80, "%s-%s.%s", keys ? "ErrorKeys" : "StagingErrors", g, keys ? "txt" : "csv");
    fill_account(s, j);
    snprintf(j->blob, sizeof(j->blob), "%s", blob);
    snprintf(j->exec_id, sizeof(j->exec_id), "%s", e->id);
    sim_data_path(s, "errfile", j->path, sizeof(j->path));
    j->text = strdup(keys ? "RECID\r\n5637144576\r\n"
                          : "CUSTGROUPID,Error\r\nFOSIM,Field 'Customer group' is invalid\r\n");
    j->bytes = keys; /* tells upload_done which file this was */
    j->owner = s->pkg;
    if (simworker_start(s->pkg->w, j, upload_done) != 0) {
        simworker_job_free(j);
        return;
    }
    *state = 1;
}

void simpkg_generate_error_keys_file(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    struct exec *e = exec_param(s, req, params);
    if (!e)
        return;
    int errs = !e->is_export && has_errors(s, e, sim_now(s));
    if (errs && e->keys_state == 0)
        start_error_file(s, e, 1);
    simodata_reply_value(s, req, "Edm.Boolean", json_boolean(errs));
}

void simpkg_get_error_keys_file_url(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    struct exec *e = find(s->pkg, param(params, "executionId"));
    simodata_reply_value(s, req, "Edm.String", e && e->keys_state == 2
                         ? sas_url(s, e->keys_blob, "r", 300, 3600) : json_string(""));
}

void simpkg_get_staging_error_file_url(struct sim *s, struct simhttp_req *req, const json_t *params)
{
    struct exec *e = find(s->pkg, param(params, "executionId"));
    if (e && !e->is_export && e->staging_state == 0 && has_errors(s, e, sim_now(s)))
        start_error_file(s, e, 0);
    simodata_reply_value(s, req, "Edm.String", e && e->staging_state == 2
                         ? sas_url(s, e->staging_blob, "r", 300, 3600) : json_string(""));
}

void simpkg_get_execution_summary_page_url(struct sim *s, struct simhttp_req *req,
                                           const json_t *params)
{
    char url[512];
    snprintf(url, sizeof(url), "%s/?mi=DMFExecutionSummary&executionid=%s", s->base_url,
             param(params, "executionId"));
    simodata_reply_value(s, req, "Edm.String", json_string(url));
}

char *simpkg_execution_errors(struct sim *s, const char *exec, double now)
{
    struct exec *e = find(s->pkg, exec);
    if (!e)
        return NULL;
    if (!has_errors(s, e, now))
        return strdup("[]");
    json_t *a = json_pack("[{s:s, s:s, s:s}]", "RecordId", "5637144576", "Field", "CUSTGROUPID",
                          "ErrorMessage", e->failure[0] ? e->failure
                          : "Field 'Customer group' is invalid (simulated package error).");
    char *txt = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return txt;
}
