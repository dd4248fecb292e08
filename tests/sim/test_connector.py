"""Conformance: the connector (recurring integrations) API, reference §3 and §2.6."""
import base64
import json
import re
import socket
import time

import pytest

from harness import (APP_ID, EXPORT_JOB, IMPORT_JOB, OTHER_TENANT, UNAUTHORIZED_APP_ID,
                     UNMAPPED_APP_ID, fosim, jwt_claims, workdir)  # noqa: F401

ENQ = f"/api/connector/enqueue/%7B{IMPORT_JOB.upper()}%7D"
DEQ = f"/api/connector/dequeue/{EXPORT_JOB}"


@pytest.fixture(autouse=True)
def clean(fosim):
    fosim.reset()
    fosim.configure(visibility_timeout=1800, redelivery="keep", download_location="https-self",
                    max_enqueue_bytes=32 * 1024 * 1024, import_outcome="auto")
    yield


@pytest.fixture
def tok(fosim):
    return fosim.token()


def enqueue(fosim, tok, data=b"a,b\n1,2\n", path=ENQ, query="?entity=Customer+groups&company=usmf",
            headers=None):
    return fosim.post(path + query, data, token=tok, headers=headers or {})


def msg_id(r):
    assert r.status == 200, r
    return json.loads(r.body)


# ---- enqueue ----

def test_enqueue_returns_quoted_lowercase_guid(fosim, tok):
    r = enqueue(fosim, tok)
    assert r.header("Content-Type") == "application/json; charset=utf-8"
    assert re.fullmatch(rb'"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"', r.body)
    info = fosim.ctl("GET", "messages/" + msg_id(r))
    assert info["size"] == 8 and info["activity_id"] == IMPORT_JOB


@pytest.mark.parametrize("spelling", [IMPORT_JOB, IMPORT_JOB.upper(), "{" + IMPORT_JOB + "}",
                                      "%7B" + IMPORT_JOB + "%7D", "%7b" + IMPORT_JOB.upper() + "%7d"])
def test_activity_id_any_spelling(fosim, tok, spelling):
    assert enqueue(fosim, tok, path="/api/connector/enqueue/" + spelling).status == 200
    assert enqueue(fosim, tok, path="/en/api/connector/enqueue/" + spelling).status == 200


def test_entity_plus_and_percent20_company_and_external_id(fosim, tok):
    a = msg_id(enqueue(fosim, tok, query="?entity=Customer+groups&company=usmf",
                       headers={"x-ms-dyn-externalidentifier": "file-1.csv"}))
    b = msg_id(enqueue(fosim, tok, query="?entity=Customer%20groups"))
    for mid, ext in ((a, "file-1.csv"), (b, None)):
        r = fosim.get(f"/api/connector/jobstatus/{IMPORT_JOB}?jobId={mid}", token=tok)
        st = r.json()["DataJobStatus"]
        assert st["DataProject"] == "Customer groups"
        assert st["ExternalIdentifier"] == ext
        assert st["DataJobIdentifier"] == mid


def test_enqueue_chunked_streams_to_file(fosim, tok):
    s = socket.create_connection(("127.0.0.1", fosim.port), timeout=30)
    chunk = b"x" * 65536
    s.sendall(f"POST {ENQ} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
    for _ in range(64):
        s.sendall(b"10000\r\n" + chunk + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    assert buf.startswith(b"HTTP/1.1 200")
    mid = json.loads(buf.split(b"\r\n\r\n", 1)[1])
    assert fosim.ctl("GET", "messages/" + mid)["size"] == 64 * 65536


def test_enqueue_413_above_max(fosim, tok):
    fosim.configure(max_enqueue_bytes=1000)
    assert enqueue(fosim, tok, b"x" * 1000).status == 200
    r = enqueue(fosim, tok, b"x" * 1001)
    assert r.status == 413, r


# ---- auth (§2.6) ----

def assert_401(r):
    assert r.status == 401, r
    assert r.body == b""
    assert 'error="invalid_token"' in r.header("WWW-Authenticate")


def test_no_token_401(fosim):
    assert_401(enqueue(fosim, None))
    assert_401(fosim.get(DEQ))


def test_forged_signature_401(fosim, tok):
    h, p, sig = tok.split(".")
    claims = jwt_claims(tok)
    claims["appid"] = UNAUTHORIZED_APP_ID
    p2 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_401(fosim.get(DEQ, token=f"{h}.{p2}.{sig}"))
    assert fosim.get(DEQ, token=tok).status == 204


def test_revoked_tokens_401_new_ones_work(fosim):
    """POST /_sim/tokens/revoke: every token issued so far answers 401 (a rotated secret);
    a token issued afterwards works; reset lifts the revocation."""
    old = fosim.token()
    assert fosim.get(DEQ, token=old).status == 204
    fosim.ctl("POST", "tokens/revoke")
    assert_401(fosim.get(DEQ, token=old))
    new = fosim.token()
    assert fosim.get(DEQ, token=new).status == 204
    fosim.reset()
    assert fosim.get(DEQ, token=old).status == 204


def test_audience_must_match_exactly(fosim):
    for resource in (fosim.base_url + "/", fosim.base_url.upper()):
        assert_401(fosim.get(DEQ, token=fosim.token(resource=resource)))
        assert_401(fosim.get(DEQ, token=fosim.token(resource=resource, v2=True)))
    assert fosim.get(DEQ, token=fosim.token(v2=True)).status == 204


def test_wrong_tenant_401(fosim):
    assert_401(fosim.get(DEQ, token=fosim.token(tenant=OTHER_TENANT)))


def test_unmapped_app_403_and_job_policy_401(fosim):
    r = fosim.get(DEQ, token=fosim.token(client_id=UNMAPPED_APP_ID))
    assert r.status == 403 and r.body == b""
    assert_401(fosim.get(DEQ, token=fosim.token(client_id=UNAUTHORIZED_APP_ID)))
    assert_401(enqueue(fosim, fosim.token(client_id=UNAUTHORIZED_APP_ID)))


def test_expired_token_401_and_counted(fosim):
    fosim.configure(token_lifetime=2)
    try:
        t = fosim.token()
        assert fosim.get(DEQ, token=t).status == 204
        fosim.advance(3)
        assert_401(fosim.get(DEQ, token=t))
        assert fosim.counters()["expired_tokens"] == 1
    finally:
        fosim.configure(token_lifetime=3599)


# ---- dequeue / download / ack ----

def test_dequeue_empty_is_204_without_body_or_content_type(fosim, tok):
    r = fosim.get(DEQ, token=tok)
    assert r.status == 204 and r.body == b""
    assert r.header("Content-Type") is None


def test_dequeue_unknown_activity_is_500(fosim, tok):
    assert fosim.get("/api/connector/dequeue/00000000-0000-0000-0000-000000000000",
                     token=tok).status == 500


def test_dequeue_shape_download_ack(fosim, tok):
    fed = fosim.feed_export(b"PK\x03\x04 zip bytes")
    seg = "%7B" + EXPORT_JOB.upper() + "%7D"
    r = fosim.get("/api/connector/dequeue/" + seg, token=tok)
    assert r.status == 200 and r.header("Content-Type").startswith("application/json")
    j = json.loads(r.body)
    assert list(j) == ["CorrelationId", "PopReceipt", "DownloadLocation", "IsDownLoadFileExist",
                       "FileDownLoadErrorMessage", "LastDequeueDateTime"]
    assert j["CorrelationId"] == fed["correlation_id"]
    assert len(base64.b64decode(j["PopReceipt"])) == 20 and len(j["PopReceipt"]) == 28
    assert j["IsDownLoadFileExist"] is True and j["FileDownLoadErrorMessage"] == ""
    assert j["LastDequeueDateTime"] is None
    assert j["DownloadLocation"] == (f"{fosim.base_url}/api/connector/download/{seg}"
                                     f"?correlation-id={j['CorrelationId']}&blob={fed['blob']}")
    loc = j["DownloadLocation"][len(fosim.base_url):]
    assert_401(fosim.get(loc))
    d = fosim.get(loc, token=tok)
    assert d.status == 200 and d.body == b"PK\x03\x04 zip bytes"
    assert d.header("Content-Type") == "application/octet-stream"
    assert fosim.ctl("GET", "messages/" + fed["message_id"])["state"] == "Downloaded"
    assert fosim.get(DEQ, token=tok).status == 204          # invisible now
    a = fosim.post(f"/api/connector/ack/{EXPORT_JOB}", r.body, token=tok,
                   headers={"Content-Type": "application/json"})
    assert a.status == 200 and a.body == b""
    assert fosim.ctl("GET", "messages/" + fed["message_id"])["state"] == "Acked"
    again = fosim.post(f"/api/connector/ack/{EXPORT_JOB}", r.body, token=tok)
    assert again.status == 200
    c = fosim.counters()
    assert c["downloads"] == {fed["message_id"]: 1} and c["acks"] == 2


def test_drain_until_204_gives_distinct_messages(fosim, tok):
    ids = {fosim.feed_export(b"m%d" % i)["correlation_id"] for i in range(3)}
    got = []
    while True:
        r = fosim.get(DEQ, token=tok)
        if r.status == 204:
            break
        got.append(r.json()["CorrelationId"])
    assert sorted(got) == sorted(ids)


def test_ack_lenient_bodies(fosim, tok):
    fosim.feed_export(b"1")
    fosim.feed_export(b"2")
    j1 = fosim.get(DEQ, token=tok).json()
    j2 = fosim.get(DEQ, token=tok).json()
    ris = {"CorrelationId": j1["CorrelationId"], "PopReceipt": j1["PopReceipt"],
           "DownloadLocation": "https://elsewhere.example/api/connector/download/x"}
    assert fosim.post(f"/api/connector/ack/{EXPORT_JOB}", ris, token=tok).status == 200
    single = "{'CorrelationId':'%s','PopReceipt':'%s'}" % (j2["CorrelationId"], j2["PopReceipt"])
    assert fosim.post(f"/api/connector/ack/{EXPORT_JOB}", single, token=tok).status == 200
    unknown = {"CorrelationId": "5acd8121-d4e1-4cf8-b31f-9713de3e3627", "PopReceipt": "AAAA"}
    assert fosim.post(f"/api/connector/ack/{EXPORT_JOB}", unknown, token=tok).status == 400
    assert fosim.post(f"/api/connector/ack/{EXPORT_JOB}", "not json", token=tok).status == 400


@pytest.mark.parametrize("mode", ["keep", "change"])
def test_redelivery_after_visibility_timeout(fosim, tok, mode):
    fosim.configure(visibility_timeout=60, redelivery=mode)
    fed = fosim.feed_export(b"redeliver me")
    j1 = fosim.get(DEQ, token=tok).json()
    assert fosim.get(DEQ, token=tok).status == 204
    fosim.advance(61)
    t2 = fosim.token()
    j2 = fosim.get(DEQ, token=t2).json()
    assert j2["PopReceipt"] != j1["PopReceipt"]
    assert j2["DownloadLocation"].endswith("blob=" + fed["blob"])
    if mode == "keep":
        assert j2["CorrelationId"] == j1["CorrelationId"]
    else:
        assert j2["CorrelationId"] != j1["CorrelationId"]
    first = j2["LastDequeueDateTime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first)
    assert abs(time.mktime(time.strptime(first, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
               - (time.time() - 0)) < 10
    stale = fosim.post(f"/api/connector/ack/{EXPORT_JOB}", j1, token=t2)
    assert stale.status == 400
    assert fosim.post(f"/api/connector/ack/{EXPORT_JOB}", j2, token=t2).status == 200
    fosim.advance(61)
    assert fosim.get(DEQ, token=fosim.token()).status == 204    # acked: gone for good


def test_http_port80_download_location(fosim, tok):
    fosim.configure(download_location="http-port80")
    fosim.feed_export(b"x")
    loc = fosim.get(DEQ, token=tok).json()["DownloadLocation"]
    assert loc.startswith("http://127.0.0.1:80/api/connector/download/")


def test_blob_expires_after_retention(fosim, tok):
    fed = fosim.feed_export(b"old")
    fosim.advance(7 * 24 * 3600 + 1)
    t = fosim.token()
    j = fosim.get(DEQ, token=t).json()
    assert j["IsDownLoadFileExist"] is False and j["FileDownLoadErrorMessage"]
    assert fosim.get(j["DownloadLocation"][len(fosim.base_url):], token=t).status == 404
    assert fed["blob"] in j["DownloadLocation"]


def test_large_export_download_streams(fosim, tok):
    r = fosim.post(f"/_sim/exports/{EXPORT_JOB}/bulk?count=1&size={48 * 1024 * 1024}")
    assert r.status == 200
    j = fosim.get(DEQ, token=tok).json()
    d = fosim.get(j["DownloadLocation"][len(fosim.base_url):], token=tok, timeout=120)
    assert d.status == 200 and len(d.body) == 48 * 1024 * 1024
    assert d.body.startswith(b"FOSIM export 0\n")


def test_bulk_feed(fosim, tok):
    r = fosim.post(f"/_sim/exports/{EXPORT_JOB}/bulk?count=25&size=100").json()
    assert r["count"] == 25 and len(set(r["message_ids"])) == 25
    n = 0
    while fosim.get(DEQ, token=tok).status == 200:
        n += 1
    assert n == 25


def test_bulk_memory_feed_made_on_demand(fosim, tok):
    """bulk?memory=1 (load tests): messages made at dequeue, same shape, download and ack
    semantics; no redelivery; 204 once handed out."""
    r = fosim.post(f"/_sim/exports/{EXPORT_JOB}/bulk?count=3&size=300&memory=1").json()
    assert r["count"] == 3 and r["memory"] is True and r["left"] == 3
    assert fosim.post(f"/_sim/exports/{EXPORT_JOB}/bulk?count=1&size={(1 << 20) + 1}"
                      "&memory=1").status == 400
    bodies = [fosim.get(DEQ, token=tok) for _ in range(3)]
    assert fosim.get(DEQ, token=tok).status == 204
    js = [json.loads(b.body) for b in bodies]
    assert all(b.status == 200 for b in bodies)
    assert bodies[0].header("Content-Type") == "application/json; charset=utf-8"
    assert list(js[0]) == ["CorrelationId", "PopReceipt", "DownloadLocation",
                           "IsDownLoadFileExist", "FileDownLoadErrorMessage",
                           "LastDequeueDateTime"]
    assert len({j["CorrelationId"] for j in js}) == 3
    j = js[0]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                        j["CorrelationId"])
    assert len(base64.b64decode(j["PopReceipt"])) == 20 and len(j["PopReceipt"]) == 28
    assert j["IsDownLoadFileExist"] is True and j["LastDequeueDateTime"] is None
    assert j["DownloadLocation"].startswith(f"{fosim.base_url}/api/connector/download/")
    assert f"?correlation-id={j['CorrelationId']}&blob=" in j["DownloadLocation"]
    d = fosim.get(j["DownloadLocation"][len(fosim.base_url):], token=tok)
    assert d.status == 200 and len(d.body) == 300
    assert fosim.counters()["downloads"] == {j["CorrelationId"]: 1}
    wrong = dict(j, PopReceipt=js[1]["PopReceipt"])
    ack = f"/api/connector/ack/{EXPORT_JOB}"
    assert fosim.post(ack, json.dumps(wrong).encode(), token=tok).status == 400
    assert fosim.post(ack, bodies[0].body, token=tok).status == 200
    assert fosim.post(ack, bodies[0].body, token=tok).status == 200     # already acked
    fosim.reset()
    assert fosim.post(ack, bodies[1].body, token=tok).status == 400     # forgotten
    assert fosim.get(DEQ, token=tok).status == 204


# ---- jobstatus / processing ----

def test_jobstatus_import_lifecycle(fosim, tok):
    fosim.configure(enqueued_secs=30, processing_secs=30)
    try:
        mid = msg_id(enqueue(fosim, tok, b"h\n1\n2\n"))
        def state(param="jobId"):
            r = fosim.get(f"/api/connector/jobstatus/{IMPORT_JOB}?{param}=%22{mid}%22", token=tok)
            assert r.status == 200, r
            return r.json()
        j = state()
        assert j["DataJobStatus"]["DataJobState"] == 0 and j["ExecutionDetail"] is None
        assert j["ExecutionLog"] == ""
        assert re.fullmatch(r"FosimImport-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-[0-9A-F]{32}",
                            j["DataJobStatus"]["ExecutionIdentifier"])
        fosim.advance(31)
        assert state("jobid")["DataJobStatus"]["DataJobState"] == 4
        fosim.advance(30)
        j = state()
        assert j["DataJobStatus"]["DataJobState"] == 5
        det = j["ExecutionDetail"][0]
        assert det["TargetStatus"] == "Finished" and det["TargetErrorCount"] == 0
        assert det["StagingRecords"] == 2
    finally:
        fosim.configure(enqueued_secs=0.3, processing_secs=0.3)


def test_jobstatus_errors_trigger(fosim, tok):
    mid = msg_id(enqueue(fosim, tok, b"h\nFOSIM-ERROR\n"))
    fosim.advance(1)
    j = fosim.get(f"/api/connector/jobstatus/{IMPORT_JOB}?jobId={mid}", token=tok).json()
    assert j["DataJobStatus"]["DataJobState"] == 6
    assert j["ExecutionDetail"][0]["TargetStatus"] == "Error"


def test_jobstatus_export_states(fosim, tok):
    fed = fosim.feed_export(b"e")
    def st():
        return fosim.get(f"/api/connector/jobstatus/{EXPORT_JOB}?jobId={fed['message_id']}",
                         token=tok).json()["DataJobStatus"]["DataJobState"]
    assert st() == 0
    j = fosim.get(DEQ, token=tok).json()
    assert st() == 1
    fosim.get(j["DownloadLocation"][len(fosim.base_url):], token=tok)
    assert st() == 2
    fosim.post(f"/api/connector/ack/{EXPORT_JOB}", j, token=tok)
    assert st() == 3


def test_wrong_method_405(fosim, tok):
    assert fosim.post(DEQ, b"", token=tok).status == 405


def _rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_bodies_stream_with_bounded_memory():
    """64 MiB up and 64 MiB down must not raise fosim's peak RSS by more than 24 MiB."""
    import os
    from harness import Workdir, default_sim_config, start_fosim
    w = Workdir()
    old = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = "quarantine_size_mb=1"   # keep ASan's freed-memory cache small
    try:
        sim = start_fosim(w.path, default_sim_config(max_enqueue_bytes=128 * 1024 * 1024))
        tok = sim.token()
        base = _rss_kb(sim.proc.pid)
        size = 64 * 1024 * 1024
        s = socket.create_connection(("127.0.0.1", sim.port), timeout=60)
        s.sendall(f"POST {ENQ} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                  f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
        block = b"y" * (1024 * 1024)
        for _ in range(64):
            s.sendall(block)
        resp = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            resp += d
        s.close()
        assert resp.startswith(b"HTTP/1.1 200"), resp[:100]
        sim.post(f"/_sim/exports/{EXPORT_JOB}/bulk?count=1&size={size}")
        j = sim.get(DEQ, token=tok).json()
        s = socket.create_connection(("127.0.0.1", sim.port), timeout=60)
        path = j["DownloadLocation"][len(sim.base_url):]
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                  "Connection: close\r\n\r\n".encode())
        got = 0
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            got += len(d)
        s.close()
        assert got > size
        grew = _rss_kb(sim.proc.pid) - base
        print("rss growth KiB", grew)
        assert grew < 24 * 1024, f"peak RSS grew by {grew} KiB"
        assert sim.stop() == 0
    finally:
        if old is None:
            os.environ.pop("ASAN_OPTIONS", None)
        else:
            os.environ["ASAN_OPTIONS"] = old
        w.cleanup(False)
