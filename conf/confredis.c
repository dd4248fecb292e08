/* confredis: Redis URL parsing and the redis section's cross-field rules.
 * Invariant: on success exactly one of host and unix_path is set, or neither with
 * redis.sentinel (then every sentinel address is split into host and port). */
#include "confredis.h"

#include <stdlib.h>
#include <string.h>

#include "confcheck.h"
#include "conferr.h"

#define DEFAULT_PORT 6379
#define DEFAULT_SENTINEL_PORT 26379
#define DB_MAX 65535
#define SUN_PATH_MAX 107 /* sizeof(sockaddr_un.sun_path) - 1 on Linux */

/* Parses exactly `len` decimal digits into *out (at most max). Returns 0 or -1. */
static int parse_uint(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;

    if (len == 0 || len > 10)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_unix(struct conf_redis *r, const char *s, struct conf_error *err)
{
    size_t path_len = strcspn(s, "?");
    unsigned long db = 0;

    if (s[0] != '/')
        return conferr_fail(err, "redis.url", "a unix socket URL needs an absolute path: "
                            "unix:///run/redis/redis.sock");
    if (strchr(s, '#'))
        return conferr_fail(err, "redis.url", "must not have a fragment (#)");
    if (path_len > SUN_PATH_MAX)
        return conferr_fail(err, "redis.url",
                            "the socket path is longer than %d bytes", SUN_PATH_MAX);
    if (s[path_len] && (strncmp(s + path_len, "?db=", 4) != 0 ||
                        parse_uint(s + path_len + 4, strlen(s + path_len + 4), DB_MAX, &db) < 0))
        return conferr_fail(err, "redis.url", "the only query allowed is ?db=N (0 to %d)", DB_MAX);
    if (!(r->unix_path = strndup(s, path_len)))
        return conferr_fail(err, "redis.url", "out of memory");
    r->db = (int)db;
    return 0;
}

static int take_username(struct conf_redis *r, const char *s, size_t len, struct conf_error *err)
{
    if (memchr(s, ':', len))
        return conferr_fail(err, "redis.url",
                            "must not contain a password (config files get shared): name a file "
                            "in redis.password_file or a variable in redis.password_env");
    if (len == 0)
        return conferr_fail(err, "redis.url", "has an empty user name before '@'");
    if (memchr(s, '%', len))
        return conferr_fail(err, "redis.url", "percent-encoded user names are not supported: "
                            "use redis.username");
    if (r->username)
        return conferr_fail(err, "redis.username", "a user name is also given in redis.url: "
                            "set it in one place");
    if (!(r->username = strndup(s, len)))
        return conferr_fail(err, "redis.url", "out of memory");
    return 0;
}

/* host[:port] or [v6][:port], exactly `len` bytes, into *host (allocated) and *port
 * (def_port when absent); errors name `path`. */
static int parse_hostport(const char *s, size_t len, int def_port, char **host_out,
                          int *port_out, const char *path, struct conf_error *err)
{
    const char *end = s + len;
    bool v6 = len > 0 && s[0] == '[';
    const char *host_end = memchr(s, v6 ? ']' : ':', len);
    unsigned long port = (unsigned long)def_port;

    if (!host_end && v6)
        return conferr_fail(err, path, "has an unclosed '[' in the host");
    if (!host_end)
        host_end = end;
    const char *host = s + v6;
    if (!confcheck_host_ok(host, (size_t)(host_end - host), v6))
        return conferr_fail(err, path, "has a missing or invalid host");
    const char *p = host_end + v6;
    if (p < end && (*p != ':' || parse_uint(p + 1, (size_t)(end - p - 1), 65535, &port) < 0 ||
                    port == 0))
        return conferr_fail(err, path, "has an invalid port (1 to 65535)");
    if (!(*host_out = strndup(host, (size_t)(host_end - host))))
        return conferr_fail(err, path, "out of memory");
    *port_out = (int)port;
    return 0;
}

static int parse_tcp(struct conf_redis *r, const char *s, struct conf_error *err)
{
    size_t auth_len = strcspn(s, "/");
    const char *at = memchr(s, '@', auth_len);
    const char *hostport = at ? at + 1 : s;
    size_t hostport_len = (size_t)(s + auth_len - hostport);
    unsigned long db = 0;

    if (strpbrk(s, "?#"))
        return conferr_fail(err, "redis.url", "must not have a query or fragment (database: "
                            "redis://host:port/N)");
    if (at && take_username(r, s, (size_t)(at - s), err) < 0)
        return -1;
    if (r->sentinel.master_name && hostport_len > 0)
        return conferr_fail(err, "redis.url", "must not name a host when redis.sentinel is set "
                            "(the sentinels name the master): redis:// or rediss://[user@][/db]");
    if (!r->sentinel.master_name &&
        parse_hostport(hostport, hostport_len, DEFAULT_PORT, &r->host, &r->port, "redis.url",
                       err) < 0)
        return -1;
    const char *path = s + auth_len;
    if (path[0] == '/' && path[1] && parse_uint(path + 1, strlen(path + 1), DB_MAX, &db) < 0)
        return conferr_fail(err, "redis.url",
                            "the path must be a database number (0 to %d)", DB_MAX);
    r->db = (int)db;
    return 0;
}

static int parse_url(struct conf_redis *r, struct conf_error *err)
{
    const char *u = r->url;

    if (strncmp(u, "unix://", 7) == 0)
        return parse_unix(r, u + 7, err);
    if (strncmp(u, "rediss://", 9) == 0) {
        r->tls = true;
        return parse_tcp(r, u + 9, err);
    }
    if (strncmp(u, "redis://", 8) == 0)
        return parse_tcp(r, u + 8, err);
    return conferr_fail(err, "redis.url", "must start with redis://, rediss:// or unix://");
}

/* At most one of file and env (at `path`); sets *source. */
static int check_password(const char *file, const char *env, const char *path,
                          enum conf_password_source *source, struct conf_error *err)
{
    char sub[CONF_ERR_PATH_MAX];

    if (file && env)
        return conferr_fail(err, path, "set at most one of password_file and password_env");
    *source = file ? CONF_PASSWORD_FILE : env ? CONF_PASSWORD_ENV : CONF_PASSWORD_NONE;
    conferr_pathf(sub, sizeof sub, "%s.%s", path, file ? "password_file" : "password_env");
    if (file)
        return confcheck_file(file, sub, err);
    if (env)
        return confcheck_env_var(env, sub, err);
    return 0;
}

static int check_tls(struct conf_redis *r, struct conf_error *err)
{
    if (!r->tls && !r->sentinel.tls) {
        if (r->ca_file || r->server_name)
            return conferr_fail(err, "redis.tls", "TLS settings need a rediss:// URL "
                                "(or redis.sentinel.tls)");
        return 0;
    }
    if (r->ca_file && confcheck_file(r->ca_file, "redis.tls.ca_file", err) < 0)
        return -1;
    if (!r->server_name && r->host && !(r->server_name = strdup(r->host)))
        return conferr_fail(err, "redis.tls.server_name", "out of memory");
    return 0;
}

/* Splits each "host:port" (as filled) into host and port. */
static int check_sentinel(struct conf_redis *r, struct conf_error *err)
{
    struct conf_sentinel *s = &r->sentinel;
    char path[CONF_ERR_PATH_MAX];

    if (!s->master_name)
        return 0;
    if (r->unix_path)
        return conferr_fail(err, "redis.url", "must be redis:// or rediss:// when "
                            "redis.sentinel is set (the sentinels name a TCP address)");
    for (size_t i = 0; i < s->n_addrs; i++) {
        char *spec = s->addrs[i].host;
        conferr_pathf(path, sizeof path, "redis.sentinel.addresses[%zu]", i);
        s->addrs[i].host = NULL;
        int rc = parse_hostport(spec, strlen(spec), DEFAULT_SENTINEL_PORT, &s->addrs[i].host,
                                &s->addrs[i].port, path, err);
        free(spec);
        if (rc < 0)
            return -1;
    }
    if (!s->tls_set)
        s->tls = r->tls;
    return check_password(s->password_file, s->password_env, "redis.sentinel",
                          &s->password_source, err);
}

int confredis_check(struct conf_redis *r, struct conf_error *err)
{
    if (parse_url(r, err) < 0 ||
        check_password(r->password_file, r->password_env, "redis", &r->password_source, err) < 0 ||
        check_sentinel(r, err) < 0)
        return -1;
    return check_tls(r, err);
}
