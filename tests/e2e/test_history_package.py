"""History of package imports (/v1/packages/import): two instances with history.enabled
and packages.shared in front of fosim, Azurite and redis-server. The record follows the
execution (GetExecutionSummaryStatus) in the background until it is final, its errors
included, without any client poll."""

import hashlib

import pytest

import harness
from harness import Workdir
from test_package_ha import KEY, Gate, imports

HISTORY = {"history": {"enabled": True, "follow_min_ms": 200, "follow_max_ms": 500}}


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    az = harness.start_azurite(w.path)
    sim = redis = a = b = None
    try:
        sim = harness.start_fosim(w.path, harness.default_sim_config(
            azurite=harness.azurite_sim_config(az), import_package_secs=1.0))
        redis = harness.start_redis(w.path)
        a = Gate(w.path, sim, redis.port, "fogate-a", extra=HISTORY)
        b = Gate(w.path, sim, redis.port, "fogate-b", extra=HISTORY)
        yield {"sim": sim, "redis": redis, "a": a, "b": b}
    finally:
        for g in (a, b):
            if g:
                g.stop()
        src = sim.stop() if sim else 0
        if redis:
            redis.stop()
        az.stop()
        w.cleanup(request.session.testsfailed > 0)
        assert src == 0


def history(gate, path):
    r = harness.request(gate.base, "GET", path, headers={"X-Api-Key": KEY})
    assert r.status == 200, r
    return r.json()


@pytest.mark.parametrize("outcome", ["Succeeded", "Failed"])
def test_package_import_record_follows_the_execution(env, outcome):
    a, b, sim = env["a"], env["b"], env["sim"]
    sim.reset()
    sim.configure(import_package_secs=1.0, package_outcome=outcome)
    body = b"PK-history-" * 500
    name = f"usmf_customers-{outcome}.zip"
    r = harness.request(a.base, "POST", "/v1/packages/import?job=pkg-in", body,
                        {"X-Api-Key": KEY, "X-File-Name": name}, timeout=60)
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    assert imports(sim) == 1
    out = {}

    def final():
        recs = history(b, f"/v1/history?file={name}")["records"]
        out["rec"] = recs[0] if recs else None
        return bool(recs) and recs[0]["final"] and (outcome == "Succeeded" or "errors" in recs[0])
    harness.wait_until(final, 30, what="the package record final without a client poll")
    rec = out["rec"]
    assert rec["via"] == "package" and rec["execution_id"] == exec_id
    assert rec["status"] == outcome and rec["job"] == "pkg-in" and rec["file_name"] == name
    assert rec["size"] == len(body) and rec["sha256"] == hashlib.sha256(body).hexdigest()
    seen = [s["status"] for s in rec["statuses"]]
    assert seen[:2] == ["Received", "Started"] and seen[-1] == outcome, seen
    assert rec == history(a, f"/v1/history/{rec['id']}")
    assert sum(sim.counters()["requests"].get("odata:GetExecutionSummaryStatus", {}).values()) >= 1
