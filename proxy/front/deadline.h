/* deadline: one libevent timer carrying one moving deadline (head, idle, body...).
 * Invariant: the timer is re-armed only when the deadline moves earlier; a deadline that
 * moved later is picked up when the timer fires, so pushing it per request costs nothing. */
#ifndef FOGATE_DEADLINE_H
#define FOGATE_DEADLINE_H

#include <stdint.h>

#include <event2/event.h>

struct deadline {
    struct event *ev;    /* owned */
    int64_t at_us;       /* the deadline (monotonic microseconds) when kind != 0 */
    int64_t armed_us;    /* when the timer fires; 0 when it is not pending */
    int kind;            /* the caller's tag for what expires; 0 = no deadline */
};

/* Microseconds of CLOCK_MONOTONIC (a vDSO call, no syscall). */
int64_t deadline_now_us(void);

/* Sets up `d` (embedded by the caller) with a timer on `base` (borrowed) that calls
 * cb(-1, EV_TIMEOUT, arg). Returns 0, or -1 on allocation failure. */
int deadline_init(struct deadline *d, struct event_base *base, event_callback_fn cb, void *arg);

/* Frees the timer but keeps the deadline (a parked connection waits without one; at the
 * end, the only cleanup needed). Safe on a zeroed or already suspended struct. */
void deadline_suspend(struct deadline *d);

/* Makes the timer again (as deadline_init) and arms it for the deadline kept by
 * deadline_suspend, if any; on a zeroed struct, the same as deadline_init. Returns 0, or
 * -1 on allocation failure. */
int deadline_resume(struct deadline *d, struct event_base *base, event_callback_fn cb,
                    void *arg);

/* Milliseconds until the deadline (0 when it has passed); 0 when there is none. */
unsigned deadline_left_ms(const struct deadline *d);

/* Sets the deadline to now + ms, tagged `kind` (> 0). */
void deadline_set(struct deadline *d, int kind, unsigned ms);

/* No deadline (the timer may still fire once; deadline_fired then returns 0). */
void deadline_clear(struct deadline *d);

/* Call first in the timer callback. Returns the kind that has expired (and clears it), or
 * 0 when there is none: cleared, or moved later (the timer is re-armed for it). */
int deadline_fired(struct deadline *d);

#endif
