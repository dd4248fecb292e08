/* test_h1tls: drives proxy/upstream/h1tls.c with its own poll loop against a real TLS
 * server (nginx or a Python ssl peer started by test_h1tls.py) and prints one JSON line.
 *   test_h1tls handshake HOST PORT CA           connect to 127.0.0.1:PORT, verify as HOST
 *   test_h1tls get HOST PORT CA PATH BUFSIZE    GET with Connection: close, read to EOF
 *   test_h1tls put HOST PORT CA PATH SIZE       PUT SIZE bytes through a 4 KiB SO_SNDBUF
 *   test_h1tls idle HOST PORT CA PATH N         N kept-alive connections: heap held each
 * CA "-" means the system store. Every wait is a poll with a deadline. */
#define _GNU_SOURCE /* memmem */
#include "h1tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define WAIT_MS 30000
#define MAX_BODY (64u << 20)

static struct {
    long want_read, want_write, partial_writes, writes, reads;
    size_t max_pending;
} st;

static void fail(const char *what)
{
    printf("{\"fatal\":\"%s\",\"errno\":%d}\n", what, errno);
    exit(2);
}

/* Heap accounting for the idle case: OpenSSL's allocations with a size header. */
static long long live_bytes;

static void *count_malloc(size_t n, const char *file, int line)
{
    size_t *p = malloc(n + 16);

    (void)file, (void)line;
    if (!p)
        return NULL;
    *p = n;
    live_bytes += (long long)n;
    return (char *)p + 16;
}

static void count_free(void *q, const char *file, int line)
{
    size_t *p;

    (void)file, (void)line;
    if (!q)
        return;
    p = (size_t *)((char *)q - 16);
    live_bytes -= (long long)*p;
    free(p);
}

static void *count_realloc(void *q, size_t n, const char *file, int line)
{
    void *r;

    if (!q)
        return count_malloc(n, file, line);
    if (n == 0) {
        count_free(q, file, line);
        return NULL;
    }
    r = count_malloc(n, file, line);
    if (!r)
        return NULL;
    memcpy(r, q, *(size_t *)((char *)q - 16) < n ? *(size_t *)((char *)q - 16) : n);
    count_free(q, file, line);
    return r;
}

static int tcp_connect(int port, int sndbuf)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct pollfd p;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int soerr = 0;
    socklen_t sl = sizeof soerr;

    if (fd < 0)
        fail("socket");
    if (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0)
        fail("SO_SNDBUF");
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS)
        fail("connect");
    p = (struct pollfd){.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, WAIT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
        soerr != 0)
        fail("connect wait");
    return fd;
}

/* Waits for what a WANT_* code asks; exits on the deadline. */
static void wait_for(int fd, long code)
{
    struct pollfd p = {.fd = fd, .events = code == H1TLS_WANT_READ ? POLLIN : POLLOUT};

    if (code == H1TLS_WANT_READ)
        st.want_read++;
    else
        st.want_write++;
    if (poll(&p, 1, WAIT_MS) != 1)
        fail("poll deadline");
}

static int is_want(long rc)
{
    return rc == H1TLS_WANT_READ || rc == H1TLS_WANT_WRITE;
}

static int handshake(struct h1tls *t, int fd)
{
    int rc;

    while (is_want(rc = h1tls_handshake(t)))
        wait_for(fd, rc);
    return rc;
}

static ssize_t read_some(struct h1tls *t, int fd, void *buf, size_t len)
{
    ssize_t n;

    while (is_want(n = h1tls_read(t, buf, len)))
        wait_for(fd, n);
    if (n > 0) {
        st.reads++;
        if (h1tls_pending(t) > st.max_pending)
            st.max_pending = h1tls_pending(t);
    }
    return n;
}

/* Writes all of buf; returns 0 or the failing code. */
static long write_all(struct h1tls *t, int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = h1tls_write(t, buf, len);

        if (is_want(n)) {
            wait_for(fd, n);
            continue;
        }
        if (n <= 0)
            return n;
        st.writes++;
        if ((size_t)n < len)
            st.partial_writes++;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static void json_str(const char *key, const char *s)
{
    printf("\"%s\":\"", key);
    for (; *s; s++)
        putchar(*s == '"' || *s == '\\' ? '\'' : *s);
    printf("\"");
}

static void print_stats(void)
{
    printf("\"want_read\":%ld,\"want_write\":%ld,\"writes\":%ld,\"partial_writes\":%ld,"
           "\"reads\":%ld,\"max_pending\":%zu",
           st.want_read, st.want_write, st.writes, st.partial_writes, st.reads, st.max_pending);
}

static void sha256_hex(const void *p, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL);
    for (unsigned i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* Reads to EOF (or error) into a buffer it grows up to MAX_BODY; prints status, body
 * length and hash, and how the stream ended. */
static void read_response(struct h1tls *t, int fd, size_t bufsize)
{
    size_t cap = 1 << 20, len = 0;
    char *all = malloc(cap), *chunk = malloc(bufsize), sha[65] = "";
    const char *body;
    ssize_t n;
    int status = 0;

    if (!all || !chunk)
        fail("malloc");
    while ((n = read_some(t, fd, chunk, bufsize)) > 0) {
        if (len + (size_t)n > cap) {
            cap *= 2;
            if (cap > MAX_BODY || !(all = realloc(all, cap)))
                fail("response too big");
        }
        memcpy(all + len, chunk, (size_t)n);
        len += (size_t)n;
    }
    body = memmem(all, len, "\r\n\r\n", 4);
    if (len > 12)
        sscanf(all, "HTTP/1.1 %d", &status);
    if (body) {
        body += 4;
        sha256_hex(body, len - (size_t)(body - all), sha);
    }
    printf(",\"status\":%d,\"body\":%zu,\"sha256\":\"%s\",\"end\":\"%s\",", status,
           body ? len - (size_t)(body - all) : 0, sha,
           n == H1TLS_EOF ? (*h1tls_error(t) ? "truncated" : "clean") : "error");
    json_str("error", h1tls_error(t));
    free(all);
    free(chunk);
}

static struct h1tls *open_session(struct h1tls_ctx *x, const char *host, int port, int sndbuf,
                                  int *fd)
{
    struct h1tls *t;

    *fd = tcp_connect(port, sndbuf);
    t = h1tls_new(x, *fd, host);
    if (!t)
        fail("h1tls_new");
    return t;
}

static int run_handshake(struct h1tls_ctx *x, const char *host, int port)
{
    int fd, rc;
    struct h1tls *t = open_session(x, host, port, 0, &fd);

    rc = handshake(t, fd);
    printf("{\"rc\":%d,", rc);
    json_str("error", h1tls_error(t));
    printf("}\n");
    h1tls_free(t);
    close(fd);
    return 0;
}

static int run_get(struct h1tls_ctx *x, const char *host, int port, const char *path,
                   size_t bufsize)
{
    char req[1024];
    int fd, rc, n;
    struct h1tls *t = open_session(x, host, port, 0, &fd);

    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 path, host);
    rc = handshake(t, fd);
    printf("{\"rc\":%d", rc);
    if (rc == H1TLS_OK && write_all(t, fd, req, (size_t)n) == 0)
        read_response(t, fd, bufsize);
    printf(",");
    print_stats();
    printf("}\n");
    h1tls_free(t);
    close(fd);
    return 0;
}

/* Head and body in one buffer, written with one h1tls_write per wake-up: partial writes
 * show as counts returned below the length asked. */
static int run_put(struct h1tls_ctx *x, const char *host, int port, const char *path,
                   size_t size)
{
    char head[1024], sha[65];
    int fd, rc, hn;
    unsigned long long r = 0x9e3779b97f4a7c15ull;
    struct h1tls *t = open_session(x, host, port, 4096, &fd);
    char *buf;

    hn = snprintf(head, sizeof head,
                  "PUT %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                  "Content-Length: %zu\r\n\r\n", path, host, size);
    buf = malloc((size_t)hn + size);
    if (!buf)
        fail("malloc");
    memcpy(buf, head, (size_t)hn);
    for (size_t i = 0; i < size; i++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        buf[(size_t)hn + i] = (char)(r >> 32);
    }
    sha256_hex(buf + hn, size, sha);
    rc = handshake(t, fd);
    printf("{\"rc\":%d,\"sent_sha256\":\"%s\"", rc, sha);
    if (rc == H1TLS_OK) {
        long wr = write_all(t, fd, buf, (size_t)hn + size);

        printf(",\"write_rc\":%ld", wr);
        if (wr == 0)
            read_response(t, fd, 4096);
    }
    printf(",");
    print_stats();
    printf("}\n");
    free(buf);
    h1tls_free(t);
    close(fd);
    return 0;
}

/* Reads one Content-Length response on a kept-alive connection (the head fits the first
 * read: nginx's is small). */
static int read_one(struct h1tls *t, int fd)
{
    char buf[4097];
    size_t got = 0, want = 0;
    ssize_t n;

    while ((n = read_some(t, fd, buf, sizeof buf - 1)) > 0) {
        buf[n] = '\0';
        if (got == 0) {
            const char *end = strstr(buf, "\r\n\r\n"), *cl = strstr(buf, "Content-Length: ");

            if (!end || !cl)
                return -1;
            want = (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10);
        }
        got += (size_t)n;
        if (got >= want)
            return 0;
    }
    return -1;
}

static int run_idle(struct h1tls_ctx *x, const char *host, int port, const char *path, int count)
{
    struct h1tls *t[64];
    int fd[64];
    long long base = live_bytes;
    char req[1024];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);

    if (count > 64)
        count = 64;
    for (int i = 0; i < count; i++) {
        t[i] = open_session(x, host, port, 0, &fd[i]);
        if (handshake(t[i], fd[i]) != H1TLS_OK || write_all(t[i], fd[i], req, (size_t)n) != 0 ||
            read_one(t[i], fd[i]) != 0)
            fail("idle request");
    }
    printf("{\"connections\":%d,\"bytes_per_idle\":%lld}\n", count,
           (live_bytes - base) / count);
    for (int i = 0; i < count; i++) {
        h1tls_free(t[i]);
        close(fd[i]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    char err[256] = "";
    struct h1tls_ctx *x;
    const char *mode, *host;
    int port, rc = 2;

    if (argc < 5)
        fail("usage: test_h1tls MODE HOST PORT CA [ARGS]");
    mode = argv[1], host = argv[2], port = atoi(argv[3]);
    if (strcmp(mode, "idle") == 0 &&
        !CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free))
        fail("CRYPTO_set_mem_functions");
    signal(SIGPIPE, SIG_IGN);
    x = h1tls_ctx_new(strcmp(argv[4], "-") ? argv[4] : NULL, err, sizeof err);
    if (!x) {
        printf("{\"ctx\":\"failed\",");
        json_str("error", err);
        printf("}\n");
        return 0;
    }
    if (strcmp(mode, "handshake") == 0)
        rc = run_handshake(x, host, port);
    else if (strcmp(mode, "get") == 0 && argc == 7)
        rc = run_get(x, host, port, argv[5], (size_t)atol(argv[6]));
    else if (strcmp(mode, "put") == 0 && argc == 7)
        rc = run_put(x, host, port, argv[5], (size_t)atol(argv[6]));
    else if (strcmp(mode, "idle") == 0 && argc == 7)
        rc = run_idle(x, host, port, argv[5], atoi(argv[6]));
    else
        fail("bad arguments");
    h1tls_ctx_free(x);
    return rc;
}
