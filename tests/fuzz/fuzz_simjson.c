/* fuzz_simjson: libFuzzer target for tests/sim/simjson.c (the simulator's lenient JSON,
 * single-quoted strings as D365's OData reader takes them; its input is whatever fogate
 * or a test sends). Invariants: valid JSON parses to exactly what jansson makes of it;
 * text without a single quote is never rescued; every member of a parsed object is found
 * again by the case-insensitive lookup. Seeds: accept-* must parse, reject-* must not. */
#include "simjson.h"
#include "replay.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_simjson: invariant broken: %s\n", why);
    abort();
}

static void check_lookup(json_t *obj)
{
    const char *key;
    json_t *val;

    json_object_foreach(obj, key, val) {
        /* a case-insensitive twin ("a" and "A") may be found first: any match will do */
        json_t *found = simjson_get_ci(obj, key);
        if (!found)
            fail("member not found again");
        if (simjson_str_ci(obj, key) != json_string_value(found))
            fail("string lookup differs from the member lookup");
    }
}

/* Returns 1 if the text parsed (leniently). */
static int one_input(const char *text, size_t len)
{
    json_t *strict = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    json_t *lenient = simjson_lenient_load(text, len);

    if (strict && (!lenient || !json_equal(strict, lenient)))
        fail("valid JSON parsed differently");
    if (!strict && lenient && !memchr(text, '\'', len))
        fail("text without a single quote was rescued");
    if (json_is_object(lenient))
        check_lookup(lenient);
    if (simjson_get_ci(lenient, "x") && !json_is_object(lenient))
        fail("lookup in a non-object");
    int ok = lenient != NULL;
    json_decref(strict);
    json_decref(lenient);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input((const char *)data, size);
    return 0;
}

int replay_check(const char *name, const uint8_t *data, size_t size)
{
    int parsed = one_input((const char *)data, size);

    if ((strncmp(name, "accept-", 7) == 0 && !parsed) ||
        (strncmp(name, "reject-", 7) == 0 && parsed)) {
        fprintf(stderr, "%s: expected %s\n", name, parsed ? "a refusal" : "a parse");
        return -1;
    }
    return 0;
}
