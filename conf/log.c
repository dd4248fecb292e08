/* log: JSON-lines logger. Each line is built whole and written with one write() (one
 * fwrite on a stream without a descriptor), so lines from worker threads do not interleave.
 * Between log_hold and log_release a thread's lines wait in its own buffer and leave
 * together in one write(), still whole and in order. */
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

#define HOLD_BYTES 8192 /* the lines of one event: a D365 call's and its request's */

/* The calling thread's held lines (log_hold), and its last timestamp's whole seconds. */
struct thread_log {
    int depth;                  /* log_hold calls not yet released */
    time_t ts_sec;              /* second that ts_text spells */
    char ts_text[24];           /* "YYYY-mm-ddTHH:MM:SS", "" = none yet */
    char worker[24];            /* ",\"worker\":N", or "" (log_set_worker) */
    size_t len;
    char buf[HOLD_BYTES];       /* last: a thread that never holds touches none of it */
};
static _Thread_local struct thread_log tl;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void log_set_level(enum log_level lvl)
{
    atomic_store_explicit(&min_level, (int)lvl, memory_order_relaxed);
}

void log_set_worker(int index)
{
    worker_index = index;
    tl.worker[0] = '\0';
    if (index >= 0)
        snprintf(tl.worker, sizeof tl.worker, ",\"worker\":%d", index);
}

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

/* "YYYY-mm-ddTHH:MM:SS.mmmZ" (24 characters and a NUL) into buf[40]; the date part is
 * formatted once per second per thread. */
static void format_now(char *buf)
{
    struct timespec ts;
    struct tm tm;
    long ms;

    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != tl.ts_sec || !tl.ts_text[0]) {
        gmtime_r(&ts.tv_sec, &tm);
        if (strftime(tl.ts_text, sizeof tl.ts_text, "%Y-%m-%dT%H:%M:%S", &tm) != 19)
            snprintf(tl.ts_text, sizeof tl.ts_text, "%s", "1970-01-01T00:00:00");
        tl.ts_sec = ts.tv_sec;
    }
    ms = ts.tv_nsec / 1000000L;
    memcpy(buf, tl.ts_text, 19);
    buf[19] = '.';
    buf[20] = (char)('0' + ms / 100);
    buf[21] = (char)('0' + ms / 10 % 10);
    buf[22] = (char)('0' + ms % 10);
    buf[23] = 'Z';
    buf[24] = '\0';
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

static FILE *sink(void)
{
    return out_stream ? out_stream : stderr;
}

static void flush_held(void)
{
    size_t n = tl.len;

    tl.len = 0;
    if (n)
        write_line(sink(), tl.buf, n);
}

/* A whole line: into the held buffer while the thread holds its lines, else written. An
 * error line goes out at once (after the held ones): the process may be about to end. */
static void emit(enum log_level lvl, const char *text, size_t len)
{
    if (tl.depth > 0 && lvl < LOG_LVL_ERROR) {
        if (len > sizeof tl.buf - tl.len)
            flush_held();
        if (len <= sizeof tl.buf - tl.len) {
            memcpy(tl.buf + tl.len, text, len);
            tl.len += len;
            return;
        }
    }
    flush_held();
    write_line(sink(), text, len);
}

void log_hold(void)
{
    tl.depth++;
}

void log_release(void)
{
    if (tl.depth > 0 && --tl.depth == 0)
        flush_held();
}

void log_json(enum log_level lvl, const char *msg, json_t *fields)
{
    if (below_level(lvl)) {
        json_decref(fields);
        return;
    }
    char ts[40];
    format_now(ts);
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
    emit(lvl, text, len + 1);
    free(text);
}

/* Appends n bytes of s at line[*at] when they fit within cap; false when not. */
static bool append(char *line, size_t cap, size_t *at, const char *s, size_t n)
{
    if (n > cap - *at)
        return false;
    memcpy(line + *at, s, n);
    *at += n;
    return true;
}

#define APPEND_LIT(lit) append(line, sizeof line, &n, lit, sizeof lit - 1)
#define APPEND_STR(s) append(line, sizeof line, &n, s, strlen(s))

int log_json_text(enum log_level lvl, const char *msg, const char *fields)
{
    char ts[40], line[4096];
    size_t n = 0;

    if (below_level(lvl))
        return 0;
    format_now(ts);
    bool ok = APPEND_LIT("{\"ts\":\"") && APPEND_STR(ts) && APPEND_LIT("\",\"level\":\"") &&
              APPEND_STR(level_names[lvl]) && APPEND_LIT("\",\"msg\":\"") && APPEND_STR(msg) &&
              APPEND_LIT("\"") && APPEND_STR(tl.worker) && (!*fields || APPEND_LIT(",")) &&
              APPEND_STR(fields) && APPEND_LIT("}\n");
    if (!ok)
        return -1;
    emit(lvl, line, n);
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
