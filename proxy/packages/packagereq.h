/* packagereq: the package API's shared state and per-request object, internal to
 * package.c (routes, executions, export), packageimport.c (the import flow),
 * packagequeue.c (the queue and lock before ImportFromPackage) and packageerrors.c.
 * These four are one module split by stage for size, and call each other through this
 * header on purpose: the stages answer through package_req_*, and the request's single
 * free path (package.c) stops every stage it may have started. Outside the folder only
 * package.h is seen.
 * Invariant: a package_req is freed exactly once, when nothing (D365 call, blob transfer,
 * wait, body sink, import queue, connection event) can reach it any more. */
#ifndef FOGATE_PACKAGEREQ_H
#define FOGATE_PACKAGEREQ_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "blobput.h"
#include "conf.h"
#include "conn.h"
#include "d365.h"
#include "history.h"
#include "msgwait.h"
#include "package.h"
#include "packageidem.h"
#include "packageshare.h"
#include "packagename.h"
#include "simpleroute.h"

#define PACKAGE_WAIT_MAX_S 60           /* cap on ?wait= */
#define PACKAGE_IDEM_MAX 10000          /* Idempotency-Key records kept */
#define PACKAGE_IDEM_TTL_S 86400        /* how long a key is remembered */

struct package_req;

/* Imports waiting for (or running) ImportFromPackage on one environment in this process;
 * the one running also holds the environment's lock (packageshare). */
struct package_queue {
    struct package_queue *next;
    char *env;                          /* owned */
    struct package_req *running;        /* borrowed: its ImportFromPackage is in flight */
    struct package_req *head, *tail;    /* borrowed: waiting, in arrival order */
};

struct package {
    struct event_base *base;            /* borrowed */
    struct upcall_ctx *ctx;             /* borrowed */
    struct upstream *up;                /* borrowed */
    const struct conf *conf;            /* borrowed: the current snapshot */
    struct msgwait *mw;                 /* owned: GetExecutionSummaryStatus polls */
    struct packageshare *share;         /* owned: import locks, Idempotency-Keys */
    struct package_queue *queues;       /* owned list */
    struct package_req *reqs;           /* borrowed list of live requests (for free) */
    struct packagestats stats;
    struct history *hist;               /* borrowed from the app; NULL = no history */
};

struct package_req {
    struct package *p;                  /* borrowed */
    struct package_req *prev, *next;    /* p->reqs */
    struct package_req *qnext;          /* its queue's waiting list */
    struct conn_req *req;               /* borrowed; NULL once answered or gone */
    char *env;                          /* owned */
    char job[SIMPLEROUTE_NAME_MAX];
    char project[256];
    char company[64];
    char exec_id[PACKAGENAME_EXEC_MAX];
    char idem_key[PACKAGEIDEM_KEY_MAX];  /* "" without Idempotency-Key */
    bool execute, overwrite;
    struct d365_call *call;             /* owned while in flight */
    struct upcall *import;              /* owned while ImportFromPackage is in flight */
    struct d365_err import_err;         /* a failed ImportFromPackage, answered once D365
                                           said whether the execution started */
    struct d365_call *check;            /* owned while asking that (goes on when the
                                           client leaves, like the import itself) */
    struct upstream_xfer *xfer;         /* owned while a blob download runs */
    struct blobput *put;                /* owned while the package upload runs */
    struct msgwait_waiter *waiter;      /* owned while waiting */
    struct packageshare_op *op;         /* owned while a lock or key operation runs */
    struct event *wait_timer;           /* owned: bounds the wait for the queue's turn */
    double wait_since;                  /* when the import joined its queue (monotonic s) */
    struct evbuffer *pending;           /* owned: body bytes the blob had no room for */
    EVP_MD_CTX *sha;                    /* owned: SHA-256 of the package while streaming
                                           (an import's upload, a package download) */
    char *blob_url;                     /* owned: the upload or download SAS URL (a secret:
                                           never logged) */
    bool queued;                        /* on a queue (waiting or running) */
    bool locked;                        /* holds the environment's import lock */
    bool idem_done;                     /* its Idempotency-Key record is done (keep it) */
    unsigned char sha256[32];           /* the uploaded package's SHA-256 */
    bool body_reading, body_eof, responded, replay, uploaded;
    unsigned busy;                      /* > 0: inside a call that may re-enter (a body
                                           pump): settle waits for the outer frame */
    unsigned char replay_sha[32];
    /* the file's history record (imports, exports) */
    char hist_id[HISTORY_ID_SIZE];      /* "" without one */
    bool hist_done;                     /* its outcome is recorded */
    bool hist_export;                   /* the record is an export's (ExportToPackage) */
    const char *client;                 /* borrowed from the request's snapshot */
    uint64_t size;                      /* the package's Content-Length (import), or the
                                           bytes of a package download sent so far */
    /* GET .../errors (packageerrors.c) */
    char entity[128];                   /* "" without ?entity= or a job entity */
    json_t *errout;                     /* owned: the answer being built */
    struct event *timer;                /* owned: the next error-file poll */
    unsigned files_todo;                /* bit 0 staging URL, bit 1 keys URL missing */
    unsigned files_rounds;
    bool files_generated, has_errors;
};

/* Answers `r` with a D365 failure / a fogate error / 2xx JSON (`o` stolen). */
void package_req_fail(struct package_req *r, const struct d365_err *e);
void package_req_error(struct package_req *r, int status, const char *code, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));
void package_req_json(struct package_req *r, int status, json_t *o);

/* Frees `r` when nothing can reach it any more. Returns true when it was freed. */
bool package_req_settle(struct package_req *r);

/* Answers 502 blob_sas_expired: the SAS URL in r->blob_url (`which` names it) has expired;
 * `advice` says what the client can do. Never quotes the URL. */
void package_req_sas_expired(struct package_req *r, const char *which, const char *advice);

/* The status URL of an execution for `r`'s job. */
json_t *package_req_accepted(struct package_req *r);

/* POST /v1/packages/import: starts the flow (reads the body). */
void packageimport_start(struct package_req *r, const struct conf_job *job);

/* The client went away: stops the upload (GetAzureWriteUrl, Put Blob); an uploaded
 * package's queued or running import goes on (and so does an ExportToPackage call). */
void packageimport_cancel(struct package_req *r);

/* Stops everything of `r`'s import (queued, running) and frees its buffers; for req_free. */
void packageimport_stop(struct package_req *r);

/* An uploaded import (r->sha256 set) joins its environment's queue (packagequeue.c) and
 * answers when ImportFromPackage did, or 503 when its turn does not come in time. */
void packagequeue_enqueue(struct package_req *r);

/* Releases r's Idempotency-Key reservation unless it is a replay or already done. */
void packagequeue_drop_key(struct package_req *r);

/* Leaves the queue, cancels the lock or key operation and ImportFromPackage, releases
 * the lock; for packageimport_stop. */
void packagequeue_stop(struct package_req *r);

/* GET /v1/executions/{id}/errors: the errors and the entity's error files. */
void packageerrors_start(struct package_req *r);

/* Stops a pending error-file poll and frees the answer being built; for gone and free. */
void packageerrors_stop(struct package_req *r);

#endif
