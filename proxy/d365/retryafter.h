/* retryafter: parses an HTTP Retry-After value (delta-seconds or an IMF-fixdate HTTP-date)
 * into whole seconds to wait, clamped to sane bounds. Pure: the current time is passed in.
 * Invariant: the result is always within [RETRYAFTER_MIN_S, RETRYAFTER_MAX_S]. */
#ifndef FOGATE_RETRYAFTER_H
#define FOGATE_RETRYAFTER_H

#include <stddef.h>
#include <time.h>

#define RETRYAFTER_MIN_S 1        /* a 429 always closes the gate for at least a second */
#define RETRYAFTER_MAX_S 3600     /* a larger value is taken as an hour */
#define RETRYAFTER_DEFAULT_S 30   /* absent or malformed (docs:PBT's sample default) */

/* Seconds to wait for `value` (NUL-terminated, borrowed; NULL = absent) received at unix
 * time `now`: "120" -> 120; "Wed, 21 Oct 2015 07:28:00 GMT" -> that date minus now (a
 * date in the past gives RETRYAFTER_MIN_S); absent or malformed -> RETRYAFTER_DEFAULT_S.
 * Sets *ok (if not NULL) to 1 when the value parsed, else 0. */
unsigned retryafter_seconds(const char *value, time_t now, int *ok);

/* Parses an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") into unix time. Returns 0, or
 * -1 if `s` is not exactly that form (weekday is checked only for being a known name). */
int retryafter_parse_date(const char *s, time_t *out);

#endif
