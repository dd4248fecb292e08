"""End to end: SIGHUP reloads under load (issue 11, item 11). Each reload builds a new config
snapshot; the old one must be freed once no request uses it any more, not kept until exit.
500 reloads of a ~100 KB config while requests run (some of them slow downloads that span
many reloads) must leave fogate's RSS flat, and every request must still succeed."""
import http.client
import os
import signal
import threading
import time

import pytest

import harness
import passkit
from harness import EXPORT_JOB
from harness import workdir  # noqa: F401
from passkit import ALICE_KEY

RELOADS = 500
WARMUP = 100
DOWNLOAD = 4 << 20
# 400 leaked snapshots of this config cost about 70 MB (measured before the fix);
# a flat RSS moves by allocator noise only. ASan keeps freed blocks in its quarantine
# (16 MB in passkit) before reusing them, hence its larger margin.
GROWTH_LIMIT_KB = 12 * 1024
GROWTH_LIMIT_ASAN_KB = 40 * 1024


def asan():
    with open(os.environ["FOGATE_BIN"], "rb") as f:
        return b"__asan_init" in f.read()


@pytest.fixture(scope="module")
def sim(workdir):
    s = harness.start_fosim(workdir, harness.default_sim_config())
    yield s
    assert s.stop() == 0


def grow(cfg, clients=800):
    """Adds `clients` API clients (distinct keys) to the config: about 100 KB of JSON."""
    for i in range(clients):
        cfg["clients"]["client-%04d" % i] = {
            "api_key_sha256": passkit.sha("reload-key-%04d-0123456789abcdef" % i),
            "jobs": ["imp", "exp"]}


class LogTail:
    """Counts a message in a growing log file, reading only what is new."""

    def __init__(self, path, needle):
        self.f = open(path, "rb")
        self.needle = needle
        self.count = 0
        self.rest = b""

    def poll(self):
        data = self.rest + self.f.read()
        lines = data.split(b"\n")
        self.rest = lines.pop()
        self.count += sum(1 for l in lines if self.needle in l)
        return self.count

    def wait(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while self.poll() < n:
            assert time.monotonic() < deadline, "only %d of %d seen" % (self.count, n)
            time.sleep(0.002)


class Load:
    """Threads sending requests until stopped; failures are collected, not raised."""

    def __init__(self, gate, download):
        self.gate = gate
        self.download = download
        self.stop = threading.Event()
        self.done = {"quick": 0, "download": 0}
        self.failures = []
        self.threads = [threading.Thread(target=self.quick) for _ in range(2)]
        self.threads += [threading.Thread(target=self.slow) for _ in range(2)]

    def start(self):
        for t in self.threads:
            t.start()

    def end(self):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def quick(self):
        while not self.stop.is_set():
            try:
                r = self.gate.request("GET", "/api/connector/dequeue/" + EXPORT_JOB, timeout=30)
                if r.status not in (200, 204):
                    self.failures.append(("dequeue", r.status, r.body[:200]))
                self.done["quick"] += 1
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.failures.append(("dequeue", repr(e)))

    def slow(self):
        while not self.stop.is_set():
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.gate.port, timeout=60)
                c.request("GET", self.download, headers={"X-Api-Key": ALICE_KEY})
                r = c.getresponse()
                n = 0
                while True:
                    d = r.read(65536)
                    if not d:
                        break
                    n += len(d)
                    time.sleep(0.001)  # a slow reader: the response spans many reloads
                c.close()
                if r.status != 200 or n != DOWNLOAD:
                    self.failures.append(("download", r.status, n))
                self.done["download"] += 1
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.failures.append(("download", repr(e)))


def test_reloads_under_load_keep_rss_flat(workdir, sim):
    sim.reset()
    sim.feed_export(b"r" * DOWNLOAD)
    gate = passkit.Gate(workdir, sim)
    try:
        grow(gate.cfg)
        gate.write_config()
        assert os.path.getsize(gate.config_path) > 90 * 1024
        tail = LogTail(gate.log_path, b'"config reloaded')
        r = gate.request("GET", "/api/connector/dequeue/" + EXPORT_JOB)
        assert r.status == 200, r
        download = r.json()["DownloadLocation"][len(gate.base):]
        load = Load(gate, download)
        load.start()
        try:
            for i in range(RELOADS):
                os.kill(gate.pid, signal.SIGHUP)
                tail.wait(i + 1)
                if i + 1 == WARMUP:
                    rss_warm = gate.vm("VmRSS")
            rss_end = gate.vm("VmRSS")
        finally:
            load.end()
        assert load.failures == [], load.failures[:5]
        assert load.done["download"] >= 2 and load.done["quick"] >= RELOADS // 10, load.done
        limit = GROWTH_LIMIT_ASAN_KB if asan() else GROWTH_LIMIT_KB
        print("RSS kB after %d reloads: %d, after %d: %d" % (WARMUP, rss_warm, RELOADS, rss_end))
        assert rss_end - rss_warm < limit, "RSS grew from %d to %d kB over %d reloads" % (
            rss_warm, rss_end, RELOADS - WARMUP)
        # the new clients work: the last snapshot is the one in use
        assert gate.request("GET", "/api/connector/dequeue/" + EXPORT_JOB,
                            key="reload-key-0799-0123456789abcdef").status in (200, 204)
    finally:
        assert gate.stop() == 0
