"""Malformed and request-smuggling inputs against a real fogate over raw sockets. Each case
must get exactly one response with the expected status and then a closed connection;
nothing smuggled behind it may be answered. fogate's environment is a real fosim and the
requests carry a valid API key for routable connector paths, so anything that slipped
through would reach fosim: after the table, fosim must have seen no request at all."""

import time

import pytest

import frontkit
import harness
from frontkit import Reader, is_request_id, parse_response, read_until_close, request
from harness import EXPORT_JOB, IMPORT_JOB
from harness import workdir  # noqa: F401

DQ = ("/api/connector/dequeue/" + EXPORT_JOB).encode()
EQ = ("/api/connector/enqueue/" + IMPORT_JOB).encode()
K = b"X-Api-Key: " + frontkit.SIM_API_KEY.encode() + b"\r\n"
H = b"Host: fogate.test\r\n" + K
SMUGGLED = b"GET " + DQ + b"?smuggled=1 HTTP/1.1\r\n" + H + b"\r\n"

# (name, raw bytes, expected status, expected error code or None when a route answered)
CASES = [
    # framing conflicts (CL.TE, TE.CL) and Transfer-Encoding obfuscations
    ("cl_te", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 6\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG", 400, "te_with_content_length"),
    ("te_cl", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Content-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", 400, "te_with_content_length"),
    ("te_xchunked", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
     400, "transfer_encoding_not_chunked"),
    ("te_space_before_colon", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n"
     b"0\r\n\r\n", 400, "space_before_colon"),
    ("te_leading_space_folded", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b" Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "obs_fold"),
    ("te_chunked_identity", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity"
     b"\r\n\r\n0\r\n\r\n", 400, "transfer_encoding_not_chunked"),
    ("te_identity_chunked", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity, chunked"
     b"\r\n\r\n0\r\n\r\n", 501, "transfer_encoding_unsupported"),
    ("te_vertical_tab", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding:\x0bchunked\r\n\r\n"
     b"0\r\n\r\n", 400, "control_char"),
    ("te_twice", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, "duplicate_transfer_encoding"),
    ("te_quoted", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
     400, "transfer_encoding_not_chunked"),
    ("te_http10", b"POST " + EQ + b" HTTP/1.0\r\n" + K + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     400, "te_on_http10"),
    # Content-Length
    ("cl_duplicate_same", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b"Content-Length: 5\r\n\r\nhello", 400, "duplicate_content_length"),
    ("cl_duplicate_different", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
     b"Content-Length: 6\r\n\r\nhello!", 400, "duplicate_content_length"),
    ("cl_list", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", 400,
     "bad_content_length"),
    ("cl_plus", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400,
     "bad_content_length"),
    ("cl_minus", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400,
     "bad_content_length"),
    ("cl_inner_space", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 1 0\r\n\r\n0123456789",
     400, "bad_content_length"),
    ("cl_hex", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400,
     "bad_content_length"),
    ("cl_huge", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999\r\n\r\n",
     400, "bad_content_length"),
    ("cl_space_before_colon", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello",
     400, "space_before_colon"),
    # Host
    ("host_missing", b"GET " + DQ + b" HTTP/1.1\r\n" + K + b"\r\n", 400, "missing_host"),
    ("host_duplicate", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"Host: other.test\r\n\r\n", 400,
     "duplicate_host"),
    ("host_with_userinfo", b"GET " + DQ + b" HTTP/1.1\r\nHost: user@evil.test\r\n" + K + b"\r\n", 400,
     "bad_host"),
    ("host_with_slash", b"GET " + DQ + b" HTTP/1.1\r\nHost: evil.test/x\r\n" + K + b"\r\n", 400, "bad_host"),
    # request targets
    ("absolute_form", b"GET http://fogate.test" + DQ + b" HTTP/1.1\r\n" + H + b"\r\n", 400,
     "target_not_origin_form"),
    ("authority_form", b"CONNECT fogate.test:443 HTTP/1.1\r\n" + H + b"\r\n", 400,
     "target_not_origin_form"),
    ("asterisk_with_get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400, "target_not_origin_form"),
    ("fragment", b"GET " + DQ + b"#x HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_target"),
    ("backslash", b"GET " + DQ + b"\\..\\x HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_target"),
    ("bad_percent", b"GET " + DQ + b"%zz HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_target"),
    ("raw_utf8_path", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_target"),
    # bytes and line structure
    ("nul_in_value", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400, "nul_byte"),
    ("nul_in_target", b"GET " + DQ + b"\x00 HTTP/1.1\r\n" + H + b"\r\n", 400, "nul_byte"),
    ("bare_lf", b"GET " + DQ + b" HTTP/1.1\n" + H + b"\r\n", 400, "bare_lf"),
    ("bare_lf_only", b"GET " + DQ + b" HTTP/1.1\nHost: fogate.test\n" + K[:-2] + b"\n\n", 400, "bare_lf"),
    ("bare_cr", b"GET " + DQ + b" HTTP/1.1\r\nHost: fogate.test\rX-A: b\r\n" + K + b"\r\n", 400, "bare_cr"),
    ("obs_fold", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"X-A: a\r\n\tb\r\n\r\n", 400, "obs_fold"),
    ("ctl_in_value", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400,
     "control_char"),
    ("del_in_value", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n", 400,
     "control_char"),
    ("name_with_space", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"Bad Name: x\r\n\r\n", 400,
     "space_before_colon"),
    ("name_not_token", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"X(a): x\r\n\r\n", 400,
     "bad_header_name"),
    ("empty_name", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b": x\r\n\r\n", 400, "bad_header_name"),
    ("no_colon", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", 400,
     "bad_header_name"),
    # request lines and versions
    ("http_1_9", b"GET " + DQ + b" HTTP/1.9\r\n" + H + b"\r\n", 505, "version_not_supported"),
    ("http_2_0", b"GET " + DQ + b" HTTP/2.0\r\n" + H + b"\r\n", 505, "version_not_supported"),
    ("h2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "version_not_supported"),
    ("http_0_9", b"GET " + DQ + b"\r\n" + K + b"\r\n", 400, "bad_request_line"),
    ("lowercase_version", b"GET " + DQ + b" http/1.1\r\n" + H + b"\r\n", 400, "bad_request_line"),
    ("double_space", b"GET  " + DQ + b" HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request_line"),
    ("tab_separator", b"GET\t" + DQ + b" HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request_line"),
    ("leading_space", b" GET " + DQ + b" HTTP/1.1\r\n" + H + b"\r\n", 400, "bad_request_line"),
    ("unknown_method", b"BREW " + DQ + b" HTTP/1.1\r\n" + H + b"\r\n", 501, "method_not_implemented"),
    ("lowercase_method", b"get " + DQ + b" HTTP/1.1\r\n" + H + b"\r\n", 501,
     "method_not_implemented"),
    ("tls_on_plain_port", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, 400,
     "nul_byte"),
    # limits
    ("head_too_large", b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 5000 + b"\r\n\r\n",
     431, "header_too_large"),
    ("head_too_large_no_end", b"GET /" + b"a" * 6000, 431, "header_too_large"),
    ("too_many_headers", b"GET " + DQ + b" HTTP/1.1\r\n" + H
     + b"".join(b"X-%d: v\r\n" % i for i in range(25)) + b"\r\n", 431, "too_many_headers"),
    ("body_too_large", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Content-Length: 100000\r\n\r\n"
     + b"x" * 2000, 413, "body_too_large"),
    ("expect_other", b"POST " + EQ + b" HTTP/1.1\r\n" + H + b"Expect: 200-ok\r\n"
     b"Content-Length: 2\r\n\r\nhi", 417, "expectation_failed"),
    # smuggling in the chunked body: the route answers, the bad body closes the connection
    # and the request hidden behind it is never answered
    ("chunk_size_0x0", b"POST /nope HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"0x0\r\n\r\n" + SMUGGLED, 404, "not_found"),
    ("chunk_extension_lf", b"POST /nope HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"3;x\nyz\r\nabc\r\n0\r\n\r\n" + SMUGGLED, 404, "not_found"),
    ("chunk_size_bare_lf", b"POST /nope HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"3\nabc\r\n0\r\n\r\n" + SMUGGLED, 404, "not_found"),
    ("chunk_data_too_long", b"POST /nope HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"3\r\nabcdef\r\n0\r\n\r\n" + SMUGGLED, 404, "not_found"),
    ("chunk_trailer", b"POST /nope HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"0\r\nX-Smuggle: 1\r\n\r\n" + SMUGGLED, 404, "not_found"),
]


@pytest.fixture(scope="module")
def shared_front(tmp_path_factory, sim):
    # max_enqueue_bytes as max_body_bytes: body_too_large targets the enqueue route
    f = frontkit.Fogate(tmp_path_factory.mktemp("malformed"), sim=sim,
                        limits={"max_enqueue_bytes": 1000})
    # start-up work (a token fetched ahead) is not the table's doing
    base = "http://127.0.0.1:%d" % f.port
    harness.wait_until(lambda: harness.request(base, "GET", "/readyz", timeout=2).status == 200,
                       what="fogate ready")
    sim.reset()
    yield f
    assert f.stop() == 0, f.log_text()


def sim_requests(sim):
    """fosim's answered requests per endpoint label, its own control API left out."""
    c = sim.counters()
    reqs = {k: v for k, v in c["requests"].items() if k != "control"}
    return reqs, c["tokens_total"]


def one_response_then_close(f, raw, timeout=5.0):
    s = f.connect()
    s.sendall(raw)
    data = read_until_close(s, timeout=timeout)
    s.close()
    r, rest = parse_response(data)
    assert r is not None, "no whole response: %r" % data[:300]
    assert rest == b"", "more than one response: %r" % rest[:300]
    return r


TABLE_RUN = []


def test_the_table_is_big_enough():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name, raw, status, code", CASES, ids=[c[0] for c in CASES])
def test_malformed(shared_front, name, raw, status, code):
    r = one_response_then_close(shared_front, raw)
    assert r.status == status
    rid = r.header("x-request-id")
    assert is_request_id(rid)
    body = r.json()
    assert body["code"] == code and body["request_id"] == rid and body["message"]
    if status != 404:  # a route answered the smuggling cases before the body was read
        assert r.header("connection") == "close"
    line = shared_front.wait_log(lambda l: l.get("request_id") == rid)
    assert line["status"] == status
    assert "smuggled" not in shared_front.log_text()
    TABLE_RUN.append(name)


def test_fosim_saw_no_request_after_the_table(sim):
    assert sorted(TABLE_RUN) == sorted(c[0] for c in CASES), "run the whole table first"
    assert sim_requests(sim) == ({}, 0)


def test_the_key_and_paths_are_routable(shared_front, sim):
    """The control for the test above: the same key and path, well formed, reach fosim."""
    s = shared_front.connect()
    s.sendall(b"GET " + DQ + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert Reader(s).next(timeout=15).status == 204
    s.close()
    reqs, tokens = sim_requests(sim)
    assert reqs == {"dequeue": {"204": 1}}, reqs


def test_still_healthy_after_the_table(shared_front):
    s = shared_front.connect()
    s.sendall(request("/healthz"))
    assert Reader(s).next().status == 200
    s.close()


def test_slowloris_gets_408_within_the_deadline(shared_front):
    # request_head_ms is 1000: trickle a byte every 100 ms, never finishing the head
    s = shared_front.connect()
    head = b"GET /healthz HTTP/1.1\r\n" + H + b"X-Slow: " + b"a" * 100
    t0 = time.monotonic()
    data = b""
    for b in head:
        try:
            s.sendall(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            break
        s.settimeout(0.1)
        try:
            chunk = s.recv(4096)
        except TimeoutError:
            continue
        data += chunk
        break
    data += read_until_close(s, timeout=4)
    elapsed = time.monotonic() - t0
    r, rest = parse_response(data)
    assert r.status == 408 and r.json()["code"] == "request_head_timeout" and rest == b""
    assert 0.9 < elapsed < 3.0


def test_partial_head_then_silence_gets_408(shared_front):
    s = shared_front.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    t0 = time.monotonic()
    data = read_until_close(s, timeout=3)
    r, rest = parse_response(data)
    assert r.status == 408 and rest == b"" and 0.8 < time.monotonic() - t0 < 3.0


def test_silent_connection_is_closed_without_a_response(shared_front):
    s = shared_front.connect()
    t0 = time.monotonic()
    assert read_until_close(s, timeout=4) == b""
    assert 0.8 < time.monotonic() - t0 < 3.0


def test_idle_keep_alive_is_closed(shared_front):
    # idle_ms is 2000: one answered request, then nothing
    s = shared_front.connect()
    s.sendall(request("/healthz"))
    t0 = time.monotonic()
    data = read_until_close(s, timeout=6)
    elapsed = time.monotonic() - t0
    r, rest = parse_response(data)
    assert r.status == 200 and r.header("connection") is None and rest == b""
    assert 1.8 < elapsed < 4.5
