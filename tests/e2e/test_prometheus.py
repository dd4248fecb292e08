"""End to end with a real Prometheus (Debian's `prometheus` on loopback, storage in the
test's directory, 1 s scrapes): two fogate instances sharing one redis-server and one fosim,
traffic (an import, an export taken and confirmed, a 429, a token failure), then the values
asked of Prometheus's HTTP API; `promtool check metrics` on a scrape."""
import json
import os
import shutil
import subprocess
import time
import urllib.parse

import harness
import ledgerkit as lk
from harness import workdir  # noqa: F401
from ledgerkit import redis  # noqa: F401


def start_prometheus(workdir, targets):
    port = harness.free_port()
    cfg = os.path.join(workdir, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                "scrape_configs:\n  - job_name: fogate\n    scrape_interval: 1s\n"
                "    scrape_timeout: 900ms\n    static_configs:\n"
                "      - targets: [%s]\n" % ", ".join('"%s"' % t for t in targets))
    exe = shutil.which("prometheus") or "/usr/bin/prometheus"
    p = harness.Proc("prometheus", [exe, "--config.file=" + cfg,
                                    "--storage.tsdb.path=" + os.path.join(workdir, "tsdb"),
                                    "--web.listen-address=127.0.0.1:%d" % port], workdir)
    p.base = "http://127.0.0.1:%d" % port
    harness.wait_until(lambda: harness.request(p.base, "GET", "/-/ready", timeout=2).status
                       == 200, timeout=20, what="prometheus ready")
    return p


def query(prom, expr):
    """The instant vector of `expr` as {frozenset(labels): value}."""
    r = harness.request(prom.base, "GET", "/api/v1/query?query=" + urllib.parse.quote(expr),
                        timeout=5)
    assert r.status == 200, r
    doc = r.json()
    assert doc["status"] == "success", doc
    return {frozenset(s["metric"].items()): float(s["value"][1]) for s in doc["data"]["result"]}


def value(prom, expr):
    v = query(prom, expr)
    return next(iter(v.values())) if len(v) == 1 else None


def wait_value(prom, expr, want, timeout=20):
    got = []

    def ok():
        got[:] = [value(prom, expr)]
        return got[0] == want
    harness.wait_until(ok, timeout=timeout, what="%s == %r (last %r)" % (expr, want, got))


def test_prometheus_scrapes_two_instances(workdir, sim, redis):
    t0 = time.monotonic()
    sim.clear_faults()
    sim.fault(endpoint="token", kind="status", status=503, count=1)  # a's first fetch fails
    a = lk.Gate(workdir, sim, redis.port, name="prom-a")
    harness.wait_until(lambda: a.req("GET", "/readyz", key=None).status == 200, timeout=15,
                       what="a ready after its failed token fetch")
    b = lk.Gate(workdir, sim, redis.port, name="prom-b")
    prom = start_prometheus(workdir, ["127.0.0.1:%d" % g.admin_port for g in (a, b)])
    try:
        # an import through a (enqueue, then its final status)
        r = a.req("POST", "/v1/jobs/%s/messages" % lk.IMPORT_JOB, b"code,name\nX,Y\n")
        assert r.status == 202, r
        mid = r.json()["message_id"]
        r = a.req("GET", "/v1/messages/%s?job=%s&wait=10" % (mid, lk.IMPORT_JOB))
        assert r.status == 200 and r.json()["status"] == "Processed", r
        # an export taken and confirmed through b
        lk.feed(sim, 1, tag="prom")
        r = b.next()
        assert r.status == 200, r
        assert b.ack(r.header("X-Fogate-Message-Id")).status in (200, 202)
        # a 429 from D365 on a's next dequeue
        sim.fault(endpoint="dequeue", kind="status", status=429, retry_after=1, count=1)
        assert a.next().status in (204, 429)

        wait_value(prom, 'count(up{job="fogate"} == 1)', 2)
        wait_value(prom, 'sum(fogate_d365_final_status_total{kind="message",status="Processed"})', 1)
        wait_value(prom, 'sum(fogate_d365_requests_total{operation="enqueue",code="200"})', 1)
        wait_value(prom, 'sum(fogate_d365_throttled_total{environment="sim"})', 1)
        wait_value(prom, 'sum(fogate_token_fetch_failures_total)', 1)
        fails = query(prom, 'fogate_token_fetch_failures_total{environment="sim"}')
        by_inst = {dict(k)["instance"]: v for k, v in fails.items()}
        assert by_inst == {"127.0.0.1:%d" % a.admin_port: 1, "127.0.0.1:%d" % b.admin_port: 0}
        wait_value(prom, 'sum(fogate_ledger_messages_total{event="confirmed"})', 1)
        # the cluster figure: the same on both instances (so max, not sum)
        wait_value(prom, 'count(fogate_ledger_cluster_verdicts_total{verdict="confirmed"} == 1)', 2)
        wait_value(prom, 'sum(fogate_http_requests_total{route="jobs",method="POST",code="202"})',
                   1)
        assert value(prom, 'sum(fogate_token_ready)') == 2
        wait_value(prom, 'count(fogate_redis_up{client="ledger"} == 1)', 2)
        assert value(prom, 'sum(fogate_redis_commands_total{client="ledger",result="ok"})') > 0
        assert value(prom, 'sum(fogate_redis_command_duration_seconds_count{client="ledger"})') > 0
        assert value(prom, 'max(fogate_ledger_cluster_oldest_unacked_age_seconds)') is not None
        assert value(prom, 'sum(fogate_d365_request_duration_seconds_count'
                           '{operation="ack"})') >= 1
        # promtool on a scrape of one instance
        text = harness.request(a.admin_base, "GET", "/metrics", timeout=5).body
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           timeout=30)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()
    finally:
        prom.stop()
        a.stop()
        b.stop()
        sim.clear_faults()
    assert time.monotonic() - t0 < 60
