/* tracectx: W3C Trace Context (traceparent) and the request id a client may send.
 * Pure: parsing, validation and formatting; the random bits come from the caller.
 * Invariant: a trace id or request id kept here is printable ASCII of bounded length
 * taken only from a value that passed validation, so it is safe in logs and bodies. */
#ifndef FOGATE_TRACECTX_H
#define FOGATE_TRACECTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACECTX_REQUEST_ID_MAX 64  /* longest client X-Request-Id taken as it is */

struct tracectx {
    char trace_id[33];     /* 32 lower-case hex digits */
    char span_id[17];      /* this request's span (fogate's own), 16 hex digits */
    uint8_t flags;         /* trace-flags (bit 0: sampled), copied from the client */
};

/* Parses a traceparent value (`len` bytes): version 00 "00-<32 hex>-<16 hex>-<2 hex>"
 * (lower-case, ids not all zero; a later version with more fields is read by its first
 * four as the spec says; version ff is invalid). On success copies trace id and flags to
 * *t and returns 0; -1 if invalid (then *t is untouched). Pure. */
int tracectx_parse(const char *value, size_t len, struct tracectx *t);

/* Fills hex digits from 64-bit random values: a new trace id (two values) or span id
 * (one). Never all zero. Pure. */
void tracectx_hex(uint64_t r1, uint64_t r2, char *out, size_t digits);

/* Writes "00-<trace_id>-<span>-<flags>" (56 chars + NUL) for a call made as a child of t
 * with span id `span` (16 hex digits). Returns out. Pure. */
char *tracectx_format(const struct tracectx *t, const char *span, char out[56]);

/* True when a client's X-Request-Id (`len` bytes) is usable as it is: 1 to
 * TRACECTX_REQUEST_ID_MAX characters from [A-Za-z0-9._:-]. Pure. */
bool tracectx_request_id_ok(const char *value, size_t len);

#endif
