/* simpleroute: pure parsing of the simple API's request targets (/v1/...): which route,
 * the job name and message id in the path, and decoded query parameters.
 * Invariant: no I/O, no allocation; every output lives in caller buffers with a cap. */
#ifndef FOGATE_SIMPLEROUTE_H
#define FOGATE_SIMPLEROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "guid.h"

#define SIMPLEROUTE_NAME_MAX 128  /* decoded job name, NUL included */

enum simpleroute_kind {
    SIMPLEROUTE_NONE,        /* not a /v1 path: somebody else's */
    SIMPLEROUTE_UNKNOWN,     /* under /v1/ but no such route: 404 */
    SIMPLEROUTE_BAD_ID,      /* a message id that is not a GUID: 400 */
    SIMPLEROUTE_BAD_JOB,     /* a job segment that is empty, too long or badly encoded */
    SIMPLEROUTE_ENQUEUE,     /* POST /v1/jobs/{job}/messages */
    SIMPLEROUTE_NEXT,        /* POST /v1/jobs/{job}/next */
    SIMPLEROUTE_ACK,         /* POST /v1/jobs/{job}/messages/{id}/ack */
    SIMPLEROUTE_STATUS,      /* GET /v1/messages/{id} */
    SIMPLEROUTE_ERRORS,      /* GET /v1/messages/{id}/errors */
    SIMPLEROUTE_HISTORY,     /* GET /v1/history */
    SIMPLEROUTE_RECORD,      /* GET /v1/history/{id} */
    SIMPLEROUTE_BAD_RECORD,  /* a history record id that is not 32 hex digits: 404 */
};

struct simpleroute {
    enum simpleroute_kind kind;
    const char *allow;                  /* the methods the route takes ("POST", "GET, HEAD") */
    char job[SIMPLEROUTE_NAME_MAX];     /* decoded; "" for routes without a job */
    char message_id[GUID_CANON_SIZE];   /* canonical; "" for routes without one */
    char record_id[33];                 /* history record id (lower-case hex); or "" */
};

/* Matches `path` (`len` bytes, the target without its query) against the routes. The
 * method is checked by the caller against out->allow. Returns out->kind. */
enum simpleroute_kind simpleroute_match(const char *path, size_t len, struct simpleroute *out);

/* True iff `method` (e.g. "GET") is one of those in `allow`. */
bool simpleroute_allows(const char *allow, const char *method);

/* Finds query parameter `name` in `target` (`len` bytes; the part after '?' is used) and
 * writes its decoded value ('+' is a space, %XX a byte) to out (cap bytes, NUL-terminated).
 * Returns the value's length, -1 when absent, -2 when malformed (bad %XX, a NUL or
 * control byte) or longer than cap - 1. The first occurrence wins. */
int simpleroute_query(const char *target, size_t len, const char *name, char *out, size_t cap);

/* Parses a ?wait= value: whole seconds 0..cap, larger values clamp to cap. Returns 0 with
 * *out set, or -1 when not a plain decimal number. */
int simpleroute_wait(const char *s, unsigned cap, unsigned *out);

#endif
