/* simprotect: service protection glue and the call log. See simprotect.h. */
#include "simprotect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "simbearer.h"
#include "simspl.h"
#include "simurl.h"

#define LOG_CAP 65536     /* calls remembered */
#define LIST_CAP 2000     /* calls listed by one GET /_sim/calls */

struct call {
    unsigned long seq;    /* 0 = empty slot */
    double at;            /* arrival, wall clock (no /_sim/clock offset) */
    int status;           /* 0 until replied */
    char endpoint[48];
    char who[64];
};

/* Per request, in req->tag. */
struct tag {
    unsigned long seq;
    int admitted;
    double started;       /* sim clock */
    char who[64];
};

struct simprotect {
    struct simspl *spl;   /* owned */
    struct call *log;     /* owned ring of LOG_CAP */
    unsigned long seq;    /* calls logged so far */
};

static void ctl(struct sim *s, struct simhttp_req *req);
static const struct sim_route route = {"control", NULL, ctl};

struct simprotect *simprotect_new(void)
{
    struct simprotect *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->spl = simspl_new();
    p->log = calloc(LOG_CAP, sizeof(*p->log));
    if (!p->spl || !p->log) {
        simprotect_free(p);
        return NULL;
    }
    return p;
}

void simprotect_free(struct simprotect *p)
{
    if (!p)
        return;
    simspl_free(p->spl);
    free(p->log);
    free(p);
}

void simprotect_reset(struct simprotect *p)
{
    simspl_reset(p->spl);
    memset(p->log, 0, LOG_CAP * sizeof(*p->log));
    p->seq = 0;
}

const struct sim_route *simprotect_route(const char *path)
{
    return strcmp(path, "/_sim/protection") == 0 || strcmp(path, "/_sim/calls") == 0 ? &route
                                                                                   : NULL;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void log_call(struct simprotect *p, struct tag *t, const char *endpoint)
{
    t->seq = ++p->seq;
    struct call *c = &p->log[t->seq % LOG_CAP];
    c->seq = t->seq;
    c->at = wall();
    c->status = 0;
    snprintf(c->endpoint, sizeof(c->endpoint), "%s", endpoint);
    snprintf(c->who, sizeof(c->who), "%s", t->who);
}

static void reply_429(struct sim *s, struct simhttp_req *req, enum simspl_limit l, long ra)
{
    char msg[512], hdr[24];
    snprintf(hdr, sizeof(hdr), "%ld", ra);
    sim_count(s, "throttled", simspl_limit_name(l), 1);
    sim_d365_headers(req);
    simhttp_add_header(req, "Retry-After", hdr);
    simspl_message(&s->conf->spl, l, msg, sizeof(msg));
    sim_reply_json(req, 429, "application/json; odata.metadata=minimal",
                   json_pack("{s:{s:s, s:s}}", "error", "code", "", "message", msg));
}

void simprotect_log(struct sim *s, struct simhttp_req *req)
{
    struct tag *t = calloc(1, sizeof(*t));
    if (!t)
        return;
    req->tag = t;
    if (simbearer_identity(s, req, t->who, sizeof(t->who)) != 0)
        t->who[0] = '\0';
    log_call(s->protect, t, req->endpoint);
}

int simprotect_admit(struct sim *s, struct simhttp_req *req)
{
    struct simprotect *p = s->protect;
    struct tag *t = req->tag;
    long ra;
    if (!t || !t->who[0] || !simspl_counts(&s->conf->spl, req->endpoint))
        return 0;
    t->started = sim_now(s);
    enum simspl_limit l = simspl_admit(p->spl, &s->conf->spl, t->who, t->started, &ra);
    if (l == SIMSPL_OK) {
        t->admitted = 1;
        return 0;
    }
    reply_429(s, req, l, ra);
    return 1;
}

void simprotect_reply(struct sim *s, struct simhttp_req *req, int status)
{
    const struct tag *t = req->tag;
    struct call *c = t ? &s->protect->log[t->seq % LOG_CAP] : NULL;
    if (c && c->seq == t->seq)
        c->status = status;
}

void simprotect_release(struct sim *s, struct simhttp_req *req)
{
    struct tag *t = req->tag;
    if (!t)
        return;
    if (t->admitted)
        simspl_done(s->protect->spl, t->who, t->started, sim_now(s));
    free(t);
    req->tag = NULL;
}

/* ---- control API ---- */

static double param(const struct simhttp_req *req, const char *name, double dflt)
{
    char v[64];
    return simurl_param(req->query, name, 0, v, sizeof(v)) == 1 ? atof(v) : dflt;
}

/* GET /_sim/calls?since=&until=&endpoint=: calls that arrived in [since, until]. */
static json_t *calls(const struct simprotect *p, const struct simhttp_req *req)
{
    char ep[48];
    double since = param(req, "since", 0), until = param(req, "until", 1e18);
    int want_ep = simurl_param(req->query, "endpoint", 0, ep, sizeof(ep)) == 1;
    unsigned long first = p->seq > LOG_CAP ? p->seq - LOG_CAP + 1 : 1;
    json_t *list = json_array();
    long count = 0;
    for (unsigned long q = first; q <= p->seq; q++) {
        const struct call *c = &p->log[q % LOG_CAP];
        if (c->seq != q || c->at < since || c->at > until ||
            (want_ep && strcmp(ep, c->endpoint) != 0))
            continue;
        if (count++ < LIST_CAP)
            json_array_append_new(list, json_pack("{s:f, s:s, s:s, s:i}", "at", c->at,
                                                  "endpoint", c->endpoint, "who", c->who,
                                                  "status", c->status));
    }
    return json_pack("{s:I, s:I, s:I, s:o}", "count", (json_int_t)count, "logged",
                     (json_int_t)p->seq, "forgotten", (json_int_t)(first - 1), "calls", list);
}

static void ctl(struct sim *s, struct simhttp_req *req)
{
    if (strcmp(req->method, "GET") != 0) {
        sim_reply_json(req, 405, "application/json", json_pack("{s:s}", "error", "GET only"));
        return;
    }
    if (strcmp(req->path, "/_sim/calls") == 0) {
        sim_reply_json(req, 200, "application/json", calls(s->protect, req));
        return;
    }
    const struct simspl_conf *c = &s->conf->spl;
    sim_reply_json(req, 200, "application/json",
                   json_pack("{s:b, s:I, s:I, s:f, s:f, s:f, s:o}", "enabled", c->enabled,
                             "concurrent", (json_int_t)c->concurrent, "requests",
                             (json_int_t)c->requests, "execution_secs", c->exec_secs,
                             "window_secs", c->window_secs, "extend_secs", c->extend_secs,
                             "identities", simspl_stats(s->protect->spl, c, sim_now(s))));
}
