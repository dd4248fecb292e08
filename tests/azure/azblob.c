/* azblob: blocking Azure Blob calls over libcurl, each authorised by its own SAS.
 * Invariant: no Authorization header is ever set, redirects are never followed, and the
 * SAS (in the URL) never reaches an error message. */
#include "azblob.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

/* Clock skew allowance on both ends of every SAS window. */
#define SKEW 300
#define CODE_MAX 64
#define BODY_MAX 2048

/* One HTTP exchange. The handle is reused across the calls of one operation (keep-alive). */
struct call {
    CURL *h;                 /* owned */
    struct curl_slist *hdrs; /* owned; reset per request */
    FILE *src;               /* borrowed: upload source, or NULL */
    const char *mem;         /* borrowed: in-memory upload body, or NULL */
    curl_off_t left;         /* upload bytes still to send */
    char body[BODY_MAX];     /* start of the response body (error XML) */
    size_t body_len;
    char code[CODE_MAX];     /* x-ms-error-code, or <Code> from the body */
    long status;
};

static void seterr(char *err, size_t errcap, const char *f, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errcap, const char *f, ...)
{
    if (err == NULL || errcap == 0)
        return;
    va_list ap;
    va_start(ap, f);
    vsnprintf(err, errcap, f, ap);
    va_end(ap);
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    struct call *c = arg;
    size_t want = size * n;
    if ((curl_off_t)want > c->left)
        want = (size_t)c->left;
    if (want == 0)
        return 0;
    if (c->mem) {
        memcpy(buf, c->mem, want);
        c->mem += want;
    } else if (c->src == NULL || fread(buf, 1, want, c->src) != want) {
        return CURL_READFUNC_ABORT; /* the file shrank under us */
    }
    c->left -= (curl_off_t)want;
    return want;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct call *c = arg;
    size_t len = size * n;
    size_t room = sizeof c->body - 1 - c->body_len;
    size_t take = len < room ? len : room;
    memcpy(c->body + c->body_len, data, take); /* the rest is dropped: bounded */
    c->body_len += take;
    c->body[c->body_len] = '\0';
    return len;
}

static void copy_code(char *dst, const char *src, size_t len)
{
    if (len >= CODE_MAX)
        len = CODE_MAX - 1;
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    static const char name[] = "x-ms-error-code:";
    struct call *c = arg;
    size_t len = size * n;
    if (len > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
        const char *v = data + sizeof name - 1;
        const char *end = data + len;
        while (v < end && (*v == ' ' || *v == '\t'))
            v++;
        while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
            end--;
        copy_code(c->code, v, (size_t)(end - v));
    }
    return len;
}

/* Fills c->code from the body's <Code> element when no header carried it. */
static void code_from_body(struct call *c)
{
    const char *a = strstr(c->body, "<Code>");
    const char *b = a ? strstr(a, "</Code>") : NULL;
    if (c->code[0] == '\0' && a && b)
        copy_code(c->code, a + 6, (size_t)(b - a - 6));
}

static void call_begin(struct call *c)
{
    curl_slist_free_all(c->hdrs);
    c->hdrs = NULL;
    c->src = NULL;
    c->mem = NULL;
    c->left = 0;
    c->body[0] = '\0';
    c->body_len = 0;
    c->code[0] = '\0';
    c->status = 0;
    curl_easy_reset(c->h);
}

static int add_header(struct call *c, const char *h)
{
    struct curl_slist *l = curl_slist_append(c->hdrs, h);
    if (l == NULL)
        return -1;
    c->hdrs = l;
    return 0;
}

static void set_common(struct call *c, const char *url)
{
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c->h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT, (long)AZBLOB_CONNECT_TIMEOUT);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, (long)AZBLOB_REQUEST_TIMEOUT);
    curl_easy_setopt(c->h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c->h, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c->h, CURLOPT_HEADERDATA, c);
}

/* Runs one request. len < 0: no body (HEAD when nobody, else GET); otherwise PUT of len
 * bytes from c->src or c->mem. Returns 0 when an HTTP status came back, -1 otherwise. */
static int perform(struct call *c, const char *url, int nobody, curl_off_t len,
                   const char *what, char *err, size_t errcap)
{
    set_common(c, url);
    if (nobody)
        curl_easy_setopt(c->h, CURLOPT_NOBODY, 1L);
    if (len >= 0) {
        c->left = len;
        curl_easy_setopt(c->h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c->h, CURLOPT_INFILESIZE_LARGE, len);
        curl_easy_setopt(c->h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c->h, CURLOPT_READDATA, c);
        if (add_header(c, "Expect:") != 0) /* no 100-continue round trip */
            goto oom;
    }
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    CURLcode rc = curl_easy_perform(c->h);
    if (rc != CURLE_OK) {
        seterr(err, errcap, "azblob: %s: %s", what, curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &c->status);
    code_from_body(c);
    return 0;
oom:
    seterr(err, errcap, "azblob: %s: out of memory", what);
    return -1;
}

static int http_error(struct call *c, const char *what, char *err, size_t errcap)
{
    seterr(err, errcap, "azblob: %s: HTTP %ld %s", what, c->status,
           c->code[0] ? c->code : "(no error code)");
    return -1;
}

static int call_init(struct call *c, char *err, size_t errcap)
{
    memset(c, 0, sizeof *c);
    c->h = curl_easy_init();
    if (c->h == NULL) {
        seterr(err, errcap, "azblob: curl_easy_init failed");
        return -1;
    }
    return 0;
}

static void call_cleanup(struct call *c)
{
    curl_slist_free_all(c->hdrs);
    c->hdrs = NULL;
    if (c->h)
        curl_easy_cleanup(c->h);
    c->h = NULL;
}

/* SAS URL of a blob valid for the duration of one request, with extra query appended. */
static int blob_url(char *out, size_t cap, const struct sas_account *acct,
                    const char *container, const char *blob, const char *perms,
                    const char *extra)
{
    time_t now = time(NULL);
    size_t n;
    if (sas_blob_url(out, cap, acct, container, blob, perms, now - SKEW,
                     now + AZBLOB_REQUEST_TIMEOUT + SKEW) != 0)
        return -1;
    n = strlen(out);
    if (extra == NULL)
        return 0;
    return snprintf(out + n, cap - n, "&%s", extra) < (int)(cap - n) ? 0 : -1;
}

int azblob_ensure_container(const struct sas_account *acct, const char *container, char *err,
                            size_t errcap)
{
    char query[SAS_URL_MAX];
    char url[SAS_URL_MAX * 2];
    struct call c;
    time_t now = time(NULL);
    int rc = -1;

    if (sas_account_query(query, sizeof query, acct, "c", "c", now - SKEW,
                          now + AZBLOB_REQUEST_TIMEOUT + SKEW) != 0 ||
        container == NULL || strchr(container, '/') || strchr(container, '?') ||
        snprintf(url, sizeof url, "%s/%s?restype=container&%s", acct->endpoint, container,
                 query) >= (int)sizeof url) {
        seterr(err, errcap, "azblob: create container: bad account or container name");
        return -1;
    }
    if (call_init(&c, err, errcap) != 0)
        return -1;
    call_begin(&c);
    if (perform(&c, url, 0, 0, "create container", err, errcap) != 0)
        goto out;
    if (c.status == 201 || (c.status == 409 && strcmp(c.code, "ContainerAlreadyExists") == 0))
        rc = 0;
    else
        http_error(&c, "create container", err, errcap);
out:
    call_cleanup(&c);
    return rc;
}

int azblob_head(const struct sas_account *acct, const char *container, const char *blob,
                long long *size, char *err, size_t errcap)
{
    char url[SAS_URL_MAX];
    struct call c;
    curl_off_t len = -1;
    int rc = -1;

    if (blob_url(url, sizeof url, acct, container, blob, "r", NULL) != 0) {
        seterr(err, errcap, "azblob: head: bad account, container or blob name");
        return -1;
    }
    if (call_init(&c, err, errcap) != 0)
        return -1;
    call_begin(&c);
    if (perform(&c, url, 1, -1, "head", err, errcap) != 0)
        goto out;
    if (c.status == 404) {
        rc = AZBLOB_NOT_FOUND;
    } else if (c.status != 200) {
        http_error(&c, "head", err, errcap);
    } else if (curl_easy_getinfo(c.h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &len) != CURLE_OK ||
               len < 0) {
        seterr(err, errcap, "azblob: head: no Content-Length");
    } else {
        *size = (long long)len;
        rc = 0;
    }
out:
    call_cleanup(&c);
    return rc;
}

/* Put Blob: the whole file in one request. */
static int put_whole(struct call *c, const char *url, FILE *f, curl_off_t size, char *err,
                     size_t errcap)
{
    call_begin(c);
    c->src = f;
    if (add_header(c, "x-ms-blob-type: BlockBlob") != 0 ||
        add_header(c, "Content-Type: application/octet-stream") != 0) {
        seterr(err, errcap, "azblob: put blob: out of memory");
        return -1;
    }
    if (perform(c, url, 0, size, "put blob", err, errcap) != 0)
        return -1;
    return c->status == 201 ? 0 : http_error(c, "put blob", err, errcap);
}

/* Block ids: base64 of a fixed-length 12-byte string, so all ids have one length (16). */
static void block_id(char out[17], unsigned i)
{
    char raw[13];
    snprintf(raw, sizeof raw, "fogate%06u", i % 1000000);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, 12);
}

/* Put Block: the next len bytes of f as block number i. */
static int put_block(struct call *c, const struct sas_account *acct, const char *container,
                     const char *blob, FILE *f, unsigned i, curl_off_t len, char *err,
                     size_t errcap)
{
    char id[17], enc[64], extra[96], url[SAS_URL_MAX];

    block_id(id, i);
    if (sas_url_encode(enc, sizeof enc, id, 0) != 0 ||
        snprintf(extra, sizeof extra, "comp=block&blockid=%s", enc) >= (int)sizeof extra ||
        blob_url(url, sizeof url, acct, container, blob, "w", extra) != 0) {
        seterr(err, errcap, "azblob: put block: URL too long");
        return -1;
    }
    call_begin(c);
    c->src = f;
    if (perform(c, url, 0, len, "put block", err, errcap) != 0)
        return -1;
    return c->status == 201 ? 0 : http_error(c, "put block", err, errcap);
}

/* The Put Block List body naming blocks 0..n-1 in order. Caller frees. */
static char *block_list_xml(unsigned n)
{
    static const char head[] = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>";
    static const char tail[] = "</BlockList>";
    size_t cap = sizeof head + (size_t)n * 40 + sizeof tail;
    char *xml = malloc(cap);
    char id[17];
    size_t o;

    if (xml == NULL)
        return NULL;
    o = (size_t)snprintf(xml, cap, "%s", head);
    for (unsigned i = 0; i < n; i++) {
        block_id(id, i);
        o += (size_t)snprintf(xml + o, cap - o, "<Latest>%s</Latest>", id);
    }
    snprintf(xml + o, cap - o, "%s", tail);
    return xml;
}

/* Put Block List: commits blocks 0..n-1 as the blob's content. */
static int put_list(struct call *c, const struct sas_account *acct, const char *container,
                    const char *blob, unsigned n, char *err, size_t errcap)
{
    char url[SAS_URL_MAX];
    char *xml = NULL;
    int rc = -1;

    if (blob_url(url, sizeof url, acct, container, blob, "w", "comp=blocklist") != 0) {
        seterr(err, errcap, "azblob: put block list: URL too long");
        return -1;
    }
    xml = block_list_xml(n);
    call_begin(c);
    c->mem = xml;
    if (xml == NULL || add_header(c, "Content-Type: application/xml") != 0) {
        seterr(err, errcap, "azblob: put block list: out of memory");
        goto out;
    }
    if (perform(c, url, 0, (curl_off_t)strlen(xml), "put block list", err, errcap) != 0)
        goto out;
    rc = c->status == 201 ? 0 : http_error(c, "put block list", err, errcap);
out:
    c->mem = NULL;
    free(xml);
    return rc;
}

static int put_blocks(struct call *c, const struct sas_account *acct, const char *container,
                      const char *blob, FILE *f, curl_off_t size, size_t block_size,
                      char *err, size_t errcap)
{
    curl_off_t bs = (curl_off_t)block_size;
    curl_off_t nblocks = (size + bs - 1) / bs;

    if (nblocks > AZBLOB_MAX_BLOCKS) {
        seterr(err, errcap, "azblob: put: %lld blocks needed, more than %d",
               (long long)nblocks, AZBLOB_MAX_BLOCKS);
        return -1;
    }
    for (unsigned i = 0; i < (unsigned)nblocks; i++) {
        curl_off_t len = size - (curl_off_t)i * bs < bs ? size - (curl_off_t)i * bs : bs;
        if (put_block(c, acct, container, blob, f, i, len, err, errcap) != 0)
            return -1;
    }
    return put_list(c, acct, container, blob, (unsigned)nblocks, err, errcap);
}

int azblob_put_file_blocks(const struct sas_account *acct, const char *container,
                           const char *blob, const char *path, size_t block_size, char *err,
                           size_t errcap)
{
    char url[SAS_URL_MAX];
    struct call c = {0};
    struct stat st;
    FILE *f = NULL;
    int rc = -1;

    if (block_size == 0 || block_size > ((size_t)4000 << 20) ||
        blob_url(url, sizeof url, acct, container, blob, "cw", NULL) != 0) {
        seterr(err, errcap, "azblob: put: bad block size, account, container or blob name");
        return -1;
    }
    f = fopen(path, "rb");
    if (f == NULL || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        seterr(err, errcap, "azblob: put: cannot open %s as a regular file", path);
        goto out;
    }
    if (call_init(&c, err, errcap) != 0)
        goto out;
    if ((size_t)st.st_size <= block_size)
        rc = put_whole(&c, url, f, (curl_off_t)st.st_size, err, errcap);
    else
        rc = put_blocks(&c, acct, container, blob, f, (curl_off_t)st.st_size, block_size, err,
                        errcap);
out:
    call_cleanup(&c);
    if (f)
        fclose(f);
    return rc;
}

int azblob_put_file(const struct sas_account *acct, const char *container, const char *blob,
                    const char *path, char *err, size_t errcap)
{
    return azblob_put_file_blocks(acct, container, blob, path, AZBLOB_BLOCK_SIZE_DEFAULT, err,
                                  errcap);
}
