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
    ("authority_form", b"CONNECT fogate.test:443 HTTP/1.1\r\n" + H + b"\r\n", 501,
     "method_not_implemented"),
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


def get(extra=b"", target=DQ, method=b"GET", version=b"HTTP/1.1", host=H):
    return method + b" " + target + b" " + version + b"\r\n" + host + extra + b"\r\n"


def post(extra, body=b"", target=EQ):
    return b"POST " + target + b" HTTP/1.1\r\n" + H + extra + b"\r\n" + body


def chunked(body):
    """A chunked body to a route that answers 404 at once: the bad framing must close the
    connection before the request smuggled behind it is read."""
    return (b"POST /nope HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n" + body
            + SMUGGLED)


DATA = b"/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities.GetMessageStatus"
NOT_IMPL = (501, "method_not_implemented")
UPGRADE = (400, "upgrade_not_supported")
TE_NOT_CHUNKED = (400, "transfer_encoding_not_chunked")
BAD_CL = (400, "bad_content_length")
NOT_FOUND = (404, "not_found")

# Issue 11 (items 1 and 2): methods no route serves, empty Host, protocol upgrades, and more
# of the probe's smuggling and strictness vectors; (name, raw, (status, code)).
MORE = [
    # methods: refused before routing and authentication, one answer, then close
    ("trace_data", get(target=DATA, method=b"TRACE"), NOT_IMPL),
    ("trace_connector", get(method=b"TRACE"), NOT_IMPL),
    ("trace_asterisk", get(target=b"*", method=b"TRACE"), NOT_IMPL),
    ("trace_healthz_max_forwards", get(b"Max-Forwards: 0\r\n", b"/healthz", b"TRACE"), NOT_IMPL),
    ("track", get(method=b"TRACK"), NOT_IMPL),
    ("purge", get(target=b"/data/Customers", method=b"PURGE"), NOT_IMPL),
    ("connect_origin_form", get(method=b"CONNECT"), NOT_IMPL),
    ("propfind", get(method=b"PROPFIND"), NOT_IMPL),
    ("mkcol", get(method=b"MKCOL"), NOT_IMPL),
    ("m_search", get(target=b"*", method=b"M-SEARCH"), NOT_IMPL),
    ("link", get(method=b"LINK"), NOT_IMPL),
    ("method_with_digit", get(method=b"G3T"), NOT_IMPL),
    ("method_long", get(method=b"GET" * 30), NOT_IMPL),
    ("pri_on_http11", get(target=b"*", method=b"PRI"), NOT_IMPL),
    ("mixed_case_method", get(method=b"Get"), NOT_IMPL),
    # Host
    ("host_empty", get(host=b"Host:\r\n" + K), (400, "empty_host")),
    ("host_empty_spaces", get(host=b"Host:   \r\n" + K), (400, "empty_host")),
    ("host_empty_http10", get(version=b"HTTP/1.0", host=b"Host:\r\n" + K), (400, "empty_host")),
    ("host_space_inside", get(host=b"Host: fogate .test\r\n" + K), (400, "bad_host")),
    ("host_duplicate_case", get(host=H + b"hOST: other.test\r\n"), (400, "duplicate_host")),
    ("host_duplicate_http10", get(version=b"HTTP/1.0", host=H + b"Host: fogate.test\r\n"),
     (400, "duplicate_host")),
    ("host_non_ascii", get(host=b"Host: caf\xc3\xa9.test\r\n" + K), (400, "bad_host")),
    ("host_userinfo_port", get(host=b"Host: a@fogate.test:80\r\n" + K), (400, "bad_host")),
    ("host_backslash", get(host=b"Host: fogate.test\\x\r\n" + K), (400, "bad_host")),
    ("host_query", get(host=b"Host: fogate.test?x\r\n" + K), (400, "bad_host")),
    ("host_fragment", get(host=b"Host: fogate.test#x\r\n" + K), (400, "bad_host")),
    ("host_missing_post", post(b"Content-Length: 2\r\n", b"hi").replace(b"Host: fogate.test\r\n", b""),
     (400, "missing_host")),
    # protocol upgrades: refused, never half-honoured (docs/hardening.md)
    ("upgrade_h2c", get(b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                        b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"), UPGRADE),
    ("upgrade_h2c_no_connection", get(b"Upgrade: h2c\r\n"), UPGRADE),
    ("upgrade_websocket", get(b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
                              b"Sec-WebSocket-Version: 13\r\n"), UPGRADE),
    ("http2_settings_alone", get(b"HTTP2-Settings: AAMAAABk\r\n"), UPGRADE),
    ("connection_upgrade_only", get(b"Connection: keep-alive, upgrade\r\n"), UPGRADE),
    ("upgrade_tls", get(b"Upgrade: TLS/1.2\r\nConnection: Upgrade\r\n"), UPGRADE),
    ("upgrade_on_enqueue", post(b"Upgrade: h2c\r\nContent-Length: 2\r\n", b"hi"), UPGRADE),
    ("upgrade_on_http10", get(b"Upgrade: h2c\r\n", version=b"HTTP/1.0"), UPGRADE),
    # Transfer-Encoding variants
    ("te_chunked_chunked", post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"),
     (501, "transfer_encoding_unsupported")),
    ("te_gzip_chunked", post(b"Transfer-Encoding: gzip, chunked\r\n", b"0\r\n\r\n"),
     (501, "transfer_encoding_unsupported")),
    ("te_empty", post(b"Transfer-Encoding:\r\n", b"0\r\n\r\n"), TE_NOT_CHUNKED),
    ("te_trailing_comma", post(b"Transfer-Encoding: chunked,\r\n", b"0\r\n\r\n"), TE_NOT_CHUNKED),
    ("te_chunked_dash", post(b"Transfer-Encoding: chunked-x\r\n", b"0\r\n\r\n"), TE_NOT_CHUNKED),
    ("te_nul", post(b"Transfer-Encoding: chunked\x00\r\n", b"0\r\n\r\n"), (400, "nul_byte")),
    ("te_tab_before_colon", post(b"Transfer-Encoding\t: chunked\r\n", b"0\r\n\r\n"),
     (400, "space_before_colon")),
    ("te_cl_zero", post(b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"),
     (400, "te_with_content_length")),
    ("te_upper_with_cl", post(b"TRANSFER-ENCODING: CHUNKED\r\nContent-Length: 5\r\n",
                              b"0\r\n\r\n"), (400, "te_with_content_length")),
    ("te_folded_value", post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n"),
     (400, "obs_fold")),
    ("te_cr_in_value", post(b"Transfer-Encoding: chunked\rx\r\n", b"0\r\n\r\n"), (400, "bare_cr")),
    # Content-Length variants
    ("cl_empty", post(b"Content-Length:\r\n"), BAD_CL),
    ("cl_trailing_junk", post(b"Content-Length: 5x\r\n", b"hello"), BAD_CL),
    ("cl_19_digits", post(b"Content-Length: 0000000000000000005\r\n", b"hello"), BAD_CL),
    ("cl_minus_zero", post(b"Content-Length: -0\r\n"), BAD_CL),
    ("cl_decimal", post(b"Content-Length: 5.0\r\n", b"hello"), BAD_CL),
    ("cl_trailing_comma", post(b"Content-Length: 5,\r\n", b"hello"), BAD_CL),
    ("cl_duplicate_case", post(b"Content-Length: 5\r\ncontent-length: 5\r\n", b"hello"),
     (400, "duplicate_content_length")),
    ("cl_vertical_tab", post(b"Content-Length:\x0b5\r\n", b"hello"), (400, "control_char")),
    # chunk framing: bad sizes and lines
    ("chunk_size_negative", chunked(b"-1\r\na\r\n0\r\n\r\n"), NOT_FOUND),
    ("chunk_size_trailing_space", chunked(b"3 \r\nabc\r\n0\r\n\r\n"), NOT_FOUND),
    ("chunk_extension", chunked(b"3;a=b\r\nabc\r\n0\r\n\r\n"), NOT_FOUND),
    ("chunk_size_overflow", chunked(b"fffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), NOT_FOUND),
    ("chunk_size_plus", chunked(b"+3\r\nabc\r\n0\r\n\r\n"), NOT_FOUND),
    ("chunk_size_0x3", chunked(b"0x3\r\nabc\r\n0\r\n\r\n"), NOT_FOUND),
    ("chunk_data_no_crlf", chunked(b"3\r\nabc0\r\n\r\n"), NOT_FOUND),
    ("chunk_last_bare_lf", chunked(b"0\r\n\n"), NOT_FOUND),
    ("chunk_size_missing", chunked(b"\r\nabc\r\n0\r\n\r\n"), NOT_FOUND),
    ("chunk_size_nul", chunked(b"3\x00\r\nabc\r\n0\r\n\r\n"), NOT_FOUND),
    ("chunk_size_bare_cr", chunked(b"3\rabc\r\n0\r\n\r\n"), NOT_FOUND),
    # request lines, targets and versions
    ("two_part_request_line", b"GET HTTP/1.1\r\n" + H + b"\r\n", (400, "bad_request_line")),
    ("version_trailing_space", get(version=b"HTTP/1.1 "), (400, "bad_request_line")),
    ("version_leading_zero", get(version=b"HTTP/1.01"), (400, "bad_request_line")),
    ("version_major_two_digits", get(version=b"HTTP/01.1"), (400, "bad_request_line")),
    ("version_https", get(version=b"HTTPS/1.1"), (400, "bad_request_line")),
    ("version_1_2", get(version=b"HTTP/1.2"), (505, "version_not_supported")),
    ("version_3_0", get(version=b"HTTP/3.0"), (505, "version_not_supported")),
    ("target_with_space", get(target=DQ + b" x"), (400, "bad_request_line")),
    ("absolute_https", get(target=b"https://fogate.test" + DQ), (400, "target_not_origin_form")),
    ("absolute_upper_scheme", get(target=b"HTTP://FOGATE.TEST" + DQ), (400, "target_not_origin_form")),
    ("absolute_other_host", get(target=b"http://evil.test" + DQ), (400, "target_not_origin_form")),
    ("absolute_no_slashes", get(target=b"http:" + DQ), (400, "target_not_origin_form")),
    ("asterisk_with_post", post(b"Content-Length: 0\r\n", target=b"*"), (400, "target_not_origin_form")),
    ("scheme_relative_target", get(target=b"//evil.test" + DQ), NOT_FOUND),
    ("target_control_byte", get(target=DQ + b"\x01"), (400, "bad_target")),
    ("target_del", get(target=DQ + b"\x7f"), (400, "bad_target")),
    ("target_half_escape", get(target=DQ + b"%4"), (400, "bad_target")),
    # header names, values and line structure
    ("name_non_ascii", get(b"X-\xc3\xa9: v\r\n"), (400, "bad_header_name")),
    ("name_slash", get(b"X/Y: v\r\n"), (400, "bad_header_name")),
    ("name_at", get(b"X@Y: v\r\n"), (400, "bad_header_name")),
    ("name_vertical_tab", get(b"X\x0bY: v\r\n"), (400, "bad_header_name")),
    ("name_nul", get(b"X\x00Y: v\r\n"), (400, "nul_byte")),
    ("value_bare_cr", get(b"X-A: a\rb\r\n"), (400, "bare_cr")),
    ("value_bare_lf", get(b"X-A: a\nb\r\n"), (400, "bare_lf")),
    ("value_escape", get(b"X-A: a\x1bb\r\n"), (400, "control_char")),
    ("value_form_feed", get(b"X-A: a\x0cb\r\n"), (400, "control_char")),
    ("first_header_folded", b"GET " + DQ + b" HTTP/1.1\r\n Host: fogate.test\r\n" + K + b"\r\n",
     (400, "obs_fold")),
    ("host_space_before_colon", get(host=b"Host : fogate.test\r\n" + K), (400, "space_before_colon")),
    ("request_line_bare_cr", b"GET " + DQ + b" HTTP/1.1\r\r\n" + H + b"\r\n", (400, "bare_cr")),
    ("only_lf_lf", b"\n\n", (400, "bare_lf")),
    ("expect_list", post(b"Expect: 100-continue, x\r\nContent-Length: 2\r\n", b"hi"),
     (417, "expectation_failed")),
    # sizes
    ("request_line_too_long", get(target=DQ + b"?q=" + b"a" * 5000), (431, "header_too_large")),
    ("header_name_too_long", get(b"X-" + b"n" * 5000 + b": v\r\n"), (431, "header_too_large")),
    ("headers_21", get(b"".join(b"X-%d: v\r\n" % i for i in range(19))), (431, "too_many_headers")),
]
CASES += [(name, raw, status, code) for name, raw, (status, code) in MORE]

# Valid requests of the same shapes that must still be served (the probe's controls); they
# reach fosim, so they run after the table's check that fosim saw nothing.
EQ_Q = EQ + b"?entity=Customer%20groups&company=usmf"
CONTROLS = [
    ("get_healthz", get(target=b"/healthz"), 200),
    ("head_healthz", get(target=b"/healthz", method=b"HEAD"), 200),
    ("http10_without_host", b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200),
    ("leading_empty_lines", b"\r\n\r\n" + get(target=b"/healthz"), 200),
    ("obs_text_and_tab_in_value", get(b"X-A: caf\xc3\xa9\tb\r\n", target=b"/healthz"), 200),
    ("ipv6_host_with_port", get(target=b"/healthz", host=b"Host: [::1]:8080\r\n"), 200),
    ("connection_names_other_header", get(b"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n",
                                          target=b"/healthz"), 200),
    ("dequeue_with_key", get(), 204),
    ("enqueue_content_length", post(b"Content-Length: 4\r\n", b"a,b\n", target=EQ_Q), 200),
    ("enqueue_chunked", post(b"Transfer-Encoding: chunked\r\n", b"4\r\na,b\n\r\n0\r\n\r\n",
                             target=EQ_Q), 200),
    # D365's own answer for an unknown message id, forwarded (fogate's errors are 4xx too,
    # but in its own shape: the test checks the body is D365's)
    ("data_action_post", post(b"Content-Type: application/json\r\nContent-Length: 15\r\n",
                              b'{"messageId":1}', target=DATA), 400),
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
    assert len(CASES) >= 120 and len(CONTROLS) >= 10
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


@pytest.mark.parametrize("name, raw, status", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_valid_controls_are_served(shared_front, name, raw, status):
    s = shared_front.connect()
    s.sendall(raw + get(target=b"/healthz"))  # and a second request on the same connection
    reader = Reader(s)
    r = reader.next(head_request=b"HEAD " in raw[:9], timeout=15)
    assert r.status == status, (r.status, r.body)
    assert r.header("connection") in (None, "keep-alive")
    assert b'"request_id"' not in r.body  # never one of fogate's own refusals
    assert reader.next().status == 200
    s.close()


def test_still_healthy_after_the_table(shared_front):
    s = shared_front.connect()
    s.sendall(request("/healthz"))
    assert Reader(s).next().status == 200
    s.close()


# The deadlines below are told apart with wide margins, so that a loaded machine (a test
# process or fogate descheduled for a second or two) cannot fail them: the head deadline is
# 1 s and the idle timeout 6 s, so "closed by the head deadline" is anything in [0.8, 4) s and
# "closed by the idle timeout" anything in [5.8, 12) s.
HEAD_S, IDLE_S = 1.0, 6.0


@pytest.fixture(scope="module")
def timing_front(tmp_path_factory, sim):
    f = frontkit.Fogate(tmp_path_factory.mktemp("malformed-timing"), sim=sim,
                        timeouts={"request_head_ms": int(HEAD_S * 1000),
                                  "idle_ms": int(IDLE_S * 1000)})
    yield f
    assert f.stop() == 0, f.log_text()


def test_slowloris_gets_408_within_the_deadline(timing_front):
    # trickle a byte every 100 ms, never finishing the head
    s = timing_front.connect()
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
    data += read_until_close(s, timeout=IDLE_S)
    elapsed = time.monotonic() - t0
    r, rest = parse_response(data)
    assert r.status == 408 and r.json()["code"] == "request_head_timeout" and rest == b""
    assert HEAD_S - 0.1 < elapsed < IDLE_S - 2


def test_partial_head_then_silence_gets_408(timing_front):
    s = timing_front.connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    t0 = time.monotonic()
    data = read_until_close(s, timeout=IDLE_S)
    r, rest = parse_response(data)
    assert r.status == 408 and rest == b""
    assert HEAD_S - 0.2 < time.monotonic() - t0 < IDLE_S - 2


def test_silent_connection_is_closed_without_a_response(timing_front):
    s = timing_front.connect()
    t0 = time.monotonic()
    assert read_until_close(s, timeout=IDLE_S) == b""
    assert HEAD_S - 0.2 < time.monotonic() - t0 < IDLE_S - 2


def test_idle_keep_alive_is_closed(timing_front):
    # one answered request, then nothing: the idle timeout, not the head deadline, closes it
    s = timing_front.connect()
    s.sendall(request("/healthz"))
    t0 = time.monotonic()
    data = read_until_close(s, timeout=2 * IDLE_S)
    elapsed = time.monotonic() - t0
    r, rest = parse_response(data)
    assert r.status == 200 and r.header("connection") is None and rest == b""
    assert IDLE_S - 0.2 < elapsed < 2 * IDLE_S


def test_openapi_documents_every_front_error_code():
    """Every code the front end answers with (head, body, timeouts) is in docs/openapi.yaml."""
    import os
    import re
    src = harness.require_bin("FOGATE_SRC")
    codes = set()
    for name in ("http1.c", "h1body.c", "conn.c", "connbody.c"):
        with open(os.path.join(src, "proxy", "front", name)) as f:
            text = f.read()
        codes |= set(re.findall(r'refuse\(v, (?:\d+, )?"([a-z0-9_]+)"', text))
        codes |= set(re.findall(r'\d{3}, "([a-z0-9_]+)"', text))
    assert {"empty_host", "upgrade_not_supported", "method_not_implemented"} <= codes, codes
    with open(os.path.join(src, "docs", "openapi.yaml")) as f:
        doc = f.read()
    missing = sorted(c for c in codes if "`%s`" % c not in doc)
    assert not missing, "front error codes missing from docs/openapi.yaml: %s" % missing
