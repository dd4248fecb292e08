/* packageerrors: GET /v1/executions/{id}/errors: D365's error list (GetExecutionErrors)
 * and, for one entity (?entity= or the job's `entity`), the error files (reference §4.10):
 *
 *   GetExecutionErrors --no entity--> answer (error_files null)
 *        | entity
 *   GetImportStagingErrorFileUrl --> GenerateImportTargetErrorKeysFile (once)
 *        --true--> GetImportTargetErrorKeysFileUrl
 *   a URL still "" (the staging file while errors exist; the keys file after true) is asked
 *   again every second, PACKAGE_FILES_POLLS rounds at most, then answered as null.
 * The URLs are blob SAS URLs handed to the client, as D365 does: never logged. */
#include "packagereq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define PACKAGE_FILES_POLLS 10

static void round_next(struct package_req *r);

static void answer(struct package_req *r)
{
    json_t *o = r->errout;

    r->errout = NULL;
    package_req_json(r, 200, o);
}

static json_t *files(struct package_req *r)
{
    return json_object_get(r->errout, "error_files");
}

static void call(struct package_req *r, const char *action,
                 void (*on_result)(void *, const struct d365_result *))
{
    json_t *params = json_pack("{s:s, s:s}", "executionId", r->exec_id, "entityName",
                               r->entity);
    struct d365_cbs cbs = { .on_result = on_result, .arg = r };

    r->call = params ? d365_action_json(r->p->ctx, r->env, action, params, &cbs) : NULL;
    json_decref(params);
    if (!r->call)
        package_req_error(r, 500, "internal", "cannot start the %s call", action);
}

/* A file call failed: the error list still goes out, with why the files are missing. */
static bool failed(struct package_req *r, const struct d365_result *res)
{
    char why[sizeof res->err.message + 40];

    r->call = NULL;
    if (res->ok)
        return false;
    snprintf(why, sizeof why, "%s: %s", res->err.code, res->err.message);
    json_object_set_new(files(r), "error", json_string(why));
    answer(r);
    package_req_settle(r);
    return true;
}

static void on_keys_url(void *arg, const struct d365_result *res)
{
    struct package_req *r = arg;

    if (failed(r, res))
        return;
    if (res->value[0]) {
        json_object_set_new(files(r), "target_error_keys_file_url", json_string(res->value));
        r->files_todo &= ~2u;
    }
    round_next(r);
}

static void on_generated(void *arg, const struct d365_result *res)
{
    struct package_req *r = arg;

    if (failed(r, res))
        return;
    r->files_generated = true;
    if (strcmp(res->value, "true") == 0) {
        call(r, "GetImportTargetErrorKeysFileUrl", on_keys_url);
        package_req_settle(r);
        return;
    }
    r->files_todo &= ~2u; /* no target errors: no keys file */
    round_next(r);
}

static void on_staging_url(void *arg, const struct d365_result *res)
{
    struct package_req *r = arg;

    if (failed(r, res))
        return;
    if (res->value[0])
        json_object_set_new(files(r), "staging_error_file_url", json_string(res->value));
    if (res->value[0] || !r->has_errors) /* "" without errors: there is no file */
        r->files_todo &= ~1u;
    if (!r->files_generated || (r->files_todo & 2u)) {
        call(r, r->files_generated ? "GetImportTargetErrorKeysFileUrl"
                                   : "GenerateImportTargetErrorKeysFile",
             r->files_generated ? on_keys_url : on_generated);
        package_req_settle(r);
        return;
    }
    round_next(r);
}

static void round_start(struct package_req *r)
{
    if (r->files_todo & 1u)
        call(r, "GetImportStagingErrorFileUrl", on_staging_url);
    else
        call(r, "GetImportTargetErrorKeysFileUrl", on_keys_url);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    round_start(arg);
    package_req_settle(arg);
}

/* A round ended: answer when nothing is missing or the rounds are used up, else wait 1 s. */
static void round_next(struct package_req *r)
{
    struct timeval one = { 1, 0 };

    if (r->files_todo && ++r->files_rounds < PACKAGE_FILES_POLLS && r->req) {
        if (!r->timer && !(r->timer = evtimer_new(r->p->base, on_timer, r)))
            package_req_error(r, 500, "internal", "out of memory");
        else
            evtimer_add(r->timer, &one);
    } else {
        json_object_set_new(files(r), "complete", json_boolean(!r->files_todo));
        answer(r);
    }
    package_req_settle(r);
}

static void on_errors(void *arg, const struct d365_result *res)
{
    struct package_req *r = arg;
    json_t *errors;

    r->call = NULL;
    if (!res->ok) {
        package_req_fail(r, &res->err);
        package_req_settle(r);
        return;
    }
    errors = d365parse_errors_array(res->value);
    r->has_errors = !errors || json_array_size(errors) > 0;
    r->errout = json_pack("{s:s}", "execution_id", r->exec_id);
    if (errors) {
        json_object_set_new(r->errout, "errors", errors);
    } else { /* D365's string is not valid JSON (reference §4.4): hand it over as text */
        json_object_set_new(r->errout, "errors", json_null());
        json_object_set_new(r->errout, "errors_raw", json_string(res->value));
    }
    if (!r->entity[0]) {
        json_object_set_new(r->errout, "error_files", json_null());
        answer(r);
    } else {
        json_object_set_new(r->errout, "error_files",
                            json_pack("{s:s, s:n, s:n}", "entity", r->entity,
                                      "staging_error_file_url", "target_error_keys_file_url"));
        r->files_todo = 3u;
        round_start(r);
    }
    package_req_settle(r);
}

void packageerrors_start(struct package_req *r)
{
    const struct http1_head *h = conn_req_head(r->req);
    const struct conf_job *job = r->job[0] ? conf_job_find(r->p->conf, r->job) : NULL;
    struct d365_cbs cbs = { .on_result = on_errors, .arg = r };
    int n = simpleroute_query(h->target, h->target_len, "entity", r->entity, sizeof r->entity);

    if (n == -2) {
        package_req_error(r, 400, "bad_query", "the entity parameter is malformed or too long");
        return;
    }
    if (n <= 0)
        snprintf(r->entity, sizeof r->entity, "%s", job && job->entity ? job->entity : "");
    r->call = d365_action(r->p->ctx, r->env, "GetExecutionErrors", "executionId", r->exec_id,
                          &cbs);
    if (!r->call)
        package_req_error(r, 500, "internal", "cannot start the GetExecutionErrors call");
}

void packageerrors_stop(struct package_req *r)
{
    if (r->timer)
        event_free(r->timer);
    r->timer = NULL;
    json_decref(r->errout);
    r->errout = NULL;
}
