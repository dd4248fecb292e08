/* Unit tests for refresh scheduling and retry backoff arithmetic. */
#include "check.h"
#include "tokentime.h"

#include <math.h>
#include <stdint.h>

#define T0 1700000000LL

static void test_refresh_at(void)
{
    struct tokentime_policy p;
    tokentime_policy_default(&p);
    /* 3600 s token: refresh at 75% without jitter, 65% with full jitter. */
    CHECK(tokentime_refresh_at(&p, T0, T0 + 3600, T0, 0.0) == T0 + 2700);
    CHECK(tokentime_refresh_at(&p, T0, T0 + 3600, T0, 0.5) == T0 + 2520);
    int64_t lo = tokentime_refresh_at(&p, T0, T0 + 3600, T0, 0.999999);
    CHECK(lo >= T0 + 2340 && lo <= T0 + 2341);
    /* Deterministic. */
    CHECK(tokentime_refresh_at(&p, T0, T0 + 3600, T0, 0.3) ==
          tokentime_refresh_at(&p, T0, T0 + 3600, T0, 0.3));
    /* Monotone in rnd: more jitter, earlier. */
    int64_t prev = INT64_MAX;
    int mono = 1;
    for (double r = 0; r < 1; r += 0.01) {
        int64_t at = tokentime_refresh_at(&p, T0, T0 + 3600, T0, r);
        mono &= at <= prev && at >= T0 + 2340 && at <= T0 + 2700;
        prev = at;
    }
    CHECK(mono);
    /* Overdue: due now. */
    CHECK(tokentime_refresh_at(&p, T0, T0 + 3600, T0 + 3000, 0.0) == T0 + 3000);
    CHECK(tokentime_refresh_at(&p, T0, T0 + 3600, T0 + 9999, 0.0) == T0 + 9999);
    /* Never after expires_at - margin: a 60 s token refreshes at once (margin 60). */
    CHECK(tokentime_refresh_at(&p, T0, T0 + 60, T0, 0.0) == T0);
    CHECK(tokentime_refresh_at(&p, T0, T0 + 200, T0, 0.0) == T0 + 140); /* 150 capped */
    p.margin_s = 0;
    CHECK(tokentime_refresh_at(&p, T0, T0 + 60, T0, 0.0) == T0 + 45);
    /* Ratio 1 and no jitter: at expiry minus margin. */
    p.refresh_ratio = 1.0;
    p.jitter = 0;
    p.margin_s = 10;
    CHECK(tokentime_refresh_at(&p, T0, T0 + 100, T0, 0.7) == T0 + 90);
    /* jitter > ratio cannot go before obtained_at. */
    p.refresh_ratio = 0.1;
    p.jitter = 0.9;
    CHECK(tokentime_refresh_at(&p, T0, T0 + 1000, T0 - 50, 0.99) == T0);
    /* Already expired or inverted: now. */
    tokentime_policy_default(&p);
    CHECK(tokentime_refresh_at(&p, T0, T0, T0 + 5, 0.1) == T0 + 5);
    CHECK(tokentime_refresh_at(&p, T0, T0 - 100, T0, 0.1) == T0);
}

static void test_refresh_edges(void)
{
    struct tokentime_policy p;
    tokentime_policy_default(&p);
    /* Bad policy values fall back to defaults. */
    struct tokentime_policy bad = {NAN, NAN, -5, 0, -1};
    CHECK(tokentime_refresh_at(&bad, T0, T0 + 3600, T0, 0.0) == T0 + 2700);
    bad.refresh_ratio = 1.5;
    bad.jitter = 1.0;
    CHECK(tokentime_refresh_at(&bad, T0, T0 + 3600, T0, 0.0) == T0 + 2700);
    bad.refresh_ratio = 0;
    bad.jitter = -0.1;
    CHECK(tokentime_refresh_at(&bad, T0, T0 + 3600, T0, 0.0) == T0 + 2700);
    CHECK(tokentime_refresh_at(NULL, T0, T0 + 3600, T0, 0.0) == T0 + 2700);
    /* Bad rnd is clamped into [0, 1). */
    CHECK(tokentime_refresh_at(&p, T0, T0 + 3600, T0, NAN) == T0 + 2700);
    CHECK(tokentime_refresh_at(&p, T0, T0 + 3600, T0, -3) == T0 + 2700);
    int64_t at = tokentime_refresh_at(&p, T0, T0 + 3600, T0, 7);
    CHECK(at >= T0 + 2340 && at <= T0 + 2341);
    /* Extreme clocks do not overflow. */
    CHECK(tokentime_refresh_at(&p, INT64_MIN, INT64_MAX, 0, 0.0) == 0);
    at = tokentime_refresh_at(&p, INT64_MAX - 100, INT64_MAX, 0, 0.0);
    CHECK(at == INT64_MAX - 60); /* 75 s in, pulled back to the margin */
    at = tokentime_refresh_at(&p, INT64_MIN, INT64_MIN + 100, INT64_MIN, 0.0);
    CHECK(at == INT64_MIN + 40);
    at = tokentime_refresh_at(&p, INT64_MIN, INT64_MIN + 10, INT64_MIN, 0.0);
    CHECK(at == INT64_MIN); /* expires_at - margin underflows: refresh at once */
    at = tokentime_refresh_at(&p, 0, INT64_MAX, 0, 0.0);
    CHECK(at > INT64_MAX / 4 * 2 && at <= INT64_MAX - 60);
}

static void test_usable(void)
{
    struct tokentime_policy p;
    tokentime_policy_default(&p); /* margin 60 */
    CHECK(tokentime_usable(&p, T0 + 3600, T0));
    CHECK(tokentime_usable(&p, T0 + 61, T0));
    CHECK(!tokentime_usable(&p, T0 + 60, T0));
    CHECK(!tokentime_usable(&p, T0 + 10, T0));
    CHECK(!tokentime_usable(&p, T0 - 10, T0));
    p.margin_s = 0;
    CHECK(tokentime_usable(&p, T0 + 1, T0));
    CHECK(!tokentime_usable(&p, T0, T0));
    CHECK(!tokentime_usable(&p, INT64_MAX, INT64_MAX));
    p.margin_s = 60;
    CHECK(!tokentime_usable(&p, INT64_MAX, INT64_MAX - 10));
    CHECK(tokentime_usable(&p, INT64_MAX, INT64_MAX - 61));
}

static void test_backoff(void)
{
    struct tokentime_policy p;
    tokentime_policy_default(&p); /* 500 ms base, 60 s cap */
    /* rnd 0 gives the lower half-point, rnd ~1 the top. */
    CHECK(tokentime_backoff_ms(&p, 0, 0.0) == 250);
    CHECK(tokentime_backoff_ms(&p, 0, 0.5) == 375);
    CHECK(tokentime_backoff_ms(&p, 0, 0.999999) == 499);
    CHECK(tokentime_backoff_ms(&p, 1, 0.0) == 500);
    CHECK(tokentime_backoff_ms(&p, 3, 0.0) == 2000);
    CHECK(tokentime_backoff_ms(&p, 6, 0.0) == 16000);
    CHECK(tokentime_backoff_ms(&p, 7, 0.0) == 30000); /* 64000 capped to 60000 */
    CHECK(tokentime_backoff_ms(&p, 7, 0.999999) == 59999);
    CHECK(tokentime_backoff_ms(&p, 1000, 0.5) == 45000);
    CHECK(tokentime_backoff_ms(&p, 2147483647, 0.0) == 30000);
    CHECK(tokentime_backoff_ms(&p, -4, 0.0) == 250);
    CHECK(tokentime_backoff_ms(&p, 2, NAN) == 1000);
    CHECK(tokentime_backoff_ms(&p, 2, 5.0) == 1999);
    /* Range and monotonicity of the ceiling over attempts. */
    int ok = 1;
    for (int a = 0; a < 40; a++)
        for (double r = 0; r < 1; r += 0.125) {
            int64_t d = tokentime_backoff_ms(&p, a, r);
            ok &= d >= 1 && d <= p.backoff_cap_ms;
            ok &= tokentime_backoff_ms(&p, a + 1, r) >= d;
        }
    CHECK(ok);
    /* Tiny base never gives 0. */
    p.backoff_base_ms = 1;
    p.backoff_cap_ms = 1;
    CHECK(tokentime_backoff_ms(&p, 0, 0.0) == 1 && tokentime_backoff_ms(&p, 9, 0.9) == 1);
    /* Odd cap, big base equal to cap. */
    p.backoff_base_ms = 7;
    p.backoff_cap_ms = 7;
    CHECK(tokentime_backoff_ms(&p, 5, 0.0) == 3 && tokentime_backoff_ms(&p, 5, 0.99) == 6);
    /* Invalid backoff settings fall back to the defaults. */
    p.backoff_base_ms = 100;
    p.backoff_cap_ms = 50;
    CHECK(tokentime_backoff_ms(&p, 0, 0.0) == 250);
    p.backoff_base_ms = 0;
    p.backoff_cap_ms = 100;
    CHECK(tokentime_backoff_ms(&p, 0, 0.0) == 250);
}

int main(void)
{
    test_refresh_at();
    test_refresh_edges();
    test_usable();
    test_backoff();
    return check_done();
}
