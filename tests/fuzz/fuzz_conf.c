/* fuzz_conf: libFuzzer target for conf_load_buffer (the whole conf pipeline: parse, key
 * shape check, fill, cross-field validation, Redis URL). Invariants on every input: a
 * refusal always carries a message, a load is deterministic, no secret value ever reaches
 * an error message, and a loaded conf keeps the header's promises (links, canonical IDs,
 * exactly one Redis address). Seeds named accept-* must load, reject-* must not. */
#define _GNU_SOURCE /* memmem */
#include "conf.h"
#include "replay.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Values the fuzz workspace holds; they must never show in an error message. */
#define SECRET_FILE_VALUE "fuzz-file-secret-Qz81"
#define SECRET_ENV_VALUE "fuzz-env-secret-Wv44"

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_conf: invariant broken: %s\n", why);
    abort();
}

static char workdir[] = "/tmp/fogate-fuzz-conf-XXXXXX";
static const char *const files[] = { "secret", "redis.pw", "cert.pem", "key.pem",
                                     "token.key", NULL };

static void cleanup(void)
{
    for (int i = 0; files[i]; i++)
        unlink(files[i]);
    if (chdir("/") == 0)
        rmdir(workdir);
}

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(name, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
        fail("cannot write the fuzz workspace");
}

/* Once: a private cwd with the files seeds may name ("secret", "redis.pw", "cert.pem",
 * "key.pem", "token.key") and the env vars FUZZ_SECRET / FUZZ_REDIS_PW set. */
static void setup(void)
{
    static bool ready;

    if (ready)
        return;
    ready = true;
    if (!mkdtemp(workdir) || chdir(workdir) != 0)
        fail("cannot create the fuzz workspace");
    atexit(cleanup);
    for (int i = 0; files[i]; i++)
        write_file(files[i], i < 2 ? SECRET_FILE_VALUE "\n" : "not parsed by conf\n");
    setenv("FUZZ_SECRET", SECRET_ENV_VALUE, 1);
    setenv("FUZZ_REDIS_PW", SECRET_ENV_VALUE, 1);
}

/* True if `needle` is in the error message but not in the input (which may echo it). */
static bool leaked(const char *msg, const char *in, size_t len, const char *needle)
{
    return strstr(msg, needle) && !memmem(in, len, needle, strlen(needle));
}

static void check_error(const struct conf_error *err, const char *in, size_t len)
{
    if (!memchr(err->message, '\0', sizeof err->message) ||
        !memchr(err->path, '\0', sizeof err->path))
        fail("error strings not terminated");
    if (err->message[0] == '\0')
        fail("refusal without a message");
    if (leaked(err->message, in, len, SECRET_FILE_VALUE) ||
        leaked(err->message, in, len, SECRET_ENV_VALUE))
        fail("a secret value reached an error message");
    /* seeds put the password "hunter2" into redis.url; conf must never echo that URL */
    if (strcmp(err->path, "redis.url") == 0 && strstr(err->message, "hunter2"))
        fail("a Redis URL password reached an error message");
}

static void check_conf(const struct conf *c)
{
    for (size_t i = 0; i < c->n_envs; i++)
        if (conf_env_find(c, c->envs[i].name) != &c->envs[i] || !c->envs[i].resource ||
            !c->envs[i].token_endpoint)
            fail("environment lookup or derived fields");
    for (size_t i = 0; i < c->n_jobs; i++) {
        const struct conf_job *j = &c->jobs[i];
        if (!j->env || strcmp(j->env->name, j->env_name) != 0)
            fail("job not linked to its environment");
        if (strlen(j->activity_id) != 36 ||
            conf_job_find_by_activity(c, j->activity_id_raw, strlen(j->activity_id_raw)) != j)
            fail("activity id not canonical or not found again");
    }
    for (size_t i = 0; i < c->n_clients; i++)
        for (size_t k = 0; k < c->clients[i].n_jobs; k++)
            if (!c->clients[i].jobs[k] ||
                strcmp(c->clients[i].jobs[k]->name, c->clients[i].job_names[k]) != 0)
                fail("client job not linked");
    if (c->redis.url && (!c->redis.host == !c->redis.unix_path))
        fail("redis must have exactly one of host and unix_path");
}

/* Returns 1 if the input loaded, 0 if it was refused. */
static int one_input(const char *text, size_t len)
{
    struct conf_error e1, e2;

    setup();
    memset(&e1, 0, sizeof e1);
    memset(&e2, 0, sizeof e2);
    struct conf *a = conf_load_buffer(text, len, "fuzz.json", &e1);
    struct conf *b = conf_load_buffer(text, len, "fuzz.json", &e2);
    if (!a != !b || (!a && (strcmp(e1.message, e2.message) != 0 || e1.line != e2.line)))
        fail("not deterministic");
    if (a)
        check_conf(a);
    else
        check_error(&e1, text, len);
    conf_free(a);
    conf_free(b);
    return a != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input((const char *)data, size);
    return 0;
}

/* Seeds named accept-* must load and reject-* be refused; any other name (the unit
 * tests' conf cases, the example config) only has to keep the invariants. */
int replay_check(const char *name, const uint8_t *data, size_t size)
{
    int loaded = one_input((const char *)data, size);

    if ((strncmp(name, "accept-", 7) == 0 && !loaded) ||
        (strncmp(name, "reject-", 7) == 0 && loaded)) {
        fprintf(stderr, "%s: expected %s\n", name, loaded ? "a refusal" : "a load");
        return -1;
    }
    return 0;
}
