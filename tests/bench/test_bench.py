"""Smoke run of the benchmark (tests/bench/bench.py --smoke): every leg runs against fogate
and the nginx peer and yields figures; results.json/.md/.png are written. No timing
threshold: this proves the benchmark works, not how fast fogate is."""
import json
import os
import subprocess
import sys

import pytest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import benchreport  # noqa: E402


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bench-out"))
    argv = [sys.executable, os.path.join(HERE, "bench.py"), "--smoke", "--out", out,
            "--fogate", harness.require_bin("FOGATE_BIN"),
            "--fosim", harness.require_bin("FOSIM_BIN")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, "bench.py failed:\n" + r.stdout[-3000:] + r.stderr[-5000:]
    with open(os.path.join(out, "results.json")) as f:
        return out, json.load(f)


def test_every_measured_metric_has_a_figure_for_both(results):
    _, res = results
    for _, rows in benchreport.LEGS:
        for metric, _, _, _ in rows:
            for target in ("fogate", "nginx"):
                s = res["runs"][target].get(metric)
                assert s is not None, (target, metric)
                assert len(s["runs"]) >= 1 and s["min"] <= s["median"] <= s["max"]


def test_figures_are_plausible(results):
    _, res = results
    for target in ("fogate", "nginx"):
        r = res["runs"][target]
        assert r["rps"]["median"] > 100, (target, r["rps"])
        assert 0 < r["p50_ms"]["median"] <= r["p99_ms"]["median"]
        assert r["cpu_us_per_req"]["median"] > 0
        assert r["syscalls_per_req"]["median"] >= 2       # at least a read and a write
        # the pacing caps the rate; no lower bound, a loaded machine may fall short of it
        assert 0 < r["paced_rps"]["median"] < 1100
        assert r["upstream_conns_per_req"]["median"] >= 0
        for s, _ in benchreport.STREAMS:
            assert r[s + "_mbps"]["median"] > 1, (target, s)
            assert r[s + "_peak_rss_mb"]["median"] > 0.5
        assert r["idle_conns"]["median"] == res["meta"]["params"]["idle"]
        assert r["dequeues_per_s"]["median"] > 10, (target, r["dequeues_per_s"])
        assert r["dequeue_200_share"]["median"] > 0.5    # the feed was large enough
    assert res["runs"]["direct"]["rps"]["median"] > 100
    # the peer is configured right: it keeps its upstream connections (fogate's own figure is
    # a finding, reported, not asserted here)
    assert res["runs"]["nginx"]["upstream_conns_per_req"]["median"] < 0.05


def test_multicore_leg(results):
    """fogate with N workers and with 1, nginx with N worker processes: figures for each."""
    _, res = results
    fg, ng = res["runs"]["fogate"], res["runs"]["nginx"]
    for r, prefix in ((fg, "mc_"), (fg, "mc1_"), (ng, "mc_")):
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
    assert "## Targets" in md and "| fogate | nginx | fogate/nginx |" in md
    assert "## 3. Dequeue through the ack ledger" in md
    assert "## 5. Multi-core" in md and "Speed-up fogate N workers / 1 worker: " in md
    with open(os.path.join(out, "results.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
