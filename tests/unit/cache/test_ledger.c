/* Tests for cache/ledger against a real redis-server on a free port, two instances (two
 * rconns, two ledgers) on one event loop: the lifecycle, redelivery with the same and a
 * new CorrelationId, lease expiry, null-location aliases, the outbox passing from a dead
 * instance to a live one, 20 racing dequeues, gauges, TTLs, Redis stopped or absent.
 * Every callback is counted: each must run exactly once. (The Lua scripts against
 * ledgerrule, and SCRIPT FLUSH: test_ledgerlua.) */
#include "ledger/harness.h"

/* ---- tests ---- */

/* new -> delivered -> confirmed -> acked, byte-exact bodies, idempotent repeats. */
static void test_lifecycle(void)
{
    struct ledger *la = mk(conn_a, "t-life:", "inst-A", 0, 60000);
    struct ledger *lb = mk(conn_b, "t-life:", "inst-B", 0, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP];

    guid(corr, 'c', 1);
    guid(blob, 'b', 1);
    /* Spacing, an escaped non-ASCII character and the field order kept as received. */
    snprintf(body, sizeof(body), "{ \"CorrelationId\" : \"%s\",\n \"PopReceipt\":\"P1+/=\","
             "\"DownloadLocation\":\"http://fo.example.com:80/api/connector/download/%s"
             "?correlation-id=%s&blob=%s\",\"IsDownLoadFileExist\":true,"
             "\"FileDownLoadErrorMessage\":\"caf\\u00e9\",\"LastDequeueDateTime\":null }",
             corr, ACT, corr, blob);
    struct dq d = dequeue(la, body, "consumer-1", 60000);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "prod:%s:blob:%s", ACT, blob);
    CHECK(d.verdict == LEDGER_NEW && d.deliveries == 1 && !d.has_body);
    CHECK_STR(d.id, id);
    struct raw w = hget("t-life:", id, "body");
    CHECK(w.len == strlen(body) && strcmp(w.str, body) == 0);
    CHECK_STR(hget("t-life:", id, "state").str, "leased");
    CHECK_STR(hget("t-life:", id, "holder").str, "inst-A");
    CHECK_STR(hget("t-life:", id, "client").str, "consumer-1");
    CHECK_STR(hget("t-life:", id, "pop").str, "P1+/=");

    CHECK(call(lb, DN_DELIVER, id).status == LEDGER_NOT_HOLDER);
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_DONE);
    CHECK_STR(hget("t-life:", id, "state").str, "delivered");
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_RENEW, id).status == LEDGER_NOT_FOUND); /* no outbox entry yet */

    struct dn c = call(lb, DN_CONFIRM, id); /* the consumer's ack reached instance B */
    CHECK(c.status == LEDGER_DONE && c.has_body && c.body_len == strlen(body));
    CHECK(strcmp(c.body, body) == 0);
    CHECK_STR(c.id, id);
    CHECK_STR(hget("t-life:", id, "state").str, "confirmed");
    CHECK_STR(hget("t-life:", id, "confirmed_by").str, "client-x");
    CHECK(call(lb, DN_CONFIRM, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_ALREADY);
    struct ledger_stats s = stats(la);
    CHECK(s.new_messages == 1 && s.confirmed == 1 && s.confirm_repeats == 2);
    CHECK(s.outbox_depth == 1 && s.unacked == 1 && s.unconfirmed == 0 && s.acked == 0);
    CHECK(claim(la, 10).count == 0); /* leased to B, which acks upstream now */

    CHECK(call(lb, DN_ACK, id).status == LEDGER_DONE);
    CHECK_STR(hget("t-life:", id, "state").str, "acked");
    CHECK(redis_do("ZSCORE", "t-life:ledger:outbox", id, NULL).type == REDICT_REPLY_NIL);
    CHECK(call(la, DN_ACK, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_ALREADY);
    CHECK(call(lb, DN_RELEASE, id).status == LEDGER_ALREADY);
    s = stats(lb);
    CHECK(s.acked == 1 && s.outbox_depth == 0 && s.unacked == 0 && s.oldest_unacked_ms == 0);
    CHECK(s.confirmed == 1 && s.redeliveries == 0 && s.duplicates_suppressed == 0);

    /* Unknown ids. */
    char other[LEDGERKEY_ID_SIZE];
    snprintf(other, sizeof(other), "prod:%s:blob:%s", ACT, corr);
    CHECK(call(la, DN_DELIVER, other).status == LEDGER_NOT_FOUND);
    CHECK(call(la, DN_CONFIRM, other).status == LEDGER_NOT_FOUND);
    CHECK(call(la, DN_ACK, other).status == LEDGER_NOT_FOUND);
    CHECK(call(la, DN_RELEASE, other).status == LEDGER_NOT_FOUND);
    char key[300];
    snprintf(key, sizeof(key), "t-life:ledger:m:%s", other);
    CHECK(redis_do("EXISTS", key, NULL).integer == 0); /* nothing was created for it */

    /* Only the known fields are stored: no header, no token. */
    snprintf(key, sizeof(key), "t-life:ledger:m:%s", id);
    static const char *const known[] = {
        "state", "body", "corr", "pop", "holder", "client", "lease_until", "first_ms",
        "last_dequeue_ms", "dequeues", "deliveries", "delivered_ms", "confirmed_ms",
        "confirmed_by", "acked_ms", "ob_owner", "ob_attempts",
    };
    w = redis_do("HKEYS", key, NULL);
    CHECK(w.elements >= 10);
    for (size_t i = 0; i < w.elements; i++) {
        bool ok = false;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]); j++)
            ok = ok || strcmp(w.elems[i], known[j]) == 0;
        if (!ok)
            fprintf(stderr, "unexpected field %s\n", w.elems[i]);
        CHECK(ok);
    }
    ledger_free(la);
    ledger_free(lb);
}

/* Redelivery after confirmation, with the same and with a new CorrelationId, and after
 * the ack: never delivered again, the newest body kept for the re-ack. */
static void test_redelivery_after_confirm(void)
{
    struct ledger *la = mk(conn_a, "t-dup:", "inst-A", 0, 60000);
    struct ledger *lb = mk(conn_b, "t-dup:", "inst-B", 0, 60000);
    char c1[GUID_CANON_SIZE], c2[GUID_CANON_SIZE], blob[GUID_CANON_SIZE];
    char b1[BODY_CAP], b2[BODY_CAP], b3[BODY_CAP], b4[BODY_CAP];

    guid(c1, 'c', 2);
    guid(c2, 'd', 2);
    guid(blob, 'b', 2);
    body_for(b1, sizeof(b1), c1, "POP-1", blob, false, NULL);
    body_for(b2, sizeof(b2), c1, "POP-2", blob, false, "\"2024-05-01T10:30:00Z\"");
    body_for(b3, sizeof(b3), c2, "POP-3", blob, true, "\"2024-05-01T11:00:00Z\"");
    body_for(b4, sizeof(b4), c2, "POP-4", blob, true, "\"2024-05-01T11:30:00Z\"");
    struct dq d = dequeue(la, b1, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_NEW);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "%s", d.id);
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_DONE);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_DONE);

    /* Same CorrelationId, new PopReceipt, at instance B. */
    d = dequeue(lb, b2, "consumer-2", 60000);
    CHECK(d.verdict == LEDGER_DUPLICATE_CONFIRMED && d.has_body);
    CHECK(d.body_len == strlen(b2) && strcmp(d.body, b2) == 0);
    CHECK_STR(d.id, id);
    CHECK_STR(hget("t-dup:", id, "body").str, b2);
    CHECK_STR(hget("t-dup:", id, "ob_owner").str, "inst-B"); /* B re-acks at once */
    CHECK(claim(la, 10).count == 0);
    /* A new CorrelationId (fosim "change" mode), http://host:80: still the same message. */
    d = dequeue(la, b3, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_DUPLICATE_CONFIRMED && strcmp(d.body, b3) == 0);
    CHECK_STR(d.id, id);
    CHECK_STR(hget("t-dup:", id, "pop").str, "POP-3");
    CHECK_STR(hget("t-dup:", id, "corr").str, c2);
    CHECK(call(lb, DN_RELEASE, id).status == LEDGER_NOT_HOLDER); /* A re-acks it now */
    CHECK(call(la, DN_ACK, id).status == LEDGER_DONE);
    /* Offered again after the ack (it did not stick upstream): re-ack, never deliver. */
    d = dequeue(lb, b4, "consumer-2", 60000);
    CHECK(d.verdict == LEDGER_DUPLICATE_CONFIRMED && strcmp(d.body, b4) == 0);
    CHECK_STR(hget("t-dup:", id, "state").str, "confirmed");
    CHECK(redis_do("ZSCORE", "t-dup:ledger:outbox", id, NULL).type == REDICT_REPLY_STRING);
    struct ledger_stats s = stats(la);
    CHECK(s.duplicates_suppressed == 3 && s.new_messages == 1 && s.redeliveries == 0);
    CHECK(s.outbox_depth == 1 && s.confirmed == 1);
    CHECK_STR(hget("t-dup:", id, "deliveries").str, "1");
    CHECK_STR(hget("t-dup:", id, "dequeues").str, "4");
    CHECK(call(lb, DN_ACK, id).status == LEDGER_DONE);
    /* Both CorrelationIds are aliases of the blob id. */
    char alias[300];
    snprintf(alias, sizeof(alias), "t-dup:ledger:alias:prod:%s:%s", ACT, c1);
    CHECK_STR(redis_do("GET", alias, NULL).str, id);
    snprintf(alias, sizeof(alias), "t-dup:ledger:alias:prod:%s:%s", ACT, c2);
    CHECK_STR(redis_do("GET", alias, NULL).str, id);
    ledger_free(la);
    ledger_free(lb);
}

#define LEASE_MS 2000 /* leases that must still be live a few commands later */

/* A live lease is left alone (even by its own instance); an expired one is redelivered. */
static void test_lease_expiry(void)
{
    struct ledger *la = mk(conn_a, "t-lease:", "inst-A", 0, 60000);
    struct ledger *lb = mk(conn_b, "t-lease:", "inst-B", 0, 60000);
    char c1[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b1[BODY_CAP], b2[BODY_CAP], b3[BODY_CAP];

    guid(c1, 'c', 3);
    guid(blob, 'b', 3);
    body_for(b1, sizeof(b1), c1, "POP-1", blob, false, NULL);
    body_for(b2, sizeof(b2), c1, "POP-2", blob, false, "\"x\"");
    body_for(b3, sizeof(b3), c1, "POP-3", blob, false, "\"y\"");
    /* The lease is long enough for the two dequeues that must find it live, however slow
     * the machine; the wait after them only has to be longer than it. */
    struct dq d = dequeue(la, b1, "consumer-1", LEASE_MS);
    CHECK(d.verdict == LEDGER_NEW);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "%s", d.id);
    d = dequeue(lb, b2, "consumer-2", LEASE_MS);
    CHECK(d.verdict == LEDGER_LEASED_ELSEWHERE && !d.has_body && d.deliveries == 1);
    CHECK_STR(d.holder, "inst-A");
    CHECK(d.left > 0 && d.left <= LEASE_MS);
    CHECK_STR(hget("t-lease:", id, "pop").str, "POP-2"); /* the newest PopReceipt is kept */
    d = dequeue(la, b2, "consumer-3", LEASE_MS);
    CHECK(d.verdict == LEDGER_LEASED_ELSEWHERE);
    spin_ms(LEASE_MS + 100);
    d = dequeue(lb, b3, "consumer-2", 60000);
    CHECK(d.verdict == LEDGER_REDELIVERY && d.deliveries == 2 && !d.has_body);
    CHECK_STR(d.id, id);
    CHECK_STR(hget("t-lease:", id, "holder").str, "inst-B");
    CHECK(call(la, DN_DELIVER, id).status == LEDGER_NOT_HOLDER);
    CHECK(call(lb, DN_DELIVER, id).status == LEDGER_DONE);
    /* The first consumer confirms late: any confirmation counts, the body is the newest. */
    struct dn c = call(la, DN_CONFIRM, id);
    CHECK(c.status == LEDGER_DONE && strcmp(c.body, b3) == 0);
    struct ledger_stats s = stats(la);
    CHECK(s.new_messages == 1 && s.redeliveries == 1 && s.leased_elsewhere == 2);
    ledger_free(la);
    ledger_free(lb);
}

/* DownloadLocation null: keyed by CorrelationId, redirected through the alias table. */
static void test_fallback_ids(void)
{
    struct ledger *la = mk(conn_a, "t-fb:", "inst-A", 0, 60000);
    char c1[GUID_CANON_SIZE], c9[GUID_CANON_SIZE], blob[GUID_CANON_SIZE];
    char b1[BODY_CAP], b2[BODY_CAP], b3[BODY_CAP], b9[BODY_CAP];

    guid(c1, 'c', 4);
    guid(c9, 'c', 9);
    guid(blob, 'b', 4);
    body_for(b1, sizeof(b1), c1, "POP-1", blob, false, NULL);
    body_for(b2, sizeof(b2), c1, "POP-2", NULL, false, "\"x\"");
    body_for(b3, sizeof(b3), c1, "POP-3", NULL, false, "\"y\"");
    body_for(b9, sizeof(b9), c9, "POP-9", NULL, false, NULL);
    struct dq d = dequeue(la, b1, "consumer-1", 60000);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "%s", d.id);
    CHECK(d.verdict == LEDGER_NEW && strstr(id, ":blob:") != NULL);
    d = dequeue(la, b2, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_LEASED_ELSEWHERE);
    CHECK_STR(d.id, id); /* resolved to the blob id */
    /* The consumer's ack carries only CorrelationId and PopReceipt. */
    char ack_id[LEDGERKEY_ID_SIZE];
    snprintf(ack_id, sizeof(ack_id), "prod:%s:corr:%s", ACT, c1);
    struct dn c = call(la, DN_CONFIRM, ack_id);
    CHECK(c.status == LEDGER_DONE && strcmp(c.body, b2) == 0);
    CHECK_STR(c.id, id);
    d = dequeue(la, b3, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_DUPLICATE_CONFIRMED && strcmp(d.body, b3) == 0);
    CHECK(call(la, DN_ACK, ack_id).status == LEDGER_DONE);
    CHECK_STR(hget("t-fb:", id, "state").str, "acked");
    /* Never seen with a blob: its own CORR id. */
    d = dequeue(la, b9, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_NEW && strstr(d.id, ":corr:") != NULL);
    CHECK(stats(la).fallback_ids == 3);
    ledger_free(la);
}

/* The outbox: A confirms and "dies"; B takes the entry over when A's lease runs out. */
static void test_outbox_takeover(void)
{
    struct ledger *la = mk(conn_a, "t-ob:", "inst-A", 0, LEASE_MS);
    struct ledger *lb = mk(conn_b, "t-ob:", "inst-B", 0, LEASE_MS);
    char c1[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b1[BODY_CAP];

    guid(c1, 'c', 5);
    guid(blob, 'b', 5);
    body_for(b1, sizeof(b1), c1, "POP-1", blob, false, NULL);
    struct dq d = dequeue(la, b1, "consumer-1", 60000);
    char id[LEDGERKEY_ID_SIZE];
    snprintf(id, sizeof(id), "%s", d.id);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_DONE);
    /* A stays alive for a while: its renewals keep B out past the first lease. */
    for (int i = 0; i < 3; i++) {
        spin_ms(LEASE_MS / 2);
        CHECK(call(la, DN_RENEW, id).status == LEDGER_DONE);
        CHECK(claim(lb, 10).count == 0);
    }
    /* Then A dies (no more renewals). */
    spin_ms(LEASE_MS + 100);
    struct cl c = claim(lb, 10);
    CHECK(c.count == 1 && c.attempts[0] == 1);
    CHECK_STR(c.ids[0], id);
    CHECK_STR(c.bodies[0], b1);
    CHECK(call(la, DN_RENEW, id).status == LEDGER_NOT_HOLDER);
    CHECK(call(la, DN_RELEASE, id).status == LEDGER_NOT_HOLDER);
    /* B's upstream ack fails: it gives the entry back with a backoff. */
    struct dn r;
    memset(&r, 0, sizeof(r));
    CHECK(ledger_outbox_release(lb, id, LEASE_MS, on_dn, &r) == 0);
    CHECK(WAIT_FOR(r.n, 3000) && r.err == LEDGER_OK && r.status == LEDGER_DONE);
    CHECK(claim(la, 10).count == 0);
    spin_ms(LEASE_MS + 100);
    c = claim(la, 10);
    CHECK(c.count == 1 && c.attempts[0] == 2 && strcmp(c.bodies[0], b1) == 0);
    CHECK(call(lb, DN_RENEW, id).status == LEDGER_NOT_HOLDER);
    CHECK(call(la, DN_ACK, id).status == LEDGER_DONE);
    CHECK(redis_do("ZCARD", "t-ob:ledger:outbox", NULL).integer == 0);
    spin_ms(500);
    CHECK(claim(lb, 10).count == 0);
    CHECK(call(lb, DN_RELEASE, id).status == LEDGER_ALREADY);
    CHECK(call(la, DN_RENEW, id).status == LEDGER_ALREADY);
    /* Entries that are not confirmed any more (or gone) are dropped, not handed out. */
    CHECK(redis_do("ZADD", "t-ob:ledger:outbox", "0", "prod:" ACT ":blob:ghost", NULL).res ==
          RCONN_OK);
    CHECK(redis_do("ZADD", "t-ob:ledger:outbox", "0", id, NULL).res == RCONN_OK);
    CHECK(claim(lb, 10).count == 0);
    CHECK(redis_do("ZCARD", "t-ob:ledger:outbox", NULL).integer == 0);
    /* A claim hands out at most `max`, oldest due first. */
    char ids[3][LEDGERKEY_ID_SIZE];
    for (unsigned i = 0; i < 3; i++) {
        char c2[GUID_CANON_SIZE], blob2[GUID_CANON_SIZE], b2[BODY_CAP];
        guid(c2, 'c', 50 + i);
        guid(blob2, 'b', 50 + i);
        body_for(b2, sizeof(b2), c2, "POP-1", blob2, false, NULL);
        d = dequeue(la, b2, "consumer-1", 60000);
        snprintf(ids[i], sizeof(ids[i]), "%s", d.id);
        CHECK(call(la, DN_CONFIRM, ids[i]).status == LEDGER_DONE);
        spin_ms(20);
    }
    spin_ms(LEASE_MS + 100);
    c = claim(lb, 2);
    CHECK(c.count == 2 && strcmp(c.ids[0], ids[0]) == 0 && strcmp(c.ids[1], ids[1]) == 0);
    c = claim(lb, 2);
    CHECK(c.count == 1 && strcmp(c.ids[0], ids[2]) == 0);
    CHECK(stats(la).outbox_depth == 3);
    ledger_free(la);
    ledger_free(lb);
}

/* 20 dequeues of one message at once from two instances: exactly one NEW. */
static void test_concurrency(void)
{
    struct ledger *la = mk(conn_a, "t-race:", "inst-A", 0, 60000);
    struct ledger *lb = mk(conn_b, "t-race:", "inst-B", 0, 60000);
    char c1[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b[20][BODY_CAP];
    struct dq d[20];
    int new = 0, elsewhere = 0, once = 0;

    guid(c1, 'c', 6);
    guid(blob, 'b', 6);
    for (int i = 0; i < 20; i++) {
        char pop[16];
        snprintf(pop, sizeof(pop), "POP-%d", i);
        body_for(b[i], sizeof(b[i]), c1, pop, blob, i % 3 == 0, NULL);
        CHECK(send_dequeue(i % 2 ? lb : la, b[i], "consumer-1", 60000, &d[i]) == 0);
    }
    CHECK(WAIT_FOR(d[19].n && d[18].n, 3000));
    spin_ms(50);
    for (int i = 0; i < 20; i++) {
        once += d[i].n == 1 && d[i].err == LEDGER_OK;
        new += d[i].verdict == LEDGER_NEW;
        elsewhere += d[i].verdict == LEDGER_LEASED_ELSEWHERE;
    }
    CHECK(once == 20 && new == 1 && elsewhere == 19);
    struct ledger_stats s = stats(la);
    CHECK(s.new_messages == 1 && s.leased_elsewhere == 19 && s.unconfirmed == 1);
    ledger_free(la);
    ledger_free(lb);
}

/* Gauges: ages of the oldest unconfirmed and unacked messages; expired members dropped. */
static void test_stats_ages(void)
{
    struct ledger *la = mk(conn_a, "t-age:", "inst-A", 0, 60000);
    char c[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b[BODY_CAP], id[LEDGERKEY_ID_SIZE];

    struct ledger_stats s = stats(la);
    CHECK(s.new_messages == 0 && s.outbox_depth == 0 && s.oldest_unconfirmed_ms == 0 &&
          s.oldest_unacked_ms == 0);
    guid(c, 'c', 7);
    guid(blob, 'b', 7);
    body_for(b, sizeof(b), c, "POP-1", blob, false, NULL);
    snprintf(id, sizeof(id), "%s", dequeue(la, b, "consumer-1", 60000).id);
    CHECK(call(la, DN_CONFIRM, id).status == LEDGER_DONE);
    spin_ms(300);
    guid(c, 'c', 8);
    guid(blob, 'b', 8);
    body_for(b, sizeof(b), c, "POP-1", blob, false, NULL);
    CHECK(dequeue(la, b, "consumer-1", 60000).verdict == LEDGER_NEW);
    spin_ms(300);
    /* A member whose entry expired long ago must not count as the oldest. */
    CHECK(redis_do("ZADD", "t-age:ledger:unconfirmed", "1", "prod:" ACT ":blob:expired", NULL)
              .res == RCONN_OK);
    s = stats(la);
    CHECK(s.unconfirmed == 1 && s.unacked == 1 && s.outbox_depth == 1);
    CHECK(s.oldest_unconfirmed_ms >= 250 && s.oldest_unconfirmed_ms < 5000);
    CHECK(s.oldest_unacked_ms >= 550 && s.oldest_unacked_ms < 5000);
    CHECK(redis_do("ZSCORE", "t-age:ledger:unconfirmed", "prod:" ACT ":blob:expired", NULL).type ==
          REDICT_REPLY_NIL);
    ledger_free(la);
}

/* Redis stopped: every call ends with a timeout within its limit, exactly once. */
static void test_redis_stopped(void)
{
    struct rconn *c = connect_redis(server.port);
    struct ledger *l = mk(c, "t-stop:", "inst-S", 300, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP], id[LEDGERKEY_ID_SIZE];
    struct dq d;
    struct dn dn[5];
    struct cl cl;
    struct st st;

    guid(corr, 'c', 11);
    guid(blob, 'b', 11);
    body_for(body, sizeof(body), corr, "POP-S", blob, false, NULL);
    snprintf(id, sizeof(id), "%s", dequeue(l, body, "consumer-1", 60000).id);
    kill(server.pid, SIGSTOP);
    long long t0 = srv_now_ms();
    CHECK(send_dequeue(l, body, "consumer-1", 60000, &d) == 0);
    for (int i = 0; i < 5; i++)
        CHECK(send_dn(l, (enum dn_op)i, id, &dn[i]) == 0);
    memset(&cl, 0, sizeof(cl));
    memset(&st, 0, sizeof(st));
    CHECK(ledger_outbox_claim(l, 5, on_cl, &cl) == 0);
    CHECK(ledger_stats(l, on_st, &st) == 0);
    CHECK(WAIT_FOR(d.n && dn[4].n && cl.n && st.n, 300 + 2 * SLACK_MS));
    long long worst = 0;
    int timeouts = d.err == LEDGER_ERR_TIMEOUT;
    worst = d.done_ms - t0;
    for (int i = 0; i < 5; i++) {
        timeouts += dn[i].err == LEDGER_ERR_TIMEOUT;
        worst = dn[i].done_ms - t0 > worst ? dn[i].done_ms - t0 : worst;
    }
    timeouts += (cl.err == LEDGER_ERR_TIMEOUT) + (st.err == LEDGER_ERR_TIMEOUT);
    worst = cl.done_ms - t0 > worst ? cl.done_ms - t0 : worst;
    worst = st.done_ms - t0 > worst ? st.done_ms - t0 : worst;
    CHECK(timeouts == 8);
    CHECK(worst >= 280 && worst <= 300 + SLACK_MS);
    kill(server.pid, SIGCONT);
    spin_ms(1500); /* late replies (if any) must be dropped */
    int once = (d.n == 1) + (cl.n == 1) + (st.n == 1);
    for (int i = 0; i < 5; i++)
        once += dn[i].n == 1;
    CHECK(once == 8);
    CHECK(WAIT_FOR(is_up(c) && is_up(conn_a) && is_up(conn_b) && is_up(admin), 5000));
    /* Calls work again. (The timed-out ones may have run late: a timeout does not say
     * whether a script ran, so only a fresh message has a known verdict.) */
    guid(corr, 'c', 15);
    guid(blob, 'b', 15);
    body_for(body, sizeof(body), corr, "POP-S", blob, false, NULL);
    CHECK(dequeue(l, body, "consumer-1", 60000).verdict == LEDGER_NEW);
    ledger_free(l);
    rconn_free(c);
}

/* Not connected: errors come fast, later, once; freeing the rconn cancels. */
static void test_unavailable_and_free(void)
{
    struct rconn_options o = { .host = "127.0.0.1", .port = srv_free_port(),
                               .connect_timeout_ms = 500, .command_timeout_ms = 500,
                               .reconnect_min_ms = 50, .reconnect_max_ms = 100 };
    struct rconn *down = rconn_new(base, &o);
    struct ledger *l = mk(down, "t-down:", "inst-D", 0, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP];
    struct dq d;

    guid(corr, 'c', 13);
    guid(blob, 'b', 13);
    body_for(body, sizeof(body), corr, "POP-D", blob, false, NULL);
    spin_ms(100);
    CHECK(send_dequeue(l, body, "consumer-1", 60000, &d) == 0 && d.n == 0);
    CHECK(WAIT_FOR(d.n, 1000) && d.err == LEDGER_ERR_UNAVAILABLE);
    ledger_free(l);
    rconn_free(down);

    /* ledger_free with a call in flight: the call still completes. */
    struct rconn *c = connect_redis(server.port);
    l = mk(c, "t-down:", "inst-D", 0, 60000);
    CHECK(send_dequeue(l, body, "consumer-1", 60000, &d) == 0);
    ledger_free(l);
    CHECK(WAIT_FOR(d.n, 3000) && d.n == 1 && d.err == LEDGER_OK && d.verdict == LEDGER_NEW);
    /* rconn_free with a call in flight: cancelled, once, before rconn_free returns. */
    l = mk(c, "t-down:", "inst-D", 0, 60000);
    CHECK(send_dequeue(l, body, "consumer-1", 60000, &d) == 0);
    rconn_free(c);
    CHECK(d.n == 1 && d.err == LEDGER_ERR_CANCELLED);
    ledger_free(l);
}

static int never_called;
static void on_never(void *arg, enum ledger_err err, const struct ledger_result *r)
{
    never_called++;
}
static void on_never_dq(void *arg, enum ledger_err err, const struct ledger_dequeue_result *r)
{
    never_called++;
}

static void test_bad_args(void)
{
    struct ledger_opts o = { .instance = "inst-A" };
    struct ledger *la = mk(conn_a, "t-bad:", "inst-A", 0, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], b1[BODY_CAP], b2[BODY_CAP];
    struct ledgerkey k;

    CHECK(ledger_new(NULL, &o) == NULL);
    CHECK(ledger_new(conn_a, NULL) == NULL);
    o.instance = "has space";
    CHECK(ledger_new(conn_a, &o) == NULL);
    o.instance = "";
    CHECK(ledger_new(conn_a, &o) == NULL);
    o.instance = "inst-A";
    o.prefix = "bad prefix";
    CHECK(ledger_new(conn_a, &o) == NULL);
    o.prefix = NULL;
    o.retention_ms = -1;
    CHECK(ledger_new(conn_a, &o) == NULL);
    o.retention_ms = 0;
    struct ledger *def = ledger_new(conn_a, &o);
    CHECK(def != NULL);
    ledger_free(def);
    ledger_free(NULL);

    guid(corr, 'c', 14);
    guid(blob, 'b', 14);
    body_for(b1, sizeof(b1), corr, "POP-1", blob, false, NULL);
    body_for(b2, sizeof(b2), corr, "POP-2", blob, false, NULL);
    CHECK(ledgerkey_parse(b1, strlen(b1), "prod", ACT, &k) == LEDGERKEY_OK);
    size_t n1 = strlen(b1);
    CHECK(ledger_on_dequeue(NULL, &k, b1, n1, "c", 1000, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, NULL, b1, n1, "c", 1000, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, n1, "c", 1000, NULL, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, n1, "c", 0, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, n1, "bad client", 1000, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, 0, "c", 1000, on_never_dq, NULL) == -1);
    /* The body must be the one the key came from (same id, same PopReceipt). */
    CHECK(ledger_on_dequeue(la, &k, b2, strlen(b2), "c", 1000, on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue(la, &k, b1, n1 - 1, "c", 1000, on_never_dq, NULL) == -1);
    struct ledgerkey forged = k;
    forged.id[strlen(forged.id) - 1] = 'f';
    CHECK(ledger_on_dequeue(la, &forged, b1, n1, "c", 1000, on_never_dq, NULL) == -1);
    forged = k;
    forged.pop_receipt[0] = '\0';
    CHECK(ledger_on_dequeue(la, &forged, b1, n1, "c", 1000, on_never_dq, NULL) == -1);
    /* A PopReceipt is required to record a dequeue. */
    char nopop[BODY_CAP];
    snprintf(nopop, sizeof(nopop), "{\"CorrelationId\":\"%s\"}", corr);
    CHECK(ledgerkey_parse(nopop, strlen(nopop), "prod", ACT, &k) == LEDGERKEY_OK);
    CHECK(ledger_on_dequeue(la, &k, nopop, strlen(nopop), "c", 1000, on_never_dq, NULL) == -1);

    CHECK(ledger_mark_delivered(la, "prod:not-an-id", on_never, NULL) == -1);
    CHECK(ledger_mark_delivered(la, NULL, on_never, NULL) == -1);
    CHECK(ledger_mark_delivered(la, k.id, NULL, NULL) == -1);
    CHECK(ledger_confirm(la, k.id, "", on_never, NULL) == -1);
    CHECK(ledger_confirm(NULL, k.id, "c", on_never, NULL) == -1);
    CHECK(ledger_mark_acked(la, "x", on_never, NULL) == -1);
    CHECK(ledger_outbox_renew(NULL, k.id, on_never, NULL) == -1);
    CHECK(ledger_outbox_release(la, "", 0, on_never, NULL) == -1);
    CHECK(ledger_outbox_claim(la, 0, on_cl, NULL) == -1);
    CHECK(ledger_outbox_claim(la, LEDGER_CLAIM_MAX + 1, on_cl, NULL) == -1);
    CHECK(ledger_outbox_claim(la, 1, NULL, NULL) == -1);
    CHECK(ledger_stats(la, NULL, NULL) == -1);
    spin_ms(50);
    CHECK(never_called == 0);
    CHECK_STR(ledger_err_str(LEDGER_ERR_TIMEOUT), "timeout");
    ledger_free(la);
}

/* Every key the ledger wrote expires after retention + margin. */
static void test_ttls(void)
{
    struct raw w = redis_do("KEYS", "t-*", NULL);
    int with_ttl = 0, kinds = 0;
    static const char *const must[] = { "ledger:m:", "ledger:alias:", "ledger:outbox",
                                        "ledger:unconfirmed", "ledger:unacked", "ledger:stats" };

    CHECK(w.elements >= 20 && w.elements < 128);
    for (size_t i = 0; i < w.elements; i++) {
        struct raw t = redis_do("PTTL", w.elems[i], NULL);
        bool ok = t.integer > TTL_MS - 120000 && t.integer <= TTL_MS;
        if (!ok)
            fprintf(stderr, "key %s: PTTL %lld\n", w.elems[i], t.integer);
        with_ttl += ok;
    }
    CHECK(with_ttl == (int)w.elements);
    for (size_t j = 0; j < sizeof(must) / sizeof(must[0]); j++) {
        bool seen = false;
        for (size_t i = 0; i < w.elements; i++)
            seen = seen || strstr(w.elems[i], must[j]) != NULL;
        kinds += seen;
    }
    CHECK(kinds == 6);
}

/* The index keys' TTLs are refreshed by the first call and then by at most one call per
 * refresh_ms, but a key a call creates always gets one, and a message's keys get theirs
 * on every write. The counters kept in the message hash still count. */
static void test_ttl_refresh(void)
{
    struct ledger_opts o = { .prefix = "t-refresh:", .instance = "inst-A",
                             .margin_ms = MARGIN_MS, .refresh_ms = 3600000 };
    struct ledger *la = ledger_new(conn_a, &o);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP], id[LEDGERKEY_ID_SIZE];
    const long long full = TTL_MS - 120000;

    CHECK(la != NULL);
    guid(corr, 'c', 41);
    guid(blob, 'b', 41);
    body_for(body, sizeof(body), corr, "POP-R1", blob, true, NULL);
    snprintf(id, sizeof(id), "prod:%s:blob:%s", ACT, blob);
    CHECK(dequeue(la, body, "consumer-1", 1).verdict == LEDGER_NEW); /* refreshes */
    CHECK(redis_do("PTTL", "t-refresh:ledger:stats", NULL).integer > full);
    redis_do("PEXPIRE", "t-refresh:ledger:stats", "600000", NULL);
    redis_do("DEL", "t-refresh:ledger:unconfirmed", NULL);
    char corr2[GUID_CANON_SIZE], blob2[GUID_CANON_SIZE], body2[BODY_CAP];
    guid(corr2, 'c', 42);
    guid(blob2, 'b', 42);
    body_for(body2, sizeof(body2), corr2, "POP-R2", blob2, true, NULL);
    CHECK(dequeue(la, body2, "consumer-1", 60000).verdict == LEDGER_NEW);
    CHECK(redis_do("PTTL", "t-refresh:ledger:stats", NULL).integer <= 600000); /* not due */
    CHECK(redis_do("PTTL", "t-refresh:ledger:unconfirmed", NULL).integer > full); /* made */
    spin_ms(5); /* the 1 ms lease is over: a redelivery, not leased elsewhere */
    struct dq d = dequeue(la, body, "consumer-1", 60000);
    CHECK(d.verdict == LEDGER_REDELIVERY && d.deliveries == 2);
    CHECK_STR(hget("t-refresh:", id, "dequeues").str, "2");
    CHECK_STR(hget("t-refresh:", id, "deliveries").str, "2");
    char key[32 + LEDGERKEY_ID_SIZE];
    snprintf(key, sizeof(key), "t-refresh:ledger:m:%s", id);
    CHECK(redis_do("PTTL", key, NULL).integer > full);
    ledger_free(la);
    la = ledger_new(conn_a, &o); /* a new instance's first call refreshes them */
    CHECK(la != NULL && call(la, DN_DELIVER, id).status == LEDGER_DONE);
    CHECK(redis_do("PTTL", "t-refresh:ledger:stats", NULL).integer > full);
    ledger_free(la);
}

/* ledger_on_dequeue_body keys the body itself (once): same records and verdicts as
 * ledger_on_dequeue after ledgerkey_parse; a body that cannot be keyed is -2, the other
 * refusals -1, and no callback for either. */
static void test_dequeue_body(void)
{
    struct ledger *la = mk(conn_a, "t-body:", "inst-A", 0, 60000);
    char corr[GUID_CANON_SIZE], blob[GUID_CANON_SIZE], body[BODY_CAP], id[LEDGERKEY_ID_SIZE];
    enum ledgerkey_err why = LEDGERKEY_OK;
    struct dq d;

    guid(corr, 'c', 31);
    guid(blob, 'b', 31);
    body_for(body, sizeof(body), corr, "POP-31", blob, true, NULL);
    snprintf(id, sizeof(id), "prod:%s:blob:%s", ACT, blob);
    memset(&d, 0, sizeof(d));
    CHECK(ledger_on_dequeue_body(la, "prod", "{" ACT "}", body, strlen(body), "consumer-1",
                                 60000, &why, on_dq, &d) == 0 && why == LEDGERKEY_OK);
    CHECK(d.n == 0); /* never from inside the call */
    CHECK(WAIT_FOR(d.n > 0, 3000) && d.n == 1 && d.err == LEDGER_OK);
    CHECK(d.verdict == LEDGER_NEW && d.deliveries == 1);
    CHECK_STR(d.id, id);
    CHECK_STR(hget("t-body:", id, "pop").str, "POP-31");
    CHECK_STR(hget("t-body:", id, "client").str, "consumer-1");
    CHECK(ledger_on_dequeue_body(la, "prod", ACT, "not json", 8, "c", 1000, &why, on_never_dq,
                                 NULL) == -2 && why == LEDGERKEY_NOT_JSON);
    CHECK(ledger_on_dequeue_body(la, "bad env!", ACT, body, strlen(body), "c", 1000, &why,
                                 on_never_dq, NULL) == -2 && why == LEDGERKEY_BAD_ARGS);
    char nopop[BODY_CAP];
    snprintf(nopop, sizeof(nopop), "{\"CorrelationId\":\"%s\"}", corr);
    CHECK(ledger_on_dequeue_body(la, "prod", ACT, nopop, strlen(nopop), "c", 1000, NULL,
                                 on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue_body(la, "prod", ACT, body, strlen(body), "bad client", 1000, NULL,
                                 on_never_dq, NULL) == -1);
    CHECK(ledger_on_dequeue_body(la, "prod", ACT, body, strlen(body), "c", 1000, NULL, NULL,
                                 NULL) == -1);
    CHECK(ledger_on_dequeue_body(NULL, "prod", ACT, body, strlen(body), "c", 1000, NULL,
                                 on_never_dq, NULL) == -1);
    ledger_free(la);
}

int main(void)
{
    CHECK(harness_start() == 0);
    test_lifecycle();
    test_redelivery_after_confirm();
    test_lease_expiry();
    test_fallback_ids();
    test_outbox_takeover();
    test_concurrency();
    test_stats_ages();
    test_unavailable_and_free();
    test_bad_args();
    test_dequeue_body();
    test_ttl_refresh();
    test_ttls();
    test_redis_stopped();
    harness_stop();
    return check_done();
}
