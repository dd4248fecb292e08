/* jobpause: the paused-jobs hash in Redis and each worker's copy of it (see jobpause.h). */
#include "jobpause.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/dns.h>

#include "log.h"
#include "redisopen.h"
#include "reply.h"

#define KEY "fogate:jobs:paused"

struct jobpause {
    struct event_base *base;    /* borrowed */
    struct evdns_base *dns;     /* owned; NULL for an IP literal or a socket */
    struct rconn *rc;           /* owned */
    struct event *tick;         /* owned */
    json_t *paused;             /* owned: the last state read, {job: {...}} */
    bool freeing;
};

struct setop {
    struct jobpause *jp;        /* borrowed */
    jobpause_done *cb;
    void *arg;
    char *name;                 /* owned */
    json_t *entry;              /* owned; NULL for a resume */
};

static long long now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void on_read(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct jobpause *jp = arg;
    json_t *fresh;

    if (res != RCONN_OK || !reply || reply->type != REDICT_REPLY_ARRAY || jp->freeing)
        return; /* keep the last state read */
    if (!(fresh = json_object()))
        return;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redictReply *k = reply->element[i], *v = reply->element[i + 1];
        json_t *e = json_loadb(v->str, v->len, 0, NULL);
        if (k->type == REDICT_REPLY_STRING && e && json_is_object(e))
            json_object_setn_new(fresh, k->str, k->len, e);
        else
            json_decref(e);
    }
    json_decref(jp->paused);
    jp->paused = fresh;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct jobpause *jp = arg;
    struct timeval tv = { JOBPAUSE_REFRESH_MS / 1000, (JOBPAUSE_REFRESH_MS % 1000) * 1000 };

    (void)fd;
    (void)what;
    (void)rconn_command(jp->rc, on_read, jp, 0, "HGETALL %s", KEY);
    evtimer_add(jp->tick, &tv);
}

struct jobpause *jobpause_new(struct event_base *base, const struct conf *conf)
{
    struct jobpause *jp;

    if (!conf->redis.url || !(jp = calloc(1, sizeof *jp)))
        return NULL;
    jp->base = base;
    if (!(jp->paused = json_object()) ||
        !(jp->rc = redisopen_new(base, &conf->redis, "pause: ", &jp->dns)) ||
        !(jp->tick = evtimer_new(base, on_tick, jp))) {
        log_msg(LOG_LVL_ERROR, "pause: cannot start");
        jobpause_free(jp);
        return NULL;
    }
    on_tick(-1, 0, jp);
    return jp;
}

void jobpause_free(struct jobpause *jp)
{
    if (!jp)
        return;
    jp->freeing = true;
    if (jp->tick)
        event_free(jp->tick);
    rconn_free(jp->rc); /* pending callbacks run now, with RCONN_CANCELLED */
    if (jp->dns)
        evdns_base_free(jp->dns, 0);
    json_decref(jp->paused);
    free(jp);
}

bool jobpause_paused(const struct jobpause *jp, const char *name)
{
    return jp && name && json_object_get(jp->paused, name) != NULL;
}

json_t *jobpause_list(const struct jobpause *jp)
{
    return jp ? json_deep_copy(jp->paused) : json_object();
}

static void on_set(void *arg, enum rconn_result res, const redictReply *reply)
{
    struct setop *op = arg;
    bool ok = res == RCONN_OK && reply && reply->type == REDICT_REPLY_INTEGER;

    if (ok && !op->jp->freeing) {
        if (op->entry)
            json_object_set(op->jp->paused, op->name, op->entry);
        else
            json_object_del(op->jp->paused, op->name);
    }
    if (op->cb)
        op->cb(op->arg, ok ? 0 : -1);
    json_decref(op->entry);
    free(op->name);
    free(op);
}

int jobpause_set(struct jobpause *jp, const char *name, bool paused, const char *who,
                 jobpause_done *cb, void *arg)
{
    struct setop *op = jp ? calloc(1, sizeof *op) : NULL;
    char *text = NULL;
    int rc = -1;

    if (!op)
        return -1;
    *op = (struct setop){ .jp = jp, .cb = cb, .arg = arg, .name = strdup(name) };
    if (!op->name)
        goto out;
    if (paused) {
        op->entry = json_pack("{s:s, s:I}", "by", who, "at_ms", (json_int_t)now_ms());
        if (!op->entry || !(text = json_dumps(op->entry, JSON_COMPACT)))
            goto out;
        rc = rconn_command(jp->rc, on_set, op, 0, "HSET %s %s %s", KEY, name, text);
    } else {
        rc = rconn_command(jp->rc, on_set, op, 0, "HDEL %s %s", KEY, name);
    }
out:
    free(text);
    if (rc < 0 && op) {
        json_decref(op->entry);
        free(op->name);
        free(op);
    }
    return rc;
}

void jobpause_refuse(struct conn_req *req, const char *name)
{
    char message[256], extra[40];
    char *body;

    snprintf(message, sizeof message, "job '%s' is paused by an operator; nothing is "
             "enqueued or handed out until it is resumed", name);
    snprintf(extra, sizeof extra, "Retry-After: %d\r\n", JOBPAUSE_RETRY_AFTER_S);
    conn_req_note_error(req, "job_paused", message);
    body = reply_error_body("job_paused", message, conn_req_id(req),
                            conn_req_trace(req)->trace_id);
    if (!body) {
        reply_error(req, 503, "out_of_memory", "the server is out of memory, retry later");
        return;
    }
    conn_req_respond(req, 503, extra, "application/json", body, strlen(body));
    free(body);
}
