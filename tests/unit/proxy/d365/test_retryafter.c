/* test_retryafter: delta-seconds, HTTP dates, clamping and malformed values. */
#include "check.h"
#include "retryafter.h"

int main(void)
{
    time_t t;
    int ok;

    /* 1994-11-06 08:49:37 UTC = 784111777 */
    CHECK(retryafter_parse_date("Sun, 06 Nov 1994 08:49:37 GMT", &t) == 0 && t == 784111777);
    CHECK(retryafter_parse_date("Thu, 01 Jan 1970 00:00:00 GMT", &t) == 0 && t == 0);
    CHECK(retryafter_parse_date("Tue, 29 Feb 2028 23:59:59 GMT", &t) == 0 && t == 1835481599);
    CHECK(retryafter_parse_date("Sun, 06 Nov 1994 08:49:37 UTC", &t) == -1);
    CHECK(retryafter_parse_date("Sunday, 06-Nov-94 08:49:37 GMT", &t) == -1);
    CHECK(retryafter_parse_date("Sun, 06 Foo 1994 08:49:37 GMT", &t) == -1);
    CHECK(retryafter_parse_date("Sun, 06 Nov 1994 24:49:37 GMT", &t) == -1);
    CHECK(retryafter_parse_date("Sun, 6 Nov 1994 08:49:37 GMT", &t) == -1);
    CHECK(retryafter_parse_date("", &t) == -1);

    CHECK(retryafter_seconds("120", 0, &ok) == 120 && ok == 1);
    CHECK(retryafter_seconds("1", 0, &ok) == 1 && ok == 1);
    CHECK(retryafter_seconds("0", 0, &ok) == RETRYAFTER_MIN_S && ok == 1);
    CHECK(retryafter_seconds("99999", 0, &ok) == RETRYAFTER_MAX_S && ok == 1);
    CHECK(retryafter_seconds("99999999999999999999999", 0, &ok) == RETRYAFTER_MAX_S && ok == 1);
    CHECK(retryafter_seconds(NULL, 0, &ok) == RETRYAFTER_DEFAULT_S && ok == 0);
    CHECK(retryafter_seconds("", 0, &ok) == RETRYAFTER_DEFAULT_S && ok == 0);
    CHECK(retryafter_seconds("-5", 0, &ok) == RETRYAFTER_DEFAULT_S && ok == 0);
    CHECK(retryafter_seconds("1.5", 0, &ok) == RETRYAFTER_DEFAULT_S && ok == 0);
    CHECK(retryafter_seconds("soon", 0, &ok) == RETRYAFTER_DEFAULT_S && ok == 0);
    CHECK(retryafter_seconds("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 42, &ok) == 42 &&
          ok == 1);
    CHECK(retryafter_seconds("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 + 500, &ok) ==
          RETRYAFTER_MIN_S);
    CHECK(retryafter_seconds("Sun, 06 Nov 1994 08:49:37 GMT", 784111777 - 999999, NULL) ==
          RETRYAFTER_MAX_S);
    return check_done();
}
