/* log: JSON-lines logger. Each line is built whole and written with one fwrite, so lines
 * from threads sharing a stream do not interleave. */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static enum log_level min_level = LOG_LVL_INFO;
static FILE *out_stream;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level lvl) { min_level = lvl; }

void log_set_stream(FILE *stream) { out_stream = stream; }

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

static void format_now(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

void log_json(enum log_level lvl, const char *msg, json_t *fields)
{
    if (lvl < min_level) {
        json_decref(fields);
        return;
    }
    char ts[40];
    format_now(ts, sizeof ts);
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[lvl]));
    json_object_set_new(line, "msg", json_string(msg ? msg : ""));
    if (fields)
        json_object_update_missing(line, fields);
    json_decref(fields);

    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!text)
        return;
    FILE *stream = out_stream ? out_stream : stderr;
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; we write len + 1 bytes and never use it as a string */
    fwrite(text, 1, len + 1, stream);
    fflush(stream);
    free(text);
}

int log_json_text(enum log_level lvl, const char *msg, const char *fields)
{
    char ts[40], line[4096];
    int n;

    if (lvl < min_level)
        return 0;
    format_now(ts, sizeof ts);
    n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"%s%s}\n", ts,
                 level_names[lvl], msg, *fields ? "," : "", fields);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    FILE *stream = out_stream ? out_stream : stderr;
    fwrite(line, 1, (size_t)n, stream);
    fflush(stream);
    return 0;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_json(lvl, buf, NULL);
}
