/* adminproc: the process_* figures Prometheus client libraries export, read from /proc
 * the way they read them (CPU seconds, memory, file descriptors, start time). */
#ifndef FOGATE_ADMINPROC_H
#define FOGATE_ADMINPROC_H

#include <stdint.h>

struct adminproc {
    double cpu_seconds;          /* utime + stime */
    double start_time_seconds;   /* unix seconds */
    uint64_t resident_bytes, virtual_bytes;
    int64_t open_fds, max_fds;   /* -1 when unknown */
};

/* Reads the calling process's figures. Returns 0, or -1 when /proc/self/stat is
 * unreadable (then *out holds what could be read). */
int adminproc_read(struct adminproc *out);

/* Parses the text of /proc/<pid>/stat (`text`, NUL-terminated) into ticks and pages.
 * Returns 0 or -1 if malformed. Pure. */
int adminproc_parse_stat(const char *text, uint64_t *utime, uint64_t *stime,
                         uint64_t *starttime, uint64_t *vsize, uint64_t *rss_pages);

#endif
