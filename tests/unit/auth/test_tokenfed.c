/* Unit tests for auth/tokenfed: the shape and exp of a federated client assertion, read
 * without verifying its signature. */
#include "check.h"
#include "b64.h"
#include "tokenfed.h"
#include "tokenform.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000LL

/* "<b64url(header)>.<b64url(payload)>.sig" in buf. */
static const char *jwt(char *buf, size_t cap, const char *payload)
{
    const char *hdr = "{\"alg\":\"RS256\",\"kid\":\"k1\",\"typ\":\"JWT\"}";
    char *h = b64_encode(hdr, strlen(hdr), B64_URL, NULL);
    char *p = b64_encode(payload, strlen(payload), B64_URL, NULL);
    snprintf(buf, cap, "%s.%s.c2lnbmF0dXJl", h, p);
    free(h);
    free(p);
    return buf;
}

static enum tokenfed_verdict check(const char *t, int64_t *exp)
{
    return tokenfed_check(t, strlen(t), NOW, exp);
}

static void test_exp(void)
{
    char b[1024];
    int64_t exp = -1;

    CHECK(check(jwt(b, sizeof b, "{\"iss\":\"https://oidc.example\",\"sub\":\"system:"
                                 "serviceaccount:ns:sa\",\"aud\":[\"api://AzureADTokenExchange\"],"
                                 "\"exp\":1700000600}"), &exp) == TOKENFED_OK);
    CHECK(exp == 1700000600);
    CHECK(check(jwt(b, sizeof b, "{\"exp\":1700000001}"), &exp) == TOKENFED_OK);
    /* exp == now is already too late: never used past its own exp */
    CHECK(check(jwt(b, sizeof b, "{\"exp\":1700000000}"), &exp) == TOKENFED_EXPIRED);
    CHECK(exp == NOW);
    CHECK(check(jwt(b, sizeof b, "{\"exp\":1600000000,\"sub\":\"x\"}"), &exp) ==
          TOKENFED_EXPIRED);
    CHECK(exp == 1600000000);
}

static void test_malformed(void)
{
    char b[1024], big[TOKENFORM_ASSERTION_MAX + 64];
    int64_t exp = -1;
    const char *bad_payloads[] = { "{\"sub\":\"no exp\"}", "{\"exp\":\"1700000600\"}",
                                   "{\"exp\":1.7e9}", "{\"exp\":-5}", "{\"exp\":0}",
                                   "[1700000600]", "not json", "{\"exp\":1,\"exp\":2}",
                                   "{\"exp\":999999999999999}" };

    for (size_t i = 0; i < sizeof bad_payloads / sizeof bad_payloads[0]; i++) {
        CHECK(check(jwt(b, sizeof b, bad_payloads[i]), &exp) == TOKENFED_MALFORMED);
        CHECK(exp == 0);
    }
    CHECK(check("", &exp) == TOKENFED_MALFORMED);
    CHECK(check("a.b", &exp) == TOKENFED_MALFORMED);
    CHECK(check("a.b.c.d", &exp) == TOKENFED_MALFORMED);
    CHECK(check(".b.c", &exp) == TOKENFED_MALFORMED);
    CHECK(check("a..c", &exp) == TOKENFED_MALFORMED);
    jwt(b, sizeof b, "{\"exp\":1700000600}");
    b[3] = '+'; /* base64, not base64url */
    CHECK(check(b, &exp) == TOKENFED_MALFORMED);
    jwt(b, sizeof b, "{\"exp\":1700000600}");
    strcat(b, "\n"); /* tokenfed_check does not trim: the caller does */
    CHECK(check(b, &exp) == TOKENFED_MALFORMED);
    CHECK(tokenfed_check(NULL, 0, NOW, &exp) == TOKENFED_MALFORMED);
    /* over the form's cap: refused before decoding */
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[10] = '.';
    big[20] = '.';
    CHECK(check(big, &exp) == TOKENFED_MALFORMED);
}

static void test_trim(void)
{
    char b[1024];
    size_t len;

    jwt(b, sizeof b, "{\"exp\":1700000600}");
    size_t want = strlen(b);
    strcat(b, " \r\n\n\t");
    len = strlen(b);
    tokenfed_trim(b, &len);
    CHECK(len == want);
    int64_t exp = 0;
    CHECK(tokenfed_check(b, len, NOW, &exp) == TOKENFED_OK && exp == 1700000600);
    len = 3;
    tokenfed_trim("\n\n\n", &len);
    CHECK(len == 0);
}

int main(void)
{
    test_exp();
    test_malformed();
    test_trim();
    return check_done();
}
