"""End to end: the admin listener (admin.listen) beside the client listener: /healthz,
/readyz, /admin/status and /metrics there; /metrics and /admin/* never on the client
listener; the route table's 404 and 405; a token file that is not a usable secret stops
fogate at start."""
import json
import os
import subprocess

import harness
import passkit
from harness import workdir  # noqa: F401


def test_admin_routes_are_on_the_admin_listener_only(workdir, sim):
    g = passkit.Gate(workdir, sim)
    try:
        for path in ("/healthz", "/readyz", "/admin/status"):
            r = g.admin(path)
            assert r.status == 200, (path, r)
        st = g.admin("/admin/status").json()
        assert st["environments"][0]["environment"] == "sim" and st["workers"] == 1
        # load balancers keep probing the client port
        assert g.get("/healthz").status == 200 and g.get("/readyz").status == 200
        for path in ("/admin/status", "/metrics"):
            r = g.get(path)
            assert r.status == 404 and r.json()["code"] == "not_found", (path, r)
        r = g.admin("/nope")
        assert r.status == 404 and r.json()["code"] == "not_found"
        r = g.admin("/admin/status", method="POST")
        assert r.status == 405 and r.header("Allow") == "GET, HEAD"
        log = g.log_lines()
        addrs = [l for l in log if l.get("msg") == "listening"]
        assert {l.get("listener") for l in addrs} == {None, "admin"}
        assert any(l["address"] == "127.0.0.1:%d" % g.admin_port for l in addrs)
    finally:
        assert g.stop() == 0


def test_admin_token_file_is_read_as_a_secret(workdir, sim):
    token = os.path.join(workdir, "admin.token")
    with open(token, "w") as f:
        f.write("admin-token-0123456789abcdef\n")
    os.chmod(token, 0o644)
    port, aport = harness.free_port(), harness.free_port()
    cfg = passkit.gate_config(port, sim, admin_port=aport)
    cfg["admin"]["token_file"] = token
    path = os.path.join(workdir, "admin-token.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    env = dict(os.environ, **{passkit.SECRET_ENV: harness.APP_SECRET})
    r = subprocess.run([harness.require_bin("FOGATE_BIN"), "-c", path], env=env,
                       capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode != 0 and "admin.token_file" in out, out
    assert "admin-token-0123456789abcdef" not in out
