"""The operator page (/ui) in a real browser: Debian's chromium driven by playwright-core
(tests/browser/opsui.mjs). This file starts redis-server, fosim (imports end
ProcessedWithErrors) and fogate with history, the ledger and an admin token, and prepares
the scenario: an import that failed, sent with a file name holding a <script> tag, and two
exports left unconfirmed, made 20 and 26 minutes old in the ledger. The script asserts the
page, works its actions and saves screenshots into the build directory (paths printed)."""

import os
import subprocess
import time

import pytest

import harness
import ledgerkit as lk
from ledgerkit import redis  # noqa: F401  (module-wide fixture)
from harness import workdir  # noqa: F401

TOKEN = "page-admin-token-0123456789abcdef"
XSS_NAME = "<script>window.__xss=1</script><img src=x onerror=window.__xss=2>.csv"


@pytest.fixture(scope="module")
def sim(workdir):  # noqa: F811
    s = harness.start_fosim(workdir, harness.default_sim_config(import_outcome="errors"))
    yield s
    assert s.stop() == 0, s.proc.log_tail()


def secret_file(workdir, name, text):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return path


def age(redis_port, export_id, minutes):
    """Makes an unconfirmed export look `minutes` old to the ledger (its last dequeue)."""
    now_ms = int(time.time() * 1000)
    then = now_ms - minutes * 60 * 1000
    harness.resp(redis_port, "HSET", f"fogate:ledger:m:{export_id}", "last_dequeue_ms", str(then))
    harness.resp(redis_port, "ZADD", "fogate:ledger:unconfirmed", str(then), export_id)


def test_operator_page_in_chromium(workdir, sim, redis):
    token = secret_file(workdir, "admin.token", TOKEN)
    keyfile = secret_file(workdir, "client.key", lk.KEY)
    g = lk.Gate(workdir, sim, redis.port, name="fogate-page",
                ledger={"lease_s": 600},
                extra={"admin": {"token_file": token},
                       "history": {"enabled": True, "follow_min_ms": 100,
                                   "follow_max_ms": 300}})
    try:
        r = g.req("POST", f"/v1/jobs/{lk.IMPORT_JOB}/messages", b"code;name\nE1;bad\n",
                  {"X-File-Name": XSS_NAME})
        assert r.status == 202, r
        rid = r.json()["record_id"]

        def final():
            rec = g.req("GET", f"/v1/history/{rid}").json()
            return rec if rec.get("final") else None
        rec = harness.wait_until(final, 20, what="the import's record is final")
        assert rec["status"] == "ProcessedWithErrors" and rec["file_name"] == XSS_NAME
        # D365 fails a call: the environment's last D365 error
        sim.fault(endpoint="dequeue", kind="status", status=500, count=10)
        assert g.next().status >= 500
        sim.clear_faults()
        ov = harness.request(g.admin_base, "GET", "/admin/api/overview").json()
        assert ov["environments"][0]["last_d365_error"]["status"] == 500, ov
        for data in lk.feed(sim, 2, tag="waiting"):
            n = g.next()
            assert n.status == 200, n
        x = harness.request(g.admin_base, "GET", "/admin/api/exports").json()
        ids = sorted(m["id"] for m in x["unconfirmed"])
        assert len(ids) == 2
        age(redis.port, ids[0], 20)
        age(redis.port, ids[1], 26)

        shots = os.path.join(os.environ.get("FOGATE_BUILD_DIR", workdir), "screenshots")
        env = dict(os.environ, ADMIN_URL=g.admin_base, CLIENT_URL=g.base,
                   CLIENT_KEY_FILE=keyfile, TOKEN_FILE=token, IMPORT_JOB=lk.IMPORT_JOB,
                   EXPORT_JOB=lk.JOB, XSS_NAME=XSS_NAME, SHOT_DIR=shots)
        script = os.path.join(harness.src_root(), "tests", "browser", "opsui.mjs")
        p = subprocess.run(["node", script], env=env, capture_output=True, text=True,
                           timeout=180)
        print(p.stdout)
        assert p.returncode == 0, p.stdout + p.stderr
        for name in ("opsui-1280x800.png", "opsui-1280x800-detail.png", "opsui-390x844.png"):
            path = os.path.join(shots, name)
            assert os.path.getsize(path) > 10000, path
            assert f"screenshot: {path}" in p.stdout
        # what the page did, as the audit log saw it (never the token)
        log = g.log()
        assert TOKEN not in log
        assert '"action":"pause"' in log and '"action":"release"' in log
        assert '"action":"resume"' in log
    finally:
        g.stop()
