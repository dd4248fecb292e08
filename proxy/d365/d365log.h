/* d365log: the one log line per D365 call attempt (d365_call), with D365's correlation
 * headers for Microsoft support. Never a URL, a token or a SAS. */
#ifndef FOGATE_D365LOG_H
#define FOGATE_D365LOG_H

#include <stdint.h>

#include "uphead.h"
#include "upstream.h"

/* One attempt, every field borrowed for the call. */
struct d365log_call {
    const char *environment;
    const char *operation;       /* d365stats_op_name */
    const char *method;
    int status;                  /* D365's status; 0 without an answer */
    int64_t duration_us;
    unsigned attempt;            /* 1 for the first */
    const char *trace_id;        /* 32 hex digits */
    const char *span_id;         /* 16 hex digits (not NUL-terminated after them) */
    const char *request_id;      /* "" or NULL when not made for a client request */
    enum upstream_result result; /* UPSTREAM_OK unless the transport failed */
    const char *error;           /* "" or a short text without URL query or secrets */
};

/* Logs the d365_call line: warn for 5xx or no answer, else info; `head` (may be NULL)
 * gives the ms-dyn-* / x-ms-dyn-* headers. */
void d365log_call(const struct d365log_call *c, const struct uphead *head);

#endif
