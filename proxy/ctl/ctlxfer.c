/* ctlxfer: fogatectl's client commands: send FILE (enqueue with an Idempotency-Key of the
 * content's SHA-256, then wait for the final status) and next DIR (take the next export,
 * write it to a temporary file in DIR, fsync, rename, fsync DIR, then confirm).
 * Invariant: a file appears in DIR under its final name only whole and on disk, and it is
 * confirmed to fogate only after that. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ctl.h"
#include "ctlcode.h"
#include "ctlhttp.h"

#define URL_MAX 2048

static int key_header(const struct ctlopts *o, char *out, size_t cap)
{
    char key[CTL_SECRET_MAX];
    int rc = ctl_secret(o->key_file, getenv("FOGATE_API_KEY"), key);

    if (rc != 0) {
        if (rc > 0)
            fprintf(stderr, "fogatectl: no API key: use --key-file or FOGATE_API_KEY_FILE\n");
        return -1;
    }
    snprintf(out, cap, "X-Api-Key: %s", key);
    explicit_bzero(key, sizeof key);
    return 0;
}

/* SHA-256 of the open file f (rewound afterwards) into digest. */
static int file_sha256(FILE *f, unsigned char digest[32])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    char buf[65536];
    size_t n;
    int rc = -1;

    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1)
        goto out;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(c, buf, n);
    if (ferror(f) || EVP_DigestFinal_ex(c, digest, NULL) != 1)
        goto out;
    rewind(f);
    rc = 0;
out:
    EVP_MD_CTX_free(c);
    return rc;
}

static int fail_http(const char *what, const struct ctlhttp_resp *r)
{
    char line[600];

    ctlhttp_error_line(r, line, sizeof line);
    fprintf(stderr, "fogatectl: %s: %s\n", what, line);
    return ctlcode_http(r->status);
}

/* Polls the message's status until final or o->wait_s; returns the exit code. */
static int wait_final(const struct ctlopts *o, const char *keyh, const char *msg)
{
    char url[URL_MAX], err[CTLHTTP_ERR_MAX];
    const char *hdrs[] = { keyh, NULL };
    struct timespec start, now;
    unsigned delay_ms = 500;

    snprintf(url, sizeof url, "%s/v1/messages/%s?job=%s", o->url, msg, o->job);
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct ctlhttp_req rq = { .method = "GET", .url = url, .headers = hdrs, .timeout_s = 60 };
        struct ctlhttp_resp r;
        if (ctlhttp_do(&rq, &r, err, sizeof err) < 0) {
            fprintf(stderr, "fogatectl: status of %s: %s\n", msg, err);
            ctlhttp_resp_free(&r);
            return CTL_UNREACHABLE;
        }
        if (r.status != 200) {
            int code = fail_http("status", &r);
            ctlhttp_resp_free(&r);
            return code;
        }
        json_t *j = json_loads(r.body, 0, NULL);
        const char *st = json_string_value(json_object_get(j, "status"));
        if (st && json_is_true(json_object_get(j, "final"))) {
            int code = ctlcode_final(st);
            printf("%s %s\n", msg, st);
            json_decref(j);
            ctlhttp_resp_free(&r);
            return code;
        }
        json_decref(j);
        ctlhttp_resp_free(&r);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= o->wait_s) {
            fprintf(stderr, "fogatectl: %s: no final status within %ld s\n", msg, o->wait_s);
            return CTL_WAIT_TIMEOUT;
        }
        usleep(delay_ms * 1000);
        delay_ms = delay_ms * 2 > 10000 ? 10000 : delay_ms * 2;
    }
}

int ctlxfer_send(const struct ctlopts *o)
{
    char keyh[CTL_SECRET_MAX + 16], idem[80], idemh[100], nameh[300], url[URL_MAX];
    char err[CTLHTTP_ERR_MAX], path[4096];
    unsigned char digest[32];
    struct ctlhttp_resp r = { 0 };
    struct stat sb;
    FILE *f = NULL;
    int code = CTL_LOCAL_IO;

    if (!o->job || !o->arg) {
        fprintf(stderr, "fogatectl send: --job JOB and FILE are needed (see --help)\n");
        return CTL_USAGE;
    }
    if (key_header(o, keyh, sizeof keyh) < 0)
        return CTL_USAGE;
    if (!(f = fopen(o->arg, "rb")) || fstat(fileno(f), &sb) < 0 || file_sha256(f, digest) < 0) {
        fprintf(stderr, "fogatectl send: %s: %s\n", o->arg, strerror(errno));
        goto out;
    }
    snprintf(path, sizeof path, "%s", o->arg);
    ctlcode_idem_key(digest, idem, sizeof idem);
    snprintf(idemh, sizeof idemh, "Idempotency-Key: %s", idem);
    snprintf(nameh, sizeof nameh, "X-File-Name: %s", o->name ? o->name : basename(path));
    snprintf(url, sizeof url, "%s/v1/jobs/%s/messages", o->url, o->job);
    const char *hdrs[] = { keyh, idemh, nameh, "Content-Type: application/octet-stream", NULL };
    struct ctlhttp_req rq = { .method = "POST", .url = url, .headers = hdrs, .upload = f,
                              .upload_size = sb.st_size, .timeout_s = 3600 };
    if (ctlhttp_do(&rq, &r, err, sizeof err) < 0) {
        fprintf(stderr, "fogatectl send: %s\n", err);
        code = CTL_UNREACHABLE;
        goto out;
    }
    if (r.status != 202) {
        code = fail_http("send", &r);
        goto out;
    }
    json_t *j = json_loads(r.body, 0, NULL);
    char msg[64];
    snprintf(msg, sizeof msg, "%s", json_string_value(json_object_get(j, "message_id"))
                                        ? json_string_value(json_object_get(j, "message_id"))
                                        : "");
    if (json_is_true(json_object_get(j, "replayed")))
        fprintf(stderr, "fogatectl send: already sent (same content, %s): message %s\n", idem,
                msg);
    json_decref(j);
    if (!msg[0]) {
        fprintf(stderr, "fogatectl send: the answer has no message_id\n");
        code = CTL_UNAVAILABLE;
    } else if (o->no_wait) {
        printf("%s Enqueued\n", msg);
        code = CTL_OK;
    } else {
        code = wait_final(o, keyh, msg);
    }
out:
    explicit_bzero(keyh, sizeof keyh);
    ctlhttp_resp_free(&r);
    if (f)
        fclose(f);
    return code;
}

/* fsync of the directory `dir`, so that a rename in it is on disk. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd >= 0 ? fsync(fd) : -1;

    if (fd >= 0)
        close(fd);
    return rc;
}

static int confirm(const struct ctlopts *o, const char *keyh, const char *msg)
{
    char url[URL_MAX], err[CTLHTTP_ERR_MAX];
    const char *hdrs[] = { keyh, NULL };
    struct ctlhttp_req rq = { .method = "POST", .url = url, .headers = hdrs, .timeout_s = 120 };
    struct ctlhttp_resp r;
    int code = CTL_OK;

    snprintf(url, sizeof url, "%s/v1/jobs/%s/messages/%s/ack", o->url, o->job, msg);
    if (ctlhttp_do(&rq, &r, err, sizeof err) < 0) {
        fprintf(stderr, "fogatectl next: confirm %s: %s\n", msg, err);
        code = CTL_NOT_CONFIRMED;
    } else if (r.status != 200 && r.status != 202) {
        fail_http("next: confirm", &r);
        code = CTL_NOT_CONFIRMED;
    }
    ctlhttp_resp_free(&r);
    return code;
}

int ctlxfer_next(const struct ctlopts *o)
{
    char keyh[CTL_SECRET_MAX + 16], url[URL_MAX], err[CTLHTTP_ERR_MAX], tmp[4096], dst[4096];
    char name[128];
    struct ctlhttp_resp r = { 0 };
    FILE *f = NULL;
    int fd = -1, code = CTL_LOCAL_IO;
    bool keep = false;

    if (!o->job || !o->arg) {
        fprintf(stderr, "fogatectl next: --job JOB and DIR are needed (see --help)\n");
        return CTL_USAGE;
    }
    if (key_header(o, keyh, sizeof keyh) < 0)
        return CTL_USAGE;
    snprintf(tmp, sizeof tmp, "%s/.fogatectl-XXXXXX", o->arg);
    if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0 || !(f = fdopen(fd, "wb"))) {
        fprintf(stderr, "fogatectl next: %s: %s\n", o->arg, strerror(errno));
        goto out;
    }
    fd = -1;
    snprintf(url, sizeof url, "%s/v1/jobs/%s/next", o->url, o->job);
    const char *hdrs[] = { keyh, NULL };
    struct ctlhttp_req rq = { .method = "POST", .url = url, .headers = hdrs, .sink = f,
                              .timeout_s = 3600 };
    if (ctlhttp_do(&rq, &r, err, sizeof err) < 0) {
        fprintf(stderr, "fogatectl next: %s\n", err);
        code = r.sink_error ? CTL_LOCAL_IO : CTL_UNREACHABLE;
        goto out;
    }
    if (r.status == 204) {
        code = CTL_EMPTY;
        goto out;
    }
    if (r.status != 200) {
        code = fail_http("next", &r);
        goto out;
    }
    if (r.sink_error || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        fprintf(stderr, "fogatectl next: writing %s: %s\n", tmp,
                strerror(r.sink_error ? r.sink_error : errno));
        goto out; /* not confirmed: fogate hands it out again */
    }
    if (ctlcode_export_name(r.message_id, o->suffix ? o->suffix : "", name, sizeof name) < 0) {
        fprintf(stderr, "fogatectl next: the answer has no usable X-Fogate-Message-Id\n");
        code = CTL_UNAVAILABLE;
        goto out;
    }
    snprintf(dst, sizeof dst, "%s/%s", o->arg, name);
    if (fclose(f) != 0 || (f = NULL, rename(tmp, dst) != 0) || sync_dir(o->arg) != 0) {
        fprintf(stderr, "fogatectl next: %s: %s\n", dst, strerror(errno));
        goto out;
    }
    keep = true;
    printf("%s\n", dst);
    code = confirm(o, keyh, r.message_id);
out:
    explicit_bzero(keyh, sizeof keyh);
    ctlhttp_resp_free(&r);
    if (f)
        fclose(f);
    if (fd >= 0)
        close(fd);
    if (!keep && tmp[0] && strstr(tmp, "XXXXXX") == NULL)
        unlink(tmp);
    return code;
}
