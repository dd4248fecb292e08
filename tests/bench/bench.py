"""bench: fogate against nginx as a reverse proxy, side by side, in one run.

Starts the upstream (nginx with fixed bodies, sink.py for uploads), two fosims for tokens,
fogate, the baseline fogate (--baseline) and the nginx peer (benchkit), then measures them
alternately with repetitions (benchlegs) and writes results.json, results.md and results.png
(benchreport). See README.md.

Usage: bench.py [--smoke] [--legs LIST] [--out DIR] [--reps N] [--fogate BIN] [--fosim BIN]
                [--baseline BIN]"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import benchkit as k
import benchlegs as legs
import benchreport
import harness

FULL = {"secs": 10, "paced_secs": 10, "rate_secs": 6, "syscall_secs": 3, "reps": 5,
        "stream_reps": 3, "big": 1 << 30, "idle": 10000, "feed": 400000}
SMOKE = {"secs": 2, "paced_secs": 2, "rate_secs": 1, "syscall_secs": 1, "reps": 1,
         "stream_reps": 1, "big": 64 << 20, "idle": 300, "feed": 100000}


KEYS = (["X-Api-Key: " + k.API_KEY], ["X-Api-Key: " + k.UPLOAD_KEY])
LEGS = ("small", "status", "stream", "ledger", "idle", "multicore")


class Target:
    """A process under test: name is "fogate", "base" (the baseline fogate), "nginx" or
    "direct" (the upstream, or fosim, without a proxy)."""

    def __init__(self, name, base, stats, headers=(), headers_upload=()):
        self.name, self.base, self.stats = name, base, stats
        self.pid = stats.pid
        self.headers, self.headers_upload = list(headers), list(headers_upload)
        self.status_mode = "simple" if name in ("fogate", "base") else "odata"


class Runs:
    """Figures by target and metric: runs[target][metric] = [values]."""

    def __init__(self):
        self.runs = {}

    def add(self, target, figures, prefix=""):
        for key, v in figures.items():
            self.runs.setdefault(target, {}).setdefault(prefix + key, []).append(v)
        return figures


def summary(values):
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


class Bench:
    def __init__(self, args, p):
        self.args, self.p = args, p
        self.work = tempfile.mkdtemp(prefix="fogate-bench-")
        self.procs = []
        self.fg = self.fgb = self.peer = self.fglb = None
        self.runs = Runs()
        self.log = lambda msg: print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg),
                                     flush=True)

    def start(self):
        self.log("work dir %s; writing files (%d MiB)" % (self.work, self.p["big"] >> 20))
        self.big = k.make_files(self.work, self.p["big"])
        self.up = k.Nginx("upstream", self.work, "nginx-upstream.conf.in", {}, k.LOAD_CPU)
        self.procs.append(self.up)
        self.sink = k.Sink(self.work)
        self.procs.append(self.sink)
        self.sims = [k.start_sim(self.work, "sim-up", self.up.base),
                     k.start_sim(self.work, "sim-sink", self.sink.base)]
        self.procs += self.sims
        self.redis = harness.start_redis(self.work)
        self.procs.append(self.redis)
        k.pin(self.redis.pid, k.LOAD_CPU)
        self.sims.append(k.start_sim(self.work, "sim-d365", None))
        self.procs.append(self.sims[2])
        self.fgl = k.FogateLedger(self.work, self.args.fogate, self.sims[2], self.redis.port)
        self.procs.append(self.fgl)
        self.fglb = None
        if self.args.baseline:
            self.fglb = k.FogateLedger(self.work, self.args.baseline, self.sims[2],
                                       self.redis.port, name="fogate-base-ledger")
            self.procs.append(self.fglb)
        self.direct = Target("direct", self.up.base, self.up.stats)
        self.direct_sink = Target("direct", self.sink.base, k.Stats(self.sink.proc.pid))
        self.start_proxies()

    def peer_values(self):
        """The peer's template values; it gets one token per environment, fetched once (the
        helper script)."""
        up, sink, sims = self.up, self.sink, self.sims
        return {"UP_PORT": up.port, "SINK_PORT": sink.port, "API_KEY": k.API_KEY,
                "UPLOAD_KEY": k.UPLOAD_KEY, "TOKEN": sims[0].token(resource=up.base),
                "SINK_TOKEN": sims[1].token(resource=sink.base), "SIM_PORT": sims[2].port,
                "SIM_TOKEN": sims[2].token()}

    def start_proxies(self):
        """fogate, the baseline fogate (if any) and the nginx peer, fresh, each on the proxy
        cpu."""
        up, sink, sims = self.up, self.sink, self.sims
        self.fg = k.Fogate(self.work, self.args.fogate, up, sink, sims[0], sims[1])
        self.fgb = None
        if self.args.baseline:
            self.fgb = k.Fogate(self.work, self.args.baseline, up, sink, sims[0], sims[1],
                                name="fogate-base")
        self.peer = k.Nginx("peer", self.work, "nginx-peer.conf.in", self.peer_values(),
                            k.PROXY_CPU)
        self.fogate = Target("fogate", self.fg.base, self.fg.stats, *KEYS)
        self.nginx = Target("nginx", self.peer.base, self.peer.stats, *KEYS)
        self.targets = [self.fogate, self.nginx]
        if self.fgb:
            self.targets.insert(1, Target("base", self.fgb.base, self.fgb.stats, *KEYS))

    def stop_proxies(self):
        """Stops them (SIGTERM / SIGQUIT, by PID); all must exit 0 and fogate's logs be
        clean."""
        codes = {"fogate": self.fg.stop(), "nginx": self.peer.stop()}
        if self.fgb:
            codes["base"] = self.fgb.stop()
        self.fg, self.fgb, self.peer = None, None, None
        if set(codes.values()) != {0}:
            raise RuntimeError("proxies exited badly: %s" % codes)
        check_fogate_log(os.path.join(self.work, "fogate.log"))
        if self.args.baseline:
            check_fogate_log(os.path.join(self.work, "fogate-base.log"))

    def order(self, rep, targets=None):
        """The targets in this repetition's order: each goes first in turn."""
        targets = targets or self.targets
        n = rep % len(targets)
        return targets[n:] + targets[:n]

    def leg_idle(self):
        for t in self.targets:
            self.log("idle connections: %s, %d" % (t.name, self.p["idle"]))
            self.runs.add(t.name, legs.idle(t, self.p["idle"]))

    def leg_small(self, route="small"):
        """Leg 1 (route small, the pass-through) or its twin on the status route: per
        target CPU per request at each offered rate, closed-loop throughput with CPU use,
        latency at ~1,000 req/s and system calls per request."""
        p = self.p
        for rep in range(p["reps"]):
            self.log("%s requests, repetition %d/%d" % (route, rep + 1, p["reps"]))
            if route == "small":
                self.runs.add("direct", legs.small(self.direct, p["secs"], self.direct.base))
            self.runs.add("direct", legs.paced(self.direct, p["paced_secs"], name=route))
            for t in self.order(rep):
                for offered in legs.RATES:
                    self.runs.add(t.name, legs.rate(t, p["rate_secs"], offered, name=route))
                self.runs.add(t.name, legs.small(t, p["secs"], self.direct.base, name=route))
                self.runs.add(t.name, legs.paced(t, p["paced_secs"], name=route))
                self.runs.add(t.name, legs.syscalls(t, p["syscall_secs"], self.work,
                                                    name=route))

    def leg_status(self):
        self.leg_small("status")

    def leg_stream(self):
        size = self.p["big"]
        for rep in range(self.p["stream_reps"]):
            self.log("streaming, repetition %d/%d" % (rep + 1, self.p["stream_reps"]))
            for prefix, res in (
                    ("down1_", legs.transfers(self.direct, 1, size)),
                    ("up1_", legs.transfers(self.direct_sink, 1, size, self.big))):
                self.runs.add("direct", {"mbps": res["mbps"]}, prefix)
            for t in self.order(rep):
                for name, n, slow in (("1", 1, False), ("4", 4, False), ("3slow", 3, True)):
                    self.runs.add(t.name, legs.transfers(t, n, size, None, slow), "down%s_" % name)
                    self.runs.add(t.name, legs.transfers(t, n, size, self.big, slow),
                                  "up%s_" % name)

    def leg_ledger(self):
        """Leg 3: connector dequeues through fogate's ack ledger (a second fogate, Redis on
        loopback, fosim as D365 answering from memory) against the nginx peer passing them
        to the same fosim, and fosim alone (its ceiling, as "direct")."""
        sim = self.sims[2]
        sim_stats = k.Stats(sim.proc.pid)
        key = ["X-Api-Key: " + k.API_KEY]
        targets = [Target("fogate", self.fgl.base, self.fgl.stats, key), self.nginx]
        if self.fglb:
            targets.insert(1, Target("base", self.fglb.base, self.fglb.stats, key))
        direct = Target("direct", sim.base_url, sim_stats,
                        ["Authorization: Bearer " + sim.token()])
        for rep in range(self.p["reps"]):
            self.log("ledger dequeues, repetition %d/%d" % (rep + 1, self.p["reps"]))
            for t in self.order(rep, targets + [direct]):
                redis = self.redis.port if t.name in ("fogate", "base") else None
                self.runs.add(t.name, legs.dequeues(t, self.p["secs"], sim, self.p["feed"],
                                                    sim_stats, redis))

    def leg_multicore(self):
        """Leg 5: fogate with `workers` = N (the CPUs this run may use) and with 1 worker,
        and nginx with worker_processes N, all on the same N CPUs (not pinned inside them),
        wrk with N threads on them too. Figures: mc_* (N) and mc1_* (fogate, 1 worker)."""
        n = len(k.ALL_CPUS.split(","))
        up, sink, sims, work = self.up, self.sink, self.sims, self.work
        self.log("multi-core: %d workers on cpus %s" % (n, k.ALL_CPUS))
        procs = [k.Fogate(work, self.args.fogate, up, sink, sims[0], sims[1], workers=n,
                          cpus=k.ALL_CPUS, name="fogate-mc")]
        procs.append(k.Fogate(work, self.args.fogate, up, sink, sims[0], sims[1], workers=1,
                              cpus=k.ALL_CPUS, name="fogate-mc1"))
        procs.append(k.Nginx("peer", work, "nginx-peer.conf.in", self.peer_values(),
                             k.ALL_CPUS, workers=n))
        runs = [(Target("fogate", procs[0].base, procs[0].stats, *KEYS), "mc_"),
                (Target("fogate", procs[1].base, procs[1].stats, *KEYS), "mc1_"),
                (Target("nginx", procs[2].base, procs[2].stats, *KEYS), "mc_")]
        logs = ["fogate-mc", "fogate-mc1"]
        if self.args.baseline:
            for workers, prefix in ((n, "mc_"), (1, "mc1_")):
                name = "fogate-base-mc" + ("1" if workers == 1 else "")
                procs.append(k.Fogate(work, self.args.baseline, up, sink, sims[0], sims[1],
                                      workers=workers, cpus=k.ALL_CPUS, name=name))
                runs.append((Target("base", procs[-1].base, procs[-1].stats, *KEYS), prefix))
                logs.append(name)
        try:
            for rep in range(self.p["reps"]):
                self.log("multi-core, repetition %d/%d" % (rep + 1, self.p["reps"]))
                for t, prefix in self.order(rep, runs):
                    self.runs.add(t.name, legs.multicore(t, self.p["secs"]), prefix)
        finally:
            codes = [pr.stop() for pr in procs]
        if set(codes) != {0}:
            raise RuntimeError("multi-core proxies exited badly: %s" % codes)
        for name in logs:
            check_fogate_log(os.path.join(work, name + ".log"))

    def stop(self):
        codes = {}
        for pr in [self.fg, getattr(self, "fgb", None), self.peer] + list(reversed(self.procs)):
            if pr:
                proc = getattr(pr, "proc", pr)
                # a fosim that handed out 10^5 messages takes a while to clean its data dir
                codes[proc.name + ("-%d" % len(codes))] = (
                    proc.stop(timeout=120) if proc.name == "fosim" else pr.stop())
        return codes

    def run(self):
        meta = machine_meta(self.args, self.p)
        meta["loadavg_start"] = os.getloadavg()
        t0 = time.monotonic()
        try:
            self.start()
            for leg in ("small", "status", "stream", "ledger"):
                if leg in self.args.legs:
                    getattr(self, "leg_" + leg)()
            self.stop_proxies()
            if "idle" in self.args.legs:
                self.start_proxies()          # the idle leg on fresh processes
                self.leg_idle()
                self.stop_proxies()
            if "multicore" in self.args.legs:
                self.leg_multicore()          # its own processes, on every cpu
        finally:
            codes = self.stop()
        meta["loadavg_end"] = os.getloadavg()
        meta["duration_s"] = round(time.monotonic() - t0)
        bad = {n: c for n, c in codes.items() if c != 0 and not n.startswith("sink")}
        if bad:
            raise RuntimeError("processes exited badly: %s" % bad)
        check_fogate_log(self.fgl.proc.log_path)
        if self.fglb:
            check_fogate_log(self.fglb.proc.log_path)
        return {"meta": meta,
                "runs": {t: {m: summary(v) for m, v in ms.items()}
                         for t, ms in self.runs.runs.items()}}


def check_fogate_log(path):
    """fogate's log must hold no sanitizer report, and no token or secret."""
    with open(path, errors="replace") as f:
        text = f.read()
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                 harness.APP_SECRET, "eyJ"):
        if mark in text:
            raise RuntimeError("fogate's log holds %r" % mark[:20])


def version(binary):
    """`fogate --version`'s first line (names the commit it was built from, when it does)."""
    try:
        r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
        return ((r.stdout + r.stderr).strip().splitlines() or ["unknown"])[0]
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def tree_commit():
    """The commit of the benchmark's own tree, or "unknown" when it is not a git checkout
    (a `git archive` copy: fogate --version, in the report too, still names its commit)."""
    try:
        r = subprocess.run(["git", "-C", k.HERE, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else "unknown"


def machine_meta(args, p):
    def out(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "unknown"
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "mode": args.mode, "params": p,
            "legs": sorted(args.legs), "multicore_cpus": k.ALL_CPUS,
            "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
            "nginx": out(["nginx", "-v"]), "wrk": " ".join(out(["wrk", "-v"]).split()[:2]),
            "fogate_commit": tree_commit(),
            "fogate_bin": args.fogate, "baseline_bin": args.baseline,
            "baseline_version": version(args.baseline) if args.baseline else None,
            "fogate_version": version(args.fogate), "rates": list(legs.RATES),
            "fogate_client": args.client or "default",
            "baseline_client": (args.baseline_client or "default") if args.baseline else None,
            "pinning": "proxy under test on cpu %s; wrk, curl, upstream nginx, sink, fosim "
                       "and this driver on cpu %s" % (k.PROXY_CPU, k.LOAD_CPU)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="a few seconds per leg, small files")
    ap.add_argument("--legs", default=",".join(LEGS),
                    help="comma list of legs to run (default all: %s)" % ",".join(LEGS))
    ap.add_argument("--out", help="directory for results.* (default: tests/bench, or a "
                                  "temporary directory with --smoke or some --legs)")
    ap.add_argument("--fogate", default=os.environ.get("FOGATE_BIN"))
    ap.add_argument("--fosim", default=os.environ.get("FOSIM_BIN"))
    ap.add_argument("--baseline", help="a baseline fogate binary, measured alternately with "
                    "the new one and nginx in every leg (target \"base\")")
    ap.add_argument("--client", choices=("curl", "native"), help="upstream.client of the "
                    "fogate under test (default: the config's default)")
    ap.add_argument("--baseline-client", choices=("curl", "native"), help="upstream.client "
                    "of the baseline (with --baseline; it may be the same binary)")
    ap.add_argument("--reps", type=int, help="repetitions of the small, status, ledger and "
                    "multi-core legs (default 5, smoke 1)")
    args = ap.parse_args()
    args.mode = "smoke" if args.smoke else "full"
    args.legs = set(args.legs.split(","))
    if not args.legs <= set(LEGS):
        sys.exit("bench: unknown legs %s (known: %s)" % (sorted(args.legs - set(LEGS)),
                                                          ",".join(LEGS)))
    for name in ("fogate", "fosim"):
        if not getattr(args, name) or not os.path.exists(getattr(args, name)):
            sys.exit("bench: the %s binary is not given (--%s or %s_BIN)"
                     % (name, name, name.upper()))
    if args.baseline and not os.access(args.baseline, os.X_OK):
        sys.exit("bench: the baseline %s is not an executable" % args.baseline)
    os.environ["FOSIM_BIN"] = args.fosim
    k.CLIENTS.update(fogate=args.client, base=args.baseline_client)
    os.sched_setaffinity(0, {int(k.LOAD_CPU)})
    p = dict(SMOKE if args.smoke else FULL)
    if args.reps:
        p["reps"] = args.reps
    b = Bench(args, p)
    try:
        results = b.run()
    except BaseException:
        print("[bench] failed; logs kept in %s" % b.work, file=sys.stderr)
        shutil.rmtree(os.path.join(b.work, "www"), ignore_errors=True)
        raise
    shutil.rmtree(b.work, ignore_errors=True)
    partial = args.smoke or set(args.legs) != set(LEGS)   # never over the committed results
    out = args.out or (tempfile.mkdtemp(prefix="fogate-bench-out-") if partial else k.HERE)
    os.makedirs(out, exist_ok=True)
    benchreport.write(results, out)
    b.log("results in %s" % out)


if __name__ == "__main__":
    main()
