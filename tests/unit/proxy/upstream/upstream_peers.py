"""upstream_peers: real peers for the upstream client tests (test_upstream*.py).

- Nginx: Debian's nginx on free 127.0.0.1 ports (plain and TLS) with a generated config:
  /files/ static files, /upload/ accepting PUT (dav_methods) into a temp dir, /slow/
  rate-limited files, /redirect answering 302, /gz/ gzip-encoding when asked; an access
  log with $connection.
- RawServer: a tiny socket server that answers each connection with a scripted reply
  (truncated bodies, stalls, huge heads, chunked bodies) and records the requests.
- run_cli: runs the C driver (UPSTREAM_CLI) and parses its JSON lines.
"""
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time

import harness

NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
error_log {d}/error.log info;
pid {d}/nginx.pid;
events {{ worker_connections 128; }}
http {{
    log_format conn '$connection $connection_requests $request_method $uri $status';
    access_log {d}/access.log conn;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy_temp;
    fastcgi_temp_path {d}/fastcgi_temp;
    uwsgi_temp_path {d}/uwsgi_temp;
    scgi_temp_path {d}/scgi_temp;
    keepalive_timeout 60s;
    keepalive_requests 1000;
    sendfile on;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        ssl_certificate {d}/server.crt;
        ssl_certificate_key {d}/server.key;
        root {d}/www;
        location /files/ {{ }}
        location /upload/ {{
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
        }}
        location /slow/ {{ limit_rate 2k; }}
        location = /redirect {{ return 302 /elsewhere; }}
        location /gz/ {{ gzip on; gzip_types *; gzip_min_length 1; }}
    }}
}}
"""


def make_certs(d):
    """A CA and a server certificate for 127.0.0.1/localhost signed by it, in d."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *a: subprocess.run(["openssl", *a], cwd=d, check=True, capture_output=True)
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=fogate-upstream-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext")


def write_random_file(path, size):
    """Writes `size` random bytes to path; returns their sha256 hex."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(left, 1 << 20))
            h.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return h.hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


class Nginx:
    def __init__(self, workdir):
        self.dir = workdir
        self.www = os.path.join(workdir, "www")
        for sub in ("www/files", "www/upload", "www/slow", "www/gz", "client_body"):
            os.makedirs(os.path.join(workdir, sub), exist_ok=True)
        make_certs(workdir)
        self.ca = os.path.join(workdir, "ca.crt")
        self.port = harness.free_port()
        self.tls_port = harness.free_port()
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(d=workdir, port=self.port, tls_port=self.tls_port))
        self.proc = harness.Proc("nginx", ["/usr/sbin/nginx", "-p", workdir + "/", "-e",
                                           os.path.join(workdir, "error.log"), "-c", conf],
                                 workdir)
        harness.wait_port(self.port)
        harness.wait_port(self.tls_port)

    def url(self, path, tls=False):
        if tls:
            return f"https://127.0.0.1:{self.tls_port}{path}"
        return f"http://127.0.0.1:{self.port}{path}"

    def add_file(self, rel, size):
        """Creates www/<rel> with random content; returns its sha256."""
        return write_random_file(os.path.join(self.www, rel), size)

    def access_log(self):
        """Lines of the access log as [connection, connection_requests, method, uri, status]."""
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                return [line.split() for line in f if line.strip()]
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.stop()


class RawServer:
    """Accepts connections on a free port; each one is handed to `script(conn, req, rest)`
    after the request head was read: req is {"head": text, "body": bytes} (recorded in
    .requests; scripts that read a body store it there), rest the bytes read past the head."""

    def __init__(self, script):
        self.script = script
        self.requests = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.threads = []
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            head, rest = read_head(conn)
            if head is not None:
                req = {"head": head, "body": b""}
                self.requests.append(req)
                self.script(conn, req, rest)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self):
        self.stopping = True
        self.accepter.join(5)
        self.sock.close()
        for t in self.threads:
            t.join(35)


def read_head(conn):
    """Reads up to the blank line; returns (head text, bytes after it), (None, b"") at EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            return None, b""
        buf += chunk
        if len(buf) > 1 << 20:
            raise OSError("request head too large")
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


def read_body(conn, head, rest):
    """Reads the request body announced by head (Content-Length or chunked) after `rest`."""
    fields = {k.lower(): v for k, v in head_fields(head)}
    buf = rest

    def need(n):
        nonlocal buf
        while len(buf) < n:
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("request body cut short")
            buf += chunk

    if "content-length" in fields:
        n = int(fields["content-length"])
        need(n)
        return buf[:n]
    if fields.get("transfer-encoding", "").lower() != "chunked":
        return b""
    body = b""
    while True:
        while b"\r\n" not in buf:
            need(len(buf) + 1)
        line, buf = buf.split(b"\r\n", 1)
        size = int(line.split(b";")[0], 16)
        need(size + 2)
        body += buf[:size]
        buf = buf[size + 2:]
        if size == 0:
            return body


def head_fields(head):
    """[(name, value)] of a request head, in order."""
    lines = head.split("\r\n")[1:]
    return [tuple(p.strip() for p in line.split(":", 1)) for line in lines]


def reset(conn):
    """Closes with RST instead of FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def run_cli(*args, timeout=240, env=None):
    """Runs the driver; returns (transfer lines, summary, elapsed seconds). The arguments go
    on its stdin ("upstream_cli -"): signed URLs, bodies and headers stay off its command
    line. UPSTREAM_CLI_CLIENT=native in the environment runs every test on the own HTTP/1.1
    client (CTest's *_native entries)."""
    cli = harness.require_bin("UPSTREAM_CLI")
    if os.environ.get("UPSTREAM_CLI_CLIENT"):
        args = ("--client", os.environ["UPSTREAM_CLI_CLIENT"], *args)
    e = dict(os.environ)
    # A small quarantine keeps ASan's own memory from hiding (or faking) the RSS bound.
    e["ASAN_OPTIONS"] = e.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4:detect_leaks=1"
    if env:
        e.update(env)
    t0 = time.monotonic()
    p = subprocess.run([cli, "-"], input=b"\0".join(a.encode() for a in args),
                       capture_output=True, timeout=timeout, env=e)
    elapsed = time.monotonic() - t0
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, f"driver exited {p.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    summary = [x for x in lines if x.get("summary")]
    assert len(summary) == 1, out
    return [x for x in lines if not x.get("summary")], summary[0], elapsed
