"""fosim's blob store keeps bytes in files, not in memory: a 1 GiB blob as 256 blocks of
4 MiB (sv=2014-02-14) and as one Put Blob (sv=2019-12-12) leave fosim's peak RSS small.
Slow (2 GiB over loopback): ctest label `slow`."""
import os
import urllib.parse

import pytest

from harness import Workdir, default_sim_config, start_fosim
from test_blob import block_id, commit, info, put_blob, put_block, send, write_url

GIB = 1 << 30
BLOCK = 4 << 20


def rss_bound_kib():
    """fosim's own code, libevent, libcurl and OpenSSL take about 10 MiB; a body kept in
    memory would add 4 MiB (a block) to 1 GiB. ASan's runtime (shadow memory, a 16 MiB
    quarantine) multiplies it."""
    with open(os.environ["FOSIM_BIN"], "rb") as f:
        asan = b"__asan_init" in f.read()
    return 48 * 1024 * (4 if asan else 1)


def vm_hwm_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture(scope="module")
def sim(request):
    w = Workdir()
    s = None
    # a small quarantine: ASan would otherwise keep 256 MB of freed buffers resident
    os.environ["ASAN_OPTIONS"] = "detect_leaks=1:quarantine_size_mb=16"
    try:
        s = start_fosim(w.path, default_sim_config(blob_store="self"))
        yield s
    finally:
        rc = s.stop() if s else 0
        w.cleanup(request.session.testsfailed > 0)
        assert rc == 0


def test_one_gib_in_blocks_and_in_one_put(sim):
    url = write_url(sim, "big-blocks.zip")
    n = GIB // BLOCK
    for i in range(n):
        assert put_block(url, block_id(i), size=BLOCK)[0] == 201
    assert commit(url, [block_id(i) for i in range(n)])[0] == 201
    got = info(sim, url)
    assert got["size"] == GIB and got["blocks"] == n and got["committed_as"] == "blocks"
    sim.configure(blob_sas_version="2019-12-12")
    url = write_url(sim, "big-one.zip")
    assert put_blob(url, size=GIB)[0] == 201
    assert info(sim, url)["size"] == GIB
    u = urllib.parse.urlsplit(url)
    status, headers, _ = send(url, "HEAD")
    assert status == 200 and headers["content-length"] == str(GIB), u.path
    hwm = vm_hwm_kib(sim.proc.pid)
    print(f"fosim VmHWM after 2 GiB of blobs: {hwm} KiB")
    assert hwm < rss_bound_kib(), hwm
