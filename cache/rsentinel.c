/* rsentinel: asks Redis Sentinels for the master's address (see rsentinel.h).
 * Invariant: at most one try (one sentinel connection, s->ac) exists at a time, and a
 * hiredict callback acts only if its context is still s->ac, so a connection being torn
 * down never advances the ask. */
#include "rsentinel.h"

#include "log.h"
#include "revent.h"
#include "rtls.h"

#include <event2/event.h>
#include <hiredict/async.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REPLY_BYTES (64u << 10)
#define HOST_MAX 256

struct sentinel {
    char *host; /* owned */
    int port;
    char where[HOST_MAX + 16];
    char logged[160];  /* the failure last logged for it: each distinct one is logged once */
};

struct rsentinel {
    struct event_base *base; /* borrowed */
    struct sentinel *list;   /* owned array */
    size_t n;
    char *master_name;       /* owned */
    char *username;          /* owned */
    char *password;          /* owned, wiped on free */
    char *server_name;       /* owned; NULL = each sentinel's host */
    SSL_CTX *ssl_ctx;        /* owned; NULL without TLS */
    int timeout_ms;
    redictAsyncContext *ac;  /* owned: the current try's connection */
    SSL *ssl;                /* borrowed from ac, which owns it; NULL without TLS */
    struct event *ev;        /* owned: start of an ask, then each try's deadline */
    rsentinel_cb *cb;        /* set while an ask is in flight */
    void *arg;               /* borrowed: the caller's */
    size_t start, tried;     /* this ask began at list[start]; tries made so far */
    size_t last;             /* index of the sentinel that answered last */
    bool answered;           /* `last` is meaningful */
    char why[256];           /* what the latest failed try saw */
};

/* ---- pure helpers ---- */

int rsentinel_parse_master(const redictReply *r, char *host, size_t cap, int *port,
                           char *why, size_t whylen)
{
    char *end = NULL;

    if (!r) {
        snprintf(why, whylen, "no reply");
        return -1;
    }
    if (r->type == REDICT_REPLY_NIL) {
        snprintf(why, whylen, "the sentinel does not know this master name");
        return -1;
    }
    if (r->type == REDICT_REPLY_ERROR) {
        snprintf(why, whylen, "sentinel error: %.160s", r->str);
        return -1;
    }
    if (r->type != REDICT_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDICT_REPLY_STRING || r->element[1]->type != REDICT_REPLY_STRING ||
        r->element[0]->len == 0 || r->element[0]->len >= cap ||
        memchr(r->element[0]->str, '\0', r->element[0]->len)) {
        snprintf(why, whylen, "malformed sentinel reply");
        return -1;
    }
    long p = strtol(r->element[1]->str, &end, 10);
    if (r->element[1]->len == 0 || *end || p < 1 || p > 65535) {
        snprintf(why, whylen, "malformed port in the sentinel reply");
        return -1;
    }
    memcpy(host, r->element[0]->str, r->element[0]->len);
    host[r->element[0]->len] = '\0';
    *port = (int)p;
    return 0;
}

enum rsentinel_role rsentinel_parse_role(const redictReply *r)
{
    if (!r || r->type != REDICT_REPLY_ARRAY || r->elements < 1 ||
        (r->element[0]->type != REDICT_REPLY_STRING && r->element[0]->type != REDICT_REPLY_STATUS))
        return RSENTINEL_UNKNOWN;
    const char *role = r->element[0]->str;
    if (strcmp(role, "master") == 0)
        return RSENTINEL_MASTER;
    if (strcmp(role, "slave") == 0 || strcmp(role, "replica") == 0)
        return RSENTINEL_REPLICA;
    if (strcmp(role, "sentinel") == 0)
        return RSENTINEL_SENTINEL;
    return RSENTINEL_UNKNOWN;
}

bool rsentinel_is_readonly(const redictReply *r)
{
    /* a script that writes on a replica fails with the same code, possibly wrapped */
    return r && r->type == REDICT_REPLY_ERROR && r->str &&
           (strncmp(r->str, "READONLY ", 9) == 0 || strstr(r->str, "-READONLY ") ||
            strstr(r->str, "READONLY You can't write"));
}

void rsentinel_format_addr(char *buf, size_t cap, const char *host, int port)
{
    if (strchr(host, ':'))
        snprintf(buf, cap, "[%s]:%d", host, port);
    else
        snprintf(buf, cap, "%s:%d", host, port);
}

/* ---- one try ---- */

static void next_try(struct rsentinel *s);

/* Tears the current connection down; hiredict defers the free while inside its callback. */
static void close_try(struct rsentinel *s)
{
    redictAsyncContext *ac = s->ac;

    s->ac = NULL;
    s->ssl = NULL;
    if (ac)
        redictAsyncFree(ac);
}

/* Why the current try's connection went away: a certificate refusal if there was one. */
static void lost_reason(const struct rsentinel *s, const redictAsyncContext *ac, char *why,
                        size_t len)
{
    if (!(s->ssl && rtls_verify_failure(s->ssl, why, len)))
        snprintf(why, len, "%s", ac->c.err ? ac->c.errstr : "connection closed");
}

static void finish(struct rsentinel *s, const char *host, int port)
{
    rsentinel_cb *cb = s->cb;

    close_try(s);
    evtimer_del(s->ev);
    s->cb = NULL;
    if (host)
        cb(s->arg, host, port, NULL);
    else
        cb(s->arg, NULL, 0, s->why);
}

static void try_failed(struct rsentinel *s, const char *why)
{
    struct sentinel *t = &s->list[(s->start + s->tried - 1) % s->n];

    snprintf(s->why, sizeof(s->why), "sentinel %.100s: %.140s", t->where, why);
    if (strncmp(t->logged, why, sizeof(t->logged) - 1) != 0) {
        snprintf(t->logged, sizeof(t->logged), "%s", why);
        log_json(LOG_LVL_WARN, "redis sentinel unusable",
                 json_pack("{s:s,s:s}", "sentinel", t->where, "error", why));
    }
    close_try(s);
    next_try(s);
}

static void on_master(redictAsyncContext *ac, void *reply, void *priv)
{
    struct rsentinel *s = priv;
    char host[HOST_MAX], why[200];
    int port = 0;

    if (ac != s->ac || !s->cb)
        return;
    if (rsentinel_parse_master(reply, host, sizeof(host), &port, why, sizeof(why)) < 0) {
        if (!reply)
            lost_reason(s, ac, why, sizeof(why));
        try_failed(s, why);
        return;
    }
    s->last = (s->start + s->tried - 1) % s->n;
    s->answered = true;
    s->list[s->last].logged[0] = '\0';
    finish(s, host, port);
}

static void on_auth(redictAsyncContext *ac, void *reply, void *priv)
{
    struct rsentinel *s = priv;
    const redictReply *r = reply;
    char why[200];

    if (ac != s->ac || !s->cb || !r || r->type != REDICT_REPLY_ERROR)
        return; /* success, or a loss that on_master reports */
    snprintf(why, sizeof(why), "AUTH refused: %.160s", r->str);
    try_failed(s, why);
}

static void on_connect(const redictAsyncContext *ac, int status)
{
    struct rsentinel *s = ac->data;
    char why[200];

    if (status != REDICT_OK && ac == s->ac && s->cb) {
        lost_reason(s, ac, why, sizeof(why));
        try_failed(s, why);
    }
}

static void on_disconnect(const redictAsyncContext *ac, int status)
{
    struct rsentinel *s = ac->data;
    char why[200];

    if (ac == s->ac && s->cb) {
        lost_reason(s, ac, why, sizeof(why));
        try_failed(s, why);
    }
}

static void on_overflow(redictAsyncContext *ac)
{
    struct rsentinel *s = ac->data;

    if (ac == s->ac && s->cb)
        try_failed(s, "reply too large");
}

static int send_question(struct rsentinel *s, redictAsyncContext *ac)
{
    int rc = REDICT_OK;

    if (s->password) {
        const char *argv[3] = { "AUTH", s->username, s->password };
        if (s->username)
            rc |= redictAsyncCommandArgv(ac, on_auth, s, 3, argv, NULL);
        else
            rc |= redictAsyncCommand(ac, on_auth, s, "AUTH %s", s->password);
    }
    rc |= redictAsyncCommand(ac, on_master, s, "SENTINEL get-master-addr-by-name %s",
                             s->master_name);
    return rc == REDICT_OK ? 0 : -1;
}

/* Opens the connection of one try. Returns 0, or -1 with why set (nothing left open). */
static int open_try(struct rsentinel *s, const struct sentinel *t, char *why, size_t len)
{
    redictOptions ro = { 0 };
    redictAsyncContext *ac = NULL;

    REDICT_OPTIONS_SET_TCP(&ro, t->host, t->port);
    if (!(ac = redictAsyncConnectWithOptions(&ro))) {
        snprintf(why, len, "connect: out of memory");
        return -1;
    }
    if (ac->err)
        snprintf(why, len, "connect: %s", ac->errstr);
    else if (s->ssl_ctx && !(s->ssl = rtls_attach(ac, s->ssl_ctx,
                                                  s->server_name ? s->server_name : t->host,
                                                  why, len)))
        ;
    else if (revent_attach(ac, s->base, MAX_REPLY_BYTES, on_overflow) != 0)
        snprintf(why, len, "connect: cannot attach to the event loop");
    else {
        ac->data = s;
        redictAsyncSetConnectCallback(ac, on_connect);
        redictAsyncSetDisconnectCallback(ac, on_disconnect);
        s->ac = ac;
        if (send_question(s, ac) == 0)
            return 0;
        s->ac = NULL;
        snprintf(why, len, "cannot queue the question");
    }
    s->ssl = NULL;
    redictAsyncFree(ac);
    return -1;
}

/* Starts the next untried sentinel, or reports failure once all were tried. Runs only
 * from the event loop (a timer or a hiredict callback), never inside rsentinel_ask. */
static void next_try(struct rsentinel *s)
{
    char why[200];

    while (s->tried < s->n) {
        const struct sentinel *t = &s->list[(s->start + s->tried) % s->n];
        struct timeval tv = { .tv_sec = s->timeout_ms / 1000,
                              .tv_usec = (s->timeout_ms % 1000) * 1000 };
        s->tried++;
        if (open_try(s, t, why, sizeof(why)) == 0) {
            evtimer_add(s->ev, &tv);
            return;
        }
        snprintf(s->why, sizeof(s->why), "sentinel %.100s: %.140s", t->where, why);
    }
    finish(s, NULL, 0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rsentinel *s = arg;
    char why[64];

    if (!s->cb)
        return;
    if (!s->ac) { /* the deferred start of an ask */
        next_try(s);
        return;
    }
    snprintf(why, sizeof(why), "no answer within %d ms", s->timeout_ms);
    try_failed(s, why);
}

/* ---- lifecycle ---- */

int rsentinel_ask(struct rsentinel *s, rsentinel_cb *cb, void *arg)
{
    struct timeval now = { 0, 0 };

    if (s->cb || !cb)
        return -1;
    s->cb = cb;
    s->arg = arg;
    s->start = s->answered ? s->last : 0;
    s->tried = 0;
    s->why[0] = '\0';
    evtimer_add(s->ev, &now);
    return 0;
}

void rsentinel_cancel(struct rsentinel *s)
{
    s->cb = NULL;
    if (s->ev)
        evtimer_del(s->ev);
    close_try(s);
}

const char *rsentinel_last(const struct rsentinel *s)
{
    return s->answered ? s->list[s->last].where : "";
}

static char *dup_opt(const char *v, bool *oom)
{
    char *copy = v && *v ? strdup(v) : NULL;

    if (v && *v && !copy)
        *oom = true;
    return copy;
}

static int copy_options(struct rsentinel *s, const struct rsentinel_options *o)
{
    bool oom = false;

    s->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 2000;
    s->master_name = dup_opt(o->master_name, &oom);
    s->username = dup_opt(o->username, &oom);
    s->password = dup_opt(o->password, &oom);
    s->server_name = dup_opt(o->tls_server_name, &oom);
    if (!(s->list = calloc(o->n_addrs, sizeof(*s->list))))
        return -1;
    for (size_t i = 0; i < o->n_addrs; i++, s->n++) {
        s->list[i].host = dup_opt(o->addrs[i].host, &oom);
        s->list[i].port = o->addrs[i].port;
        if (s->list[i].host)
            rsentinel_format_addr(s->list[i].where, sizeof(s->list[i].where), s->list[i].host,
                                  s->list[i].port);
    }
    return oom ? -1 : 0;
}

static const char *check_options(const struct rsentinel_options *o)
{
    if (!o->master_name || !*o->master_name)
        return "redis sentinel: no master name";
    if (!o->addrs || o->n_addrs == 0)
        return "redis sentinel: no sentinel address";
    for (size_t i = 0; i < o->n_addrs; i++)
        if (!o->addrs[i].host || !*o->addrs[i].host || strlen(o->addrs[i].host) >= HOST_MAX ||
            o->addrs[i].port < 1 || o->addrs[i].port > 65535)
            return "redis sentinel: invalid sentinel address";
    return NULL;
}

struct rsentinel *rsentinel_new(struct event_base *base, const struct rsentinel_options *o)
{
    const char *bad = check_options(o);
    struct rsentinel *s = NULL;
    char err[192];

    if (bad) {
        log_msg(LOG_LVL_ERROR, "%s", bad);
        return NULL;
    }
    if (!(s = calloc(1, sizeof(*s))))
        return NULL;
    s->base = base;
    if (copy_options(s, o) != 0 || !(s->ev = evtimer_new(base, on_timer, s)))
        goto fail;
    if (o->tls && !(s->ssl_ctx = rtls_ctx_new(o->tls_ca_file, err, sizeof(err)))) {
        log_json(LOG_LVL_ERROR, "redis sentinel tls setup failed", json_pack("{s:s}", "error", err));
        goto fail;
    }
    return s;
fail:
    rsentinel_free(s);
    return NULL;
}

void rsentinel_free(struct rsentinel *s)
{
    if (!s)
        return;
    rsentinel_cancel(s);
    if (s->ev)
        event_free(s->ev);
    SSL_CTX_free(s->ssl_ctx);
    if (s->password)
        OPENSSL_cleanse(s->password, strlen(s->password));
    for (size_t i = 0; i < s->n; i++)
        free(s->list[i].host);
    free(s->list);
    free(s->master_name);
    free(s->username);
    free(s->password);
    free(s->server_name);
    free(s);
}
