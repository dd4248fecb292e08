/* test_packagename: company prefix, execution ids, GetAzureWriteUrl value, statuses,
 * "not found yet", SAS redaction. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "packagename.h"

static void test_company(void)
{
    char c[16];

    CHECK(packagename_company("USMF_Customer_001_V101.zip", c, sizeof c) == 0);
    CHECK_STR(c, "USMF");
    CHECK(packagename_company("in/dir\\DEMF_x.zip", c, sizeof c) == 0);
    CHECK_STR(c, "DEMF");
    CHECK(packagename_company("Customers.zip", c, sizeof c) == -1);
    CHECK(packagename_company("_x.zip", c, sizeof c) == -1);
    CHECK(packagename_company("TOOLONGNAME_x.zip", c, sizeof c) == -1);
    CHECK(packagename_company("US-MF_x.zip", c, sizeof c) == -1);
    CHECK(packagename_company("USMF_x.zip", c, 4) == -1);
}

static void test_exec_id(void)
{
    unsigned char rnd[16];
    char id[PACKAGENAME_EXEC_MAX];

    for (int i = 0; i < 16; i++)
        rnd[i] = (unsigned char)(i * 17);
    packagename_exec_id("Cust groups/1", rnd, id);
    CHECK_STR(id, "Cust_groups_1-fogate-00112233445566778899aabbccddeeff");
    CHECK(packagename_exec_ok(id, strlen(id)));
    CHECK(!packagename_exec_ok("a/b", 3));
    CHECK(!packagename_exec_ok("a b", 3));
    CHECK(!packagename_exec_ok("", 0));
    CHECK(packagename_exec_ok("ExportPackage-11:15", 19));
}

static void test_write_url(void)
{
    char *u = packagename_write_url("{\"BlobId\":\"{6D31E09F-0249-459F-94F0-AAD9C2C47B64}\","
                                    "\"BlobUrl\":\"https://a.blob/dmf/x?sv=1&sig=S\"}");

    CHECK_STR(u, "https://a.blob/dmf/x?sv=1&sig=S");
    free(u);
    CHECK(packagename_write_url("not json") == NULL);
    CHECK(packagename_write_url("{\"BlobId\":\"x\"}") == NULL);
    CHECK(packagename_write_url("{\"BlobUrl\":\"\"}") == NULL);
}

static void test_status(void)
{
    struct d365_err e = { .status = 400, .code = "d365_rejected" };

    CHECK(packagename_status_final("Succeeded"));
    CHECK(packagename_status_final("PartiallySucceeded"));
    CHECK(packagename_status_final("Failed"));
    CHECK(packagename_status_final("Canceled"));
    CHECK(!packagename_status_final("Executing"));
    CHECK(!packagename_status_final("NotRun"));
    CHECK(!packagename_status_final("Unknown"));
    strcpy(e.message, "D365 answered 400 to GetExecutionSummaryStatus: Execution details "
                      "were not found for execution id: x");
    CHECK_STR(packagename_not_yet(&e), "NotRun");
    e.status = 502;
    CHECK(packagename_not_yet(&e) == NULL);
    e.status = 400;
    strcpy(e.message, "D365 answered 400: something else");
    CHECK(packagename_not_yet(&e) == NULL);
}

static void test_redact(void)
{
    char out[32];

    packagename_redact("http://h/dmf/b?sv=1&sig=SECRET", out, sizeof out);
    CHECK_STR(out, "http://h/dmf/b");
    packagename_redact("http://h/dmf/b#frag", out, sizeof out);
    CHECK_STR(out, "http://h/dmf/b");
    packagename_redact("http://a-very-long-host-name.example/dmf/b?sig=S", out, 10);
    CHECK_STR(out, "http://a-");
}

static void test_sas_expiry(void)
{
    time_t t = 0;

    CHECK(packagename_sas_expiry("http://h/dmf/b?sv=2014-02-14&sr=b&sig=x%3D"
                                 "&st=2020-06-05T07%3A21%3A33Z&se=2020-06-05T07%3A56%3A33Z&sp=rw",
                                 &t) == 0);
    CHECK(t == 1591343793);
    CHECK(packagename_sas_expiry("http://h/b?se=2020-06-05T07:56:33Z", &t) == 0 &&
          t == 1591343793);
    CHECK(packagename_sas_expiry("http://h/b?sp=r&se=2020-06-05", &t) == 0 && t == 1591315200);
    CHECK(packagename_sas_expiry("http://h/b?sse=2020-06-05", &t) == -1);
    CHECK(packagename_sas_expiry("http://h/b?se=2020-13-05", &t) == -1);
    CHECK(packagename_sas_expiry("http://h/b?se=2020-06-05T07:56:33Zjunk", &t) == -1);
    CHECK(packagename_sas_expiry("http://h/b#se=2020-06-05", &t) == -1);
    CHECK(packagename_sas_expiry("http://h/b", &t) == -1);
    CHECK(packagename_sas_expired("http://h/b?se=2020-06-05T07:56:33Z", 1591343793));
    CHECK(!packagename_sas_expired("http://h/b?se=2020-06-05T07:56:33Z", 1591343792));
    CHECK(!packagename_sas_expired("http://h/b?sig=x", 2000000000)); /* unknown: not expired */
}

int main(void)
{
    test_company();
    test_exec_id();
    test_write_url();
    test_status();
    test_redact();
    test_sas_expiry();
    return check_done();
}
