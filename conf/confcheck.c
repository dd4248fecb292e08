/* confcheck: cross-field rules and derived values. Messages may name files and variable
 * names but never a secret, and never echo the Redis URL (it could hold a password). */
#include "confcheck.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conferr.h"

#define LIST_MAX 200 /* names listed in a "not found" message */

/* ---- files and environment variables (existence only, contents never read) ---- */

int confcheck_file(const char *file, const char *path, struct conf_error *err)
{
    struct stat st;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

    if (fd < 0)
        return conferr_fail(err, path, "cannot read %s: %s", file, strerror(errno));
    int rc = fstat(fd, &st);
    int saved = errno;
    close(fd);
    if (rc < 0)
        return conferr_fail(err, path, "cannot stat %s: %s", file, strerror(saved));
    if (!S_ISREG(st.st_mode))
        return conferr_fail(err, path, "%s is not a regular file", file);
    if (st.st_size == 0)
        return conferr_fail(err, path, "%s is empty", file);
    return 0;
}

int confcheck_env_var(const char *name, const char *path, struct conf_error *err)
{
    bool ok = isalpha((unsigned char)name[0]) || name[0] == '_';

    for (const char *p = name; ok && *p; p++)
        ok = isalnum((unsigned char)*p) || *p == '_';
    if (!ok)
        return conferr_fail(err, path, "\"%s\" is not an environment variable name", name);
    const char *value = getenv(name);
    if (!value)
        return conferr_fail(err, path, "environment variable %s is not set", name);
    if (!*value)
        return conferr_fail(err, path, "environment variable %s is empty", name);
    return 0;
}

/* ---- URLs ---- */

struct url {
    bool https;
    const char *host; /* into the URL; IPv6 without brackets */
    size_t host_len;
};

bool confcheck_host_ok(const char *host, size_t len, bool bracketed)
{
    char buf[64];
    unsigned char addr[16];

    if (bracketed) {
        if (len == 0 || len >= sizeof buf)
            return false;
        memcpy(buf, host, len);
        buf[len] = '\0';
        return inet_pton(AF_INET6, buf, addr) == 1;
    }
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)host[i]) && !strchr(".-_", host[i]))
            return false;
    return true;
}

/* Parses an http(s) URL without user, query or fragment. Returns NULL or why not. */
static const char *parse_url(const char *s, struct url *u)
{
    size_t skip;

    u->https = strncasecmp(s, "https://", 8) == 0;
    if (u->https)
        skip = 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else
        return "must start with https://";
    if (strpbrk(s, "?#"))
        return "must not have a query (?) or fragment (#)";
    if (strchr(s, ' '))
        return "must not contain spaces";
    const char *auth = s + skip;
    size_t auth_len = strcspn(auth, "/");
    if (memchr(auth, '@', auth_len))
        return "must not contain a user name or password";
    bool v6 = auth[0] == '[';
    const char *host_end = v6 ? memchr(auth, ']', auth_len) : memchr(auth, ':', auth_len);
    if (!host_end)
        host_end = v6 ? NULL : auth + auth_len;
    if (!host_end)
        return "has an unclosed '[' in the host";
    u->host = auth + v6;
    u->host_len = (size_t)(host_end - u->host);
    if (!confcheck_host_ok(u->host, u->host_len, v6))
        return "has an invalid host name";
    const char *rest = host_end + v6;
    if (rest < auth + auth_len && *rest != ':')
        return "has junk after the host";
    if (rest < auth + auth_len) {
        char *end;
        long port = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || end != auth + auth_len || port < 1 || port > 65535)
            return "has an invalid port (1 to 65535)";
    }
    return NULL;
}

static void strip_trailing_slashes(char *url, const struct url *u)
{
    size_t min = (size_t)(u->host + u->host_len - url);
    size_t len = strlen(url);

    while (len > min && url[len - 1] == '/')
        url[--len] = '\0';
}

static bool is_loopback(const struct url *u)
{
    static const char *const names[] = { "localhost", "::1", NULL };

    if (u->host_len >= 4 && strncmp(u->host, "127.", 4) == 0)
        return true;
    for (const char *const *n = names; *n; n++)
        if (strlen(*n) == u->host_len && strncasecmp(*n, u->host, u->host_len) == 0)
            return true;
    return false;
}

static int check_public_url(struct conf *conf, struct conf_error *err)
{
    struct url u;
    const char *why = parse_url(conf->public_base_url, &u);

    if (why)
        return conferr_fail(err, "public_base_url", "%s", why);
    if (!u.https && !is_loopback(&u))
        return conferr_fail(err, "public_base_url",
                            "must use https:// (http:// only for a loopback "
                            "host, in tests)");
    strip_trailing_slashes(conf->public_base_url, &u);
    return 0;
}

/* ---- environments ---- */

static int check_base_url(struct conf_env *e, const char *path, struct conf_error *err)
{
    struct url u;
    const char *why = parse_url(e->base_url, &u);

    if (why)
        return conferr_fail(err, path, "%s", why);
    if (!u.https && !e->allow_http)
        return conferr_fail(err, path, "must use https:// (http:// only with \"allow_http\": true, "
                            "for tests)");
    strip_trailing_slashes(e->base_url, &u);
    if (!(e->resource = strdup(e->base_url)))
        return conferr_fail(err, path, "out of memory");
    for (char *p = e->resource; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}

static int check_tenant(struct conf_env *e, const char *path, struct conf_error *err)
{
    static const char *const multi[] = { "common", "organizations", "consumers", NULL };

    for (const char *const *m = multi; *m; m++)
        if (strcasecmp(e->tenant, *m) == 0)
            return conferr_fail(err, path, "\"%s\" is not a tenant: use the tenant ID or domain "
                                "(D365 rejects tokens from multi-tenant endpoints)", e->tenant);
    if (!confcheck_host_ok(e->tenant, strlen(e->tenant), false) || strchr(e->tenant, '_'))
        return conferr_fail(err, path, "must be a tenant ID (GUID) or domain name");
    return 0;
}

static int check_client_id(struct conf_env *e, const char *path, struct conf_error *err)
{
    char canon[GUID_CANON_SIZE];

    if (guid_canonical(e->client_id, strlen(e->client_id), canon) < 0)
        return conferr_fail(err, path, "\"%s\" is not a GUID (the Entra application ID, "
                            "8-4-4-4-12 hex digits)", e->client_id);
    memcpy(e->client_id, canon, GUID_CANON_SIZE); /* canonical form is never longer */
    return 0;
}

#define IMDS_DEFAULT "http://169.254.169.254/metadata/identity/oauth2/token"

/* The IMDS endpoint is plain http by design: allowed only to a link-local or loopback
 * host (where the platform serves it), or anywhere with allow_http (tests). */
static int check_mi_endpoint(struct conf_env *e, const char *path, struct conf_error *err)
{
    struct url u;

    if (!e->mi_endpoint) {
        if (!(e->mi_endpoint = strdup(IMDS_DEFAULT)))
            return conferr_fail(err, path, "out of memory");
        return 0;
    }
    const char *why = parse_url(e->mi_endpoint, &u);
    if (why)
        return conferr_fail(err, path, "%s", why);
    bool link_local = u.host_len >= 8 && strncmp(u.host, "169.254.", 8) == 0;
    if (!u.https && !link_local && !is_loopback(&u) && !e->allow_http)
        return conferr_fail(err, path, "http:// only to a link-local (169.254.x.x) or loopback "
                            "host, or with \"allow_http\": true (tests)");
    return 0;
}

static int check_managed_identity(struct conf_env *e, const char *envpath,
                                  struct conf_error *err)
{
    char path[CONF_ERR_PATH_MAX], canon[GUID_CANON_SIZE];

    e->credential = CONF_CRED_MANAGED_IDENTITY;
    if (e->mi_client_id) {
        conferr_pathf(path, sizeof path, "%s.managed_identity.client_id", envpath);
        if (guid_canonical(e->mi_client_id, strlen(e->mi_client_id), canon) < 0)
            return conferr_fail(err, path, "\"%s\" is not a GUID (the client ID of the "
                                "user-assigned managed identity)", e->mi_client_id);
        memcpy(e->mi_client_id, canon, GUID_CANON_SIZE);
    }
    conferr_pathf(path, sizeof path, "%s.managed_identity.endpoint", envpath);
    return check_mi_endpoint(e, path, err);
}

static int check_credential(struct conf_env *e, const char *envpath, struct conf_error *err)
{
    char path[CONF_ERR_PATH_MAX];
    int n = !!e->client_secret_file + !!e->client_secret_env + !!e->cert_file +
            !!e->client_assertion_file + !!e->managed_identity;

    if (n != 1)
        return conferr_fail(err, envpath, "%s: set exactly one of client_secret_file, "
                            "client_secret_env, client_certificate, client_assertion_file and "
                            "managed_identity",
                            n ? "more than one credential" : "no credential");
    if (e->client_secret_file) {
        e->credential = CONF_CRED_SECRET_FILE;
        conferr_pathf(path, sizeof path, "%s.client_secret_file", envpath);
        return confcheck_file(e->client_secret_file, path, err);
    }
    if (e->client_secret_env) {
        e->credential = CONF_CRED_SECRET_ENV;
        conferr_pathf(path, sizeof path, "%s.client_secret_env", envpath);
        return confcheck_env_var(e->client_secret_env, path, err);
    }
    /* The projected token file is rotated by the kubelet and may be briefly absent: it is
     * read for each request, and a missing one is reported at run time, not here. */
    if (e->client_assertion_file) {
        e->credential = CONF_CRED_ASSERTION_FILE;
        return 0;
    }
    if (e->managed_identity)
        return check_managed_identity(e, envpath, err);
    e->credential = CONF_CRED_CERTIFICATE;
    conferr_pathf(path, sizeof path, "%s.client_certificate.cert_file", envpath);
    if (confcheck_file(e->cert_file, path, err) < 0)
        return -1;
    conferr_pathf(path, sizeof path, "%s.client_certificate.key_file", envpath);
    return confcheck_file(e->key_file, path, err);
}

static int check_token_endpoint(struct conf_env *e, const char *path, struct conf_error *err)
{
    struct url u;

    if (!e->token_endpoint) {
        const char *tail = e->token_version == CONF_TOKEN_V1 ? "oauth2/token" : "oauth2/v2.0/token";
        size_t n = strlen("https://login.microsoftonline.com/") + strlen(e->tenant) + 1 +
                   strlen(tail) + 1;
        if (!(e->token_endpoint = malloc(n)))
            return conferr_fail(err, path, "out of memory");
        snprintf(e->token_endpoint, n, "https://login.microsoftonline.com/%s/%s", e->tenant, tail);
        return 0;
    }
    const char *why = parse_url(e->token_endpoint, &u);
    if (why)
        return conferr_fail(err, path, "%s", why);
    if (!u.https && !e->allow_http)
        return conferr_fail(err, path, "must use https:// (http:// only with \"allow_http\": true, "
                            "for tests)");
    return 0;
}

static int check_env(struct conf_env *e, struct conf_error *err)
{
    char base[CONF_ERR_PATH_MAX], path[CONF_ERR_PATH_MAX];

    conferr_pathf(base, sizeof base, "environments.%s", e->name);
    conferr_pathf(path, sizeof path, "%s.base_url", base);
    if (check_base_url(e, path, err) < 0)
        return -1;
    conferr_pathf(path, sizeof path, "%s.tenant", base);
    if (check_tenant(e, path, err) < 0)
        return -1;
    conferr_pathf(path, sizeof path, "%s.client_id", base);
    if (check_client_id(e, path, err) < 0)
        return -1;
    if (check_credential(e, base, err) < 0)
        return -1;
    conferr_pathf(path, sizeof path, "%s.token_endpoint", base);
    return check_token_endpoint(e, path, err);
}

/* ---- jobs and clients ---- */

static void env_names(char *dst, size_t n, const struct conf *conf)
{
    size_t off = 0;

    dst[0] = '\0';
    for (size_t i = 0; i < conf->n_envs && off < n; i++)
        off += (size_t)snprintf(dst + off, n - off, "%s%s", i ? ", " : "", conf->envs[i].name);
}

static void job_names(char *dst, size_t n, const struct conf *conf)
{
    size_t off = 0;

    dst[0] = '\0';
    for (size_t i = 0; i < conf->n_jobs && off < n; i++)
        off += (size_t)snprintf(dst + off, n - off, "%s%s", i ? ", " : "", conf->jobs[i].name);
}

/* callback_url: http(s) without query or fragment, http only with receipts.allow_http. */
static int check_callback(const struct conf *conf, const struct conf_job *j,
                          struct conf_error *err)
{
    char path[CONF_ERR_PATH_MAX];
    struct url u;
    const char *why;

    if (!j->callback_url)
        return 0;
    conferr_pathf(path, sizeof path, "jobs.%s.callback_url", j->name);
    if ((why = parse_url(j->callback_url, &u)))
        return conferr_fail(err, path, "%s", why);
    if (!u.https && !conf->receipts.allow_http)
        return conferr_fail(err, path, "must start with https:// (http only with "
                            "receipts.allow_http, for tests)");
    if (!conf->history.enabled || !conf->receipts.key_file)
        return conferr_fail(err, path, "receipts need history.enabled and receipts.key_file");
    return 0;
}

static int check_job(struct conf *conf, size_t idx, struct conf_error *err)
{
    struct conf_job *j = &conf->jobs[idx];
    char path[CONF_ERR_PATH_MAX], names[LIST_MAX];

    conferr_pathf(path, sizeof path, "jobs.%s.environment", j->name);
    if (!(j->env = conf_env_find(conf, j->env_name))) {
        env_names(names, sizeof names, conf);
        return conferr_fail(err, path, "no environment named \"%s\" (defined: %s)", j->env_name,
                            names[0] ? names : "none");
    }
    conferr_pathf(path, sizeof path, "jobs.%s.%s", j->name, j->project ? "project" : "activity_id");
    if (!j->activity_id_raw && !j->project)
        return conferr_fail(err, path, "required key is missing (or set project for a "
                            "package job)");
    if (j->activity_id_raw && j->project)
        return conferr_fail(err, path, "set activity_id (a recurring data job) or project "
                            "(a package job), not both");
    if (check_callback(conf, j, err) < 0)
        return -1;
    if (j->project)
        return 0;
    conferr_pathf(path, sizeof path, "jobs.%s.activity_id", j->name);
    for (size_t i = 0; i < idx; i++)
        if (strcmp(conf->jobs[i].activity_id, j->activity_id) == 0)
            return conferr_fail(err, path, "same activity ID as jobs.%s: each job needs its own",
                                conf->jobs[i].name);
    return 0;
}

static int link_client_jobs(struct conf *conf, struct conf_client *c, struct conf_error *err)
{
    char path[CONF_ERR_PATH_MAX], names[LIST_MAX];

    for (size_t i = 0; i < c->n_jobs; i++) {
        conferr_pathf(path, sizeof path, "clients.%s.jobs[%zu]", c->name, i);
        if (!(c->jobs[i] = conf_job_find(conf, c->job_names[i]))) {
            job_names(names, sizeof names, conf);
            return conferr_fail(err, path, "no job named \"%s\" (defined: %s)", c->job_names[i],
                                names[0] ? names : "none");
        }
        for (size_t k = 0; k < i; k++)
            if (c->jobs[k] == c->jobs[i])
                return conferr_fail(err, path, "job \"%s\" is listed twice", c->job_names[i]);
    }
    return 0;
}

static int check_client(struct conf *conf, size_t idx, struct conf_error *err)
{
    /* SHA-256 of the empty string: a client configured with no key at all. */
    static const unsigned char empty[32] = {
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
        0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
    };
    struct conf_client *c = &conf->clients[idx];
    char path[CONF_ERR_PATH_MAX];

    if (link_client_jobs(conf, c, err) < 0)
        return -1;
    conferr_pathf(path, sizeof path, "clients.%s.api_key_sha256", c->name);
    if (memcmp(c->api_key_sha256, empty, 32) == 0)
        return conferr_fail(err, path, "is the SHA-256 of an empty key");
    for (size_t i = 0; i < idx; i++)
        if (memcmp(conf->clients[i].api_key_sha256, c->api_key_sha256, 32) == 0)
            return conferr_fail(err, path,
                                "same API key as clients.%s: each client needs its own key",
                                conf->clients[i].name);
    return 0;
}

static int check_tokens(const struct conf_tokens *t, struct conf_error *err)
{
    if (t->retry_min_ms > t->retry_max_ms)
        return conferr_fail(err, "tokens.retry_min_ms", "must not exceed tokens.retry_max_ms (%u)",
                            t->retry_max_ms);
    if (t->cache_key_file)
        return confcheck_file(t->cache_key_file, "tokens.cache_key_file", err);
    return 0;
}

int confcheck_workers(const struct conf *conf, unsigned workers, struct conf_error *err)
{
    if (workers <= 1 || conf->packages.shared)
        return 0;
    for (size_t i = 0; i < conf->n_jobs; i++)
        if (conf->jobs[i].project)
            return conferr_fail(err, "workers", "%u workers with a package job (jobs.%s) need "
                                "packages.shared: the import lock and Idempotency-Key records "
                                "must live in Redis to hold across workers; set \"packages\": "
                                "{\"shared\": true} or \"workers\": 1", workers,
                                conf->jobs[i].name);
    return 0;
}

int confcheck_run(struct conf *conf, struct conf_error *err)
{
    if (check_public_url(conf, err) < 0 || check_tokens(&conf->tokens, err) < 0 ||
        confcheck_workers(conf, conf->workers, err) < 0) /* "auto" (0): once resolved */
        return -1;
    for (size_t i = 0; i < conf->n_envs; i++)
        if (check_env(&conf->envs[i], err) < 0)
            return -1;
    for (size_t i = 0; i < conf->n_jobs; i++)
        if (check_job(conf, i, err) < 0)
            return -1;
    for (size_t i = 0; i < conf->n_clients; i++)
        if (check_client(conf, i, err) < 0)
            return -1;
    return 0;
}
