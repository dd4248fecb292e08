"""sas.c and azblob.c against a real Azurite blob service.

Python's http.client plays the D365 client (plain PUT/GET on a SAS URL, no Authorization);
azblob_cli (tests/azure/azblob_cli.c) calls the C functions. A small recording proxy between
azblob_cli and Azurite shows what the C client really sends.
Env: AZBLOB_CLI (the driver binary), FOGATE_SRC (repo root, to find Azurite).
"""

import hashlib
import http.client
import http.server
import os
import subprocess
import threading
import urllib.parse

import pytest

import harness
from harness_azurite import start_azurite

CLI = os.environ.get("AZBLOB_CLI", "")
CONTAINER = "dmf"


@pytest.fixture(scope="module")
def az():
    assert CLI and os.access(CLI, os.X_OK), "set AZBLOB_CLI to the azblob_cli binary"
    with start_azurite() as a:
        yield a


def cli(endpoint, *args, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([CLI, endpoint, *args], capture_output=True, text=True, timeout=120,
                          env=env)


def sas_url(az, blob, perms, start=-300, expiry=1800, container=CONTAINER):
    r = cli(az.endpoint, "sas", container, blob, perms, str(start), str(expiry))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def request(method, url, body=None, headers=None):
    """One plain HTTP request; returns (status, headers dict, body). Sends no Authorization."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request(method, f"{u.path}?{u.query}", body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def put_sas(url, data):
    return request("PUT", url, data, {"x-ms-blob-type": "BlockBlob",
                                      "Content-Type": "application/zip"})


def ensure(az, container=CONTAINER):
    r = cli(az.endpoint, "ensure", container)
    assert r.returncode == 0, r.stderr


class Recorder(http.server.ThreadingHTTPServer):
    """A reverse proxy to Azurite that records each request's method, path and headers."""
    daemon_threads = True

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.seen = []
        super().__init__(("127.0.0.1", 0), RecordHandler)


class RecordHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        self.server.seen.append((self.command, self.path, {k.lower(): v for k, v in
                                                           self.headers.items()}))
        up = http.client.HTTPConnection("127.0.0.1", self.server.upstream_port, timeout=60)
        try:
            up.request(self.command, self.path, body=body, headers=headers)
            resp = up.getresponse()
            data = resp.read()
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            length = resp.getheader("Content-Length") if self.command == "HEAD" else len(data)
            self.send_header("Content-Length", str(length or 0))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            up.close()

    do_PUT = do_GET = do_HEAD = forward


@pytest.fixture
def recorder(az):
    srv = Recorder(az.port)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def proxied(az, srv):
    return f"http://127.0.0.1:{srv.server_address[1]}/{az.account}"


def test_ensure_container_is_idempotent(az):
    url = sas_url(az, "before-ensure.bin", "cw", container="fresh")
    status, _, body = put_sas(url, b"x")
    assert status == 404 and b"ContainerNotFound" in body
    ensure(az, "fresh")
    ensure(az, "fresh")
    assert put_sas(url, b"x")[0] == 201


def test_sas_put_then_get_same_bytes(az):
    ensure(az)
    data = os.urandom(200_000)
    status, _, body = put_sas(sas_url(az, "roundtrip.zip", "rw"), data)
    assert status == 201, body
    status, _, got = request("GET", sas_url(az, "roundtrip.zip", "r"))
    assert status == 200
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()


def test_put_without_blob_type_is_refused(az):
    ensure(az)
    url = sas_url(az, "no-type.zip", "rw")
    status, _, body = request("PUT", url, b"data")
    assert status == 400, body
    assert request("GET", sas_url(az, "no-type.zip", "r"))[0] == 404


def test_expired_sas_is_refused(az):
    ensure(az)
    status, _, body = put_sas(sas_url(az, "late.zip", "rw", start=-7200, expiry=-3600), b"x")
    assert status == 403 and b"AuthorizationFailure" in body


def test_not_yet_valid_sas_is_refused(az):
    ensure(az)
    status, _, _ = put_sas(sas_url(az, "early.zip", "rw", start=3600, expiry=7200), b"x")
    assert status == 403


def tamper(url):
    u = urllib.parse.urlsplit(url)
    q = urllib.parse.parse_qsl(u.query, keep_blank_values=True)
    out = []
    for k, v in q:
        if k == "sig":
            v = ("B" if v[0] != "B" else "C") + v[1:]
        out.append((k, v))
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(out)))


def test_tampered_signature_is_refused(az):
    ensure(az)
    good = sas_url(az, "tamper.zip", "rw")
    bad = tamper(good)
    assert bad != good
    status, _, body = put_sas(bad, b"x")
    assert status == 403 and b"AuthorizationFailure" in body
    assert put_sas(good, b"x")[0] == 201


def test_sas_for_other_blob_is_refused(az):
    ensure(az)
    url = sas_url(az, "one.zip", "rw").replace("/one.zip?", "/two.zip?")
    assert put_sas(url, b"x")[0] == 403


def test_read_only_sas_cannot_write(az):
    ensure(az)
    assert put_sas(sas_url(az, "ro.zip", "rw"), b"first")[0] == 201
    status, _, _ = put_sas(sas_url(az, "ro.zip", "r"), b"second")
    assert status == 403
    status, _, got = request("GET", sas_url(az, "ro.zip", "r"))
    assert status == 200 and got == b"first"


def test_write_only_sas_cannot_read(az):
    ensure(az)
    assert put_sas(sas_url(az, "wo.zip", "w"), b"secret")[0] == 201
    assert request("GET", sas_url(az, "wo.zip", "w"))[0] == 403


def test_special_characters_in_blob_name(az):
    ensure(az)
    name = "dir/a b+c&d=\u00e9.zip"
    assert put_sas(sas_url(az, name, "rw"), b"odd")[0] == 201
    status, _, got = request("GET", sas_url(az, name, "r"))
    assert status == 200 and got == b"odd"


def write_file(tmp_path, name, size):
    data = os.urandom(size)
    path = tmp_path / name
    path.write_bytes(data)
    return str(path), hashlib.sha256(data).hexdigest()


def test_put_file_single_shot(az, recorder, tmp_path):
    ensure(az)
    path, digest = write_file(tmp_path, "small.zip", 300_000)
    r = cli(proxied(az, recorder), "put", CONTAINER, "small.zip", path)
    assert r.returncode == 0, r.stderr
    puts = [(p, h) for m, p, h in recorder.seen if m == "PUT"]
    assert len(puts) == 1
    assert puts[0][1].get("x-ms-blob-type") == "BlockBlob"
    assert all("authorization" not in h for _, _, h in recorder.seen)
    status, _, got = request("GET", sas_url(az, "small.zip", "r"))
    assert status == 200 and hashlib.sha256(got).hexdigest() == digest


def test_put_file_in_blocks_round_trips(az, recorder, tmp_path):
    ensure(az)
    block = 64 * 1024
    size = 20 * block + 12_345
    path, digest = write_file(tmp_path, "big.zip", size)
    r = cli(proxied(az, recorder), "put", CONTAINER, "big.zip", path, str(block))
    assert r.returncode == 0, r.stderr
    paths = [p for m, p, _ in recorder.seen if m == "PUT"]
    assert sum("comp=block&" in p for p in paths) == 21
    assert sum("comp=blocklist" in p for p in paths) == 1
    assert all("authorization" not in h for _, _, h in recorder.seen)
    r = cli(az.endpoint, "head", CONTAINER, "big.zip")
    assert r.returncode == 0 and int(r.stdout) == size
    status, _, got = request("GET", sas_url(az, "big.zip", "r"))
    assert status == 200 and hashlib.sha256(got).hexdigest() == digest


def test_put_file_replaces_existing_blob(az, tmp_path):
    ensure(az)
    first, _ = write_file(tmp_path, "a", 5000)
    second, digest = write_file(tmp_path, "b", 3000)
    assert cli(az.endpoint, "put", CONTAINER, "replace.zip", first).returncode == 0
    assert cli(az.endpoint, "put", CONTAINER, "replace.zip", second, "1024").returncode == 0
    status, _, got = request("GET", sas_url(az, "replace.zip", "r"))
    assert status == 200 and hashlib.sha256(got).hexdigest() == digest


def test_put_empty_file(az, tmp_path):
    ensure(az)
    path, _ = write_file(tmp_path, "empty", 0)
    assert cli(az.endpoint, "put", CONTAINER, "empty.zip", path).returncode == 0
    r = cli(az.endpoint, "head", CONTAINER, "empty.zip")
    assert r.returncode == 0 and int(r.stdout) == 0


def test_head_missing_blob(az):
    ensure(az)
    r = cli(az.endpoint, "head", CONTAINER, "never-written.zip")
    assert r.returncode == 2, r.stderr


def test_wrong_key_fails_without_leaking_secrets(az, tmp_path):
    ensure(az)
    path, _ = write_file(tmp_path, "k", 100)
    wrong = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A="
    r = cli(az.endpoint, "put", CONTAINER, "wrongkey.zip", path, env_extra={"AZBLOB_KEY": wrong})
    assert r.returncode == 1
    assert "403" in r.stderr and "AuthorizationFailure" in r.stderr
    assert "sig=" not in r.stderr and wrong not in r.stderr and "?" not in r.stderr
    r = cli(az.endpoint, "ensure", "other", env_extra={"AZBLOB_KEY": wrong})
    assert r.returncode == 1 and "403" in r.stderr


def test_unreachable_host_times_out_with_error(tmp_path):
    assert CLI and os.access(CLI, os.X_OK)
    path, _ = write_file(tmp_path, "u", 10)
    port = harness.free_port()  # reserved for this test: nothing listens there
    r = cli(f"http://127.0.0.1:{port}/devstoreaccount1", "put", CONTAINER, "x.zip", path)
    assert r.returncode == 1 and "put blob" in r.stderr
