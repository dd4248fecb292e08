"""End-to-end tests of fogate's simple API (/v1/...) against a real fosim.

fosim (the D365 simulator) and fogate run as real processes on 127.0.0.1; every check goes
through fogate's HTTP port and is cross-checked against fosim's counters where it matters
(one poll loop for many waiters, one ack, no enqueue for a refused body)."""

import hashlib
import os
import re
import socket
import struct
import threading
import time
import uuid

import pytest

import harness
from harness import workdir  # noqa: F401  (module-wide temporary directory fixture)

SECRET_ENV = "FOGATE_E2E_D365_SECRET"
KEY1 = "simple-client-one-key-0123456789abcdef"
KEY2 = "simple-client-two-key-fedcba9876543210"
OTHER_JOB = "0f8fad5b-d9cb-469f-a165-70867728950e"
GUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
ENQUEUE_LIMIT = 1_000_000
BODY_LIMIT = 100_000  # other routes; an enqueue may be larger


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def fogate_config(sim, port):
    return {
        "listen": f"127.0.0.1:{port}",
        "public_base_url": f"http://127.0.0.1:{port}",
        "log_level": "info",
        "environments": {"sim": harness.sim_environment(sim, SECRET_ENV)},
        "jobs": {
            "groups-in": {"environment": "sim", "activity_id": harness.IMPORT_JOB.upper(),
                          "entity": "Customer groups", "company": "usmf",
                          "direction": "import"},
            "customers-out": {"environment": "sim", "activity_id": harness.EXPORT_JOB,
                              "direction": "export"},
            "other-out": {"environment": "sim", "activity_id": OTHER_JOB,
                          "direction": "export"},
        },
        "clients": {
            "one": {"api_key_sha256": sha(KEY1), "jobs": ["groups-in", "customers-out"]},
            "two": {"api_key_sha256": sha(KEY2), "jobs": ["other-out"]},
        },
        "limits": {"max_enqueue_bytes": ENQUEUE_LIMIT, "max_body_bytes": BODY_LIMIT},
        "timeouts": {"shutdown_grace_ms": 3000},
    }


class Gate:
    """A running fogate with its log file."""

    def __init__(self, workdir, sim):
        self.port = harness.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        path = os.path.join(workdir, "fogate.json")
        harness.write_fogate_config(path, fogate_config(sim, self.port))
        env = dict(os.environ)
        env[SECRET_ENV] = harness.APP_SECRET
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        argv = [harness.require_bin("FOGATE_BIN"), "--config", path]
        self.proc = harness.Proc("fogate", argv, workdir, env=env)
        harness.wait_until(lambda: harness.request(self.base, "GET", "/healthz", timeout=2)
                           .status == 200, what="fogate healthz")

    def req(self, method, path, body=None, key=KEY1, headers=None, timeout=30.0):
        h = dict(headers or {})
        if key:
            h["X-Api-Key"] = key
        return harness.request(self.base, method, path, body, h, timeout=timeout)

    def log(self):
        with open(self.proc.log_path, "rb") as f:
            return f.read().decode(errors="replace")


@pytest.fixture(scope="module")
def gate(workdir, sim):
    g = Gate(workdir, sim)
    yield g
    rc = g.proc.stop()
    log = g.log()
    assert rc == 0, f"fogate exited {rc}; log:\n{log[-4000:]}"
    for mark in SANITIZER_MARKS:
        assert mark not in log
    for secret in (harness.APP_SECRET, KEY1, KEY2):
        assert secret not in log, "a secret reached fogate's log"


@pytest.fixture(autouse=True)
def clean_sim(sim):
    sim.reset()
    yield
    sim.clear_faults()


def count(sim, endpoint, status=None):
    per = sim.counters()["requests"].get(endpoint, {})
    return sum(n for s, n in per.items() if status is None or s == str(status))


def enqueue(gate, body, **kw):
    r = gate.req("POST", "/v1/jobs/groups-in/messages", body, **kw)
    assert r.status == 202, r
    return r.json()


def status_path(doc, wait=None):
    path = doc["status_url"].split("127.0.0.1:", 1)[1]
    path = path[path.index("/"):]
    return path + (f"&wait={wait}" if wait is not None else "")


def test_enqueue_then_wait_for_final_status(gate, sim):
    doc = enqueue(gate, b"CUSTGROUPID,NAME\n10,Retail\n",
                  headers={"X-File-Name": "groups-2026.csv"})
    assert GUID_RE.match(doc["message_id"])
    assert doc["status_url"] == (f"{gate.base}/v1/messages/{doc['message_id']}"
                                 "?job=groups-in")
    assert count(sim, "enqueue", 200) == 1
    first = gate.req("GET", status_path(doc))
    assert first.status == 200, first
    assert first.json()["message_id"] == doc["message_id"]
    assert first.json()["final"] is False
    assert first.json()["status"] in ("Enqueued", "Processing")
    t0 = time.monotonic()
    r = gate.req("GET", status_path(doc, wait=20))
    assert r.status == 200, r
    assert r.json() == {"message_id": doc["message_id"], "status": "Processed", "final": True}
    assert time.monotonic() - t0 < 10


def test_status_without_job_uses_the_clients_only_environment(gate):
    doc = enqueue(gate, b"a,b\n")
    r = gate.req("GET", f"/v1/messages/{doc['message_id'].upper()}?wait=0")
    assert r.status == 200, r
    assert r.json()["message_id"] == doc["message_id"]


def test_errors_of_a_failed_import_are_a_json_array(gate, sim):
    doc = enqueue(gate, b"CUSTGROUPID\nFOSIM-ERROR\n")
    r = gate.req("GET", status_path(doc, wait=20))
    assert r.json()["status"] == "ProcessedWithErrors" and r.json()["final"] is True
    e = gate.req("GET", f"/v1/messages/{doc['message_id']}/errors?job=groups-in")
    assert e.status == 200, e
    body = e.json()
    assert body["message_id"] == doc["message_id"]
    assert body["execution_id"]
    assert isinstance(body["errors"], list) and len(body["errors"]) == 1
    assert body["errors"][0]["Field"] == "CUSTGROUPID"
    assert "FOSIM-ERROR" in body["errors"][0]["ErrorMessage"]
    assert count(sim, "odata:GetExecutionIdByMessageId", 200) == 1
    assert count(sim, "odata:GetExecutionErrors", 200) == 1


def test_errors_of_a_clean_import_are_empty(gate):
    doc = enqueue(gate, b"CUSTGROUPID\n10\n")
    gate.req("GET", status_path(doc, wait=20))
    e = gate.req("GET", f"/v1/messages/{doc['message_id']}/errors")
    assert e.status == 200, e
    assert e.json()["errors"] == []


def test_ten_waiters_share_one_poll_loop(gate, sim):
    sim.configure(enqueued_secs=1.5, processing_secs=1.5)
    try:
        doc = enqueue(gate, b"a\n")
        results = []

        def wait():
            results.append(gate.req("GET", status_path(doc, wait=30), timeout=40))

        threads = [threading.Thread(target=wait) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(results) == 10
        for r in results:
            assert r.status == 200, r
            assert r.json()["status"] == "Processed" and r.json()["final"] is True
        polls = count(sim, "odata:GetMessageStatus")
        # ~3 s to Processed with a 1 s, 1.5 s, 2.25 s ... schedule: a handful of polls,
        # where ten separate loops would need at least 10 and likely 30.
        assert 1 <= polls <= 6, polls
    finally:
        sim.configure(enqueued_secs=0.3, processing_secs=0.3)


def test_next_streams_the_file_and_ack_removes_it(gate, sim):
    sim.configure(download_location="http-port80")
    try:
        data = os.urandom(300_000)
        fed = sim.feed_export(data)
        r = gate.req("POST", "/v1/jobs/customers-out/next")
        assert r.status == 200, r
        assert r.body == data
        mid = r.header("X-Fogate-Message-Id")
        assert mid == fed["correlation_id"].lower()
        assert r.header("X-Fogate-Ack-Url") == (
            f"{gate.base}/v1/jobs/customers-out/messages/{mid}/ack")
        assert r.header("X-Fogate-Last-Dequeue") is None
        assert r.header("Content-Length") == str(len(data))
        acks = sim.counters()["acks"]
        a = gate.req("POST", f"/v1/jobs/customers-out/messages/{mid}/ack")
        assert a.status == 200, a
        assert a.json() == {"message_id": mid, "acked": True}
        assert sim.counters()["acks"] == acks + 1
        assert sim.ctl("GET", f"messages/{fed['message_id']}")["state"] == "Acked"
        sim.advance(3600)  # past the visibility timeout: an unacked message would be back
        again = gate.req("POST", "/v1/jobs/customers-out/next")
        assert again.status == 204, again
        assert again.body == b""
        # a second ack of the same delivery has nothing left to ack
        a2 = gate.req("POST", f"/v1/jobs/customers-out/messages/{mid}/ack")
        assert a2.status == 404 and a2.json()["code"] == "unknown_delivery"
    finally:
        sim.configure(download_location="https-self")


def test_unacked_export_comes_back_with_its_last_dequeue_time(gate, sim):
    fed = sim.feed_export(b"id,name\n1,x\n")
    first = gate.req("POST", "/v1/jobs/customers-out/next")
    assert first.status == 200 and first.body == b"id,name\n1,x\n"
    assert gate.req("POST", "/v1/jobs/customers-out/next").status == 204  # invisible now
    sim.advance(1900)
    second = gate.req("POST", "/v1/jobs/customers-out/next")
    assert second.status == 200, second
    mid = second.header("X-Fogate-Message-Id")
    assert mid == fed["correlation_id"].lower()
    assert second.header("X-Fogate-Last-Dequeue")
    a = gate.req("POST", f"/v1/jobs/customers-out/messages/{mid}/ack")
    assert a.status == 200, a


def test_next_on_an_empty_queue_is_204(gate, sim):
    r = gate.req("POST", "/v1/jobs/customers-out/next")
    assert r.status == 204, r
    assert r.body == b"" and r.header("Content-Type") is None
    assert count(sim, "dequeue", 204) == 1


def test_jobs_of_other_clients_are_forbidden(gate, sim):
    r = gate.req("POST", "/v1/jobs/groups-in/messages", b"x", key=KEY2)
    assert r.status == 403 and r.json()["code"] == "job_forbidden"
    r = gate.req("POST", "/v1/jobs/other-out/next")
    assert r.status == 403 and r.json()["code"] == "job_forbidden"
    r = gate.req("POST", "/v1/jobs/no-such-job/next")
    assert r.status == 403 and r.json()["code"] == "job_forbidden"
    r = gate.req("GET", f"/v1/messages/{uuid.uuid4()}?job=groups-in", key=KEY2)
    assert r.status == 403
    assert count(sim, "enqueue") == 0 and count(sim, "dequeue") == 0


def test_no_api_key_is_401(gate):
    r = gate.req("POST", "/v1/jobs/customers-out/next", key=None)
    assert r.status == 401, r
    r = gate.req("POST", "/v1/jobs/customers-out/next", key="wrong-key")
    assert r.status == 401, r


def test_wrong_direction_is_400_with_a_clear_code(gate, sim):
    r = gate.req("POST", "/v1/jobs/groups-in/next")
    assert r.status == 400 and r.json()["code"] == "not_export_job", r
    r = gate.req("POST", "/v1/jobs/customers-out/messages", b"x")
    assert r.status == 400 and r.json()["code"] == "not_import_job", r
    assert count(sim, "dequeue") == 0 and count(sim, "enqueue") == 0


def test_enqueue_over_the_limit_is_413_before_the_body(gate, sim):
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as s:
        s.sendall((f"POST /v1/jobs/groups-in/messages HTTP/1.1\r\nHost: x\r\n"
                   f"X-Api-Key: {KEY1}\r\nContent-Length: {ENQUEUE_LIMIT + 1}\r\n\r\n")
                  .encode())
        data = b""
        while b"\r\n\r\n" not in data:  # no body byte was sent: the answer comes anyway
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert count(sim, "enqueue") == 0


def test_chunked_enqueue_over_the_limit_is_413(gate, sim):
    with socket.create_connection(("127.0.0.1", gate.port), timeout=10) as s:
        s.sendall((f"POST /v1/jobs/groups-in/messages HTTP/1.1\r\nHost: x\r\n"
                   f"X-Api-Key: {KEY1}\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"x" * 65536
        sent = 0
        try:
            while sent <= ENQUEUE_LIMIT + 65536:
                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        except OSError:
            pass
        s.settimeout(10)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                c = s.recv(4096)
                if not c:
                    break
                data += c
        except OSError:
            pass
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert count(sim, "enqueue", 200) == 0


def jobstatus(sim, message_id):
    r = sim.get(f"/api/connector/jobstatus/{harness.IMPORT_JOB}?jobId={message_id}",
                token=sim.token(v2=True))
    assert r.status == 200, r
    return r.json()


def test_enqueue_passes_file_name_entity_and_company(gate, sim):
    doc = enqueue(gate, b"h\na\n", headers={"X-File-Name": "my file.csv"})
    gate.req("GET", status_path(doc, wait=20))
    st = jobstatus(sim, doc["message_id"])
    assert st["DataJobStatus"]["ExternalIdentifier"] == "my file.csv"
    assert st["ExecutionDetail"][0]["EntityName"] == "Customer groups"
    assert st["ExecutionDetail"][0]["Company"] == "usmf"
    r = gate.req("POST", "/v1/jobs/groups-in/messages?entity=Customers+V3&company=demf", b"h\n")
    assert r.status == 202, r
    gate.req("GET", status_path(r.json(), wait=20))
    st = jobstatus(sim, r.json()["message_id"])
    assert st["DataJobStatus"]["ExternalIdentifier"] is None
    assert st["ExecutionDetail"][0]["EntityName"] == "Customers V3"
    assert st["ExecutionDetail"][0]["Company"] == "demf"
    r = gate.req("POST", "/v1/jobs/groups-in/messages?company=%00", b"a")
    assert r.status == 400 and r.json()["code"] == "bad_query"
    r = gate.req("POST", "/v1/jobs/groups-in/messages", b"")
    assert r.status == 400 and r.json()["code"] == "empty_body"
    r = gate.req("POST", "/v1/jobs/groups-in/messages", b"a", headers={"X-File-Name": ""})
    assert r.status == 400 and r.json()["code"] == "bad_file_name"


def test_enqueue_limit_is_max_enqueue_bytes_not_max_body_bytes(gate, sim):
    data = b"CUSTGROUPID\n" + b"1234567\n" * ((ENQUEUE_LIMIT - 20) // 8)
    assert BODY_LIMIT < len(data) <= ENQUEUE_LIMIT
    doc = enqueue(gate, data)
    assert GUID_RE.match(doc["message_id"])
    r = gate.req("POST", "/v1/jobs/customers-out/next", b"x" * (BODY_LIMIT + 1))
    assert r.status == 413, r


def test_enqueue_is_not_resent_after_a_d365_failure(gate, sim):
    sim.fault(endpoint="enqueue", kind="status", status=500, count=1)
    r = gate.req("POST", "/v1/jobs/groups-in/messages", b"a,b\n")
    assert r.status == 502 and r.json()["code"] == "d365_error", r
    assert count(sim, "enqueue") == 1


def test_odata_400_becomes_a_clear_error_without_stack_trace(gate, sim):
    r = gate.req("GET", f"/v1/messages/{uuid.uuid4()}?job=groups-in")
    assert r.status == 400, r
    body = r.json()
    assert body["code"] == "d365_rejected"
    assert "GetMessageStatus" in body["message"]
    assert "The message was not found." in body["message"]
    text = r.body.decode()
    for leak in ("stacktrace", "ActionInvokable", "System.InvalidOperationException",
                 "innererror"):
        assert leak not in text
    assert count(sim, "odata:GetMessageStatus", 400) == 1


def test_throttling_by_d365_answers_429_with_retry_after(tmp_path, sim):
    # its own fogate: the environment's 429 gate stays closed for a minute
    g = Gate(str(tmp_path), sim)
    try:
        sim.fault(endpoint="odata:GetMessageStatus", kind="status", status=429,
                  retry_after=60)
        r = g.req("GET", f"/v1/messages/{uuid.uuid4()}?job=groups-in")
        assert r.status == 429, r
        assert r.json()["code"] == "d365_throttled"
        assert 50 <= int(r.header("Retry-After")) <= 60
        seen = count(sim, "odata:GetMessageStatus")
        assert seen >= 1
        # while the gate is closed fogate answers itself, without calling D365
        r2 = g.req("POST", "/v1/jobs/customers-out/next")
        assert r2.status == 429 and r2.json()["code"] == "d365_throttled", r2
        assert 1 <= int(r2.header("Retry-After")) <= 60
        assert count(sim, "odata:GetMessageStatus") == seen
        assert count(sim, "dequeue") == 0
    finally:
        rc = g.proc.stop()
        assert rc == 0, g.log()[-4000:]


@pytest.mark.parametrize("fault, low, high", [
    ({"retry_after": 30, "retry_after_form": "date"}, 25, 30),   # an HTTP date: its seconds
    ({"retry_after": 7200}, 3600, 3600),                        # clamped like the gate
])
def test_first_client_after_a_429_gets_the_gates_seconds(tmp_path, sim, fault, low, high):
    """Regression (issue 11 item 4): the client whose call met the 429 got Retry-After: 0
    for an HTTP date and an unclamped 7200, while the gate used the parsed, clamped value.
    One parse and one clamp now: its header matches what the next client is told."""
    g = Gate(str(tmp_path), sim)
    try:
        sim.fault(endpoint="odata:GetMessageStatus", kind="status", status=429, count=1,
                  **fault)
        r = g.req("GET", f"/v1/messages/{uuid.uuid4()}?job=groups-in")
        assert r.status == 429 and r.json()["code"] == "d365_throttled", r
        first = r.header("Retry-After")
        assert first.isdigit() and low <= int(first) <= high, first
        r2 = g.req("GET", f"/v1/messages/{uuid.uuid4()}?job=groups-in")
        assert r2.status == 429, r2
        assert low - 5 <= int(r2.header("Retry-After")) <= int(first), (first, r2.headers)
    finally:
        rc = g.proc.stop()
        assert rc == 0, g.log()[-4000:]


def test_401_on_a_simple_enqueue_is_sent_again_with_a_fresh_token(gate, sim):
    """Regression (issue 11 item 5): 401 on an enqueue answered 502 d365_unauthorized."""
    body = b"id,name\n" + b"7,seven\n" * 5000
    sim.fault(endpoint="enqueue", kind="status", status=401, count=1)
    r = gate.req("POST", "/v1/jobs/groups-in/messages", body)
    assert r.status == 202, r
    assert sim.counters()["requests"]["enqueue"] == {"401": 1, "200": 1}
    m = sim.ctl("GET", "messages/" + r.json()["message_id"])
    assert m["size"] == len(body), m


def test_bad_paths_and_methods(gate):
    assert gate.req("GET", "/v1/messages/not-a-guid").json()["code"] == "bad_message_id"
    r = gate.req("POST", f"/v1/messages/{uuid.uuid4()}")
    assert r.status == 405 and "GET" in r.header("Allow")
    assert gate.req("GET", "/v1/jobs/groups-in/next").status == 405
    assert gate.req("GET", "/v1/nothing").status == 404
    r = gate.req("GET", f"/v1/messages/{uuid.uuid4()}?job=groups-in&wait=soon")
    assert r.status == 400 and r.json()["code"] == "bad_query"


def test_ack_of_an_unknown_delivery_is_404(gate, sim):
    r = gate.req("POST", f"/v1/jobs/customers-out/messages/{uuid.uuid4()}/ack")
    assert r.status == 404 and r.json()["code"] == "unknown_delivery"
    assert sim.counters()["acks"] == 0


def test_client_leaving_a_wait_stops_the_poll_loop(gate, sim):
    sim.configure(enqueued_secs=30, processing_secs=30)
    try:
        doc = enqueue(gate, b"a\n")
        with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as s:
            s.sendall((f"GET {status_path(doc, wait=30)} HTTP/1.1\r\nHost: x\r\n"
                       f"X-Api-Key: {KEY1}\r\n\r\n").encode())
            harness.wait_until(lambda: count(sim, "odata:GetMessageStatus") >= 1,
                               what="the wait polling D365")
            # a reset, not a FIN: a half-closed client may still be waiting for its answer
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Once fogate has noticed the reset (however late on a loaded machine) the count
        # stays put for 3 s; a loop that goes on polling never gets there.
        deadline = time.monotonic() + 15
        while True:
            before = count(sim, "odata:GetMessageStatus")
            time.sleep(3)
            if count(sim, "odata:GetMessageStatus") == before or time.monotonic() > deadline:
                break
        assert count(sim, "odata:GetMessageStatus") == before
        assert before >= 1
    finally:
        sim.configure(enqueued_secs=0.3, processing_secs=0.3)


# Every way fogate names an error code in its sources: reply_error and the features'
# *_error(...) answers, d365_err (set_err, .code =), the pass-through's fail_reply, the
# front layer's refusals (refuse, http1 verdicts).
CODE_PATTERNS = [
    r'\w*_error\(\s*\w+(?:->\w+)?,\s*\d+,\s*"([a-z0-9_]+)"',
    r'set_err\([^,]+,\s*\d+,\s*"([a-z0-9_]+)"',
    r'\.code = "([a-z0-9_]+)"',
    r'fail_reply\(\w+,\s*[^,]+,\s*"([a-z0-9_]+)"',
    r'refuse\(\w+,\s*\d+,\s*"([a-z0-9_]+)"',
    r'\{\s*\d{3},\s*"([a-z0-9_]+)",',
    r'answer\(\w+,\s*\d+,\s*"([a-z0-9_]+)"',           # proxy/admin/adminapi.c
    r'_retry\(\w+,\s*\d+,\s*\w+,\s*"([a-z0-9_]+)"',    # simple_req_retry
]


def test_openapi_documents_every_error_code():
    """Every code any proxy/ source can answer is in docs/openapi.yaml (issue 11 item 7:
    the pass-through answered codes nobody had documented)."""
    import glob
    src = harness.require_bin("FOGATE_SRC")
    codes = {}
    for path in glob.glob(os.path.join(src, "proxy", "**", "*.c"), recursive=True):
        with open(path) as f:
            text = f.read()
        for pat in CODE_PATTERNS:
            for c in re.findall(pat, text):
                codes.setdefault(c, set()).add(os.path.relpath(path, src))
    assert len(codes) >= 60, codes
    with open(os.path.join(src, "docs", "openapi.yaml")) as f:
        doc = f.read()
    missing = sorted((c, sorted(p)) for c, p in codes.items() if f"`{c}`" not in doc)
    assert not missing, f"error codes missing from docs/openapi.yaml: {missing}"
    for path in ("/v1/jobs/{job}/messages:", "/v1/messages/{id}:", "/v1/messages/{id}/errors:",
                 "/v1/jobs/{job}/next:", "/v1/jobs/{job}/messages/{id}/ack:"):
        assert f"  {path}\n" in doc, path


def test_download_cut_off_by_d365_is_never_a_short_file(gate, sim):
    import http.client
    data = os.urandom(200_000)
    sim.feed_export(data)
    sim.fault(endpoint="download", kind="truncate", bytes=50_000)
    with pytest.raises((http.client.IncompleteRead, ConnectionError)):
        gate.req("POST", "/v1/jobs/customers-out/next")
    assert count(sim, "download") >= 1
    assert sim.counters()["acks"] == 0
    # the connection was closed, fogate itself carries on
    assert gate.req("POST", "/v1/jobs/customers-out/next").status == 204
