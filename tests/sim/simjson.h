/* simjson: lenient JSON as D365's OData reader accepts it (single-quoted strings) and
 * case-insensitive member lookup (pure). */
#ifndef SIMJSON_H
#define SIMJSON_H

#include <stddef.h>
#include <jansson.h>

/* Parses text that is JSON or JSON with single-quoted strings. Returns a new reference
 * (caller decrefs) or NULL when it is not valid even leniently. */
json_t *simjson_lenient_load(const char *text, size_t len);

/* Member `name` of `obj` compared case-insensitively, or NULL. Borrowed reference. */
json_t *simjson_get_ci(const json_t *obj, const char *name);

/* String member (case-insensitive) or NULL if absent / not a string. Borrowed. */
const char *simjson_str_ci(const json_t *obj, const char *name);

#endif
