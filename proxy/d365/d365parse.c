/* d365parse: pure parsing and building of D365 payloads (see d365parse.h). */
#include "d365parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

bool d365parse_status_final(const char *status)
{
    static const char *const finals[] = {
        "Processed", "ProcessedWithErrors", "PreProcessingError", "PostProcessingFailed",
        /* RIS's internal enum spellings (§4.3) and DataJobState names (§3.5) */
        "PostProcessingError", "PreProcessError", "PostProcessError",
    };

    if (!status)
        return false;
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++)
        if (strcasecmp(status, finals[i]) == 0)
            return true;
    return false;
}

/* True when `s` needs no JSON escaping and no jansson (printable ASCII, no quote or
 * backslash). */
static bool plain(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
            return false;
    return true;
}

char *d365parse_action_body(const char *param, const char *value, char *buf, size_t cap)
{
    json_t *o;
    char *s = NULL;

    if (plain(param) && plain(value)) { /* the usual ids: no jansson round trip */
        size_t pl = strlen(param), vl = strlen(value), n = pl + vl + 8;
        if (!(s = buf && n <= cap ? buf : malloc(n)))
            return NULL;
        memcpy(s, "{\"", 2);
        memcpy(s + 2, param, pl);
        memcpy(s + 2 + pl, "\":\"", 3);
        memcpy(s + 5 + pl, value, vl);
        memcpy(s + 5 + pl + vl, "\"}", 3); /* with the NUL */
        return s;
    }
    o = json_object();
    if (o && json_object_set_new(o, param, json_string(value)) == 0)
        s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static json_t *load(const char *body, size_t len)
{
    json_error_t err;
    return body ? json_loadb(body, len, JSON_REJECT_DUPLICATES, &err) : NULL;
}

#define FLAT_MEMBERS 16

struct flat_str {
    const char *s;
    size_t len;
};

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* A string without escapes, of printable ASCII: the only kind the flat path reads. */
static const char *flat_string(const char *p, const char *e, struct flat_str *out)
{
    if (p >= e || *p != '"')
        return NULL;
    out->s = ++p;
    while (p < e && *p != '"') {
        if (*p < 0x20 || *p > 0x7e || *p == '\\')
            return NULL;
        p++;
    }
    if (p >= e)
        return NULL;
    out->len = (size_t)(p - out->s);
    return p + 1;
}

/* D365's usual answer: one object of at most FLAT_MEMBERS members, each a plain string
 * (flat_string) or null, keys all different. Returns true when `body` is exactly that
 * (then *value is the "value" member, .s NULL when absent, "null" text for null), false
 * for anything else, which jansson then reads: both give the same result on what this
 * accepts, without building a tree for it. */
static bool flat_object(const char *body, size_t len, struct flat_str *value)
{
    const char *p = body, *e = body + len;
    struct flat_str keys[FLAT_MEMBERS], v;
    size_t n = 0;

    value->s = NULL;
    p = skip_ws(p, e);
    if (p >= e || *p++ != '{')
        return false;
    p = skip_ws(p, e);
    if (p < e && *p == '}')
        return skip_ws(p + 1, e) == e;
    for (;;) {
        if (n == FLAT_MEMBERS || !(p = flat_string(p, e, &keys[n])))
            return false;
        for (size_t i = 0; i < n; i++)
            if (keys[i].len == keys[n].len && memcmp(keys[i].s, keys[n].s, keys[n].len) == 0)
                return false; /* a duplicate: jansson refuses it */
        p = skip_ws(p, e);
        if (p >= e || *p++ != ':')
            return false;
        p = skip_ws(p, e);
        if ((size_t)(e - p) >= 4 && memcmp(p, "null", 4) == 0) {
            v = (struct flat_str){ p, 4 };
            p += 4;
        } else if (!(p = flat_string(p, e, &v))) {
            return false;
        } else {
            v.s = v.s - 1; /* the opening quote: tells a string from null */
            v.len += 1;
        }
        if (keys[n].len == 5 && memcmp(keys[n].s, "value", 5) == 0)
            *value = v;
        n++;
        p = skip_ws(p, e);
        if (p < e && *p == ',') {
            p = skip_ws(p + 1, e);
            continue;
        }
        return p < e && *p == '}' && skip_ws(p + 1, e) == e;
    }
}

char *d365parse_value_string(const char *body, size_t len)
{
    struct flat_str fv;

    if (body && flat_object(body, len, &fv)) {
        if (!fv.s)
            return NULL;
        if (fv.s[0] != '"')
            return strdup(""); /* null */
        return strndup(fv.s + 1, fv.len - 1);
    }
    json_t *root = load(body, len);
    json_t *v = json_is_object(root) ? json_object_get(root, "value") : NULL;
    char *out = NULL;

    if (json_is_string(v))
        out = strndup(json_string_value(v), json_string_length(v));
    else if (json_is_null(v))
        out = strdup("");
    json_decref(root);
    return out;
}

/* Copies `s` into msg (cap bytes): control characters become spaces, NULs end it. */
static void copy_clean(char *msg, size_t cap, const char *s)
{
    size_t n = 0;

    for (; s && *s && n + 1 < cap; s++)
        msg[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    msg[n] = '\0';
}

int d365parse_error_message(const char *body, size_t len, char *msg, size_t cap)
{
    json_t *root = load(body, len);
    json_t *err = json_is_object(root) ? json_object_get(root, "error") : NULL;
    json_t *inner = json_is_object(err) ? json_object_get(err, "innererror") : NULL;
    const char *text = json_string_value(json_object_get(inner, "message"));
    int rc = -1;

    if (cap)
        msg[0] = '\0';
    if (!text || !*text)
        text = json_string_value(json_object_get(err, "message"));
    if (text && *text && cap) {
        copy_clean(msg, cap, text);
        rc = 0;
    }
    json_decref(root);
    return rc;
}

int d365parse_message_id(const char *body, size_t len, char out[GUID_CANON_SIZE])
{
    const char *b = body, *e = body + len;

    out[0] = '\0';
    if (!body)
        return -1;
    while (b < e && (*b == ' ' || *b == '\t' || *b == '\r' || *b == '\n'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        e--;
    if (e - b >= 2 && *b == '"' && e[-1] == '"') {
        b++;
        e--;
    }
    return guid_canonical(b, (size_t)(e - b), out);
}

json_t *d365parse_errors_array(const char *text)
{
    json_error_t err;
    json_t *a = text ? json_loads(text, 0, &err) : NULL;

    if (!json_is_array(a)) {
        json_decref(a);
        return NULL;
    }
    return a;
}

static char *str_field(const json_t *o, const char *name)
{
    const json_t *v = json_object_get(o, name);
    return json_is_string(v) ? strndup(json_string_value(v), json_string_length(v)) : NULL;
}

int d365parse_dequeue(const char *body, size_t len, struct d365parse_dequeue *out)
{
    json_t *root = load(body, len);
    json_t *exists;

    memset(out, 0, sizeof *out);
    if (!json_is_object(root))
        goto fail;
    out->correlation_id = str_field(root, "CorrelationId");
    out->pop_receipt = str_field(root, "PopReceipt");
    if (!out->correlation_id || !out->pop_receipt)
        goto fail;
    out->download_location = str_field(root, "DownloadLocation");
    out->last_dequeue = str_field(root, "LastDequeueDateTime");
    exists = json_object_get(root, "IsDownLoadFileExist");
    out->file_exists = !json_is_false(exists);
    out->file_error = str_field(root, "FileDownLoadErrorMessage");
    if (out->file_error && !*out->file_error) {
        free(out->file_error);
        out->file_error = NULL;
    }
    json_decref(root);
    return 0;
fail:
    json_decref(root);
    d365parse_dequeue_cleanup(out);
    return -1;
}

void d365parse_dequeue_cleanup(struct d365parse_dequeue *d)
{
    free(d->correlation_id);
    free(d->pop_receipt);
    free(d->download_location);
    free(d->last_dequeue);
    free(d->file_error);
    memset(d, 0, sizeof *d);
}

/* The path-and-query part of an absolute http(s) URL, or NULL. */
static const char *url_path(const char *url)
{
    const char *p;

    if (strncasecmp(url, "https://", 8) == 0)
        p = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        p = url + 7;
    else
        return NULL;
    p = strchr(p, '/');
    return p;
}

static bool safe_url_bytes(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || *s == 0x7f || *s == '#')
            return false;
    return true;
}

char *d365parse_download_path(const char *location)
{
    static const char prefix[] = "/api/connector/download/";
    const char *path = location ? url_path(location) : NULL;
    const char *p = path;
    if (!path || !safe_url_bytes(path) || strstr(path, "/../") || strstr(path, "/./"))
        return NULL;
    if (strncasecmp(p, "/en/", 4) == 0)
        p += 3;
    if (strncasecmp(p, prefix, sizeof prefix - 1) != 0)
        return NULL;
    return strdup(path);
}

int d365parse_query_encode(char *buf, size_t cap, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = *len;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
        if (n + (keep ? 1 : 3) >= cap) {
            if (cap)
                buf[*len] = '\0';
            return -1;
        }
        if (keep) {
            buf[n++] = (char)c;
        } else {
            buf[n++] = '%';
            buf[n++] = hex[c >> 4];
            buf[n++] = hex[c & 15];
        }
    }
    buf[n] = '\0';
    *len = n;
    return 0;
}

char *d365parse_enqueue_path(const char *activity, const char *entity, const char *company)
{
    size_t cap = strlen(activity) + 64 +
                 3 * ((entity ? strlen(entity) : 0) + (company ? strlen(company) : 0));
    char *buf = malloc(cap);
    size_t n;

    if (!buf)
        return NULL;
    n = (size_t)snprintf(buf, cap, "/api/connector/enqueue/%s", activity);
    if (entity) {
        n += (size_t)snprintf(buf + n, cap - n, "?entity=");
        d365parse_query_encode(buf, cap, &n, entity);
    }
    if (company) {
        n += (size_t)snprintf(buf + n, cap - n, "%scompany=", entity ? "&" : "?");
        d365parse_query_encode(buf, cap, &n, company);
    }
    return buf;
}
