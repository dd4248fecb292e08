/* ledgerkey: message identity from a raw dequeue body (see ledgerkey.h).
 * Invariant: the same blob GUID gives the same id in every spelling of the URL. */
#include "ledgerkey.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

enum field { F_CORR, F_POP, F_LOCATION, F_COUNT };

static const char *const field_names[F_COUNT] = { "CorrelationId", "PopReceipt",
                                                 "DownloadLocation" };

static int env_ok(const char *env)
{
    size_t n = env ? strlen(env) : 0;

    if (n == 0 || n > LEDGERKEY_ENV_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = env[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* Finds the three fields, case-insensitively. A name given twice in different cases is
 * ambiguous (which one would D365 read?), so the body is refused. Returns 0 or -1. */
static int find_fields(json_t *obj, json_t *found[F_COUNT])
{
    const char *name;
    json_t *v;

    memset(found, 0, sizeof(json_t *) * F_COUNT);
    json_object_foreach(obj, name, v) {
        for (int f = 0; f < F_COUNT; f++) {
            if (strcasecmp(name, field_names[f]) != 0)
                continue;
            if (found[f])
                return -1;
            found[f] = v;
        }
    }
    return 0;
}

/* Copies a PopReceipt (string or null/absent) into out. Returns 0 or -1. */
static int copy_pop(const json_t *v, char out[LEDGERKEY_POP_MAX + 1])
{
    out[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > LEDGERKEY_POP_MAX)
        return -1;
    const char *s = json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return -1;
    memcpy(out, s, json_string_length(v) + 1);
    return 0;
}

int ledgerkey_blob_from_url(const char *url, size_t len, char out[GUID_CANON_SIZE])
{
    const char *hash = url ? memchr(url, '#', len) : NULL;
    const char *end = hash ? hash : url ? url + len : NULL;
    const char *q = url ? memchr(url, '?', (size_t)(end - url)) : NULL;
    int seen = 0;
    char one[GUID_CANON_SIZE];

    out[0] = '\0';
    if (!q)
        return -1;
    for (const char *p = q + 1; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        if (stop - p > 5 && strncasecmp(p, "blob=", 5) == 0) {
            if (guid_canonical(p + 5, (size_t)(stop - p - 5), one) != 0 ||
                (seen && strcmp(one, out) != 0)) {
                out[0] = '\0';
                return -1;
            }
            memcpy(out, one, sizeof(one));
            seen = 1;
        }
        p = stop + 1;
    }
    return seen ? 0 : -1;
}

static void fill_id(struct ledgerkey *k)
{
    if (k->blob[0]) {
        k->kind = LEDGERKEY_BLOB;
        snprintf(k->id, sizeof(k->id), "%s:blob:%s", k->scope, k->blob);
    } else {
        k->kind = LEDGERKEY_CORR;
        snprintf(k->id, sizeof(k->id), "%s:corr:%s", k->scope, k->correlation);
    }
}

/* Reads the fields of an already parsed object into k. */
static enum ledgerkey_err read_object(json_t *root, struct ledgerkey *k)
{
    json_t *f[F_COUNT];

    if (!json_is_object(root) || find_fields(root, f) != 0)
        return LEDGERKEY_NOT_JSON;
    if (!json_is_string(f[F_CORR]) ||
        guid_canonical(json_string_value(f[F_CORR]), json_string_length(f[F_CORR]),
                       k->correlation) != 0)
        return LEDGERKEY_BAD_CORRELATION;
    if (copy_pop(f[F_POP], k->pop_receipt) != 0)
        return LEDGERKEY_BAD_POP;
    if (json_is_string(f[F_LOCATION]))
        ledgerkey_blob_from_url(json_string_value(f[F_LOCATION]),
                                json_string_length(f[F_LOCATION]), k->blob);
    fill_id(k);
    return LEDGERKEY_OK;
}

enum ledgerkey_err ledgerkey_parse(const char *body, size_t len, const char *env,
                                   const char *activity, struct ledgerkey *out)
{
    char act[GUID_CANON_SIZE];
    enum ledgerkey_err err;
    json_t *root = NULL;

    if (!out)
        return LEDGERKEY_BAD_ARGS;
    memset(out, 0, sizeof(*out));
    if (!body || !env_ok(env) || !activity ||
        guid_canonical(activity, strlen(activity), act) != 0)
        return LEDGERKEY_BAD_ARGS;
    if (len > LEDGERKEY_BODY_MAX)
        return LEDGERKEY_TOO_BIG;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    snprintf(out->scope, sizeof(out->scope), "%s:%s", env, act);
    err = root ? read_object(root, out) : LEDGERKEY_NOT_JSON;
    json_decref(root);
    if (err != LEDGERKEY_OK)
        memset(out, 0, sizeof(*out));
    return err;
}

int ledgerkey_id_check(const char *id, char *alias)
{
    size_t n = id ? strlen(id) : 0;
    const char *c1 = id ? strchr(id, ':') : NULL;
    char env[LEDGERKEY_ENV_MAX + 1], g[GUID_CANON_SIZE];
    size_t envlen = c1 ? (size_t)(c1 - id) : 0;
    /* after "<env>:": 36 (activity) + ":blob:" or ":corr:" (6) + 36 */
    size_t rest = 36 + 6 + 36;

    if (!c1 || envlen == 0 || envlen > LEDGERKEY_ENV_MAX || n != envlen + 1 + rest)
        return -1;
    memcpy(env, id, envlen);
    env[envlen] = '\0';
    const char *act = c1 + 1, *kind = act + 36, *guid = kind + 6;
    if (!env_ok(env) || guid_canonical(act, 36, g) != 0 || memcmp(g, act, 36) != 0 ||
        guid_canonical(guid, 36, g) != 0 || memcmp(g, guid, 36) != 0)
        return -1;
    if (memcmp(kind, ":blob:", 6) == 0)
        return LEDGERKEY_BLOB;
    if (memcmp(kind, ":corr:", 6) != 0)
        return -1;
    if (alias)
        snprintf(alias, LEDGERKEY_ID_SIZE, "%s:%.36s:%.36s", env, act, guid);
    return LEDGERKEY_CORR;
}

const char *ledgerkey_err_str(enum ledgerkey_err err)
{
    switch (err) {
    case LEDGERKEY_OK: return "ok";
    case LEDGERKEY_BAD_ARGS: return "bad_args";
    case LEDGERKEY_TOO_BIG: return "too_big";
    case LEDGERKEY_NOT_JSON: return "not_json";
    case LEDGERKEY_BAD_CORRELATION: return "bad_correlation";
    case LEDGERKEY_BAD_POP: return "bad_pop";
    }
    return "?";
}
