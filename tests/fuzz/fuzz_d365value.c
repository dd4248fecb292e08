/* fuzz_d365value: libFuzzer target for d365parse_value_string (D365's answers to the
 * status actions). Its flat path reads the usual answer without jansson; on every input
 * the result must be the one jansson gives (the object's "value" member: a string, "" for
 * null, NULL otherwise or when the input is not a JSON object without duplicate keys).
 * Without libFuzzer, replay.c's main() replays the corpus (every seed: the same check). */
#include "d365parse.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static char *reference(const char *in, size_t len, size_t *out_len)
{
    json_t *root = json_loadb(in, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *v = json_is_object(root) ? json_object_get(root, "value") : NULL;
    char *out = NULL;

    *out_len = 0;
    if (json_is_string(v)) {
        *out_len = json_string_length(v);
        if ((out = malloc(*out_len + 1)))
            memcpy(out, json_string_value(v), *out_len + 1);
    } else if (json_is_null(v)) {
        out = calloc(1, 1);
    }
    json_decref(root);
    return out;
}

static void check(const char *in, size_t len)
{
    size_t rl;
    char *got = d365parse_value_string(in, len), *want = reference(in, len, &rl);

    /* d365parse_value_string stops a value at an escaped NUL (strndup), like before */
    if (!got != !want || (got && strncmp(got, want, rl + 1) != 0)) {
        fprintf(stderr, "fuzz_d365value: got %s, jansson %s\n", got ? got : "(null)",
                want ? want : "(null)");
        abort();
    }
    free(got);
    free(want);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check((const char *)data, size);
    return 0;
}

int replay_check(const char *name, const uint8_t *data, size_t size)
{
    (void)name;
    check((const char *)data, size);
    return 0;
}
