/* adminproc: process figures from /proc/self (a scrape reads three small files and
 * counts the fd directory). */
#include "adminproc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int adminproc_parse_stat(const char *text, uint64_t *utime, uint64_t *stime,
                         uint64_t *starttime, uint64_t *vsize, uint64_t *rss_pages)
{
    /* after "pid (comm) ", which may hold spaces and parentheses: the last ')' */
    const char *p = strrchr(text, ')');
    unsigned long long v[22];

    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    /* fields 3.. : state, then numbers; v[0] = field 4 (ppid) */
    if (!*p || p[1] != ' ')
        return -1;
    p += 2;
    for (int i = 0; i < 21; i++) {
        char *end;
        v[i] = strtoull(p, &end, 10);
        if (end == p)
            return -1;
        p = end;
    }
    /* field n is v[n - 4]: utime 14, stime 15, starttime 22, vsize 23, rss 24 */
    *utime = v[10];
    *stime = v[11];
    *starttime = v[18];
    *vsize = v[19];
    *rss_pages = v[20];
    return 0;
}

static double boot_time(void)
{
    char line[256];
    double bt = 0;
    FILE *f = fopen("/proc/stat", "r");

    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0) {
            bt = strtod(line + 6, NULL);
            break;
        }
    if (f)
        fclose(f);
    return bt;
}

static int64_t count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int64_t n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

int adminproc_read(struct adminproc *out)
{
    char buf[1024];
    uint64_t ut, st, start, vsize, rss;
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    struct rlimit rl;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;

    if (f)
        fclose(f);
    buf[n] = '\0';
    memset(out, 0, sizeof *out);
    out->open_fds = count_fds();
    out->max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (int64_t)rl.rlim_cur
                       : -1;
    if (n == 0 || hz <= 0 || adminproc_parse_stat(buf, &ut, &st, &start, &vsize, &rss) < 0)
        return -1;
    out->cpu_seconds = (double)(ut + st) / (double)hz;
    out->start_time_seconds = boot_time() + (double)start / (double)hz;
    out->virtual_bytes = vsize;
    out->resident_bytes = rss * (uint64_t)(page > 0 ? page : 4096);
    return 0;
}
