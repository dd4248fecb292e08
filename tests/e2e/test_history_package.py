"""History of package imports (/v1/packages/import) and exports (/v1/packages/export, then
the package download): two instances with history.enabled and packages.shared in front of
fosim, Azurite and redis-server. The record follows the execution
(GetExecutionSummaryStatus) in the background until it is final, its errors included,
without any client poll; an export's record gets the download's size, SHA-256 and who
took it."""

import hashlib

import pytest

import harness
from harness import Workdir
from test_package_ha import KEY, Gate, imports, sha

JOBS = {"pkg-in": {"environment": "sim", "project": "Customers", "company": "usmf",
                   "direction": "import"},
        "pkg-out": {"environment": "sim", "project": "Customers", "company": "usmf",
                    "direction": "export"}}


def extra():
    """history on, the export job beside the import, and an admin listener of its own."""
    return {"history": {"enabled": True, "follow_min_ms": 200, "follow_max_ms": 500},
            "jobs": JOBS, "clients": {"one": {"api_key_sha256": sha(KEY),
                                              "jobs": ["pkg-in", "pkg-out"]}},
            "admin": {"listen": f"127.0.0.1:{harness.free_port()}"}}


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    az = harness.start_azurite(w.path)
    sim = redis = a = b = None
    try:
        sim = harness.start_fosim(w.path, harness.default_sim_config(
            azurite=harness.azurite_sim_config(az), import_package_secs=1.0))
        redis = harness.start_redis(w.path)
        ea, eb = extra(), extra()
        a = Gate(w.path, sim, redis.port, "fogate-a", extra=ea)
        b = Gate(w.path, sim, redis.port, "fogate-b", extra=eb)
        a.admin_base = "http://" + ea["admin"]["listen"]
        b.admin_base = "http://" + eb["admin"]["listen"]
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


def export_record(gate, exec_id, pred, what, timeout=30):
    """The record of package export exec_id (read through gate's /v1/history) once pred."""
    out = {}

    def ok():
        recs = [x for x in history(gate, "/v1/history?job=pkg-out&limit=50")["records"]
                if x.get("execution_id") == exec_id]
        out["rec"] = recs[0] if recs else None
        return len(recs) == 1 and pred(recs[0])
    harness.wait_until(ok, timeout, what=what)
    return out["rec"]


def admin(gate, path):
    r = harness.request(gate.admin_base, "GET", "/admin/api/" + path)
    assert r.status == 200, r
    return r.json()


def test_package_export_record_complete_with_the_download(env):
    a, b, sim = env["a"], env["b"], env["sim"]
    sim.reset()
    sim.configure(export_secs=1.0, exec_not_found_secs=0.3, package_outcome="Succeeded",
                  package_bytes=60000)
    r = harness.request(a.base, "POST", "/v1/packages/export?job=pkg-out",
                        headers={"X-Api-Key": KEY}, timeout=60)
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    rec = export_record(b, exec_id, lambda x: x["final"], "the export final without a poll")
    assert rec["status"] == "Succeeded" and "sha256" not in rec and "size" not in rec, rec
    # the package, through the other instance, twice: the bytes the client got are recorded
    got = []
    for gate in (b, a):
        p = harness.request(gate.base, "GET", f"/v1/executions/{exec_id}/package?job=pkg-out",
                            headers={"X-Api-Key": KEY}, timeout=60)
        assert p.status == 200 and p.body[:2] == b"PK", p
        got.append(p.body)
    assert got[0] == got[1]
    rec = export_record(a, exec_id, lambda x: x.get("deliveries") == 2, "two deliveries")
    assert rec["sha256"] == hashlib.sha256(got[0]).hexdigest() and rec["size"] == len(got[0])
    assert rec["direction"] == "export" and rec["via"] == "package"
    assert rec["environment"] == "sim" and rec["job"] == "pkg-out" and rec["client"] == "one"
    assert rec["definition_group"] == "Customers" and rec["final"] is True
    assert rec["delivered_to"] == ["one"] and rec["delivered_at"].endswith("Z")
    assert rec["received_at"] <= rec["sent_at"] <= rec["final_at"] <= rec["delivered_at"]
    seen = [s["status"] for s in rec["statuses"]]
    assert seen[:2] == ["Requested", "Started"] and seen[-1] == "Succeeded", seen
    assert "errors" not in rec and "error" not in rec
    # the same record from both instances, by id and in the lists, client and admin API
    assert rec == history(b, f"/v1/history/{rec['id']}")
    assert rec == admin(a, f"history/{rec['id']}") == admin(b, f"history/{rec['id']}")
    assert rec["id"] in [x["id"] for x in admin(b, "history?job=pkg-out")["records"]]
    assert [x["id"] for x in history(a, "/v1/history?status=succeeded&job=pkg-out")
            ["records"]] == [rec["id"]]


def test_failed_package_export_record_has_its_errors(env):
    a, b, sim = env["a"], env["b"], env["sim"]
    sim.reset()
    sim.configure(export_secs=0.5, exec_not_found_secs=0, package_outcome="Failed")
    r = harness.request(b.base, "POST", "/v1/packages/export?job=pkg-out",
                        headers={"X-Api-Key": KEY}, timeout=60)
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    rec = export_record(a, exec_id, lambda x: x["final"] and "errors" in x,
                        "the failed export with its errors")
    assert rec["status"] == "Failed" and rec["execution_id"] == exec_id
    assert rec["errors"] and rec["errors"][0]["ErrorMessage"], rec
    assert "deliveries" not in rec and "delivered_to" not in rec
    p = harness.request(a.base, "GET", f"/v1/executions/{exec_id}/package?job=pkg-out",
                        headers={"X-Api-Key": KEY})
    assert p.status == 409, p
    assert rec == history(b, f"/v1/history/{rec['id']}") == admin(a, f"history/{rec['id']}")
    n = sum(sim.counters()["requests"].get("odata:GetExecutionErrors", {}).values())
    assert n == 1, "the errors are fetched once"


def test_package_export_not_started_is_recorded(env):
    a, sim = env["a"], env["sim"]
    sim.reset()
    sim.fault(endpoint="odata:ExportToPackage", kind="status", status=500, count=1)
    try:
        r = harness.request(a.base, "POST", "/v1/packages/export?job=pkg-out",
                            headers={"X-Api-Key": KEY}, timeout=60)
    finally:
        sim.clear_faults()
    assert r.status >= 500, r
    out = {}

    def seen():
        out["recs"] = [x for x in history(a, "/v1/history?job=pkg-out&status=NotStarted")
                       ["records"]]
        return out["recs"]
    harness.wait_until(seen, 10, what="the export that did not start")
    rec = out["recs"][0]
    assert rec["final"] is True and rec["error"] and rec["client"] == "one", rec
    assert [s["status"] for s in rec["statuses"]] == ["Requested", "NotStarted"]
