/* log: one JSON object per line on a stream (stderr by default).
 * Invariant: callers never pass secrets or tokens; this module does not redact. */
#ifndef FOGATE_LOG_H
#define FOGATE_LOG_H

#include <stdio.h>
#include <jansson.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Only lines at or above `lvl` are written. Default: LOG_LVL_INFO. Safe from any thread. */
void log_set_level(enum log_level lvl);

/* Lines written by the calling thread carry "worker": index (index >= 0); -1 (the
 * default) leaves the field out. Thread-local: each worker thread sets its own. */
void log_set_worker(int index);

/* Lines go to `stream` (borrowed, must outlive logging). Default: stderr. */
void log_set_stream(FILE *stream);

/* Parses "debug", "info", "warn", "error" into *out. Returns 0, or -1 if unknown. */
int log_level_parse(const char *name, enum log_level *out);

/* Writes {"ts":..., "level":..., "msg": msg, ...fields} as one line and flushes.
 * `fields` may be NULL; its reference is stolen (decref'd here). */
void log_json(enum log_level lvl, const char *msg, json_t *fields);

/* Same line as log_json, from members the caller has already encoded: `fields` is ""
 * or JSON object members without braces ("\"a\":1,\"b\":\"x\"", borrowed); `msg` is
 * plain ASCII with no quote or backslash. No allocation (hot paths). Returns 0, or -1
 * when the line would exceed 4 KiB (nothing written: use log_json). */
int log_json_text(enum log_level lvl, const char *msg, const char *fields);

/* log_hold keeps the calling thread's lines in a buffer (8 KiB; a line that does not fit
 * writes it out first) until the matching log_release writes them with one write(): the
 * lines of one event, such as a D365 call's and its request's, cost one system call.
 * Calls nest; only the outermost release writes. Lines stay whole and in order. */
void log_hold(void);
void log_release(void);

/* printf-style shorthand for a line with only "msg". */
void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
