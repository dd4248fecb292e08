/* simtoken: Entra ID client-credentials token issuance. See simtoken.h.
 * The aud claim is the resource exactly as requested (minus "/.default"), so a client that
 * asks with a trailing slash or in upper case gets a token that D365 then rejects. */
#define _GNU_SOURCE
#include "simtoken.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <openssl/evp.h>

#include "simassert.h"
#include "simfed.h"
#include "simguid.h"
#include "simjwt.h"
#include "simurl.h"

#define FORM_CAP (64 * 1024)
#define JWT_BEARER "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define VAL_CAP 4096

struct tokreq {
    int v2;
    char tenant[256];
    char grant[64];
    char client_id[256];
    char secret[VAL_CAP];
    char assertion[8192];
    char assertion_type[256];
    char resource[1024];
    int has_secret, has_assertion, has_resource;
};

static void head(struct sim *s, struct simhttp_req *req);
static void handle(struct sim *s, struct simhttp_req *req);
static const struct sim_route route_v1 = {"token", head, handle};
static const struct sim_route route_v2 = {"token", head, handle};

/* Matches "/{tenant}/oauth2/token" and "/{tenant}/oauth2/v2.0/token". */
const struct sim_route *simtoken_route(const char *path)
{
    const char *slash = path[0] == '/' ? strchr(path + 1, '/') : NULL;
    if (!slash || slash == path + 1)
        return NULL;
    if (strcmp(slash, "/oauth2/token") == 0)
        return &route_v1;
    if (strcmp(slash, "/oauth2/v2.0/token") == 0)
        return &route_v2;
    return NULL;
}

static void head(struct sim *s, struct simhttp_req *req)
{
    req->body_cap = FORM_CAP;
}

static void aad_error(struct sim *s, struct simhttp_req *req, int status, const char *error,
                      long code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void aad_error(struct sim *s, struct simhttp_req *req, int status, const char *error,
                      long code, const char *fmt, ...)
{
    char msg[1024], desc[1400], ts[32], trace[40], corr[40], uri[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    time_t now = (time_t)sim_now(s);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%SZ", &tm);
    simguid_new(trace);
    simguid_new(corr);
    snprintf(desc, sizeof(desc), "AADSTS%ld: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
             code, msg, trace, corr, ts);
    snprintf(uri, sizeof(uri), "https://login.microsoftonline.com/error?code=%ld", code);
    json_t *body = json_pack("{s:s, s:s, s:[I], s:s, s:s, s:s, s:s}", "error", error,
                             "error_description", desc, "error_codes", (json_int_t)code,
                             "timestamp", ts, "trace_id", trace, "correlation_id", corr,
                             "error_uri", uri);
    sim_count(s, NULL, "token_errors", 1);
    simhttp_add_header(req, "Cache-Control", "no-store, no-cache");
    simhttp_add_header(req, "Pragma", "no-cache");
    sim_reply_json(req, status, "application/json; charset=utf-8", body);
}

/* Reads one form field; returns 1 present, 0 absent, -1 too long. */
static int field(const char *body, const char *name, char *out, size_t cap)
{
    int rc = simurl_param(body, name, 0, out, cap);
    if (rc <= 0)
        out[0] = '\0';
    return rc;
}

/* HTTP Basic client authentication: base64(urlencode(id):urlencode(secret)). */
static void basic_auth(struct simhttp_req *req, struct tokreq *t)
{
    const char *h = simhttp_header(req, "Authorization");
    unsigned char dec[VAL_CAP + 300];
    if (!h || strncasecmp(h, "Basic ", 6) != 0 || strlen(h + 6) > 4 * (sizeof(dec) / 3) - 4)
        return;
    int n = EVP_DecodeBlock(dec, (const unsigned char *)h + 6, (int)strlen(h + 6));
    if (n <= 0)
        return;
    dec[n] = '\0';
    char *colon = strchr((char *)dec, ':');
    if (!colon)
        return;
    *colon = '\0';
    if (!t->client_id[0])
        simurl_decode((char *)dec, strlen((char *)dec), t->client_id, sizeof(t->client_id), 1);
    if (!t->has_secret &&
        simurl_decode(colon + 1, strlen(colon + 1), t->secret, sizeof(t->secret), 1) >= 0)
        t->has_secret = 1;
}

static int parse_request(struct simhttp_req *req, struct tokreq *t)
{
    const char *b = req->body ? req->body : "";
    const char *slash = strchr(req->path + 1, '/');
    t->v2 = strstr(slash, "v2.0") != NULL;
    if (simurl_decode(req->path + 1, (size_t)(slash - req->path - 1), t->tenant,
                      sizeof(t->tenant), 0) < 0)
        return -1;
    if (field(b, "grant_type", t->grant, sizeof(t->grant)) < 0 ||
        field(b, "client_id", t->client_id, sizeof(t->client_id)) < 0)
        return -1;
    t->has_secret = field(b, "client_secret", t->secret, sizeof(t->secret)) == 1;
    t->has_assertion = field(b, "client_assertion", t->assertion, sizeof(t->assertion)) == 1;
    field(b, "client_assertion_type", t->assertion_type, sizeof(t->assertion_type));
    t->has_resource = field(b, t->v2 ? "scope" : "resource", t->resource,
                            sizeof(t->resource)) == 1;
    basic_auth(req, t);
    return 0;
}

int simtoken_same_resource(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 0 && a[la - 1] == '/')
        la--;
    while (lb > 0 && b[lb - 1] == '/')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

/* v2: picks the "<resource>/.default" entry of a space-separated scope list into aud. */
static int scope_audience(const char *scope, char *aud, size_t cap)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", scope);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok;
         tok = strtok_r(NULL, " ", &save)) {
        size_t n = strlen(tok);
        if (n > 9 && strcasecmp(tok + n - 9, "/.default") == 0 && n - 9 < cap) {
            memcpy(aud, tok, n - 9);
            aud[n - 9] = '\0';
            return 0;
        }
    }
    return -1;
}

static json_t *claims(struct sim *s, const struct tokreq *t, const struct simconf_app *app,
                      const char *aud, long now)
{
    char iss[512], jti[SIMGUID_LEN + 1];
    simguid_new(jti);
    if (t->v2)
        snprintf(iss, sizeof(iss), "https://login.microsoftonline.com/%s/v2.0", t->tenant);
    else
        snprintf(iss, sizeof(iss), "https://sts.windows.net/%s/", t->tenant);
    json_t *c = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "aud", aud,
                          "iss", iss, "iat", (json_int_t)now, "nbf", (json_int_t)now, "exp",
                          (json_int_t)(now + s->conf->token_lifetime), "tid", t->tenant, "oid",
                          app->object_id, "sub", app->object_id, "ver", t->v2 ? "2.0" : "1.0",
                          "jti", jti);
    json_object_set_new(c, t->v2 ? "azp" : "appid", json_string(app->client_id));
    json_object_set_new(c, t->v2 ? "azpacr" : "appidacr", json_string(t->has_assertion ? "2" : "1"));
    json_object_set_new(c, "roles", json_pack("[]"));
    /* fosim's own claim: the issue order, so that the control API can revoke every token
     * issued so far (POST /_sim/tokens/revoke) the way D365 stops accepting them */
    json_object_set_new(c, "fosim_seq", json_integer((json_int_t)s->tokens_issued++));
    return c;
}

char *simtoken_mint(struct sim *s, const struct simconf_app *app, const char *tenant,
                    const char *aud)
{
    struct tokreq t = { .v2 = 0, .has_assertion = 1 };
    snprintf(t.tenant, sizeof(t.tenant), "%s", tenant);
    json_t *c = claims(s, &t, app, aud, (long)sim_now(s));
    char *jwt = simjwt_sign(s->key, c);
    json_decref(c);
    return jwt;
}

static void issue(struct sim *s, struct simhttp_req *req, const struct tokreq *t,
                  const struct simconf_app *app, const char *aud)
{
    long now = (long)sim_now(s), life = s->conf->token_lifetime;
    json_t *c = claims(s, t, app, aud, now);
    char *jwt = simjwt_sign(s->key, c);
    json_decref(c);
    if (!jwt) {
        simhttp_reply(req, 500, NULL, NULL, 0);
        return;
    }
    json_t *body;
    char n1[24], n2[24];
    snprintf(n1, sizeof(n1), "%ld", life);
    if (t->v2) {
        body = json_pack("{s:s, s:I, s:I, s:s}", "token_type", "Bearer", "expires_in",
                         (json_int_t)life, "ext_expires_in", (json_int_t)life, "access_token", jwt);
    } else {
        snprintf(n2, sizeof(n2), "%ld", now + life);
        char nb[24];
        snprintf(nb, sizeof(nb), "%ld", now);
        body = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "token_type", "Bearer",
                         "expires_in", n1, "ext_expires_in", n1, "expires_on", n2, "not_before",
                         nb, "resource", aud, "access_token", jwt);
    }
    free(jwt);
    sim_count(s, NULL, "tokens_total", 1);
    sim_count(s, "tokens_by_app", app->client_id, 1);
    simhttp_add_header(req, "Cache-Control", "no-store, no-cache");
    simhttp_add_header(req, "Pragma", "no-cache");
    sim_reply_json(req, 200, "application/json; charset=utf-8", body);
}

void simtoken_reply_error(struct sim *s, struct simhttp_req *req, int status,
                          const char *error, long code, const char *msg)
{
    aad_error(s, req, status, error, code, "%s", msg);
}

int simtoken_check_assertion(const struct sim *s, const struct simconf_app *app,
                             const char *tenant, const char *assertion, char *why,
                             size_t whycap)
{
    char a[4][512];
    snprintf(a[0], sizeof(a[0]), "%s/%s/oauth2/token", s->base_url, tenant);
    snprintf(a[1], sizeof(a[1]), "%s/%s/oauth2/v2.0/token", s->base_url, tenant);
    snprintf(a[2], sizeof(a[2]), "https://login.microsoftonline.com/%s/oauth2/token", tenant);
    snprintf(a[3], sizeof(a[3]), "https://login.microsoftonline.com/%s/oauth2/v2.0/token", tenant);
    const char *auds[] = {a[0], a[1], a[2], a[3], NULL};
    return simassert_verify(app->certificate, assertion, app->client_id, auds, sim_now(s), why,
                            whycap);
}

/* Workload identity federation: the assertion comes from an issuer the app trusts. */
static int check_federated(struct sim *s, struct simhttp_req *req, const struct tokreq *t,
                           const struct simconf_app *app)
{
    char why[1024], sub[512];
    enum simfed_verdict v = simfed_verify(app, t->assertion, sim_now(s), sub, sizeof(sub), why,
                                          sizeof(why));
    if (v == SIMFED_OK) {
        sim_count(s, "federated_by_subject", sub, 1);
        return 0;
    }
    aad_error(s, req, v == SIMFED_MALFORMED ? 400 : 401,
              v == SIMFED_MALFORMED ? "invalid_request" : "invalid_client", simfed_code(v),
              "%s", why);
    return -1;
}

static int check_credentials(struct sim *s, struct simhttp_req *req, const struct tokreq *t,
                             const struct simconf_app *app)
{
    char why[512];
    if (t->has_assertion && strcmp(t->assertion_type, JWT_BEARER) != 0) {
        aad_error(s, req, 400, "invalid_request", 50027,
                  "client_assertion_type must be %s.", JWT_BEARER);
        return -1;
    }
    if (t->has_assertion && app->nfed &&
        (!app->certificate || simfed_is_federated(t->assertion, app->client_id)))
        return check_federated(s, req, t, app);
    if (t->has_assertion) {
        static const long codes[] = {0, 700027, 700024, 50027, 700027};
        int v = simtoken_check_assertion(s, app, t->tenant, t->assertion, why, sizeof(why));
        if (v == SIMASSERT_OK)
            return 0;
        aad_error(s, req, v == SIMASSERT_INVALID ? 400 : 401,
                  v == SIMASSERT_INVALID ? "invalid_request" : "invalid_client", codes[v], "%s", why);
        return -1;
    }
    if (!t->has_secret) {
        aad_error(s, req, 401, "invalid_client", 7000218,
                  "The request body must contain the following parameter: 'client_assertion' "
                  "or 'client_secret'.");
        return -1;
    }
    if (!app->secret || strcmp(app->secret, t->secret) != 0) {
        aad_error(s, req, 401, "invalid_client", 7000215,
                  "Invalid client secret provided. Ensure the secret being sent in the request "
                  "is the client secret value, not the client secret ID, for a secret added to "
                  "app '%s'.", app->client_id);
        return -1;
    }
    if (app->secret_expired) {
        aad_error(s, req, 401, "invalid_client", 7000222,
                  "The provided client secret keys for app '%s' are expired. Visit the Azure "
                  "portal to create new keys for your app or consider using certificate "
                  "credentials for added security.", app->client_id);
        return -1;
    }
    return 0;
}

/* Picks the audience for the token, or replies with the matching AADSTS error. */
static int audience(struct sim *s, struct simhttp_req *req, const struct tokreq *t, char *aud,
                    size_t cap)
{
    if (!t->has_resource) {
        aad_error(s, req, 400, "invalid_request", 900144,
                  "The request body must contain the following parameter: '%s'.",
                  t->v2 ? "scope" : "resource");
        return -1;
    }
    if (t->v2) {
        if (scope_audience(t->resource, aud, cap) != 0 || !simtoken_same_resource(aud, sim_audience(s))) {
            aad_error(s, req, 400, "invalid_scope", 70011,
                      "The provided value for the input parameter 'scope' is not valid. The "
                      "scope %s is not valid.", t->resource);
            return -1;
        }
        return 0;
    }
    if (!simtoken_same_resource(t->resource, sim_audience(s))) {
        aad_error(s, req, 400, "invalid_resource", 500011,
                  "The resource principal named %s was not found in the tenant named %s. This "
                  "can happen if the application has not been installed by the administrator "
                  "of the tenant or consented to by any user in the tenant. You might have sent "
                  "your authentication request to the wrong tenant.", t->resource, t->tenant);
        return -1;
    }
    snprintf(aud, cap, "%s", t->resource);
    return 0;
}

static void handle(struct sim *s, struct simhttp_req *req)
{
    struct tokreq *t = calloc(1, sizeof(*t));
    char aud[1024];
    if (!t || strcmp(req->method, "POST") != 0 || req->body_too_large || parse_request(req, t)) {
        if (t)
            aad_error(s, req, 400, "invalid_request", 900561,
                      "The endpoint only accepts POST requests with a form body.");
        else
            simhttp_reply(req, 500, NULL, NULL, 0);
        goto out;
    }
    const struct simconf_tenant *ten = simconf_tenant(s->conf, t->tenant);
    const struct simconf_app *app = simconf_app(ten, t->client_id);
    if (strcmp(t->grant, "client_credentials") != 0) {
        aad_error(s, req, 400, "unsupported_grant_type", 70003,
                  "The app requested an unsupported grant type '%s'.", t->grant);
    } else if (!ten) {
        aad_error(s, req, 400, "invalid_request", 90002,
                  "Tenant '%s' not found. Check to make sure you have the correct tenant ID and "
                  "are signing into the correct cloud.", t->tenant);
    } else if (!t->client_id[0]) {
        aad_error(s, req, 400, "invalid_request", 900144,
                  "The request body must contain the following parameter: 'client_id'.");
    } else if (!app) {
        aad_error(s, req, 400, "unauthorized_client", 700016,
                  "Application with identifier '%s' was not found in the directory '%s'. This "
                  "can happen if the application has not been installed by the administrator "
                  "of the tenant or consented to by any user in the tenant. You may have sent "
                  "your authentication request to the wrong tenant.", t->client_id, t->tenant);
    } else if (check_credentials(s, req, t, app) == 0 && audience(s, req, t, aud, sizeof(aud)) == 0) {
        issue(s, req, t, app, aud);
    }
out:
    if (t)
        OPENSSL_cleanse(t->secret, sizeof(t->secret));
    free(t);
}
