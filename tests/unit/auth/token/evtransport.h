/* Test helper for test_token: a real, non-blocking token transport on the test's libevent
 * loop (evhttp client), one connection per request. It talks HTTP/1.1 to fosim the way
 * proxy/'s libcurl transport will talk HTTPS to Entra. Counts what it is asked to do. */
#ifndef FOGATE_TEST_TOKEN_EVTRANSPORT_H
#define FOGATE_TEST_TOKEN_EVTRANSPORT_H

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>

#include "token.h"

#define TX_BODY_MAX (64 * 1024)
#define TX_LOG 64 /* the last requests whose send times are kept */

struct tx_req {
    struct tx_req *next;
    struct evhttp_connection *conn; /* owned; freed after completion or on cancel */
    token_http_done *done;
    void *arg; /* the manager's */
    struct tx *tx;
};

struct tx {
    struct event_base *base;
    struct tx_req *reqs; /* in flight */
    int posts, gets, cancels, completions, in_flight, max_in_flight;
    int refuse;          /* when set, post_form returns -1 */
    /* CLOCK_MONOTONIC (us) when request number n (tx.posts before it) was sent, at
     * [n % TX_LOG]. A retry timer of d ms armed when request n's answer came shows as
     * sent_us[n + 1] - sent_us[n] >= d ms (less one tick if libevent reads the coarse
     * monotonic clock), however late the test looks at it. */
    long long sent_us[TX_LOG];
};

static inline long long tx_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline void tx_unlink(struct tx *tx, struct tx_req *r)
{
    for (struct tx_req **p = &tx->reqs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            tx->in_flight--;
            return;
        }
}

/* Frees a finished connection on the next loop turn (never inside its own callback). */
static inline void tx_free_conn(evutil_socket_t fd, short what, void *arg)
{
    evhttp_connection_free(arg);
}

static inline void tx_on_done(struct evhttp_request *req, void *arg)
{
    struct tx_req *r = arg;
    struct tx *tx = r->tx;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    struct evbuffer *in = req ? evhttp_request_get_input_buffer(req) : NULL;
    size_t len = in ? evbuffer_get_length(in) : 0;
    char *body = NULL;

    if (len > TX_BODY_MAX)
        status = 0, len = 0;
    body = calloc(1, len + 1);
    if (body && len)
        evbuffer_copyout(in, body, len);
    tx_unlink(tx, r);
    tx->completions++;
    r->done(r->arg, body ? status : 0, body ? body : "", body ? len : 0);
    if (body)
        OPENSSL_clear_free(body, len + 1);
    struct timeval now = { 0, 0 };
    event_base_once(tx->base, -1, EV_TIMEOUT, tx_free_conn, r->conn, &now);
    free(r);
}

/* Adds "Name: value" lines as request headers; 0 or -1 if one has no colon. */
static inline int tx_add_headers(struct evhttp_request *req, const char *const *hdrs, size_t n)
{
    char name[128];

    for (size_t i = 0; i < n; i++) {
        const char *colon = strchr(hdrs[i], ':');
        if (!colon || (size_t)(colon - hdrs[i]) >= sizeof(name))
            return -1;
        memcpy(name, hdrs[i], (size_t)(colon - hdrs[i]));
        name[colon - hdrs[i]] = '\0';
        evhttp_add_header(evhttp_request_get_output_headers(req), name, colon + 2);
    }
    return 0;
}

/* POST (body != NULL) or GET with extra header lines. */
static inline int tx_send(struct tx *tx, const char *url, const char *body, size_t len,
                          const char *const *hdrs, size_t n, unsigned timeout_ms,
                          token_http_done *done, void *arg)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    struct tx_req *r = NULL;
    struct evhttp_request *req = NULL;
    char path[2048];
    int rc = -1;

    if (tx->refuse || !u || !evhttp_uri_get_host(u) || !(r = calloc(1, sizeof(*r))))
        goto out;
    int port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    snprintf(path, sizeof(path), "%s%s%s", evhttp_uri_get_path(u) ? evhttp_uri_get_path(u) : "/",
             evhttp_uri_get_query(u) ? "?" : "", evhttp_uri_get_query(u) ? evhttp_uri_get_query(u) : "");
    r->conn = evhttp_connection_base_new(tx->base, NULL, evhttp_uri_get_host(u), (unsigned short)port);
    req = r->conn ? evhttp_request_new(tx_on_done, r) : NULL;
    if (!req)
        goto out;
    struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
    evhttp_connection_set_timeout_tv(r->conn, &tv);
    evhttp_connection_set_max_body_size(r->conn, TX_BODY_MAX);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", evhttp_uri_get_host(u));
    if (body) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/x-www-form-urlencoded");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, len);
    }
    if (tx_add_headers(req, hdrs, n) != 0) {
        evhttp_request_free(req);
        req = NULL;
        goto out;
    }
    r->done = done, r->arg = arg, r->tx = tx;
    if (evhttp_make_request(r->conn, req, body ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, path) != 0) {
        req = NULL; /* freed by evhttp_make_request on failure */
        goto out;
    }
    r->next = tx->reqs;
    tx->reqs = r;
    if (++tx->in_flight > tx->max_in_flight)
        tx->max_in_flight = tx->in_flight;
    r = NULL;
    rc = 0;
out:
    if (r && r->conn)
        evhttp_connection_free(r->conn);
    free(r);
    if (u)
        evhttp_uri_free(u);
    return rc;
}

static inline int tx_post_form(void *ctx, const char *url, const char *body, size_t len,
                               unsigned timeout_ms, token_http_done *done, void *arg)
{
    struct tx *tx = ctx;
    int seq = tx->posts++;

    tx->sent_us[seq % TX_LOG] = tx_now_us();
    return tx_send(tx, url, body, len, NULL, 0, timeout_ms, done, arg);
}

static inline int tx_get(void *ctx, const char *url, const char *const *hdrs, size_t n,
                         unsigned timeout_ms, token_http_done *done, void *arg)
{
    struct tx *tx = ctx;

    tx->gets++;
    return tx_send(tx, url, NULL, 0, hdrs, n, timeout_ms, done, arg);
}

static inline void tx_cancel(void *ctx, void *arg)
{
    struct tx *tx = ctx;

    for (struct tx_req *r = tx->reqs; r; r = r->next)
        if (r->arg == arg) {
            tx_unlink(tx, r);
            tx->cancels++;
            evhttp_connection_free(r->conn); /* frees the request without calling back */
            free(r);
            return;
        }
}

static inline struct token_transport tx_transport(struct tx *tx)
{
    struct token_transport t = { .ctx = tx, .post_form = tx_post_form, .get = tx_get,
                                 .cancel = tx_cancel };
    return t;
}

#endif
