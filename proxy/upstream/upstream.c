/* upstream: outbound HTTP transfers on the event loop (see upstream.h).
 * A transfer's easy handle is only ever added, removed or un-paused from the event loop
 * (its `kick` event, the `reap` event or curlev's done callback), never from inside a
 * libcurl callback; callbacks only set flags and activate those events.
 *
 *   start -> kick: add -> [read/header/write callbacks, pauses] -> done: on_done, free
 *                \-> upstream_abort: free now (outside libcurl) or mark + reap next turn
 */
#include "upstream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "curlev.h"
#include "h1up.h"
#include "statcell.h"
#include "upreq.h"

/* Easy handles of finished transfers kept for the next ones, with the options every
 * transfer of this client gets still set (the connections live in the multi's cache, not
 * in the handle). */
#define SPARE_MAX 64
/* Idle upstream connections the multi keeps when max_total_connections is 0. Without a
 * fixed value libcurl keeps 4 x the handles added at that moment, so a lull closes the
 * connections the next burst reopens. */
#define IDLE_CONNECTIONS 256
#define SEND_BATCH (64 * 1024)    /* request body buffered before a paused upload resumes */
/* evbuffer_add of n bytes puts what does not fit the last chain in a new chain of the next
 * power of two above n: a 128 KiB read added at once takes a 256 KiB block per read.
 * Added in pieces, the chains stay at 64 KiB and are reused from the heap's free lists. */
#define SEND_PIECE (32 * 1024)

struct upstream {
    struct event_base *base;      /* borrowed */
    struct curlev *ev;            /* owned */
    struct upstream_opts opts;    /* ca_file and proxy point at the owned copies below */
    char *ca_file;                /* owned */
    char *proxy;                  /* owned */
    struct upstream_xfer *xfers;  /* owned list of live transfers */
    struct event *reap;           /* owned: frees transfers aborted inside libcurl */
    CURL *spare[SPARE_MAX];       /* owned: reset easy handles, reused by upstream_start */
    size_t n_spare;
    unsigned bulk_buffers;        /* transfers with the bulk receive buffer now */
    struct upstream_stats stats;
    statcell started[2];          /* transfers started, [enum upstream_client]: /metrics */
    struct h1up *h1;              /* owned: the own client (client = native), or NULL */
};

struct upstream_xfer {
    unsigned char kind;           /* H1UP_KIND_CURL (h1up.c's transfers: H1UP_KIND_H1) */
    struct upstream *up;          /* borrowed owner */
    struct upstream_xfer *prev, *next;  /* in up->xfers */
    CURL *easy;                   /* owned */
    struct curl_slist *hdrs;      /* owned */
    struct upstream_cbs cbs;
    struct uphead *head;          /* owned */
    size_t trailer_bytes;
    struct evbuffer *sendbuf;     /* owned: request body not yet taken by libcurl */
    size_t send_cap;
    int64_t body_len;
    uint64_t pushed;              /* request body bytes accepted from the caller */
    struct evbuffer *fetchbuf;    /* owned; upstream_fetch only */
    bool bulk_buffer;             /* has one of up's max_bulk_buffers receive buffers */
    size_t fetch_cap;
    struct event *kick;           /* owned: add, resume, notify space, from the loop */
    struct event *watch;          /* owned: first-byte and stall limits */
    unsigned first_byte_ms, stall_ms; /* 0 = none */
    int64_t progress_us;          /* monotonic: last byte either way (or fogate's wait) */
    bool upload_done, got_response;
    int paused;                   /* CURLPAUSE_SEND/RECV bits libcurl currently holds */
    enum upstream_result fail;    /* set by our callbacks; UPSTREAM_OK = none */
    const char *fail_text;        /* static string, with fail */
    bool added, head_done, send_eof, pause_next, want_recv, space_wanted, notify_space;
    bool aborted;
    bool is_head;                 /* a HEAD request: no body whatever the head says */
    bool finishing;               /* inside on_done: upstream_abort is a no-op */
    uint64_t bytes_sent, bytes_received;
    char errbuf[CURL_ERROR_SIZE];
};

/* The own client's transfers start with H1UP_KIND_H1. */
static bool is_h1(const struct upstream_xfer *x)
{
    return *(const unsigned char *)x == H1UP_KIND_H1;
}

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int upstream_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void upstream_global_cleanup(void)
{
    curl_global_cleanup();
}

const char *upstream_result_name(enum upstream_result r)
{
    static const char *const names[] = {"OK", "CONNECT_FAILED", "TIMEOUT", "TLS_FAILED",
                                        "TRUNCATED", "ABORTED", "TOO_LARGE", "OTHER",
                                        "FIRST_BYTE_TIMEOUT", "STALLED"};

    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "OTHER";
}

/* ---- transfer lifetime ---- */

static size_t on_header(char *data, size_t size, size_t n, void *userp);
static size_t on_write(char *data, size_t size, size_t n, void *userp);
static size_t on_read(char *buf, size_t size, size_t n, void *userp);
static int on_prereq(void *userp, char *ip, char *local_ip, int port, int local_port);

#define SET(opt, val)                                  \
    do {                                               \
        if (rc == CURLE_OK)                            \
            rc = curl_easy_setopt(e, (opt), (val));    \
    } while (0)

/* A spare handle, or a new one with the options every transfer of `up` gets. */
static CURL *easy_get(struct upstream *up)
{
    CURL *e;
    CURLcode rc;

    if (up->n_spare > 0)
        return up->spare[--up->n_spare];
    if (!(e = curl_easy_init()))
        return NULL;
    rc = upreq_transport(e, &up->opts);
    SET(CURLOPT_HTTP_CONTENT_DECODING, 0L);  /* bytes pass through as encoded */
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_WRITEFUNCTION, on_write);
    SET(CURLOPT_READFUNCTION, on_read);
    SET(CURLOPT_PREREQFUNCTION, on_prereq);
    if (rc != CURLE_OK || curlev_prepare(up->ev, e) != 0) {
        curl_easy_cleanup(e);
        return NULL;
    }
    return e;
}

/* Keeps the handle of a transfer that ran to its end, its per-transfer pointers cleared
 * (they point into the transfer being freed); an aborted one is cleaned up (its state
 * mid-transfer is nothing to reuse). */
static void easy_put(struct upstream_xfer *x)
{
    struct upstream *up = x->up;
    CURL *e = x->easy;
    CURLcode rc = CURLE_OK;

    x->easy = NULL;
    if (x->aborted || up->n_spare >= SPARE_MAX) {
        curl_easy_cleanup(e);
        return;
    }
    SET(CURLOPT_HTTPHEADER, NULL);
    SET(CURLOPT_ERRORBUFFER, NULL);
    SET(CURLOPT_PRIVATE, NULL);
    SET(CURLOPT_HEADERDATA, NULL);
    SET(CURLOPT_WRITEDATA, NULL);
    SET(CURLOPT_READDATA, NULL);
    if (rc == CURLE_OK)
        up->spare[up->n_spare++] = e;
    else
        curl_easy_cleanup(e);
}

#undef SET

static void xfer_free(struct upstream_xfer *x)
{
    struct upstream *up = x->up;

    if (x->bulk_buffer)
        up->bulk_buffers--;
    up->stats.bytes_sent += x->bytes_sent;
    up->stats.bytes_received += x->bytes_received;
    if (x->prev)
        x->prev->next = x->next;
    else if (up->xfers == x)
        up->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    if (x->easy && x->added)
        curlev_remove(up->ev, x->easy);
    if (x->easy)
        easy_put(x);
    free(x->hdrs); /* one block (upreq_headers) */
    uphead_free(x->head);
    if (x->sendbuf)
        evbuffer_free(x->sendbuf);
    if (x->fetchbuf)
        evbuffer_free(x->fetchbuf);
    if (x->kick)
        event_free(x->kick);
    if (x->watch)
        event_free(x->watch);
    free(x);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct upstream *up = arg;
    struct upstream_xfer *x = up->xfers, *next;

    for (; x; x = next) {
        next = x->next;
        if (x->aborted)
            xfer_free(x);
    }
}

void upstream_abort(struct upstream_xfer *x)
{
    if (x && is_h1(x)) {
        h1up_abort(x);
        return;
    }
    if (!x || x->aborted || x->finishing)
        return;
    x->aborted = true;
    x->up->stats.transfers_aborted++;
    if (curlev_busy(x->up->ev))
        event_active(x->up->reap, EV_TIMEOUT, 0);
    else
        xfer_free(x);
}

static bool is_tls_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR: case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER: case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS: case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED: case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED: case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CLIENTCERT: case CURLE_USE_SSL_FAILED:
        return true;
    default:
        return false;
    }
}

static enum upstream_result classify(const struct upstream_xfer *x, CURLcode rc)
{
    if (x->fail != UPSTREAM_OK)
        return x->fail;
    switch (rc) {
    case CURLE_OK:
        return UPSTREAM_OK;
    case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
        return UPSTREAM_CONNECT_FAILED;
    case CURLE_OPERATION_TIMEDOUT:
        return UPSTREAM_TIMEOUT;
    case CURLE_PARTIAL_FILE:
        return UPSTREAM_TRUNCATED;
    case CURLE_RECV_ERROR:
        /* reset after the head: the body is cut short */
        return x->head_done ? UPSTREAM_TRUNCATED : UPSTREAM_OTHER;
    default:
        return is_tls_error(rc) ? UPSTREAM_TLS_FAILED : UPSTREAM_OTHER;
    }
}

/* Drops every "?query" from libcurl's text: queries may carry secrets (SAS signatures). */
static void scrub_queries(char *s)
{
    char *q;

    while ((q = strchr(s, '?'))) {
        size_t n = strcspn(q, " \t\"'<>");

        memmove(q, q + n, strlen(q + n) + 1);
        s = q;
    }
}

static const char *error_text(struct upstream_xfer *x, enum upstream_result r, CURLcode rc)
{
    if (r == UPSTREAM_OK)
        return "";
    if (x->fail_text)
        return x->fail_text;
    if (!x->errbuf[0])
        snprintf(x->errbuf, sizeof(x->errbuf), "%s", curl_easy_strerror(rc));
    scrub_queries(x->errbuf);
    return x->errbuf;
}

static void fetch_body(struct upstream_xfer *x, struct upstream_done *d)
{
    if (!x->fetchbuf || d->result != UPSTREAM_OK)
        return;
    d->body_len = evbuffer_get_length(x->fetchbuf);
    if (evbuffer_add(x->fetchbuf, "", 1) == 0)
        d->body = (const char *)evbuffer_pullup(x->fetchbuf, -1);
    if (!d->body) {
        d->result = UPSTREAM_OTHER;
        d->error = "out of memory";
        d->body_len = 0;
    }
}

/* Reports a finished transfer. The handle leaves the multi first, so that a request the
 * caller starts from on_done can reuse the connection. */
static void finish(struct upstream_xfer *x, CURLcode rc)
{
    struct upstream *up = x->up;
    struct upstream_done d = {0};

    d.result = classify(x, rc);
    d.error = error_text(x, d.result, rc);
    d.status = x->head_done ? uphead_status(x->head) : 0;
    d.head = x->head_done ? x->head : NULL;
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &d.connects);
    d.bytes_sent = x->bytes_sent;
    d.bytes_received = x->bytes_received;
    d.request_sent = x->upload_done;
    fetch_body(x, &d);
    if (x->added)
        curlev_remove(up->ev, x->easy);
    x->added = false;
    up->stats.transfers_done++;
    up->stats.connects += (uint64_t)(d.connects > 0 ? d.connects : 0);
    x->finishing = true;
    x->cbs.on_done(x->cbs.arg, &d);
    xfer_free(x);
}

static void on_curl_done(void *arg, CURL *easy, CURLcode rc)
{
    char *priv = NULL;
    struct upstream_xfer *x;

    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    x = (struct upstream_xfer *)priv;
    if (x->aborted)
        xfer_free(x);
    else
        finish(x, rc);
}

/* ---- libcurl callbacks: flags and buffers only ---- */

static size_t fail(struct upstream_xfer *x, enum upstream_result r, const char *text)
{
    x->fail = r;
    x->fail_text = text;
    return 0;
}

static void kick(struct upstream_xfer *x)
{
    event_active(x->kick, EV_TIMEOUT, 0);
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    struct upstream_xfer *x = userp;
    size_t len = size * n;
    size_t cap = x->up->opts.max_header_bytes;

    if (x->aborted)
        return 0;
    x->got_response = true;
    x->progress_us = mono_us();
    if (x->head_done) {  /* trailers: bounded, then ignored */
        x->trailer_bytes += len;
        return x->trailer_bytes > cap ? fail(x, UPSTREAM_TOO_LARGE, "response trailers too large")
                                      : len;
    }
    switch (uphead_feed(x->head, data, len)) {
    case UPHEAD_MORE:
    case UPHEAD_INTERIM:
        return len;
    case UPHEAD_TOO_BIG:
        return fail(x, UPSTREAM_TOO_LARGE, "response head too large");
    case UPHEAD_BAD:
        return fail(x, UPSTREAM_OTHER, "malformed response head");
    case UPHEAD_DONE:
        break;
    }
    x->head_done = true;
    /* no use reading a body announced over a fetch's cap (h1up.c checks the same) */
    if (x->fetchbuf && uphead_body_over(x->head, x->is_head, x->fetch_cap))
        return fail(x, UPSTREAM_TOO_LARGE, "response body over the fetch limit");
    if (x->cbs.on_head)
        x->cbs.on_head(x->cbs.arg, x->head);
    return x->aborted ? 0 : len;
}

static size_t fetch_take(struct upstream_xfer *x, const char *data, size_t len)
{
    if (len > x->fetch_cap - evbuffer_get_length(x->fetchbuf))
        return fail(x, UPSTREAM_TOO_LARGE, "response body over the fetch limit");
    if (evbuffer_add(x->fetchbuf, data, len) != 0)
        return fail(x, UPSTREAM_OTHER, "out of memory");
    x->bytes_received += len;
    return len;
}

/* A pause asked by on_body takes effect on the next chunk: libcurl keeps that chunk (at
 * most its receive buffer) and hands it over again after the un-pause. */
static size_t on_write(char *data, size_t size, size_t n, void *userp)
{
    struct upstream_xfer *x = userp;
    size_t len = size * n;

    if (x->aborted)
        return 0;
    if (x->pause_next) {
        x->pause_next = false;
        x->paused |= CURLPAUSE_RECV;
        x->up->stats.pauses++;
        return CURL_WRITEFUNC_PAUSE;
    }
    x->progress_us = mono_us();
    if (x->fetchbuf)
        return fetch_take(x, data, len);
    x->bytes_received += len;
    if (x->cbs.on_body && x->cbs.on_body(x->cbs.arg, data, len) == UPSTREAM_PAUSE)
        x->pause_next = true;
    return x->aborted ? 0 : len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *userp)
{
    struct upstream_xfer *x = userp;
    size_t have;
    int got;

    if (!x || x->aborted) /* NULL: a transfer without a body (never called) */
        return CURL_READFUNC_ABORT;
    have = evbuffer_get_length(x->sendbuf);
    if (have == 0 && !x->send_eof) {
        x->paused |= CURLPAUSE_SEND;
        x->up->stats.pauses++;
        return CURL_READFUNC_PAUSE;
    }
    if (have == 0 && x->body_len >= 0 && x->pushed < (uint64_t)x->body_len) {
        fail(x, UPSTREAM_OTHER, "request body shorter than its Content-Length");
        return CURL_READFUNC_ABORT;
    }
    got = evbuffer_remove(x->sendbuf, buf, have < size * n ? have : size * n);
    if (got < 0)
        return CURL_READFUNC_ABORT;
    x->bytes_sent += (uint64_t)got;
    x->progress_us = mono_us();
    if (got == 0 || (x->body_len >= 0 && x->bytes_sent == (uint64_t)x->body_len))
        x->upload_done = true;
    if (x->space_wanted && evbuffer_get_length(x->sendbuf) <= x->send_cap / 2) {
        x->space_wanted = false;
        x->notify_space = true;
        kick(x);
    }
    return (size_t)got;
}

/* ---- watchdog: first byte and stall (a timer, pushed back by progress) ---- */

/* The connection is ready and the request about to go: the wait for a connection (the
 * limits' queue, connect, TLS) was not the peer's silence. Without this a transfer that
 * waited in the queue across a watch check had that wait counted (test_upstream's
 * test_waiting_for_a_connection_is_not_a_stall). */
static int on_prereq(void *userp, char *ip, char *local_ip, int port, int local_port)
{
    struct upstream_xfer *x = userp;

    (void)ip;
    (void)local_ip;
    (void)port;
    (void)local_port;
    x->progress_us = mono_us();
    return CURL_PREREQFUNC_OK;
}

/* fogate, not the peer, is the one waiting: the consumer paused the response, the upload
 * is paused until the caller pushes more bytes, or no connection is free yet. */
static bool held_here(const struct upstream_xfer *x)
{
    curl_off_t pre = 0;

    if ((x->paused & CURLPAUSE_RECV) || x->pause_next || x->want_recv)
        return true;
    if (x->paused & CURLPAUSE_SEND)
        return true; /* the upload waits for the caller's bytes (or for a batch of them) */
    return curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &pre) == CURLE_OK &&
           pre == 0 && !x->got_response;
}

/* The limit that applies now (ms, 0 = none): first byte once the request is out and
 * nothing came back, stall otherwise. */
static unsigned limit_now(const struct upstream_xfer *x)
{
    return x->upload_done && !x->got_response ? x->first_byte_ms : x->stall_ms;
}

/* Arms the watch in `in_us`, or (0) at the nearest limit that may apply. */
static void watch_arm(struct upstream_xfer *x, int64_t in_us)
{
    unsigned a = x->first_byte_ms, b = x->stall_ms;
    unsigned ms = a && b ? (a < b ? a : b) : (a ? a : b);
    struct timeval tv;

    if (!ms)
        return;
    if (in_us <= 0)
        in_us = (int64_t)ms * 1000;
    tv.tv_sec = (time_t)(in_us / 1000000);
    tv.tv_usec = (suseconds_t)(in_us % 1000000);
    evtimer_add(x->watch, &tv);
}

static void on_watch(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_xfer *x = arg;
    int64_t now = mono_us(), due;
    unsigned lim;

    if (x->aborted || !x->added)
        return;
    if (held_here(x)) {
        x->progress_us = now;
        watch_arm(x, 0);
        return;
    }
    lim = limit_now(x);
    due = x->progress_us + (int64_t)lim * 1000;
    if (lim && now >= due) {
        bool head = x->upload_done && !x->got_response;
        fail(x, head ? UPSTREAM_FIRST_BYTE : UPSTREAM_STALLED,
             head ? "no response within the first-byte limit after the request was sent"
                  : "no byte moved either way within the stall limit");
        finish(x, CURLE_OPERATION_TIMEDOUT);
        return;
    }
    watch_arm(x, lim ? due - now : 0);
}

/* ---- event loop side ---- */

static void resume(struct upstream_xfer *x)
{
    int bits = x->paused;

    if ((bits & CURLPAUSE_SEND) && (evbuffer_get_length(x->sendbuf) > 0 || x->send_eof))
        bits &= ~CURLPAUSE_SEND;
    if ((bits & CURLPAUSE_RECV) && x->want_recv) {
        bits &= ~CURLPAUSE_RECV;
        x->want_recv = false;
    }
    if (bits == x->paused)
        return;
    x->paused = bits;  /* before the call: libcurl may pause again from inside it */
    curlev_pause(x->up->ev, x->easy, bits);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct upstream_xfer *x = arg;

    if (x->aborted)
        return;
    if (!x->added) {
        if (curlev_add(x->up->ev, x->easy) != 0) {
            fail(x, UPSTREAM_OTHER, "could not start the transfer");
            finish(x, CURLE_FAILED_INIT);
            return;
        }
        x->added = true;
        x->progress_us = mono_us();
        watch_arm(x, 0);
    }
    resume(x);
    if (x->aborted || !x->notify_space)
        return;
    x->notify_space = false;
    if (x->cbs.on_send_space)
        x->cbs.on_send_space(x->cbs.arg);  /* last: it may abort x */
}

size_t upstream_send_space(const struct upstream_xfer *x)
{
    if (is_h1(x))
        return h1up_send_space(x);
    size_t have = evbuffer_get_length(x->sendbuf);
    size_t room = have >= x->send_cap ? 0 : x->send_cap - have;

    if (x->aborted || x->send_eof)
        return 0;
    if (x->body_len >= 0 && (uint64_t)x->body_len - x->pushed < room)
        room = (size_t)((uint64_t)x->body_len - x->pushed);
    return room;
}

/* A paused upload resumes once SEND_BATCH bytes (or the whole body) wait, so that each
 * wake-up of libcurl sends one large piece rather than each small read of the client. */
static void after_push(struct upstream_xfer *x, size_t took, size_t offered)
{
    bool complete = x->body_len >= 0 && x->pushed + took == (uint64_t)x->body_len;
    size_t batch = x->send_cap < SEND_BATCH ? x->send_cap : SEND_BATCH;

    x->pushed += took;
    if (!complete && (took < offered || upstream_send_space(x) == 0))
        x->space_wanted = true;
    if (took && (x->paused & CURLPAUSE_SEND) &&
        (complete || evbuffer_get_length(x->sendbuf) >= batch))
        kick(x);
}

size_t upstream_send(struct upstream_xfer *x, const void *data, size_t len)
{
    if (is_h1(x))
        return h1up_send(x, data, len);
    size_t room = upstream_send_space(x);
    size_t want = len < room ? len : room, take = 0;

    while (take < want) {
        size_t n = want - take < SEND_PIECE ? want - take : SEND_PIECE;
        if (evbuffer_add(x->sendbuf, (const char *)data + take, n) != 0)
            break;
        take += n;
    }
    after_push(x, take, len);
    return take;
}

size_t upstream_send_buffer(struct upstream_xfer *x, struct evbuffer *src)
{
    if (is_h1(x))
        return h1up_send_buffer(x, src);
    size_t len = evbuffer_get_length(src);
    size_t room = upstream_send_space(x);
    int moved = evbuffer_remove_buffer(src, x->sendbuf, len < room ? len : room);
    size_t take = moved > 0 ? (size_t)moved : 0;

    after_push(x, take, len);
    return take;
}

void upstream_send_eof(struct upstream_xfer *x)
{
    if (is_h1(x)) {
        h1up_send_eof(x);
        return;
    }
    if (x->aborted || x->send_eof)
        return;
    x->send_eof = true;
    x->space_wanted = false;
    if (x->paused & CURLPAUSE_SEND)
        kick(x);
}

void upstream_resume_recv(struct upstream_xfer *x)
{
    if (is_h1(x)) {
        h1up_resume_recv(x);
        return;
    }
    if (x->aborted)
        return;
    if (x->pause_next) {
        x->pause_next = false;
    } else if (x->paused & CURLPAUSE_RECV) {
        x->want_recv = true;
        kick(x);
    }
}

/* ---- setup ---- */

#define SET(opt, val)                                  \
    do {                                               \
        if (rc == CURLE_OK)                            \
            rc = curl_easy_setopt(e, (opt), (val));    \
    } while (0)

/* The options of this transfer; easy_get set those of every transfer. */
static CURLcode set_options(struct upstream_xfer *x, const struct upstream_req *req)
{
    CURL *e = x->easy;
    CURLcode rc = upreq_target(e, &x->up->opts, req);

    if (rc == CURLE_OK)
        rc = upreq_method(e, req->method, req->body_len);
    if (req->body_len != UPSTREAM_BODY_NONE) {
        /* one send per read callback: as large as the body buffer (libcurl: 16 KiB-2 MiB) */
        size_t ul = req->body_len >= 0 && (uint64_t)req->body_len < x->send_cap
                        ? (size_t)req->body_len : x->send_cap;
        SET(CURLOPT_READDATA, x);
        SET(CURLOPT_UPLOAD_BUFFERSIZE, (long)ul);
    }
    /* libcurl allocates the receive buffer per transfer: 256 KiB reads keep a 1 GiB download
     * at nginx's speed (64 KiB: 0.7-0.9x), 64 KiB keeps 64 small calls at once from
     * spreading 16 MB over the heap; bulk transfers get the large one, a few at a time. */
    x->bulk_buffer = req->bulk && x->up->bulk_buffers < x->up->opts.max_bulk_buffers;
    x->up->bulk_buffers += x->bulk_buffer;
    if (x->up->bulk_buffers > x->up->stats.bulk_buffers_peak)
        x->up->stats.bulk_buffers_peak = x->up->bulk_buffers;
    SET(CURLOPT_BUFFERSIZE, (long)(x->bulk_buffer ? x->up->opts.bulk_buffer_bytes
                                                 : x->up->opts.recv_buffer_bytes));
    SET(CURLOPT_PRIVATE, (char *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_HTTPHEADER, x->hdrs);
    SET(CURLOPT_HEADERDATA, x);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_PREREQDATA, x);
    return rc;
}

#undef SET

static struct upstream_xfer *curl_start(struct upstream *up, const struct upstream_req *req,
                                        const struct upstream_cbs *cbs)
{
    struct upstream_xfer *x;

    if (!upreq_method_ok(req->method) || !req->url || !cbs->on_done ||
        req->body_len < UPSTREAM_BODY_CHUNKED)
        return NULL;
    x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->up = up;
    x->next = up->xfers;
    if (up->xfers)
        up->xfers->prev = x;
    up->xfers = x;
    x->cbs = *cbs;
    x->body_len = req->body_len;
    x->is_head = strcmp(req->method, "HEAD") == 0;
    x->send_cap = up->opts.send_buffer_bytes;
    x->easy = easy_get(up);
    x->head = uphead_new(up->opts.max_header_bytes);
    x->sendbuf = evbuffer_new();
    x->kick = event_new(up->base, -1, 0, on_kick, x);
    x->watch = evtimer_new(up->base, on_watch, x);
    x->first_byte_ms = upreq_limit(req->timeouts.first_byte_ms, up->opts.first_byte_timeout_ms);
    x->stall_ms = upreq_limit(req->timeouts.stall_ms, up->opts.stall_timeout_ms);
    x->upload_done = req->body_len == UPSTREAM_BODY_NONE || req->body_len == 0;
    if (!x->easy || !x->head || !x->sendbuf || !x->kick || !x->watch ||
        upreq_headers(req->headers, req->n_headers, &x->hdrs) != 0 ||
        set_options(x, req) != CURLE_OK) {
        xfer_free(x);
        return NULL;
    }
    kick(x);  /* added from the loop, so no callback runs before we return */
    return x;
}

struct upstream_xfer *upstream_start(struct upstream *up, const struct upstream_req *req,
                                     const struct upstream_cbs *cbs)
{
    bool native = up->h1 && h1up_handles(up->h1, req->url);
    struct upstream_xfer *x = native ? h1up_start(up->h1, req, cbs) : curl_start(up, req, cbs);

    if (x)
        statcell_add(&up->started[native ? UPSTREAM_CLIENT_NATIVE : UPSTREAM_CLIENT_CURL], 1);
    return x;
}

static bool bodyless(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
           strcmp(method, "DELETE") == 0;
}

struct upstream_xfer *upstream_fetch(struct upstream *up, const char *method,
                                     const char *url, const char *const *headers,
                                     size_t n_headers, const void *body, size_t body_len,
                                     size_t max_response_bytes,
                                     struct upstream_timeouts timeouts,
                                     void (*on_done)(void *arg, const struct upstream_done *d),
                                     void *arg)
{
    bool none = !body && method && bodyless(method);
    struct upstream_req req = {
        .method = method, .url = url, .headers = headers, .n_headers = n_headers,
        .body_len = none ? UPSTREAM_BODY_NONE : (int64_t)body_len, .timeouts = timeouts,
    };
    struct upstream_cbs cbs = {.on_done = on_done, .arg = arg};
    struct upstream_xfer *x;

    if (up->h1 && url && h1up_handles(up->h1, url)) {
        x = h1up_fetch(up->h1, &req, &cbs, body, none ? 0 : body_len, max_response_bytes);
        if (x)
            statcell_add(&up->started[UPSTREAM_CLIENT_NATIVE], 1);
        return x;
    }
    if (!(x = curl_start(up, &req, &cbs)))
        return NULL;
    x->fetch_cap = max_response_bytes;
    x->fetchbuf = evbuffer_new();
    if (!x->fetchbuf) {
        upstream_abort(x);
        return NULL;
    }
    if (!none) {
        x->send_cap = body_len;
        if (upstream_send(x, body, body_len) != body_len) {
            upstream_abort(x);
            return NULL;
        }
        upstream_send_eof(x);
    }
    statcell_add(&up->started[UPSTREAM_CLIENT_CURL], 1);
    return x;
}

void upstream_started(const struct upstream *up, uint64_t out[2])
{
    out[UPSTREAM_CLIENT_CURL] = statcell_get(&up->started[UPSTREAM_CLIENT_CURL]);
    out[UPSTREAM_CLIENT_NATIVE] = statcell_get(&up->started[UPSTREAM_CLIENT_NATIVE]);
}

/* ---- the client ---- */

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static void fill_defaults(struct upstream_opts *o)
{
    if (!o->max_header_bytes)
        o->max_header_bytes = 64 * 1024;
    /* 64 KiB like nginx's proxy_buffer_size: libcurl allocates the receive buffer per
     * transfer, small ones too, so 64 concurrent requests spread 64 x this over the heap,
     * pages a later stream's buffers walk through (peak RSS +10 MB at 256 KiB). */
    if (!o->send_buffer_bytes)
        o->send_buffer_bytes = 128 * 1024;
    if (!o->recv_buffer_bytes)
        o->recv_buffer_bytes = 64 * 1024;
    if (!o->bulk_buffer_bytes)
        o->bulk_buffer_bytes = 256 * 1024;
    if (!o->max_bulk_buffers)
        o->max_bulk_buffers = 4; /* 4 downloads at once, 1 MiB of buffers at most */
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = 10 * 1000;
    if (!o->total_timeout_ms)
        o->total_timeout_ms = 60 * 60 * 1000;
}

struct upstream *upstream_new(struct event_base *base, const struct upstream_opts *opts)
{
    struct upstream *up = calloc(1, sizeof(*up));
    CURLM *m;

    if (!up)
        return NULL;
    up->base = base;
    up->opts = *opts;
    fill_defaults(&up->opts);
    up->ca_file = dup_or_null(opts->ca_file);
    up->proxy = dup_or_null(opts->proxy);
    up->opts.ca_file = up->ca_file;
    up->opts.proxy = up->proxy;
    up->ev = curlev_new(base, on_curl_done, up);
    up->reap = event_new(base, -1, 0, on_reap, up);
    if (opts->client == UPSTREAM_CLIENT_NATIVE)
        up->h1 = h1up_new(base, &up->opts, &up->stats, &up->bulk_buffers);
    if (!up->ev || !up->reap || (opts->client == UPSTREAM_CLIENT_NATIVE && !up->h1) ||
        (opts->ca_file && *opts->ca_file && !up->ca_file) ||
        (opts->proxy && *opts->proxy && !up->proxy)) {
        upstream_free(up);
        return NULL;
    }
    m = curlev_multi(up->ev);
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, up->opts.max_host_connections);
    curl_multi_setopt(m, CURLMOPT_MAX_TOTAL_CONNECTIONS, up->opts.max_total_connections);
    curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING);
    curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, up->opts.max_total_connections > 0
                                                   ? up->opts.max_total_connections
                                                   : (long)IDLE_CONNECTIONS);
    return up;
}

void upstream_free(struct upstream *up)
{
    if (!up)
        return;
    while (up->xfers) {
        up->xfers->aborted = true;
        xfer_free(up->xfers);
    }
    h1up_free(up->h1);
    curlev_free(up->ev);
    while (up->n_spare > 0)
        curl_easy_cleanup(up->spare[--up->n_spare]);
    if (up->reap)
        event_free(up->reap);
    free(up->ca_file);
    free(up->proxy);
    free(up);
}

void upstream_stats(const struct upstream *up, struct upstream_stats *out)
{
    struct curlev_stats cs;
    uint64_t started[2];

    *out = up->stats;
    upstream_started(up, started);
    out->transfers_started = started[UPSTREAM_CLIENT_CURL] + started[UPSTREAM_CLIENT_NATIVE];
    out->native_started = started[UPSTREAM_CLIENT_NATIVE];
    curlev_stats(up->ev, &cs);
    out->socket_events = cs.socket_events;
    out->timer_events = cs.timer_events;
    out->rearms = cs.rearms;
    out->bulk_buffers = up->bulk_buffers;
    out->sockets = cs.sockets;
    if (up->h1)
        h1up_stats(up->h1, out);
}
