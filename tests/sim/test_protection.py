"""Conformance: service protection per identity (reference §5): the concurrency limit, the
sliding windows of request count and execution time, the verbatim 429 messages with integer
Retry-After, the "extended if you keep pushing" mode, and the counters and call log on the
control API that fogate's tests assert on."""
import socket
import time

import pytest

from harness import (APP_ID, EXPORT_JOB, UNAUTHORIZED_APP_ID, fosim, wait_until,  # noqa: F401
                     workdir)

DEQ = f"/api/connector/dequeue/{EXPORT_JOB}"
STATUS = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus"
ENVELOPE_CT = "application/json; odata.metadata=minimal"


@pytest.fixture(autouse=True)
def clean(fosim):
    fosim.reset()
    yield
    fosim.clear_faults()
    fosim.configure(service_protection=None)


@pytest.fixture
def tok(fosim):
    return fosim.token()


def protect(fosim, **limits):
    fosim.configure(service_protection=limits)


def stats(fosim, who=APP_ID):
    return fosim.ctl("GET", "protection")["identities"].get(who, {})


def assert_429(r, message, retry_after=None):
    assert r.status == 429, r
    assert r.header("Content-Type") == ENVELOPE_CT
    assert r.json() == {"error": {"code": "", "message": message}}
    ra = r.header("Retry-After")
    assert ra.isdigit() and int(ra) >= 1, ra
    if retry_after is not None:
        assert int(ra) in retry_after, (ra, retry_after)
    return int(ra)


def hold_download(fosim, tok, size=1000):
    """A download that stays in flight (stalled after its head) until the socket closes."""
    fosim.feed_export(b"h" * size)
    path = fosim.get(DEQ, token=tok).json()["DownloadLocation"][len(fosim.base_url):]
    fosim.fault(endpoint="download", kind="stall", count=1)
    s = socket.create_connection(("127.0.0.1", fosim.port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    return s


def test_off_by_default(fosim, tok):
    cfg = fosim.ctl("GET", "protection")
    assert cfg["enabled"] is False
    assert all(fosim.get(DEQ, token=tok).status == 204 for _ in range(60))
    assert fosim.counters()["throttled"] == {}


def test_present_object_means_d365_limits(fosim):
    protect(fosim)
    cfg = fosim.ctl("GET", "protection")
    assert (cfg["enabled"], cfg["concurrent"], cfg["requests"], cfg["execution_secs"],
            cfg["window_secs"], cfg["extend_secs"]) == (True, 52, 6000, 1200, 300, 0)


@pytest.mark.parametrize("bad", [{"concurrent": 0}, {"requests": "many"}, {"window_secs": 0},
                                 {"extend_secs": -1}, {"enabled": "yes"}, {"nope": 1},
                                 {"endpoints": ["x"] * 17}, 3])
def test_bad_config_refused_and_old_kept(fosim, bad):
    r = fosim.post("/_sim/config", {"service_protection": bad})
    assert r.status == 400 and b"service_protection" in r.body, r
    assert fosim.ctl("GET", "protection")["enabled"] is False


def test_concurrency_limit(fosim, tok):
    protect(fosim, concurrent=2)
    held = [hold_download(fosim, tok) for _ in range(2)]
    assert stats(fosim)["inflight"] == 2
    r = fosim.get(DEQ, token=tok)
    assert_429(r, "Number of concurrent requests exceeded the limit of 2.", retry_after={1})
    held.pop().close()
    wait_until(lambda: stats(fosim)["inflight"] == 1, what="slot released on close")
    assert fosim.get(DEQ, token=tok).status == 204   # no gate after a concurrency 429
    held.pop().close()
    wait_until(lambda: stats(fosim)["inflight"] == 0, what="all released")
    st = stats(fosim)
    assert st["max_inflight"] == 2 and st["throttled"] == {"requests": 0, "time": 0,
                                                           "concurrent": 1}
    assert fosim.counters()["throttled"] == {"concurrent": 1}
    assert fosim.counters()["requests"]["dequeue"]["429"] == 1


def test_request_window_and_retry_after(fosim, tok):
    protect(fosim, requests=5, window_secs=30)
    assert [fosim.get(DEQ, token=tok).status for _ in range(5)] == [204] * 5
    msg = "Number of requests exeeded the limit of 5 over the time window of 30 seconds."
    ra = assert_429(fosim.get(DEQ, token=tok), msg, retry_after=range(29, 31))
    # refused calls do not count; the answer is the same until the oldest call leaves
    ra2 = assert_429(fosim.get(DEQ, token=tok), msg)
    assert ra2 <= ra
    fosim.advance(ra)
    assert fosim.get(DEQ, token=tok).status == 204
    st = stats(fosim)
    assert st["max_window_requests"] == 5 and st["admitted"] == 6
    assert st["throttled"]["requests"] == 2


def test_limits_are_per_identity(fosim, tok):
    protect(fosim, requests=2, window_secs=60)
    other = fosim.token(client_id=UNAUTHORIZED_APP_ID)
    body = {"messageId": "00000000-0000-0000-0000-000000000000"}
    for _ in range(2):
        assert fosim.post(STATUS, body, token=tok).status != 429
    assert fosim.post(STATUS, body, token=tok).status == 429
    assert fosim.post(STATUS, body, token=other).status != 429
    assert stats(fosim, UNAUTHORIZED_APP_ID)["admitted"] == 1
    # the token endpoint and the control API never count
    assert fosim.token_response().status == 200


def test_unauthenticated_calls_do_not_count(fosim, tok):
    protect(fosim, requests=1, window_secs=60)
    for _ in range(3):
        assert fosim.get(DEQ).status == 401
    assert fosim.get(DEQ, token=tok).status == 204


def test_endpoints_choose_what_counts(fosim, tok):
    protect(fosim, requests=1, window_secs=60, endpoints=["odata"])
    assert all(fosim.get(DEQ, token=tok).status == 204 for _ in range(5))
    body = {"messageId": "00000000-0000-0000-0000-000000000000"}
    assert fosim.post(STATUS, body, token=tok).status != 429
    assert fosim.post(STATUS, body, token=tok).status == 429


def test_execution_time_window(fosim, tok):
    protect(fosim, execution_secs=1, window_secs=60)
    fosim.feed_export(b"e" * 12000)
    path = fosim.get(DEQ, token=tok).json()["DownloadLocation"][len(fosim.base_url):]
    fosim.fault(endpoint="download", kind="slow", rate=10000, count=1)  # about 1.2 s
    assert fosim.get(path, token=tok).status == 200
    assert stats(fosim)["window_exec_secs"] >= 1.0
    msg = ("Combined execution time of incoming requests exceeded limit of 1 seconds over time "
           "window of 60 seconds. Decrease number of concurrent requests or reduce the "
           "duration of requests and try again later.")
    ra = assert_429(fosim.get(DEQ, token=tok), msg, retry_after=range(57, 61))
    fosim.advance(ra)
    assert fosim.get(DEQ, token=tok).status == 204
    assert stats(fosim)["throttled"]["time"] == 1


def test_retry_after_extends_if_you_keep_pushing(fosim, tok):
    protect(fosim, requests=1, window_secs=10, extend_secs=5)
    assert fosim.get(DEQ, token=tok).status == 204
    got = [int(fosim.get(DEQ, token=tok).header("Retry-After")) for _ in range(4)]
    assert got[0] in (9, 10) and all(b - a == 5 for a, b in zip(got, got[1:])), got
    fosim.advance(got[-1] - 1)
    assert fosim.get(DEQ, token=tok).status == 429   # still closed (and pushed again)
    fosim.advance(10)
    assert fosim.get(DEQ, token=tok).status == 204


def test_without_extension_retry_after_only_counts_down(fosim, tok):
    protect(fosim, requests=1, window_secs=10)
    assert fosim.get(DEQ, token=tok).status == 204
    got = []
    for _ in range(3):
        got.append(int(fosim.get(DEQ, token=tok).header("Retry-After")))
        fosim.advance(2)
    assert got[0] in (9, 10) and got[1] == got[0] - 2 and got[2] == got[0] - 4, got


def test_call_log_between_times(fosim, tok):
    t0 = time.time()
    for _ in range(3):
        fosim.get(DEQ, token=tok)
    t1 = time.time()
    time.sleep(0.05)
    fosim.get("/_sim/healthz")                      # control calls are not logged
    t2 = time.time()
    fosim.post(STATUS, {"messageId": "x"}, token=tok)
    got = fosim.ctl("GET", f"calls?since={t0:.6f}&until={t1:.6f}")
    assert got["count"] == 3
    assert {(c["endpoint"], c["who"], c["status"]) for c in got["calls"]} == {
        ("dequeue", APP_ID, 204)}
    assert all(t0 <= c["at"] <= t1 for c in got["calls"])
    assert fosim.ctl("GET", f"calls?since={t1:.6f}&until={t2:.6f}")["count"] == 0
    later = fosim.ctl("GET", f"calls?since={t2:.6f}&endpoint=odata:GetMessageStatus")
    assert later["count"] == 1 and later["calls"][0]["status"] == 400
    fosim.reset()
    assert fosim.ctl("GET", "calls")["count"] == 0


def test_throttled_calls_are_logged_with_429(fosim, tok):
    protect(fosim, requests=1, window_secs=60)
    fosim.get(DEQ, token=tok)
    fosim.get(DEQ, token=tok)
    calls = fosim.ctl("GET", "calls?endpoint=dequeue")["calls"]
    assert [c["status"] for c in calls] == [204, 429]
    # the token call is logged too (label "token"), never limited
    assert [c["endpoint"] for c in fosim.ctl("GET", "calls")["calls"]][0] == "token"
