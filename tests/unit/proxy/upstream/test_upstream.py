"""proxy/upstream.c against real peers: nginx (static files, PUT, rate-limited, 302, TLS)
and scripted raw-socket servers (truncated, stalled, reset, oversized, chunked replies).
The C driver upstream_cli runs each scenario and reports per-transfer JSON."""
import gzip
import hashlib
import os
import socket
import time

import pytest

import harness
from upstream_peers import (Nginx, RawServer, head_fields, read_body, read_head, reset,
                            run_cli, sha256_file)

MiB = 1 << 20


@pytest.fixture(scope="module")
def nginx(request):
    wd = harness.Workdir("fogate-upstream-")
    ng = Nginx(wd.path)
    ng.sha = {
        "small": ng.add_file("files/small.bin", MiB),
        "a": ng.add_file("files/a.bin", 100_000),
        "b": ng.add_file("files/b.bin", 200_000),
        "big": ng.add_file("files/big.bin", 32 * MiB),
        "slow": ng.add_file("slow/slow.bin", MiB),
    }
    with open(os.path.join(ng.www, "files/tiny.json"), "w") as f:
        f.write('{"value":[1,2,3]}')
    yield ng
    ng.stop()
    wd.cleanup(request.session.testsfailed > 0)


@pytest.fixture
def raw():
    servers = []

    def start(script):
        s = RawServer(script)
        servers.append(s)
        return s
    yield start
    for s in servers:
        s.stop()


def only(lines):
    assert len(lines) == 1, lines
    return lines[0]


def test_get_ok_checksum(nginx):
    t, s, _ = run_cli("--allow-http", "get", nginx.url("/files/small.bin"))
    t = only(t)
    assert (t["result"], t["status"], t["bytes"]) == ("OK", 200, MiB)
    assert t["sha256"] == nginx.sha["small"]
    assert s["done"] == 1 and s["bytes_received"] == MiB


def test_bulk_receive_buffers_are_capped(nginx):
    # 12 downloads at once, bulk: 4 get the 256 KiB receive buffer (max_bulk_buffers), the
    # rest the 64 KiB one; every one arrives whole, and all are given back at the end.
    t, s, _ = run_cli("--allow-http", "--parallel", "--bulk", "get",
                      *[nginx.url("/files/small.bin")] * 12)
    assert len(t) == 12
    for x in t:
        assert (x["result"], x["status"], x["bytes"]) == ("OK", 200, MiB)
        assert x["sha256"] == nginx.sha["small"]
    assert s["bulk_buffers_peak"] == 4 and s["bulk_buffers"] == 0
    _, s, _ = run_cli("--allow-http", "--parallel", "get", *[nginx.url("/files/small.bin")] * 3)
    assert s["bulk_buffers_peak"] == 0  # not bulk: the small buffer


def test_connection_reused_for_sequential_requests(nginx):
    before = len(nginx.access_log())
    t, s, _ = run_cli("--allow-http", "--max-host-conns", "2", "get",
                      nginx.url("/files/a.bin"), nginx.url("/files/b.bin"))
    assert [x["result"] for x in t] == ["OK", "OK"]
    assert [x["sha256"] for x in t] == [nginx.sha["a"], nginx.sha["b"]]
    assert [x["connects"] for x in t] == [1, 0]
    assert s["connects"] == 1
    log = nginx.access_log()[before:]
    assert [line[3] for line in log] == ["/files/a.bin", "/files/b.bin"]
    assert log[0][0] == log[1][0], log            # same $connection
    assert [line[1] for line in log] == ["1", "2"]  # $connection_requests


@pytest.mark.parametrize("limit,conns", [("1", 1), ("0", 3)])
def test_max_host_connections(nginx, limit, conns):
    """Three transfers started at once share one connection when the per-host limit is 1
    (libcurl queues them), and open three without a limit."""
    before = len(nginx.access_log())
    urls = [nginx.url(p) for p in ("/files/small.bin", "/files/a.bin", "/files/b.bin")]
    t, s, _ = run_cli("--allow-http", "--parallel", "--consume-pause", "65536:1",
                      "--max-host-conns", limit, "get", *urls)
    assert sorted(x["result"] for x in t) == ["OK"] * 3, t
    assert s["connects"] == conns, s
    log = nginx.access_log()[before:]
    assert len(log) == 3 and len({line[0] for line in log}) == conns, log


def test_redirect_returned_as_is(nginx):
    before = len(nginx.access_log())
    t, _, _ = run_cli("--allow-http", "get", nginx.url("/redirect"))
    t = only(t)
    assert (t["result"], t["status"]) == ("OK", 302)
    assert t["location"].endswith("/elsewhere")
    assert [line[3] for line in nginx.access_log()[before:]] == ["/redirect"]


def test_http_refused_unless_allowed(nginx):
    before = len(nginx.access_log())
    t, _, _ = run_cli("get", nginx.url("/files/a.bin?sig=SECRET1"))
    t = only(t)
    assert t["result"] == "OTHER" and t["status"] == 0
    assert "http" in t["error"].lower() and "SECRET1" not in t["error"]
    assert len(nginx.access_log()) == before  # nothing was sent
    t, _, _ = run_cli("--allow-http", "get", nginx.url("/files/a.bin"))
    assert only(t)["result"] == "OK"


def test_tls_verified_with_ca_file(nginx):
    t, _, _ = run_cli("--ca", nginx.ca, "get", nginx.url("/files/a.bin", tls=True))
    t = only(t)
    assert (t["result"], t["status"], t["sha256"]) == ("OK", 200, nginx.sha["a"])
    # same server, its CA not trusted: verification must fail
    t, _, _ = run_cli("get", nginx.url("/files/a.bin?sig=SECRET2", tls=True))
    t = only(t)
    assert t["result"] == "TLS_FAILED", t
    assert "SECRET2" not in t["error"]


def test_connect_refused():
    port = harness.free_port()
    t, s, el = run_cli("--allow-http", "get", f"http://127.0.0.1:{port}/x?sig=SECRET3")
    t = only(t)
    assert t["result"] == "CONNECT_FAILED", t
    assert "SECRET3" not in t["error"] and t["error"]
    assert s["fds_done"] == s["fds_ready"]


def test_connect_timeout():
    # A listener whose accept queue is full drops further SYNs: the handshake never ends.
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    port = lst.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        time.sleep(0.2)
        t, s, el = run_cli("--allow-http", "--connect-ms", "500", "--total-ms", "20000",
                           "get", f"http://127.0.0.1:{port}/x")
    finally:
        for c in fillers:
            c.close()
        lst.close()
    t = only(t)
    assert (t["result"], t["status"]) == ("TIMEOUT", 0), t
    assert el < 5
    assert s["fds_after"] == s["fds_before"]


def test_total_timeout_on_slow_body(nginx):
    t, _, el = run_cli("--allow-http", "--total-ms", "1500", "get", nginx.url("/slow/slow.bin"))
    t = only(t)
    assert (t["result"], t["status"]) == ("TIMEOUT", 200), t
    assert 0 < t["bytes"] < MiB
    assert 1.4 < el < 10


def test_stall_after_headers_times_out(raw):
    def stall(conn, req, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
        conn.settimeout(20)
        conn.recv(1)  # until the client goes away
    srv = raw(stall)
    t, s, el = run_cli("--allow-http", "--total-ms", "800", "get", srv.url("/stall"))
    t = only(t)
    assert (t["result"], t["status"], t["bytes"]) == ("TIMEOUT", 200, 10), t
    assert el < 10
    assert s["fds_after"] == s["fds_before"]


def test_host_name_resolved(nginx):
    """A name (here from /etc/hosts; the own client asks evdns, never a blocking
    getaddrinfo) reaches the same server as its address."""
    url = nginx.url("/files/small.bin").replace("127.0.0.1", "localhost")
    t = only(run_cli("--allow-http", "get", url)[0])
    assert (t["result"], t["status"]) == ("OK", 200), t


def test_first_byte_limit(raw):
    """The whole request went out and no answer comes: FIRST_BYTE (the peer may have acted
    on it), not a plain timeout."""
    def silent(conn, req, rest):
        conn.settimeout(20)
        conn.recv(1)  # until the client goes away
    srv = raw(silent)
    t, s, el = run_cli("--allow-http", "--first-byte-ms", "300", "--total-ms", "20000", "get",
                       srv.url("/silent"))
    t = only(t)
    assert (t["result"], t["status"], t["request_sent"]) == ("FIRST_BYTE_TIMEOUT", 0, True), t
    assert el < 10
    assert s["fds_after"] == s["fds_before"]


def test_stall_limit_mid_body(raw):
    def stall(conn, req, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
        conn.settimeout(20)
        conn.recv(1)
    srv = raw(stall)
    t, s, el = run_cli("--allow-http", "--stall-ms", "300", "--total-ms", "20000", "get",
                       srv.url("/stall"))
    t = only(t)
    assert (t["result"], t["status"], t["bytes"]) == ("STALLED", 200, 10), t
    assert el < 10


def slow_keepalive(delay, arrivals):
    """A script answering every request on a kept connection after `delay` seconds; it
    appends each request's arrival time to `arrivals`."""
    def script(conn, req, rest):
        head = req["head"]
        while head is not None:
            arrivals.append(time.monotonic())
            time.sleep(delay)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            head, rest = read_head(conn)
    return script


def test_waiting_for_a_connection_is_not_a_stall(raw):
    """Six transfers at once behind max_host_connections 1, each answered after 0.15 s: the
    last waits about 0.75 s, over the 0.6 s limits, and still succeeds; one connection."""
    arrivals = []
    srv = raw(slow_keepalive(0.15, arrivals))
    t, s, el = run_cli("--allow-http", "--parallel", "--max-host-conns", "1",
                       "--first-byte-ms", "600", "--stall-ms", "600", "get",
                       *[srv.url(f"/q{i}") for i in range(6)])
    assert [x["result"] for x in t] == ["OK"] * 6, t
    assert s["connects"] == 1 and len(arrivals) == 6, s
    assert el > 0.75


def test_max_total_connections(raw):
    """Two hosts, max_total_connections 1: the second transfer starts only after the first
    one's connection was let go (its request arrives after the first answer)."""
    at_a, at_b = [], []
    a, b = raw(slow_keepalive(0.3, at_a)), raw(slow_keepalive(0, at_b))
    t, s, _ = run_cli("--allow-http", "--parallel", "--max-total-conns", "1", "get",
                      a.url("/a"), b.url("/b"))
    assert [x["result"] for x in t] == ["OK"] * 2, t
    assert s["connects"] == 2
    assert at_b[0] >= at_a[0] + 0.3


def test_truncated_content_length(raw):
    def short(conn, req, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 50000)
    srv = raw(short)
    t = only(run_cli("--allow-http", "get", srv.url("/short"))[0])
    assert (t["result"], t["status"], t["bytes"]) == ("TRUNCATED", 200, 50000), t


def test_truncated_chunked(raw):
    def cut(conn, req, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"400\r\n" + b"y" * 1024 + b"\r\n400\r\n" + b"z" * 100)
    srv = raw(cut)
    t = only(run_cli("--allow-http", "get", srv.url("/cut"))[0])
    assert (t["result"], t["status"]) == ("TRUNCATED", 200), t
    assert 1024 <= t["bytes"] < 2048


def test_reset_mid_body_is_truncated(raw):
    def rst(conn, req, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 2000)
        time.sleep(0.2)
        reset(conn)
    srv = raw(rst)
    t = only(run_cli("--allow-http", "get", srv.url("/rst"))[0])
    assert (t["result"], t["status"]) == ("TRUNCATED", 200), t


def test_chunked_download_with_pauses(raw):
    data = os.urandom(3 * MiB)

    def chunked(conn, req, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(data), 100_000):
            part = data[i:i + 100_000]
            conn.sendall(b"%x\r\n" % len(part) + part + b"\r\n")
        conn.sendall(b"0\r\nX-Trailer: 1\r\n\r\n")
    srv = raw(chunked)
    t, s, _ = run_cli("--allow-http", "--consume-pause", "200000:2", "get", srv.url("/c"))
    t = only(t)
    assert (t["result"], t["bytes"]) == ("OK", len(data)), t
    assert t["sha256"] == hashlib.sha256(data).hexdigest()
    assert t["pauses"] >= 10 and s["pauses"] >= 10


def test_head_over_cap_is_too_large(raw):
    def big_head(conn, req, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 8000 + b"\r\n\r\nbody")
    srv = raw(big_head)
    t = only(run_cli("--allow-http", "--max-header-bytes", "4096", "get", srv.url("/h"))[0])
    assert (t["result"], t["status"]) == ("TOO_LARGE", 0), t
    t = only(run_cli("--allow-http", "--max-header-bytes", "16384", "get", srv.url("/h"))[0])
    assert (t["result"], t["status"], t["bytes"]) == ("OK", 200, 4), t


def test_headers_sent_exactly(raw):
    def record(conn, req, rest):
        req["body"] = read_body(conn, req["head"], rest)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    srv = raw(record)
    t, _, _ = run_cli("--allow-http", "--header", "X-Api: 1", "--header",
                      "Accept-Encoding: gzip", "--header", "Content-Length: 99",
                      "--header", "Expect: 100-continue", "--header", "X-Empty:",
                      "get", srv.url("/p?q=%7Bx%7D"))
    assert only(t)["result"] == "OK"
    head = srv.requests[0]["head"]
    assert head.split("\r\n")[0] == "GET /p?q=%7Bx%7D HTTP/1.1"
    names = [k.lower() for k, _ in head_fields(head)]
    assert names == ["host", "x-api", "accept-encoding", "x-empty"], head
    assert dict(head_fields(head))["X-Empty"] == ""


def test_upload_has_no_expect_and_right_framing(raw, tmp_path):
    def record(conn, req, rest):
        req["body"] = read_body(conn, req["head"], rest)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    srv = raw(record)
    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(3 * MiB))  # over libcurl's 1 MiB Expect threshold
    for extra, framing in (([], ("content-length", str(3 * MiB))),
                           (["--chunked"], ("transfer-encoding", "chunked"))):
        t, _, el = run_cli("--allow-http", *extra, "--method", "POST", "put", srv.url("/up"),
                           str(src))
        t = only(t)
        assert (t["result"], t["status"], t["sent"]) == ("OK", 201, 3 * MiB), t
        req = srv.requests[-1]
        fields = {k.lower(): v for k, v in head_fields(req["head"])}
        assert req["head"].startswith("POST /up HTTP/1.1")
        assert "expect" not in fields and fields.get(framing[0]) == framing[1], req["head"]
        assert req["body"] == src.read_bytes()
        assert el < 30


def test_short_upload_fails_instead_of_sending_short_body(raw, tmp_path):
    def record(conn, req, rest):
        try:
            req["body"] = read_body(conn, req["head"], rest)
        except OSError:
            req["body"] = None  # cut short
            return
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
    srv = raw(record)
    src = tmp_path / "s.bin"
    src.write_bytes(os.urandom(1000))
    t = only(run_cli("--allow-http", "--body-len", "5000", "put", srv.url("/s"), str(src))[0])
    assert t["result"] == "OTHER" and "shorter" in t["error"], t
    assert t["sent"] == 1000
    srv.stop()
    assert srv.requests[0]["body"] is None


@pytest.mark.parametrize("produce,backpressure", [("262144:0", "space"), ("65536:1", "wait")])
def test_chunked_put_to_nginx(nginx, tmp_path, produce, backpressure):
    """A fast producer fills the send buffer and is told when there is room again
    (on_send_space); a slow one leaves libcurl waiting (read callback pauses)."""
    src = tmp_path / "c.bin"
    src.write_bytes(os.urandom(5 * MiB + 123))
    t, s, _ = run_cli("--allow-http", "--chunked", "--produce", produce, "put",
                      nginx.url(f"/upload/chunked-{backpressure}.bin"), str(src))
    t = only(t)
    assert (t["result"], t["status"], t["sent"]) == ("OK", 201, 5 * MiB + 123), t
    if backpressure == "space":
        assert t["space_events"] > 0, t
    else:
        assert s["pauses"] > 0, s
    assert sha256_file(os.path.join(nginx.www, f"upload/chunked-{backpressure}.bin")) == \
        sha256_file(src)


def test_abort_in_body_callback_frees_everything(nginx):
    url = nginx.url("/files/big.bin")
    t, s, _ = run_cli("--allow-http", "--abort-after", str(MiB), "get", url, url, url, url)
    assert [x["result"] for x in t] == ["ABORTED_BY_DRIVER"] * 4, t
    assert all(x["where"] == "on_body" for x in t)
    assert s["done_after_abort"] == 0 and s["done"] == 0 and s["aborted"] == 4
    assert s["fds_done"] == s["fds_ready"], s   # aborted connections are closed
    assert s["fds_after"] == s["fds_before"], s
    assert 4 * MiB <= s["bytes_received"] < 32 * MiB


def test_abort_from_outside_callbacks(nginx):
    url = nginx.url("/slow/slow.bin")
    t, s, el = run_cli("--allow-http", "--abort-ms", "300", "get", url, url, url)
    assert [x["result"] for x in t] == ["ABORTED_BY_DRIVER"] * 3, t
    assert all(x["where"] == "timer" for x in t)
    assert s["done_after_abort"] == 0 and s["aborted"] == 3
    assert s["fds_done"] == s["fds_ready"], s
    assert s["fds_after"] == s["fds_before"], s
    assert el < 10


def fetch(*args):
    """A fetch run through upstream_cli; checks that the client under test carried every
    transfer (native mode: the own client, none on libcurl) and returns (lines, summary)."""
    t, s, _ = run_cli(*args)
    native = os.environ.get("UPSTREAM_CLI_CLIENT") == "native"
    assert s["native_started"] == (s["started"] if native else 0), s
    for x in t:
        assert x.get("nul", True), x  # upstream.h: done->body is NUL-terminated
    return t, s


def test_fetch_buffers_and_caps(nginx):
    url = nginx.url("/files/tiny.json")
    t = only(fetch("--allow-http", "--max-bytes", "1000", "fetch", url)[0])
    assert (t["result"], t["status"], t["body"]) == ("OK", 200, '{"value":[1,2,3]}')
    assert t["nul"] is True
    t = only(fetch("--allow-http", "--max-bytes", "10", "fetch", url)[0])
    assert t["result"] == "TOO_LARGE" and "body" not in t, t
    t = only(fetch("--allow-http", "--max-bytes", str(MiB - 1), "fetch",
                   nginx.url("/files/small.bin"))[0])
    assert t["result"] == "TOO_LARGE", t
    t = only(fetch("--allow-http", "--max-bytes", str(MiB), "fetch",
                   nginx.url("/files/small.bin"))[0])
    assert (t["result"], t["bytes"], t["sha256"]) == ("OK", MiB, nginx.sha["small"])
    # several in a row on one connection: the buffers of the earlier ones are reused
    t, s = fetch("--allow-http", "--max-bytes", str(MiB), "fetch", url,
                 nginx.url("/files/a.bin"), url)
    assert [(x["result"], x["bytes"]) for x in t] == [("OK", 17), ("OK", 100_000), ("OK", 17)]
    assert t[1]["sha256"] == nginx.sha["a"] and t[2]["body"] == '{"value":[1,2,3]}'
    assert s["connects"] == 1, s


def test_fetch_content_length_over_cap_fails_at_the_head(raw):
    """A head announcing more than the cap ends the fetch at once (both clients): the peer
    here sends a few bytes and then waits for fogate to close, so reading on would hang."""
    def announce(conn, req, rest):
        if req["head"].startswith("HEAD "):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\nabc")
        while conn.recv(4096):  # until the client closes
            pass
    srv = raw(announce)
    t = only(fetch("--allow-http", "--max-bytes", "1000", "--total-ms", "60000", "fetch",
                   srv.url("/big"))[0])
    assert (t["result"], t["status"]) == ("TOO_LARGE", 200), t
    # HEAD: the length describes no body here, the fetch is fine (and empty, NUL-terminated)
    t = only(fetch("--allow-http", "--max-bytes", "1000", "--method", "HEAD", "fetch",
                   srv.url("/big"))[0])
    assert (t["result"], t["status"], t["body"], t["nul"]) == ("OK", 200, "", True), t


def test_fetch_chunked_reply_buffered_and_capped(raw):
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (b"a" * 3000, b"b" * 5000))
    def chunked(conn, req, rest):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body +
                     b"0\r\n\r\n")
    srv = raw(chunked)
    t = only(fetch("--allow-http", "--max-bytes", "8000", "fetch", srv.url("/c"))[0])
    assert (t["result"], t["bytes"]) == ("OK", 8000), t
    assert t["sha256"] == hashlib.sha256(b"a" * 3000 + b"b" * 5000).hexdigest()
    t = only(fetch("--allow-http", "--max-bytes", "7999", "fetch", srv.url("/c"))[0])
    assert t["result"] == "TOO_LARGE" and "body" not in t, t


def test_content_encoding_passed_through(nginx):
    text = b"fogate passes encoded bytes through untouched. " * 60
    with open(os.path.join(nginx.www, "gz/t.txt"), "wb") as f:
        f.write(text)
    t = only(run_cli("--allow-http", "--print-headers", "--header", "Accept-Encoding: gzip",
                     "fetch", nginx.url("/gz/t.txt"))[0])
    assert (t["result"], t["status"]) == ("OK", 200), t
    assert ["Content-Encoding", "gzip"] in t["headers"], t["headers"]
    raw_body = bytes.fromhex(t["body_hex"])
    assert raw_body[:2] == b"\x1f\x8b" and gzip.decompress(raw_body) == text
    # not asked for: no encoding, plain bytes
    t = only(run_cli("--allow-http", "fetch", nginx.url("/gz/t.txt"))[0])
    assert bytes.fromhex(t["body_hex"]) == text


def test_reused_handles_keep_no_method(raw):
    """Easy handles are reused with their options (no curl_easy_reset): each transfer
    sends its own method and framing, none of the previous transfer's."""
    def record(conn, req, rest):
        req["body"] = read_body(conn, req["head"], rest)
        if req["head"].startswith("HEAD "):
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    srv = raw(record)
    methods = ["POST", "GET", "HEAD", "GET", "DELETE", "GET", "PUT", "GET"]
    t, summary = fetch("--allow-http", "--method", ",".join(methods), "fetch",
                       *[srv.url("/m%d" % i) for i in range(len(methods))])
    assert [x["result"] for x in t] == ["OK"] * len(methods), t
    assert len(srv.requests) == len(methods)
    for i, (m, req) in enumerate(zip(methods, srv.requests)):
        assert req["head"].startswith("%s /m%d HTTP/1.1\r\n" % (m, i)), req["head"]
        fields = {k.lower(): v for k, v in head_fields(req["head"])}
        if m in ("POST", "PUT"):  # a fetch without a body: an empty one, announced
            assert fields.get("content-length") == "0", req["head"]
        else:
            assert "content-length" not in fields and "transfer-encoding" not in fields
        assert req["body"] == b""


def test_fetch_post_sends_body(raw):
    def record(conn, req, rest):
        req["body"] = read_body(conn, req["head"], rest)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 11\r\n\r\n{\"ok\":true}")
    srv = raw(record)
    body = "grant_type=client_credentials&client_secret=s3cr3t"
    t = only(fetch("--allow-http", "--method", "POST", "--body", body, "--header",
                   "Content-Type: application/x-www-form-urlencoded", "fetch",
                   srv.url("/token"))[0])
    assert (t["result"], t["status"], t["body"]) == ("OK", 200, '{"ok":true}')
    req = srv.requests[0]
    assert req["body"] == body.encode()
    fields = dict(head_fields(req["head"]))
    assert fields["Content-Length"] == str(len(body))
    assert req["head"].startswith("POST /token HTTP/1.1")
    # larger than the send buffer (128 KiB): a fetch's body still goes whole
    big = "k=" + "x" * 300_000
    t = only(fetch("--allow-http", "--method", "POST", "--body", big, "fetch",
                   srv.url("/big"))[0])
    assert (t["result"], t["sent"]) == ("OK", len(big)), t
    assert srv.requests[1]["body"] == big.encode()
