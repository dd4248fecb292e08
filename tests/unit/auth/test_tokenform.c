/* Unit tests for token request bodies and the canonical D365 resource. */
#include "check.h"
#include "tokenform.h"

#include <stdlib.h>

#define RES "https://contoso.operations.dynamics.com"
#define RES_ENC "https%3A%2F%2Fcontoso.operations.dynamics.com"
#define JWT_TYPE "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"

static void check_body(const struct tokenform_req *req, const char *want)
{
    size_t len = 0;
    char *body = tokenform_build(req, &len);
    CHECK_STR(body, want);
    CHECK(body && len == strlen(want));
    tokenform_free(body);
}

static void test_bodies(void)
{
    struct tokenform_req v1 = {TOKENFORM_V1, "app-id", RES, "s3cr~t +&=/%", NULL};
    check_body(&v1, "grant_type=client_credentials&client_id=app-id"
                    "&client_secret=s3cr~t%20%2B%26%3D%2F%25&resource=" RES_ENC);
    struct tokenform_req v2 = {TOKENFORM_V2, "app-id", RES, "abc", NULL};
    check_body(&v2, "client_id=app-id&scope=" RES_ENC "%2F.default&client_secret=abc"
                    "&grant_type=client_credentials");
    struct tokenform_req v2a = {TOKENFORM_V2, "app-id", RES, NULL, "h.c.s-_"};
    check_body(&v2a, "client_id=app-id&scope=" RES_ENC "%2F.default&client_assertion_type="
                     JWT_TYPE "&client_assertion=h.c.s-_&grant_type=client_credentials");
    struct tokenform_req v1a = {TOKENFORM_V1, "app-id", RES, NULL, "h.c.s"};
    check_body(&v1a, "grant_type=client_credentials&client_id=app-id&client_assertion_type="
                     JWT_TYPE "&client_assertion=h.c.s&resource=" RES_ENC);
    /* len may be NULL. */
    char *b = tokenform_build(&v2, NULL);
    CHECK(b != NULL);
    tokenform_free(b);
    tokenform_free(NULL);
}

/* Every byte outside the unreserved set is encoded, including UTF-8 and controls. */
static void test_encoding(void)
{
    char secret[256];
    size_t n = 0;
    for (int c = 1; c < 256; c++)
        secret[n++] = (char)c;
    secret[n] = '\0';
    struct tokenform_req req = {TOKENFORM_V2, "id", RES, secret, NULL};
    char *body = tokenform_build(&req, NULL);
    CHECK(body != NULL);
    const char *s = body ? strstr(body, "client_secret=") : NULL;
    CHECK(s != NULL);
    if (!s) {
        tokenform_free(body);
        return;
    }
    s += strlen("client_secret=");
    /* Decode it back and check each byte and the encoding's shape. */
    int c = 1, bad = 0;
    for (; *s && *s != '&'; c++) {
        int want_plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || strchr("-._~", c);
        if (want_plain) {
            bad += *s != c;
            s++;
        } else {
            unsigned v = 0;
            bad += *s != '%' || sscanf(s + 1, "%2X", &v) != 1 || v != (unsigned)c ||
                   !strchr("0123456789ABCDEF", s[1]) || !strchr("0123456789ABCDEF", s[2]);
            s += 3;
        }
    }
    CHECK(bad == 0);
    CHECK(c == 256);
    CHECK_STR(s, "&grant_type=client_credentials");
    tokenform_free(body);
}

static void test_invalid_requests(void)
{
    char big[TOKENFORM_ASSERTION_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct tokenform_req bad[] = {
        {TOKENFORM_V2, NULL, RES, "s", NULL},
        {TOKENFORM_V2, "", RES, "s", NULL},
        {TOKENFORM_V2, "id", NULL, "s", NULL},
        {TOKENFORM_V2, "id", "", "s", NULL},
        {TOKENFORM_V2, "id", RES "/", "s", NULL},   /* not canonical */
        {TOKENFORM_V2, "id", RES, NULL, NULL},      /* no credential */
        {TOKENFORM_V2, "id", RES, "s", "a.b.c"},    /* both */
        {TOKENFORM_V2, "id", RES, "", NULL},
        {TOKENFORM_V2, "id", RES, NULL, ""},
        {(enum tokenform_endpoint)7, "id", RES, "s", NULL},
        {TOKENFORM_V2, "id", RES, big + sizeof(big) - 2 - TOKENFORM_SECRET_MAX, NULL},
        {TOKENFORM_V2, "id", RES, NULL, big},
        {TOKENFORM_V2, big + sizeof(big) - 2 - TOKENFORM_ID_MAX, RES, "s", NULL},
        {TOKENFORM_V1, "id", big + sizeof(big) - 2 - TOKENFORM_RESOURCE_MAX, "s", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *b = tokenform_build(&bad[i], NULL);
        if (b)
            fprintf(stderr, "invalid request %zu accepted\n", i);
        CHECK(b == NULL);
        tokenform_free(b);
    }
    CHECK(tokenform_build(NULL, NULL) == NULL);
    /* Exactly at the caps is fine. */
    struct tokenform_req at = {TOKENFORM_V2, big + sizeof(big) - 1 - TOKENFORM_ID_MAX, RES,
                               big + sizeof(big) - 1 - TOKENFORM_SECRET_MAX, NULL};
    size_t len = 0;
    char *b = tokenform_build(&at, &len);
    CHECK(b != NULL && len == strlen(b));
    tokenform_free(b);
    struct tokenform_req at2 = {TOKENFORM_V1, "id", RES, NULL, big + 1};
    b = tokenform_build(&at2, NULL);
    CHECK(b != NULL);
    tokenform_free(b);
}

static void check_res(const char *url, const char *want)
{
    char out[TOKENFORM_RESOURCE_MAX + 1];
    int rc = tokenform_resource(url, out, sizeof(out));
    if (want) {
        CHECK(rc == 0);
        CHECK_STR(rc == 0 ? out : NULL, want);
    } else {
        if (rc == 0)
            fprintf(stderr, "accepted resource \"%s\" -> \"%s\"\n", url, out);
        CHECK(rc == -1);
    }
}

static void test_resource(void)
{
    check_res("https://contoso.operations.dynamics.com", RES);
    check_res("https://contoso.operations.dynamics.com/", RES);
    check_res("https://contoso.operations.dynamics.com///", RES);
    check_res("HTTPS://Contoso.Operations.DYNAMICS.com/", RES);
    check_res("https://contoso.operations.dynamics.com:443/", RES);
    check_res("https://contoso.operations.dynamics.com/namespaces/AXSF/", RES);
    check_res("https://contoso.sandbox.operations.dynamics.com:8443/", 
              "https://contoso.sandbox.operations.dynamics.com:8443");
    check_res("http://127.0.0.1:8080/", "http://127.0.0.1:8080");
    check_res("http://LocalHost:80", "http://localhost");
    check_res("http://localhost:443", "http://localhost:443");
    check_res("https://[::1]:9000/", "https://[::1]:9000");
    check_res("https://[::1]", "https://[::1]");
    check_res("https://my_dev-box.local", "https://my_dev-box.local");
    check_res(NULL, NULL);
    check_res("", NULL);
    check_res("contoso.operations.dynamics.com", NULL);
    check_res("ftp://contoso.com", NULL);
    check_res("https://", NULL);
    check_res("https:///path", NULL);
    check_res("https://user:pw@contoso.com", NULL);
    check_res("https://contoso.com/?x=1", NULL);
    check_res("https://contoso.com/#frag", NULL);
    check_res("https://contoso.com:", NULL);
    check_res("https://contoso.com:0", NULL);
    check_res("https://contoso.com:65536", NULL);
    check_res("https://contoso.com:123456", NULL);
    check_res("https://contoso.com:8a", NULL);
    check_res("https://contoso.com:-1", NULL);
    check_res("https://conto so.com", NULL);
    check_res(" https://contoso.com", NULL);
    check_res("https://contoso.com\r\n", NULL);
    check_res("https://contoso.com\t/", NULL);
    check_res("https://contos\xc3\xb6.com", NULL);
    check_res("https://conto%73o.com", NULL);
    check_res("https://[::1", NULL);
    check_res("https://[]:80", NULL);
    check_res("https://[::1]x", NULL);
    check_res("https://a.com:80:80", NULL);

    /* Output buffer too small: refused, and out holds an empty string. */
    char small[10] = "junk";
    CHECK(tokenform_resource("https://contoso.com", small, sizeof(small)) == -1);
    CHECK(small[0] == '\0');
    char exact[20];
    CHECK(tokenform_resource("https://contoso.com/", exact, sizeof(exact)) == 0); /* 19+1 */
    CHECK(tokenform_resource("https://contoso.com:81", exact, sizeof(exact)) == -1);
    CHECK(tokenform_resource("https://contoso.com", exact, 0) == -1);
    /* Over-long URL. */
    char longurl[TOKENFORM_RESOURCE_MAX + 20];
    snprintf(longurl, sizeof(longurl), "https://%0*d.com", TOKENFORM_RESOURCE_MAX, 0);
    check_res(longurl, NULL);
}

/* Managed identity URLs: the same percent-encoding as the form, no secret in them. */
static void test_mi_url(void)
{
    char *u = tokenform_mi_url("http://169.254.169.254/metadata/identity/oauth2/token",
                               "2018-02-01", RES, "0d6b5a4c-2222-4333-8444-00000000a51d");
    CHECK_STR(u, "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01"
                 "&resource=" RES_ENC "&client_id=0d6b5a4c-2222-4333-8444-00000000a51d");
    free(u);
    u = tokenform_mi_url("http://localhost:42356/msi/token", "2019-08-01", RES, NULL);
    CHECK_STR(u, "http://localhost:42356/msi/token?api-version=2019-08-01&resource=" RES_ENC);
    free(u);
    /* an endpoint with a query already: '&' */
    u = tokenform_mi_url("http://127.0.0.1:8081/msi?x=1", "2019-08-01", "a b&c=d", "i d");
    CHECK_STR(u, "http://127.0.0.1:8081/msi?x=1&api-version=2019-08-01&resource=a%20b%26c%3Dd"
                 "&client_id=i%20d");
    free(u);
    CHECK(tokenform_mi_url("http://x/a b", "1", RES, NULL) == NULL);
    CHECK(tokenform_mi_url("http://x/a#f", "1", RES, NULL) == NULL);
    CHECK(tokenform_mi_url("http://x/a\r\n", "1", RES, NULL) == NULL);
    CHECK(tokenform_mi_url(NULL, "1", RES, NULL) == NULL);
    CHECK(tokenform_mi_url("http://x/", "", RES, NULL) == NULL);
    CHECK(tokenform_mi_url("http://x/", "1", "", NULL) == NULL);
    CHECK(tokenform_mi_url("http://x/", "1", RES, "") == NULL);
}

int main(void)
{
    test_mi_url();
    test_bodies();
    test_encoding();
    test_invalid_requests();
    test_resource();
    return check_done();
}
