/* simspl: service-protection limits per identity. See simspl.h.
 *
 * Each identity keeps its recent requests as {start, end} (end < 0 while in flight), in
 * admission order. A request counts against the request limit while start is inside the
 * window and against the execution-time limit while end is; entries outside both go.
 *
 *   admit: gated? -> 429 (extend the gate if configured)
 *          in flight >= concurrent -> 429 concurrent (no gate)
 *          window requests >= limit -> gate until one leaves, 429 requests
 *          window execution >= limit -> gate until enough leaves, 429 time
 *          else record {now, -1}
 */
#include "simspl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IDENTITIES 256
#define MAX_ENTRIES 1000000 /* per identity, whatever the config says */
#define MAX_GATE_SECS 86400.0

struct entry {
    double start, end;
};

struct ident {
    char who[128];
    struct entry *e; /* owned */
    size_t n, cap;
    long inflight, max_inflight, max_window;
    long admitted, throttled[4];
    double gated_until;
    enum simspl_limit gate_limit;
};

struct simspl {
    struct ident *ids[MAX_IDENTITIES]; /* owned */
    size_t nids;
};

void simspl_conf_defaults(struct simspl_conf *c)
{
    memset(c, 0, sizeof(*c));
    c->concurrent = 52;
    c->requests = 6000;
    c->exec_secs = 1200;
    c->window_secs = 300;
    c->concurrent_retry_after = 1;
    snprintf(c->endpoints[0], sizeof(c->endpoints[0]), "connector");
    snprintf(c->endpoints[1], sizeof(c->endpoints[1]), "odata");
    c->nendpoints = 2;
}

static int bad(char *err, size_t cap, const char *what)
{
    snprintf(err, cap, "service_protection.%s", what);
    return -1;
}

static int number(const json_t *v, const char *key, double min, double *out)
{
    const json_t *x = json_object_get(v, key);
    if (!x)
        return 0;
    if (!json_is_number(x) || json_number_value(x) < min)
        return -1;
    *out = json_number_value(x);
    return 0;
}

static int parse_endpoints(const json_t *a, struct simspl_conf *c)
{
    size_t i;
    const json_t *e;
    if (!a)
        return 0;
    if (!json_is_array(a) || json_array_size(a) > SIMSPL_MAX_ENDPOINTS)
        return -1;
    json_array_foreach(a, i, e) {
        if (!json_is_string(e) || json_string_length(e) >= sizeof(c->endpoints[0]))
            return -1;
        snprintf(c->endpoints[i], sizeof(c->endpoints[i]), "%s", json_string_value(e));
    }
    c->nendpoints = json_array_size(a);
    return 0;
}

static const char *const known[] = {"enabled", "concurrent", "requests", "execution_secs",
                                    "window_secs", "concurrent_retry_after", "extend_secs",
                                    "endpoints", NULL};

static int check_keys(const json_t *v, char *err, size_t cap)
{
    const char *key;
    json_t *x;
    json_object_foreach((json_t *)v, key, x) {
        int ok = 0;
        for (int i = 0; known[i]; i++)
            ok |= strcmp(key, known[i]) == 0;
        if (!ok)
            return bad(err, cap, "has an unknown key");
    }
    return 0;
}

int simspl_conf_parse(const json_t *v, struct simspl_conf *c, char *err, size_t cap)
{
    double conc = (double)c->concurrent, reqs = (double)c->requests;
    double cra = (double)c->concurrent_retry_after;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_object(v))
        return bad(err, cap, "must be an object");
    if (check_keys(v, err, cap))
        return -1;
    const json_t *en = json_object_get(v, "enabled");
    if (en && !json_is_boolean(en))
        return bad(err, cap, "enabled must be true or false");
    c->enabled = en ? json_is_true(en) : 1; /* an object present means "on" */
    if (number(v, "concurrent", 1, &conc) || number(v, "requests", 1, &reqs) ||
        number(v, "execution_secs", 0.001, &c->exec_secs) ||
        number(v, "window_secs", 0.001, &c->window_secs) ||
        number(v, "concurrent_retry_after", 1, &cra) ||
        number(v, "extend_secs", 0, &c->extend_secs))
        return bad(err, cap, "concurrent, requests, concurrent_retry_after must be >= 1, "
                             "execution_secs and window_secs > 0, extend_secs >= 0");
    if (parse_endpoints(json_object_get(v, "endpoints"), c))
        return bad(err, cap, "endpoints must be an array of at most 16 endpoint labels");
    c->concurrent = (long)conc;
    c->requests = reqs > MAX_ENTRIES ? MAX_ENTRIES : (long)reqs;
    c->concurrent_retry_after = (long)cra;
    return 0;
}

static int family_has(const char *family, const char *ep)
{
    static const char *const connector[] = {"enqueue", "dequeue", "download", "ack",
                                            "jobstatus", NULL};
    if (strcmp(family, "*") == 0)
        return strcmp(ep, "control") != 0 && strcmp(ep, "token") != 0;
    if (strcmp(family, "odata") == 0)
        return strncmp(ep, "odata:", 6) == 0;
    if (strcmp(family, "connector") == 0)
        for (int i = 0; connector[i]; i++)
            if (strcmp(ep, connector[i]) == 0)
                return 1;
    return 0;
}

int simspl_counts(const struct simspl_conf *c, const char *endpoint)
{
    if (!c->enabled || !endpoint)
        return 0;
    for (size_t i = 0; i < c->nendpoints; i++)
        if (strcmp(c->endpoints[i], endpoint) == 0 || family_has(c->endpoints[i], endpoint))
            return 1;
    return 0;
}

struct simspl *simspl_new(void)
{
    return calloc(1, sizeof(struct simspl));
}

void simspl_reset(struct simspl *p)
{
    for (size_t i = 0; i < p->nids; i++) {
        free(p->ids[i]->e);
        free(p->ids[i]);
        p->ids[i] = NULL;
    }
    p->nids = 0;
}

void simspl_free(struct simspl *p)
{
    if (!p)
        return;
    simspl_reset(p);
    free(p);
}

static struct ident *find(const struct simspl *p, const char *who)
{
    for (size_t i = 0; i < p->nids; i++)
        if (strcmp(p->ids[i]->who, who) == 0)
            return p->ids[i];
    return NULL;
}

static struct ident *find_or_add(struct simspl *p, const char *who)
{
    struct ident *id = find(p, who);
    if (id || p->nids == MAX_IDENTITIES)
        return id;
    id = calloc(1, sizeof(*id));
    if (!id)
        return NULL;
    snprintf(id->who, sizeof(id->who), "%s", who);
    p->ids[p->nids++] = id;
    return id;
}

/* Drops entries that no longer count for either limit (keeps order). */
static void prune(struct ident *id, double now, double window)
{
    double edge = now - window;
    size_t k = 0;
    for (size_t i = 0; i < id->n; i++) {
        const struct entry *e = &id->e[i];
        if (e->start > edge || e->end < 0 || e->end > edge)
            id->e[k++] = *e;
    }
    id->n = k;
}

static long window_requests(const struct ident *id, double edge)
{
    long n = 0;
    for (size_t i = 0; i < id->n; i++)
        n += id->e[i].start > edge;
    return n;
}

static double window_exec(const struct ident *id, double edge)
{
    double sum = 0;
    for (size_t i = 0; i < id->n; i++)
        if (id->e[i].end >= 0 && id->e[i].end > edge)
            sum += id->e[i].end - id->e[i].start;
    return sum;
}

static long whole_secs(double secs)
{
    double up = ceil(secs - 1e-9);
    return up < 1 ? 1 : (long)up;
}

/* When enough of the window's requests have left for one more to pass. */
static double requests_free_at(const struct ident *id, double edge, long count, long limit,
                               double window)
{
    long skip = count - limit; /* this many in-window entries must leave, plus one */
    for (size_t i = 0; i < id->n; i++)
        if (id->e[i].start > edge && skip-- == 0)
            return id->e[i].start + window;
    return edge + window;
}

static int by_end(const void *a, const void *b)
{
    double x = ((const struct entry *)a)->end, y = ((const struct entry *)b)->end;
    return (x > y) - (x < y);
}

/* When enough execution time has left the window for the sum to drop below the limit. */
static double time_free_at(const struct ident *id, double edge, double sum, double limit,
                           double window)
{
    struct entry *done = malloc((id->n + 1) * sizeof(*done));
    size_t n = 0;
    double at = edge + window;
    if (!done)
        return at + window;
    for (size_t i = 0; i < id->n; i++)
        if (id->e[i].end >= 0 && id->e[i].end > edge)
            done[n++] = id->e[i];
    qsort(done, n, sizeof(*done), by_end);
    for (size_t i = 0; i < n && sum >= limit; i++) {
        sum -= done[i].end - done[i].start;
        at = done[i].end + window;
    }
    free(done);
    return at;
}

static enum simspl_limit throttle(struct ident *id, enum simspl_limit l, double until,
                                  double now, long *retry_after)
{
    if (l != SIMSPL_CONCURRENT) {
        id->gated_until = until;
        id->gate_limit = l;
    }
    id->throttled[l]++;
    *retry_after = whole_secs(until - now);
    return l;
}

static int grow(struct ident *id)
{
    if (id->n < id->cap)
        return 0;
    size_t cap = id->cap ? id->cap * 2 : 64;
    if (cap > MAX_ENTRIES)
        cap = MAX_ENTRIES;
    if (id->n >= cap)
        return -1;
    struct entry *e = realloc(id->e, cap * sizeof(*e));
    if (!e)
        return -1;
    id->e = e;
    id->cap = cap;
    return 0;
}

enum simspl_limit simspl_admit(struct simspl *p, const struct simspl_conf *c, const char *who,
                               double now, long *retry_after)
{
    struct ident *id = find_or_add(p, who);
    *retry_after = 0;
    if (!id)
        return SIMSPL_OK;
    if (now < id->gated_until) {
        if (c->extend_secs > 0 && id->gated_until + c->extend_secs < now + MAX_GATE_SECS)
            id->gated_until += c->extend_secs;
        return throttle(id, id->gate_limit, id->gated_until, now, retry_after);
    }
    if (id->inflight >= c->concurrent)
        return throttle(id, SIMSPL_CONCURRENT, now + (double)c->concurrent_retry_after, now,
                        retry_after);
    double edge = now - c->window_secs;
    prune(id, now, c->window_secs);
    long count = window_requests(id, edge);
    if (count >= c->requests)
        return throttle(id, SIMSPL_REQUESTS,
                        requests_free_at(id, edge, count, c->requests, c->window_secs), now,
                        retry_after);
    double sum = window_exec(id, edge);
    if (sum >= c->exec_secs)
        return throttle(id, SIMSPL_TIME,
                        time_free_at(id, edge, sum, c->exec_secs, c->window_secs), now,
                        retry_after);
    if (grow(id) != 0)
        return SIMSPL_OK;
    id->e[id->n++] = (struct entry){now, -1};
    id->admitted++;
    if (++id->inflight > id->max_inflight)
        id->max_inflight = id->inflight;
    if (count + 1 > id->max_window)
        id->max_window = count + 1;
    return SIMSPL_OK;
}

void simspl_done(struct simspl *p, const char *who, double started, double now)
{
    struct ident *id = find(p, who);
    if (!id)
        return;
    for (size_t i = 0; i < id->n; i++) {
        if (id->e[i].end < 0 && id->e[i].start == started) {
            id->e[i].end = now < started ? started : now;
            id->inflight--;
            return;
        }
    }
}

const char *simspl_message(const struct simspl_conf *c, enum simspl_limit l, char *buf,
                           size_t cap)
{
    switch (l) {
    case SIMSPL_TIME:
        snprintf(buf, cap, "Combined execution time of incoming requests exceeded limit of %g "
                           "seconds over time window of %g seconds. Decrease number of "
                           "concurrent requests or reduce the duration of requests and try "
                           "again later.", c->exec_secs, c->window_secs);
        break;
    case SIMSPL_CONCURRENT:
        snprintf(buf, cap, "Number of concurrent requests exceeded the limit of %ld.",
                 c->concurrent);
        break;
    default: /* "exeeded": Microsoft's spelling (§5.1) */
        snprintf(buf, cap, "Number of requests exeeded the limit of %ld over the time window "
                           "of %g seconds.", c->requests, c->window_secs);
        break;
    }
    return buf;
}

const char *simspl_limit_name(enum simspl_limit l)
{
    static const char *const names[] = {"ok", "requests", "time", "concurrent"};
    return names[l];
}

json_t *simspl_stats(const struct simspl *p, const struct simspl_conf *c, double now)
{
    json_t *out = json_object();
    double edge = now - c->window_secs;
    for (size_t i = 0; i < p->nids; i++) {
        const struct ident *id = p->ids[i];
        double gate = id->gated_until > now ? id->gated_until - now : 0;
        json_object_set_new(
            out, id->who,
            json_pack("{s:I, s:I, s:I, s:I, s:f, s:I, s:{s:I, s:I, s:I}, s:f}", "inflight",
                      (json_int_t)id->inflight, "max_inflight", (json_int_t)id->max_inflight,
                      "window_requests", (json_int_t)window_requests(id, edge),
                      "max_window_requests", (json_int_t)id->max_window, "window_exec_secs",
                      window_exec(id, edge), "admitted", (json_int_t)id->admitted, "throttled",
                      "requests", (json_int_t)id->throttled[SIMSPL_REQUESTS], "time",
                      (json_int_t)id->throttled[SIMSPL_TIME], "concurrent",
                      (json_int_t)id->throttled[SIMSPL_CONCURRENT], "gate_secs", gate));
    }
    return out;
}
