/* clientauth: API key extraction and client/job/environment permission checks. */
#include "clientauth.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "apikey.h"

static bool name_is(const struct http1_header *f, const char *name)
{
    size_t n = strlen(name);
    return f->name_len == n && strncasecmp(f->name, name, n) == 0;
}

/* Counts the fields named `name` and keeps the last one. */
static int count_fields(const struct http1_head *h, const char *name,
                        const struct http1_header **last)
{
    int n = 0;

    for (size_t i = 0; i < h->n_headers; i++) {
        if (name_is(&h->headers[i], name)) {
            *last = &h->headers[i];
            n++;
        }
    }
    return n;
}

/* "Bearer <key>": scheme in any case, one or more spaces, then the key (no spaces). */
static int bearer_key(const struct http1_header *f, const char **key, size_t *len)
{
    const char *v = f->value;
    size_t n = f->value_len, i = 6;

    if (n <= 7 || strncasecmp(v, "Bearer", 6) != 0 || v[6] != ' ')
        return -1;
    while (i < n && v[i] == ' ')
        i++;
    *key = v + i;
    *len = n - i;
    return *len > 0 ? 0 : -1;
}

enum clientauth_verdict clientauth_check(const struct conf *conf, const struct http1_head *h,
                                         const struct conf_client **out)
{
    const struct http1_header *auth = NULL, *xkey = NULL;
    int na = count_fields(h, "Authorization", &auth);
    int nx = count_fields(h, "X-Api-Key", &xkey);
    unsigned char digest[APIKEY_DIGEST_LEN];
    const char *key = NULL;
    size_t len = 0;

    *out = NULL;
    if (na == 0 && nx == 0)
        return CLIENTAUTH_MISSING;
    if (na > 1 || nx > 1)
        return CLIENTAUTH_DUPLICATE;
    if (na && nx)
        return CLIENTAUTH_BOTH;
    if (auth && bearer_key(auth, &key, &len) < 0)
        return CLIENTAUTH_MALFORMED;
    if (xkey) {
        key = xkey->value;
        len = xkey->value_len;
    }
    if (apikey_digest(key, len, digest) < 0)
        return CLIENTAUTH_MALFORMED;
    *out = conf_client_find_by_key(conf, digest);
    explicit_bzero(digest, sizeof digest);
    return *out ? CLIENTAUTH_OK : CLIENTAUTH_UNKNOWN;
}

const char *clientauth_code(enum clientauth_verdict v)
{
    switch (v) {
    case CLIENTAUTH_OK: return "ok";
    case CLIENTAUTH_MISSING: return "api_key_missing";
    case CLIENTAUTH_BOTH: return "api_key_ambiguous";
    case CLIENTAUTH_DUPLICATE: return "api_key_duplicated";
    case CLIENTAUTH_MALFORMED: return "api_key_malformed";
    case CLIENTAUTH_UNKNOWN: return "api_key_invalid";
    }
    return "api_key_invalid";
}

const char *clientauth_message(enum clientauth_verdict v)
{
    switch (v) {
    case CLIENTAUTH_OK: return "ok";
    case CLIENTAUTH_MISSING:
        return "an API key is required: 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'";
    case CLIENTAUTH_BOTH:
        return "send the API key in one header only: Authorization or X-Api-Key, not both";
    case CLIENTAUTH_DUPLICATE: return "the API key header appears more than once";
    case CLIENTAUTH_MALFORMED:
        return "the API key is malformed: expected 'Bearer <key>' with 16 to 256 visible "
               "ASCII characters";
    case CLIENTAUTH_UNKNOWN: return "the API key is not valid";
    }
    return "the API key is not valid";
}

int clientauth_job(const struct conf *conf, const struct conf_client *client, const char *id,
                   size_t len, const struct conf_job **job)
{
    const struct conf_job *j = conf_job_find_by_activity(conf, id, len);

    *job = NULL;
    if (!j)
        return -1;
    if (!conf_client_allows(client, j))
        return -2;
    *job = j;
    return 0;
}

static bool client_has_env(const struct conf_client *client, const struct conf_env *env)
{
    for (size_t i = 0; i < client->n_jobs; i++)
        if (client->jobs[i]->env == env)
            return true;
    return false;
}

int clientauth_data_env(const struct conf *conf, const struct conf_client *client,
                        const struct http1_head *h, const struct conf_env **env)
{
    const struct http1_header *f = NULL;
    int n = count_fields(h, "X-Fogate-Environment", &f);
    char name[72];

    *env = NULL;
    if (n > 1)
        return -1;
    if (n == 1) {
        if (f->value_len == 0 || f->value_len >= sizeof name)
            return -2;
        memcpy(name, f->value, f->value_len);
        name[f->value_len] = '\0';
        const struct conf_env *e = conf_env_find(conf, name);
        if (!e || !client_has_env(client, e))
            return -2;
        *env = e;
        return 0;
    }
    for (size_t i = 0; i < client->n_jobs; i++) {
        const struct conf_env *e = client->jobs[i]->env;
        if (*env && *env != e) {
            *env = NULL;
            return -1;
        }
        *env = e;
    }
    return *env ? 0 : -1;
}
