"""End to end: a SIGTERM drain and cut transfers (issue 11, items 10 and 12), against a real
fosim and a real fogate. During a drain a keep-alive connection is closed after its
response and fogate exits as soon as no connection is left; a download cut by the drain or
by the idle timeout is logged with that outcome and the body bytes expected vs sent."""
import http.client
import socket
import time

import pytest

import harness
import passkit
from harness import EXPORT_JOB
from harness import workdir  # noqa: F401
from passkit import ALICE_KEY

MIB = 1 << 20
DEQ = "/api/connector/dequeue/" + EXPORT_JOB


@pytest.fixture(scope="module")
def sim(workdir):
    s = harness.start_fosim(workdir, harness.default_sim_config())
    yield s
    assert s.stop() == 0


@pytest.fixture(autouse=True)
def clean(sim):
    sim.reset()
    yield
    sim.clear_faults()


def feed(sim, size):
    """One export message of `size` bytes in fosim."""
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=60)
    conn.request("POST", "/_sim/exports/" + EXPORT_JOB, body=b"e" * size,
                 headers={"Content-Length": str(size)})
    r = conn.getresponse()
    assert r.status == 200, r.read()
    r.read()
    conn.close()


def download_path(gate):
    r = gate.request("GET", DEQ)
    assert r.status == 200, r
    return r.json()["DownloadLocation"][len(gate.base):]


def start_download(gate, path, rcvbuf=64 * 1024):
    """A keep-alive GET of `path` on a raw socket with a small receive buffer; returns the
    socket, the response head (lower-case names) and the body bytes read with it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(20)
    s.connect(("127.0.0.1", gate.port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: fogate.test\r\nX-Api-Key: %s\r\n\r\n"
               % (path, ALICE_KEY)).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "closed before the response head"
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200 "), lines[0]
    hdrs = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return s, hdrs, body


def read_exactly(s, n):
    got = 0
    while got < n:
        chunk = s.recv(min(n - got, 1 << 18))
        assert chunk, "closed after %d of %d bytes" % (got, n)
        got += len(chunk)


def closed_by_peer(s, timeout):
    """True when the peer closes (EOF or reset) within timeout, with nothing more sent."""
    s.settimeout(timeout)
    try:
        data = s.recv(65536)
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    assert data == b"", "answered after the drain began: %r" % data[:200]
    return True


def request_line(gate, rid, timeout=10):
    return harness.wait_until(
        lambda: next((l for l in gate.log_lines()
                      if l.get("msg") == "request" and l.get("request_id") == rid), None),
        timeout=timeout, what="the request's log line")


def test_keep_alive_response_finishing_during_drain_closes_and_exit_is_prompt(workdir, sim):
    size = 8 * MIB
    feed(sim, size)
    gate = passkit.Gate(workdir, sim, timeouts={"shutdown_grace_ms": 20000})
    try:
        path = download_path(gate)
        s, hdrs, body = start_download(gate, path)
        assert int(hdrs["content-length"]) == size
        read_exactly(s, MIB - len(body))
        dequeues = passkit.requests_to(sim, "dequeue")
        gate.proc.send_signal(15)
        time.sleep(0.3)  # the drain has begun while the response is still being sent
        read_exactly(s, size - MIB)
        t_end = time.monotonic()
        # a next request on the same connection is never read: the connection closes
        try:
            s.sendall(("GET %s HTTP/1.1\r\nHost: fogate.test\r\nX-Api-Key: %s\r\n\r\n"
                       % (DEQ, ALICE_KEY)).encode())
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_by_peer(s, 5), "the keep-alive connection stayed open during the drain"
        s.close()
        assert gate.proc.wait(timeout=10) == 0
        assert time.monotonic() - t_end < 4.0, "waited for the grace with nothing left"
        assert passkit.requests_to(sim, "dequeue") == dequeues  # nothing reached D365 after
        line = request_line(gate, hdrs["x-request-id"])
        assert line["outcome"] == "ok" and line["status"] == 200
        assert line["body_expected"] == size and line["body_sent"] == size
    finally:
        assert gate.stop() == 0


def test_download_cut_by_the_drain_is_logged_as_drain(workdir, sim):
    size = 64 * MIB
    feed(sim, size)
    gate = passkit.Gate(workdir, sim, timeouts={"shutdown_grace_ms": 1000})
    try:
        s, hdrs, body = start_download(gate, download_path(gate))
        read_exactly(s, MIB - len(body))  # then stop reading: the rest cannot leave
        gate.proc.send_signal(15)
        assert gate.proc.wait(timeout=10) == 0
        s.close()
        line = request_line(gate, hdrs["x-request-id"])
        assert line["outcome"] == "drain" and line["status"] == 200, line
        assert line["body_expected"] == size and MIB <= line["body_sent"] < size, line
        assert line["level"] == "warn"
    finally:
        assert gate.stop() == 0


def test_download_cut_by_the_idle_timeout_is_logged_as_client_timeout(workdir, sim):
    size = 64 * MIB
    feed(sim, size)
    gate = passkit.Gate(workdir, sim, timeouts={"idle_ms": 1000})
    try:
        s, hdrs, body = start_download(gate, download_path(gate))
        read_exactly(s, MIB - len(body))  # then stop reading
        line = request_line(gate, hdrs["x-request-id"], timeout=15)
        assert line["outcome"] == "client_timeout" and line["status"] == 200, line
        assert line["body_expected"] == size and MIB <= line["body_sent"] < size, line
        s.close()
        # a whole response is "ok", and the same numbers agree
        r = gate.request("GET", "/healthz", key=None)
        ok = request_line(gate, r.header("X-Request-Id"))
        assert ok["outcome"] == "ok" and ok["body_expected"] == ok["body_sent"] == len(r.body)
    finally:
        assert gate.stop() == 0
