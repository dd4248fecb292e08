#!/usr/bin/python3
"""How long one scrape of /metrics takes with 16 workers and every family populated: a
fogate with `workers` 16, the ledger, packages.shared and the shared token cache (all three
Redis clients), fosim as D365 and Entra, traffic spread over the workers (imports, exports
taken and confirmed, 404s, a 429), then SCRAPES scrapes on one keep-alive connection.
Prints the exposition's size and series, wall time per scrape (median, p99, max) and the
process's CPU time per scrape (utime+stime delta / scrapes; the workers are idle).

    tests/bench/scrape_cost.py BUILD_DIR [SCRAPES]
"""
import concurrent.futures
import http.client
import json
import os
import statistics
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(here, ".."), os.path.join(here, "..", "e2e")]
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
os.environ.setdefault("FOGATE_BIN", os.path.join(build, "proxy", "fogate"))
os.environ.setdefault("FOSIM_BIN", os.path.join(build, "tests", "sim", "fosim"))
os.environ.setdefault("FOGATE_SRC", os.path.join(here, "..", ".."))

import harness  # noqa: E402
import ledgerkit as lk  # noqa: E402


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")


def traffic(g, sim, i):
    r = g.req("POST", "/v1/jobs/%s/messages" % lk.IMPORT_JOB, b"a,b\n%d,x\n" % i)
    mid = r.json()["message_id"] if r.status == 202 else None
    if mid:
        g.req("GET", "/v1/messages/%s?job=%s&wait=5" % (mid, lk.IMPORT_JOB))
    r = g.next()
    if r.status == 200:
        g.ack(r.header("X-Fogate-Message-Id"))
    g.req("GET", "/nope-%d" % i, key=None)
    g.req("GET", "/healthz", key=None)


def main():
    scrapes = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    w = harness.Workdir()
    sim = harness.start_fosim(w.path)
    red = harness.start_redis(w.path)
    key = os.path.join(w.path, "seal.key")
    with open(key, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    port = harness.free_port()
    cfg_path = os.path.join(w.path, "scrape.json")
    g = None
    try:
        # the Gate writes its own config; rewrite it with 16 workers and restart
        g = lk.Gate(w.path, sim, red.port, name="scrape")
        with open(g.config_path) as f:
            cfg = json.load(f)
        g.stop()
        cfg.update(workers=16, packages={"shared": True})
        cfg["tokens"] = {"cache_key_file": key}
        with open(g.config_path, "w") as f:
            json.dump(cfg, f)
        g.start()
        harness.wait_until(lambda: g.req("GET", "/readyz", key=None).status == 200, timeout=30)
        lk.feed(sim, 64, tag="scrape")
        sim.fault(endpoint="dequeue", kind="status", status=429, retry_after=1, count=1)
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            list(ex.map(lambda i: traffic(g, sim, i), range(64)))
        conn = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=10)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
        series = [l for l in body.decode().splitlines() if l and not l.startswith("#")]
        families = [l for l in body.decode().splitlines() if l.startswith("# TYPE")]
        pid = g.proc.pid
        walls = []
        c0 = cpu_s(pid)
        for _ in range(scrapes):
            t = time.perf_counter()
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            r.read()
            walls.append((time.perf_counter() - t) * 1000)
            assert r.status == 200
        c1 = cpu_s(pid)
        walls.sort()
        print("workers 16: %d bytes, %d families, %d series" % (len(body), len(families),
                                                                 len(series)))
        print("wall per scrape (client side, loopback): median %.2f ms, p99 %.2f ms, max %.2f ms"
              % (statistics.median(walls), walls[int(len(walls) * 0.99) - 1], walls[-1]))
        print("fogate CPU per scrape: %.2f ms (%d scrapes)" % ((c1 - c0) * 1000 / scrapes,
                                                              scrapes))
    finally:
        if g:
            g.stop(check=False)
        red.stop()
        sim.stop()
        w.cleanup(False)


if __name__ == "__main__":
    main()
