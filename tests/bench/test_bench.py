"""Smoke run of the benchmark (tests/bench/bench.py --smoke, with the same fogate binary as
its own --baseline, the one on its own HTTP/1.1 client and the baseline on libcurl): every
leg runs against fogate, the baseline and the nginx peer and yields figures;
results.json/.md/.png are written. No timing threshold: this proves the
benchmark works, not how fast fogate is."""
import json
import os
import subprocess
import sys

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchreport  # noqa: E402

PROXIES = ("fogate", "base", "nginx")
ONLY = {m: ("fogate", "base") for m in (             # the ledger's, nginx has none
    "dequeue_redis_cmds", "dequeue_redis_trips", "dequeue_redis_cpu_util",
    "dequeue_redis_cpu_us")}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bench-out"))
    fogate = harness.require_bin("FOGATE_BIN")
    argv = [sys.executable, os.path.join(HERE, "bench.py"), "--smoke", "--out", out,
            "--fogate", fogate, "--baseline", fogate,     # one binary, both clients:
            "--client", "native", "--baseline-client", "curl",
            "--fosim", harness.require_bin("FOSIM_BIN")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=560)
    assert r.returncode == 0, "bench.py failed:\n" + r.stdout[-3000:] + r.stderr[-5000:]
    with open(os.path.join(out, "results.json")) as f:
        return out, json.load(f)


def test_every_measured_metric_has_a_figure_for_each_proxy(results):
    _, res = results
    for _, rows in benchreport.LEGS:
        for metric, _, _, _ in rows:
            for target in ONLY.get(metric, PROXIES):
                s = res["runs"][target].get(metric)
                assert s is not None, (target, metric)
                assert len(s["runs"]) >= 1 and s["min"] <= s["median"] <= s["max"]


def test_figures_are_plausible(results):
    _, res = results
    for target in PROXIES:
        r = res["runs"][target]
        for p in ("", "st_"):          # the pass-through and the message-status route
            assert r[p + "rps"]["median"] > 100, (target, p, r[p + "rps"])
            assert 0 < r[p + "p50_ms"]["median"] <= r[p + "p99_ms"]["median"]
            assert r[p + "cpu_us_per_req"]["median"] > 0
            assert r[p + "syscalls_per_req"]["median"] >= 2   # at least a read and a write
            # the pacing caps the rate; no lower bound, a loaded machine may fall short
            assert 0 < r[p + "paced_rps"]["median"] < 1100
            assert r[p + "upstream_conns_per_req"]["median"] >= 0
            for rate in benchreport.RATES:
                k = "%sr%dk_" % (p, rate // 1000)
                assert r[k + "cpu_us_per_req"]["median"] > 0, (target, k)
                assert 0 < r[k + "rps"]["median"] < rate * 1.1, (target, k, r[k + "rps"])
                assert r[k + "rate_share"]["median"] == pytest.approx(
                    r[k + "rps"]["median"] / rate)
        for s, _ in benchreport.STREAMS:
            assert r[s + "_mbps"]["median"] > 1, (target, s)
            assert r[s + "_peak_rss_mb"]["median"] > 0.5
        assert r["idle_conns"]["median"] == res["meta"]["params"]["idle"]
        assert r["dequeues_per_s"]["median"] > 10, (target, r["dequeues_per_s"])
        assert r["dequeue_200_share"]["median"] > 0.5    # the feed was large enough
        assert r["dequeue_sim_cpu_util"]["median"] > 0
        assert 0 < r["dequeue_load_cpu_busy"]["median"] <= 1
    for target in ("fogate", "base"):   # PING + the ledger script at least
        assert res["runs"][target]["dequeue_redis_cmds"]["median"] >= 2
        assert res["runs"][target]["dequeue_redis_cpu_util"]["median"] > 0
    direct = res["runs"]["direct"]
    assert direct["rps"]["median"] > 100 and direct["st_paced_rps"]["median"] > 0
    assert direct["dequeues_per_s"]["median"] > 10     # fosim's own ceiling
    # the peer is configured right: it keeps its upstream connections (fogate's own figure is
    # a finding, reported, not asserted here)
    assert res["runs"]["nginx"]["upstream_conns_per_req"]["median"] < 0.05
    assert res["meta"]["baseline_bin"] and res["meta"]["rates"] == list(benchreport.RATES)


def test_multicore_leg(results):
    """fogate and the baseline with N workers and with 1, nginx with N worker processes."""
    _, res = results
    fg, ng = res["runs"]["fogate"], res["runs"]["nginx"]
    runs = [(fg, "mc_"), (fg, "mc1_"), (ng, "mc_"), (res["runs"]["base"], "mc_"),
            (res["runs"]["base"], "mc1_")]
    for r, prefix in runs:
        assert r[prefix + "rps"]["median"] > 100, (prefix, r[prefix + "rps"])
        assert r[prefix + "cpu_us_per_req"]["median"] > 0
        assert r[prefix + "cpu_util"]["median"] > 0
    assert 0 < fg["mc_p50_ms"]["median"] <= fg["mc_p99_ms"]["median"]
    assert "mc1_rps" not in ng  # nginx runs with N workers only
    assert res["meta"]["multicore_cpus"]


def test_reports_are_written(results):
    out, res = results
    with open(os.path.join(out, "results.md")) as f:
        md = f.read()
    assert "## Targets" in md and "## Flags" in md
    assert ("| fogate | fogate baseline | nginx | fogate/nginx | fogate baseline/nginx |"
            in md)
    assert "**CPU per request at 5,000 req/s offered**" in md
    assert "## 1b. Message status" in md and "## 3. Dequeue through the ack ledger" in md
    assert "## 5. Multi-core" in md and "speed-up N workers / 1 worker" in md
    with open(os.path.join(out, "results.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_flags_what_a_ratio_would_hide():
    """A peer under LG_BOUND cores at full load gets no throughput ratio, and a paced run
    short of its offered rate is named (the rendering alone, on made-up figures)."""
    def s(v):
        return {"median": v, "min": v, "max": v, "runs": [v]}
    res = {"meta": {}, "runs": {
        "fogate": {"rps": s(15000), "cpu_util": s(0.99), "r10k_rate_share": s(0.8),
                   "r10k_cpu_us_per_req": s(60)},
        "nginx": {"rps": s(17000), "cpu_util": s(0.6), "r10k_rate_share": s(1.0),
                  "r10k_cpu_us_per_req": s(30)}}}
    assert benchreport.ratio_cell(res, "rps", "fogate").startswith("load generator bound")
    assert benchreport.ratio_cell(res, "r10k_cpu_us_per_req", "fogate") == "2.00"
    text = "\n".join(benchreport.flags(res))
    assert "fogate, pass-through at 10,000 req/s offered: 1 of 1 runs" in text
    assert "nginx, pass-through at 10,000" not in text
    assert "load generator bound" in text
    res["runs"]["nginx"]["cpu_util"] = s(0.97)
    assert benchreport.ratio_cell(res, "rps", "fogate") == "0.88"
