/* Tests for cache/rconn and its helpers, against real redis-server processes (plain, unix
 * socket, requirepass + ACL user, TLS) on free 127.0.0.1 ports, driven by a libevent loop.
 * Every command callback is counted: each must run exactly once. */
#define _GNU_SOURCE
#include "check.h"
#include "log.h"
#include "rbackoff.h"
#include "rconn.h"
#include "rdeadline.h"
#include "testloop.h"
#include "testproc.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SLACK_MS 1000 /* allowed lateness of a timeout callback on a loaded 2-core machine */
/* "Fails at once": well under run()'s 2 s command timeout, whatever the machine's load. */
#define FAST_MS 1000

static const char PW_REQ[] = "Req-pass-7Zq1x";  /* requirepass of the auth server */
static const char PW_ACL[] = "Acl-pass-Kx92v";  /* password of the ACL user */
static const char PW_BAD[] = "Wrong-pass-Mv55"; /* never valid */

static struct event_base *base;
static char tmpdir[256];
static int dns_hole = -1; /* a UDP socket on 127.0.0.1 that never answers */

struct call {
    int n;
    enum rconn_result res;
    int type;
    long long integer;
    size_t len;
    char str[256];
    long long sent_ms, done_ms;
};

static void on_call(void *arg, enum rconn_result res, const redictReply *r)
{
    struct call *c = arg;

    c->n++;
    c->res = res;
    c->done_ms = testproc_now_ms();
    c->type = r ? r->type : -1;
    if (r && r->type == REDICT_REPLY_INTEGER)
        c->integer = r->integer;
    if (r && r->str) {
        c->len = r->len;
        memcpy(c->str, r->str, r->len < sizeof(c->str) - 1 ? r->len : sizeof(c->str) - 1);
        c->str[r->len < sizeof(c->str) - 1 ? r->len : sizeof(c->str) - 1] = '\0';
    }
}

/* The loop helpers of testloop.h on this file's base. */
#define spin_ms(ms) testloop_spin_ms(base, (ms))
#define WAIT_FOR(cond, ms) TESTLOOP_WAIT_FOR(base, cond, ms, 5)

static bool is_up(struct rconn *c)
{
    struct rconn_health h;

    rconn_get_health(c, &h);
    return h.connected;
}

static struct rconn_health health(struct rconn *c)
{
    struct rconn_health h;

    rconn_get_health(c, &h);
    return h;
}

static struct rconn_options opts_tcp(int port)
{
    struct rconn_options o = {
        .host = "127.0.0.1", .port = port, .connect_timeout_ms = 1000,
        .command_timeout_ms = 1000, .reconnect_min_ms = 50, .reconnect_max_ms = 400,
    };
    return o;
}

/* Sends one command built from fmt and waits for its callback; returns the call. */
static struct call run(struct rconn *c, const char *fmt, const char *a1, const char *a2)
{
    struct call k = { 0 };

    k.sent_ms = testproc_now_ms();
    CHECK(rconn_command(c, on_call, &k, 2000, fmt, a1, a2) == 0);
    WAIT_FOR(k.n > 0, 3000);
    CHECK(k.n == 1);
    return k;
}

static int start_plain(struct testproc *s, const char *extra1, const char *extra2)
{
    char port[16];
    int p = testproc_free_port();
    const char *args[] = { "--port", port, extra1, extra2, NULL };

    snprintf(port, sizeof(port), "%d", p);
    return testproc_start_redis(s, p, tmpdir, args) == 0 ? p : -1;
}

/* The path of a redis-server config file (0600, in tmpdir) that sets requirepass PW_REQ,
 * for "--include": the password never goes on redis-server's command line. */
static const char *auth_conf(void)
{
    static char path[300];
    snprintf(path, sizeof(path), "%s/auth.conf", tmpdir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && dprintf(fd, "requirepass %s\n", PW_REQ) > 0);
    if (fd >= 0)
        close(fd);
    return path;
}

/* ---- pure helpers ---- */

static void test_deadline(void)
{
    struct rdeadline_list l = { 0 };
    struct rdeadline_item it[5] = { 0 };

    rdeadline_insert(&l, &it[0], 30);
    rdeadline_insert(&l, &it[1], 10);
    rdeadline_insert(&l, &it[2], 20);
    rdeadline_insert(&l, &it[3], 10); /* ties keep insertion order */
    rdeadline_insert(&l, &it[4], 40);
    CHECK(l.count == 5);
    rdeadline_remove(&l, &it[2]);
    rdeadline_remove(&l, &it[2]); /* second remove is a no-op */
    CHECK(l.count == 4);
    CHECK(rdeadline_pop_expired(&l, 9) == NULL);
    CHECK(rdeadline_pop_expired(&l, 10) == &it[1]);
    CHECK(rdeadline_pop_expired(&l, 10) == &it[3]);
    CHECK(rdeadline_pop_expired(&l, 35) == &it[0]);
    CHECK(rdeadline_pop_expired(&l, 35) == NULL);
    CHECK(l.head == &it[4] && l.tail == &it[4] && l.count == 1);
    rdeadline_remove(&l, &it[4]);
    CHECK(l.head == NULL && l.tail == NULL && l.count == 0);
}

static void test_backoff(void)
{
    uint32_t st = 12345;
    bool ok = true, varied = false;
    unsigned first = rbackoff_delay_ms(100, 5000, 3, 0);

    for (unsigned a = 0; a < 40; a++)
        for (int i = 0; i < 200; i++) {
            unsigned top = a >= 6 ? 5000 : 100u << a;
            top = top > 5000 ? 5000 : top;
            unsigned d = rbackoff_delay_ms(100, 5000, a, rbackoff_rand(&st));
            ok = ok && d >= (top + 1) / 2 && d <= top;
            varied = varied || (a == 3 && d != first);
        }
    CHECK(ok);
    CHECK(varied); /* jitter: not the same delay every time */
    CHECK(rbackoff_delay_ms(100, 5000, 0, 0) == 50);
    CHECK(rbackoff_delay_ms(100, 5000, 0, 50) == 100);
    CHECK(rbackoff_delay_ms(100, 5000, 1000000, 2500) == 5000); /* capped, no overflow */
    CHECK(rbackoff_delay_ms(300, 100, 2, 0) == 150);            /* max < min: max = min */
}

static void test_script_sha(void)
{
    struct rconn_script s;

    CHECK(rconn_script_init(&s, "return 1") == 0);
    CHECK_STR(s.sha1, "e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    CHECK(rconn_script_init(&s, NULL) == -1);
}

/* ---- against redis-server ---- */

static int state_changes;
static bool last_state;

static void on_state(void *arg, bool up)
{
    state_changes++;
    last_state = up;
}

static void test_basic(void)
{
    struct testproc s = { 0 };
    char sock[300];
    struct call k[300];

    snprintf(sock, sizeof(sock), "%s/redis.sock", tmpdir);
    int port = start_plain(&s, "--unixsocket", sock);
    CHECK(port > 0);
    struct rconn_options o = opts_tcp(port);
    struct rconn *c = rconn_new(base, &o);
    CHECK(c != NULL);
    rconn_set_state_cb(c, on_state, NULL);
    CHECK(WAIT_FOR(is_up(c), 3000));
    CHECK(state_changes == 1 && last_state);
    CHECK(health(c).connects == 1 && health(c).since_unix_ms > 0);

    struct call set = { 0 };
    CHECK(rconn_command(c, on_call, &set, 0, "SET %s %s", "k1", "v1") == 0);
    CHECK(set.n == 0); /* never called from inside rconn_command */
    WAIT_FOR(set.n, 2000);
    CHECK(set.n == 1 && set.res == RCONN_OK && set.type == REDICT_REPLY_STATUS);
    CHECK_STR(set.str, "OK");
    struct call get = run(c, "GET %s", "k1", NULL);
    CHECK(get.res == RCONN_OK && get.type == REDICT_REPLY_STRING);
    CHECK_STR(get.str, "v1");

    /* binary-safe argv form */
    const char *argv[] = { "SET", "bin", "a\0b" };
    const size_t lens[] = { 3, 3, 3 };
    struct call b = { 0 };
    CHECK(rconn_command_argv(c, on_call, &b, 0, 3, argv, lens) == 0);
    WAIT_FOR(b.n, 2000);
    struct call bg = run(c, "GET %s", "bin", NULL);
    CHECK(bg.len == 3 && memcmp(bg.str, "a\0b", 3) == 0);
    CHECK(rconn_command_argv(c, on_call, &b, 0, 0, argv, lens) == -1);

    /* a Redis error is a reply, not a failure */
    struct call wt = run(c, "LPUSH %s %s", "k1", "x");
    CHECK(wt.res == RCONN_OK && wt.type == REDICT_REPLY_ERROR && strncmp(wt.str, "WRONGTYPE", 9) == 0);

    /* a pipeline: every callback once, replies in order */
    memset(k, 0, sizeof(k));
    for (int i = 0; i < 300; i++)
        CHECK(rconn_command(c, on_call, &k[i], 0, "INCR %s", "ctr") == 0);
    bool all = WAIT_FOR(k[299].n == 1, 3000), ordered = true;
    for (int i = 0; i < 300; i++)
        ordered = ordered && k[i].n == 1 && k[i].res == RCONN_OK && k[i].integer == i + 1;
    CHECK(all && ordered);
    CHECK(health(c).in_flight == 0);

    /* unix socket, and SELECT */
    struct rconn_options ou = { .unix_path = sock, .db = 2 };
    struct rconn *u = rconn_new(base, &ou);
    CHECK(u != NULL && WAIT_FOR(is_up(u), 3000));
    CHECK(run(u, "SET %s %s", "dbkey", "2").res == RCONN_OK);
    CHECK_STR(run(u, "GET %s", "dbkey", NULL).str, "2");
    CHECK(run(c, "GET %s", "dbkey", NULL).type == REDICT_REPLY_NIL); /* db 0 */
    rconn_free(u);

    /* invalid options are refused */
    struct rconn_options none = { 0 };
    CHECK(rconn_new(base, &none) == NULL);
    struct rconn_options tls_unix = { .unix_path = sock, .tls = true };
    CHECK(rconn_new(base, &tls_unix) == NULL);
    rconn_free(NULL);
    rconn_free(c);
    CHECK(state_changes == 1); /* free does not report a state change */
    testproc_stop(&s, SIGTERM);
}

static struct rconn *connect_auth(int port, const char *user, const char *pw)
{
    struct rconn_options o = opts_tcp(port);

    o.username = user;
    o.password = pw;
    return rconn_new(base, &o);
}

static void check_refused(struct rconn *c, const char *expect)
{
    CHECK(c != NULL);
    CHECK(WAIT_FOR(health(c).failures >= 1, 5000));
    struct rconn_health h = health(c);
    CHECK(!h.connected && h.connects == 0 && h.failures >= 1);
    CHECK(strstr(h.last_error, expect) != NULL);
    CHECK(strstr(h.last_error, PW_BAD) == NULL && strstr(h.last_error, PW_REQ) == NULL);
    struct call k = run(c, "PING", NULL, NULL);
    CHECK(k.res == RCONN_NOT_CONNECTED && k.done_ms - k.sent_ms < FAST_MS);
    if (!strstr(h.last_error, expect))
        fprintf(stderr, "last_error: %s (expected %s)\n", h.last_error, expect);
    rconn_free(c);
}

static void test_auth(void)
{
    struct testproc s = { 0 };
    int port = start_plain(&s, "--include", auth_conf());
    CHECK(port > 0);

    struct rconn *c = connect_auth(port, NULL, PW_REQ);
    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    CHECK_STR(run(c, "PING", NULL, NULL).str, "PONG");
    struct call acl = { 0 };
    char pass_rule[64];
    snprintf(pass_rule, sizeof(pass_rule), ">%s", PW_ACL);
    const char *argv[] = { "ACL", "SETUSER", "fogate", "on", pass_rule, "~*", "+@all" };
    CHECK(rconn_command_argv(c, on_call, &acl, 0, 7, argv, NULL) == 0);
    CHECK(WAIT_FOR(acl.n, 2000) && acl.type == REDICT_REPLY_STATUS);

    struct rconn *u = connect_auth(port, "fogate", PW_ACL);
    CHECK(u != NULL && WAIT_FOR(is_up(u), 3000));
    CHECK_STR(run(u, "ACL WHOAMI", NULL, NULL).str, "fogate");
    rconn_free(u);

    check_refused(connect_auth(port, NULL, PW_BAD), "WRONGPASS");
    check_refused(connect_auth(port, "fogate", PW_BAD), "WRONGPASS");
    check_refused(connect_auth(port, NULL, NULL), "NOAUTH");
    rconn_free(c);
    testproc_stop(&s, SIGTERM);
}

/* Queues n GETs with timeout_ms each into k[]. */
static void send_gets(struct rconn *c, struct call *k, int n, int timeout_ms)
{
    for (int i = 0; i < n; i++) {
        k[i] = (struct call){ .sent_ms = testproc_now_ms() };
        CHECK(rconn_command(c, on_call, &k[i], timeout_ms, "GET %s", "k") == 0);
    }
}

static bool timed_out_in_time(const struct call *k, int n, int timeout_ms)
{
    bool ok = true;

    for (int i = 0; i < n; i++) {
        long long took = k[i].done_ms - k[i].sent_ms;
        ok = ok && k[i].n == 1 && k[i].res == RCONN_TIMEOUT && took >= timeout_ms - 2 &&
             took <= timeout_ms + SLACK_MS;
        if (k[i].n != 1 || k[i].res != RCONN_TIMEOUT || took > timeout_ms + SLACK_MS)
            fprintf(stderr, "call %d: n=%d res=%s took=%lld (timeout %d)\n", i, k[i].n,
                    rconn_result_str(k[i].res), took, timeout_ms);
    }
    return ok;
}

static void test_stall(void)
{
    struct testproc s = { 0 };
    struct call a[5], b[4], l[2], late = { 0 };
    int port = start_plain(&s, NULL, NULL);
    struct rconn_options o = opts_tcp(port);

    o.command_timeout_ms = 3000; /* the stall limit: well above 150 ms + SLACK_MS + 200 ms */
    o.connect_timeout_ms = 400;
    struct rconn *c = rconn_new(base, &o);
    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));

    /* A short stall: timeouts fire on time, the connection is kept, late replies vanish. */
    kill(s.pid, SIGSTOP);
    send_gets(c, a, 5, 150);
    WAIT_FOR(a[4].n, 150 + 2 * SLACK_MS);
    CHECK(timed_out_in_time(a, 5, 150));
    spin_ms(200);
    kill(s.pid, SIGCONT);
    CHECK(WAIT_FOR(health(c).in_flight == 0, 5000)); /* the late replies came, dropped */
    for (int i = 0; i < 5; i++)
        CHECK(a[i].n == 1);
    CHECK(is_up(c) && health(c).connects == 1 && health(c).in_flight == 0);
    CHECK_STR(run(c, "PING", NULL, NULL).str, "PONG");

    /* A long stall: every caller still hears within its own timeout; the connection is
     * dropped after the stall limit, then commands fail fast until the server is back. */
    kill(s.pid, SIGSTOP);
    send_gets(c, b, 4, 300);
    send_gets(c, l, 2, 600);
    WAIT_FOR(l[1].n, 600 + 2 * SLACK_MS);
    CHECK(timed_out_in_time(b, 4, 300));
    CHECK(timed_out_in_time(l, 2, 600));
    CHECK(WAIT_FOR(!is_up(c), 3000 + SLACK_MS));
    CHECK(strstr(health(c).last_error, "stalled") != NULL);
    struct call nc = run(c, "PING", NULL, NULL);
    CHECK(nc.res == RCONN_NOT_CONNECTED && nc.done_ms - nc.sent_ms < FAST_MS);
    spin_ms(1000); /* reconnect attempts time out against the stopped server */
    CHECK(!is_up(c));
    kill(s.pid, SIGCONT);
    CHECK(WAIT_FOR(is_up(c), 4000));
    CHECK_STR(run(c, "PING", NULL, NULL).str, "PONG");
    late = run(c, "SET %s %s", "after", "stall");
    CHECK(late.res == RCONN_OK);
    spin_ms(200);
    bool once = true;
    for (int i = 0; i < 4; i++)
        once = once && b[i].n == 1;
    CHECK(once && l[0].n == 1 && l[1].n == 1 && nc.n == 1);
    rconn_free(c);
    testproc_stop(&s, SIGTERM);
}

static void test_restart(void)
{
    struct testproc s = { 0 };
    int port = start_plain(&s, NULL, NULL);
    char portstr[16];
    struct rconn_options o = opts_tcp(port);
    struct rconn *c = rconn_new(base, &o);

    state_changes = 0;
    rconn_set_state_cb(c, on_state, NULL);
    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    testproc_stop(&s, SIGKILL);
    CHECK(WAIT_FOR(!is_up(c), 1000));
    CHECK(state_changes == 2 && !last_state);
    CHECK(health(c).last_error[0] != '\0');

    unsigned long f0 = health(c).failures;
    long long t0 = testproc_now_ms();
    bool fast = true;
    for (int i = 0; i < 15; i++) {
        struct call k = run(c, "PING", NULL, NULL);
        fast = fast && k.res == RCONN_NOT_CONNECTED && k.done_ms - k.sent_ms < FAST_MS;
        spin_ms(100);
    }
    CHECK(fast);
    unsigned long attempts = health(c).failures - f0;
    long long took = testproc_now_ms() - t0;
    fprintf(stderr, "reconnect attempts in %lld ms: %lu\n", took, attempts);
    /* Backing off from 50 to 400 ms (equal jitter): the first four delays take 375 ms or
     * more, then 200 ms or more each; 50 ms fixed would be three times as many. Counted
     * against the time that really passed, however long the loaded machine took. */
    CHECK(attempts >= 3 && (long long)attempts <= 5 + took / 200);

    snprintf(portstr, sizeof(portstr), "%d", port);
    const char *args[] = { "--port", portstr, NULL };
    CHECK(testproc_start_redis(&s, port, tmpdir, args) == 0);
    CHECK(WAIT_FOR(is_up(c), 3000));
    CHECK(state_changes == 3 && last_state && health(c).connects == 2);
    CHECK_STR(run(c, "PING", NULL, NULL).str, "PONG");
    rconn_free(c);
    testproc_stop(&s, SIGTERM);
}

/* A resolver knowing `names` (from a hosts file) and a nameserver that never answers, so
 * nothing leaves 127.0.0.1. Free with evdns_base_free(dns, 0) once no lookup is pending. */
static struct evdns_base *make_dns(const char *names)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    char hosts[300], ns[32];
    struct evdns_base *dns = evdns_base_new(base, 0);

    if (dns_hole < 0) {
        dns_hole = socket(AF_INET, SOCK_DGRAM, 0);
        CHECK(bind(dns_hole, (struct sockaddr *)&a, sizeof(a)) == 0);
    }
    CHECK(getsockname(dns_hole, (struct sockaddr *)&a, &len) == 0);
    snprintf(hosts, sizeof(hosts), "%s/hosts", tmpdir);
    FILE *f = fopen(hosts, "w");
    CHECK(f != NULL && fprintf(f, "127.0.0.1 %s\n", names) > 0);
    fclose(f);
    snprintf(ns, sizeof(ns), "127.0.0.1:%d", ntohs(a.sin_port));
    CHECK(dns && evdns_base_load_hosts(dns, hosts) == 0);
    CHECK(evdns_base_nameserver_ip_add(dns, ns) == 0);
    CHECK(evdns_base_set_option(dns, "timeout:", "0.8") == 0);
    CHECK(evdns_base_set_option(dns, "attempts:", "1") == 0);
    return dns;
}

static void test_resolver(void)
{
    struct testproc s = { 0 };
    int port = start_plain(&s, NULL, NULL);
    struct evdns_base *dns = make_dns("redis.fogate.test");
    struct rconn_options o = opts_tcp(port);

    o.host = "redis.fogate.test";
    o.dns = dns;
    struct rconn *c = rconn_new(base, &o);
    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    CHECK_STR(run(c, "PING", NULL, NULL).str, "PONG");
    rconn_free(c);

    /* An unanswered lookup never blocks the loop, and the attempt ends on time. */
    o.host = "nowhere.fogate.test";
    o.connect_timeout_ms = 300;
    c = rconn_new(base, &o);
    struct call k = run(c, "PING", NULL, NULL);
    CHECK(k.res == RCONN_NOT_CONNECTED && k.done_ms - k.sent_ms < FAST_MS);
    CHECK(WAIT_FOR(strstr(health(c).last_error, "resolve nowhere.fogate.test: timeout after 300 ms")
                   != NULL, 5000));
    CHECK(!is_up(c));
    CHECK(WAIT_FOR(health(c).failures >= 2, 5000));
    CHECK(!is_up(c));
    rconn_free(c);
    spin_ms(1000); /* abandoned lookups time out inside evdns and free themselves */
    evdns_base_free(dns, 0);
    testproc_stop(&s, SIGTERM);
}

struct stat_q {
    char key[64];
    long long val;
    int n;
};

static void on_info(void *arg, enum rconn_result res, const redictReply *r)
{
    struct stat_q *q = arg;
    const char *p = res == RCONN_OK && r->type == REDICT_REPLY_STRING ? strstr(r->str, q->key) : NULL;

    q->n++;
    q->val = p ? atoll(p + strlen(q->key)) : -1;
}

/* How many times the server ran `cmd` since CONFIG RESETSTAT (-1 if never). */
static long long stat_calls(struct rconn *c, const char *cmd)
{
    struct stat_q q = { .n = 0 };

    snprintf(q.key, sizeof(q.key), "cmdstat_%s:calls=", cmd);
    CHECK(rconn_command(c, on_info, &q, 0, "INFO commandstats") == 0);
    CHECK(WAIT_FOR(q.n, 2000) && q.n == 1);
    return q.val;
}

static void test_eval(void)
{
    struct testproc s = { 0 };
    int port = start_plain(&s, NULL, NULL);
    struct rconn_options o = opts_tcp(port);
    struct rconn *c = rconn_new(base, &o);
    struct rconn_script incr, echo, bad;

    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    CHECK(rconn_script_init(&incr, "return redis.call('INCRBY', KEYS[1], ARGV[1])") == 0);
    CHECK(rconn_script_init(&echo, "return ARGV[1]") == 0);
    CHECK(rconn_script_init(&bad, "return redis.call('NOPE')") == 0);
    CHECK_STR(run(c, "SCRIPT LOAD %s", incr.body, NULL).str, incr.sha1);
    CHECK(run(c, "SCRIPT FLUSH", NULL, NULL).res == RCONN_OK);
    CHECK(run(c, "CONFIG RESETSTAT", NULL, NULL).res == RCONN_OK);

    struct call e1 = { 0 }, e2 = { 0 }, e3 = { 0 }, e4 = { 0 }, e5 = { 0 };
    CHECK(rconn_eval(c, &incr, on_call, &e1, 0, 1, "evk", "5", NULL) == 0);
    CHECK(WAIT_FOR(e1.n, 2000) && e1.n == 1 && e1.res == RCONN_OK && e1.integer == 5);
    CHECK(stat_calls(c, "eval") == 1); /* NOSCRIPT, then EVAL once */
    CHECK(run(c, "SCRIPT EXISTS %s", incr.sha1, NULL).res == RCONN_OK);

    CHECK(rconn_eval(c, &incr, on_call, &e2, 0, 1, "evk", "7", NULL) == 0);
    CHECK(WAIT_FOR(e2.n, 2000) && e2.res == RCONN_OK && e2.integer == 12);
    CHECK(stat_calls(c, "eval") == 1);    /* cached: EVALSHA only */
    CHECK(stat_calls(c, "evalsha") == 2);

    CHECK(run(c, "SCRIPT FLUSH", NULL, NULL).res == RCONN_OK);
    CHECK(rconn_eval(c, &incr, on_call, &e3, 0, 1, "evk", "1", NULL) == 0);
    CHECK(WAIT_FOR(e3.n, 2000) && e3.n == 1 && e3.integer == 13);
    CHECK(stat_calls(c, "eval") == 2);

    const char *argv[] = { "x\0y" };
    const size_t lens[] = { 3 };
    CHECK(rconn_evalv(c, &echo, on_call, &e4, 0, 0, 1, argv, lens) == 0);
    CHECK(WAIT_FOR(e4.n, 2000) && e4.n == 1 && e4.len == 3 && memcmp(e4.str, "x\0y", 3) == 0);

    CHECK(rconn_eval(c, &bad, on_call, &e5, 0, 0, NULL) == 0);
    CHECK(WAIT_FOR(e5.n, 2000) && e5.res == RCONN_OK && e5.type == REDICT_REPLY_ERROR);
    spin_ms(100);
    CHECK(e1.n == 1 && e2.n == 1 && e3.n == 1 && e4.n == 1 && e5.n == 1);
    CHECK(rconn_evalv(c, &incr, on_call, &e5, 0, 2, 1, argv, lens) == -1); /* nkeys > argc */
    rconn_free(c);
    testproc_stop(&s, SIGTERM);
}

static const char *cert_dir(char *buf, size_t len)
{
    const char *src = getenv("FOGATE_SRC");

    if (src && *src) {
        snprintf(buf, len, "%s/tests/unit/cache/rconn", src);
    } else { /* CMake compiles with the absolute source path */
        snprintf(buf, len, "%s", __FILE__);
        char *slash = strrchr(buf, '/');
        snprintf(slash ? slash + 1 : buf, len - (size_t)(slash ? slash + 1 - buf : 0), "rconn");
    }
    return buf;
}

static struct rconn *connect_tls(int port, const char *name, const char *ca)
{
    char cafile[300];
    struct rconn_options o = opts_tcp(port);

    snprintf(cafile, sizeof(cafile), "%s/%s", tmpdir, ca ? ca : "");
    o.tls = true;
    o.tls_server_name = name;
    o.tls_ca_file = ca ? cafile : NULL;
    o.password = PW_REQ;
    return rconn_new(base, &o);
}

static void test_tls(void)
{
    char dir[512], port[16], cert[300], key[300], ca[300];
    struct testproc s = { 0 };
    int p = testproc_free_port();

    CHECK(testproc_sh("sh '%s/make-certs.sh' '%s'", cert_dir(dir, sizeof(dir)), tmpdir) == 0);
    snprintf(port, sizeof(port), "%d", p);
    snprintf(cert, sizeof(cert), "%s/server.crt", tmpdir);
    snprintf(key, sizeof(key), "%s/server.key", tmpdir);
    snprintf(ca, sizeof(ca), "%s/ca.crt", tmpdir);
    const char *args[] = { "--port", "0", "--tls-port", port, "--tls-cert-file", cert,
                           "--tls-key-file", key, "--tls-ca-cert-file", ca,
                           "--tls-auth-clients", "no", "--include", auth_conf(), NULL };
    CHECK(testproc_start_redis(&s, p, tmpdir, args) == 0);

    struct rconn *c = connect_tls(p, "localhost", "ca.crt");
    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    CHECK(run(c, "SET %s %s", "tlskey", "tlsval").res == RCONN_OK);
    CHECK_STR(run(c, "GET %s", "tlskey", NULL).str, "tlsval");
    rconn_free(c);
    c = connect_tls(p, NULL, "ca.crt"); /* the name defaults to the host: IP 127.0.0.1 */
    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    rconn_free(c);
    struct evdns_base *dns = make_dns("localhost");
    struct rconn_options byname = opts_tcp(p);
    byname.host = "localhost"; /* resolved, and the default server name */
    byname.dns = dns;
    byname.tls = true;
    byname.tls_ca_file = ca;
    byname.password = PW_REQ;
    c = rconn_new(base, &byname);
    CHECK(c != NULL && WAIT_FOR(is_up(c), 3000));
    CHECK_STR(run(c, "PING", NULL, NULL).str, "PONG");
    rconn_free(c);
    evdns_base_free(dns, 0);

    check_refused(connect_tls(p, "redis.example.net", "ca.crt"), "hostname mismatch");
    check_refused(connect_tls(p, "127.0.0.2", "ca.crt"), "IP address mismatch");
    check_refused(connect_tls(p, "localhost", "other-ca.crt"), "verify failed");
    check_refused(connect_tls(p, "localhost", NULL), "verify failed"); /* system store */
    CHECK(connect_tls(p, "localhost", "missing-ca.crt") == NULL);
    testproc_stop(&s, SIGTERM);
}

static struct rconn *requeue_target;
static int requeue_rc = 0;

static void on_cancel_requeue(void *arg, enum rconn_result res, const redictReply *r)
{
    on_call(arg, res, r);
    requeue_rc = rconn_command(requeue_target, on_call, arg, 0, "PING");
}

static void test_free_pending(void)
{
    struct testproc s = { 0 };
    struct call k[10], ev = { 0 }, ov[5], nc[3];
    struct rconn_script sc;
    int port = start_plain(&s, NULL, NULL);
    struct rconn_options o = opts_tcp(port);
    struct rconn *c = rconn_new(base, &o);
    o.max_pending = 3;
    struct rconn *small = rconn_new(base, &o);

    CHECK(c && small && WAIT_FOR(is_up(c) && is_up(small), 3000));
    kill(s.pid, SIGSTOP);
    send_gets(c, k, 9, 5000);
    k[9] = (struct call){ 0 };
    requeue_target = c;
    CHECK(rconn_command(c, on_cancel_requeue, &k[9], 5000, "GET %s", "k") == 0);
    CHECK(rconn_script_init(&sc, "return 1") == 0);
    CHECK(rconn_eval(c, &sc, on_call, &ev, 5000, 0, NULL) == 0);
    send_gets(small, ov, 5, 5000);
    spin_ms(100);
    CHECK(k[0].n == 0 && ev.n == 0 && health(c).in_flight == 11);
    CHECK(ov[3].n == 1 && ov[3].res == RCONN_OVERLOADED && ov[4].res == RCONN_OVERLOADED);
    CHECK(ov[0].n == 0 && health(small).in_flight == 3);

    rconn_free(c);
    bool cancelled = ev.n == 1 && ev.res == RCONN_CANCELLED;
    for (int i = 0; i < 10; i++)
        cancelled = cancelled && k[i].n == 1 && k[i].res == RCONN_CANCELLED;
    CHECK(cancelled);
    CHECK(requeue_rc == -1); /* nothing new is accepted while freeing */
    rconn_free(small);
    CHECK(ov[0].n == 1 && ov[0].res == RCONN_CANCELLED && ov[2].res == RCONN_CANCELLED);
    kill(s.pid, SIGCONT);

    /* Failures not delivered yet are cancelled too, exactly once. */
    struct rconn_options dead = opts_tcp(testproc_free_port());
    struct rconn *d = rconn_new(base, &dead);
    send_gets(d, nc, 3, 1000);
    rconn_free(d);
    CHECK(nc[0].n == 1 && nc[0].res == RCONN_CANCELLED && nc[2].n == 1);
    spin_ms(100);
    CHECK(k[0].n == 1 && nc[0].n == 1 && ov[0].n == 1);
    testproc_stop(&s, SIGTERM);
}

static void test_reply_cap(void)
{
    struct testproc s = { 0 };
    int port = start_plain(&s, NULL, NULL);
    struct rconn_options o = opts_tcp(port);
    struct rconn *c = rconn_new(base, &o);
    o.max_reply_bytes = 4096;
    struct rconn *small = rconn_new(base, &o);
    static char big[100000];

    memset(big, 'x', sizeof(big) - 1);
    CHECK(c && small && WAIT_FOR(is_up(c) && is_up(small), 3000));
    CHECK(run(c, "SET %s %s", "big", big).res == RCONN_OK);
    CHECK(run(c, "GET %s", "big", NULL).len == sizeof(big) - 1);
    struct call k = run(small, "GET %s", "big", NULL);
    CHECK(k.res == RCONN_DISCONNECTED);
    CHECK(strstr(health(small).last_error, "larger than 4096") != NULL);
    CHECK(WAIT_FOR(is_up(small), 3000));
    CHECK_STR(run(small, "PING", NULL, NULL).str, "PONG");
    rconn_free(small);
    rconn_free(c);
    testproc_stop(&s, SIGTERM);
}

/* The log must name the errors and never carry a password. */
static void check_log(FILE *logf)
{
    char line[4096];
    bool wrongpass = false, leak = false;

    rewind(logf);
    while (fgets(line, sizeof(line), logf)) {
        wrongpass = wrongpass || strstr(line, "WRONGPASS");
        leak = leak || strstr(line, PW_REQ) || strstr(line, PW_ACL) || strstr(line, PW_BAD);
    }
    CHECK(wrongpass);
    CHECK(!leak);
}

static void on_keepalive(evutil_socket_t fd, short what, void *arg)
{
}

int main(void)
{
    char logpath[300];

    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/fogate-rconn-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    snprintf(logpath, sizeof(logpath), "%s/fogate.log", tmpdir);
    FILE *logf = fopen(logpath, "w+");
    CHECK(logf != NULL);
    log_set_stream(logf);
    base = event_base_new();
    struct event *keep = event_new(base, -1, EV_PERSIST, on_keepalive, NULL);
    struct timeval sec = { 1, 0 };
    event_add(keep, &sec);

    test_deadline();
    test_backoff();
    test_script_sha();
    test_basic();
    test_auth();
    test_stall();
    test_restart();
    test_resolver();
    test_eval();
    test_tls();
    test_free_pending();
    test_reply_cap();
    check_log(logf);

    log_set_stream(NULL);
    fclose(logf);
    if (dns_hole >= 0)
        close(dns_hole);
    event_free(keep);
    event_base_free(base);
    testproc_rmtree(tmpdir);
    return check_done();
}
