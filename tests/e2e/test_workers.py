"""End to end: fogate with several worker threads (`workers`), each on its own SO_REUSEPORT
listener, event loop, upstream client and token manager, in front of a real fosim.

Which worker serves a connection is read from the request log line (its `worker`) of a
GET /healthz on that same keep-alive connection, found by the X-Request-Id the client sent;
the requests under test follow on it. (/admin/status is on the admin listener, which worker
0 serves.)"""
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import harness
import passkit
from harness import EXPORT_JOB, IMPORT_JOB
from harness import workdir  # noqa: F401
from passkit import ALICE_KEY

ENQ = "/api/connector/enqueue/" + IMPORT_JOB + "?entity=Customer+groups&company=usmf"
DEQ = "/api/connector/dequeue/" + EXPORT_JOB
CAROL_KEY = "carol-key-added-by-a-reload-0123"


class WorkersGate(passkit.Gate):
    """passkit's fogate with `workers` set in its config."""

    def __init__(self, workdir, sim, workers, **kw):
        self.workers = workers
        super().__init__(workdir, sim, **kw)

    def write_config(self):
        self.cfg["workers"] = self.workers
        super().write_config()


_probe = iter(range(1 << 62))


def worker_of(gate, request_id):
    """The worker that logged the request line of `request_id`."""
    found = []

    def logged():
        found[:] = [l for l in gate.log_lines()
                    if l.get("msg") == "request" and l.get("request_id") == request_id]
        return bool(found)
    harness.wait_until(logged, what="the request line of " + request_id)
    return found[0].get("worker", 0)  # one worker: no field


def open_conn(gate, timeout=30.0):
    """A fresh keep-alive connection and {"worker", "workers"}: which worker serves it."""
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=timeout)
    rid = "probe-%d-%d" % (os.getpid(), next(_probe))
    conn.request("GET", "/healthz", headers={"X-Request-Id": rid})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200 and r.getheader("X-Request-Id") == rid, body
    st = gate.admin("/admin/status").json()
    return conn, {"worker": worker_of(gate, rid), "workers": st["workers"],
                  "tokens_shared": st["tokens_shared"]}


def call(conn, method, path, body=None, key=ALICE_KEY):
    headers = {"X-Api-Key": key} if key else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


def on_each_worker(gate, n, fn, times=2, attempts=400):
    """Runs fn(conn, worker) on fresh connections until every worker ran it `times` times."""
    done = {w: 0 for w in range(n)}
    for _ in range(attempts):
        if min(done.values()) >= times:
            return done
        conn, st = open_conn(gate)
        try:
            assert st["workers"] == n
            if done[st["worker"]] < times:
                fn(conn, st["worker"])
                done[st["worker"]] += 1
        finally:
            conn.close()
    raise AssertionError("connections did not reach every worker: %r" % done)


@pytest.fixture(autouse=True)
def clean(sim):
    sim.reset()
    yield
    sim.clear_faults()


@pytest.fixture
def gate2(workdir, sim):
    g = WorkersGate(workdir, sim, 2, timeouts={"shutdown_grace_ms": 10000})
    yield g
    g.stop()


def test_connections_spread_over_the_workers(gate2):
    seen = []
    for _ in range(40):
        conn, st = open_conn(gate2)
        conn.close()
        assert st["workers"] == 2 and st["worker"] in (0, 1)
        seen.append(st["worker"])
    # the kernel hashes each new connection to one listener; 40 on one is 2^-39
    assert seen.count(0) > 0 and seen.count(1) > 0, seen
    lines = gate2.log_lines()
    listening = [l for l in lines if l["msg"] == "listening" and "listener" not in l]
    assert sorted(l["worker"] for l in listening) == [0, 1]
    assert {l["address"] for l in listening} == {"127.0.0.1:%d" % gate2.port}
    # the request lines (written on the hot path without jansson) carry the worker too
    served = {l["worker"] for l in lines if l["msg"] == "request" and "worker" in l}
    assert served == {0, 1}, served


def test_each_worker_serves_pass_through_and_simple_api(gate2, sim):
    def exercise(conn, worker):
        status, body = call(conn, "POST", ENQ, b"a,b\n1,%d\n" % worker)
        assert status == 200, body
        mid = json.loads(body)
        status, body = call(conn, "GET", "/api/connector/jobstatus/" + IMPORT_JOB + "?jobId=" + mid)
        assert status == 200, body
        sim.feed_export(b"export for worker %d" % worker)
        status, body = call(conn, "GET", DEQ)
        assert status == 200, body
        status, body = call(conn, "POST", "/v1/jobs/imp/messages", b"x,y\n")
        assert status == 202, body
        doc = json.loads(body)
        status, body = call(conn, "GET", "/v1/messages/%s?job=imp&wait=0" % doc["message_id"])
        assert status == 200 and json.loads(body)["message_id"] == doc["message_id"], body
        status, _ = call(conn, "GET", "/readyz")
        assert status == 200  # readiness is this worker's own token manager

    done = on_each_worker(gate2, 2, exercise)
    enqueued = passkit.requests_to(sim, "enqueue")
    assert enqueued == 2 * sum(done.values()), (enqueued, done)


def test_start_fetches_one_token_per_worker(workdir, sim):
    """Without Redis token sharing each worker's token manager gets its own token."""
    g = WorkersGate(workdir, sim, 3)
    try:
        harness.wait_until(lambda: passkit.token_requests(sim) >= 3, what="3 token fetches")
        on_each_worker(g, 3, lambda conn, w: call(conn, "POST", ENQ, b"t,%d\n" % w), times=1)
        assert passkit.token_requests(sim) == 3
    finally:
        assert g.stop() == 0


def test_workers_share_one_token_through_redis(workdir, sim):
    """With the Redis token cache the workers behave like instances of a cluster: one takes
    the fetch lock and fetches, the others read the sealed token."""
    redis = harness.start_redis(workdir)
    key = os.path.join(workdir, "seal.key")
    with open(key, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    g = WorkersGate(workdir, sim, 3, tokens={"cache_key_file": key},
                    redis={"url": "redis://127.0.0.1:%d" % redis.port})
    try:
        def ready_and_shared(conn, worker):
            # the workers that lost the lock wait for the token to appear in Redis
            harness.wait_until(lambda: call(conn, "GET", "/readyz")[0] == 200,
                               what="worker %d ready" % worker)
            status, body = call(conn, "POST", ENQ, b"s,%d\n" % worker)
            assert status == 200, (worker, body)

        harness.wait_until(lambda: passkit.token_requests(sim) >= 1, what="a token fetch")
        on_each_worker(g, 3, ready_and_shared, times=1)
        assert passkit.token_requests(sim) == 1
        conn, st = open_conn(g)
        conn.close()
        assert st["tokens_shared"] is True
    finally:
        assert g.stop() == 0
        redis.stop()


def test_sighup_reloads_every_worker(gate2, sim):
    def carol(expected):
        def check(conn, worker):
            status, body = call(conn, "POST", ENQ, b"c,1\n", key=CAROL_KEY)
            assert status == expected, (worker, status, body)
        return check

    on_each_worker(gate2, 2, carol(401), times=1)
    gate2.cfg["clients"]["carol"] = {"api_key_sha256": passkit.sha(CAROL_KEY), "jobs": ["imp"]}
    gate2.write_config()
    os.kill(gate2.pid, signal.SIGHUP)
    harness.wait_until(lambda: len([l for l in gate2.log_lines()
                                    if l["msg"].startswith("config reloaded")]) == 2,
                       what="both workers reloaded")
    reloaded = [l["worker"] for l in gate2.log_lines() if l["msg"].startswith("config reloaded")]
    assert sorted(reloaded) == [0, 1]
    on_each_worker(gate2, 2, carol(200), times=2)
    assert gate2.proc.poll() is None  # SIGHUP does not stop anything


def test_sigterm_drains_every_worker(gate2, sim):
    """A request whose head is half sent on each worker when SIGTERM arrives still goes
    upstream and gets its answer; then every worker stops and the process exits 0."""
    def hold(conn):
        conn.sock.sendall(("POST %s HTTP/1.1\r\nHost: a\r\nX-Api-Key: %s\r\n"
                           "Content-Length: 8\r\n" % (ENQ, ALICE_KEY)).encode())

    conns = {}
    for _ in range(400):
        if len(conns) == 2:
            break
        conn, st = open_conn(gate2)
        if st["worker"] in conns:
            conn.close()
            continue
        hold(conn)
        conns[st["worker"]] = conn
    assert sorted(conns) == [0, 1]
    time.sleep(0.2)
    os.kill(gate2.pid, signal.SIGTERM)
    time.sleep(0.5)
    assert gate2.proc.poll() is None  # waiting for the requests in flight
    results = {}

    def finish(worker, conn):
        conn.sock.sendall(b"\r\nd,e\n1,2\n")
        r = http.client.HTTPResponse(conn.sock, method="POST")
        r.begin()
        results[worker] = (r.status, r.getheader("Connection"), r.read())

    threads = [threading.Thread(target=finish, args=(w, c)) for w, c in conns.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for w in (0, 1):
        status, connection, body = results[w]
        assert status == 200 and connection == "close", (w, status, body)
    assert passkit.requests_to(sim, "enqueue") == 2
    gate2.proc.wait(timeout=15)
    assert gate2.stop() == 0
    stopped = [l["worker"] for l in gate2.log_lines() if l["msg"] == "stopped"]
    assert sorted(stopped) == [0, 1]


def test_workers_auto_is_the_cpu_count(workdir, sim):
    g = WorkersGate(workdir, sim, "auto")
    try:
        cpus = len(os.sched_getaffinity(0))
        conn, st = open_conn(g)
        conn.close()
        assert st["workers"] == cpus
    finally:
        assert g.stop() == 0


def test_workers_auto_follows_the_affinity_mask(workdir, sim):
    mine = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(mine)})  # the child inherits the mask
    try:
        g = WorkersGate(workdir, sim, "auto")
    finally:
        os.sched_setaffinity(0, mine)
    try:
        conn, st = open_conn(g)
        conn.close()
        assert st["workers"] == 1 and st["worker"] == 0
        assert all("worker" not in l for l in g.log_lines())  # one worker: no field
    finally:
        assert g.stop() == 0


def test_bad_workers_value_is_a_clear_error(workdir):
    class NoSim:
        base_url = "http://127.0.0.1:9"

    path = os.path.join(workdir, "bad-workers.json")
    cfg = passkit.gate_config(harness.free_port(), NoSim())
    cfg["workers"] = "many"
    with open(path, "w") as f:
        json.dump(cfg, f)
    p = subprocess.run([harness.require_bin("FOGATE_BIN"), "--check-config", path],
                       capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, **{passkit.SECRET_ENV: "x"}))
    assert p.returncode == 2
    assert 'workers: must be an integer from 1 to 256 or "auto"' in p.stderr, p.stderr
