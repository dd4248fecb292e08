"""deploy/systemd/fogate.service as systemd itself judges it, offline: `systemd-analyze verify`
finds nothing to say, `systemd-analyze security` rates its exposure OK or better and not above
MAX_EXPOSURE (lower it when the unit gets tighter, never raise it to pass), and the unit agrees
with the package: every credential the packaged config names is loaded, LimitNOFILE covers
limits.max_connections."""
import json
import os
import re
import subprocess

import pytest

import harness

MAX_EXPOSURE = 1.1  # measured: 1.1 "OK" with systemd 252 (bookworm)
LEVELS_OK = ("SAFE", "OK")  # systemd's levels, best first: SAFE, OK, MEDIUM, EXPOSED, UNSAFE

UNIT = os.path.join(harness.src_root(), "deploy/systemd/fogate.service")
PACKAGED_CONFIG = os.path.join(harness.src_root(), "deploy/debian/fogate.json")


def unit_lines():
    with open(UNIT) as f:
        return [l.strip() for l in f if l.strip() and not l.lstrip().startswith("#")]


def directive(name):
    return [l.split("=", 1)[1] for l in unit_lines() if l.startswith(name + "=")]


def test_verify_is_silent(tmp_path):
    # verify wants ExecStart's binary to exist: a copy of the unit names the one just built
    # (the installed path is checked by the .deb test, which installs it)
    with open(UNIT) as f:
        text = f.read()
    assert "ExecStart=/usr/bin/fogate " in text
    copy = tmp_path / "fogate.service"
    copy.write_text(text.replace("/usr/bin/fogate", harness.require_bin("FOGATE_BIN")))
    r = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", (r.stdout, r.stderr)


def test_security_exposure_is_ok():
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", UNIT],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    m = re.search(r"Overall exposure level for fogate\.service: (\d+\.\d) (\w+)", r.stdout)
    assert m, r.stdout[-2000:]
    exposure, level = float(m.group(1)), m.group(2)
    assert level in LEVELS_OK, r.stdout
    assert exposure <= MAX_EXPOSURE, r.stdout
    # the settings the issue asks for by name are among those systemd credits
    for good in ("NoNewPrivileges=", "ProtectSystem=", "ProtectHome=", "PrivateTmp=",
                 "PrivateDevices=", "ProtectKernelTunables=", "ProtectKernelModules=",
                 "ProtectControlGroups=", "RestrictNamespaces=~user", "LockPersonality=",
                 "MemoryDenyWriteExecute=", "SystemCallArchitectures=", "User=/DynamicUser=",
                 "CapabilityBoundingSet=~CAP_SYS_ADMIN", "UMask="):
        assert re.search(r"✓ " + re.escape(good), r.stdout), good


def test_unit_settings():
    assert directive("Type") == ["notify"]
    assert directive("ExecReload") == ["/bin/kill -HUP $MAINPID"]
    assert directive("Restart") == ["on-failure"]
    assert directive("User") == ["fogate"]
    assert directive("CapabilityBoundingSet") == [""]
    assert directive("RestrictAddressFamilies") == ["AF_INET AF_INET6 AF_UNIX"]
    assert directive("SystemCallFilter")[0] == "@system-service"
    assert directive("UMask") == ["0077"]
    # how to bind below 1024 is written next to the empty bounding set
    with open(UNIT) as f:
        assert "AmbientCapabilities=CAP_NET_BIND_SERVICE" in f.read()


def test_unit_matches_the_packaged_config():
    with open(PACKAGED_CONFIG) as f:
        cfg = json.load(f)
    loaded = {c.split(":", 1)[0]: c.split(":", 1)[1] for c in directive("LoadCredential")}
    assert set(loaded) == {"client-secret", "token-cache-key", "redis-password"}
    assert all(p == "/etc/fogate/credentials/" + name for name, p in loaded.items())
    named = re.findall(r"\$\{CREDENTIALS_DIRECTORY\}/([\w.-]+)", json.dumps(cfg))
    assert named and set(named) <= set(loaded), named
    # one descriptor per client and per upstream connection, plus per-worker overhead
    nofile = int(directive("LimitNOFILE")[0])
    assert nofile >= 2 * cfg["limits"]["max_connections"] + 64 * 64, nofile
    # the drain fits in the stop timeout
    stop_s = int(directive("TimeoutStopSec")[0].rstrip("s"))
    assert stop_s * 1000 > cfg["timeouts"]["shutdown_grace_ms"]
