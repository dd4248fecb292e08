/* redisopen: an rconn from the `redis` config block (see redisopen.h). */
#include "redisopen.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rsentinel.h"
#include "secretfile.h"

#define PASSWORD_MAX 4096

/* Reads the password named by source/file/env (of config section `what`) into *out
 * (secretfile buffer or a copy of the environment variable). Returns 0 (out NULL when
 * there is none) or -1. */
static int redis_password(enum conf_password_source source, const char *file, const char *env,
                          const char *what, const char *who, char **out, size_t *len)
{
    char err[256];

    *out = NULL;
    *len = 0;
    if (source == CONF_PASSWORD_FILE) {
        if (secretfile_read(file, PASSWORD_MAX, 0, out, len, err, sizeof err) < 0) {
            log_msg(LOG_LVL_ERROR, "%s%s password: %s", who, what, err);
            return -1;
        }
        while (*len > 0 && ((*out)[*len - 1] == '\n' || (*out)[*len - 1] == '\r'))
            (*out)[--*len] = '\0';
    } else if (source == CONF_PASSWORD_ENV) {
        const char *v = getenv(env);
        if (!v || !(*out = strdup(v))) {
            log_msg(LOG_LVL_ERROR, "%s%s.password_env %s is not set", who, what, env);
            return -1;
        }
        *len = strlen(v);
    }
    return 0;
}

/* The rsentinel options of r->sentinel; addrs has room for every address. */
static void sentinel_options(const struct conf_redis *r, const char *password,
                             struct rsentinel_addr *addrs, struct rsentinel_options *so)
{
    const struct conf_sentinel *cs = &r->sentinel;

    for (size_t i = 0; i < cs->n_addrs; i++)
        addrs[i] = (struct rsentinel_addr){ .host = cs->addrs[i].host, .port = cs->addrs[i].port };
    *so = (struct rsentinel_options){
        .master_name = cs->master_name, .addrs = addrs, .n_addrs = cs->n_addrs,
        .username = cs->username, .password = password, .tls = cs->tls,
        .tls_ca_file = r->ca_file, .tls_server_name = r->server_name,
        .timeout_ms = (int)r->connect_timeout_ms,
    };
}

struct rconn *redisopen_new(struct event_base *base, const struct conf_redis *r,
                            const char *who, struct evdns_base **dns)
{
    struct rconn_options ro = { 0 };
    struct rsentinel_options so;
    struct rsentinel_addr *addrs = NULL;
    struct rconn *rc = NULL;
    char *pw = NULL, *spw = NULL;
    size_t pwlen = 0, spwlen = 0;

    *dns = NULL;
    if (redis_password(r->password_source, r->password_file, r->password_env, "redis", who,
                       &pw, &pwlen) < 0)
        return NULL;
    if (r->sentinel.master_name) {
        if (redis_password(r->sentinel.password_source, r->sentinel.password_file,
                           r->sentinel.password_env, "redis.sentinel", who, &spw, &spwlen) < 0 ||
            !(addrs = calloc(r->sentinel.n_addrs, sizeof(*addrs))))
            goto out;
        sentinel_options(r, spw, addrs, &so);
        ro.sentinel = &so;
    }
    *dns = r->host || ro.sentinel ? evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS) : NULL;
    ro.host = r->host;
    ro.dns = *dns;
    ro.port = r->port;
    ro.unix_path = r->unix_path;
    ro.db = r->db;
    ro.username = r->username;
    ro.password = pw;
    ro.tls = r->tls;
    ro.tls_ca_file = r->ca_file;
    ro.tls_server_name = r->server_name;
    ro.connect_timeout_ms = (int)r->connect_timeout_ms;
    ro.command_timeout_ms = (int)r->command_timeout_ms;
    rc = rconn_new(base, &ro);
out:
    secretfile_free(pw, pwlen);
    secretfile_free(spw, spwlen);
    free(addrs);
    return rc;
}
