/* Tests for cache/ledgerlua against a real redis-server: the precomputed SHA1s, the
 * scripts agreeing with ledgerrule on every state, lease, holder and outbox owner (360
 * cases), and SCRIPT FLUSH handled by the transparent reload. */
#include "ledger/harness.h"

static void test_script_shas(void)
{
    for (int i = 0; i < LEDGERLUA_COUNT; i++) {
        const struct rconn_script *s = ledgerlua_script((enum ledgerlua_id)i);
        struct rconn_script mine;
        CHECK(s != NULL && rconn_script_init(&mine, s->body) == 0);
        CHECK_STR(mine.sha1, s->sha1);
    }
    CHECK(ledgerlua_script(LEDGERLUA_COUNT) == NULL);
}

/* The Lua scripts and ledgerrule agree on every state, lease, holder and outbox owner. */
static const char *const M_PREFIX = "t-mirror:";

static void mirror_setup(const char *key, int state, long long until, const char *holder,
                         const char *owner, const char *body)
{
    char until_s[24], last_s[24];

    snprintf(until_s, sizeof(until_s), "%lld", until);
    snprintf(last_s, sizeof(last_s), "%lld", wall_ms());
    redis_do("DEL", key, NULL);
    if (state != LEDGER_S_NONE)
        redis_do("HSET", key, "state", ledgerrule_state_str((enum ledger_state)state), "holder",
             holder, "lease_until", until_s, "ob_owner", owner, "body", body,
             "last_dequeue_ms", last_s, NULL);
}

static enum ledger_state stored_state(const char *id)
{
    enum ledger_state s = LEDGER_S_NONE;
    struct raw w = hget(M_PREFIX, id, "state");

    if (w.type == REDICT_REPLY_STRING)
        CHECK(ledgerrule_state_parse(w.str, &s) == 0);
    return s;
}

static int mirror_case(struct ledger *la, const char *key, const char *id, const char *body,
                       int op, const struct ledgerrule_entry *e)
{
    enum ledger_state next = e->state;
    long long now = wall_ms();
    int want, got;

    if (op == 0) {
        want = ledgerrule_dequeue(e, now, &next);
        struct dq d = dequeue(la, body, "consumer-m", 60000);
        got = d.verdict;
        if (got == LEDGER_LEASED_ELSEWHERE)
            CHECK_STR(d.holder, e->holder);
    } else {
        static const enum dn_op ops[] = { DN_DELIVER, DN_CONFIRM, DN_ACK, DN_RENEW, DN_RELEASE };
        if (op == 1)
            want = ledgerrule_deliver(e, "inst-A", &next);
        else if (op == 2)
            want = ledgerrule_confirm(e, &next);
        else if (op == 3)
            want = ledgerrule_ack(e, &next);
        else
            want = ledgerrule_outbox(e, "inst-A");
        got = call(la, ops[op - 1], id).status;
    }
    int ok = want == got && stored_state(id) == next;
    if (!ok)
        fprintf(stderr, "mirror: state %s op %d: rule %d lua %d, next %s stored %s\n",
                ledgerrule_state_str(e->state), op, want, got, ledgerrule_state_str(next),
                ledgerrule_state_str(stored_state(id)));
    return ok;
}

static void test_mirror(void)
{
    struct ledger *la = mk(conn_a, M_PREFIX, "inst-A", 0, 60000);
    static const char *const names[] = { "inst-A", "inst-B" };
    static const char *const owners[] = { "inst-A", "inst-B", "" };
    char c[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP], id[LEDGERKEY_ID_SIZE];
    char key[300];
    int cases = 0, agree = 0;

    guid(c, 'c', 10);
    guid(blob, 'b', 10);
    body_for(body, sizeof(body), c, "POP-M", blob, false, NULL);
    snprintf(id, sizeof(id), "prod:%s:blob:%s", ACT, blob);
    snprintf(key, sizeof(key), "%sledger:m:%s", M_PREFIX, id);
    for (int s = LEDGER_S_NONE; s <= LEDGER_S_ACKED; s++)
        for (int live = 0; live < 2; live++)
            for (int h = 0; h < 2; h++)
                for (int o = 0; o < 3; o++)
                    for (int op = 0; op < 6; op++) {
                        long long until = wall_ms() + (live ? 3600000 : -3600000);
                        struct ledgerrule_entry e = { (enum ledger_state)s, names[h], until,
                                                      owners[o] };
                        mirror_setup(key, s, until, names[h], owners[o], body);
                        agree += mirror_case(la, key, id, body, op, &e);
                        cases++;
                    }
    CHECK(cases == 360 && agree == cases);
    redis_do("DEL", key, NULL);
    ledger_free(la);
}

/* SCRIPT FLUSH: the next call reloads its script transparently. */
static void test_noscript(void)
{
    struct ledger *la = mk(conn_a, "t-flush:", "inst-A", 0, 60000);
    const char *sha = ledgerlua_script(LEDGERLUA_DEQUEUE)->sha1;
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP];

    guid(corr, 'c', 12);
    guid(blob, 'b', 12);
    body_for(body, sizeof(body), corr, "POP-F", blob, false, NULL);
    CHECK(dequeue(la, body, "consumer-1", 60000).verdict == LEDGER_NEW);
    CHECK(redis_do("SCRIPT", "FLUSH", NULL).res == RCONN_OK);
    CHECK_STR(redis_do("SCRIPT", "EXISTS", sha, NULL).elems[0], "0");
    struct dq d = dequeue(la, body, "consumer-1", 60000);
    CHECK(d.n == 1 && d.err == LEDGER_OK && d.verdict == LEDGER_LEASED_ELSEWHERE);
    CHECK_STR(redis_do("SCRIPT", "EXISTS", sha, NULL).elems[0], "1");
    CHECK(stats(la).leased_elsewhere == 1);
    ledger_free(la);
}

int main(void)
{
    CHECK(harness_start() == 0);
    test_script_shas();
    test_mirror();
    test_noscript();
    harness_stop();
    return check_done();
}
