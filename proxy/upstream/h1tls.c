/* h1tls: TLS client sessions on non-blocking sockets for the HTTP/1.1 upstream client.
 * Invariant: SSL_VERIFY_PEER plus a host or IP check on every session; after a fatal error
 * the session answers H1TLS_ERROR forever (OpenSSL forbids using it further). */
#include "h1tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct h1tls_ctx {
    SSL_CTX *ssl_ctx; /* owned (one reference; each SSL holds its own) */
};

struct h1tls {
    SSL *ssl;          /* owned */
    int failed;        /* a fatal error happened: no more SSL calls, no close_notify */
    int truncated;     /* ... and it was a bare TCP EOF: reads keep answering H1TLS_EOF */
    int established;   /* the handshake completed */
    char err[256];     /* last error text, "" when none */
};

/* "\x08http/1.1": the one protocol this transport carries. */
static const unsigned char alpn_h1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

/* The first error queued is the root cause ("No such file or directory"); the later ones
 * are the layers above saying they failed too ("system lib"). */
static void set_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;

    if (e && ERR_SYSTEM_ERROR(e))
        reason = strerror(ERR_GET_REASON(e)); /* the library has no text for errno values */

    if (errlen == 0)
        return;
    if (reason)
        snprintf(err, errlen, "%s: %s", what, reason);
    else
        snprintf(err, errlen, "%s", what);
}

static int load_trust(SSL_CTX *c, const char *ca_file)
{
    if (ca_file)
        return SSL_CTX_load_verify_locations(c, ca_file, NULL) == 1 ? 0 : -1;
    return SSL_CTX_set_default_verify_paths(c) == 1 ? 0 : -1;
}

struct h1tls_ctx *h1tls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    struct h1tls_ctx *x = NULL;
    SSL_CTX *c = NULL;

    ERR_clear_error();
    c = SSL_CTX_new(TLS_client_method());
    if (!c) {
        set_err(err, errlen, "TLS context");
        goto out;
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    /* As libcurl (the client this one replaces) does: any certificate in the trust store
     * may end a chain, so a ca_file holding an intermediate or the server's own
     * certificate (pinning) works; names and dates are still checked. */
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(c), X509_V_FLAG_PARTIAL_CHAIN);
    if (SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_alpn_protos(c, alpn_h1, sizeof alpn_h1) != 0) {
        set_err(err, errlen, "TLS context options");
        goto out;
    }
    /* Renegotiation is refused (a server asking for it gets an alert). The client-side
     * session cache is off: resumption per host would need the pool to hand sessions
     * across connections, and kept-alive connections already make handshakes rare. */
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    /* Partial writes and moving buffers: the caller's buffer is a queue it drains as bytes
     * go; RELEASE_BUFFERS: an idle kept-alive connection holds no 16 KiB record buffers. */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    if (load_trust(c, ca_file) != 0) {
        set_err(err, errlen, ca_file ? "cannot load CA file" : "cannot load system CA store");
        goto out;
    }
    x = calloc(1, sizeof *x);
    if (!x) {
        if (errlen)
            snprintf(err, errlen, "out of memory");
        goto out;
    }
    x->ssl_ctx = c;
    c = NULL;
out:
    SSL_CTX_free(c);
    ERR_clear_error();
    return x;
}

void h1tls_ctx_free(struct h1tls_ctx *x)
{
    if (!x)
        return;
    SSL_CTX_free(x->ssl_ctx);
    free(x);
}

/* 1 when host is an IPv4 or IPv6 literal; the bare address (brackets removed) goes to ip. */
static int ip_literal(const char *host, char *ip, size_t iplen)
{
    unsigned char bin[sizeof(struct in6_addr)];
    size_t n = strlen(host);

    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host++;
        n -= 2;
    }
    if (n >= iplen)
        return 0;
    memcpy(ip, host, n);
    ip[n] = '\0';
    return inet_pton(AF_INET, ip, bin) == 1 || inet_pton(AF_INET6, ip, bin) == 1;
}

/* Name or IP check, and SNI for names only (RFC 6066: literal addresses are not sent). */
static int set_peer_identity(SSL *ssl, const char *host)
{
    char ip[INET6_ADDRSTRLEN + 8];
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

    if (ip_literal(host, ip, sizeof ip))
        return X509_VERIFY_PARAM_set1_ip_asc(param, ip) == 1 ? 0 : -1;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, host) != 1)
        return -1;
    return SSL_set_tlsext_host_name(ssl, host) == 1 ? 0 : -1;
}

struct h1tls *h1tls_new(struct h1tls_ctx *x, int fd, const char *host)
{
    struct h1tls *t = NULL;

    if (!x || fd < 0 || !host || !*host)
        return NULL;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    ERR_clear_error();
    t->ssl = SSL_new(x->ssl_ctx);
    if (!t->ssl || SSL_set_fd(t->ssl, fd) != 1 || set_peer_identity(t->ssl, host) != 0) {
        h1tls_free(t);
        t = NULL;
    } else {
        SSL_set_connect_state(t->ssl);
    }
    ERR_clear_error();
    return t;
}

void h1tls_free(struct h1tls *t)
{
    if (!t)
        return;
    if (t->ssl && t->established && !t->failed) {
        /* One try: a full socket or a gone peer just means no close_notify, which is not
         * our correctness problem (we do not read after this). */
        ERR_clear_error();
        (void)SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
    SSL_free(t->ssl);
    free(t);
}

/* The error text for a fatal failure: the verify result when the chain or name failed,
 * else OpenSSL's reason (an alert received, a protocol violation), else errno. */
static void describe_failure(struct h1tls *t, int sslerr, int saved_errno)
{
    long vr = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();

    if (vr != X509_V_OK)
        snprintf(t->err, sizeof t->err, "certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    else if (e && ERR_reason_error_string(e))
        snprintf(t->err, sizeof t->err, "TLS %s failed: %s",
                 t->established ? "session" : "handshake", ERR_reason_error_string(e));
    else if (sslerr == SSL_ERROR_SYSCALL && saved_errno)
        snprintf(t->err, sizeof t->err, "TLS %s failed: %s",
                 t->established ? "session" : "handshake", strerror(saved_errno));
    else
        snprintf(t->err, sizeof t->err, "TLS %s failed: connection closed by peer",
                 t->established ? "session" : "handshake");
}

/* A TCP EOF without close_notify: OpenSSL 3 reports SSL_R_UNEXPECTED_EOF_WHILE_READING,
 * OpenSSL 1.1 SSL_ERROR_SYSCALL with an empty error queue and errno 0. */
static int bare_eof(int sslerr, int saved_errno)
{
    unsigned long e = ERR_peek_error();

#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING
    if (sslerr == SSL_ERROR_SSL && ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
        return 1;
#endif
    return sslerr == SSL_ERROR_SYSCALL && e == 0 && saved_errno == 0;
}

/* Maps a failed SSL_* call (ret <= 0) to a code; `reading` allows EOF as an answer. */
static int map_failure(struct h1tls *t, int ret, int reading)
{
    int saved_errno = errno;
    int sslerr = SSL_get_error(t->ssl, ret);
    int code = H1TLS_ERROR;

    switch (sslerr) {
    case SSL_ERROR_WANT_READ:
        code = H1TLS_WANT_READ;
        break;
    case SSL_ERROR_WANT_WRITE:
        code = H1TLS_WANT_WRITE;
        break;
    case SSL_ERROR_ZERO_RETURN:
        /* close_notify: clean (SSL_read keeps answering this on later calls). */
        t->err[0] = '\0';
        code = H1TLS_EOF;
        break;
    default:
        if (reading && t->established && bare_eof(sslerr, saved_errno)) {
            snprintf(t->err, sizeof t->err,
                     "connection closed without close_notify (possible truncation)");
            t->truncated = 1;
            code = H1TLS_EOF;
        } else {
            describe_failure(t, sslerr, saved_errno);
        }
        /* Either way the session is over and must not send close_notify. */
        t->failed = 1;
        break;
    }
    ERR_clear_error();
    return code;
}

int h1tls_handshake(struct h1tls *t)
{
    int ret;

    if (t->failed)
        return H1TLS_ERROR;
    if (t->established)
        return H1TLS_OK;
    ERR_clear_error();
    ret = SSL_do_handshake(t->ssl);
    if (ret == 1) {
        t->established = 1;
        t->err[0] = '\0';
        return H1TLS_OK;
    }
    return map_failure(t, ret, 0);
}

/* A read or write before the handshake finished drives it first, so callers may skip
 * the explicit h1tls_handshake (its verification still applies: SSL_read/SSL_write do
 * the same handshake). */
static int ready(struct h1tls *t)
{
    if (t->failed)
        return t->truncated ? H1TLS_EOF : H1TLS_ERROR;
    return t->established ? H1TLS_OK : h1tls_handshake(t);
}

/* One SSL_read_ex into rbuf (reading) or SSL_write_ex from wbuf of at most len bytes. */
static ssize_t transfer(struct h1tls *t, int reading, void *rbuf, const void *wbuf,
                        size_t len)
{
    size_t n = 0;
    int rc = ready(t), ok;

    if (rc != H1TLS_OK)
        return rc;
    if (len == 0)
        return 0;
    if (len > INT_MAX) /* keeps the count inside ssize_t on every platform */
        len = INT_MAX;
    ERR_clear_error();
    ok = reading ? SSL_read_ex(t->ssl, rbuf, len, &n) : SSL_write_ex(t->ssl, wbuf, len, &n);
    if (ok == 1)
        return (ssize_t)n;
    return map_failure(t, 0, reading);
}

ssize_t h1tls_read(struct h1tls *t, void *buf, size_t len)
{
    return transfer(t, 1, buf, NULL, len);
}

ssize_t h1tls_write(struct h1tls *t, const void *buf, size_t len)
{
    return transfer(t, 0, NULL, buf, len);
}

size_t h1tls_pending(const struct h1tls *t)
{
    int n = t->failed ? 0 : SSL_pending(t->ssl);

    return n > 0 ? (size_t)n : 0;
}

const char *h1tls_error(const struct h1tls *t)
{
    return t->err;
}
