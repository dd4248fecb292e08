/* d365stats: per-environment counters of the calls to D365 and their fixed label sets. */
#include "d365stats.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const ops[D365STATS_OPS] = {
    "enqueue", "dequeue", "ack", "jobstatus", "download", "import_from_package",
    "export_to_package", "get_azure_write_url", "get_execution_status",
    "get_exported_package_url", "dmf_other", "odata", "other",
};

static const int codes[D365STATS_CODES - 2] = {
    200, 201, 202, 204, 400, 401, 403, 404, 408, 409, 412, 413, 429, 500, 502, 503, 504,
};

static const char *const code_names[D365STATS_CODES] = {
    "200", "201", "202", "204", "400", "401", "403", "404", "408", "409", "412", "413",
    "429", "500", "502", "503", "504", "other", "error",
};

struct d365stats *d365stats_new(size_t cap)
{
    struct d365stats *s = calloc(1, sizeof *s + cap * sizeof s->env[0]);

    if (s)
        s->cap = cap;
    return s;
}

void d365stats_free(struct d365stats *s)
{
    free(s);
}

struct d365stats_env *d365stats_env(struct d365stats *s, const char *name)
{
    size_t n = atomic_load_explicit(&s->n, memory_order_relaxed);

    for (size_t i = 0; i < n; i++)
        if (strcmp(s->env[i].name, name) == 0)
            return &s->env[i];
    if (n == s->cap || strlen(name) >= D365STATS_NAME_MAX)
        return NULL;
    snprintf(s->env[n].name, sizeof s->env[n].name, "%s", name);
    atomic_store_explicit(&s->n, n + 1, memory_order_release);
    return &s->env[n];
}

static bool starts(const char *p, size_t len, const char *pre)
{
    size_t n = strlen(pre);
    return len >= n && strncasecmp(p, pre, n) == 0;
}

/* The action name after "Microsoft.Dynamics.DataEntities." of a DMF action path. */
static enum d365stats_op dmf_action(const char *a, size_t len)
{
    static const struct { const char *name; enum d365stats_op op; } map[] = {
        { "ImportFromPackage", D365_OP_IMPORT_FROM_PACKAGE },
        { "ExportToPackage", D365_OP_EXPORT_TO_PACKAGE },
        { "GetAzureWriteUrl", D365_OP_GET_AZURE_WRITE_URL },
        { "GetExecutionSummaryStatus", D365_OP_GET_EXECUTION_STATUS },
        { "GetExportedPackageUrl", D365_OP_GET_EXPORTED_PACKAGE_URL },
    };

    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (starts(a, len, map[i].name))
            return map[i].op; /* ...Async counts as the same operation */
    return D365_OP_DMF_OTHER;
}

enum d365stats_op d365stats_op(const char *path_query)
{
    static const char dmf[] = "/data/DataManagementDefinitionGroups/"
                              "Microsoft.Dynamics.DataEntities.";
    static const char *const conn[] = { "enqueue/", "dequeue/", "ack/", "jobstatus/",
                                        "download/" };
    const char *p = path_query;
    size_t len = strcspn(p, "?");

    if (starts(p, len, "/en/")) {
        p += 3;
        len -= 3;
    }
    if (starts(p, len, "/api/connector/")) {
        for (int i = 0; i < 5; i++)
            if (starts(p + 15, len - 15, conn[i]))
                return (enum d365stats_op)(D365_OP_ENQUEUE + i);
        return D365_OP_OTHER;
    }
    if (starts(p, len, dmf))
        return dmf_action(p + sizeof dmf - 1, len - (sizeof dmf - 1));
    if (starts(p, len, "/data/") || (len == 5 && starts(p, len, "/data")))
        return D365_OP_ODATA;
    return D365_OP_OTHER;
}

unsigned d365stats_code_index(int status)
{
    if (status <= 0)
        return D365STATS_CODES - 1;
    for (unsigned i = 0; i < D365STATS_CODES - 2; i++)
        if (codes[i] == status)
            return i;
    return D365STATS_CODES - 2;
}

const char *d365stats_op_name(unsigned op)
{
    return op < D365STATS_OPS ? ops[op] : "other";
}

const char *d365stats_code_name(unsigned i)
{
    return i < D365STATS_CODES ? code_names[i] : "other";
}

static const char *const finals[D365STATS_FINALS] = {
    "Processed", "ProcessedWithErrors", "PreProcessingError", "PostProcessingFailed",
    "Succeeded", "PartiallySucceeded", "Failed", "Canceled", "other",
};

unsigned d365stats_final_index(const char *status)
{
    for (unsigned i = 0; status && i < D365STATS_FINALS - 1; i++)
        if (strcmp(finals[i], status) == 0)
            return i;
    return D365STATS_FINALS - 1;
}

const char *d365stats_final_name(unsigned i)
{
    return i < D365STATS_FINALS ? finals[i] : "other";
}

const char *d365stats_kind_name(unsigned kind)
{
    return kind == 0 ? "message" : "execution";
}
