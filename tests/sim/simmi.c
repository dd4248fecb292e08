/* simmi: IMDS and App Service managed identity endpoints (see simmi.h). Error bodies follow
 * Microsoft's IMDS documentation ({"error", "error_description"}); the App Service shape
 * of a refused header is inferred. Every number in a success body is a decimal string. */
#include "simmi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "simtoken.h"
#include "simurl.h"

#define IMDS_PATH "/metadata/identity/oauth2/token"
#define APP_PATH "/msi/token"

static void handle(struct sim *s, struct simhttp_req *req);
static const struct sim_route route_imds = {"imds", NULL, handle};
static const struct sim_route route_app = {"msi", NULL, handle};

const struct sim_route *simmi_route(const char *path)
{
    if (strcmp(path, IMDS_PATH) == 0)
        return &route_imds;
    if (strcmp(path, APP_PATH) == 0)
        return &route_app;
    return NULL;
}

static void refuse(struct sim *s, struct simhttp_req *req, int status, const char *error,
                   const char *desc, const char *counter)
{
    sim_count(s, "identity_errors", counter, 1);
    sim_reply_json(req, status, "application/json; charset=utf-8",
                   json_pack("{s:s, s:s}", "error", error, "error_description", desc));
}

static void issue(struct sim *s, struct simhttp_req *req, const struct simconf_app *app,
                  const char *aud, int app_service)
{
    char *jwt = simtoken_mint(s, app, s->conf->tenant, aud);
    long now = (long)sim_now(s), life = s->conf->token_lifetime;
    char in[24], on[24], nb[24];

    if (!jwt) {
        simhttp_reply(req, 500, NULL, NULL, 0);
        return;
    }
    snprintf(in, sizeof(in), "%ld", life);
    snprintf(on, sizeof(on), "%ld", now + life);
    snprintf(nb, sizeof(nb), "%ld", now);
    json_t *body = app_service
        ? json_pack("{s:s, s:s, s:s, s:s, s:s}", "access_token", jwt, "expires_on", on,
                    "resource", aud, "token_type", "Bearer", "client_id", app->client_id)
        : json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "access_token", jwt,
                    "client_id", app->client_id, "expires_in", in, "expires_on", on,
                    "ext_expires_in", in, "not_before", nb, "resource", aud, "token_type",
                    "Bearer");
    free(jwt);
    sim_count(s, NULL, "tokens_total", 1);
    sim_count(s, "tokens_by_app", app->client_id, 1);
    sim_count(s, "identity_tokens", app_service ? "app_service" : "imds", 1);
    sim_reply_json(req, 200, "application/json; charset=utf-8", body);
}

/* The platform's own check: IMDS wants Metadata: true, App Service its secret header. */
static int caller_ok(struct sim *s, struct simhttp_req *req, int app_service)
{
    if (!app_service) {
        const char *m = simhttp_header(req, "Metadata");
        if (m && strcasecmp(m, "true") == 0)
            return 1;
        refuse(s, req, 400, "invalid_request", "Required metadata header not specified",
               "no_metadata_header");
        return 0;
    }
    const char *h = simhttp_header(req, "X-IDENTITY-HEADER");
    if (s->conf->identity_header && h && strcmp(h, s->conf->identity_header) == 0)
        return 1;
    refuse(s, req, 401, "unauthorized", "The X-IDENTITY-HEADER is missing or does not match "
           "IDENTITY_HEADER.", "bad_identity_header");
    return 0;
}

static void handle(struct sim *s, struct simhttp_req *req)
{
    int app_service = req->endpoint && strcmp(req->endpoint, "msi") == 0;
    char ver[32], resource[1024], client_id[256];
    int has_id;

    if (strcmp(req->method, "GET") != 0) {
        refuse(s, req, 405, "invalid_request", "Only GET is supported.", "method");
        return;
    }
    if (!caller_ok(s, req, app_service))
        return;
    if (simurl_param(req->query, "api-version", 0, ver, sizeof(ver)) != 1 ||
        strcmp(ver, app_service ? "2019-08-01" : "2018-02-01") != 0) {
        refuse(s, req, 400, "invalid_request", "Required query variable 'api-version' is "
               "missing or not supported", "api_version");
        return;
    }
    if (simurl_param(req->query, "resource", 0, resource, sizeof(resource)) != 1) {
        refuse(s, req, 400, "invalid_request", "Required query variable 'resource' is missing",
               "no_resource");
        return;
    }
    has_id = simurl_param(req->query, "client_id", 0, client_id, sizeof(client_id)) == 1;
    const struct simconf_app *app = simconf_identity(s->conf, has_id ? client_id : NULL);
    if (!app) {
        refuse(s, req, 400, "invalid_request", "Identity not found", "identity_not_found");
        return;
    }
    if (!simtoken_same_resource(resource, sim_audience(s))) {
        char desc[1400];
        snprintf(desc, sizeof(desc), "AADSTS500011: The resource principal named %.1000s was "
                 "not found in the tenant named %s.", resource, s->conf->tenant);
        refuse(s, req, 400, "invalid_resource", desc, "invalid_resource");
        return;
    }
    issue(s, req, app, resource, app_service);
}
