/* test_packageidem: reserve, pending, complete/replay, drop, TTL, cap, long keys. */
#include <string.h>

#include "check.h"
#include "packageidem.h"

int main(void)
{
    struct packageidem *pi = packageidem_new(2, 100);
    unsigned char sha[32], sha2[32];
    const char *id = NULL;
    const unsigned char *s = NULL;
    char longkey[400];

    memset(sha, 0xab, sizeof sha);
    memset(sha2, 0xcd, sizeof sha2);
    CHECK(pi != NULL);
    CHECK(packageidem_begin(pi, "job", "k1", "e1", 0, &id, &s) == PACKAGEIDEM_NEW);
    CHECK(packageidem_begin(pi, "job", "k1", "e2", 1, &id, &s) == PACKAGEIDEM_PENDING);
    packageidem_complete(pi, "job", "k1", sha);
    CHECK(packageidem_begin(pi, "job", "k1", "e3", 2, &id, &s) == PACKAGEIDEM_DONE);
    CHECK_STR(id, "e1");
    CHECK(s && memcmp(s, sha, 32) == 0);
    /* the same key in another scope is another record; the cap is 2 */
    CHECK(packageidem_begin(pi, "other", "k1", "e4", 3, &id, &s) == PACKAGEIDEM_NEW);
    CHECK(packageidem_begin(pi, "job", "k2", "e5", 4, &id, &s) == PACKAGEIDEM_FULL);
    /* a failed import drops its reservation and frees the slot */
    packageidem_drop(pi, "other", "k1");
    CHECK(packageidem_count(pi) == 1);
    CHECK(packageidem_begin(pi, "job", "k2", "e5", 5, &id, &s) == PACKAGEIDEM_NEW);
    packageidem_complete(pi, "job", "k2", sha2);
    /* after the TTL a key is new again, and expired slots are reused */
    CHECK(packageidem_begin(pi, "job", "k1", "e6", 101, &id, &s) == PACKAGEIDEM_NEW);
    CHECK(packageidem_begin(pi, "job", "k2", "e7", 50, &id, &s) == PACKAGEIDEM_DONE);
    CHECK_STR(id, "e5");
    CHECK(packageidem_begin(pi, "job", "k3", "e8", 106, &id, &s) == PACKAGEIDEM_NEW);
    memset(longkey, 'x', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    CHECK(packageidem_begin(pi, "job", longkey, "e9", 107, &id, &s) == PACKAGEIDEM_FULL);
    packageidem_free(pi);
    packageidem_free(NULL);
    return check_done();
}
