/* logline: the members of a log line built by hand, without jansson or printf, for the
 * lines written on every request (the request line, the d365_call line; log_json_text
 * takes the result) and the smallest, most frequent JSON answers. Invariant: buf is always NUL-terminated, and once `ok` is false
 * (something did not fit, or a string needs jansson) nothing more is appended. */
#ifndef FOGATE_LOGLINE_H
#define FOGATE_LOGLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct logline {
    char buf[3072];
    size_t n;
    bool ok;
};

/* Empty, ok. */
void logline_init(struct logline *o);

/* Appends `n` bytes as they are (already JSON). */
void logline_raw(struct logline *o, const char *s, size_t n);

/* Appends "name":"s" (a comma first unless the line is empty). Quote and backslash are
 * escaped; a control byte or a byte over 0x7e clears `ok` (non-ASCII may not be UTF-8:
 * jansson's job). */
void logline_str(struct logline *o, const char *name, const char *s, size_t len);

/* The decimal form of u, with a leading '-' when minus, written at the end of out; returns
 * its first byte (its length is out + LOGLINE_DIGITS_SIZE minus that). */
#define LOGLINE_DIGITS_SIZE 24
const char *logline_digits(char out[LOGLINE_DIGITS_SIZE], uint64_t u, bool minus);

/* Appends "name":v (a comma first unless the line is empty). */
void logline_int(struct logline *o, const char *name, int64_t v);
void logline_uint(struct logline *o, const char *name, uint64_t v);

#endif
