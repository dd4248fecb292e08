/* ctlhttp: fogatectl's one HTTP call (libcurl easy, blocking): a request with headers and
 * an optional body from memory or a file; the answer's body captured (capped) or, for a
 * 200, streamed into a file. TLS is verified; nothing secret is ever printed. */
#ifndef FOGATE_CTLHTTP_H
#define FOGATE_CTLHTTP_H

#include <stdio.h>

#define CTLHTTP_CAPTURE_MAX (8u << 20) /* largest answer body kept in memory */
#define CTLHTTP_ERR_MAX 512            /* an error message of ctlhttp_do */

struct ctlhttp_req {
    const char *method;            /* "GET", "POST" */
    const char *url;               /* borrowed */
    const char *const *headers;    /* borrowed; NULL-terminated "Name: value" lines */
    const char *body;              /* borrowed; NULL = none (or upload) */
    size_t body_len;
    FILE *upload;                  /* borrowed; the body from this file (upload_size bytes) */
    long long upload_size;
    FILE *sink;                    /* borrowed; a 200's body goes here instead of memory */
    long timeout_s;                /* whole call; 0 = none */
};

struct ctlhttp_resp {
    long status;                   /* HTTP status; 0 = no answer */
    char *body;                    /* owned; NUL-terminated; "" when streamed to sink */
    size_t len;
    char message_id[64];           /* X-Fogate-Message-Id, "" if none */
    char retry_after[16];          /* Retry-After, "" if none */
    int sink_error;                /* errno of a failed write to sink, 0 = fine */
};

/* Makes the call. Returns 0 when an answer came (any status; see resp->status), -1 when
 * none did (reason in err). resp->body must be freed with ctlhttp_resp_free either way. */
int ctlhttp_do(const struct ctlhttp_req *rq, struct ctlhttp_resp *resp, char *err, size_t cap);

/* Frees resp's body. */
void ctlhttp_resp_free(struct ctlhttp_resp *resp);

/* The "code" and "message" of a fogate error body, into a short line (out, cap). */
void ctlhttp_error_line(const struct ctlhttp_resp *resp, char *out, size_t cap);

#endif
