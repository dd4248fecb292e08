/* test_ctlcode: fogatectl's exit codes by final status and HTTP class, the Idempotency-Key
 * of a content digest, and the file name of a taken export (a GUID only). */
#include <string.h>

#include "check.h"
#include "ctlcode.h"

int main(void)
{
    unsigned char d[32];
    char key[80], name[64];

    CHECK(ctlcode_final("Processed") == CTL_OK);
    CHECK(ctlcode_final("processed") == CTL_OK);
    CHECK(ctlcode_final("ProcessedWithErrors") == CTL_WITH_ERRORS);
    CHECK(ctlcode_final("PreProcessingError") == CTL_PRE_ERROR);
    CHECK(ctlcode_final("PostProcessingFailed") == CTL_POST_FAILED);
    CHECK(ctlcode_final("NotEnqueued") == CTL_OTHER_FINAL);
    CHECK(ctlcode_http(401) == CTL_REFUSED && ctlcode_http(404) == CTL_REFUSED);
    CHECK(ctlcode_http(503) == CTL_UNAVAILABLE && ctlcode_http(502) == CTL_UNAVAILABLE);
    CHECK(ctlcode_http(0) == CTL_UNREACHABLE && ctlcode_http(302) == CTL_UNREACHABLE);
    for (int i = 0; i < 32; i++)
        d[i] = (unsigned char)(i * 7);
    ctlcode_idem_key(d, key, sizeof key);
    CHECK(strlen(key) == 71 && strncmp(key, "sha256:00070e15", 15) == 0);
    CHECK(ctlcode_export_name("4f40d591-1234-4abc-8def-0123456789ab", ".csv", name,
                              sizeof name) == 0);
    CHECK_STR(name, "4f40d591-1234-4abc-8def-0123456789ab.csv");
    CHECK(ctlcode_export_name("../../etc/passwd-aaaaaaaaaaaaaaaaaaaa", "", name, sizeof name) < 0);
    CHECK(ctlcode_export_name("4f40d591-1234-4abc-8def-0123456789a/", "", name, sizeof name) < 0);
    CHECK(ctlcode_export_name("", "", name, sizeof name) < 0);
    CHECK(ctlcode_export_name("4f40d591-1234-4abc-8def-0123456789ab", "x", name, 10) < 0);
    return check_done();
}
