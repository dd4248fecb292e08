"""Conformance: secretless credentials. Workload identity federation (a client_assertion
issued by an external OIDC issuer the app trusts; the third-party OAuth server of
tests/oauth3p plays the Kubernetes service account issuer) and Azure managed identity
(IMDS and App Service / Container Apps endpoints)."""
import urllib.parse

import pytest

from harness import TENANT, Workdir, default_sim_config, jwt_claims, start_fosim
from harness_oauth3p import start_oauth3p

FED_APP = "a7e3c1d2-1111-4222-8333-0000000000fe"
MI_USER = "0d6b5a4c-2222-4333-8444-00000000a51d"    # user-assigned identity
MI_SYSTEM = "5e4f3a2b-3333-4444-8555-00000000575e"  # system-assigned identity
SUBJECT = "system:serviceaccount:fogate:fogate"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
HEADER = "test-identity-header-value"


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    issuer = start_oauth3p()
    other = start_oauth3p()
    cfg = default_sim_config(identity_header=HEADER)
    bad_keys = issuer.federation("system:serviceaccount:fogate:badkeys")
    bad_keys["jwks"] = other.jwks()  # trusted issuer, but keys that did not sign
    cfg["tenants"][0]["apps"] += [
        {"client_id": FED_APP, "user": "Admin",
         "federated": [issuer.federation(SUBJECT), bad_keys]},
        {"client_id": MI_USER, "user": "Admin", "managed_identity": True},
        {"client_id": MI_SYSTEM, "user": "Admin", "managed_identity": True,
         "system_assigned": True},
    ]
    sim = start_fosim(w.path, cfg)
    yield sim, issuer, other
    rc = sim.stop()
    issuer.stop()
    other.stop()
    w.cleanup(request.session.testsfailed > 0)
    assert rc == 0


def fed_call(sim, jwt, v2=True, client_id=FED_APP, atype=JWT_BEARER):
    form = {"grant_type": "client_credentials", "client_id": client_id,
            "client_assertion_type": atype, "client_assertion": jwt}
    if v2:
        form["scope"] = sim.base_url + "/.default"
    else:
        form["resource"] = sim.base_url
    path = f"/{TENANT}/oauth2/{'v2.0/' if v2 else ''}token"
    return sim.post(path, urllib.parse.urlencode(form),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})


def aadsts(r, status, code):
    assert r.status == status, r
    assert r.json()["error_codes"] == [code], r
    return r.json()["error_description"]


@pytest.mark.parametrize("v2", [True, False])
def test_federated_assertion_issues_token(env, v2):
    sim, issuer = env[0], env[1]
    before = sim.counters().get("federated_by_subject", {}).get(SUBJECT, 0)
    r = fed_call(sim, issuer.assertion(SUBJECT), v2)
    assert r.status == 200, r
    c = jwt_claims(r.json()["access_token"])
    assert c["azp" if v2 else "appid"] == FED_APP and c["tid"] == TENANT
    assert c["aud"] == sim.base_url
    assert sim.counters()["federated_by_subject"][SUBJECT] == before + 1


def test_no_matching_federated_record(env):
    sim, issuer = env[0], env[1]
    desc = aadsts(fed_call(sim, issuer.assertion("system:serviceaccount:x:y")), 401, 70021)
    assert "No matching federated identity record" in desc and "system:serviceaccount:x:y" in desc
    aadsts(fed_call(sim, issuer.assertion(SUBJECT, audience="api://other")), 401, 70021)


def test_issuer_not_trusted(env):
    sim, other = env[0], env[2]
    aadsts(fed_call(sim, other.assertion(SUBJECT)), 401, 70021)


def test_signature_not_from_the_issuer_keys(env):
    sim, issuer = env[0], env[1]
    jwt = issuer.assertion("system:serviceaccount:fogate:badkeys")
    assert "signature" in aadsts(fed_call(sim, jwt), 401, 700027)


def test_tampered_assertion(env):
    sim, issuer = env[0], env[1]
    h, p, s = issuer.assertion(SUBJECT).split(".")
    aadsts(fed_call(sim, h + "." + p + "." + s[:-4] + "AAAA"), 401, 700027)


def test_malformed_and_wrong_type(env):
    sim, issuer = env[0], env[1]
    aadsts(fed_call(sim, "not.a.jwt"), 400, 50027)
    aadsts(fed_call(sim, issuer.assertion(SUBJECT), atype="urn:x"), 400, 50027)


def test_expired_assertion(env):
    sim, issuer = env[0], env[1]
    jwt = issuer.assertion(SUBJECT)  # lifetime 3600 s
    sim.advance(3600 + 400)          # past exp plus the 300 s skew Entra allows
    try:
        desc = aadsts(fed_call(sim, jwt), 401, 700024)
        assert "not within its valid time range" in desc
    finally:
        sim.reset()


# ---- managed identity ----

def imds(sim, resource=None, client_id=None, headers=None, version="2018-02-01",
         path="/metadata/identity/oauth2/token"):
    q = {"api-version": version, "resource": resource or sim.base_url}
    if client_id:
        q["client_id"] = client_id
    h = {"Metadata": "true"} if headers is None else headers
    return sim.get(path + "?" + urllib.parse.urlencode(q), headers=h)


def test_imds_user_assigned(env):
    sim = env[0]
    r = imds(sim, client_id=MI_USER)
    assert r.status == 200, r
    b = r.json()
    for k in ("expires_in", "expires_on", "ext_expires_in", "not_before"):
        assert isinstance(b[k], str) and b[k].isdigit(), (k, b)
    assert b["token_type"] == "Bearer" and b["client_id"] == MI_USER
    assert b["resource"] == sim.base_url
    c = jwt_claims(b["access_token"])
    assert c["appid"] == MI_USER and c["aud"] == sim.base_url and c["tid"] == TENANT
    assert int(b["expires_on"]) == c["exp"]
    assert sim.counters()["identity_tokens"]["imds"] >= 1


def test_imds_system_assigned(env):
    sim = env[0]
    r = imds(sim)
    assert r.status == 200, r
    assert jwt_claims(r.json()["access_token"])["appid"] == MI_SYSTEM


def test_imds_refusals(env):
    sim = env[0]
    r = imds(sim, client_id=MI_USER, headers={})
    assert r.status == 400 and "metadata header" in r.json()["error_description"], r
    r = imds(sim, client_id=MI_USER, headers={"Metadata": "false"})
    assert r.status == 400, r
    r = imds(sim, client_id="00000000-0000-4000-8000-000000000000")
    assert r.status == 400 and r.json()["error_description"] == "Identity not found", r
    r = imds(sim, client_id=FED_APP)  # an app, not a managed identity
    assert r.status == 400 and r.json()["error_description"] == "Identity not found", r
    r = imds(sim, client_id=MI_USER, resource="https://other.example.com")
    assert r.status == 400 and r.json()["error"] == "invalid_resource", r
    assert "AADSTS500011" in r.json()["error_description"]
    assert imds(sim, client_id=MI_USER, version="2017-09-01").status == 400
    assert sim.post("/metadata/identity/oauth2/token", "x",
                    headers={"Metadata": "true"}).status == 405


def test_app_service_endpoint(env):
    sim = env[0]
    r = imds(sim, client_id=MI_USER, version="2019-08-01", path="/msi/token",
             headers={"X-IDENTITY-HEADER": HEADER})
    assert r.status == 200, r
    b = r.json()
    assert set(b) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert b["expires_on"].isdigit() and jwt_claims(b["access_token"])["appid"] == MI_USER
    r = imds(sim, client_id=MI_USER, version="2019-08-01", path="/msi/token",
             headers={"X-IDENTITY-HEADER": "wrong"})
    assert r.status == 401 and HEADER not in r.body.decode(), r
    r = imds(sim, client_id=MI_USER, version="2019-08-01", path="/msi/token",
             headers={"Metadata": "true"})
    assert r.status == 401, r
