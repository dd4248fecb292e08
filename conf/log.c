/* log: JSON-lines logger. Each line is built whole and written with one write() (one
 * fwrite on a stream without a descriptor), so lines from worker threads do not interleave. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* the level changes on reload, in any worker thread, while the others log */
static _Atomic int min_level = LOG_LVL_INFO;
static FILE *out_stream; /* set before threads start (tests) */
static _Thread_local int worker_index = -1;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level lvl)
{
    atomic_store_explicit(&min_level, (int)lvl, memory_order_relaxed);
}

void log_set_worker(int index) { worker_index = index; }

static bool below_level(enum log_level lvl)
{
    return (int)lvl < atomic_load_explicit(&min_level, memory_order_relaxed);
}

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

/* One write() per line: a line up to PIPE_BUF bytes reaches a pipe whole, and O_APPEND
 * files and terminals get it in one piece too. A short write (a full pipe, a signal) goes
 * on from where it stopped; nothing loops without progress. */
static void write_line(FILE *stream, const char *text, size_t len)
{
    int fd = fileno(stream);

    if (fd < 0) { /* a memory stream (tests): stdio's lock keeps one fwrite whole */
        fwrite(text, 1, len, stream);
        fflush(stream);
        return;
    }
    fflush(stream); /* anything written through stdio goes first */
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text += n;
        len -= (size_t)n;
    }
}

void log_json(enum log_level lvl, const char *msg, json_t *fields)
{
    if (below_level(lvl)) {
        json_decref(fields);
        return;
    }
    char ts[40];
    format_now(ts, sizeof ts);
    json_t *line = json_object();
    json_object_set_new(line, "ts", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[lvl]));
    json_object_set_new(line, "msg", json_string(msg ? msg : ""));
    if (worker_index >= 0)
        json_object_set_new(line, "worker", json_integer(worker_index));
    if (fields)
        json_object_update_missing(line, fields);
    json_decref(fields);

    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (!text)
        return;
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; we write len + 1 bytes and never use it as a string */
    write_line(out_stream ? out_stream : stderr, text, len + 1);
    free(text);
}

int log_json_text(enum log_level lvl, const char *msg, const char *fields)
{
    char ts[40], worker[24] = "", line[4096];
    int n;

    if (below_level(lvl))
        return 0;
    format_now(ts, sizeof ts);
    if (worker_index >= 0)
        snprintf(worker, sizeof worker, ",\"worker\":%d", worker_index);
    n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"%s%s%s}\n",
                 ts, level_names[lvl], msg, worker, *fields ? "," : "", fields);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    write_line(out_stream ? out_stream : stderr, line, (size_t)n);
    return 0;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    if (below_level(lvl))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log_json(lvl, buf, NULL);
}
