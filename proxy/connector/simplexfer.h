/* simplexfer: the simple API's file routes (enqueue, next, ack) and the per-request state
 * they share with simple.c. Internal to simple.c and simplexfer.c, which are one module
 * split for size: simple.c dispatches to the file routes, and they answer through its
 * simple_req_* functions (the request's one answer and free path).
 * Invariant: a simple_req is freed exactly once, when nothing (D365 call, wait, body
 * sink, connection event) can reach it any more. */
#ifndef FOGATE_SIMPLEXFER_H
#define FOGATE_SIMPLEXFER_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "conf.h"
#include "conn.h"
#include "d365.h"
#include "histidem.h"
#include "history.h"
#include "ledgerflow.h"
#include "msgwait.h"
#include "simpleack.h"
#include "simpleroute.h"

#define SIMPLE_WAIT_MAX_S 60          /* cap on ?wait= */
#define SIMPLE_ACK_MAX 10000          /* pending acks kept in memory */
#define SIMPLE_ACK_BODY_MAX 65536     /* one dequeue body */
#define SIMPLE_ACK_TTL_S 1800         /* D365's visibility timeout (reference §3.6) */

struct simple {
    struct event_base *base;          /* borrowed */
    struct upcall_ctx *ctx;           /* borrowed */
    const struct conf *conf;          /* borrowed: the current snapshot */
    struct msgwait *mw;               /* owned */
    struct simpleack *acks;           /* owned: acks without the ledger (or unknown to it) */
    struct ledgerflow *lf;            /* borrowed from the app; NULL = no ack ledger */
    struct history *hist;             /* borrowed from the app; NULL = no history */
    struct jobpause *pause;           /* borrowed from the app; NULL = nothing paused */
};

struct simple_req {
    struct simple *s;                 /* borrowed */
    struct conn_req *req;             /* borrowed; NULL once the connection is gone */
    struct simpleroute route;
    char *env;                        /* the environment's name: env_buf, or owned when
                                         longer (simple.c's set_env); NULL before */
    char env_buf[64];
    char activity[GUID_CANON_SIZE];   /* the job's canonical activity id */
    struct d365_call *call;           /* owned while in flight */
    struct msgwait_waiter *waiter;    /* owned while waiting */
    struct evbuffer *pending;         /* owned: enqueue body bytes upstream had no room for */
    bool body_reading;                /* a body sink is active */
    bool replay_starting;             /* inside start_replay: its caller settles */
    bool body_eof;                    /* the whole request body arrived */
    bool responded;                   /* an answer (or a streamed head) went out */
    char *exec_id;                    /* owned: /errors: the execution id */
    char *last_dequeue;               /* owned: /next: LastDequeueDateTime, NULL if none */
    const char *client;               /* borrowed from a conf snapshot: the client's name */
    const struct conf_client *client_conf; /* borrowed from that snapshot (history reads) */
    struct ledgerflow_op *lop;        /* owned while the ledger works for this request */
    char *ledger_id;                  /* owned: /next: the delivery's ledger id, if any */
    bool redelivery;                  /* /next: the ledger says REDELIVERY */
    unsigned deliveries;              /* /next: deliveries so far (0: no ledger) */
    const char *unledgered;           /* /next: static; why the ledger was not used */
    struct history_op *hop;           /* owned while a history read runs */
    char hist_id[HISTORY_ID_SIZE];    /* enqueue: the file's history record, "" if none */
    EVP_MD_CTX *sha;                  /* owned: SHA-256 of the body (enqueue, download) */
    uint64_t bytes;                   /* body bytes seen (enqueue, download) */
    const struct conf_job *job;       /* enqueue: borrowed from the request's snapshot */
    struct histidem_op *iop;          /* owned while the Idempotency-Key is looked up */
    struct histidem_hold *hold;       /* owned: our Idempotency-Key reservation */
    struct histidem_res first;        /* replay: the first enqueue with the key */
    bool replay;                      /* the body is only hashed and compared */
};

/* Starts the SHA-256 of the body; r->sha stays NULL when out of memory (no hash then). */
void simple_req_hash_start(struct simple_req *r);

/* Hashes `len` bytes of the body and counts them. */
void simple_req_hash(struct simple_req *r, const void *data, size_t len);

/* Ends the hash into hex[65] ("" when there was none). */
void simple_req_hash_end(struct simple_req *r, char hex[65]);

/* Answers `r` with a D365 failure in the error shape (Retry-After on 429). */
void simple_req_fail(struct simple_req *r, const struct d365_err *e);

/* Answers `r` with a fogate error of its own (reply_error). */
void simple_req_error(struct simple_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Answers `r` with a fogate error and Retry-After: retry_s. */
void simple_req_retry(struct simple_req *r, int status, unsigned retry_s, const char *code,
                      const char *message);

/* Answers `r` with 200/202 JSON (`o` is stolen). */
void simple_req_json(struct simple_req *r, int status, json_t *o);

/* Marks `r` answered and returns its request for the one answer. Unless its body is still
 * being read, the request is conn's to reuse after the answer: its events are cleared and
 * r->req becomes NULL. */
struct conn_req *simple_req_take(struct simple_req *r);

/* Sets the request's connection events: on_gone (always) and `on_drained` (may be NULL). */
void simple_req_watch(struct simple_req *r, void (*on_drained)(void *arg));

/* Frees `r` when nothing can reach it any more: no call, wait or body sink, and r->req
 * NULL (answered, or gone). Returns true when it was freed. */
bool simple_req_settle(struct simple_req *r);

/* POST /v1/jobs/{job}/messages for an import job. */
void simplexfer_enqueue(struct simple_req *r, const struct conf_job *job);

/* The enqueue itself (after its Idempotency-Key, if any, was reserved in r->hold). */
void simplexfer_enqueue_go(struct simple_req *r, const struct conf_job *job);

/* POST /v1/jobs/{job}/next for an export job. */
void simplexfer_next(struct simple_req *r, const struct conf_job *job);

/* POST /v1/jobs/{job}/messages/{id}/ack for an export job. */
void simplexfer_ack(struct simple_req *r, const struct conf_job *job);

#endif
