/* rbackoff: the delay before the next Redis reconnect attempt. Pure arithmetic: the caller
 * supplies the attempt number and the random bits, so the result is reproducible. */
#ifndef FOGATE_RBACKOFF_H
#define FOGATE_RBACKOFF_H

#include <stdint.h>

/* Delay in ms before attempt `attempt` (0 = first retry): the base doubles from min_ms and
 * is capped at max_ms; the result is "equal jitter", uniform in [base/2, base] from `rnd`.
 * max_ms < min_ms is treated as max_ms = min_ms. */
unsigned rbackoff_delay_ms(unsigned min_ms, unsigned max_ms, unsigned attempt, uint32_t rnd);

/* Advances a xorshift32 state (never 0) and returns the new value. Not for secrets. */
uint32_t rbackoff_rand(uint32_t *state);

#endif
