/* token: the token manager's public API (see token.h): environments by name, token_get
 * with its wait queue, invalidation by generation, reload, readiness and the admin view.
 * Invariant: a token is handed out only while tokentime_usable says so. */
#include "token.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "conf.h"
#include "log.h"
#include "tokenenv.h"
#include "tokenfetch.h"

#define HTTP_TIMEOUT_DEFAULT 10000
#define LEASE_EXTRA_MS 2000
#define POLL_DEFAULT 100
#define MAX_WAITERS_DEFAULT 1024

static struct tenv *find(const struct token_mgr *m, const char *name)
{
    for (size_t i = 0; m && name && i < m->n_envs; i++)
        if (m->envs[i] && strcmp(m->envs[i]->ce.name, name) == 0)
            return m->envs[i];
    return NULL;
}

/* Copies opts with defaults filled in. Returns 0, or -1 (logged) if they are unusable. */
static int take_options(struct token_mgr *m, const struct token_options *o)
{
    if (!o || !o->transport.post_form || !o->transport.cancel) {
        log_msg(LOG_LVL_ERROR, "token manager: a transport with post_form and cancel is required");
        return -1;
    }
    m->opts = *o;
    m->opts.share = NULL;
    m->opts.seal_key = NULL;
    if (!m->opts.http_timeout_ms)
        m->opts.http_timeout_ms = HTTP_TIMEOUT_DEFAULT;
    if (!m->opts.lock_lease_ms)
        m->opts.lock_lease_ms = m->opts.http_timeout_ms + LEASE_EXTRA_MS;
    if (!m->opts.share_poll_ms)
        m->opts.share_poll_ms = POLL_DEFAULT;
    if (!m->opts.max_waiters)
        m->opts.max_waiters = MAX_WAITERS_DEFAULT;
    if (!o->share)
        return 0;
    if (!o->seal_key || !o->share->get || !o->share->lock || !o->share->put ||
        !o->share->unlock) {
        log_msg(LOG_LVL_ERROR, "token manager: the shared cache needs all four operations "
                               "and a seal key");
        return -1;
    }
    m->share = *o->share;
    m->has_share = true;
    memcpy(m->key, o->seal_key, SEAL_KEY_LEN);
    return 0;
}

void token_options_from_conf(struct token_options *o, const struct conf_tokens *t)
{
    o->policy = (struct tokentime_policy){
        .refresh_ratio = t->refresh_percent / 100.0,
        .jitter = TOKENTIME_JITTER_DEFAULT,
        .margin_s = t->safety_margin_s,
        .backoff_base_ms = t->retry_min_ms,
        .backoff_cap_ms = t->retry_max_ms,
    };
    o->http_timeout_ms = t->request_timeout_ms;
}

/* An environment with its fetch timer: tokenenv holds the state, tokenfetch drives it, and
 * the manager puts the two together so that neither file needs the other's header. */
static struct tenv *env_open(struct token_mgr *m, const struct conf_env *ce)
{
    struct tenv *e = tokenenv_new(m, ce);

    if (e && tokenfetch_init(e) != 0) {
        tokenenv_free(e, TOKEN_CLOSED);
        return NULL;
    }
    return e;
}

/* Abandons the attempt in flight first, then fails the waiters with `st` and frees. */
static void env_close(struct tenv *e, enum token_status st)
{
    if (!e)
        return;
    tokenfetch_cleanup(e);
    tokenenv_free(e, st);
}

struct token_mgr *token_mgr_new(struct event_base *base, const struct conf *conf,
                                const struct token_options *opts)
{
    struct token_mgr *m = calloc(1, sizeof(*m));

    if (!m || !base || !conf || take_options(m, opts) != 0)
        goto fail;
    m->base = base;
    if (conf->n_envs && !(m->envs = calloc(conf->n_envs, sizeof(*m->envs))))
        goto fail;
    for (size_t i = 0; i < conf->n_envs; i++) {
        if (!(m->envs[i] = env_open(m, &conf->envs[i])))
            goto fail;
        m->n_envs++;
        tokenfetch_arm(m->envs[i], 0);
    }
    return m;
fail:
    log_msg(LOG_LVL_ERROR, "token manager: cannot be created");
    token_mgr_free(m);
    return NULL;
}

void token_mgr_free(struct token_mgr *m)
{
    if (!m)
        return;
    m->closing = true;
    for (size_t i = 0; i < m->n_envs; i++)
        env_close(m->envs[i], TOKEN_CLOSED);
    free(m->envs);
    OPENSSL_cleanse(m->key, sizeof(m->key));
    free(m);
}

/* Keeps `e` for its new config `ce`: re-reads the credential, retries now if failing. */
static void keep_env(struct tenv *e, const struct conf_env *ce)
{
    tokenenv_update(e, ce);
    if (e->attempt > 0 || e->last_fail != TR_OK) {
        e->attempt = 0;
        tokenfetch_arm(e, 0);
    }
}

int token_mgr_reload(struct token_mgr *m, const struct conf *conf)
{
    size_t n = conf->n_envs;
    struct tenv **next = calloc(n ? n : 1, sizeof(*next));

    if (!next)
        return -1;
    /* Pass 1: create what is new, so that running out of memory changes nothing. */
    for (size_t i = 0; i < n; i++) {
        struct tenv *old = find(m, conf->envs[i].name);
        if (old && tokenenv_same_identity(old, &conf->envs[i]))
            continue;
        if (!(next[i] = env_open(m, &conf->envs[i]))) {
            for (size_t k = 0; k < i; k++)
                env_close(next[k], TOKEN_CLOSED);
            free(next);
            return -1;
        }
    }
    /* Pass 2: keep the unchanged ones (taking them out of the old array), close the rest. */
    for (size_t i = 0; i < n; i++) {
        if (next[i]) {
            tokenfetch_arm(next[i], 0);
            continue;
        }
        for (size_t k = 0; k < m->n_envs; k++)
            if (m->envs[k] && strcmp(m->envs[k]->ce.name, conf->envs[i].name) == 0) {
                next[i] = m->envs[k];
                m->envs[k] = NULL;
            }
        keep_env(next[i], &conf->envs[i]);
    }
    for (size_t k = 0; k < m->n_envs; k++)
        env_close(m->envs[k], TOKEN_CLOSED);
    free(m->envs);
    m->envs = next;
    m->n_envs = n;
    return 0;
}

enum token_status token_get(struct token_mgr *m, const char *env, unsigned wait_ms,
                            token_cb *cb, void *arg, struct token_view *out,
                            struct token_wait **wait)
{
    struct tenv *e;

    if (!m || m->closing)
        return TOKEN_CLOSED;
    if (!(e = find(m, env)))
        return TOKEN_NO_ENV;
    if (tokenenv_usable(e, tokenenv_now())) {
        if (out)
            tokenenv_view(e, out);
        return TOKEN_OK;
    }
    tokenfetch_kick(e);
    if (!cb || wait_ms == 0)
        return TOKEN_UNAVAILABLE;
    /* Failing and idle until a retry: no point queueing if it cannot help. */
    if (!e->fetch && e->attempt > 0 &&
        (!tokenenv_reason_retryable(e->last_fail) ||
         (e->timer_at_ms && e->timer_at_ms > tokenenv_mono_ms() + wait_ms)))
        return TOKEN_UNAVAILABLE;
    if (e->n_waiters >= m->opts.max_waiters)
        return TOKEN_BUSY;
    struct token_wait *w = tokenenv_wait(e, wait_ms, cb, arg);
    if (!w)
        return TOKEN_BUSY;
    if (wait)
        *wait = w;
    return TOKEN_PENDING;
}

int token_invalidate(struct token_mgr *m, const char *env, uint64_t generation)
{
    struct tenv *e = find(m, env);

    if (!e)
        return -1;
    if (generation != e->generation || !e->token)
        return 0;
    tokenenv_drop(e);
    e->invalidated_at = tokenenv_now();
    e->invalidations++;
    log_json(LOG_LVL_INFO, "token invalidated after a 401",
             json_pack("{s:s, s:s, s:I}", "env", e->ce.name, "client_id", e->ce.client_id,
                       "generation", (json_int_t)generation));
    tokenfetch_arm(e, 0);
    return 1;
}

bool token_mgr_ready(const struct token_mgr *m, json_t **why)
{
    bool ready = true;
    json_t *o = why ? json_object() : NULL;

    for (size_t i = 0; m && i < m->n_envs; i++) {
        enum tokenenv_reason r = tokenenv_reason(m->envs[i]);
        if (r == TR_OK)
            continue;
        ready = false;
        if (o)
            json_object_set_new(o, m->envs[i]->ce.name, json_string(tokenenv_reason_name(r)));
    }
    if (why)
        *why = o;
    return ready;
}

const char *token_reason(const struct token_mgr *m, const char *env)
{
    const struct tenv *e = find(m, env);

    return e ? tokenenv_reason_name(tokenenv_reason(e)) : NULL;
}

const char *token_hint(const struct token_mgr *m, const char *env)
{
    const struct tenv *e = find(m, env);
    enum tokenenv_reason r = e ? tokenenv_reason(e) : TR_OK;

    return e && r != TR_OK ? tokenenv_hint(e, r) : NULL;
}

json_t *token_mgr_status(const struct token_mgr *m)
{
    json_t *a = json_array();

    for (size_t i = 0; m && i < m->n_envs; i++)
        json_array_append_new(a, tokenenv_status(m->envs[i]));
    return a;
}
