/* ctl: fogatectl, the command line for fogate's operators and clients: options, --help,
 * the secrets (never from argv) and the admin commands; send and next are in ctlxfer.c.
 * Exit codes: ctlcode.h (documented in docs/fogatectl.md). */
#define _GNU_SOURCE
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ctlcode.h"
#include "ctlhttp.h"

#define URL_MAX 4096

struct command {
    const char *name;
    const char *usage;
    int (*run)(const struct ctlopts *o);
};

static const char common_help[] =
    "Common options:\n"
    "  --url URL          fogate's client API (FOGATE_URL; default http://127.0.0.1:8080)\n"
    "  --admin-url URL    fogate's admin listener (FOGATE_ADMIN_URL; default "
    "http://127.0.0.1:9091)\n"
    "  --key-file PATH    file holding the client API key (FOGATE_API_KEY_FILE, or the key\n"
    "                     itself in FOGATE_API_KEY); never on the command line\n"
    "  --token-file PATH  file holding the admin token (FOGATE_ADMIN_TOKEN_FILE, or\n"
    "                     FOGATE_ADMIN_TOKEN); needed for every action\n"
    "  --json             print fogate's JSON answer as it came\n"
    "Exit codes: 0 done, 2 usage, 3 fogate unreachable, 4 refused (4xx), 5 unavailable\n"
    "(5xx: retry later), 6 nothing waiting, 7 local file error, 8 written but not confirmed,\n"
    "10 ProcessedWithErrors, 11 PreProcessingError, 12 PostProcessingFailed, 13 other final\n"
    "status, 14 no final status within --wait. See docs/fogatectl.md.\n";

int ctl_secret(const char *file_opt, const char *env_value, char out[CTL_SECRET_MAX])
{
    size_t n;

    out[0] = '\0';
    if (file_opt) {
        FILE *f = fopen(file_opt, "r");
        if (!f || !fgets(out, CTL_SECRET_MAX, f)) {
            fprintf(stderr, "fogatectl: cannot read %s: %s\n", file_opt,
                    f ? "empty file" : strerror(errno));
            if (f)
                fclose(f);
            return -1;
        }
        fclose(f);
    } else if (env_value && env_value[0]) {
        snprintf(out, CTL_SECRET_MAX, "%s", env_value);
    } else {
        return 1;
    }
    n = strcspn(out, "\r\n");
    out[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "fogatectl: the secret is empty\n");
        return -1;
    }
    return 0;
}

/* One admin API call; prints the answer (JSON or via `show`); returns the exit code. */
static int admin_call(const struct ctlopts *o, const char *method, const char *path,
                      void (*show)(json_t *doc), json_t **keep)
{
    char tok[CTL_SECRET_MAX], auth[CTL_SECRET_MAX + 32] = "", url[URL_MAX];
    char err[CTLHTTP_ERR_MAX], line[600];
    const char *hdrs[] = { auth, NULL };
    int s = ctl_secret(o->token_file, getenv("FOGATE_ADMIN_TOKEN"), tok), code = CTL_OK;
    struct ctlhttp_resp r;

    if (s < 0)
        return CTL_USAGE;
    if (s == 0)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", tok);
    explicit_bzero(tok, sizeof tok);
    snprintf(url, sizeof url, "%s/admin/api/%s", o->admin_url, path);
    struct ctlhttp_req rq = { .method = method, .url = url, .headers = auth[0] ? hdrs : NULL,
                              .timeout_s = 60 };
    if (ctlhttp_do(&rq, &r, err, sizeof err) < 0) {
        fprintf(stderr, "fogatectl: %s\n", err);
        code = CTL_UNREACHABLE;
    } else if (r.status < 200 || r.status > 299) {
        ctlhttp_error_line(&r, line, sizeof line);
        fprintf(stderr, "fogatectl: %s\n", line);
        code = ctlcode_http(r.status);
    } else {
        json_t *doc = json_loadb(r.body, r.len, 0, NULL);
        if (keep)
            *keep = json_incref(doc);
        else if (o->json || !show)
            printf("%s\n", r.body);
        else if (doc)
            show(doc);
        json_decref(doc);
    }
    explicit_bzero(auth, sizeof auth);
    ctlhttp_resp_free(&r);
    return code;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static long long now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void show_status(json_t *ov, json_t *ex)
{
    size_t i;
    json_t *e;
    long long now = json_integer_value(json_object_get(ex, "now_ms"));

    printf("environments:\n");
    json_array_foreach(json_object_get(ov, "environments"), i, e)
        printf("  %-16s token %s, expires in %lld s, gate %s\n", str(e, "environment"),
               json_is_true(json_object_get(e, "token_present")) ? "held" : "NONE",
               (long long)json_integer_value(json_object_get(e, "expires_in_s")),
               json_integer_value(json_object_get(e, "throttled_for_s")) > 0 ? "CLOSED"
                                                                              : "open");
    printf("jobs:\n");
    json_array_foreach(json_object_get(ov, "jobs"), i, e) {
        json_t *p = json_object_get(e, "paused");
        printf("  %-20s %-6s %-12s %s%s\n", str(e, "name"), str(e, "direction"),
               str(e, "environment"), json_is_object(p) ? "PAUSED by " : "running",
               json_is_object(p) ? str(p, "by") : "");
    }
    printf("exports waiting for their consumer: %zu\n",
           json_array_size(json_object_get(ex, "unconfirmed")));
    json_array_foreach(json_object_get(ex, "unconfirmed"), i, e) {
        long long age = (now ? now : now_ms()) -
                        json_integer_value(json_object_get(e, "last_dequeue_ms"));
        printf("  %s  %s  %s  %lld min%s\n", str(e, "id"), str(e, "client"), str(e, "state"),
               age / 60000, age >= 25 * 60000 ? "  RED" : age >= 15 * 60000 ? "  AMBER" : "");
    }
    printf("outbox (confirmed, ack to D365 pending): %zu\n",
           json_array_size(json_object_get(ex, "unacked")));
    json_array_foreach(json_object_get(ex, "unacked"), i, e)
        printf("  %s  confirmed by %s, %lld attempt(s)\n", str(e, "id"), str(e, "confirmed_by"),
               (long long)json_integer_value(json_object_get(e, "ob_attempts")));
    printf("instance: %s\n", json_is_true(json_object_get(json_object_get(ov, "instance"),
                                                           "draining"))
                                 ? "DRAINING"
                                 : "serving");
}

static int cmd_status(const struct ctlopts *o)
{
    json_t *ov = NULL, *ex = NULL;
    int code = admin_call(o, "GET", "overview", NULL, &ov);

    if (code == CTL_OK)
        code = admin_call(o, "GET", "exports", NULL, &ex);
    if (code == CTL_OK && o->json) {
        json_t *both = json_pack("{s:O, s:O}", "overview", ov, "exports", ex);
        char *t = json_dumps(both, JSON_COMPACT);
        printf("%s\n", t ? t : "{}");
        free(t);
        json_decref(both);
    } else if (code == CTL_OK) {
        show_status(ov, ex);
    }
    json_decref(ov);
    json_decref(ex);
    return code;
}

static void show_history(json_t *page)
{
    size_t i;
    json_t *r;

    json_array_foreach(json_object_get(page, "records"), i, r)
        printf("%s  %-20s %-6s %-22s %s  %s\n", str(r, "received_at")[0] ? str(r, "received_at")
                                                                        : str(r, "delivered_at"),
               str(r, "job"), str(r, "direction"), str(r, "status"), str(r, "id"),
               str(r, "file_name"));
    if (json_string_value(json_object_get(page, "next_cursor")))
        printf("more: --cursor is not needed; narrow with --since/--until or --limit\n");
}

static void add_param(char *q, size_t cap, const char *name, const char *value)
{
    char *esc;

    if (!value)
        return;
    esc = curl_easy_escape(NULL, value, 0);
    if (esc) {
        size_t n = strlen(q);
        snprintf(q + n, cap - n, "%s%s=%s", strchr(q, '?') ? "&" : "?", name, esc);
        curl_free(esc);
    }
}

static int cmd_history(const struct ctlopts *o)
{
    char path[URL_MAX] = "history";

    if (o->arg) {
        char *esc = curl_easy_escape(NULL, o->arg, 0);
        snprintf(path, sizeof path, "history/%s", esc ? esc : "");
        curl_free(esc);
        return admin_call(o, "GET", path, NULL, NULL);
    }
    add_param(path, sizeof path, "job", o->job);
    add_param(path, sizeof path, "status", o->status);
    add_param(path, sizeof path, "file", o->file);
    add_param(path, sizeof path, "since", o->since);
    add_param(path, sizeof path, "until", o->until);
    add_param(path, sizeof path, "limit", o->limit);
    return admin_call(o, "GET", path, show_history, NULL);
}

static int action(const struct ctlopts *o, const char *kind, const char *verb)
{
    char path[URL_MAX];
    char *esc;

    if (!o->arg) {
        fprintf(stderr, "fogatectl %s: which one? (see --help)\n", verb);
        return CTL_USAGE;
    }
    esc = curl_easy_escape(NULL, o->arg, 0);
    snprintf(path, sizeof path, "%s/%s/%s", kind, esc ? esc : "", verb);
    curl_free(esc);
    return admin_call(o, "POST", path, NULL, NULL);
}

static int cmd_pause(const struct ctlopts *o) { return action(o, "jobs", "pause"); }
static int cmd_resume(const struct ctlopts *o) { return action(o, "jobs", "resume"); }
static int cmd_retry(const struct ctlopts *o) { return action(o, "exports", "retry-ack"); }
static int cmd_release(const struct ctlopts *o) { return action(o, "exports", "release"); }
static int cmd_repoll(const struct ctlopts *o) { return action(o, "history", "repoll"); }
static int cmd_drain(const struct ctlopts *o) { return admin_call(o, "POST", "drain", NULL, NULL); }

static const struct command commands[] = {
    { "status", "status [--json]\n  The cluster: environments, jobs (paused?), exports "
      "waiting for their consumer\n  (AMBER after 15 min, RED after 25), the outbox, this "
      "instance.\n", cmd_status },
    { "history", "history [--job J] [--status S] [--file PART] [--since T] [--until T] "
      "[--limit N] [ID]\n  Records of every file, newest first (T: RFC 3339 UTC or ms); "
      "with ID one record\n  as JSON (statuses over time, errors, who took it).\n",
      cmd_history },
    { "pause", "pause JOB\n  Pauses JOB on every instance (within about a second): imports "
      "answer 503\n  job_paused and enqueue nothing; exports hand out nothing. Admin token.\n",
      cmd_pause },
    { "resume", "resume JOB\n  Resumes a paused job. Admin token.\n", cmd_resume },
    { "retry-ack", "retry-ack EXPORT_ID\n  Acks a confirmed export to D365 now (the outbox's "
      "next claim). Admin token.\n", cmd_retry },
    { "release", "release EXPORT_ID\n  Ends the delivery lease of an unconfirmed export: "
      "D365's next offer of it goes\n  to whichever consumer asks. Admin token.\n",
      cmd_release },
    { "repoll", "repoll RECORD_ID\n  Polls an import's status now. Admin token.\n",
      cmd_repoll },
    { "drain", "drain\n  Drains the instance behind --admin-url: /readyz 503 first, then "
      "it stops. Admin token.\n", cmd_drain },
    { "send", "send --job JOB [--name NAME] [--wait SECONDS | --no-wait] FILE\n  Enqueues "
      "FILE with Idempotency-Key sha256:<hex of its content> (sending the\n  same content "
      "again enqueues nothing) and waits (default 3600 s) for its final\n  status; prints "
      "\"<message id> <status>\"; the exit code says the status.\n", ctlxfer_send },
    { "next", "next --job JOB [--suffix .csv] DIR\n  Takes the next export, writes it to a "
      "temporary file in DIR, fsyncs it, renames it\n  to DIR/<message id><suffix>, fsyncs "
      "DIR, then confirms it; prints the path.\n  Exit 6 when nothing is waiting.\n",
      ctlxfer_next },
};

static void usage(FILE *to)
{
    fprintf(to, "usage: fogatectl [options] COMMAND [ARG]\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(to, "  %s", commands[i].usage);
    fprintf(to, "\n%s", common_help);
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && v[0] ? v : dflt;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        { "url", required_argument, NULL, 'u' }, { "admin-url", required_argument, NULL, 'a' },
        { "key-file", required_argument, NULL, 'k' },
        { "token-file", required_argument, NULL, 't' }, { "job", required_argument, NULL, 'j' },
        { "status", required_argument, NULL, 's' }, { "file", required_argument, NULL, 'f' },
        { "since", required_argument, NULL, 'S' }, { "until", required_argument, NULL, 'U' },
        { "limit", required_argument, NULL, 'l' }, { "name", required_argument, NULL, 'n' },
        { "suffix", required_argument, NULL, 'x' }, { "wait", required_argument, NULL, 'w' },
        { "no-wait", no_argument, NULL, 'W' }, { "json", no_argument, NULL, 'J' },
        { "help", no_argument, NULL, 'h' }, { 0 }
    };
    struct ctlopts o = { .url = env_or("FOGATE_URL", "http://127.0.0.1:8080"),
                         .admin_url = env_or("FOGATE_ADMIN_URL", "http://127.0.0.1:9091"),
                         .key_file = getenv("FOGATE_API_KEY_FILE"),
                         .token_file = getenv("FOGATE_ADMIN_TOKEN_FILE"), .wait_s = 3600 };
    bool help = false;
    int c, rc;

    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'u': o.url = optarg; break;
        case 'a': o.admin_url = optarg; break;
        case 'k': o.key_file = optarg; break;
        case 't': o.token_file = optarg; break;
        case 'j': o.job = optarg; break;
        case 's': o.status = optarg; break;
        case 'f': o.file = optarg; break;
        case 'S': o.since = optarg; break;
        case 'U': o.until = optarg; break;
        case 'l': o.limit = optarg; break;
        case 'n': o.name = optarg; break;
        case 'x': o.suffix = optarg; break;
        case 'w': o.wait_s = strtol(optarg, NULL, 10); break;
        case 'W': o.no_wait = true; break;
        case 'J': o.json = true; break;
        case 'h': help = true; break;
        default: usage(stderr); return CTL_USAGE;
        }
    }
    if (optind >= argc) {
        usage(help ? stdout : stderr);
        return help ? CTL_OK : CTL_USAGE;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[optind], commands[i].name) != 0)
            continue;
        if (help) {
            printf("usage: fogatectl %s\n%s", commands[i].usage, common_help);
            return CTL_OK;
        }
        if (argc - optind > 2) {
            fprintf(stderr, "fogatectl %s: one argument at most (see --help)\n", argv[optind]);
            return CTL_USAGE;
        }
        o.arg = argc - optind == 2 ? argv[optind + 1] : NULL;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = commands[i].run(&o);
        curl_global_cleanup();
        return rc;
    }
    fprintf(stderr, "fogatectl: no command '%s'\n", argv[optind]);
    usage(stderr);
    return CTL_USAGE;
}
