/* replay: main() for fuzz targets built without libFuzzer. Arguments are seed corpus
 * directories or single seed files; every seed goes through replay_check.
 * Invariant: exit status 0 only if at least one seed ran and none failed. */
#include "replay.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct tally {
    int files;
    int failed;
};

/* Reads one seed (at most REPLAY_FILE_MAX bytes) and checks it. Returns 0 or -1. */
static int replay_path(const char *path)
{
    static uint8_t buf[REPLAY_FILE_MAX + 1];
    const char *slash = strrchr(path, '/');
    FILE *f = fopen(path, "rb");

    if (!f) {
        perror(path);
        return -1;
    }
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n > REPLAY_FILE_MAX) {
        fprintf(stderr, "%s: larger than %d bytes\n", path, REPLAY_FILE_MAX);
        return -1;
    }
    /* a private copy of exactly n bytes, so ASan sees any read past the input */
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        return -1;
    memcpy(copy, buf, n);
    int rc = replay_check(slash ? slash + 1 : path, copy, n);
    free(copy);
    return rc;
}

static void replay_dir(const char *dir, struct tally *t)
{
    char path[4096];
    DIR *d = opendir(dir);

    if (!d) {
        perror(dir);
        t->failed++;
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            continue; /* e.g. tests/unit/conf/conf-cases/secrets */
        t->files++;
        t->failed += replay_path(path) != 0;
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    struct tally t = { 0, 0 };

    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            replay_dir(argv[i], &t);
        } else {
            t.files++;
            t.failed += replay_path(argv[i]) != 0;
        }
    }
    printf("%s: %d corpus files replayed, %d failed\n", argc ? argv[0] : "replay", t.files,
           t.failed);
    return t.failed || t.files == 0 ? 1 : 0;
}
