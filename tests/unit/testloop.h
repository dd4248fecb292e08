/* testloop: driving a libevent loop from a unit test: spin it for a while, or until a
 * condition holds. Header only (static inline), so fogate_testproc stays libevent-free;
 * include it from tests that link libevent. Invariant: every wait has a deadline. */
#ifndef FOGATE_TESTLOOP_H
#define FOGATE_TESTLOOP_H

#include "testproc.h"

#include <event2/event.h>

/* Runs `base` (borrowed) for ms milliseconds, dispatching whatever is due. */
static inline void testloop_spin_ms(struct event_base *base, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

/* Runs `base` in steps of step_ms until cond holds or ms pass; evaluates to cond. */
#define TESTLOOP_WAIT_FOR(base, cond, ms, step_ms)                         \
    ({                                                                     \
        long long end_ = testproc_now_ms() + (ms);                         \
        while (!(cond) && testproc_now_ms() < end_)                        \
            testloop_spin_ms((base), (step_ms));                           \
        (cond);                                                            \
    })

#endif
