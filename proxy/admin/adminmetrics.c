/* adminmetrics: the exposition, family by family. Reads statcells with relaxed loads
 * (statcell.h), worker 0's token manager and ledger directly (this runs on worker 0). */
#include "adminmetrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "adminproc.h"
#include "adminstats.h"
#include "conf.h"
#include "ledgerflow.h"
#include "token.h"

#ifndef FOGATE_VERSION
#define FOGATE_VERSION "unknown"
#endif
#ifndef FOGATE_REVISION
#define FOGATE_REVISION "unknown"
#endif

struct out {
    char *p;
    size_t n, cap;
    bool bad;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;

    for (int tries = 0; !o->bad && tries < 2; tries++) {
        va_start(ap, fmt);
        int n = vsnprintf(o->p + o->n, o->cap - o->n, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->bad = true;
        } else if ((size_t)n < o->cap - o->n) {
            o->n += (size_t)n;
            return;
        } else {
            size_t cap = o->cap * 2 + (size_t)n;
            char *p = cap <= ADMINMETRICS_MAX ? realloc(o->p, cap) : NULL;
            if (!p)
                o->bad = true;
            else {
                o->p = p;
                o->cap = cap;
            }
        }
    }
}

static void head(struct out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A config name as a label value: the config allows [A-Za-z0-9_-] only; anything else
 * would be escaped, never dropped. */
static const char *esc(const char *s, char *buf, size_t cap)
{
    size_t j = 0;

    for (size_t i = 0; s[i] && j + 3 < cap; i++) {
        if (s[i] == '"' || s[i] == '\\')
            buf[j++] = '\\';
        buf[j++] = s[i] == '\n' ? ' ' : s[i];
    }
    buf[j] = '\0';
    return buf;
}

static uint64_t get(const statcell *c)
{
    return statcell_get(c);
}

/* ---- histograms ---- */

struct hsum {
    uint64_t bucket[STATHIST_BUCKETS + 1], count, sum_us;
};

static void hadd(struct hsum *h, const struct stathist *s)
{
    for (int i = 0; i <= STATHIST_BUCKETS; i++)
        h->bucket[i] += get(&s->bucket[i]);
    h->count += get(&s->count);
    h->sum_us += get(&s->sum_us);
}

/* `labels`: "route=\"x\"" or "". The count is the +Inf bucket's: buckets and count are
 * read one after the other while the worker writes, so take one of them for both. */
static void hput(struct out *o, const char *name, const char *labels, const struct hsum *h)
{
    static const int64_t bounds[STATHIST_BUCKETS] = STATHIST_BOUNDS_US;
    const char *comma = labels[0] ? "," : "";
    uint64_t cum = 0;

    for (int i = 0; i < STATHIST_BUCKETS; i++) {
        cum += h->bucket[i];
        put(o, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, comma,
            (double)bounds[i] / 1e6, cum);
    }
    cum += h->bucket[STATHIST_BUCKETS];
    put(o, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, comma, cum);
    put(o, "%s_sum{%s} %.6f\n", name, labels, (double)h->sum_us / 1e6);
    put(o, "%s_count{%s} %" PRIu64 "\n", name, labels, cum);
}

/* ---- process and build ---- */

static void put_process(struct out *o, const struct admin_deps *d)
{
    struct adminproc p;

    adminproc_read(&p);
    head(o, "process_cpu_seconds_total", "counter", "User and system CPU time spent, seconds.");
    put(o, "process_cpu_seconds_total %.2f\n", p.cpu_seconds);
    head(o, "process_resident_memory_bytes", "gauge", "Resident memory size, bytes.");
    put(o, "process_resident_memory_bytes %" PRIu64 "\n", p.resident_bytes);
    head(o, "process_virtual_memory_bytes", "gauge", "Virtual memory size, bytes.");
    put(o, "process_virtual_memory_bytes %" PRIu64 "\n", p.virtual_bytes);
    head(o, "process_open_fds", "gauge", "Open file descriptors.");
    put(o, "process_open_fds %" PRId64 "\n", p.open_fds);
    if (p.max_fds >= 0) {
        head(o, "process_max_fds", "gauge", "Limit of open file descriptors.");
        put(o, "process_max_fds %" PRId64 "\n", p.max_fds);
    }
    head(o, "process_start_time_seconds", "gauge", "Start time of the process, unix seconds.");
    put(o, "process_start_time_seconds %.2f\n", p.start_time_seconds);
    head(o, "fogate_build_info", "gauge", "fogate's version and source revision; always 1.");
    put(o, "fogate_build_info{version=\"%s\",revision=\"%s\"} 1\n", FOGATE_VERSION,
        FOGATE_REVISION);
    head(o, "fogate_workers", "gauge", "Worker threads serving clients.");
    put(o, "fogate_workers %u\n", d->workers);
}

/* ---- client side ---- */

static void put_front_requests(struct out *o, const struct adminstats *t)
{
    char lab[160];

    head(o, "fogate_http_requests_total", "counter",
         "Client requests answered, by route, method and status code.");
    for (unsigned r = 0; r < t->n_routes; r++)
        for (unsigned m = 0; m < CONNSTATS_METHODS; m++)
            for (unsigned c = 0; c < CONNSTATS_CODES; c++) {
                uint64_t n = 0;
                for (unsigned w = 0; w < t->n; w++)
                    n += t->w[w].front ? get(&t->w[w].front->requests[r][m][c]) : 0;
                if (n)
                    put(o, "fogate_http_requests_total{route=\"%s\",method=\"%s\",code=\"%s\"} "
                        "%" PRIu64 "\n", t->route_names[r], connstats_method_name(m),
                        connstats_code_name(c), n);
            }
    head(o, "fogate_http_request_duration_seconds", "histogram",
         "Time from a request's first byte to its last response byte, by route.");
    for (unsigned r = 0; r < t->n_routes; r++) {
        struct hsum h = { 0 };
        for (unsigned w = 0; w < t->n; w++)
            if (t->w[w].front)
                hadd(&h, &t->w[w].front->duration[r]);
        snprintf(lab, sizeof lab, "route=\"%s\"", t->route_names[r]);
        if (h.count)
            hput(o, "fogate_http_request_duration_seconds", lab, &h);
    }
}

static uint64_t front_sum(const struct adminstats *t, size_t offset)
{
    uint64_t n = 0;

    for (unsigned w = 0; w < t->n; w++)
        if (t->w[w].front)
            n += get((const statcell *)((const char *)t->w[w].front + offset));
    return n;
}

static void put_front(struct out *o, const struct adminstats *t)
{
    put_front_requests(o, t);
    head(o, "fogate_http_request_bytes_total", "counter", "Bytes received from clients.");
    put(o, "fogate_http_request_bytes_total %" PRIu64 "\n",
        front_sum(t, offsetof(struct connstats, bytes_in)));
    head(o, "fogate_http_response_bytes_total", "counter", "Bytes sent to clients.");
    put(o, "fogate_http_response_bytes_total %" PRIu64 "\n",
        front_sum(t, offsetof(struct connstats, bytes_out)));
    uint64_t acc = front_sum(t, offsetof(struct connstats, accepted));
    uint64_t closed = front_sum(t, offsetof(struct connstats, closed));
    head(o, "fogate_http_connections_total", "counter", "Client connections accepted.");
    put(o, "fogate_http_connections_total %" PRIu64 "\n", acc);
    head(o, "fogate_http_open_connections", "gauge", "Client connections open now.");
    put(o, "fogate_http_open_connections %" PRIu64 "\n", acc > closed ? acc - closed : 0);
    head(o, "fogate_http_connections_refused_total", "counter",
         "Client connections closed at once or shed, by reason.");
    for (unsigned i = 0; i < CONNSTATS_REFUSE_N; i++)
        put(o, "fogate_http_connections_refused_total{reason=\"%s\"} %" PRIu64 "\n",
            connstats_refuse_name(i),
            front_sum(t, offsetof(struct connstats, refused) + i * sizeof(statcell)));
    head(o, "fogate_http_malformed_requests_total", "counter",
         "Requests refused for their framing or head before routing, by reason.");
    for (unsigned i = 0; i < CONNSTATS_MALFORMED; i++) {
        uint64_t n = front_sum(t, offsetof(struct connstats, malformed) + i * sizeof(statcell));
        if (n)
            put(o, "fogate_http_malformed_requests_total{reason=\"%s\"} %" PRIu64 "\n",
                connstats_malformed_name(i), n);
    }
}

/* ---- D365 ---- */

/* Every worker's slot of environment `name` (NULL where a worker has none). */
static const struct d365stats_env *env_of(const struct adminstats *t, unsigned w,
                                          const char *name)
{
    const struct d365stats *s = t->w[w].d365;
    size_t n = s ? atomic_load_explicit(&((struct d365stats *)s)->n, memory_order_acquire) : 0;

    for (size_t i = 0; i < n; i++)
        if (strcmp(s->env[i].name, name) == 0)
            return &s->env[i];
    return NULL;
}

static uint64_t env_sum(const struct adminstats *t, const char *name, size_t offset)
{
    uint64_t n = 0;

    for (unsigned w = 0; w < t->n; w++) {
        const struct d365stats_env *e = env_of(t, w, name);
        if (e)
            n += get((const statcell *)((const char *)e + offset));
    }
    return n;
}

static void put_d365_requests(struct out *o, const struct adminstats *t, const struct conf *c)
{
    char lab[256], en[160];

    head(o, "fogate_d365_requests_total", "counter",
         "Requests sent to D365 (every attempt), by environment, operation and status code "
         "(\"error\": no answer).");
    for (size_t e = 0; e < c->n_envs; e++)
        for (unsigned op = 0; op < D365STATS_OPS; op++)
            for (unsigned k = 0; k < D365STATS_CODES; k++) {
                uint64_t n = env_sum(t, c->envs[e].name, offsetof(struct d365stats_env,
                                     requests) + (op * D365STATS_CODES + k) * sizeof(statcell));
                if (n)
                    put(o, "fogate_d365_requests_total{environment=\"%s\",operation=\"%s\","
                        "code=\"%s\"} %" PRIu64 "\n", esc(c->envs[e].name, en, sizeof en),
                        d365stats_op_name(op), d365stats_code_name(k), n);
            }
    head(o, "fogate_d365_request_duration_seconds", "histogram",
         "Duration of each request to D365, by environment and operation.");
    for (size_t e = 0; e < c->n_envs; e++)
        for (unsigned op = 0; op < D365STATS_OPS; op++) {
            struct hsum h = { 0 };
            for (unsigned w = 0; w < t->n; w++) {
                const struct d365stats_env *s = env_of(t, w, c->envs[e].name);
                if (s)
                    hadd(&h, &s->duration[op]);
            }
            snprintf(lab, sizeof lab, "environment=\"%s\",operation=\"%s\"",
                     esc(c->envs[e].name, en, sizeof en), d365stats_op_name(op));
            if (h.count)
                hput(o, "fogate_d365_request_duration_seconds", lab, &h);
        }
}

static void put_env_counter(struct out *o, const struct adminstats *t, const struct conf *c,
                            const char *name, const char *help, size_t offset)
{
    char en[160];

    head(o, name, "counter", help);
    for (size_t e = 0; e < c->n_envs; e++)
        put(o, "%s{environment=\"%s\"} %" PRIu64 "\n", name,
            esc(c->envs[e].name, en, sizeof en), env_sum(t, c->envs[e].name, offset));
}

static void put_d365_gates(struct out *o, const struct adminstats *t, const struct conf *c)
{
    char en[160];
    int64_t until[256] = { 0 };
    int64_t now = (int64_t)time(NULL);
    size_t ne = c->n_envs < 256 ? c->n_envs : 256;

    for (size_t e = 0; e < ne; e++)
        for (unsigned w = 0; w < t->n; w++) {
            const struct d365stats_env *s = env_of(t, w, c->envs[e].name);
            int64_t u = s ? statgauge_get(&s->gate_until) : 0;
            until[e] = u > until[e] ? u : until[e];
        }
    head(o, "fogate_d365_throttle_gate_closed", "gauge",
         "1 while D365's Retry-After holds calls to the environment back (429 gate).");
    for (size_t e = 0; e < ne; e++)
        put(o, "fogate_d365_throttle_gate_closed{environment=\"%s\"} %d\n",
            esc(c->envs[e].name, en, sizeof en), until[e] > now);
    head(o, "fogate_d365_throttle_gate_until_timestamp_seconds", "gauge",
         "When the environment's 429 gate opens (or last opened), unix seconds; 0 = never "
         "closed.");
    for (size_t e = 0; e < ne; e++)
        put(o, "fogate_d365_throttle_gate_until_timestamp_seconds{environment=\"%s\"} %" PRId64
            "\n", esc(c->envs[e].name, en, sizeof en), until[e]);
}

static void put_d365(struct out *o, const struct adminstats *t, const struct conf *c)
{
    char en[160];

    put_d365_requests(o, t, c);
    put_env_counter(o, t, c, "fogate_d365_retries_total",
                    "Requests to D365 repeated after a 5xx, a connection failure, a 401 or a "
                    "429.", offsetof(struct d365stats_env, retries));
    put_env_counter(o, t, c, "fogate_d365_unauthorized_total",
                    "401 answers from D365 (each drops the token and refreshes it).",
                    offsetof(struct d365stats_env, refreshes_401));
    put_env_counter(o, t, c, "fogate_d365_throttled_total", "429 answers from D365.",
                    offsetof(struct d365stats_env, throttled));
    put_d365_gates(o, t, c);
    head(o, "fogate_d365_final_status_total", "counter",
         "Final statuses seen for recurring-job messages (kind=message) and DMF package "
         "executions (kind=execution), each id counted once.");
    for (size_t e = 0; e < c->n_envs; e++)
        for (unsigned k = 0; k < D365STATS_KINDS; k++)
            for (unsigned f = 0; f < D365STATS_FINALS; f++) {
                uint64_t n = env_sum(t, c->envs[e].name, offsetof(struct d365stats_env,
                                     finals) + (k * D365STATS_FINALS + f) * sizeof(statcell));
                if (n)
                    put(o, "fogate_d365_final_status_total{environment=\"%s\",kind=\"%s\","
                        "status=\"%s\"} %" PRIu64 "\n", esc(c->envs[e].name, en, sizeof en),
                        d365stats_kind_name(k), d365stats_final_name(f), n);
            }
}

/* Which HTTP client carried the calls (upstream.client; history's receipts not counted). */
static void put_upstream(struct out *o, const struct adminstats *t)
{
    uint64_t sum[2] = { 0, 0 }, w_n[2];

    for (unsigned w = 0; w < t->n; w++) {
        if (!t->w[w].upstream)
            continue;
        upstream_started(t->w[w].upstream, w_n);
        sum[0] += w_n[0];
        sum[1] += w_n[1];
    }
    head(o, "fogate_upstream_transfers_total", "counter",
         "Calls to D365 and Entra ID started, by the HTTP client that carried them "
         "(upstream.client: native, or curl).");
    put(o, "fogate_upstream_transfers_total{client=\"curl\"} %" PRIu64 "\n",
        sum[UPSTREAM_CLIENT_CURL]);
    put(o, "fogate_upstream_transfers_total{client=\"native\"} %" PRIu64 "\n",
        sum[UPSTREAM_CLIENT_NATIVE]);
}

/* ---- tokens (worker 0's manager) ---- */

static void put_tokens(struct out *o, const struct admin_deps *d)
{
    json_t *a = token_mgr_status(d->tm), *e;
    size_t i;
    char en[160];

    head(o, "fogate_token_ready", "gauge", "1 when the environment has a usable token.");
    json_array_foreach(a, i, e)
        put(o, "fogate_token_ready{environment=\"%s\"} %d\n",
            esc(json_string_value(json_object_get(e, "environment")), en, sizeof en),
            json_is_true(json_object_get(e, "ready")));
    head(o, "fogate_token_refreshes_total", "counter",
         "Token requests to Entra ID by result: ok, or the failure's class (wrong_secret, "
         "expired_secret, unknown_app, unreachable ...; each class is a fixed set of AADSTS "
         "codes).");
    json_array_foreach(a, i, e) {
        json_t *c = json_object_get(e, "counters"), *by = json_object_get(c, "by_reason"), *v;
        const char *name = esc(json_string_value(json_object_get(e, "environment")), en,
                               sizeof en), *reason;
        json_int_t f = json_integer_value(json_object_get(c, "fetches")),
                   bad = json_integer_value(json_object_get(c, "failures"));
        put(o, "fogate_token_refreshes_total{environment=\"%s\",result=\"ok\"} %lld\n", name,
            (long long)(f > bad ? f - bad : 0));
        json_object_foreach(by, reason, v)
            put(o, "fogate_token_refreshes_total{environment=\"%s\",result=\"%s\"} %lld\n",
                name, reason, (long long)json_integer_value(v));
    }
    head(o, "fogate_token_fetch_failures_total", "counter", "Failed token requests.");
    json_array_foreach(a, i, e)
        put(o, "fogate_token_fetch_failures_total{environment=\"%s\"} %lld\n",
            esc(json_string_value(json_object_get(e, "environment")), en, sizeof en),
            (long long)json_integer_value(json_object_get(json_object_get(e, "counters"),
                                                          "failures")));
    head(o, "fogate_token_expiry_timestamp_seconds", "gauge",
         "When the current token expires, unix seconds; 0 = no token.");
    json_array_foreach(a, i, e)
        put(o, "fogate_token_expiry_timestamp_seconds{environment=\"%s\"} %lld\n",
            esc(json_string_value(json_object_get(e, "environment")), en, sizeof en),
            (long long)json_integer_value(json_object_get(e, "token_expires_at")));
    head(o, "fogate_credential_expiry_timestamp_seconds", "gauge",
         "When the environment's credential lapses, unix seconds: the certificate's "
         "notAfter, or client_secret_expires from the config. Absent when unknown.");
    json_array_foreach(a, i, e) {
        json_int_t at = json_integer_value(json_object_get(e, "credential_expires_at"));
        if (at > 0)
            put(o, "fogate_credential_expiry_timestamp_seconds{environment=\"%s\"} %lld\n",
                esc(json_string_value(json_object_get(e, "environment")), en, sizeof en),
                (long long)at);
    }
    json_decref(a);
}

/* ---- ledger ---- */

static void put_ledger_local(struct out *o, const struct adminstats *t)
{
    head(o, "fogate_ledger_messages_total", "counter",
         "This instance's ledger verdicts and events (duplicates_suppressed, redeliveries, "
         "new, delivered, confirmed ...). Sum across instances.");
    for (unsigned c = 0; c < LS_N_COUNTERS; c++) {
        uint64_t n = 0;
        for (unsigned w = 0; w < t->n; w++)
            if (t->w[w].ledger)
                n += get(&ledgerstat_counters(t->w[w].ledger)[c]);
        put(o, "fogate_ledger_messages_total{event=\"%s\"} %" PRIu64 "\n",
            ledgerstat_counter_name(c), n);
    }
}

/* Cluster-wide, from Redis: the same on every instance, hence their own family names
 * (fogate_ledger_cluster_*): take max() or one instance across instances, never sum(). */
static void put_ledger_cluster(struct out *o, const struct ledgerflow *lf)
{
    struct ledger_stats s;
    long long age_ms;

    if (ledgerstat_cluster(ledgerflow_stat(lf), &s, &age_ms) < 0)
        return;
    head(o, "fogate_ledger_cluster_messages", "gauge",
         "Cluster-wide (all instances, from Redis): export messages by state. Do not sum "
         "across instances.");
    put(o, "fogate_ledger_cluster_messages{state=\"unconfirmed\"} %lld\n", s.unconfirmed);
    put(o, "fogate_ledger_cluster_messages{state=\"unacked\"} %lld\n", s.unacked);
    head(o, "fogate_ledger_cluster_outbox_depth", "gauge",
         "Cluster-wide: confirmed messages whose upstream ack is still due.");
    put(o, "fogate_ledger_cluster_outbox_depth %lld\n", s.outbox_depth);
    head(o, "fogate_ledger_cluster_oldest_unconfirmed_age_seconds", "gauge",
         "Cluster-wide: age of the oldest delivered, unconfirmed message (D365 offers it "
         "again after 30 minutes).");
    put(o, "fogate_ledger_cluster_oldest_unconfirmed_age_seconds %.3f\n",
        (double)s.oldest_unconfirmed_ms / 1000);
    head(o, "fogate_ledger_cluster_oldest_unacked_age_seconds", "gauge",
         "Cluster-wide: age of the oldest confirmed message not yet acked to D365.");
    put(o, "fogate_ledger_cluster_oldest_unacked_age_seconds %.3f\n",
        (double)s.oldest_unacked_ms / 1000);
    head(o, "fogate_ledger_cluster_verdicts_total", "counter",
         "Cluster-wide counters kept in Redis, by verdict. Do not sum across instances.");
    put(o, "fogate_ledger_cluster_verdicts_total{verdict=\"new\"} %lld\n", s.new_messages);
    put(o, "fogate_ledger_cluster_verdicts_total{verdict=\"redelivery\"} %lld\n",
        s.redeliveries);
    put(o, "fogate_ledger_cluster_verdicts_total{verdict=\"duplicate_suppressed\"} %lld\n",
        s.duplicates_suppressed);
    put(o, "fogate_ledger_cluster_verdicts_total{verdict=\"confirmed\"} %lld\n", s.confirmed);
    put(o, "fogate_ledger_cluster_verdicts_total{verdict=\"acked\"} %lld\n", s.acked);
    head(o, "fogate_ledger_cluster_stats_age_seconds", "gauge",
         "How old the cluster-wide ledger figures are (read every ledger.stats_interval_ms).");
    put(o, "fogate_ledger_cluster_stats_age_seconds %.3f\n", (double)age_ms / 1000);
}

/* ---- packages ---- */

static void put_packages(struct out *o, const struct adminstats *t)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } fams[] = {
        { "fogate_package_imports_started_total", "ImportFromPackage calls sent.",
          offsetof(struct packagestats, imports_started) },
        { "fogate_package_exports_started_total", "ExportToPackage executions started.",
          offsetof(struct packagestats, exports_started) },
        { "fogate_package_lock_waits_total",
          "Imports that waited for their environment's turn (the import lock).",
          offsetof(struct packagestats, lock_waits) },
        { "fogate_package_lock_timeouts_total",
          "Imports refused because their turn did not come within packages.lock_wait_ms.",
          offsetof(struct packagestats, lock_timeouts) },
        { "fogate_package_idempotent_replays_total",
          "Imports answered from an Idempotency-Key record, without a new import.",
          offsetof(struct packagestats, replays) },
    };

    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        uint64_t n = 0;
        for (unsigned w = 0; w < t->n; w++)
            if (t->w[w].packages)
                n += get((const statcell *)((const char *)t->w[w].packages + fams[f].off));
        head(o, fams[f].name, "counter", fams[f].help);
        put(o, "%s %" PRIu64 "\n", fams[f].name, n);
    }
}

/* ---- Redis ---- */

static void put_redis_events(struct out *o, const struct adminstats *t, const char *name,
                             const char *help, bool failovers)
{
    head(o, name, "counter", help);
    for (unsigned k = 0; k < ADMINSTATS_REDIS_N; k++) {
        uint64_t n = 0;
        int seen = 0;
        for (unsigned w = 0; w < t->n; w++) {
            const struct rconn_stats *s = t->w[w].redis[k];
            if (!s)
                continue;
            uint64_t c = get(failovers ? &s->failovers : &s->connects);
            seen = 1;
            n += failovers ? c : c > 1 ? c - 1 : 0;
        }
        if (seen)
            put(o, "%s{client=\"%s\"} %" PRIu64 "\n", name, adminstats_redis_name(k), n);
    }
}

static void put_redis(struct out *o, const struct adminstats *t)
{
    static const char *const results[RCONN_RESULTS] = { "ok", "timeout", "disconnected",
                                                        "not_connected", "cancelled",
                                                        "overloaded" };
    char lab[64];

    head(o, "fogate_redis_up", "gauge",
         "1 when every worker's connection to Redis for this client is ready (the lowest).");
    for (unsigned k = 0; k < ADMINSTATS_REDIS_N; k++) {
        int up = 1, seen = 0;
        for (unsigned w = 0; w < t->n; w++)
            if (t->w[w].redis[k]) {
                seen = 1;
                up &= statgauge_get(&t->w[w].redis[k]->up) == 1;
            }
        if (seen)
            put(o, "fogate_redis_up{client=\"%s\"} %d\n", adminstats_redis_name(k), up);
    }
    head(o, "fogate_redis_commands_total", "counter", "Redis commands by result.");
    for (unsigned k = 0; k < ADMINSTATS_REDIS_N; k++)
        for (unsigned r = 0; r < RCONN_RESULTS; r++) {
            uint64_t n = 0;
            int seen = 0;
            for (unsigned w = 0; w < t->n; w++)
                if (t->w[w].redis[k]) {
                    seen = 1;
                    n += get(&t->w[w].redis[k]->results[r]);
                }
            if (seen && (n || r == 0))
                put(o, "fogate_redis_commands_total{client=\"%s\",result=\"%s\"} %" PRIu64 "\n",
                    adminstats_redis_name(k), results[r], n);
        }
    head(o, "fogate_redis_command_duration_seconds", "histogram",
         "Time from sending a Redis command to its reply.");
    for (unsigned k = 0; k < ADMINSTATS_REDIS_N; k++) {
        struct hsum h = { 0 };
        int seen = 0;
        for (unsigned w = 0; w < t->n; w++)
            if (t->w[w].redis[k]) {
                seen = 1;
                hadd(&h, &t->w[w].redis[k]->latency);
            }
        snprintf(lab, sizeof lab, "client=\"%s\"", adminstats_redis_name(k));
        if (seen)
            hput(o, "fogate_redis_command_duration_seconds", lab, &h);
    }
    put_redis_events(o, t, "fogate_redis_reconnects_total",
                     "Connections to Redis made again after the first one.", false);
    put_redis_events(o, t, "fogate_redis_failovers_total",
                     "Sentinel named a different master than the last one, and fogate "
                     "followed.", true);
}

char *adminmetrics_render(const struct admin_deps *d, size_t *len)
{
    struct out o = { .cap = 64 * 1024 };

    if (!(o.p = malloc(o.cap)))
        return NULL;
    put_process(&o, d);
    if (d->stats) {
        put_front(&o, d->stats);
        put_d365(&o, d->stats, d->conf);
        put_upstream(&o, d->stats);
        put_packages(&o, d->stats);
        put_redis(&o, d->stats);
        if (d->ledger)
            put_ledger_local(&o, d->stats);
    }
    put_tokens(&o, d);
    if (d->ledger)
        put_ledger_cluster(&o, d->ledger);
    if (o.bad) {
        free(o.p);
        return NULL;
    }
    *len = o.n;
    return o.p;
}
