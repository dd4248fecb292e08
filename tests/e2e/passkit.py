"""passkit: fosim + fogate (+ redis-server) wired together for the pass-through tests.

A Gate is a running fogate whose config points at a fosim: one environment "sim" with the
default app, the import and export jobs of the default simulator config, and two clients:
"alice" (both jobs) and "bob" (an extra job of his own). Requests go through http.client;
the API keys are known here, their SHA-256 digests are in the config."""

import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time

import harness

ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-0123456789abcdef-xyz"
BOB_JOB = "0f0e0d0c-0b0a-4909-8807-060504030201"
SECRET_ENV = "FOGATE_SIM_SECRET"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def gate_config(port, sim, limits=None, timeouts=None, tokens=None, redis=None,
                secret_file=None, extra_env=None, extra=None, workers=None, admin_port=None):
    env = {
        "base_url": sim.base_url,
        "allow_http": True,
        "tenant": harness.TENANT,
        "client_id": harness.APP_ID,
        "token_version": "v1",
        "token_endpoint": sim.base_url + "/" + harness.TENANT + "/oauth2/token",
    }
    if secret_file:
        env["client_secret_file"] = secret_file
    else:
        env["client_secret_env"] = SECRET_ENV
    cfg = {
        "listen": "127.0.0.1:%d" % port,
        "public_base_url": "http://127.0.0.1:%d" % port,
        "log_level": "info",
        "environments": {"sim": env},
        "jobs": {
            "imp": {"environment": "sim", "activity_id": harness.IMPORT_JOB,
                    "entity": "Customer groups", "direction": "import"},
            "exp": {"environment": "sim", "activity_id": harness.EXPORT_JOB,
                    "direction": "export"},
            "bobs": {"environment": "sim", "activity_id": BOB_JOB, "direction": "export"},
        },
        "clients": {
            "alice": {"api_key_sha256": sha(ALICE_KEY), "jobs": ["imp", "exp"]},
            "bob": {"api_key_sha256": sha(BOB_KEY), "jobs": ["bobs"]},
        },
        "limits": {"max_body_bytes": 1 << 20},
        "timeouts": {"request_head_ms": 5000, "idle_ms": 20000, "shutdown_grace_ms": 3000},
        "tokens": {"retry_min_ms": 200, "retry_max_ms": 1000, "request_timeout_ms": 3000},
        "admin": {"listen": "127.0.0.1:%d" % admin_port} if admin_port else {},
    }
    if extra_env:
        env.update(extra_env)
    cfg["limits"].update(limits or {})
    cfg["timeouts"].update(timeouts or {})
    cfg["tokens"].update(tokens or {})
    if redis:
        cfg["redis"] = redis
    cfg.update(extra or {})  # other top-level keys (d365_budget, workers, ...)
    if workers:
        cfg["workers"] = workers
    return cfg


class Gate:
    """One fogate process on a free port; logs in workdir."""

    def __init__(self, workdir, sim, secret=harness.APP_SECRET, wait_ready=True, **kw):
        self.workdir = workdir
        self.sim = sim
        self.port = harness.free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.admin_port = harness.free_port()
        self.admin_base = "http://127.0.0.1:%d" % self.admin_port
        self.config_path = os.path.join(workdir, "fogate-%d.json" % self.port)
        self.cfg = gate_config(self.port, sim, admin_port=self.admin_port, **kw)
        self.write_config()
        self.log_path = os.path.join(workdir, "fogate-%d.log" % self.port)
        env = dict(os.environ)
        env[SECRET_ENV] = secret
        # a small quarantine: ASan would otherwise keep 256 MB of freed buffers resident
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "detect_leaks=1") + ":quarantine_size_mb=16"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([harness.require_bin("FOGATE_BIN"), "-c", self.config_path],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env=env)
        self.pid = self.proc.pid
        harness.wait_until(lambda: self.get("/healthz").status == 200, what="fogate healthz")
        if wait_ready:
            self.wait_ready()

    def write_config(self):
        harness.write_fogate_config(self.config_path, self.cfg)

    def wait_ready(self, timeout=15):
        harness.wait_until(lambda: self.get("/readyz").status == 200, timeout=timeout,
                           what="fogate ready")

    def request(self, method, path, body=None, headers=None, key=ALICE_KEY, timeout=30.0):
        hdrs = dict(headers or {})
        if key is not None:
            hdrs.setdefault("X-Api-Key", key)
        return harness.request(self.base, method, path, body, hdrs, None, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, key=kw.pop("key", None), **kw)

    def admin(self, path, method="GET", headers=None, timeout=10.0):
        """A request to the admin listener (admin.listen), from loopback."""
        return harness.request(self.admin_base, method, path, None, dict(headers or {}), None,
                               timeout)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def log_lines(self):
        return [json.loads(l) for l in self.log_text().split("\n")[:-1] if l.strip()]

    def vm(self, field):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # kB
        raise KeyError(field)

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("fogate did not exit after SIGTERM")
        self.log.close()
        text = self.log_text()
        for mark in SANITIZER_MARKS:
            assert mark not in text, "sanitizer report in fogate's log:\n" + text[-5000:]
        return self.proc.returncode


def raw_connect(gate, timeout=30.0):
    s = socket.create_connection(("127.0.0.1", gate.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def token_requests(sim):
    return sim.counters().get("tokens_total", 0)


def requests_to(sim, endpoint):
    """How many requests fosim answered on an endpoint label (all statuses)."""
    per = sim.counters().get("requests", {}).get(endpoint, {})
    return sum(per.values()) if isinstance(per, dict) else int(per)
