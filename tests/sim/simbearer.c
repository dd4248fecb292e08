/* simbearer: bearer-token validation for the D365 endpoints. See simbearer.h. */
#include "simbearer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "simjwt.h"

#define CACHE_SLOTS 32
#define NBF_SKEW 300

struct slot {
    char *token;   /* owned */
    json_t *claims; /* owned */
};

struct simbearer {
    struct slot slots[CACHE_SLOTS];
    unsigned next;
};

struct simbearer *simbearer_new(void)
{
    return calloc(1, sizeof(struct simbearer));
}

void simbearer_free(struct simbearer *b)
{
    if (!b)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        free(b->slots[i].token);
        json_decref(b->slots[i].claims);
    }
    free(b);
}

/* Verified claims for token (borrowed from the cache), or NULL if the signature fails. */
static json_t *verified(struct sim *s, const char *token)
{
    struct simbearer *b = s->bearer;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (b->slots[i].token && strcmp(b->slots[i].token, token) == 0)
            return b->slots[i].claims;
    json_t *claims = NULL;
    if (simjwt_verify(s->key, token, strlen(token), &claims) != SIMJWT_OK)
        return NULL;
    struct slot *sl = &b->slots[b->next++ % CACHE_SLOTS];
    free(sl->token);
    json_decref(sl->claims);
    sl->token = strdup(token);
    sl->claims = claims;
    return claims;
}

/* aud must be the environment URL in lower case without a trailing slash. */
static int aud_ok(const struct sim *s, const char *aud)
{
    char want[512];
    snprintf(want, sizeof(want), "%s", sim_audience(s));
    size_t n = strlen(want);
    while (n > 0 && want[n - 1] == '/')
        want[--n] = '\0';
    for (size_t i = 0; i < n; i++)
        want[i] = (char)tolower((unsigned char)want[i]);
    return aud && strcmp(aud, want) == 0;
}

static const char *claim(const json_t *c, const char *name)
{
    return json_string_value(json_object_get(c, name));
}

enum simbearer_verdict simbearer_check(struct sim *s, struct simhttp_req *req,
                                       struct simbearer_who *who, const char **why)
{
    const char *h = simhttp_header(req, "Authorization");
    *why = "missing bearer token";
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return SIMBEARER_UNAUTHORIZED;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    json_t *c = verified(s, tok);
    *why = "invalid token signature";
    if (!c)
        return SIMBEARER_UNAUTHORIZED;
    double now = sim_now(s);
    json_int_t exp = json_integer_value(json_object_get(c, "exp"));
    json_int_t nbf = json_integer_value(json_object_get(c, "nbf"));
    if ((double)exp <= now) {
        sim_count(s, NULL, "expired_tokens", 1);
        *why = "the token is expired";
        return SIMBEARER_UNAUTHORIZED;
    }
    *why = "the token was revoked";
    if ((unsigned long)json_integer_value(json_object_get(c, "fosim_seq")) < s->revoked_below)
        return SIMBEARER_UNAUTHORIZED;
    *why = "the token is not yet valid";
    if ((double)nbf > now + NBF_SKEW)
        return SIMBEARER_UNAUTHORIZED;
    *why = "invalid audience";
    if (!aud_ok(s, claim(c, "aud")))
        return SIMBEARER_UNAUTHORIZED;
    *why = "invalid tenant";
    if (!claim(c, "tid") || strcasecmp(claim(c, "tid"), s->conf->tenant) != 0)
        return SIMBEARER_UNAUTHORIZED;
    *why = "no service principal (oid)";
    if (!claim(c, "oid"))
        return SIMBEARER_UNAUTHORIZED;
    const char *appid = claim(c, "appid") ? claim(c, "appid") : claim(c, "azp");
    const struct simconf_app *app =
        appid ? simconf_app(simconf_tenant(s->conf, s->conf->tenant), appid) : NULL;
    *why = "AAD application is not mapped to a user";
    if (!app || !app->user)
        return SIMBEARER_FORBIDDEN;
    snprintf(who->client_id, sizeof(who->client_id), "%s", app->client_id);
    *why = NULL;
    return SIMBEARER_OK;
}

int simbearer_identity(struct sim *s, const struct simhttp_req *req, char *out, size_t cap)
{
    const char *h = simhttp_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return -1;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    json_t *c = verified(s, tok);
    const char *who = claim(c, "appid") ? claim(c, "appid") : claim(c, "azp");
    if (!who)
        who = claim(c, "oid");
    if (!who)
        return -1;
    snprintf(out, cap, "%s", who);
    return 0;
}

void simbearer_reply(struct simhttp_req *req, enum simbearer_verdict v, const char *why)
{
    char hdr[256];
    sim_d365_headers(req);
    if (v == SIMBEARER_FORBIDDEN) {
        simhttp_reply(req, 403, NULL, NULL, 0);
        return;
    }
    snprintf(hdr, sizeof(hdr), "Bearer error=\"invalid_token\", error_description=\"%s\"",
             why ? why : "unauthorized");
    simhttp_add_header(req, "WWW-Authenticate", hdr);
    simhttp_add_header(req, "P3P", "CP=\"No P3P policy defined. Read the Microsoft privacy "
                                   "statement at https://go.microsoft.com/fwlink/?LinkId=271135\"");
    simhttp_reply(req, 401, NULL, NULL, 0);
}
