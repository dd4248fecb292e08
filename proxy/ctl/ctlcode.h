/* ctlcode: fogatectl's pure decisions: exit codes (the documented table), the exit code of
 * an import's final status, an HTTP status's class, the Idempotency-Key of a file's
 * content, and the name a taken export is written under. No I/O. */
#ifndef FOGATE_CTLCODE_H
#define FOGATE_CTLCODE_H

#include <stdbool.h>
#include <stddef.h>

/* The exit codes (docs/fogatectl.md). */
enum ctlcode {
    CTL_OK = 0,              /* done: Processed, file written and confirmed, action done */
    CTL_USAGE = 2,           /* bad arguments, missing key or token */
    CTL_UNREACHABLE = 3,     /* fogate did not answer (connection, TLS, timeout) */
    CTL_REFUSED = 4,         /* fogate refused: 4xx (key, token, job, not found, conflict) */
    CTL_UNAVAILABLE = 5,     /* fogate or D365 cannot now: 5xx (paused, throttled): retry */
    CTL_EMPTY = 6,           /* next: nothing waiting (204) */
    CTL_LOCAL_IO = 7,        /* a local file could not be read or written */
    CTL_NOT_CONFIRMED = 8,   /* next: written, but the confirmation failed (it comes again) */
    CTL_WITH_ERRORS = 10,    /* send: ProcessedWithErrors */
    CTL_PRE_ERROR = 11,      /* send: PreProcessingError */
    CTL_POST_FAILED = 12,    /* send: PostProcessingFailed */
    CTL_OTHER_FINAL = 13,    /* send: another final status (e.g. NotEnqueued) */
    CTL_WAIT_TIMEOUT = 14,   /* send: no final status within --wait */
};

/* The exit code for an import's final status `status` (as D365 spells it). */
enum ctlcode ctlcode_final(const char *status);

/* The exit code for an HTTP answer `http` that is not the success the caller expected:
 * 4xx CTL_REFUSED, 5xx CTL_UNAVAILABLE, anything else CTL_UNREACHABLE. */
enum ctlcode ctlcode_http(long http);

/* "sha256:" + 64 hex digits of `digest` (32 bytes) into out (cap >= 72). */
void ctlcode_idem_key(const unsigned char digest[32], char *out, size_t cap);

/* The file name a taken export gets: the message id (a GUID; anything else is refused so
 * that no path can be formed from a header) followed by `suffix` (e.g. ".csv" or "").
 * Returns 0, or -1 when `message_id` is not 36 characters of [0-9a-fA-F-]. */
int ctlcode_export_name(const char *message_id, const char *suffix, char *out, size_t cap);

#endif
