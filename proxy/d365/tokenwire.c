/* tokenwire: the token manager's I/O: form posts and managed identity GETs on
 * upstream_fetch, and the Redis share. */
#include "tokenwire.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "conf.h"
#include "log.h"
#include "rconn.h"
#include "redisopen.h"
#include "seal.h"
#include "token.h"
#include "tokenshare.h"
#include "upstream.h"

#define TOKEN_RESPONSE_MAX (64 * 1024)

/* One form post in flight. */
struct post {
    struct tokenwire *tw;        /* borrowed */
    struct post *prev, *next;
    struct upstream_xfer *x;     /* owned by upstream until on_done */
    token_http_done *done;
    void *arg;                   /* borrowed: the token manager's request */
};

/* A share operation asked for before Redis answered for the first time: replayed when the
 * connection comes up, or failed (each instance then fetches for itself) when the first
 * connect window ends. Without this every instance would fetch its own token at start. */
enum pend_kind { PEND_GET, PEND_LOCK, PEND_PUT, PEND_UNLOCK };

struct pend {
    struct pend *next;
    enum pend_kind kind;
    char *name, *owner, *blob;   /* owned copies; blob is sealed (no plaintext token) */
    size_t len;
    unsigned ms;
    token_share_done *done;
    void *arg;                   /* borrowed */
};

struct tokenwire {
    struct upstream *up;         /* borrowed */
    struct pend *pend;           /* owned queue, newest first */
    struct event *settle;        /* owned: end of the first connect window */
    bool settled;                /* Redis answered once, or the window ended */
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

/* Starts one token request (a form POST to Entra or a managed identity GET). */
static int start(struct tokenwire *tw, const char *method, const char *url,
                 const char *const *hdrs, size_t n, const char *body, size_t len,
                 unsigned timeout_ms, token_http_done *done, void *arg)
{
    struct upstream_timeouts to = { .connect_ms = timeout_ms, .total_ms = timeout_ms };
    struct post *p = calloc(1, sizeof *p);

    if (!p)
        return -1;
    p->tw = tw;
    p->done = done;
    p->arg = arg;
    /* upstream_fetch copies the body and headers into its own buffers */
    p->x = upstream_fetch(tw->up, method, url, hdrs, n, body, len, TOKEN_RESPONSE_MAX, to,
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

static int post_form(void *ctx, const char *url, const char *body, size_t len,
                     unsigned timeout_ms, token_http_done *done, void *arg)
{
    static const char *const hdrs[] = { "Content-Type: application/x-www-form-urlencoded",
                                        "Accept: application/json" };

    return start(ctx, "POST", url, hdrs, 2, body, len, timeout_ms, done, arg);
}

/* Managed identity: IMDS or IDENTITY_ENDPOINT (its header lines come from auth/). */
static int get_token(void *ctx, const char *url, const char *const *hdrs, size_t n,
                     unsigned timeout_ms, token_http_done *done, void *arg)
{
    return start(ctx, "GET", url, hdrs, n, NULL, 0, timeout_ms, done, arg);
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

static int run_op(struct tokenwire *tw, const struct pend *p)
{
    switch (p->kind) {
    case PEND_GET: return tokenshare_get(tw->ts, p->name, p->done, p->arg);
    case PEND_LOCK: return tokenshare_lock(tw->ts, p->name, p->owner, p->ms, p->done, p->arg);
    case PEND_PUT:
        return tokenshare_put(tw->ts, p->name, p->blob, p->len, p->ms, p->done, p->arg);
    case PEND_UNLOCK: return tokenshare_unlock(tw->ts, p->name, p->owner, p->done, p->arg);
    }
    return -1;
}

static void pend_free(struct pend *p)
{
    free(p->name);
    free(p->owner);
    free(p->blob);
    free(p);
}

/* Replays (connected) or fails (window over) the queued operations, oldest first. */
static void settle(struct tokenwire *tw, bool connected)
{
    struct pend *rev = NULL;

    tw->settled = true;
    if (tw->settle)
        event_del(tw->settle);
    while (tw->pend) {
        struct pend *p = tw->pend;
        tw->pend = p->next;
        p->next = rev;
        rev = p;
    }
    while (rev) {
        struct pend *p = rev;
        rev = p->next;
        if (!connected || run_op(tw, p) < 0)
            p->done(p->arg, TOKEN_SHARE_ERROR, NULL, 0);
        pend_free(p);
    }
}

static void on_redis_state(void *arg, bool connected)
{
    struct tokenwire *tw = arg;

    if (connected && !tw->settled)
        settle(tw, true);
}

static void on_settle_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct tokenwire *tw = arg;

    if (!tw->settled)
        settle(tw, false);
}

static int op(void *ctx, enum pend_kind kind, const char *name, const char *owner,
              const char *blob, size_t len, unsigned ms, token_share_done *done, void *arg)
{
    struct tokenwire *tw = ctx;
    struct pend q = { .kind = kind, .name = (char *)name, .owner = (char *)owner,
                      .blob = (char *)blob, .len = len, .ms = ms, .done = done, .arg = arg };

    if (tw->settled)
        return run_op(tw, &q);
    struct pend *p = calloc(1, sizeof *p);
    if (!p || !(p->name = strdup(name)) || (owner && !(p->owner = strdup(owner))) ||
        (blob && !(p->blob = malloc(len + 1)))) {
        if (p)
            pend_free(p);
        return -1;
    }
    if (blob)
        memcpy(p->blob, blob, len);
    p->kind = kind;
    p->len = len;
    p->ms = ms;
    p->done = done;
    p->arg = arg;
    p->next = tw->pend;
    tw->pend = p;
    return 0;
}

static int share_get(void *ctx, const char *name, token_share_done *done, void *arg)
{
    return op(ctx, PEND_GET, name, NULL, NULL, 0, 0, done, arg);
}

static int share_lock(void *ctx, const char *name, const char *owner, unsigned lease_ms,
                      token_share_done *done, void *arg)
{
    return op(ctx, PEND_LOCK, name, owner, NULL, 0, lease_ms, done, arg);
}

static int share_put(void *ctx, const char *name, const char *blob, size_t len,
                     unsigned ttl_ms, token_share_done *done, void *arg)
{
    return op(ctx, PEND_PUT, name, NULL, blob, len, ttl_ms, done, arg);
}

static int share_unlock(void *ctx, const char *name, const char *owner, token_share_done *done,
                        void *arg)
{
    return op(ctx, PEND_UNLOCK, name, owner, NULL, 0, 0, done, arg);
}

static const struct token_share_ops share_ops = {
    .ctx = NULL, /* set per instance */
    .get = share_get,
    .lock = share_lock,
    .put = share_put,
    .unlock = share_unlock,
};

static int open_share(struct tokenwire *tw, struct event_base *base, const struct conf *conf,
                      struct token_share_ops *ops)
{
    const struct conf_redis *r = &conf->redis;
    int connect_ms = (int)r->connect_timeout_ms;

    tw->rc = redisopen_new(base, r, "", &tw->dns);
    if (!tw->rc || !(tw->ts = tokenshare_new(tw->rc, NULL, 0)))
        return -1;
    struct timeval tv = { .tv_sec = connect_ms / 1000, .tv_usec = (connect_ms % 1000) * 1000 };
    if (connect_ms <= 0)
        tv.tv_sec = 2;
    if (!(tw->settle = evtimer_new(base, on_settle_timeout, tw)) || evtimer_add(tw->settle, &tv))
        return -1;
    rconn_set_state_cb(tw->rc, on_redis_state, tw);
    *ops = share_ops;
    ops->ctx = tw;
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
                                            .get = get_token, .cancel = post_cancel };
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
    settle(tw, false); /* queued share ops fail while the manager still listens */
    token_mgr_free(tw->mgr);
    if (tw->settle)
        event_free(tw->settle);
    while (tw->posts) {
        struct post *p = tw->posts;
        post_unlink(p);
        upstream_abort(p->x);
        free(p);
    }
    if (tw->rc)
        rconn_set_state_cb(tw->rc, NULL, NULL);
    tokenshare_free(tw->ts);
    rconn_free(tw->rc);
    if (tw->dns)
        evdns_base_free(tw->dns, 0);
    free(tw);
}
