/* test_adminproc: /proc/<pid>/stat parsing (a comm with spaces and parentheses), and
 * the live figures of this process. */
#include "adminproc.h"
#include "check.h"

int main(void)
{
    const char *stat = "1234 (a b) (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 "
                       "3 0 777 123456789 512 18446744073709551615";
    uint64_t ut, st, start, vsize, rss;
    struct adminproc p;

    CHECK(adminproc_parse_stat(stat, &ut, &st, &start, &vsize, &rss) == 0);
    CHECK(ut == 250 && st == 50 && start == 777 && vsize == 123456789 && rss == 512);
    CHECK(adminproc_parse_stat("1234 (x", &ut, &st, &start, &vsize, &rss) == -1);
    CHECK(adminproc_parse_stat("1234 (x) S 1 2", &ut, &st, &start, &vsize, &rss) == -1);
    CHECK(adminproc_read(&p) == 0);
    CHECK(p.resident_bytes > 0 && p.open_fds >= 3 && p.start_time_seconds > 1.5e9);
    return check_done();
}
