/* simfault: fault rules. See simfault.h. */
#include "simfault.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RULES 64

struct simfault {
    struct simfault_rule rules[MAX_RULES];
    size_t n;
};

static const char *const kind_names[] = {"status", "close", "aadsts", "too_large", "slow",
                                         "stall", "truncate", "null_location", "hang", "stall_upload", NULL};

struct simfault *simfault_new(void)
{
    return calloc(1, sizeof(struct simfault));
}

void simfault_free(struct simfault *f)
{
    free(f);
}

void simfault_clear(struct simfault *f)
{
    f->n = 0;
}

const char *simfault_spl_message(const char *limit)
{
    if (limit && strcmp(limit, "time") == 0)
        return "Combined execution time of incoming requests exceeded limit of 1200 seconds "
               "over time window of 300 seconds. Decrease number of concurrent requests or "
               "reduce the duration of requests and try again later.";
    if (limit && strcmp(limit, "concurrent") == 0)
        return "Number of concurrent requests exceeded the limit of 52.";
    if (limit && strcmp(limit, "resource") == 0)
        return "This request could not be processed at this time due to system experiencing "
               "high resource utilization.";
    return "Number of requests exeeded the limit of 6000 over the time window of 300 seconds.";
}

static long num(const json_t *rule, const char *key, long dflt)
{
    const json_t *v = json_object_get(rule, key);
    return json_is_number(v) ? (long)json_number_value(v) : dflt;
}

static void copy_str(char *dst, size_t cap, const json_t *rule, const char *key,
                     const char *dflt)
{
    const char *v = json_string_value(json_object_get(rule, key));
    snprintf(dst, cap, "%s", v ? v : dflt);
}

/* retry_after_form: absent or "seconds" -> 0, "date" -> 1, anything else -> -1. */
static int retry_after_form(const json_t *rule)
{
    const json_t *v = json_object_get(rule, "retry_after_form");
    if (!v || (json_is_string(v) && strcmp(json_string_value(v), "seconds") == 0))
        return 0;
    if (json_is_string(v) && strcmp(json_string_value(v), "date") == 0)
        return 1;
    return -1;
}

static int kind_of(const char *name)
{
    for (int i = 0; name && kind_names[i]; i++)
        if (strcmp(name, kind_names[i]) == 0)
            return i;
    return -1;
}

int simfault_add(struct simfault *f, const json_t *rule, char *err, size_t cap)
{
    const char *ep = json_string_value(json_object_get(rule, "endpoint"));
    int kind = kind_of(json_string_value(json_object_get(rule, "kind")));
    if (!ep || kind < 0 || strlen(ep) >= sizeof(f->rules[0].endpoint)) {
        snprintf(err, cap, "a fault needs \"endpoint\" and \"kind\" (one of status, close, "
                           "aadsts, too_large, slow, stall, truncate, null_location, hang, stall_upload)");
        return -1;
    }
    if (f->n == MAX_RULES) {
        snprintf(err, cap, "too many fault rules (max %d)", MAX_RULES);
        return -1;
    }
    struct simfault_rule *r = &f->rules[f->n];
    memset(r, 0, sizeof(*r));
    snprintf(r->endpoint, sizeof(r->endpoint), "%s", ep);
    r->kind = (enum simfault_kind)kind;
    r->status = (int)num(rule, "status", kind == SF_AADSTS ? 400 : 503);
    r->retry_after = num(rule, "retry_after", 1);
    r->retry_after_date = retry_after_form(rule);
    r->code = num(rule, "code", 7000215);
    r->size = num(rule, "size", 0);
    r->rate = num(rule, "rate", 1024);
    r->bytes = num(rule, "bytes", 0);
    r->remaining = num(rule, "count", -1);
    r->skip = num(rule, "after", 0);
    copy_str(r->error, sizeof(r->error), rule, "error", kind == SF_AADSTS ? "invalid_client" : "");
    const char *limit = json_string_value(json_object_get(rule, "limit"));
    copy_str(r->message, sizeof(r->message), rule, "message",
             r->status == 429 ? simfault_spl_message(limit) : "");
    if (r->status < 100 || r->status > 599 || r->retry_after < 0 || r->rate <= 0 ||
        r->retry_after_date < 0) {
        snprintf(err, cap, "status must be 100..599, retry_after >= 0, rate > 0, "
                           "retry_after_form \"seconds\" or \"date\"");
        return -1;
    }
    f->n++;
    return 0;
}

json_t *simfault_list(const struct simfault *f)
{
    json_t *a = json_array();
    for (size_t i = 0; i < f->n; i++) {
        const struct simfault_rule *r = &f->rules[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:I, s:I, s:s}", "endpoint",
                                           r->endpoint, "kind", kind_names[r->kind], "status",
                                           r->status, "remaining", (json_int_t)r->remaining,
                                           "after", (json_int_t)r->skip, "message", r->message));
    }
    return a;
}

int simfault_retry_after(const struct simfault_rule *r, time_t now, char *buf, size_t cap)
{
    struct tm tm;
    time_t when = now + (time_t)r->retry_after;
    if (!r->retry_after_date) {
        int n = snprintf(buf, cap, "%ld", r->retry_after);
        return n < 0 || (size_t)n >= cap ? -1 : 0;
    }
    /* strftime's %a and %b follow the locale; fosim never calls setlocale, so "C" */
    if (!gmtime_r(&when, &tm) || strftime(buf, cap, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
        return -1;
    return 0;
}

static int endpoint_matches(const char *rule, const char *ep)
{
    if (strcmp(rule, ep) == 0 || (strcmp(rule, "*") == 0 && strcmp(ep, "control") != 0))
        return 1;
    if (strcmp(rule, "odata") == 0)
        return strncmp(ep, "odata:", 6) == 0;
    if (strcmp(rule, "blob") == 0)
        return strncmp(ep, "blob_", 5) == 0;
    if (strcmp(rule, "connector") == 0)
        return strcmp(ep, "enqueue") == 0 || strcmp(ep, "dequeue") == 0 ||
               strcmp(ep, "download") == 0 || strcmp(ep, "ack") == 0 ||
               strcmp(ep, "jobstatus") == 0;
    return 0;
}

int simfault_match(struct simfault *f, const char *endpoint, unsigned kinds,
                   struct simfault_rule *out)
{
    for (size_t i = 0; i < f->n; i++) {
        struct simfault_rule *r = &f->rules[i];
        if (r->remaining == 0 || !(kinds & (1u << r->kind)) ||
            !endpoint_matches(r->endpoint, endpoint))
            continue;
        if (r->skip > 0) {
            r->skip--;
            continue;
        }
        if (r->remaining > 0)
            r->remaining--;
        *out = *r;
        return 1;
    }
    return 0;
}

int simfault_take(struct simfault *f, const char *endpoint, const char *kind)
{
    struct simfault_rule r;
    int k = kind_of(kind);
    return k >= 0 && simfault_match(f, endpoint, 1u << k, &r);
}
