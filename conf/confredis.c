/* confredis: Redis URL parsing and the redis section's cross-field rules.
 * Invariant: on success exactly one of host and unix_path is set. */
#include "confredis.h"

#include <stdlib.h>
#include <string.h>

#include "confcheck.h"
#include "conferr.h"

#define DEFAULT_PORT 6379
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

/* host[:port] or [v6][:port], exactly `len` bytes. */
static int parse_hostport(struct conf_redis *r, const char *s, size_t len, struct conf_error *err)
{
    const char *end = s + len;
    bool v6 = len > 0 && s[0] == '[';
    const char *host_end = memchr(s, v6 ? ']' : ':', len);
    unsigned long port = DEFAULT_PORT;

    if (!host_end && v6)
        return conferr_fail(err, "redis.url", "has an unclosed '[' in the host");
    if (!host_end)
        host_end = end;
    const char *host = s + v6;
    if (!confcheck_host_ok(host, (size_t)(host_end - host), v6))
        return conferr_fail(err, "redis.url", "has a missing or invalid host");
    const char *p = host_end + v6;
    if (p < end && (*p != ':' || parse_uint(p + 1, (size_t)(end - p - 1), 65535, &port) < 0 ||
                    port == 0))
        return conferr_fail(err, "redis.url", "has an invalid port (1 to 65535)");
    if (!(r->host = strndup(host, (size_t)(host_end - host))))
        return conferr_fail(err, "redis.url", "out of memory");
    r->port = (int)port;
    return 0;
}

static int parse_tcp(struct conf_redis *r, const char *s, struct conf_error *err)
{
    size_t auth_len = strcspn(s, "/");
    const char *at = memchr(s, '@', auth_len);
    const char *hostport = at ? at + 1 : s;
    unsigned long db = 0;

    if (strpbrk(s, "?#"))
        return conferr_fail(err, "redis.url", "must not have a query or fragment (database: "
                            "redis://host:port/N)");
    if (at && take_username(r, s, (size_t)(at - s), err) < 0)
        return -1;
    if (parse_hostport(r, hostport, (size_t)(s + auth_len - hostport), err) < 0)
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

static int check_password(struct conf_redis *r, struct conf_error *err)
{
    if (r->password_file && r->password_env)
        return conferr_fail(err, "redis", "set at most one of password_file and password_env");
    if (r->password_file) {
        r->password_source = CONF_PASSWORD_FILE;
        return confcheck_file(r->password_file, "redis.password_file", err);
    }
    if (r->password_env) {
        r->password_source = CONF_PASSWORD_ENV;
        return confcheck_env_var(r->password_env, "redis.password_env", err);
    }
    r->password_source = CONF_PASSWORD_NONE;
    return 0;
}

static int check_tls(struct conf_redis *r, struct conf_error *err)
{
    if (!r->tls) {
        if (r->ca_file || r->server_name)
            return conferr_fail(err, "redis.tls", "TLS settings need a rediss:// URL");
        return 0;
    }
    if (r->ca_file && confcheck_file(r->ca_file, "redis.tls.ca_file", err) < 0)
        return -1;
    if (!r->server_name && !(r->server_name = strdup(r->host)))
        return conferr_fail(err, "redis.tls.server_name", "out of memory");
    return 0;
}

int confredis_check(struct conf_redis *r, struct conf_error *err)
{
    if (parse_url(r, err) < 0 || check_password(r, err) < 0)
        return -1;
    return check_tls(r, err);
}
