/* packagename: pure helpers of the package API (see packagename.h). */
#include "packagename.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hex.h"

static bool alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int packagename_company(const char *file_name, char *out, size_t cap)
{
    const char *base = file_name, *p;
    size_t n = 0;

    for (p = file_name; *p; p++)
        if (*p == '/' || *p == '\\')
            base = p + 1;
    while (base[n] && alnum(base[n]))
        n++;
    if (n == 0 || n > 8 || base[n] != '_' || n + 1 > cap)
        return -1;
    memcpy(out, base, n);
    out[n] = '\0';
    return 0;
}

void packagename_exec_id(const char *project, const unsigned char rnd[16],
                         char out[PACKAGENAME_EXEC_MAX])
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;

    for (const char *p = project; *p && n < 64; p++)
        out[n++] = alnum(*p) || *p == '_' || *p == '.' || *p == '-' ? *p : '_';
    memcpy(out + n, "-fogate-", 8);
    n += 8;
    for (int i = 0; i < 16; i++) {
        out[n++] = hex[rnd[i] >> 4];
        out[n++] = hex[rnd[i] & 15];
    }
    out[n] = '\0';
}

bool packagename_exec_ok(const char *id, size_t len)
{
    if (len == 0 || len >= PACKAGENAME_EXEC_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c <= 0x20 || c >= 0x7f || strchr("/?#%\"\\", c))
            return false;
    }
    return true;
}

char *packagename_write_url(const char *value)
{
    json_t *o = json_loads(value, 0, NULL);
    const char *url = json_string_value(json_object_get(o, "BlobUrl"));
    char *out = url && url[0] ? strdup(url) : NULL;

    json_decref(o);
    return out;
}

bool packagename_status_final(const char *status)
{
    static const char *const finals[] = { "Succeeded", "PartiallySucceeded", "Failed",
                                          "Canceled", NULL };

    for (size_t i = 0; finals[i]; i++)
        if (strcmp(status, finals[i]) == 0)
            return true;
    return false;
}

const char *packagename_not_yet(const struct d365_err *err)
{
    if (err->status == 400 && strstr(err->message, "Execution details were not found"))
        return "NotRun";
    return NULL;
}

void packagename_redact(const char *url, char *out, size_t cap)
{
    size_t n = strcspn(url, "?#");

    if (cap == 0)
        return;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, url, n);
    out[n] = '\0';
}

/* The value of query parameter `name` in url's query, %XX decoded, into out; -1 absent. */
static int query_param(const char *url, const char *name, char *out, size_t cap)
{
    const char *q = strchr(url, '?'), *p;
    size_t nl = strlen(name), n = 0;

    for (p = q ? q + 1 : NULL; p && *p && *p != '#'; p += strcspn(p, "&#"), p += *p == '&') {
        if (strncmp(p, name, nl) != 0 || p[nl] != '=')
            continue;
        for (p += nl + 1; *p && *p != '&' && *p != '#' && n + 1 < cap; p++) {
            unsigned char v;
            if (*p == '%' && p[1] && p[2] && hex_decode(p + 1, 2, &v, 1) == 0) {
                out[n++] = (char)v;
                p += 2;
            } else {
                out[n++] = *p;
            }
        }
        out[n] = '\0';
        return 0;
    }
    return -1;
}

int packagename_sas_expiry(const char *url, time_t *out)
{
    char se[40];
    struct tm tm = { 0 };
    int y, mo, d, h = 0, mi = 0, s = 0, n = 0;

    if (query_param(url, "se", se, sizeof se) < 0)
        return -1;
    if (sscanf(se, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10)
        return -1;
    if (se[10] && (sscanf(se + 10, "T%2d:%2d:%2dZ%n", &h, &mi, &s, &n) != 3 || se[10 + n]))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
        return -1;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    *out = timegm(&tm);
    return 0;
}

bool packagename_sas_expired(const char *url, time_t now)
{
    time_t se;

    return packagename_sas_expiry(url, &se) == 0 && se <= now;
}
