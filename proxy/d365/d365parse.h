/* d365parse: pure parsing and building of D365 connector/OData payloads for the simple API
 * (reference §3, §4.1-§4.4): action bodies, the OData value envelope, the §4.2 error
 * envelope, enqueue and dequeue answers, upstream URLs.
 * Invariant: no I/O; nothing returned ever contains an OData stack trace. */
#ifndef FOGATE_D365PARSE_H
#define FOGATE_D365PARSE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "guid.h"

/* Longest D365 error message fogate passes on (bytes, NUL included). */
#define D365PARSE_MSG_MAX 512

/* True iff a GetMessageStatus value is final: Processed, ProcessedWithErrors,
 * PreProcessingError, PostProcessingFailed, or the internal spellings PostProcessingError
 * and PreProcessError/PostProcessError (reference §4.3, §3.5). Case-insensitive. */
bool d365parse_status_final(const char *status);

/* The JSON body {"<param>":"<value>"} of an OData action call: in buf (cap bytes; buf may
 * be NULL) when it fits, else a malloc'd string; the caller frees it unless it is buf.
 * NULL when out of memory. */
char *d365parse_action_body(const char *param, const char *value, char *buf, size_t cap);

/* The "value" of a §4.1 success envelope, when it is a JSON string (null reads as "").
 * Returns a malloc'd copy the caller frees, or NULL if the body is not such an envelope. */
char *d365parse_value_string(const char *body, size_t len);

/* Reads the §4.2 error envelope in `body` into `msg` (cap bytes, NUL-terminated): the
 * innererror message when there is one, else error.message; control characters become
 * spaces, the text is truncated to fit; the stack trace and exception type are never
 * copied. Returns 0, or -1 (msg "") when the body is no error envelope. */
int d365parse_error_message(const char *body, size_t len, char *msg, size_t cap);

/* The message id of an enqueue answer (reference §3.1: a JSON-quoted GUID, maybe with
 * braces, whitespace or no quotes at all) into canonical form. Returns 0 or -1. */
int d365parse_message_id(const char *body, size_t len, char out[GUID_CANON_SIZE]);

/* GetExecutionErrors returns a STRING holding a JSON array (§4.4). Returns the array as a
 * new reference, or NULL when the text is not a JSON array (D365 is known to emit broken
 * escaping); the caller then reports the raw text. */
json_t *d365parse_errors_array(const char *text);

/* The fields of a dequeue answer (§3.2) fogate uses. Strings are owned by the struct. */
struct d365parse_dequeue {
    char *correlation_id;        /* owned; never NULL after a successful parse */
    char *pop_receipt;           /* owned; never NULL after a successful parse */
    char *download_location;     /* owned; NULL when null or missing */
    char *last_dequeue;          /* owned; LastDequeueDateTime, NULL on first delivery */
    bool file_exists;            /* IsDownLoadFileExist (true when missing) */
    char *file_error;            /* owned; FileDownLoadErrorMessage, NULL when empty */
};

/* Parses a dequeue 200 body into *out (zeroed first). Returns 0, or -1 (nothing owned)
 * when it is not a JSON object with string CorrelationId and PopReceipt. */
int d365parse_dequeue(const char *body, size_t len, struct d365parse_dequeue *out);

/* Frees the strings of *d and zeroes it. */
void d365parse_dequeue_cleanup(struct d365parse_dequeue *d);

/* Where fogate downloads from, relative to the environment's base URL: the path and query
 * of `location` (whatever scheme and host D365 wrote, e.g. http://h:80 behind its load
 * balancer, §3.7), which must be a connector download path ([/en]/api/connector/download/
 * ...). Returns a malloc'd string, or NULL when it is not such a URL or out of memory. */
char *d365parse_download_path(const char *location);

/* Appends `s` to buf (cap bytes, NUL-terminated, *len its length) percent-encoded for a
 * query value: unreserved characters kept, space as %20. Returns 0, or -1 if it does not
 * fit (buf then unchanged). */
int d365parse_query_encode(char *buf, size_t cap, size_t *len, const char *s);

/* The enqueue path /api/connector/enqueue/<activity>?entity=..&company=.. (entity and
 * company may be NULL: omitted; encoded with %20 for spaces). Returns a malloc'd string
 * or NULL. */
char *d365parse_enqueue_path(const char *activity, const char *entity, const char *company);

#endif
