/* tokenform: client-credentials request bodies and the canonical D365 audience.
 * Invariant: every byte of a value outside RFC 3986's unreserved set is percent-encoded,
 * so no value can inject a field. */
#include "tokenform.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#define ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

/* A growing body with a fixed capacity computed up front (no reallocation, so no stale
 * copies of the secret are left behind). */
struct form {
    char *buf; /* owned */
    size_t len, cap;
};

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static void put_raw(struct form *f, const char *s)
{
    size_t n = strlen(s);
    memcpy(f->buf + f->len, s, n);
    f->len += n;
}

static void put_enc(struct form *f, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (unreserved(*p)) {
            f->buf[f->len++] = (char)*p;
        } else {
            f->buf[f->len++] = '%';
            f->buf[f->len++] = hex[*p >> 4];
            f->buf[f->len++] = hex[*p & 15];
        }
    }
}

/* "&name=value" (no '&' first), value encoded. */
static void put_field(struct form *f, const char *name, const char *value)
{
    if (f->len)
        f->buf[f->len++] = '&';
    put_raw(f, name);
    f->buf[f->len++] = '=';
    put_enc(f, value);
}

static void put_credential(struct form *f, const struct tokenform_req *req)
{
    if (req->client_secret) {
        put_field(f, "client_secret", req->client_secret);
    } else {
        put_field(f, "client_assertion_type", ASSERTION_TYPE);
        put_field(f, "client_assertion", req->client_assertion);
    }
}

static int field_ok(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    return n > 0 && n <= max;
}

static int req_ok(const struct tokenform_req *req)
{
    if (req->endpoint != TOKENFORM_V1 && req->endpoint != TOKENFORM_V2)
        return 0;
    if (!field_ok(req->client_id, TOKENFORM_ID_MAX) ||
        !field_ok(req->resource, TOKENFORM_RESOURCE_MAX))
        return 0;
    if (req->resource[strlen(req->resource) - 1] == '/') /* scope would be "x//.default" */
        return 0;
    if (!req->client_secret == !req->client_assertion)
        return 0;
    return req->client_secret ? field_ok(req->client_secret, TOKENFORM_SECRET_MAX)
                              : field_ok(req->client_assertion, TOKENFORM_ASSERTION_MAX);
}

char *tokenform_build(const struct tokenform_req *req, size_t *len)
{
    if (!req || !req_ok(req))
        return NULL;
    const char *cred = req->client_secret ? req->client_secret : req->client_assertion;
    /* Every value byte encodes to at most 3; names and separators fit in 256. */
    size_t cap = 3 * (strlen(req->client_id) + strlen(req->resource) + strlen("/.default") +
                      strlen(cred) + strlen(ASSERTION_TYPE)) + 256;
    struct form f = {malloc(cap), 0, cap};
    if (!f.buf)
        return NULL;
    if (req->endpoint == TOKENFORM_V1) {
        put_field(&f, "grant_type", "client_credentials");
        put_field(&f, "client_id", req->client_id);
        put_credential(&f, req);
        put_field(&f, "resource", req->resource);
    } else {
        put_field(&f, "client_id", req->client_id);
        put_field(&f, "scope", req->resource);
        put_enc(&f, "/.default");
        put_credential(&f, req);
        put_field(&f, "grant_type", "client_credentials");
    }
    f.buf[f.len] = '\0';
    if (len)
        *len = f.len;
    return f.buf;
}

char *tokenform_mi_url(const char *endpoint, const char *api_version, const char *resource,
                       const char *client_id)
{
    if (!field_ok(endpoint, TOKENFORM_RESOURCE_MAX) || !field_ok(api_version, 32) ||
        !field_ok(resource, TOKENFORM_RESOURCE_MAX) ||
        (client_id && !field_ok(client_id, TOKENFORM_ID_MAX)))
        return NULL;
    for (const char *p = endpoint; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#')
            return NULL;
    size_t cap = strlen(endpoint) + 3 * (strlen(api_version) + strlen(resource) +
                                         (client_id ? strlen(client_id) : 0)) + 64;
    struct form f = {malloc(cap), 0, cap};
    if (!f.buf)
        return NULL;
    put_raw(&f, endpoint);
    f.buf[f.len++] = strchr(endpoint, '?') ? '&' : '?';
    put_raw(&f, "api-version=");
    put_enc(&f, api_version);
    put_field(&f, "resource", resource);
    if (client_id)
        put_field(&f, "client_id", client_id);
    f.buf[f.len] = '\0';
    return f.buf;
}

void tokenform_free(char *body)
{
    if (!body)
        return;
    OPENSSL_cleanse(body, strlen(body));
    free(body);
}

/* Length of the scheme prefix ("http://" or "https://", any case) and its default
 * port, or 0 if neither. */
static size_t scheme_len(const char *url, int *default_port)
{
    if (strncasecmp(url, "https://", 8) == 0) {
        *default_port = 443;
        return 8;
    }
    if (strncasecmp(url, "http://", 7) == 0) {
        *default_port = 80;
        return 7;
    }
    return 0;
}

static int host_char(char c, int bracketed)
{
    if (isalnum((unsigned char)c) || c == '-' || c == '.')
        return 1;
    return bracketed ? (c == ':') : (c == '_');
}

/* Validates host[:port] of length n; stores the host length in *hlen and the port
 * (0 if none) in *port. Returns 0 or -1. */
static int split_authority(const char *a, size_t n, size_t *hlen, long *port)
{
    int br = n > 0 && a[0] == '[';
    size_t i = br ? 1 : 0;
    while (i < n && host_char(a[i], br))
        i++;
    if (br && (i >= n || a[i] != ']' || i == 1))
        return -1;
    *hlen = br ? i + 1 : i;
    if (*hlen == 0)
        return -1;
    *port = 0;
    if (*hlen == n)
        return 0;
    if (a[*hlen] != ':' || *hlen + 1 == n || n - *hlen - 1 > 5)
        return -1;
    for (i = *hlen + 1; i < n; i++) {
        if (!isdigit((unsigned char)a[i]))
            return -1;
        *port = *port * 10 + (a[i] - '0');
    }
    return *port >= 1 && *port <= 65535 ? 0 : -1;
}

int tokenform_resource(const char *base_url, char *out, size_t outsz)
{
    int defport = 0;
    size_t hlen = 0;
    long port = 0;
    size_t n = base_url ? strnlen(base_url, TOKENFORM_RESOURCE_MAX + 1) : 0;
    if (n == 0 || n > TOKENFORM_RESOURCE_MAX || outsz == 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)base_url[i] <= 0x20 || (unsigned char)base_url[i] >= 0x7f)
            return -1;
    if (strpbrk(base_url, "?#@"))
        return -1;
    size_t s = scheme_len(base_url, &defport);
    if (s == 0)
        return -1;
    const char *auth = base_url + s;
    size_t alen = strcspn(auth, "/");
    if (split_authority(auth, alen, &hlen, &port) != 0)
        return -1;
    int w = snprintf(out, outsz, "%.*s%.*s", (int)s, base_url, (int)hlen, auth);
    if (w > 0 && (size_t)w < outsz && port && port != defport)
        w = snprintf(out + w, outsz - (size_t)w, ":%ld", port) + w;
    if (w < 0 || (size_t)w >= outsz) {
        out[0] = '\0';
        return -1;
    }
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return 0;
}
