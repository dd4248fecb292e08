/* simconf: fosim's configuration, parsed from JSON into plain structs and validated.
 * Invariant: a struct simconf is immutable once built; runtime changes build a new one. */
#ifndef SIMCONF_H
#define SIMCONF_H

#include <stddef.h>
#include <jansson.h>

#include "simspl.h"

/* A federated identity credential on an app: tokens from `issuer` for `subject` with
 * `audience` are accepted as its client assertion, verified with `jwks`. */
struct simconf_fed {
    char *issuer;   /* owned */
    char *subject;  /* owned */
    char *audience; /* owned; default api://AzureADTokenExchange */
    json_t *jwks;   /* owned reference: {"keys": [RSA JWKs]} */
};

struct simconf_app {
    char *client_id;   /* owned */
    char *secret;      /* owned; NULL = no secret credential */
    char *certificate; /* owned; PEM file path for client assertions, or NULL */
    char *user;        /* owned; D365 user the app is mapped to, NULL = unmapped (403) */
    char *object_id;   /* owned; service principal object id (token "oid") */
    int secret_expired;
    struct simconf_fed *fed; /* owned array: federated identity credentials */
    size_t nfed;
    int managed_identity;    /* a managed identity: served by the IMDS / App Service routes */
    int system_assigned;     /* the one served when no client_id is asked for */
};

struct simconf_tenant {
    char *id;                 /* owned, canonical GUID or name */
    struct simconf_app *apps; /* owned array */
    size_t napps;
};

struct simconf_job {
    char id[37];   /* canonical activity GUID */
    int is_export;
    char *entity;  /* owned, may be NULL */
    char **apps;   /* owned: client ids on the job's authorization policy */
    size_t napps;
};

enum simconf_location { SIMCONF_LOC_SELF, SIMCONF_LOC_HTTP80 };
enum simconf_outcome { SIMCONF_OUT_AUTO, SIMCONF_OUT_OK, SIMCONF_OUT_ERRORS };

struct simconf {
    char *audience;               /* owned; NULL = the simulator's base URL */
    char *tenant;                 /* owned: the environment's tenant id */
    struct simconf_tenant *tenants; /* owned */
    size_t ntenants;
    struct simconf_job *jobs;     /* owned */
    size_t njobs;
    long token_lifetime;          /* seconds */
    long visibility_timeout;      /* seconds */
    long retention_secs;          /* blob retention */
    int redelivery_change;        /* 1: a redelivered message gets a new CorrelationId */
    enum simconf_location location;
    double enqueued_secs;         /* Enqueued -> Processing */
    double processing_secs;       /* Processing -> Processed */
    long long max_enqueue_bytes;  /* 413 above */
    enum simconf_outcome import_outcome;
    int status_internal;          /* GetMessageStatus spellings: 0 docs, 1 internal */
    int chunked_downloads;
    char *az_endpoint, *az_name, *az_key; /* owned; Azurite account or NULL */
    double import_package_secs;   /* ImportFromPackage answers after this */
    double export_secs;           /* export execution runs this long */
    double exec_not_found_secs;   /* "Execution details were not found" window */
    long long package_bytes;      /* size of generated export packages */
    long write_sas_secs;          /* GetAzureWriteUrl's SAS ends this long from now (< 0: expired) */
    long read_sas_secs;           /* GetExportedPackageUrl's SAS likewise */
    char *package_outcome;        /* owned: Succeeded | PartiallySucceeded | Failed */
    char *identity_header;        /* owned: X-IDENTITY-HEADER the App Service route wants */
    struct simspl_conf spl;       /* service protection (§5); off unless configured */
};

/* Builds a validated config from `doc` (borrowed). On error returns NULL and writes a
 * message naming the offending key into err. Free with simconf_free. */
struct simconf *simconf_from_json(const json_t *doc, char *err, size_t errcap);
void simconf_free(struct simconf *c);

/* Lookups; results are borrowed from c. */
const struct simconf_tenant *simconf_tenant(const struct simconf *c, const char *id);
const struct simconf_app *simconf_app(const struct simconf_tenant *t, const char *client_id);
/* The managed identity of the environment's tenant with this client id (NULL: the
 * system-assigned one), or NULL. */
const struct simconf_app *simconf_identity(const struct simconf *c, const char *client_id);
const struct simconf_job *simconf_job(const struct simconf *c, const char *guid);
/* 1 if client_id is on the job's authorization policy. */
int simconf_job_allows(const struct simconf_job *j, const char *client_id);

#endif
