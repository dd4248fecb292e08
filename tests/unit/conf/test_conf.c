/* Unit tests for the config loader: one data file per error class in conf-cases/, the
 * example config, defaults and derived values, Redis URLs, lookups, and the generated
 * CONFIG.md being up to date. Data files are found next to this source file. */
#include "check.h"
#include "conf.h"
#include "confcheck.h"
#include "jsonpos.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char cases_dir[PATH_MAX];
static char src_dir[PATH_MAX];

static void find_dirs(void)
{
    char here[PATH_MAX - 64];

    snprintf(here, sizeof here, "%s", __FILE__); /* CMake compiles with absolute paths */
    *strrchr(here, '/') = '\0';
    snprintf(cases_dir, sizeof cases_dir, "%s/conf-cases", here);
    snprintf(src_dir, sizeof src_dir, "%s/../../..", here);
}

static struct conf *load_case(const char *file, struct conf_error *err)
{
    char path[PATH_MAX + 64];

    snprintf(path, sizeof path, "%s/%s", cases_dir, file);
    return conf_load(path, err);
}

/* ---- every error class: file, JSON path, line, words of the message ---- */

struct error_case {
    const char *file;
    const char *path;
    int line;
    const char *needle;
};

static const struct error_case error_cases[] = {
    { "unknown-key-deep.json", "environments.test.client_certificate.algoritm", 12,
      "unknown key (known keys here: cert_file, key_file, algorithm)" },
    { "wrong-type.json", "limits.max_headers", 19, "must be an integer, not a string" },
    { "missing-required.json", "jobs.groups.activity_id", 13, "required key is missing" },
    { "duplicate-key.json", "", 8, "duplicate object key" },
    { "syntax-error.json", "", 17, "invalid JSON" },
    { "not-an-object.json", "", 0, "must hold one JSON object, not an array" },
    { "job-missing-env.json", "jobs.groups.environment", 14,
      "no environment named \"production\" (defined: test)" },
    { "client-missing-job.json", "clients.shop.jobs[1]", 22,
      "no job named \"orders\" (defined: groups)" },
    { "bad-url.json", "environments.test.base_url", 6, "must not have a query" },
    { "http-without-allow.json", "environments.test.base_url", 6,
      "must use https:// (http:// only with \"allow_http\": true" },
    { "public-http.json", "public_base_url", 3, "must use https://" },
    { "callback-http.json", "jobs.groups.callback_url", 17,
      "must start with https:// (http only with receipts.allow_http" },
    { "callback-no-history.json", "jobs.groups.callback_url", 17,
      "receipts need history.enabled and receipts.key_file" },
    { "two-credentials.json", "environments.test", 5, "more than one credential" },
    { "no-credential.json", "environments.test", 5, "no credential" },
    { "secret-file-missing.json", "environments.test.client_secret_file", 9,
      "secrets/missing.secret: No such file or directory" },
    { "secret-file-empty.json", "environments.test.client_secret_file", 9,
      "secrets/empty.secret is empty" },
    { "secret-file-dir.json", "environments.test.client_secret_file", 9,
      "secrets is not a regular file" },
    { "secret-env-unset.json", "environments.test.client_secret_env", 9,
      "environment variable FOGATE_TEST_UNSET_SECRET is not set" },
    { "redis-password.json", "redis.url", 19, "must not contain a password" },
    { "bad-guid.json", "jobs.groups.activity_id", 15, "is not a GUID" },
    { "duplicate-activity.json", "jobs.groups-again.activity_id", 20,
      "same activity ID as jobs.groups" },
    { "bad-choice.json", "jobs.groups.direction", 16, "must be one of \"import\", \"export\"" },
    { "bad-upstream-client.json", "upstream.client", 19, "must be one of \"curl\", \"native\"" },
    { "out-of-range.json", "limits.max_connections", 19, "must be between 1 and 1000000, not 0" },
    { "bad-name.json", "environments", 4, "bad name \"test.eu\"" },
    { "bad-listen.json", "listen", 2, "\"localhost\" is not an IPv4 address" },
    { "bad-api-key.json", "clients.shop.api_key_sha256", 21, "must be exactly 64 hex digits" },
    { "duplicate-api-key.json", "clients.shop2.api_key_sha256", 25, "same API key as clients.shop" },
    { "multi-tenant.json", "environments.test.tenant", 7, "\"organizations\" is not a tenant" },
    { "bad-client-id.json", "environments.test.client_id", 8, "\"fogate-uat\" is not a GUID" },
    { "string-with-newline.json", "jobs.groups.entity", 17, "must not contain control characters" },
    { "tokens-retry-order.json", "tokens.retry_min_ms", 20, "must not exceed tokens.retry_max_ms" },
    { "mi-bad-client-id.json", "environments.test.managed_identity.client_id", 10,
      "\"fogate-identity\" is not a GUID (the client ID of the user-assigned managed identity)" },
    { "mi-http-endpoint.json", "environments.test.managed_identity.endpoint", 10,
      "http:// only to a link-local (169.254.x.x) or loopback host" },
    { "assertion-and-mi.json", "environments.test", 5, "more than one credential" },
};

/* The secretless kinds: nothing to read at load time; identity fields resolved. */
static void test_secretless_kinds(void)
{
    struct conf_error err;
    struct conf *c = load_case("assertion-file-ok.json", &err);

    CHECK(c != NULL); /* the projected file need not exist yet */
    if (c) {
        CHECK(c->envs[0].credential == CONF_CRED_ASSERTION_FILE);
        CHECK(strstr(c->envs[0].client_assertion_file, "/secrets/not-yet-projected.jwt") != NULL);
        CHECK(c->envs[0].client_assertion_file[0] == '/'); /* relative to the config file */
        CHECK(!c->envs[0].managed_identity && !c->envs[0].mi_endpoint);
    }
    conf_free(c);
    c = load_case("mi-ok.json", &err);
    CHECK(c != NULL);
    if (c) {
        CHECK(c->envs[0].credential == CONF_CRED_MANAGED_IDENTITY);
        CHECK_STR(c->envs[0].mi_client_id, "0d6b5a4c-2222-4333-8444-00000000a51d");
        CHECK_STR(c->envs[0].mi_endpoint, "http://169.254.169.254/metadata/identity/oauth2/token");
    }
    conf_free(c);
    c = load_case("mi-system-ok.json", &err);
    CHECK(c != NULL);
    if (c) {
        CHECK(c->envs[0].managed_identity && c->envs[0].mi_client_id == NULL);
        CHECK_STR(c->envs[0].mi_endpoint, "http://169.254.169.254/metadata/identity/oauth2/token");
        CHECK_STR(c->envs[0].resource, "https://contoso-uat.sandbox.operations.dynamics.com");
    }
    conf_free(c);
}

static void test_error_cases(void)
{
    for (size_t i = 0; i < sizeof error_cases / sizeof error_cases[0]; i++) {
        const struct error_case *c = &error_cases[i];
        struct conf_error err;
        char prefix[PATH_MAX + 400];

        struct conf *conf = load_case(c->file, &err);
        CHECK(conf == NULL);
        CHECK_STR(err.path, c->path);
        if (err.line != c->line)
            fprintf(stderr, "%s: line %d, expected %d\n", c->file, err.line, c->line);
        CHECK(err.line == c->line);
        if (!strstr(err.message, c->needle))
            fprintf(stderr, "%s: message \"%s\" lacks \"%s\"\n", c->file, err.message, c->needle);
        CHECK(strstr(err.message, c->needle) != NULL);
        /* "<file>:<line>: <path>: ..." so an operator can jump to it */
        if (c->line)
            snprintf(prefix, sizeof prefix, "%s/%s:%d: %s%s", cases_dir, c->file, c->line, c->path,
                     c->path[0] ? ": " : "");
        else
            snprintf(prefix, sizeof prefix, "%s/%s: ", cases_dir, c->file);
        CHECK(strncmp(err.message, prefix, strlen(prefix)) == 0);
        conf_free(conf);
    }
}

static void test_no_secret_in_errors(void)
{
    struct conf_error err;

    CHECK(load_case("redis-password.json", &err) == NULL);
    CHECK(strstr(err.message, "hunter2") == NULL);
    setenv("FOGATE_TEST_SECRET", "", 1);
    CHECK(load_case("valid-minimal.json", &err) == NULL);
    CHECK(strstr(err.message, "FOGATE_TEST_SECRET is empty") != NULL);
    setenv("FOGATE_TEST_SECRET", "s3cr3t-value", 1);
    CHECK(load_case("two-credentials.json", &err) == NULL);
    CHECK(strstr(err.message, "s3cr3t-value") == NULL);
    CHECK(strstr(err.message, "not-a-real-secret") == NULL);
}

/* ---- valid files: defaults, derived values ---- */

static void test_defaults_and_derived(void)
{
    struct conf_error err;
    struct conf *conf = load_case("valid-minimal.json", &err);

    CHECK(conf != NULL);
    if (!conf) {
        fprintf(stderr, "%s\n", err.message);
        return;
    }
    CHECK_STR(conf->listen_host, "127.0.0.1");
    CHECK(conf->listen_port == 8080);
    CHECK_STR(conf->public_base_url, "https://gw.example.com");
    CHECK(conf->log_level == LOG_LVL_INFO);
    CHECK(conf->n_envs == 1 && conf->n_jobs == 1 && conf->n_clients == 1);
    const struct conf_env *e = conf_env_find(conf, "test");
    CHECK(e != NULL);
    CHECK_STR(e->base_url, "https://Contoso-UAT.Sandbox.Operations.Dynamics.com");
    CHECK_STR(e->resource, "https://contoso-uat.sandbox.operations.dynamics.com");
    CHECK_STR(e->client_id, "de98fcb1-273a-4488-a307-0c070a259f1c");
    CHECK(e->credential == CONF_CRED_SECRET_ENV);
    CHECK_STR(e->client_secret_env, "FOGATE_TEST_SECRET");
    CHECK(e->client_secret_file == NULL && e->cert_file == NULL);
    CHECK(e->token_version == CONF_TOKEN_V2);
    CHECK_STR(e->token_endpoint,
              "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
    CHECK(!e->allow_http);
    const struct conf_job *j = conf_job_find(conf, "groups");
    CHECK(j != NULL && j->env == e);
    CHECK_STR(j->activity_id_raw, "%7B67699FD4-17A0-4F48-807E-0CA2542710A7%7D");
    CHECK_STR(j->activity_id, "67699fd4-17a0-4f48-807e-0ca2542710a7");
    CHECK(j->entity == NULL && j->company == NULL);
    CHECK(j->direction == CONF_DIR_IMPORT);
    const struct conf_client *c = conf_client_find(conf, "shop");
    CHECK(c != NULL && c->n_jobs == 1 && c->jobs[0] == j);
    CHECK(c->api_key_sha256[0] == 0x12 && c->api_key_sha256[31] == 0x3b);
    /* the optional sections, all from defaults */
    CHECK_STR(conf->redis.url, "redis://127.0.0.1:6379");
    CHECK_STR(conf->redis.host, "127.0.0.1");
    CHECK(conf->redis.port == 6379 && conf->redis.db == 0 && !conf->redis.tls);
    CHECK(conf->redis.unix_path == NULL && conf->redis.username == NULL);
    CHECK(conf->redis.password_source == CONF_PASSWORD_NONE);
    CHECK(conf->redis.connect_timeout_ms == 2000 && conf->redis.command_timeout_ms == 2000);
    CHECK(conf->limits.max_header_bytes == 16384 && conf->limits.max_headers == 100);
    CHECK(conf->limits.max_body_bytes == 1048576);
    CHECK(conf->limits.max_enqueue_bytes == 104857600);
    CHECK(conf->limits.max_package_bytes == 2147483648ULL);
    CHECK(conf->limits.max_connections == 1024);
    CHECK(conf->timeouts.request_head_ms == 10000 && conf->timeouts.idle_ms == 60000);
    CHECK(conf->timeouts.upstream_connect_ms == 10000);
    CHECK(conf->timeouts.upstream_total_ms == 3600000);
    CHECK(conf->timeouts.shutdown_grace_ms == 30000);
    conf_free(conf);
}

static void test_http_allowed_and_v1(void)
{
    struct conf_error err;
    struct conf *conf = load_case("http-with-allow.json", &err);

    CHECK(conf != NULL);
    if (!conf)
        return;
    const struct conf_env *e = &conf->envs[0];
    CHECK(e->allow_http);
    CHECK_STR(e->resource, "http://127.0.0.1:9");
    CHECK(e->token_version == CONF_TOKEN_V1);
    CHECK_STR(e->token_endpoint, "http://127.0.0.1:9/test-tenant/oauth2/token");
    conf_free(conf);
}

static void test_secret_file_relative(void)
{
    struct conf_error err;
    char want[PATH_MAX + 64];
    struct conf *conf = load_case("secret-file-ok.json", &err);

    CHECK(conf != NULL);
    if (!conf)
        return;
    snprintf(want, sizeof want, "%s/secrets/test.secret", cases_dir);
    CHECK(conf->envs[0].credential == CONF_CRED_SECRET_FILE);
    CHECK_STR(conf->envs[0].client_secret_file, want);
    conf_free(conf);
}

/* ---- the example config, installed in a scratch directory with its files ---- */

static const char *const example_files[] = {
    "certs/fogate-prod.crt", "certs/fogate-prod.key", "secrets/fogate-uat.secret",
    "certs/contoso-internal-ca.pem", NULL,
};

static int install_example(const char *dir)
{
    char src[PATH_MAX + 64], dst[PATH_MAX + 64], cmd[3 * PATH_MAX];

    snprintf(src, sizeof src, "%s/conf/fogate.example.json", src_dir);
    snprintf(dst, sizeof dst, "%s/fogate.json", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/certs' '%s/secrets' && cp '%s' '%s'", dir, dir, src, dst);
    if (system(cmd) != 0)
        return -1;
    for (const char *const *f = example_files; *f; f++) {
        snprintf(dst, sizeof dst, "%s/%s", dir, *f);
        FILE *fp = fopen(dst, "w");
        if (!fp)
            return -1;
        fputs("placeholder, not a real key\n", fp);
        fclose(fp);
    }
    return 0;
}

static void check_example(const struct conf *conf, const char *dir)
{
    char want[PATH_MAX + 64];
    unsigned char webshop_key[32] = { 0x15, 0xcc, 0xb0, 0xa2, 0xd3, 0x17, 0xee, 0xa6,
                                      0x74, 0xb2, 0x86, 0xe5, 0xdb, 0x62, 0x07, 0x36,
                                      0x76, 0xd6, 0x11, 0x38, 0x80, 0x13, 0x4f, 0xa9,
                                      0xf4, 0xa1, 0x21, 0x78, 0x13, 0xd7, 0xb9, 0xab };

    CHECK(conf->n_envs == 2 && conf->n_jobs == 4 && conf->n_clients == 3);
    CHECK(conf->workers == 0); /* "auto" */
    const struct conf_env *prod = conf_env_find(conf, "prod");
    CHECK(prod && prod->credential == CONF_CRED_CERTIFICATE);
    CHECK(prod && prod->cert_algorithm == CONF_ALG_PS256);
    snprintf(want, sizeof want, "%s/certs/fogate-prod.key", dir);
    CHECK_STR(prod ? prod->key_file : NULL, want);
    CHECK_STR(prod ? prod->resource : NULL, "https://contoso.operations.dynamics.com");
    CHECK(conf_env_find(conf, "uat")->credential == CONF_CRED_SECRET_FILE);
    CHECK(conf->redis.tls && conf->redis.port == 6380 && conf->redis.db == 0);
    CHECK_STR(conf->redis.host, "redis.internal.contoso.com");
    CHECK_STR(conf->redis.server_name, "redis.internal.contoso.com");
    CHECK_STR(conf->redis.username, "fogate");
    CHECK(conf->redis.password_source == CONF_PASSWORD_ENV);
    /* lookups */
    const struct conf_job *groups = conf_job_find(conf, "customer-groups-import");
    const char *spellings[] = { "67699fd4-17a0-4f48-807e-0ca2542710a7",
                                "{67699FD4-17A0-4F48-807E-0CA2542710A7}",
                                "%7b67699fd4-17A0-4f48-807e-0ca2542710a7%7D" };
    for (size_t i = 0; i < 3; i++)
        CHECK(conf_job_find_by_activity(conf, spellings[i], strlen(spellings[i])) == groups);
    CHECK(conf_job_find_by_activity(conf, "67699fd4-17a0-4f48-807e-0ca2542710a8", 36) == NULL);
    CHECK(conf_job_find_by_activity(conf, "67699fd4", 8) == NULL);
    const struct conf_client *shop = conf_client_find_by_key(conf, webshop_key);
    CHECK(shop == conf_client_find(conf, "webshop"));
    webshop_key[31] ^= 1;
    CHECK(conf_client_find_by_key(conf, webshop_key) == NULL);
    CHECK(conf_client_allows(shop, groups));
    CHECK(!conf_client_allows(shop, conf_job_find(conf, "vendor-invoices-import")));
    CHECK(!conf_client_allows(conf_client_find(conf, "qa"), groups));
    CHECK(conf_job_find(conf, "nope") == NULL && conf_client_find(conf, "nope") == NULL);
}

static void test_example(void)
{
    char dir[] = "/tmp/test_conf.XXXXXX", path[sizeof dir + 32], cmd[sizeof dir + 32];
    struct conf_error err;

    CHECK(mkdtemp(dir) != NULL);
    CHECK(install_example(dir) == 0);
    snprintf(path, sizeof path, "%s/fogate.json", dir);
    setenv("FOGATE_REDIS_PASSWORD", "example-only", 1);
    struct conf *conf = conf_load(path, &err);
    CHECK(conf != NULL);
    if (conf)
        check_example(conf, dir);
    else
        fprintf(stderr, "example: %s\n", err.message);
    conf_free(conf);
    /* and the example really depends on what it names */
    unsetenv("FOGATE_REDIS_PASSWORD");
    CHECK(conf_load(path, &err) == NULL);
    CHECK_STR(err.path, "redis.password_env");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}

/* ---- configs built in memory from a template ---- */

static const char template[] =
    "{\"listen\": \"%s\", \"public_base_url\": \"%s\",\n"
    " \"environments\": {\"e\": {\"base_url\": \"%s\", \"tenant\": \"t.example\",\n"
    "   \"client_id\": \"532a7a3b-4cfe-44de-b694-7a36916c3ae7\","
    " \"client_secret_env\": \"FOGATE_TEST_SECRET\"}},\n"
    " \"jobs\": {}, \"clients\": {}, \"redis\": %s}\n";

static struct conf *load_parts(const char *listen, const char *pub, const char *base,
                               const char *redis, struct conf_error *err)
{
    char text[2048];

    snprintf(text, sizeof text, template, listen, pub, base, redis);
    return conf_load_buffer(text, strlen(text), "mem.json", err);
}

static struct conf *load_redis(const char *redis, struct conf_error *err)
{
    return load_parts("127.0.0.1:1", "https://gw.example", "https://d.example", redis, err);
}

static void test_redis(void)
{
    struct conf_error err;
    struct conf *c;

    c = load_redis("{\"url\": \"redis://[::1]:7000/3\", \"username\": \"gw\","
                   " \"password_env\": \"FOGATE_TEST_SECRET\"}", &err);
    CHECK(c && !c->redis.tls && c->redis.port == 7000 && c->redis.db == 3);
    CHECK_STR(c ? c->redis.host : NULL, "::1");
    CHECK_STR(c ? c->redis.username : NULL, "gw");
    CHECK(c && c->redis.password_source == CONF_PASSWORD_ENV && c->redis.server_name == NULL);
    conf_free(c);
    c = load_redis("{\"url\": \"unix:///run/redis/redis.sock?db=2\"}", &err);
    CHECK(c && c->redis.host == NULL && c->redis.db == 2);
    CHECK_STR(c ? c->redis.unix_path : NULL, "/run/redis/redis.sock");
    conf_free(c);
    c = load_redis("{\"url\": \"rediss://cache.example\", \"tls\": {\"server_name\": \"r.example\"}}",
                   &err);
    CHECK(c && c->redis.tls && c->redis.port == 6379);
    CHECK_STR(c ? c->redis.server_name : NULL, "r.example");
    conf_free(c);

    static const struct { const char *redis, *path, *needle; } bad[] = {
        { "{\"url\": \"redis://:pw@h\"}", "redis.url", "must not contain a password" },
        { "{\"url\": \"http://h\"}", "redis.url", "must start with redis://" },
        { "{\"url\": \"redis://h:0\"}", "redis.url", "invalid port" },
        { "{\"url\": \"redis://h:6379/x\"}", "redis.url", "database number" },
        { "{\"url\": \"redis://h?db=1\"}", "redis.url", "query" },
        { "{\"url\": \"redis://\"}", "redis.url", "invalid host" },
        { "{\"url\": \"unix://run/r.sock\"}", "redis.url", "absolute path" },
        { "{\"url\": \"redis://u@h\", \"username\": \"v\"}", "redis.username", "one place" },
        { "{\"url\": \"redis://h\", \"tls\": {\"server_name\": \"h\"}}", "redis.tls", "rediss://" },
        { "{\"password_env\": \"A\", \"password_file\": \"/etc/hostname\"}", "redis",
          "at most one" },
        { "{\"password_file\": \"/nonexistent/pw\"}", "redis.password_file", "cannot read" },
        { "{\"command_timeout_ms\": 0}", "redis.command_timeout_ms", "between 1 and" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = load_redis(bad[i].redis, &err);
        CHECK(c == NULL);
        CHECK_STR(err.path, bad[i].path);
        if (!strstr(err.message, bad[i].needle))
            fprintf(stderr, "redis %s: %s\n", bad[i].redis, err.message);
        CHECK(strstr(err.message, bad[i].needle) != NULL);
        CHECK(strstr(err.message, ":pw@") == NULL);
        conf_free(c);
    }
}

/* A path under ${CREDENTIALS_DIRECTORY} (systemd LoadCredential=) is expanded at load; where
 * the variable is unset the config does not load, and the error names the key and line. */
static void test_credentials_directory(void)
{
    struct conf_error err;
    const char *redis = "{\"password_file\": \"${CREDENTIALS_DIRECTORY}/redis-password\"}";
    char dir[] = "/tmp/fogate-creds-XXXXXX", file[64], want[64];

    CHECK(mkdtemp(dir) != NULL);
    snprintf(file, sizeof file, "%s/redis-password", dir);
    FILE *fp = fopen(file, "w");
    CHECK(fp != NULL);
    if (fp) {
        fputs("placeholder\n", fp);
        fclose(fp);
    }
    setenv("CREDENTIALS_DIRECTORY", dir, 1);
    struct conf *conf = load_redis(redis, &err);
    CHECK(conf != NULL);
    if (!conf)
        fprintf(stderr, "credentials: %s\n", err.message);
    snprintf(want, sizeof want, "%s/redis-password", dir);
    if (conf)
        CHECK_STR(conf->redis.password_file, want);
    conf_free(conf);
    unsetenv("CREDENTIALS_DIRECTORY");
    CHECK(load_redis(redis, &err) == NULL);
    CHECK_STR(err.path, "redis.password_file");
    CHECK(strstr(err.message, "mem.json:4: redis.password_file: \"${CREDENTIALS_DIRECTORY}/"
                              "redis-password\": uses ${CREDENTIALS_DIRECTORY}, but") != NULL);
    CHECK(load_redis("{\"password_file\": \"${HOME}/pw\"}", &err) == NULL);
    CHECK(strstr(err.message, "only ${CREDENTIALS_DIRECTORY} is expanded") != NULL);
    unlink(file);
    rmdir(dir);
}

static void test_sentinel(void)
{
    struct conf_error err;
    struct conf *c;

    c = load_redis("{\"sentinel\": {\"master_name\": \"mymaster\", \"addresses\": "
                   "[\"127.0.0.1:26380\", \"[::1]\", \"s3.example:5000\"], "
                   "\"password_env\": \"FOGATE_TEST_SECRET\"}}", &err);
    CHECK(c != NULL);
    if (!c)
        fprintf(stderr, "sentinel: %s\n", err.message);
    const struct conf_sentinel *s = c ? &c->redis.sentinel : NULL;
    CHECK(c && c->redis.host == NULL && c->redis.unix_path == NULL && !c->redis.tls);
    CHECK_STR(s ? s->master_name : NULL, "mymaster");
    CHECK(s && s->n_addrs == 3 && s->addrs[0].port == 26380 && s->addrs[1].port == 26379 &&
          s->addrs[2].port == 5000 && !s->tls && s->password_source == CONF_PASSWORD_ENV);
    CHECK_STR(s ? s->addrs[1].host : NULL, "::1");
    CHECK_STR(s ? s->addrs[2].host : NULL, "s3.example");
    conf_free(c);
    /* rediss:// turns TLS on for the sentinels too unless sentinel.tls says otherwise */
    c = load_redis("{\"url\": \"rediss://gw@/2\", \"sentinel\": {\"master_name\": \"m\", "
                   "\"addresses\": [\"10.0.0.1:26379\"]}}", &err);
    CHECK(c && c->redis.tls && c->redis.sentinel.tls && c->redis.db == 2 &&
          c->redis.server_name == NULL);
    CHECK_STR(c ? c->redis.username : NULL, "gw");
    conf_free(c);
    c = load_redis("{\"url\": \"rediss://\", \"sentinel\": {\"master_name\": \"m\", "
                   "\"addresses\": [\"10.0.0.1\"], \"tls\": false}}", &err);
    CHECK(c && c->redis.tls && !c->redis.sentinel.tls);
    conf_free(c);

    static const struct { const char *redis, *path, *needle; } bad[] = {
        { "{\"url\": \"redis://h:6379\", \"sentinel\": {\"master_name\": \"m\", "
          "\"addresses\": [\"127.0.0.1:1\"]}}", "redis.url", "must not name a host" },
        { "{\"url\": \"unix:///r.sock\", \"sentinel\": {\"master_name\": \"m\", "
          "\"addresses\": [\"127.0.0.1:1\"]}}", "redis.url", "redis:// or rediss://" },
        { "{\"sentinel\": {\"master_name\": \"m\", \"addresses\": [\"127.0.0.1:1\", "
          "\"h:0\"]}}", "redis.sentinel.addresses[1]", "invalid port" },
        { "{\"sentinel\": {\"master_name\": \"m\", \"addresses\": [\"a b:1\"]}}",
          "redis.sentinel.addresses[0]", "invalid host" },
        { "{\"sentinel\": {\"master_name\": \"m\", \"addresses\": []}}",
          "redis.sentinel.addresses", "" },
        { "{\"sentinel\": {\"addresses\": [\"h:1\"]}}", "redis.sentinel.master_name",
          "required" },
        { "{\"sentinel\": {\"master_name\": \"m\", \"addresses\": [\"h:1\"], "
          "\"password_file\": \"/nonexistent/pw\"}}", "redis.sentinel.password_file",
          "cannot read" },
        { "{\"sentinel\": {\"master_name\": \"m\", \"addresses\": [\"h:1\"], "
          "\"password_env\": \"A\", \"password_file\": \"/etc/hostname\"}}", "redis.sentinel",
          "at most one" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = load_redis(bad[i].redis, &err);
        CHECK(c == NULL);
        CHECK_STR(err.path, bad[i].path);
        if (!strstr(err.message, bad[i].needle))
            fprintf(stderr, "sentinel %zu: %s\n", i, err.message);
        CHECK(strstr(err.message, bad[i].needle) != NULL);
        conf_free(c);
    }
}

static void test_listen_and_urls(void)
{
    struct conf_error err;
    struct conf *c;

    c = load_parts("[::1]:8443", "http://127.0.0.1:9000/", "https://h.example:443/namespaces/AXSF/",
                   "{}", &err);
    CHECK(c != NULL);
    CHECK_STR(c ? c->listen_host : NULL, "::1");
    CHECK(c && c->listen_port == 8443);
    CHECK_STR(c ? c->public_base_url : NULL, "http://127.0.0.1:9000");
    CHECK_STR(c ? c->envs[0].resource : NULL, "https://h.example:443/namespaces/axsf");
    conf_free(c);

    static const struct { const char *listen, *pub, *base, *path; } bad[] = {
        { "127.0.0.1:0", "https://g", "https://d", "listen" },
        { "127.0.0.1:65536", "https://g", "https://d", "listen" },
        { "[::1]8080", "https://g", "https://d", "listen" },
        { "1.2.3.4", "https://g", "https://d", "listen" },
        { "::1:80", "https://g", "https://d", "listen" },
        { "0.0.0.0:80", "https://g#x", "https://d", "public_base_url" },
        { "0.0.0.0:80", "gw.example", "https://d", "public_base_url" },
        { "0.0.0.0:80", "https://g", "ftp://d", "environments.e.base_url" },
        { "0.0.0.0:80", "https://g", "https://user@d", "environments.e.base_url" },
        { "0.0.0.0:80", "https://g", "https://d:99999", "environments.e.base_url" },
        { "0.0.0.0:80", "https://g", "https://[::1", "environments.e.base_url" },
        { "0.0.0.0:80", "https://g", "https://d x", "environments.e.base_url" },
        { "0.0.0.0:80", "https://g", "https://", "environments.e.base_url" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c = load_parts(bad[i].listen, bad[i].pub, bad[i].base, "{}", &err);
        CHECK(c == NULL);
        if (strcmp(err.path, bad[i].path) != 0)
            fprintf(stderr, "case %zu: %s\n", i, err.message);
        CHECK_STR(err.path, bad[i].path);
        conf_free(c);
    }
}

static void test_odd_inputs(void)
{
    struct conf_error err;

    CHECK(conf_load("/nonexistent/fogate.json", &err) == NULL);
    CHECK(strstr(err.message, "/nonexistent/fogate.json: cannot open the config file: No such "
                              "file or directory") == err.message);
    CHECK(conf_load("/nonexistent/fogate.json", NULL) == NULL);
    CHECK(conf_load_buffer("{\"listen\": \"a\\u0000b\"}", 21, "nul.json", &err) == NULL);
    CHECK(strstr(err.message, "invalid JSON") != NULL);
    CHECK(conf_load_buffer("", 0, "empty.json", &err) == NULL);
    CHECK(err.line >= 0 && strstr(err.message, "empty.json") == err.message);
    conf_free(NULL);
}

/* valid-minimal.json with `"workers": <value>` added at the top. */
static struct conf *load_workers(const char *value, struct conf_error *err)
{
    char path[PATH_MAX + 64], text[4096];

    snprintf(path, sizeof path, "%s/valid-minimal.json", cases_dir);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    char *brace = strchr(text, '{');
    if (!brace)
        return NULL;
    char buf[sizeof text + 64];
    int len = snprintf(buf, sizeof buf, "{\"workers\": %s,%s", value, brace + 1);
    return conf_load_buffer(buf, (size_t)len, "w.json", err);
}

static void test_workers(void)
{
    struct conf_error err;
    struct conf *conf = load_case("valid-minimal.json", &err);

    CHECK(conf && conf->workers == 1); /* default: one worker, as before */
    conf_free(conf);
    conf = load_workers("3", &err);
    CHECK(conf && conf->workers == 3);
    conf_free(conf);
    conf = load_workers("\"auto\"", &err);
    CHECK(conf && conf->workers == 0); /* resolved at start (workers_resolve) */
    conf_free(conf);
    CHECK(load_workers("0", &err) == NULL);
    CHECK_STR(err.path, "workers");
    CHECK(strstr(err.message, "w.json:1: workers: must be between 1 and 256, not 0") != NULL);
    CHECK(load_workers("257", &err) == NULL);
    CHECK(strstr(err.message, "must be between 1 and 256, not 257") != NULL);
    CHECK(load_workers("\"all\"", &err) == NULL);
    CHECK(strstr(err.message, "workers: must be an integer from 1 to 256 or \"auto\"") != NULL);
    CHECK(load_workers("true", &err) == NULL);
    CHECK(strstr(err.message, "must be an integer or \"auto\", not a boolean") != NULL);
    CHECK(load_workers("2.5", &err) == NULL);
    CHECK(strstr(err.message, "not a fractional number") != NULL);

    /* several workers and a package job: only with the lock and keys in Redis */
    conf = load_workers("\"auto\"", &err);
    CHECK(conf && confcheck_workers(conf, 4, &err) == 0); /* no package job */
    if (conf && conf->n_jobs == 1) {
        conf->jobs[0].project = strdup("CustomerImport");
        CHECK(confcheck_workers(conf, 1, &err) == 0);
        CHECK(confcheck_workers(conf, 2, &err) == -1);
        CHECK_STR(err.path, "workers");
        CHECK(strstr(err.message, "2 workers with a package job (jobs.groups) need "
                                  "packages.shared") != NULL);
        conf->packages.shared = true;
        CHECK(confcheck_workers(conf, 2, &err) == 0);
    }
    conf_free(conf);
}

/* ---- pure helpers ---- */

static void test_jsonpos(void)
{
    const char *t = "{\n \"a\": {\n  \"b\": [1,\n   {\"c\": \"x\\\"}\"},\n   2]\n },\n \"d\": 4\n}";
    size_t n = strlen(t);

    CHECK(jsonpos_line(t, n, "a") == 2);
    CHECK(jsonpos_line(t, n, "a.b") == 3);
    CHECK(jsonpos_line(t, n, "a.b[1]") == 4);
    CHECK(jsonpos_line(t, n, "a.b[1].c") == 4);
    CHECK(jsonpos_line(t, n, "a.b[2]") == 5);
    CHECK(jsonpos_line(t, n, "d") == 7);
    CHECK(jsonpos_line(t, n, "a.zz") == 2);
    CHECK(jsonpos_line(t, n, "a.b[9]") == 3);
    CHECK(jsonpos_line(t, n, "zz") == 0);
    CHECK(jsonpos_line(t, n, "") == 0);
    CHECK(jsonpos_line("{\"a\": [1, {\"b\"", 14, "a[1].b") == 1);
    CHECK(jsonpos_line("{\"a\"\0\0", 6, "a.b") == 0);
    CHECK(jsonpos_line("[{]", 3, "a") == 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    size_t len = 0;

    if (!f)
        return NULL;
    FILE *mem = open_memstream(&buf, &len);
    int ch;
    while ((ch = fgetc(f)) != EOF)
        fputc(ch, mem);
    fclose(mem);
    fclose(f);
    return buf;
}

/* CONFIG.md is generated from the key table: this fails when someone edits one and not
 * the other. Fix: cmake --build <build-dir> --target conf-reference */
static void test_reference_up_to_date(void)
{
    char path[PATH_MAX + 32], *want = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&want, &len);

    CHECK(conf_print_reference(mem) == 0);
    fclose(mem);
    snprintf(path, sizeof path, "%s/conf/CONFIG.md", src_dir);
    char *have = slurp(path);
    CHECK(have != NULL);
    if (have && strcmp(have, want) != 0)
        fprintf(stderr, "conf/CONFIG.md is stale: cmake --build <dir> --target conf-reference\n");
    CHECK(have && strcmp(have, want) == 0);
    CHECK(strstr(want, "| `environments.<name>.client_certificate.algorithm` |") != NULL);
    CHECK(strstr(want, "| `workers` | integer, 1 to 256, or `auto` | default `1` |") != NULL);
    CHECK(strstr(want, "| `timeouts.upstream_total_ms` | integer, 1 to 86400000 | default "
                       "`3600000` |") != NULL);
    free(have);
    free(want);
}

int main(void)
{
    find_dirs();
    setenv("FOGATE_TEST_SECRET", "s3cr3t-value", 1);
    unsetenv("FOGATE_TEST_UNSET_SECRET");
    test_error_cases();
    test_secretless_kinds();
    test_no_secret_in_errors();
    test_defaults_and_derived();
    test_http_allowed_and_v1();
    test_secret_file_relative();
    test_example();
    test_redis();
    test_credentials_directory();
    test_sentinel();
    test_listen_and_urls();
    test_odd_inputs();
    test_workers();
    test_jsonpos();
    test_reference_up_to_date();
    return check_done();
}
