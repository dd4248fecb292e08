/* test_histrec: history keys, export ids, cursors, times, filters and the record JSON. */
#include <stdlib.h>

#include "check.h"
#include "histrec.h"

static void test_keys_and_ids(void)
{
    char k[HISTREC_KEY_SIZE], id[HISTREC_ID_SIZE], id2[HISTREC_ID_SIZE];
    char big[400];

    CHECK(histrec_key(k, "r", "abc", NULL) == 0);
    CHECK_STR(k, "fogate:hist:r:abc");
    CHECK(histrec_key(k, "m", "sim", "84a383c8-336d-45e4-9933-0c3e8bfb734a") == 0);
    CHECK_STR(k, "fogate:hist:m:sim:84a383c8-336d-45e4-9933-0c3e8bfb734a");
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK(histrec_key(k, "j", big, NULL) == -1);
    CHECK(histrec_export_id("sim", "m1", id) == 0);
    CHECK(strlen(id) == 32);
    CHECK(histrec_export_id("sim", "m1", id2) == 0);
    CHECK_STR(id, id2);
    CHECK(histrec_export_id("sim2", "m1", id2) == 0);
    CHECK(strcmp(id, id2) != 0);
}

static void test_cursor(void)
{
    char c[HISTREC_CURSOR_SIZE];
    struct histrec_filter f = { 0 };

    histrec_cursor_encode(1765108755123, "0123456789abcdef0123456789abcdef", c);
    CHECK(strlen(c) == HISTREC_CURSOR_SIZE - 1);
    CHECK(histrec_cursor_decode(c, &f) == 0);
    CHECK(f.has_cursor && f.cursor_score == 1765108755123);
    CHECK_STR(f.cursor_id, "0123456789abcdef0123456789abcdef");
    memset(&f, 0, sizeof f);
    CHECK(histrec_cursor_decode("zzz", &f) == -1 && !f.has_cursor);
    c[5] = 'g';
    CHECK(histrec_cursor_decode(c, &f) == -1);
    CHECK(histrec_cursor_decode("c8000000000000000123456789abcdef0123456789abcdef", &f) ==
          -1); /* negative score */
}

static void test_times(void)
{
    int64_t ms = 0;
    char buf[32];

    CHECK(histrec_time_parse("2026-12-07T11:00:00Z", &ms) == 0 && ms == 1796641200000LL);
    CHECK(histrec_time_parse("2026-12-07T11:00:00.250Z", &ms) == 0 && ms == 1796641200250LL);
    CHECK(histrec_time_parse("2026-12-07T11:00:00+00:00", &ms) == 0 && ms == 1796641200000LL);
    CHECK(histrec_time_parse("1796641200000", &ms) == 0 && ms == 1796641200000LL);
    CHECK(histrec_time_parse("2026-12-07T11:00:00+01:00", &ms) == -1);
    CHECK(histrec_time_parse("2026-13-07T11:00:00Z", &ms) == -1);
    CHECK(histrec_time_parse("yesterday", &ms) == -1);
    CHECK(histrec_time_parse("", &ms) == -1);
    histrec_time_format(1796641200250LL, buf, sizeof buf);
    CHECK_STR(buf, "2026-12-07T11:00:00.250Z");
}

static json_t *rec_of(size_t n, const char *const *names, const char *const *vals)
{
    size_t len[16];

    for (size_t i = 0; i < n; i++)
        len[i] = strlen(vals[i]);
    return histrec_json(n, names, vals, len);
}

static void test_json_and_match(void)
{
    const char *names[] = { "id", "dir", "file", "size", "status", "final", "received",
                            "events", "delivered_to", "errors", "nevents" };
    const char *vals[] = { "ab", "import", "orders-7.csv", "42", "Processed", "1",
                           "1796641200000",
                           "{\"status\":\"Enqueued\",\"at\":1796641200000},"
                           "{\"status\":\"Processed\",\"at\":1796641201000}",
                           "a,b", "[{\"x\":1}]", "2" };
    json_t *o = rec_of(11, names, vals);
    struct histrec_filter f = { 0 };

    CHECK(o != NULL);
    CHECK_STR(json_string_value(json_object_get(o, "direction")), "import");
    CHECK_STR(json_string_value(json_object_get(o, "file_name")), "orders-7.csv");
    CHECK(json_integer_value(json_object_get(o, "size")) == 42);
    CHECK(json_is_true(json_object_get(o, "final")));
    CHECK_STR(json_string_value(json_object_get(o, "received_at")), "2026-12-07T11:00:00.000Z");
    CHECK(json_array_size(json_object_get(o, "statuses")) == 2);
    CHECK_STR(json_string_value(json_object_get(json_array_get(json_object_get(o, "statuses"),
                                                               1), "at")),
              "2026-12-07T11:00:01.000Z");
    CHECK(json_array_size(json_object_get(o, "delivered_to")) == 2);
    CHECK(json_is_array(json_object_get(o, "errors")));
    CHECK(json_object_get(o, "nevents") == NULL); /* internal fields stay out */
    CHECK(histrec_match(&f, o));
    strcpy(f.status, "processed");
    CHECK(histrec_match(&f, o));
    strcpy(f.file, "ders-7");
    CHECK(histrec_match(&f, o));
    strcpy(f.file, "ders-8");
    CHECK(!histrec_match(&f, o));
    f.file[0] = '\0';
    strcpy(f.status, "Error");
    CHECK(!histrec_match(&f, o));
    json_decref(o);
    CHECK(histrec_json(0, NULL, NULL, NULL) == NULL);
    { /* a package export's definition group, a pass-through dequeue's time */
        const char *n3[] = { "group", "dequeued" }, *v3[] = { "Customers", "1796641200000" };
        json_t *q = rec_of(2, n3, v3);
        CHECK_STR(json_string_value(json_object_get(q, "definition_group")), "Customers");
        CHECK_STR(json_string_value(json_object_get(q, "dequeued_at")),
                  "2026-12-07T11:00:00.000Z");
        json_decref(q);
    }
    {
        const char *n2[] = { "errors" }, *v2[] = { "not json" };
        json_t *p = rec_of(1, n2, v2);
        CHECK_STR(json_string_value(json_object_get(p, "errors")), "not json");
        CHECK(json_is_false(json_object_get(p, "final")));
        json_decref(p);
    }
}

static void test_sign(void)
{
    char sig[HISTREC_SIG_SIZE];
    static const char body[] = "{\"a\":1}";

    /* python3: hmac.new(b'k3y', b'1700000000.' + body, 'sha256').hexdigest() */
    CHECK(histrec_sign((const unsigned char *)"k3y", 3, 1700000000LL, body, strlen(body), sig) ==
          0);
    CHECK_STR(sig, "t=1700000000,v1="
                   "fd5a70e965043f7df6309c2c3b5ff5a8ffa99b1f5175e9a311459e73c4634d4a");
    CHECK(histrec_sign((const unsigned char *)"k3y", 3, 1700000001LL, body, strlen(body), sig) ==
          0);
    CHECK(strstr(sig, "fd5a70e9") == NULL); /* the time is signed too */
}

int main(void)
{
    test_sign();
    test_keys_and_ids();
    test_cursor();
    test_times();
    test_json_and_match();
    return check_done();
}
