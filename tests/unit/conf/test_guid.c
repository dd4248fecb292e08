/* Unit tests for the GUID canonicaliser (activity IDs in every client spelling). */
#include "check.h"
#include "guid.h"

static void test_guid(void)
{
    char out[GUID_CANON_SIZE];
    static const char *const good[] = {
        "6d31e09f-0249-459f-94f0-aad9c2c47b64", "6D31E09F-0249-459F-94F0-AAD9C2C47B64",
        "{6D31E09F-0249-459F-94F0-AAD9C2C47B64}", "%7B6D31E09F-0249-459F-94F0-AAD9C2C47B64%7D",
        "%7b6d31e09f-0249-459f-94f0-aad9c2c47b64%7d", "{6d31e09f-0249-459f-94f0-aad9c2c47b64%7D",
    };
    static const char *const bad[] = {
        "", "{}", "6d31e09f0249459f94f0aad9c2c47b64", "{6d31e09f-0249-459f-94f0-aad9c2c47b64",
        "6d31e09f-0249-459f-94f0-aad9c2c47b64}", "%7B6d31e09f-0249-459f-94f0-aad9c2c47b64",
        "6d31e09f-0249-459f-94f0-aad9c2c47b6g", "6d31e09f-0249-459f-94f0-aad9c2c47b6",
        "6d31e09f-0249-459f-94f0-aad9c2c47b645", "6d31e09f_0249-459f-94f0-aad9c2c47b64",
        "6d31e09f-0249-459f-94f0aaad9c2c47b64", "(6d31e09f-0249-459f-94f0-aad9c2c47b64)",
        " 6d31e09f-0249-459f-94f0-aad9c2c47b64", "%7B%7D", "%7",
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        CHECK(guid_canonical(good[i], strlen(good[i]), out) == 0);
        CHECK_STR(out, "6d31e09f-0249-459f-94f0-aad9c2c47b64");
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (guid_canonical(bad[i], strlen(bad[i]), out) == 0)
            fprintf(stderr, "guid accepted: \"%s\"\n", bad[i]);
        CHECK(guid_canonical(bad[i], strlen(bad[i]), out) == -1 && out[0] == '\0');
    }
    /* length-bounded: a path segment inside a longer string */
    const char *seg = "%7B6D31E09F-0249-459F-94F0-AAD9C2C47B64%7D/more";
    CHECK(guid_canonical(seg, 42, out) == 0);
    CHECK(guid_canonical(NULL, 36, out) == -1);
    CHECK(guid_equal(good[1], 36, good[3], strlen(good[3])));
    CHECK(!guid_equal(good[0], 36, bad[7], strlen(bad[7])));
}

int main(void)
{
    test_guid();
    return check_done();
}
