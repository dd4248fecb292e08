"""fogatectl against fogate, fosim and redis-server: send (Idempotency-Key of the content,
waits for the final status, exit code by status), next (temporary file, fsync, rename,
fsync of the directory, then the confirmation; strace checks the order), the admin
commands with the token from a file, and --help for every command. Secrets only ever come
from files or the environment."""

import glob
import os
import subprocess

import pytest

import harness
import ledgerkit as lk
from ledgerkit import redis  # noqa: F401  (module-wide fixture; sim: conftest)
from harness import workdir  # noqa: F401

TOKEN = "ctl-admin-token-0123456789abcdef"
COMMANDS = ("status", "history", "pause", "resume", "retry-ack", "release", "repoll", "drain",
            "send", "next")


def ctl_bin():
    return harness.require_bin("FOGATECTL_BIN")


def secret(workdir, name, text):
    path = os.path.join(workdir, name)
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture(autouse=True)
def clean(sim, redis):
    sim.reset()
    lk.redis_flush(redis)
    yield
    sim.clear_faults()
    sim.configure(import_outcome="auto")


@pytest.fixture
def gate(workdir, sim, redis):
    g = lk.Gate(workdir, sim, redis.port, name="fogate-ctl",
                extra={"admin": {"token_file": secret(workdir, "admin.token", TOKEN)},
                       "history": {"enabled": True, "follow_min_ms": 100,
                                   "follow_max_ms": 300}})
    yield g
    g.stop()


def run(gate, workdir, *args, key=True, token=True, prefix=(), timeout=60):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOGATE_")}
    if prefix:  # LeakSanitizer cannot run under ptrace (the sanitizer build)
        env["ASAN_OPTIONS"] = "detect_leaks=0"
    env.update(FOGATE_URL=gate.base, FOGATE_ADMIN_URL=gate.admin_base)
    if key:
        env["FOGATE_API_KEY_FILE"] = secret(workdir, "client.key", lk.KEY)
    if token:
        env["FOGATE_ADMIN_TOKEN_FILE"] = secret(workdir, "ctl.token", TOKEN)
    return subprocess.run([*prefix, ctl_bin(), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def write(workdir, name, data):
    path = os.path.join(workdir, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_help_for_every_command(gate, workdir):
    for cmd in COMMANDS:
        p = run(gate, workdir, cmd, "--help")
        assert p.returncode == 0 and p.stdout.startswith(f"usage: fogatectl {cmd}"), p
        assert "Exit codes" in p.stdout
    assert run(gate, workdir).returncode == 2
    assert run(gate, workdir, "explode").returncode == 2
    p = run(gate, workdir, "--key", lk.KEY, "send", "x")   # no secret on the command line
    assert p.returncode == 2


def test_send_waits_for_the_final_status_and_is_idempotent(gate, workdir, sim):
    path = write(workdir, "groups.csv", b"code;name\nC1;ctl\n")
    p = run(gate, workdir, "send", "--job", lk.IMPORT_JOB, path)
    assert p.returncode == 0, p
    mid, status = p.stdout.split()
    assert status == "Processed"
    assert lk.count(sim, "enqueue") == 1
    # the same content again: the first message, nothing enqueued twice
    p = run(gate, workdir, "send", "--job", lk.IMPORT_JOB, path)
    assert p.returncode == 0 and p.stdout.split()[0] == mid, p
    assert "already sent" in p.stderr
    assert lk.count(sim, "enqueue") == 1
    rec = gate.req("GET", f"/v1/history?job={lk.IMPORT_JOB}").json()["records"][0]
    assert rec["file_name"] == "groups.csv" and rec["status"] == "Processed"


def test_send_exit_codes(gate, workdir, sim):
    sim.configure(import_outcome="errors")
    p = run(gate, workdir, "send", "--job", lk.IMPORT_JOB,
            write(workdir, "bad.csv", b"code;name\nE1;err\n"))
    assert p.returncode == 10 and p.stdout.split()[1] == "ProcessedWithErrors", p
    sim.configure(import_outcome="auto")
    good = write(workdir, "good.csv", b"code;name\nG1;ok\n")
    assert run(gate, workdir, "send", "--job", lk.IMPORT_JOB, good, key=False).returncode == 2
    p = run(gate, workdir, "send", "--job", "nope", good)
    assert p.returncode == 4 and "job_forbidden" in p.stderr, p
    assert run(gate, workdir, "send", "--job", lk.IMPORT_JOB, "/nonexistent").returncode == 7
    assert run(gate, workdir, "pause", lk.IMPORT_JOB).returncode == 0
    harness.wait_until(lambda: gate.req("POST", f"/v1/jobs/{lk.IMPORT_JOB}/messages", b"x")
                       .status == 503, 5, what="paused")
    p = run(gate, workdir, "send", "--job", lk.IMPORT_JOB, good)
    assert p.returncode == 5 and "job_paused" in p.stderr, p
    assert run(gate, workdir, "resume", lk.IMPORT_JOB).returncode == 0
    p = run(gate, workdir, "send", "--job", lk.IMPORT_JOB, "--wait", "0",
            write(workdir, "slow.csv", b"code;name\nS1;slow\n"))
    assert p.returncode in (0, 14), p   # 0 only if D365 was final at the first poll
    stopped = run(gate, workdir, "send", "--job", lk.IMPORT_JOB, good)
    assert stopped.returncode == 0
    gate_url = gate.base
    gate.base = "http://127.0.0.1:%d" % harness.free_port()
    try:
        assert run(gate, workdir, "send", "--job", lk.IMPORT_JOB, good).returncode == 3
    finally:
        gate.base = gate_url


def test_next_writes_atomically_then_confirms(gate, workdir, sim):
    out = os.path.join(workdir, "inbox")
    os.makedirs(out, exist_ok=True)
    (data, m), = lk.feed(sim, 1, tag="ctl-next").items()
    p = run(gate, workdir, "next", "--job", lk.JOB, "--suffix", ".csv", out,
            prefix=("strace", "-f", "-qq", "-e", "trace=fsync,rename,renameat,renameat2,connect",
                    "-o", os.path.join(workdir, "next.strace")))
    assert p.returncode == 0, p
    path = p.stdout.strip()
    assert path == os.path.join(out, m["message_id"] + ".csv")
    with open(path, "rb") as f:
        assert f.read() == data
    assert glob.glob(os.path.join(out, ".fogatectl-*")) == []
    lk.wait_acked(sim, m["message_id"])
    # the order on disk: the file's fsync, the rename, the directory's fsync, then the ack
    with open(os.path.join(workdir, "next.strace")) as f:
        calls = [l.split("(")[0].split()[-1] for l in f if "(" in l]
    i_rename = next(i for i, c in enumerate(calls) if c.startswith("rename"))
    assert "fsync" in calls[:i_rename], calls
    assert calls[i_rename + 1] == "fsync", calls
    assert "connect" in calls[i_rename + 1:], calls        # the confirmation comes after
    p = run(gate, workdir, "next", "--job", lk.JOB, out)
    assert p.returncode == 6 and p.stdout == "", p
    assert glob.glob(os.path.join(out, ".fogatectl-*")) == []
    # a directory that cannot take the file: nothing taken, exit 7
    dequeues = lk.count(sim, "dequeue")
    assert run(gate, workdir, "next", "--job", lk.JOB, "/nonexistent/dir").returncode == 7
    assert lk.count(sim, "dequeue") == dequeues


def test_admin_commands(gate, workdir, sim):
    lk.feed(sim, 1, tag="ctl-admin")
    assert gate.next().status == 200          # left unconfirmed
    p = run(gate, workdir, "status", token=False)   # reads: loopback, no token
    assert p.returncode == 0, p
    assert lk.IMPORT_JOB in p.stdout and "exports waiting for their consumer: 1" in p.stdout
    p = run(gate, workdir, "status", "--json")
    export_id = __import__("json").loads(p.stdout)["exports"]["unconfirmed"][0]["id"]
    p = run(gate, workdir, "pause", lk.JOB, token=False)
    assert p.returncode == 4 and "admin_unauthorized" in p.stderr, p
    assert run(gate, workdir, "pause", lk.JOB).returncode == 0
    assert "PAUSED by token:" in run(gate, workdir, "status").stdout
    assert run(gate, workdir, "resume", lk.JOB).returncode == 0
    assert run(gate, workdir, "release", export_id).returncode == 0
    p = run(gate, workdir, "retry-ack", export_id)
    assert p.returncode == 4 and "export_not_confirmed" in p.stderr, p
    assert run(gate, workdir, "release", "sim:nope").returncode == 4
    p = run(gate, workdir, "history", "--job", lk.JOB)
    assert p.returncode == 0 and "Delivered" in p.stdout, p
    assert TOKEN not in gate.log()
