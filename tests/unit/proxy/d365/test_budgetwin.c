/* Unit tests for budgetwin: concurrency and sliding-window arithmetic, the wait until a
 * place frees, notes from Redis, the per-worker share and Retry-After rounding. */
#include "budgetwin.h"
#include "check.h"

static void test_concurrency(void)
{
    struct budgetwin w;
    int64_t wait;
    CHECK(budgetwin_init(&w, 100) == 0);
    CHECK(budgetwin_take(&w, 2, 100, 1000, 0, &wait) == 0);
    CHECK(budgetwin_take(&w, 2, 100, 1000, 1, &wait) == 0);
    CHECK(budgetwin_take(&w, 2, 100, 1000, 2, &wait) == -1 && wait == 0);
    budgetwin_release(&w);
    CHECK(budgetwin_take(&w, 2, 100, 1000, 3, &wait) == 0);
    budgetwin_release(&w);
    budgetwin_release(&w);
    budgetwin_release(&w);
    budgetwin_release(&w); /* never below zero */
    CHECK(w.inflight == 0);
    budgetwin_cleanup(&w);
    budgetwin_cleanup(&w);
}

static void test_window(void)
{
    struct budgetwin w;
    int64_t wait;
    CHECK(budgetwin_init(&w, 3) == 0);
    CHECK(budgetwin_take(&w, 10, 3, 1000, 100, &wait) == 0);
    CHECK(budgetwin_take(&w, 10, 3, 1000, 400, &wait) == 0);
    CHECK(budgetwin_take(&w, 10, 3, 1000, 700, &wait) == 0);
    CHECK(budgetwin_take(&w, 10, 3, 1000, 800, &wait) == -1 && wait == 300); /* 100 leaves at 1100 */
    CHECK(budgetwin_count(&w, 1000, 800) == 3);
    CHECK(budgetwin_take(&w, 10, 3, 1000, 1100, &wait) == 0);
    CHECK(budgetwin_take(&w, 10, 3, 1000, 1101, &wait) == -1 && wait == 299);
    /* a lower rate (reload) waits for more to leave: 2 of 3 -> the 2nd oldest (700) */
    CHECK(budgetwin_take(&w, 10, 2, 1000, 1200, &wait) == -1 && wait == 500);
    CHECK(budgetwin_count(&w, 1000, 5000) == 0);
    budgetwin_cleanup(&w);
}

static void test_note(void)
{
    struct budgetwin w;
    int64_t wait;
    CHECK(budgetwin_init(&w, 2) == 0);
    budgetwin_note(&w, 0);
    budgetwin_note(&w, 10);
    budgetwin_note(&w, 20); /* full: the oldest goes */
    CHECK(w.inflight == 3 && budgetwin_count(&w, 1000, 30) == 2);
    CHECK(budgetwin_take(&w, 10, 2, 1000, 30, &wait) == -1 && wait == 980);
    budgetwin_cleanup(&w);
}

static void test_resize(void)
{
    struct budgetwin w;
    int64_t wait;
    CHECK(budgetwin_init(&w, 3) == 0);
    budgetwin_note(&w, 10);
    budgetwin_note(&w, 20);
    budgetwin_note(&w, 30);
    budgetwin_note(&w, 40); /* ring: 20 30 40, head moved */
    CHECK(budgetwin_resize(&w, 2) == 0 && w.cap == 2 && w.n == 2);
    CHECK(budgetwin_take(&w, 10, 2, 1000, 50, &wait) == -1 && wait == 980); /* 30 is oldest */
    CHECK(budgetwin_resize(&w, 5) == 0 && w.n == 2 && w.inflight == 4);
    CHECK(budgetwin_take(&w, 10, 5, 1000, 50, &wait) == 0 && budgetwin_count(&w, 1000, 50) == 3);
    budgetwin_cleanup(&w);
}

static void test_share(void)
{
    CHECK(budgetwin_share(48, 1, 1) == 48);
    CHECK(budgetwin_share(48, 2, 2) == 12);
    CHECK(budgetwin_share(10, 4, 3) == 1);   /* at least one */
    CHECK(budgetwin_share(100, 0, 0) == 100);
    CHECK(budgetwin_retry_after(0) == 1 && budgetwin_retry_after(1000) == 1);
    CHECK(budgetwin_retry_after(1001) == 2 && budgetwin_retry_after(29500) == 30);
}

int main(void)
{
    test_concurrency();
    test_window();
    test_note();
    test_resize();
    test_share();
    return check_done();
}
