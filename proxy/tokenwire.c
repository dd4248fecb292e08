/* tokenwire: the token manager's I/O: form posts on upstream_fetch and the Redis share. */
#include "tokenwire.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "conf.h"
#include "log.h"
#include "rconn.h"
#include "seal.h"
#include "secretfile.h"
#include "token.h"
#include "tokenshare.h"
#include "upstream.h"

#define TOKEN_RESPONSE_MAX (64 * 1024)
#define PASSWORD_MAX 4096

/* One form post in flight. */
struct post {
    struct tokenwire *tw;        /* borrowed */
    struct post *prev, *next;
    struct upstream_xfer *x;     /* owned by upstream until on_done */
    token_http_done *done;
    void *arg;                   /* borrowed: the token manager's request */
};

struct tokenwire {
    struct upstream *up;         /* borrowed */
    struct evdns_base *dns;      /* owned, only with Redis */
    struct rconn *rc;            /* owned, only with Redis */
    struct tokenshare *ts;       /* owned, only with Redis */
    struct token_mgr *mgr;       /* owned */
    struct post *posts;          /* owned list */
};

static void post_unlink(struct post *p)
{
    struct tokenwire *tw = p->tw;

    if (p->prev)
        p->prev->next = p->next;
    else
        tw->posts = p->next;
    if (p->next)
        p->next->prev = p->prev;
}

static void on_post_done(void *arg, const struct upstream_done *d)
{
    struct post *p = arg;
    int status = d->result == UPSTREAM_OK ? d->status : TOKEN_HTTP_FAILED;

    post_unlink(p);
    p->done(p->arg, status, d->body ? d->body : "", d->body ? d->body_len : 0);
    if (d->body) /* the response holds a token: wipe upstream's buffer before it is freed */
        explicit_bzero((char *)d->body, d->body_len);
    free(p);
}

static int post_form(void *ctx, const char *url, const char *body, size_t len,
                     unsigned timeout_ms, token_http_done *done, void *arg)
{
    static const char *const hdrs[] = { "Content-Type: application/x-www-form-urlencoded",
                                        "Accept: application/json" };
    struct tokenwire *tw = ctx;
    struct upstream_timeouts to = { .connect_ms = timeout_ms, .total_ms = timeout_ms };
    struct post *p = calloc(1, sizeof *p);

    if (!p)
        return -1;
    p->tw = tw;
    p->done = done;
    p->arg = arg;
    /* upstream_fetch copies the body into its own buffer, which it frees after sending */
    p->x = upstream_fetch(tw->up, "POST", url, hdrs, 2, body, len, TOKEN_RESPONSE_MAX, to,
                          on_post_done, p);
    if (!p->x) {
        free(p);
        return -1;
    }
    p->next = tw->posts;
    if (tw->posts)
        tw->posts->prev = p;
    tw->posts = p;
    return 0;
}

static void post_cancel(void *ctx, void *arg)
{
    struct tokenwire *tw = ctx;

    for (struct post *p = tw->posts; p; p = p->next) {
        if (p->arg == arg) {
            post_unlink(p);
            upstream_abort(p->x);
            free(p);
            return;
        }
    }
}

static const struct token_share_ops share_ops = {
    .ctx = NULL, /* set per instance */
    .get = tokenshare_get,
    .lock = tokenshare_lock,
    .put = tokenshare_put,
    .unlock = tokenshare_unlock,
};

/* Reads the Redis password named by the config into *out (secretfile buffer or a copy of
 * the environment variable). Returns 0 (out NULL when there is none) or -1. */
static int redis_password(const struct conf_redis *r, char **out, size_t *len)
{
    char err[256];

    *out = NULL;
    *len = 0;
    if (r->password_source == CONF_PASSWORD_FILE) {
        if (secretfile_read(r->password_file, PASSWORD_MAX, 0, out, len, err, sizeof err) < 0) {
            log_msg(LOG_LVL_ERROR, "redis password: %s", err);
            return -1;
        }
        while (*len > 0 && ((*out)[*len - 1] == '\n' || (*out)[*len - 1] == '\r'))
            (*out)[--*len] = '\0';
    } else if (r->password_source == CONF_PASSWORD_ENV) {
        const char *v = getenv(r->password_env);
        if (!v || !(*out = strdup(v)))
            return -1;
        *len = strlen(v);
    }
    return 0;
}

static int open_share(struct tokenwire *tw, struct event_base *base, const struct conf *conf,
                      struct token_share_ops *ops)
{
    const struct conf_redis *r = &conf->redis;
    struct rconn_options ro = { 0 };
    char *pw = NULL;
    size_t pwlen = 0;

    if (redis_password(r, &pw, &pwlen) < 0)
        return -1;
    tw->dns = r->host ? evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS) : NULL;
    ro.host = r->host;
    ro.dns = tw->dns;
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
    tw->rc = rconn_new(base, &ro);
    secretfile_free(pw, pwlen);
    if (!tw->rc || !(tw->ts = tokenshare_new(tw->rc, NULL, 0)))
        return -1;
    *ops = share_ops;
    ops->ctx = tw->ts;
    return 0;
}

struct tokenwire *tokenwire_new(struct event_base *base, struct upstream *up,
                                const struct conf *conf)
{
    struct tokenwire *tw = calloc(1, sizeof *tw);
    struct token_options o = { 0 };
    struct token_share_ops ops;
    unsigned char key[SEAL_KEY_LEN];
    char err[256];

    if (!tw)
        return NULL;
    tw->up = up;
    token_options_from_conf(&o, &conf->tokens);
    o.transport = (struct token_transport){ .ctx = tw, .post_form = post_form,
                                            .cancel = post_cancel };
    if (conf->tokens.cache_key_file) {
        if (seal_key_load(conf->tokens.cache_key_file, key, err, sizeof err) < 0) {
            log_msg(LOG_LVL_ERROR, "tokens.cache_key_file: %s", err);
            goto fail;
        }
        if (open_share(tw, base, conf, &ops) < 0) {
            log_msg(LOG_LVL_ERROR, "cannot set up the shared token cache on Redis");
            goto fail;
        }
        o.share = &ops;
        o.seal_key = key;
    }
    tw->mgr = token_mgr_new(base, conf, &o);
    explicit_bzero(key, sizeof key);
    if (!tw->mgr)
        goto fail;
    return tw;
fail:
    explicit_bzero(key, sizeof key);
    tokenwire_free(tw);
    return NULL;
}

struct token_mgr *tokenwire_mgr(const struct tokenwire *tw)
{
    return tw->mgr;
}

int tokenwire_shared(const struct tokenwire *tw)
{
    return tw->ts != NULL;
}

void tokenwire_free(struct tokenwire *tw)
{
    if (!tw)
        return;
    token_mgr_free(tw->mgr);
    while (tw->posts) {
        struct post *p = tw->posts;
        post_unlink(p);
        upstream_abort(p->x);
        free(p);
    }
    tokenshare_free(tw->ts);
    rconn_free(tw->rc);
    if (tw->dns)
        evdns_base_free(tw->dns, 0);
    free(tw);
}
