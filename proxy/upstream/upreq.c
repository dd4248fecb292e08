/* upreq: outbound method and header list checks, and the easy-handle options every
 * transfer gets (see upreq.h). */
#include "upreq.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

bool upreq_method_ok(const char *method)
{
    size_t i = 0;

    if (!method)
        return false;
    for (; method[i]; i++)
        if (!is_tchar((unsigned char)method[i]) || i >= 32)
            return false;
    return i > 0;
}

size_t upreq_name_len(const char *line)
{
    size_t n = 0;

    while (is_tchar((unsigned char)line[n]))
        n++;
    return line[n] == ':' ? n : 0;
}

bool upreq_named(const char *line, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(line, name, n) == 0;
}

bool upreq_framing(const char *line, size_t n)
{
    return upreq_named(line, n, "Content-Length") || upreq_named(line, n, "Transfer-Encoding") ||
           upreq_named(line, n, "Expect");
}

unsigned upreq_limit(unsigned req, unsigned dflt)
{
    if (req == UPSTREAM_NO_LIMIT)
        return 0;
    return req ? req : dflt;
}

static bool value_empty(const char *v)
{
    return v[strspn(v, " \t")] == '\0';
}

/* The lines to send: a kept caller line (an empty value as "Name;", libcurl's notation
 * for sending it empty), or one of ours. */
static bool kept(const char *line, size_t *nl, bool *has_accept)
{
    *nl = line ? upreq_name_len(line) : 0;
    if (upreq_framing(line, *nl))
        return false;
    *has_accept |= upreq_named(line, *nl, "Accept");
    return true;
}

/* One allocation: the nodes, then the strings they point at. */
int upreq_headers(const char *const *lines, size_t n, struct curl_slist **out)
{
    static const char expect[] = "Expect:", accept[] = "Accept:";
    size_t nodes = 2, bytes = sizeof expect + sizeof accept, nl;
    bool has_accept = false;
    struct curl_slist *list;
    char *at;

    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!lines[i] || !upreq_name_len(lines[i]) || strpbrk(lines[i], "\r\n"))
            return -1;
        if (kept(lines[i], &nl, &has_accept)) {
            nodes++;
            bytes += strlen(lines[i]) + 1;
        }
    }
    if (!(list = malloc(nodes * sizeof *list + bytes)))
        return -1;
    at = (char *)(list + nodes);
    nodes = 0;
    has_accept = false;
    for (size_t i = 0; i < n; i++) {
        if (!kept(lines[i], &nl, &has_accept))
            continue;
        size_t len = strlen(lines[i]);
        memcpy(at, lines[i], len + 1);
        if (value_empty(at + nl + 1)) /* libcurl drops "Name:" (empty value) */
            memcpy(at + nl, ";", 2);
        list[nodes++].data = at;
        at += len + 1;
    }
    list[nodes++].data = memcpy(at, expect, sizeof expect);
    at += sizeof expect;
    if (!has_accept)
        list[nodes++].data = memcpy(at, accept, sizeof accept);
    for (size_t i = 0; i < nodes; i++)
        list[i].next = i + 1 < nodes ? &list[i + 1] : NULL;
    *out = list;
    return 0;
}

#define SET(opt, val)                                  \
    do {                                               \
        if (rc == CURLE_OK)                            \
            rc = curl_easy_setopt(e, (opt), (val));    \
    } while (0)

CURLcode upreq_method(CURL *e, const char *method, int64_t body_len)
{
    CURLcode rc = CURLE_OK;

    /* every method option is set each time: a reused handle keeps the last transfer's */
    if (body_len == UPSTREAM_BODY_NONE) {
        bool head = strcmp(method, "HEAD") == 0;
        SET(CURLOPT_HTTPGET, 1L); /* also turns upload and nobody off */
        SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)-1);
        if (head)
            SET(CURLOPT_NOBODY, 1L);
        SET(CURLOPT_CUSTOMREQUEST, head || strcmp(method, "GET") == 0 ? NULL : method);
        return rc;
    }
    SET(CURLOPT_UPLOAD, 1L); /* also turns nobody off */
    SET(CURLOPT_INFILESIZE_LARGE, (curl_off_t)(body_len >= 0 ? body_len : -1));
    SET(CURLOPT_CUSTOMREQUEST, strcmp(method, "PUT") != 0 ? method : NULL);
    return rc;
}

CURLcode upreq_transport(CURL *e, const struct upstream_opts *o)
{
    const char *protocols = o->allow_http ? "http,https" : "https";
    CURLcode rc = CURLE_OK;

    SET(CURLOPT_PATH_AS_IS, 1L);  /* keep the caller's path bytes as they are */
    SET(CURLOPT_PROTOCOLS_STR, protocols);
    SET(CURLOPT_REDIR_PROTOCOLS_STR, protocols);
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_PROXY, o->proxy ? o->proxy : "");
    SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (o->ca_file)
        SET(CURLOPT_CAINFO, o->ca_file);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);  /* imports run for half an hour */
    SET(CURLOPT_NOSIGNAL, 1L);
    return rc;
}

CURLcode upreq_target(CURL *e, const struct upstream_opts *o, const struct upstream_req *req)
{
    unsigned cto = req->timeouts.connect_ms ? req->timeouts.connect_ms : o->connect_timeout_ms;
    unsigned tto = req->timeouts.total_ms ? req->timeouts.total_ms : o->total_timeout_ms;
    CURLcode rc = CURLE_OK;

    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_CONNECTTIMEOUT_MS, (long)cto);
    SET(CURLOPT_TIMEOUT_MS, (long)tto);
    return rc;
}

#undef SET
