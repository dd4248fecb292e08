/* admin: the admin listener: access check, then the route table. */
#include "admin.h"

#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>

#include "adminauth.h"
#include "adminroutes.h"
#include "conf.h"
#include "conn_server.h"
#include "log.h"
#include "redisopen.h"
#include "reply.h"

struct admin {
    struct conn_server *server;    /* owned */
    struct rconn *rc;              /* owned; NULL without Redis */
    struct evdns_base *dns;        /* owned; NULL unless Redis is named by a host name */
    struct admin_deps deps;
    struct adminauth_token token;
};

static void on_request(struct conn_req *req, void *arg)
{
    struct admin *a = arg;
    const struct http1_head *h = conn_req_head(req);
    const struct http1_header *auth = http1_header_find(h, "Authorization");
    enum adminauth_verdict v = adminauth_check(&a->token, conn_req_client(req),
                                               auth ? auth->value : NULL,
                                               auth ? auth->value_len : 0);

    if (v == ADMINAUTH_MISSING) {
        reply_error(req, 401, "admin_unauthorized", "send the admin token as Authorization: "
                    "Bearer <token>, or connect from loopback");
        return;
    }
    if (v != ADMINAUTH_OK) {
        reply_error(req, 403, "admin_forbidden", "the admin token is wrong, or none is "
                    "configured (admin.token_file) for peers other than loopback");
        return;
    }
    const struct adminroutes_route *r = adminroutes_find(h->target, h->path_len);
    if (!r)
        reply_error(req, 404, "not_found", "no admin route for this path");
    else if (!adminroutes_allows(r, h->method_name))
        reply_method_not_allowed(req, r->methods);
    else
        r->handle(&a->deps, req);
}

struct admin *admin_new(struct event_base *base, const struct conn_options *opt,
                        const struct admin_deps *deps)
{
    struct admin *a = calloc(1, sizeof *a);
    struct conn_options o = *opt;
    char err[512] = "";

    if (!a)
        return NULL;
    a->deps = *deps;
    a->deps.token = &a->token;
    o.reuseport = false; /* one admin listener per process */
    if (adminauth_load(deps->conf->admin.token_file, &a->token, err, sizeof err) < 0) {
        log_msg(LOG_LVL_ERROR, "admin.token_file: %s", err);
        free(a);
        return NULL;
    }
    if (deps->conf->redis.url &&
        !(a->rc = a->deps.rc = redisopen_new(base, &deps->conf->redis, "admin: ", &a->dns))) {
        admin_free(a);
        return NULL;
    }
    if (!(a->server = conn_server_new(base, &o, on_request, a))) {
        admin_free(a);
        return NULL;
    }
    return a;
}

int admin_listen(struct admin *a, char *bound, size_t bound_len)
{
    const struct conf_admin *c = &a->deps.conf->admin;

    return conn_server_listen(a->server, c->listen_host, c->listen_port, bound, bound_len);
}

void admin_set_conf(struct admin *a, const struct conf *conf)
{
    a->deps.conf = conf;
}

void admin_set_drain_flag(struct admin *a, atomic_bool *flag)
{
    a->deps.draining = flag;
}

void admin_set_stats(struct admin *a, const struct adminstats *stats)
{
    a->deps.stats = stats;
}

static void on_drained(void *arg)
{
    (void)arg;
}

void admin_drain(struct admin *a)
{
    conn_server_drain(a->server, 0, on_drained, a);
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    conn_server_free(a->server); /* requests end first: then pending Redis calls */
    rconn_free(a->rc);
    if (a->dns)
        evdns_base_free(a->dns, 0);
    explicit_bzero(&a->token, sizeof a->token);
    free(a);
}
