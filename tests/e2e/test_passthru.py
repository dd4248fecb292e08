"""End to end: the connector pass-through and /data used the way RIS and d365fo.integrations
use them (reference §3, §4.3, §6), client API keys, and the 401/429/5xx rules, against a
real fosim and a real fogate."""
import http.client
import json
import re
import time

import pytest

import harness
import passkit
from harness import EXPORT_JOB, IMPORT_JOB
from harness import workdir  # noqa: F401
from passkit import ALICE_KEY, BOB_JOB, BOB_KEY

DEQ = "/api/connector/dequeue/" + EXPORT_JOB
ENQ = "/api/connector/enqueue/" + IMPORT_JOB
ACK = "/api/connector/ack/" + EXPORT_JOB
SPELLINGS = [
    lambda g: g,
    lambda g: g.upper(),
    lambda g: "{" + g.upper() + "}",
    lambda g: "%7B" + g + "%7D",
    lambda g: "%7b" + g.upper() + "%7d",
]


@pytest.fixture(scope="module")
def sim(workdir):
    s = harness.start_fosim(workdir, harness.default_sim_config(download_location="http-port80"))
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def gate(workdir, sim):
    g = passkit.Gate(workdir, sim)
    yield g
    assert g.stop() == 0


@pytest.fixture(autouse=True)
def clean(sim):
    sim.reset()
    yield
    sim.clear_faults()


def count(sim, endpoint):
    return passkit.requests_to(sim, endpoint)


def drain(gate, activity=EXPORT_JOB):
    """Dequeues until 204 (RIS); returns the parsed messages and raw bodies."""
    out = []
    for _ in range(50):
        r = gate.request("GET", "/api/connector/dequeue/" + activity)
        if r.status == 204:
            assert r.body == b"" and r.header("Content-Type") is None
            return out
        assert r.status == 200, r
        out.append((r.json(), r.body))
    raise AssertionError("dequeue never answered 204")


# ---- the client matrix --------------------------------------------------------------------

@pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/zip"},
                                     {"x-ms-dyn-externalidentifier": "orders-42.csv"}])
def test_enqueue_like_ris_and_d365int(gate, sim, headers):
    r = gate.request("POST", ENQ + "?entity=Customer+groups&company=usmf", b"a,b\n1,2\n",
                     headers=headers)
    assert r.status == 200, r
    msg = r.body.decode()
    assert msg.startswith('"') and msg.endswith('"') and len(msg) == 38
    assert r.header("Content-Type").startswith("application/json")
    st = gate.request("GET", "/api/connector/jobstatus/" + IMPORT_JOB + "?jobId=" + msg.strip('"'))
    assert st.status == 200, st
    if "x-ms-dyn-externalidentifier" in headers:
        assert st.json()["DataJobStatus"]["ExternalIdentifier"] == "orders-42.csv"


@pytest.mark.parametrize("query", ["?entity=Customer+groups", "?entity=Customer%20groups"])
@pytest.mark.parametrize("spell", SPELLINGS)
def test_enqueue_every_spelling_path_forwarded_byte_exact(gate, sim, query, spell):
    r = gate.request("POST", "/api/connector/enqueue/" + spell(IMPORT_JOB) + query, b"x,y\n")
    assert r.status == 200, r
    assert count(sim, "enqueue") == 1


def test_en_prefix(gate, sim):
    sim.feed_export(b"en")
    r = gate.request("GET", "/en/api/connector/dequeue/" + EXPORT_JOB)
    assert r.status == 200 and r.json()["DownloadLocation"].startswith(gate.base + "/")


def test_dequeue_until_204_rewrites_download_location_and_downloads(gate, sim):
    payloads = [b"first file", bytes(range(256)) * 300, b""]
    for p in payloads:
        sim.feed_export(p)
    msgs = drain(gate)
    assert len(msgs) == 3
    got = []
    for m, raw in msgs:
        loc = m["DownloadLocation"]
        assert loc.startswith(gate.base + "/api/connector/download/"), loc
        assert ":80/" not in loc
        keys = list(json.loads(raw, object_pairs_hook=lambda kv: [k for k, _ in kv]))
        assert keys == ["CorrelationId", "PopReceipt", "DownloadLocation", "IsDownLoadFileExist",
                        "FileDownLoadErrorMessage", "LastDequeueDateTime"]
        d = gate.request("GET", loc[len(gate.base):])
        assert d.status == 200, d
        got.append(d.body)
    assert sorted(got) == sorted(payloads)


def test_ack_with_raw_body_and_with_ris_three_fields(gate, sim):
    sim.feed_export(b"one")
    sim.feed_export(b"two")
    (m1, raw1), (m2, _) = drain(gate)
    r = gate.request("POST", ACK, raw1, headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    three = {k: m2[k] for k in ("CorrelationId", "PopReceipt", "DownloadLocation")}
    r = gate.request("POST", ACK, three)
    assert r.status == 200, r
    assert sim.counters()["acks"] == 2


def test_get_message_status_via_data(gate, sim):
    r = gate.request("POST", ENQ + "?entity=Customer%20groups", b"c,d\n")
    mid = r.body.decode().strip('"')
    r = gate.request("POST", "/data/DataManagementDefinitionGroups/"
                     "Microsoft.Dynamics.DataEntities.GetMessageStatus",
                     {"messageId": mid})
    assert r.status == 200, r
    assert r.json()["value"] in ("Enqueued", "Processing", "Processed", "Preprocessing")


def test_null_download_location_left_as_is(gate, sim):
    sim.feed_export(b"z")
    sim.fault(endpoint="dequeue", kind="null_location", count=1)
    r = gate.request("GET", DEQ)
    assert r.status == 200 and r.json()["DownloadLocation"] is None


# ---- API keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("headers,code", [
    ({}, "api_key_missing"),
    ({"X-Api-Key": "wrong-key-0123456789abcdef"}, "api_key_invalid"),
    ({"Authorization": "Bearer wrong-key-0123456789abcdef"}, "api_key_invalid"),
    ({"Authorization": "Basic " + ALICE_KEY}, "api_key_malformed"),
    ({"Authorization": "Bearer "}, "api_key_malformed"),
    ({"X-Api-Key": "short"}, "api_key_malformed"),
    ({"X-Api-Key": ALICE_KEY, "Authorization": "Bearer " + ALICE_KEY}, "api_key_ambiguous"),
])
def test_bad_api_keys_get_401(gate, sim, headers, code):
    r = gate.request("GET", DEQ, headers=headers, key=None)
    assert r.status == 401 and r.json()["code"] == code, r
    assert count(sim, "dequeue") == 0


def test_duplicated_key_header_gets_401(gate, sim):
    s = passkit.raw_connect(gate)
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nX-Api-Key: %s\r\nX-Api-Key: %s\r\n"
               "Connection: close\r\n\r\n" % (DEQ, ALICE_KEY, ALICE_KEY)).encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    assert data.startswith(b"HTTP/1.1 401") and b"api_key_duplicated" in data


def test_bearer_form_accepted(gate, sim):
    r = gate.request("GET", DEQ, headers={"Authorization": "bearer  " + ALICE_KEY}, key=None)
    assert r.status == 204, r


@pytest.mark.parametrize("spell", SPELLINGS)
def test_other_clients_job_is_403_in_every_spelling(gate, sim, spell):
    r = gate.request("GET", "/api/connector/dequeue/" + spell(EXPORT_JOB), key=BOB_KEY)
    assert r.status == 403 and r.json()["code"] == "job_forbidden", r
    r = gate.request("GET", "/api/connector/dequeue/" + spell(BOB_JOB))
    assert r.status == 403, r
    assert count(sim, "dequeue") == 0


def test_health_needs_no_key_and_keys_never_logged(gate):
    assert gate.get("/healthz").status == 200
    assert gate.get("/readyz").status == 200
    text = gate.log_text()
    assert ALICE_KEY not in text and BOB_KEY not in text and harness.APP_SECRET not in text


def test_client_credentials_not_forwarded(gate, sim):
    """fosim rejects a request whose bearer is not a token it issued: a forwarded API key
    would make every call 401."""
    r = gate.request("GET", DEQ, headers={"Authorization": "Bearer " + ALICE_KEY}, key=None)
    assert r.status == 204


# ---- 401, 429 and 5xx -----------------------------------------------------------------------

def test_401_once_refreshes_once_and_retries_once(gate, sim):
    sim.feed_export(b"after-401")
    sim.fault(endpoint="dequeue", kind="status", status=401, count=1)
    r = gate.request("GET", DEQ)
    assert r.status == 200, r
    c = sim.counters()
    assert c["tokens_total"] == 1 and c["requests"]["dequeue"] == {"401": 1, "200": 1}


def test_401_twice_is_a_clear_error_without_a_third_attempt(gate, sim):
    """Regression (issue 11 item 7): the code was the undocumented d365_rejected_token."""
    sim.fault(endpoint="dequeue", kind="status", status=401, count=5)
    r = gate.request("GET", DEQ)
    assert r.status == 502 and r.json()["code"] == "d365_unauthorized", r
    assert "freshly fetched" in r.json()["message"], r.json()
    assert sim.counters()["requests"]["dequeue"] == {"401": 2}


def test_401_on_a_streamed_enqueue_is_replayed_with_a_fresh_token(gate, sim):
    """Regression (issue 11 item 5): an enqueue body is streamed, so after a 401 (a revoked
    or rotated token) it was never sent again and the client got 502. Bodies up to
    limits.replay_body_bytes are kept while they stream and sent once more."""
    body = bytes(range(256)) * 2000                                   # 512,000 bytes
    sim.fault(endpoint="enqueue", kind="status", status=401, count=1)
    r = gate.request("POST", ENQ, body)
    assert r.status == 200, r
    c = sim.counters()
    assert c["requests"]["enqueue"] == {"401": 1, "200": 1}, c
    assert c["tokens_total"] == 1, c                               # one refresh
    m = sim.ctl("GET", "messages/" + r.body.decode().strip('"'))
    assert m["size"] == len(body), m


def test_401_on_an_enqueue_too_big_to_keep_says_nothing_was_enqueued(workdir, sim):
    """Above limits.replay_body_bytes the body is not kept: the client hears that nothing
    was enqueued and that sending it again is safe (503 d365_token_retry, Retry-After)."""
    g = passkit.Gate(workdir, sim, limits={"replay_body_bytes": 1000})
    try:
        sim.fault(endpoint="enqueue", kind="status", status=401, count=1)
        r = g.request("POST", ENQ, b"x" * 5000)
        assert r.status == 503 and r.json()["code"] == "d365_token_retry", r
        assert r.header("Retry-After") == "1", r.headers
        assert "not processed" in r.json()["message"]
        assert sim.counters()["requests"]["enqueue"] == {"401": 1}
        r = g.request("POST", ENQ, b"x" * 5000)                        # the retry it invited
        assert r.status == 200, r
    finally:
        assert g.stop() == 0


def test_401_on_download_retried(gate, sim):
    sim.feed_export(b"D" * 70000)
    (m, _), = drain(gate)
    sim.fault(endpoint="download", kind="status", status=401, count=1)
    d = gate.request("GET", m["DownloadLocation"][len(gate.base):])
    assert d.status == 200 and d.body == b"D" * 70000


def test_429_closes_the_gate_without_calling_fosim(gate, sim):
    sim.fault(endpoint="enqueue", kind="status", status=429, retry_after=4, count=1)
    r = gate.request("POST", ENQ, b"q")
    assert r.status == 429 and r.header("Retry-After") == "4", r   # D365's own answer
    for _ in range(3):
        r = gate.request("POST", ENQ, b"q")
        assert r.status == 429 and r.json()["code"] == "d365_throttled", r
        assert 1 <= int(r.header("Retry-After")) <= 4
    assert count(sim, "enqueue") == 1
    # a safe call waits the gate out within its budget (10 s) instead of failing
    t0 = time.monotonic()
    assert gate.request("GET", DEQ).status == 204
    assert time.monotonic() - t0 >= 1.0
    assert count(sim, "dequeue") == 1
    harness.wait_until(lambda: gate.request("POST", ENQ, b"q").status == 200, timeout=8,
                       interval=0.5, what="gate open again")


def test_429_with_http_date_closes_the_gate_for_the_remaining_seconds(gate, sim):
    """RFC 9110 allows Retry-After as an HTTP date (D365 sends seconds, §5.1): fogate takes
    the date minus now, not its 30 s default for a value it cannot read, and answers its own
    429s in whole seconds without calling fosim until the date has passed."""
    sim.fault(endpoint="enqueue", kind="status", status=429, retry_after=5,
              retry_after_form="date", count=1)
    log_start = len(gate.log_text())
    t0 = time.monotonic()
    r = gate.request("POST", ENQ, b"q")
    assert r.status == 429, r
    assert r.header("Retry-After").endswith(" GMT"), r.headers   # D365's own answer
    for _ in range(3):
        r = gate.request("POST", ENQ, b"q")
        assert r.status == 429 and r.json()["code"] == "d365_throttled", r
        ra = r.header("Retry-After")
        assert ra.isdigit() and 1 <= int(ra) <= 5, ra
    assert count(sim, "enqueue") == 1
    harness.wait_until(lambda: gate.request("POST", ENQ, b"q").status == 200, timeout=10,
                       interval=0.25, what="gate open again")
    assert 3.0 <= time.monotonic() - t0 <= 8.0
    assert count(sim, "enqueue") == 2
    closed = re.findall(r"gate closed for (\d+) s", gate.log_text()[log_start:])
    assert closed and all(c in ("4", "5") for c in closed), closed


def test_429_on_dequeue_retried_within_budget(gate, sim):
    sim.fault(endpoint="dequeue", kind="status", status=429, retry_after=1, count=1)
    r = gate.request("GET", DEQ)
    assert r.status == 204, r
    assert sim.counters()["requests"]["dequeue"] == {"429": 1, "204": 1}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_on_dequeue_retried(gate, sim, status):
    sim.fault(endpoint="dequeue", kind="status", status=status, count=1)
    assert gate.request("GET", DEQ).status == 204
    assert sim.counters()["requests"]["dequeue"] == {str(status): 1, "204": 1}


@pytest.mark.parametrize("status", [500, 502])
def test_5xx_on_enqueue_never_retried(gate, sim, status):
    sim.fault(endpoint="enqueue", kind="status", status=status, count=1)
    r = gate.request("POST", ENQ, b"once")
    assert r.status == status
    assert sim.counters()["requests"]["enqueue"] == {str(status): 1}


def test_upstream_truncation_fails_the_client_read(gate, sim):
    sim.feed_export(b"t" * 500000)
    (m, _), = drain(gate)
    sim.fault(endpoint="download", kind="truncate", bytes=12345, count=1)
    conn = http.client.HTTPConnection("127.0.0.1", gate.port, timeout=20)
    conn.request("GET", m["DownloadLocation"][len(gate.base):], headers={"X-Api-Key": ALICE_KEY})
    r = conn.getresponse()
    assert r.status == 200
    with pytest.raises(http.client.IncompleteRead):
        r.read()
    conn.close()


def test_413_before_reading_the_body(gate, sim):
    s = passkit.raw_connect(gate)
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nX-Api-Key: %s\r\nContent-Length: %d\r\n"
               "Expect: 100-continue\r\n\r\n" % (ENQ, ALICE_KEY, 200 * 1024 * 1024)).encode())
    data = s.recv(65536)
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), data
    assert count(sim, "enqueue") == 0


def test_data_needs_allowed_environment(gate, sim):
    r = gate.request("POST", "/data/DataManagementDefinitionGroups/"
                     "Microsoft.Dynamics.DataEntities.GetMessageStatus", {"messageId": "x"},
                     headers={"X-Fogate-Environment": "prod"})
    assert r.status == 403, r


# ---- methods on /data (issue 11 item 1; docs/api-methods.md) ----------------------------

ACTION = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus"
CRUD = "GET, HEAD, POST, PATCH, PUT, DELETE"


def upstream_requests(sim):
    """fosim's requests on any endpoint but its control API."""
    return {k: v for k, v in sim.counters()["requests"].items() if k != "control"}


@pytest.mark.parametrize("method, path, allow", [
    ("PATCH", ACTION, "POST"), ("GET", ACTION, "POST"), ("DELETE", ACTION, "POST"),
    ("PUT", ACTION.lower().replace("/data/", "/DATA/"), "POST"),
    ("OPTIONS", "/data/Things(3)", CRUD), ("POST", "/data/$metadata", "GET, HEAD"),
    ("DELETE", "/data", "GET, HEAD"), ("GET", "/data/$batch", "POST"),
])
@pytest.mark.parametrize("key", [ALICE_KEY, None])
def test_data_method_outside_the_route_is_405_locally(gate, sim, method, path, allow, key):
    r = gate.request(method, path, b"{}" if method in ("PATCH", "PUT", "POST") else None,
                     key=key)
    assert r.status == 405, r
    assert r.header("Allow") == allow and r.json()["code"] == "method_not_allowed"
    assert upstream_requests(sim) == {}


@pytest.mark.parametrize("method", ["TRACE", "PURGE", "CONNECT", "PROPFIND", "BREW"])
def test_trace_and_unknown_methods_refused_before_auth_and_closed(gate, sim, method):
    s = passkit.raw_connect(gate, timeout=10)
    s.sendall(("%s /data/Things(3) HTTP/1.1\r\nHost: fogate.test\r\nX-Api-Key: %s\r\n"
               "Max-Forwards: 0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: fogate.test\r\n\r\n"
               % (method, ALICE_KEY)).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 501 "), data[:200]
    assert data.count(b"HTTP/1.1 ") == 1 and b"Connection: close\r\n" in data
    assert b'"code":"method_not_implemented"' in data and b"Bearer" not in data
    assert upstream_requests(sim) == {}


def test_data_crud_methods_reach_d365(gate, sim):
    for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
        r = gate.request(method, "/data/Things(3)",
                         b"{}" if method in ("PATCH", "PUT", "POST") else None)
        assert r.status == 404, (method, r)   # fosim's answer for an entity it lacks
    assert sum(upstream_requests(sim)["odata:unknown"].values()) == 5, upstream_requests(sim)
