/* conferr: the two formatting helpers every conf phase uses to report a failure.
 * Invariant: both write into caller-owned bounded buffers and truncate rather than
 * overflow; neither allocates. */
#ifndef FOGATE_CONFERR_H
#define FOGATE_CONFERR_H

#include <stddef.h>

#include "conf.h"

/* Sets err->path to `path` (copied), err->line to 0 and err->message from fmt. Always
 * returns -1, so a check can `return conferr_fail(...)`. Neither string is kept. */
int conferr_fail(struct conf_error *err, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* snprintf into dst (n bytes) for JSON paths and messages; truncation is acceptable
 * because every destination is a bounded buffer. */
void conferr_pathf(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
