"""Conformance: fosim's HTTP core (keep-alive, pipelining, chunked bodies, limits)."""
import json
import re
import socket
import subprocess
import signal

from harness import Workdir, default_sim_config, fosim, require_bin, start_fosim, workdir  # noqa: F401


def raw(sim, data, read_until=None, timeout=10):
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=timeout)
    s.sendall(data)
    buf = b""
    try:
        while read_until is None or buf.count(b"HTTP/1.1 ") < read_until:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    return buf


def test_healthz(fosim):
    r = fosim.get("/_sim/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}


def test_pipelined_requests_answer_in_order(fosim):
    req = (b"GET /_sim/healthz HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /_sim/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    buf = raw(fosim, req)
    statuses = re.findall(rb"HTTP/1.1 (\d{3})", buf)
    assert statuses == [b"200", b"404", b"200"]
    assert buf.rstrip().endswith(b'{"status":"ok"}')


def test_keep_alive_many_requests_one_connection(fosim):
    s = socket.create_connection(("127.0.0.1", fosim.port), timeout=10)
    f = s.makefile("rb")
    for _ in range(50):
        s.sendall(b"GET /_sim/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert f.readline().startswith(b"HTTP/1.1 200")
        length = 0
        while True:
            line = f.readline()
            if line == b"\r\n":
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        assert f.read(length) == b'{"status":"ok"}'
    s.close()


def test_chunked_request_body(fosim):
    body = json.dumps({"token_lifetime": 3599}).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (1, body[i:i + 1]) for i in range(len(body))) + b"0\r\n\r\n"
    buf = raw(fosim, b"POST /_sim/config HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n" + chunked)
    assert buf.startswith(b"HTTP/1.1 200"), buf[:200]


def test_expect_100_continue(fosim):
    s = socket.create_connection(("127.0.0.1", fosim.port), timeout=10)
    s.sendall(b"POST /_sim/clock HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n"
              b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
    assert s.recv(100).startswith(b"HTTP/1.1 100 Continue")
    s.sendall(b'{"advance": 0}')
    assert b"HTTP/1.1 200" in s.recv(4096)
    s.close()


def test_malformed_request_is_400_and_closed(fosim):
    buf = raw(fosim, b"GARBAGE\r\n\r\n")
    assert buf.startswith(b"HTTP/1.1 400")


def test_oversized_headers_are_refused(fosim):
    buf = raw(fosim, b"GET /_sim/healthz HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n")
    assert buf.startswith(b"HTTP/1.1 431")


def test_root_redirects_to_login_like_d365(fosim):
    r = fosim.get("/")
    assert r.status == 302 and "login.microsoftonline.com" in r.header("Location")


def test_bad_config_is_refused_with_the_key_named():
    w = Workdir()
    try:
        path = w.path + "/bad.json"
        with open(path, "w") as f:
            json.dump(default_sim_config(redelivery="sometimes"), f)
        p = subprocess.run([require_bin("FOSIM_BIN"), "--config", path], capture_output=True,
                           timeout=20)
        assert p.returncode == 2
        assert b"redelivery" in p.stderr
    finally:
        w.cleanup(False)


def test_sigterm_exits_zero_with_open_connection():
    w = Workdir()
    try:
        sim = start_fosim(w.path)
        s = socket.create_connection(("127.0.0.1", sim.port))
        s.sendall(b"GET /_sim/healthz HTTP/1.1\r\nHost: x\r\n")  # incomplete request
        assert sim.stop() == 0
        s.close()
    finally:
        w.cleanup(False)
