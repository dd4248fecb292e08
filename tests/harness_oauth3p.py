"""Start and stop a third-party OAuth 2.0 server (oauth2-mock-server from npm, driven by
tests/oauth3p/server.js) for token tests that must not depend on the D365 simulator.

    from harness_oauth3p import start_oauth3p
    o = start_oauth3p(lifetime=5, secret="s")   # or: with start_oauth3p() as o: ...
    o.token_url -> "http://127.0.0.1:<port>/token"
    o.stats()   -> {"token_requests": {grant: n}, "refused": n, "issued": [...], ...}
    o.issued_tokens(), o.jwks(), o.pid, o.port
    o.assertion(subject), o.federation(subject)   # workload identity federation issuer
    o.stop()

It listens on 127.0.0.1 only: on a port the kernel picks (port=0, read back from its first
stdout line) or on a given one (to bring a server back on the port fogate already points
at). It is stopped by PID. If node or the package is missing the start fails loudly with
the command that installs it; it is never skipped.
"""

import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request

from harness import (file_tail, spawn_logged, src_root, stop_popen, wait_listening,
                     write_secret_file)

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def _install_hint():
    return "npm ci --prefix " + os.path.join(src_root(), "tests")


def node_bin():
    """Path of node; raises RuntimeError saying what to install when it is missing."""
    path = shutil.which("node")
    if not path:
        raise RuntimeError("node is not installed (Node.js 18.12+ or 20 is needed for "
                           "oauth2-mock-server); then install the test tools with: "
                           + _install_hint())
    return path


def server_script():
    """Path of tests/oauth3p/server.js; raises RuntimeError when the package is missing."""
    tests = os.path.join(src_root(), "tests")
    pkg = os.path.join(tests, "node_modules", "oauth2-mock-server", "package.json")
    if not os.path.exists(pkg):
        raise RuntimeError(f"oauth2-mock-server is not installed ({pkg} missing). "
                           f"Install the test tools with: {_install_hint()}")
    return os.path.join(tests, "oauth3p", "server.js")


class OAuth3p:
    """A running oauth3p server. Owns its process and its log directory."""

    def __init__(self, proc, logdir):
        self.proc = proc
        self.pid = proc.pid
        self.port = 0
        self.logdir = logdir
        self.log_path = os.path.join(logdir, "oauth3p.out")

    @property
    def base_url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def token_url(self):
        return self.base_url + "/token"

    def _get_json(self, path):
        with urllib.request.urlopen(self.base_url + path, timeout=10) as r:
            return json.loads(r.read(8 << 20))

    def stats(self):
        """What the server saw (token requests per grant, refusals, issued tokens)."""
        return self._get_json("/_stats")

    def token_requests(self, grant="client_credentials"):
        return self.stats()["token_requests"].get(grant, 0)

    def issued_tokens(self):
        return [i["token"] for i in self.stats()["issued"]]

    def jwks(self):
        return self._get_json("/jwks")

    def assertion(self, subject, audience="api://AzureADTokenExchange"):
        """A JWT this server issues for `subject` with `audience`, as a Kubernetes service
        account token projected for workload identity federation (exp = now + lifetime)."""
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": audience,
                                       "subject": subject}).encode()
        with urllib.request.urlopen(self.token_url, form, timeout=10) as r:
            return json.loads(r.read(1 << 20))["access_token"]

    def federation(self, subject, audience="api://AzureADTokenExchange"):
        """A fosim federated identity credential trusting this server for `subject`."""
        return {"issuer": self.issuer(), "subject": subject, "audience": audience,
                "jwks": self.jwks()}

    def issuer(self):
        """The iss claim of the tokens this server issues."""
        return self._get_json("/.well-known/openid-configuration")["issuer"]

    def log(self):
        return file_tail(self.log_path)

    def stop(self):
        """Stops the server by PID (SIGTERM, then SIGKILL after STOP_TIMEOUT); idempotent."""
        stop_popen(self.proc, STOP_TIMEOUT)
        self.proc = None
        if self.logdir:
            shutil.rmtree(self.logdir, ignore_errors=True)
            self.logdir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _port_of(text):
    """The port in the first stdout line {"listening": PORT} once it is whole, else None;
    ValueError when that line is not such an object."""
    first, nl, _ = text.partition("\n")
    if not nl:
        return None
    try:
        return int(json.loads(first)["listening"])
    except KeyError as e:
        raise ValueError(f"no listening port in {first!r}") from e


def start_oauth3p(port=0, lifetime=3600, secret=None, shape="v2", timeout=START_TIMEOUT):
    """Starts the server and waits until it listens.

    port: 0 for a free one, or a given port. lifetime: token lifetime in seconds (exp claim
    and expires_in). secret: the only client_secret accepted (others get 401
    invalid_client), None to accept any. shape: "v2" (Entra v2 response: integers),
    "v1" (Entra v1: decimal strings, expires_on, resource) or "raw" (the package's own).
    Returns an OAuth3p; raises RuntimeError (with its output) if it does not come up.
    """
    cmd = [node_bin(), server_script(), "--port", str(port), "--lifetime", str(lifetime),
           "--shape", shape]
    logdir = tempfile.mkdtemp(prefix="fogate-oauth3p-")
    if secret is not None:
        # In a file (0600, in a 0700 directory), never on the command line (ps shows it).
        cmd += ["--secret-file", write_secret_file(logdir, "secret", secret)]
    proc = spawn_logged(cmd, os.path.join(logdir, "oauth3p.out"),
                        cwd=os.path.join(src_root(), "tests"))
    srv = OAuth3p(proc, logdir)
    got = wait_listening(proc, srv.log_path, _port_of, timeout)
    if got is None or (port and got != port):
        output = srv.log()
        srv.stop()
        raise RuntimeError(f"oauth3p did not start within {timeout:.0f}s: "
                           f"{' '.join(cmd)}\n{output}")
    srv.port = got
    return srv
