/* Unit tests for bounded, permission-checked credential file reads. */
#include "check.h"
#include "secretfile.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/fogate-test-secretfile-XXXXXX";
static char path[256];

static const char *put(const char *data, size_t len, mode_t mode)
{
    snprintf(path, sizeof(path), "%s/f", dir);
    unlink(path);
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, len, f);
    fclose(f);
    chmod(path, mode);
    return path;
}

/* Reads and returns rc; on success checks contents and length. */
static int rd(const char *p, size_t max, int flags, const char *want, size_t wlen)
{
    char *buf = (char *)"x", err[300] = "";
    size_t len = 7;
    int rc = secretfile_read(p, max, flags, &buf, &len, err, sizeof(err));
    if (rc == 0) {
        CHECK(buf && len == wlen && memcmp(buf, want, wlen) == 0 && buf[len] == '\0');
    } else {
        CHECK(buf == NULL && len == 0);
        CHECK(strncmp(err, p, strlen(p)) == 0);
        CHECK(strstr(err, "SECRET") == NULL); /* names the path, never the contents */
    }
    secretfile_free(rc == 0 ? buf : NULL, len);
    return rc;
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    CHECK(rd(put("SECRET", 6, 0600), 6, SECRETFILE_PRIVATE, "SECRET", 6) == 0);
    CHECK(rd(put("SECRET", 6, 0600), 5, SECRETFILE_PRIVATE, NULL, 0) == -1); /* over max */
    CHECK(rd(put("", 0, 0600), 5, SECRETFILE_PRIVATE, "", 0) == 0);
    CHECK(rd(put("SE\0RET", 6, 0440), 64, SECRETFILE_PRIVATE, "SE\0RET", 6) == 0);
    CHECK(rd(put("SECRET", 6, 0640), 64, SECRETFILE_PRIVATE, "SECRET", 6) == 0);
    CHECK(rd(put("SECRET", 6, 0644), 64, SECRETFILE_PRIVATE, NULL, 0) == -1);
    CHECK(rd(put("SECRET", 6, 0601), 64, SECRETFILE_PRIVATE, NULL, 0) == -1);
    CHECK(rd(put("SECRET", 6, 0620), 64, SECRETFILE_PRIVATE, NULL, 0) == -1);
    /* Without the flag, readable files are fine (certificates). */
    CHECK(rd(put("CERT", 4, 0644), 64, 0, "CERT", 4) == 0);
    /* Not regular files. */
    CHECK(rd(dir, 64, 0, NULL, 0) == -1);
    CHECK(rd("/dev/null", 64, 0, NULL, 0) == -1);
    snprintf(path, sizeof(path), "%s/missing", dir);
    CHECK(rd(path, 64, 0, NULL, 0) == -1);
    snprintf(path, sizeof(path), "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK(rd(path, 64, 0, NULL, 0) == -1);
    unlink(path);
    /* A symlink to a private file is followed and judged by the target's mode. */
    char link[300];
    put("SECRET", 6, 0600);
    snprintf(link, sizeof(link), "%s/link", dir);
    CHECK(symlink(path, link) == 0);
    CHECK(rd(link, 64, SECRETFILE_PRIVATE, "SECRET", 6) == 0);
    chmod(path, 0644);
    CHECK(rd(link, 64, SECRETFILE_PRIVATE, NULL, 0) == -1);
    unlink(link);
    /* A zero-length err buffer is allowed. */
    char *buf = NULL;
    size_t len = 0;
    CHECK(secretfile_read(path, 64, SECRETFILE_PRIVATE, &buf, &len, NULL, 0) == -1);
    secretfile_free(NULL, 0);
    unlink(path);
    CHECK(rmdir(dir) == 0);
    return check_done();
}
