/* simhttp: a small HTTP/1.1 server on libevent bufferevents and http_parser that streams
 * bodies both ways (request bodies to files, responses from files with backpressure).
 * Invariant: one request per connection is handled at a time; pipelined requests wait in
 * the input buffer until the current reply has been fully queued. */
#ifndef SIMHTTP_H
#define SIMHTTP_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#define SIMHTTP_MAX_HEADERS 64

struct simhttp_server;
struct simhttp_conn;

/* Where the request body goes, chosen by on_head. Default: memory, 1 MiB cap. */
enum simhttp_sink { SIMHTTP_SINK_MEM, SIMHTTP_SINK_FILE, SIMHTTP_SINK_DISCARD };

struct simhttp_header {
    char *name;  /* owned */
    char *value; /* owned */
};

/* Response shaping (fault injection). Zero-initialised = none. */
struct simhttp_shape {
    long rate_bps;          /* >0: body at this many bytes per second */
    int stall;              /* 1: headers only, then nothing until the client goes away */
    long long truncate_at;  /* >0: close after this many body bytes */
    int chunked;            /* 1: Transfer-Encoding: chunked instead of Content-Length */
};

/* A request. Fields are read-only for handlers except the ones marked "set by handler". */
struct simhttp_req {
    struct simhttp_conn *conn; /* borrowed; NULL once the client went away */
    struct simhttp_server *srv; /* borrowed */
    const char *method;        /* static string */
    int is_head;
    char *url;                 /* owned: raw request target */
    char *path;                /* owned: raw path, not decoded */
    char *query;               /* owned: raw query, "" when none */
    struct simhttp_header hdrs[SIMHTTP_MAX_HEADERS];
    int nhdrs;
    int64_t content_length;    /* -1 when absent */
    char peer[64];
    /* body, set by handler in on_head */
    enum simhttp_sink sink;
    size_t body_cap;           /* bodies above this set body_too_large (413) */
    char *body_path;           /* owned; FILE sink target (set via simhttp_sink_file) */
    const char *needle;        /* optional: set needle_found if the body contains it */
    /* body, results */
    char *body;                /* owned, NUL-terminated (MEM sink) */
    size_t body_len;           /* bytes received (all sinks) */
    int body_too_large;
    int body_io_error;
    int needle_found;
    long long body_newlines;   /* '\n' bytes seen in the kept body */
    /* routing, set by handler */
    const char *endpoint;      /* static label for counters, e.g. "dequeue" */
    void *route_data;          /* handler-owned cookie */
    void *tag;                 /* handler's per-request state, released in on_free */
    /* private */
    int body_fd;
    char carry[32];
    size_t carry_len;
    int complete, dispatched, replied, close_now;
    struct evbuffer *resp;      /* owned: status line + headers + CRLF */
    struct evbuffer *resp_body; /* owned: memory body, or NULL */
    int resp_fd;                /* file body, or -1 */
    long long resp_len;
    int resp_status;
    struct simhttp_shape shape;
    struct simhttp_req *next_live; /* server's list of live requests */
};

struct simhttp_handlers {
    /* Headers are complete. May choose a sink, reply early (the body is then discarded and
     * the reply sent once it has been read) or call simhttp_close(). */
    void (*on_head)(struct simhttp_req *req, void *ctx);
    /* The whole body has arrived. The handler must reply now or later, exactly once. */
    void (*on_request)(struct simhttp_req *req, void *ctx);
    /* Called once per reply, for counters. */
    void (*on_reply)(struct simhttp_req *req, int status, void *ctx);
    /* The request is going away (reply sent, client gone or server freed); may be NULL. */
    void (*on_free)(struct simhttp_req *req, void *ctx);
};

/* Creates a listener on host:port (port 0 = free port). `h` and `ctx` are borrowed and must
 * outlive the server. Returns NULL on error. */
struct simhttp_server *simhttp_new(struct event_base *base, const char *host, int port,
                                   const struct simhttp_handlers *h, void *ctx);
/* Frees the listener, all connections and all live requests. NULL is a no-op. */
void simhttp_free(struct simhttp_server *srv);
/* The bound port. */
int simhttp_port(const struct simhttp_server *srv);

/* Returns the first header named `name` (case-insensitive), or NULL. Borrowed. */
const char *simhttp_header(const struct simhttp_req *req, const char *name);

/* Streams the body to `path` (copied), created 0600, truncated. Call from on_head. */
void simhttp_sink_file(struct simhttp_req *req, const char *path);

/* Adds a response header; call before the reply. */
void simhttp_add_header(struct simhttp_req *req, const char *name, const char *value);
/* Sets response shaping; call before the reply. */
void simhttp_set_shape(struct simhttp_req *req, const struct simhttp_shape *shape);

/* Replies with a memory body (copied). `ctype` NULL = no Content-Type header. For a
 * request whose client went away this only frees the request. */
void simhttp_reply(struct simhttp_req *req, int status, const char *ctype,
                   const void *body, size_t len);
/* Replies with the file at `path`, streamed. If it cannot be opened, replies 404. */
void simhttp_reply_file(struct simhttp_req *req, int status, const char *ctype,
                        const char *path);
/* Closes the connection without a reply (simulated outage). The request is freed. */
void simhttp_close(struct simhttp_req *req);

#endif
