/* tokenenv: per-environment state of the token manager: lifecycle, the token itself, the
 * waiters queue and the admin view (see tokenenv.h).
 * Invariant: a waiter is in exactly one queue until its callback runs or it is cancelled,
 * and its callback runs at most once. */
#include "tokenenv.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "log.h"
#include "tokencred.h"
#include "tokenfetch.h"
#include "tokenhint.h"

int64_t tokenenv_now(void)
{
    return (int64_t)time(NULL);
}

int64_t tokenenv_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double tokenenv_rnd(void)
{
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        return 0.5;
    return (double)r / 4294967296.0;
}

const char *tokenenv_reason_name(enum tokenenv_reason r)
{
    static const char *const names[] = { "ok", "starting", "expired", "unreachable",
                                         "credential", "short_lifetime", "internal",
                                         "assertion_unreadable", "assertion_expired" };
    if (r >= TR_RESP && r < TR_COUNT)
        return tokenresp_class_name((enum tokenresp_class)(r - TR_RESP + 1));
    return r < TR_RESP ? names[r] : "unknown";
}

const char *tokenenv_hint(const struct tenv *e, enum tokenenv_reason r)
{
    return tokenhint_text(tokenenv_reason_name(r), e->ce.credential);
}

int tokenenv_reason_retryable(enum tokenenv_reason r)
{
    if (r >= TR_RESP && r < TR_COUNT)
        return tokenresp_retryable((enum tokenresp_class)(r - TR_RESP + 1));
    return r != TR_CREDENTIAL;
}

/* ---- lifecycle ---- */

static char *dup_opt(const char *s, int *fail)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *fail = 1;
    return d;
}

static void env_copy_free(struct conf_env *c)
{
    free(c->name);
    free(c->base_url);
    free(c->resource);
    free(c->tenant);
    free(c->client_id);
    free(c->client_secret_file);
    free(c->client_secret_env);
    free(c->cert_file);
    free(c->key_file);
    free(c->client_assertion_file);
    free(c->mi_client_id);
    free(c->mi_endpoint);
    free(c->token_endpoint);
    memset(c, 0, sizeof(*c));
}

/* A deep copy of the fields the manager uses. Returns 0 or -1 (dst zeroed). */
static int env_copy(struct conf_env *dst, const struct conf_env *src)
{
    int fail = 0;
    *dst = (struct conf_env){
        .name = dup_opt(src->name, &fail),
        .base_url = dup_opt(src->base_url, &fail),
        .resource = dup_opt(src->resource, &fail),
        .tenant = dup_opt(src->tenant, &fail),
        .client_id = dup_opt(src->client_id, &fail),
        .credential = src->credential,
        .client_secret_file = dup_opt(src->client_secret_file, &fail),
        .client_secret_env = dup_opt(src->client_secret_env, &fail),
        .cert_file = dup_opt(src->cert_file, &fail),
        .key_file = dup_opt(src->key_file, &fail),
        .cert_algorithm = src->cert_algorithm,
        .client_assertion_file = dup_opt(src->client_assertion_file, &fail),
        .managed_identity = src->managed_identity,
        .mi_client_id = dup_opt(src->mi_client_id, &fail),
        .mi_endpoint = dup_opt(src->mi_endpoint, &fail),
        .token_version = src->token_version,
        .token_endpoint = dup_opt(src->token_endpoint, &fail),
        .allow_http = src->allow_http,
    };
    if (fail || !dst->name || !dst->resource || !dst->tenant || !dst->client_id ||
        !dst->token_endpoint) {
        env_copy_free(dst);
        return -1;
    }
    return 0;
}

static void log_cred_error(const struct tenv *e, const char *why)
{
    log_json(LOG_LVL_ERROR, "token credential cannot be loaded",
             json_pack("{s:s, s:s, s:s}", "env", e->ce.name, "client_id", e->ce.client_id,
                       "error", why));
}

struct tenv *tokenenv_new(struct token_mgr *m, const struct conf_env *ce)
{
    struct tenv *e = calloc(1, sizeof(*e));
    char err[256] = "";

    if (!e)
        return NULL;
    e->mgr = m;
    TAILQ_INIT(&e->waiters);
    if (env_copy(&e->ce, ce) != 0 ||
        tokenblob_name(ce->name, ce->tenant, ce->client_id, ce->resource, e->share_name,
                       sizeof(e->share_name)) != 0 ||
        tokenblob_context(ce->name, ce->tenant, ce->client_id, ce->resource, e->seal_ctx,
                          sizeof(e->seal_ctx)) != 0) {
        tokenenv_free(e, TOKEN_CLOSED);
        return NULL;
    }
    e->last_fail = TR_OK;
    if (!(e->cred = tokencred_load(&e->ce, err, sizeof(err))))
        log_cred_error(e, err);
    return e;
}

void tokenenv_free(struct tenv *e, enum token_status st)
{
    struct token_wait *w;

    if (!e)
        return;
    while ((w = TAILQ_FIRST(&e->waiters))) {
        token_cb *cb = w->cb;
        void *arg = w->arg;
        token_cancel(w);
        cb(arg, st, NULL);
    }
    tokenenv_drop(e);
    tokencred_free(e->cred);
    env_copy_free(&e->ce);
    free(e);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int tokenenv_same_identity(const struct tenv *e, const struct conf_env *ce)
{
    return same_str(e->ce.tenant, ce->tenant) && same_str(e->ce.client_id, ce->client_id) &&
           same_str(e->ce.resource, ce->resource) &&
           same_str(e->ce.token_endpoint, ce->token_endpoint) &&
           e->ce.token_version == ce->token_version &&
           e->ce.managed_identity == ce->managed_identity &&
           same_str(e->ce.mi_client_id, ce->mi_client_id);
}

int tokenenv_update(struct tenv *e, const struct conf_env *ce)
{
    struct conf_env copy;
    char err[256] = "";

    if (env_copy(&copy, ce) != 0)
        return -1;
    struct tokencred *cred = tokencred_load(&copy, err, sizeof(err));
    env_copy_free(&e->ce);
    e->ce = copy;
    if (!cred) {
        log_cred_error(e, err);
        return -1;
    }
    tokencred_free(e->cred);
    e->cred = cred;
    return 0;
}

/* ---- the token ---- */

int tokenenv_usable(const struct tenv *e, int64_t now)
{
    return e->token && tokentime_usable(&e->mgr->opts.policy, e->expires_at, now);
}

enum tokenenv_reason tokenenv_reason(const struct tenv *e)
{
    if (tokenenv_usable(e, tokenenv_now()))
        return TR_OK;
    if (e->last_fail != TR_OK)
        return e->last_fail;
    return e->generation == 0 ? TR_STARTING : TR_EXPIRED;
}

void tokenenv_drop(struct tenv *e)
{
    if (e->token) {
        memcpy(e->bad_serial, e->serial, sizeof(e->bad_serial));
        OPENSSL_clear_free(e->token, e->token_len + 1);
    }
    e->token = NULL;
    e->token_len = 0;
}

void tokenenv_install(struct tenv *e, char *token, size_t len, int64_t obtained_at,
                      int64_t expires_at, const char *serial)
{
    if (e->token)
        OPENSSL_clear_free(e->token, e->token_len + 1);
    e->token = token;
    e->token_len = len;
    e->obtained_at = obtained_at;
    e->expires_at = expires_at;
    e->generation++;
    memcpy(e->serial, serial, TOKENBLOB_SERIAL_LEN);
    e->serial[TOKENBLOB_SERIAL_LEN] = '\0';
    e->last_refresh = tokenenv_now();
    tokenenv_serve(e);
}

void tokenenv_view(const struct tenv *e, struct token_view *v)
{
    *v = (struct token_view){ .token = e->token, .len = e->token_len,
                              .expires_at = e->expires_at, .generation = e->generation };
}

/* ---- waiters ---- */

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct token_wait *w = arg;
    token_cb *cb = w->cb;
    void *cb_arg = w->arg;

    token_cancel(w);
    cb(cb_arg, TOKEN_UNAVAILABLE, NULL);
}

struct token_wait *tokenenv_wait(struct tenv *e, unsigned wait_ms, token_cb *cb, void *arg)
{
    struct token_wait *w = calloc(1, sizeof(*w));
    struct timeval tv = { wait_ms / 1000, (wait_ms % 1000) * 1000 };

    if (!w)
        return NULL;
    *w = (struct token_wait){ .env = e, .cb = cb, .arg = arg,
                              .deadline_ms = tokenenv_mono_ms() + wait_ms };
    w->timer = evtimer_new(e->mgr->base, on_wait_timeout, w);
    if (!w->timer || evtimer_add(w->timer, &tv) != 0) {
        if (w->timer)
            event_free(w->timer);
        free(w);
        return NULL;
    }
    TAILQ_INSERT_TAIL(&e->waiters, w, link);
    e->n_waiters++;
    return w;
}

void token_cancel(struct token_wait *w)
{
    if (!w)
        return;
    TAILQ_REMOVE(&w->env->waiters, w, link);
    w->env->n_waiters--;
    event_free(w->timer);
    free(w);
}

/* Each callback may queue, cancel or invalidate: re-read the queue head every time. */
void tokenenv_serve(struct tenv *e)
{
    struct token_wait *w;
    struct token_view v;

    while ((w = TAILQ_FIRST(&e->waiters)) && tokenenv_usable(e, tokenenv_now())) {
        token_cb *cb = w->cb;
        void *arg = w->arg;
        token_cancel(w);
        tokenenv_view(e, &v);
        cb(arg, TOKEN_OK, &v);
    }
}

static struct token_wait *first_hopeless(struct tenv *e, int64_t retry_at_ms, int retryable)
{
    struct token_wait *w;

    TAILQ_FOREACH(w, &e->waiters, link)
        if (!retryable || w->deadline_ms <= retry_at_ms)
            return w;
    return NULL;
}

void tokenenv_fail_waiters(struct tenv *e, int64_t retry_at_ms, int retryable)
{
    struct token_wait *w;

    while ((w = first_hopeless(e, retry_at_ms, retryable))) {
        token_cb *cb = w->cb;
        void *arg = w->arg;
        token_cancel(w);
        cb(arg, TOKEN_UNAVAILABLE, NULL);
    }
}

/* ---- admin view ---- */

const char *tokenenv_credential_name(const struct tenv *e)
{
    static const char *const names[] = { "client_secret_file", "client_secret_env",
                                         "client_certificate", "client_assertion_file",
                                         "managed_identity" };
    const char *style = tokencred_mi_style(e->cred);

    if (style)
        return strcmp(style, "imds") == 0 ? "managed_identity_imds"
                                          : "managed_identity_app_service";
    return (unsigned)e->ce.credential < sizeof(names) / sizeof(names[0])
               ? names[e->ce.credential] : "unknown";
}

static json_t *counters(const struct tenv *e)
{
    json_t *by = json_object();

    for (int r = TR_UNREACHABLE; r < TR_COUNT; r++)
        if (e->by_reason[r])
            json_object_set_new(by, tokenenv_reason_name((enum tokenenv_reason)r),
                                json_integer((json_int_t)e->by_reason[r]));
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "fetches", (json_int_t)e->fetches,
                     "failures", (json_int_t)e->failures, "share_hits",
                     (json_int_t)e->share_hits, "shared_publishes", (json_int_t)e->publishes,
                     "refreshes", (json_int_t)e->refreshes, "invalidations",
                     (json_int_t)e->invalidations, "by_reason", by);
}

static json_t *last_error(const struct tenv *e)
{
    if (!e->last_error_at)
        return json_null();
    json_t *o = json_pack("{s:s, s:I, s:i, s:s, s:I}", "reason",
                          tokenenv_reason_name(e->err_reason), "aadsts",
                          (json_int_t)e->last_aadsts, "http_status", e->last_http, "error",
                          e->last_error, "at", (json_int_t)e->last_error_at);
    json_object_set_new(o, "hint", e->last_hint ? json_string(e->last_hint) : json_null());
    json_object_set_new(o, "detail", json_string(e->last_detail));
    return o;
}

json_t *tokenenv_status(const struct tenv *e)
{
    int64_t now = tokenenv_now(), mono = tokenenv_mono_ms();
    enum tokenenv_reason r = tokenenv_reason(e);
    json_t *o = json_pack("{s:s, s:b, s:s, s:b, s:I, s:I, s:I}", "environment", e->ce.name,
                          "ready", r == TR_OK, "reason", tokenenv_reason_name(r),
                          "token_present", e->token != NULL, "expires_in_s",
                          (json_int_t)(e->token ? e->expires_at - now : 0), "generation",
                          (json_int_t)e->generation, "last_refresh",
                          (json_int_t)e->last_refresh);

    json_object_set_new(o, "last_error", last_error(e));
    json_object_set_new(o, "next_attempt_in_ms",
                        e->timer_at_ms ? json_integer((json_int_t)(e->timer_at_ms > mono
                                                                       ? e->timer_at_ms - mono
                                                                       : 0))
                                       : json_null());
    json_object_set_new(o, "fetching", json_boolean(e->fetch != NULL));
    json_object_set_new(o, "waiters", json_integer((json_int_t)e->n_waiters));
    json_object_set_new(o, "client_id", json_string(e->ce.client_id));
    json_object_set_new(o, "credential", json_string(tokenenv_credential_name(e)));
    json_object_set_new(o, "counters", counters(e));
    return o;
}
