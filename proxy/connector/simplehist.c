/* simplehist: GET /v1/history and GET /v1/history/{id} (see simplehist.h). */
#include "simplehist.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "simpleroute.h"

#define DEFAULT_LIMIT 50

static bool history_on(struct simple_req *r)
{
    if (r->s->hist)
        return true;
    simple_req_error(r, 404, "history_disabled", "this fogate keeps no history "
                     "(history.enabled is false)");
    return false;
}

static void unavailable(struct simple_req *r)
{
    simple_req_error(r, 503, "history_unavailable",
                     "the history cannot be read now (Redis unavailable), retry later");
}

static void on_page(void *arg, int status, const json_t *result)
{
    struct simple_req *r = arg;

    r->hop = NULL;
    if (status < 0)
        unavailable(r);
    else
        simple_req_json(r, 200, json_deep_copy(result));
    simple_req_settle(r);
}

/* Reads query parameter `name` into buf; -1 (answered 400) when malformed. */
static int param(struct simple_req *r, const char *name, char *buf, size_t cap)
{
    const struct http1_head *h = conn_req_head(r->req);
    int n = simpleroute_query(h->target, h->target_len, name, buf, cap);

    if (n == -2) {
        simple_req_error(r, 400, "bad_query", "the %s parameter is malformed or too long",
                         name);
        return -1;
    }
    return 0;
}

static int time_param(struct simple_req *r, const char *name, int64_t *ms)
{
    char buf[64];

    if (param(r, name, buf, sizeof buf) < 0)
        return -1;
    if (buf[0] && histrec_time_parse(buf, ms) < 0) {
        simple_req_error(r, 400, "bad_query", "%s must be an RFC 3339 UTC time "
                         "(2026-12-07T11:00:00Z) or milliseconds since 1970", name);
        return -1;
    }
    return 0;
}

static int parse_filter(struct simple_req *r, struct histrec_filter *f)
{
    char limit[16], cursor[HISTREC_CURSOR_SIZE + 8];
    unsigned max = history_max_page(r->s->hist);

    memset(f, 0, sizeof *f);
    if (param(r, "job", f->job, sizeof f->job) < 0 ||
        param(r, "status", f->status, sizeof f->status) < 0 ||
        param(r, "file", f->file, sizeof f->file) < 0 ||
        param(r, "limit", limit, sizeof limit) < 0 ||
        param(r, "cursor", cursor, sizeof cursor) < 0 || time_param(r, "since", &f->since_ms) < 0 ||
        time_param(r, "until", &f->until_ms) < 0)
        return -1;
    f->limit = DEFAULT_LIMIT < max ? DEFAULT_LIMIT : max;
    if (limit[0]) {
        char *end;
        unsigned long v = strtoul(limit, &end, 10);
        if (*end || limit[0] == '-' || v < 1 || v > max) {
            simple_req_error(r, 400, "bad_query", "limit must be 1 to %u", max);
            return -1;
        }
        f->limit = (unsigned)v;
    }
    if (cursor[0] && histrec_cursor_decode(cursor, f) < 0) {
        simple_req_error(r, 400, "bad_cursor", "the cursor is not one this API handed out");
        return -1;
    }
    return 0;
}

void simplehist_list(struct simple_req *r, const struct conf_client *client)
{
    struct histrec_filter f;
    const char *one[1], **jobs = one;
    size_t n = 0;

    if (!history_on(r) || parse_filter(r, &f) < 0)
        return;
    if (f.job[0]) {
        const struct conf_job *job = conf_job_find(r->s->conf, f.job);
        if (!job || !conf_client_allows(client, job)) {
            simple_req_error(r, 403, "job_forbidden", "this client may not use job '%s'",
                             f.job);
            return;
        }
        one[n++] = job->name;
    } else if (!(jobs = calloc(client->n_jobs ? client->n_jobs : 1, sizeof *jobs))) {
        simple_req_error(r, 500, "internal", "out of memory");
        return;
    } else {
        for (; n < client->n_jobs; n++)
            jobs[n] = client->jobs[n]->name;
    }
    r->hop = history_page(r->s->hist, jobs, n, &f, on_page, r);
    if (jobs != one)
        free(jobs);
    if (!r->hop)
        unavailable(r);
}

/* The job of `rec` is one `client` may use. */
static bool visible(const struct simple *s, const struct conf_client *client,
                    const json_t *rec)
{
    const char *name = json_string_value(json_object_get(rec, "job"));
    const struct conf_job *job = name ? conf_job_find(s->conf, name) : NULL;

    return job && conf_client_allows(client, job);
}

static void on_record(void *arg, int status, const json_t *rec)
{
    struct simple_req *r = arg;

    r->hop = NULL;
    if (status < 0)
        unavailable(r);
    else if (!rec || !r->client_conf || !visible(r->s, r->client_conf, rec))
        simple_req_error(r, 404, "record_not_found", "no history record with that id");
    else
        simple_req_json(r, 200, json_deep_copy(rec));
    simple_req_settle(r);
}

void simplehist_get(struct simple_req *r, const struct conf_client *client)
{
    if (!history_on(r))
        return;
    r->client_conf = client;
    r->hop = history_get(r->s->hist, r->route.record_id, on_record, r);
    if (!r->hop)
        unavailable(r);
}
