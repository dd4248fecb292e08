/* packageimport: POST /v1/packages/import. GetAzureWriteUrl, then the client's body is
 * streamed to the SAS URL (blobput: Put Block + Put Block List in blocks of
 * packages.block_bytes capped by the SAS version, or one Put Blob for a package of one
 * block; no bearer token) while its SHA-256 is computed, then ImportFromPackage runs
 * through the environment's queue:
 *   body --> [Idempotency-Key done?] -- yes --> hash only --> same: first id / else 422
 *              | no
 *   GetAzureWriteUrl --> blocks (streamed) --> queue (one per environment)
 *              --> ImportFromPackage (never retried, long timeout) --> 202
 * A client that leaves during the upload stops it; once uploaded, the import goes on.
 * The queue, the lock and ImportFromPackage itself are in packagequeue.c. */
#include "packagereq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "log.h"
#include "reqcore.h"

/* ---- the upload ---- */

static size_t put_space(void *b)
{
    return blobput_space(b);
}

static size_t put_send(void *b, const void *data, size_t len)
{
    return blobput_offer(b, data, len);
}

static void push_pending(struct package_req *r)
{
    struct reqcore_pipe p = { r->put, put_space, put_send };

    reqcore_push_pending(&p, r->pending);
}

/* Room towards the blob: pending bytes go first, then the client's body resumes (which
 * may deliver and end the body right here: the caller settles). */
static void send_space(struct package_req *r)
{
    push_pending(r);
    if (evbuffer_get_length(r->pending) > 0 || !r->put)
        return;
    if (r->body_eof)
        blobput_eof(r->put);
    else if (r->req && r->body_reading)
        conn_req_resume_body(r->req);
}

static void on_send_space(void *arg)
{
    struct package_req *r = arg;

    r->busy++;
    send_space(r);
    r->busy--;
    package_req_settle(r);
}

static void on_blob_done(void *arg, const struct blobput_result *d)
{
    struct package_req *r = arg;

    r->put = NULL;
    if (d->ok && r->body_eof) {
        r->uploaded = true;
        log_msg(LOG_LVL_INFO, "package %s uploaded: %u blocks (0: one Put Blob), %u "
                "request(s) sent again", r->exec_id, d->blocks, d->retries);
        EVP_DigestFinal_ex(r->sha, r->sha256, NULL);
        packagequeue_enqueue(r);
    } else {
        packagequeue_drop_key(r);
        if (d->status == 403 && packagename_sas_expired(r->blob_url, time(NULL)))
            package_req_sas_expired(r, "upload URL D365 gave (GetAzureWriteUrl)",
                                    "nothing was imported. Send the import again");
        else if (d->status == 0)
            package_req_error(r, 502, "blob_unreachable", "the package upload to blob "
                              "storage failed at %s: %s%s%s", d->step,
                              upstream_result_name(d->transport), *d->error ? ": " : "",
                              d->error);
        else
            package_req_error(r, 502, "blob_upload_failed", "blob storage answered %d to %s "
                              "of the package upload (an expired SAS answers 403)", d->status,
                              d->step);
    }
    package_req_settle(r);
}

static void start_upload(struct package_req *r)
{
    const struct http1_head *h = conn_req_head(r->req);
    struct blobput_cbs cbs = { .on_space = on_send_space, .on_done = on_blob_done, .arg = r };

    r->put = blobput_start(r->p->base, r->p->up, r->blob_url, (int64_t)h->content_length,
                           r->p->conf->packages.block_bytes, &cbs);
    if (!r->put) {
        packagequeue_drop_key(r);
        package_req_error(r, 413, "package_too_many_blocks", "a package this large needs "
                          "more than 50,000 blocks of the largest size D365's blob URL (its "
                          "storage version) allows; lower max_package_bytes");
        return;
    }
    r->busy++; /* on_write_url settles */
    send_space(r);
    r->busy--;
}

static void on_write_url(void *arg, const struct d365_result *res)
{
    struct package_req *r = arg;

    r->call = NULL;
    if (!res->ok) {
        packagequeue_drop_key(r);
        package_req_fail(r, &res->err);
    } else if (!(r->blob_url = packagename_write_url(res->value))) {
        packagequeue_drop_key(r);
        package_req_error(r, 502, "d365_bad_answer", "GetAzureWriteUrl gave no BlobUrl");
    } else if (packagename_sas_expired(r->blob_url, time(NULL))) {
        packagequeue_drop_key(r);
        package_req_sas_expired(r, "upload URL D365 gave (GetAzureWriteUrl)",
                                "nothing was imported. Send the import again");
    } else if (r->req) {
        start_upload(r);
    }
    package_req_settle(r);
}

/* ---- the client's body ---- */

static void finish_replay(struct package_req *r)
{
    unsigned char sha[32];
    json_t *o;

    EVP_DigestFinal_ex(r->sha, sha, NULL);
    if (memcmp(sha, r->replay_sha, 32) != 0) {
        package_req_error(r, 422, "idempotency_key_reused", "this Idempotency-Key was used "
                          "for a different package");
        return;
    }
    statcell_inc(&r->p->stats.replays);
    o = package_req_accepted(r);
    json_object_set_new(o, "replayed", json_true());
    package_req_json(r, 202, o);
}

static int on_body_data(struct conn_req *req, const char *data, size_t len, void *arg)
{
    struct package_req *r = arg;
    struct reqcore_pipe p = { r->put, put_space, put_send };

    if (r->responded)
        return 0;
    EVP_DigestUpdate(r->sha, data, len);
    return r->replay ? 0 : reqcore_offer(&p, r->pending, req, data, len);
}

static void on_body_end(struct conn_req *req, bool ok, void *arg)
{
    struct package_req *r = arg;

    r->body_reading = false;
    if (ok && !r->responded) {
        r->body_eof = true;
        if (r->replay)
            finish_replay(r);
        else if (r->put && evbuffer_get_length(r->pending) == 0)
            blobput_eof(r->put);
        if (!r->replay)
            return;
    }
    if (!ok)
        packagequeue_drop_key(r);
    reqcore_body_over((struct reqcore){ &r->req, &r->responded, false }, req);
    d365_cancel(r->call);
    r->call = NULL;
    blobput_abort(r->put);
    r->put = NULL;
    package_req_settle(r);
}

/* ---- start ---- */

static int flag(struct package_req *r, const char *name, bool dflt, bool *out)
{
    const struct http1_head *h = conn_req_head(r->req);
    char v[8];
    int n = simpleroute_query(h->target, h->target_len, name, v, sizeof v);

    *out = dflt;
    if (n < 0 && n != -2)
        return 0;
    if (n > 0 && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)) {
        *out = v[0] == 't';
        return 0;
    }
    package_req_error(r, 400, "bad_query", "%s must be true or false", name);
    return -1;
}

/* Company from the file name when neither ?company= nor the job gives one. */
static int company(struct package_req *r)
{
    const struct http1_head *h = conn_req_head(r->req);
    const struct http1_header *f = http1_header_find(h, "X-File-Name");
    char name[256];

    if (r->company[0] || !f)
        return 0;
    snprintf(name, sizeof name, "%.*s", (int)(f->value_len < 255 ? f->value_len : 255),
             f->value);
    if (packagename_company(name, r->company, sizeof r->company) < 0) {
        package_req_error(r, 400, "company_required", "no ?company=, no company on the job, "
                          "and the file name has no <COMPANY>_ prefix");
        return -1;
    }
    return 0;
}

static void start_flow(struct package_req *r);

static void on_idem(void *arg, const struct packageshare_res *res)
{
    struct package_req *r = arg;

    r->op = NULL;
    switch (res->result) {
    case PACKAGESHARE_OK:
        start_flow(r);
        break;
    case PACKAGESHARE_DONE:
        r->replay = true;
        snprintf(r->exec_id, sizeof r->exec_id, "%s", res->exec_id);
        memcpy(r->replay_sha, res->sha256, 32);
        start_flow(r);
        break;
    case PACKAGESHARE_BUSY:
        r->idem_key[0] = '\0';
        package_req_error(r, 409, "idempotency_key_in_use", "an import with this "
                          "Idempotency-Key is still in progress (uploading or waiting for its "
                          "turn); retry later with the same key and package");
        break;
    case PACKAGESHARE_FULL:
        r->idem_key[0] = '\0';
        package_req_error(r, 503, "idempotency_store_full", "too many Idempotency-Keys "
                          "remembered");
        break;
    default:
        r->idem_key[0] = '\0';
        package_req_error(r, 503, "idempotency_store_unavailable", "Redis, which holds "
                          "Idempotency-Keys, is unavailable; nothing was uploaded or imported: "
                          "retry with the same key");
        break;
    }
    package_req_settle(r);
}

/* Idempotency-Key: looked up (and reserved) before anything is uploaded; on_idem goes on.
 * Returns 1 when it did, 0 without a key, -1 when it answered. */
static int idempotency(struct package_req *r)
{
    const struct http1_header *k = http1_header_find(conn_req_head(r->req), "Idempotency-Key");

    if (!k)
        return 0;
    if (k->value_len == 0 || k->value_len >= sizeof r->idem_key) {
        package_req_error(r, 400, "bad_idempotency_key", "Idempotency-Key must be 1 to %zu "
                          "bytes", sizeof r->idem_key - 1);
        return -1;
    }
    memcpy(r->idem_key, k->value, k->value_len);
    r->idem_key[k->value_len] = '\0';
    r->op = packageshare_begin(r->p->share, r->job, r->idem_key, r->exec_id, on_idem, r);
    if (!r->op) {
        r->idem_key[0] = '\0';
        package_req_error(r, 500, "internal", "out of memory");
        return -1;
    }
    return 1;
}

static int check_body(struct package_req *r)
{
    const struct http1_head *h = conn_req_head(r->req);
    size_t limit = r->p->conf->limits.max_package_bytes;

    if (h->framing != HTTP1_BODY_LENGTH) {
        package_req_error(r, h->framing == HTTP1_BODY_NONE ? 400 : 411, "length_required",
                          "send the package with a Content-Length");
        return -1;
    }
    if (h->content_length == 0 || h->content_length > limit) {
        package_req_error(r, h->content_length ? 413 : 400, h->content_length ?
                          "body_too_large" : "empty_body", "the package must be 1 to %zu "
                          "bytes (max_package_bytes)", limit);
        return -1;
    }
    return 0;
}

void packageimport_start(struct package_req *r, const struct conf_job *job)
{
    int rc;

    (void)job;
    if (check_body(r) < 0 || company(r) < 0 || flag(r, "execute", true, &r->execute) < 0 ||
        flag(r, "overwrite", false, &r->overwrite) < 0 || (rc = idempotency(r)) < 0)
        return;
    if (rc == 0)
        start_flow(r);
}

/* The import's history record (not for a replay: that one has its record already). */
static void record(struct package_req *r)
{
    const struct http1_head *h = conn_req_head(r->req);
    const struct http1_header *f = http1_header_find(h, "X-File-Name");
    char name[256];

    snprintf(name, sizeof name, "%.*s", f ? (int)(f->value_len < 255 ? f->value_len : 255) : 0,
             f ? f->value : "");
    r->size = h->content_length;
    history_received(r->p->hist, r->env, r->job, r->client, "package", name[0] ? name : NULL,
                     r->hist_id);
}

/* GetAzureWriteUrl (unless a replay) and the body: to the blob, or only hashed. */
static void start_flow(struct package_req *r)
{
    struct conn_body_sink sink = { on_body_data, on_body_end, r };
    struct d365_cbs cbs = { .on_result = on_write_url, .arg = r };
    char unique[PACKAGENAME_EXEC_MAX + 8];

    if (!r->req) { /* the client left while its key was looked up */
        packagequeue_drop_key(r);
        return;
    }
    if (!(r->pending = evbuffer_new()) || !(r->sha = EVP_MD_CTX_new()) ||
        EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL) != 1) {
        packagequeue_drop_key(r);
        package_req_error(r, 500, "internal", "out of memory");
        return;
    }
    snprintf(unique, sizeof unique, "%s.zip", r->exec_id);
    if (!r->replay && r->p->hist)
        record(r);
    if (!r->replay &&
        !(r->call = d365_action(r->p->ctx, r->env, "GetAzureWriteUrl", "uniqueFileName",
                                unique, &cbs))) {
        packagequeue_drop_key(r);
        package_req_error(r, 500, "internal", "cannot start the GetAzureWriteUrl call");
        return;
    }
    conn_req_set_body_limit(r->req, r->p->conf->limits.max_package_bytes);
    r->body_reading = true; /* the whole body may arrive (and end) inside the call */
    r->busy++;
    if (conn_req_read_body(r->req, &sink) < 0) {
        r->body_reading = false;
        packagequeue_drop_key(r);
        package_req_error(r, 500, "internal", "cannot read the request body");
    } else if (!r->replay && r->body_reading && r->req) {
        conn_req_pause_body(r->req); /* until the blob transfer exists */
    }
    r->busy--;
}

void packageimport_cancel(struct package_req *r)
{
    d365_cancel(r->call);
    r->call = NULL;
    blobput_abort(r->put);
    r->put = NULL;
    if (!r->uploaded) {
        packageshare_cancel(r->op); /* a key lookup: a reservation it makes is released */
        r->op = NULL;
        packagequeue_drop_key(r);
    }
}

void packageimport_stop(struct package_req *r)
{
    packageimport_cancel(r);
    packagequeue_stop(r);
    if (r->pending)
        evbuffer_free(r->pending);
    r->pending = NULL;
    EVP_MD_CTX_free(r->sha);
    r->sha = NULL;
    free(r->blob_url);
    r->blob_url = NULL;
}
