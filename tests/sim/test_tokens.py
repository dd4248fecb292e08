"""Conformance: fosim's Entra ID token endpoints (reference §2)."""
import base64
import time
import urllib.parse

from harness import (APP_ID, APP_SECRET, EXPIRED_APP_ID, TENANT, OTHER_TENANT, b64url_json,
                     fosim, jwt_claims, workdir)  # noqa: F401 - fixtures

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def post_form(sim, path, form, headers=None):
    h = dict(FORM)
    h.update(headers or {})
    body = form if isinstance(form, str) else urllib.parse.urlencode(form)
    return sim.post(path, body, headers=h)


def test_v1_success_numbers_are_strings(fosim):
    before = time.time()
    r = fosim.token_response()
    assert r.status == 200, r
    assert r.header("Content-Type").startswith("application/json")
    j = r.json()
    assert list(j) == ["token_type", "expires_in", "ext_expires_in", "expires_on",
                       "not_before", "resource", "access_token"]
    for k in ("expires_in", "ext_expires_in", "expires_on", "not_before", "resource"):
        assert isinstance(j[k], str), k
    assert j["token_type"] == "Bearer"
    assert j["expires_in"] == "3599"
    assert int(j["expires_on"]) - int(j["not_before"]) == 3599
    assert abs(int(j["not_before"]) - before) < 5
    assert j["resource"] == fosim.base_url


def test_v1_jwt_claims_and_header(fosim):
    tok = fosim.token()
    h = b64url_json(tok.split(".")[0])
    assert h["alg"] == "RS256" and h["typ"] == "JWT" and h["kid"]
    c = jwt_claims(tok)
    assert c["aud"] == fosim.base_url
    assert c["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert c["tid"] == TENANT
    assert c["appid"] == APP_ID
    assert c["ver"] == "1.0"
    assert c["oid"] and c["jti"]
    assert c["exp"] - c["iat"] == 3599 and c["nbf"] == c["iat"]


def test_v2_success_numbers_are_integers(fosim):
    r = fosim.token_response(v2=True)
    assert r.status == 200, r
    j = r.json()
    assert set(j) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert j["expires_in"] == 3599 and j["ext_expires_in"] == 3599
    c = jwt_claims(j["access_token"])
    assert c["aud"] == fosim.base_url          # scope minus /.default
    assert c["azp"] == APP_ID and c["ver"] == "2.0"
    assert c["iss"] == f"https://login.microsoftonline.com/{TENANT}/v2.0"


def test_aud_is_the_resource_as_requested(fosim):
    c = jwt_claims(fosim.token(resource=fosim.base_url + "/"))
    assert c["aud"] == fosim.base_url + "/"
    c = jwt_claims(fosim.token(resource=fosim.base_url.upper()))
    assert c["aud"] == fosim.base_url.upper()
    c = jwt_claims(fosim.token(v2=True, resource=fosim.base_url + "/"))
    assert c["aud"] == fosim.base_url + "/"


def test_form_values_are_url_decoded_plus_and_percent20(fosim):
    cfg = fosim.ctl("GET", "config")
    tenants = fosim.config["tenants"]
    spaced = {"client_id": "aaaaaaaa-0000-4000-8000-000000000001", "secret": "a b+c",
              "user": "Admin"}
    patched = [dict(t) for t in tenants]
    patched[0] = dict(patched[0], apps=patched[0]["apps"] + [spaced])
    fosim.configure(tenants=patched)
    try:
        base = (f"grant_type=client_credentials&client_id={spaced['client_id']}"
                f"&resource={urllib.parse.quote(fosim.base_url, safe='')}")
        r1 = post_form(fosim, f"/{TENANT}/oauth2/token", base + "&client_secret=a+b%2Bc")
        r2 = post_form(fosim, f"/{TENANT}/oauth2/token", base + "&client_secret=a%20b%2bc")
        r3 = post_form(fosim, f"/{TENANT}/oauth2/token", base + "&client_secret=a+b+c")
        assert r1.status == 200, r1
        assert r2.status == 200, r2
        assert r3.status == 401, r3
    finally:
        fosim.configure(tenants=tenants)
    assert cfg["tenants"][0]["apps"][0]["secret"] == "***"


def test_http_basic_client_authentication(fosim):
    cred = base64.b64encode(f"{APP_ID}:{urllib.parse.quote(APP_SECRET, safe='')}".encode())
    form = {"grant_type": "client_credentials", "scope": fosim.base_url + "/.default"}
    r = post_form(fosim, f"/{TENANT}/oauth2/v2.0/token", form,
                  {"Authorization": "Basic " + cred.decode()})
    assert r.status == 200, r
    assert jwt_claims(r.json()["access_token"])["azp"] == APP_ID


def assert_aad_error(r, status, error, code):
    assert r.status == status, r
    j = r.json()
    assert j["error"] == error
    assert j["error_codes"] == [code]
    d = j["error_description"]
    assert d.startswith(f"AADSTS{code}: ")
    assert "\r\nTrace ID: " + j["trace_id"] in d
    assert "\r\nCorrelation ID: " + j["correlation_id"] in d
    assert "\r\nTimestamp: " + j["timestamp"] in d
    assert j["timestamp"].endswith("Z") and " " in j["timestamp"]
    assert str(code) in j["error_uri"]
    assert APP_SECRET not in r.body.decode()
    return j


def test_wrong_secret_is_401_invalid_client_7000215(fosim):
    assert_aad_error(fosim.token_response(secret="nope"), 401, "invalid_client", 7000215)
    assert_aad_error(fosim.token_response(secret="nope", v2=True), 401, "invalid_client",
                     7000215)


def test_expired_secret_is_401_7000222(fosim):
    assert_aad_error(fosim.token_response(client_id=EXPIRED_APP_ID), 401, "invalid_client",
                     7000222)


def test_unknown_app_is_400_unauthorized_client_700016(fosim):
    assert_aad_error(fosim.token_response(client_id="00000000-1111-4111-8111-000000000000"),
                     400, "unauthorized_client", 700016)


def test_unknown_tenant_is_400_invalid_request_90002(fosim):
    assert_aad_error(fosim.token_response(tenant="00000000-0000-4000-8000-00000000dead"),
                     400, "invalid_request", 90002)


def test_wrong_scope_v2_is_400_invalid_scope_70011(fosim):
    r = post_form(fosim, f"/{TENANT}/oauth2/v2.0/token",
                  {"grant_type": "client_credentials", "client_id": APP_ID,
                   "client_secret": APP_SECRET, "scope": fosim.base_url})
    assert_aad_error(r, 400, "invalid_scope", 70011)
    r = fosim.token_response(v2=True, resource="https://other.example.com")
    assert_aad_error(r, 400, "invalid_scope", 70011)


def test_unknown_resource_v1_is_400_invalid_resource_500011(fosim):
    r = fosim.token_response(resource="https://contoso.operations.dynamics.com")
    assert_aad_error(r, 400, "invalid_resource", 500011)


def test_unsupported_grant(fosim):
    r = fosim.token_response(extra={"grant_type": "password"})
    assert_aad_error(r, 400, "unsupported_grant_type", 70003)


def test_missing_secret_and_assertion_seam(fosim):
    r = post_form(fosim, f"/{TENANT}/oauth2/token",
                  {"grant_type": "client_credentials", "client_id": APP_ID,
                   "resource": fosim.base_url})
    assert_aad_error(r, 401, "invalid_client", 7000218)
    r = post_form(fosim, f"/{TENANT}/oauth2/v2.0/token",
                  {"grant_type": "client_credentials", "client_id": APP_ID,
                   "scope": fosim.base_url + "/.default",
                   "client_assertion_type":
                   "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                   "client_assertion": "e30.e30.c2ln"})
    assert_aad_error(r, 401, "invalid_client", 700027)


def test_other_tenant_issues_token_with_its_tid(fosim):
    c = jwt_claims(fosim.token(tenant=OTHER_TENANT))
    assert c["tid"] == OTHER_TENANT


def test_token_counters(fosim):
    fosim.reset()
    fosim.token()
    fosim.token(v2=True)
    fosim.token_response(secret="bad")
    c = fosim.counters()
    assert c["tokens_total"] == 2
    assert c["tokens_by_app"] == {APP_ID: 2}
    assert c["token_errors"] == 1
    assert c["requests"]["token"] == {"200": 2, "401": 1}


def test_configurable_lifetime(fosim):
    fosim.configure(token_lifetime=5)
    try:
        j = fosim.token_response().json()
        assert j["expires_in"] == "5"
        assert fosim.token_response(v2=True).json()["expires_in"] == 5
    finally:
        fosim.configure(token_lifetime=3599)
