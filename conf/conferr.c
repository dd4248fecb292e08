/* conferr: failure formatting shared by conf, confkeys, confcheck and confredis.
 * Invariant: output is always NUL-terminated within the destination's size. */
#include "conferr.h"

#include <stdarg.h>
#include <stdio.h>

int conferr_fail(struct conf_error *err, const char *path, const char *fmt, ...)
{
    va_list ap;

    snprintf(err->path, sizeof err->path, "%s", path);
    err->line = 0;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

void conferr_pathf(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}
