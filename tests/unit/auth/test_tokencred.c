/* Unit tests for auth/tokencred with the secretless kinds: the federated assertion file
 * (re-read per request, refused when missing, malformed or expired) and managed identity
 * requests (IMDS and App Service), plus the hints of auth/tokenhint. */
#include "check.h"
#include "b64.h"
#include "conf.h"
#include "tokencred.h"
#include "tokenhint.h"
#include "testproc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#define APP "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
#define MI "0d6b5a4c-2222-4333-8444-00000000a51d"
#define RES "https://contoso.operations.dynamics.com"
#define RES_ENC "https%3A%2F%2Fcontoso.operations.dynamics.com"
#define TOKEN_URL "https://login.microsoftonline.com/t/oauth2/v2.0/token"
#define IMDS "http://169.254.169.254/metadata/identity/oauth2/token"
#define HDR_VALUE "identity-header-value-42"

static char dir[] = "/tmp/fogate-test-tokencred-XXXXXX";
static char path[600];

static char *jwt(long long exp, const char *sub)
{
    char payload[256], *out = malloc(1024);
    const char *hdr = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    snprintf(payload, sizeof payload,
             "{\"iss\":\"https://oidc.example\",\"sub\":\"%s\",\"aud\":"
             "\"api://AzureADTokenExchange\",\"exp\":%lld}", sub, exp);
    char *h = b64_encode(hdr, strlen(hdr), B64_URL, NULL);
    char *p = b64_encode(payload, strlen(payload), B64_URL, NULL);
    snprintf(out, 1024, "%s.%s.c2ln", h, p);
    free(h);
    free(p);
    return out;
}

static void write_file(const char *content)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(content, f);
        fclose(f);
    }
    CHECK(rename(tmp, path) == 0); /* as the kubelet swaps the projected file */
}

static struct conf_env fed_env(void)
{
    struct conf_env e = { .name = "prod", .base_url = RES, .resource = RES, .tenant = "t",
                          .client_id = APP, .credential = CONF_CRED_ASSERTION_FILE,
                          .client_assertion_file = path, .token_version = CONF_TOKEN_V2,
                          .token_endpoint = TOKEN_URL };
    return e;
}

static enum tokencred_result request(const struct tokencred *c, const struct conf_env *e,
                                     struct tokencred_req *r, char *err, size_t errlen)
{
    return tokencred_request(c, e, (int64_t)time(NULL), r, err, errlen);
}

static void test_assertion_file(void)
{
    struct conf_env e = fed_env();
    struct tokencred_req r;
    char err[256], want[4096];
    char *a = jwt((long long)time(NULL) + 600, "system:serviceaccount:ns:one");
    char *b = jwt((long long)time(NULL) + 600, "system:serviceaccount:ns:two");
    char *old = jwt((long long)time(NULL) - 5, "system:serviceaccount:ns:one");

    /* Loading never reads the file: it may appear later. */
    struct tokencred *c = tokencred_load(&e, err, sizeof err);
    CHECK(c != NULL);
    CHECK(tokencred_mi_style(c) == NULL);
    err[0] = '\0';
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_UNREADABLE);
    CHECK(strstr(err, path) != NULL && r.body == NULL && r.url == NULL);

    write_file(a);
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_OK);
    snprintf(want, sizeof want, "%s%s%s", "client_id=" APP "&scope=" RES_ENC "%2F.default"
             "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type"
             "%3Ajwt-bearer&client_assertion=", a, "&grant_type=client_credentials");
    CHECK_STR(r.body, want);
    CHECK(!r.get && r.len == strlen(want) && r.url == e.token_endpoint && r.n_headers == 0);
    tokencred_req_cleanup(&r);
    CHECK(r.body == NULL);

    /* Rotated: the next request carries the new one, with the same credential object. */
    char nl[1100];
    snprintf(nl, sizeof nl, "%s\n", b);
    write_file(nl);
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_OK);
    CHECK(r.body && strstr(r.body, b) && !strstr(r.body, a) && !strstr(r.body, "%0A"));
    tokencred_req_cleanup(&r);

    write_file(old);
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_EXPIRED);
    CHECK(strstr(err, "expired") && strstr(err, path) && !strstr(err, old));
    write_file("not a jwt");
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_UNREADABLE);
    CHECK(strstr(err, "not a JWT") != NULL);
    unlink(path);
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_UNREADABLE);

    /* v1 sends resource= */
    write_file(a);
    e.token_version = CONF_TOKEN_V1;
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_OK);
    CHECK(r.body && strstr(r.body, "&resource=" RES_ENC) && strncmp(r.body, "grant_type=", 11) == 0);
    tokencred_req_cleanup(&r);
    tokencred_req_cleanup(&r); /* twice is safe */
    CHECK(tokencred_leaks(c, a, strlen(a)) == 0);
    tokencred_free(c);
    free(a);
    free(b);
    free(old);
}

/* The kubelet's projected volume: <dir>/token -> ..data/token, ..data -> ..<timestamp>/;
 * an update writes a new timestamped directory and swaps ..data atomically. */
static void kubelet_write(const char *vol, int gen, const char *jwt_text)
{
    char d[700], f[760], tmp[700], data[700];
    snprintf(d, sizeof d, "%s/..2026_%d", vol, gen);
    CHECK(mkdir(d, 0755) == 0);
    snprintf(f, sizeof f, "%s/token", d);
    FILE *fp = fopen(f, "w");
    CHECK(fp != NULL);
    if (fp) {
        fputs(jwt_text, fp);
        fclose(fp);
    }
    snprintf(tmp, sizeof tmp, "%s/..data_tmp", vol);
    snprintf(data, sizeof data, "%s/..data", vol);
    snprintf(f, sizeof f, "..2026_%d", gen);
    CHECK(symlink(f, tmp) == 0 && rename(tmp, data) == 0);
}

static void test_projected_volume(void)
{
    char vol[700], link[760], err[256];
    struct tokencred_req r;
    char *a = jwt((long long)time(NULL) + 600, "system:serviceaccount:ns:first");
    char *b = jwt((long long)time(NULL) + 600, "system:serviceaccount:ns:second");

    snprintf(vol, sizeof vol, "%s/vol", dir);
    CHECK(mkdir(vol, 0755) == 0);
    kubelet_write(vol, 1, a);
    snprintf(link, sizeof link, "%s/token", vol);
    CHECK(symlink("..data/token", link) == 0);
    struct conf_env e = fed_env();
    e.client_assertion_file = link;
    struct tokencred *c = tokencred_load(&e, err, sizeof err);
    CHECK(c && request(c, &e, &r, err, sizeof err) == TOKENCRED_OK && strstr(r.body, a));
    tokencred_req_cleanup(&r);
    kubelet_write(vol, 2, b);
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_OK && strstr(r.body, b));
    tokencred_req_cleanup(&r);
    tokencred_free(c);
    free(a);
    free(b);
    testproc_rmtree(vol);
}

static struct conf_env mi_env(const char *mi_client_id)
{
    struct conf_env e = { .name = "prod", .base_url = RES, .resource = RES, .tenant = "t",
                          .client_id = APP, .credential = CONF_CRED_MANAGED_IDENTITY,
                          .managed_identity = true, .mi_client_id = (char *)mi_client_id,
                          .mi_endpoint = IMDS, .token_version = CONF_TOKEN_V2,
                          .token_endpoint = TOKEN_URL };
    return e;
}

static void test_imds(void)
{
    struct conf_env e = mi_env(MI);
    struct tokencred_req r;
    char err[256];

    unsetenv("IDENTITY_ENDPOINT");
    unsetenv("IDENTITY_HEADER");
    struct tokencred *c = tokencred_load(&e, err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(tokencred_mi_style(c), "imds");
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_OK);
    CHECK(r.get && r.body == NULL && r.n_headers == 2);
    CHECK_STR(r.url, IMDS "?api-version=2018-02-01&resource=" RES_ENC "&client_id=" MI);
    CHECK_STR(r.headers[0], "Metadata: true");
    CHECK_STR(r.headers[1], "Accept: application/json");
    tokencred_req_cleanup(&r);
    CHECK(r.url == NULL && r.headers[0] == NULL);
    tokencred_free(c);

    /* system-assigned: no client_id */
    e = mi_env(NULL);
    c = tokencred_load(&e, err, sizeof err);
    CHECK(c && request(c, &e, &r, err, sizeof err) == TOKENCRED_OK);
    CHECK_STR(r.url, IMDS "?api-version=2018-02-01&resource=" RES_ENC);
    tokencred_req_cleanup(&r);
    tokencred_free(c);
}

static void test_app_service(void)
{
    struct conf_env e = mi_env(MI);
    struct tokencred_req r;
    char err[256];

    setenv("IDENTITY_ENDPOINT", "http://localhost:42356/msi/token", 1);
    setenv("IDENTITY_HEADER", HDR_VALUE, 1);
    struct tokencred *c = tokencred_load(&e, err, sizeof err);
    CHECK(c != NULL);
    CHECK_STR(tokencred_mi_style(c), "app_service");
    CHECK(request(c, &e, &r, err, sizeof err) == TOKENCRED_OK);
    CHECK_STR(r.url, "http://localhost:42356/msi/token?api-version=2019-08-01&resource=" RES_ENC
                     "&client_id=" MI);
    CHECK_STR(r.headers[0], "X-IDENTITY-HEADER: " HDR_VALUE);
    CHECK(tokencred_leaks(c, "echo " HDR_VALUE " back", strlen("echo " HDR_VALUE " back")) == 1);
    CHECK(tokencred_leaks(c, "echo " HDR_VALUE, 10) == 0);
    tokencred_req_cleanup(&r);
    tokencred_free(c);

    /* one of the two: refused, naming the variables but never the value */
    unsetenv("IDENTITY_ENDPOINT");
    err[0] = '\0';
    CHECK(tokencred_load(&e, err, sizeof err) == NULL);
    CHECK(strstr(err, "IDENTITY_HEADER is set but IDENTITY_ENDPOINT is not") != NULL);
    CHECK(strstr(err, HDR_VALUE) == NULL);
    setenv("IDENTITY_ENDPOINT", "ftp://x/msi", 1);
    CHECK(tokencred_load(&e, err, sizeof err) == NULL && strstr(err, "IDENTITY_ENDPOINT"));
    setenv("IDENTITY_ENDPOINT", "http://localhost:1/msi/token", 1);
    setenv("IDENTITY_HEADER", "a\r\nInjected: 1", 1);
    CHECK(tokencred_load(&e, err, sizeof err) == NULL);
    CHECK(strstr(err, "line break") && !strstr(err, "Injected"));
    unsetenv("IDENTITY_ENDPOINT");
    unsetenv("IDENTITY_HEADER");
}

static void test_hints(void)
{
    CHECK(tokenhint_text("ok", CONF_CRED_SECRET_FILE) == NULL);
    CHECK(tokenhint_text("starting", CONF_CRED_ASSERTION_FILE) == NULL);
    CHECK(tokenhint_text(NULL, CONF_CRED_ASSERTION_FILE) == NULL);
    CHECK(strstr(tokenhint_text("assertion_expired", CONF_CRED_ASSERTION_FILE),
                 "AZURE_FEDERATED_TOKEN_FILE") != NULL);
    CHECK(strstr(tokenhint_text("no_federation", CONF_CRED_ASSERTION_FILE),
                 "api://AzureADTokenExchange") != NULL);
    CHECK(strstr(tokenhint_text("assertion_time_range", CONF_CRED_ASSERTION_FILE),
                 "AADSTS700024") != NULL);
    /* worded for the kind */
    CHECK(strstr(tokenhint_text("wrong_secret", CONF_CRED_SECRET_ENV), "value, not its ID"));
    CHECK(strstr(tokenhint_text("wrong_secret", CONF_CRED_CERTIFICATE), "certificate"));
    CHECK(strstr(tokenhint_text("wrong_secret", CONF_CRED_ASSERTION_FILE), "issuer"));
    CHECK(strstr(tokenhint_text("unreachable", CONF_CRED_MANAGED_IDENTITY), "IMDS"));
    CHECK(!strstr(tokenhint_text("unreachable", CONF_CRED_SECRET_FILE), "IMDS"));
    CHECK(strstr(tokenhint_text("identity_not_found", CONF_CRED_MANAGED_IDENTITY),
                 "managed_identity.client_id"));
}

int main(void)
{
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/token", dir);
    test_assertion_file();
    test_projected_volume();
    test_imds();
    test_app_service();
    test_hints();
    testproc_rmtree(dir);
    return check_done();
}
