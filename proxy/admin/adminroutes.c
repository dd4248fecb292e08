/* adminroutes: the admin route table and the health and status handlers. */
#include "adminroutes.h"

#include <stdlib.h>
#include <string.h>

#include "adminapi.h"
#include "adminmetrics.h"
#include "adminui.h"
#include "budget.h"
#include "conf.h"
#include "history.h"
#include "ledgerflow.h"
#include "reply.h"
#include "token.h"
#include "upcall.h"

void adminroutes_reply_json(struct conn_req *req, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    if (text)
        reply_json(req, status, text, strlen(text));
    else
        reply_error(req, 503, "out_of_memory", "the server is out of memory, retry later");
    free(text);
    json_decref(doc);
}

/* {env: what to do} for the environments of `why` that have a hint. */
static json_t *readyz_hints(const struct token_mgr *tm, json_t *why)
{
    json_t *hints = json_object(), *v;
    const char *env;

    json_object_foreach(why, env, v) {
        const char *h = token_hint(tm, env);
        if (h)
            json_object_set_new(hints, env, json_string(h));
    }
    return hints;
}

void admin_readyz(struct conn_req *req, const struct conf *conf, struct token_mgr *tm,
                  struct ledgerflow *ledger, bool draining)
{
    json_t *why = NULL;
    bool ready = token_mgr_ready(tm, &why);
    char lwhy[256] = "";
    /* a ledger that fails closed cannot serve dequeues without Redis */
    bool lready = !ledger || ledgerflow_ready(ledger, lwhy, sizeof lwhy) ||
                  conf->ledger.fail_open;
    json_t *o = json_pack("{s:s, s:o}", "status", draining ? "draining"
                                                  : ready && lready ? "ready" : "not_ready",
                          "environments", why ? why : json_object());

    if (o && ledger)
        json_object_set_new(o, "ledger", json_pack("{s:b, s:s}", "ready", lwhy[0] == '\0',
                                                   "reason", lwhy));
    if (o && !ready)
        json_object_set_new(o, "hints", readyz_hints(tm, json_object_get(o, "environments")));
    adminroutes_reply_json(req, ready && lready && !draining ? 200 : 503, o);
}

static void on_healthz(const struct admin_deps *d, struct conn_req *req)
{
    static const char ok[] = "{\"status\":\"ok\"}";

    (void)d;
    reply_json(req, 200, ok, sizeof ok - 1);
}

static void on_readyz(const struct admin_deps *d, struct conn_req *req)
{
    admin_readyz(req, d->conf, d->tm, d->ledger, d->draining && atomic_load(d->draining));
}

/* Worker 0's history counters, or null when history is off. */
static json_t *history_json(const struct history *h)
{
    struct history_stats st;

    if (!h)
        return json_null();
    history_get_stats(h, &st);
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "writes", (json_int_t)st.writes,
                     "lost", (json_int_t)st.lost, "follow_polls", (json_int_t)st.follow_polls,
                     "follow_final", (json_int_t)st.follow_final, "receipts_sent",
                     (json_int_t)st.receipts_sent, "receipts_given_up",
                     (json_int_t)st.receipts_given_up);
}

/* Tokens (never one of them), throttle gates, the ledger: worker 0's view; the ledger's
 * figures are the cluster's, read from Redis. */
static void on_status(const struct admin_deps *d, struct conn_req *req)
{
    json_t *gates = json_object();

    for (size_t i = 0; gates && i < d->conf->n_envs; i++)
        json_object_set_new(gates, d->conf->envs[i].name,
                            json_integer(upcall_gate_remaining(d->uc, d->conf->envs[i].name)));
    adminroutes_reply_json(
        req, 200,
        json_pack("{s:o, s:o, s:o, s:b, s:o, s:I, s:I, s:o}", "environments",
                  token_mgr_status(d->tm), "throttled_for_s", gates, "d365_budget",
                  budget_status(d->budget), "tokens_shared", d->token_shared, "ledger",
                  d->ledger ? ledgerflow_status(d->ledger) : json_null(), "worker",
                  (json_int_t)0, "workers", (json_int_t)d->workers, "history",
                  history_json(d->history)));
}

/* The Prometheus exposition (text format 0.0.4) of the whole process. */
static void on_metrics(const struct admin_deps *d, struct conn_req *req)
{
    size_t len = 0;
    char *text = adminmetrics_render(d, &len);

    if (!text) {
        reply_error(req, 503, "out_of_memory", "the metrics could not be rendered");
        return;
    }
    conn_req_respond(req, 200, NULL, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static const struct adminroutes_route table[] = {
    { "/metrics", "GET, HEAD", on_metrics },
    { "/healthz", "GET, HEAD", on_healthz },
    { "/readyz", "GET, HEAD", on_readyz },
    { "/admin/status", "GET, HEAD", on_status },
    { "/admin/api/", "GET, HEAD, POST", adminapi_handle },
    { "/ui", "GET, HEAD", adminui_handle },
    { "/ui/", "GET, HEAD", adminui_handle },
};

const struct adminroutes_route *adminroutes_find(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t n = strlen(table[i].path);
        bool prefix = table[i].path[n - 1] == '/';
        if ((len == n || (prefix && len > n)) && memcmp(path, table[i].path, n) == 0)
            return &table[i];
    }
    return NULL;
}

bool adminroutes_allows(const struct adminroutes_route *r, const char *method)
{
    size_t n = strlen(method);

    for (const char *p = r->methods; (p = strstr(p, method)); p += n)
        if ((p == r->methods || p[-1] == ' ') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}
