/* rtls: verified TLS client objects for Redis (see rtls.h). */
#include "rtls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <hiredict/hiredict_ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

static void ssl_error(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *why = e ? ERR_reason_error_string(e) : NULL;

    snprintf(err, errlen, "%s%s%s", what, why ? ": " : "", why ? why : "");
    ERR_clear_error();
}

SSL_CTX *rtls_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        ssl_error(err, errlen, "tls: cannot create context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        ssl_error(err, errlen, ca_file && *ca_file ? "tls: cannot load CA file"
                                                   : "tls: cannot load system CA store");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

static int is_ip_literal(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* SSL_set1_host alone would only add the name check; for an IP literal the check must
 * be against iPAddress entries, and SNI must not carry an address (RFC 6066). */
static int expect_name(SSL *ssl, const char *name)
{
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

    if (is_ip_literal(name))
        return X509_VERIFY_PARAM_set1_ip_asc(param, name) == 1 ? 0 : -1;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name) != 1)
        return -1;
    return SSL_set_tlsext_host_name(ssl, name) == 1 ? 0 : -1;
}

SSL *rtls_ssl_new(SSL_CTX *ctx, const char *server_name)
{
    SSL *ssl = NULL;

    if (!server_name || !*server_name)
        return NULL;
    ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    SSL_set_verify(ssl, SSL_VERIFY_PEER, NULL);
    if (expect_name(ssl, server_name) != 0) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

int rtls_verify_failure(const SSL *ssl, char *buf, size_t len)
{
    long res = SSL_get_verify_result(ssl);

    if (res == X509_V_OK)
        return 0;
    snprintf(buf, len, "tls: certificate verify failed: %s",
             X509_verify_cert_error_string(res));
    return 1;
}

SSL *rtls_attach(redictAsyncContext *ac, SSL_CTX *ctx, const char *server_name, char *why,
                 size_t len)
{
    SSL *ssl = server_name ? rtls_ssl_new(ctx, server_name) : NULL;

    if (!ssl) {
        snprintf(why, len, "tls: unusable server name \"%s\"", server_name ? server_name : "");
        return NULL;
    }
    if (redictInitiateSSL(&ac->c, ssl) != REDICT_OK) {
        if (!rtls_verify_failure(ssl, why, len))
            snprintf(why, len, "tls: %s", ac->c.errstr);
        SSL_free(ssl); /* not taken over on failure */
        return NULL;
    }
    return ssl;
}
