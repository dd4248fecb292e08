"""harness: shared helpers for fogate's end-to-end and conformance tests (stdlib + pytest).

Starts real processes (fosim, redis-server, Azurite, fogate) on free 127.0.0.1 ports, waits
for them with deadlines, stops them by PID, keeps their logs when a test failed and removes
the temporary directories otherwise. Small helpers get tokens and make HTTP requests.

Environment: FOSIM_BIN (simulator binary), FOGATE_BIN (gateway binary), FOGATE_SRC (repo).
"""
import base64
import http.client
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

import pytest

# Well-known identities of the default simulator config.
TENANT = "8c1f0a6e-2b7d-4c55-9f3e-6a1d2b3c4d5e"
OTHER_TENANT = "11111111-2222-4333-8444-555555555555"
APP_ID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
APP_SECRET = "s3cr3t~value.with+special&chars"
UNMAPPED_APP_ID = "6ba7b810-9dad-41d1-80b4-00c04fd430c8"     # no D365 user: 403
UNAUTHORIZED_APP_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"  # mapped, not on job policies
EXPIRED_APP_ID = "9b2f1c4a-0d3e-4f5a-8b6c-7d8e9f0a1b2c"      # secret expired
IMPORT_JOB = "6d31e09f-0249-459f-94f0-aad9c2c47b64"
EXPORT_JOB = "b0b5401e-56ca-4dc8-b566-84389a001236"

DEADLINE = 20.0
# For a helper process to come up: a deadline against a hang, not an expectation (a
# sanitizer build of fosim makes its signing key at start, slowly on a loaded machine).
START_DEADLINE = 60.0
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def port_range():
    """The ports tests pick from: below the kernel's ephemeral range, so that no outgoing
    connection (of fogate, a simulator, anything) can take a port a test chose but has not
    bound yet; above it if the range starts too low."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return (10000, low) if low > 11000 else (high + 1, 65536)


PORT_LOCKS = []   # reservations held until this process exits (the kernel drops the locks)


def free_port():
    """A TCP port free on 127.0.0.1, reserved for this process: tests that run at the same
    time (ctest -j) never pick the same port. The reservation is an flock on a file named
    after the port in a per-user directory, held until the process exits."""
    import fcntl
    import random
    d = os.path.join(tempfile.gettempdir(), "fogate-test-ports-%d" % os.getuid())
    os.makedirs(d, mode=0o700, exist_ok=True)
    lo, hi = port_range()
    for _ in range(2000):
        port = random.randrange(lo, hi)
        fd = os.open(os.path.join(d, str(port)), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                os.close(fd)
                continue
        PORT_LOCKS.append(fd)
        return port
    raise RuntimeError("no free port in %d-%d" % (lo, hi))


def wait_until(fn, timeout=DEADLINE, interval=0.05, what="condition"):
    """Polls fn() until it returns a truthy value; raises TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what} (last error: {last!r})")


def wait_port(port, timeout=DEADLINE):
    def up():
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    wait_until(up, timeout, what=f"port {port}")


def require_bin(env, default=None):
    """The path in $env (or default); fails the test loudly when it is missing."""
    path = os.environ.get(env) or default
    if not path or not os.path.exists(path):
        pytest.fail(f"{env} is not set or does not exist ({path!r}); run the tests via ctest")
    return path


def src_root():
    """The repository root: $FOGATE_SRC, or the parent of this file's folder."""
    return os.environ.get("FOGATE_SRC") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_secret_file(directory, name, value):
    """Writes value (and a newline) to directory/name, created with mode 0600; returns the
    path. Hand secrets to started processes this way (or by environment), never on their
    command line, which every local user can read (ps, /proc/PID/cmdline)."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return path


def cmdline(pid):
    """The command line of process pid as one string (arguments joined by spaces)."""
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode("utf-8", "replace")


def spawn_logged(cmd, log_path, cwd=None):
    """Starts cmd (a tool such as a node server) with stdin from /dev/null and stdout and
    stderr written to log_path; returns the Popen (the caller stops it: stop_popen)."""
    with open(log_path, "wb") as out:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, cwd=cwd)


def wait_listening(proc, log_path, port_of, timeout, interval=0.05):
    """Reads log_path again every interval until port_of(text) returns a port (None: not
    yet). Returns the port, or None when proc exits, port_of raises ValueError (a start-up
    line it cannot read) or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        with open(log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        try:
            port = port_of(text)
        except ValueError:
            return None
        if port:
            return port
        time.sleep(interval)
    return None


def stop_popen(proc, timeout=10.0):
    """Stops proc by PID (SIGTERM, then SIGKILL after timeout); a no-op once it has exited."""
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def file_tail(path, limit=8000):
    """The last limit characters of a log file ("" if it cannot be read)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-limit:]
    except OSError:
        return ""


class Proc:
    """A child process started in its own process group, logs in workdir."""

    def __init__(self, name, argv, workdir, env=None, stdout_pipe=False, preexec_fn=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(workdir, f"{name}.log")
        self._log = open(self.log_path, "wb")
        self.popen = subprocess.Popen(
            argv, stdout=subprocess.PIPE if stdout_pipe else self._log, stderr=self._log,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True, preexec_fn=preexec_fn)
        self.pid = self.popen.pid

    def read_line(self, timeout=DEADLINE):
        """One line of stdout (stdout_pipe=True) within timeout."""
        out = self.popen.stdout
        buf = b""
        deadline = time.monotonic() + timeout
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.popen.poll() is not None and not select.select([out], [], [], 0)[0]:
                raise RuntimeError(f"{self.name} printed no line; log:\n{self.log_tail()}")
            r, _, _ = select.select([out], [], [], left)
            if r:
                ch = os.read(out.fileno(), 1)
                if not ch:
                    raise RuntimeError(f"{self.name} closed stdout; log:\n{self.log_tail()}")
                buf += ch
        return buf.decode()

    def alive(self):
        return self.popen.poll() is None

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """Signals the process by PID and waits; returns its exit code (kills on timeout)."""
        if self.popen.poll() is None:
            os.kill(self.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self.popen.stdout:
            self.popen.stdout.close()
        self._log.close()
        return self.popen.returncode

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


def assert_no_sanitizer_report(text, who="fogate"):
    """Fails when a log holds an ASan/LSan/UBSan report."""
    for mark in SANITIZER_MARKS:
        assert mark not in text, f"sanitizer report in {who}'s log:\n{text[-5000:]}"


class Workdir:
    """A temporary directory removed on success and kept (path printed) on failure."""

    def __init__(self, prefix="fogate-test-"):
        self.path = tempfile.mkdtemp(prefix=prefix)

    def cleanup(self, failed):
        if failed or os.environ.get("FOGATE_KEEP_LOGS"):
            sys.stderr.write(f"\n[harness] logs kept in {self.path}\n")
        else:
            shutil.rmtree(self.path, ignore_errors=True)


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers          # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


def request(base_url, method, path, body=None, headers=None, token=None, timeout=30.0):
    """One HTTP request on a fresh connection; returns a Response. body: bytes, str or dict."""
    u = urllib.parse.urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    hdrs = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json; charset=utf-8")
    elif isinstance(body, str):
        body = body.encode()
    if token:
        hdrs["Authorization"] = "Bearer " + token
    try:
        conn.request(method, path, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, r.reason, r.getheaders(), data)
    finally:
        conn.close()


def default_sim_config(**overrides):
    """The default fosim config: one environment tenant with four apps, an import job and an
    export job. Keyword arguments override top-level keys."""
    cfg = {
        "tenant": TENANT,
        "tenants": [
            {"id": TENANT, "apps": [
                {"client_id": APP_ID, "secret": APP_SECRET, "user": "Admin"},
                {"client_id": UNMAPPED_APP_ID, "secret": APP_SECRET, "user": None},
                {"client_id": UNAUTHORIZED_APP_ID, "secret": APP_SECRET, "user": "Batch"},
                {"client_id": EXPIRED_APP_ID, "secret": APP_SECRET, "user": "Admin",
                 "secret_expired": True},
            ]},
            {"id": OTHER_TENANT, "apps": [
                {"client_id": APP_ID, "secret": APP_SECRET, "user": "Admin"},
            ]},
        ],
        "jobs": [
            {"activity_id": "{" + IMPORT_JOB.upper() + "}", "direction": "import",
             "entity": "Customer groups", "apps": [APP_ID, UNMAPPED_APP_ID]},
            {"activity_id": EXPORT_JOB, "direction": "export", "entity": "Customers V3",
             "apps": [APP_ID, UNMAPPED_APP_ID]},
        ],
        "token_lifetime": 3599,
        "enqueued_secs": 0.3,
        "processing_secs": 0.3,
    }
    cfg.update(overrides)
    return cfg


class Fosim:
    """A running fosim. Use start_fosim() or the `fosim` fixture."""

    def __init__(self, workdir, config=None, extra_args=()):
        self.workdir = workdir
        self.config = config or default_sim_config()
        self.config_path = os.path.join(workdir, "fosim.json")
        with open(self.config_path, "w") as f:
            json.dump(self.config, f)
        data_dir = os.path.join(workdir, "fosim-data")
        argv = [require_bin("FOSIM_BIN"), "--config", self.config_path, "--listen",
                "127.0.0.1:0", "--data-dir", data_dir, *extra_args]
        self.proc = Proc("fosim", argv, workdir, stdout_pipe=True)
        line = json.loads(self.proc.read_line(timeout=START_DEADLINE))
        self.base_url = line["base_url"]
        self.hostport = line["listening"]
        self.port = int(self.hostport.rsplit(":", 1)[1])
        wait_until(lambda: self.get("/_sim/healthz").status == 200, START_DEADLINE,
                   what="fosim healthz")

    # -- HTTP --
    def request(self, method, path, body=None, headers=None, token=None, timeout=30.0):
        return request(self.base_url, method, path, body, headers, token, timeout)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    # -- Entra ID --
    def token_response(self, client_id=APP_ID, secret=APP_SECRET, v2=False, resource=None,
                       tenant=TENANT, extra=None):
        resource = resource if resource is not None else self.base_url
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": secret}
        if v2:
            form["scope"] = resource + "/.default"
        else:
            form["resource"] = resource
        form.update(extra or {})
        path = f"/{tenant}/oauth2/v2.0/token" if v2 else f"/{tenant}/oauth2/token"
        return self.post(path, urllib.parse.urlencode(form),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})

    def token(self, client_id=APP_ID, secret=APP_SECRET, **kw):
        """A valid access token (asserts the token call succeeded)."""
        r = self.token_response(client_id, secret, **kw)
        assert r.status == 200, r
        return r.json()["access_token"]

    # -- control API --
    def ctl(self, method, path, body=None):
        r = self.request(method, "/_sim/" + path.lstrip("/"), body)
        assert r.status < 300, r
        return r.json() if r.body else None

    def counters(self):
        return self.ctl("GET", "counters")

    def reset(self):
        self.ctl("POST", "reset")

    def configure(self, **patch):
        return self.ctl("POST", "config", patch)

    def advance(self, seconds):
        return self.ctl("POST", "clock", {"advance": seconds})

    def fault(self, **rule):
        return self.ctl("POST", "faults", rule)

    def clear_faults(self):
        self.ctl("DELETE", "faults")

    def feed_export(self, data, activity=EXPORT_JOB):
        """Puts one export message with `data` (bytes) on a job; returns its description."""
        r = self.request("POST", f"/_sim/exports/{activity}", data)
        assert r.status == 200, r
        return r.json()

    def stop(self):
        return self.proc.stop()


def start_fosim(workdir, config=None, extra_args=()):
    return Fosim(workdir, config, extra_args)


def start_redis(workdir, extra_conf=""):
    """redis-server on a free port, no persistence. Returns Proc with .port."""
    port = free_port()
    conf = os.path.join(workdir, f"redis-{port}.conf")
    with open(conf, "w") as f:
        f.write(f"port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                f"dir {workdir}\n{extra_conf}\n")
    exe = shutil.which("redis-server") or "/usr/bin/redis-server"
    p = Proc(f"redis-{port}", [require_bin("REDIS_SERVER_BIN", exe), conf], workdir)
    p.port = port
    wait_port(port, START_DEADLINE)
    return p


class Resp:
    """A minimal RESP client on 127.0.0.1:port (stdlib only). Replies: simple strings as
    str, errors as RuntimeError objects (returned, not raised), integers, bulk strings as str
    (bytes with decode=False), arrays as lists, nil as None."""

    def __init__(self, port, timeout=5.0, decode=True):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")
        self.decode = decode

    def call(self, *args):
        out = [f"*{len(args)}\r\n".encode()]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(b), b))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _read(self):
        line = self.f.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("connection closed")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode(errors="replace") if self.decode else data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ValueError(f"bad RESP line {line!r}")

    def close(self):
        self.f.close()
        self.sock.close()


def resp(port, *args, decode=True):
    """One command on a fresh connection (see Resp)."""
    c = Resp(port, decode=decode)
    try:
        return c.call(*args)
    finally:
        c.close()


def start_azurite(workdir):
    """Azurite's blob service (see harness_azurite): an object with endpoint, account, key and
    stop(). Fails loudly (never skips) if Azurite is not installed."""
    import harness_azurite
    location = os.path.join(workdir, "azurite")
    os.makedirs(location, exist_ok=True)
    return harness_azurite.start_azurite(location=location)


def sim_environment(sim, secret_env):
    """A fogate "environments" entry for a started fosim: its base URL over plain HTTP, the
    test tenant and app, the secret read from $secret_env, Entra v2 tokens from fosim."""
    return {
        "base_url": sim.base_url,
        "allow_http": True,
        "tenant": TENANT,
        "client_id": APP_ID,
        "client_secret_env": secret_env,
        "token_endpoint": f"{sim.base_url}/{TENANT}/oauth2/v2.0/token",
    }


def azurite_sim_config(az):
    """The "azurite" block of a fosim config for a started Azurite."""
    return {"endpoint": az.endpoint, "name": az.account, "key": az.key}


def write_fogate_config(path, cfg):
    """Writes a fogate config. With FOGATE_TEST_UPSTREAM_CLIENT set (CTest's *_curl
    entries) it gets that upstream.client unless it names one; `cfg` is not changed."""
    client = os.environ.get("FOGATE_TEST_UPSTREAM_CLIENT")
    if client and "client" not in cfg.get("upstream", {}):
        cfg = dict(cfg, upstream=dict(cfg.get("upstream", {}), client=client))
    with open(path, "w") as f:
        json.dump(cfg, f)


def start_fogate(workdir, config_path, extra_args=(), ready_path="/healthz", port=None):
    """The fogate binary with a config file; waits until GET ready_path answers 200 on port."""
    argv = [require_bin("FOGATE_BIN"), "--config", config_path, *extra_args]
    p = Proc("fogate", argv, workdir)
    if port:
        p.port = port
        wait_until(lambda: request(f"http://127.0.0.1:{port}", "GET", ready_path, timeout=2)
                   .status == 200, what="fogate ready")
    return p


@pytest.fixture(scope="module")
def workdir(request):
    """A module-wide Workdir, kept when any test of the session failed."""
    w = Workdir()
    yield w.path
    w.cleanup(request.session.testsfailed > 0)


@pytest.fixture(scope="module")
def fosim(workdir):
    """A fosim with the default config, shared by a test module. Asserts a clean SIGTERM."""
    sim = start_fosim(workdir)
    yield sim
    rc = sim.stop()
    assert rc == 0, f"fosim exited {rc}; log:\n{sim.proc.log_tail()}"


def b64url_json(part):
    """Decodes one base64url JWT part into a dict."""
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def jwt_claims(token):
    return b64url_json(token.split(".")[1])
