/* histrec: pure pieces of the file history (see histrec.h). */
#include "histrec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include "hex.h"

static void hex_out(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int histrec_export_id(const char *env, const char *msg_id, char out[HISTREC_ID_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = -1;

    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, env, strlen(env)) == 1 && EVP_DigestUpdate(ctx, "\n", 1) == 1 &&
        EVP_DigestUpdate(ctx, msg_id, strlen(msg_id)) == 1 &&
        EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16) {
        hex_out(md, 16, out);
        rc = 0;
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

int histrec_key(char out[HISTREC_KEY_SIZE], const char *kind, const char *a, const char *b)
{
    int n = b ? snprintf(out, HISTREC_KEY_SIZE, "fogate:hist:%s:%s:%s", kind, a, b)
              : snprintf(out, HISTREC_KEY_SIZE, "fogate:hist:%s:%s", kind, a);

    return n > 0 && n < HISTREC_KEY_SIZE ? 0 : -1;
}

static const char *str_of(const json_t *rec, const char *name)
{
    const char *s = json_string_value(json_object_get(rec, name));
    return s ? s : "";
}

bool histrec_match(const struct histrec_filter *f, const json_t *rec)
{
    if (f->status[0] && strcasecmp(f->status, str_of(rec, "status")) != 0)
        return false;
    if (f->file[0] && !strstr(str_of(rec, "file_name"), f->file))
        return false;
    return true;
}

void histrec_cursor_encode(int64_t score, const char *id, char out[HISTREC_CURSOR_SIZE])
{
    snprintf(out, HISTREC_CURSOR_SIZE, "c%016llx%.32s", (unsigned long long)score, id);
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hex_digit((unsigned char)s[i]) < 0)
            return false;
    return true;
}

int histrec_cursor_decode(const char *s, struct histrec_filter *f)
{
    char num[17];

    if (strlen(s) != HISTREC_CURSOR_SIZE - 1 || s[0] != 'c' ||
        !all_hex(s + 1, HISTREC_CURSOR_SIZE - 2))
        return -1;
    memcpy(num, s + 1, 16);
    num[16] = '\0';
    f->cursor_score = (int64_t)strtoull(num, NULL, 16);
    if (f->cursor_score < 0)
        return -1;
    memcpy(f->cursor_id, s + 17, 32);
    f->cursor_id[32] = '\0';
    f->has_cursor = true;
    return 0;
}

static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int histrec_time_parse(const char *s, int64_t *ms)
{
    struct tm tm = { 0 };
    size_t len = strlen(s);
    int frac = 0;
    const char *p = s + 19;

    if (len > 0 && len <= 15 && strspn(s, "0123456789") == len) {
        *ms = (int64_t)strtoll(s, NULL, 10);
        return 0;
    }
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -1;
    tm.tm_year = digits(s, 4) - 1900;
    tm.tm_mon = digits(s + 5, 2) - 1;
    tm.tm_mday = digits(s + 8, 2);
    tm.tm_hour = digits(s + 11, 2);
    tm.tm_min = digits(s + 14, 2);
    tm.tm_sec = digits(s + 17, 2);
    if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
        tm.tm_mday > 31 || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 ||
        tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
        return -1;
    if (*p == '.') {
        int scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
            frac += scale * (*p - '0');
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "z") != 0 && strcmp(p, "+00:00") != 0)
        return -1;
    *ms = (int64_t)timegm(&tm) * 1000 + frac;
    return 0;
}

void histrec_time_format(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

int histrec_sign(const unsigned char *key, size_t keylen, long long t, const char *body,
                 size_t len, char out[HISTREC_SIG_SIZE])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t mdlen = 0;
    char ts[24], hex[65], digest[] = "SHA256";
    int n = snprintf(ts, sizeof ts, "%lld.", t);
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = { OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                            OSSL_PARAM_construct_end() };
    int rc = -1;

    if (c && EVP_MAC_init(c, key, keylen, params) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)ts, (size_t)n) == 1 &&
        EVP_MAC_update(c, (const unsigned char *)body, len) == 1 &&
        EVP_MAC_final(c, md, &mdlen, sizeof md) == 1 && mdlen == 32) {
        hex_out(md, 32, hex);
        snprintf(out, HISTREC_SIG_SIZE, "t=%lld,v1=%s", t, hex);
        rc = 0;
    }
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(mac);
    return rc;
}

/* ---- record JSON ---- */

enum kind { K_STR, K_INT, K_TIME, K_BOOL, K_LIST, K_JSON, K_EVENTS };

struct field {
    const char *stored, *api;
    enum kind kind;
};

/* Stored field -> API name; fields not listed stay out of the API. */
static const struct field fields[] = {
    { "id", "id", K_STR },
    { "dir", "direction", K_STR },
    { "env", "environment", K_STR },
    { "job", "job", K_STR },
    { "client", "client", K_STR },
    { "via", "via", K_STR },
    { "file", "file_name", K_STR },
    { "group", "definition_group", K_STR },
    { "size", "size", K_INT },
    { "sha256", "sha256", K_STR },
    { "msg", "message_id", K_STR },
    { "exec", "execution_id", K_STR },
    { "status", "status", K_STR },
    { "final", "final", K_BOOL },
    { "received", "received_at", K_TIME },
    { "sent", "sent_at", K_TIME },
    { "status_at", "status_at", K_TIME },
    { "final_at", "final_at", K_TIME },
    { "events", "statuses", K_EVENTS },
    { "error", "error", K_STR },
    { "errors", "errors", K_JSON },
    { "delivered_to", "delivered_to", K_LIST },
    { "deliveries", "deliveries", K_INT },
    { "delivered", "delivered_at", K_TIME },
    { "dequeued", "dequeued_at", K_TIME },
    { "confirmed", "confirmed_at", K_TIME },
    { "confirmed_by", "confirmed_by", K_STR },
    { "acked", "acked_at", K_TIME },
    { "idem", "idempotent_replays", K_INT },
    { "follow", "follow", K_STR },
    { "receipts", "receipts_sent", K_LIST },
    { "receipt_failed", "receipt_failed", K_STR },
};

static json_t *list_json(const char *v, size_t len)
{
    json_t *a = json_array();
    size_t i = 0;

    while (a && i < len) {
        const char *c = memchr(v + i, ',', len - i);
        size_t n = c ? (size_t)(c - v - i) : len - i;
        if (n)
            json_array_append_new(a, json_stringn(v + i, n));
        i += n + 1;
    }
    return a;
}

/* "{"status":..,"at":ms},..." -> [{"status":..,"at":"<RFC 3339>"}, ...] */
static json_t *events_json(const char *v, size_t len)
{
    char *text = malloc(len + 3), at[32];
    json_t *a, *e;
    size_t i;

    if (!text)
        return NULL;
    text[0] = '[';
    memcpy(text + 1, v, len);
    memcpy(text + 1 + len, "]", 2);
    a = json_loads(text, 0, NULL);
    free(text);
    json_array_foreach(a, i, e) {
        json_t *t = json_object_get(e, "at");
        if (json_is_number(t)) {
            histrec_time_format((int64_t)json_number_value(t), at, sizeof at);
            json_object_set_new(e, "at", json_string(at));
        }
    }
    return a ? a : json_array();
}

static json_t *value_json(enum kind k, const char *v, size_t len)
{
    char buf[32];
    json_t *j;

    switch (k) {
    case K_INT:
        return json_integer(strtoll(v, NULL, 10));
    case K_TIME:
        histrec_time_format(strtoll(v, NULL, 10), buf, sizeof buf);
        return json_string(buf);
    case K_BOOL:
        return json_boolean(len == 1 && v[0] == '1');
    case K_LIST:
        return list_json(v, len);
    case K_JSON:
        j = json_loadb(v, len, 0, NULL);
        return j ? j : json_stringn(v, len);
    case K_EVENTS:
        return events_json(v, len);
    case K_STR:
        break;
    }
    return json_stringn(v, len);
}

json_t *histrec_json(size_t n, const char *const *names, const char *const *vals,
                     const size_t *vlen)
{
    json_t *o;

    if (n == 0 || !(o = json_object()))
        return NULL;
    for (size_t f = 0; f < sizeof fields / sizeof fields[0]; f++)
        for (size_t i = 0; i < n; i++)
            if (strcmp(names[i], fields[f].stored) == 0) {
                json_t *v = value_json(fields[f].kind, vals[i], vlen[i]);
                if (v)
                    json_object_set_new(o, fields[f].api, v);
                break;
            }
    if (!json_object_get(o, "final"))
        json_object_set_new(o, "final", json_false());
    return o;
}
