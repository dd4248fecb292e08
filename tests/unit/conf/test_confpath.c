/* test_confpath: ${CREDENTIALS_DIRECTORY} expansion and relative paths (confpath_expand). */
#include <stdlib.h>

#include "check.h"
#include "confpath.h"

static void expect(const char *value, const char *base, const char *creds, const char *want)
{
    char *out = (char *)"unset";
    const char *why = "unset";

    CHECK(confpath_expand(value, base, creds, &out, &why) == 0);
    CHECK(why == NULL);
    CHECK_STR(out, want);
    free(out);
}

static void refuse(const char *value, const char *creds, const char *needle)
{
    char *out = (char *)"unset";
    const char *why = NULL;

    CHECK(confpath_expand(value, "/etc/fogate", creds, &out, &why) == -1);
    CHECK(out == NULL);
    CHECK(why && strstr(why, needle));
    if (why && !strstr(why, needle))
        fprintf(stderr, "%s: \"%s\" lacks \"%s\"\n", value, why, needle);
}

int main(void)
{
    const char *run = "/run/credentials/fogate.service";

    expect("${CREDENTIALS_DIRECTORY}/client-secret", "/etc/fogate", run,
           "/run/credentials/fogate.service/client-secret");
    expect("${CREDENTIALS_DIRECTORY}//redis-password", NULL, run,
           "/run/credentials/fogate.service/redis-password");
    expect("secrets/uat.secret", "/etc/fogate", run, "/etc/fogate/secrets/uat.secret");
    expect("secrets/uat.secret", NULL, NULL, "secrets/uat.secret");
    expect("/abs/key.pem", "/etc/fogate", NULL, "/abs/key.pem");
    /* a '$' without a brace is an ordinary file name character */
    expect("/etc/fogate/$weird", "/etc/fogate", NULL, "/etc/fogate/$weird");

    refuse("${CREDENTIALS_DIRECTORY}/x", NULL, "is not set");
    refuse("${CREDENTIALS_DIRECTORY}/x", "", "is not set");
    refuse("${CREDENTIALS_DIRECTORY}/x", "relative/dir", "absolute path");
    refuse("${CREDENTIALS_DIRECTORY}", run, "<credential name>");
    refuse("${CREDENTIALS_DIRECTORY}/", run, "<credential name>");
    refuse("${CREDENTIALS_DIRECTORY}x", run, "<credential name>");
    refuse("${CREDENTIALS_DIRECTORY}/a/${CREDENTIALS_DIRECTORY}", run, "<credential name>");
    refuse("${CREDENTIAL_DIRECTORY}/x", run, "only ${CREDENTIALS_DIRECTORY}");
    refuse("/etc/${HOME}/x", run, "only ${CREDENTIALS_DIRECTORY}");
    refuse("$CREDENTIALS_DIRECTORY/x${", run, "only ${CREDENTIALS_DIRECTORY}");
    return check_done();
}
