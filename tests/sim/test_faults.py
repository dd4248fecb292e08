"""Conformance: fault injection, counters and the control API (reference §5, §7, §8.1)."""
import email.utils
import http.client
import re
import socket
import time

import pytest

from harness import APP_ID, EXPORT_JOB, IMPORT_JOB, TENANT, fosim, workdir  # noqa: F401

DEQ = f"/api/connector/dequeue/{EXPORT_JOB}"
SPL_REQUESTS = "Number of requests exeeded the limit of 6000 over the time window of 300 seconds."


@pytest.fixture(autouse=True)
def clean(fosim):
    fosim.reset()
    yield
    fosim.clear_faults()


@pytest.fixture
def tok(fosim):
    return fosim.token()


def test_429_with_integer_retry_after_and_spl_message(fosim, tok):
    fosim.fault(endpoint="dequeue", kind="status", status=429, retry_after=3, count=2)
    for _ in range(2):
        r = fosim.get(DEQ, token=tok)
        assert r.status == 429
        assert r.header("Retry-After") == "3"
        assert r.json() == {"error": {"code": "", "message": SPL_REQUESTS}}
    assert fosim.get(DEQ, token=tok).status == 204
    assert fosim.counters()["faults_applied"] == 2


def test_429_with_http_date_retry_after(fosim, tok):
    """retry_after_form "date": an IMF-fixdate retry_after seconds from now (RFC 9110
    §10.2.3); real D365 sends whole seconds (§5.1), this tests clients accepting both."""
    fosim.fault(endpoint="dequeue", kind="status", status=429, retry_after=30,
                retry_after_form="date", count=1)
    before = time.time()
    r = fosim.get(DEQ, token=tok)
    after = time.time()
    assert r.status == 429
    ra = r.header("Retry-After")
    assert re.fullmatch(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|"
                        r"Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT", ra), ra
    when = email.utils.parsedate_to_datetime(ra).timestamp()
    assert int(before) + 30 <= when <= after + 30, (ra, before, after)
    assert r.json() == {"error": {"code": "", "message": SPL_REQUESTS}}
    assert fosim.get(DEQ, token=tok).status == 204


@pytest.mark.parametrize("form", ["Date", "http-date", 1])
def test_bad_retry_after_form_refused(fosim, form):
    r = fosim.post("/_sim/faults", {"endpoint": "dequeue", "kind": "status", "status": 429,
                                    "retry_after_form": form})
    assert r.status == 400 and b"retry_after_form" in r.body, r
    assert fosim.ctl("GET", "faults") == []


@pytest.mark.parametrize("limit,needle", [("time", "Combined execution time"),
                                          ("concurrent", "limit of 52"),
                                          ("resource", "high resource utilization")])
def test_429_limit_messages(fosim, tok, limit, needle):
    fosim.fault(endpoint="enqueue", kind="status", status=429, limit=limit, count=1)
    r = fosim.post(f"/api/connector/enqueue/{IMPORT_JOB}", b"x", token=tok)
    assert r.status == 429 and needle in r.json()["error"]["message"]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_for_next_n_calls(fosim, tok, status):
    fosim.fault(endpoint="ack", kind="status", status=status, count=2)
    body = {"CorrelationId": "5acd8121-d4e1-4cf8-b31f-9713de3e3627", "PopReceipt": "x"}
    got = [fosim.post(f"/api/connector/ack/{EXPORT_JOB}", body, token=tok).status
           for _ in range(3)]
    assert got == [status, status, 400]


def test_after_lets_calls_through_first(fosim, tok):
    fosim.fault(endpoint="dequeue", kind="status", status=502, after=2, count=1)
    got = [fosim.get(DEQ, token=tok).status for _ in range(4)]
    assert got == [204, 204, 502, 204]


def test_413_above_size(fosim, tok):
    fosim.fault(endpoint="enqueue", kind="too_large", size=100)
    ok = fosim.post(f"/api/connector/enqueue/{IMPORT_JOB}", b"x" * 100, token=tok)
    big = fosim.post(f"/api/connector/enqueue/{IMPORT_JOB}", b"x" * 101, token=tok)
    assert ok.status == 200 and big.status == 413


def download_path(fosim, tok):
    j = fosim.get(DEQ, token=tok).json()
    return j["DownloadLocation"][len(fosim.base_url):]


def test_slow_body(fosim, tok):
    fosim.feed_export(b"s" * 30000)
    path = download_path(fosim, tok)
    fosim.fault(endpoint="download", kind="slow", rate=15000, count=1)
    t0 = time.monotonic()
    r = fosim.get(path, token=tok)
    took = time.monotonic() - t0
    assert r.status == 200 and r.body == b"s" * 30000
    assert took >= 1.3, took
    t0 = time.monotonic()
    assert fosim.get(path, token=tok).status == 200
    assert time.monotonic() - t0 < 1.0


def test_stalled_body(fosim, tok):
    fosim.feed_export(b"z" * 1000)
    path = download_path(fosim, tok)
    fosim.fault(endpoint="download", kind="stall", count=1)
    s = socket.create_connection(("127.0.0.1", fosim.port), timeout=1.5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 1000" in head
    assert head.endswith(b"\r\n\r\n")
    with pytest.raises(socket.timeout):
        s.recv(4096)
    s.close()


def test_truncated_body(fosim, tok):
    fosim.feed_export(b"t" * 5000)
    path = download_path(fosim, tok)
    fosim.fault(endpoint="download", kind="truncate", bytes=1234, count=1)
    s = socket.create_connection(("127.0.0.1", fosim.port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    head, body = buf.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 5000" in head and body == b"t" * 1234


def test_token_endpoint_down_close_and_503(fosim):
    fosim.fault(endpoint="token", kind="close", count=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        fosim.token_response()
    fosim.fault(endpoint="token", kind="status", status=503, count=1)
    assert fosim.token_response().status == 503
    assert fosim.token_response().status == 200


def test_token_endpoint_refusing_with_aadsts(fosim):
    fosim.fault(endpoint="token", kind="aadsts", status=400, error="invalid_request",
                code=90002, count=1)
    r = fosim.token_response()
    assert r.status == 400
    j = r.json()
    assert j["error"] == "invalid_request" and j["error_codes"] == [90002]
    assert j["error_description"].startswith("AADSTS90002: ")


def test_null_download_location(fosim, tok):
    fosim.feed_export(b"n")
    fosim.fault(endpoint="dequeue", kind="null_location", count=1)
    r = fosim.get(DEQ, token=tok)
    assert r.status == 200 and b'"DownloadLocation":null' in r.body


def test_wildcard_and_family_skip_control(fosim, tok):
    fosim.fault(endpoint="*", kind="status", status=503)
    assert fosim.get("/_sim/healthz").status == 200
    assert fosim.get(DEQ, token="x").status == 503
    assert fosim.token_response().status == 503
    fosim.clear_faults()
    fosim.fault(endpoint="connector", kind="status", status=502, count=1)
    assert fosim.token_response().status == 200
    assert fosim.get(DEQ, token=tok).status == 502


def test_fault_list_and_bad_rules(fosim):
    fosim.fault(endpoint="ack", kind="status", status=500, count=3)
    lst = fosim.ctl("GET", "faults")
    assert lst[0]["endpoint"] == "ack" and lst[0]["remaining"] == 3
    assert fosim.post("/_sim/faults", {"endpoint": "ack", "kind": "explode"}).status == 400
    assert fosim.post("/_sim/faults", {"kind": "status"}).status == 400
    fosim.clear_faults()
    assert fosim.ctl("GET", "faults") == []


def test_request_counters_per_endpoint_and_status(fosim, tok):
    fosim.reset()
    fosim.get(DEQ, token=tok)
    fosim.get(DEQ, token=tok)
    fosim.get(DEQ)
    c = fosim.counters()
    assert c["requests"]["dequeue"] == {"204": 2, "401": 1}
    assert c["requests"]["control"] == {"204": 1}     # the reset itself


def test_reset_clears_queue_faults_and_clock(fosim, tok):
    fosim.feed_export(b"q")
    fosim.fault(endpoint="dequeue", kind="status", status=500)
    fosim.advance(100)
    fosim.reset()
    assert fosim.ctl("GET", "faults") == []
    assert abs(fosim.ctl("POST", "clock", {"advance": 0})["offset"]) < 1e-9
    assert fosim.get(DEQ, token=fosim.token()).status == 204
