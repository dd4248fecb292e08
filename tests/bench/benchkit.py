"""benchkit: the processes of the benchmark and how they are measured.

Starts the upstream (nginx with fixed bodies + sink.py for uploads), two fosims (one Entra
audience each: the upstream's and the sink's), fogate and the nginx peer on free 127.0.0.1
ports, each pinned with taskset; reads CPU time and memory from /proc; runs wrk and curl.
Every wait has a deadline; every process is stopped by PID. The token given to the peer lives
only in its config file inside the work directory, which is removed at the end."""
import atexit
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import harness  # noqa: E402

API_KEY = "bench-key-5e0c1d2b3a4f"            # client of /data (test value)
UPLOAD_KEY = "bench-upload-key-9a8b7c6d"      # client of the import job (test value)
SECRET_ENV = "FOGATE_BENCH_SECRET"
PROXY_CPU = "0"                               # the proxy under test
LOAD_CPU = "1"                                # load generators, upstream, simulators
ALL_CPUS = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))  # multi-core leg
CLK_TCK = os.sysconf("SC_CLK_TCK")
ENQUEUE_PATH = "/api/connector/enqueue/%s?entity=Customer%%20groups" % harness.IMPORT_JOB


def fill(template, values):
    """The template file's text with every @KEY@ replaced; fails on a placeholder left over."""
    with open(os.path.join(HERE, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace("@%s@" % k, str(v))
    left = re.findall(r"@(?!NAME@)[A-Z_0-9]+@", text)
    if left:
        raise RuntimeError("%s: unfilled placeholders %s" % (template, left))
    return text


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def pin(pid, cpu):
    """Pins every thread of pid to cpu (for processes started without taskset)."""
    for tid in os.listdir("/proc/%d/task" % pid):
        os.sched_setaffinity(int(tid), {int(cpu)})


class Stats:
    """CPU and memory of one process, from /proc."""

    def __init__(self, pid):
        self.pid = pid

    def cpu_s(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime + stime

    def vm_kb(self, field):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    def reset_peak(self):
        """Resets VmHWM to the current RSS (Linux >= 4.0)."""
        with open("/proc/%d/clear_refs" % self.pid, "w") as f:
            f.write("5")


class GroupStats:
    """CPU time of several processes (nginx's workers) together."""

    def __init__(self, pids):
        self.pid = pids[0]
        self.parts = [Stats(p) for p in pids]

    def cpu_s(self):
        return sum(s.cpu_s() for s in self.parts)


class Nginx:
    """nginx from a template, master + `workers` worker processes pinned to cpu (a taskset
    list); .stats is the worker's (with several: their CPU time together)."""

    def __init__(self, name, workdir, template, values, cpu, workers=1):
        self.name = name
        self.port = harness.free_port()
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(workdir, name + "-tmp", d), exist_ok=True)
        self.workers = workers
        vals = dict(values, PORT=self.port, WORK=workdir, WORKERS=workers,
                    USER="user root;" if os.geteuid() == 0 else "")
        self.conf = os.path.join(workdir, name + ".conf")
        with open(self.conf, "w") as f:
            f.write(fill(template, vals))
        self.proc = harness.Proc(name, ["taskset", "-c", cpu, nginx_bin(), "-p", workdir,
                                        "-c", self.conf], workdir)
        harness.wait_port(self.port)
        kids = harness.wait_until(self.find_workers, what=name + " workers")
        self.worker = kids[0]
        self.stats = Stats(self.worker) if workers == 1 else GroupStats(kids)
        self.base = "http://127.0.0.1:%d" % self.port

    def find_workers(self):
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            kids = [int(p) for p in f.read().split()]
        return kids if len(kids) == self.workers else None

    def stop(self):
        return self.proc.stop(sig=signal.SIGQUIT)


def nginx_bin():
    return shutil.which("nginx") or "/usr/sbin/nginx"


class Sink:
    """sink.py on a free port, pinned to the load cpu."""

    def __init__(self, workdir):
        self.proc = harness.Proc("sink", [sys.executable, os.path.join(HERE, "sink.py")],
                                 workdir, stdout_pipe=True)
        self.port = json.loads(self.proc.read_line())["port"]
        pin(self.proc.pid, LOAD_CPU)
        self.base = "http://127.0.0.1:%d" % self.port

    def stop(self):
        return self.proc.stop()


# upstream.client of the fogate under test and of the baseline (bench.py --client,
# --baseline-client); None leaves the config's default.
CLIENTS = {"fogate": None, "base": None}


class Fogate:
    """fogate pinned to the proxy cpu (or `cpus`, a taskset list), its environment "bench"
    at the nginx upstream and "upload" at the sink (one client each, so /data needs no
    X-Fogate-Environment), with `workers` worker threads; ready once /readyz says its
    tokens are there (on every worker: each has its own token manager)."""

    def __init__(self, workdir, fogate_bin, upstream, sink, sim_up, sim_sink, workers=1,
                 cpus=PROXY_CPU, name="fogate"):
        self.port = harness.free_port()
        self.cpus, self.workers = cpus, workers
        self.start(workdir, fogate_bin, name, fill("fogate.json.in", {
            "PORT": self.port, "UP_PORT": upstream.port, "SINK_PORT": sink.port,
            "TENANT": harness.TENANT, "CLIENT_ID": harness.APP_ID, "FOSIM": sim_up.base_url,
            "SINK_FOSIM": sim_sink.base_url, "IMPORT_JOB": harness.IMPORT_JOB,
            "EXPORT_JOB": harness.EXPORT_JOB, "API_KEY_SHA256": sha256(API_KEY),
            "UPLOAD_KEY_SHA256": sha256(UPLOAD_KEY), "WORKERS": workers}))

    def start(self, workdir, fogate_bin, name, config_text):
        self.base = "http://127.0.0.1:%d" % self.port
        self.config = os.path.join(workdir, name + ".json")
        client = CLIENTS["base" if name.startswith("fogate-base") else "fogate"]
        if client:
            conf = json.loads(config_text)
            conf.setdefault("upstream", {})["client"] = client
            config_text = json.dumps(conf, indent=2)
        with open(self.config, "w") as f:
            f.write(config_text)
        env = dict(os.environ)
        env[SECRET_ENV] = harness.APP_SECRET
        self.proc = harness.Proc(name, ["taskset", "-c", getattr(self, "cpus", PROXY_CPU),
                                        fogate_bin, "-c", self.config], workdir, env=env)
        self.stats = Stats(self.proc.pid)
        ready = set()
        harness.wait_until(lambda: worker_ready(self.port, ready, self.proc.log_path)
                           >= getattr(self, "workers", 1), what=name + " ready")

    def stop(self):
        return self.proc.stop()


class FogateLedger(Fogate):
    """A second fogate for leg 3: the connector dequeue through the ack ledger (Redis), with
    fosim as D365."""

    def __init__(self, workdir, fogate_bin, sim, redis_port, name="fogate-ledger"):
        self.port = harness.free_port()
        self.start(workdir, fogate_bin, name, fill("fogate-ledger.json.in", {
            "PORT": self.port, "TENANT": harness.TENANT, "CLIENT_ID": harness.APP_ID,
            "FOSIM": sim.base_url, "EXPORT_JOB": harness.EXPORT_JOB,
            "API_KEY_SHA256": sha256(API_KEY), "REDIS_PORT": redis_port}))


_probes = iter(range(1 << 62))


def worker_ready(port, ready, log_path):
    """On one fresh connection: which worker serves it (the `worker` of its request log
    line, found by the X-Request-Id sent) and whether it is ready (/readyz); adds it to the
    set `ready` if so. Returns len(ready)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    rid = "ready-%d" % next(_probes)
    try:
        conn.request("GET", "/readyz", headers={"X-Request-Id": rid})
        r = conn.getresponse()
        r.read()
        if r.status == 200:  # this probe's line, or an earlier ready one's logged late
            with open(log_path, "rb") as f:
                for line in f:
                    if b'"request_id":"ready-' in line and b'"status":200' in line:
                        ready.add(json.loads(line).get("worker", 0))
    except (OSError, ValueError, http.client.HTTPException):
        pass
    finally:
        conn.close()
    return len(ready)


def start_sim(workdir, name, audience):
    """A fosim whose Entra endpoint issues tokens for `audience` (None: its own URL), pinned
    to the load cpu."""
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)
    cfg = harness.default_sim_config(**({"audience": audience} if audience else {}))
    sim = harness.start_fosim(d, cfg,
                              extra_args=("--log-level", "warn"))
    pin(sim.proc.pid, LOAD_CPU)
    return sim


def make_files(workdir, big_bytes):
    """www/data/small (a 1 KiB JSON document) and www/data/big (big_bytes) for the upstream;
    the big file is also the upload source. Returns the big file's path."""
    data = os.path.join(workdir, "www", "data")
    os.makedirs(data, exist_ok=True)
    rows = [{"dataAreaId": "usmf", "CustomerGroupId": "%02d" % i,
             "Description": "Wholesale customers %d" % i} for i in range(12)]
    doc = json.dumps({"@odata.context": "https://d365.example/data/$metadata#CustomerGroups",
                      "value": rows}, separators=(",", ":"))
    doc = (doc + " " * 1024)[:1024] if len(doc) < 1024 else doc[:1024]
    with open(os.path.join(data, "small"), "w") as f:
        f.write(doc)
    big = os.path.join(data, "big")
    block = bytes(range(256)) * 4096                     # 1 MiB, not all zeros
    with open(big, "wb") as f:
        for _ in range(big_bytes // len(block)):
            f.write(block)
    return big


# -- load generators ------------------------------------------------------------------

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def ms(text):
    m = re.match(r"([\d.]+)(us|ms|s)$", text)
    return float(m.group(1)) * UNITS[m.group(2)]


_secret_dir = []


def secret_file(name, text):
    """A file (0600, in a 0700 directory removed at exit) holding text, for headers that
    carry API keys: curl reads them with -H @file, wrk from a Lua script, so no key goes
    on a command line (ps). `name` must change with `text` (callers put its hash in it)."""
    if not _secret_dir:
        _secret_dir.append(tempfile.mkdtemp(prefix="fogate-bench-"))
        atexit.register(shutil.rmtree, _secret_dir[0], True)
    path = os.path.join(_secret_dir[0], name)
    if os.path.exists(path):  # names carry the content's hash: written once, never again,
        return path           # so a curl started earlier never reads it half rewritten
    return harness.write_secret_file(_secret_dir[0], name, text)


def curl_header_args(headers):
    """curl arguments sending these "Name: value" headers, read from a file."""
    if not headers:
        return []
    tag = hashlib.sha256("\n".join(headers).encode()).hexdigest()[:12]
    return ["-H", "@" + secret_file("curl-%s.txt" % tag, "\n".join(headers))]


def wrk_script(headers, scripts=()):
    """A wrk Lua script that sets these headers, then runs each of scripts (paths) in turn."""
    lines = ["wrk.headers[%s] = %s" % (json.dumps(n.strip()), json.dumps(v.strip()))
             for n, _, v in (h.partition(":") for h in headers)]
    if isinstance(scripts, str):
        scripts = [scripts]
    for script in scripts:
        lines.append("dofile(%s)" % json.dumps(script))
    text = "\n".join(lines)
    return secret_file("wrk-%s.lua" % hashlib.sha256(text.encode()).hexdigest()[:12], text)


def wrk(url, seconds, conns, headers=(), script=(), timeout_s=10, threads=1, cpus=LOAD_CPU,
        env=None):
    """Runs wrk (1 thread, pinned to the load cpu, unless told otherwise) and returns
    requests, rps, p50/p90/p99 in ms. `script`: Lua file(s) run after the headers are set;
    `env`: variables added to wrk's environment (the scripts read them). Raises if any
    response was not 2xx/3xx or a socket error happened."""
    argv = ["taskset", "-c", cpus, "wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds,
            "--latency", "--timeout", "%ds" % timeout_s]
    if headers or script:
        argv += ["-s", wrk_script(headers, script)]
    out = subprocess.run(argv + [url], capture_output=True, text=True, timeout=seconds + 30,
                         env=dict(os.environ, **(env or {}))).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError("wrk saw errors against %s:\n%s" % (url, out))
    r = {"requests": int(re.search(r"(\d+) requests in", out).group(1)),
         "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for p in ("50", "90", "99"):
        r["p" + p] = ms(re.search(r"\s%s%%\s+(\S+)" % p, out).group(1))
    return r


class PerfSyscalls:
    """perf stat -e raw_syscalls:sys_enter attached to a pid (all its threads)."""

    def __init__(self, pid, workdir):
        self.out = os.path.join(workdir, "perf-%d.txt" % pid)
        self.proc = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter",
                                      "-p", str(pid), "-o", self.out],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(10)
        with open(self.out) as f:
            for line in f:
                if "raw_syscalls:sys_enter" in line:
                    return int(line.split(",")[0])
        raise RuntimeError("perf wrote no count")
