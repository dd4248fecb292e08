/* Unit tests for the token endpoint response parser: v1 and v2 success shapes, lifetimes,
 * the AADSTS classification and malformed input. */
#include "check.h"
#include "tokenresp.h"

#include <stdio.h>
#include <stdlib.h>

#define NOW 1700000000LL

static enum tokenresp_class parse(struct tokenresp *r, const char *body, int status)
{
    return tokenresp_parse(r, body, body ? strlen(body) : 0, status, NOW);
}

/* Parses and checks the class only. */
static void check_class(const char *body, int status, enum tokenresp_class want)
{
    struct tokenresp r;
    enum tokenresp_class got = parse(&r, body, status);
    if (got != want)
        fprintf(stderr, "status %d body %.80s: got %s want %s\n", status, body ? body : "-",
                tokenresp_class_name(got), tokenresp_class_name(want));
    CHECK(got == want);
    CHECK(r.cls == got);
    CHECK((got == TOKENRESP_OK) == (r.access_token != NULL));
    tokenresp_cleanup(&r);
}

static void test_v1_success(void)
{
    struct tokenresp r;
    const char *v1 = "{\"token_type\":\"Bearer\",\"expires_in\":\"3599\",\"ext_expires_in\":"
                     "\"3599\",\"expires_on\":\"1700003599\",\"not_before\":\"1700000000\","
                     "\"resource\":\"https://contoso.operations.dynamics.com\","
                     "\"access_token\":\"eyJ0eXAi.eyJhdWQi.c2ln\"}";
    CHECK(parse(&r, v1, 200) == TOKENRESP_OK);
    CHECK_STR(r.access_token, "eyJ0eXAi.eyJhdWQi.c2ln");
    CHECK(r.access_token_len == strlen("eyJ0eXAi.eyJhdWQi.c2ln"));
    CHECK(r.lifetime == 3599 && r.expires_at == NOW + 3599 && !r.lifetime_defaulted);
    CHECK(r.http_status == 200 && r.error[0] == '\0' && r.aadsts == 0);
    char *tok = tokenresp_take_token(&r);
    CHECK(tok && r.access_token == NULL);
    free(tok);
    tokenresp_cleanup(&r);
    CHECK(r.access_token == NULL && r.cls == TOKENRESP_OK); /* zeroed: OK is 0 */
    tokenresp_cleanup(&r);                                   /* twice is safe */
}

static void test_v2_success(void)
{
    struct tokenresp r;
    CHECK(parse(&r, "{\"token_type\":\"Bearer\",\"expires_in\":3599,\"ext_expires_in\":3599,"
                    "\"access_token\":\"abc-_~+/.DEF==\"}", 200) == TOKENRESP_OK);
    CHECK_STR(r.access_token, "abc-_~+/.DEF==");
    CHECK(r.lifetime == 3599 && r.expires_at == NOW + 3599);
    tokenresp_cleanup(&r);
    /* token_type is optional and case-insensitive. */
    CHECK(parse(&r, "{\"access_token\":\"t\",\"expires_in\":100}", 201) == TOKENRESP_OK);
    CHECK(r.lifetime == 100);
    tokenresp_cleanup(&r);
    check_class("{\"token_type\":\"bearer\",\"access_token\":\"t\",\"expires_in\":9}", 200,
                TOKENRESP_OK);
}

/* Lifetime of a token response with the given lifetime fields. */
static int64_t lifetime(const char *fields, int *defaulted)
{
    char body[512];
    struct tokenresp r;
    snprintf(body, sizeof(body), "{\"access_token\":\"tok\"%s%s}", *fields ? "," : "", fields);
    CHECK(parse(&r, body, 200) == TOKENRESP_OK);
    int64_t life = r.lifetime;
    CHECK(r.expires_at == NOW + life);
    *defaulted = r.lifetime_defaulted;
    tokenresp_cleanup(&r);
    return life;
}

static void test_lifetimes(void)
{
    int d = 0;
    CHECK(lifetime("\"expires_in\":\"120\"", &d) == 120 && !d);
    CHECK(lifetime("\"expires_in\":86400", &d) == 86400 && !d);
    CHECK(lifetime("\"expires_in\":1", &d) == 1 && !d);
    /* expires_on when expires_in is missing (v1 string and v2-style integer). */
    CHECK(lifetime("\"expires_on\":\"1700000300\"", &d) == 300 && !d);
    CHECK(lifetime("\"expires_on\":1700000042", &d) == 42 && !d);
    /* expires_in wins over expires_on. */
    CHECK(lifetime("\"expires_in\":\"100\",\"expires_on\":\"1700000300\"", &d) == 100);
    /* absurd expires_in falls back to a sane expires_on. */
    CHECK(lifetime("\"expires_in\":-5,\"expires_on\":\"1700000300\"", &d) == 300 && !d);
    /* Absurd, missing or non-numeric: the short default. */
    const char *absurd[] = {
        "", "\"expires_in\":0", "\"expires_in\":-1", "\"expires_in\":86401",
        "\"expires_in\":\"\"", "\"expires_in\":\"12a\"", "\"expires_in\":\" 3599\"",
        "\"expires_in\":\"-3599\"", "\"expires_in\":\"+3599\"", "\"expires_in\":3599.5",
        "\"expires_in\":true", "\"expires_in\":null", "\"expires_in\":[3599]",
        "\"expires_in\":\"9999999999999\"", "\"expires_in\":9223372036854775807",
        "\"expires_on\":\"1700000000\"", "\"expires_on\":\"1600000000\"",
        "\"expires_on\":1800000000", "\"expires_on\":-1", "\"expires_in\":\"0x10\""};
    for (size_t i = 0; i < sizeof(absurd) / sizeof(absurd[0]); i++) {
        d = 0;
        int64_t life = lifetime(absurd[i], &d);
        if (life != TOKENRESP_LIFETIME_DEFAULT || !d)
            fprintf(stderr, "lifetime case %zu: %lld\n", i, (long long)life);
        CHECK(life == TOKENRESP_LIFETIME_DEFAULT && d == 1);
    }
}

static void test_errors(void)
{
    struct tokenresp r;
    /* The spec's example (§2.4), with the description's CR LF. */
    const char *scope = "{\"error\":\"invalid_scope\",\"error_description\":\"AADSTS70011: The "
                        "provided value for the input parameter 'scope' is not valid.\\r\\nTrace "
                        "ID: 255d1aef\",\"error_codes\":[70011],\"timestamp\":\"x\",\"trace_id\":"
                        "\"255d1aef-8c98-452f-ac51-23d051240864\",\"correlation_id\":"
                        "\"fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7\"}";
    CHECK(parse(&r, scope, 400) == TOKENRESP_INVALID_SCOPE);
    CHECK(r.aadsts == 70011 && r.http_status == 400 && r.access_token == NULL);
    CHECK_STR(r.error, "invalid_scope");
    CHECK(strncmp(r.description, "AADSTS70011: The provided", 25) == 0);
    CHECK(strchr(r.description, '\r') == NULL && strchr(r.description, '\n') == NULL);
    CHECK(strstr(r.description, "valid.  Trace ID") != NULL);
    CHECK_STR(r.trace_id, "255d1aef-8c98-452f-ac51-23d051240864");
    CHECK_STR(r.correlation_id, "fb3d2015-bc17-4bb9-bb85-30c5cf1aaaa7");
    CHECK(!tokenresp_retryable(r.cls));
    tokenresp_cleanup(&r);

    /* Every mapped code, from error_codes[]. */
    struct { long code; enum tokenresp_class cls; } map[] = {
        {7000215, TOKENRESP_WRONG_SECRET},   {700027, TOKENRESP_WRONG_SECRET},
        {7000222, TOKENRESP_EXPIRED_SECRET}, {700016, TOKENRESP_UNKNOWN_APP},
        {90002, TOKENRESP_UNKNOWN_TENANT},   {900023, TOKENRESP_UNKNOWN_TENANT},
        {70011, TOKENRESP_INVALID_SCOPE},    {500011, TOKENRESP_INVALID_RESOURCE},
        {65001, TOKENRESP_CONSENT},          {50126, TOKENRESP_OTHER},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        char body[200];
        snprintf(body, sizeof(body), "{\"error\":\"e\",\"error_codes\":[%ld,1]}", map[i].code);
        CHECK(parse(&r, body, 401) == map[i].cls);
        CHECK(r.aadsts == map[i].code);
        tokenresp_cleanup(&r);
    }
    /* v1-style: codes as strings. */
    CHECK(parse(&r, "{\"error\":\"invalid_client\",\"error_codes\":[\"7000222\"]}", 401) ==
          TOKENRESP_EXPIRED_SECRET);
    tokenresp_cleanup(&r);

    /* Code only in the description. */
    CHECK(parse(&r, "{\"error\":\"invalid_client\",\"error_description\":\"AADSTS7000215: "
                    "Invalid client secret provided.\"}", 401) == TOKENRESP_WRONG_SECRET);
    CHECK(r.aadsts == 7000215);
    tokenresp_cleanup(&r);
    CHECK(parse(&r, "{\"error\":\"x\",\"error_description\":\"see AADSTS, then AADSTS500011 "
                    "and AADSTS70011\"}", 400) == TOKENRESP_INVALID_RESOURCE);
    CHECK(r.aadsts == 500011);
    tokenresp_cleanup(&r);
    /* error_codes wins over the description; junk codes fall back to it. */
    CHECK(parse(&r, "{\"error\":\"x\",\"error_codes\":[65001],\"error_description\":"
                    "\"AADSTS70011:\"}", 400) == TOKENRESP_CONSENT);
    tokenresp_cleanup(&r);
    CHECK(parse(&r, "{\"error\":\"x\",\"error_codes\":[\"abc\"],\"error_description\":"
                    "\"AADSTS90002: Tenant not found\"}", 400) == TOKENRESP_UNKNOWN_TENANT);
    tokenresp_cleanup(&r);
    /* Digits glued to more digits than a code has are not a code. */
    CHECK(parse(&r, "{\"error\":\"x\",\"error_description\":\"AADSTS70011123456789\"}", 400) ==
          TOKENRESP_OTHER);
    CHECK(r.aadsts == 0);
    tokenresp_cleanup(&r);
    CHECK(parse(&r, "{\"error\":\"x\",\"error_description\":\"AADSTS\"}", 400) ==
          TOKENRESP_OTHER);
    CHECK(r.aadsts == 0);
    tokenresp_cleanup(&r);
    CHECK(parse(&r, "{\"error\":\"x\",\"error_codes\":[-7000215]}", 400) == TOKENRESP_OTHER);
    tokenresp_cleanup(&r);

    /* A well-formed unknown error, and one without "error". */
    check_class("{\"error\":\"invalid_request\"}", 400, TOKENRESP_OTHER);
    /* A server other than Entra ID: the RFC 6749 codes alone classify. */
    check_class("{\"error\":\"invalid_client\"}", 401, TOKENRESP_WRONG_SECRET);
    check_class("{\"error\":\"invalid_scope\"}", 400, TOKENRESP_INVALID_SCOPE);
    check_class("{\"error\":\"unauthorized_client\"}", 400, TOKENRESP_OTHER);
    check_class("{\"error_description\":\"no error field\"}", 400, TOKENRESP_MALFORMED);
    check_class("{\"error\":42}", 400, TOKENRESP_MALFORMED);
}

static void test_status_classes(void)
{
    struct tokenresp r;
    check_class("", 429, TOKENRESP_THROTTLED);
    check_class("{\"error\":\"x\",\"error_codes\":[7000215]}", 429, TOKENRESP_THROTTLED);
    check_class("<html>busy</html>", 503, TOKENRESP_UNAVAILABLE);
    check_class(NULL, 500, TOKENRESP_UNAVAILABLE);
    check_class("", 599, TOKENRESP_UNAVAILABLE);
    /* A 5xx body is still mined for diagnostics. */
    CHECK(parse(&r, "{\"error\":\"temporarily_unavailable\",\"error_codes\":[50001]}", 503) ==
          TOKENRESP_UNAVAILABLE);
    CHECK(r.aadsts == 50001 && strcmp(r.error, "temporarily_unavailable") == 0);
    CHECK(tokenresp_retryable(r.cls));
    tokenresp_cleanup(&r);
    /* A token in a 4xx, 3xx or 429 body is not a success. */
    check_class("{\"access_token\":\"t\",\"expires_in\":3599}", 400, TOKENRESP_MALFORMED);
    check_class("{\"access_token\":\"t\",\"expires_in\":3599}", 302, TOKENRESP_MALFORMED);
    check_class("{\"access_token\":\"t\",\"expires_in\":3599}", 429, TOKENRESP_THROTTLED);
    check_class("{\"access_token\":\"t\",\"expires_in\":3599}", 0, TOKENRESP_MALFORMED);
    /* A 200 that carries an Entra error is classified by its code. */
    check_class("{\"error\":\"invalid_client\",\"error_codes\":[7000215]}", 200,
                TOKENRESP_WRONG_SECRET);
    CHECK(tokenresp_retryable(TOKENRESP_OTHER) && tokenresp_retryable(TOKENRESP_MALFORMED));
    CHECK(!tokenresp_retryable(TOKENRESP_OK) && !tokenresp_retryable(TOKENRESP_CONSENT));
}

static void test_malformed_success(void)
{
    const char *bad[] = {
        "", "{", "[]", "\"tok\"", "null", "{}", "{\"access_token\":\"\"}",
        "{\"access_token\":42}", "{\"access_token\":null}", "{\"access_token\":[\"t\"]}",
        "{\"access_token\":\"a b\"}",         /* space: header injection risk */
        "{\"access_token\":\"a\\r\\nX-Evil: 1\"}",
        "{\"access_token\":\"a\\u0000b\"}",   /* NUL (jansson rejects it) */
        "{\"access_token\":\"=abc\"}",        /* padding first */
        "{\"access_token\":\"ab=c\"}",        /* padding in the middle */
        "{\"access_token\":\"t\\u00e9\"}",    /* non-ASCII */
        "{\"access_token\":\"a,b\"}",
        "{\"access_token\":\"t\",\"token_type\":\"mac\"}",
        "{\"access_token\":\"t\",\"token_type\":7}",
        "{\"access_token\":\"t\",\"access_token\":\"u\"}", /* duplicate key */
        "{\"access_token\":\"t\"} trailing",
        "{\"access_token\":\"t\",}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_class(bad[i], 200, TOKENRESP_MALFORMED);

    /* Embedded NUL in the raw body, before the JSON ends. */
    struct tokenresp r;
    CHECK(tokenresp_parse(&r, "{\"access_token\":\"t\"}\0x", 22, 200, NOW) == TOKENRESP_MALFORMED);
    tokenresp_cleanup(&r);
    /* A short prefix of a valid body (len smaller than the text). */
    CHECK(tokenresp_parse(&r, "{\"access_token\":\"t\"}", 10, 200, NOW) == TOKENRESP_MALFORMED);
    tokenresp_cleanup(&r);
    CHECK(tokenresp_parse(&r, NULL, 0, 200, NOW) == TOKENRESP_MALFORMED);
    tokenresp_cleanup(&r);
    /* An absurd clock saturates instead of overflowing. */
    const char *ok = "{\"access_token\":\"t\",\"expires_in\":3599,\"expires_on\":\"5\"}";
    CHECK(tokenresp_parse(&r, ok, strlen(ok), 200, INT64_MAX - 10) == TOKENRESP_OK);
    CHECK(r.expires_at == INT64_MAX && r.lifetime == 3599);
    tokenresp_cleanup(&r);
    CHECK(tokenresp_parse(&r, ok + 0, strlen(ok), 200, -100) == TOKENRESP_OK);
    CHECK(r.expires_at == -100 + 3599);
    tokenresp_cleanup(&r);
}

/* A body of `n` bytes: {"access_token":"aaaa..."} padded with spaces. */
static char *big_body(size_t toklen, size_t total)
{
    char *b = malloc(total + 1);
    int h = snprintf(b, total + 1, "{\"access_token\":\"");
    memset(b + h, 'a', toklen);
    size_t p = (size_t)h + toklen;
    memcpy(b + p, "\"}", 2);
    memset(b + p + 2, ' ', total - p - 2);
    b[total] = '\0';
    return b;
}

static void test_caps(void)
{
    struct tokenresp r;
    char *b = big_body(TOKENRESP_TOKEN_MAX, TOKENRESP_TOKEN_MAX + 100);
    CHECK(parse(&r, b, 200) == TOKENRESP_OK && r.access_token_len == TOKENRESP_TOKEN_MAX);
    tokenresp_cleanup(&r);
    free(b);
    b = big_body(TOKENRESP_TOKEN_MAX + 1, TOKENRESP_TOKEN_MAX + 100);
    CHECK(parse(&r, b, 200) == TOKENRESP_MALFORMED);
    tokenresp_cleanup(&r);
    free(b);
    b = big_body(10, TOKENRESP_BODY_MAX); /* at the cap: parsed */
    CHECK(parse(&r, b, 200) == TOKENRESP_OK);
    tokenresp_cleanup(&r);
    free(b);
    b = big_body(10, TOKENRESP_BODY_MAX + 1); /* over: not parsed */
    CHECK(parse(&r, b, 200) == TOKENRESP_MALFORMED);
    tokenresp_cleanup(&r);
    free(b);

    /* Error fields are cut to their caps and made printable. */
    char body[4096];
    char desc[2000];
    memset(desc, 'd', sizeof(desc) - 1);
    desc[sizeof(desc) - 1] = '\0';
    snprintf(body, sizeof(body), "{\"error\":\"%0100d\",\"error_description\":\"%s\\u0007\","
             "\"trace_id\":\"\\u00e9\\ttab%060d\"}", 0, desc, 0);
    CHECK(parse(&r, body, 400) == TOKENRESP_OTHER);
    CHECK(strlen(r.error) == TOKENRESP_ERROR_MAX);
    CHECK(strlen(r.description) == TOKENRESP_DESC_MAX);
    CHECK(strlen(r.trace_id) == TOKENRESP_ID_MAX);
    CHECK(strncmp(r.trace_id, "   tab0", 7) == 0); /* 2 UTF-8 bytes + tab -> 3 spaces */
    tokenresp_cleanup(&r);
}

/* Workload identity federation: Entra's answers about the federated assertion. */
static void test_federation_codes(void)
{
    check_class("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS700024: Client "
                "assertion is not within its valid time range.\",\"error_codes\":[700024]}",
                401, TOKENRESP_ASSERTION_TIME);
    check_class("{\"error\":\"invalid_client\",\"error_description\":\"AADSTS70021: No "
                "matching federated identity record found for presented assertion.\"}",
                400, TOKENRESP_NO_FEDERATION);
    for (long code = 700211; code <= 700213; code++) {
        char body[128];
        snprintf(body, sizeof body, "{\"error\":\"invalid_client\",\"error_codes\":[%ld]}", code);
        check_class(body, 401, TOKENRESP_NO_FEDERATION);
    }
    CHECK(tokenresp_retryable(TOKENRESP_ASSERTION_TIME) == 1);
    CHECK(tokenresp_retryable(TOKENRESP_NO_FEDERATION) == 0);
    CHECK(tokenresp_retryable(TOKENRESP_NO_IDENTITY) == 0);
    CHECK_STR(tokenresp_class_name(TOKENRESP_ASSERTION_TIME), "assertion_time_range");
    CHECK_STR(tokenresp_class_name(TOKENRESP_NO_FEDERATION), "no_federation");
    CHECK_STR(tokenresp_class_name(TOKENRESP_NO_IDENTITY), "identity_not_found");
}

static enum tokenresp_class mi(struct tokenresp *r, const char *body, int status)
{
    tokenresp_parse(r, body, strlen(body), status, NOW);
    return tokenresp_mi_class(r);
}

/* Managed identity answers: IMDS gives every number as a string, App Service only
 * expires_on; their errors are not Entra's. */
static void test_managed_identity(void)
{
    struct tokenresp r;

    CHECK(mi(&r, "{\"access_token\":\"eyJ0.eyJ1.sig\",\"client_id\":\"c\",\"expires_in\":"
                 "\"86399\",\"expires_on\":\"1700086399\",\"ext_expires_in\":\"86399\","
                 "\"not_before\":\"1700000000\",\"resource\":\"https://x\",\"token_type\":"
                 "\"Bearer\"}", 200) == TOKENRESP_OK);
    CHECK(r.lifetime == 86399 && r.expires_at == NOW + 86399 && !r.lifetime_defaulted);
    tokenresp_cleanup(&r);
    CHECK(mi(&r, "{\"access_token\":\"eyJ0.eyJ1.sig\",\"expires_on\":\"1700003000\","
                 "\"resource\":\"https://x\",\"token_type\":\"Bearer\",\"client_id\":\"c\"}",
             200) == TOKENRESP_OK);
    CHECK(r.lifetime == 3000 && r.expires_at == 1700003000);
    tokenresp_cleanup(&r);
    CHECK(mi(&r, "{\"error\":\"invalid_request\",\"error_description\":\"Identity not "
                 "found\"}", 400) == TOKENRESP_NO_IDENTITY);
    tokenresp_cleanup(&r);
    CHECK(mi(&r, "{\"error\":\"invalid_resource\",\"error_description\":\"AADSTS500011: The "
                 "resource principal named x was not found\"}", 400) == TOKENRESP_INVALID_RESOURCE);
    CHECK(r.aadsts == 500011);
    tokenresp_cleanup(&r);
    CHECK(mi(&r, "{\"error\":\"invalid_request\",\"error_description\":\"AADSTS50001: The "
                 "application named x was not found\"}", 400) == TOKENRESP_INVALID_RESOURCE);
    tokenresp_cleanup(&r);
    /* IMDS is updating: retry */
    CHECK(mi(&r, "", 404) == TOKENRESP_UNAVAILABLE);
    tokenresp_cleanup(&r);
    CHECK(mi(&r, "", 410) == TOKENRESP_UNAVAILABLE);
    tokenresp_cleanup(&r);
    CHECK(mi(&r, "", 429) == TOKENRESP_THROTTLED);
    tokenresp_cleanup(&r);
    CHECK(mi(&r, "{\"error\":\"invalid_request\",\"error_description\":\"Required metadata "
                 "header not specified\"}", 400) == TOKENRESP_OTHER);
    tokenresp_cleanup(&r);
}

int main(void)
{
    test_federation_codes();
    test_managed_identity();
    test_v1_success();
    test_v2_success();
    test_lifetimes();
    test_errors();
    test_status_classes();
    test_malformed_success();
    test_caps();
    CHECK_STR(tokenresp_class_name(TOKENRESP_WRONG_SECRET), "wrong_secret");
    CHECK_STR(tokenresp_class_name(TOKENRESP_OTHER), "other");
    CHECK_STR(tokenresp_class_name((enum tokenresp_class)99), "unknown");
    return check_done();
}
