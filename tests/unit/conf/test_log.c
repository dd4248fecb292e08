/* Unit tests for the JSON-lines logger. */
#include "check.h"
#include "log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define LINES 400

/* Each thread logs LINES long lines (about 900 bytes) as worker `index`. */
static void *log_many(void *arg)
{
    int index = (int)(long)arg;
    char pad[900];

    memset(pad, 'a' + index, sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    log_set_worker(index);
    for (int i = 0; i < LINES; i++)
        log_json(LOG_LVL_INFO, pad, json_pack("{s:i}", "n", i));
    return NULL;
}

/* Lines from threads sharing one descriptor arrive whole: every line parses, carries its
 * thread's worker index, and its message is that thread's letter only. */
static void test_threads_do_not_interleave(void)
{
    FILE *f = tmpfile();
    pthread_t t[THREADS];
    int per[THREADS] = { 0 }, bad = 0;
    char line[4096];

    CHECK(f != NULL);
    if (!f)
        return;
    log_set_stream(f);
    for (long i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, log_many, (void *)i) == 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    log_set_stream(NULL);
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        json_int_t w = json_integer_value(json_object_get(o, "worker"));
        const char *msg = json_string_value(json_object_get(o, "msg"));
        if (o && w >= 0 && w < THREADS && msg && strspn(msg, (char[]){ (char)('a' + w), 0 }) == 899)
            per[w]++;
        else
            bad++;
        json_decref(o);
    }
    fclose(f);
    CHECK(bad == 0);
    for (int i = 0; i < THREADS; i++)
        CHECK(per[i] == LINES);
}

static json_t *log_one(enum log_level lvl, const char *msg, json_t *fields)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    log_set_stream(mem);
    log_json(lvl, msg, fields);
    fclose(mem);
    log_set_stream(NULL);
    json_t *line = len ? json_loads(buf, 0, NULL) : NULL;
    CHECK(len == 0 || buf[len - 1] == '\n');
    free(buf);
    return line;
}

static long file_size(FILE *f)
{
    fseek(f, 0, SEEK_END);
    return ftell(f);
}

/* Held lines reach the file only at the outermost release, whole and in order; an error
 * line goes out at once, after the lines held before it; log_json_text lines are JSON. */
static void test_hold(void)
{
    FILE *f = tmpfile();
    char line[512];
    const char *want[] = { "one", "two", "three", "fatal", "four" };
    int n = 0;

    CHECK(f != NULL);
    if (!f)
        return;
    log_set_stream(f);
    log_hold();
    CHECK(log_json_text(LOG_LVL_INFO, "one", "\"a\":1") == 0);
    log_hold();
    log_json(LOG_LVL_INFO, "two", NULL);
    log_release();
    CHECK(file_size(f) == 0);
    log_json_text(LOG_LVL_WARN, "three", "");
    log_json_text(LOG_LVL_ERROR, "fatal", "");
    long after_error = file_size(f);
    CHECK(after_error > 0);
    log_json_text(LOG_LVL_INFO, "four", "");
    CHECK(file_size(f) == after_error);
    log_release();
    log_release(); /* unbalanced: a no-op */
    log_set_stream(NULL);
    rewind(f);
    while (fgets(line, sizeof line, f)) {
        json_t *o = json_loads(line, 0, NULL);
        CHECK(o != NULL && n < 5);
        if (o && n < 5)
            CHECK_STR(json_string_value(json_object_get(o, "msg")), want[n]);
        if (o && n == 0)
            CHECK(json_integer_value(json_object_get(o, "a")) == 1);
        json_decref(o);
        n++;
    }
    CHECK(n == 5);
    fclose(f);
}

int main(void)
{
    json_t *line = log_one(LOG_LVL_INFO, "hello", json_pack("{s:s,s:i}", "rid", "r1", "status", 200));
    CHECK(line != NULL);
    CHECK_STR(json_string_value(json_object_get(line, "msg")), "hello");
    CHECK_STR(json_string_value(json_object_get(line, "level")), "info");
    CHECK_STR(json_string_value(json_object_get(line, "rid")), "r1");
    CHECK(json_integer_value(json_object_get(line, "status")) == 200);
    CHECK(json_string_length(json_object_get(line, "ts")) == 24);
    json_decref(line);

    /* A field may not overwrite the fixed keys. */
    line = log_one(LOG_LVL_WARN, "m", json_pack("{s:s}", "level", "forged"));
    CHECK_STR(json_string_value(json_object_get(line, "level")), "warn");
    json_decref(line);

    log_set_level(LOG_LVL_ERROR);
    CHECK(log_one(LOG_LVL_INFO, "dropped", NULL) == NULL);
    log_set_level(LOG_LVL_INFO);

    /* the worker index is a field of the calling thread's lines only */
    log_set_worker(2);
    line = log_one(LOG_LVL_INFO, "w", NULL);
    CHECK(json_integer_value(json_object_get(line, "worker")) == 2);
    json_decref(line);
    log_set_worker(-1);
    line = log_one(LOG_LVL_INFO, "w", NULL);
    CHECK(line && json_object_get(line, "worker") == NULL);
    json_decref(line);
    test_threads_do_not_interleave();
    test_hold();

    enum log_level lvl;
    CHECK(log_level_parse("debug", &lvl) == 0 && lvl == LOG_LVL_DEBUG);
    CHECK(log_level_parse("loud", &lvl) == -1);
    return check_done();
}
