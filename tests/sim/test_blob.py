"""Conformance: fosim's own blob store (blob_store "self"), the one GetAzureWriteUrl points at
with D365's old SAS version: Put Blob caps by sv, Put Block / Put Block List as Azure
validates them, and the stall/hang faults on blob and connector calls."""
import base64
import http.client
import json
import socket
import urllib.parse

import pytest

from harness import EXPORT_JOB, IMPORT_JOB, Workdir, default_sim_config, start_fosim

ACT = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."
MIB = 1 << 20


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    sim = None
    try:
        sim = start_fosim(w.path, default_sim_config(blob_store="self", import_package_secs=0.2))
        yield sim
    finally:
        rc = sim.stop() if sim else 0
        w.cleanup(request.session.testsfailed > 0)
        assert rc == 0


@pytest.fixture
def sim(env):
    env.reset()
    env.configure(blob_sas_version="2014-02-14", write_sas_secs=1800)
    return env


def write_url(sim, name="pkg.zip"):
    r = sim.request("POST", ACT + "GetAzureWriteUrl", {"uniqueFileName": name},
                    token=sim.token())
    assert r.status == 200, r
    return json.loads(r.json()["value"])["BlobUrl"]


def send(url, method, extra_query="", body=b"", size=None, headers=None):
    """One request to the blob URL; body bytes, or `size` zero bytes streamed."""
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    path = u.path + "?" + u.query + extra_query
    h = dict(headers or {})
    try:
        if size is None:
            c.request(method, path, body=body, headers=h)
        else:
            h["Content-Length"] = str(size)
            c.putrequest(method, path)
            for k, v in h.items():
                c.putheader(k, v)
            c.endheaders()
            chunk = b"\0" * MIB
            left = size
            while left > 0:
                n = min(left, len(chunk))
                c.send(chunk[:n])
                left -= n
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


def put_blob(url, **kw):
    return send(url, "PUT", headers={"x-ms-blob-type": "BlockBlob"}, **kw)


def block_id(i, width=6):
    return base64.b64encode(f"{i:0{width}d}".encode()).decode()


def put_block(url, bid, body=b"", size=None):
    q = "&comp=block&blockid=" + urllib.parse.quote(bid, safe="")
    return send(url, "PUT", q, body=body, size=size)


def commit(url, ids, tag="Latest"):
    xml = '<?xml version="1.0" encoding="utf-8"?><BlockList>' + "".join(
        f"<{tag}>{i}</{tag}>" for i in ids) + "</BlockList>"
    return send(url, "PUT", "&comp=blocklist", body=xml.encode())


def info(sim, url):
    name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[1]
    r = sim.get("/_sim/blobs/" + name)
    assert r.status == 200, r
    return r.json()


def error_code(resp):
    status, headers, body = resp
    assert headers["content-type"] == "application/xml"
    text = body.decode("utf-8-sig")
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?><Error><Code>')
    code = text.split("<Code>")[1].split("</Code>")[0]
    assert headers["x-ms-error-code"] == code
    return code


def test_write_url_carries_the_old_version(sim):
    url = write_url(sim)
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert q["sv"] == ["2014-02-14"] and q["sr"] == ["b"] and q["sp"] == ["rw"]
    assert list(urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)) == [
        "sv", "sr", "sig", "st", "se", "sp"]


@pytest.mark.parametrize("sv,cap", [("2014-02-14", 64 * MIB), ("2016-05-31", 256 * MIB)])
def test_put_blob_cap_by_version(sim, sv, cap):
    sim.configure(blob_sas_version=sv)
    url = write_url(sim)
    r = put_blob(url, size=cap + 1)
    assert r[0] == 413 and error_code(r) == "RequestBodyTooLarge"
    assert f"<MaxLimit>{cap}</MaxLimit>".encode() in r[2]
    assert sim.get("/_sim/blobs/pkg.zip").status == 404  # refused before anything was kept
    status, _, _ = put_blob(url, size=cap)
    assert status == 201
    got = info(sim, url)
    assert got["exists"] and got["size"] == cap and got["committed_as"] == "blob"


def test_newer_version_takes_a_blob_over_256_mib(sim):
    sim.configure(blob_sas_version="2019-12-12")
    url = write_url(sim)
    assert put_blob(url, size=256 * MIB + 1)[0] == 201


def test_put_blob_needs_blob_type(sim):
    url = write_url(sim)
    r = send(url, "PUT", body=b"x")
    assert r[0] == 400 and error_code(r) == "MissingRequiredHeader"


def test_blocks_exist_only_after_the_list_commits(sim):
    url = write_url(sim)
    parts = [b"a" * (4 * MIB), b"b" * (4 * MIB), b"c"]
    for i, p in enumerate(parts):
        assert put_block(url, block_id(i), p)[0] == 201
    assert put_block(url, block_id(99), b"stray")[0] == 201
    r = send(url, "GET")
    assert r[0] == 404 and error_code(r) == "BlobNotFound"
    assert commit(url, [block_id(i) for i in range(3)])[0] == 201
    status, headers, body = send(url, "GET")
    assert status == 200 and body == b"".join(parts)
    assert headers["x-ms-blob-type"] == "BlockBlob"
    got = info(sim, url)
    assert got["committed_as"] == "blocks" and got["blocks"] == 3
    assert got["uncommitted"] == 0  # the stray block was discarded by the commit
    assert commit(url, [block_id(99)])[0] == 400  # ... so it cannot be committed later
    assert sim.counters()["blob"]["put_block_list"] == 1


def test_block_over_the_version_cap(sim):
    url = write_url(sim)
    r = put_block(url, block_id(0), size=4 * MIB + 1)
    assert r[0] == 413 and error_code(r) == "RequestBodyTooLarge"
    assert b"<MaxLimit>4194304</MaxLimit>" in r[2]
    sim.configure(blob_sas_version="2016-05-31")
    url = write_url(sim, "newer.zip")
    assert put_block(url, block_id(0), size=4 * MIB + 1)[0] == 201


def test_block_ids_base64_and_equal_length(sim):
    url = write_url(sim)
    r = put_block(url, "not base64!", b"x")
    assert r[0] == 400 and error_code(r) == "InvalidQueryParameterValue"
    r = put_block(url, base64.b64encode(b"x" * 65).decode(), b"x")
    assert r[0] == 400  # more than 64 bytes before encoding
    assert put_block(url, block_id(1, 6), b"x")[0] == 201
    r = put_block(url, block_id(2, 9), b"y")
    assert r[0] == 400 and error_code(r) == "InvalidBlobOrBlock"


def test_block_list_with_an_unknown_block(sim):
    url = write_url(sim)
    assert put_block(url, block_id(1), b"x")[0] == 201
    r = commit(url, [block_id(1), block_id(2)])
    assert r[0] == 400 and error_code(r) == "InvalidBlockList"
    assert send(url, "GET")[0] == 404
    r = send(url, "PUT", "&comp=blocklist", body=b"<NotAList/>")
    assert r[0] == 400 and error_code(r) == "InvalidBlockList"


def test_committed_blocks_can_be_reused(sim):
    url = write_url(sim)
    for i, p in enumerate([b"one", b"two"]):
        put_block(url, block_id(i), p)
    assert commit(url, [block_id(0), block_id(1)])[0] == 201
    put_block(url, block_id(2), b"three")
    xml = ("<BlockList><Committed>%s</Committed><Uncommitted>%s</Uncommitted></BlockList>"
           % (block_id(1), block_id(2)))
    assert send(url, "PUT", "&comp=blocklist", body=xml.encode())[0] == 201
    assert send(url, "GET")[2] == b"twothree"


def test_sas_is_checked(sim):
    url = write_url(sim)
    bad = url.replace("sig=", "sig=A")
    r = put_blob(bad, body=b"x")
    assert r[0] == 403 and error_code(r) == "AuthenticationFailed"
    sim.configure(write_sas_secs=-60)
    r = put_blob(write_url(sim, "late.zip"), body=b"x")
    assert r[0] == 403 and error_code(r) == "AuthenticationFailed"


def test_import_from_package_reads_the_self_store(sim):
    url = write_url(sim)
    assert put_block(url, block_id(0), b"PK\x05\x06" + b"\0" * 18)[0] == 201
    body = {"packageUrl": url, "definitionGroupId": "G", "executionId": "", "execute": True,
            "overwrite": True, "legalEntityId": "USMF"}
    r = sim.request("POST", ACT + "ImportFromPackage", body, token=sim.token())
    assert r.status == 400  # not committed yet: the blob does not exist
    assert commit(url, [block_id(0)])[0] == 201
    r = sim.request("POST", ACT + "ImportFromPackage", body, token=sim.token())
    assert r.status == 200, r


def raw_get(sim, path, headers=""):
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=1.5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    return s


def read_until_quiet(s):
    buf = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return buf, True
            buf += d
    except socket.timeout:
        return buf, False


def test_blob_get_stalls_mid_body(sim):
    url = write_url(sim)
    put_blob(url, body=b"s" * 300000)
    sim.fault(endpoint="blob_get", kind="stall", bytes=100000, count=1)
    u = urllib.parse.urlsplit(url)
    s = raw_get(sim, u.path + "?" + u.query)
    buf, closed = read_until_quiet(s)
    s.close()
    head, body = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 300000" in head
    assert len(body) == 100000 and not closed  # open, silent, mid-body
    assert send(url, "GET")[2] == b"s" * 300000  # the rule was used up


def test_download_stalls_mid_body(sim):
    tok = sim.token()
    sim.feed_export(b"d" * 50000)
    deq = sim.get("/api/connector/dequeue/" + EXPORT_JOB, token=tok).json()
    path = urllib.parse.urlsplit(deq["DownloadLocation"])
    sim.fault(endpoint="download", kind="stall", bytes=1234, count=1)
    s = raw_get(sim, path.path + "?" + path.query, f"Authorization: Bearer {tok}\r\n")
    buf, closed = read_until_quiet(s)
    s.close()
    assert len(buf.split(b"\r\n\r\n", 1)[1]) == 1234 and not closed


def test_hang_handles_the_enqueue_but_never_answers(sim):
    tok = sim.token()
    sim.fault(endpoint="enqueue", kind="hang", count=1)
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=1.5)
    s.sendall((f"POST /api/connector/enqueue/{IMPORT_JOB}?entity=Customer%20groups HTTP/1.1\r\n"
               f"Host: x\r\nAuthorization: Bearer {tok}\r\nContent-Length: 3\r\n\r\nabc").encode())
    buf, closed = read_until_quiet(s)
    s.close()
    assert buf == b"" and not closed
    # D365 received it: the message is there although no answer left.
    assert sim.counters()["requests"]["enqueue"] == {"200": 1}


def test_stall_upload_stops_reading_the_request_body(sim):
    url = write_url(sim)
    sim.fault(endpoint="blob_block", kind="stall_upload", bytes=MIB, count=1)
    u = urllib.parse.urlsplit(url)
    size = 64 * MIB  # far more than socket buffers hold
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=2)
    s.sendall((f"PUT {u.path}?{u.query}&comp=block&blockid={block_id(0)} HTTP/1.1\r\n"
               f"Host: x\r\nContent-Length: {size}\r\n\r\n").encode())
    sent, chunk = 0, b"\0" * 65536
    with pytest.raises(socket.timeout):
        while sent < size:
            sent += s.send(chunk)
    s.close()
    assert MIB <= sent < 32 * MIB, sent
    assert put_block(url, block_id(0), b"x")[0] == 201  # the rule was used up
