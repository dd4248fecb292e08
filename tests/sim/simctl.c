/* simctl: control API. See simctl.h and README.md for the endpoints. */
#include "simctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simjson.h"

static void head(struct sim *s, struct simhttp_req *req);
static void handle(struct sim *s, struct simhttp_req *req);
static const struct sim_route route = {"control", head, handle};

const struct sim_route *simctl_route(const char *path)
{
    return strncmp(path, "/_sim/", 6) == 0 ? &route : NULL;
}

static void head(struct sim *s, struct simhttp_req *req)
{
    req->body_cap = 1024 * 1024;
}

static void reply_err(struct simhttp_req *req, int status, const char *msg)
{
    sim_reply_json(req, status, "application/json", json_pack("{s:s}", "error", msg));
}

static int is(const struct simhttp_req *req, const char *method, const char *path)
{
    return strcmp(req->method, method) == 0 && strcmp(req->path, path) == 0;
}

/* A copy of the config document with secrets replaced. */
static json_t *redacted_config(const struct sim *s)
{
    json_t *doc = json_deep_copy(s->conf_doc), *t, *a;
    size_t i, k;
    json_array_foreach(json_object_get(doc, "tenants"), i, t) {
        json_array_foreach(json_object_get(t, "apps"), k, a) {
            if (json_object_get(a, "secret"))
                json_object_set_new(a, "secret", json_string("***"));
        }
    }
    json_t *az = json_object_get(doc, "azurite");
    if (json_is_object(az) && json_object_get(az, "key"))
        json_object_set_new(az, "key", json_string("***"));
    json_object_set_new(doc, "effective_audience", json_string(sim_audience(s)));
    return doc;
}

static void config_patch(struct sim *s, struct simhttp_req *req)
{
    char err[256];
    json_t *patch = simjson_lenient_load(req->body, req->body_len);
    if (!patch || sim_reconfigure(s, patch, err, sizeof(err)) != 0) {
        reply_err(req, 400, patch ? err : "body must be JSON");
    } else {
        sim_reply_json(req, 200, "application/json", redacted_config(s));
    }
    json_decref(patch);
}

static void clock_set(struct sim *s, struct simhttp_req *req)
{
    json_t *b = simjson_lenient_load(req->body, req->body_len);
    json_t *adv = json_object_get(b, "advance"), *off = json_object_get(b, "offset");
    int ok = json_is_number(adv) || json_is_number(off);
    if (json_is_number(adv))
        s->clock_offset += json_number_value(adv);
    else if (json_is_number(off))
        s->clock_offset = json_number_value(off);
    json_decref(b);
    if (!ok) {
        reply_err(req, 400, "expected {\"advance\": seconds} or {\"offset\": seconds}");
        return;
    }
    sim_reply_json(req, 200, "application/json",
                   json_pack("{s:f, s:f}", "offset", s->clock_offset, "now", sim_now(s)));
}

static void handle(struct sim *s, struct simhttp_req *req)
{
    if (req->body_too_large) {
        reply_err(req, 413, "control body too large");
    } else if (is(req, "GET", "/_sim/healthz")) {
        simhttp_reply(req, 200, "application/json", "{\"status\":\"ok\"}", 15);
    } else if (is(req, "GET", "/_sim/counters")) {
        sim_reply_json(req, 200, "application/json", json_incref(s->counters));
    } else if (is(req, "POST", "/_sim/reset")) {
        sim_counters_reset(s);
        simhttp_reply(req, 204, NULL, NULL, 0);
    } else if (is(req, "GET", "/_sim/config")) {
        sim_reply_json(req, 200, "application/json", redacted_config(s));
    } else if (is(req, "POST", "/_sim/config")) {
        config_patch(s, req);
    } else if (is(req, "POST", "/_sim/clock")) {
        clock_set(s, req);
    } else {
        reply_err(req, 404, "no such control endpoint");
    }
}
