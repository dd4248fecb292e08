"""End-to-end tests of fogate's front end: command line, /healthz over keep-alive and
pipelining, error shapes, request log, bodies, limits, accept back-off, shutdown."""

import json
import os
import re
import resource
import signal
import socket
import subprocess
import time

import pytest

import frontkit
import harness
from frontkit import Reader, is_request_id, read_until_close, request


def run_cli(*args, env=None):
    return subprocess.run([frontkit.fogate_bin(), *args], capture_output=True, text=True,
                          timeout=30, env=env or frontkit.child_env())


# ---- command line ---------------------------------------------------------------------

def test_check_config_accepts_a_valid_file(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(frontkit.make_config(8080)))
    r = run_cli("--check-config", str(path))
    assert r.returncode == 0, r.stderr
    assert str(path) in r.stdout and "valid" in r.stdout


@pytest.mark.parametrize("mutate, names", [
    (lambda c: c["limits"].update(max_headerz=5), "limits.max_headerz"),
    (lambda c: c.pop("listen"), "listen"),
    (lambda c: c["jobs"]["import1"].update(environment="nope"), "jobs.import1.environment"),
    (lambda c: c["timeouts"].update(idle_ms="soon"), "timeouts.idle_ms"),
])
def test_check_config_rejects_with_the_key_path(tmp_path, mutate, names):
    cfg = frontkit.make_config(8080)
    mutate(cfg)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg, indent=1))
    r = run_cli("--check-config", str(path))
    assert r.returncode == 2
    assert names in r.stderr and str(path) in r.stderr
    assert r.stdout == ""


def test_check_config_unreadable_or_broken(tmp_path):
    missing = tmp_path / "missing.json"
    r = run_cli("--check-config", str(missing))
    assert r.returncode == 2 and str(missing) in r.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"listen": "127.0.0.1:1",\n')
    r = run_cli("--check-config", str(broken))
    assert r.returncode == 2 and str(broken) in r.stderr


def test_check_config_never_prints_the_secret(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(frontkit.make_config(8080)))
    env = frontkit.child_env()
    env[frontkit.SECRET_ENV] = "s3cr3t-value-that-must-not-leak"
    r = run_cli("--check-config", str(path), env=env)
    assert r.returncode == 0
    assert "s3cr3t" not in r.stdout + r.stderr


def test_missing_secret_env_fails_the_check(tmp_path):
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(frontkit.make_config(8080)))
    env = frontkit.child_env()
    del env[frontkit.SECRET_ENV]
    r = run_cli("--check-config", str(path), env=env)
    assert r.returncode == 2 and frontkit.SECRET_ENV in r.stderr


def test_version_help_and_usage_errors(tmp_path):
    r = run_cli("--version")
    # the Debian package version (top of deploy/debian/changelog) and the commit built
    with open(os.path.join(harness.src_root(), "deploy/debian/changelog")) as f:
        deb_version = re.match(r"fogate \(([^)]+)\)", f.readline()).group(1)
    assert r.returncode == 0
    assert re.fullmatch(r"fogate %s \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n"
                        % re.escape(deb_version), r.stdout), r.stdout
    r = run_cli("--help")
    assert r.returncode == 0 and "--check-config" in r.stdout
    assert run_cli().returncode == 2
    assert run_cli("--bogus").returncode == 2
    assert run_cli("-c", "a.json", "--check-config", "b.json").returncode == 2


def test_run_with_a_bad_config_exits_2(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("[]")
    r = run_cli("-c", str(path))
    assert r.returncode == 2 and str(path) in r.stderr


# ---- /healthz, keep-alive, pipelining ---------------------------------------------------

def test_startup_logs_the_bound_address(front):
    assert front.address == "127.0.0.1:%d" % front.port


def test_healthz_over_keep_alive(front):
    s = front.connect()
    rd = Reader(s)
    ids = set()
    for _ in range(3):
        s.sendall(request("/healthz"))
        r = rd.next()
        assert r.status == 200
        assert r.json() == {"status": "ok"}
        assert r.header("content-type") == "application/json"
        assert r.header("connection") is None
        assert r.header("date").endswith(" GMT")
        assert is_request_id(r.header("x-request-id"))
        ids.add(r.header("x-request-id"))
    assert len(ids) == 3
    s.sendall(request("/healthz", method="HEAD"))
    r = rd.next(head_request=True)
    assert r.status == 200 and r.body == b"" and r.header("content-length") == "15"
    s.close()


def test_pipelined_requests_are_answered_in_order(front):
    s = front.connect()
    s.sendall(request("/healthz") + request("/nope") + request("/healthz", method="HEAD")
              + request("/healthz", method="DELETE") + request("/healthz?a=1"))
    rd = Reader(s)
    got = [rd.next(), rd.next(), rd.next(head_request=True), rd.next(), rd.next()]
    assert [r.status for r in got] == [200, 404, 200, 405, 200]
    assert got[2].body == b""
    assert got[1].json()["request_id"] == got[1].header("x-request-id")
    assert len({r.header("x-request-id") for r in got}) == 5
    s.close()


def test_pipelined_burst_in_tiny_pieces(front):
    burst = b"".join(request("/healthz?i=%d" % i) for i in range(50))
    s = front.connect()
    for i in range(0, len(burst), 7):
        s.sendall(burst[i:i + 7])
    rd = Reader(s)
    assert [rd.next().status for _ in range(50)] == [200] * 50
    s.close()


def test_http10_closes_unless_keep_alive(front):
    s = front.connect()
    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    data = read_until_close(s)
    r, rest = frontkit.parse_response(data)
    assert r.status == 200 and r.header("connection") == "close" and rest == b""
    s = front.connect()
    s.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    rd = Reader(s)
    r = rd.next()
    assert r.status == 200 and r.header("connection") == "keep-alive"
    s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    assert rd.next().status == 200
    s.close()


def test_empty_lines_between_requests_are_not_a_request(start_front):
    # a stray CRLF must not start the head deadline (0.5 s): the connection waits past it
    # and is still served, well within the idle timeout (10 s), however loaded the machine
    front = start_front(timeouts={"request_head_ms": 500, "idle_ms": 10000})
    s = front.connect()
    rd = Reader(s)
    s.sendall(request("/nope", method="POST", body=b"abc") + b"\r\n")
    assert rd.next().status == 404
    time.sleep(1.0)
    s.sendall(b"\r\n" + request("/healthz"))
    assert rd.next().status == 200
    s.close()


def test_connection_close_is_honoured(front):
    s = front.connect()
    s.sendall(request("/healthz", headers={"Connection": "close"}) + request("/healthz"))
    data = read_until_close(s)
    r, rest = frontkit.parse_response(data)
    assert r.status == 200 and r.header("connection") == "close"
    assert rest == b""  # the second request is never answered


# ---- error shapes -----------------------------------------------------------------------

def test_404_shape(front):
    s = front.connect()
    s.sendall(request("/no/such/route?token=abc"))
    r = Reader(s).next()
    assert r.status == 404 and r.header("content-type") == "application/json"
    body = r.json()
    assert set(body) == {"code", "message", "request_id", "trace_id"}
    assert body["code"] == "not_found" and body["message"]
    assert re.fullmatch(r"[0-9a-f]{32}", body["trace_id"])
    assert body["request_id"] == r.header("x-request-id")
    assert r.header("connection") is None  # an app error keeps the connection
    s.close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_405_with_allow(front, method):
    s = front.connect()
    s.sendall(request("/healthz", method=method))
    r = Reader(s).next()
    assert r.status == 405 and r.header("allow") == "GET, HEAD"
    body = r.json()
    assert body["code"] == "method_not_allowed" and body["request_id"] == r.header("x-request-id")
    s.close()


# ---- request log --------------------------------------------------------------------------

def test_request_log_lines(front):
    s = front.connect()
    rd = Reader(s)
    s.sendall(request("/healthz?api_key=SECRET123"))
    ok = rd.next()
    s.sendall(request("/nope/deeper?sig=SECRET456&x=1"))
    missing = rd.next()
    s.close()
    lines = {}
    for rid in (ok.header("x-request-id"), missing.header("x-request-id")):
        lines[rid] = front.wait_log(lambda l, rid=rid: l.get("request_id") == rid)
    a = lines[ok.header("x-request-id")]
    assert a["msg"] == "request" and a["method"] == "GET" and a["path"] == "/healthz"
    assert a["status"] == 200 and a["bytes_out"] > 15 and a["bytes_in"] == len(request("/healthz?api_key=SECRET123"))
    assert isinstance(a["duration_us"], int) and 0 <= a["duration_us"] < 5_000_000
    assert a["client"].startswith("127.0.0.1:") and a["level"] == "info" and "ts" in a
    b = lines[missing.header("x-request-id")]
    assert b["path"] == "/nope/deeper" and b["status"] == 404 and b["code"] == "not_found"
    text = front.log_text()
    assert "SECRET123" not in text and "SECRET456" not in text and "sig=" not in text
    assert "not-a-real-secret" not in text


def test_every_log_line_is_json(front):
    s = front.connect()
    s.sendall(request("/healthz") + b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
    read_until_close(s)
    front.wait_log(lambda l: l.get("status") == 400)
    for line in front.log_lines():  # log_lines() fails on a line that is not JSON
        assert {"ts", "level", "msg"} <= set(line)


# ---- bodies ---------------------------------------------------------------------------------

def test_unread_body_is_discarded_and_the_connection_kept(front):
    s = front.connect()
    rd = Reader(s)
    s.sendall(request("/nope", method="POST", body=b"x" * 500) + request("/healthz"))
    assert rd.next().status == 404
    assert rd.next().status == 200
    chunked = (b"POST /healthz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n0\r\n\r\n")
    s.sendall(chunked + request("/healthz"))
    assert rd.next().status == 405
    assert rd.next().status == 200
    s.close()


def test_body_sent_in_pieces_after_the_response(front):
    s = front.connect()
    rd = Reader(s)
    s.sendall(b"POST /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n01234")
    assert rd.next().status == 404
    time.sleep(0.2)
    s.sendall(b"56789" + request("/healthz"))
    assert rd.next().status == 200
    s.close()


def test_expect_continue_without_reading_closes(front):
    s = front.connect()
    s.sendall(b"POST /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n"
              b"Expect: 100-continue\r\n\r\n")
    data = read_until_close(s)
    assert b"100 Continue" not in data
    r, rest = frontkit.parse_response(data)
    assert r.status == 404 and r.header("connection") == "close" and rest == b""


def test_body_over_the_limit_is_413_before_reading(front):
    s = front.connect()
    s.sendall(b"PUT /nope HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n"
              b"Expect: 100-continue\r\n\r\n")
    data = read_until_close(s)
    assert b"100 Continue" not in data
    r, rest = frontkit.parse_response(data)
    assert r.status == 413 and r.json()["code"] == "body_too_large" and rest == b""


def test_chunked_body_over_the_discard_limit_closes(front):
    # Bodies nobody reads are dropped up to 1 MiB; beyond that the connection closes.
    s = front.connect()
    s.sendall(b"POST /nope HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    rd = Reader(s)
    assert rd.next().status == 404
    chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
    with pytest.raises((BrokenPipeError, ConnectionResetError, AssertionError)):
        for _ in range(40):
            s.sendall(chunk)
        s.sendall(request("/healthz"))
        rd.next(timeout=3)


# ---- limits -----------------------------------------------------------------------------

# the connection cap (shed idle keep-alive, hold the backlog) is tested in test_conncap.py


def test_accept_errors_do_not_spin(start_front):
    """With the descriptor limit reached, accept fails with EMFILE: fogate must pause
    accepting (not burn a CPU on a socket that stays readable) and recover later."""
    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (24, 24))

    f = start_front(preexec_fn=low_nofile, limits={"max_connections": 1000})
    clients = []
    for _ in range(40):
        clients.append(f.connect())
    f.wait_log(lambda l: "accept failed" in l.get("msg", ""))
    cpu0 = f.cpu_seconds()
    time.sleep(1.0)
    assert f.cpu_seconds() - cpu0 < 0.5
    for s in clients:
        s.close()
    time.sleep(0.5)
    s = f.connect()
    s.sendall(request("/healthz"))
    assert Reader(s).next(timeout=5).status == 200
    s.close()


def test_low_open_file_limit_is_warned_at_start(start_front):
    """An open-file limit below 2 x max_connections + 64 per worker is said at start, with
    the numbers and what to raise; one that suffices is not."""
    def nofile(n):
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))

    low = start_front(preexec_fn=nofile(1000), limits={"max_connections": 1000})
    warned = [l for l in low.log_lines() if "open-file limit" in l["msg"]]
    assert len(warned) == 1 and warned[0]["level"] == "warn", warned
    assert "is 1000, below the 2064" in warned[0]["msg"] and "LimitNOFILE=" in warned[0]["msg"]
    enough = start_front(preexec_fn=nofile(2064), limits={"max_connections": 1000})
    assert not [l for l in enough.log_lines() if "open-file limit" in l["msg"]]


# ---- shutdown -----------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_0_promptly(start_front, sig):
    f = start_front(timeouts={"shutdown_grace_ms": 30000})
    idle = f.connect()
    idle.sendall(request("/healthz"))
    assert Reader(idle).next().status == 200
    t0 = time.monotonic()
    f.signal(sig)
    assert f.wait(timeout=20) == 0
    assert time.monotonic() - t0 < 10.0  # "promptly": no 30 s grace wait with nothing in flight
    assert read_until_close(idle, timeout=1) == b""  # the idle keep-alive was closed
    f.wait_log(lambda l: l.get("msg") == "stopped")


def test_request_in_flight_finishes_during_shutdown(start_front):
    f = start_front(timeouts={"request_head_ms": 20000, "shutdown_grace_ms": 15000})
    s = f.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
    time.sleep(0.2)
    f.signal()

    def refused():
        try:
            socket.create_connection(("127.0.0.1", f.port), timeout=2).close()
        except ConnectionRefusedError:
            return True
        return False
    harness.wait_until(refused, timeout=3, interval=0.05, what="listening socket closed")
    assert f.proc.poll() is None  # still waiting for the rest of this head
    s.sendall(b"\r\n")
    data = read_until_close(s)
    r, rest = frontkit.parse_response(data)
    assert r.status == 200 and r.header("connection") == "close" and rest == b""
    assert f.wait(timeout=5) == 0


def test_shutdown_grace_bounds_the_wait(start_front):
    f = start_front(timeouts={"request_head_ms": 60000, "shutdown_grace_ms": 500})
    s = f.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(0.1)
    t0 = time.monotonic()
    f.signal()
    assert f.wait(timeout=20) == 0
    assert 0.4 < time.monotonic() - t0 < 15.0  # the grace, not the 60 s head deadline
    assert read_until_close(s, timeout=1) == b""


def test_second_signal_stops_at_once(start_front):
    f = start_front(timeouts={"request_head_ms": 60000, "shutdown_grace_ms": 60000})
    s = f.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(0.1)
    f.signal()
    time.sleep(0.2)
    assert f.proc.poll() is None
    f.signal()
    assert f.wait(timeout=15) == 0  # not the 60 s grace
    s.close()
