"""Start and stop a real Azurite blob service (the Azure Storage emulator, from npm) for tests.

    from harness_azurite import start_azurite
    az = start_azurite()            # or: with start_azurite() as az: ...
    az.endpoint  -> "http://127.0.0.1:<port>/devstoreaccount1"
    az.account, az.key, az.pid, az.port, az.location
    az.stop()

Azurite listens on 127.0.0.1 on a port the kernel picks (--blobPort 0, read back from its
start-up line, so two test runs never race for a port), always with --disableTelemetry, keeps
its data in a temporary directory removed on stop, and is stopped by PID. If it is not
installed the start fails loudly with the command that installs it; it is never skipped.
"""

import os
import re
import shutil
import socket
import tempfile

from harness import file_tail, spawn_logged, src_root, stop_popen, wait_listening

# The well-known development account every Azurite has (documented by Microsoft; not a secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
_LISTEN_RE = re.compile(r"listens on http://127\.0\.0\.1:(\d+)")


def azurite_bin():
    """Path of azurite-blob; raises RuntimeError saying how to install it when missing."""
    path = os.path.join(src_root(), "tests", "node_modules", ".bin", "azurite-blob")
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            f"Azurite is not installed ({path} missing). Install the test tools with: "
            f"npm ci --prefix {os.path.join(src_root(), 'tests')}")
    return path


class Azurite:
    """A running Azurite blob service. Owns its process and its data directory."""

    def __init__(self, proc, port, location, owns_location, log_path):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.host = "127.0.0.1"
        self.account = ACCOUNT
        self.key = KEY
        self.endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
        self.location = location
        self.log_path = log_path
        self._owns_location = owns_location

    def log(self):
        """Azurite's stdout/stderr so far (for failure messages)."""
        return file_tail(self.log_path)

    def stop(self):
        """Stops Azurite by PID (SIGTERM, then SIGKILL after STOP_TIMEOUT); idempotent."""
        stop_popen(self.proc, STOP_TIMEOUT)
        self.proc = None
        if self._owns_location and self.location:
            shutil.rmtree(self.location, ignore_errors=True)
            self.location = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _answers(port):
    """True when an HTTP request to the port gets any HTTP status line back."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(2)
            s.sendall(f"GET /{ACCOUNT}?comp=list HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Connection: close\r\n\r\n".encode())
            return s.recv(64).startswith(b"HTTP/1.1 ")
    except OSError:
        return False


def _port_of(text):
    """The port of Azurite's start-up line once that port answers HTTP, else None."""
    m = _LISTEN_RE.search(text)
    if m and _answers(int(m.group(1))):
        return int(m.group(1))
    return None


def start_azurite(location=None, debug_log=None, timeout=START_TIMEOUT):
    """Starts Azurite's blob service and waits until it answers HTTP.

    location: data directory (default: a new temporary one, removed on stop).
    debug_log: path for Azurite's --debug log (it shows each SAS string-to-sign), or None.
    Returns an Azurite; raises RuntimeError (with Azurite's output) if it does not come up.
    """
    binary = azurite_bin()
    owns = location is None
    if owns:
        location = tempfile.mkdtemp(prefix="fogate-azurite-")
    log_path = os.path.join(location, "azurite.out")
    cmd = [binary, "--blobHost", "127.0.0.1", "--blobPort", "0", "--location", location,
           "--disableTelemetry", "--skipApiVersionCheck", "--silent"]
    if debug_log:
        cmd += ["--debug", debug_log]
    proc = spawn_logged(cmd, log_path)
    az = Azurite(proc, 0, location, owns, log_path)
    port = wait_listening(proc, log_path, _port_of, timeout, interval=0.1)
    if port is None:
        output = az.log()
        az.stop()
        raise RuntimeError(f"Azurite did not start within {timeout:.0f}s: {' '.join(cmd)}\n{output}")
    az.port = port
    az.endpoint = f"http://127.0.0.1:{port}/{ACCOUNT}"
    return az
