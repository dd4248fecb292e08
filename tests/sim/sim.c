/* sim: application object, router, counters and reply helpers. See sim.h. */
#define _GNU_SOURCE
#include "sim.h"
#include "simguid.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "simbearer.h"
#include "simblob.h"
#include "simconnector.h"
#include "simctl.h"
#include "simfault.h"
#include "simjwt.h"
#include "simodata.h"
#include "simpkg.h"
#include "simprotect.h"
#include "simmemq.h"
#include "simqueue.h"
#include "simtoken.h"
#include "simmi.h"

static const struct sim_route route_404 = {"other", NULL, NULL};

static void not_found(struct sim *s, struct simhttp_req *req)
{
    if (strcmp(req->path, "/") == 0 && strcmp(req->method, "GET") == 0) {
        /* D365's root redirects to interactive login (reference §1.3). */
        simhttp_add_header(req, "Location", "https://login.microsoftonline.com/");
        simhttp_reply(req, 302, NULL, NULL, 0);
        return;
    }
    simhttp_reply(req, 404, NULL, NULL, 0);
}

static const struct sim_route *route(const char *path)
{
    const struct sim_route *r;
    if ((r = simprotect_route(path)) || (r = simctl_route(path)) || (r = simtoken_route(path)) || (r = simmi_route(path)) || (r = simconnector_route(path)) ||
        (r = simodata_route(path)))
        return r;
    return NULL;
}

#define KIND(k) (1u << (k))

static void fault_status(struct simhttp_req *req, const struct simfault_rule *f)
{
    char ra[40];
    sim_d365_headers(req);
    if (f->status == 429 && simfault_retry_after(f, time(NULL), ra, sizeof(ra)) == 0)
        simhttp_add_header(req, "Retry-After", ra);
    if (!f->message[0]) {
        simhttp_reply(req, f->status, NULL, NULL, 0);
        return;
    }
    sim_reply_json(req, f->status, "application/json; odata.metadata=minimal",
                   json_pack("{s:{s:s, s:s}}", "error", "code", "", "message", f->message));
}

/* Faults a front end would cause, applied before the endpoint sees the request.
 * Returns 1 when the request has been answered (or the connection closed). */
static int early_faults(struct sim *s, struct simhttp_req *req)
{
    struct simfault_rule f;
    unsigned kinds = KIND(SF_STATUS) | KIND(SF_CLOSE) | KIND(SF_AADSTS) | KIND(SF_SLOW) |
                     KIND(SF_STALL) | KIND(SF_TRUNCATE) | KIND(SF_HANG) |
                     KIND(SF_STALL_UPLOAD);
    while (simfault_match(s->faults, req->endpoint, kinds, &f)) {
        sim_count(s, NULL, "faults_applied", 1);
        struct simhttp_shape sh = req->shape;
        switch (f.kind) {
        case SF_CLOSE: simhttp_close(req); return 1;
        case SF_STATUS: fault_status(req, &f); return 1;
        case SF_AADSTS:
            simtoken_reply_error(s, req, f.status, f.error, f.code,
                                 f.message[0] ? f.message : "Injected failure.");
            return 1;
        case SF_SLOW: sh.rate_bps = f.rate; break;
        case SF_STALL: sh.stall = 1; sh.stall_at = f.bytes; break;
        case SF_HANG: sh.hang = 1; break;
        case SF_STALL_UPLOAD: sh.read_stall_at = f.bytes > 0 ? f.bytes : 1; break;
        case SF_TRUNCATE: sh.truncate_at = f.bytes > 0 ? f.bytes : 1; break;
        default: break;
        }
        simhttp_set_shape(req, &sh);
        kinds &= ~KIND(f.kind);
    }
    return 0;
}

static void on_head(struct simhttp_req *req, void *ctx)
{
    struct sim *s = ctx;
    const struct sim_route *r = simblob_route(req);
    struct simfault_rule f;
    if (!r)
        r = route(req->path);
    if (!r)
        r = &route_404;
    req->route_data = (void *)r;
    req->endpoint = r->endpoint;
    int control = strcmp(r->endpoint, "control") == 0;
    if (!control)
        simprotect_log(s, req);
    if (!control && (early_faults(s, req) || simprotect_admit(s, req)))
        return;
    if (r->on_head)
        r->on_head(s, req);
    if (!control && !req->replied && simfault_match(s->faults, req->endpoint, KIND(SF_TOO_LARGE), &f)) {
        sim_count(s, NULL, "faults_applied", 1);
        if (req->body_cap > (size_t)f.size)
            req->body_cap = (size_t)f.size;
    }
}

/* W3C traceparent headers received, counted by trace id (a test checks that fogate's D365
 * calls carry the client's trace); only well-formed values, so the group stays small. */
static void count_traceparent(struct sim *s, const struct simhttp_req *req)
{
    const char *tp = simhttp_header(req, "traceparent");
    char trace[33];

    if (!tp || strlen(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' ||
        strspn(tp + 3, "0123456789abcdef") != 32)
        return;
    memcpy(trace, tp + 3, 32);
    trace[32] = '\0';
    sim_count(s, "traceparents", trace, 1);
}

static void on_request(struct simhttp_req *req, void *ctx)
{
    const struct sim_route *r = req->route_data;

    if (strcmp(r->endpoint, "control") != 0)
        count_traceparent(ctx, req);
    if (req->body_too_large && strcmp(r->endpoint, "control") != 0 &&
        strncmp(r->endpoint, "blob_", 5) != 0) { /* the blob store answers in XML */
        sim_d365_headers(req);
        sim_reply_json(req, 413, "application/json; charset=utf-8",
                       json_pack("{s:s}", "Message", "Request Entity Too Large"));
        return;
    }
    if (r->on_request)
        r->on_request(ctx, req);
    else
        not_found(ctx, req);
}

static void on_reply(struct simhttp_req *req, int status, void *ctx)
{
    char key[16];
    snprintf(key, sizeof(key), "%d", status);
    struct sim *s = ctx;
    simprotect_reply(s, req, status);
    json_t *reqs = json_object_get(s->counters, "requests");
    const char *ep = req->endpoint ? req->endpoint : "other";
    json_t *grp = json_object_get(reqs, ep);
    if (!grp) {
        grp = json_object();
        json_object_set_new(reqs, ep, grp);
    }
    json_t *v = json_object_get(grp, key);
    if (v)
        json_integer_set(v, json_integer_value(v) + 1);
    else
        json_object_set_new(grp, key, json_integer(1));
}

static void on_free(struct simhttp_req *req, void *ctx)
{
    simprotect_release(ctx, req);
}

static const struct simhttp_handlers handlers = {on_head, on_request, on_reply, on_free};

void sim_counters_reset(struct sim *s)
{
    json_decref(s->counters);
    s->counters = json_pack("{s:i, s:{}, s:{}, s:{}, s:{}, s:i, s:i, s:i, s:i, s:i}",
                            "tokens_total", 0, "tokens_by_app", "requests", "downloads",
                            "throttled", "acks", 0,
                            "expired_tokens", 0, "import_overlaps", 0, "faults_applied", 0,
                            "token_errors", 0);
}

void sim_count(struct sim *s, const char *group, const char *key, long n)
{
    json_t *obj = s->counters;
    if (group) {
        obj = json_object_get(s->counters, group);
        if (!obj) {
            obj = json_object();
            json_object_set_new(s->counters, group, obj);
        }
    }
    json_t *v = json_object_get(obj, key);
    if (v)
        json_integer_set(v, json_integer_value(v) + n);
    else
        json_object_set_new(obj, key, json_integer(n));
}

static int build_conf(struct sim *s, json_t *doc, char *err, size_t cap)
{
    struct simconf *c = simconf_from_json(doc, err, cap);
    if (!c)
        return -1;
    simconf_free(s->conf);
    s->conf = c;
    json_decref(s->conf_doc);
    s->conf_doc = json_incref(doc);
    return 0;
}

int sim_reconfigure(struct sim *s, const json_t *patch, char *err, size_t cap)
{
    json_t *doc = json_deep_copy(s->conf_doc);
    int rc = -1;
    if (!json_is_object(patch) || json_object_update(doc, (json_t *)patch) != 0)
        snprintf(err, cap, "config patch must be a JSON object");
    else
        rc = build_conf(s, doc, err, cap);
    json_decref(doc);
    return rc;
}

struct sim *sim_new(struct event_base *base, json_t *conf_doc, const char *host, int port,
                    const char *data_dir, char *err, size_t cap)
{
    struct sim *s = calloc(1, sizeof(*s));
    if (!s)
        goto fail;
    s->base = base;
    sim_counters_reset(s);
    if (build_conf(s, conf_doc, err, cap) != 0)
        goto fail;
    s->key = simjwt_key_new();
    s->bearer = simbearer_new();
    s->queue = simqueue_new();
    s->memq = simmemq_new();
    s->faults = simfault_new();
    s->pkg = simpkg_new(s);
    s->blobs = simblob_new();
    s->protect = simprotect_new();
    s->data_dir = strdup(data_dir);
    mkdir(data_dir, 0700);
    if (!s->key || !s->bearer || !s->queue || !s->memq || !s->faults || !s->pkg || !s->blobs ||
        !s->protect) {
        snprintf(err, cap, "cannot create the signing key");
        goto fail;
    }
    s->http = simhttp_new(base, host, port, &handlers, s);
    if (!s->http) {
        snprintf(err, cap, "cannot listen on %s:%d", host, port);
        goto fail;
    }
    snprintf(s->hostport, sizeof(s->hostport), "%s:%d", host, simhttp_port(s->http));
    snprintf(s->base_url, sizeof(s->base_url), "http://%s", s->hostport);
    json_decref(conf_doc);
    return s;
fail:
    json_decref(conf_doc);
    sim_free(s);
    return NULL;
}

void sim_free(struct sim *s)
{
    if (!s)
        return;
    simpkg_free(s->pkg); /* joins workers before the requests they reference go away */
    simhttp_free(s->http);
    simblob_free(s->blobs);
    simprotect_free(s->protect); /* after the requests whose slots it holds */
    simbearer_free(s->bearer);
    simqueue_free(s->queue);
    simmemq_free(s->memq);
    simfault_free(s->faults);
    simjwt_key_free(s->key);
    simconf_free(s->conf);
    json_decref(s->conf_doc);
    json_decref(s->counters);
    free(s->data_dir);
    free(s);
}

double sim_now(const struct sim *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + s->clock_offset;
}

const char *sim_audience(const struct sim *s)
{
    return s->conf->audience ? s->conf->audience : s->base_url;
}

void sim_data_path(struct sim *s, const char *prefix, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s-%lu", s->data_dir, prefix, ++s->seq);
}

void sim_reply_json(struct simhttp_req *req, int status, const char *ctype, json_t *body)
{
    char *txt = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!txt) {
        simhttp_reply(req, 500, NULL, NULL, 0);
        return;
    }
    simhttp_reply(req, status, ctype, txt, strlen(txt));
    free(txt);
}

/* As real D365 answers (reference §1.3): ms-dyn-aid is the activity id Microsoft support
 * asks for, a fresh GUID per request; fqhn and role are sent empty, tenant masked here. */
void sim_d365_headers(struct simhttp_req *req)
{
    char aid[SIMGUID_LEN + 1];

    simguid_new(aid);
    simhttp_add_header(req, "ms-dyn-fqhn", "");
    simhttp_add_header(req, "ms-dyn-namespace", "FosimSim");
    simhttp_add_header(req, "ms-dyn-tenant", "fosim-tenant");
    simhttp_add_header(req, "ms-dyn-role", "");
    simhttp_add_header(req, "ms-dyn-aid", aid);
    simhttp_add_header(req, "X-Content-Type-Options", "nosniff");
    simhttp_add_header(req, "X-Frame-Options", "SAMEORIGIN");
    simhttp_add_header(req, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
}

void sim_iso8601(double t, int frac, char *out, size_t cap)
{
    time_t sec = (time_t)floor(t);
    struct tm tm;
    gmtime_r(&sec, &tm);
    if (!frac) {
        strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
        return;
    }
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%07ldZ", base, (long)((t - floor(t)) * 1e7));
}
