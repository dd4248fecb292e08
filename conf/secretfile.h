/* secretfile: bounded reads of small credential files (seal keys, PEM keys, certificates).
 * Invariant: a buffer this module returns is wiped before it is freed (secretfile_free). */
#ifndef FOGATE_SECRETFILE_H
#define FOGATE_SECRETFILE_H

#include <stddef.h>

/* Flags for secretfile_read. */
#define SECRETFILE_PRIVATE 1 /* refuse files that others may read or write (mode & 007),
                                or the group may write (mode & 020) */

/* Reads the regular file at `path`, at most `max` bytes (a larger file is refused).
 * On success returns 0 and stores a NUL-terminated buffer in *out (owned by the caller;
 * release with secretfile_free) and its length, NUL not counted, in *len.
 * On failure returns -1 and writes a reason naming the path (never the contents) into
 * err (errlen bytes, may be 0). */
int secretfile_read(const char *path, size_t max, int flags, char **out, size_t *len,
                    char *err, size_t errlen);

/* Wipes `len` + 1 bytes of `buf` (as returned by secretfile_read) and frees it.
 * NULL is a no-op. */
void secretfile_free(char *buf, size_t len);

#endif
