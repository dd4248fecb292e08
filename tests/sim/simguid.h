/* simguid: GUID canonicalisation and generation (pure apart from the random source).
 * Invariant: canonical form is 36 lower-case hex-and-dash characters, no braces. */
#ifndef SIMGUID_H
#define SIMGUID_H

#include <stddef.h>

#define SIMGUID_LEN 36

/* Parses a GUID in any spelling: braces or %7B..%7D or none, any case. Writes the
 * canonical form into out (37 bytes). Returns 0, or -1 if `in` is not a GUID. */
int simguid_parse(const char *in, size_t len, char out[SIMGUID_LEN + 1]);

/* Writes a new random (v4) GUID in canonical form into out (37 bytes). */
void simguid_new(char out[SIMGUID_LEN + 1]);

/* Writes 32 upper-case hex digits (a GUID without dashes) into out (33 bytes). */
void simguid_hex32(char out[33]);

#endif
