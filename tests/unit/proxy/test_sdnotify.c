/* test_sdnotify: the sd_notify messages (pure formatting and NOTIFY_SOCKET addresses), then
 * real sends to a datagram socket this test binds, by path and in the abstract namespace. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "sdnotify.h"

static void test_address(void)
{
    struct sockaddr_un sa;
    socklen_t len = 0;
    char longer[sizeof sa.sun_path + 2];

    CHECK(sdnotify_address("/run/systemd/notify", &sa, &len) == 0);
    CHECK(sa.sun_family == AF_UNIX);
    CHECK_STR(sa.sun_path, "/run/systemd/notify");
    CHECK(len == offsetof(struct sockaddr_un, sun_path) + sizeof "/run/systemd/notify");
    /* abstract: a NUL, then the name without a terminating NUL */
    CHECK(sdnotify_address("@fogate/notify", &sa, &len) == 0);
    CHECK(sa.sun_path[0] == '\0' && memcmp(sa.sun_path + 1, "fogate/notify", 13) == 0);
    CHECK(len == offsetof(struct sockaddr_un, sun_path) + 14);

    CHECK(sdnotify_address(NULL, &sa, &len) == -1);
    CHECK(sdnotify_address("", &sa, &len) == -1);
    CHECK(sdnotify_address("@", &sa, &len) == -1);
    CHECK(sdnotify_address("relative/notify", &sa, &len) == -1);
    CHECK(sdnotify_address("vsock:2:1234", &sa, &len) == -1);
    memset(longer, 'x', sizeof longer - 1);
    longer[0] = '/';
    longer[sizeof longer - 1] = '\0';
    CHECK(sdnotify_address(longer, &sa, &len) == -1);
    longer[sizeof sa.sun_path - 1] = '\0'; /* the longest that fits with its NUL */
    CHECK(sdnotify_address(longer, &sa, &len) == 0);
}

static void test_format(void)
{
    char buf[SDNOTIFY_MSG_MAX];

    CHECK(sdnotify_format(buf, sizeof buf, SDNOTIFY_READY, 7, NULL) == 8);
    CHECK_STR(buf, "READY=1\n");
    sdnotify_format(buf, sizeof buf, SDNOTIFY_READY, 7, "listening on port 8080");
    CHECK_STR(buf, "READY=1\nSTATUS=listening on port 8080\n");
    sdnotify_format(buf, sizeof buf, SDNOTIFY_RELOADING, 18446744073709551615ull, "reloading");
    CHECK_STR(buf, "RELOADING=1\nMONOTONIC_USEC=18446744073709551615\nSTATUS=reloading\n");
    sdnotify_format(buf, sizeof buf, SDNOTIFY_STOPPING, 1, NULL);
    CHECK_STR(buf, "STOPPING=1\n");
    sdnotify_format(buf, sizeof buf, SDNOTIFY_STATUS_ONLY, 1, "a\nREADY=1");
    CHECK_STR(buf, "STATUS=a\n"); /* a newline cannot smuggle another assignment in */
    CHECK(sdnotify_format(buf, 12, SDNOTIFY_RELOADING, 123, NULL) == -1);
    CHECK_STR(buf, "");
    CHECK(sdnotify_format(buf, 8, SDNOTIFY_READY, 0, NULL) == -1);
    CHECK(sdnotify_format(buf, 9, SDNOTIFY_READY, 0, NULL) == 8);
}

static void test_status_text(void)
{
    char buf[SDNOTIFY_STATUS_MAX];
    struct sdnotify_health h = { .connections = 1, .envs = 2, .envs_ready = 2, .ledger = -1,
                                 .workers = 1 };

    sdnotify_status_text(buf, sizeof buf, &h);
    CHECK_STR(buf, "serving: 1 connection; tokens ready for 2/2 environments; ledger off");
    h = (struct sdnotify_health){ .connections = 0, .envs = 3, .envs_ready = 1, .ledger = 2,
                                  .workers = 2 };
    sdnotify_status_text(buf, sizeof buf, &h);
    CHECK_STR(buf, "serving: 0 connections; tokens ready for 1/3 environments; ledger: Redis up");
    h.ledger = 0;
    h.connections = 12;
    sdnotify_status_text(buf, sizeof buf, &h);
    CHECK_STR(buf, "serving: 12 connections; tokens ready for 1/3 environments; "
                   "ledger: Redis DOWN in 2/2 workers");
    CHECK(sdnotify_status_text(buf, 10, &h) == 9);
    CHECK_STR(buf, "serving: ");
}

/* Binds a datagram socket at `where` ("/path" or "@name"); returns the fd. */
static int bind_at(const char *where)
{
    struct sockaddr_un sa;
    socklen_t len;
    struct timeval tv = { .tv_sec = 5 };
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

    if (fd < 0 || sdnotify_address(where, &sa, &len) < 0 ||
        bind(fd, (struct sockaddr *)&sa, len) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
        perror("bind_at");
        return -1;
    }
    return fd;
}

static void expect_datagram(int fd, const char *want)
{
    char buf[SDNOTIFY_MSG_MAX + 1];
    ssize_t n = recv(fd, buf, sizeof buf - 1, 0);

    CHECK(n > 0);
    buf[n > 0 ? n : 0] = '\0';
    CHECK(strncmp(buf, want, strlen(want)) == 0);
    if (strncmp(buf, want, strlen(want)) != 0)
        fprintf(stderr, "got \"%s\", want it to start with \"%s\"\n", buf, want);
}

static void test_send(const char *where)
{
    struct sdnotify *n = NULL;
    int fd = bind_at(where);

    CHECK(fd >= 0);
    setenv("NOTIFY_SOCKET", where, 1);
    CHECK(sdnotify_open(&n) == 0);
    CHECK(sdnotify_enabled(n));
    CHECK(sdnotify_send(n, SDNOTIFY_READY, "up") == 0);
    CHECK(sdnotify_send(n, SDNOTIFY_RELOADING, NULL) == 0);
    CHECK(sdnotify_send(n, SDNOTIFY_STOPPING, NULL) == 0);
    expect_datagram(fd, "READY=1\nSTATUS=up\n");
    expect_datagram(fd, "RELOADING=1\nMONOTONIC_USEC=");
    expect_datagram(fd, "STOPPING=1\n");
    sdnotify_free(n);
    close(fd);
}

static void test_not_under_systemd(void)
{
    struct sdnotify *n = (struct sdnotify *)&n;

    unsetenv("NOTIFY_SOCKET");
    CHECK(sdnotify_open(&n) == 0);
    CHECK(n == NULL && !sdnotify_enabled(n));
    CHECK(sdnotify_send(n, SDNOTIFY_READY, "nobody listens") == 0);
    sdnotify_free(n);
    setenv("NOTIFY_SOCKET", "relative", 1);
    CHECK(sdnotify_open(&n) == -1 && n == NULL);
    /* a socket nobody has bound: the send fails and says so, nothing else happens */
    setenv("NOTIFY_SOCKET", "@fogate-test-nobody-binds-this", 1);
    CHECK(sdnotify_open(&n) == 0 && n != NULL);
    CHECK(sdnotify_send(n, SDNOTIFY_READY, NULL) == -1);
    sdnotify_free(n);
}

int main(void)
{
    char path[] = "/tmp/fogate-notify-XXXXXX", sock[64], abstract[64];

    test_address();
    test_format();
    test_status_text();
    CHECK(mkdtemp(path) != NULL);
    snprintf(sock, sizeof sock, "%s/notify", path);
    test_send(sock);
    unlink(sock);
    rmdir(path);
    snprintf(abstract, sizeof abstract, "@fogate-test-notify-%ld", (long)getpid());
    test_send(abstract);
    test_not_under_systemd();
    return check_done();
}
