/* tokencred: load a client credential and build token requests (see tokencred.h).
 * Invariant: nothing here logs; errors name where a credential lives, never its value. */
#define _GNU_SOURCE /* memmem */
#include "tokencred.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "assertion.h"
#include "conf.h"
#include "secretfile.h"
#include "tokenfed.h"
#include "tokenform.h"

#define IMDS_API "2018-02-01"
#define APP_SERVICE_API "2019-08-01"

struct tokencred {
    enum conf_credential kind;
    char *secret;                /* owned, wiped: the client secret, or the App Service
                                    identity header; NULL otherwise */
    size_t secret_len;
    struct assertion_cred *cert; /* owned; certificates only */
    enum assertion_alg alg;
    char *mi_endpoint;           /* owned: IDENTITY_ENDPOINT; NULL = IMDS (env's endpoint) */
};

/* A copy of `len` bytes of s without one trailing "\n" / "\r\n"; NULL if empty or too
 * long for a request. */
static char *trimmed_copy(const char *s, size_t len, size_t *out_len)
{
    if (len > 0 && s[len - 1] == '\n')
        len--;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    if (len == 0 || len > TOKENFORM_SECRET_MAX)
        return NULL;
    char *c = malloc(len + 1);
    if (!c)
        return NULL;
    memcpy(c, s, len);
    c[len] = '\0';
    *out_len = len;
    return c;
}

static int load_secret_file(struct tokencred *c, const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;

    if (secretfile_read(path, TOKENFORM_SECRET_MAX + 2, 0, &buf, &len, err, errlen) != 0)
        return -1;
    c->secret = trimmed_copy(buf, len, &c->secret_len);
    secretfile_free(buf, len);
    if (!c->secret)
        snprintf(err, errlen, "%s: empty or longer than %d bytes", path, TOKENFORM_SECRET_MAX);
    return c->secret ? 0 : -1;
}

static int load_secret_env(struct tokencred *c, const char *name, char *err, size_t errlen)
{
    const char *v = getenv(name);

    c->secret = v ? trimmed_copy(v, strlen(v), &c->secret_len) : NULL;
    if (!c->secret)
        snprintf(err, errlen, "environment variable %s: unset, empty or longer than %d bytes",
                 name, TOKENFORM_SECRET_MAX);
    return c->secret ? 0 : -1;
}

/* App Service / Container Apps publish both variables; IMDS hosts neither. */
static int load_mi(struct tokencred *c, char *err, size_t errlen)
{
    const char *ep = getenv("IDENTITY_ENDPOINT"), *hdr = getenv("IDENTITY_HEADER");

    if ((ep && *ep) != (hdr && *hdr)) {
        snprintf(err, errlen, "managed identity: environment variable %s is set but %s is "
                 "not (both for App Service / Container Apps, neither for IMDS)",
                 ep && *ep ? "IDENTITY_ENDPOINT" : "IDENTITY_HEADER",
                 ep && *ep ? "IDENTITY_HEADER" : "IDENTITY_ENDPOINT");
        return -1;
    }
    if (!ep || !*ep)
        return 0;
    if ((strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) ||
        strlen(ep) > TOKENFORM_RESOURCE_MAX) {
        snprintf(err, errlen, "environment variable IDENTITY_ENDPOINT: not an http(s) URL of "
                 "at most %d bytes", TOKENFORM_RESOURCE_MAX);
        return -1;
    }
    c->secret = trimmed_copy(hdr, strlen(hdr), &c->secret_len);
    c->mi_endpoint = strdup(ep);
    if (!c->secret || !c->mi_endpoint || strpbrk(c->secret, "\r\n")) {
        snprintf(err, errlen, "environment variable IDENTITY_HEADER: longer than %d bytes or "
                 "has a line break", TOKENFORM_SECRET_MAX);
        return -1;
    }
    return 0;
}

struct tokencred *tokencred_load(const struct conf_env *env, char *err, size_t errlen)
{
    struct tokencred *c = calloc(1, sizeof(*c));
    int rc = -1;

    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->kind = env->credential;
    switch (env->credential) {
    case CONF_CRED_SECRET_FILE:
        rc = load_secret_file(c, env->client_secret_file, err, errlen);
        break;
    case CONF_CRED_SECRET_ENV:
        rc = load_secret_env(c, env->client_secret_env, err, errlen);
        break;
    case CONF_CRED_CERTIFICATE:
        c->alg = env->cert_algorithm == CONF_ALG_RS256 ? ASSERTION_RS256 : ASSERTION_PS256;
        c->cert = assertion_cred_load(env->key_file, env->cert_file, err, errlen);
        rc = c->cert ? 0 : -1;
        break;
    case CONF_CRED_ASSERTION_FILE:
        rc = 0;
        break;
    case CONF_CRED_MANAGED_IDENTITY:
        rc = load_mi(c, err, errlen);
        break;
    }
    if (rc != 0) {
        tokencred_free(c);
        return NULL;
    }
    return c;
}

void tokencred_free(struct tokencred *cred)
{
    if (!cred)
        return;
    if (cred->secret)
        OPENSSL_clear_free(cred->secret, cred->secret_len + 1);
    assertion_cred_free(cred->cert);
    free(cred->mi_endpoint);
    free(cred);
}

/* Reads the federated assertion for this request; it is never cached, so a rotated file
 * is used at once. *jwt is owned (secretfile_free(*jwt, *cap)). */
static enum tokencred_result read_assertion(const char *path, int64_t now, char **jwt,
                                            size_t *cap, char *err, size_t errlen)
{
    size_t len = 0;
    int64_t exp = 0;

    if (secretfile_read(path, TOKENFORM_ASSERTION_MAX + 2, 0, jwt, &len, err, errlen) != 0)
        return TOKENCRED_UNREADABLE;
    *cap = len;
    tokenfed_trim(*jwt, &len);
    (*jwt)[len] = '\0';
    switch (tokenfed_check(*jwt, len, now, &exp)) {
    case TOKENFED_OK:
        return TOKENCRED_OK;
    case TOKENFED_EXPIRED:
        snprintf(err, errlen, "%s: the assertion expired %lld s ago (exp %lld)", path,
                 (long long)(now - exp), (long long)exp);
        return TOKENCRED_EXPIRED;
    case TOKENFED_MALFORMED:
        break;
    }
    snprintf(err, errlen, "%s: not a JWT with an exp claim (or longer than %d bytes)", path,
             TOKENFORM_ASSERTION_MAX);
    return TOKENCRED_UNREADABLE;
}

static enum tokencred_result form_request(const struct tokencred *cred,
                                          const struct conf_env *env, int64_t now,
                                          struct tokencred_req *out, char *err, size_t errlen)
{
    char *jwt = NULL, *file = NULL;
    size_t file_cap = 0;
    enum tokencred_result rc = TOKENCRED_OK;
    struct tokenform_req req = {
        .endpoint = env->token_version == CONF_TOKEN_V1 ? TOKENFORM_V1 : TOKENFORM_V2,
        .client_id = env->client_id,
        .resource = env->resource,
        .client_secret = cred->secret,
    };

    if (cred->kind == CONF_CRED_ASSERTION_FILE) {
        rc = read_assertion(env->client_assertion_file, now, &file, &file_cap, err, errlen);
        if (rc != TOKENCRED_OK)
            goto out;
        req.client_assertion = file;
    } else if (cred->cert) {
        jwt = assertion_build(cred->cert, cred->alg, env->token_endpoint, env->client_id, now);
        req.client_assertion = jwt;
    }
    out->url = env->token_endpoint;
    if (!(req.client_secret || req.client_assertion) ||
        !(out->body = tokenform_build(&req, &out->len))) {
        snprintf(err, errlen, "cannot build the token request");
        rc = TOKENCRED_INTERNAL;
    }
out:
    assertion_free(jwt);
    secretfile_free(file, file_cap);
    return rc;
}

static char *header_line(const char *name, const char *value)
{
    size_t n = strlen(name) + 2 + strlen(value) + 1;
    char *h = malloc(n);

    if (h)
        snprintf(h, n, "%s: %s", name, value);
    return h;
}

/* IMDS: GET <endpoint>?api-version=2018-02-01&resource=..[&client_id=..], Metadata: true.
 * App Service: GET $IDENTITY_ENDPOINT?api-version=2019-08-01&..., X-IDENTITY-HEADER. */
static enum tokencred_result mi_request(const struct tokencred *cred,
                                        const struct conf_env *env,
                                        struct tokencred_req *out, char *err, size_t errlen)
{
    bool app = cred->mi_endpoint != NULL;

    out->get = true;
    out->get_url = tokenform_mi_url(app ? cred->mi_endpoint : env->mi_endpoint,
                                    app ? APP_SERVICE_API : IMDS_API, env->resource,
                                    env->mi_client_id);
    out->url = out->get_url;
    out->headers[0] = app ? header_line("X-IDENTITY-HEADER", cred->secret)
                          : header_line("Metadata", "true");
    out->headers[1] = header_line("Accept", "application/json");
    out->n_headers = 2;
    if (!out->get_url || !out->headers[0] || !out->headers[1]) {
        snprintf(err, errlen, "cannot build the managed identity request (endpoint URL "
                 "invalid or too long)");
        return TOKENCRED_INTERNAL;
    }
    return TOKENCRED_OK;
}

enum tokencred_result tokencred_request(const struct tokencred *cred,
                                        const struct conf_env *env, int64_t now,
                                        struct tokencred_req *out, char *err, size_t errlen)
{
    enum tokencred_result rc;

    memset(out, 0, sizeof(*out));
    if (cred->kind == CONF_CRED_MANAGED_IDENTITY)
        rc = mi_request(cred, env, out, err, errlen);
    else
        rc = form_request(cred, env, now, out, err, errlen);
    if (rc != TOKENCRED_OK)
        tokencred_req_cleanup(out);
    return rc;
}

void tokencred_req_cleanup(struct tokencred_req *r)
{
    tokenform_free(r->body);
    free(r->get_url);
    for (size_t i = 0; i < TOKENCRED_HEADERS_MAX; i++)
        if (r->headers[i])
            OPENSSL_clear_free(r->headers[i], strlen(r->headers[i]) + 1);
    memset(r, 0, sizeof(*r));
}

const char *tokencred_mi_style(const struct tokencred *cred)
{
    if (!cred || cred->kind != CONF_CRED_MANAGED_IDENTITY)
        return NULL;
    return cred->mi_endpoint ? "app_service" : "imds";
}

int tokencred_leaks(const struct tokencred *cred, const char *text, size_t len)
{
    if (!cred || !cred->secret || !text)
        return 0;
    return memmem(text, len, cred->secret, cred->secret_len) != NULL;
}
