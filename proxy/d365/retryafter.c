/* retryafter: Retry-After parsing (RFC 9110 §10.2.3) with clamping; no I/O. */
#include "retryafter.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char *const months[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
static const char *const days[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };

static bool digits(const char *s, size_t n, long *out)
{
    long v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int index_of(const char *const *names, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (memcmp(names[i], s, 3) == 0)
            return i;
    return -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int retryafter_parse_date(const char *s, time_t *out)
{
    /* "Sun, 06 Nov 1994 08:49:37 GMT": 29 bytes, fixed positions */
    long day, year, hh, mm, ss;
    int mon;

    if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || s[25] != ' ' ||
        memcmp(s + 26, "GMT", 3) != 0 || index_of(days, 7, s) < 0)
        return -1;
    mon = index_of(months, 12, s + 8);
    if (mon < 0 || !digits(s + 5, 2, &day) || !digits(s + 12, 4, &year) ||
        !digits(s + 17, 2, &hh) || !digits(s + 20, 2, &mm) || !digits(s + 23, 2, &ss))
        return -1;
    if (day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 || year < 1970)
        return -1;
    *out = (time_t)(days_from_civil(year, (unsigned)mon + 1, (unsigned)day) * 86400 +
                    hh * 3600 + mm * 60 + ss);
    return 0;
}

static unsigned clamp(int64_t v)
{
    if (v < RETRYAFTER_MIN_S)
        return RETRYAFTER_MIN_S;
    if (v > RETRYAFTER_MAX_S)
        return RETRYAFTER_MAX_S;
    return (unsigned)v;
}

unsigned retryafter_seconds(const char *value, time_t now, int *ok)
{
    size_t n = value ? strlen(value) : 0;
    time_t when;
    long v;

    if (ok)
        *ok = 0;
    if (n == 0)
        return RETRYAFTER_DEFAULT_S;
    if (n <= 10 && digits(value, n, &v)) {
        if (ok)
            *ok = 1;
        return clamp(v);
    }
    if (n > 10 && value[0] >= '0' && value[0] <= '9' && strspn(value, "0123456789") == n) {
        if (ok)
            *ok = 1; /* absurdly many seconds */
        return RETRYAFTER_MAX_S;
    }
    if (retryafter_parse_date(value, &when) < 0)
        return RETRYAFTER_DEFAULT_S;
    if (ok)
        *ok = 1;
    return clamp((int64_t)when - (int64_t)now);
}
