"""End-to-end tests of fogate's package API (/v1/packages, /v1/executions) against real
fosim + Azurite: import (GetAzureWriteUrl, Put Blob, ImportFromPackage) and export through
fogate, statuses, errors, serialisation per environment, Idempotency-Key, no SAS in logs."""

import hashlib
import json
import os
import http.client
import threading
import time
import urllib.parse

import pytest

import harness
from harness import Workdir

SECRET_ENV = "FOGATE_E2E_D365_SECRET"
KEY = "package-client-key-0123456789abcdef"
KEY_OTHER = "package-other-key-fedcba9876543210"
BIG = 200 * 1024 * 1024
ACT = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."


def sha(key):
    return hashlib.sha256(key.encode()).hexdigest()


def fogate_config(sim, port):
    return {
        "listen": f"127.0.0.1:{port}", "public_base_url": f"http://127.0.0.1:{port}",
        "log_level": "debug",
        "environments": {"sim": harness.sim_environment(sim, SECRET_ENV)},
        "jobs": {
            "pkg-in": {"environment": "sim", "project": "Customers", "company": "usmf",
                       "entity": "CustCustomerV3Entity", "direction": "import"},
            "pkg-out": {"environment": "sim", "project": "Customers", "company": "usmf",
                        "direction": "export"},
            "groups-in": {"environment": "sim", "activity_id": harness.IMPORT_JOB,
                          "entity": "Customer groups", "direction": "import"},
            "groups-out": {"environment": "sim", "activity_id": harness.EXPORT_JOB,
                           "entity": "Customer groups", "direction": "export"},
        },
        "clients": {
            "one": {"api_key_sha256": sha(KEY), "jobs": ["pkg-in", "pkg-out"]},
            "other": {"api_key_sha256": sha(KEY_OTHER), "jobs": ["groups-in", "groups-out"]},
        },
        "limits": {"max_package_bytes": BIG + 1024},
        "packages": {"lock_wait_ms": 3000},
        # below harness.Proc.stop's 10 s: a slow (sanitizer, loaded) teardown still exits
        "timeouts": {"shutdown_grace_ms": 3000},
    }


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    az = harness.start_azurite(w.path)
    sim = gate = None
    try:
        sim = harness.start_fosim(w.path, harness.default_sim_config(
            azurite=harness.azurite_sim_config(az), import_package_secs=0.5,
            export_secs=0.5))
        port = harness.free_port()
        path = os.path.join(w.path, "fogate.json")
        with open(path, "w") as f:
            json.dump(fogate_config(sim, port), f)
        os.environ[SECRET_ENV] = harness.APP_SECRET
        # a small quarantine: ASan would otherwise keep 256 MB of freed buffers resident
        os.environ["ASAN_OPTIONS"] = "detect_leaks=1:quarantine_size_mb=16"
        gate = harness.start_fogate(w.path, path, port=port)
        gate.base = f"http://127.0.0.1:{port}"
        yield sim, gate
    finally:
        rc = gate.stop() if gate else 0
        src = sim.stop() if sim else 0
        az.stop()
        w.cleanup(request.session.testsfailed > 0)
        assert rc == 0 and src == 0


@pytest.fixture
def sim(env):
    s = env[0]
    s.reset()
    s.configure(import_package_secs=0.5, export_secs=0.5, exec_not_found_secs=0,
                package_outcome="Succeeded", package_bytes=4096, write_sas_secs=1800,
                read_sas_secs=3600)
    return s


@pytest.fixture
def gate(env):
    return env[1]


def call(gate, method, path, body=None, key=KEY, headers=None, timeout=120):
    h = dict(headers or {})
    h["X-Api-Key"] = key
    return harness.request(gate.base, method, path, body, h, timeout=timeout)


def requests_to(sim, endpoint):
    return sum(sim.counters()["requests"].get(endpoint, {}).values())


def rss_limit_kb():
    """48 MB; AddressSanitizer's runtime (shadow memory, quarantine) adds its own."""
    with open(os.environ["FOGATE_BIN"], "rb") as f:
        asan = b"__asan_init" in f.read()
    return 48 * 1024 * (4 if asan else 1)


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def wait_final(gate, exec_id):
    r = call(gate, "GET", f"/v1/executions/{exec_id}?job=pkg-in&wait=30", timeout=60)
    assert r.status == 200, r
    assert r.json()["final"] is True, r.json()
    return r.json()["status"]


def test_import_succeeds_and_status_final(sim, gate):
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-small-package" * 100)
    assert r.status == 202, r
    j = r.json()
    assert j["execution_id"].startswith("Customers-fogate-")
    assert j["status_url"].endswith(f"/v1/executions/{j['execution_id']}?job=pkg-in")
    assert wait_final(gate, j["execution_id"]) == "Succeeded"
    assert requests_to(sim, "odata:ImportFromPackage") == 1


def test_import_failed_lists_errors(sim, gate):
    sim.configure(package_outcome="Failed")
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-bad" * 50)
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    assert wait_final(gate, exec_id) == "Failed"
    e = call(gate, "GET", f"/v1/executions/{exec_id}/errors?job=pkg-in", timeout=60)
    assert e.status == 200, e
    j = e.json()
    assert isinstance(j["errors"], list) and len(j["errors"]) > 0
    f = j["error_files"]
    assert f["entity"] == "CustCustomerV3Entity" and f["complete"] is True, j
    staging = blob_get(f["staging_error_file_url"])
    assert staging.startswith(b"CUSTGROUPID,Error"), staging
    assert blob_get(f["target_error_keys_file_url"]).startswith(b"RECID"), f
    for a in ("GetImportStagingErrorFileUrl", "GenerateImportTargetErrorKeysFile",
              "GetImportTargetErrorKeysFileUrl"):
        assert requests_to(sim, "odata:" + a) >= 1, a
    assert requests_to(sim, "odata:GenerateImportTargetErrorKeysFile") == 1


def test_clean_import_has_no_error_files_and_entity_comes_from_the_query(sim, gate):
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-good" * 50)
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    assert wait_final(gate, exec_id) == "Succeeded"
    e = call(gate, "GET", f"/v1/executions/{exec_id}/errors?job=pkg-in&entity=Other%20entity")
    assert e.status == 200, e
    assert e.json()["errors"] == []
    assert e.json()["error_files"] == {
        "entity": "Other entity", "staging_error_file_url": None,
        "target_error_keys_file_url": None, "complete": True}
    # an export job without an entity: no error-file calls at all
    before = requests_to(sim, "odata:GetImportStagingErrorFileUrl")
    e = call(gate, "GET", f"/v1/executions/{exec_id}/errors?job=pkg-out")
    assert e.status == 200 and e.json()["error_files"] is None, e
    assert requests_to(sim, "odata:GetImportStagingErrorFileUrl") == before


def blob_get(url):
    assert url and url.startswith("http://127.0.0.1:"), url
    u = urllib.parse.urlsplit(url)
    r = harness.request(f"http://{u.netloc}", "GET", u.path + "?" + u.query)
    assert r.status == 200, r
    return r.body


def test_odata_400_is_a_clear_error_and_not_retried(sim, gate):
    sim.fault(endpoint="odata:ImportFromPackage", kind="status", status=400, count=1,
              message="Could not find file 'PackageHeader.xml'")
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"not a zip")
    assert r.status == 400, r
    assert r.json()["code"] == "d365_rejected"
    assert "stacktrace" not in r.body.decode() and " at Microsoft" not in r.body.decode()
    assert requests_to(sim, "odata:ImportFromPackage") == 1


def test_import_refused_with_5xx_releases_its_key_so_the_retry_imports(sim, gate):
    """Regression (issue 11 item 9): ImportFromPackage answered 500, the client got 502, and
    a retry with the same Idempotency-Key answered 202 with the execution id of an import
    that never started (its status stayed NotRun). Now fogate asks D365 whether the
    execution started: it did not, so the key is released and the retry imports."""
    h = {"Idempotency-Key": "refused-500"}
    body = b"PK-refused" * 300
    sim.fault(endpoint="odata:ImportFromPackage", kind="status", status=500, count=1)
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", body, headers=h)
    assert r.status == 502 and r.json()["code"] == "d365_error", r
    assert "did not start" in r.json()["message"] and "safe" in r.json()["message"], r.json()
    assert requests_to(sim, "odata:GetExecutionSummaryStatus") == 1
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", body, headers=h)
    assert r.status == 202 and not r.json().get("replayed"), r
    assert requests_to(sim, "odata:ImportFromPackage") == 2
    assert wait_final(gate, r.json()["execution_id"]) == "Succeeded"
    # now the key is done for real: a third call replays without importing again
    r2 = call(gate, "POST", "/v1/packages/import?job=pkg-in", body, headers=h)
    assert r2.status in (200, 202) and r2.json()["execution_id"] == r.json()["execution_id"]
    assert requests_to(sim, "odata:ImportFromPackage") == 2


def test_two_imports_at_once_run_one_after_the_other(sim, gate):
    sim.configure(import_package_secs=1.0)
    out = []
    ts = [threading.Thread(target=lambda i=i: out.append(
        call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK%d" % i * 1000)))
        for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [r.status for r in out] == [202, 202], out
    assert sim.counters()["import_overlaps"] == 0
    assert requests_to(sim, "odata:ImportFromPackage") == 2


def test_import_waiting_longer_than_lock_wait_is_503_and_its_key_free(sim, gate):
    sim.configure(import_package_secs=4.5)
    h = {"Idempotency-Key": "key-late"}
    out = {}
    first = threading.Thread(target=lambda: out.update(
        a=call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-long" * 100)))
    first.start()
    harness.wait_until(lambda: any(
        "odata:GetAzureWriteUrl" in k for k in sim.counters()["requests"]), what="first import")
    time.sleep(0.5)
    t0 = time.monotonic()
    late = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-late" * 100, headers=h)
    took = time.monotonic() - t0
    first.join()
    assert out["a"].status == 202, out
    assert late.status == 503 and late.json()["code"] == "package_lock_timeout", late
    assert late.header("Retry-After") and "safe" in late.json()["message"]
    assert 2.5 <= took <= 4.4, took  # packages.lock_wait_ms, not the first import's end
    assert requests_to(sim, "odata:ImportFromPackage") == 1
    sim.configure(import_package_secs=0.5)
    again = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-late" * 100, headers=h)
    assert again.status == 202 and not again.json().get("replayed"), again
    assert requests_to(sim, "odata:ImportFromPackage") == 2


def test_idempotency_key_replay_and_conflict(sim, gate):
    h = {"Idempotency-Key": "key-42"}
    a = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-same" * 100, headers=h)
    assert a.status == 202, a
    b = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-same" * 100, headers=h)
    assert b.status == 202, b
    assert b.json()["execution_id"] == a.json()["execution_id"]
    assert b.json().get("replayed") is True
    assert requests_to(sim, "odata:ImportFromPackage") == 1
    c = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-other" * 100, headers=h)
    assert c.status == 422, c
    assert c.json()["code"] == "idempotency_key_reused"
    assert requests_to(sim, "odata:ImportFromPackage") == 1


def test_company_from_file_name_and_authorisation(sim, gate):
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK", key=KEY_OTHER)
    assert r.status == 403, r
    r = call(gate, "POST", "/v1/packages/import?job=pkg-out", b"PK")
    assert r.status == 400 and r.json()["code"] == "not_import_job", r
    r = call(gate, "GET", "/v1/executions/x-1?job=pkg-in", key=KEY_OTHER)
    assert r.status == 403, r


def test_export_download_and_not_ready(sim, gate):
    sim.configure(export_secs=1.5, exec_not_found_secs=0.5, package_bytes=100000)
    r = call(gate, "POST", "/v1/packages/export?job=pkg-out")
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    s = call(gate, "GET", f"/v1/executions/{exec_id}?job=pkg-out")
    assert s.status == 200 and s.json()["final"] is False, s
    p = call(gate, "GET", f"/v1/executions/{exec_id}/package?job=pkg-out")
    assert p.status == 409 and p.header("Retry-After"), p
    s = call(gate, "GET", f"/v1/executions/{exec_id}?job=pkg-out&wait=30", timeout=60)
    assert s.json()["status"] == "Succeeded", s
    p = call(gate, "GET", f"/v1/executions/{exec_id}/package?job=pkg-out")
    assert p.status == 200 and p.body[:2] == b"PK" and len(p.body) > 100000


def sim_action(sim, name, body):
    r = sim.request("POST", ACT + name, body, token=sim.token())
    assert r.status == 200, r
    return r.json()["value"]


def blob_sha256(url):
    """SHA-256 and size of the blob behind a SAS URL, read from Azurite in 1 MB pieces."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    try:
        conn.request("GET", u.path + "?" + u.query)
        r = conn.getresponse()
        assert r.status == 200, (r.status, u.path)
        h, n = hashlib.sha256(), 0
        while chunk := r.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
        return h.hexdigest(), n
    finally:
        conn.close()


def committed_blocks(url):
    """Sizes of the committed blocks of the blob behind a SAS URL (Get Block List)."""
    import re
    u = urllib.parse.urlsplit(url)
    r = harness.request(f"http://{u.netloc}", "GET", u.path + "?" + u.query +
                        "&comp=blocklist&blocklisttype=committed")
    assert r.status == 200, r
    committed = r.body.decode().split("<CommittedBlocks>")[1].split("</CommittedBlocks>")[0]
    return [int(n) for n in re.findall(r"<Size>(\d+)</Size>", committed)]


def test_200mb_import_and_export_checksums_and_bounded_memory(sim, gate):
    data = os.urandom(1024 * 1024) * 200
    sent = hashlib.sha256(data).hexdigest()
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", data, timeout=600)
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    assert wait_final(gate, exec_id) == "Succeeded"
    del data
    # the blob fogate uploaded is <exec id>.zip in dmf; fosim gives an rw SAS for that name
    w = json.loads(sim_action(sim, "GetAzureWriteUrl", {"uniqueFileName": exec_id + ".zip"}))
    assert blob_sha256(w["BlobUrl"]) == (sent, BIG)
    # Azurite took it as Put Block + Put Block List: 50 committed blocks of 4 MiB
    assert committed_blocks(w["BlobUrl"]) == [4 << 20] * 50
    sim.configure(package_bytes=BIG)
    r = call(gate, "POST", "/v1/packages/export?job=pkg-out")
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    s = call(gate, "GET", f"/v1/executions/{exec_id}?job=pkg-out&wait=60", timeout=120)
    assert s.json()["status"] == "Succeeded", s
    p = call(gate, "GET", f"/v1/executions/{exec_id}/package?job=pkg-out", timeout=600)
    assert p.status == 200 and len(p.body) > BIG
    got = hashlib.sha256(p.body).hexdigest()
    del p
    url = sim_action(sim, "GetExportedPackageUrl", {"executionId": exec_id})
    assert blob_sha256(url)[0] == got
    assert vm_hwm_kb(gate.pid) < rss_limit_kb()


def test_package_job_on_recurring_routes_and_recurring_job_on_package_routes(sim, gate):
    r = call(gate, "POST", "/v1/jobs/pkg-in/messages", b"a,b\n")
    assert r.status == 400 and r.json()["code"] == "not_recurring_job", r
    assert "/v1/packages" in r.json()["message"]
    r = call(gate, "POST", "/v1/jobs/pkg-out/next")
    assert r.status == 400 and r.json()["code"] == "not_recurring_job", r
    r = call(gate, "POST", "/v1/packages/import?job=groups-in", b"PK", key=KEY_OTHER)
    assert r.status == 400 and r.json()["code"] == "not_package_job", r
    r = call(gate, "POST", "/v1/packages/export?job=groups-out", key=KEY_OTHER)
    assert r.status == 400 and r.json()["code"] == "not_package_job", r
    r = call(gate, "GET", "/v1/executions/x-1?job=groups-out", key=KEY_OTHER)
    assert r.status == 400 and r.json()["code"] == "not_package_job", r
    c = sim.counters()
    assert requests_to(sim, "enqueue") == 0 and requests_to(sim, "dequeue") == 0, c
    assert requests_to(sim, "odata:GetAzureWriteUrl") == 0, c
    assert requests_to(sim, "odata:ExportToPackage") == 0, c


def test_expired_sas_is_a_clear_error_and_nothing_is_imported(sim, gate):
    sim.configure(write_sas_secs=-120)
    h = {"Idempotency-Key": "expired-1"}
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-expired" * 100, headers=h)
    assert r.status == 502, r
    assert r.json()["code"] == "blob_sas_expired", r
    assert "expired at 20" in r.json()["message"] and "again" in r.json()["message"]
    assert b"sig=" not in r.body and b"?" not in r.json()["message"].encode()
    assert requests_to(sim, "odata:GetAzureWriteUrl") == 1
    assert requests_to(sim, "odata:ImportFromPackage") == 0
    # the key was not kept: the same import succeeds once the SAS is fresh again
    sim.configure(write_sas_secs=1800)
    r = call(gate, "POST", "/v1/packages/import?job=pkg-in", b"PK-expired" * 100, headers=h)
    assert r.status == 202 and not r.json().get("replayed"), r
    assert requests_to(sim, "odata:ImportFromPackage") == 1


def test_expired_sas_on_the_package_download_is_blob_sas_expired(sim, gate):
    """Regression (issue 11 item 8): an expired read SAS from GetExportedPackageUrl answered
    blob_download_failed; the docs promise blob_sas_expired, as on the upload."""
    sim.configure(read_sas_secs=-120)
    r = call(gate, "POST", "/v1/packages/export?job=pkg-out")
    assert r.status == 202, r
    exec_id = r.json()["execution_id"]
    s = call(gate, "GET", f"/v1/executions/{exec_id}?job=pkg-out&wait=30", timeout=60)
    assert s.json()["status"] == "Succeeded", s
    p = call(gate, "GET", f"/v1/executions/{exec_id}/package?job=pkg-out")
    assert p.status == 502 and p.json()["code"] == "blob_sas_expired", p
    msg = p.json()["message"]
    assert "GetExportedPackageUrl" in msg and "expired at 20" in msg and "again" in msg, msg
    assert b"sig=" not in p.body and "?" not in msg
    sim.configure(read_sas_secs=3600)
    p = call(gate, "GET", f"/v1/executions/{exec_id}/package?job=pkg-out")
    assert p.status == 200 and p.body[:2] == b"PK", p


def test_no_sas_query_in_logs(gate):
    with open(gate.log_path, "rb") as f:
        log = f.read()
    assert b"sig=" not in log and b"sv=20" not in log


def test_openapi_documents_the_package_api():
    import glob
    import re
    src = harness.require_bin("FOGATE_SRC")
    codes = {"internal"}
    for path in glob.glob(os.path.join(src, "proxy", "packages", "package*.c")):
        with open(path) as f:
            text = f.read()
        for args in re.findall(r"(?:package_req_error|not_imported)\((.*?)\);", text, re.S):
            codes |= set(re.findall(r'"([a-z0-9]+_[a-z0-9_]+)"', args))
    assert {"blob_sas_expired", "not_package_job", "length_required", "empty_body",
            "not_export_job"} <= codes, codes
    with open(os.path.join(src, "docs", "openapi.yaml")) as f:
        doc = f.read()
    missing = sorted(c for c in codes if f"`{c}`" not in doc)
    assert not missing, f"error codes missing from docs/openapi.yaml: {missing}"
    for path in ("/v1/packages/import:", "/v1/packages/export:", "/v1/executions/{id}:",
                 "/v1/executions/{id}/package:", "/v1/executions/{id}/errors:"):
        assert f"  {path}\n" in doc, path
    for name in ("Idempotency-Key", "error_files", "staging_error_file_url", "packages.shared",
                 "package_lock_timeout"):
        assert name in doc, name
