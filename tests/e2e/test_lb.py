"""The shipped load balancer examples (deploy/haproxy/haproxy.cfg, deploy/nginx/fogate.conf,
run through lbkit) in front of fogate instances with the ack ledger, fosim and redis-server:
HAProxy routes only to instances whose /readyz is 200; nginx streams bodies without buffering
them; both refuse /admin/ and log fogate's request id beside the client's address."""

import re

import pytest

import harness
import lbkit
import ledgerkit as lk
from ledgerkit import redis  # noqa: F401  (module-wide redis-server)

BIG = 1024 * 1024


def lines_for(gate, path_prefix):
    return [ln for ln in gate.log().splitlines() if f'"path":"{path_prefix}' in ln]


@pytest.fixture
def gates(workdir, sim, redis):  # noqa: F811
    started = []

    def start(name, redis_port):
        g = lk.Gate(workdir, sim, redis_port, name=name)
        started.append(g)
        return g
    yield start
    for g in started:
        g.stop()


def test_haproxy_sends_only_to_ready_instances(workdir, sim, redis, gates):  # noqa: F811
    ready = gates("lb-ready", redis.port)
    # the ledger fails closed without its Redis: /healthz 200 but /readyz 503
    unready = gates("lb-unready", harness.free_port())
    assert harness.request(unready.base, "GET", "/readyz").status == 503
    hap = lbkit.start_haproxy(workdir, [ready.port, unready.port])
    try:
        harness.wait_until(lambda: "fogate/fogate2 is DOWN" in harness.file_tail(hap.log_path),
                           timeout=30, what="HAProxy's /readyz check taking fogate2 out")
        base = f"http://127.0.0.1:{hap.port}"
        lk.feed(sim, 3, tag="lb")
        ids = []
        for _ in range(10):
            r = harness.request(base, "POST", f"/v1/jobs/{lk.JOB}/next",
                                headers={"X-Api-Key": lk.KEY})
            assert r.status in (200, 204), r
            ids.append(r.header("X-Request-Id"))
        # each request-log line is written when its response has gone out: wait for the tenth
        harness.wait_until(lambda: len(lines_for(ready, "/v1/")) >= 10, timeout=10,
                           what="ten request-log lines")
        assert lines_for(unready, "/v1/") == []
        assert len(lines_for(ready, "/v1/")) == 10
        assert any('"path":"/readyz"' in ln for ln in unready.log().splitlines())
        # /admin/ is on the admin listener only; the proxy refuses the path as well
        assert harness.request(ready.admin_base, "GET", "/admin/status").status == 200
        assert harness.request(ready.base, "GET", "/admin/status").status == 404
        assert harness.request(base, "GET", "/admin/status").status == 403
        def logged(rid):
            log = harness.file_tail(hap.log_path, 200000)
            return re.search(r"127\.0\.0\.1:\d+ .*\{" + re.escape(rid) + r"\}", log)
        for rid in ids:     # HAProxy writes its log line after the response, like fogate
            harness.wait_until(lambda: logged(rid), timeout=10, what=f"HAProxy's line for {rid}")
    finally:
        hap.stop()      # HAProxy in -db mode dies of the SIGTERM itself


def test_nginx_streams_both_ways_to_every_instance(workdir, sim, redis, gates):  # noqa: F811
    a = gates("lb-a", redis.port)
    b = gates("lb-b", redis.port)
    ngx = lbkit.start_nginx(workdir, [a.port, b.port])
    try:
        base = f"http://127.0.0.1:{ngx.port}"
        h = {"X-Api-Key": lk.KEY}
        for i in range(4):     # an upload much larger than nginx's in-memory body buffer
            r = harness.request(base, "POST", f"/v1/jobs/{lk.IMPORT_JOB}/messages",
                                b"x" * BIG, dict(h, **{"X-File-Name": f"big-{i}.csv"}))
            assert r.status == 202, r
        data = b"y" * (4 * BIG)
        sim.feed_export(data)
        r = harness.request(base, "POST", f"/v1/jobs/{lk.JOB}/next", headers=h, timeout=60)
        assert r.status == 200 and r.body == data, r
        assert harness.request(base, "GET", "/admin/status").status == 403
        # both instances served; nothing went through nginx's temporary files
        assert lines_for(a, "/v1/jobs/") and lines_for(b, "/v1/jobs/")
        err = harness.file_tail(f"{workdir}/nginx/error.log", 200000)
        assert "buffered to a temporary file" not in err, err
        rid = r.header('X-Request-Id')
        harness.wait_until(lambda: f"request_id={rid}" in harness.file_tail(ngx.access_log, 200000),
                           timeout=10, what="nginx's access-log line")
    finally:
        assert ngx.stop() == 0
