/* Unit tests for fairq: round-robin across jobs, FIFO within a job, per-job bounds,
 * removal from anywhere, and a busy job that cannot starve a quiet one. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "fairq.h"

struct w {
    struct fairq_item item; /* first */
    char job[8];
    int n;
};

static struct w *pop(struct fairq *q)
{
    return (struct w *)fairq_pop(q);
}

static void test_round_robin(void)
{
    struct fairq *q = fairq_new(100, 10);
    struct w a[5] = { 0 }, b[2] = { 0 }, c[1] = { 0 };
    for (int i = 0; i < 5; i++) {
        a[i].n = i;
        CHECK(fairq_push(q, "A", &a[i].item) == 0);
    }
    for (int i = 0; i < 2; i++) {
        b[i].n = 10 + i;
        CHECK(fairq_push(q, "B", &b[i].item) == 0);
    }
    c[0].n = 20;
    CHECK(fairq_push(q, "C", &c[0].item) == 0);
    CHECK(fairq_len(q) == 8 && fairq_job_len(q, "A") == 5 && fairq_job_len(q, "B") == 2);
    int want[] = { 0, 10, 20, 1, 11, 2, 3, 4 };
    for (int i = 0; i < 8; i++) {
        struct w *got = pop(q);
        CHECK(got && got->n == want[i]);
    }
    CHECK(pop(q) == NULL && fairq_len(q) == 0);
    fairq_free(q);
}

static void test_bounds_and_remove(void)
{
    struct fairq *q = fairq_new(2, 2);
    struct w x[4] = { 0 };
    CHECK(fairq_push(q, "A", &x[0].item) == 0);
    CHECK(fairq_push(q, "A", &x[1].item) == 0);
    CHECK(fairq_push(q, "A", &x[2].item) == -1 && x[2].item.job == NULL); /* job full */
    CHECK(fairq_push(q, "B", &x[2].item) == 0);
    CHECK(fairq_push(q, "C", &x[3].item) == -1);                          /* table full */
    fairq_remove(q, &x[0].item);
    fairq_remove(q, &x[0].item);                                          /* no-op */
    CHECK(fairq_len(q) == 2 && fairq_job_len(q, "A") == 1);
    fairq_remove(q, &x[1].item);                                          /* A leaves */
    CHECK(fairq_job_len(q, "A") == 0 && fairq_push(q, "C", &x[3].item) == 0);
    CHECK(pop(q) == &x[2] && pop(q) == &x[3] && pop(q) == NULL);
    CHECK(fairq_push(q, NULL, &x[0].item) == 0 && fairq_job_len(q, "") == 1);
    fairq_free(q); /* frees with an item still queued: it is only unlinked */
    CHECK(x[0].item.job == NULL);
}

/* 1000 waiters of a busy job and 10 of a quiet one: the quiet job's last waiter is served
 * within the first 20 pops, whatever order they came in. */
static void test_no_starvation(void)
{
    struct fairq *q = fairq_new(10000, 10);
    struct w *busy = calloc(1000, sizeof *busy), quiet[10];
    memset(quiet, 0, sizeof quiet);
    for (int i = 0; i < 1000; i++)
        CHECK(fairq_push(q, "busy", &busy[i].item) == 0);
    for (int i = 0; i < 10; i++) {
        quiet[i].n = 1;
        CHECK(fairq_push(q, "quiet", &quiet[i].item) == 0);
    }
    int last_quiet = -1;
    for (int i = 0; i < 1010; i++) {
        struct w *got = pop(q);
        CHECK(got != NULL);
        if (got && got->n == 1)
            last_quiet = i;
    }
    CHECK(last_quiet >= 0 && last_quiet < 20);
    fairq_free(q);
    free(busy);
}

/* A job that empties and comes back joins at the end of the rotation. */
static void test_rejoin(void)
{
    struct fairq *q = fairq_new(10, 10);
    struct w a1 = { 0 }, a2 = { 0 }, b1 = { 0 }, b2 = { 0 };
    fairq_push(q, "A", &a1.item);
    fairq_push(q, "B", &b1.item);
    fairq_push(q, "B", &b2.item);
    CHECK(pop(q) == &a1);
    fairq_push(q, "A", &a2.item);
    CHECK(pop(q) == &b1 && pop(q) == &a2 && pop(q) == &b2 && pop(q) == NULL);
    fairq_free(q);
}

int main(void)
{
    test_round_robin();
    test_bounds_and_remove();
    test_no_starvation();
    test_rejoin();
    return check_done();
}
