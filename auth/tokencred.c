/* tokencred: load a client credential and build token request bodies (see tokencred.h).
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
#include "tokenform.h"

struct tokencred {
    char *secret;                /* owned, wiped; NULL for certificates */
    size_t secret_len;
    struct assertion_cred *cert; /* owned; NULL for secrets */
    enum assertion_alg alg;
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

struct tokencred *tokencred_load(const struct conf_env *env, char *err, size_t errlen)
{
    struct tokencred *c = calloc(1, sizeof(*c));
    int rc = -1;

    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
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
    free(cred);
}

char *tokencred_body(const struct tokencred *cred, const struct conf_env *env, int64_t now,
                     size_t *len)
{
    char *jwt = NULL, *body;
    struct tokenform_req req = {
        .endpoint = env->token_version == CONF_TOKEN_V1 ? TOKENFORM_V1 : TOKENFORM_V2,
        .client_id = env->client_id,
        .resource = env->resource,
        .client_secret = cred->secret,
    };

    if (cred->cert) {
        jwt = assertion_build(cred->cert, cred->alg, env->token_endpoint, env->client_id, now);
        if (!jwt)
            return NULL;
        req.client_assertion = jwt;
    }
    body = tokenform_build(&req, len);
    assertion_free(jwt);
    return body;
}

int tokencred_leaks(const struct tokencred *cred, const char *text, size_t len)
{
    if (!cred || !cred->secret || !text)
        return 0;
    return memmem(text, len, cred->secret, cred->secret_len) != NULL;
}

int64_t tokencred_expires_at(const struct tokencred *cred, const struct conf_env *env)
{
    if (cred && cred->cert)
        return assertion_cred_not_after(cred->cert);
    return env ? (int64_t)env->secret_expires : 0;
}
