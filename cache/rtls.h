/* rtls: TLS client objects for Redis over TLS. hiredict's own helper only sends SNI; these
 * objects also verify the certificate chain AND the server name (host name or IP address).
 * Invariant: an SSL object from rtls_ssl_new never completes a handshake with a peer whose
 * certificate does not match the expected name. */
#ifndef FOGATE_RTLS_H
#define FOGATE_RTLS_H

#include <stddef.h>
#include <hiredict/async.h>
#include <openssl/ssl.h>

/* A client context (TLS >= 1.2, peer verification on) trusting the PEM bundle `ca_file`,
 * or the system store when ca_file is NULL or "". Returns a new context (caller frees with
 * SSL_CTX_free), or NULL with a reason in err (errlen bytes, never a secret). */
SSL_CTX *rtls_ctx_new(const char *ca_file, char *err, size_t errlen);

/* A new SSL object from `ctx` (borrowed) that expects `server_name`: an IP literal is
 * matched against the certificate's IP addresses, anything else against its DNS names
 * (and sent as SNI). Returns the object (caller owns it until handed to hiredict), or NULL. */
SSL *rtls_ssl_new(SSL_CTX *ctx, const char *server_name);

/* Starts TLS on `ac` (borrowed) with a new SSL object from `ctx` expecting `server_name`.
 * The handshake may fail at once (loopback answers fast): then the verification reason is
 * kept rather than hiredict's generic text. Returns the SSL object (owned by ac from now
 * on), or NULL with why (len bytes) set and nothing left to free. */
SSL *rtls_attach(redictAsyncContext *ac, SSL_CTX *ctx, const char *server_name, char *why,
                 size_t len);

/* If verification of the peer failed on `ssl`, writes why into buf and returns 1;
 * returns 0 (buf untouched) when there was no verification failure. */
int rtls_verify_failure(const SSL *ssl, char *buf, size_t len);

#endif
