"""The .deb, end to end: `cmake --build <build> --target package` makes it; it goes into a
fresh Debian 12 root (mmdebstrap, bookworm + bookworm-backports, cached as a tarball outside
the source tree) where apt resolves its dependencies; there `fogate --version` and
`--check-config` run, the user, group, modes and credentials are as promised; `dpkg -r`
keeps only the conffile, the credential files and the user; `dpkg --purge` leaves nothing
but the user and group (Debian policy 9.2). Needs root and Debian's mirror.

Env: debkit's."""
import os

import pytest

import debkit
from debkit import run

@pytest.fixture(scope="module")
def root():
    assert os.geteuid() == 0, "the .deb test needs root (mmdebstrap, chroot, mount)"
    c = debkit.Chroot(debkit.root_tarball())
    yield c
    c.close()


@pytest.fixture(scope="module")
def deb():
    return debkit.build_deb()


def test_lintian_is_clean(deb):
    """Every tag lintian reports is overridden in the package, with its reason
    (deploy/debian/lintian-overrides; docs/install.md explains each)."""
    r = run(["lintian", "--pedantic", "--info", deb], check=False, timeout=300)
    tags = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:", "I:", "P:", "X:")]
    assert r.returncode == 0 and tags == [], r.stdout + r.stderr


def stat(root, path):
    return root.sh("stat -c '%%U %%G %%a' %s" % path).stdout.split()


def test_install_check_remove_purge(root, deb):
    # apt resolves what dpkg-shlibdeps wrote, libhiredict from bookworm-backports included
    root.install_deb(deb)
    version = debkit.deb_version()
    assert root.sh("dpkg-query -W -f '${Version} ${Status}' fogate").stdout == \
        version + " install ok installed"
    depends = root.sh("dpkg-query -W -f '${Depends}' fogate").stdout
    assert "libhiredict" in depends and "libcurl4" in depends and "adduser" in depends, depends
    hiredict = [d.strip().split()[0] for d in depends.split(",") if "libhiredict" in d][0]
    policy = root.sh("apt-cache policy " + hiredict).stdout
    assert "bookworm-backports" in policy, policy

    # --version: the package version and the commit of the tree it was built from
    out = root.sh("fogate --version").stdout
    assert out == "fogate %s (commit %s)\n" % (version, debkit.source_commit()), out

    # the system user and group, what owns /etc/fogate, the credential files
    passwd = root.sh("getent passwd fogate").stdout.strip().split(":")
    assert passwd[0] == "fogate" and int(passwd[2]) < 1000, passwd
    assert passwd[5] == "/nonexistent" and passwd[6] == "/usr/sbin/nologin", passwd
    assert not root.exists("/nonexistent")
    assert root.sh("id -gn fogate").stdout.strip() == "fogate"
    assert stat(root, "/etc/fogate") == ["root", "fogate", "750"]
    assert stat(root, "/etc/fogate/fogate.json") == ["root", "fogate", "640"]
    assert stat(root, "/etc/fogate/credentials") == ["root", "root", "700"]
    for c in ("client-secret", "token-cache-key", "redis-password"):
        assert stat(root, "/etc/fogate/credentials/" + c) == ["root", "root", "600"]
    assert "/etc/fogate/fogate.json" in root.sh("dpkg-query -W -f '${Conffiles}' fogate").stdout
    for f in ("/usr/bin/fogate", "/usr/lib/systemd/system/fogate.service",
              "/bin/kill",  # ExecReload= (procps)
              "/usr/share/doc/fogate/copyright", "/usr/share/doc/fogate/changelog.Debian.gz",
              "/usr/share/man/man1/fogate.1.gz"):
        assert root.exists(f), f

    # --check-config: without systemd's credentials the packaged config says what is missing;
    # with them (as systemd hands them over: a private copy the fogate user reads) it passes
    r = root.sh("fogate --check-config /etc/fogate/fogate.json", check=False)
    assert r.returncode == 2 and "CREDENTIALS_DIRECTORY" in r.stderr, r.stderr
    root.sh("printf 'placeholder-not-a-secret\\n' > /etc/fogate/credentials/client-secret\n"
            "install -d -o fogate -g fogate -m 0500 /run/credentials/fogate.service\n"
            "install -o fogate -g fogate -m 0400 /etc/fogate/credentials/client-secret "
            "/run/credentials/fogate.service/client-secret")
    ok = root.sh("fogate --check-config /etc/fogate/fogate.json", user="fogate",
                 env={"CREDENTIALS_DIRECTORY": "/run/credentials/fogate.service"})
    assert "configuration is valid" in ok.stdout
    # the fogate user reads its config through the group, never root's credential files
    r = root.sh("cat /etc/fogate/credentials/client-secret", user="fogate", check=False)
    assert r.returncode != 0 and "Permission denied" in r.stderr
    root.sh("rm -rf /run/credentials")

    # installing again (postinst run twice) changes nothing and keeps the secret
    root.sh("dpkg -i /tmp/fogate.deb")
    assert stat(root, "/etc/fogate/fogate.json") == ["root", "fogate", "640"]
    assert root.sh("cat /etc/fogate/credentials/client-secret").stdout.startswith("placeholder")

    # remove: the program goes, the configuration (conffile, secrets, overrides) stays
    root.sh("dpkg -r fogate")
    assert root.sh("dpkg-query -W -f '${Status}' fogate").stdout == \
        "deinstall ok config-files"
    assert not root.exists("/usr/bin/fogate")
    assert not root.exists("/usr/lib/systemd/system/fogate.service")
    assert not root.exists("/usr/share/doc/fogate")
    assert root.exists("/etc/fogate/fogate.json")
    assert root.exists("/etc/fogate/credentials/client-secret")
    assert "fogate" in root.sh("dpkg-statoverride --list").stdout

    # purge: nothing is left but the user and group
    root.sh("dpkg --purge fogate")
    assert root.sh("dpkg-query -W -f '${Status}' fogate", check=False).returncode != 0 or \
        root.sh("dpkg-query -W -f '${Status}' fogate").stdout == "unknown ok not-installed"
    assert root.remnants() == [], root.remnants()
    assert "fogate" not in root.sh("dpkg-statoverride --list", check=False).stdout
    assert root.sh("getent passwd fogate").stdout.startswith("fogate:")
    assert root.sh("getent group fogate").stdout.startswith("fogate:")
