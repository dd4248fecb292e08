/* guid: canonical form of GUIDs (D365 activity IDs, Entra client IDs) in any client
 * spelling. Pure: no allocation, no I/O. */
#ifndef FOGATE_GUID_H
#define FOGATE_GUID_H

#include <stdbool.h>
#include <stddef.h>

/* 36 characters (8-4-4-4-12) plus the NUL. */
#define GUID_CANON_SIZE 37

/* Canonicalises the `len` bytes at `in` into `out` (lower-case hex, hyphens, no braces,
 * NUL-terminated). Accepts optional surrounding braces, written `{`/`}` or URL-encoded
 * `%7B`/`%7D` (any case), around 8-4-4-4-12 hex digits in any case. An opening brace
 * needs a closing one and vice versa. Returns 0, or -1 if malformed (out is then ""). */
int guid_canonical(const char *in, size_t len, char out[GUID_CANON_SIZE]);

/* True iff both spellings are valid GUIDs naming the same GUID. */
bool guid_equal(const char *a, size_t alen, const char *b, size_t blen);

#endif
