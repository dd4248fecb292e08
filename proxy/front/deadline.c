/* deadline: a lazily re-armed timer. */
#include "deadline.h"

#include <time.h>

int64_t deadline_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void arm(struct deadline *d, int64_t now)
{
    int64_t left = d->at_us > now ? d->at_us - now : 0;
    struct timeval tv = { .tv_sec = left / 1000000, .tv_usec = left % 1000000 };

    evtimer_add(d->ev, &tv);
    d->armed_us = d->at_us;
}

void deadline_suspend(struct deadline *d)
{
    if (d->ev)
        event_free(d->ev);
    d->ev = NULL;
    d->armed_us = 0;
}

int deadline_resume(struct deadline *d, struct event_base *base, event_callback_fn cb,
                    void *arg)
{
    d->armed_us = 0;
    d->ev = evtimer_new(base, cb, arg);
    if (!d->ev)
        return -1;
    if (d->kind)
        arm(d, deadline_now_us());
    return 0;
}

int deadline_init(struct deadline *d, struct event_base *base, event_callback_fn cb, void *arg)
{
    *d = (struct deadline){ 0 };
    return deadline_resume(d, base, cb, arg);
}

unsigned deadline_left_ms(const struct deadline *d)
{
    int64_t left = d->kind ? d->at_us - deadline_now_us() : 0;

    return left > 0 ? (unsigned)((left + 999) / 1000) : 0;
}

void deadline_set(struct deadline *d, int kind, unsigned ms)
{
    int64_t now = deadline_now_us();

    d->kind = kind;
    d->at_us = now + (int64_t)ms * 1000;
    if (!d->armed_us || d->at_us < d->armed_us)
        arm(d, now);
}

void deadline_clear(struct deadline *d)
{
    d->kind = 0;
}

int deadline_fired(struct deadline *d)
{
    int64_t now = deadline_now_us();
    int kind = d->kind;

    d->armed_us = 0;
    if (!kind)
        return 0;
    if (now < d->at_us) {
        arm(d, now);
        return 0;
    }
    d->kind = 0;
    return kind;
}
