"""ledgerkit: shared pieces of the ack-ledger end-to-end tests (test_ledger*.py).

Real processes only: redis-server, fosim and one or more fogate instances with
ledger.enabled, on free 127.0.0.1 ports, stopped by PID."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import harness

SECRET_ENV = "FOGATE_E2E_D365_SECRET"
KEY = "ledger-client-key-0123456789abcdef0123"
JOB = "customers-out"
IMPORT_JOB = "groups-in"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def fogate_config(sim, port, redis_port=None, ledger=None, redis=None, admin_port=None,
                  extra=None):
    """extra: top-level keys merged over the config (e.g. history, more jobs or clients:
    a dict value is merged into the one there)."""
    red = {"url": f"redis://127.0.0.1:{redis_port}", "connect_timeout_ms": 500,
           "command_timeout_ms": 500}
    red.update(redis or {})
    led = {"enabled": True, "lease_s": 2, "outbox_interval_ms": 100, "ack_retry_min_ms": 200,
           "ack_retry_max_ms": 1000, "stats_interval_ms": 200}
    led.update(ledger or {})
    cfg = {
        "listen": f"127.0.0.1:{port}",
        "public_base_url": f"http://127.0.0.1:{port}",
        "log_level": "info",
        "environments": {"sim": harness.sim_environment(sim, SECRET_ENV)},
        "jobs": {JOB: {"environment": "sim", "activity_id": harness.EXPORT_JOB,
                       "direction": "export"},
                 IMPORT_JOB: {"environment": "sim", "activity_id": harness.IMPORT_JOB,
                              "entity": "Customer groups", "direction": "import"}},
        "clients": {"consumer": {"api_key_sha256": sha(KEY), "jobs": [JOB, IMPORT_JOB]}},
        "redis": red,
        "ledger": led,
        "timeouts": {"shutdown_grace_ms": 2000, "upstream_total_ms": 10000},
        "admin": {"listen": f"127.0.0.1:{admin_port}"} if admin_port else {},
    }
    for k, v in (extra or {}).items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    return cfg


class Gate:
    """A running fogate with the ledger on. name: log/config file name."""

    def __init__(self, workdir, sim, redis_port, name="fogate", port=None, **cfg):
        self.port = port or harness.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin_port = harness.free_port()
        self.admin_base = f"http://127.0.0.1:{self.admin_port}"
        self.name = name
        self.workdir = workdir
        self.config_path = os.path.join(workdir, f"{name}.json")
        # through harness: a *_native CTest entry puts fogate on its own HTTP/1.1 client
        harness.write_fogate_config(self.config_path,
                                    fogate_config(sim, self.port, redis_port,
                                                  admin_port=self.admin_port, **cfg))
        self.start()

    def start(self):
        env = dict(os.environ)
        env[SECRET_ENV] = harness.APP_SECRET
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        argv = [harness.require_bin("FOGATE_BIN"), "--config", self.config_path]
        self.proc = harness.Proc(self.name, argv, self.workdir, env=env)
        harness.wait_until(lambda: harness.request(self.base, "GET", "/healthz", timeout=2)
                           .status == 200, what=f"{self.name} healthz")

    def req(self, method, path, body=None, headers=None, timeout=30.0, key=KEY):
        h = dict(headers or {})
        if key:
            h["X-Api-Key"] = key
        return harness.request(self.base, method, path, body, h, timeout=timeout)

    def next(self, timeout=30.0):
        return self.req("POST", f"/v1/jobs/{JOB}/next", timeout=timeout)

    def ack(self, message_id, timeout=30.0):
        return self.req("POST", f"/v1/jobs/{JOB}/messages/{message_id}/ack", timeout=timeout)

    def status(self):
        r = harness.request(self.admin_base, "GET", "/admin/status", timeout=5)
        assert r.status == 200, r
        return r.json()["ledger"]

    def status_all(self):
        r = harness.request(self.admin_base, "GET", "/admin/status", timeout=5)
        assert r.status == 200, r
        return r.json()

    def log(self):
        with open(self.proc.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self, check=True):
        rc = self.proc.stop()
        if check:
            log = self.log()
            assert rc == 0, f"{self.name} exited {rc}; log:\n{log[-4000:]}"
            for mark in SANITIZER_MARKS:
                assert mark not in log, log[-4000:]
            for secret in (harness.APP_SECRET, KEY):
                assert secret not in log, "a secret reached fogate's log"
        return rc

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.popen.wait(10)
        self.proc._log.close()


def sim_message(sim, mid):
    return sim.ctl("GET", f"messages/{mid}")


def count(sim, endpoint, status=None):
    per = sim.counters()["requests"].get(endpoint, {})
    return sum(n for s, n in per.items() if status is None or s == str(status))


def feed(sim, n, tag="m"):
    """n export messages whose files are b"<tag>-<i>"; returns {file bytes: description}."""
    out = {}
    for i in range(n):
        data = f"{tag}-{i}".encode()
        out[data] = sim.feed_export(data)
    return out


def wait_acked(sim, mid, timeout=20.0):
    harness.wait_until(lambda: sim_message(sim, mid)["state"] == "Acked", timeout,
                       what=f"message {mid} acked at fosim")


def drain(gate, limit=50):
    """Takes and acks every message /next hands out; returns the list of file bodies."""
    got = []
    for _ in range(limit):
        r = gate.next()
        if r.status == 204:
            return got
        assert r.status == 200, r
        got.append(r.body)
        a = gate.ack(r.header("X-Fogate-Message-Id"))
        assert a.status in (200, 202), a
    raise AssertionError("the queue never ran empty")


def stop_redis(p):
    """SIGTERM a redis Proc and wait for it."""
    return p.stop()


def wait_ms(fn):
    t = time.monotonic()
    v = fn()
    return v, (time.monotonic() - t) * 1000.0


def redis_flush(redis):
    """FLUSHALL (harness.resp: no client library)."""
    assert harness.resp(redis.port, "FLUSHALL") == "OK"


@pytest.fixture(scope="module")
def redis(workdir):
    """A redis-server shared by a test module."""
    r = harness.start_redis(workdir)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def certs(workdir):
    """A test PKI (tests/unit/cache/rconn/make-certs.sh): ca.crt, server.crt/key for
    localhost/127.0.0.1, and an unrelated other-ca.crt."""
    d = os.path.join(workdir, "pki")
    os.makedirs(d)
    script = os.path.join(harness.require_bin("FOGATE_SRC"), "tests", "unit", "cache", "rconn",
                          "make-certs.sh")
    subprocess.run(["sh", script, d], check=True, timeout=60)
    return d


def start_tls_redis(workdir, certs, name, extra_conf=""):
    """redis-server with a TLS port only (server.crt from `certs`), no persistence."""
    port = harness.free_port()
    conf = os.path.join(workdir, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"port 0\ntls-port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                f"dir {workdir}\n"
                f"tls-cert-file {certs}/server.crt\ntls-key-file {certs}/server.key\n"
                f"tls-ca-cert-file {certs}/ca.crt\ntls-auth-clients no\n{extra_conf}\n")
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    p = harness.Proc(name, [exe, conf], workdir)
    p.port = port
    harness.wait_port(port)
    return p
