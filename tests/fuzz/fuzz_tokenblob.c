/* fuzz_tokenblob: libFuzzer target for auth/tokenblob.c's tokenblob_open, which reads
 * sealed tokens back from Redis (so from the network). Every input is tried twice: as the
 * base64 text Redis would return (it must open only if it is a real seal), and sealed as a
 * plaintext with the right key and context, which reaches the plaintext parser.
 * Invariants: an opened blob has a token of bearer characters, 0 < obtained < expires and a
 * 32-hex serial, and seals and opens again to the same fields. Seeds are plaintexts:
 * open-* must open, refuse-* must not. */
#include "tokenblob.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONTEXT "fogate-token-v1|prod|tenant|client|https://x.operations.dynamics.com"

static const unsigned char KEY[SEAL_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_tokenblob: invariant broken: %s\n", why);
    abort();
}

static void check_fields(const struct tokenblob *b)
{
    if (!b->token || b->token_len == 0 || strlen(b->token) != b->token_len)
        fail("token length");
    if (strspn(b->token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                         "-._~+/=") != b->token_len)
        fail("token holds a character a bearer token cannot");
    if (b->obtained_at <= 0 || b->expires_at <= b->obtained_at)
        fail("times out of order");
    if (strlen(b->serial) != TOKENBLOB_SERIAL_LEN ||
        strspn(b->serial, "0123456789abcdef") != TOKENBLOB_SERIAL_LEN)
        fail("serial");
}

/* Seals b again and opens the result: every field must survive the round trip. */
static void check_round_trip(const struct tokenblob *b)
{
    struct tokenblob again;
    size_t len = 0;
    char *text = tokenblob_seal(KEY, CONTEXT, b, &len);

    if (!text)
        fail("an opened blob does not seal again");
    if (tokenblob_open(KEY, CONTEXT, text, len, &again) != 0)
        fail("a fresh seal does not open");
    if (again.token_len != b->token_len || memcmp(again.token, b->token, b->token_len) != 0 ||
        again.obtained_at != b->obtained_at || again.expires_at != b->expires_at ||
        strcmp(again.serial, b->serial) != 0)
        fail("round trip changed a field");
    tokenblob_cleanup(&again);
    if (tokenblob_open(KEY, "fogate-token-v1|other", text, len, &again) == 0 || again.token)
        fail("a seal opened under another context");
    tokenblob_cleanup(&again);
    free(text);
}

/* Opens `text` as it came from Redis; returns 1 if it opened. */
static int open_text(const char *text, size_t len)
{
    struct tokenblob b;

    if (tokenblob_open(KEY, CONTEXT, text, len, &b) != 0) {
        if (b.token || b.token_len || b.obtained_at || b.expires_at || b.serial[0])
            fail("refused blob left fields set");
        return 0;
    }
    check_fields(&b);
    check_round_trip(&b);
    tokenblob_cleanup(&b);
    return 1;
}

/* Returns 1 if `plain` sealed under the right key and context opens. */
static int one_input(const uint8_t *plain, size_t len)
{
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;

    open_text((const char *)plain, len);
    if (seal_seal(KEY, CONTEXT, plain, len, SEAL_BASE64, &sealed, &sealed_len) != SEAL_OK)
        return 0; /* empty or larger than SEAL_PLAIN_MAX */
    int opened = open_text((const char *)sealed, sealed_len);
    if (sealed_len > 0) {
        sealed[sealed_len / 2] ^= 0x01; /* one flipped bit must never open */
        if (open_text((const char *)sealed, sealed_len))
            fail("a tampered blob opened");
    }
    free(sealed);
    return opened;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input(data, size);
    return 0;
}

int replay_check(const char *name, const uint8_t *data, size_t size)
{
    int opened = one_input(data, size);

    if ((strncmp(name, "open-", 5) == 0 && !opened) ||
        (strncmp(name, "refuse-", 7) == 0 && opened)) {
        fprintf(stderr, "%s: expected %s\n", name, opened ? "a refusal" : "it to open");
        return -1;
    }
    return 0;
}
