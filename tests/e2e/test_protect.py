"""End-to-end: fogate protects its clients from D365's and blob storage's limits and hangs.
fosim serves its own blob store with D365's old SAS version (sv=2014-02-14: 64 MiB Put Blob,
4 MiB blocks). Packages go up in blocks; stalled idempotent calls are retried (a download
resumes mid-body); an enqueue or ImportFromPackage whose answer never comes is not re-sent
and says so; D365's 413 on enqueue names the limit."""
import hashlib
import json
import os
import time

import pytest

import harness
from harness import Workdir

SECRET_ENV = "FOGATE_E2E_D365_SECRET"
KEY = "protect-client-key-0123456789abcdef"
ACT = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
FIRST_BYTE_MS = 1500
STALL_MS = 1000
IMPORT_FIRST_BYTE_MS = 2500
MIB = 1 << 20


def fogate_config(sim, port):
    return {
        "listen": f"127.0.0.1:{port}", "public_base_url": f"http://127.0.0.1:{port}",
        "environments": {"sim": harness.sim_environment(sim, SECRET_ENV)},
        "jobs": {
            "pkg-in": {"environment": "sim", "project": "Customers", "company": "usmf",
                       "direction": "import"},
            "groups-in": {"environment": "sim", "activity_id": harness.IMPORT_JOB,
                          "entity": "Customer groups", "direction": "import"},
            "customers-out": {"environment": "sim", "activity_id": harness.EXPORT_JOB,
                              "direction": "export"},
        },
        "clients": {"one": {"api_key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                            "jobs": ["pkg-in", "groups-in", "customers-out"]}},
        "timeouts": {"shutdown_grace_ms": 3000, "upstream_first_byte_ms": FIRST_BYTE_MS,
                     "upstream_stall_ms": STALL_MS,
                     "import_first_byte_ms": IMPORT_FIRST_BYTE_MS,
                     "upstream_total_ms": 30000},
    }


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    sim = gate = None
    try:
        sim = harness.start_fosim(w.path, harness.default_sim_config(
            blob_store="self", import_package_secs=0.2))
        port = harness.free_port()
        path = os.path.join(w.path, "fogate.json")
        harness.write_fogate_config(path, fogate_config(sim, port))
        os.environ[SECRET_ENV] = harness.APP_SECRET
        gate = harness.start_fogate(w.path, path, port=port)
        gate.base = f"http://127.0.0.1:{port}"
        yield sim, gate
    finally:
        rc = gate.stop() if gate else 0
        src = sim.stop() if sim else 0
        w.cleanup(request.session.testsfailed > 0)
        assert rc == 0 and src == 0


@pytest.fixture
def sim(env):
    s = env[0]
    s.reset()
    s.configure(blob_sas_version="2014-02-14", max_enqueue_bytes=32 * MIB)
    yield s
    s.clear_faults()


@pytest.fixture
def gate(env):
    return env[1]


def call(gate, method, path, body=None, timeout=120):
    return harness.request(gate.base, method, path, body, {"X-Api-Key": KEY}, timeout=timeout)


def requests(sim, endpoint, status=None):
    per = sim.counters()["requests"].get(endpoint, {})
    return sum(n for s, n in per.items() if status is None or s == str(status))


def blob(sim, exec_id):
    r = sim.get(f"/_sim/blobs/{exec_id}.zip")
    assert r.status == 200, r
    return r.json()


def import_package(gate, data):
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", data, timeout=600)
    assert r.status == 202, r
    return r.json()["execution_id"]


def test_package_over_one_block_goes_up_in_blocks_byte_exact(sim, gate):
    data = os.urandom(9 * MIB + 123)
    exec_id = import_package(gate, data)
    got = blob(sim, exec_id)
    assert got["committed_as"] == "blocks" and got["blocks"] == 3, got
    assert got["block_max"] == 4 * MIB  # the cap of sv=2014-02-14
    assert got["sha256"] == hashlib.sha256(data).hexdigest() and got["size"] == len(data)
    assert requests(sim, "blob_put") == 0 and requests(sim, "blob_blocklist") == 1


def test_package_of_one_block_goes_as_one_put_blob(sim, gate):
    data = os.urandom(1000)
    got = blob(sim, import_package(gate, data))
    assert got["committed_as"] == "blob" and got["sha256"] == hashlib.sha256(data).hexdigest()
    assert requests(sim, "blob_block") == 0


def test_newer_sas_version_gets_bigger_blocks_only_up_to_the_config(sim, gate):
    sim.configure(blob_sas_version="2019-12-12")
    data = os.urandom(6 * MIB)
    got = blob(sim, import_package(gate, data))
    # packages.block_bytes (4 MiB by default) still applies under a version allowing 4000 MiB
    assert got["committed_as"] == "blocks" and got["blocks"] == 2 and got["block_max"] == 4 * MIB


def test_a_failed_block_is_sent_again_alone(sim, gate):
    sim.fault(endpoint="blob_block", kind="status", status=500, count=1, after=1)
    data = os.urandom(10 * MIB)
    got = blob(sim, import_package(gate, data))
    assert got["sha256"] == hashlib.sha256(data).hexdigest() and got["blocks"] == 3
    assert requests(sim, "blob_block", 500) == 1 and requests(sim, "blob_block", 201) == 3


def test_a_block_whose_answer_never_comes_is_sent_again(sim, gate):
    # blob storage takes the second block but never answers: cut after
    # upstream_first_byte_ms, and that block (only) goes again
    sim.fault(endpoint="blob_block", kind="hang", count=1, after=1)
    data = os.urandom(9 * MIB)
    got = blob(sim, import_package(gate, data))
    assert got["sha256"] == hashlib.sha256(data).hexdigest() and got["blocks"] == 3
    assert got["put_block"] == 4  # three blocks, the second one twice


def test_download_stalling_mid_body_is_resumed_and_whole(sim, gate):
    data = os.urandom(3 * MIB)
    fed = sim.feed_export(data)
    sim.fault(endpoint="download", kind="stall", bytes=MIB + 17, count=1)
    t0 = time.monotonic()
    r = call(gate, "POST", "/v1/jobs/customers-out/next")
    assert r.status == 200, r
    assert r.body == data and r.header("Content-Length") == str(len(data))
    assert STALL_MS / 1000 <= time.monotonic() - t0 < 15
    assert sim.counters()["downloads"][fed["message_id"]] == 2


def test_a_dequeue_that_never_answers_fails_clearly_within_the_deadline(sim, gate):
    sim.fault(endpoint="dequeue", kind="hang")
    t0 = time.monotonic()
    r = call(gate, "POST", "/v1/jobs/customers-out/next")
    took = time.monotonic() - t0
    assert r.status == 504 and r.json()["code"] == "d365_stalled", r
    assert requests(sim, "dequeue") == 3  # the first attempt and two retries
    assert 3 * FIRST_BYTE_MS / 1000 <= took < 15, took


def test_an_enqueue_whose_answer_never_comes_is_not_sent_again(sim, gate):
    sim.fault(endpoint="enqueue", kind="hang", count=1)
    t0 = time.monotonic()
    r = call(gate, "POST", "/v1/jobs/groups-in/messages", b"a,b\n1,2\n")
    took = time.monotonic() - t0
    assert r.status == 504 and r.json()["code"] == "d365_outcome_unknown", r
    assert "may have received" in r.json()["message"]
    assert FIRST_BYTE_MS / 1000 <= took < 10, took
    assert sim.counters()["requests"]["enqueue"] == {"200": 1}  # sent once, D365 kept it


def test_an_enqueue_whose_upload_stalls_was_not_received(sim, gate):
    """D365 stops reading the body: the upload stalls (nothing moves for upstream_stall_ms)
    before the body went out whole, so D365 cannot have accepted it: d365_stalled, not
    d365_outcome_unknown, and still not sent again."""
    sim.fault(endpoint="enqueue", kind="stall_upload", bytes=MIB, count=1)
    import socket
    size = 32 * MIB
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", int(gate.base.rsplit(":", 1)[1])), timeout=30)
    s.sendall((f"POST /v1/jobs/groups-in/messages HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}"
               f"\r\nContent-Length: {size}\r\n\r\n").encode())
    try:  # fogate answers and stops reading once the upstream stalled
        for _ in range(size // MIB):
            s.sendall(b"a,b\n" * (MIB // 4))
    except (BrokenPipeError, ConnectionResetError):
        pass
    answer = b""
    try:
        while chunk := s.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    s.close()
    took = time.monotonic() - t0
    assert answer.startswith(b"HTTP/1.1 504"), answer[:300]
    doc = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert doc["code"] == "d365_stalled" and "stopped sending mid-transfer" in doc["message"]
    assert STALL_MS / 1000 <= took < 15, took
    assert requests(sim, "enqueue") == 0  # never answered, never sent again


def test_enqueue_refused_by_d365_as_too_large_names_the_limit(sim, gate):
    sim.configure(max_enqueue_bytes=1000)
    r = call(gate, "POST", "/v1/jobs/groups-in/messages", b"x" * 2000)
    assert r.status == 413 and r.json()["code"] == "d365_enqueue_too_large", r
    msg = r.json()["message"]
    assert "max_enqueue_bytes is 104857600 bytes" in msg and "/v1/packages/import" in msg


def test_import_from_package_without_answer_is_202_unknown_and_sent_once(sim, gate):
    sim.fault(endpoint="odata:ImportFromPackage", kind="hang", count=1)
    t0 = time.monotonic()
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", os.urandom(5000))
    took = time.monotonic() - t0
    assert r.status == 202, r
    assert r.json()["outcome"] == "unknown" and "not sent again" in r.json()["note"]
    assert IMPORT_FIRST_BYTE_MS / 1000 <= took < 15, took
    assert requests(sim, "odata:ImportFromPackage") == 1


def test_a_slow_client_is_not_a_stall(sim, gate):
    """fogate's own waits do not count: a client that stops reading a download, or stops
    sending an enqueue body, for longer than upstream_stall_ms holds the upstream transfer
    (paused) without it being cut."""
    import http.client
    import socket
    data = os.urandom(32 * MIB)  # more than the socket buffers hold: fogate must pause
    sim.feed_export(data)
    c = http.client.HTTPConnection("127.0.0.1", gate.base.rsplit(":", 1)[1], timeout=60)
    c.request("POST", "/v1/jobs/customers-out/next", headers={"X-Api-Key": KEY})
    r = c.getresponse()
    assert r.status == 200
    first = r.read(MIB)
    time.sleep(3 * STALL_MS / 1000)  # the slow reader under test
    rest = r.read()
    c.close()
    assert first + rest == data
    body = b"a,b\n" * 100000
    s = socket.create_connection(("127.0.0.1", int(gate.base.rsplit(":", 1)[1])), timeout=30)
    s.sendall((f"POST /v1/jobs/groups-in/messages HTTP/1.1\r\nHost: x\r\nX-Api-Key: {KEY}\r\n"
               f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode())
    s.sendall(body[:1000])
    time.sleep(3 * STALL_MS / 1000)  # the slow sender under test
    s.sendall(body[1000:])
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
    s.close()
    assert answer.startswith(b"HTTP/1.1 202"), answer[:300]
    assert requests(sim, "enqueue") == 1


def test_passthru_enqueue_without_answer_is_not_sent_again(sim, request):
    """The D365 pass-through (RIS-style clients) gets the same rule: a streamed enqueue sent
    whole without an answer is 504 d365_outcome_unknown, sent once; a dequeue that never
    answers is retried, then 504 d365_stalled."""
    import passkit
    w = Workdir()
    g = passkit.Gate(w.path, sim, timeouts={"upstream_first_byte_ms": FIRST_BYTE_MS,
                                            "upstream_stall_ms": STALL_MS,
                                            "shutdown_grace_ms": 3000})
    try:
        sim.fault(endpoint="enqueue", kind="hang", count=1)
        r = g.request("POST", "/api/connector/enqueue/" + harness.IMPORT_JOB, b"x,y\n")
        assert r.status == 504 and r.json()["code"] == "d365_outcome_unknown", r
        assert sim.counters()["requests"]["enqueue"] == {"200": 1}
        sim.fault(endpoint="dequeue", kind="hang")
        r = g.request("GET", "/api/connector/dequeue/" + harness.EXPORT_JOB)
        assert r.status == 504 and r.json()["code"] == "d365_stalled", r
        assert requests(sim, "dequeue") == 3
    finally:
        assert g.stop() == 0
        w.cleanup(request.session.testsfailed > 0)
