/* blobput: a package to blob storage in blocks (see blobput.h).
 *
 *   offer --> fill buffer --full (or eof)--> [nothing in flight] --> swap: flight
 *      ^                                                              |
 *      `------------ on_space <---- block 201 <--- Put Block (retried) <'
 *   eof and every block committed --> Put Block List (retried) --> on_done
 *   total <= one block: the single buffer goes as Put Blob (retried) --> on_done
 *
 * Every request is an upstream_fetch: its body is copied once into the transfer, which
 * keeps the flight buffer for a retry. Retries wait on a timer (backoff), never inside an
 * upstream callback. */
#include "blobput.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blockplan.h"

#define MAX_RETRIES 4
#define BACKOFF_MS 250
#define ANSWER_MAX (64 * 1024)   /* blob storage's answers are empty or a short XML error */

enum step { STEP_BLOB, STEP_BLOCK, STEP_LIST };

static const char *const step_names[] = { "Put Blob", "Put Block", "Put Block List" };

struct blobput {
    struct event_base *base;     /* borrowed */
    struct upstream *up;         /* borrowed */
    char *url;                   /* owned; a secret */
    struct blobput_cbs cbs;
    int64_t total, offered;
    size_t block;                /* block size */
    bool single;                 /* one Put Blob */
    char *fill, *flight;         /* owned: block buffers (flight: being sent) */
    size_t fill_len, flight_len;
    unsigned next_index;         /* index of the block in flight / next to send */
    unsigned committed;          /* blocks acknowledged (201) */
    bool in_flight, eof, space_wanted, done, short_body;
    enum step step;
    unsigned tries, retries;     /* of the current request; in all */
    struct upstream_xfer *x;     /* owned while a request runs */
    struct event *timer;         /* owned: retry backoff, and a deferred start */
};

static void send_current(struct blobput *b);

size_t blobput_block_size(const struct blobput *b)
{
    return b->block;
}

static void release(struct blobput *b)
{
    upstream_abort(b->x);
    b->x = NULL;
    if (b->timer)
        event_free(b->timer);
    free(b->fill);
    free(b->flight);
    if (b->url) {
        memset(b->url, 0, strlen(b->url));
        free(b->url);
    }
    free(b);
}

void blobput_abort(struct blobput *b)
{
    if (b)
        release(b);
}

static void done(struct blobput *b, const struct upstream_done *d, const char *why)
{
    struct blobput_result r = { .ok = !d && !why, .step = step_names[b->step],
                                .blocks = b->single ? 0 : b->committed,
                                .retries = b->retries, .error = why ? why : "" };

    if (d) {
        r.status = d->status;
        r.transport = d->result;
        r.error = d->error;
    }
    b->done = true;
    b->cbs.on_done(b->cbs.arg, &r);
    release(b);
}

static bool retryable(const struct upstream_done *d)
{
    if (d->result != UPSTREAM_OK)
        return d->result != UPSTREAM_TOO_LARGE && d->result != UPSTREAM_TLS_FAILED;
    return d->status >= 500 || d->status == 408 || d->status == 429;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    send_current(arg);
}

static void later(struct blobput *b, unsigned ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000 };

    evtimer_add(b->timer, &tv);
}

/* The buffer that just filled becomes the flight; the next block (or the list) goes. */
static void launch(struct blobput *b)
{
    char *t = b->flight;

    b->flight = b->fill;
    b->flight_len = b->fill_len;
    b->fill = t;
    b->fill_len = 0;
    b->in_flight = true;
    b->tries = 0;
    b->step = b->single ? STEP_BLOB : STEP_BLOCK;
    later(b, 0);
}

static void maybe_commit(struct blobput *b)
{
    if (!b->single && b->eof && !b->in_flight && b->fill_len == 0 && b->offered == b->total) {
        b->step = STEP_LIST;
        b->tries = 0;
        b->in_flight = true;
        later(b, 0);
    }
}

static void on_answer(void *arg, const struct upstream_done *d)
{
    struct blobput *b = arg;

    b->x = NULL;
    if (d->result != UPSTREAM_OK || d->status != 201) {
        if (retryable(d) && b->tries <= MAX_RETRIES) {
            b->retries++;
            later(b, BACKOFF_MS << (b->tries - 1));
            return;
        }
        done(b, d, NULL);
        return;
    }
    b->in_flight = false;
    if (b->step != STEP_BLOCK) {
        done(b, NULL, NULL);
        return;
    }
    b->committed++;
    b->next_index++;
    if (b->fill_len == b->block || (b->eof && b->fill_len > 0))
        launch(b);
    else
        maybe_commit(b);
    if (b->space_wanted && blobput_space(b) > 0) {
        b->space_wanted = false;
        b->cbs.on_space(b->cbs.arg); /* last: it may abort b */
    }
}

static void send_current(struct blobput *b)
{
    static const char *const blob_hdrs[] = { "x-ms-blob-type: BlockBlob",
                                             "Content-Type: application/zip" };
    static const char *const list_hdrs[] = { "Content-Type: application/xml",
                                             "x-ms-blob-content-type: application/zip" };
    size_t ul = strlen(b->url), xml_len = 0;
    char *url = malloc(ul + BLOCKPLAN_ID_QUERY_MAX + 32), *xml = NULL;
    const char *body = b->flight;
    size_t len = b->flight_len;

    b->tries++;
    if (b->short_body || !url) {
        free(url);
        done(b, NULL, b->short_body ? "the package ended before its Content-Length"
                                    : "out of memory");
        return;
    }
    memcpy(url, b->url, ul + 1);
    if (b->step == STEP_BLOCK && blockplan_id_query(b->next_index, url + ul,
                                                    BLOCKPLAN_ID_QUERY_MAX) < 0)
        url[ul] = '\0';
    if (b->step == STEP_LIST) {
        strcat(url, "&comp=blocklist");
        body = xml = blockplan_list_xml(b->committed, &xml_len);
        len = xml_len;
    }
    if (body)
        b->x = upstream_fetch(b->up, "PUT", url, b->step == STEP_BLOCK ? NULL
                              : b->step == STEP_BLOB ? blob_hdrs : list_hdrs,
                              b->step == STEP_BLOCK ? 0 : 2, body, len, ANSWER_MAX,
                              (struct upstream_timeouts){ 0 }, on_answer, b);
    free(xml);
    free(url);
    if (!b->x)
        done(b, NULL, "cannot start the blob request");
}

struct blobput *blobput_start(struct event_base *base, struct upstream *up, const char *url,
                              int64_t total, size_t block_bytes, const struct blobput_cbs *cbs)
{
    char sv[16];
    struct blobput *b;
    size_t block;

    blockplan_version(url, sv, sizeof sv);
    block = blockplan_block_size(sv, block_bytes, total);
    if (total <= 0 || block == 0 || !(b = calloc(1, sizeof *b)))
        return NULL;
    b->base = base;
    b->up = up;
    b->cbs = *cbs;
    b->total = total;
    b->single = total <= (int64_t)block;
    b->block = b->single ? (size_t)total : block;
    b->url = strdup(url);
    b->fill = malloc(b->block);
    b->flight = malloc(b->block);
    b->timer = evtimer_new(base, on_timer, b);
    if (!b->url || !b->fill || !b->flight || !b->timer) {
        release(b);
        return NULL;
    }
    return b;
}

size_t blobput_space(const struct blobput *b)
{
    int64_t left = b->total - b->offered;
    size_t room = b->block - b->fill_len;

    if (b->done || b->eof)
        return 0;
    if (room == 0 && !b->in_flight)
        room = b->block; /* launch() empties it on the next offer */
    return (int64_t)room < left ? room : (size_t)left;
}

size_t blobput_offer(struct blobput *b, const void *data, size_t len)
{
    size_t take;

    if (b->fill_len == b->block && !b->in_flight)
        launch(b);
    take = blobput_space(b);
    take = len < take ? len : take;
    memcpy(b->fill + b->fill_len, data, take);
    b->fill_len += take;
    b->offered += (int64_t)take;
    if (b->fill_len == b->block && !b->in_flight)
        launch(b);
    if (take < len || blobput_space(b) == 0)
        b->space_wanted = true;
    return take;
}

void blobput_eof(struct blobput *b)
{
    if (b->eof || b->done)
        return;
    b->eof = true;
    if (b->offered != b->total) { /* reported from the loop, never from inside this call */
        upstream_abort(b->x);
        b->x = NULL;
        b->short_body = true;
        later(b, 0);
        return;
    }
    if (!b->in_flight && b->fill_len > 0)
        launch(b);
    maybe_commit(b);
}
