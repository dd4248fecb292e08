/* tokentime: token refresh scheduling arithmetic (when to refresh, whether a token may
 * still be sent, how long to wait before retrying a failed fetch). Pure: the caller
 * passes the clock and the random numbers, so every result is reproducible. */
#ifndef FOGATE_TOKENTIME_H
#define FOGATE_TOKENTIME_H

#include <stdint.h>

/* The knobs. Out-of-range values are replaced by the defaults below (never rejected),
 * so a bad config cannot make refresh arithmetic misbehave; conf validates separately. */
struct tokentime_policy {
    double refresh_ratio;    /* refresh after this fraction of the lifetime, (0, 1] */
    double jitter;           /* refresh up to this fraction of the lifetime earlier, [0, 1) */
    int64_t margin_s;        /* never send a token expiring within this many seconds, >= 0 */
    int64_t backoff_base_ms; /* first retry delay, >= 1 */
    int64_t backoff_cap_ms;  /* largest retry delay, >= backoff_base_ms */
};

#define TOKENTIME_RATIO_DEFAULT 0.75
#define TOKENTIME_JITTER_DEFAULT 0.10
#define TOKENTIME_MARGIN_DEFAULT 60   /* RIS re-acquires at 60 s left (d365 spec §2.3) */
#define TOKENTIME_BASE_MS_DEFAULT 500
#define TOKENTIME_CAP_MS_DEFAULT 60000

/* Fills *p with the defaults above. */
void tokentime_policy_default(struct tokentime_policy *p);

/* When to refresh a token obtained at `obtained_at` that expires at `expires_at` (unix s):
 *   obtained_at + lifetime * (refresh_ratio - jitter * rnd)
 * moved earlier to expires_at - margin_s if later than that (so the token is refreshed
 * before it stops being usable), never before obtained_at, and never before `now`
 * (an overdue refresh is due now). `rnd` is a random value in [0, 1) (others are clamped).
 * Returns absolute unix seconds >= now. */
int64_t tokentime_refresh_at(const struct tokentime_policy *p, int64_t obtained_at,
                             int64_t expires_at, int64_t now, double rnd);

/* 1 if a token expiring at `expires_at` may be sent at `now`: it must stay valid for more
 * than margin_s seconds. 0 otherwise. */
int tokentime_usable(const struct tokentime_policy *p, int64_t expires_at, int64_t now);

/* Delay in ms before retry number `attempt` (0 = first retry) of a failed fetch:
 * d = min(cap, base * 2^attempt), then "equal jitter": d/2 + (d/2) * rnd, i.e. in
 * [d/2, d). Never below 1 ms, never above the cap. Negative attempts count as 0. */
int64_t tokentime_backoff_ms(const struct tokentime_policy *p, int attempt, double rnd);

#endif
