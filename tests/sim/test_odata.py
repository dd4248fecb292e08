"""Conformance: OData message actions and the §4.1/§4.2 envelopes (reference §4.3, §4.4)."""
import json

import pytest

from harness import (EXPORT_JOB, IMPORT_JOB, UNMAPPED_APP_ID, fosim, workdir)  # noqa: F401

ACT = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
ENQ = f"/api/connector/enqueue/{IMPORT_JOB}?entity=Customer%20groups"
DEQ = f"/api/connector/dequeue/{EXPORT_JOB}"


@pytest.fixture(autouse=True)
def clean(fosim):
    fosim.reset()
    fosim.configure(enqueued_secs=10, processing_secs=10, status_spelling="docs",
                    import_outcome="auto")
    yield


@pytest.fixture
def tok(fosim):
    return fosim.token()


def action(fosim, tok, name, body):
    return fosim.post(ACT + name, body, token=tok)


def value(fosim, r, edm="Edm.String"):
    assert r.status == 200, r
    assert r.header("Content-Type") == "application/json; odata.metadata=minimal"
    assert r.header("OData-Version") == "4.0"
    j = r.json()
    assert list(j) == ["@odata.context", "value"]
    assert j["@odata.context"] == f"{fosim.base_url}/data/$metadata#{edm}"
    return j["value"]


def enqueue(fosim, tok, data=b"h\n1\n"):
    r = fosim.post(ENQ, data, token=tok)
    assert r.status == 200
    return json.loads(r.body)


def test_get_message_status_import_lifecycle(fosim, tok):
    mid = enqueue(fosim, tok)
    assert value(fosim, action(fosim, tok, "GetMessageStatus", {"messageId": mid})) == "Enqueued"
    fosim.advance(11)
    tok = fosim.token()
    assert value(fosim, action(fosim, tok, "GetMessageStatus", {"messageId": mid})) == "Processing"
    fosim.advance(10)
    tok = fosim.token()
    assert value(fosim, action(fosim, tok, "GetMessageStatus", {"messageId": mid})) == "Processed"


def test_processed_with_errors_trigger_and_knob(fosim, tok):
    bad = enqueue(fosim, tok, b"h\nFOSIM-ERROR\n")
    fosim.configure(import_outcome="errors")
    forced = enqueue(fosim, tok, b"h\nfine\n")
    fosim.configure(import_outcome="auto")
    good = enqueue(fosim, tok, b"h\nfine\n")
    fosim.advance(21)
    tok = fosim.token()
    got = [value(fosim, action(fosim, tok, "GetMessageStatus", {"messageId": m}))
           for m in (bad, forced, good)]
    assert got == ["ProcessedWithErrors", "ProcessedWithErrors", "Processed"]


def test_needle_split_across_network_chunks(fosim, tok):
    # The trigger straddles the boundary between two body chunks of a chunked upload.
    import socket
    s = socket.create_connection(("127.0.0.1", fosim.port), timeout=10)
    s.sendall(f"POST {ENQ} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode())
    s.sendall(b"6\r\nxxFOSI\r\n")
    s.sendall(b"7\r\nM-ERROR\r\n0\r\n\r\n")
    buf = b""
    while not buf.endswith(b'"'):
        d = s.recv(4096)
        if not d:
            break
        buf += d
    s.close()
    mid = json.loads(buf.split(b"\r\n\r\n", 1)[1])
    fosim.advance(21)
    assert value(fosim, action(fosim, fosim.token(), "GetMessageStatus",
                               {"messageId": mid})) == "ProcessedWithErrors"


@pytest.mark.parametrize("spelling,downloaded", [("docs", "Dequeued"), ("internal", "Downloaded")])
def test_export_message_status_spellings(fosim, tok, spelling, downloaded):
    fosim.configure(status_spelling=spelling)
    fed = fosim.feed_export(b"x")
    def st():
        return value(fosim, action(fosim, tok, "GetMessageStatus", {"messageId": fed["message_id"]}))
    assert st() == "Enqueued"
    j = fosim.get(DEQ, token=tok).json()
    assert st() == "Dequeued"
    fosim.get(j["DownloadLocation"][len(fosim.base_url):], token=tok)
    assert st() == downloaded
    fosim.post(f"/api/connector/ack/{EXPORT_JOB}", j, token=tok)
    assert st() == "Acked"


def test_single_quotes_and_case_insensitive_names(fosim, tok):
    mid = enqueue(fosim, tok)
    r = action(fosim, tok, "GetMessageStatus", "{'messageId':'%s'}" % mid)
    assert value(fosim, r) == "Enqueued"
    r = action(fosim, tok, "GetMessageStatus", {"MESSAGEID": mid.upper()})
    assert value(fosim, r) == "Enqueued"


def test_execution_id_by_message_id_and_errors(fosim, tok):
    bad = enqueue(fosim, tok, b"h\nFOSIM-ERROR\n")
    good = enqueue(fosim, tok)
    exec_bad = value(fosim, action(fosim, tok, "GetExecutionIdByMessageId", {"_messageId": bad}))
    js = fosim.get(f"/api/connector/jobstatus/{IMPORT_JOB}?jobId={bad}", token=tok).json()
    assert exec_bad == js["DataJobStatus"]["ExecutionIdentifier"]
    exec_good = value(fosim, action(fosim, tok, "GetExecutionIdByMessageId", {"_messageId": good}))
    assert exec_good != exec_bad
    assert value(fosim, action(fosim, tok, "GetExecutionErrors", {"executionId": exec_bad})) == "[]"
    fosim.advance(21)
    tok = fosim.token()
    v = value(fosim, action(fosim, tok, "GetExecutionErrors", {"executionId": exec_bad}))
    assert isinstance(v, str)
    errs = json.loads(v)
    assert errs and set(errs[0]) == {"RecordId", "Field", "ErrorMessage"}
    assert value(fosim, action(fosim, tok, "GetExecutionErrors", {"executionId": exec_good})) == "[]"
    # RIS passes the message id where the execution id belongs (reference §4.4).
    assert json.loads(value(fosim, action(fosim, tok, "GetExecutionErrors", {"executionId": bad})))
    # the parameter really is "_messageId"
    assert action(fosim, tok, "GetExecutionIdByMessageId", {"messageId": bad}).status == 400


def test_error_envelope(fosim, tok):
    r = action(fosim, tok, "GetMessageStatus", {"messageId": "84a383c8-336d-45e4-9933-0c3e8bfb734a"})
    assert r.status == 400
    e = r.json()["error"]
    assert e["code"] == "" and e["message"] == "An error has occurred."
    assert e["innererror"]["message"].startswith(
        "Exception occurred while executing action GetMessageStatus on Entity "
        "DataManagementDefinitionGroup: ")
    assert e["innererror"]["type"] == "System.InvalidOperationException"
    assert "stacktrace" in e["innererror"]
    assert action(fosim, tok, "GetMessageStatus", "{not json").status == 400


def test_unknown_action_and_method(fosim, tok):
    assert action(fosim, tok, "NoSuchAction", {}).status == 404
    assert fosim.get(ACT + "GetMessageStatus", token=tok).status == 405


def test_odata_auth(fosim, tok):
    r = fosim.post(ACT + "GetMessageStatus", {"messageId": "x"})
    assert r.status == 401 and 'error="invalid_token"' in r.header("WWW-Authenticate")
    r = action(fosim, fosim.token(client_id=UNMAPPED_APP_ID), "GetMessageStatus", {"messageId": "x"})
    assert r.status == 403
    r = action(fosim, fosim.token(resource=fosim.base_url + "/"), "GetMessageStatus", {"messageId": "x"})
    assert r.status == 401


def test_odata_faults_by_action_and_family(fosim, tok):
    mid = enqueue(fosim, tok)
    fosim.fault(endpoint="odata:GetMessageStatus", kind="status", status=429, retry_after=7, count=1)
    r = action(fosim, tok, "GetMessageStatus", {"messageId": mid})
    assert r.status == 429 and r.header("Retry-After") == "7"
    fosim.fault(endpoint="odata", kind="status", status=502, count=1)
    assert action(fosim, tok, "GetExecutionIdByMessageId", {"_messageId": mid}).status == 502
    assert value(fosim, action(fosim, tok, "GetMessageStatus", {"messageId": mid})) == "Enqueued"
    c = fosim.counters()["requests"]
    assert c["odata:GetMessageStatus"] == {"429": 1, "200": 1}
