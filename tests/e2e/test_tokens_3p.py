"""End to end: fogate's token handling against a real third-party OAuth 2.0 server
(oauth2-mock-server from npm, see tests/oauth3p/server.js), so nothing proven here depends
on the D365 simulator's token endpoint. D365 is stood in for by a small recording HTTP
server in this file that accepts any bearer token, answers 204 and keeps every
Authorization header it saw with the time it saw it.

Proven: one token request for 200 concurrent requests on a cold start (and every upstream
request carries exactly the token the server issued, its RS256 signature checked against
the server's JWKS with the openssl CLI); short-lived tokens refreshed ahead, never seen
by D365 past their exp claim, without a burst; the server down at start, then ready within
one backoff after it comes up on the same port; a wrong client secret (401 invalid_client,
no AADSTS code) keeps fogate not ready with a reason, the secret never logged, and
SIGHUP with the right secret file recovers; v1 (resource=) with Entra v1's string
numbers. Needs node and `npm ci --prefix tests`; missing either fails, never skips."""
import base64
import concurrent.futures
import http.server
import json
import os
import shutil
import signal
import subprocess
import threading
import time

import harness
import passkit
from harness import EXPORT_JOB
from harness import workdir  # noqa: F401
from harness_oauth3p import start_oauth3p

DEQ = "/api/connector/dequeue/" + EXPORT_JOB
SECRET = "3p~secret.value+with&chars=%"  # percent-encoded on the wire, decoded by express
WRONG_SECRET = "totally-wrong-3p-secret-value"


# ---- the stand-in for D365 ----

class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        self.server.record(self.headers.get("Authorization"), self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class _RecordingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


class Upstream:
    """A D365 stand-in on a free 127.0.0.1 port: 204 to every GET, whatever the bearer."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seen = []  # (unix time, Authorization header, path)
        self.srv = _RecordingServer(("127.0.0.1", 0), _Recorder)
        self.srv.record = self.record
        self.base_url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def record(self, auth, path):
        with self.lock:
            self.seen.append((time.time(), auth, path))

    def bearers(self):
        with self.lock:
            return [(t, a, p) for t, a, p in self.seen]

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(timeout=5)


def gate(workdir, upstream, token_url, version="v2", **kw):
    extra = {"token_endpoint": token_url, "token_version": version}
    kw.setdefault("secret", SECRET)
    return passkit.Gate(workdir, upstream, extra_env=extra, **kw)


# ---- JWT checks, stdlib + the openssl CLI ----

def _b64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _der(tag, body):
    n = len(body)
    if n < 0x80:
        head = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + head + body


def _der_uint(b):
    return _der(0x02, b"\x00" + b if b[0] & 0x80 else b)


def rsa_pem(jwk):
    """A PEM SubjectPublicKeyInfo for an RSA JWK (n, e)."""
    rsa_key = _der(0x30, _der_uint(_b64url(jwk["n"])) + _der_uint(_b64url(jwk["e"])))
    alg = _der(0x30, _der(0x06, bytes.fromhex("2a864886f70d010101")) + b"\x05\x00")
    spki = _der(0x30, alg + _der(0x03, b"\x00" + rsa_key))
    b64 = base64.b64encode(spki).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def verify_rs256(token, jwks, workdir):
    """True if the JWT's RS256 signature verifies with its kid's key from the JWKS."""
    head, payload, sig = token.split(".")
    hdr = json.loads(_b64url(head))
    assert hdr["alg"] == "RS256", hdr
    keys = [k for k in jwks["keys"] if k.get("kid") == hdr["kid"]]
    assert len(keys) == 1, (hdr, jwks)
    openssl = shutil.which("openssl")
    assert openssl, "the openssl CLI is needed to check RS256 signatures (apt-get install openssl)"
    paths = {n: os.path.join(workdir, "jwt-%d.%s" % (os.getpid(), n)) for n in ("pem", "sig", "dat")}
    with open(paths["pem"], "w") as f:
        f.write(rsa_pem(keys[0]))
    with open(paths["sig"], "wb") as f:
        f.write(_b64url(sig))
    with open(paths["dat"], "wb") as f:
        f.write((head + "." + payload).encode())
    r = subprocess.run([openssl, "dgst", "-sha256", "-verify", paths["pem"], "-signature",
                        paths["sig"], paths["dat"]], capture_output=True, timeout=30)
    return r.returncode == 0 and b"Verified OK" in r.stdout


def env_status(g):
    return g.request("GET", "/admin/status", key=None).json()["environments"][0]


# ---- the tests ----

def test_200_concurrent_on_cold_start_one_third_party_token(workdir):
    up = Upstream()
    oa = start_oauth3p(secret=SECRET)
    g = gate(workdir, up, oa.token_url, wait_ready=False)
    try:
        # the test secret reaches the server in a file, not on its command line (ps)
        assert "secret" in harness.cmdline(oa.pid) and SECRET not in harness.cmdline(oa.pid)
        with concurrent.futures.ThreadPoolExecutor(max_workers=200) as ex:
            got = list(ex.map(lambda _: g.request("GET", DEQ).status, range(200)))
        assert got == [204] * 200
        st = oa.stats()
        assert st["token_requests"] == {"client_credentials": 1}, st["token_requests"]
        assert st["refused"] == 0
        (issued,) = st["issued"]
        form = issued["form"]
        assert form["client_id"] == harness.APP_ID and form["client_secret"] == "<present>"
        assert form["scope"] == up.base_url + "/.default" and "resource" not in form, form
        seen = up.bearers()
        assert len(seen) == 200
        assert {a for _, a, _ in seen} == {"Bearer " + issued["token"]}
        assert verify_rs256(issued["token"], oa.jwks(), workdir)
        claims = harness.jwt_claims(issued["token"])
        assert claims["aud"] == up.base_url and claims["appid"] == harness.APP_ID
        assert issued["token"] not in g.log_text() and SECRET not in g.log_text()
    finally:
        assert g.stop() == 0
        oa.stop()
        up.stop()


def test_signature_check_can_fail(workdir):
    """The RS256 check above is real: a token with one payload byte changed fails it."""
    oa = start_oauth3p()
    try:
        import urllib.request
        body = ("grant_type=client_credentials&client_id=x&client_secret=y&scope="
                "http%3A%2F%2F127.0.0.1%2F.default").encode()
        with urllib.request.urlopen(oa.token_url, data=body, timeout=10) as r:
            tok = json.loads(r.read())["access_token"]
        jwks = oa.jwks()
        assert verify_rs256(tok, jwks, workdir)
        head, payload, sig = tok.split(".")
        claims = json.loads(_b64url(payload))
        claims["aud"] = "https://evil.example"
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        assert not verify_rs256(head + "." + forged + "." + sig, jwks, workdir)
    finally:
        oa.stop()


def test_short_lived_tokens_refreshed_ahead_never_expired_upstream(workdir):
    up = Upstream()
    oa = start_oauth3p(lifetime=5, secret=SECRET)
    g = gate(workdir, up, oa.token_url, tokens={"safety_margin_s": 1, "refresh_percent": 50})
    try:
        end = time.monotonic() + 30
        n = 0
        while time.monotonic() < end:
            r = g.request("GET", DEQ)
            assert r.status == 204, r
            n += 1
            time.sleep(0.05)
        st = oa.stats()
        issued = {i["token"]: i for i in st["issued"]}
        seen = up.bearers()
        assert n > 100 and len(seen) == n
        for t, auth, _ in seen:
            tok = auth[len("Bearer "):]
            assert tok in issued, "upstream got a token the server did not issue"
            exp = harness.jwt_claims(tok)["exp"]
            assert t < exp, "D365 saw a token %.2f s past its exp" % (t - exp)
        # refreshed along the way: 5 s tokens refreshed at 40-50% -> about one per 2-2.5 s
        assert 6 <= len(issued) <= 20, len(issued)
        assert st["token_requests"]["client_credentials"] == len(issued)
        times = sorted(i["at"] for i in st["issued"])
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert min(gaps) >= 1.0, "token requests in a burst: %r" % gaps
        # every issued token but the newest was used upstream: refresh ahead, not on demand
        used = {a[len("Bearer "):] for _, a, _ in seen}
        assert len(used) >= len(issued) - 1
    finally:
        assert g.stop() == 0
        oa.stop()
        up.stop()


def test_server_down_at_start_then_ready_within_one_backoff(workdir):
    up = Upstream()
    port = harness.free_port()
    url = "http://127.0.0.1:%d/token" % port
    g = gate(workdir, up, url, wait_ready=False)
    oa = None
    try:
        time.sleep(1.5)
        r = g.get("/readyz")
        assert r.status == 503, r
        reason = r.json()["environments"]["sim"]
        assert reason not in ("", "ok", None), reason
        assert g.request("GET", DEQ).status == 503
        assert up.bearers() == []
        # Within one capped backoff (tokens.retry_max_ms is 1000): the next attempt is due
        # within it (or running), and the first request the server gets is answered with
        # the token (token_requests below). Counted, not timed: a loaded machine may run
        # any of it late.
        st = env_status(g)
        due = st["next_attempt_in_ms"]
        assert st["fetching"] or (due is not None and due <= 1000), st
        oa = start_oauth3p(port=port, secret=SECRET)
        g.wait_ready(timeout=15)
        assert g.request("GET", DEQ).status == 204
        assert oa.token_requests() == 1
        assert up.bearers()[0][1] == "Bearer " + oa.issued_tokens()[0]
    finally:
        assert g.stop() == 0
        if oa:
            oa.stop()
        up.stop()


def test_wrong_secret_not_ready_no_secret_logged_then_sighup_recovers(workdir):
    up = Upstream()
    oa = start_oauth3p(secret=SECRET)
    secret_file = os.path.join(workdir, "3p-secret-%d" % os.getpid())
    with open(secret_file, "w") as f:
        f.write(WRONG_SECRET + "\n")
    os.chmod(secret_file, 0o600)
    g = gate(workdir, up, oa.token_url, wait_ready=False, secret_file=secret_file)
    try:
        harness.wait_until(lambda: g.get("/readyz").json()["environments"].get("sim")
                           not in (None, "starting"), what="a verdict")
        r = g.get("/readyz")
        reason = r.json()["environments"]["sim"]
        assert r.status == 503 and reason not in ("", "ok"), r
        err = env_status(g)["last_error"]
        assert err["http_status"] == 401 and err["error"] == "invalid_client", err
        assert g.request("GET", DEQ).status == 503
        st = oa.stats()
        assert st["refused"] >= 1 and st["issued"] == []
        assert up.bearers() == []
        # retried with backoff, not hammered: with tokens.retry_min_ms 200 and retry_max_ms
        # 1000 the n-th delay is drawn from [d/2, d], d = min(200 * 2^n, 1000), so no gap is
        # under 100 ms and from the fourth on none is under 500 ms (the cap's lower half)
        harness.wait_until(lambda: len(oa.stats()["refusals"]) >= 7, timeout=10,
                           what="seven refusals")
        at = [r["at"] for r in oa.stats()["refusals"]]
        gaps = [b - a for a, b in zip(at, at[1:])]
        assert min(gaps) >= 0.09, ("retried faster than retry_min_ms/2", gaps)
        assert min(gaps[3:]) >= 0.45, ("backoff did not reach the cap", gaps)
        with open(secret_file, "w") as f:
            f.write(SECRET + "\n")
        g.proc.send_signal(signal.SIGHUP)
        g.wait_ready(timeout=5)
        assert g.request("GET", DEQ).status == 204
        assert up.bearers()[-1][1] == "Bearer " + oa.issued_tokens()[0]
        text = g.log_text()
        assert "invalid_client" in text or reason in text  # the failure was logged ...
        for line in text.splitlines():  # ... and no secret is in any log line
            assert WRONG_SECRET not in line and SECRET not in line, line
    finally:
        assert g.stop() == 0
        oa.stop()
        up.stop()


def test_v1_resource_form_with_entra_v1_string_numbers(workdir):
    up = Upstream()
    oa = start_oauth3p(lifetime=120, secret=SECRET, shape="v1")
    g = gate(workdir, up, oa.token_url, version="v1")
    try:
        assert g.request("GET", DEQ).status == 204
        (issued,) = oa.stats()["issued"]
        form = issued["form"]
        assert form["resource"] == up.base_url and "scope" not in form, form
        assert form["grant_type"] == "client_credentials" and form["client_id"] == harness.APP_ID
        assert up.bearers()[0][1] == "Bearer " + issued["token"]
        # the string expires_in ("120") was understood: about 120 s left, not a default
        left = env_status(g)["expires_in_s"]
        assert 100 <= left <= 120, left
    finally:
        assert g.stop() == 0
        oa.stop()
        up.stop()
