/* rbackoff: capped, jittered exponential backoff (see rbackoff.h). */
#include "rbackoff.h"

unsigned rbackoff_delay_ms(unsigned min_ms, unsigned max_ms, unsigned attempt, uint32_t rnd)
{
    uint64_t base = min_ms ? min_ms : 1;

    if (max_ms < base)
        max_ms = (unsigned)base;
    for (unsigned i = 0; i < attempt && base < max_ms; i++)
        base *= 2;
    if (base > max_ms)
        base = max_ms;
    uint64_t half = base / 2;
    return (unsigned)(base - half + rnd % (half + 1));
}

uint32_t rbackoff_rand(uint32_t *state)
{
    uint32_t x = *state ? *state : 0x9e3779b9u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}
