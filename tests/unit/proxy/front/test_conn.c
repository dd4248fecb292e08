/* test_conn: the connection layer's body interface on a real event loop, driven by a
 * blocking client in a second thread: 100-continue sent only when a handler reads the
 * body, bodies streamed to a sink in pieces (Content-Length and chunked), a sink refusing,
 * a body over the limit, a body that stops arriving, and a client that leaves mid-body. */
#include "check.h"
#include "conn.h"
#include "log.h"
#include "reply.h"

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

/* Server side: touched only by the event-loop (main) thread. */
struct echo {
    size_t bytes;
    size_t refuse_after;   /* 0: never refuse */
    bool answer_failures;  /* answer inside on_end(false), or leave it to conn */
    int ends_ok;
    int ends_failed;
};

static struct echo echo;
static atomic_int client_done;
static int port;

static int on_data(struct conn_req *req, const char *data, size_t len, void *arg)
{
    struct echo *e = arg;
    e->bytes += len;
    return e->refuse_after && e->bytes > e->refuse_after ? -1 : 0;
}

static void on_end(struct conn_req *req, bool ok, void *arg)
{
    struct echo *e = arg;
    char body[64];

    if (!ok) {
        e->ends_failed++;
        if (e->answer_failures)
            reply_error(req, 422, "refused_by_handler", "the handler refused the body");
        return;
    }
    e->ends_ok++;
    int n = snprintf(body, sizeof body, "{\"got\":%zu}", e->bytes);
    reply_json(req, 200, body, (size_t)n);
}

static void on_request(struct conn_req *req, void *arg)
{
    static const struct conn_body_sink sink = { on_data, on_end, &echo };
    const struct http1_head *h = conn_req_head(req);

    echo.bytes = 0;
    echo.refuse_after = 0;
    echo.answer_failures = false;
    if (h->path_len == 7 && memcmp(h->target, "/refuse", 7) == 0) {
        echo.refuse_after = 10;
        echo.answer_failures = true;
    }
    if (conn_req_read_body(req, &sink) < 0) /* no body: answer at once */
        reply_json(req, 200, "{\"got\":0}", 9);
}

/* ---- client side (second thread) ------------------------------------------------------ */

static int dial(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void put(int fd, const char *s)
{
    if (send(fd, s, strlen(s), MSG_NOSIGNAL) < 0)
        perror("send");
}

/* Reads until `want` bytes, the peer closes, or 3 s pass. Returns the length read. */
static size_t get(int fd, char *buf, size_t cap, size_t want)
{
    size_t n = 0;
    struct pollfd p = { .fd = fd, .events = POLLIN };

    while (n < want && n < cap - 1 && poll(&p, 1, 3000) == 1) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

/* Reads one whole response (head and Content-Length body) into buf. */
static void get_response(int fd, char *buf, size_t cap)
{
    size_t n = get(fd, buf, cap, 1);
    char *end;

    while (!(end = strstr(buf, "\r\n\r\n")) && n > 0 && n < cap - 1)
        n += get(fd, buf + n, cap - n, 1);
    const char *cl = strstr(buf, "Content-Length: ");
    if (!end || !cl)
        return;
    size_t total = (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
    if (n < total)
        get(fd, buf + n, cap - n, total - n);
}

static void test_continue_then_body_in_pieces(void)
{
    char buf[2048];
    int fd = dial();

    put(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n");
    get(fd, buf, sizeof buf, 25);
    CHECK_STR(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    put(fd, "01234");
    usleep(50000);
    put(fd, "56789");
    get_response(fd, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strstr(buf, "{\"got\":10}") != NULL);
    put(fd, "GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"); /* the connection is still good */
    get_response(fd, buf, sizeof buf);
    CHECK(strstr(buf, "{\"got\":0}") != NULL && strstr(buf, "Connection: close") == NULL);
    close(fd);
}

static void test_chunked_in_pieces(void)
{
    char buf[2048];
    int fd = dial();

    put(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
    usleep(30000);
    put(fd, "lo\r\n6\r\n wor");
    usleep(30000);
    put(fd, "ld\r\n0\r\n\r\n");
    get_response(fd, buf, sizeof buf);
    CHECK(strstr(buf, "{\"got\":11}") != NULL);
    close(fd);
}

static void test_failures(void)
{
    char buf[4096];
    char big[400];
    int fd = dial();

    /* over max_body_bytes (100) while chunked: conn answers 413 itself */
    snprintf(big, sizeof big, "96\r\n%0150d\r\n0\r\n\r\n", 0);
    put(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    put(fd, big);
    get_response(fd, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 413 ", 13) == 0 && strstr(buf, "Connection: close"));
    CHECK(strstr(buf, "\"body_too_large\"") != NULL);
    close(fd);

    /* the sink refuses after 10 bytes and answers 422 itself */
    fd = dial();
    put(fd, "POST /refuse HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n"
            "01234567890123456789012345678901234567890123456789");
    get_response(fd, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 422 ", 13) == 0 && strstr(buf, "Connection: close"));
    close(fd);

    /* the body stops arriving: 408 after idle_timeout_ms (300) */
    fd = dial();
    put(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n012");
    get_response(fd, buf, sizeof buf);
    CHECK(strncmp(buf, "HTTP/1.1 408 ", 13) == 0 && strstr(buf, "\"body_timeout\""));
    close(fd);

    /* the client leaves mid-body: the sink hears of it (main() waits for that) */
    fd = dial();
    put(fd, "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
    usleep(50000);
    close(fd);
}

static void *client(void *arg)
{
    test_continue_then_body_in_pieces();
    test_chunked_in_pieces();
    test_failures();
    atomic_store(&client_done, 1);
    return NULL;
}

#define BODIES 6          /* bodies the client sends: 2 whole, 4 failed */
#define SETTLE_MS 10000   /* bound on the wait for the last one's end after the client */

/* Stops the loop once the client is done and the sink has seen every body end (the last
 * one, cut off by the client, ends when the server notices the close), or SETTLE_MS
 * after the client is done. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    static int ticks_after;

    if (atomic_load(&client_done) &&
        (echo.ends_ok + echo.ends_failed >= BODIES || ++ticks_after * 20 > SETTLE_MS))
        event_base_loopbreak(arg);
}

int main(void)
{
    struct conn_options opt = {
        .head = { .max_header_bytes = 4096, .max_headers = 20 },
        .max_body_bytes = 100, .max_connections = 16,
        .head_timeout_ms = 2000, .idle_timeout_ms = 300,
    };
    struct event_base *base = event_base_new();
    struct conn_server *srv = conn_server_new(base, &opt, on_request, NULL);
    char bound[64];
    pthread_t t;

    log_set_level(LOG_LVL_ERROR); /* request lines would only be noise here */
    CHECK(conn_server_listen(srv, "127.0.0.1", 0, bound, sizeof bound) == 0);
    port = atoi(strrchr(bound, ':') + 1);
    CHECK(port > 0);
    struct timeval tick = { 0, 20000 };
    struct event *ticker = event_new(base, -1, EV_PERSIST, on_tick, base);
    event_add(ticker, &tick);
    pthread_create(&t, NULL, client, NULL);
    event_base_dispatch(base);
    pthread_join(t, NULL);

    CHECK(echo.ends_ok == 2);      /* the two whole bodies */
    CHECK(echo.ends_failed == 4);  /* too large, refused, too slow, cut off */
    event_free(ticker);
    conn_server_free(srv);
    event_base_free(base);
    return check_done();
}
