/* test_deadline: the lazily re-armed timer on a real event loop: a deadline pushed later
 * fires once, at the later time; one pulled earlier fires at the earlier time; a deadline
 * kept while its timer is suspended (a parked connection) fires when it was due. */
#include <time.h>

#include "check.h"
#include "deadline.h"

struct probe {
    struct deadline dl;
    struct event_base *base;
    int kind;             /* what fired */
    int wakeups;          /* timer callbacks, including re-arms */
    int64_t fired_at;
};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    int kind = deadline_fired(&p->dl);

    p->wakeups++;
    if (kind) {
        p->kind = kind;
        p->fired_at = deadline_now_us();
        event_base_loopbreak(p->base);
    }
}

static int64_t run(struct probe *p)
{
    int64_t t0 = deadline_now_us();
    event_base_dispatch(p->base);
    return (p->fired_at - t0) / 1000;
}

int main(void)
{
    struct probe p = { .base = event_base_new() };
    CHECK(deadline_init(&p.dl, p.base, on_timer, &p) == 0);

    /* later: the timer stays armed for 50 ms, wakes once, re-arms, fires at 150 ms */
    deadline_set(&p.dl, 1, 50);
    deadline_set(&p.dl, 2, 150);
    int64_t ms = run(&p);
    CHECK(p.kind == 2);
    CHECK(ms >= 140 && ms < 400);
    CHECK(p.wakeups == 2);

    /* earlier: re-armed at once, fires at 30 ms */
    p.kind = 0;
    p.wakeups = 0;
    deadline_set(&p.dl, 3, 1000);
    deadline_set(&p.dl, 4, 30);
    ms = run(&p);
    CHECK(p.kind == 4);
    CHECK(ms >= 25 && ms < 500);

    /* cleared: the pending wake-up reports nothing; a later set still works */
    p.kind = 0;
    deadline_set(&p.dl, 5, 20);
    deadline_clear(&p.dl);
    deadline_set(&p.dl, 6, 60);
    ms = run(&p);
    CHECK(p.kind == 6);
    CHECK(ms >= 55);

    /* suspended: no timer, the deadline kept; resumed, it fires when it was due */
    p.kind = 0;
    int64_t t0 = deadline_now_us();
    deadline_set(&p.dl, 7, 200);
    deadline_suspend(&p.dl);
    CHECK(p.dl.ev == NULL);
    unsigned left = deadline_left_ms(&p.dl);
    CHECK(left > 0 && left <= 200);
    nanosleep(&(struct timespec){ .tv_nsec = 80 * 1000 * 1000 }, NULL);
    CHECK(deadline_left_ms(&p.dl) < left);
    CHECK(deadline_resume(&p.dl, p.base, on_timer, &p) == 0);
    run(&p);
    CHECK(p.kind == 7);
    ms = (p.fired_at - t0) / 1000;
    CHECK(ms >= 195 && ms < 700); /* due 200 ms after the set, not 200 after the resume */
    CHECK(deadline_left_ms(&p.dl) == 0); /* fired: none left */

    /* resumed with none: nothing fires (a 100 ms exit ends the loop) */
    p.kind = 0;
    deadline_set(&p.dl, 8, 50);
    deadline_clear(&p.dl);
    deadline_suspend(&p.dl);
    CHECK(deadline_resume(&p.dl, p.base, on_timer, &p) == 0);
    event_base_loopexit(p.base, &(struct timeval){ .tv_usec = 100 * 1000 });
    event_base_dispatch(p.base);
    CHECK(p.kind == 0);

    /* a deadline already past when resumed fires at once */
    deadline_set(&p.dl, 9, 10);
    deadline_suspend(&p.dl);
    nanosleep(&(struct timespec){ .tv_nsec = 30 * 1000 * 1000 }, NULL);
    CHECK(deadline_left_ms(&p.dl) == 0);
    t0 = deadline_now_us();
    CHECK(deadline_resume(&p.dl, p.base, on_timer, &p) == 0);
    run(&p);
    CHECK(p.kind == 9);
    CHECK((p.fired_at - t0) / 1000 < 300);

    deadline_suspend(&p.dl);
    deadline_suspend(&p.dl); /* twice is safe */
    event_base_free(p.base);
    return check_done();
}
