"""End-to-end tests of the file history (history.enabled): two fogate instances sharing one
real redis-server in front of fosim. Every file gets one record that both instances read
alike; filters, pagination and per-client visibility; Redis down never stops a transfer
(the lost writes are counted); the background follow-up makes an import's record final
without any client poll."""

import hashlib
import time

import pytest

import harness
import ledgerkit as lk
from ledgerkit import redis  # noqa: F401  (module-wide fixture)
from harness import workdir  # noqa: F401  (module-wide temporary directory fixture)

KEY2 = "history-other-client-key-0123456789abcdef"
OTHER_JOB = "other-in"
OTHER_ACTIVITY = "11111111-2222-4333-8444-555555555555"


@pytest.fixture(scope="module")
def sim(workdir):  # noqa: F811
    """fosim with a third job (the other client's import) and a processing delay long
    enough that a record is seen before it is final."""
    cfg = harness.default_sim_config(processing_secs=1.0)
    cfg["jobs"].append({"activity_id": OTHER_ACTIVITY, "direction": "import",
                        "entity": "Customer groups", "apps": [harness.APP_ID]})
    s = harness.start_fosim(workdir, cfg)
    yield s
    assert s.stop() == 0, s.proc.log_tail()


def history_extra(**hist):
    h = {"enabled": True, "follow_min_ms": 200, "follow_max_ms": 500,
         "write_timeout_ms": 500, "max_page": 50}
    h.update(hist)
    return {"history": h,
            "jobs": {OTHER_JOB: {"environment": "sim", "activity_id": OTHER_ACTIVITY,
                                 "entity": "Customer groups", "direction": "import"}},
            "clients": {"other": {"api_key_sha256": lk.sha(KEY2), "jobs": [OTHER_JOB]}}}


@pytest.fixture(autouse=True)
def clean(sim, redis):
    sim.reset()
    lk.redis_flush(redis)
    yield
    sim.clear_faults()


@pytest.fixture
def gates(workdir, sim, redis):
    a = lk.Gate(workdir, sim, redis.port, name="fogate-a", extra=history_extra())
    b = lk.Gate(workdir, sim, redis.port, name="fogate-b", extra=history_extra())
    yield a, b
    a.stop()
    b.stop()


def enqueue(gate, body, name=None, key=lk.KEY, job=lk.IMPORT_JOB, headers=None):
    h = dict(headers or {})
    if name:
        h["X-File-Name"] = name
    r = gate.req("POST", f"/v1/jobs/{job}/messages", body, h, key=key)
    assert r.status == 202, r
    return r.json()


def record(gate, rid, key=lk.KEY):
    r = gate.req("GET", f"/v1/history/{rid}", key=key)
    assert r.status == 200, r
    return r.json()


def record_soon(gate, rid, key=lk.KEY, timeout=10.0):
    """The record as soon as another instance sees it: history writes are fire-and-forget,
    so a read right after the answer may come before Redis applied the write."""
    out = {}

    def seen():
        r = gate.req("GET", f"/v1/history/{rid}", key=key)
        assert r.status in (200, 404), r
        out["rec"] = r.json() if r.status == 200 else None
        return out["rec"] is not None and "sent_at" in out["rec"]
    harness.wait_until(seen, timeout, what=f"record {rid} on {gate.name}")
    return out["rec"]


def eventually(gate, rid, pred, what, timeout=10.0):
    """Waits until record rid (read through gate) satisfies pred; returns it."""
    out = {}

    def ok():
        r = gate.req("GET", f"/v1/history/{rid}")
        out["rec"] = r.json() if r.status == 200 else {}
        return r.status == 200 and pred(out["rec"])
    harness.wait_until(ok, timeout, what=what)
    return out["rec"]


def wait_final(gate, rid, timeout=30.0):
    out = {}

    def final():
        out["rec"] = record(gate, rid)
        return out["rec"]["final"]
    harness.wait_until(final, timeout, what=f"record {rid} final")
    return out["rec"]


def test_import_record_complete_identical_and_final_without_client_poll(gates, sim):
    a, b = gates
    body = b"name;description\nG1;group one\n" * 50
    e = enqueue(a, body, name="groups-2026-12-07.csv")
    rid, mid = e["record_id"], e["message_id"]
    first = record_soon(b, rid)
    assert first["final"] is False and first["status"] in ("Enqueued", "Processing")
    rec = wait_final(b, rid)
    assert count_status_polls(sim) >= 1
    assert rec == record(a, rid), "both instances read one record"
    assert rec["direction"] == "import" and rec["via"] == "simple"
    assert rec["environment"] == "sim" and rec["job"] == lk.IMPORT_JOB
    assert rec["client"] == "consumer" and rec["file_name"] == "groups-2026-12-07.csv"
    assert rec["size"] == len(body) and rec["sha256"] == hashlib.sha256(body).hexdigest()
    assert rec["message_id"] == mid and rec["status"] == "Processed"
    for t in ("received_at", "sent_at", "final_at", "status_at"):
        assert rec[t].endswith("Z"), rec
    assert rec["received_at"] <= rec["sent_at"] <= rec["final_at"]
    seen = [s["status"] for s in rec["statuses"]]
    assert seen[0] == "Received" and seen[1] == "Enqueued" and seen[-1] == "Processed", seen
    assert "errors" not in rec


def count_status_polls(sim):
    return lk.count(sim, "odata:GetMessageStatus")


def test_import_with_errors_gets_its_errors_once(gates, sim):
    a, b = gates
    e = enqueue(a, b"code;name\nFOSIM-ERROR;bad\n", name="bad.csv")
    eventually(b, e["record_id"], lambda x: "errors" in x, "errors in the record", 30)
    rec = record(a, e["record_id"])
    assert rec["final"] is True and rec["status"] == "ProcessedWithErrors", rec
    assert rec["execution_id"] and rec["errors"], rec
    time.sleep(1.0)
    assert lk.count(sim, "odata:GetExecutionErrors") == 1, "errors are fetched once"


def test_export_record_delivered_confirmed(gates, sim):
    a, b = gates
    data = b"export-file-bytes-" * 100
    sim.feed_export(data)
    r = a.next()
    assert r.status == 200 and r.body == data, r
    mid = r.header("X-Fogate-Message-Id")
    assert b.ack(mid).status in (200, 202)
    page = a.req("GET", f"/v1/history?job={lk.JOB}").json()
    assert len(page["records"]) == 1 and page["next_cursor"] is None, page
    rec = eventually(a, page["records"][0]["id"], lambda x: x.get("confirmed_at"), "confirmed")
    assert rec["direction"] == "export" and rec["message_id"] == mid
    assert rec["delivered_to"] == ["consumer"] and rec["deliveries"] == 1
    assert rec["size"] == len(data) and rec["sha256"] == hashlib.sha256(data).hexdigest()
    assert rec["confirmed_by"] == "consumer" and rec["confirmed_at"]
    assert rec["status"] in ("Confirmed", "Acked"), rec
    assert rec == record(b, rec["id"])


def test_filters_and_pagination(gates):
    a, b = gates
    ids = [enqueue(a if i % 2 else b, f"row;{i}\n".encode(), name=f"batch-{i}.csv")["record_id"]
           for i in range(7)]
    got, times, cursor, pages = [], [], None, 0
    while True:
        path = f"/v1/history?job={lk.IMPORT_JOB}&limit=3" + (f"&cursor={cursor}" if cursor else "")
        r = (a if pages % 2 else b).req("GET", path)
        assert r.status == 200, r
        page = r.json()
        assert len(page["records"]) <= 3
        got += [x["id"] for x in page["records"]]
        times += [x["received_at"] for x in page["records"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(got) == sorted(ids) and len(set(got)) == len(ids), "each record once"
    assert times == sorted(times, reverse=True), "newest first (ties: any order)"
    assert pages == 3
    one = a.req("GET", "/v1/history?file=batch-4").json()["records"]
    assert [x["id"] for x in one] == [ids[4]]
    assert a.req("GET", "/v1/history?since=2100-01-01T00:00:00Z").json()["records"] == []
    mid = record(a, ids[3])["received_at"]
    until = a.req("GET", f"/v1/history?until={mid}&limit=50").json()["records"]
    assert {x["id"] for x in until} >= set(ids[:4])
    assert all(x["received_at"] <= mid for x in until)
    assert a.req("GET", "/v1/history?status=NoSuchStatus").json()["records"] == []
    for bad, code in (("limit=0", "bad_query"), ("limit=51", "bad_query"),
                      ("cursor=zzz", "bad_cursor"), ("since=yesterday", "bad_query")):
        r = a.req("GET", f"/v1/history?{bad}")
        assert r.status == 400 and r.json()["code"] == code, (bad, r)


def test_client_sees_only_its_own_jobs(gates):
    a, b = gates
    mine = enqueue(a, b"mine\n", name="mine.csv")["record_id"]
    theirs = enqueue(b, b"theirs\n", name="theirs.csv", key=KEY2, job=OTHER_JOB)["record_id"]
    ids = [x["id"] for x in a.req("GET", "/v1/history").json()["records"]]
    assert mine in ids and theirs not in ids
    ids = [x["id"] for x in b.req("GET", "/v1/history", key=KEY2).json()["records"]]
    assert ids == [theirs]
    r = b.req("GET", f"/v1/history/{mine}", key=KEY2)
    assert r.status == 404 and r.json()["code"] == "record_not_found"
    r = b.req("GET", f"/v1/history?job={lk.IMPORT_JOB}", key=KEY2)
    assert r.status == 403 and r.json()["code"] == "job_forbidden"
    assert a.req("GET", "/v1/history/0123456789abcdef0123456789abcdef").status == 404
    assert a.req("GET", "/v1/history/not-an-id").status == 404
    assert a.req("GET", "/v1/history", key=None).status == 401


def test_redis_down_transfers_proceed_and_lost_writes_are_counted(workdir, sim):
    red = harness.start_redis(workdir)
    g = lk.Gate(workdir, sim, red.port, name="fogate-down",
                ledger={"enabled": False}, extra=history_extra())
    try:
        before = g.status_all()["history"]["lost"]
        red.stop()
        for i in range(3):
            e = enqueue(g, f"down;{i}\n".encode(), name=f"down-{i}.csv")
            assert e["message_id"]
        data = b"export-while-redis-is-down"
        sim.feed_export(data)
        r = g.next()
        assert r.status == 200 and r.body == data
        assert g.ack(r.header("X-Fogate-Message-Id")).status == 200
        harness.wait_until(lambda: g.status_all()["history"]["lost"] >= before + 6, 10,
                           what="lost history writes counted")
        r = g.req("GET", "/v1/history")
        assert r.status == 503 and r.json()["code"] == "history_unavailable"
    finally:
        g.stop()


# ---- idempotent enqueue ----

def after_409(send):
    """Sends, and again after Retry-After while the answer is 409: a client's duty. The
    first enqueue's record may reach Redis a moment after its answer reached the client."""
    for _ in range(20):
        r = send()
        if r.status != 409:
            return r
        assert r.header("Retry-After") == "1", r
        time.sleep(0.05)
    return r


def enqueue_raw(gate, body, idem, job=lk.IMPORT_JOB, key=lk.KEY):
    return after_409(lambda: gate.req("POST", f"/v1/jobs/{job}/messages", body,
                                      {"Idempotency-Key": idem, "X-File-Name": "idem.csv"},
                                      key=key))


def test_idempotent_enqueue_replay_across_instances(gates, sim, redis):
    a, b = gates
    body = b"code;name\nI1;idempotent\n"
    first = enqueue_raw(a, body, "order-4711")
    assert first.status == 202, first
    again = enqueue_raw(b, body, "order-4711")
    assert again.status == 202, again
    j1, j2 = first.json(), again.json()
    assert j2["message_id"] == j1["message_id"] and j2["record_id"] == j1["record_id"]
    assert j2["replayed"] is True and "replayed" not in j1
    assert lk.count(sim, "enqueue") == 1, "nothing enqueued twice"
    other = enqueue_raw(b, body + b"changed\n", "order-4711")
    assert other.status == 422 and other.json()["code"] == "idempotency_key_reused", other
    assert lk.count(sim, "enqueue") == 1
    eventually(a, j1["record_id"], lambda x: x.get("idempotent_replays") == 1, "replay counted")
    # the key is stored hashed, never as given
    keys = harness.resp(redis.port, "KEYS", "*")
    assert not any("order-4711" in k for k in keys), keys
    assert any(k.startswith(f"fogate:pkg:idem:{lk.IMPORT_JOB}:") for k in keys), keys
    # another key is another enqueue
    third = enqueue_raw(b, body, "order-4712")
    assert third.status == 202 and third.json()["message_id"] != j1["message_id"]
    assert lk.count(sim, "enqueue") == 2


def test_idempotent_enqueue_in_flight_is_409(gates, sim, redis):
    a, b = gates
    import socket
    s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
    try:
        s.sendall((f"POST /v1/jobs/{lk.IMPORT_JOB}/messages HTTP/1.1\r\nHost: x\r\n"
                   f"X-Api-Key: {lk.KEY}\r\nIdempotency-Key: slow-1\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n").encode())

        harness.wait_until(lambda: harness.resp(redis.port, "KEYS", "fogate:pkg:idem:*"), 10,
                           what="the first enqueue's reservation")
        r = b.req("POST", f"/v1/jobs/{lk.IMPORT_JOB}/messages", b"hello",
                  {"Idempotency-Key": "slow-1"})
        assert r.status == 409, r
        assert r.json()["code"] == "idempotency_key_in_use" and r.header("Retry-After") == "1"
        s.sendall(b"0\r\n\r\n")
        resp = s.recv(65536).decode()
        assert resp.startswith("HTTP/1.1 202"), resp
    finally:
        s.close()
    r = enqueue_raw(b, b"hello", "slow-1")
    assert r.status == 202 and r.json()["replayed"] is True, r
    assert lk.count(sim, "enqueue") == 1


def test_idempotency_failed_enqueue_frees_the_key(gates, sim):
    a, b = gates
    sim.fault(endpoint="enqueue", kind="status", status=500, count=1)
    r = enqueue_raw(a, b"x;1\n", "fails-once")
    assert r.status >= 500, r
    r = enqueue_raw(b, b"x;1\n", "fails-once")
    assert r.status == 202 and "replayed" not in r.json(), r
    bad = a.req("POST", f"/v1/jobs/{lk.IMPORT_JOB}/messages", b"x", {"Idempotency-Key": ""})
    assert bad.status == 400 and bad.json()["code"] == "bad_idempotency_key"


# ---- receipts ----

import hmac  # noqa: E402
import http.server  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402

RECEIPT_KEY = b"receipt-test-key-8c1f0e2d"


class Receiver:
    """A small HTTP server standing for a client's callback: records every POST; answers
    500 to the first `fail` ones (or all while `down`), then 200."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen, self.fail, self.down = [], 0, False
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    bad = outer.down or outer.fail > 0
                    if outer.fail > 0:
                        outer.fail -= 1
                    outer.seen.append({"body": body, "sig": self.headers["X-Fogate-Signature"],
                                       "id": self.headers["X-Fogate-Receipt-Id"],
                                       "status": 500 if bad else 200})
                self.send_response(500 if bad else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/hook"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def accepted(self, rid=None):
        with self.lock:
            return [s for s in self.seen if s["status"] == 200 and
                    (rid is None or s["id"].startswith(rid))]

    def attempts(self, rid):
        with self.lock:
            return [s for s in self.seen if s["id"].startswith(rid)]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def verify(sig, body, key=RECEIPT_KEY):
    """How a receiver checks a receipt (docs/history.md)."""
    parts = dict(p.split("=", 1) for p in sig.split(","))
    mac = hmac.new(key, parts["t"].encode() + b"." + body, "sha256").hexdigest()
    return hmac.compare_digest(mac, parts["v1"])


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def receipt_extra(workdir, receiver):
    path = os.path.join(workdir, "receipt.key")
    with open(path, "wb") as f:
        f.write(RECEIPT_KEY + b"\n")
    os.chmod(path, 0o600)
    extra = history_extra()
    extra["jobs"][lk.IMPORT_JOB] = {"environment": "sim", "activity_id": harness.IMPORT_JOB,
                                    "entity": "Customer groups", "direction": "import",
                                    "callback_url": receiver.url}
    extra["receipts"] = {"key_file": path, "allow_http": True, "retry_min_ms": 200,
                         "retry_max_ms": 400, "timeout_ms": 1000, "interval_ms": 100}
    return extra


def test_receipt_once_signed_after_failures(workdir, sim, redis, receiver):
    extra = receipt_extra(workdir, receiver)
    a = lk.Gate(workdir, sim, redis.port, name="fogate-ra", extra=extra)
    b = lk.Gate(workdir, sim, redis.port, name="fogate-rb", extra=extra)
    try:
        receiver.fail = 2
        body = b"code;name\nR1;receipt\n"
        e = enqueue(a, body, name="receipt.csv")
        rid = e["record_id"]
        harness.wait_until(lambda: receiver.accepted(rid), 30, what="receipt accepted")
        time.sleep(1.5)  # would a second one come?
        ok = receiver.accepted(rid)
        assert len(ok) == 1, receiver.seen
        assert len(receiver.attempts(rid)) == 3, "two failures, then the one accepted"
        r = ok[0]
        assert verify(r["sig"], r["body"]), r
        assert not verify(r["sig"], r["body"] + b" "), "a changed body fails the check"
        j = json.loads(r["body"])
        assert j["record_id"] == rid and j["receipt_id"] == f"{rid}:Processed"
        assert j["status"] == "Processed" and j["final"] is True and j["job"] == lk.IMPORT_JOB
        assert j["file_name"] == "receipt.csv" and j["message_id"] == e["message_id"]
        assert j["sha256"] == hashlib.sha256(body).hexdigest() and j["size"] == len(body)
        eventually(b, rid, lambda x: x.get("receipts_sent") == ["Processed"], "receipt noted")
        # an import that ends with errors: its receipt carries them
        e2 = enqueue(b, b"code;name\nFOSIM-ERROR;x\n", name="bad.csv")
        harness.wait_until(lambda: receiver.accepted(e2["record_id"]), 30, what="2nd receipt")
        j2 = json.loads(receiver.accepted(e2["record_id"])[0]["body"])
        assert j2["status"] == "ProcessedWithErrors" and j2["errors"], j2
    finally:
        a.stop()
        b.stop()


def test_receipt_delivered_by_the_other_instance_after_sigkill(workdir, sim, redis, receiver):
    extra = receipt_extra(workdir, receiver)
    a = lk.Gate(workdir, sim, redis.port, name="fogate-ka", extra=extra)
    receiver.down = True
    e = enqueue(a, b"code;name\nK1;killed\n", name="killed.csv")
    rid = e["record_id"]
    harness.wait_until(lambda: receiver.attempts(rid), 30, what="a first receipt attempt")
    a.kill()
    n = len(receiver.attempts(rid))
    receiver.down = False
    b = lk.Gate(workdir, sim, redis.port, name="fogate-kb", extra=extra)
    try:
        harness.wait_until(lambda: receiver.accepted(rid), 30, what="receipt from the other")
        time.sleep(1.0)
        ok = receiver.accepted(rid)
        assert len(ok) == 1 and verify(ok[0]["sig"], ok[0]["body"])
        assert len(receiver.attempts(rid)) > n
        assert b.status_all()["history"]["receipts_sent"] == 1
    finally:
        b.stop()


# ---- the pass-through enqueue ----

def test_passthru_enqueue_recorded_and_idempotent(gates, sim):
    a, b = gates
    path = f"/api/connector/enqueue/{harness.IMPORT_JOB}?entity=Customer%20groups"
    body = b"code;name\nP1;passthrough\n"
    hdr = {"x-ms-dyn-externalidentifier": "native.csv", "Idempotency-Key": "native-1"}
    r = a.req("POST", path, body, hdr)
    assert r.status == 200, r
    mid = json.loads(r.body)
    again = after_409(lambda: b.req("POST", path, body, hdr))
    assert again.status == 200 and json.loads(again.body) == mid, again
    assert again.header("X-Fogate-Replayed") == "true"
    assert lk.count(sim, "enqueue") == 1
    other = b.req("POST", path, body + b"x", hdr)
    assert other.status == 422 and other.json()["code"] == "idempotency_key_reused"
    recs = a.req("GET", "/v1/history?file=native.csv").json()["records"]
    assert len(recs) == 1, recs
    rec = wait_final(b, recs[0]["id"])
    assert rec["via"] == "passthru" and rec["message_id"] == mid.lower()
    assert rec["sha256"] == hashlib.sha256(body).hexdigest() and rec["size"] == len(body)
    assert rec["status"] == "Processed"
    eventually(a, rec["id"], lambda x: x.get("idempotent_replays") == 1, "replay counted")
    plain = a.req("POST", path, b"code;name\nP2;no key\n", {})
    assert plain.status == 200 and lk.count(sim, "enqueue") == 2


def test_receipt_for_an_export_left_unconfirmed(workdir, sim, redis, receiver):
    extra = receipt_extra(workdir, receiver)
    extra["jobs"][lk.JOB] = {"environment": "sim", "activity_id": harness.EXPORT_JOB,
                             "direction": "export", "callback_url": receiver.url}
    extra["receipts"]["unconfirmed_s"] = 1
    g = lk.Gate(workdir, sim, redis.port, name="fogate-unconf", extra=extra)
    try:
        sim.feed_export(b"left-unconfirmed")
        sim.feed_export(b"confirmed-at-once")
        first = g.next()
        assert first.status == 200 and first.body == b"left-unconfirmed", first
        second = g.next()
        assert second.status == 200, second
        assert g.ack(second.header("X-Fogate-Message-Id")).status in (200, 202)
        left = [x for x in g.req("GET", f"/v1/history?job={lk.JOB}").json()["records"]
                if x["message_id"] == first.header("X-Fogate-Message-Id")][0]
        harness.wait_until(lambda: receiver.accepted(left["id"]), 20, what="unconfirmed receipt")
        time.sleep(1.5)
        assert len(receiver.accepted()) == 1, "none for the confirmed export, one for the other"
        r = receiver.accepted()[0]
        j = json.loads(r["body"])
        assert verify(r["sig"], r["body"]) and j["status"] == "unconfirmed" and j["final"] is False
        assert j["direction"] == "export" and j["message_id"] == left["message_id"]
        assert j["sha256"] == hashlib.sha256(b"left-unconfirmed").hexdigest()
    finally:
        g.stop()


def test_export_acked_later_by_the_outbox_ends_the_record(gates, sim):
    a, b = gates
    sim.feed_export(b"acked-by-the-outbox")
    r = a.next()
    assert r.status == 200, r
    mid = r.header("X-Fogate-Message-Id")
    sim.fault(endpoint="ack", kind="status", status=500, count=8)  # upcall retries some
    ack = b.ack(mid)
    assert ack.status == 202 and ack.json()["ack"] == "pending", ack
    sim.clear_faults()
    rid = a.req("GET", f"/v1/history?job={lk.JOB}").json()["records"][0]["id"]
    rec = eventually(a, rid, lambda x: x["status"] == "Acked" and x.get("delivered_at"),
                     "acked by the outbox", 20)
    assert rec["final"] is True and rec["confirmed_by"] == "consumer" and rec["acked_at"]
    seen = [s["status"] for s in rec["statuses"]]
    # "Delivered" is missing when the confirm on b reached Redis before a's delivery write
    assert seen in (["Delivered", "Confirmed", "Acked"], ["Confirmed", "Acked"]), seen
    assert rec["delivered_at"] and rec["deliveries"] == 1


def test_passthru_dequeue_download_ack_recorded(gates, sim):
    a, b = gates
    data = b"native-export-file" * 10
    sim.feed_export(data)
    dq = a.req("GET", f"/api/connector/dequeue/{harness.EXPORT_JOB}")
    assert dq.status == 200, dq
    msg = dq.json()
    loc = msg["DownloadLocation"]
    assert loc.startswith(a.base), loc
    dl = b.req("GET", loc[len(a.base):])
    assert dl.status == 200 and dl.body == data, dl
    ack = a.req("POST", f"/api/connector/ack/{harness.EXPORT_JOB}", json.dumps(msg).encode(),
                {"Content-Type": "application/json"})
    assert ack.status == 200, ack
    out = {}

    def listed():
        out["rid"] = [x for x in a.req("GET", f"/v1/history?job={lk.JOB}").json()["records"]
                      if x.get("message_id") == msg["CorrelationId"].lower()]
        return out["rid"]
    harness.wait_until(listed, 10, what="the export listed")
    rid = out["rid"]
    assert len(rid) == 1, rid
    rec = eventually(b, rid[0]["id"], lambda x: x["status"] == "Acked" and x.get("sha256")
                     and x.get("confirmed_at"), "pass-through confirmed and acked")
    assert rec["delivered_to"] == ["consumer"] and rec["deliveries"] == 1
    assert rec["confirmed_by"] == "consumer"   # the consumer's ack, not only D365's
    assert rec["size"] == len(data) and rec["sha256"] == hashlib.sha256(data).hexdigest()


# ---- without the ack ledger: the pass-through dequeue and ack, the simple API ----

@pytest.fixture
def bare_gates(workdir, sim, redis):
    a = lk.Gate(workdir, sim, redis.port, name="fogate-na", ledger={"enabled": False},
                extra=history_extra())
    b = lk.Gate(workdir, sim, redis.port, name="fogate-nb", ledger={"enabled": False},
                extra=history_extra())
    yield a, b
    a.stop()
    b.stop()


def export_of(gate, mid, pred, what):
    """The export record of message mid listed on gate, once pred holds."""
    out = {}

    def ok():
        recs = [x for x in gate.req("GET", f"/v1/history?job={lk.JOB}").json()["records"]
                if x.get("message_id") == mid]
        out["rec"] = recs[0] if len(recs) == 1 else None
        return out["rec"] is not None and pred(out["rec"])
    harness.wait_until(ok, 10, what=what)
    return out["rec"]


def test_passthru_dequeue_and_ack_without_ledger_recorded(bare_gates, sim):
    a, b = bare_gates
    ep = f"/api/connector/{{}}/{harness.EXPORT_JOB}"
    # one downloaded through fogate, one whose file never came through fogate
    data = b"native-export-no-ledger" * 10
    sim.feed_export(data)
    sim.feed_export(b"fetched-elsewhere")
    got = []
    for gate in (a, b):
        dq = gate.req("GET", ep.format("dequeue"))
        assert dq.status == 200, dq
        got.append(dq.json())
    dl = b.req("GET", got[0]["DownloadLocation"][len(a.base):])
    assert dl.status == 200 and dl.body == data, dl
    mids = [m["CorrelationId"].lower() for m in got]
    rec = export_of(a, mids[1], lambda x: x["status"] == "Dequeued", "dequeued, not downloaded")
    assert rec["delivered_to"] == ["consumer"] and rec["dequeued_at"] and rec["final"] is False
    assert rec["via"] == "passthru" and rec["environment"] == "sim" and "deliveries" not in rec
    for gate, m in ((b, got[0]), (a, got[1])):
        ack = gate.req("POST", ep.format("ack"), json.dumps(m).encode(),
                       {"Content-Type": "application/json"})
        assert ack.status == 200, ack
    assert lk.count(sim, "ack") == 2
    first = export_of(a, mids[0], lambda x: x["status"] == "Acked", "the downloaded one acked")
    assert first["final"] and first["acked_at"] and first["confirmed_by"] == "consumer"
    assert first["delivered_to"] == ["consumer"] and first["deliveries"] == 1
    assert first["size"] == len(data) and first["sha256"] == hashlib.sha256(data).hexdigest()
    seen = [s["status"] for s in first["statuses"]]
    assert seen == ["Dequeued", "Delivered", "Confirmed", "Acked"], seen
    second = export_of(b, mids[1], lambda x: x["status"] == "Acked", "the other acked")
    assert [s["status"] for s in second["statuses"]] == ["Dequeued", "Confirmed", "Acked"]
    assert first == record(b, first["id"]) and second == record(a, second["id"])


def test_simple_next_and_ack_without_ledger_recorded(bare_gates, sim):
    a, b = bare_gates
    data = b"simple-export-no-ledger" * 7
    sim.feed_export(data)
    r = a.next()
    assert r.status == 200 and r.body == data, r
    mid = r.header("X-Fogate-Message-Id")
    assert a.ack(mid).status == 200
    rec = export_of(b, mid, lambda x: x["status"] == "Acked", "acked without the ledger")
    assert rec["final"] and rec["confirmed_by"] == "consumer" and rec["deliveries"] == 1
    assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec == record(a, rec["id"])


# ---- today's counts, computed in Redis ----

def overview(gate):
    r = harness.request(gate.admin_base, "GET", "/admin/api/overview")
    assert r.status == 200, r
    return r.json()


def today_of(ov, job):
    return [j for j in ov["jobs"] if j["name"] == job][0]["today"]


def test_today_counts_cluster_wide_beyond_one_page(workdir, sim, redis):
    """More finals than one history page holds (max_page 5): counted in Redis once each,
    per UTC day, the same from both instances."""
    a = lk.Gate(workdir, sim, redis.port, name="fogate-ta", extra=history_extra(max_page=5))
    b = lk.Gate(workdir, sim, redis.port, name="fogate-tb", extra=history_extra(max_page=5))
    try:
        ids = [enqueue(a if i % 2 else b, f"code;name\nT{i};ok\n".encode(),
                       name=f"today-{i}.csv") for i in range(7)]
        ids.append(enqueue(a, b"code;name\nFOSIM-ERROR;bad\n", name="today-bad.csv"))
        for i, data in enumerate(lk.feed(sim, 2, tag="today")):
            g = a if i else b
            n = g.next()
            assert n.status == 200, n
            assert (b if i else a).ack(n.header("X-Fogate-Message-Id")).status in (200, 202)
        for e in ids:
            wait_final(a, e["record_id"])
        # a client's polls see the final statuses again, on both: nothing counts twice
        for e in ids:
            for g in (a, b):
                assert g.req("GET", f"/v1/messages/{e['message_id']}?job={lk.IMPORT_JOB}").status == 200
        want_in = {"Processed": 7, "ProcessedWithErrors": 1}
        seen = {}

        def counted():
            ov = overview(a)
            seen["counts"] = {j: today_of(ov, j) for j in (lk.JOB, lk.IMPORT_JOB)}
            return today_of(ov, lk.JOB) and today_of(ov, lk.JOB)["counts"] == {"Acked": 2} \
                and today_of(ov, lk.IMPORT_JOB)["counts"] == want_in
        try:
            harness.wait_until(counted, 20, what="today's counts")
        except TimeoutError:
            raise AssertionError(f"today's counts: {seen}, history: "
                                 f"{a.status_all()['history']} {b.status_all()['history']}")
        ova, ovb = overview(a), overview(b)
        for job in (lk.JOB, lk.IMPORT_JOB, OTHER_JOB):
            assert today_of(ova, job) == today_of(ovb, job), job
        assert today_of(ova, OTHER_JOB) == {"counts": {}, "last_ms": None}
        assert today_of(ova, lk.IMPORT_JOB)["last_ms"] > 0
        date = time.strftime("%Y-%m-%d", time.gmtime())
        assert ova["today"] == {"date": date, "time_zone": "UTC"} == ovb["today"]
        page = a.req("GET", f"/v1/history?job={lk.IMPORT_JOB}&limit=5").json()
        assert len(page["records"]) == 5 and page["next_cursor"], "more finals than a page"
        key = f"fogate:hist:t:sim:{date}"
        assert 0 < int(harness.resp(redis.port, "PTTL", key)) <= 48 * 3600 * 1000
        assert harness.resp(redis.port, "HGET", key, f"{lk.IMPORT_JOB}\tProcessed") == "7"
    finally:
        a.stop()
        b.stop()
