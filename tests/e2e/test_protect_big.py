"""A 1 GiB package through fogate to fosim's blob store under D365's old SAS version
(sv=2014-02-14: Put Blob capped at 64 MiB, blocks at 4 MiB): committed as 256 blocks,
byte-exact, with fogate's and fosim's peak RSS bounded. Slow: ctest label `slow`."""
import hashlib
import http.client
import json
import os
import time

import pytest

import harness
from harness import Workdir

SECRET_ENV = "FOGATE_E2E_D365_SECRET"
KEY = "protect-big-key-0123456789abcdef"
GIB = 1 << 30
PIECE = 1 << 20


def rss_limit_kib(binary):
    """48 MiB: for fogate three 4 MiB blocks (filling, in flight, libcurl's copy) on top of
    its ~10 MiB, for fosim its files-not-memory store; AddressSanitizer's runtime (shadow
    memory, a 16 MiB quarantine) adds its own."""
    with open(os.environ[binary], "rb") as f:
        asan = b"__asan_init" in f.read()
    return 48 * 1024 * (4 if asan else 1)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    sim = gate = None
    # a small quarantine: ASan would otherwise keep 256 MB of freed buffers resident
    os.environ["ASAN_OPTIONS"] = "detect_leaks=1:quarantine_size_mb=16"
    try:
        sim = harness.start_fosim(w.path, harness.default_sim_config(
            blob_store="self", blob_sas_version="2014-02-14", import_package_secs=0.2))
        port = harness.free_port()
        cfg = {
            "listen": f"127.0.0.1:{port}", "public_base_url": f"http://127.0.0.1:{port}",
            "environments": {"sim": harness.sim_environment(sim, SECRET_ENV)},
            "jobs": {"pkg-in": {"environment": "sim", "project": "Customers",
                                "company": "usmf", "direction": "import"}},
            "clients": {"one": {"api_key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                                "jobs": ["pkg-in"]}},
            "timeouts": {"shutdown_grace_ms": 3000},
        }
        path = os.path.join(w.path, "fogate.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        os.environ[SECRET_ENV] = harness.APP_SECRET
        gate = harness.start_fogate(w.path, path, port=port)
        gate.base_port = port
        yield sim, gate
    finally:
        rc = gate.stop() if gate else 0
        src = sim.stop() if sim else 0
        w.cleanup(request.session.testsfailed > 0)
        assert rc == 0 and src == 0


def test_one_gib_package_in_blocks_with_bounded_memory(env):
    sim, gate = env
    block = os.urandom(PIECE)
    h = hashlib.sha256()
    c = http.client.HTTPConnection("127.0.0.1", gate.base_port, timeout=900)
    t0 = time.monotonic()
    c.putrequest("POST", "/v1/packages/import?job=pkg-in")
    c.putheader("X-Api-Key", KEY)
    c.putheader("Content-Length", str(GIB))
    c.endheaders()
    for i in range(GIB // PIECE):
        piece = block[i % 251:] + block[:i % 251]  # every MiB differs: order errors show
        h.update(piece)
        c.send(piece)
    r = c.getresponse()
    body = r.read()
    took = time.monotonic() - t0
    c.close()
    assert r.status == 202, body
    exec_id = json.loads(body)["execution_id"]
    got = sim.get(f"/_sim/blobs/{exec_id}.zip").json()
    assert got["committed_as"] == "blocks" and got["blocks"] == GIB // (4 << 20), got
    assert got["size"] == GIB and got["sha256"] == h.hexdigest()
    assert got["put_blob"] == 0 and got["put_block_list"] == 1
    hwm = vm_hwm_kib(gate.pid)
    sim_hwm = vm_hwm_kib(sim.proc.pid)
    print(f"\n1 GiB package: {took:.1f} s through fogate; fogate VmHWM {hwm} KiB, "
          f"fosim VmHWM {sim_hwm} KiB")
    assert hwm < rss_limit_kib("FOGATE_BIN"), hwm
    assert sim_hwm < rss_limit_kib("FOSIM_BIN"), sim_hwm
