"""End-to-end tests of the ack ledger (ledger.enabled) on fogate's export paths.

Real redis-server, fosim and fogate. The promise under test: every export reaches a
consumer at least once, and never again after the consumer confirmed it. fosim's clock is
advanced past its 30-minute visibility timeout to make D365 offer a message again; the
ledger's own lease (lease_s = 2 here) runs on Redis's clock, so the tests sleep past it
where a lease must be over."""

import json
import os
import signal
import threading
import time

import pytest

import harness
import ledgerkit as lk
from ledgerkit import redis  # noqa: F401  (module-wide fixture; sim: conftest)
from harness import workdir  # noqa: F401  (module-wide temporary directory fixture)

VISIBILITY = 1800


@pytest.fixture(autouse=True)
def clean(sim, redis):
    sim.reset()
    lk.redis_flush(redis)
    yield
    sim.clear_faults()
    sim.configure(redelivery="keep")


@pytest.fixture
def gate(workdir, sim, redis):
    g = lk.Gate(workdir, sim, redis.port, ledger={"ack_retry_min_ms": 60000,
                                                  "ack_retry_max_ms": 60000})
    yield g
    g.stop()


@pytest.fixture
def fast_gate(workdir, sim, redis):
    g = lk.Gate(workdir, sim, redis.port, name="fogate-fast")
    yield g
    g.stop()


def take(gate):
    r = gate.next()
    assert r.status == 200, r
    return r


@pytest.mark.parametrize("mode", ["keep", "change"])
def test_confirmed_then_redelivered_is_suppressed_and_acked_again(gate, sim, mode):
    """The consumer confirmed A but the upstream ack failed; D365 offers A again (same or a
    new CorrelationId): fogate does not hand it out, acks it upstream with the new
    PopReceipt, and the consumer gets B instead."""
    sim.configure(redelivery=mode)
    msgs = lk.feed(sim, 1, tag=f"a-{mode}")
    (a_data, a), = msgs.items()
    sim.fault(endpoint="ack", kind="status", status=500)
    r = take(gate)
    assert r.body == a_data
    assert r.header("X-Fogate-Redelivery") is None
    assert r.header("X-Fogate-Delivery-Count") == "1"
    ack = gate.ack(r.header("X-Fogate-Message-Id"))
    assert ack.status == 202, ack
    assert ack.json()["ack"] == "pending"
    assert lk.sim_message(sim, a["message_id"])["state"] != "Acked"
    assert lk.count(sim, "ack", 500) >= 1   # upcall retries a 5xx ack itself too

    b_data = f"b-{mode}".encode()
    b = sim.feed_export(b_data)
    sim.clear_faults()
    sim.advance(VISIBILITY + 5)      # D365 offers A again
    r2 = take(gate)
    assert r2.body == b_data, "a confirmed message was delivered again"
    lk.wait_acked(sim, a["message_id"])
    assert lk.count(sim, "ack", 200) == 1
    assert lk.sim_message(sim, a["message_id"])["dequeues"] == 2
    assert gate.ack(r2.header("X-Fogate-Message-Id")).status == 200
    lk.wait_acked(sim, b["message_id"])
    sim.advance(VISIBILITY + 5)
    assert gate.next().status == 204
    st = gate.status()
    assert st["local"]["duplicates_suppressed"] == 1
    assert st["local"]["confirmed"] == 2


def test_ack_failing_three_times_then_succeeding(fast_gate, sim):
    """The consumer gets 202; the outbox retries with backoff until D365 takes the ack:
    three 500s (one upstream call with upcall's own two 5xx retries) then one 200 from the
    outbox's retry, acked once, never handed out again."""
    (data, m), = lk.feed(sim, 1, tag="retry").items()
    sim.fault(endpoint="ack", kind="status", status=500, count=3)
    r = take(fast_gate)
    assert r.body == data
    t0 = time.monotonic()
    ack = fast_gate.ack(r.header("X-Fogate-Message-Id"))
    assert ack.status == 202 and ack.json()["ack"] == "pending", ack
    lk.wait_acked(sim, m["message_id"])
    took = time.monotonic() - t0
    assert lk.count(sim, "ack", 500) == 3
    assert lk.count(sim, "ack", 200) == 1
    assert took >= 0.2, "retries must wait their backoff"
    time.sleep(0.5)
    assert lk.count(sim, "ack") == 4, "acked again after success"
    sim.advance(VISIBILITY + 5)
    assert fast_gate.next().status == 204
    harness.wait_until(lambda: fast_gate.status()["cluster"]["outbox_depth"] == 0,
                       what="outbox empty")
    st = fast_gate.status()
    assert st["upstream_acks"]["ok"] == 1
    assert st["upstream_acks"]["failed"] == 1


def test_unconfirmed_message_is_redelivered_marked(fast_gate, sim):
    """Delivered but never confirmed: after D365's visibility timeout (and the ledger
    lease) it comes again, marked as a redelivery, with the delivery count."""
    (data, m), = lk.feed(sim, 1, tag="unconfirmed").items()
    r = take(fast_gate)
    assert r.body == data and r.header("X-Fogate-Redelivery") is None
    time.sleep(2.3)                   # the ledger lease (lease_s = 2)
    sim.advance(VISIBILITY + 5)
    r2 = take(fast_gate)
    assert r2.body == data
    assert r2.header("X-Fogate-Redelivery") == "true"
    assert r2.header("X-Fogate-Delivery-Count") == "2"
    assert fast_gate.ack(r2.header("X-Fogate-Message-Id")).status == 200
    lk.wait_acked(sim, m["message_id"])
    assert fast_gate.status()["local"]["redeliveries"] == 1


def test_leased_elsewhere_is_left_alone(workdir, fast_gate, sim, redis):
    """D365 offers a message again while another instance's consumer still holds its lease
    (e.g. a visibility shorter than the lease): the second instance skips it, does not ack
    it, and answers 204."""
    other = lk.Gate(workdir, sim, redis.port, name="fogate-other",
                    ledger={"lease_s": 600})
    try:
        (data, m), = lk.feed(sim, 1, tag="leased").items()
        r = take(other)
        assert r.body == data
        sim.advance(VISIBILITY + 5)
        assert fast_gate.next().status == 204
        assert lk.count(sim, "ack") == 0
        assert fast_gate.status()["local"]["leased_elsewhere_skipped"] == 1
        assert other.ack(r.header("X-Fogate-Message-Id")).status == 200
        lk.wait_acked(sim, m["message_id"])
    finally:
        other.stop()


def test_passthru_dequeue_download_ack(fast_gate, sim):
    """The connector pass-through: dequeue (rewritten DownloadLocation), download through
    fogate (marks delivered), ack through fogate (confirms, acks upstream); a redelivery
    of the confirmed message is suppressed and acked upstream again."""
    (data, m), = lk.feed(sim, 1, tag="pass").items()
    path = f"/api/connector/dequeue/{harness.EXPORT_JOB}"
    d = fast_gate.req("GET", path)
    assert d.status == 200, d
    body = d.json()
    loc = body["DownloadLocation"]
    assert loc.startswith(fast_gate.base), loc
    dl = fast_gate.req("GET", loc[len(fast_gate.base):])
    assert dl.status == 200 and dl.body == data
    sim.fault(endpoint="ack", kind="status", status=500, count=3)  # past upcall's retries
    a = fast_gate.req("POST", f"/api/connector/ack/{harness.EXPORT_JOB}", d.body,
                      headers={"Content-Type": "application/json"})
    assert a.status == 202, a
    lk.wait_acked(sim, m["message_id"])
    # an ack repeated by the client is fine, and nothing comes back
    a2 = fast_gate.req("POST", f"/api/connector/ack/{harness.EXPORT_JOB}", d.body,
                       headers={"Content-Type": "application/json"})
    assert a2.status == 200, a2
    sim.advance(VISIBILITY + 5)
    assert fast_gate.req("GET", path).status == 204
    st = fast_gate.status()
    assert st["local"]["delivered"] >= 1
    assert st["local"]["confirmed"] == 1


def test_redis_sigstop_fails_closed_fast_and_recovers(workdir, sim):
    """Redis stopped (SIGSTOP) for 10 s: dequeues answer 503 + Retry-After well within the
    Redis timeout + 1 s and nothing is dequeued from D365, also when several arrive at once
    (they wait on one liveness PING); /healthz stays fast; after SIGCONT the message is
    delivered once, and fogate exits cleanly."""
    red = harness.start_redis(workdir)
    g = lk.Gate(workdir, sim, red.port, name="fogate-stop")
    try:
        (data, m), = lk.feed(sim, 1, tag="stop").items()
        os.kill(red.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        seen = 0
        while time.monotonic() - stopped < 10:
            answers = []
            ts = [threading.Thread(target=lambda: answers.append(lk.wait_ms(g.next)))
                  for _ in range(3 if seen % 2 else 1)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            assert len(answers) == len(ts)
            for r, ms in answers:
                assert r.status == 503, r
                assert r.json()["code"] == "ledger_unavailable"
                assert r.header("Retry-After") == "2"
                assert ms < 500 + 1000, f"503 took {ms:.0f} ms"
            h, hms = lk.wait_ms(lambda: harness.request(g.base, "GET", "/healthz", timeout=5))
            assert h.status == 200 and hms < 300, hms
            seen += 1
            time.sleep(0.3)
        assert seen >= 5
        assert lk.count(sim, "dequeue") == 0, "a message was dequeued without the ledger"
        # enqueue and status never depend on Redis
        e, ems = lk.wait_ms(lambda: g.req("POST", f"/v1/jobs/{lk.IMPORT_JOB}/messages",
                                          b"a,b\n1,2\n"))
        assert e.status == 202 and ems < 3000, e
        s = g.req("GET", f"/v1/messages/{e.json()['message_id']}?job={lk.IMPORT_JOB}")
        assert s.status == 200, s
        ready = harness.request(g.base, "GET", "/readyz", timeout=5)
        assert ready.status == 503 and ready.json()["ledger"]["ready"] is False
        os.kill(red.pid, signal.SIGCONT)
        r = harness.wait_until(lambda: (lambda x: x if x.status == 200 else None)(g.next()),
                               timeout=15, what="dequeue after SIGCONT")
        assert r.body == data
        assert g.ack(r.header("X-Fogate-Message-Id")).status == 200
        lk.wait_acked(sim, m["message_id"])
        assert lk.sim_message(sim, m["message_id"])["dequeues"] == 1
        assert g.status()["local"]["refused_redis_down"] >= seen
    finally:
        try:
            os.kill(red.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        g.stop()
        red.stop()


def test_fail_open_delivers_without_redis(workdir, sim):
    """ledger.fail_open: with Redis gone the message is delivered anyway, marked and
    counted; its ack still reaches D365 (from the in-memory store)."""
    red = harness.start_redis(workdir)
    g = lk.Gate(workdir, sim, red.port, name="fogate-open", ledger={"fail_open": True})
    try:
        (data, m), = lk.feed(sim, 1, tag="open").items()
        red.stop()
        r = take(g)
        assert r.body == data
        assert r.header("X-Fogate-Ledger") == "fail_open"
        a = g.ack(r.header("X-Fogate-Message-Id"))
        assert a.status == 200, a
        lk.wait_acked(sim, m["message_id"])
        assert g.status()["local"]["fail_open_delivered"] == 1
    finally:
        g.stop()


def test_concurrent_consumers_get_distinct_messages(fast_gate, sim):
    """Ten consumers draining 30 messages through one instance: each delivered once."""
    msgs = lk.feed(sim, 30, tag="conc")
    got, lock = [], threading.Lock()

    def consumer():
        mine = lk.drain(fast_gate)
        with lock:
            got.extend(mine)

    ts = [threading.Thread(target=consumer) for _ in range(10)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert sorted(got) == sorted(msgs), "lost or duplicated messages"
    for m in msgs.values():
        lk.wait_acked(sim, m["message_id"])


def test_old_unconfirmed_message_logs_a_warning(workdir, sim, redis):
    """A delivery left unconfirmed past ledger.warn_unacked_s gives a warning log line
    (with its age) before D365's 30 minutes; the ages show in /admin/status."""
    g = lk.Gate(workdir, sim, redis.port, name="fogate-warn",
                ledger={"warn_unacked_s": 1, "lease_s": 600})
    try:
        lk.feed(sim, 1, tag="warn")
        r = take(g)
        harness.wait_until(lambda: "waited long for its confirmation" in g.log(), timeout=10,
                           what="age warning")
        line = json.loads([ln for ln in g.log().splitlines() if "waited long" in ln][0])
        assert line["level"] == "warn", line
        assert 1000 <= line["oldest_unconfirmed_ms"] < 30 * 60 * 1000
        cl = g.status()["cluster"]
        assert cl["unconfirmed"] == 1 and cl["oldest_unconfirmed_ms"] >= 1000
        assert g.ack(r.header("X-Fogate-Message-Id")).status == 200
        harness.wait_until(lambda: g.status()["cluster"]["unconfirmed"] == 0, timeout=10,
                           what="gauge back to 0")
    finally:
        g.stop()
