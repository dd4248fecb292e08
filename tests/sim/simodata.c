/* simodata: OData action routing, envelope and the message-status actions. */
#include "simodata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "simbearer.h"
#include "simjson.h"
#include "simpkg.h"
#include "simqueue.h"

#define PREFIX "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
#define BODY_CAP (1024 * 1024)

typedef void (*action_fn)(struct sim *s, struct simhttp_req *req, const json_t *params);

static void head(struct sim *s, struct simhttp_req *req);
static void handle(struct sim *s, struct simhttp_req *req);
static void get_message_status(struct sim *s, struct simhttp_req *req, const json_t *p);
static void get_execution_id(struct sim *s, struct simhttp_req *req, const json_t *p);
static void get_execution_errors(struct sim *s, struct simhttp_req *req, const json_t *p);

struct action {
    struct sim_route route; /* first member: req->route_data points here */
    const char *name;
    action_fn fn;
};

#define A(n, f) {{"odata:" n, head, handle}, n, f}
static const struct action actions[] = {
    A("GetMessageStatus", get_message_status),
    A("GetExecutionIdByMessageId", get_execution_id),
    A("GetExecutionErrors", get_execution_errors),
    A("GetAzureWriteUrl", simpkg_get_azure_write_url),
    A("ImportFromPackage", simpkg_import_from_package),
    A("ImportFromPackageAsync", simpkg_import_from_package_async),
    A("ExportToPackage", simpkg_export_to_package),
    A("ExportToPackageAsync", simpkg_export_to_package),
    A("GetExecutionSummaryStatus", simpkg_get_execution_summary_status),
    A("GetExportedPackageUrl", simpkg_get_exported_package_url),
    A("GenerateImportTargetErrorKeysFile", simpkg_generate_error_keys_file),
    A("GetImportTargetErrorKeysFileUrl", simpkg_get_error_keys_file_url),
    A("GetImportStagingErrorFileUrl", simpkg_get_staging_error_file_url),
    A("GetExecutionSummaryPageUrl", simpkg_get_execution_summary_page_url),
};
static const struct action unknown = {{"odata:unknown", head, handle}, "unknown", NULL};

const struct sim_route *simodata_route(const char *path)
{
    size_t n = strlen(PREFIX);
    if (strncmp(path, PREFIX, n) != 0)
        return strncmp(path, "/data/", 6) == 0 ? &unknown.route : NULL;
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
        if (strcmp(path + n, actions[i].name) == 0)
            return &actions[i].route;
    return &unknown.route;
}

const char *simodata_action(const struct simhttp_req *req)
{
    return ((const struct action *)req->route_data)->name;
}

void simodata_reply_value(struct sim *s, struct simhttp_req *req, const char *edm, json_t *value)
{
    char ctx[256];
    snprintf(ctx, sizeof(ctx), "%s/data/$metadata#%s", s->base_url, edm);
    json_t *body = json_object();
    json_object_set_new(body, "@odata.context", json_string(ctx));
    json_object_set_new(body, "value", value ? value : json_null());
    sim_d365_headers(req);
    simhttp_add_header(req, "OData-Version", "4.0");
    sim_reply_json(req, 200, "application/json; odata.metadata=minimal", body);
}

void simodata_reply_error(struct simhttp_req *req, int status, const char *action, const char *msg)
{
    char inner[1024];
    snprintf(inner, sizeof(inner),
             "Exception occurred while executing action %s on Entity "
             "DataManagementDefinitionGroup: %s", action, msg);
    json_t *body = json_pack(
        "{s:{s:s, s:s, s:{s:s, s:s, s:s}}}", "error", "code", "", "message",
        "An error has occurred.", "innererror", "message", inner, "type",
        "System.InvalidOperationException", "stacktrace",
        "   at Microsoft.Dynamics.Platform.Integration.Services.OData.Action.ActionInvokable."
        "Invoke()\r\n   at Microsoft.Dynamics.Platform.Integration.Services.OData.Update."
        "UpdateProcessor.ActionInvocation(...)");
    sim_d365_headers(req);
    simhttp_add_header(req, "OData-Version", "4.0");
    sim_reply_json(req, status, "application/json; odata.metadata=minimal", body);
}

static void head(struct sim *s, struct simhttp_req *req)
{
    struct simbearer_who who;
    const char *why;
    if (req->replied)
        return;
    enum simbearer_verdict v = simbearer_check(s, req, &who, &why);
    if (v != SIMBEARER_OK)
        simbearer_reply(req, v, why);
    req->body_cap = BODY_CAP;
}

static void handle(struct sim *s, struct simhttp_req *req)
{
    const struct action *a = req->route_data;
    if (!a->fn) {
        simodata_reply_error(req, 404, "unknown", "No HTTP resource was found that matches the request URI.");
        return;
    }
    if (strcmp(req->method, "POST") != 0) {
        simodata_reply_error(req, 405, a->name, "The action must be invoked with POST.");
        return;
    }
    json_t *params = req->body_len ? simjson_lenient_load(req->body, req->body_len) : json_object();
    if (!json_is_object(params)) {
        simodata_reply_error(req, 400, a->name, "The request body is not valid JSON.");
    } else {
        a->fn(s, req, params);
    }
    json_decref(params);
}

/* ---- message actions (§4.3, §4.4) ---- */

static struct simqueue_msg *message_param(struct sim *s, const json_t *p, const char *name)
{
    const char *id = simjson_str_ci(p, name);
    if (!id)
        return NULL;
    while (*id == '"')
        id++;
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", id);
    char *q = strchr(buf, '"');
    if (q)
        *q = '\0';
    return simqueue_find(s->queue, buf);
}

static const char *status_name(const struct sim *s, const struct simqueue_msg *m, double now)
{
    static const char *const exp_docs[] = {"Enqueued", "Dequeued", "Dequeued", "Acked"};
    static const char *const exp_int[] = {"Enqueued", "Dequeued", "Downloaded", "Acked"};
    static const char *const imp[] = {"Enqueued", "Processing", "Processed", "ProcessedWithErrors"};
    if (m->is_export)
        return (s->conf->status_internal ? exp_int : exp_docs)[m->state];
    return imp[simqueue_import_status(m, now, s->conf->enqueued_secs, s->conf->processing_secs)];
}

static void get_message_status(struct sim *s, struct simhttp_req *req, const json_t *p)
{
    struct simqueue_msg *m = message_param(s, p, "messageId");
    if (!m) {
        simodata_reply_error(req, 400, "GetMessageStatus", "The message was not found.");
        return;
    }
    simodata_reply_value(s, req, "Edm.String", json_string(status_name(s, m, sim_now(s))));
}

static void get_execution_id(struct sim *s, struct simhttp_req *req, const json_t *p)
{
    struct simqueue_msg *m = message_param(s, p, "_messageId");
    if (!m) {
        simodata_reply_error(req, 400, "GetExecutionIdByMessageId", "The message was not found.");
        return;
    }
    simodata_reply_value(s, req, "Edm.String", json_string(m->execution_id));
}

/* The error list for an import message, as the STRING D365 returns. */
static char *message_errors(const struct sim *s, const struct simqueue_msg *m, double now)
{
    if (m->is_export || simqueue_import_status(m, now, s->conf->enqueued_secs,
                                               s->conf->processing_secs) != SQI_ERRORS)
        return strdup("[]");
    json_t *a = json_pack("[{s:s, s:s, s:s}]", "RecordId", "5637144576", "Field", "CUSTGROUPID",
                          "ErrorMessage", "Field 'Customer group' is invalid (FOSIM-ERROR in the "
                          "source file).");
    char *txt = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return txt;
}

static void get_execution_errors(struct sim *s, struct simhttp_req *req, const json_t *p)
{
    const char *exec = simjson_str_ci(p, "executionId");
    if (!exec) {
        simodata_reply_error(req, 400, "GetExecutionErrors", "The parameter 'executionId' is missing.");
        return;
    }
    double now = sim_now(s);
    char *txt = simpkg_execution_errors(s, exec, now);
    for (struct simqueue_msg *m = NULL; !txt && (m = simqueue_by_execution(s->queue, exec));) {
        txt = message_errors(s, m, now);
        break;
    }
    if (!txt) { /* RIS passes a message id here (reference §4.4) */
        struct simqueue_msg *m = simqueue_find(s->queue, exec);
        txt = m ? message_errors(s, m, now) : strdup("[]");
    }
    simodata_reply_value(s, req, "Edm.String", json_string(txt));
    free(txt);
}
