/* simworker: one thread per blob job; completion wakes the loop via event_active. */
#include "simworker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <curl/curl.h>

#include "azblob.h"
#include "simzip.h"

#define CONTAINER "dmf"

struct simworker {
    struct event_base *base;   /* borrowed */
    struct simworker_job *run; /* owned: started, not yet delivered */
};

struct simworker *simworker_new(struct event_base *base)
{
    struct simworker *w = calloc(1, sizeof(*w));
    if (w)
        w->base = base;
    return w;
}

struct simworker_job *simworker_job_new(enum simworker_kind kind)
{
    struct simworker_job *j = calloc(1, sizeof(*j));
    if (j)
        j->kind = kind;
    return j;
}

void simworker_job_free(struct simworker_job *job)
{
    if (!job)
        return;
    if (job->ev)
        event_free(job->ev);
    if (job->timer)
        event_free(job->timer);
    free(job->text);
    free(job);
}

static void unlink_run(struct simworker *w, struct simworker_job *job)
{
    for (struct simworker_job **p = &w->run; *p; p = &(*p)->next)
        if (*p == job) {
            *p = job->next;
            return;
        }
}

void simworker_free(struct simworker *w)
{
    if (!w)
        return;
    while (w->run) {
        struct simworker_job *j = w->run;
        w->run = j->next;
        pthread_join(j->th, NULL);
        simworker_job_free(j);
    }
    free(w);
}

static int head_url(struct simworker_job *j)
{
    CURL *c = curl_easy_init();
    long code = 0;
    if (!c)
        return -1;
    curl_easy_setopt(c, CURLOPT_URL, j->url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        snprintf(j->err, sizeof(j->err), "Unable to connect to the remote server (%s).",
                 curl_easy_strerror(rc));
        return -1;
    }
    if (code != 200) {
        snprintf(j->err, sizeof(j->err), "The remote server returned an error: (%ld) %s.", code,
                 code == 404 ? "Not Found" : code == 403 ? "Forbidden" : "Error");
        return -1;
    }
    return 0;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    return fclose(f) == 0 ? rc : -1;
}

static int run(struct simworker_job *j)
{
    struct sas_account acct = {j->endpoint, j->account, j->key};
    if (j->kind == SW_HEAD_URL)
        return head_url(j);
    if (azblob_ensure_container(&acct, CONTAINER, j->err, sizeof(j->err)) != 0)
        return -1;
    if (j->kind == SW_CONTAINER)
        return 0;
    int made = j->kind == SW_EXPORT ? simzip_write_package(j->path, j->entity, j->bytes)
                                    : write_text(j->path, j->text ? j->text : "");
    if (made != 0) {
        snprintf(j->err, sizeof(j->err), "cannot write the package file");
        unlink(j->path);
        return -1;
    }
    int rc = azblob_put_file(&acct, CONTAINER, j->blob, j->path, j->err, sizeof(j->err));
    unlink(j->path);
    return rc;
}

static void *thread_main(void *arg)
{
    struct simworker_job *j = arg;
    j->rc = run(j);
    event_active(j->ev, EV_READ, 1);
    return NULL;
}

static void on_complete(evutil_socket_t fd, short what, void *arg)
{
    struct simworker_job *j = arg;
    pthread_join(j->th, NULL);
    unlink_run(j->w, j);
    event_free(j->ev);
    j->ev = NULL;
    j->worker_done = 1;
    j->on_done(j);
}

int simworker_start(struct simworker *w, struct simworker_job *job,
                    void (*on_done)(struct simworker_job *job))
{
    job->w = w;
    job->on_done = on_done;
    job->ev = event_new(w->base, -1, 0, on_complete, job);
    if (!job->ev)
        return -1;
    if (pthread_create(&job->th, NULL, thread_main, job) != 0) {
        event_free(job->ev);
        job->ev = NULL;
        return -1;
    }
    job->started = 1;
    job->next = w->run;
    w->run = job;
    return 0;
}
