"""Conformance: certificate credentials (client_assertion, reference §2.3) on both endpoints."""
import base64
import hashlib
import json
import os
import subprocess
import time
import urllib.parse
import uuid

import pytest

from harness import TENANT, Workdir, default_sim_config, jwt_claims, start_fosim

CERT_APP = "c3a1b2d4-0000-4000-8000-00000000c3a1"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def openssl(*args, **kw):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60, **kw).stdout


def make_cert(d, name):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt,
            "-days", "2", "-subj", "/CN=" + name)
    der = openssl("x509", "-in", crt, "-outform", "DER")
    return key, crt, der


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def assertion(key, der, aud, alg="RS256", iss=CERT_APP, exp_delta=600, thumbs=("x5t",)):
    hdr = {"alg": alg, "typ": "JWT"}
    if "x5t" in thumbs:
        hdr["x5t"] = b64u(hashlib.sha1(der).digest())
    if "x5t#S256" in thumbs:
        hdr["x5t#S256"] = b64u(hashlib.sha256(der).digest())
    now = int(time.time())
    claims = {"aud": aud, "iss": iss, "sub": iss, "jti": str(uuid.uuid4()), "nbf": now,
              "iat": now, "exp": now + exp_delta}
    signing_input = b64u(json.dumps(hdr).encode()) + "." + b64u(json.dumps(claims).encode())
    extra = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"] if alg == "PS256" else []
    sig = openssl("dgst", "-sha256", "-sign", key, *extra, input=signing_input.encode())
    return signing_input + "." + b64u(sig)


@pytest.fixture(scope="module")
def env(request):
    w = Workdir()
    key, crt, der = make_cert(w.path, "app")
    okey, _, oder = make_cert(w.path, "other")
    cfg = default_sim_config()
    cfg["tenants"][0]["apps"].append({"client_id": CERT_APP, "certificate": crt, "user": "Admin"})
    sim = start_fosim(w.path, cfg)
    yield sim, key, der, okey, oder
    rc = sim.stop()
    w.cleanup(request.session.testsfailed > 0)
    assert rc == 0


def token_call(sim, jwt, v2=True):
    form = {"grant_type": "client_credentials", "client_id": CERT_APP,
            "client_assertion_type": JWT_BEARER, "client_assertion": jwt}
    if v2:
        form["scope"] = sim.base_url + "/.default"
        path = f"/{TENANT}/oauth2/v2.0/token"
    else:
        form["resource"] = sim.base_url
        path = f"/{TENANT}/oauth2/token"
    return sim.post(path, urllib.parse.urlencode(form),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})


def aud_of(sim, v2=True):
    return f"{sim.base_url}/{TENANT}/oauth2/{'v2.0/' if v2 else ''}token"


@pytest.mark.parametrize("alg,thumbs", [("RS256", ("x5t",)), ("PS256", ("x5t#S256",)),
                                        ("RS256", ("x5t", "x5t#S256"))])
def test_valid_assertion_issues_token(env, alg, thumbs):
    sim, key, der = env[0], env[1], env[2]
    r = token_call(sim, assertion(key, der, aud_of(sim), alg, thumbs=thumbs))
    assert r.status == 200, r
    c = jwt_claims(r.json()["access_token"])
    assert c["azp"] == CERT_APP and c["azpacr"] == "2"
    r = token_call(sim, assertion(key, der, aud_of(sim, False), alg, thumbs=thumbs), v2=False)
    assert r.status == 200, r
    assert jwt_claims(r.json()["access_token"])["appidacr"] == "2"


def test_login_host_audience_accepted(env):
    sim, key, der = env[0], env[1], env[2]
    aud = f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"
    assert token_call(sim, assertion(key, der, aud)).status == 200


def err(r, status, code):
    assert r.status == status, r
    assert r.json()["error_codes"] == [code]


def test_signed_by_another_key(env):
    sim, der, okey = env[0], env[2], env[3]
    err(token_call(sim, assertion(okey, der, aud_of(sim))), 401, 700027)


def test_thumbprint_of_another_certificate(env):
    sim, key, oder = env[0], env[1], env[4]
    err(token_call(sim, assertion(key, oder, aud_of(sim))), 401, 700027)
    err(token_call(sim, assertion(key, oder, aud_of(sim), thumbs=())), 401, 700027)


def test_expired_assertion(env):
    sim, key, der = env[0], env[1], env[2]
    err(token_call(sim, assertion(key, der, aud_of(sim), exp_delta=-1000)), 401, 700024)


def test_wrong_audience_or_issuer(env):
    sim, key, der = env[0], env[1], env[2]
    err(token_call(sim, assertion(key, der, "https://example.com/token")), 400, 50027)
    err(token_call(sim, assertion(key, der, aud_of(sim), iss="someone-else")), 400, 50027)


def test_malformed_assertion(env):
    err(token_call(env[0], "not.a.jwt"), 400, 50027)
