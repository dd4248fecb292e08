"""The .deb under a real systemd: a Debian 12 root with systemd (mmdebstrap, cached), the .deb
installed by apt, booted with systemd-nspawn (sharing the host's network, so fogate inside
reaches the fosim this test starts on 127.0.0.1). fogate.service then runs exactly as the
package ships it, sandbox and all: `systemctl start` returns once fogate said READY=1, its
STATUS= shows the token, it serves an enqueue through the sandbox, `systemctl reload` goes
through RELOADING=1/READY=1, a crash is restarted, an invalid config (exit 2) is not, and
`systemctl stop` drains. Needs root, systemd-nspawn and Debian's mirror."""
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

import debkit
import harness
from debkit import run
from e2e import passkit
from harness import fosim, workdir  # noqa: F401

SECRET = "${CREDENTIALS_DIRECTORY}/client-secret"


class Machine:
    """The root booted by systemd-nspawn; commands run in it through nsenter."""

    def __init__(self, root, log_path):
        self.pid1 = None
        self.log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            ["systemd-nspawn", "-D", root, "--boot", "--register=no", "--keep-unit",
             "--console=passive", "--quiet"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, start_new_session=True)
        try:
            self.pid1 = harness.wait_until(self._init_pid, what="the container's systemd")
            # its control socket appears a moment after it starts; then --wait waits for boot
            harness.wait_until(lambda: self.sh("systemctl is-system-running --wait",
                                               check=False).stdout.strip()
                               in ("running", "degraded"), timeout=120, interval=0.5,
                               what="the container's boot")
        except BaseException:
            self.stop()
            raise

    def _init_pid(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.popen.pid, self.popen.pid)) as f:
                kids = f.read().split()
        except OSError:
            return None
        # nspawn's own child execs systemd a moment later: wait for that
        for kid in kids:
            with open("/proc/%s/comm" % kid) as f:
                if f.read().strip() == "systemd":
                    return int(kid)
        return None

    def sh(self, script, check=True, timeout=120):
        return run(["nsenter", "-t", str(self.pid1), "-a", "/bin/sh", "-ec", script],
                   check=check, timeout=timeout,
                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_PAGER": ""})

    def show(self, *props):
        out = self.sh("systemctl show fogate -p " + ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines())

    def stop(self):
        """Halts the container; kills nspawn and the container's init if that takes over a
        minute (an orphaned init would live on)."""
        if self.popen.poll() is None:
            self.pid1 = self.pid1 or self._init_pid()
            self.popen.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to halt
            try:
                self.popen.wait(60)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
                if self.pid1:
                    try:
                        os.kill(self.pid1, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        self.log.close()


@pytest.fixture(scope="module")
def machine(workdir):  # noqa: F811
    assert os.geteuid() == 0, "this test needs root (mmdebstrap, systemd-nspawn)"
    root = debkit.Chroot(debkit.root_tarball(include=("systemd", "systemd-sysv")))
    m = None
    try:
        deb = debkit.build_deb()
        root.install_deb(deb)
        # the booted system has a tmpfs on /tmp: the upgrade's copy goes to /var/tmp
        shutil.copy(deb, os.path.join(root.path, "var/tmp/fogate.deb"))
        run(["umount", root.proc])  # nspawn mounts its own
        m = Machine(root.path, os.path.join(workdir, "nspawn.log"))
        m.root = root
        yield m
    finally:
        if m:
            m.stop()
        root.close()


def write_config(machine, cfg):
    # writing into the installed file keeps its owner and mode (root:fogate 0640)
    with open(os.path.join(machine.root.path, "etc/fogate/fogate.json"), "w") as f:
        f.write(cfg if isinstance(cfg, str) else json.dumps(cfg))


def main_pid(machine):
    return int(machine.show("MainPID")["MainPID"])


def test_the_packaged_unit_under_systemd(machine, fosim):  # noqa: F811
    sim = fosim
    port = harness.free_port()
    cfg = passkit.gate_config(port, sim, secret_file=SECRET)
    write_config(machine, cfg)
    # the secret goes where the docs say; systemd hands it to fogate at start
    with open(os.path.join(machine.root.path, "etc/fogate/credentials/client-secret"), "w") as f:
        f.write(harness.APP_SECRET + "\n")

    machine.sh("systemctl start fogate")  # returns once fogate sent READY=1
    st = machine.show("ActiveState", "SubState", "StatusText", "Type", "NotifyAccess")
    assert (st["ActiveState"], st["SubState"], st["Type"]) == ("active", "running", "notify"), st
    harness.wait_until(lambda: "tokens ready for 1/1 environments" in
                       machine.show("StatusText")["StatusText"], what="STATUS= with the token")
    base = "http://127.0.0.1:%d" % port
    assert harness.request(base, "GET", "/readyz").status == 200
    r = harness.request(base, "POST", "/v1/jobs/imp/messages", b"a,b\n1,2\n",
                        {"X-Api-Key": passkit.ALICE_KEY})
    assert r.status == 202, r
    assert passkit.requests_to(sim, "enqueue") == 1

    # the sandbox as the kernel sees it: user fogate, no capabilities, seccomp, no new privs
    pid = main_pid(machine)
    status = machine.sh("cat /proc/%d/status" % pid).stdout
    fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
    uid = machine.sh("id -u fogate").stdout.strip()
    assert fields["Uid"].split()[0] == uid
    assert fields["CapEff"].strip() == fields["CapBnd"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"
    assert "Max open files            16384" in machine.sh("cat /proc/%d/limits" % pid).stdout
    creds = machine.sh("stat -c '%U %a %s' /run/credentials/fogate.service/client-secret")
    assert creds.stdout.split()[:2] == ["fogate", "400"]
    exposure = machine.sh("systemd-analyze security fogate --no-pager | tail -1").stdout
    assert "OK" in exposure or "SAFE" in exposure, exposure

    # reload: RELOADING=1 ... READY=1, same process
    machine.sh("systemctl reload fogate")
    assert main_pid(machine) == pid
    assert "config reloaded" in machine.sh("journalctl -u fogate --no-pager -o cat").stdout

    # a crash is restarted (Restart=on-failure)
    machine.sh("kill -KILL %d" % pid)
    harness.wait_until(lambda: main_pid(machine) not in (0, pid) and
                       machine.show("ActiveState")["ActiveState"] == "active",
                       what="fogate restarted")
    assert int(machine.show("NRestarts")["NRestarts"]) == 1

    # an upgrade (the same .deb again: postinst with the old version) restarts it
    pid = main_pid(machine)
    machine.sh("dpkg -i /var/tmp/fogate.deb")
    harness.wait_until(lambda: main_pid(machine) not in (0, pid), what="restart on upgrade")
    assert machine.show("ActiveState")["ActiveState"] == "active"
    assert harness.request(base, "GET", "/healthz").status == 200

    # an invalid config exits 2 and is not restarted (RestartPreventExitStatus=2)
    write_config(machine, "{not json")
    assert machine.sh("systemctl restart fogate", check=False).returncode != 0
    st = machine.show("ActiveState", "ExecMainStatus", "NRestarts")
    assert (st["ActiveState"], st["ExecMainStatus"]) == ("failed", "2"), st
    time.sleep(3)  # RestartSec=2s: a restart would have happened by now
    assert machine.show("ActiveState", "NRestarts") == {"ActiveState": "failed",
                                                         "NRestarts": st["NRestarts"]}

    # stop drains and ends cleanly
    write_config(machine, cfg)
    machine.sh("systemctl reset-failed fogate && systemctl start fogate")
    machine.sh("systemctl stop fogate")
    st = machine.show("ActiveState", "Result", "ExecMainStatus")
    assert st == {"ActiveState": "inactive", "Result": "success", "ExecMainStatus": "0"}, st
