/* Tests for cache/ledgerrule: the ledger's state machine as pure functions (test_ledger
 * checks that the Lua scripts agree with these on every case). */
#include "check.h"
#include "ledgerrule.h"

#define NOW 1700000000000LL

static struct ledgerrule_entry entry(enum ledger_state s, const char *holder, long long until,
                                     const char *owner)
{
    struct ledgerrule_entry e = { s, holder, until, owner };
    return e;
}

static void test_dequeue(void)
{
    enum ledger_state next;
    struct ledgerrule_entry e = entry(LEDGER_S_NONE, "", 0, "");

    CHECK(ledgerrule_dequeue(&e, NOW, &next) == LEDGER_NEW && next == LEDGER_S_LEASED);
    for (int s = LEDGER_S_LEASED; s <= LEDGER_S_DELIVERED; s++) {
        e = entry((enum ledger_state)s, "A", NOW + 1, "");
        CHECK(ledgerrule_dequeue(&e, NOW, &next) == LEDGER_LEASED_ELSEWHERE && (int)next == s);
        e.holder = "B"; /* whoever holds it: a live lease is left alone */
        CHECK(ledgerrule_dequeue(&e, NOW, &next) == LEDGER_LEASED_ELSEWHERE && (int)next == s);
        e.lease_until_ms = NOW; /* the deadline itself is over */
        CHECK(ledgerrule_dequeue(&e, NOW, &next) == LEDGER_REDELIVERY && next == LEDGER_S_LEASED);
        e.lease_until_ms = 0;
        CHECK(ledgerrule_dequeue(&e, NOW, &next) == LEDGER_REDELIVERY && next == LEDGER_S_LEASED);
    }
    for (int s = LEDGER_S_CONFIRMED; s <= LEDGER_S_ACKED; s++) {
        e = entry((enum ledger_state)s, "A", NOW + 100000, "B");
        CHECK(ledgerrule_dequeue(&e, NOW, &next) == LEDGER_DUPLICATE_CONFIRMED &&
              next == LEDGER_S_CONFIRMED);
        e.lease_until_ms = 0;
        CHECK(ledgerrule_dequeue(&e, NOW, &next) == LEDGER_DUPLICATE_CONFIRMED &&
              next == LEDGER_S_CONFIRMED);
    }
}

static void test_deliver_confirm_ack(void)
{
    enum ledger_state next;
    struct ledgerrule_entry e = entry(LEDGER_S_NONE, "", 0, "");

    CHECK(ledgerrule_deliver(&e, "A", &next) == LEDGER_NOT_FOUND && next == LEDGER_S_NONE);
    CHECK(ledgerrule_confirm(&e, &next) == LEDGER_NOT_FOUND && next == LEDGER_S_NONE);
    CHECK(ledgerrule_ack(&e, &next) == LEDGER_NOT_FOUND && next == LEDGER_S_NONE);

    e = entry(LEDGER_S_LEASED, "A", 0, ""); /* an expired lease still counts for its holder */
    CHECK(ledgerrule_deliver(&e, "A", &next) == LEDGER_DONE && next == LEDGER_S_DELIVERED);
    CHECK(ledgerrule_deliver(&e, "B", &next) == LEDGER_NOT_HOLDER && next == LEDGER_S_LEASED);
    CHECK(ledgerrule_deliver(&e, "", &next) == LEDGER_NOT_HOLDER);
    e.holder = "";
    CHECK(ledgerrule_deliver(&e, "", &next) == LEDGER_NOT_HOLDER);
    e = entry(LEDGER_S_DELIVERED, "A", NOW, "");
    CHECK(ledgerrule_deliver(&e, "A", &next) == LEDGER_ALREADY && next == LEDGER_S_DELIVERED);
    CHECK(ledgerrule_deliver(&e, "B", &next) == LEDGER_NOT_HOLDER);

    for (int s = LEDGER_S_LEASED; s <= LEDGER_S_DELIVERED; s++) {
        e = entry((enum ledger_state)s, "A", NOW, "");
        CHECK(ledgerrule_confirm(&e, &next) == LEDGER_DONE && next == LEDGER_S_CONFIRMED);
        CHECK(ledgerrule_ack(&e, &next) == LEDGER_DONE && next == LEDGER_S_ACKED);
    }
    e = entry(LEDGER_S_CONFIRMED, "A", NOW, "A");
    CHECK(ledgerrule_deliver(&e, "A", &next) == LEDGER_ALREADY && next == LEDGER_S_CONFIRMED);
    CHECK(ledgerrule_confirm(&e, &next) == LEDGER_ALREADY && next == LEDGER_S_CONFIRMED);
    CHECK(ledgerrule_ack(&e, &next) == LEDGER_DONE && next == LEDGER_S_ACKED);
    e = entry(LEDGER_S_ACKED, "A", NOW, "");
    CHECK(ledgerrule_deliver(&e, "A", &next) == LEDGER_ALREADY && next == LEDGER_S_ACKED);
    CHECK(ledgerrule_confirm(&e, &next) == LEDGER_ALREADY && next == LEDGER_S_ACKED);
    CHECK(ledgerrule_ack(&e, &next) == LEDGER_ALREADY && next == LEDGER_S_ACKED);
}

static void test_outbox(void)
{
    struct ledgerrule_entry e = entry(LEDGER_S_CONFIRMED, "A", 0, "A");

    CHECK(ledgerrule_outbox(&e, "A") == LEDGER_DONE);
    CHECK(ledgerrule_outbox(&e, "B") == LEDGER_NOT_HOLDER);
    e.ob_owner = ""; /* released: nobody holds it until a claim */
    CHECK(ledgerrule_outbox(&e, "A") == LEDGER_NOT_HOLDER);
    e.ob_owner = NULL;
    CHECK(ledgerrule_outbox(&e, "A") == LEDGER_NOT_HOLDER);
    e = entry(LEDGER_S_ACKED, "A", 0, "A");
    CHECK(ledgerrule_outbox(&e, "A") == LEDGER_ALREADY);
    for (int s = LEDGER_S_NONE; s <= LEDGER_S_DELIVERED; s++) {
        e = entry((enum ledger_state)s, "A", 0, "A");
        CHECK(ledgerrule_outbox(&e, "A") == LEDGER_NOT_FOUND);
    }
    CHECK(ledgerrule_claimable(LEDGER_S_CONFIRMED));
    CHECK(!ledgerrule_claimable(LEDGER_S_ACKED) && !ledgerrule_claimable(LEDGER_S_NONE) &&
          !ledgerrule_claimable(LEDGER_S_LEASED) && !ledgerrule_claimable(LEDGER_S_DELIVERED));
}

static void test_names(void)
{
    enum ledger_state s;
    enum ledger_verdict v;
    enum ledger_status st;

    for (int i = LEDGER_S_NONE; i <= LEDGER_S_ACKED; i++)
        CHECK(ledgerrule_state_parse(ledgerrule_state_str((enum ledger_state)i), &s) == 0 &&
              (int)s == i);
    for (int i = LEDGER_NEW; i <= LEDGER_LEASED_ELSEWHERE; i++)
        CHECK(ledgerrule_verdict_parse(ledgerrule_verdict_str((enum ledger_verdict)i), &v) == 0 &&
              (int)v == i);
    for (int i = LEDGER_DONE; i <= LEDGER_NOT_HOLDER; i++)
        CHECK(ledgerrule_status_parse(ledgerrule_status_str((enum ledger_status)i), &st) == 0 &&
              (int)st == i);
    CHECK_STR(ledgerrule_state_str(LEDGER_S_CONFIRMED), "confirmed");
    CHECK_STR(ledgerrule_verdict_str(LEDGER_DUPLICATE_CONFIRMED), "duplicate");
    CHECK_STR(ledgerrule_status_str(LEDGER_NOT_HOLDER), "not_holder");
    CHECK(ledgerrule_state_parse("CONFIRMED", &s) == -1);
    CHECK(ledgerrule_verdict_parse("", &v) == -1);
    CHECK(ledgerrule_status_parse(NULL, &st) == -1);
}

int main(void)
{
    test_dequeue();
    test_deliver_confirm_ack();
    test_outbox();
    test_names();
    return check_done();
}
