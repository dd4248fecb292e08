"""The OCI image (deploy/container/Containerfile) built from this tree and run against fosim.

No registry is reachable here, so the base image is made on the spot: tests/ship/mkrootfs.sh
(mmdebstrap, cached outside the tree) -> `podman import` -> `deploy/container/build.sh`
(buildah bud --isolation chroot) -> `buildah from` + `buildah run --isolation chroot` with the
image's own ENTRYPOINT and CMD, on the host's network, against a fosim on loopback. The image
is removed at the end; only the cached root stays."""

import hashlib
import json
import os
import re
import signal
import subprocess
import time

import pytest

import harness
from harness import fosim, workdir  # noqa: F401

UID = 10001
TAG = f"localhost/fogate-test:{os.getpid()}"
KEY = "container-client-key-0123456789abcdef"
MAX_IMAGE_MB = 160   # base (~78 MB, like debian:bookworm-slim) + runtime libraries + fogate


def run(*argv, timeout=600, **kw):
    """Runs a tool; its output in the failure message when it fails."""
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert p.returncode == 0, f"{argv[:3]} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


def src():
    return harness.require_bin("FOGATE_SRC")


@pytest.fixture(scope="module")
def base_image():
    """The cached bookworm root imported as a local image named after its cache key."""
    tar = run(os.path.join(src(), "tests", "ship", "mkrootfs.sh"), timeout=900).strip()
    key = re.search(r"bookworm-minbase-([0-9a-f]+)\.tar$", tar).group(1)
    name = f"localhost/fogate-test-base:{key}"
    if subprocess.run(["podman", "image", "exists", name]).returncode != 0:
        run("podman", "import", "--quiet", tar, name)
    # bases of older roots (another script version): only this test makes them
    for old in run("podman", "images", "--format", "{{.Repository}}:{{.Tag}}",
                   "localhost/fogate-test-base").split():
        if old != name:
            subprocess.run(["podman", "rmi", old], capture_output=True)
    return name


@pytest.fixture(scope="module")
def image(base_image, workdir):  # noqa: F811
    """The image built from this tree (removed at the end); its `podman inspect` document."""
    log = os.path.join(workdir, "build.log")
    with open(log, "w") as out:
        rc = subprocess.run([os.path.join(src(), "deploy", "container", "build.sh"), "-t", TAG,
                             "--isolation", "chroot", "--build-arg", f"BASE={base_image}"],
                            stdout=out, stderr=subprocess.STDOUT, timeout=1200).returncode
    assert rc == 0, harness.file_tail(log)
    try:
        yield json.loads(run("podman", "image", "inspect", TAG))[0]
    finally:
        subprocess.run(["podman", "rmi", "--force", TAG], capture_output=True)


def test_image_metadata_and_size(image):
    cfg = image["Config"]
    labels = cfg["Labels"]
    with open(os.path.join(src(), "CMakeLists.txt")) as f:
        version = re.search(r"project\(fogate VERSION ([0-9.]+)", f.read()).group(1)
    assert labels["org.opencontainers.image.version"] == version
    head = subprocess.run(["git", "-C", src(), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    if head.returncode == 0:   # a source tarball has no git: then "unknown"
        assert labels["org.opencontainers.image.revision"].split("-")[0] == head.stdout.strip()
    for k in ("source", "licenses"):
        assert labels[f"org.opencontainers.image.{k}"], k
    assert cfg["User"] == f"{UID}:{UID}"          # numeric: runAsNonRoot can check it
    assert cfg["StopSignal"] == "SIGTERM"
    assert "8080/tcp" in cfg["ExposedPorts"]
    assert cfg["Entrypoint"] == ["/usr/bin/fogate"]
    assert cfg["Cmd"] == ["--config", "/etc/fogate/fogate.json"]
    mb = image["Size"] / 1e6
    print(f"\n[container] image {TAG}: {mb:.1f} MB")
    assert mb < MAX_IMAGE_MB, f"image is {mb:.1f} MB"


class Container:
    """A working container of the image; run() starts its ENTRYPOINT + CMD under buildah run."""

    def __init__(self, image, workdir, mounts):
        self.image = image
        self.name = f"fogate-test-{os.getpid()}"
        subprocess.run(["buildah", "rm", self.name], capture_output=True)  # a crashed run's
        run("buildah", "from", "--pull-never", "--name", self.name, TAG)
        self.argv = ["buildah", "run", "--isolation", "chroot"]
        for host, inside in mounts:
            self.argv += ["--volume", f"{host}:{inside}:ro"]
        self.argv += [self.name, "--", *image["Config"]["Entrypoint"], *image["Config"]["Cmd"]]
        self.proc = harness.Proc("fogate-container", self.argv, workdir)

    def fogate_pid(self):
        """fogate's PID on the host (buildah's chroot isolation shares the PID namespace)."""
        def find():
            todo, seen = [self.proc.pid], []
            while todo:
                pid = todo.pop()
                kids = []
                try:
                    for task in os.listdir(f"/proc/{pid}/task"):   # buildah is threaded
                        with open(f"/proc/{pid}/task/{task}/children") as f:
                            kids += [int(k) for k in f.read().split()]
                    with open(f"/proc/{pid}/comm") as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                if comm == "fogate":
                    seen.append(pid)
                todo += kids
            return seen[0] if seen else None
        return harness.wait_until(find, what="fogate inside the container")

    def remove(self):
        subprocess.run(["buildah", "rm", self.name], capture_output=True)


def write_config(etc, sim, port):
    """/etc/fogate for the container: the config and a client secret file, owned by the
    image's user (as a Kubernetes fsGroup or a chown on the host would make them)."""
    os.makedirs(os.path.join(etc, "secrets"))
    secret = os.path.join(etc, "secrets", "client-secret")
    with open(secret, "w") as f:
        f.write(harness.APP_SECRET + "\n")
    env = harness.sim_environment(sim, "unused")
    del env["client_secret_env"]
    env["client_secret_file"] = "secrets/client-secret"   # relative to /etc/fogate
    cfg = {
        "listen": f"127.0.0.1:{port}", "public_base_url": f"http://127.0.0.1:{port}",
        "environments": {"sim": env},
        "jobs": {"groups-in": {"environment": "sim", "activity_id": harness.IMPORT_JOB,
                               "entity": "Customer groups", "company": "usmf",
                               "direction": "import"}},
        "clients": {"shop": {"api_key_sha256": hashlib.sha256(KEY.encode()).hexdigest(), "jobs": ["groups-in"]}},
        "timeouts": {"shutdown_grace_ms": 2000},
    }
    with open(os.path.join(etc, "fogate.json"), "w") as f:
        json.dump(cfg, f)
    for p in (etc, os.path.join(etc, "secrets"), secret, os.path.join(etc, "fogate.json")):
        os.chown(p, UID, UID)
    os.chmod(secret, 0o600)
    os.chmod(os.path.join(etc, "secrets"), 0o700)


def test_image_runs_as_its_user_and_serves_an_enqueue(image, fosim, workdir):  # noqa: F811
    sim = fosim
    etc = os.path.join(workdir, "etc-fogate")
    port = harness.free_port()
    write_config(etc, sim, port)
    sim.reset()
    c = Container(image, workdir, [(etc, "/etc/fogate")])
    try:
        base = f"http://127.0.0.1:{port}"
        harness.wait_until(lambda: harness.request(base, "GET", "/healthz", timeout=2)
                           .status == 200, timeout=60, what="fogate's /healthz in the container")
        pid = c.fogate_pid()
        with open(f"/proc/{pid}/status") as f:
            uids = re.search(r"^Uid:\s+(.*)$", f.read(), re.M).group(1).split()
        assert set(uids) == {str(UID)}, uids     # real, effective, saved, fs: never root
        r = harness.request(base, "GET", "/healthz")
        assert r.status == 200 and r.json() == {"status": "ok"}, r
        harness.wait_until(lambda: harness.request(base, "GET", "/readyz").status == 200,
                           what="/readyz 200 (a token from fosim)")
        r = harness.request(base, "POST", "/v1/jobs/groups-in/messages", b"CUSTGROUPID\n10\n",
                            {"X-Api-Key": KEY, "X-File-Name": "groups.csv"})
        assert r.status == 202, r
        mid = r.json()["message_id"]
        st = harness.request(base, "GET", f"/v1/messages/{mid}?job=groups-in&wait=20",
                             headers={"X-Api-Key": KEY}, timeout=40)
        assert st.status == 200 and st.json()["status"] == "Processed", st
        per = sim.counters()["requests"].get("enqueue", {})
        assert per.get("200") == 1, per
        # STOPSIGNAL: SIGTERM to fogate drains and exits 0; buildah run passes the status on
        t0 = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        assert c.proc.popen.wait(30) == 0, c.proc.log_tail()
        assert time.monotonic() - t0 < 10
    finally:
        rc = c.proc.stop()
        # readOnlyRootFilesystem holds: fogate wrote nothing in the container's own layer
        # (buildah run itself only touches /etc for hosts and resolv.conf)
        changes = set(run("podman", "diff", c.name).split("\n")) - {"", "C /etc"}
        c.remove()
    log = harness.file_tail(c.proc.log_path, 200000)
    assert rc == 0, log
    assert not changes, f"fogate wrote into the image's file system: {sorted(changes)}"
    assert harness.APP_SECRET not in log and KEY not in log, "a secret reached the log"
