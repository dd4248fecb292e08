"""End to end: fogate reuses its upstream easy handles and keep-alive connections, and a
reused one never carries anything of the previous request over (method, body, framing,
headers, auth). The upstream is a recording keep-alive server; tokens come from fosim.
Also: small responses (head held until the body) come out whole at every size around the
16 KiB hold limit."""
import os
import socket
import threading
import time

import pytest

import harness
import passkit
from harness import workdir  # noqa: F401


class Recorder:
    """Keep-alive HTTP/1.1 server: records (connection number, method, target, headers,
    body) of every request and answers 200 with a body of the size the path asks for
    (/size/<n>), else a small JSON body. After .../close-when-idle it closes the connection
    0.3 s after answering."""

    def __init__(self):
        self.requests = []
        self.conns = 0
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.base_url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopping = False
        self.threads = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.conns += 1
                n = self.conns
            t = threading.Thread(target=self._serve, args=(conn, n), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn, n):
        conn.settimeout(30)
        buf = b""
        try:
            while not self.stopping:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                fields = [tuple(x.strip() for x in l.split(":", 1)) for l in lines[1:]]
                low = {k.lower(): v for k, v in fields}
                body, buf = self._body(conn, low, buf)
                with self.lock:
                    self.requests.append({"conn": n, "method": method, "target": target,
                                          "fields": fields, "low": low, "body": body})
                conn.sendall(self._answer(method, target))
                if target.endswith("/close-when-idle"):
                    time.sleep(0.3)  # fogate has the connection idle in its cache by now
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def _recv_until(self, conn, buf, pred):
        while not pred(buf):
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("closed inside a body")
            buf += chunk
        return buf

    def _body(self, conn, low, buf):
        if "content-length" in low:
            n = int(low["content-length"])
            buf = self._recv_until(conn, buf, lambda b: len(b) >= n)
            return buf[:n], buf[n:]
        if low.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                buf = self._recv_until(conn, buf, lambda b: b"\r\n" in b)
                size_line, buf = buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                buf = self._recv_until(conn, buf, lambda b: len(b) >= size + 2)
                body += buf[:size]
                buf = buf[size + 2:]
                if size == 0:
                    return body, buf
        return None, buf

    @staticmethod
    def _answer(method, target):
        if "/size/" in target:
            n = int(target.rsplit("/", 1)[1])
            body = bytes((i * 7 + 3) % 251 for i in range(n))
            ctype = b"application/octet-stream"
        else:
            body = b'{"seen":"%s %s"}' % (method.encode(), target.encode())
            ctype = b"application/json"
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: " + ctype + b"\r\nContent-Length: %d\r\n\r\n"
                % len(body))
        return head + (b"" if method == "HEAD" else body)

    def stop(self):
        self.stopping = True
        self.accepter.join(5)
        self.sock.close()


@pytest.fixture(scope="module")
def rec():
    r = Recorder()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def sim(workdir, rec):
    """fosim only as the token endpoint, issuing tokens for the recorder's URL."""
    s = harness.start_fosim(workdir, harness.default_sim_config(audience=rec.base_url))
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def gate(workdir, sim, rec):
    g = passkit.Gate(workdir, sim, extra_env={"base_url": rec.base_url})
    yield g
    assert g.stop() == 0


def names(req):
    return [k.lower() for k, _ in req["fields"]]


def test_reused_handle_carries_nothing_over(gate, rec):
    """POST with a body and a custom header, then GET, PUT chunked, DELETE and GET again:
    one upstream connection, and each request upstream has only what its client sent."""
    before = len(rec.requests)
    r = gate.request("POST", "/data/Things?x=1", b'{"a":1}',
                     headers={"Content-Type": "application/json", "X-First": "one"})
    assert r.status == 200, r
    r = gate.request("GET", "/data/Things(1)")
    assert r.status == 200 and r.body == b'{"seen":"GET /data/Things(1)"}', r
    conn = http_conn(gate)
    conn.putrequest("PUT", "/data/Things(2)", skip_accept_encoding=True)
    conn.putheader("X-Api-Key", passkit.ALICE_KEY)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("X-Third", "three")
    conn.endheaders()
    conn.send(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b'{"seen":"PUT /data/Things(2)"}'
    conn.close()
    r = gate.request("DELETE", "/data/Things(3)")
    assert r.status == 200, r
    r = gate.request("GET", "/data/Things(4)", headers={"Accept": "application/json"})
    assert r.status == 200, r

    reqs = rec.requests[before:]
    assert [(q["method"], q["target"]) for q in reqs] == [
        ("POST", "/data/Things?x=1"), ("GET", "/data/Things(1)"), ("PUT", "/data/Things(2)"),
        ("DELETE", "/data/Things(3)"), ("GET", "/data/Things(4)")]
    assert len({q["conn"] for q in reqs}) == 1, [q["conn"] for q in reqs]
    post, get1, put, delete, get2 = reqs
    assert post["body"] == b'{"a":1}' and post["low"]["content-length"] == "7"
    assert post["low"]["x-first"] == "one"
    for q in (get1, delete, get2):
        assert q["body"] is None, q
        assert "content-length" not in q["low"] and "transfer-encoding" not in q["low"], q
    for q in (get1, put, delete, get2):
        assert "x-first" not in q["low"] and "content-type" not in q["low"], q
    assert put["body"] == b"hello world" and "x-third" in put["low"]
    assert "x-third" not in get2["low"] and "x-third" not in delete["low"]
    assert get2["low"].get("accept") == "application/json"
    assert "accept" not in get1["low"] and "accept" not in delete["low"]
    token = post["low"]["authorization"]
    assert token.startswith("Bearer ") and len(token) > 20
    for q in reqs:
        assert q["low"]["authorization"] == token
        assert names(q).count("authorization") == 1 and names(q).count("host") == 1
        assert "x-api-key" not in q["low"] and "expect" not in q["low"], q


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_upstream_closing_an_idle_connection(gate, rec):
    """The upstream closes a keep-alive connection fogate keeps idle: fogate does not spin on
    it, and the next requests go out on a new connection (its socket often gets the old
    descriptor number), which is then reused in turn."""
    before = len(rec.requests)
    assert gate.request("GET", "/data/close-when-idle").status == 200
    time.sleep(0.6)
    c0 = cpu_s(gate.pid)
    time.sleep(1.0)
    assert cpu_s(gate.pid) - c0 < 0.3, "fogate busy while idle"
    for i in range(3):
        r = gate.request("GET", "/data/after/%d" % i)
        assert r.status == 200 and r.body == b'{"seen":"GET /data/after/%d"}' % i, r
    reqs = rec.requests[before:]
    assert [q["target"] for q in reqs] == ["/data/close-when-idle", "/data/after/0",
                                           "/data/after/1", "/data/after/2"]
    assert reqs[1]["conn"] != reqs[0]["conn"]
    assert reqs[1]["conn"] == reqs[2]["conn"] == reqs[3]["conn"]


def http_conn(gate):
    import http.client
    return http.client.HTTPConnection("127.0.0.1", gate.port, timeout=30)


@pytest.mark.parametrize("size", [0, 1, 1024, 16383, 16384, 16385, 70000])
def test_small_and_larger_responses_arrive_whole(gate, rec, size):
    """Bodies up to 16 KiB leave with their head in one send; longer ones are streamed: every
    size arrives byte-exact, also twice on one keep-alive client connection."""
    want = bytes((i * 7 + 3) % 251 for i in range(size))
    conn = http_conn(gate)
    for _ in range(2):
        conn.request("GET", "/data/size/%d" % size, headers={"X-Api-Key": passkit.ALICE_KEY})
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Length") == str(size)
        assert resp.read() == want
    conn.request("HEAD", "/data/size/%d" % size, headers={"X-Api-Key": passkit.ALICE_KEY})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b""
    conn.close()


def test_idle_connection_serves_pipelined_and_later_requests(gate, rec):
    """A keep-alive connection gives its head buffers back while idle: the next request
    and two pipelined ones after it are still parsed right."""
    s = passkit.raw_connect(gate)
    req = ("GET /data/size/%d HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + passkit.ALICE_KEY +
           "\r\n\r\n")
    try:
        for batch in ([10], [20, 30], [40]):
            s.sendall("".join(req % n for n in batch).encode())
            data = b""
            for n in batch:
                while True:
                    if b"\r\n\r\n" in data:
                        head, rest = data.split(b"\r\n\r\n", 1)
                        if len(rest) >= n:
                            break
                    chunk = s.recv(65536)
                    assert chunk, "fogate closed the connection"
                    data += chunk
                assert head.startswith(b"HTTP/1.1 200 ")
                assert b"Content-Length: %d" % n in head
                assert rest[:n] == bytes((i * 7 + 3) % 251 for i in range(n))
                data = rest[n:]
            assert data == b""
    finally:
        s.close()
