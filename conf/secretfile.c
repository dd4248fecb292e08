/* secretfile: read a small file holding a credential, refusing unsafe permissions and
 * oversized contents. The permission check uses fstat on the opened descriptor, so it
 * judges the very file that is read (no check-then-open race). */
#include "secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


static void set_err(char *err, size_t errlen, const char *path, const char *why)
{
    if (errlen)
        snprintf(err, errlen, "%s: %s", path, why);
}

/* 0 if the descriptor is a regular file whose size and mode suit `max` and `flags`. */
static int check_file(int fd, size_t max, int flags, const char **why)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *why = strerror(errno);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *why = "not a regular file";
        return -1;
    }
    if ((flags & SECRETFILE_PRIVATE) && (st.st_mode & (S_IRWXO | S_IWGRP))) {
        *why = "readable or writable by others (chmod 0600 or 0640)";
        return -1;
    }
    if (st.st_size < 0 || (unsigned long long)st.st_size > max) {
        *why = "file too large";
        return -1;
    }
    return 0;
}

/* Reads up to max bytes; fails if the file holds more (it may have grown since fstat). */
static int read_all(int fd, char *buf, size_t max, size_t *len, const char **why)
{
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, max + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *why = strerror(errno);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > max) {
            *why = "file too large";
            return -1;
        }
    }
    *len = got;
    return 0;
}

int secretfile_read(const char *path, size_t max, int flags, char **out, size_t *len,
                    char *err, size_t errlen)
{
    const char *why = NULL;
    char *buf = NULL;
    int rc = -1;
    *out = NULL;
    *len = 0;
    /* O_NONBLOCK: a FIFO planted at `path` must not hang startup; no effect on files. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        why = strerror(errno);
        goto out;
    }
    if (check_file(fd, max, flags, &why) != 0)
        goto out;
    buf = malloc(max + 2);
    if (!buf) {
        why = "out of memory";
        goto out;
    }
    if (read_all(fd, buf, max, len, &why) != 0)
        goto out;
    buf[*len] = '\0';
    *out = buf;
    buf = NULL;
    rc = 0;
out:
    if (rc != 0) {
        set_err(err, errlen, path, why);
        *len = 0;
    }
    if (buf) {
        explicit_bzero(buf, max + 2);
        free(buf);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

void secretfile_free(char *buf, size_t len)
{
    if (!buf)
        return;
    explicit_bzero(buf, len + 1);
    free(buf);
}
