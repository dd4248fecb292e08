/* simconf: JSON -> struct simconf with defaults and validation. See simconf.h. */
#include "simconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "simguid.h"

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -1;
}

static char *dup_str(const json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

static int parse_fed(const json_t *j, struct simconf_fed *f, char *err, size_t cap)
{
    const json_t *jwks = json_object_get(j, "jwks");
    f->issuer = dup_str(json_object_get(j, "issuer"));
    f->subject = dup_str(json_object_get(j, "subject"));
    f->audience = dup_str(json_object_get(j, "audience"));
    if (!f->audience)
        f->audience = strdup("api://AzureADTokenExchange");
    if (!f->issuer || !f->subject || !json_is_array(json_object_get(jwks, "keys")))
        return fail(err, cap, "tenants[].apps[].federated[] needs issuer and subject strings "
                    "and jwks {\"keys\": [...]}");
    f->jwks = json_deep_copy(jwks);
    return 0;
}

static int parse_feds(const json_t *j, struct simconf_app *a, char *err, size_t cap)
{
    const json_t *feds = json_object_get(j, "federated");
    if (feds && !json_is_array(feds))
        return fail(err, cap, "tenants[].apps[].federated must be an array");
    a->nfed = json_array_size(feds);
    a->fed = calloc(a->nfed + 1, sizeof(*a->fed));
    for (size_t i = 0; i < a->nfed; i++)
        if (parse_fed(json_array_get(feds, i), &a->fed[i], err, cap) != 0)
            return -1;
    return 0;
}

static int parse_app(const json_t *j, struct simconf_app *a, char *err, size_t cap)
{
    if (!json_is_string(json_object_get(j, "client_id")))
        return fail(err, cap, "tenants[].apps[].client_id must be a string");
    a->client_id = dup_str(json_object_get(j, "client_id"));
    a->secret = dup_str(json_object_get(j, "secret"));
    a->certificate = dup_str(json_object_get(j, "certificate"));
    a->user = dup_str(json_object_get(j, "user"));
    a->object_id = dup_str(json_object_get(j, "object_id"));
    a->secret_expired = json_is_true(json_object_get(j, "secret_expired"));
    a->managed_identity = json_is_true(json_object_get(j, "managed_identity"));
    a->system_assigned = json_is_true(json_object_get(j, "system_assigned"));
    if (parse_feds(j, a, err, cap) != 0)
        return -1;
    if (!a->object_id) {
        char g[SIMGUID_LEN + 1];
        simguid_new(g);
        a->object_id = strdup(g);
    }
    return 0;
}

static int parse_tenant(const json_t *j, struct simconf_tenant *t, char *err, size_t cap)
{
    const json_t *apps = json_object_get(j, "apps");
    if (!json_is_string(json_object_get(j, "id")))
        return fail(err, cap, "tenants[].id must be a string");
    t->id = dup_str(json_object_get(j, "id"));
    if (apps && !json_is_array(apps))
        return fail(err, cap, "tenants[].apps must be an array");
    t->napps = json_array_size(apps);
    t->apps = calloc(t->napps + 1, sizeof(*t->apps));
    for (size_t i = 0; i < t->napps; i++)
        if (parse_app(json_array_get(apps, i), &t->apps[i], err, cap) != 0)
            return -1;
    return 0;
}

static int parse_job(const json_t *j, struct simconf_job *job, char *err, size_t cap)
{
    const char *id = json_string_value(json_object_get(j, "activity_id"));
    const char *dir = json_string_value(json_object_get(j, "direction"));
    const json_t *apps = json_object_get(j, "apps");
    if (!id || simguid_parse(id, strlen(id), job->id) != 0)
        return fail(err, cap, "jobs[].activity_id must be a GUID");
    if (!dir || (strcmp(dir, "import") != 0 && strcmp(dir, "export") != 0))
        return fail(err, cap, "jobs[].direction must be \"import\" or \"export\"");
    job->is_export = strcmp(dir, "export") == 0;
    job->entity = dup_str(json_object_get(j, "entity"));
    if (apps && !json_is_array(apps))
        return fail(err, cap, "jobs[].apps must be an array of client ids");
    job->napps = json_array_size(apps);
    job->apps = calloc(job->napps + 1, sizeof(char *));
    for (size_t i = 0; i < job->napps; i++) {
        job->apps[i] = dup_str(json_array_get(apps, i));
        if (!job->apps[i])
            return fail(err, cap, "jobs[].apps must be an array of client ids");
    }
    return 0;
}

struct numkey {
    const char *name;
    size_t off;
    int is_double; /* 0 long, 1 double, 2 long long */
    double min;
};

#define NK(n, f, t, m) {n, offsetof(struct simconf, f), t, m}
static const struct numkey numkeys[] = {
    NK("token_lifetime", token_lifetime, 0, 1),
    NK("visibility_timeout", visibility_timeout, 0, 0),
    NK("retention_secs", retention_secs, 0, 0),
    NK("enqueued_secs", enqueued_secs, 1, 0),
    NK("processing_secs", processing_secs, 1, 0),
    NK("max_enqueue_bytes", max_enqueue_bytes, 2, 0),
    NK("import_package_secs", import_package_secs, 1, 0),
    NK("export_secs", export_secs, 1, 0),
    NK("exec_not_found_secs", exec_not_found_secs, 1, 0),
    NK("package_bytes", package_bytes, 2, 0),
    NK("write_sas_secs", write_sas_secs, 0, -86400),
    NK("read_sas_secs", read_sas_secs, 0, -86400),
};

static int parse_numbers(const json_t *doc, struct simconf *c, char *err, size_t cap)
{
    for (size_t i = 0; i < sizeof(numkeys) / sizeof(numkeys[0]); i++) {
        const json_t *v = json_object_get(doc, numkeys[i].name);
        if (!v)
            continue;
        if (!json_is_number(v) || json_number_value(v) < numkeys[i].min)
            return fail(err, cap, "%s must be a number >= %g", numkeys[i].name, numkeys[i].min);
        char *p = (char *)c + numkeys[i].off;
        if (numkeys[i].is_double == 1)
            *(double *)p = json_number_value(v);
        else if (numkeys[i].is_double == 2)
            *(long long *)p = (long long)json_number_value(v);
        else
            *(long *)p = (long)json_number_value(v);
    }
    return 0;
}

/* Reads an enum-like string key; returns the index in `names` or -1 (error written). */
static int pick(const json_t *doc, const char *key, const char *const *names, int dflt,
                char *err, size_t cap)
{
    const json_t *v = json_object_get(doc, key);
    if (!v)
        return dflt;
    for (int i = 0; names[i]; i++)
        if (json_is_string(v) && strcmp(json_string_value(v), names[i]) == 0)
            return i;
    return fail(err, cap, "%s has an unknown value", key);
}

static int parse_switches(const json_t *doc, struct simconf *c, char *err, size_t cap)
{
    static const char *const redel[] = {"keep", "change", NULL};
    static const char *const loc[] = {"https-self", "http-port80", NULL};
    static const char *const spell[] = {"docs", "internal", NULL};
    static const char *const outc[] = {"auto", "ok", "errors", NULL};
    static const char *const pkg[] = {"Succeeded", "PartiallySucceeded", "Failed", NULL};
    int a = pick(doc, "redelivery", redel, 0, err, cap);
    int b = pick(doc, "download_location", loc, 0, err, cap);
    int s = pick(doc, "status_spelling", spell, 0, err, cap);
    int o = pick(doc, "import_outcome", outc, 0, err, cap);
    int p = pick(doc, "package_outcome", pkg, 0, err, cap);
    if (a < 0 || b < 0 || s < 0 || o < 0 || p < 0)
        return -1;
    c->redelivery_change = a;
    c->location = (enum simconf_location)b;
    c->status_internal = s;
    c->import_outcome = (enum simconf_outcome)o;
    c->package_outcome = strdup(pkg[p]);
    c->chunked_downloads = json_is_true(json_object_get(doc, "chunked_downloads"));
    return 0;
}

static int parse_azurite(const json_t *doc, struct simconf *c, char *err, size_t cap)
{
    const json_t *az = json_object_get(doc, "azurite");
    if (!az || json_is_null(az))
        return 0;
    c->az_endpoint = dup_str(json_object_get(az, "endpoint"));
    c->az_name = dup_str(json_object_get(az, "name"));
    c->az_key = dup_str(json_object_get(az, "key"));
    if (!c->az_endpoint || !c->az_name || !c->az_key)
        return fail(err, cap, "azurite needs endpoint, name and key strings");
    return 0;
}

static const char *const known_keys[] = {
    "audience", "tenant", "tenants", "jobs", "token_lifetime", "visibility_timeout",
    "retention_secs", "enqueued_secs", "processing_secs", "max_enqueue_bytes",
    "import_package_secs", "export_secs", "exec_not_found_secs", "package_bytes", "redelivery",
    "download_location", "status_spelling", "import_outcome", "package_outcome",
    "chunked_downloads", "azurite", "write_sas_secs", "read_sas_secs", "identity_header",
    "service_protection", NULL};

static int check_keys(const json_t *doc, char *err, size_t cap)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)doc, key, v) {
        int ok = 0;
        for (int i = 0; known_keys[i]; i++)
            ok |= strcmp(key, known_keys[i]) == 0;
        if (!ok)
            return fail(err, cap, "unknown config key \"%s\"", key);
    }
    return 0;
}

static void defaults(struct simconf *c)
{
    c->token_lifetime = 3599;
    c->visibility_timeout = 1800;
    c->retention_secs = 7 * 24 * 3600;
    c->enqueued_secs = 1;
    c->processing_secs = 1;
    c->max_enqueue_bytes = 32LL * 1024 * 1024;
    c->import_package_secs = 1;
    c->export_secs = 1;
    c->package_bytes = 4096;
    c->write_sas_secs = 1800;
    c->read_sas_secs = 3600;
    simspl_conf_defaults(&c->spl);
}

static int parse_lists(const json_t *doc, struct simconf *c, char *err, size_t cap)
{
    const json_t *tenants = json_object_get(doc, "tenants");
    const json_t *jobs = json_object_get(doc, "jobs");
    if ((tenants && !json_is_array(tenants)) || (jobs && !json_is_array(jobs)))
        return fail(err, cap, "tenants and jobs must be arrays");
    c->ntenants = json_array_size(tenants);
    c->tenants = calloc(c->ntenants + 1, sizeof(*c->tenants));
    for (size_t i = 0; i < c->ntenants; i++)
        if (parse_tenant(json_array_get(tenants, i), &c->tenants[i], err, cap) != 0)
            return -1;
    c->njobs = json_array_size(jobs);
    c->jobs = calloc(c->njobs + 1, sizeof(*c->jobs));
    for (size_t i = 0; i < c->njobs; i++)
        if (parse_job(json_array_get(jobs, i), &c->jobs[i], err, cap) != 0)
            return -1;
    return 0;
}

struct simconf *simconf_from_json(const json_t *doc, char *err, size_t cap)
{
    struct simconf *c = calloc(1, sizeof(*c));
    if (!c || !json_is_object(doc)) {
        fail(err, cap, "config must be a JSON object");
        goto bad;
    }
    defaults(c);
    if (check_keys(doc, err, cap) || parse_numbers(doc, c, err, cap) ||
        parse_switches(doc, c, err, cap) || parse_azurite(doc, c, err, cap) ||
        parse_lists(doc, c, err, cap) ||
        simspl_conf_parse(json_object_get(doc, "service_protection"), &c->spl, err, cap))
        goto bad;
    c->audience = dup_str(json_object_get(doc, "audience"));
    c->tenant = dup_str(json_object_get(doc, "tenant"));
    c->identity_header = dup_str(json_object_get(doc, "identity_header"));
    if (!c->tenant) {
        fail(err, cap, "tenant (the environment's tenant id) is required");
        goto bad;
    }
    return c;
bad:
    simconf_free(c);
    return NULL;
}

void simconf_free(struct simconf *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->tenants && i < c->ntenants; i++) {
        for (size_t k = 0; k < c->tenants[i].napps; k++) {
            struct simconf_app *a = &c->tenants[i].apps[k];
            free(a->client_id);
            free(a->secret);
            free(a->certificate);
            free(a->user);
            free(a->object_id);
            for (size_t f = 0; f < a->nfed; f++) {
                free(a->fed[f].issuer);
                free(a->fed[f].subject);
                free(a->fed[f].audience);
                json_decref(a->fed[f].jwks);
            }
            free(a->fed);
        }
        free(c->tenants[i].apps);
        free(c->tenants[i].id);
    }
    for (size_t i = 0; c->jobs && i < c->njobs; i++) {
        for (size_t k = 0; k < c->jobs[i].napps; k++)
            free(c->jobs[i].apps[k]);
        free(c->jobs[i].apps);
        free(c->jobs[i].entity);
    }
    free(c->tenants);
    free(c->jobs);
    free(c->audience);
    free(c->tenant);
    free(c->az_endpoint);
    free(c->az_name);
    free(c->az_key);
    free(c->package_outcome);
    free(c->identity_header);
    free(c);
}

const struct simconf_tenant *simconf_tenant(const struct simconf *c, const char *id)
{
    for (size_t i = 0; i < c->ntenants; i++)
        if (strcasecmp(c->tenants[i].id, id) == 0)
            return &c->tenants[i];
    return NULL;
}

const struct simconf_app *simconf_app(const struct simconf_tenant *t, const char *client_id)
{
    for (size_t i = 0; t && i < t->napps; i++)
        if (strcasecmp(t->apps[i].client_id, client_id) == 0)
            return &t->apps[i];
    return NULL;
}

const struct simconf_app *simconf_identity(const struct simconf *c, const char *client_id)
{
    const struct simconf_tenant *t = simconf_tenant(c, c->tenant);
    for (size_t i = 0; t && i < t->napps; i++) {
        const struct simconf_app *a = &t->apps[i];
        if (a->managed_identity && (client_id ? strcasecmp(a->client_id, client_id) == 0
                                              : a->system_assigned))
            return a;
    }
    return NULL;
}

const struct simconf_job *simconf_job(const struct simconf *c, const char *guid)
{
    for (size_t i = 0; i < c->njobs; i++)
        if (strcmp(c->jobs[i].id, guid) == 0)
            return &c->jobs[i];
    return NULL;
}

int simconf_job_allows(const struct simconf_job *j, const char *client_id)
{
    for (size_t i = 0; i < j->napps; i++)
        if (strcasecmp(j->apps[i], client_id) == 0)
            return 1;
    return 0;
}
