/* ctlhttp: one blocking libcurl call for fogatectl (see ctlhttp.h). */
#include "ctlhttp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

struct sinkstate {
    struct ctlhttp_resp *resp;
    CURL *h;
    FILE *sink;
    bool too_big;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct sinkstate *s = arg;
    size_t len = size * n;
    long status = 0;

    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
    if (s->sink && status == 200) {
        if (fwrite(data, 1, len, s->sink) != len) {
            s->resp->sink_error = errno ? errno : EIO;
            return 0;
        }
        return len;
    }
    if (s->resp->len + len > CTLHTTP_CAPTURE_MAX) {
        s->too_big = true;
        return 0;
    }
    char *grown = realloc(s->resp->body, s->resp->len + len + 1);
    if (!grown)
        return 0;
    memcpy(grown + s->resp->len, data, len);
    s->resp->len += len;
    grown[s->resp->len] = '\0';
    s->resp->body = grown;
    return len;
}

/* Copies the value of header `name` from line [p, p+len) into out when it is that one. */
static void header_value(const char *p, size_t len, const char *name, char *out, size_t cap)
{
    size_t n = strlen(name);

    if (len <= n + 1 || strncasecmp(p, name, n) != 0 || p[n] != ':')
        return;
    p += n + 1;
    len -= n + 1;
    while (len && (*p == ' ' || *p == '\t'))
        p++, len--;
    while (len && (p[len - 1] == '\r' || p[len - 1] == '\n' || p[len - 1] == ' '))
        len--;
    if (len < cap) {
        memcpy(out, p, len);
        out[len] = '\0';
    }
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct ctlhttp_resp *r = arg;

    header_value(line, size * n, "X-Fogate-Message-Id", r->message_id, sizeof r->message_id);
    header_value(line, size * n, "Retry-After", r->retry_after, sizeof r->retry_after);
    return size * n;
}

int ctlhttp_do(const struct ctlhttp_req *rq, struct ctlhttp_resp *resp, char *err, size_t cap)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct sinkstate st = { .resp = resp, .h = h, .sink = rq->sink };
    char ebuf[CURL_ERROR_SIZE] = "";
    CURLcode rc;
    int ret = -1;

    memset(resp, 0, sizeof *resp);
    if (!h || !(resp->body = calloc(1, 1))) {
        snprintf(err, cap, "out of memory");
        goto out;
    }
    for (size_t i = 0; rq->headers && rq->headers[i]; i++)
        hdrs = curl_slist_append(hdrs, rq->headers[i]);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, rq->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rq->upload) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READDATA, rq->upload);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->upload_size);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    } else if (rq->body || strcmp(rq->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    }
    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && resp->sink_error)) {
        snprintf(err, cap, "%s", st.too_big ? "the answer is too large" : ebuf[0] ? ebuf
                                                                   : curl_easy_strerror(rc));
        resp->status = 0;
        goto out;
    }
    ret = 0;
out:
    curl_slist_free_all(hdrs);
    if (h)
        curl_easy_cleanup(h);
    return ret;
}

void ctlhttp_resp_free(struct ctlhttp_resp *resp)
{
    free(resp->body);
    resp->body = NULL;
}

void ctlhttp_error_line(const struct ctlhttp_resp *resp, char *out, size_t cap)
{
    json_t *j = resp->body ? json_loadb(resp->body, resp->len, 0, NULL) : NULL;
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *msg = json_string_value(json_object_get(j, "message"));

    snprintf(out, cap, "HTTP %ld %s%s%s%s", resp->status, code ? code : "", msg ? ": " : "",
             msg ? msg : "", resp->retry_after[0] ? " (retry after seconds: " : "");
    if (resp->retry_after[0]) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s)", resp->retry_after);
    }
    json_decref(j);
}
