"""End to end: GET /metrics on the admin listener: `promtool check metrics` is clean, the
counters match the traffic (summed over workers), client input cannot add series, and the
D365 side is counted by environment, operation and code."""
import json
import random
import re
import subprocess

import pytest

import harness
import passkit
from harness import EXPORT_JOB
from harness import workdir  # noqa: F401

DEQ = "/api/connector/dequeue/" + EXPORT_JOB


def scrape(g):
    r = g.admin("/metrics")
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("text/plain; version=0.0.4")
    return r.body.decode()


def samples(text):
    """{'name{labels}': value} of every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def scrape_when(g, ready, what):
    """The first scrape whose samples satisfy ready(samples), within 10 s."""
    def attempt():
        text = scrape(g)
        return text if ready(samples(text)) else None
    return harness.wait_until(attempt, timeout=10, what=what)


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, (r.stdout + r.stderr).decode()
    return (r.stdout + r.stderr).decode()


def test_metrics_are_clean_and_count_the_traffic(workdir, sim):
    g = passkit.Gate(workdir, sim, workers=2)
    try:
        b = samples(scrape(g))
        for _ in range(20):
            assert g.get("/healthz").status == 200
        for _ in range(3):
            assert g.request("GET", DEQ).status == 204
        hz = 'fogate_http_requests_total{route="healthz",method="GET",code="200"}'
        dq = 'fogate_http_requests_total{route="connector_dequeue",method="GET",code="204"}'
        # A request is counted when its last byte has left fogate's output buffer, which can
        # be after the client read it; with 2 workers the other one may answer the scrape
        # first. So wait until the counts are in, then check them exactly.
        text = scrape_when(g, lambda s: s.get(dq, 0) >= 3 and s.get(hz, 0) - b.get(hz, 0) >= 20,
                           "the requests counted")
        promtool_check(text)
        s = samples(text)
        assert s[hz] - b[hz] == 20
        assert s[dq] == 3
        assert s['fogate_d365_requests_total{environment="sim",operation="dequeue",code="204"}'] == 3
        hc = 'fogate_http_request_duration_seconds_count{route="healthz"}'
        assert s[hc] - b[hc] == 20
        assert s["fogate_workers"] == 2
        assert s['fogate_token_ready{environment="sim"}'] == 1
        assert s['fogate_token_expiry_timestamp_seconds{environment="sim"}'] > 1.7e9
        assert s["process_open_fds"] > 5 and s["process_resident_memory_bytes"] > 1e6
        assert 'fogate_build_info{version="' in text
        # one line per D365 call with D365's activity id and the trace id
        calls = [l for l in g.log_lines() if l.get("msg") == "d365_call"]
        assert len(calls) >= 3
        c = calls[-1]
        assert c["operation"] == "dequeue" and c["environment"] == "sim" and c["status"] == 204
        assert re.fullmatch(r"[0-9a-f-]{36}", c["ms-dyn-aid"]) and len(c["trace_id"]) == 32
    finally:
        assert g.stop() == 0


@pytest.mark.parametrize("client", ["native", "curl"])
def test_transfers_count_the_client_that_carried_them(workdir, sim, client):
    """fogate_upstream_transfers_total{client}: the configured client carries every call
    (the token request and the dequeues), the other one none; native is the default."""
    extra = {} if client == "native" else {"upstream": {"client": client}}
    other = "curl" if client == "native" else "native"
    g = passkit.Gate(workdir, sim, extra=extra)
    try:
        for _ in range(3):
            assert g.request("GET", DEQ).status == 204
        key = 'fogate_upstream_transfers_total{client="%s"}'
        s = samples(scrape_when(g, lambda s: s.get(key % client, 0) >= 4, "the calls counted"))
        assert s[key % client] >= 4  # a token request and 3 dequeues
        assert s[key % other] == 0
    finally:
        assert g.stop() == 0


def test_client_input_cannot_add_series(workdir, sim):
    g = passkit.Gate(workdir, sim)
    try:
        methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "PROPFIND"]
        for m in methods:  # every (route, method, code) the flood can reach, once
            g.request(m, "/warmup-%d" % random.randrange(1 << 30), key=None)
        # counted once their last byte left (see above): wait for all 6 before the baseline
        other = 'fogate_http_requests_total{route="other",'
        before = samples(scrape_when(g, lambda s: sum(
            v for k, v in s.items() if k.startswith(other)) >= len(methods),
            "the warm-up requests counted"))
        for i in range(300):
            path = "/%x/%s?q=%d" % (random.getrandbits(64), "a" * (i % 7), i)
            method = random.choice(methods)
            g.request(method, path, key=None, headers={"X-Fogate-Environment": "e%d" % i})
        after = samples(scrape(g))
        grown = sorted(set(after) - set(before))
        assert grown == [], grown[:10]
        assert after['fogate_http_requests_total{route="other",method="GET",code="404"}'] > 1
    finally:
        assert g.stop() == 0


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_traceparent_reaches_d365_and_the_logs(workdir, sim):
    g = passkit.Gate(workdir, sim)
    try:
        tp = "00-%s-00f067aa0ba902b7-01" % TRACE
        r = g.request("GET", DEQ, headers={"traceparent": tp, "X-Request-Id": "client-req.42"})
        assert r.status == 204 and r.header("X-Request-Id") == "client-req.42"
        assert sim.counters()["traceparents"].get(TRACE) == 1
        # an invalid traceparent starts a new trace; a request id with a space is replaced
        r = g.request("GET", "/nope", key=None,
                      headers={"traceparent": "00-%s-0000000000000000-01" % TRACE,
                               "X-Request-Id": "bad id"})
        body = r.json()
        assert r.status == 404 and re.fullmatch(r"[0-9a-f]{32}", body["trace_id"])
        assert body["trace_id"] != TRACE and re.fullmatch(r"[0-9a-f]{16}", body["request_id"])
        lines = g.log_lines()
        req = [l for l in lines if l.get("msg") == "request" and
               l.get("request_id") == "client-req.42"]
        assert req and req[0]["trace_id"] == TRACE
        call = [l for l in lines if l.get("msg") == "d365_call" and l.get("trace_id") == TRACE]
        assert call and call[0]["request_id"] == "client-req.42" and call[0]["attempt"] == 1
        assert call[0]["span_id"] != "00f067aa0ba902b7" and "ms-dyn-aid" in call[0]
        assert sorted(call[0]) == sorted(set(call[0]))  # plain fields, nothing else
        for l in lines:  # no secret, token, SAS or query string in any line
            text = json.dumps(l)
            assert harness.APP_SECRET not in text and passkit.ALICE_KEY not in text
            assert "eyJ" not in text and "sig=" not in text and "?" not in l.get("path", "")
    finally:
        assert g.stop() == 0


def test_credential_expiry_from_the_config_and_no_secret_in_metrics(workdir, sim):
    g = passkit.Gate(workdir, sim, extra_env={"client_secret_expires": "2030-01-02"})
    try:
        assert g.request("GET", DEQ).status == 204
        text = scrape(g)
        s = samples(text)
        # 2030-01-02T00:00:00Z
        assert s['fogate_credential_expiry_timestamp_seconds{environment="sim"}'] == 1893542400
        for secret in (harness.APP_SECRET, passkit.ALICE_KEY, passkit.BOB_KEY, "eyJ"):
            assert secret not in text
    finally:
        assert g.stop() == 0


def test_a_bad_client_secret_expires_is_a_config_error(workdir, sim):
    cfg = passkit.gate_config(harness.free_port(), sim,
                              extra_env={"client_secret_expires": "02/01/2030"})
    path = "%s/bad-expires.json" % workdir
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = subprocess.run([harness.require_bin("FOGATE_BIN"), "--check-config", path],
                       capture_output=True, text=True, timeout=30,
                       env=dict(__import__("os").environ, **{passkit.SECRET_ENV: "x"}))
    assert r.returncode != 0 and "client_secret_expires" in r.stdout + r.stderr
