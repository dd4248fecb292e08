"""The ack ledger over TLS to Redis (rediss://) with an ACL user and a password from a file
or the environment. The test CA and server certificate (localhost / 127.0.0.1) are made at
test time by tests/unit/cache/rconn/make-certs.sh; redis-server listens with --tls-port only.
A certificate for another name, or from a CA fogate does not trust, is refused: the
dequeue fails closed (503) and /readyz says why."""

import os

import pytest

import harness
import ledgerkit as lk
from harness import workdir  # noqa: F401
from ledgerkit import certs  # noqa: F401

PASSWORD = "redis-acl-password-0123456789"
USER = "fogate"
PW_ENV = "FOGATE_E2E_REDIS_PASSWORD"


@pytest.fixture(scope="module")
def tls_redis(workdir, certs):
    p = lk.start_tls_redis(workdir, certs, "redis-tls",
                           f"user default off\nuser {USER} on >{PASSWORD} ~* &* +@all")
    yield p
    p.stop()


def tls_gate(workdir, sim, redis, certs, name, server_name="localhost", ca="ca.crt",
             password="file"):
    pw = {"password_file": os.path.join(workdir, "redis.pw")}
    with open(pw["password_file"], "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(pw["password_file"], 0o600)
    if password == "env":
        os.environ[PW_ENV] = PASSWORD
        pw = {"password_env": PW_ENV}
    red = {"url": f"rediss://{USER}@127.0.0.1:{redis.port}",
           "tls": {"ca_file": os.path.join(certs, ca), "server_name": server_name}, **pw}
    return lk.Gate(workdir, sim, redis.port, name=name, redis=red)


@pytest.mark.parametrize("password", ["file", "env"])
def test_tls_delivery_works(workdir, sim, tls_redis, certs, password):
    sim.reset()
    g = tls_gate(workdir, sim, tls_redis, certs, f"fogate-tls-{password}", password=password)
    try:
        harness.wait_until(lambda: harness.request(g.base, "GET", "/readyz").status == 200,
                           what="ready over TLS")
        (data, m), = lk.feed(sim, 1, tag=f"tls-{password}").items()
        r = g.next()
        assert r.status == 200 and r.body == data, r
        assert r.header("X-Fogate-Delivery-Count") == "1"   # the ledger was used
        assert g.ack(r.header("X-Fogate-Message-Id")).status == 200
        lk.wait_acked(sim, m["message_id"])
        assert g.status()["redis"]["connected"] is True
        assert PASSWORD not in g.log()
    finally:
        g.stop()


@pytest.mark.parametrize("case", ["wrong_name", "untrusted_ca"])
def test_tls_refused_certificate_fails_closed(workdir, sim, tls_redis, certs, case):
    sim.reset()
    kw = {"server_name": "wrong.example.org"} if case == "wrong_name" else {"ca": "other-ca.crt"}
    g = tls_gate(workdir, sim, tls_redis, certs, f"fogate-{case}", **kw)
    try:
        lk.feed(sim, 1, tag=case)
        r = g.next()
        assert r.status == 503, r
        assert r.json()["code"] == "ledger_unavailable"
        assert lk.count(sim, "dequeue") == 0
        ready = harness.request(g.base, "GET", "/readyz")
        assert ready.status == 503, ready
        reason = ready.json()["ledger"]["reason"]
        assert "Redis not connected" in reason
        assert "certificate" in reason.lower() or "verify" in reason.lower(), reason
        assert PASSWORD not in g.log()
    finally:
        g.stop()
