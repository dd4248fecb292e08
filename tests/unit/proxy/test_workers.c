/* Unit tests for the worker count ("auto" from an affinity mask) and each worker's share
 * of the connection options. */
#define _GNU_SOURCE
#include "check.h"
#include "app.h"
#include "conf.h"
#include "workers.h"

#include <sched.h>
#include <string.h>

static void test_resolve(void)
{
    CHECK(workers_resolve(4, 3) == 4); /* a configured count wins */
    CHECK(workers_resolve(0, 3) == 3); /* auto: the CPUs */
    CHECK(workers_resolve(0, 0) == 1); /* never 0 */

    cpu_set_t mine;
    CPU_ZERO(&mine);
    CHECK(sched_getaffinity(0, sizeof mine, &mine) == 0);
    CHECK(workers_cpus() == (unsigned)CPU_COUNT(&mine));
}

static void test_conn_share(void)
{
    struct conf conf;
    struct conn_options o;

    memset(&conf, 0, sizeof conf);
    conf.limits.max_connections = 1024;
    app_conn_options(&conf, 1, &o);
    CHECK(o.max_connections == 1024 && !o.reuseport);
    app_conn_options(&conf, 3, &o);
    CHECK(o.max_connections == 342 && o.reuseport); /* rounded up: 3 x 342 >= 1024 */
    conf.limits.max_connections = 1;
    app_conn_options(&conf, 2, &o);
    CHECK(o.max_connections == 1);
}

/* The open-file need behind the unit's LimitNOFILE=16384 (deploy/systemd/fogate.service). */
static void test_nofile_need(void)
{
    CHECK(workers_nofile_need(1024, 1) == 2112);
    CHECK(workers_nofile_need(1024, 64) == 6144);
    CHECK(workers_nofile_need(8000, 4) == 16256); /* what 16384 covers */
    CHECK(workers_nofile_need(1000000, 256) == 2016384ull); /* the config maxima: no overflow */
}

int main(void)
{
    test_resolve();
    test_nofile_need();
    test_conn_share();
    return check_done();
}
