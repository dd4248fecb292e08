/* test_simpleack: the in-memory store of original dequeue bodies awaiting an ack. */
#include "check.h"
#include "simpleack.h"

static void test_put_get(void)
{
    struct simpleack *s = simpleack_new(3, 16, 100);
    size_t len = 0;

    CHECK(simpleack_put(s, "job", "id1", "{\"a\":1}", 7, 0) == 0);
    const char *b = simpleack_get(s, "job", "id1", 1, &len);
    CHECK(b && len == 7 && memcmp(b, "{\"a\":1}", 7) == 0);
    CHECK(simpleack_get(s, "other", "id1", 1, &len) == NULL); /* job is part of the key */
    CHECK(simpleack_get(s, "job", "id2", 1, &len) == NULL);
    /* replace: newest body wins, count unchanged */
    CHECK(simpleack_put(s, "job", "id1", "xyz", 3, 2) == 0);
    CHECK(simpleack_count(s) == 1);
    b = simpleack_get(s, "job", "id1", 3, &len);
    CHECK(b && len == 3 && memcmp(b, "xyz", 3) == 0);
    /* byte for byte, NULs included */
    CHECK(simpleack_put(s, "job", "bin", "a\0b", 3, 3) == 0);
    b = simpleack_get(s, "job", "bin", 3, &len);
    CHECK(b && len == 3 && b[1] == '\0' && b[2] == 'b');
    /* cap on body size */
    CHECK(simpleack_put(s, "job", "big", "0123456789abcdefg", 17, 3) == -1);
    CHECK(simpleack_count(s) == 2);
    CHECK(simpleack_remove(s, "job", "id1") == 0);
    CHECK(simpleack_remove(s, "job", "id1") == -1);
    CHECK(simpleack_get(s, "job", "id1", 3, &len) == NULL);
    simpleack_free(s);
    simpleack_free(NULL);
}

static void test_cap_and_expiry(void)
{
    struct simpleack *s = simpleack_new(2, 16, 10);
    size_t len;

    simpleack_put(s, "j", "a", "1", 1, 0);
    simpleack_put(s, "j", "b", "2", 1, 1);
    simpleack_put(s, "j", "c", "3", 1, 2); /* full: the oldest (a) goes */
    CHECK(simpleack_count(s) == 2);
    CHECK(simpleack_get(s, "j", "a", 2, &len) == NULL);
    CHECK(simpleack_get(s, "j", "b", 2, &len) != NULL);
    CHECK(simpleack_get(s, "j", "c", 10.5, &len) != NULL);
    CHECK(simpleack_get(s, "j", "b", 11, &len) == NULL);   /* put at 1, ttl 10 */
    CHECK(simpleack_count(s) == 1);
    CHECK(simpleack_get(s, "j", "c", 12, &len) == NULL);
    CHECK(simpleack_count(s) == 0);
    simpleack_free(s);
}

int main(void)
{
    test_put_get();
    test_cap_and_expiry();
    return check_done();
}
