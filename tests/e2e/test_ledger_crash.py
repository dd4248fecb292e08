"""The ack ledger across a crash: fogate killed with SIGKILL at each step of a delivery,
then restarted (or a second instance carries on). No message is lost, none reaches the
consumer twice without the redelivery mark, and a confirmed message's upstream ack is
finished by the outbox of whichever instance is alive.

Steps (pass-through connector API, where each step is its own request):
  after_dequeue   the consumer has the dequeue JSON, nothing downloaded
  mid_download    the download through fogate is cut off by the crash
  after_delivery  the whole file went out, no ack yet
  after_confirm   the consumer acked (202: D365's ack failed), upstream ack not done"""

import http.client
import os
import signal
import socket
import time
import urllib.parse

import pytest

import harness
import ledgerkit as lk
from ledgerkit import redis  # noqa: F401  (module-wide fixture; sim: conftest)
from harness import workdir  # noqa: F401

VISIBILITY = 1800
DEQ = f"/api/connector/dequeue/{harness.EXPORT_JOB}"
ACK = f"/api/connector/ack/{harness.EXPORT_JOB}"
LEDGER = {"outbox_lease_ms": 1500}


@pytest.fixture(autouse=True)
def clean(sim, redis):
    sim.reset()
    lk.redis_flush(redis)
    yield
    sim.clear_faults()


def dequeue(gate):
    r = gate.req("GET", DEQ)
    assert r.status == 200, r
    return r


def download(gate, deq):
    loc = deq.json()["DownloadLocation"]
    assert loc.startswith(gate.base), loc
    return gate.req("GET", loc[len(gate.base):])


def cut_download(gate, deq, killer):
    """Starts the download, reads a little, calls killer(), and returns what arrived."""
    loc = deq.json()["DownloadLocation"]
    u = urllib.parse.urlsplit(loc)
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=10)
    conn.request("GET", u.path + "?" + u.query, headers={"X-Api-Key": lk.KEY})
    resp = conn.getresponse()
    assert resp.status == 200
    got = resp.read(1000)
    killer()
    try:
        got += resp.read()
        complete = True
    except (http.client.IncompleteRead, ConnectionError, socket.timeout) as e:
        complete = False
        if isinstance(e, http.client.IncompleteRead):
            got += e.partial
    conn.close()
    return got, complete


@pytest.mark.parametrize("survivor", ["restart", "second"])
@pytest.mark.parametrize("step", ["after_dequeue", "mid_download", "after_delivery",
                                  "after_confirm"])
def test_sigkill_at_each_step(workdir, sim, redis, step, survivor):
    g1 = lk.Gate(workdir, sim, redis.port, name=f"g1-{step}-{survivor}", ledger=LEDGER)
    g2 = None
    if survivor == "second":
        g2 = lk.Gate(workdir, sim, redis.port, name=f"g2-{step}", ledger=LEDGER)
    size = 200_000 if step == "mid_download" else 100
    data = (step.encode() + b"-") * (size // (len(step) + 1))
    m = sim.feed_export(data)
    deq = dequeue(g1)
    if step == "mid_download":
        sim.fault(endpoint="download", kind="slow", rate=20000)
        got, complete = cut_download(g1, deq, g1.kill)
        assert not complete and len(got) < len(data), "a cut-off download looked complete"
        sim.clear_faults()
    else:
        if step in ("after_delivery", "after_confirm"):
            d = download(g1, deq)
            assert d.status == 200 and d.body == data
        if step == "after_confirm":
            sim.fault(endpoint="ack", kind="status", status=500)
            a = g1.req("POST", ACK, deq.body, headers={"Content-Type": "application/json"})
            assert a.status == 202, a
        # killed while D365's acks still fail: cleared before the kill, g1's own outbox
        # retry could ack in between on a slow machine, and there would be nothing to recover
        g1.kill()
        sim.clear_faults()
    assert lk.sim_message(sim, m["message_id"])["state"] != "Acked"

    if survivor == "restart":
        g1.start()
        live = g1
    else:
        live = g2
    try:
        if step == "after_confirm":
            # nobody dequeues: the outbox of the live instance takes the entry over once
            # the dead instance's outbox lease ran out, and acks it
            lk.wait_acked(sim, m["message_id"], timeout=20)
            assert lk.count(sim, "ack", 200) == 1
            sim.advance(VISIBILITY + 5)
            assert live.req("GET", DEQ).status == 204
            return
        time.sleep(2.3)                  # the dead instance's delivery lease (lease_s = 2)
        sim.advance(VISIBILITY + 5)      # D365 offers it again
        again = dequeue(live)
        assert again.header("X-Fogate-Redelivery") == "true", again.headers
        assert again.header("X-Fogate-Delivery-Count") == "2"
        d = download(live, again)
        assert d.status == 200 and d.body == data
        a = live.req("POST", ACK, again.body, headers={"Content-Type": "application/json"})
        assert a.status == 200, a
        lk.wait_acked(sim, m["message_id"])
        sim.advance(VISIBILITY + 5)
        assert live.req("GET", DEQ).status == 204
    finally:
        live.stop()
        if g2 is not None and live is not g2:
            g2.stop()
