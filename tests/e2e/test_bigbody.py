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


def stored_digests(workdir, size):
    """sha256 of every file of `size` bytes fosim has stored."""
    out = set()
    for dp, _, fs in os.walk(os.path.join(workdir, "fosim-data")):
        for f in fs:
            path = os.path.join(dp, f)
            if os.path.getsize(path) == size:
                with open(path, "rb") as fh:
                    out.add(hashlib.sha256(fh.read()).hexdigest())
    return out


def read_response(s, buf):
    """One response with a Content-Length body from socket s; returns (status, body, rest)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        assert d, "connection closed before a response head"
        buf += d
    head, _, buf = buf.partition(b"\r\n\r\n")
    n = int([ln.split(b":", 1)[1] for ln in head.split(b"\r\n")
             if ln.lower().startswith(b"content-length:")][0])
    while len(buf) < n:
        d = s.recv(65536)
        assert d, "connection closed inside a body"
        buf += d
    return int(head.split()[1]), buf[:n], buf[n:]


def test_uploads_larger_than_a_read_byte_exact_then_pipelined(gate, sim, workdir):
    """fogate reads streamed bodies in pieces of up to 256 KiB: a chunked body whose chunks
    straddle those reads and a Content-Length body, each followed at once by a pipelined
    request in the same send, arrive byte-exact and the requests after them are answered."""
    sizes = [1, 300000, 262144, 262145, 7, 600001, 65536, 131071]
    data = b"".join(pattern(i)[:n] for i, n in enumerate(sizes))
    path = "/api/connector/enqueue/%s?entity=Customer+groups" % IMPORT_JOB
    head = "POST %s HTTP/1.1\r\nHost: x\r\nX-Api-Key: %s\r\n" % (path, ALICE_KEY)
    chunked, off = b"", 0
    for n in sizes:
        chunked += b"%x\r\n" % n + data[off:off + n] + b"\r\n"
        off += n
    health = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    s = passkit.raw_connect(gate)
    s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode() + chunked +
              b"0\r\n\r\n" + health)
    st, body, rest = read_response(s, b"")
    assert st == 200, body
    st, _, rest = read_response(s, rest)
    assert st == 200
    plain = data[::-1]
    s.sendall((head + "Content-Length: %d\r\n\r\n" % len(plain)).encode() + plain + health)
    st2, body2, rest = read_response(s, rest)
    assert st2 == 200, body2
    st, _, rest = read_response(s, rest)
    assert st == 200 and rest == b""
    s.close()
    for b, want in ((body, data), (body2, plain)):
        assert sim.ctl("GET", "messages/" + b.decode().strip('"'))["size"] == len(want)
        assert hashlib.sha256(want).hexdigest() in stored_digests(workdir, len(want))


def test_streamed_download_then_pipelined_request(gate, sim):
    """A streamed response is queued and flushed once per loop turn; the request pipelined
    behind it waits for that output to drain and is then answered on the same connection."""
    want = feed(sim, 4 * CHUNK)
    path = download_path(gate)
    s = passkit.raw_connect(gate)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nX-Api-Key: %s\r\n\r\n"
               "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" % (path, ALICE_KEY)).encode())
    st, body, rest = read_response(s, b"")
    assert st == 200 and hashlib.sha256(body).hexdigest() == want
    st, _, rest = read_response(s, rest)
    assert st == 200 and rest == b""
    s.close()


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
