"""Conformance: the package API against a real Azurite (reference §4.5-§4.10)."""
import calendar
import io
import json
import threading
import time
import urllib.parse
import zipfile

import pytest

from harness import (Workdir, azurite_sim_config, default_sim_config, request, start_azurite,
                     start_fosim)

ACT = "/data/DataManagementDefinitionGroups/Microsoft.Dynamics.DataEntities."


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    az = start_azurite(w.path)
    sim = None
    try:
        sim = start_fosim(w.path, default_sim_config(
            azurite=azurite_sim_config(az), import_package_secs=0.5, export_secs=0.5,
            package_bytes=200000))
        yield sim, az
    finally:
        rc = sim.stop() if sim else 0
        az.stop()
        w.cleanup(request.session.testsfailed > 0)
        assert rc == 0


@pytest.fixture
def sim(env):
    s = env[0]
    s.reset()
    s.configure(import_package_secs=0.5, export_secs=0.5, exec_not_found_secs=0,
                package_outcome="Succeeded", write_sas_secs=1800)
    return s


@pytest.fixture
def tok(sim):
    return sim.token()


def action(sim, tok, name, body, timeout=30):
    return sim.request("POST", ACT + name, body, token=tok, timeout=timeout)


def value(r):
    assert r.status == 200, r
    return r.json()["value"]


def put_blob(url, data):
    u = urllib.parse.urlsplit(url)
    return request(f"http://{u.netloc}", "PUT", u.path + "?" + u.query, data,
                   headers={"x-ms-blob-type": "BlockBlob", "Overwrite": "T",
                            "Content-Type": "application/zip"})


def get_blob(url):
    u = urllib.parse.urlsplit(url)
    return request(f"http://{u.netloc}", "GET", u.path + "?" + u.query)


def write_url(sim, tok, name):
    v = value(action(sim, tok, "GetAzureWriteUrl", {"uniqueFileName": name}))
    assert isinstance(v, str)
    return json.loads(v)


def wait_status(sim, tok, exec_id, want, timeout=20):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        r = action(sim, tok, "GetExecutionSummaryStatus", {"executionId": exec_id})
        st = "(not found)" if r.status == 400 else value(r)
        seen.append(st)
        if st == want:
            return seen
        time.sleep(0.1)
    raise AssertionError(f"status never became {want}: {seen[-5:]}")


def test_get_azure_write_url_is_a_string_holding_json(sim, tok, env):
    az = env[1]
    w = write_url(sim, tok, "pkg-1.zip")
    assert list(w) == ["BlobId", "BlobUrl"]
    assert w["BlobId"].startswith("{") and w["BlobId"].endswith("}") and len(w["BlobId"]) == 38
    assert w["BlobUrl"].startswith(az.endpoint + "/dmf/pkg-1.zip?")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(w["BlobUrl"]).query)
    assert q["sp"] == ["rw"] and q["sr"] == ["b"]
    st = time.mktime(time.strptime(q["st"][0], "%Y-%m-%dT%H:%M:%SZ"))
    se = time.mktime(time.strptime(q["se"][0], "%Y-%m-%dT%H:%M:%SZ"))
    assert se - st == 35 * 60
    r = put_blob(w["BlobUrl"], b"PK\x05\x06" + b"\0" * 18)
    assert r.status == 201, r
    g = get_blob(w["BlobUrl"])
    assert g.status == 200 and g.body.startswith(b"PK\x05\x06")


def test_write_sas_secs_knob_hands_out_an_expired_sas(sim, tok):
    sim.configure(write_sas_secs=-60)
    w = write_url(sim, tok, "expired.zip")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(w["BlobUrl"]).query)
    se = calendar.timegm(time.strptime(q["se"][0], "%Y-%m-%dT%H:%M:%SZ"))
    st = calendar.timegm(time.strptime(q["st"][0], "%Y-%m-%dT%H:%M:%SZ"))
    assert st < se < time.time() - 30
    r = put_blob(w["BlobUrl"], b"PK expired")
    assert r.status == 403, r
    assert sim.request("POST", "/_sim/config", {"write_sas_secs": "x"}).status == 400
    sim.configure(write_sas_secs=1800)
    w = write_url(sim, tok, "expired.zip")
    assert put_blob(w["BlobUrl"], b"PK fresh").status == 201


def test_import_from_package_sync_after_delay(sim, tok):
    sim.configure(import_package_secs=1.0)
    w = write_url(sim, tok, "import-ok.zip")
    assert put_blob(w["BlobUrl"], b"PK package").status == 201
    t0 = time.monotonic()
    r = action(sim, tok, "ImportFromPackage", {
        "packageUrl": w["BlobUrl"], "definitionGroupId": "CustGroups", "executionId": "",
        "execute": True, "overwrite": True, "legalEntityId": "usmf"})
    took = time.monotonic() - t0
    exec_id = value(r)
    assert exec_id.startswith("CustGroups-") and took >= 0.9
    assert value(action(sim, tok, "GetExecutionSummaryStatus", {"executionId": exec_id})) == "Succeeded"
    assert value(action(sim, tok, "GetExecutionErrors", {"executionId": exec_id})) == "[]"


def test_import_from_package_keeps_client_execution_id_and_lenient_body(sim, tok):
    w = write_url(sim, tok, "import-lenient.zip")
    put_blob(w["BlobUrl"], b"PK")
    body = ("{'PACKAGEURL':'%s','definitionGroupId':'G','executionId':'G-2024-01-01_00-00-00-x',"
            "'execute':true,'overWrite':true,'legalEntityId':'usmf'}" % w["BlobUrl"])
    assert value(action(sim, tok, "ImportFromPackage", body)) == "G-2024-01-01_00-00-00-x"


def test_import_from_package_missing_blob_is_400(sim, tok):
    w = write_url(sim, tok, "never-uploaded.zip")
    r = action(sim, tok, "ImportFromPackage", {"packageUrl": w["BlobUrl"], "definitionGroupId": "G",
                                               "executionId": "missing-1", "execute": True,
                                               "overwrite": True, "legalEntityId": "usmf"})
    assert r.status == 400
    assert "404" in r.json()["error"]["innererror"]["message"]
    assert value(action(sim, tok, "GetExecutionSummaryStatus", {"executionId": "missing-1"})) == "Failed"


def test_parallel_import_from_package_fails_with_deadlock(sim, tok):
    sim.configure(import_package_secs=1.5)
    w = write_url(sim, tok, "parallel.zip")
    put_blob(w["BlobUrl"], b"PK")
    results = []

    def call(i):
        results.append(action(sim, tok, "ImportFromPackage", {
            "packageUrl": w["BlobUrl"], "definitionGroupId": "G", "executionId": f"par-{i}",
            "execute": True, "overwrite": True, "legalEntityId": "usmf"}))

    first = threading.Thread(target=call, args=(1,))
    first.start()
    time.sleep(0.3)
    call(2)
    first.join(10)
    statuses = sorted(r.status for r in results)
    assert statuses == [200, 400]
    bad = [r for r in results if r.status == 400][0]
    assert "Deadlock" in bad.json()["error"]["innererror"]["message"]
    assert sim.counters()["import_overlaps"] == 1
    call(3)
    assert results[-1].status == 200          # sequential calls are fine


def test_import_from_package_async(sim, tok):
    sim.configure(import_package_secs=1.0)
    w = write_url(sim, tok, "async.zip")
    put_blob(w["BlobUrl"], b"PK")
    t0 = time.monotonic()
    exec_id = value(action(sim, tok, "ImportFromPackageAsync", {
        "packageUrl": w["BlobUrl"], "definitionGroupId": "G", "executionId": "",
        "execute": True, "overwrite": True, "legalEntityId": "usmf"}))
    assert time.monotonic() - t0 < 0.8
    seen = wait_status(sim, tok, exec_id, "Succeeded")
    assert "Executing" in seen or "NotRun" in seen


def test_export_to_package_and_download(sim, tok):
    sim.configure(exec_not_found_secs=0.6, export_secs=1.0)
    exec_id = value(action(sim, tok, "ExportToPackage", {
        "definitionGroupId": "Customers", "packageName": "Customers", "executionId": "",
        "reExecute": False, "legalEntityId": "usmf"}))
    assert isinstance(exec_id, str) and exec_id.startswith("Customers-")
    r = action(sim, tok, "GetExecutionSummaryStatus", {"executionId": exec_id})
    assert r.status == 400
    assert ("Execution details were not found for execution id: " + exec_id
            in r.json()["error"]["innererror"]["message"])
    assert value(action(sim, tok, "GetExportedPackageUrl", {"executionId": exec_id})) == ""
    wait_status(sim, tok, exec_id, "Succeeded")
    url = value(action(sim, tok, "GetExportedPackageUrl", {"executionId": exec_id}))
    assert url.startswith("http://127.0.0.1:") and "/dmf/" in url and "sp=r" in url
    g = get_blob(url)
    assert g.status == 200
    z = zipfile.ZipFile(io.BytesIO(g.body))
    assert z.testzip() is None
    assert sorted(z.namelist()) == ["Customers.csv", "Manifest.xml", "PackageHeader.xml"]
    assert len(z.read("Customers.csv")) == 200000
    assert b"<EntityName>Customers</EntityName>" in z.read("Manifest.xml")


def test_export_async_configurable_size_and_outcome(sim, tok):
    sim.configure(package_bytes=5000, package_outcome="PartiallySucceeded")
    exec_id = value(action(sim, tok, "ExportToPackageAsync", {
        "definitionGroupId": "Vendors", "packageName": "V", "executionId": "exp-async-1",
        "reExecute": False, "legalEntityId": "usmf"}))
    assert exec_id == "exp-async-1"
    wait_status(sim, tok, exec_id, "PartiallySucceeded")
    url = value(action(sim, tok, "GetExportedPackageUrl", {"executionId": exec_id}))
    z = zipfile.ZipFile(io.BytesIO(get_blob(url).body))
    assert len(z.read("Vendors.csv")) == 5000


def test_error_files_for_partially_succeeded_import(sim, tok):
    sim.configure(package_outcome="PartiallySucceeded")
    w = write_url(sim, tok, "errs.zip")
    put_blob(w["BlobUrl"], b"PK")
    exec_id = value(action(sim, tok, "ImportFromPackage", {
        "packageUrl": w["BlobUrl"], "definitionGroupId": "G", "executionId": "errs-1",
        "execute": True, "overwrite": True, "legalEntityId": "usmf"}))
    assert value(action(sim, tok, "GetExecutionSummaryStatus", {"executionId": exec_id})) == "PartiallySucceeded"
    errs = json.loads(value(action(sim, tok, "GetExecutionErrors", {"executionId": exec_id})))
    assert errs and set(errs[0]) == {"RecordId", "Field", "ErrorMessage"}
    body = {"executionId": exec_id, "entityName": "Customer groups"}
    assert value(action(sim, tok, "GetImportTargetErrorKeysFileUrl", body)) == ""
    gen = action(sim, tok, "GenerateImportTargetErrorKeysFile", body)
    assert gen.json()["@odata.context"].endswith("#Edm.Boolean") and value(gen) is True
    def ready(name):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            v = value(action(sim, tok, name, body))
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError(name + " stayed empty")
    keys = get_blob(ready("GetImportTargetErrorKeysFileUrl"))
    assert keys.status == 200 and b"5637144576" in keys.body
    staging = get_blob(ready("GetImportStagingErrorFileUrl"))
    assert staging.status == 200 and b"invalid" in staging.body


def test_clean_import_has_no_error_files(sim, tok):
    w = write_url(sim, tok, "clean.zip")
    put_blob(w["BlobUrl"], b"PK")
    exec_id = value(action(sim, tok, "ImportFromPackage", {
        "packageUrl": w["BlobUrl"], "definitionGroupId": "G", "executionId": "clean-1",
        "execute": True, "overwrite": True, "legalEntityId": "usmf"}))
    body = {"executionId": exec_id, "entityName": "E"}
    assert value(action(sim, tok, "GenerateImportTargetErrorKeysFile", body)) is False
    assert value(action(sim, tok, "GetImportStagingErrorFileUrl", body)) == ""
    assert value(action(sim, tok, "GetImportTargetErrorKeysFileUrl", body)) == ""


def test_unknown_execution(sim, tok):
    r = action(sim, tok, "GetExecutionSummaryStatus", {"executionId": "nope"})
    assert r.status == 400
    assert value(action(sim, tok, "GetExportedPackageUrl", {"executionId": "nope"})) == ""
    page = value(action(sim, tok, "GetExecutionSummaryPageUrl", {"executionId": "nope"}))
    assert "executionid=nope" in page


def test_sigterm_with_sync_import_in_flight_exits_zero(env, tok):
    # A separate simulator, so the module one stays up.
    w = Workdir()
    try:
        az = env[1]
        s2 = start_fosim(w.path, default_sim_config(azurite=azurite_sim_config(az),
                                                    import_package_secs=30))
        t2 = s2.token()
        url = json.loads(value(action(s2, t2, "GetAzureWriteUrl", {"uniqueFileName": "x.zip"})))["BlobUrl"]
        outcome = []

        def call():
            try:
                outcome.append(action(s2, t2, "ImportFromPackage", {"packageUrl": url}, timeout=5))
            except (ConnectionError, OSError) as e:   # the simulator went away mid-call
                outcome.append(e)

        th = threading.Thread(target=call)
        th.start()
        time.sleep(0.5)
        assert s2.stop() == 0
        th.join(10)
        assert len(outcome) == 1 and isinstance(outcome[0], (ConnectionError, OSError))
    finally:
        w.cleanup(False)
