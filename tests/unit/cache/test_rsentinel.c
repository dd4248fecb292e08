/* Tests for cache/rsentinel: the reply parsers fed with real RESP bytes (through
 * hiredict's reader), then asks against a real redis-server in sentinel mode, a sentinel
 * that never answers (a listening socket nobody serves) and a closed port. */
#define _GNU_SOURCE
#include "check.h"
#include "rsentinel.h"
#include "testloop.h"
#include "testproc.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct event_base *base;
static char tmpdir[256];

/* Parses `resp` into a reply (caller frees with freeReplyObject), or NULL. */
static redictReply *parse(const char *resp)
{
    redictReader *rd = redictReaderCreate();
    void *reply = NULL;

    redictReaderFeed(rd, resp, strlen(resp));
    if (redictReaderGetReply(rd, &reply) != REDICT_OK)
        reply = NULL;
    redictReaderFree(rd);
    return reply;
}

static void test_parse_master(void)
{
    static const struct { const char *resp, *host, *why; int port; } cases[] = {
        { "*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n", "127.0.0.1", NULL, 6380 },
        { "*2\r\n$3\r\n::1\r\n$5\r\n65535\r\n", "::1", NULL, 65535 },
        { "*-1\r\n", NULL, "does not know this master", 0 },
        { "$-1\r\n", NULL, "does not know this master", 0 },
        { "-IDONTKNOW No such master with that name\r\n", NULL, "IDONTKNOW", 0 },
        { "*1\r\n$9\r\n127.0.0.1\r\n", NULL, "malformed", 0 },
        { "*2\r\n$9\r\n127.0.0.1\r\n:6380\r\n", NULL, "malformed", 0 },
        { "*2\r\n$0\r\n\r\n$4\r\n6380\r\n", NULL, "malformed", 0 },
        { "*2\r\n$9\r\n127.0.0.1\r\n$1\r\n0\r\n", NULL, "port", 0 },
        { "*2\r\n$9\r\n127.0.0.1\r\n$5\r\n65536\r\n", NULL, "port", 0 },
        { "*2\r\n$9\r\n127.0.0.1\r\n$3\r\n6x0\r\n", NULL, "port", 0 },
        { "+OK\r\n", NULL, "malformed", 0 },
    };
    char host[64], why[128];
    int port;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        redictReply *r = parse(cases[i].resp);
        CHECK(r != NULL);
        port = 0;
        why[0] = '\0';
        int rc = rsentinel_parse_master(r, host, sizeof host, &port, why, sizeof why);
        if (cases[i].host) {
            CHECK(rc == 0);
            CHECK_STR(host, cases[i].host);
            CHECK(port == cases[i].port);
        } else {
            CHECK(rc == -1);
            if (!strstr(why, cases[i].why))
                fprintf(stderr, "case %zu: %s\n", i, why);
            CHECK(strstr(why, cases[i].why) != NULL);
        }
        freeReplyObject(r);
    }
    /* a host longer than the buffer is refused, not cut */
    redictReply *r = parse("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
    CHECK(rsentinel_parse_master(r, host, 9, &port, why, sizeof why) == -1);
    CHECK(rsentinel_parse_master(NULL, host, sizeof host, &port, why, sizeof why) == -1);
    freeReplyObject(r);
}

static void test_role_and_readonly(void)
{
    static const struct { const char *resp; enum rsentinel_role role; } roles[] = {
        { "*3\r\n$6\r\nmaster\r\n:1234\r\n*0\r\n", RSENTINEL_MASTER },
        { "*5\r\n$5\r\nslave\r\n$9\r\n127.0.0.1\r\n:6379\r\n$9\r\nconnected\r\n:99\r\n",
          RSENTINEL_REPLICA },
        { "*2\r\n$8\r\nsentinel\r\n*0\r\n", RSENTINEL_SENTINEL },
        { "-NOPERM this user has no permissions\r\n", RSENTINEL_UNKNOWN },
        { "*0\r\n", RSENTINEL_UNKNOWN },
        { "+master\r\n", RSENTINEL_UNKNOWN },
    };
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        redictReply *r = parse(roles[i].resp);
        CHECK(r && rsentinel_parse_role(r) == roles[i].role);
        freeReplyObject(r);
    }
    CHECK(rsentinel_parse_role(NULL) == RSENTINEL_UNKNOWN);

    static const struct { const char *resp; bool ro; } errs[] = {
        { "-READONLY You can't write against a read only replica.\r\n", true },
        { "-ERR Error running script (call to f_x): @user_script:1: "
          "@user_script: 1: -READONLY You can't write against a read only replica.\r\n", true },
        { "-ERR wrong number of arguments\r\n", false },
        { "$8\r\nREADONLY\r\n", false },
        { "+READONLY\r\n", false },
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        redictReply *r = parse(errs[i].resp);
        CHECK(r && rsentinel_is_readonly(r) == errs[i].ro);
        freeReplyObject(r);
    }
    CHECK(!rsentinel_is_readonly(NULL));

    char buf[64];
    rsentinel_format_addr(buf, sizeof buf, "10.0.0.7", 26379);
    CHECK_STR(buf, "10.0.0.7:26379");
    rsentinel_format_addr(buf, sizeof buf, "fe80::1", 26380);
    CHECK_STR(buf, "[fe80::1]:26380");
}

/* ---- asks against real processes ---- */

struct answer {
    int n;
    char host[64];
    int port;
    char why[256];
    long long at_ms;
};

static void on_answer(void *arg, const char *host, int port, const char *why)
{
    struct answer *a = arg;

    a->n++;
    a->at_ms = testproc_now_ms();
    snprintf(a->host, sizeof a->host, "%s", host ? host : "");
    a->port = port;
    snprintf(a->why, sizeof a->why, "%s", why ? why : "");
}

/* A 127.0.0.1 socket that accepts connections into its backlog and never answers. */
static int listen_hole(int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static pid_t start_sentinel(int port, int master_port, const char *name)
{
    char conf[512], log[512];
    FILE *f;

    snprintf(conf, sizeof conf, "%s/sentinel-%d.conf", tmpdir, port);
    snprintf(log, sizeof log, "%s/sentinel-%d.log", tmpdir, port);
    if (!(f = fopen(conf, "w")))
        return -1;
    fprintf(f, "port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n", port,
            tmpdir, name, master_port);
    fclose(f);
    const char *argv[] = { "redis-server", conf, "--sentinel", NULL };
    pid_t pid = testproc_spawn(argv, -1, log);
    long long end = testproc_now_ms() + 5000;
    while (pid > 0 && !testproc_port_open(port) && testproc_now_ms() < end)
        usleep(20000);
    return pid;
}

static struct answer ask(struct rsentinel *s)
{
    struct answer a = { 0 };
    long long t0 = testproc_now_ms();

    CHECK(rsentinel_ask(s, on_answer, &a) == 0);
    CHECK(a.n == 0); /* never from inside the call */
    CHECK(rsentinel_ask(s, on_answer, &a) == -1); /* one ask at a time */
    CHECK(TESTLOOP_WAIT_FOR(base, a.n > 0, 5000, 10));
    a.at_ms -= t0;
    return a;
}

/* The per-sentinel timeout: long against the scheduling delays of a loaded machine, so
 * that "sat out the hole's timeout" and "did not" stay apart. */
#define TIMEOUT_MS 1000

static void test_ask(void)
{
    struct testproc master = { 0 };
    int hole_port = 0, sent_port = testproc_free_port(), dead_port = testproc_free_port();
    int hole = listen_hole(&hole_port);
    char where[64];

    CHECK(hole >= 0 && sent_port > 0 && dead_port > 0);
    CHECK(testproc_start_redis_plain(&master, tmpdir) == 0);
    pid_t sent = start_sentinel(sent_port, master.port, "mymaster");
    CHECK(sent > 0 && testproc_port_open(sent_port));

    /* the hole first: its try times out, then the live sentinel answers */
    struct rsentinel_addr addrs[] = { { "127.0.0.1", hole_port }, { "127.0.0.1", dead_port },
                                      { "127.0.0.1", sent_port } };
    struct rsentinel_options o = { .master_name = "mymaster", .addrs = addrs, .n_addrs = 3,
                                   .timeout_ms = TIMEOUT_MS };
    struct rsentinel *s = rsentinel_new(base, &o);
    CHECK(s != NULL);
    CHECK_STR(rsentinel_last(s), "");
    struct answer a = ask(s);
    CHECK(a.n == 1 && a.why[0] == '\0' && a.port == master.port);
    CHECK_STR(a.host, "127.0.0.1");
    CHECK(a.at_ms >= TIMEOUT_MS - 20 && a.at_ms < 2 * TIMEOUT_MS);
    snprintf(where, sizeof where, "127.0.0.1:%d", sent_port);
    CHECK_STR(rsentinel_last(s), where);
    /* the next ask starts with the sentinel that answered last: no timeout to sit out */
    a = ask(s);
    CHECK(a.n == 1 && a.port == master.port && a.at_ms < TIMEOUT_MS - 10); /* not the hole */
    rsentinel_free(s);

    /* an unknown master name: every sentinel is asked, the reason is kept */
    o.master_name = "othermaster";
    o.addrs = addrs + 1;
    o.n_addrs = 2;
    s = rsentinel_new(base, &o);
    a = ask(s);
    CHECK(a.n == 1 && a.host[0] == '\0' && strstr(a.why, "does not know") && strstr(a.why, where));
    rsentinel_free(s);

    /* nobody answers: the ask ends within n * timeout, naming the last failure */
    o.master_name = "mymaster";
    o.addrs = addrs;
    o.n_addrs = 2;
    s = rsentinel_new(base, &o);
    a = ask(s);
    CHECK(a.n == 1 && a.host[0] == '\0' && a.at_ms < 3 * TIMEOUT_MS);
    snprintf(where, sizeof where, "127.0.0.1:%d", dead_port);
    CHECK(strstr(a.why, where) != NULL);
    /* cancelled: no callback, and freeing with an ask in flight is clean */
    struct answer b = { 0 };
    CHECK(rsentinel_ask(s, on_answer, &b) == 0);
    testloop_spin_ms(base, 50);
    rsentinel_cancel(s);
    testloop_spin_ms(base, 2 * TIMEOUT_MS); /* past the time the answer would have come */
    CHECK(b.n == 0);
    CHECK(rsentinel_ask(s, on_answer, &b) == 0);
    testloop_spin_ms(base, 20);
    rsentinel_free(s);
    testloop_spin_ms(base, 50);
    CHECK(b.n == 0);

    struct rsentinel_options bad = { .master_name = "m", .addrs = addrs, .n_addrs = 0 };
    CHECK(rsentinel_new(base, &bad) == NULL);

    struct testproc sp = { .pid = sent, .port = sent_port };
    testproc_stop(&sp, SIGTERM);
    testproc_stop(&master, SIGTERM);
    close(hole);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fogate-rsentinel-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    base = event_base_new();
    test_parse_master();
    test_role_and_readonly();
    test_ask();
    event_base_free(base);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_done();
}
