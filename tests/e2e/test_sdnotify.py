"""End to end: fogate speaks systemd's notify protocol (proxy/sdnotify.c) to a real AF_UNIX
datagram socket this test binds and names in NOTIFY_SOCKET, the way systemd does for a
Type=notify unit: READY=1 once it listens, STATUS= lines, RELOADING=1 with MONOTONIC_USEC then
READY=1 around SIGHUP (also when the new config is refused), STOPPING=1 on SIGTERM. Every
datagram must come from fogate's main PID (systemd's NotifyAccess=main checks that)."""
import json
import os
import signal
import socket
import struct
import time

import pytest

import harness
import passkit
from harness import workdir  # noqa: F401


class NotifySocket:
    """A bound datagram socket receiving with the sender's credentials (SO_PASSCRED)."""

    def __init__(self, address):
        self.address = address  # "/path" or "@abstract"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.seen = []

    def next(self, timeout=harness.DEADLINE):
        """(pid, {key: value}) of the next datagram."""
        self.sock.settimeout(timeout)
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(struct.calcsize("3i")))
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("3i", payload)[0]
        text = data.decode()
        assert text.endswith("\n"), text
        fields = dict(line.split("=", 1) for line in text[:-1].split("\n"))
        self.seen.append(fields)
        return pid, fields

    def until(self, pid, key, timeout=harness.DEADLINE):
        """The next datagram holding `key`, skipping STATUS-only ones; all from `pid`."""
        deadline = time.monotonic() + timeout
        while True:
            sender, fields = self.next(max(0.1, deadline - time.monotonic()))
            assert sender == pid, (sender, pid, fields)
            if key in fields:
                return fields
            assert set(fields) == {"STATUS"}, fields  # nothing else may come in between

    def close(self):
        self.sock.close()
        if not self.address.startswith("@"):
            os.unlink(self.address)


@pytest.mark.parametrize("workers,abstract", [(1, False), (2, True)])
def test_ready_reloading_ready_stopping(workdir, sim, monkeypatch, workers, abstract):
    address = ("@fogate-notify-%d-%d" % (os.getpid(), workers) if abstract
               else os.path.join(workdir, "notify-%d" % workers))
    ns = NotifySocket(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    gate = None
    try:
        gate = passkit.Gate(workdir, sim, workers=workers)
        first = ns.until(gate.pid, "READY")
        assert first["READY"] == "1"
        assert first["STATUS"] == "listening on port %d with %d worker%s; fetching tokens" % (
            gate.port, workers, "s" if workers > 1 else "")
        # STATUS= follows what a person wants to know; the token arrives after READY=1
        harness.wait_until(lambda: "tokens ready for 1/1 environments" in
                           ns.next()[1].get("STATUS", ""), what="a STATUS= with the token")
        assert "ledger off" in ns.seen[-1]["STATUS"]

        before = time.monotonic_ns() // 1000
        os.kill(gate.pid, signal.SIGHUP)
        reloading = ns.until(gate.pid, "RELOADING")
        assert reloading["RELOADING"] == "1"
        usec = int(reloading["MONOTONIC_USEC"])
        assert before <= usec <= time.monotonic_ns() // 1000
        ready = ns.until(gate.pid, "READY")
        assert ready == {"READY": "1", "STATUS": "configuration reloaded"}

        # a config that does not load: still READY=1 (the old one runs), and the status says so
        with open(gate.config_path, "w") as f:
            f.write("{not json")
        os.kill(gate.pid, signal.SIGHUP)
        assert ns.until(gate.pid, "RELOADING")["RELOADING"] == "1"
        refused = ns.until(gate.pid, "READY")
        assert refused["STATUS"].startswith("reload refused"), refused
        assert gate.get("/healthz").status == 200

        os.kill(gate.pid, signal.SIGTERM)
        stopping = ns.until(gate.pid, "STOPPING")
        assert stopping["STOPPING"] == "1"
        assert gate.stop() == 0
        # the order systemd saw, with the STATUS-only datagrams left out
        states = [[k for k in f if k != "STATUS"] for f in ns.seen]
        assert [s for s in states if s] == [["READY"], ["RELOADING", "MONOTONIC_USEC"],
                                            ["READY"], ["RELOADING", "MONOTONIC_USEC"],
                                            ["READY"], ["STOPPING"]]
    finally:
        if gate:
            gate.stop()
        ns.close()


def test_unusable_notify_socket_is_logged_and_ignored(workdir, sim, monkeypatch):
    """A NOTIFY_SOCKET fogate cannot use (here a relative name) is said once in the log; fogate
    serves as without it."""
    monkeypatch.setenv("NOTIFY_SOCKET", "not-absolute")
    gate = passkit.Gate(workdir, sim)
    try:
        assert gate.get("/healthz").status == 200
        assert any("NOTIFY_SOCKET is not a socket path" in l["msg"] for l in gate.log_lines())
    finally:
        assert gate.stop() == 0
