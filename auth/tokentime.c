/* tokentime: refresh-ahead and retry-backoff arithmetic. Invariant: results stay inside
 * their documented ranges for any inputs, including NaN and out-of-range policy values. */
#include "tokentime.h"

#include <math.h>

void tokentime_policy_default(struct tokentime_policy *p)
{
    p->refresh_ratio = TOKENTIME_RATIO_DEFAULT;
    p->jitter = TOKENTIME_JITTER_DEFAULT;
    p->margin_s = TOKENTIME_MARGIN_DEFAULT;
    p->backoff_base_ms = TOKENTIME_BASE_MS_DEFAULT;
    p->backoff_cap_ms = TOKENTIME_CAP_MS_DEFAULT;
}

/* The policy with every out-of-range field replaced by its default. The comparisons are
 * written so that NaN fails them. */
static struct tokentime_policy sane(const struct tokentime_policy *in)
{
    struct tokentime_policy p;
    tokentime_policy_default(&p);
    if (!in)
        return p;
    if (in->refresh_ratio > 0 && in->refresh_ratio <= 1)
        p.refresh_ratio = in->refresh_ratio;
    if (in->jitter >= 0 && in->jitter < 1)
        p.jitter = in->jitter;
    if (in->margin_s >= 0 && in->margin_s <= 86400)
        p.margin_s = in->margin_s;
    if (in->backoff_base_ms >= 1 && in->backoff_cap_ms >= in->backoff_base_ms &&
        in->backoff_cap_ms <= 86400000) {
        p.backoff_base_ms = in->backoff_base_ms;
        p.backoff_cap_ms = in->backoff_cap_ms;
    }
    return p;
}

static double unit(double rnd)
{
    if (!(rnd >= 0))
        return 0;
    return rnd < 1 ? rnd : nextafter(1.0, 0.0);
}

int64_t tokentime_refresh_at(const struct tokentime_policy *pol, int64_t obtained_at,
                             int64_t expires_at, int64_t now, double rnd)
{
    struct tokentime_policy p = sane(pol);
    int64_t life, latest;
    if (expires_at <= obtained_at || __builtin_sub_overflow(expires_at, obtained_at, &life))
        return now;
    double frac = p.refresh_ratio - p.jitter * unit(rnd);
    double off_d = floor((double)life * (frac < 0 ? 0 : frac));
    /* (double)life may round up past life; compare before converting back. */
    int64_t off = off_d >= (double)life ? life : (int64_t)off_d;
    int64_t at = obtained_at + off; /* <= expires_at: no overflow */
    if (__builtin_sub_overflow(expires_at, p.margin_s, &latest))
        latest = obtained_at;
    if (at > latest)
        at = latest;
    if (at < obtained_at)
        at = obtained_at;
    return at < now ? now : at;
}

int tokentime_usable(const struct tokentime_policy *pol, int64_t expires_at, int64_t now)
{
    struct tokentime_policy p = sane(pol);
    if (now > INT64_MAX - p.margin_s)
        return 0;
    return expires_at > now + p.margin_s;
}

int64_t tokentime_backoff_ms(const struct tokentime_policy *pol, int attempt, double rnd)
{
    struct tokentime_policy p = sane(pol);
    int64_t d = p.backoff_base_ms;
    for (int i = 0; i < attempt && d < p.backoff_cap_ms; i++)
        d = d > p.backoff_cap_ms / 2 ? p.backoff_cap_ms : d * 2;
    if (d > p.backoff_cap_ms)
        d = p.backoff_cap_ms;
    int64_t half = d / 2;
    int64_t delay = half + (int64_t)floor((double)(d - half) * unit(rnd));
    return delay < 1 ? 1 : delay;
}
