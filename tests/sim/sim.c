/* sim: application object, router, counters and reply helpers. See sim.h. */
#define _GNU_SOURCE
#include "sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "simbearer.h"
#include "simctl.h"
#include "simjwt.h"
#include "simtoken.h"

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
    if ((r = simctl_route(path)) || (r = simtoken_route(path)))
        return r;
    return NULL;
}

static void on_head(struct simhttp_req *req, void *ctx)
{
    struct sim *s = ctx;
    const struct sim_route *r = route(req->path);
    if (!r)
        r = &route_404;
    req->route_data = (void *)r;
    req->endpoint = r->endpoint;
    if (r->on_head)
        r->on_head(s, req);
}

static void on_request(struct simhttp_req *req, void *ctx)
{
    const struct sim_route *r = req->route_data;
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

static const struct simhttp_handlers handlers = {on_head, on_request, on_reply};

void sim_counters_reset(struct sim *s)
{
    json_decref(s->counters);
    s->counters = json_pack("{s:i, s:{}, s:{}, s:{}, s:i, s:i, s:i, s:i, s:i}", "tokens_total",
                            0, "tokens_by_app", "requests", "downloads", "acks", 0,
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
    s->data_dir = strdup(data_dir);
    mkdir(data_dir, 0700);
    if (!s->key || !s->bearer) {
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
    simhttp_free(s->http);
    simbearer_free(s->bearer);
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

void sim_d365_headers(struct simhttp_req *req)
{
    simhttp_add_header(req, "ms-dyn-namespace", "FosimSim");
    simhttp_add_header(req, "ms-dyn-role", "");
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
