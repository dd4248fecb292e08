/* fuzz_tokenfed: libFuzzer target for auth/tokenfed.c (the federated assertion read from
 * client_assertion_file, whatever the file holds). Checks that the verdict agrees with
 * the exp it reports and with the clock, and is deterministic. Replayed seeds named
 * ok-*, expired-* or malformed-* must get that verdict at NOW. */
#include "tokenfed.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000LL

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_tokenfed: invariant broken: %s\n", why);
    abort();
}

static enum tokenfed_verdict one_input(const uint8_t *data, size_t size)
{
    size_t len = size;
    int64_t exp = -1, exp2 = -1;

    tokenfed_trim((const char *)data, &len);
    if (len > size || (len && strchr(" \t\r\n", data[len - 1])))
        fail("trim");
    enum tokenfed_verdict v = tokenfed_check((const char *)data, len, NOW, &exp);
    if (v == TOKENFED_MALFORMED && exp != 0)
        fail("malformed with an exp");
    if (v == TOKENFED_OK && exp <= NOW)
        fail("OK past its exp");
    if (v == TOKENFED_EXPIRED && (exp <= 0 || exp > NOW))
        fail("expired with a future exp");
    if (v != TOKENFED_MALFORMED && tokenfed_check((const char *)data, len, exp, &exp2) !=
                                       TOKENFED_EXPIRED)
        fail("not expired at its own exp");
    if (tokenfed_check((const char *)data, len, NOW, &exp2) != v || exp2 != exp)
        fail("not deterministic");
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input(data, size);
    return 0;
}

int replay_check(const char *name, const uint8_t *data, size_t size)
{
    static const char *const names[] = { "ok-", "malformed-", "expired-" };
    enum tokenfed_verdict v = one_input(data, size);

    for (int i = 0; i < 3; i++)
        if (strncmp(name, names[i], strlen(names[i])) == 0 && (int)v != i) {
            fprintf(stderr, "%s: expected %s got verdict %d\n", name, names[i], (int)v);
            return -1;
        }
    return 0;
}
