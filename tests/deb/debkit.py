"""debkit: what the .deb tests share: the .deb built by CPack, a cached Debian 12 root made by
mmdebstrap (bookworm + updates + security + backports; the tarball lives outside the source
tree and is made again after a week), and that root unpacked for one test, with apt's
downloads kept between runs.

Env: FOGATE_BUILD_DIR, FOGATE_SRC (from CMake); FOGATE_TEST_CACHE (default
/var/cache/fogate-test), FOGATE_DEBIAN_MIRROR (default http://deb.debian.org)."""
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

CACHE = os.environ.get("FOGATE_TEST_CACHE", "/var/cache/fogate-test")
MIRROR = os.environ.get("FOGATE_DEBIAN_MIRROR", "http://deb.debian.org")
MAX_AGE_S = 7 * 86400  # then the root is made again (it would lag security updates)
SOURCES = ["deb {m}/debian bookworm main", "deb {m}/debian bookworm-updates main",
           "deb {m}/debian-security bookworm-security main",
           "deb {m}/debian bookworm-backports main"]
MMDEBSTRAP = ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar",
              "--skip=cleanup/apt/lists",  # apt-get update then only revalidates them
              "--aptopt=Acquire::Languages \"none\"",
              "--aptopt=APT::Install-Recommends \"false\""]


def run(argv, timeout=600, check=True, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d\n%s\n%s" % (argv, r.returncode, r.stdout[-4000:],
                                                        r.stderr[-4000:]))
    return r


def root_tarball(include=()):
    """The cached bookworm root (with the packages `include` too), made when missing or older
    than MAX_AGE_S."""
    os.makedirs(CACHE, exist_ok=True)
    sources = [s.format(m=MIRROR) for s in SOURCES]
    args = MMDEBSTRAP + (["--include=" + ",".join(include)] if include else [])
    key = hashlib.sha256(repr((args, sources)).encode()).hexdigest()[:16]
    path = os.path.join(CACHE, "bookworm-deb-test-%s.tar" % key)
    if os.path.exists(path) and time.time() - os.path.getmtime(path) < MAX_AGE_S:
        return path
    fd, tmp = tempfile.mkstemp(dir=CACHE, suffix=".tar")
    os.close(fd)
    try:
        run(args + ["bookworm", tmp] + sources, timeout=1200)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def deb_version():
    """The package version: the top entry of deploy/debian/changelog."""
    with open(os.path.join(os.environ["FOGATE_SRC"], "deploy/debian/changelog")) as f:
        return re.match(r"fogate \(([^)]+)\)", f.readline()).group(1)


def source_commit():
    """The commit the build reports, asked as deploy/debian/version.cmake asks it (the
    package target configures again when HEAD moved, so it is the tree's commit now)."""
    src = os.environ["FOGATE_SRC"]
    head = run(["git", "-C", src, "rev-parse", "--short=12", "HEAD"], check=False)
    if head.returncode != 0:
        return "unknown"
    run(["git", "-C", src, "update-index", "-q", "--refresh"], check=False)
    dirty = run(["git", "-C", src, "diff-index", "--quiet", "HEAD", "--"], check=False)
    return head.stdout.strip() + ("-dirty" if dirty.returncode != 0 else "")


def build_deb():
    build = os.environ["FOGATE_BUILD_DIR"]
    run(["cmake", "--build", build, "--target", "package"], timeout=1200)
    debs = glob.glob(os.path.join(build, "fogate_%s_*.deb" % deb_version()))
    assert len(debs) == 1, debs
    return debs[0]


class Chroot:
    """The root unpacked in a temporary directory, /proc mounted, the host's resolver, apt's
    downloads kept in the cache between runs."""

    def __init__(self, tarball):
        self.path = tempfile.mkdtemp(prefix="fogate-deb-root-")
        self.archives = os.path.join(CACHE, "apt-archives")
        os.makedirs(self.archives, exist_ok=True)
        run(["tar", "-C", self.path, "-xf", tarball])
        shutil.copy("/etc/resolv.conf", os.path.join(self.path, "etc/resolv.conf"))
        self.proc = os.path.join(self.path, "proc")
        run(["mount", "-t", "proc", "proc", self.proc])
        self.apt_cache = os.path.join(self.path, "var/cache/apt/archives")
        for deb in glob.glob(os.path.join(self.archives, "*.deb")):
            shutil.copy(deb, self.apt_cache)

    def sh(self, script, check=True, user=None, env=None, timeout=600):
        argv = ["chroot"] + (["--userspec=%s:%s" % (user, user)] if user else [])
        full_env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
                    "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
        return run(argv + [self.path, "/bin/sh", "-ec", script], check=check, env=full_env,
                   timeout=timeout)

    def exists(self, p):
        return os.path.lexists(os.path.join(self.path, p.lstrip("/")))

    def remnants(self):
        """Paths named after fogate or owned by its user or group, outside dpkg's and apt's
        own records."""
        r = self.sh("find / -xdev \\( -path /proc -o -path /var/lib/dpkg -o -path /var/cache/apt"
                    " -o -path /var/log \\) -prune -o \\( -name '*fogate*' -o -user fogate -o "
                    "-group fogate \\) -print")
        return sorted(set(r.stdout.split()) - {"/tmp/fogate.deb"})

    def install_deb(self, deb):
        """apt installs the .deb, resolving its dependencies from the mirror."""
        shutil.copy(deb, os.path.join(self.path, "tmp/fogate.deb"))
        self.sh("apt-get update -q")
        self.sh("apt-get install -y -q /tmp/fogate.deb")

    def close(self):
        for deb in glob.glob(os.path.join(self.apt_cache, "*.deb")):
            if not os.path.exists(os.path.join(self.archives, os.path.basename(deb))):
                shutil.copy(deb, self.archives)
        subprocess.run(["umount", self.proc], check=False)
        if not os.path.ismount(self.proc):
            shutil.rmtree(self.path, ignore_errors=True)
