"""End-to-end tests of the admin actions (/admin/api/ on the admin listener): two fogate
instances sharing one real redis-server in front of fosim. A pause set through instance A
is honoured by instance B within the stated bound (jobpause: 1 s refresh plus one Redis
command timeout); every action needs the admin token, from loopback too, and leaves one
audit line (never the token); release makes another consumer get an export that D365 offers
again; retry-ack acks a confirmed export at once; a drain asked through the API turns
/readyz 503 first, then the instance exits cleanly. The page's files carry their CSP."""

import json
import os
import time

import pytest

import harness
import ledgerkit as lk
from ledgerkit import redis  # noqa: F401  (module-wide fixture; sim: conftest)
from harness import workdir  # noqa: F401  (module-wide temporary directory fixture)

TOKEN = "admin-token-for-tests-0123456789abcdef"
VISIBILITY = 1800
PAUSE_BOUND_MS = 1000 + 500  # JOBPAUSE_REFRESH_MS + redis.command_timeout_ms of ledgerkit


def token_file(workdir):
    path = os.path.join(workdir, "admin.token")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(path, 0o600)
    return path


def admin_extra(workdir, **admin):
    a = {"token_file": token_file(workdir), "drain_notice_ms": 1500}
    a.update(admin)
    return {"admin": a, "history": {"enabled": True, "follow_min_ms": 200,
                                    "follow_max_ms": 500, "max_page": 500}}


def api(gate, method, path, token=TOKEN, timeout=10):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    return harness.request(gate.admin_base, method, "/admin/api/" + path, None, h,
                           timeout=timeout)


def audit_lines(gate):
    out = []
    for line in gate.log().splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if j.get("msg") == "admin_action":
            out.append(j)
    return out


@pytest.fixture(autouse=True)
def clean(sim, redis):
    sim.reset()
    lk.redis_flush(redis)
    yield
    sim.clear_faults()


@pytest.fixture
def gates(workdir, sim, redis):
    a = lk.Gate(workdir, sim, redis.port, name="fogate-a", extra=admin_extra(workdir),
                ledger={"lease_s": 600, "ack_retry_min_ms": 60000, "ack_retry_max_ms": 60000})
    b = lk.Gate(workdir, sim, redis.port, name="fogate-b", extra=admin_extra(workdir),
                ledger={"lease_s": 600, "ack_retry_min_ms": 60000, "ack_retry_max_ms": 60000})
    yield a, b
    a.stop()
    b.stop()


def enqueue(gate, body=b"code;name\nX1;x\n", name="x.csv"):
    return gate.req("POST", f"/v1/jobs/{lk.IMPORT_JOB}/messages", body,
                    {"X-File-Name": name})


def test_actions_need_the_token_and_are_audited(gates):
    a, _ = gates
    # reads from loopback are open, as the admin listener's other routes
    r = api(a, "GET", "overview", token=None)
    assert r.status == 200, r
    names = {j["name"]: j for j in r.json()["jobs"]}
    assert names[lk.IMPORT_JOB]["paused"] is None and r.json()["instance"]["actions_need_token"]
    # every action needs the token, loopback or not
    r = api(a, "POST", f"jobs/{lk.IMPORT_JOB}/pause", token=None)
    assert r.status == 401 and r.json()["code"] == "admin_unauthorized", r
    r = api(a, "POST", f"jobs/{lk.IMPORT_JOB}/pause", token="wrong-token-0123456789abcdef")
    assert r.status == 403 and r.json()["code"] == "admin_forbidden", r
    r = api(a, "POST", "jobs/no-such-job/pause")
    assert r.status == 404 and r.json()["code"] == "job_not_found", r
    r = api(a, "POST", "jobs/x/explode")
    assert r.status == 404 and r.json()["code"] == "not_found"
    r = api(a, "POST", f"jobs/{lk.IMPORT_JOB}/pause")
    assert r.status == 200 and r.json()["paused"] is True, r
    lines = audit_lines(a)
    results = [(l["action"], l["target"], l["result"]) for l in lines]
    assert ("pause", lk.IMPORT_JOB, "admin_unauthorized") in results
    assert ("pause", lk.IMPORT_JOB, "admin_forbidden") in results
    assert ("pause", "no-such-job", "job_not_found") in results
    ok = [l for l in lines if l["result"] == "ok"]
    assert len(ok) == 1 and ok[0]["who"].startswith("token:") and len(ok[0]["who"]) == 18
    assert ok[0]["peer"].startswith("127.0.0.1:") and "ts" in ok[0]
    assert TOKEN not in a.log() and "wrong-token" not in a.log()


def test_pause_on_a_is_honoured_by_b_within_the_bound(gates, sim):
    a, b = gates
    assert enqueue(b).status == 202
    r = api(a, "POST", f"jobs/{lk.IMPORT_JOB}/pause")
    assert r.status == 200, r
    t0 = time.monotonic()
    harness.wait_until(lambda: enqueue(b).status == 503, 5, interval=0.02,
                       what="B refuses the paused job")
    took_ms = (time.monotonic() - t0) * 1000
    print(f"pause honoured by the other instance after {took_ms:.0f} ms")
    assert took_ms < PAUSE_BOUND_MS + 300, took_ms  # + the test's own request time
    before = lk.count(sim, "enqueue")
    r = enqueue(b)
    assert r.status == 503 and r.json()["code"] == "job_paused", r
    assert r.header("Retry-After") == "30"
    assert enqueue(a).status == 503
    # the pass-through enqueue of the same activity refuses as well; nothing reached D365
    p = b.req("POST", f"/api/connector/enqueue/{harness.IMPORT_JOB}?entity=Customer%20groups",
              b"x", {"Content-Type": "text/csv"})
    assert p.status == 503 and p.json()["code"] == "job_paused", p
    assert lk.count(sim, "enqueue") == before
    ov = api(b, "GET", "overview", token=None).json()
    paused = {j["name"]: j["paused"] for j in ov["jobs"]}
    assert paused[lk.IMPORT_JOB]["by"].startswith("token:") and paused[lk.JOB] is None
    # an export job paused hands out nothing: /next and the pass-through dequeue
    assert api(b, "POST", f"jobs/{lk.JOB}/pause").status == 200
    harness.wait_until(lambda: a.next().status == 503, 5, what="A refuses next")
    lk.feed(sim, 1, tag="paused")
    dequeues = lk.count(sim, "dequeue")
    r = a.next()
    assert r.status == 503 and r.json()["code"] == "job_paused", r
    d = a.req("GET", f"/api/connector/dequeue/{harness.EXPORT_JOB}")
    assert d.status == 503 and d.header("Retry-After") == "30", d
    assert lk.count(sim, "dequeue") == dequeues
    # resume: both take again
    assert api(a, "POST", f"jobs/{lk.IMPORT_JOB}/resume").status == 200
    assert api(a, "POST", f"jobs/{lk.JOB}/resume").status == 200
    harness.wait_until(lambda: enqueue(b).status == 202, 5, what="B enqueues again")
    harness.wait_until(lambda: b.next().status == 200, 5, what="B hands out again")


def test_release_makes_another_consumer_get_the_export(gates, sim):
    a, b = gates
    (data, m), = lk.feed(sim, 1, tag="rel").items()
    r = a.next()
    assert r.status == 200 and r.body == data
    sim.advance(VISIBILITY + 5)             # D365 offers it again; A's lease (600 s) holds
    assert b.next().status == 204           # leased elsewhere: skipped
    x = api(b, "GET", "exports", token=None).json()
    (w,) = x["unconfirmed"]
    assert w["client"] == "consumer" and w["deliveries"] == 1 and w["message_id"]
    r = api(b, "POST", "exports/" + w["id"].replace(":", "%3A") + "/release")
    assert r.status == 200 and r.json()["released"] is True, r
    sim.advance(VISIBILITY + 5)
    r2 = b.next()
    assert r2.status == 200 and r2.body == data, r2
    assert r2.header("X-Fogate-Redelivery") == "true"
    assert b.ack(r2.header("X-Fogate-Message-Id")).status == 200
    lk.wait_acked(sim, m["message_id"])
    r = api(b, "POST", "exports/" + w["id"] + "/release")
    assert r.status == 409 and r.json()["code"] == "export_not_leased", r
    r = api(b, "POST", "exports/sim:nope/release")
    assert r.status == 404 and r.json()["code"] == "export_not_found", r
    assert any(l["action"] == "release" and l["result"] == "ok" for l in audit_lines(b))


def test_retry_ack_acks_now(gates, sim):
    a, b = gates
    (data, m), = lk.feed(sim, 1, tag="retry").items()
    r = a.next()
    assert r.status == 200
    sim.fault(endpoint="ack", kind="status", status=500, count=3)  # past upcall's retries
    c = a.ack(r.header("X-Fogate-Message-Id"))
    assert c.status == 202, c                 # confirmed; the upstream ack waits 60 s
    x = api(b, "GET", "exports", token=None).json()
    (w,) = x["unacked"]
    assert x.get("unconfirmed", []) == [] and w["state"] == "confirmed"
    r = api(b, "POST", "exports/" + w["id"] + "/retry-ack")
    assert r.status == 202, r
    lk.wait_acked(sim, m["message_id"], timeout=5)
    harness.wait_until(lambda: not api(b, "GET", "exports", token=None).json().get("unacked"),
                       5, what="the outbox empties")
    r = api(b, "POST", "exports/" + w["id"] + "/retry-ack")
    assert r.status == 409 and r.json()["code"] == "export_already_acked", r


def test_drain_via_the_api(workdir, sim, redis):
    extra = admin_extra(workdir)
    extra["workers"] = 2
    g = lk.Gate(workdir, sim, redis.port, name="fogate-drain", extra=extra)
    try:
        assert g.req("GET", "/readyz", key=None).status == 200
        assert api(g, "POST", "drain", token=None).status == 401
        t0 = time.monotonic()
        r = api(g, "POST", "drain")
        assert r.status == 202 and r.json()["notice_ms"] == 1500, r
        for _ in range(8):  # fresh connections: whichever worker takes them says so at once
            rz = g.req("GET", "/readyz", key=None)
            assert rz.status == 503 and rz.json()["status"] == "draining", rz
        assert api(g, "GET", "overview", token=None).json()["instance"]["draining"] is True
        assert api(g, "POST", "drain").json()["code"] == "already_draining"
        # still serving during the notice, then gone
        assert g.req("GET", "/healthz", key=None).status == 200
        rc = g.proc.popen.wait(15)
        took = time.monotonic() - t0
        assert rc == 0 and 1.3 < took < 12, (rc, took)
    finally:
        g.stop(check=False)
    assert any(l["action"] == "drain" and l["result"] == "ok" for l in audit_lines(g))


def test_ui_files_and_headers(workdir, sim, redis):
    g = lk.Gate(workdir, sim, redis.port, name="fogate-ui", extra=admin_extra(workdir))
    try:
        for path in ("/ui", "/ui/", "/ui/index.html"):
            r = harness.request(g.admin_base, "GET", path)
            assert r.status == 200 and r.header("Content-Type").startswith("text/html"), r
            csp = r.header("Content-Security-Policy")
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
            assert "unsafe-inline" not in csp and "style-src 'self'" in csp
            assert r.header("X-Content-Type-Options") == "nosniff"
            assert r.header("Referrer-Policy") == "no-referrer"
            assert b"<script>" not in r.body and b"style=" not in r.body  # nothing inline
        js = harness.request(g.admin_base, "GET", "/ui/app.js")
        assert js.status == 200 and js.header("Content-Type").startswith("text/javascript")
        assert b"innerHTML" not in js.body and b"localStorage" not in js.body
        assert harness.request(g.admin_base, "GET", "/ui/secret").status == 404
        assert harness.request(g.admin_base, "GET", "/ui/../admin/status").status == 404
        assert g.req("GET", "/ui", key=None).status == 404  # never on the client listener
    finally:
        g.stop()


def test_repoll_polls_an_import_now(workdir, sim, redis):
    """The follow-up's first poll is a minute away; repoll makes it now."""
    extra = admin_extra(workdir)
    extra["history"].update(follow_min_ms=60000, follow_max_ms=60000)
    g = lk.Gate(workdir, sim, redis.port, name="fogate-repoll", extra=extra)
    try:
        r = enqueue(g, name="repoll.csv")
        assert r.status == 202, r
        rid = r.json()["record_id"]
        sim.advance(10)  # fosim has processed it now; nobody asked yet
        rec = api(g, "GET", f"history/{rid}", token=None).json()
        assert not rec.get("final"), rec
        r = api(g, "POST", f"history/{rid}/repoll")
        assert r.status == 202 and r.json()["poll"] == "now", r
        rec = harness.wait_until(
            lambda: (lambda x: x if x.get("final") else None)(
                api(g, "GET", f"history/{rid}", token=None).json()), 10,
            what="the record is final after the repoll")
        assert rec["status"] == "Processed", rec
        r = api(g, "POST", f"history/{rid}/repoll")
        assert r.status == 409 and r.json()["code"] == "record_final", r
        r = api(g, "POST", "history/nothex/repoll")
        assert r.status == 400 and r.json()["code"] == "bad_record_id", r
        r = api(g, "POST", "history/" + "0" * 32 + "/repoll")
        assert r.status == 404 and r.json()["code"] == "record_not_found", r
    finally:
        g.stop()
