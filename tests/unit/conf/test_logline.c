/* Unit tests for logline: hand-built log line members parse as the JSON jansson would
 * write, and anything that does not fit or needs jansson clears `ok`. */
#include "check.h"
#include "logline.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The members wrapped in braces, parsed. */
static json_t *parse(const struct logline *o)
{
    char text[sizeof o->buf + 2];

    snprintf(text, sizeof text, "{%s}", o->buf);
    return json_loads(text, 0, NULL);
}

static void test_members(void)
{
    struct logline o;

    logline_init(&o);
    logline_str(&o, "s", "a\"b\\c", 5);
    logline_int(&o, "neg", -42);
    logline_int(&o, "min", INT64_MIN);
    logline_int(&o, "zero", 0);
    logline_uint(&o, "big", 4294967296u);
    logline_str(&o, "path", "/x?y=1 trailing", 4); /* only len bytes */
    logline_raw(&o, ",\"raw\":true", 11);
    CHECK(o.ok);
    CHECK_STR(o.buf, "\"s\":\"a\\\"b\\\\c\",\"neg\":-42,\"min\":-9223372036854775808,\"zero\":0,"
                     "\"big\":4294967296,\"path\":\"/x?y\",\"raw\":true");
    json_t *j = parse(&o);
    CHECK(j != NULL);
    CHECK_STR(json_string_value(json_object_get(j, "s")), "a\"b\\c");
    CHECK(json_integer_value(json_object_get(j, "neg")) == -42);
    CHECK(json_integer_value(json_object_get(j, "min")) == INT64_MIN);
    CHECK_STR(json_string_value(json_object_get(j, "path")), "/x?y");
    json_decref(j);
    logline_init(&o); /* beyond jansson's integers, still the right digits */
    logline_uint(&o, "max", UINT64_MAX);
    CHECK_STR(o.buf, "\"max\":18446744073709551615");
}

static void test_needs_jansson(void)
{
    struct logline o;

    logline_init(&o);
    logline_str(&o, "a", "ok", 2);
    logline_str(&o, "b", "tab\there", 8);
    CHECK(!o.ok);
    logline_init(&o);
    logline_str(&o, "b", "caf\xc3\xa9", 5);
    CHECK(!o.ok);
    logline_int(&o, "after", 1); /* nothing more once not ok */
    CHECK(strstr(o.buf, "after") == NULL);
}

static void test_overflow(void)
{
    struct logline o;
    char big[1000];

    memset(big, 'x', sizeof big);
    logline_init(&o);
    for (int i = 0; i < 3; i++)
        logline_str(&o, "k", big, sizeof big);
    CHECK(o.ok);
    logline_str(&o, "k", big, sizeof big); /* over 3072 bytes */
    CHECK(!o.ok);
    CHECK(o.n < sizeof o.buf && strlen(o.buf) == o.n);
}

/* Every byte value at every place of a 20-byte string (the eight-byte checks and the
 * tail): printable ASCII is copied as it is, quote and backslash are escaped, anything
 * else clears ok; the result parses back to the string. */
static void test_every_byte_everywhere(void)
{
    char s[20];
    int bad = 0;

    for (int c = 1; c < 256; c++)
        for (size_t at = 0; at < sizeof s; at++) {
            struct logline o;
            memset(s, 'a', sizeof s);
            s[at] = (char)c;
            logline_init(&o);
            logline_str(&o, "k", s, sizeof s);
            bool want = c >= 0x20 && c <= 0x7e;
            if (o.ok != want) {
                bad++;
                continue;
            }
            if (!want)
                continue;
            json_t *j = parse(&o);
            const char *back = json_string_value(json_object_get(j, "k"));
            if (!back || strlen(back) != sizeof s || memcmp(back, s, sizeof s) != 0)
                bad++;
            json_decref(j);
        }
    CHECK(bad == 0);
}

int main(void)
{
    test_members();
    test_every_byte_everywhere();
    test_needs_jansson();
    test_overflow();
    return check_done();
}
