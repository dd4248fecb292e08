"""End to end: fogate with the secretless credential kinds, no secret anywhere in its
config or environment, against a real fosim (D365 + Entra ID + IMDS) and a third-party
OAuth server (tests/oauth3p) playing the Kubernetes service account issuer.

- client_assertion_file (workload identity federation): the main job (enqueue + dequeue
  + ack through the simple API) works; a rotated file is used without a restart; a
  missing, expired or untrusted assertion gives its reason and a hint in /readyz.
- managed_identity: IMDS (user- and system-assigned, `Metadata: true`) and the App Service
  endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER) run the main job; IMDS down and an
  unknown identity give their reasons in /readyz."""

import hashlib
import json
import os
import time

import pytest

import harness
from harness import workdir  # noqa: F401  (module-wide temporary directory fixture)
from harness_oauth3p import start_oauth3p

FED_APP = "a7e3c1d2-1111-4222-8333-0000000000fe"
MI_USER = "0d6b5a4c-2222-4333-8444-00000000a51d"
MI_SYSTEM = "5e4f3a2b-3333-4444-8555-00000000575e"
SUB1 = "system:serviceaccount:fogate:fogate"
SUB2 = "system:serviceaccount:fogate:fogate-next"
IDENTITY_HEADER = "e2e-identity-header-0b7c5d"
KEY = "secretless-client-key-0123456789abcdef"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
SECRET_WORDS = ("secret", "password")


@pytest.fixture(scope="module")
def issuer():
    o = start_oauth3p(lifetime=3600)
    yield o
    o.stop()


@pytest.fixture(scope="module")
def sim(workdir, issuer):  # noqa: F811
    cfg = harness.default_sim_config(identity_header=IDENTITY_HEADER)
    cfg["tenants"][0]["apps"] += [
        {"client_id": FED_APP, "user": "Admin",
         "federated": [issuer.federation(SUB1), issuer.federation(SUB2)]},
        {"client_id": MI_USER, "user": "Admin", "managed_identity": True},
        {"client_id": MI_SYSTEM, "user": "Admin", "managed_identity": True,
         "system_assigned": True},
    ]
    for job in cfg["jobs"]:
        job["apps"] += [FED_APP, MI_USER, MI_SYSTEM]
    s = harness.start_fosim(workdir, cfg)
    yield s
    rc = s.stop()
    assert rc == 0, f"fosim exited {rc}; log:\n{s.proc.log_tail()}"


@pytest.fixture(autouse=True)
def clean_sim(sim):
    sim.reset()
    yield
    sim.clear_faults()


def clean_environ(extra=None):
    """fogate's environment: this process's without anything secret-looking, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not any(w in k.lower() for w in SECRET_WORDS) and not k.startswith("IDENTITY_")
           and v != harness.APP_SECRET}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.update(extra or {})
    return env


class Gate:
    """fogate with one environment `sim` using `credential` (a dict of env keys)."""

    def __init__(self, workdir, sim, name, credential, client_id, extra_env=None):
        self.port = harness.free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env_entry = {"base_url": sim.base_url, "allow_http": True, "tenant": harness.TENANT,
                     "client_id": client_id,
                     "token_endpoint": f"{sim.base_url}/{harness.TENANT}/oauth2/v2.0/token"}
        env_entry.update(credential)
        self.config = {
            "listen": f"127.0.0.1:{self.port}",
            "public_base_url": self.base,
            "log_level": "info",
            "environments": {"sim": env_entry},
            "jobs": {
                "groups-in": {"environment": "sim", "activity_id": harness.IMPORT_JOB,
                              "entity": "Customer groups", "direction": "import"},
                "customers-out": {"environment": "sim", "activity_id": harness.EXPORT_JOB,
                                  "direction": "export"},
            },
            "clients": {"one": {"api_key_sha256": hashlib.sha256(KEY.encode()).hexdigest(),
                                "jobs": ["groups-in", "customers-out"]}},
            "tokens": {"retry_min_ms": 100, "retry_max_ms": 500},
            "timeouts": {"shutdown_grace_ms": 3000},
        }
        path = os.path.join(workdir, f"fogate-{name}.json")
        with open(path, "w") as f:
            json.dump(self.config, f)
        self.env = clean_environ(extra_env)
        argv = [harness.require_bin("FOGATE_BIN"), "--config", path]
        self.proc = harness.Proc(f"fogate-{name}", argv, workdir, env=self.env)
        harness.wait_until(lambda: harness.request(self.base, "GET", "/healthz", timeout=2)
                           .status == 200, what="fogate healthz")

    def req(self, method, path, body=None, timeout=30.0):
        return harness.request(self.base, method, path, body, {"X-Api-Key": KEY},
                               timeout=timeout)

    def readyz(self):
        return harness.request(self.base, "GET", "/readyz", timeout=5)

    def wait_reason(self, reason):
        """Waits until /readyz names `reason` for the environment; returns the body."""
        got = {}

        def check():
            r = self.readyz()
            got["body"] = r.json()
            return r.json()["environments"].get("sim") == reason
        harness.wait_until(check, what=f"readyz reason {reason} (last {got})")
        return got["body"]

    def wait_ready(self):
        harness.wait_until(lambda: self.readyz().status == 200, what="fogate ready")

    def log(self):
        with open(self.proc.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        rc = self.proc.stop()
        log = self.log()
        assert rc == 0, f"fogate exited {rc}; log:\n{log[-4000:]}"
        for mark in SANITIZER_MARKS:
            assert mark not in log
        for word in (IDENTITY_HEADER, "eyJ"):
            assert word not in log, "a credential or token reached fogate's log"
        return log


def assert_no_secret(gate):
    """Nothing secret in the config file or fogate's environment."""
    text = json.dumps(gate.config)
    assert "client_secret" not in text and "client_certificate" not in text
    assert harness.APP_SECRET not in text
    assert harness.APP_SECRET not in gate.env.values()
    assert not [k for k in gate.env if "secret" in k.lower() or "password" in k.lower()]


def project(path, jwt):
    """Writes the token file the way the kubelet swaps a projected volume (rename)."""
    with open(path + ".new", "w") as f:
        f.write(jwt)
    os.replace(path + ".new", path)


def main_job(gate, sim):
    """Enqueue a file and see it processed; dequeue an export, then ack it."""
    r = gate.req("POST", "/v1/jobs/groups-in/messages", b"CUSTGROUPID,NAME\n10,Retail\n")
    assert r.status == 202, r
    mid = r.json()["message_id"]
    st = gate.req("GET", f"/v1/messages/{mid}?wait=20")
    assert st.status == 200 and st.json()["final"], st
    data = os.urandom(20_000)
    sim.feed_export(data)
    n = gate.req("POST", "/v1/jobs/customers-out/next")
    assert n.status == 200 and n.body == data, n
    a = gate.req("POST", f"/v1/jobs/customers-out/messages/{n.header('X-Fogate-Message-Id')}/ack")
    assert a.status == 200 and a.json()["acked"] is True, a


# ---- workload identity federation ----

def test_federated_main_job_and_rotation(workdir, sim, issuer):  # noqa: F811
    path = os.path.join(workdir, "azure-identity-token")
    project(path, issuer.assertion(SUB1))
    gate = Gate(workdir, sim, "fed", {"client_assertion_file": path}, FED_APP)
    try:
        assert_no_secret(gate)
        gate.wait_ready()
        main_job(gate, sim)
        c = sim.counters()
        assert c["federated_by_subject"] == {SUB1: 1}
        assert c["tokens_by_app"] == {FED_APP: 1}
        # the kubelet rotates the file; D365 then refuses the token once (401):
        # fogate fetches again with the new assertion, same process
        pid = gate.proc.pid
        project(path, issuer.assertion(SUB2))
        sim.fault(endpoint="dequeue", kind="status", status=401, count=1)
        data = os.urandom(1000)
        sim.feed_export(data)
        n = gate.req("POST", "/v1/jobs/customers-out/next")
        assert n.status == 200 and n.body == data, n
        c = sim.counters()
        assert c["requests"]["dequeue"] == {"401": 1, "200": 2}, c["requests"]
        assert c["federated_by_subject"] == {SUB1: 1, SUB2: 1}
        assert gate.proc.pid == pid and gate.proc.alive()
    finally:
        log = gate.stop()
    assert "token fetch failed" not in log
    assert "token invalidated after a 401" in log


def test_missing_expired_then_fixed_assertion(workdir, sim):  # noqa: F811
    path = os.path.join(workdir, "not-yet-projected-token")
    gate = Gate(workdir, sim, "fed-missing", {"client_assertion_file": path}, FED_APP)
    try:
        body = gate.wait_reason("assertion_unreadable")
        assert gate.readyz().status == 503
        assert "AZURE_FEDERATED_TOKEN_FILE" in body["hints"]["sim"]
        r = gate.req("POST", "/v1/jobs/groups-in/messages", b"a\n")
        assert r.status == 503 and r.json()["code"] == "d365_no_token", r
        assert "assertion_unreadable" in r.json()["message"]
        # an expired token (the issuer of a one-second lifetime, two seconds ago)
        short = start_oauth3p(lifetime=1)
        try:
            old = short.assertion(SUB1)
        finally:
            short.stop()
        harness.wait_until(lambda: harness.jwt_claims(old)["exp"] < time.time(),
                           what="the assertion to expire")
        project(path, old)
        body = gate.wait_reason("assertion_expired")
        assert "rotates" in body["hints"]["sim"]
        assert sim.counters()["tokens_total"] == 0  # never sent to Entra
    finally:
        log = gate.stop()
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{")]
    fails = [x for x in lines if x.get("msg") == "token fetch failed"]
    assert {x["reason"] for x in fails} >= {"assertion_unreadable", "assertion_expired"}
    assert all(x.get("hint") and x["credential"] == "client_assertion_file" for x in fails)


def test_fixed_without_restart(workdir, sim, issuer):  # noqa: F811
    path = os.path.join(workdir, "late-token")
    gate = Gate(workdir, sim, "fed-late", {"client_assertion_file": path}, FED_APP)
    try:
        gate.wait_reason("assertion_unreadable")
        project(path, issuer.assertion(SUB1))
        gate.wait_ready()
        assert "hints" not in gate.readyz().json()
        main_job(gate, sim)
    finally:
        gate.stop()


def test_untrusted_subject(workdir, sim, issuer):  # noqa: F811
    path = os.path.join(workdir, "other-sa-token")
    project(path, issuer.assertion("system:serviceaccount:other:sa"))
    gate = Gate(workdir, sim, "fed-untrusted", {"client_assertion_file": path}, FED_APP)
    try:
        body = gate.wait_reason("no_federation")
        assert "api://AzureADTokenExchange" in body["hints"]["sim"]
    finally:
        log = gate.stop()
    assert '"aadsts":70021' in log.replace(" ", "")


# ---- managed identity ----

def imds_url(port):
    return f"http://127.0.0.1:{port}/metadata/identity/oauth2/token"


@pytest.mark.parametrize("identity", [MI_USER, None], ids=["user-assigned", "system-assigned"])
def test_imds_main_job(workdir, sim, identity):  # noqa: F811
    mi = {"endpoint": imds_url(sim.port)}
    if identity:
        mi["client_id"] = identity
    gate = Gate(workdir, sim, "imds", {"managed_identity": mi}, identity or MI_SYSTEM)
    try:
        assert_no_secret(gate)
        gate.wait_ready()
        main_job(gate, sim)
        c = sim.counters()
        assert c["identity_tokens"] == {"imds": 1}
        assert c["tokens_by_app"] == {identity or MI_SYSTEM: 1}
        assert "identity_errors" not in c or not c["identity_errors"]  # Metadata: true sent
        assert c["requests"]["imds"] == {"200": 1}
    finally:
        gate.stop()


def test_app_service_main_job(workdir, sim):  # noqa: F811
    extra = {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{sim.port}/msi/token",
             "IDENTITY_HEADER": IDENTITY_HEADER}
    gate = Gate(workdir, sim, "appsvc", {"managed_identity": {"client_id": MI_USER}}, MI_USER,
                extra_env=extra)
    try:
        gate.wait_ready()
        main_job(gate, sim)
        assert sim.counters()["identity_tokens"] == {"app_service": 1}
        assert "imds" not in sim.counters()["requests"]
    finally:
        gate.stop()


def test_imds_down(workdir, sim):  # noqa: F811
    closed = harness.free_port()
    gate = Gate(workdir, sim, "imds-down",
                {"managed_identity": {"client_id": MI_USER, "endpoint": imds_url(closed)}},
                MI_USER)
    try:
        body = gate.wait_reason("unreachable")
        assert "managed identity endpoint" in body["hints"]["sim"]
        assert sim.counters()["tokens_total"] == 0
    finally:
        gate.stop()


def test_identity_not_assigned(workdir, sim):  # noqa: F811
    other = "00000000-0000-4000-8000-0000000000aa"
    gate = Gate(workdir, sim, "imds-unknown",
                {"managed_identity": {"client_id": other, "endpoint": imds_url(sim.port)}},
                other)
    try:
        body = gate.wait_reason("identity_not_found")
        assert "managed_identity.client_id" in body["hints"]["sim"]
    finally:
        gate.stop()
