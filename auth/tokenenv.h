/* tokenenv: the state of one environment inside the token manager (its config copy,
 * credential, current token, waiters, counters) and the manager struct itself. Internal
 * to auth/: shared by token.c (the API), tokenenv.c (lifecycle, waiters, status) and
 * tokenfetch.c (the fetch state machine).
 * Invariant: e->token is either NULL or a complete token with its generation, serial and
 * times; it is wiped whenever it is replaced or dropped. */
#ifndef FOGATE_TOKENENV_H
#define FOGATE_TOKENENV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "conf.h"
#include "seal.h"
#include "token.h"
#include "tokenblob.h"
#include "tokenresp.h"

struct event;
struct tfetch;

/* Why an environment has no usable token (or what the last failure was). */
enum tokenenv_reason {
    TR_OK,
    TR_STARTING,       /* no attempt has finished yet */
    TR_EXPIRED,        /* the token ran out and no failure explains it (yet) */
    TR_UNREACHABLE,    /* no HTTP answer from the token endpoint */
    TR_CREDENTIAL,     /* the secret / key could not be loaded */
    TR_SHORT_LIFETIME, /* Entra issued a token that expires within the margin */
    TR_INTERNAL,       /* out of memory, signing failed */
    TR_ASSERTION_UNREADABLE, /* client_assertion_file missing, unreadable or not a JWT */
    TR_ASSERTION_EXPIRED,    /* its exp has passed: not sent */
    TR_RESP,           /* TR_RESP + (tokenresp_class - 1): a classified Entra answer */
    TR_COUNT = TR_RESP + TOKENRESP_OTHER /* OTHER is the last class */
};

struct token_mgr {
    struct event_base *base;            /* borrowed */
    struct token_options opts;          /* copy; opts.share and opts.seal_key cleared */
    struct token_share_ops share;       /* copy; valid iff has_share */
    bool has_share;
    unsigned char key[SEAL_KEY_LEN];    /* seal key, wiped on free */
    struct tenv **envs;                 /* owned array of owned */
    size_t n_envs;
    bool closing;                       /* token_mgr_free is running */
};

struct token_wait {
    TAILQ_ENTRY(token_wait) link;
    struct tenv *env;   /* borrowed: the queue's owner */
    token_cb *cb;
    void *arg;          /* borrowed: the caller's */
    int64_t deadline_ms; /* monotonic */
    struct event *timer; /* owned */
};

struct tenv {
    struct token_mgr *mgr;              /* borrowed: the owner */
    struct conf_env ce;                 /* owned deep copy of the fields used */
    struct tokencred *cred;             /* owned; NULL if it could not be loaded */
    char share_name[TOKENBLOB_NAME_MAX + 1];
    char seal_ctx[TOKENBLOB_CONTEXT_MAX + 1];
    /* the current token */
    char *token;                        /* owned, wiped; NULL if none */
    size_t token_len;
    int64_t obtained_at, expires_at;    /* unix seconds */
    uint64_t generation;                /* +1 per installed token */
    char serial[TOKENBLOB_SERIAL_LEN + 1];
    char bad_serial[TOKENBLOB_SERIAL_LEN + 1]; /* invalidated: never adopt it again */
    int64_t invalidated_at;             /* unix seconds of the last 401: a shared token
                                           obtained then or before may be revoked too */
    /* fetching */
    struct tfetch *fetch;               /* owned: the attempt in flight, NULL if idle */
    struct event *timer;                /* owned: the next refresh or retry */
    int64_t timer_at_ms;                /* monotonic; 0 = not armed */
    int attempt;                        /* consecutive failed attempts */
    /* waiters: token_get calls queued until a token arrives */
    TAILQ_HEAD(, token_wait) waiters;
    size_t n_waiters;
    /* status */
    enum tokenenv_reason last_fail;     /* TR_OK if the last attempt succeeded */
    enum tokenenv_reason logged;        /* failure already logged, TR_OK after success */
    enum tokenenv_reason err_reason;   /* of the last failure; kept after recovery */
    long last_aadsts;
    int last_http;
    char last_error[TOKENRESP_ERROR_MAX + 1];
    const char *last_hint;              /* static (tokenhint): what to do; NULL = none */
    char last_detail[256];              /* why, in fogate's words (a path, never a secret) */
    int64_t last_error_at, last_refresh; /* unix seconds, 0 = never */
    unsigned long fetches, failures, share_hits, publishes, refreshes, invalidations;
    unsigned long by_reason[TR_COUNT];
};

/* Clocks and randomness. */
int64_t tokenenv_now(void);     /* unix seconds */
int64_t tokenenv_mono_ms(void); /* monotonic milliseconds */
double tokenenv_rnd(void);      /* uniform in [0, 1) */

/* A short stable name ("wrong_secret", "unreachable", ...). */
const char *tokenenv_reason_name(enum tokenenv_reason r);
/* The actionable message for reason r with e's credential kind, or NULL. Static. */
const char *tokenenv_hint(const struct tenv *e, enum tokenenv_reason r);
/* 1 if a later attempt may succeed without a config change. */
int tokenenv_reason_retryable(enum tokenenv_reason r);

/* Creates the state for `ce` (borrowed; copied) and loads its credential (a failure is
 * logged and retried at fetch time); the fetch timer is tokenfetch_init's, called by the
 * manager. NULL out of memory or if names do not fit. */
struct tenv *tokenenv_new(struct token_mgr *m, const struct conf_env *ce);

/* Fails the waiters with `st`, wipes and frees; the manager has cancelled the fetch and
 * its timer first (tokenfetch_cleanup). NULL is a no-op. */
void tokenenv_free(struct tenv *e, enum token_status st);

/* 1 if `ce` names the same token as e (tenant, client id, resource, endpoint, version,
 * and for a managed identity which one). */
int tokenenv_same_identity(const struct tenv *e, const struct conf_env *ce);

/* Takes the credential settings of `ce` and re-reads the credential; on failure keeps the
 * old one (the reason is logged). Returns 0 or -1. */
int tokenenv_update(struct tenv *e, const struct conf_env *ce);

/* 1 if e holds a token usable at unix time `now`. */
int tokenenv_usable(const struct tenv *e, int64_t now);

/* What is wrong with e right now (TR_OK if a usable token is held). */
enum tokenenv_reason tokenenv_reason(const struct tenv *e);

/* Replaces the token (`token` is taken: owned by e afterwards) and serves the waiters. */
void tokenenv_install(struct tenv *e, char *token, size_t len, int64_t obtained_at,
                      int64_t expires_at, const char *serial);

/* Drops the current token (wiped), remembering its serial as bad. */
void tokenenv_drop(struct tenv *e);

/* Calls back the queued waiters: TOKEN_OK while the token is usable. */
void tokenenv_serve(struct tenv *e);

/* After a failure: waiters that cannot be helped by a retry at retry_at_ms (all of them
 * if !retryable) get TOKEN_UNAVAILABLE. */
void tokenenv_fail_waiters(struct tenv *e, int64_t retry_at_ms, int retryable);

/* Queues a waiter; returns it, or NULL out of memory. */
struct token_wait *tokenenv_wait(struct tenv *e, unsigned wait_ms, token_cb *cb, void *arg);

/* Fills a view of the current token. */
void tokenenv_view(const struct tenv *e, struct token_view *v);

/* The credential kind of e for status views ("client_assertion_file",
 * "managed_identity_imds", ...). Static. */
const char *tokenenv_credential_name(const struct tenv *e);

/* The admin view of e (new reference). */
json_t *tokenenv_status(const struct tenv *e);

#endif
