/* simurl: percent-decoding and key=value lookup for query strings and form bodies (pure).
 * Invariant: outputs are always NUL-terminated and never exceed their caps. */
#ifndef SIMURL_H
#define SIMURL_H

#include <stddef.h>

/* Decodes n bytes of `in` (%XX, and '+' as space when plus_space) into out (cap bytes).
 * Returns the decoded length, or -1 if it does not fit. */
long simurl_decode(const char *in, size_t n, char *out, size_t cap, int plus_space);

/* Finds `name` in an a=b&c=d string (name compared after decoding, case-insensitive when
 * nocase) and decodes its value into out. Returns 1 found, 0 absent, -1 too long. */
int simurl_param(const char *qs, const char *name, int nocase, char *out, size_t cap);

/* Percent-encodes `in` for a path segment or query value into out. Returns 0 or -1. */
int simurl_encode(const char *in, char *out, size_t cap);

#endif
