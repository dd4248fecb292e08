/* fuzz_dlrewrite: libFuzzer target for proxy/dlrewrite.c (dequeue bodies from D365).
 * Invariants on every input: a rewrite keeps every byte before and after the value it
 * replaced, the new value starts with the public base URL, and the result is a valid JSON
 * document whenever the input was one (checked with jansson). Without libFuzzer, replay.c's
 * main() replays corpus files; a file named rewrite-* must be rewritten, keep-* must not. */
#define _GNU_SOURCE /* memmem */
#include "dlrewrite.h"
#include "replay.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define BASE "https://gw.example.com"

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_dlrewrite: invariant broken: %s\n", why);
    abort();
}

static int one_input(const char *in, size_t len)
{
    char *out = NULL;
    size_t n = 0;
    enum dlrewrite_result r = dlrewrite(in, len, BASE, &out, &n);
    static const char want[] = "\"" BASE "/";

    if (r != DLREWRITE_REWRITTEN) {
        if (out)
            fail("output without a rewrite");
        return 0;
    }
    /* The output is n bytes and a NUL after them; bytes kept from the input may be NULs
     * too, so nothing here treats it as a C string. */
    if (!out || out[n] != '\0')
        fail("output length");
    size_t pre = 0;
    while (pre < len && pre < n && in[pre] == out[pre])
        pre++;
    if (pre >= n || out[pre] != '"' || n - pre < sizeof want - 1 ||
        memcmp(out + pre, want, sizeof want - 1) != 0) {
        /* the common prefix may run into the value when the old URL started the same way */
        if (!memmem(out, n, want, sizeof want - 1))
            fail("new value does not start with the base URL");
    }
    json_t *a = json_loadb(in, len, JSON_DECODE_ANY, NULL);
    json_t *b = json_loadb(out, n, JSON_DECODE_ANY, NULL);
    if (a && !b)
        fail("valid JSON became invalid");
    json_decref(a);
    json_decref(b);
    free(out);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input((const char *)data, size);
    return 0;
}

/* Seeds named rewrite-* must be rewritten, keep-* left alone. */
int replay_check(const char *name, const uint8_t *data, size_t size)
{
    int rewritten = one_input((const char *)data, size);

    if ((strncmp(name, "rewrite-", 8) == 0 && !rewritten) ||
        (strncmp(name, "keep-", 5) == 0 && rewritten)) {
        fprintf(stderr, "%s: unexpected result %d\n", name, rewritten);
        return -1;
    }
    return 0;
}
