"""proxy/upstream.c streams 256 MiB each way through nginx with bounded memory: a slow
consumer that pauses the download, and a slow producer feeding the upload. Peak RSS of the
driver (VmHWM) must stay far below the body size."""
import os

import pytest

import harness
from upstream_peers import Nginx, run_cli, sha256_file, write_random_file

MiB = 1 << 20
SIZE = 256 * MiB


def rss_limit_kb(summary):
    # ASan maps shadow memory and keeps its own allocator state; the bound there only shows
    # that memory does not grow with the body (256 MiB).
    return (48 if summary["asan"] else 32) * 1024


@pytest.fixture(scope="module")
def nginx(request):
    wd = harness.Workdir("fogate-upstream-stream-")
    ng = Nginx(wd.path)
    ng.big = os.path.join(ng.www, "files/huge.bin")
    ng.big_sha = write_random_file(ng.big, SIZE)
    yield ng
    ng.stop()
    wd.cleanup(request.session.testsfailed > 0)


def test_download_256mib_slow_consumer(nginx):
    # pause after every 4 MiB for 5 ms: 64 pauses, each one a real CURL_WRITEFUNC_PAUSE
    t, s, el = run_cli("--allow-http", "--consume-pause", f"{4 * MiB}:5", "get",
                       nginx.url("/files/huge.bin"), timeout=280)
    assert len(t) == 1, t
    t = t[0]
    assert (t["result"], t["status"], t["bytes"]) == ("OK", 200, SIZE), t
    assert t["sha256"] == nginx.big_sha
    # chunk boundaries decide whether the last 4 MiB reach the threshold
    assert SIZE // (4 * MiB) - 2 <= t["pauses"] <= SIZE // (4 * MiB), t
    assert s["pauses"] >= t["pauses"] - 1, s
    assert s["vmhwm_kb"] < rss_limit_kb(s), s
    assert s["fds_after"] == s["fds_before"], s


def test_upload_256mib_slow_producer(nginx):
    # at most 512 KiB per millisecond: libcurl drains faster, so the upload waits (pauses)
    t, s, el = run_cli("--allow-http", "--produce", f"{512 * 1024}:1", "put",
                       nginx.url("/upload/huge.bin"), nginx.big, timeout=280)
    assert len(t) == 1, t
    t = t[0]
    assert (t["result"], t["status"], t["sent"]) == ("OK", 201, SIZE), t
    assert s["pauses"] > 0 and s["bytes_sent"] == SIZE, s
    assert s["vmhwm_kb"] < rss_limit_kb(s), s
    up = os.path.join(nginx.www, "upload/huge.bin")
    assert os.path.getsize(up) == SIZE
    assert sha256_file(up) == nginx.big_sha
