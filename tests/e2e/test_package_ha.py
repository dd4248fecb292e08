"""End-to-end tests of package imports across two fogate instances sharing one
redis-server (packages.shared), in front of one fosim + Azurite: the per-environment
import lock and the Idempotency-Key records hold across instances, a killed lock holder's
lease expires, and imports fail closed while Redis is down."""

import hashlib
import json
import os
import signal
import threading
import time

import pytest

import harness
from harness import Workdir

SECRET_ENV = "FOGATE_E2E_D365_SECRET"
KEY = "package-ha-client-key-0123456789abcdef"
LEASE_MS = 3000
WAIT_MS = 6000
LOCK = "fogate:pkg:lock:sim"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def idem_key(key):
    return f"fogate:pkg:idem:pkg-in:{sha(key)}"


def rcmd(redis, *args):
    """One Redis command; bulk replies as bytes."""
    return harness.resp(redis.port, *args, decode=False)


def start_redis_on(workdir, port):
    conf = os.path.join(workdir, f"redis-{port}.conf")
    return harness.Proc(f"redis-{port}-again", ["/usr/bin/redis-server", conf], workdir)


# ---- fogate instances ----

def fogate_config(sim, port, redis_port, extra=None):
    cfg = {
        "listen": f"127.0.0.1:{port}", "public_base_url": f"http://127.0.0.1:{port}",
        "log_level": "debug",
        "environments": {"sim": harness.sim_environment(sim, SECRET_ENV)},
        "jobs": {"pkg-in": {"environment": "sim", "project": "Customers", "company": "usmf",
                            "direction": "import"}},
        "clients": {"one": {"api_key_sha256": sha(KEY), "jobs": ["pkg-in"]}},
        "redis": {"url": f"redis://127.0.0.1:{redis_port}", "connect_timeout_ms": 500,
                  "command_timeout_ms": 500},
        "packages": {"shared": True, "lock_lease_ms": LEASE_MS, "lock_wait_ms": WAIT_MS},
        "timeouts": {"shutdown_grace_ms": 3000},
    }
    cfg.update(extra or {})
    return cfg


class Gate:
    def __init__(self, workdir, sim, redis_port, name, extra=None):
        self.port = harness.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.name = name
        path = os.path.join(workdir, f"{name}.json")
        with open(path, "w") as f:
            json.dump(fogate_config(sim, self.port, redis_port, extra), f)
        env = dict(os.environ)
        env[SECRET_ENV] = harness.APP_SECRET
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = harness.Proc(name, [harness.require_bin("FOGATE_BIN"), "--config", path],
                                 workdir, env=env)
        self.killed = False
        harness.wait_until(lambda: harness.request(self.base, "GET", "/healthz", timeout=2)
                           .status == 200, what=f"{name} healthz")

    def imp(self, body, key=None, timeout=60):
        h = {"X-Api-Key": KEY}
        if key:
            h["Idempotency-Key"] = key
        return harness.request(self.base, "POST", "/v1/packages/import?job=pkg-in", body, h,
                               timeout=timeout)

    def log(self):
        with open(self.proc.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.popen.wait(10)
        self.killed = True

    def stop(self):
        rc = self.proc.stop()
        log = self.log()
        if not self.killed:
            assert rc == 0, f"{self.name} exited {rc}; log:\n{log[-4000:]}"
        for mark in SANITIZER_MARKS:
            assert mark not in log, log[-4000:]
        assert KEY not in log and "sig=" not in log, "a secret reached the log"


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    az = harness.start_azurite(w.path)
    sim = redis = a = b = env_state = None
    try:
        sim = harness.start_fosim(w.path, harness.default_sim_config(
            azurite=harness.azurite_sim_config(az), import_package_secs=1.0))
        redis = harness.start_redis(w.path)
        a = Gate(w.path, sim, redis.port, "fogate-a")
        b = Gate(w.path, sim, redis.port, "fogate-b")
        env_state = {"sim": sim, "redis": redis, "a": a, "b": b, "dir": w.path}
        yield env_state
    finally:
        for g in (a, b):
            if g:
                g.stop()
        src = sim.stop() if sim else 0
        # test_redis_down_imports_fail_closed restarts Redis: stop the one running now
        env_redis = redis if env_state is None else env_state.get("redis", redis)
        if env_redis:
            env_redis.stop()
        az.stop()
        w.cleanup(request.session.testsfailed > 0)
        assert src == 0


@pytest.fixture
def sim(env):
    s = env["sim"]
    s.reset()
    s.configure(import_package_secs=1.0, package_outcome="Succeeded", write_sas_secs=1800)
    rcmd(env["redis"], "FLUSHALL")
    return s


def imports(sim):
    return sum(sim.counters()["requests"].get("odata:ImportFromPackage", {}).values())


def in_threads(*calls):
    out = [None] * len(calls)

    def run(i, fn):
        out[i] = fn()
    ts = [threading.Thread(target=run, args=(i, fn)) for i, fn in enumerate(calls)]
    for t in ts:
        t.start()
    return ts, out


def test_two_imports_on_two_instances_run_one_after_the_other(env, sim):
    a, b = env["a"], env["b"]
    t0 = time.monotonic()
    ts, out = in_threads(lambda: a.imp(b"PK-a" * 1000), lambda: b.imp(b"PK-b" * 1000))
    for t in ts:
        t.join()
    assert [r.status for r in out] == [202, 202], out
    # without the shared lock fosim refuses the second one ("Deadlock", counted)
    assert sim.counters()["import_overlaps"] == 0
    assert imports(sim) == 2
    assert time.monotonic() - t0 >= 2.0  # two 1 s imports, one after the other
    # released, not left to expire: the unlock is sent as the 202 goes out, so give the
    # Redis command its round trip, far below the lease
    harness.wait_until(lambda: rcmd(env["redis"], "EXISTS", LOCK) == 0, timeout=1.0,
                       interval=0.02, what="the import lock released")


def test_idempotency_key_across_instances(env, sim):
    a, b, redis = env["a"], env["b"], env["redis"]
    key = "ha-key-secret-value-42"
    first = a.imp(b"PK-same" * 100, key=key)
    assert first.status == 202, first
    again = b.imp(b"PK-same" * 100, key=key)
    assert again.status == 202, again
    assert again.json()["execution_id"] == first.json()["execution_id"]
    assert again.json().get("replayed") is True
    assert imports(sim) == 1
    other = b.imp(b"PK-other" * 100, key=key)
    assert other.status == 422 and other.json()["code"] == "idempotency_key_reused", other
    assert imports(sim) == 1
    # the record: done, the execution id, hashed key, no key value and no URL stored
    rec = rcmd(redis, "GET", idem_key(key))
    assert rec is not None and rec.startswith(b"D "), rec
    assert rec.endswith(first.json()["execution_id"].encode())
    assert 0 < rcmd(redis, "TTL", idem_key(key)) <= 86400
    for k in rcmd(redis, "KEYS", "*"):
        assert key.encode() not in k
        v = rcmd(redis, "GET", k)
        assert v is None or (key.encode() not in v and b"http" not in v), (k, v)


def test_import_refused_with_5xx_releases_the_shared_key(env, sim):
    """Issue 11 item 9 with the key records in Redis: ImportFromPackage answered 500, D365
    says the execution never started, so the done record is deleted and the retry on the
    other instance imports (it did answer 202 for an execution that stayed NotRun)."""
    a, b, redis = env["a"], env["b"], env["redis"]
    key = "ha-key-refused-500"
    sim.fault(endpoint="odata:ImportFromPackage", kind="status", status=500, count=1)
    first = a.imp(b"PK-refused" * 100, key=key)
    assert first.status == 502 and "did not start" in first.json()["message"], first
    # the record's delete goes to Redis as the 502 goes out: allow it its round trip
    harness.wait_until(lambda: rcmd(redis, "GET", idem_key(key)) is None, timeout=1.0,
                       interval=0.02, what="the key record deleted")
    again = b.imp(b"PK-refused" * 100, key=key)
    assert again.status == 202 and not again.json().get("replayed"), again
    assert imports(sim) == 2
    rec = rcmd(redis, "GET", idem_key(key))
    assert rec is not None and rec.endswith(again.json()["execution_id"].encode()), rec


def test_same_key_in_progress_on_another_instance_is_409(env, sim):
    a, b, redis = env["a"], env["b"], env["redis"]
    key = "ha-key-in-progress"
    # someone else holds the environment: A's import uploads, then waits (key reserved)
    assert rcmd(redis, "SET", LOCK, "someone-else", "PX", 2500) == "OK"
    ts, out = in_threads(lambda: a.imp(b"PK-wait" * 100, key=key))
    harness.wait_until(lambda: (rcmd(redis, "GET", idem_key(key)) or b"").startswith(b"R "),
                       what="A's reservation")
    busy = b.imp(b"PK-wait" * 100, key=key)
    assert busy.status == 409 and busy.json()["code"] == "idempotency_key_in_use", busy
    assert busy.header("Retry-After")
    ts[0].join()
    assert out[0].status == 202, out[0]  # the foreign lease expired: A went on
    assert imports(sim) == 1
    replay = b.imp(b"PK-wait" * 100, key=key)
    assert replay.status == 202 and replay.json()["execution_id"] == out[0].json()["execution_id"]


def test_no_turn_in_time_is_503_and_the_key_stays_usable(env, sim):
    a, redis = env["a"], env["redis"]
    key = "ha-key-timeout"
    assert rcmd(redis, "SET", LOCK, "a-stuck-import", "PX", 60000) == "OK"
    t0 = time.monotonic()
    r = a.imp(b"PK-late" * 100, key=key)
    took = time.monotonic() - t0
    assert r.status == 503 and r.json()["code"] == "package_lock_timeout", r
    assert r.header("Retry-After")
    assert "nothing was imported" in r.json()["message"] and "safe" in r.json()["message"]
    assert WAIT_MS / 1000 - 0.5 <= took <= WAIT_MS / 1000 + 5, took
    assert imports(sim) == 0
    assert rcmd(redis, "EXISTS", idem_key(key)) == 0  # released: a retry is a new import
    assert rcmd(redis, "GET", LOCK) == b"a-stuck-import"  # never touched another's lock
    rcmd(redis, "DEL", LOCK)
    again = a.imp(b"PK-late" * 100, key=key)
    assert again.status == 202 and not again.json().get("replayed"), again
    assert imports(sim) == 1


def test_killed_lock_holder_lease_expires_and_the_other_goes_on(env, sim):
    a, b, redis = env["a"], env["b"], env["redis"]
    sim.configure(import_package_secs=1.5)
    ts, out = in_threads(lambda: a.imp(b"PK-killed" * 100))
    # A takes the lock right before it sends ImportFromPackage (fosim counts it at the end)
    harness.wait_until(lambda: rcmd(redis, "GET", LOCK), what="A holding the lock")
    a_exec = rcmd(redis, "GET", LOCK).decode()  # the owner token is the execution id
    tb, outb = in_threads(lambda: b.imp(b"PK-after" * 100))
    time.sleep(0.4)  # A's ImportFromPackage is at fosim; B has uploaded and polls the lock
    t_kill = time.monotonic()
    a.kill()
    tb[0].join()
    took = time.monotonic() - t_kill
    ts[0].join()
    assert outb[0].status == 202, outb[0]
    # B waited for A's lease to expire (at least lease - one renewal period - the 0.4 s
    # above after the kill), then ran its own 1.5 s import; bounded by lease + import + 3 s
    assert LEASE_MS / 1000 * 2 / 3 - 0.5 + 1.5 <= took <= LEASE_MS / 1000 + 1.5 + 3, took
    assert sim.counters()["import_overlaps"] == 0
    harness.wait_until(lambda: rcmd(redis, "EXISTS", LOCK) == 0, timeout=1.0, interval=0.02,
                       what="the import lock released")
    # A's import did reach D365 (its connection died with A): both executions exist
    h = {"X-Api-Key": KEY}
    for exec_id in (a_exec, outb[0].json()["execution_id"]):
        st = harness.request(b.base, "GET", f"/v1/executions/{exec_id}?job=pkg-in&wait=10", None,
                             h, timeout=30)
        assert st.status == 200 and st.json()["status"] == "Succeeded", (exec_id, st)


def test_redis_down_imports_fail_closed(env, sim):
    b, redis = env["b"], env["redis"]
    port = redis.port
    assert redis.stop() == 0
    try:
        r = b.imp(b"PK-down" * 100)
        assert r.status == 503 and r.json()["code"] == "package_lock_unavailable", r
        assert "nothing was imported" in r.json()["message"]
        r = b.imp(b"PK-down" * 100, key="ha-key-down")
        assert r.status == 503 and r.json()["code"] == "idempotency_store_unavailable", r
        assert r.header("Retry-After")
        assert imports(sim) == 0
    finally:
        env["redis"] = start_redis_on(env["dir"], port)
        env["redis"].port = port
        harness.wait_port(port)
    harness.wait_until(lambda: b.imp(b"PK-up" * 100).status == 202, timeout=20,
                       what="imports again once Redis is back")
