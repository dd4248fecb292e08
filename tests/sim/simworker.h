/* simworker: blocking blob work (Azurite via simazure, libcurl) on worker threads, with the
 * result delivered back on the event loop. Invariant: a worker thread reads and writes only
 * its own job; everything else happens in on_done on the loop thread. */
#ifndef SIMWORKER_H
#define SIMWORKER_H

#include <pthread.h>
#include <event2/event.h>

struct simhttp_req;

enum simworker_kind {
    SW_CONTAINER,   /* ensure container "dmf" */
    SW_HEAD_URL,    /* HEAD url (a SAS URL): does the blob exist? */
    SW_EXPORT,      /* generate a package of `bytes` and upload it as blob */
    SW_UPLOAD_TEXT, /* upload `text` as blob */
};

struct simworker_job {
    enum simworker_kind kind;
    /* inputs, copied in by the caller */
    char endpoint[256], account[64], key[128];
    char url[4096];
    char blob[160];
    char path[512];
    char entity[128];
    char *text;                 /* owned */
    long long bytes;
    /* outputs */
    int rc;                     /* 0 ok, -1 failed */
    char err[256];              /* no secrets */
    /* loop-side bookkeeping for the caller */
    char exec_id[160];
    struct simhttp_req *req;    /* borrowed: request to answer when done, or NULL */
    struct event *timer;        /* owned: caller's delay timer, or NULL */
    int worker_done, timer_done;
    void *owner;                /* borrowed: caller's context */
    /* private */
    void (*on_done)(struct simworker_job *job);
    struct event *ev;
    pthread_t th;
    int started;
    struct simworker *w;
    struct simworker_job *next;
};

struct simworker;

struct simworker *simworker_new(struct event_base *base);
/* Joins every running thread and frees their jobs without calling on_done. */
void simworker_free(struct simworker *w);

/* A zeroed job of `kind`. Free with simworker_job_free (frees text and timer). */
struct simworker_job *simworker_job_new(enum simworker_kind kind);
void simworker_job_free(struct simworker_job *job);

/* Runs the job on a new thread; on_done(job) runs later on the loop thread and owns the job.
 * Returns 0, or -1 (job not started, still the caller's). */
int simworker_start(struct simworker *w, struct simworker_job *job,
                    void (*on_done)(struct simworker_job *job));

#endif
