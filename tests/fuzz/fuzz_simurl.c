/* fuzz_simurl: libFuzzer target for tests/sim/simurl.c (percent-decoding of query strings
 * and form bodies the simulator receives). Input: "<query or form>\n<name>" (no "\n":
 * the whole input is the query and the name is "grant_type").
 * Invariants: decoding never writes past its cap and fits exactly in (decoded length + 1)
 * bytes; encoding then decoding gives the original bytes back, and the encoding uses only
 * unreserved characters and %XX; a found parameter fits its cap. Seeds: found-* must find
 * the name, absent-* must not. */
#include "simurl.h"
#include "replay.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_CAP 64

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_simurl: invariant broken: %s\n", why);
    abort();
}

static void check_encoding(const char *plain, size_t len)
{
    size_t cap = 3 * len + 1;
    char *enc = malloc(cap), *back = malloc(len + 1);

    if (!enc || !back)
        fail("out of memory");
    if (simurl_encode(plain, enc, cap) != 0)
        fail("encoding does not fit in 3*len+1");
    for (const char *p = enc; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("-_.~%", *p))
            fail("encoding holds a reserved character");
    long n = simurl_decode(enc, strlen(enc), back, len + 1, 0);
    if (n != (long)len || memcmp(back, plain, len) != 0)
        fail("encode then decode changed the bytes");
    if (len > 0 && simurl_encode(plain, enc, strlen(enc)) == 0)
        fail("encoding fitted a cap one byte too small");
    free(enc);
    free(back);
}

static void check_decoding(const char *in, size_t len)
{
    char *out = malloc(len + 1);

    if (!out)
        fail("out of memory");
    for (int plus = 0; plus <= 1; plus++) {
        long n = simurl_decode(in, len, out, len + 1, plus);
        if (n < 0 || (size_t)n > len || out[n] != '\0')
            fail("decoded text longer than its input or not terminated");
        if (simurl_decode(in, len, out, (size_t)n, plus) != -1)
            fail("decoding fitted a cap one byte too small");
        if (plus == 1)
            check_encoding(out, strlen(out));
    }
    free(out);
}

/* Returns simurl_param's result for the input's query and name. */
static int one_input(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), value[VALUE_CAP + 8];

    if (!buf)
        fail("out of memory");
    memcpy(buf, data, size);
    buf[size] = '\0';
    check_decoding(buf, size);
    char *nl = strchr(buf, '\n');
    const char *name = nl ? nl + 1 : "grant_type";
    if (nl)
        *nl = '\0';
    memset(value, 'Z', sizeof value);
    int rc = simurl_param(buf, name, 1, value, VALUE_CAP);
    if (rc < -1 || rc > 1 || value[VALUE_CAP] != 'Z')
        fail("param result or cap");
    if (rc == 1 && strlen(value) >= VALUE_CAP)
        fail("found value not terminated within its cap");
    if (rc == 1 && simurl_param(buf, name, 0, value, VALUE_CAP) == 1 &&
        simurl_param(buf, name, 1, value, VALUE_CAP) != 1)
        fail("case-sensitive match without a case-insensitive one");
    free(buf);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one_input(data, size);
    return 0;
}

int replay_check(const char *name, const uint8_t *data, size_t size)
{
    int rc = one_input(data, size);

    if ((strncmp(name, "found-", 6) == 0 && rc != 1) ||
        (strncmp(name, "absent-", 7) == 0 && rc != 0)) {
        fprintf(stderr, "%s: unexpected result %d\n", name, rc);
        return -1;
    }
    return 0;
}
