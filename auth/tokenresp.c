/* tokenresp: token endpoint response parser (v1: numbers as strings, v2: integers).
 * Invariant: the token text is copied once into r->access_token; the jansson copy is
 * wiped in place before the JSON tree is released. */
#define _GNU_SOURCE /* strcasestr */
#include "tokenresp.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

/* Largest number accepted from expires_in/expires_on: 12 digits keeps all arithmetic
 * far from int64 overflow. */
#define NUM_MAX 999999999999LL

static const struct {
    long code;
    enum tokenresp_class cls;
} aadsts_map[] = {
    {7000215, TOKENRESP_WRONG_SECRET},   {700027, TOKENRESP_WRONG_SECRET},
    {7000222, TOKENRESP_EXPIRED_SECRET}, {700016, TOKENRESP_UNKNOWN_APP},
    {90002, TOKENRESP_UNKNOWN_TENANT},   {900023, TOKENRESP_UNKNOWN_TENANT},
    {70011, TOKENRESP_INVALID_SCOPE},    {500011, TOKENRESP_INVALID_RESOURCE},
    {65001, TOKENRESP_CONSENT},
    {50001, TOKENRESP_INVALID_RESOURCE}, {700024, TOKENRESP_ASSERTION_TIME},
    {70021, TOKENRESP_NO_FEDERATION},    {700211, TOKENRESP_NO_FEDERATION},
    {700212, TOKENRESP_NO_FEDERATION},   {700213, TOKENRESP_NO_FEDERATION},
};

static const char *const class_names[] = {
    [TOKENRESP_OK] = "ok",
    [TOKENRESP_WRONG_SECRET] = "wrong_secret",
    [TOKENRESP_EXPIRED_SECRET] = "expired_secret",
    [TOKENRESP_UNKNOWN_APP] = "unknown_app",
    [TOKENRESP_UNKNOWN_TENANT] = "unknown_tenant",
    [TOKENRESP_INVALID_SCOPE] = "invalid_scope",
    [TOKENRESP_INVALID_RESOURCE] = "invalid_resource",
    [TOKENRESP_CONSENT] = "consent",
    [TOKENRESP_THROTTLED] = "throttled",
    [TOKENRESP_UNAVAILABLE] = "unavailable",
    [TOKENRESP_MALFORMED] = "malformed",
    [TOKENRESP_ASSERTION_TIME] = "assertion_time_range",
    [TOKENRESP_NO_FEDERATION] = "no_federation",
    [TOKENRESP_NO_IDENTITY] = "identity_not_found",
    [TOKENRESP_OTHER] = "other",
};

const char *tokenresp_class_name(enum tokenresp_class cls)
{
    if ((unsigned)cls >= sizeof(class_names) / sizeof(class_names[0]))
        return "unknown";
    return class_names[cls];
}

int tokenresp_retryable(enum tokenresp_class cls)
{
    return cls == TOKENRESP_THROTTLED || cls == TOKENRESP_UNAVAILABLE ||
           cls == TOKENRESP_MALFORMED || cls == TOKENRESP_OTHER ||
           cls == TOKENRESP_ASSERTION_TIME;
}

enum tokenresp_class tokenresp_mi_class(struct tokenresp *r)
{
    if (r->cls == TOKENRESP_OK || r->cls == TOKENRESP_THROTTLED ||
        r->cls == TOKENRESP_UNAVAILABLE)
        return r->cls;
    if (r->http_status == 404 || r->http_status == 410)
        r->cls = TOKENRESP_UNAVAILABLE;
    else if (strcasestr(r->description, "identity not found"))
        r->cls = TOKENRESP_NO_IDENTITY;
    return r->cls;
}

/* Copies a JSON string into dst (cap bytes + NUL), printable ASCII only. */
static void copy_field(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    if (n > cap)
        n = cap;
    for (size_t i = 0; i < n; i++)
        dst[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : ' ';
    dst[n] = '\0';
}

/* Parses a non-negative decimal number of at most 12 digits, or -1. */
static long long parse_digits(const char *s, size_t n)
{
    long long v = 0;
    if (n == 0 || n > 12)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* A number given as a JSON integer (v2) or a decimal string (v1); -1 if absent/invalid. */
static long long json_number(json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i >= 0 && i <= NUM_MAX ? (long long)i : -1;
    }
    if (json_is_string(v))
        return parse_digits(json_string_value(v), json_string_length(v));
    return -1;
}

/* First "AADSTS<digits>" in a description; 0 if none. */
static long aadsts_in_text(const char *s, size_t n)
{
    for (size_t i = 0; i + 6 < n; i++) {
        if (memcmp(s + i, "AADSTS", 6) != 0)
            continue;
        size_t d = i + 6, e = d;
        while (e < n && e - d < 10 && s[e] >= '0' && s[e] <= '9')
            e++;
        long long v = parse_digits(s + d, e - d);
        if (v > 0 && v <= 999999999 && (e == n || s[e] < '0' || s[e] > '9'))
            return (long)v;
    }
    return 0;
}

static long find_aadsts(json_t *root)
{
    long long code = json_number(json_array_get(json_object_get(root, "error_codes"), 0));
    if (code > 0 && code <= 999999999)
        return (long)code;
    json_t *desc = json_object_get(root, "error_description");
    if (!json_is_string(desc))
        return 0;
    return aadsts_in_text(json_string_value(desc), json_string_length(desc));
}

static enum tokenresp_class class_of_code(long code)
{
    for (size_t i = 0; i < sizeof(aadsts_map) / sizeof(aadsts_map[0]); i++)
        if (aadsts_map[i].code == code)
            return aadsts_map[i].cls;
    return TOKENRESP_OTHER;
}

/* Without a known AADSTS code (a server other than Entra ID), the standard RFC 6749
 * error codes still tell the causes apart that need an operator: refused client
 * credentials and a refused scope. Anything else stays OTHER (retryable). */
static enum tokenresp_class class_of_error(const char *error)
{
    if (strcmp(error, "invalid_client") == 0)
        return TOKENRESP_WRONG_SECRET;
    if (strcmp(error, "invalid_scope") == 0)
        return TOKENRESP_INVALID_SCOPE;
    return TOKENRESP_OTHER;
}

/* RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
 * Anything else could not be sent safely in an Authorization header. */
static int is_b64token(const char *s, size_t n)
{
    size_t i = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("-._~+/", c)))
            break;
    }
    if (i == 0)
        return 0;
    while (i < n && s[i] == '=')
        i++;
    return i == n;
}

/* Seconds the token lives: expires_in, else expires_on - now, else 0 (none sane). */
static int64_t lifetime_of(json_t *root, int64_t now)
{
    long long in = json_number(json_object_get(root, "expires_in"));
    if (in > 0 && in <= TOKENRESP_LIFETIME_MAX)
        return in;
    long long on = json_number(json_object_get(root, "expires_on"));
    if (on >= 0 && now >= 0 && now <= NUM_MAX && on - now > 0 &&
        on - now <= TOKENRESP_LIFETIME_MAX)
        return on - now;
    return 0;
}

/* Takes the token if the JSON is a valid success shape; else leaves r->access_token NULL. */
static void take_success(struct tokenresp *r, json_t *root, int64_t now)
{
    json_t *tok = json_object_get(root, "access_token");
    json_t *type = json_object_get(root, "token_type");
    if (type && !(json_is_string(type) && strcasecmp(json_string_value(type), "Bearer") == 0))
        return;
    if (!json_is_string(tok) || json_string_length(tok) > TOKENRESP_TOKEN_MAX ||
        !is_b64token(json_string_value(tok), json_string_length(tok)))
        return;
    size_t n = json_string_length(tok);
    r->access_token = malloc(n + 1);
    if (!r->access_token)
        return;
    memcpy(r->access_token, json_string_value(tok), n + 1);
    r->access_token_len = n;
    r->lifetime = lifetime_of(root, now);
    if (r->lifetime == 0) {
        r->lifetime = TOKENRESP_LIFETIME_DEFAULT;
        r->lifetime_defaulted = 1;
    }
    /* Saturate rather than overflow on an absurd clock. */
    r->expires_at = now > INT64_MAX - r->lifetime ? INT64_MAX : now + r->lifetime;
}

static void copy_error(struct tokenresp *r, json_t *root)
{
    copy_field(r->error, TOKENRESP_ERROR_MAX, json_object_get(root, "error"));
    copy_field(r->description, TOKENRESP_DESC_MAX, json_object_get(root, "error_description"));
    copy_field(r->trace_id, TOKENRESP_ID_MAX, json_object_get(root, "trace_id"));
    copy_field(r->correlation_id, TOKENRESP_ID_MAX, json_object_get(root, "correlation_id"));
    r->aadsts = find_aadsts(root);
}

/* Wipes jansson's copy of the token: we own the only reference to the tree, and a
 * JSON string's bytes live in a plain malloc'd buffer. */
static void wipe_json_token(json_t *root)
{
    json_t *tok = json_object_get(root, "access_token");
    if (json_is_string(tok))
        OPENSSL_cleanse((char *)json_string_value(tok), json_string_length(tok));
}

static enum tokenresp_class classify(struct tokenresp *r, json_t *root, int ok_status)
{
    int status = r->http_status;
    if (status == 429)
        return TOKENRESP_THROTTLED;
    if (status >= 500 && status <= 599)
        return TOKENRESP_UNAVAILABLE;
    if (r->access_token)
        return TOKENRESP_OK;
    if (r->aadsts && class_of_code(r->aadsts) != TOKENRESP_OTHER)
        return class_of_code(r->aadsts);
    if (ok_status || !root)
        return TOKENRESP_MALFORMED;
    json_t *err = json_object_get(root, "error");
    if (!json_is_string(err))
        return TOKENRESP_MALFORMED;
    return class_of_error(json_string_value(err));
}

enum tokenresp_class tokenresp_parse(struct tokenresp *r, const char *body, size_t len,
                                     int http_status, int64_t now)
{
    json_t *root = NULL;
    int ok_status = http_status >= 200 && http_status <= 299;
    memset(r, 0, sizeof(*r));
    r->http_status = http_status;
    if (body && len <= TOKENRESP_BODY_MAX)
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (root && !json_is_object(root)) {
        json_decref(root);
        root = NULL;
    }
    if (root && ok_status)
        take_success(r, root, now);
    if (root && !r->access_token)
        copy_error(r, root);
    r->cls = classify(r, root, ok_status);
    if (root)
        wipe_json_token(root);
    json_decref(root);
    return r->cls;
}

char *tokenresp_take_token(struct tokenresp *r)
{
    char *tok = r->access_token;
    r->access_token = NULL;
    r->access_token_len = 0;
    return tok;
}

void tokenresp_cleanup(struct tokenresp *r)
{
    if (r->access_token)
        OPENSSL_clear_free(r->access_token, r->access_token_len + 1);
    memset(r, 0, sizeof(*r));
}
