/* simspl: D365 service protection (reference §5) as fosim emulates it: per identity (the
 * token's app), a concurrency limit and a sliding window of request count and combined
 * execution time, each with its verbatim 429 message and an integer Retry-After. Pure: the
 * caller passes the time. Invariant: a request counts in the window only if it was admitted. */
#ifndef SIMSPL_H
#define SIMSPL_H

#include <stddef.h>
#include <jansson.h>

#define SIMSPL_MAX_ENDPOINTS 16

/* The "service_protection" config object. Zeroed + simspl_conf_defaults = D365's limits. */
struct simspl_conf {
    int enabled;                 /* off by default: fosim answers without limits */
    long concurrent;             /* in-flight requests per identity (52) */
    long requests;               /* requests per window (6000) */
    double exec_secs;            /* combined execution time per window (1200 s) */
    double window_secs;          /* sliding window (300 s) */
    long concurrent_retry_after; /* Retry-After of the concurrency 429 (1 s) */
    double extend_secs;          /* >0: each request while throttled pushes the gate out */
    char endpoints[SIMSPL_MAX_ENDPOINTS][48]; /* labels or families that count */
    size_t nendpoints;
};

enum simspl_limit { SIMSPL_OK, SIMSPL_REQUESTS, SIMSPL_TIME, SIMSPL_CONCURRENT };

struct simspl;

/* D365's documented limits (§5.2), counting the connector and OData endpoints. */
void simspl_conf_defaults(struct simspl_conf *c);
/* Fills c from the "service_protection" object v (borrowed; NULL keeps the defaults).
 * Returns 0, or -1 with err naming the key. */
int simspl_conf_parse(const json_t *v, struct simspl_conf *c, char *err, size_t errcap);
/* 1 if requests to `endpoint` (a route label: "dequeue", "odata:GetMessageStatus") count. */
int simspl_counts(const struct simspl_conf *c, const char *endpoint);

struct simspl *simspl_new(void);
void simspl_free(struct simspl *p);
/* Forgets every identity (windows, gates, statistics). */
void simspl_reset(struct simspl *p);

/* Admission of one request of identity `who` at `now` (seconds). SIMSPL_OK: the request is
 * in flight until simspl_done. Otherwise the limit it hit, and *retry_after (whole seconds,
 * >= 1) says when a retry can pass; a throttled request leaves the window untouched, but with
 * extend_secs it pushes the gate out. Returns SIMSPL_OK also when memory runs out. */
enum simspl_limit simspl_admit(struct simspl *p, const struct simspl_conf *c, const char *who,
                               double now, long *retry_after);
/* Ends an admitted request that started at `started`: its duration joins the window. */
void simspl_done(struct simspl *p, const char *who, double started, double now);

/* The verbatim §5.1 message for a limit with c's numbers (D365's defaults give the exact
 * documented text, typo included). Written into buf; returns buf. */
const char *simspl_message(const struct simspl_conf *c, enum simspl_limit l, char *buf,
                           size_t cap);
/* "requests", "time", "concurrent" (or "ok"). Static string. */
const char *simspl_limit_name(enum simspl_limit l);

/* Per identity at `now`: inflight, max_inflight, window_requests, max_window_requests,
 * window_exec_secs, admitted, throttled, gate_secs (new reference). */
json_t *simspl_stats(const struct simspl *p, const struct simspl_conf *c, double now);

#endif
