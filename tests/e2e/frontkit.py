"""frontkit: start a real fogate on a free 127.0.0.1 port with a generated config, and talk
raw HTTP/1.1 to it over sockets. Used by the front-end end-to-end tests (tests/e2e)."""

import json
import os
import re
import signal
import socket
import time

import harness
import passkit

SECRET_ENV = "FOGATE_E2E_SECRET"
SIM_API_KEY = "front-key-0123456789abcdef"   # client1's key when pointed at a fosim


def fogate_bin():
    return harness.require_bin("FOGATE_BIN")


def make_config(port, limits=None, timeouts=None, sim=None):
    """A minimal valid config: one environment (secret from an env var), one job, one client;
    with sim, the environment is that fosim (point_at_sim)."""
    cfg = {
        "listen": "127.0.0.1:%d" % port,
        "public_base_url": "http://127.0.0.1:%d" % port,
        "log_level": "info",
        "environments": {
            "test": {
                "base_url": "http://127.0.0.1:9",
                "allow_http": True,
                "tenant": "6e6f5fa4-847c-4433-8909-76e4520510ec",
                "client_id": "de98fcb1-273a-4488-a307-0c070a259f1c",
                "client_secret_env": SECRET_ENV,
                # nothing may leave the machine: the token endpoint is a closed local port
                "token_endpoint": "http://127.0.0.1:9/t/oauth2/v2.0/token",
            }
        },
        "jobs": {
            "import1": {
                "environment": "test",
                "activity_id": "01ae0951-0077-47b1-9372-12557eb9b853",
                "direction": "import",
            }
        },
        "clients": {
            "client1": {
                "api_key_sha256": "04933c20bfcdfa01e1c26636ad9a8568c64050d0eb4404191a5a612dcf373022",
                "jobs": ["import1"],
            }
        },
        "limits": {"max_header_bytes": 4096, "max_headers": 20, "max_body_bytes": 1000,
                   "max_connections": 64},
        "timeouts": {"request_head_ms": 1000, "idle_ms": 2000, "shutdown_grace_ms": 3000},
    }
    cfg["limits"].update(limits or {})
    cfg["timeouts"].update(timeouts or {})
    if sim is not None:
        point_at_sim(cfg, sim)
    return cfg


def point_at_sim(cfg, sim):
    """Makes the environment a running fosim (harness.Fosim, default config): the import and
    export jobs are routable for client1 with SIM_API_KEY."""
    env = passkit.gate_config(0, sim)["environments"]["sim"]   # the pass-through tests' own
    env["client_secret_env"] = SECRET_ENV
    cfg["environments"]["test"] = env
    cfg["jobs"] = {
        "import1": {"environment": "test", "activity_id": harness.IMPORT_JOB,
                    "entity": "Customer groups", "direction": "import"},
        "export1": {"environment": "test", "activity_id": harness.EXPORT_JOB,
                    "direction": "export"},
    }
    cfg["clients"]["client1"] = {
        "api_key_sha256": passkit.sha(SIM_API_KEY),
        "jobs": ["import1", "export1"]}


def child_env(sim=None):
    env = dict(os.environ)
    env[SECRET_ENV] = harness.APP_SECRET if sim is not None else "not-a-real-secret"
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    return env


class Fogate:
    """One running fogate process (a harness.Proc); its stderr (JSON log lines) goes to a
    file. .proc is the Popen."""

    def __init__(self, tmp_path, limits=None, timeouts=None, preexec_fn=None, sim=None):
        self.tmp_path = tmp_path
        self.sim = sim
        self.proc = None
        for _ in range(5):  # the free port may be taken between probe and bind: retry
            self.port = harness.free_port()
            self.config_path = tmp_path / ("fogate-%d.json" % self.port)
            self.config_path.write_text(json.dumps(make_config(self.port, limits, timeouts, sim)))
            self.log_path = tmp_path / ("fogate-%d.log" % self.port)
            if self._start(preexec_fn):
                return
        raise RuntimeError("fogate did not start; log:\n" + self.log_text())

    def _start(self, preexec_fn):
        self.child = harness.Proc("fogate-%d" % self.port,
                                  [fogate_bin(), "-c", str(self.config_path)], str(self.tmp_path),
                                  env=child_env(self.sim), preexec_fn=preexec_fn)
        self.proc = self.child.popen

        def listening_or_exited():
            for line in self.log_lines():
                if line.get("msg") == "listening":
                    return line
            return {"exited": True} if self.proc.poll() is not None else None
        try:
            line = harness.wait_until(listening_or_exited, timeout=15, interval=0.02,
                                      what="fogate logging 'listening'")
        except TimeoutError as e:
            self.child.stop(timeout=0.1, sig=signal.SIGKILL)
            raise RuntimeError("fogate did not log 'listening' in time (%s):\n%s"
                               % (e, self.log_text())) from None
        if line.get("exited"):
            self.child.stop()
            return False
        self.address = line["address"]
        return True

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_lines(self):
        """Every complete stderr line parsed as JSON (a line that is not JSON fails)."""
        text = self.log_text()
        lines = text.split("\n")[:-1]  # the last piece may be a line still being written
        return [json.loads(line) for line in lines if line.strip()]

    def request_lines(self):
        return [l for l in self.log_lines() if l.get("msg") == "request"]

    def wait_log(self, pred, timeout=5.0):
        def match():
            return next((line for line in self.log_lines() if pred(line)), None)
        try:
            return harness.wait_until(match, timeout=timeout, interval=0.02, what="a log line")
        except TimeoutError as e:
            raise AssertionError("%s; log:\n%s" % (e, self.log_text())) from None

    def connect(self, timeout=5.0):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.settimeout(timeout)
        return s

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait(self, timeout=10.0):
        return self.proc.wait(timeout=timeout)

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        """SIGTERM, expect exit 0, and no sanitizer report in the log."""
        running = self.proc.poll() is None
        rc = self.child.stop(timeout=15)
        assert not (running and rc == -signal.SIGKILL), "fogate did not exit after SIGTERM"
        harness.assert_no_sanitizer_report(self.log_text())
        return rc


def read_until_close(sock, timeout=5.0, limit=1 << 20):
    """All bytes until the peer closes; fails if it does not close within timeout."""
    data = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("connection still open after %.1fs; got %r" % (timeout, data[:300]))
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            raise AssertionError("connection reset instead of closed; got %r" % data[:300])
        if not chunk:
            return data
        data += chunk
        assert len(data) <= limit, "too much data"


class Response(harness.Response):
    """A parsed raw response; headers: lower-case name -> list of values."""

    def header(self, name):
        values = self.headers.get(name.lower(), [])
        assert len(values) <= 1, "header %s appears %d times" % (name, len(values))
        return values[0] if values else None


STATUS_RE = re.compile(rb"^HTTP/1\.1 (\d{3}) ([^\r\n]*)$")


def parse_response(data, head_request=False):
    """Parses one response at the start of data. Returns (Response, rest) or (None, data)
    when data does not yet hold a whole response."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None, data
    lines = data[:end].split(b"\r\n")
    m = STATUS_RE.match(lines[0])
    assert m, "bad status line %r" % lines[0]
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        assert sep and name and name == name.strip(), "bad header line %r" % line
        headers.setdefault(name.decode().lower(), []).append(value.strip().decode())
    length = int(headers.get("content-length", ["0"])[0])
    if head_request or int(m.group(1)) in (100, 204, 304):
        length = 0
    body_start = end + 4
    if len(data) < body_start + length:
        return None, data
    body = data[body_start:body_start + length]
    resp = Response(int(m.group(1)), m.group(2).decode(), headers, body)
    return resp, data[body_start + length:]


class Reader:
    """Reads responses one by one from a keep-alive connection."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def next(self, head_request=False, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            resp, rest = parse_response(self.buf, head_request)
            if resp:
                self.buf = rest
                return resp
            left = deadline - time.monotonic()
            assert left > 0, "no complete response in %.1fs; got %r" % (timeout, self.buf[:300])
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed before a whole response; got %r" % self.buf[:300]
            self.buf += chunk


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def idle_connections(f, n):
    """n keep-alive connections to fogate `f`, one GET /healthz answered 200 on each, left
    open and idle, in the order opened. Returns [(socket, Reader)]."""
    conns = []
    for _ in range(n):
        s = f.connect(timeout=10)
        s.sendall(request("/healthz"))
        r = Reader(s)
        assert r.next(timeout=10).status == 200
        conns.append((s, r))
    return conns


def request(path="/healthz", method="GET", headers=None, body=b"", version="1.1"):
    lines = ["%s %s HTTP/%s" % (method, path, version), "Host: fogate.test"]
    lines += ["%s: %s" % kv for kv in (headers or {}).items()]
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def is_request_id(value):
    return bool(value) and re.fullmatch(r"[0-9a-f]{16}", value) is not None
