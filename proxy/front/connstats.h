/* connstats: what the client side counts (connections, requests by route, method and
 * code, durations, bytes, refusals), as statcell.h cells written by the worker that owns
 * the conn_server and read by proxy/admin at scrape time. Label values come only from
 * the fixed sets below, never from request bytes, so client input cannot add series.
 * Invariant: every index stored is within its set (anything else counts as "other"). */
#ifndef FOGATE_CONNSTATS_H
#define FOGATE_CONNSTATS_H

#include <stdint.h>

#include "statcell.h"

#define CONNSTATS_ROUTES 16  /* route indexes 0..15, named by the wiring; 0 = no route */
#define CONNSTATS_METHODS 8  /* GET HEAD POST PUT DELETE PATCH OPTIONS other */
#define CONNSTATS_CODES 34   /* the status codes of connstats_code_name, last = other */
#define CONNSTATS_MALFORMED 26

/* Why a new connection was closed at once, an open one shed, or accepting paused. */
enum connstats_refuse {
    CONNSTATS_REFUSE_FULL,      /* at limits.max_connections with nothing idle to shed */
    CONNSTATS_REFUSE_DRAINING,  /* shutting down */
    CONNSTATS_REFUSE_NOMEM,     /* out of memory for the connection */
    CONNSTATS_REFUSE_IDLE,      /* an idle keep-alive connection closed to make room */
    CONNSTATS_REFUSE_HOLD,      /* accepting paused at the cap (counts pauses) */
    CONNSTATS_REFUSE_PER_IP,    /* over limits.max_connections_per_ip for its address */
    CONNSTATS_REFUSE_N
};

struct connstats {
    statcell accepted;          /* connections taken into service */
    statcell closed;            /* connections ended (open = accepted - closed) */
    statcell refused[CONNSTATS_REFUSE_N];
    statcell cap_episodes;      /* times the connection cap was reached (each logged once) */
    statcell malformed[CONNSTATS_MALFORMED]; /* requests refused before routing, by reason */
    statcell bytes_in, bytes_out;
    statcell requests[CONNSTATS_ROUTES][CONNSTATS_METHODS][CONNSTATS_CODES];
    struct stathist duration[CONNSTATS_ROUTES];
};

/* Counts one finished request: route index (>= CONNSTATS_ROUTES counts as 0), method
 * name ("GET"; NULL when the head never parsed), status, duration and bytes. */
void connstats_request(struct connstats *s, unsigned route, const char *method, int status,
                       int64_t duration_us, uint64_t bytes_in, uint64_t bytes_out);

/* Counts a request refused for its framing or head, by the reply code (a static string
 * such as "bad_content_length"; unknown codes count as "other"). */
void connstats_malformed(struct connstats *s, const char *code);

/* The label value of index i in each set (static strings). Pure. */
const char *connstats_method_name(unsigned i);
const char *connstats_code_name(unsigned i);
const char *connstats_malformed_name(unsigned i);
const char *connstats_refuse_name(unsigned i);

/* The index of a status code / method name in its set (the last one = other). Pure. */
unsigned connstats_code_index(int status);
unsigned connstats_method_index(const char *method);

#endif
