/* fuzz_tokenresp: libFuzzer target for auth/tokenresp.c (token endpoint responses).
 * Input: an optional "NNN\n" status line (default 200), then the response body.
 * Checks the parser's invariants on every input and cross-checks a success against
 * jansson directly. Built with -DFOGATE_FUZZ=ON under clang it links libFuzzer; otherwise
 * replay.c's main() replays corpus files, and a file named <class>-* (e.g. ok-v1,
 * wrong_secret-401) must parse to that class. */
#include "tokenresp.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define NOW 1700000000LL

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_tokenresp: invariant broken: %s\n", why);
    abort();
}

/* Splits an optional leading "NNN\n" off the input. */
static int status_of(const unsigned char **data, size_t *size)
{
    const unsigned char *d = *data;
    if (*size >= 4 && d[0] >= '0' && d[0] <= '9' && d[1] >= '0' && d[1] <= '9' &&
        d[2] >= '0' && d[2] <= '9' && d[3] == '\n') {
        *data += 4;
        *size -= 4;
        return (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
    }
    return 200;
}

static void check_text(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap + 1);
    if (n > cap)
        fail("error field over its cap");
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            fail("non-printable byte in an error field");
}

/* The token jansson itself finds must be the one the parser returned. */
static void cross_check(const struct tokenresp *r, const unsigned char *body, size_t len)
{
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *tok = json_object_get(root, "access_token");
    if (!json_is_string(tok) || json_string_length(tok) != r->access_token_len ||
        memcmp(json_string_value(tok), r->access_token, r->access_token_len) != 0)
        fail("OK token differs from what jansson parses");
    json_decref(root);
}

static void check_ok(const struct tokenresp *r, int status, const unsigned char *body,
                     size_t len)
{
    if (!r->access_token || status < 200 || status > 299)
        fail("OK without a token or outside 2xx");
    if (r->access_token_len == 0 || r->access_token_len > TOKENRESP_TOKEN_MAX ||
        strlen(r->access_token) != r->access_token_len)
        fail("token length");
    if (strspn(r->access_token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789-._~+/=") != r->access_token_len)
        fail("token has bytes outside b64token");
    if (r->lifetime < 1 || r->lifetime > TOKENRESP_LIFETIME_MAX ||
        r->expires_at != NOW + r->lifetime)
        fail("lifetime out of range");
    if (r->lifetime_defaulted && r->lifetime != TOKENRESP_LIFETIME_DEFAULT)
        fail("defaulted lifetime is not the default");
    cross_check(r, body, len);
}

static enum tokenresp_class one_input(const unsigned char *data, size_t size)
{
    int status = status_of(&data, &size);
    struct tokenresp r, again;
    enum tokenresp_class cls = tokenresp_parse(&r, (const char *)data, size, status, NOW);
    if (cls != r.cls || cls > TOKENRESP_OTHER || r.http_status != status)
        fail("class or status not recorded");
    if (cls == TOKENRESP_OK)
        check_ok(&r, status, data, size);
    else if (r.access_token)
        fail("token held by an error result");
    if (status == 429 && cls != TOKENRESP_THROTTLED)
        fail("429 not THROTTLED");
    if (status >= 500 && status <= 599 && cls != TOKENRESP_UNAVAILABLE)
        fail("5xx not UNAVAILABLE");
    if (r.aadsts < 0 || r.aadsts > 999999999)
        fail("AADSTS code out of range");
    check_text(r.error, TOKENRESP_ERROR_MAX);
    check_text(r.description, TOKENRESP_DESC_MAX);
    check_text(r.trace_id, TOKENRESP_ID_MAX);
    check_text(r.correlation_id, TOKENRESP_ID_MAX);
    if (tokenresp_parse(&again, (const char *)data, size, status, NOW) != cls)
        fail("not deterministic");
    tokenresp_cleanup(&again);
    free(tokenresp_take_token(&r));
    tokenresp_cleanup(&r);
    return cls;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input(data, size);
    return 0;
}

/* The class a file name asks for ("ok-v1" -> "ok"), or NULL if it asks for none. */
static const char *wanted_class(const char *name, char *buf, size_t cap)
{
    size_t n = strcspn(name, "-");
    if (name[n] != '-' || n >= cap)
        return NULL;
    memcpy(buf, name, n);
    buf[n] = '\0';
    return buf;
}

/* Seeds named <class>-* must parse to that class. */
int replay_check(const char *name, const uint8_t *data, size_t size)
{
    char want_buf[64];
    const char *got = tokenresp_class_name(one_input(data, size));
    const char *want = wanted_class(name, want_buf, sizeof want_buf);

    if (want && strcmp(want, got) != 0) {
        fprintf(stderr, "%s: expected %s, got %s\n", name, want, got);
        return -1;
    }
    return 0;
}
