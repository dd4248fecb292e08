/* h1tls: a TLS client session on a caller-owned non-blocking socket (OpenSSL directly, no
 * bufferevent), the transport of the HTTP/1.1 upstream client. Invariant: a peer is only
 * talked to after its certificate chain AND its name (DNS name or IP literal) verified;
 * there is no switch to turn verification off. */
#ifndef FOGATE_H1TLS_H
#define FOGATE_H1TLS_H

#include <stddef.h>
#include <sys/types.h>

/* Per upstream: the SSL_CTX (peer verification on, TLS >= 1.2, ALPN http/1.1 offered, no
 * renegotiation, no session resumption: every connection does a full handshake, the
 * keep-alive pool is what amortises it). Shared by the connections of one thread. */
struct h1tls_ctx;

/* Builds a context trusting only the PEM file ca_file (borrowed; NULL = the system's
 * default store; unlike Debian's libcurl, a ca_file is not added to /etc/ssl/certs but
 * replaces it). Any certificate in it may anchor a chain (an intermediate, or the server's
 * own certificate: pinning), as with libcurl. Returns NULL with a text in err (errlen bytes, may be 0) on failure
 * (unreadable or empty CA file, OpenSSL out of memory). */
struct h1tls_ctx *h1tls_ctx_new(const char *ca_file, char *err, size_t errlen);

/* Frees the context; connections made from it keep a reference and may outlive it.
 * NULL is a no-op. */
void h1tls_ctx_free(struct h1tls_ctx *);

/* One connection's TLS session. */
struct h1tls;

/* A client session on fd (borrowed: a connected non-blocking TCP socket; never closed
 * here; the process ignores SIGPIPE, as OpenSSL writes with write(2)) for host (borrowed, copied): a DNS name is sent as SNI and checked against the
 * certificate's names (no partial wildcards); an IP literal ("127.0.0.1", "::1" or
 * "[::1]") is checked against the certificate's IP addresses and sends no SNI.
 * Returns NULL when host is NULL or empty or OpenSSL is out of memory. */
struct h1tls *h1tls_new(struct h1tls_ctx *, int fd, const char *host);

/* Sends close_notify if the session is established and healthy (one non-blocking try,
 * result ignored) and frees the session. Does not close fd: call it before closing fd.
 * NULL is a no-op. */
void h1tls_free(struct h1tls *);

/* Return codes. WANT_READ / WANT_WRITE: wait until fd is readable / writable, then repeat
 * the SAME call (a read may need the socket writable and a write readable). ERROR is
 * final: every later call returns it again; h1tls_error() says why. */
enum { H1TLS_OK = 0, H1TLS_WANT_READ = -2, H1TLS_WANT_WRITE = -3, H1TLS_ERROR = -1,
       H1TLS_EOF = -4 };

/* Drives the handshake: H1TLS_OK once it is done and the peer verified, else a WANT_* or
 * H1TLS_ERROR (a verification failure, an alert, or the peer closing meanwhile). */
int h1tls_handshake(struct h1tls *);

/* Reads up to len decrypted bytes into buf: > 0 bytes, or a code. H1TLS_EOF means the
 * peer is done sending, in one of two ways that h1tls_error() tells apart:
 *   ""  (empty)  the peer sent close_notify: a clean end, the data read is whole;
 *   "connection closed without close_notify (possible truncation)": a bare TCP EOF. A
 *                caller whose framing did not already end (read-until-close body, body
 *                shorter than Content-Length) must treat this as a truncated response.
 * len 0 returns 0. */
ssize_t h1tls_read(struct h1tls *, void *buf, size_t len);

/* Writes up to len bytes of buf: > 0 bytes taken (possibly fewer than len: partial writes
 * are on, at most one record's worth per call once the socket fills up), or a code. After
 * a WANT_*, repeat with at least the same bytes (buf may move, its content may not: the
 * record is already sealed). len 0 returns 0. */
ssize_t h1tls_write(struct h1tls *, const void *buf, size_t len);

/* Decrypted bytes buffered inside OpenSSL: they will not make fd readable again, so a
 * caller that reads less than a record per wake-up must read on while this is > 0. */
size_t h1tls_pending(const struct h1tls *);

/* Text of the last H1TLS_ERROR (or of how the last H1TLS_EOF happened, see h1tls_read);
 * "" when none. Never NULL, never holds secrets; valid until the next call on the session. */
const char *h1tls_error(const struct h1tls *);

#endif
