/* redisopen: an rconn from the `redis` config block (see redisopen.h). */
#include "redisopen.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "secretfile.h"

#define PASSWORD_MAX 4096

/* Reads the Redis password named by the config into *out (secretfile buffer or a copy of
 * the environment variable). Returns 0 (out NULL when there is none) or -1. */
static int redis_password(const struct conf_redis *r, const char *who, char **out,
                          size_t *len)
{
    char err[256];

    *out = NULL;
    *len = 0;
    if (r->password_source == CONF_PASSWORD_FILE) {
        if (secretfile_read(r->password_file, PASSWORD_MAX, 0, out, len, err, sizeof err) < 0) {
            log_msg(LOG_LVL_ERROR, "%sredis password: %s", who, err);
            return -1;
        }
        while (*len > 0 && ((*out)[*len - 1] == '\n' || (*out)[*len - 1] == '\r'))
            (*out)[--*len] = '\0';
    } else if (r->password_source == CONF_PASSWORD_ENV) {
        const char *v = getenv(r->password_env);
        if (!v || !(*out = strdup(v))) {
            log_msg(LOG_LVL_ERROR, "%sredis.password_env %s is not set", who, r->password_env);
            return -1;
        }
        *len = strlen(v);
    }
    return 0;
}

struct rconn *redisopen_new(struct event_base *base, const struct conf_redis *r,
                            const char *who, struct evdns_base **dns)
{
    struct rconn_options ro = { 0 };
    struct rconn *rc;
    char *pw = NULL;
    size_t pwlen = 0;

    *dns = NULL;
    if (redis_password(r, who, &pw, &pwlen) < 0)
        return NULL;
    *dns = r->host ? evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS) : NULL;
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
    secretfile_free(pw, pwlen);
    return rc;
}
