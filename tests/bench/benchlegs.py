"""benchlegs: one measurement of one leg against one target (fogate, the baseline fogate,
the nginx peer or the upstream directly). A target has .name, .base, .stats
(benchkit.Stats), .pid and .status_mode ("simple": fogate's status route; "odata": the D365
call itself). Every function returns a flat dict of figures; it raises when the target
misbehaved (non-2xx, short transfer), so a broken proxy never turns into a number.

Routes: "small" is the pass-through GET /data/small; "status" the simple API's message
status (GET /v1/messages/{id}?job=exp on fogate, POST .../GetMessageStatus on nginx and the
upstream), another message id per request (status.lua)."""
import os
import re
import socket
import subprocess
import threading
import time

import benchkit as k
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
CURL_MAX_S = 300
SLOW_RATE = 8 << 20            # bytes/s of the throttled client


def upstream_accepts(upstream):
    """Connections the upstream nginx has accepted so far (stub_status)."""
    r = harness.request(upstream, "GET", "/_status", timeout=10)
    return int(r.body.split(b"\n")[2].split()[0])


STATUS_JOB = "exp"
RATES = (5000, 10000)          # offered rates of the CPU-per-request runs (req/s)


def route(t, name):
    """(url, Lua scripts, environment) of wrk runs on route `name` of target t."""
    if name == "small":
        return t.base + "/data/small", [], {}
    return (t.base + "/", [os.path.join(HERE, "status.lua")],
            {"BENCH_STATUS_MODE": t.status_mode, "BENCH_STATUS_JOB": STATUS_JOB})


def prefix(name):
    """Metric prefix of a route: none for the pass-through (the historic names), st_."""
    return "" if name == "small" else "st_"


def small(t, seconds, upstream, conns=64, name="small"):
    """Closed-loop wrk on the route: rps, latency, CPU per request, utilisation (the rps is
    only a proxy's limit when its utilisation is near 1 core), and new upstream connections
    per request (keep-alive to the upstream works: near 0)."""
    url, scripts, env = route(t, name)
    a0, c0, w0 = upstream_accepts(upstream), t.stats.cpu_s(), time.monotonic()
    r = k.wrk(url, seconds, conns, t.headers, scripts, env=env)
    cpu, wall = t.stats.cpu_s() - c0, time.monotonic() - w0
    a1 = upstream_accepts(upstream)
    p = prefix(name)
    return {p + "rps": r["rps"], p + "p50_ms": r["p50"], p + "p99_ms": r["p99"],
            p + "cpu_us_per_req": cpu / r["requests"] * 1e6, p + "cpu_util": cpu / wall,
            p + "upstream_conns_per_req": (a1 - a0 - 1) / r["requests"]}


def rate(t, seconds, offered, conns=64, name="small"):
    """wrk paced to `offered` req/s (pace.lua with BENCH_PACE_RATE): the primary figure,
    CPU per request (utime+stime over requests served) at the same offered rate for every
    target; the achieved rate (a run more than a few % short is flagged in the report),
    CPU use and p99."""
    url, scripts, env = route(t, name)
    env = dict(env, BENCH_PACE_RATE=str(offered))
    c0, w0 = t.stats.cpu_s(), time.monotonic()
    r = k.wrk(url, seconds, conns, t.headers, scripts + [os.path.join(HERE, "pace.lua")],
              env=env)
    cpu, wall = t.stats.cpu_s() - c0, time.monotonic() - w0
    p = "%sr%dk_" % (prefix(name), offered // 1000)
    return {p + "cpu_us_per_req": cpu / r["requests"] * 1e6, p + "rps": r["rps"],
            p + "rate_share": r["rps"] / offered, p + "cpu_util": cpu / wall,
            p + "p99_ms": r["p99"]}


def multicore(t, seconds, conns=64):
    """Closed-loop wrk with one thread per CPU, unpinned (like the proxy under test), on GET
    /data/small: rps, latency, CPU per request and CPU use (cores) of the target."""
    threads = len(k.ALL_CPUS.split(","))
    c0, w0 = t.stats.cpu_s(), time.monotonic()
    r = k.wrk(t.base + "/data/small", seconds, conns, t.headers, threads=threads,
              cpus=k.ALL_CPUS)
    cpu, wall = t.stats.cpu_s() - c0, time.monotonic() - w0
    return {"rps": r["rps"], "p50_ms": r["p50"], "p99_ms": r["p99"],
            "cpu_us_per_req": cpu / r["requests"] * 1e6, "cpu_util": cpu / wall}


def syscalls(t, seconds, workdir, conns=16, name="small"):
    """System calls per request of the target's process (all threads), by perf stat."""
    url, scripts, env = route(t, name)
    perf = k.PerfSyscalls(t.pid, workdir)
    try:
        r = k.wrk(url, seconds, conns, t.headers, scripts, env=env)
    finally:
        n = perf.stop()
    return {prefix(name) + "syscalls_per_req": n / r["requests"]}


def paced(t, seconds, conns=10, name="small"):
    """wrk paced to about 1,000 req/s (pace.lua, 10 ms between a response and the next
    request on each of 10 connections): achieved rate and p50/p99 latency."""
    url, scripts, env = route(t, name)
    r = k.wrk(url, seconds, conns, t.headers, scripts + [os.path.join(HERE, "pace.lua")],
              env=env)
    p = prefix(name)
    return {p + "paced_rps": r["rps"], p + "paced_p50_ms": r["p50"],
            p + "paced_p99_ms": r["p99"]}


def sim_dequeues_200(sim):
    """Dequeues fosim has answered 200 so far."""
    return sim.counters().get("requests", {}).get("dequeue", {}).get("200", 0)


def redis_calls(port):
    """Commands Redis has executed so far (INFO commandstats, all commands summed), and
    of those the ones a client sent (PING, EVALSHA, EVAL: one round trip each; the rest
    ran inside the ledger's scripts)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "commandstats"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    calls = re.findall(r"^cmdstat_([^:]+):calls=(\d+)", out, re.M)
    return (sum(int(n) for _, n in calls),
            sum(int(n) for c, n in calls if c in ("ping", "evalsha", "eval")))


def redis_cpu_s(port):
    """CPU seconds Redis has used so far (INFO cpu: used_cpu_sys + used_cpu_user)."""
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "cpu"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return sum(float(m) for m in re.findall(r"^used_cpu_(?:sys|user):([0-9.]+)", out, re.M))


def cpu_jiffies(cpu):
    """(busy, total) jiffies of one CPU so far (/proc/stat; idle and iowait are not busy)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%s " % cpu):
                v = [int(x) for x in line.split()[1:]]
                return sum(v) - v[3] - v[4], sum(v)
    raise KeyError("cpu%s" % cpu)


def dequeues(t, seconds, sim, feed, sim_stats, redis_port=None, conns=64):
    """Leg 3: wrk on GET /api/connector/dequeue/{export job} after `feed` messages were put
    on the job in fosim (D365), made on demand (bulk?memory=1: no files, no search, so
    fosim is not the limit; its own ceiling is this leg run straight at it). Dequeues per
    second counts only the 200s fosim handed out (an empty queue's 204 never counts); CPU
    per dequeue and CPU use of the target and of fosim; with redis_port (fogate's ledger)
    Redis's commands, round trips and CPU per dequeue (the last two in results.json only)."""
    r = harness.request(sim.base_url, "POST", "/_sim/exports/%s/bulk?count=%d&size=256&memory=1"
                        % (harness.EXPORT_JOB, feed), b"", timeout=300)
    if r.status != 200:
        raise RuntimeError("fosim bulk feed failed: %r" % r)
    n0, rc0 = sim_dequeues_200(sim), redis_calls(redis_port) if redis_port else (0, 0)
    r0 = redis_cpu_s(redis_port) if redis_port else 0
    c0, s0, w0 = t.stats.cpu_s(), sim_stats.cpu_s(), time.monotonic()
    b0, j0 = cpu_jiffies(k.LOAD_CPU)
    w = k.wrk(t.base + "/api/connector/dequeue/" + harness.EXPORT_JOB, seconds, conns,
              t.headers)
    b1, j1 = cpu_jiffies(k.LOAD_CPU)
    cpu, scpu, wall = t.stats.cpu_s() - c0, sim_stats.cpu_s() - s0, time.monotonic() - w0
    got = sim_dequeues_200(sim) - n0
    res = {"dequeues_per_s": w["rps"] * got / w["requests"], "dequeue_p50_ms": w["p50"],
           "dequeue_p99_ms": w["p99"], "dequeue_200_share": got / w["requests"],
           "dequeue_cpu_us": cpu / max(got, 1) * 1e6, "dequeue_cpu_util": cpu / wall,
           "dequeue_sim_cpu_util": scpu / wall,
           "dequeue_load_cpu_busy": (b1 - b0) / max(j1 - j0, 1)}
    if redis_port:  # the INFO call itself is one command
        rc1, r1 = redis_calls(redis_port), redis_cpu_s(redis_port)
        res["dequeue_redis_cmds"] = (rc1[0] - rc0[0] - 1) / max(got, 1)
        res["dequeue_redis_trips"] = (rc1[1] - rc0[1]) / max(got, 1)
        res["dequeue_redis_cpu_util"] = (r1 - r0) / wall
        res["dequeue_redis_cpu_us"] = (r1 - r0) / max(got, 1) * 1e6
    return res


# -- streaming ------------------------------------------------------------------------

def curl_argv(t, size, upload):
    argv = ["taskset", "-c", k.LOAD_CPU, "curl", "-sS", "--max-time", str(CURL_MAX_S),
            "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{size_upload} %{time_total}"]
    argv += k.curl_header_args(t.headers_upload if upload else t.headers)
    if upload:
        return argv + ["-H", "Expect:", "-X", "POST", "-T", upload, t.base + k.ENQUEUE_PATH]
    return argv + [t.base + "/data/big"]


class SlowClient(threading.Thread):
    """One client that downloads (or uploads) through the target at SLOW_RATE until stopped."""

    def __init__(self, t, upload_size=0):
        super().__init__(daemon=True)
        self.t, self.upload_size = t, upload_size
        self.stop_ev = threading.Event()
        self.moved = 0
        self.error = None

    def run(self):
        port = int(self.t.base.rsplit(":", 1)[1])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
                hdrs = "".join("%s\r\n" % h for h in
                               (self.t.headers_upload if self.upload_size else self.t.headers))
                if self.upload_size:
                    s.sendall(("POST %s HTTP/1.1\r\nHost: bench\r\n%sContent-Length: %d\r\n\r\n"
                               % (k.ENQUEUE_PATH, hdrs, self.upload_size)).encode())
                else:
                    s.sendall(("GET /data/big HTTP/1.1\r\nHost: bench\r\n%s\r\n" % hdrs).encode())
                self.pump(s)
        except OSError as e:
            self.error = e

    def pump(self, s):
        block = bytes(64 << 10)
        start = time.monotonic()
        while not self.stop_ev.is_set() and time.monotonic() - start < CURL_MAX_S:
            n = s.send(block) if self.upload_size else len(s.recv(64 << 10))
            if n == 0:
                return
            self.moved += n
            ahead = self.moved / SLOW_RATE - (time.monotonic() - start)
            if ahead > 0:
                self.stop_ev.wait(ahead)


def transfers(t, n, size, upload=None, slow=False):
    """n concurrent 1-file transfers (downloads, or uploads of the file `upload`), optionally
    with one throttled client alongside. Returns aggregate MB/s (10^6 bytes) of the n and the
    target's peak RSS (VmHWM, reset first) in MB."""
    t.stats.reset_peak()
    sc = SlowClient(t, size if upload else 0) if slow else None
    if sc:
        sc.start()
        time.sleep(0.3)
    procs = [subprocess.Popen(curl_argv(t, size, upload), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    total, longest = 0, 0.0
    for p in procs:
        out, err = p.communicate(timeout=CURL_MAX_S + 30)
        code, down, up, secs = out.split()
        moved = int(up if upload else down)
        if p.returncode != 0 or code != "200" or moved != size:
            raise RuntimeError("%s transfer failed: rc %d, %s, %s bytes: %s"
                               % (t.name, p.returncode, code, moved, err.strip()))
        total += moved
        longest = max(longest, float(secs))
    peak = t.stats.vm_kb("VmHWM") / 1024
    res = {"mbps": total / longest / 1e6, "peak_rss_mb": peak}
    if sc:
        sc.stop_ev.set()
        sc.join(10)
        if sc.moved == 0:
            raise RuntimeError("%s: the slow client moved nothing (%s)" % (t.name, sc.error))
        res["slow_client_mb"] = sc.moved / 1e6
    return res


# -- idle connections -----------------------------------------------------------------

def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before a response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError("unexpected response %r" % head[:80])
    n = int(re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head).group(1))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed inside a body")
        body += chunk


def idle(t, n):
    """Opens n connections, one GET /data/small on each, keeps them open and idle: RSS
    delta of the target per connection (bytes); and the RSS still held 2 s after all n
    were closed (MB), memory the process did not give back."""
    port = int(t.base.rsplit(":", 1)[1])
    req = ("GET /data/small HTTP/1.1\r\nHost: bench\r\n%s\r\n"
           % "".join("%s\r\n" % h for h in t.headers)).encode()
    socks = []
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(req)
        read_response(s)
        s.close()
        time.sleep(0.5)
        rss0 = t.stats.vm_kb("VmRSS")
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)
            s.sendall(req)
            read_response(s)
        time.sleep(1.0)
        rss1 = t.stats.vm_kb("VmRSS")
        for s in socks:       # all still open: the target did not drop an idle connection
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    raise RuntimeError("%s closed an idle connection" % t.name)
            except BlockingIOError:
                pass
    finally:
        for s in socks:
            s.close()
    time.sleep(2.0)
    rss2 = t.stats.vm_kb("VmRSS")
    return {"idle_bytes_per_conn": (rss1 - rss0) * 1024 / n, "idle_conns": n,
            "idle_retained_mb": (rss2 - rss0) / 1024}
