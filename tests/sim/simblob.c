/* simblob: fosim's own blob store. See simblob.h.
 *
 *   Put Block (file) --> uncommitted list --Put Block List--> committed file (copied in
 *   the kernel with copy_file_range), uncommitted list discarded
 *   Put Blob (file) -----------------------------------------> committed file
 *
 * Limits by the request's SAS version (simblobrule). Requests are authorised by the SAS
 * alone (signature, window, permission), as Azure does for a service SAS. */
#define _GNU_SOURCE
#include "simblob.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "sas.h"
#include "simblobrule.h"
#include "simguid.h"
#include "simurl.h"

#define CONTAINER "dmf"
#define PREFIX "/" SIMBLOB_ACCOUNT "/" CONTAINER "/"
#define NAME_MAX_LEN 256
#define LIST_CAP (8 * 1024 * 1024) /* Put Block List body: 50,000 ids fit */
#define COPY_PIECE (256 * 1024)

struct block {
    char id[128];         /* base64 as sent (percent-decoded) */
    char path[512];       /* uncommitted: its file; committed: "" (bytes in the blob file) */
    long long size, offset;
};

struct blob {
    char name[NAME_MAX_LEN];
    char path[512];              /* committed bytes; "" while only blocks exist */
    long long size;
    int via_blocks;              /* committed by Put Block List */
    struct block *committed;     /* owned */
    size_t ncommitted;
    struct block *uncommitted;   /* owned */
    size_t nunc, capunc;
    size_t id_len;               /* encoded length every block id must have; 0 = any */
    long long block_max;         /* largest committed block */
    long puts, blocks, lists;
    struct blob *next;
};

struct simblob {
    struct blob *blobs;          /* owned list */
};

enum op { OP_PUT, OP_BLOCK, OP_LIST, OP_GET };

static void head(struct sim *s, struct simhttp_req *req);
static void handle(struct sim *s, struct simhttp_req *req);
static const struct sim_route routes[] = {
    {"blob_put", head, handle}, {"blob_block", head, handle},
    {"blob_blocklist", head, handle}, {"blob_get", head, handle},
};

struct simblob *simblob_new(void)
{
    return calloc(1, sizeof(struct simblob));
}

static void drop_uncommitted(struct blob *b)
{
    for (size_t i = 0; i < b->nunc; i++)
        unlink(b->uncommitted[i].path);
    b->nunc = 0;
}

void simblob_clear(struct simblob *sb)
{
    while (sb && sb->blobs) {
        struct blob *b = sb->blobs;
        sb->blobs = b->next;
        drop_uncommitted(b);
        if (b->path[0])
            unlink(b->path);
        free(b->uncommitted);
        free(b->committed);
        free(b);
    }
}

void simblob_free(struct simblob *sb)
{
    simblob_clear(sb);
    free(sb);
}

static struct blob *find(struct simblob *sb, const char *name, int create)
{
    struct blob *b;
    for (b = sb->blobs; b; b = b->next)
        if (strcmp(b->name, name) == 0)
            return b;
    if (!create || !(b = calloc(1, sizeof(*b))))
        return NULL;
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->next = sb->blobs;
    sb->blobs = b;
    return b;
}

static enum op op_of(const struct simhttp_req *req)
{
    char comp[32];
    if (strcmp(req->method, "PUT") != 0)
        return OP_GET;
    if (simurl_param(req->query, "comp", 0, comp, sizeof(comp)) != 1)
        return OP_PUT;
    return strcmp(comp, "blocklist") == 0 ? OP_LIST : OP_BLOCK;
}

const struct sim_route *simblob_route(const struct simhttp_req *req)
{
    if (strncmp(req->path, "/" SIMBLOB_ACCOUNT "/", sizeof(SIMBLOB_ACCOUNT) + 1) != 0)
        return NULL;
    return &routes[op_of(req)];
}

/* ---- replies ---- */

static void common_headers(struct simhttp_req *req, const char *sv)
{
    char id[SIMGUID_LEN + 1];
    simguid_new(id);
    simhttp_add_header(req, "x-ms-request-id", id);
    simhttp_add_header(req, "x-ms-version", sv && *sv ? sv : "2014-02-14");
    simhttp_add_header(req, "Server", "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0");
}

/* Azure's error: XML body, x-ms-error-code; extra is more XML inside <Error> (or ""). */
static void reply_error(struct simhttp_req *req, const char *sv, int status, const char *code,
                        const char *msg, const char *extra)
{
    char body[2048], id[SIMGUID_LEN + 1], when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.0000000Z", &tm);
    simguid_new(id);
    int n = snprintf(body, sizeof(body), "\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>"
                     "<Error><Code>%s</Code><Message>%s\nRequestId:%s\nTime:%s</Message>%s"
                     "</Error>", code, msg, id, when, extra);
    common_headers(req, sv);
    simhttp_add_header(req, "x-ms-error-code", code);
    simhttp_reply(req, status, "application/xml", body, n > 0 ? (size_t)n : 0);
}

static void too_large(struct simhttp_req *req, const char *sv, long long max)
{
    char extra[64];
    snprintf(extra, sizeof(extra), "<MaxLimit>%lld</MaxLimit>", max);
    reply_error(req, sv, 413, "RequestBodyTooLarge", "The request body is too large and "
                "exceeds the maximum permissible limit.", extra);
}

static void created(struct simhttp_req *req, const char *sv)
{
    char etag[48];
    snprintf(etag, sizeof(etag), "\"0x8D%012lX\"", (unsigned long)time(NULL));
    common_headers(req, sv);
    simhttp_add_header(req, "ETag", etag);
    simhttp_add_header(req, "x-ms-request-server-encrypted", "true");
    simhttp_reply(req, 201, NULL, NULL, 0);
}

/* ---- SAS ---- */

static const char *store_key(void)
{
    return SAS_DEV_KEY; /* public test key; the store is fosim's own */
}

json_t *simblob_sas_url(struct sim *s, const char *name, const char *perms, long before,
                        long after)
{
    char st[SAS_TIME_LEN], se[SAS_TIME_LEN], sts[2048], sig[SAS_SIG_LEN], esig[3 * SAS_SIG_LEN],
         ename[3 * NAME_MAX_LEN], url[SAS_URL_MAX];
    const char *sv = s->conf->blob_sas_version;
    time_t now = time(NULL);
    if (strlen(name) >= NAME_MAX_LEN || sas_format_time(st, sizeof(st), now - before) != 0 ||
        sas_format_time(se, sizeof(se), now + after) != 0 ||
        simblobrule_string_to_sign(sts, sizeof(sts), sv, perms, st, se, SIMBLOB_ACCOUNT,
                                   CONTAINER, name) != 0 ||
        sas_sign(sig, sizeof(sig), store_key(), sts) != 0 ||
        sas_url_encode(esig, sizeof(esig), sig, 0) != 0 ||
        sas_url_encode(ename, sizeof(ename), name, 1) != 0)
        return json_string("");
    /* The order D365 uses (reference §4.5): sv, sr, sig, st, se, sp. */
    snprintf(url, sizeof(url), "%s" PREFIX "%s?sv=%s&sr=b&sig=%s&st=%.13s%%3A%.2s%%3A%.3s&se="
             "%.13s%%3A%.2s%%3A%.3s&sp=%s", s->base_url, ename, sv, esig, st, st + 14, st + 17,
             se, se + 14, se + 17, perms);
    return json_string(url);
}

static time_t parse_time(const char *v)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return end && !*end ? timegm(&tm) : (time_t)-1;
}

/* Checks the request's SAS for `need` ('r' or 'w'). Writes sv (the version to apply) and
 * returns 0, or replies 403 as Azure does and returns -1. */
static int check_sas(struct simhttp_req *req, const char *name, char need, char *sv, size_t cap)
{
    char sp[16] = "", st[32] = "", se[32] = "", sig[96] = "", sr[8] = "", sts[2048],
         want[SAS_SIG_LEN];
    const char *auth = "Server failed to authenticate the request. Make sure the value of "
                       "Authorization header is formed correctly including the signature.";
    time_t now = time(NULL);
    snprintf(sv, cap, "%s", "");
    simurl_param(req->query, "sv", 0, sv, cap);
    simurl_param(req->query, "sp", 0, sp, sizeof(sp));
    simurl_param(req->query, "st", 0, st, sizeof(st));
    simurl_param(req->query, "se", 0, se, sizeof(se));
    simurl_param(req->query, "sig", 0, sig, sizeof(sig));
    simurl_param(req->query, "sr", 0, sr, sizeof(sr));
    if (!simblobrule_version_ok(sv) || strcmp(sr, "b") != 0 || !se[0] ||
        simblobrule_string_to_sign(sts, sizeof(sts), sv, sp, st, se, SIMBLOB_ACCOUNT,
                                   CONTAINER, name) != 0 ||
        sas_sign(want, sizeof(want), store_key(), sts) != 0 || strcmp(want, sig) != 0) {
        reply_error(req, sv, 403, "AuthenticationFailed", auth,
                    "<AuthenticationErrorDetail>Signature did not match.</AuthenticationErrorDetail>");
        return -1;
    }
    time_t tse = parse_time(se), tst = st[0] ? parse_time(st) : 0;
    if (tse == (time_t)-1 || tse < now || (st[0] && (tst == (time_t)-1 || tst > now + 300))) {
        reply_error(req, sv, 403, "AuthenticationFailed", auth, "<AuthenticationErrorDetail>"
                    "Signed expiry time must be after the current time.</AuthenticationErrorDetail>");
        return -1;
    }
    if (!strchr(sp, need) && !(need == 'w' && strchr(sp, 'c'))) {
        reply_error(req, sv, 403, "AuthorizationPermissionMismatch", "This request is not "
                    "authorized to perform this operation using this permission.", "");
        return -1;
    }
    return 0;
}

/* ---- head: authorise, validate, choose the sink ---- */

static int name_of(const struct simhttp_req *req, char *out, size_t cap)
{
    const char *n = req->path + strlen(PREFIX);
    if (strncmp(req->path, PREFIX, strlen(PREFIX)) != 0 || !*n || strchr(n, '/'))
        return -1;
    return simurl_decode(n, strlen(n), out, cap, 0) < 0 ? -1 : 0;
}

/* Put Block's id: valid base64 and the blob's id length. Replies and returns -1 if not. */
static int check_block_id(struct sim *s, struct simhttp_req *req, const char *sv,
                          const char *name, char *id, size_t cap)
{
    if (simurl_param(req->query, "blockid", 0, id, cap) != 1 || !simblobrule_block_id_ok(id)) {
        reply_error(req, sv, 400, "InvalidQueryParameterValue", "Value for one of the query "
                    "parameters specified in the request URI is invalid.",
                    "<QueryParameterName>blockid</QueryParameterName>");
        return -1;
    }
    struct blob *b = find(s->blobs, name, 0);
    if (b && b->id_len && b->id_len != strlen(id)) {
        reply_error(req, sv, 400, "InvalidBlobOrBlock", "The specified blob or block content "
                    "is invalid.", "");
        return -1;
    }
    return 0;
}

static void head(struct sim *s, struct simhttp_req *req)
{
    char name[NAME_MAX_LEN], sv[16], id[128], path[512];
    enum op op = op_of(req);
    if (req->replied)
        return;
    if (!s->conf->blob_self || name_of(req, name, sizeof(name)) != 0) {
        reply_error(req, "", 404, "ResourceNotFound", "The specified resource does not exist.", "");
        return;
    }
    if (check_sas(req, name, op == OP_GET ? 'r' : 'w', sv, sizeof(sv)) != 0)
        return;
    if (op == OP_GET)
        return;
    if (op == OP_LIST) {
        req->body_cap = LIST_CAP;
        return;
    }
    if (op == OP_PUT && strcmp(simhttp_header(req, "x-ms-blob-type") ?
                               simhttp_header(req, "x-ms-blob-type") : "", "BlockBlob") != 0) {
        reply_error(req, sv, 400, "MissingRequiredHeader", "An HTTP header that's mandatory "
                    "for this request is not specified.",
                    "<HeaderName>x-ms-blob-type</HeaderName>");
        return;
    }
    if (op == OP_BLOCK && check_block_id(s, req, sv, name, id, sizeof(id)) != 0)
        return;
    if (req->content_length < 0) {
        reply_error(req, sv, 411, "MissingContentLengthHeader", "Content-Length HTTP header "
                    "is missing.", "");
        return;
    }
    long long max = op == OP_PUT ? simblobrule_put_blob_max(sv) : simblobrule_block_max(sv);
    if (req->content_length > max) {
        too_large(req, sv, max);
        return;
    }
    sim_data_path(s, op == OP_PUT ? "blob" : "block", path, sizeof(path));
    req->body_cap = (size_t)max;
    simhttp_sink_file(req, path);
}

/* ---- the operations ---- */

static void put_blob(struct sim *s, struct simhttp_req *req, const char *name, const char *sv)
{
    struct blob *b = find(s->blobs, name, 1);
    if (!b) {
        unlink(req->body_path);
        reply_error(req, sv, 500, "InternalError", "out of memory", "");
        return;
    }
    drop_uncommitted(b); /* Put Blob replaces the blob and its uncommitted blocks */
    if (b->path[0])
        unlink(b->path);
    snprintf(b->path, sizeof(b->path), "%s", req->body_path);
    b->size = (long long)req->body_len;
    b->via_blocks = 0;
    b->ncommitted = 0;
    b->id_len = 0;
    b->block_max = 0;
    b->puts++;
    sim_count(s, "blob", "put_blob", 1);
    created(req, sv);
}

static void put_block(struct sim *s, struct simhttp_req *req, const char *name, const char *sv)
{
    char id[128];
    struct blob *b = find(s->blobs, name, 1);
    simurl_param(req->query, "blockid", 0, id, sizeof(id));
    if (b && b->nunc >= SIMBLOBRULE_MAX_UNCOMMITTED) {
        unlink(req->body_path);
        reply_error(req, sv, 409, "BlockCountExceedsLimit", "The uncommitted block count "
                    "cannot exceed the maximum limit of 100,000 blocks.", "");
        return;
    }
    if (b && b->nunc == b->capunc) {
        size_t cap = b->capunc ? b->capunc * 2 : 64;
        struct block *nb = realloc(b->uncommitted, cap * sizeof(*nb));
        if (nb) {
            b->uncommitted = nb;
            b->capunc = cap;
        }
    }
    if (!b || b->nunc == b->capunc) {
        unlink(req->body_path);
        reply_error(req, sv, 500, "InternalError", "out of memory", "");
        return;
    }
    struct block *k = &b->uncommitted[b->nunc++];
    snprintf(k->id, sizeof(k->id), "%s", id);
    snprintf(k->path, sizeof(k->path), "%s", req->body_path);
    k->size = (long long)req->body_len;
    k->offset = 0;
    b->id_len = strlen(id);
    b->blocks++;
    sim_count(s, "blob", "put_block", 1);
    created(req, sv);
}

/* The newest uncommitted block with this id, or NULL. */
static struct block *uncommitted(struct blob *b, const char *id)
{
    for (size_t i = b->nunc; i > 0; i--)
        if (strcmp(b->uncommitted[i - 1].id, id) == 0)
            return &b->uncommitted[i - 1];
    return NULL;
}

static struct block *committed(struct blob *b, const char *id)
{
    for (size_t i = 0; i < b->ncommitted; i++)
        if (strcmp(b->committed[i].id, id) == 0)
            return &b->committed[i];
    return NULL;
}

struct commit {
    struct blob *b;
    struct block *list;     /* owned: the new committed list */
    size_t n, cap;
    int out_fd, old_fd;
    long long size;
};

static int copy_range(int from, long long off, int to, long long len)
{
    loff_t o = off;
    while (len > 0) {
        ssize_t n = copy_file_range(from, &o, to, NULL, (size_t)(len > (1 << 30) ? 1 << 30 : len), 0);
        if (n <= 0)
            return -1;
        len -= n;
    }
    return 0;
}

static int on_entry(void *arg, enum simblobrule_from from, const char *id)
{
    struct commit *c = arg;
    struct block *src = NULL;
    if (c->n >= SIMBLOBRULE_MAX_BLOCKS)
        return -1;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        struct block *nl = realloc(c->list, cap * sizeof(*nl));
        if (!nl)
            return -1;
        c->list = nl;
        c->cap = cap;
    }
    if (from != SIMBLOBRULE_COMMITTED)
        src = uncommitted(c->b, id);
    if (!src && from != SIMBLOBRULE_UNCOMMITTED)
        src = committed(c->b, id);
    if (!src)
        return -1;
    int fd = src->path[0] ? open(src->path, O_RDONLY) : c->old_fd;
    int rc = fd < 0 ? -1 : copy_range(fd, src->path[0] ? 0 : src->offset, c->out_fd, src->size);
    if (src->path[0] && fd >= 0)
        close(fd);
    if (rc != 0)
        return -1;
    struct block *k = &c->list[c->n++];
    snprintf(k->id, sizeof(k->id), "%s", id);
    k->path[0] = '\0';
    k->offset = c->size;
    k->size = src->size;
    c->size += src->size;
    return 0;
}

static void put_block_list(struct sim *s, struct simhttp_req *req, const char *name,
                           const char *sv)
{
    char path[512];
    struct blob *b = find(s->blobs, name, 1);
    struct commit c = {b, NULL, 0, 0, -1, -1, 0};
    sim_data_path(s, "blob", path, sizeof(path));
    if (b)
        c.out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (b && b->path[0])
        c.old_fd = open(b->path, O_RDONLY);
    int n = c.out_fd < 0 || !req->body ? -1 : simblobrule_block_list(req->body, on_entry, &c);
    if (c.out_fd >= 0)
        close(c.out_fd);
    if (c.old_fd >= 0)
        close(c.old_fd);
    if (n < 0) {
        unlink(path);
        free(c.list);
        reply_error(req, sv, 400, "InvalidBlockList", "The specified block list is invalid.", "");
        return;
    }
    drop_uncommitted(b); /* the list commits; every other uncommitted block is discarded */
    if (b->path[0])
        unlink(b->path);
    snprintf(b->path, sizeof(b->path), "%s", path);
    free(b->committed);
    b->committed = c.list;
    b->ncommitted = c.n;
    b->size = c.size;
    b->via_blocks = 1;
    b->block_max = 0;
    for (size_t i = 0; i < c.n; i++)
        if (c.list[i].size > b->block_max)
            b->block_max = c.list[i].size;
    b->lists++;
    sim_count(s, "blob", "put_block_list", 1);
    created(req, sv);
}

static void get_blob(struct sim *s, struct simhttp_req *req, const char *name, const char *sv)
{
    struct blob *b = find(s->blobs, name, 0);
    if (!b || !b->path[0]) {
        reply_error(req, sv, 404, "BlobNotFound", "The specified blob does not exist.", "");
        return;
    }
    sim_count(s, "blob", "get", 1);
    common_headers(req, sv);
    simhttp_add_header(req, "x-ms-blob-type", "BlockBlob");
    simhttp_reply_file(req, 200, "application/octet-stream", b->path);
}

static void handle(struct sim *s, struct simhttp_req *req)
{
    char name[NAME_MAX_LEN], sv[16] = "";
    enum op op = op_of(req);
    simurl_param(req->query, "sv", 0, sv, sizeof(sv));
    name_of(req, name, sizeof(name));
    if (req->body_too_large || req->body_io_error) {
        if (req->body_path)
            unlink(req->body_path);
        if (req->body_too_large)
            too_large(req, sv, op == OP_PUT ? simblobrule_put_blob_max(sv)
                                            : op == OP_LIST ? LIST_CAP : simblobrule_block_max(sv));
        else
            reply_error(req, sv, 500, "InternalError", "cannot store the body", "");
        return;
    }
    switch (op) {
    case OP_PUT: put_blob(s, req, name, sv); break;
    case OP_BLOCK: put_block(s, req, name, sv); break;
    case OP_LIST: put_block_list(s, req, name, sv); break;
    default: get_blob(s, req, name, sv); break;
    }
}

/* ---- control ---- */

static int sha256_file(const char *path, char hex[65])
{
    unsigned char md[32], *buf = malloc(COPY_PIECE);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int fd = open(path, O_RDONLY), rc = -1;
    ssize_t n = 0;
    if (fd < 0 || !buf || !ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
        goto out;
    while ((n = read(fd, buf, COPY_PIECE)) > 0)
        EVP_DigestUpdate(ctx, buf, (size_t)n);
    if (n == 0 && EVP_DigestFinal_ex(ctx, md, NULL) == 1) {
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        rc = 0;
    }
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    EVP_MD_CTX_free(ctx);
    return rc;
}

json_t *simblob_info(struct sim *s, const char *name)
{
    char hex[65] = "";
    struct blob *b = find(s->blobs, name, 0);
    if (!b)
        return NULL;
    int exists = b->path[0] != '\0';
    if (exists)
        sha256_file(b->path, hex);
    return json_pack("{s:b, s:I, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "exists", exists,
                     "size", (json_int_t)(exists ? b->size : 0), "sha256", hex, "committed_as",
                     !exists ? "" : b->via_blocks ? "blocks" : "blob", "blocks",
                     (json_int_t)b->ncommitted, "block_max", (json_int_t)b->block_max,
                     "uncommitted", (json_int_t)b->nunc, "put_blob", (json_int_t)b->puts,
                     "put_block", (json_int_t)b->blocks, "put_block_list", (json_int_t)b->lists);
}
