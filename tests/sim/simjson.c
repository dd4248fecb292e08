/* simjson: lenient JSON. Single-quoted strings are rewritten into double-quoted ones,
 * escaping embedded double quotes, before jansson parses the result. */
#include "simjson.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Rewrites single-quoted strings; out must hold 2*len+1 bytes. Returns the new length. */
static size_t requote(const char *in, size_t len, char *out)
{
    size_t o = 0;
    char q = 0; /* current quote char, 0 outside strings */
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (!q) {
            if (c == '"' || c == '\'')
                q = c, c = '"';
            out[o++] = c;
            continue;
        }
        if (c == '\\' && i + 1 < len) {
            if (q == '\'' && in[i + 1] == '\'') {
                out[o++] = '\'';
            } else {
                out[o++] = c;
                out[o++] = in[i + 1];
            }
            i++;
            continue;
        }
        if (c == q) {
            q = 0;
            out[o++] = '"';
        } else if (c == '"' && q == '\'') {
            out[o++] = '\\';
            out[o++] = '"';
        } else {
            out[o++] = c;
        }
    }
    out[o] = '\0';
    return o;
}

json_t *simjson_lenient_load(const char *text, size_t len)
{
    json_error_t err;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &err);
    if (j || !memchr(text, '\'', len))
        return j;
    char *buf = malloc(2 * len + 1);
    if (!buf)
        return NULL;
    size_t n = requote(text, len, buf);
    j = json_loadb(buf, n, JSON_DECODE_ANY, &err);
    free(buf);
    return j;
}

json_t *simjson_get_ci(const json_t *obj, const char *name)
{
    const char *key;
    json_t *val;
    if (!json_is_object(obj))
        return NULL;
    json_object_foreach((json_t *)obj, key, val) {
        if (strcasecmp(key, name) == 0)
            return val;
    }
    return NULL;
}

const char *simjson_str_ci(const json_t *obj, const char *name)
{
    return json_string_value(simjson_get_ci(obj, name));
}
