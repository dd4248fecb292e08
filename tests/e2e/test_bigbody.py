"""End to end: big bodies through fogate with bounded memory. A 1 GiB download and a 1 GiB
upload (enqueue) pass with a slow client or a slow upstream, fogate's peak RSS stays small,
checksums match; a client that leaves mid-download aborts the upstream transfer and leaves
no file descriptor behind."""
import hashlib
import http.client
import os
import time

import pytest

import harness
import passkit
from harness import EXPORT_JOB, IMPORT_JOB
from harness import workdir  # noqa: F401
from passkit import ALICE_KEY

GIB = 1 << 30
CHUNK = 1 << 20
# fogate's own budget; AddressSanitizer's runtime (shadow memory, quarantine) adds its own
RSS_LIMIT_KB = 32 * 1024


def rss_limit():
    with open(os.environ["FOGATE_BIN"], "rb") as f:
        asan = b"__asan_init" in f.read()
    return RSS_LIMIT_KB * 4 if asan else RSS_LIMIT_KB


def pattern(i):
    return hashlib.sha256(b"%d" % i).digest() * (CHUNK // 32)


@pytest.fixture(scope="module")
def sim(workdir):
    s = harness.start_fosim(workdir, harness.default_sim_config(max_enqueue_bytes=2 * GIB))
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def gate(workdir, sim):
    g = passkit.Gate(workdir, sim, limits={"max_enqueue_bytes": 2 * GIB},
                     timeouts={"idle_ms": 30000})
    yield g
    assert g.stop() == 0


@pytest.fixture(autouse=True)
def clean(sim):
    sim.reset()
    yield
    sim.clear_faults()


def feed(sim, size):
    """One export message of `size` bytes streamed into fosim; returns its sha256."""
    h = hashlib.sha256()

    def gen():
        for i in range(size // CHUNK):
            c = pattern(i)
            h.update(c)
            yield c
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=300)
    conn.request("POST", "/_sim/exports/" + EXPORT_JOB, body=gen(),
                 headers={"Content-Length": str(size)})
    r = conn.getresponse()
    assert r.status == 200, r.read()
    r.read()
    conn.close()
    return h.hexdigest()


def download_path(gate):
    r = gate.request("GET", "/api/connector/dequeue/" + EXPORT_JOB)
    assert r.status == 200, r
    return r.json()["DownloadLocation"][len(gate.base):]


def read_body(resp, slow_first=0):
    h = hashlib.sha256()
    n = 0
    while True:
        d = resp.read(256 * 1024)
        if not d:
            return h.hexdigest(), n
        h.update(d)
        n += len(d)
        if n < slow_first:
            time.sleep(0.01)  # a slow client: fogate must pause the upstream, not buffer


def test_1gib_download_slow_client_bounded_rss(gate, sim):
    want = feed(sim, GIB)
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=120)
    conn.request("GET", download_path(gate), headers={"X-Api-Key": ALICE_KEY})
    r = conn.getresponse()
    assert r.status == 200 and int(r.getheader("Content-Length")) == GIB
    got, n = read_body(r, slow_first=64 * CHUNK)
    conn.close()
    assert n == GIB and got == want
    assert gate.vm("VmHWM") < rss_limit(), gate.vm("VmHWM")


def test_1gib_upload_bounded_rss(gate, sim, workdir):
    h = hashlib.sha256()

    def gen():
        for i in range(GIB // CHUNK):
            c = pattern(i + 7)
            h.update(c)
            yield c
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=300)
    conn.request("POST", "/api/connector/enqueue/" + IMPORT_JOB + "?entity=Customer+groups",
                 body=gen(), headers={"X-Api-Key": ALICE_KEY, "Content-Length": str(GIB)})
    r = conn.getresponse()
    body = r.read()
    conn.close()
    assert r.status == 200, body
    msg = sim.ctl("GET", "messages/" + body.decode().strip('"'))
    assert msg["size"] == GIB
    stored = [os.path.join(dp, f) for dp, _, fs in os.walk(os.path.join(workdir, "fosim-data"))
              for f in fs if os.path.getsize(os.path.join(dp, f)) == GIB]
    digests = set()
    for path in stored:
        fh = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                fh.update(block)
        digests.add(fh.hexdigest())
    assert h.hexdigest() in digests
    assert gate.vm("VmHWM") < rss_limit(), gate.vm("VmHWM")


def test_slow_upstream_download(gate, sim):
    want = feed(sim, 8 * CHUNK)
    path = download_path(gate)
    sim.fault(endpoint="download", kind="slow", rate=4 * CHUNK, count=1)
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=60)
    conn.request("GET", path, headers={"X-Api-Key": ALICE_KEY})
    r = conn.getresponse()
    got, n = read_body(r)
    conn.close()
    assert n == 8 * CHUNK and got == want
    assert time.monotonic() - t0 >= 1.5  # the slow fault really applied


def test_client_disconnect_aborts_upstream_and_leaks_no_fd(gate, sim):
    feed(sim, 256 * CHUNK)
    path = download_path(gate)
    time.sleep(0.3)
    base_fds = gate.fd_count()
    s = passkit.raw_connect(gate)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nX-Api-Key: %s\r\n\r\n" % (path, ALICE_KEY))
              .encode())
    got = 0
    while got < 2 * CHUNK:
        d = s.recv(65536)
        assert d
        got += len(d)
    assert gate.fd_count() >= base_fds + 1  # client socket (and the upstream one)
    s.close()
    harness.wait_until(lambda: gate.fd_count() <= base_fds, timeout=10,
                       what="fogate closed the client and upstream sockets")
    # fosim saw the download end early: the message was not fully downloaded
    r = gate.request("GET", "/healthz", key=None)
    assert r.status == 200
