/* conf: load phases read -> parse -> shape check (confkeys) -> fill plain structs ->
 * cross-field validation (confcheck). Invariant: once conf_load returns, no JSON is left
 * and every field the header promises is set and valid. */
#define _GNU_SOURCE /* strptime, timegm */
#include "conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "confcheck.h"
#include "conferr.h"
#include "hex.h"
#include "confkeys.h"
#include "confpath.h"
#include "confredis.h"
#include "jsonpos.h"

#define CONF_FILE_MAX (1024 * 1024) /* a config file larger than this is a mistake */

struct fill {
    const char *basedir; /* borrowed; NULL = leave relative paths as they are */
    const char *creds_dir; /* borrowed: $CREDENTIALS_DIRECTORY, NULL if unset */
    bool oom;
    bool bad_date;       /* a client_secret_expires that is not YYYY-MM-DD */
    bool bad;            /* a path value was refused; f->err says which */
    struct conf_error *err;
};

/* ---- read and parse ---- */

static int read_file(const char *path, char **text, size_t *len, struct conf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return conferr_fail(err, "", "cannot open the config file: %s", strerror(errno));
    int rc = -1;
    char *buf = malloc(CONF_FILE_MAX + 1);
    if (!buf) {
        conferr_fail(err, "", "out of memory");
        goto out;
    }
    size_t n = fread(buf, 1, CONF_FILE_MAX + 1, f);
    if (ferror(f)) {
        conferr_fail(err, "", "cannot read the config file: %s", strerror(errno));
        goto out;
    }
    if (n > CONF_FILE_MAX) {
        conferr_fail(err, "", "the config file is larger than %d bytes", CONF_FILE_MAX);
        goto out;
    }
    *text = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

static json_t *parse(const char *text, size_t len, struct conf_error *err)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);

    if (!root) {
        conferr_fail(err, "", "invalid JSON: %s", je.text);
        err->line = je.line > 0 ? je.line : 0;
    }
    return root;
}

/* ---- fill: copy values out of the JSON into plain structs ---- */

static char *dup_opt(struct fill *f, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    char *copy = s ? strdup(s) : NULL;

    if (s && !copy)
        f->oom = true;
    return copy;
}

/* Like dup_opt, for a file path (confpath_expand: ${CREDENTIALS_DIRECTORY}, relative paths);
 * a bad one records the error at <section>.<key> and sets f->bad. */
static char *dup_path(struct fill *f, json_t *obj, const char *section, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    const char *why = NULL;
    char *copy = NULL;

    if (!s || f->bad)
        return NULL;
    if (confpath_expand(s, f->basedir, f->creds_dir, &copy, &why) == 0)
        return copy;
    if (!why) {
        f->oom = true;
        return NULL;
    }
    char path[CONF_ERR_PATH_MAX];
    conferr_pathf(path, sizeof path, "%s.%s", section, key);
    conferr_fail(f->err, path, "\"%s\": %s", s, why);
    f->bad = true;
    return NULL;
}

static long long get_int(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

static bool str_is(json_t *obj, const char *key, const char *value)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s && strcmp(s, value) == 0;
}

static int parse_port(const char *s, int *port)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* "1.2.3.4:80" or "[::1]:80" (the value of `key`) into *host (no brackets) and *port. */
static int fill_listen(const char *key, const char *listen, char **host_out, int *port,
                       struct conf_error *err)
{
    const char *colon = listen[0] == '[' ? strstr(listen, "]:") : strrchr(listen, ':');
    const char *host = listen + (listen[0] == '[');
    unsigned char addr[16];

    if (!colon || colon == host)
        return conferr_fail(err, key, "must be IP:PORT or [IPv6]:PORT, e.g. 127.0.0.1:8080");
    *host_out = strndup(host, (size_t)(colon - host));
    if (!*host_out)
        return conferr_fail(err, key, "out of memory");
    int family = listen[0] == '[' ? AF_INET6 : AF_INET;
    if (inet_pton(family, *host_out, addr) != 1)
        return conferr_fail(err, key,
                            "\"%s\" is not an IP%s address (host names are not accepted)",
                            *host_out, family == AF_INET6 ? "v6" : "v4");
    if (parse_port(colon + 1 + (listen[0] == '['), port) < 0)
        return conferr_fail(err, key, "the port must be a number from 1 to 65535");
    return 0;
}

/* "YYYY-MM-DD" into Unix seconds at 00:00 UTC of that day. */
static int parse_date(const char *s, long long *out)
{
    struct tm tm = { 0 };
    char *end = strptime(s, "%Y-%m-%d", &tm);

    if (!end || *end || strlen(s) != 10)
        return -1;
    *out = (long long)timegm(&tm);
    return *out > 0 ? 0 : -1;
}

static int fill_admin(struct fill *f, struct conf_admin *a, json_t *o)
{
    const char *listen = json_string_value(json_object_get(o, "listen"));

    a->token_file = dup_path(f, o, "admin", "token_file");
    a->drain_notice_ms = (unsigned)get_int(o, "drain_notice_ms");
    if (listen && listen[0])
        return fill_listen("admin.listen", listen, &a->listen_host, &a->listen_port, f->err);
    return 0;
}

static void fill_env(struct fill *f, struct conf_env *e, const char *name, json_t *o)
{
    json_t *cert = json_object_get(o, "client_certificate");
    json_t *mi = json_object_get(o, "managed_identity");
    char sec[CONF_ERR_PATH_MAX], cert_sec[CONF_ERR_PATH_MAX];

    conferr_pathf(sec, sizeof sec, "environments.%s", name);
    conferr_pathf(cert_sec, sizeof cert_sec, "environments.%s.client_certificate", name);
    e->name = strdup(name);
    e->base_url = dup_opt(f, o, "base_url");
    e->tenant = dup_opt(f, o, "tenant");
    e->client_id = dup_opt(f, o, "client_id");
    e->client_secret_file = dup_path(f, o, sec, "client_secret_file");
    e->client_secret_env = dup_opt(f, o, "client_secret_env");
    const char *expires = json_string_value(json_object_get(o, "client_secret_expires"));
    if (expires && parse_date(expires, &e->secret_expires) < 0)
        f->bad_date = true;
    if (cert) {
        e->cert_file = dup_path(f, cert, cert_sec, "cert_file");
        e->key_file = dup_path(f, cert, cert_sec, "key_file");
        e->cert_algorithm = str_is(cert, "algorithm", "RS256") ? CONF_ALG_RS256 : CONF_ALG_PS256;
    }
    e->client_assertion_file = dup_path(f, o, sec, "client_assertion_file");
    if (mi) {
        e->managed_identity = true;
        e->mi_client_id = dup_opt(f, mi, "client_id");
        e->mi_endpoint = dup_opt(f, mi, "endpoint");
    }
    e->token_version = str_is(o, "token_version", "v1") ? CONF_TOKEN_V1 : CONF_TOKEN_V2;
    e->token_endpoint = dup_opt(f, o, "token_endpoint");
    e->allow_http = json_is_true(json_object_get(o, "allow_http"));
    if (!e->name)
        f->oom = true;
}

static int fill_job(struct fill *f, struct conf_job *j, const char *name, json_t *o)
{
    j->name = strdup(name);
    j->env_name = dup_opt(f, o, "environment");
    j->activity_id_raw = dup_opt(f, o, "activity_id");
    j->entity = dup_opt(f, o, "entity");
    j->company = dup_opt(f, o, "company");
    j->project = dup_opt(f, o, "project");
    j->callback_url = dup_opt(f, o, "callback_url");
    j->direction = str_is(o, "direction", "export") ? CONF_DIR_EXPORT : CONF_DIR_IMPORT;
    if (!j->name) {
        f->oom = true;
        return 0;
    }
    if (!j->activity_id_raw) { /* a package job: confcheck requires project then */
        j->activity_id[0] = '\0';
        return 0;
    }
    if (guid_canonical(j->activity_id_raw, strlen(j->activity_id_raw), j->activity_id) < 0) {
        char path[CONF_ERR_PATH_MAX];
        conferr_pathf(path, sizeof path, "jobs.%s.activity_id", name);
        return conferr_fail(f->err, path, "\"%s\" is not a GUID (expected 8-4-4-4-12 hex digits, "
                            "e.g. 6d31e09f-0249-459f-94f0-aad9c2c47b64)", j->activity_id_raw);
    }
    return 0;
}

static int decode_sha256(const char *hex, unsigned char out[32])
{
    return hex_decode(hex, strlen(hex), out, 32);
}

static int fill_client(struct fill *f, struct conf_client *c, const char *name, json_t *o)
{
    json_t *jobs = json_object_get(o, "jobs"), *v;
    size_t i;

    c->name = strdup(name);
    c->job_names = calloc(json_array_size(jobs), sizeof *c->job_names);
    c->jobs = calloc(json_array_size(jobs), sizeof *c->jobs);
    if (!c->name || !c->job_names || !c->jobs) {
        f->oom = true;
        return 0;
    }
    json_array_foreach(jobs, i, v) {
        c->job_names[i] = strdup(json_string_value(v));
        c->n_jobs = i + 1;
        if (!c->job_names[i])
            f->oom = true;
    }
    if (decode_sha256(json_string_value(json_object_get(o, "api_key_sha256")),
                      c->api_key_sha256) < 0) {
        char path[CONF_ERR_PATH_MAX];
        conferr_pathf(path, sizeof path, "clients.%s.api_key_sha256", name);
        return conferr_fail(f->err, path, "must be exactly 64 hex digits (the SHA-256 of the "
                            "client's API key, e.g. from: printf %%s \"$KEY\" | sha256sum)");
    }
    return 0;
}

static void fill_sentinel(struct fill *f, struct conf_sentinel *s, json_t *o)
{
    json_t *addrs = json_object_get(o, "addresses");
    json_t *tls = json_object_get(o, "tls");

    if (!o)
        return;
    s->master_name = dup_opt(f, o, "master_name");
    s->username = dup_opt(f, o, "username");
    s->password_file = dup_path(f, o, "redis.sentinel", "password_file");
    s->password_env = dup_opt(f, o, "password_env");
    s->tls_set = tls != NULL;
    s->tls = json_is_true(tls);
    s->addrs = calloc(json_array_size(addrs) + 1, sizeof *s->addrs);
    if (!s->addrs) {
        f->oom = true;
        return;
    }
    /* host holds "host:port" as configured until confredis_check splits it */
    for (size_t i = 0; i < json_array_size(addrs); i++)
        if (!(s->addrs[s->n_addrs++].host = strdup(json_string_value(json_array_get(addrs, i)))))
            f->oom = true;
}

static void fill_redis(struct fill *f, struct conf_redis *r, json_t *o)
{
    json_t *tls = json_object_get(o, "tls");
    json_t *sentinel = json_object_get(o, "sentinel");

    r->url = dup_opt(f, o, "url");
    if (!r->url && !(r->url = strdup(sentinel ? "redis://" : "redis://127.0.0.1:6379")))
        f->oom = true;
    fill_sentinel(f, &r->sentinel, sentinel);
    r->username = dup_opt(f, o, "username");
    r->password_file = dup_path(f, o, "redis", "password_file");
    r->password_env = dup_opt(f, o, "password_env");
    if (tls) {
        r->ca_file = dup_path(f, tls, "redis.tls", "ca_file");
        r->server_name = dup_opt(f, tls, "server_name");
    }
    r->connect_timeout_ms = (unsigned)get_int(o, "connect_timeout_ms");
    r->command_timeout_ms = (unsigned)get_int(o, "command_timeout_ms");
}

static void fill_limits(struct conf_limits *l, json_t *o)
{
    l->max_header_bytes = (size_t)get_int(o, "max_header_bytes");
    l->max_headers = (unsigned)get_int(o, "max_headers");
    l->max_body_bytes = (size_t)get_int(o, "max_body_bytes");
    l->max_enqueue_bytes = (size_t)get_int(o, "max_enqueue_bytes");
    l->max_package_bytes = (size_t)get_int(o, "max_package_bytes");
    l->replay_body_bytes = (size_t)get_int(o, "replay_body_bytes");
    l->max_connections = (unsigned)get_int(o, "max_connections");
    l->max_connections_per_ip = (unsigned)get_int(o, "max_connections_per_ip");
}

static void fill_timeouts(struct conf_timeouts *t, json_t *o)
{
    t->request_head_ms = (unsigned)get_int(o, "request_head_ms");
    t->idle_ms = (unsigned)get_int(o, "idle_ms");
    t->upstream_connect_ms = (unsigned)get_int(o, "upstream_connect_ms");
    t->upstream_total_ms = (unsigned)get_int(o, "upstream_total_ms");
    t->upstream_first_byte_ms = (unsigned)get_int(o, "upstream_first_byte_ms");
    t->upstream_stall_ms = (unsigned)get_int(o, "upstream_stall_ms");
    t->import_first_byte_ms = (unsigned)get_int(o, "import_first_byte_ms");
    t->shutdown_grace_ms = (unsigned)get_int(o, "shutdown_grace_ms");
}

static void fill_tokens(struct fill *f, struct conf_tokens *t, json_t *o)
{
    t->cache_key_file = dup_path(f, o, "tokens", "cache_key_file");
    t->refresh_percent = (unsigned)get_int(o, "refresh_percent");
    t->safety_margin_s = (unsigned)get_int(o, "safety_margin_s");
    t->retry_min_ms = (unsigned)get_int(o, "retry_min_ms");
    t->retry_max_ms = (unsigned)get_int(o, "retry_max_ms");
    t->request_timeout_ms = (unsigned)get_int(o, "request_timeout_ms");
}

static void fill_ledger(struct conf_ledger *l, json_t *o)
{
    l->enabled = json_is_true(json_object_get(o, "enabled"));
    l->fail_open = json_is_true(json_object_get(o, "fail_open"));
    l->lease_s = (unsigned)get_int(o, "lease_s");
    l->max_skips = (unsigned)get_int(o, "max_skips");
    l->outbox_interval_ms = (unsigned)get_int(o, "outbox_interval_ms");
    l->outbox_lease_ms = (unsigned)get_int(o, "outbox_lease_ms");
    l->ack_retry_min_ms = (unsigned)get_int(o, "ack_retry_min_ms");
    l->ack_retry_max_ms = (unsigned)get_int(o, "ack_retry_max_ms");
    l->stats_interval_ms = (unsigned)get_int(o, "stats_interval_ms");
    l->warn_unacked_s = (unsigned)get_int(o, "warn_unacked_s");
    l->retry_after_s = (unsigned)get_int(o, "retry_after_s");
}

static void fill_packages(struct conf_packages *p, json_t *o)
{
    p->shared = json_is_true(json_object_get(o, "shared"));
    p->lock_lease_ms = (unsigned)get_int(o, "lock_lease_ms");
    p->lock_wait_ms = (unsigned)get_int(o, "lock_wait_ms");
    p->block_bytes = (size_t)get_int(o, "block_bytes");
}

static void fill_history(struct conf_history *h, json_t *o)
{
    h->enabled = json_is_true(json_object_get(o, "enabled"));
    h->retention_days = (unsigned)get_int(o, "retention_days");
    h->max_records = (unsigned)get_int(o, "max_records");
    h->follow_hours = (unsigned)get_int(o, "follow_hours");
    h->follow_min_ms = (unsigned)get_int(o, "follow_min_ms");
    h->follow_max_ms = (unsigned)get_int(o, "follow_max_ms");
    h->write_timeout_ms = (unsigned)get_int(o, "write_timeout_ms");
    h->max_page = (unsigned)get_int(o, "max_page");
}

static void fill_receipts(struct fill *f, struct conf_receipts *r, json_t *o)
{
    r->key_file = dup_path(f, o, "receipts", "key_file");
    r->allow_http = json_is_true(json_object_get(o, "allow_http"));
    r->retry_min_ms = (unsigned)get_int(o, "retry_min_ms");
    r->retry_max_ms = (unsigned)get_int(o, "retry_max_ms");
    r->max_attempts = (unsigned)get_int(o, "max_attempts");
    r->timeout_ms = (unsigned)get_int(o, "timeout_ms");
    r->unconfirmed_s = (unsigned)get_int(o, "unconfirmed_s");
    r->interval_ms = (unsigned)get_int(o, "interval_ms");
}

static void fill_budget(struct conf_budget *b, json_t *o)
{
    b->enabled = json_is_true(json_object_get(o, "enabled"));
    b->shared = json_is_true(json_object_get(o, "shared"));
    b->concurrent = (unsigned)get_int(o, "concurrent");
    b->requests = (unsigned)get_int(o, "requests");
    b->window_ms = (unsigned)get_int(o, "window_ms");
    b->wait_ms = (unsigned)get_int(o, "wait_ms");
    b->queue_per_job = (unsigned)get_int(o, "queue_per_job");
    b->instances = (unsigned)get_int(o, "instances");
    b->lease_ms = (unsigned)get_int(o, "lease_ms");
    b->gate_refresh_ms = (unsigned)get_int(o, "gate_refresh_ms");
    b->poll_ms = (unsigned)get_int(o, "poll_ms");
    b->redis_timeout_ms = (unsigned)get_int(o, "redis_timeout_ms");
}

static int fill_maps(struct fill *f, struct conf *conf, json_t *root)
{
    json_t *envs = json_object_get(root, "environments");
    json_t *jobs = json_object_get(root, "jobs");
    json_t *clients = json_object_get(root, "clients");
    const char *name;
    json_t *v;

    conf->envs = calloc(json_object_size(envs) + 1, sizeof *conf->envs);
    conf->jobs = calloc(json_object_size(jobs) + 1, sizeof *conf->jobs);
    conf->clients = calloc(json_object_size(clients) + 1, sizeof *conf->clients);
    if (!conf->envs || !conf->jobs || !conf->clients)
        return conferr_fail(f->err, "", "out of memory");
    json_object_foreach(envs, name, v)
        fill_env(f, &conf->envs[conf->n_envs++], name, v);
    if (f->bad)
        return -1;
    json_object_foreach(jobs, name, v)
        if (fill_job(f, &conf->jobs[conf->n_jobs++], name, v) < 0)
            return -1;
    json_object_foreach(clients, name, v)
        if (fill_client(f, &conf->clients[conf->n_clients++], name, v) < 0)
            return -1;
    return 0;
}

/* The own client unless the config names libcurl (the key's choices are checked before). */
static bool is_native(json_t *o)
{
    const char *client = json_string_value(json_object_get(o, "client"));

    return !client || strcmp(client, "curl") != 0;
}

static int fill(struct fill *f, struct conf *conf, json_t *root)
{
    enum log_level lvl = LOG_LVL_INFO;

    log_level_parse(json_string_value(json_object_get(root, "log_level")), &lvl);
    conf->log_level = lvl;
    json_t *workers = json_object_get(root, "workers");
    conf->workers = json_is_integer(workers) ? (unsigned)json_integer_value(workers) : 0;
    conf->public_base_url = dup_opt(f, root, "public_base_url");
    if (fill_listen("listen", json_string_value(json_object_get(root, "listen")),
                    &conf->listen_host, &conf->listen_port, f->err) < 0)
        return -1;
    if (fill_maps(f, conf, root) < 0)
        return -1;
    fill_redis(f, &conf->redis, json_object_get(root, "redis"));
    fill_limits(&conf->limits, json_object_get(root, "limits"));
    fill_timeouts(&conf->timeouts, json_object_get(root, "timeouts"));
    conf->upstream.native = is_native(json_object_get(root, "upstream"));
    fill_tokens(f, &conf->tokens, json_object_get(root, "tokens"));
    fill_ledger(&conf->ledger, json_object_get(root, "ledger"));
    fill_packages(&conf->packages, json_object_get(root, "packages"));
    if (fill_admin(f, &conf->admin, json_object_get(root, "admin")) < 0)
        return -1;
    if (f->bad_date)
        return conferr_fail(f->err, "environments", "a client_secret_expires is not a date "
                            "as YYYY-MM-DD (the secret's expiry shown in Entra)");
    fill_history(&conf->history, json_object_get(root, "history"));
    fill_receipts(f, &conf->receipts, json_object_get(root, "receipts"));
    fill_budget(&conf->d365_budget, json_object_get(root, "d365_budget"));
    if (f->bad)
        return -1;
    if (f->oom)
        return conferr_fail(f->err, "", "out of memory");
    return 0;
}

/* ---- load ---- */

/* Turns err->message into "<name>:<line>: <path>: <message>". */
static void finish_error(struct conf_error *err, const char *name, const char *text, size_t len)
{
    char msg[CONF_ERR_MSG_MAX];
    char line[24] = "";

    if (err->path[0] && !err->line)
        err->line = jsonpos_line(text, len, err->path);
    if (err->line > 0)
        snprintf(line, sizeof line, ":%d", err->line);
    conferr_pathf(msg, sizeof msg, "%s%s: %s%s%s", name, line, err->path, err->path[0] ? ": " : "",
             err->message);
    memcpy(err->message, msg, sizeof msg);
}

static struct conf *load_text(const char *text, size_t len, const char *name,
                              const char *basedir, struct conf_error *err)
{
    struct fill f = { .basedir = basedir, .creds_dir = getenv(CONFPATH_CREDS_VAR), .err = err };
    struct conf *conf = NULL;
    json_t *root = NULL;

    memset(err, 0, sizeof *err);
    root = parse(text, len, err);

    if (!root || confkeys_check(root, err) < 0)
        goto fail;
    conf = calloc(1, sizeof *conf);
    if (!conf || !(conf->path = strdup(name))) {
        conferr_fail(err, "", "out of memory");
        goto fail;
    }
    if (fill(&f, conf, root) < 0)
        goto fail;
    json_decref(root);
    root = NULL;
    if (confcheck_run(conf, err) < 0 || confredis_check(&conf->redis, err) < 0)
        goto fail;
    return conf;
fail:
    json_decref(root);
    conf_free(conf);
    finish_error(err, name, text, len);
    return NULL;
}

struct conf *conf_load_buffer(const char *text, size_t len, const char *name,
                              struct conf_error *err)
{
    struct conf_error ignored;

    return load_text(text, len, name, NULL, err ? err : &ignored);
}

struct conf *conf_load(const char *path, struct conf_error *err)
{
    struct conf_error ignored;
    char *text = NULL, *dir = NULL;
    size_t len = 0;
    struct conf *conf = NULL;

    err = err ? err : &ignored;
    memset(err, 0, sizeof *err);
    if (read_file(path, &text, &len, err) < 0) {
        finish_error(err, path, "", 0);
        goto out;
    }
    const char *slash = strrchr(path, '/');
    dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    if (!dir) {
        conferr_fail(err, "", "out of memory");
        finish_error(err, path, "", 0);
        goto out;
    }
    conf = load_text(text, len, path, dir, err);
out:
    free(dir);
    free(text);
    return conf;
}

/* ---- free ---- */

static void env_cleanup(struct conf_env *e)
{
    free(e->name);
    free(e->base_url);
    free(e->resource);
    free(e->tenant);
    free(e->client_id);
    free(e->client_secret_file);
    free(e->client_secret_env);
    free(e->cert_file);
    free(e->key_file);
    free(e->client_assertion_file);
    free(e->mi_client_id);
    free(e->mi_endpoint);
    free(e->token_endpoint);
}

static void job_cleanup(struct conf_job *j)
{
    free(j->name);
    free(j->env_name);
    free(j->activity_id_raw);
    free(j->project);
    free(j->callback_url);
    free(j->entity);
    free(j->company);
}

static void client_cleanup(struct conf_client *c)
{
    for (size_t i = 0; i < c->n_jobs; i++)
        free(c->job_names[i]);
    free(c->job_names);
    free(c->jobs);
    free(c->name);
}

static void redis_cleanup(struct conf_redis *r)
{
    free(r->url);
    free(r->host);
    free(r->unix_path);
    free(r->username);
    free(r->password_file);
    free(r->password_env);
    free(r->ca_file);
    free(r->server_name);
    for (size_t i = 0; i < r->sentinel.n_addrs; i++)
        free(r->sentinel.addrs[i].host);
    free(r->sentinel.addrs);
    free(r->sentinel.master_name);
    free(r->sentinel.username);
    free(r->sentinel.password_file);
    free(r->sentinel.password_env);
}

void conf_free(struct conf *conf)
{
    if (!conf)
        return;
    for (size_t i = 0; i < conf->n_envs; i++)
        env_cleanup(&conf->envs[i]);
    for (size_t i = 0; i < conf->n_jobs; i++)
        job_cleanup(&conf->jobs[i]);
    for (size_t i = 0; i < conf->n_clients; i++)
        client_cleanup(&conf->clients[i]);
    free(conf->envs);
    free(conf->jobs);
    free(conf->clients);
    redis_cleanup(&conf->redis);
    free(conf->tokens.cache_key_file);
    free(conf->receipts.key_file);
    free(conf->path);
    free(conf->listen_host);
    free(conf->admin.listen_host);
    free(conf->admin.token_file);
    free(conf->public_base_url);
    free(conf);
}

/* ---- lookups ---- */

const struct conf_env *conf_env_find(const struct conf *conf, const char *name)
{
    for (size_t i = 0; conf && name && i < conf->n_envs; i++)
        if (strcmp(conf->envs[i].name, name) == 0)
            return &conf->envs[i];
    return NULL;
}

const struct conf_job *conf_job_find(const struct conf *conf, const char *name)
{
    for (size_t i = 0; conf && name && i < conf->n_jobs; i++)
        if (strcmp(conf->jobs[i].name, name) == 0)
            return &conf->jobs[i];
    return NULL;
}

const struct conf_client *conf_client_find(const struct conf *conf, const char *name)
{
    for (size_t i = 0; conf && name && i < conf->n_clients; i++)
        if (strcmp(conf->clients[i].name, name) == 0)
            return &conf->clients[i];
    return NULL;
}

const struct conf_job *conf_job_find_by_activity(const struct conf *conf,
                                                 const char *activity_id, size_t len)
{
    char canon[GUID_CANON_SIZE];

    if (!conf || guid_canonical(activity_id, len, canon) < 0)
        return NULL;
    for (size_t i = 0; i < conf->n_jobs; i++)
        if (memcmp(conf->jobs[i].activity_id, canon, GUID_CANON_SIZE) == 0)
            return &conf->jobs[i];
    return NULL;
}

/* Compares every byte whatever differs, so the time taken does not reveal the hash. */
static bool same_hash(const unsigned char *a, const unsigned char *b)
{
    unsigned char diff = 0;

    for (size_t i = 0; i < 32; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

const struct conf_client *conf_client_find_by_key(const struct conf *conf,
                                                  const unsigned char sha256[32])
{
    const struct conf_client *found = NULL;

    for (size_t i = 0; conf && sha256 && i < conf->n_clients; i++)
        if (same_hash(conf->clients[i].api_key_sha256, sha256) && !found)
            found = &conf->clients[i];
    return found;
}

bool conf_client_allows(const struct conf_client *client, const struct conf_job *job)
{
    for (size_t i = 0; client && job && i < client->n_jobs; i++)
        if (client->jobs[i] == job)
            return true;
    return false;
}

int conf_print_reference(FILE *out)
{
    return confkeys_print_reference(out);
}
