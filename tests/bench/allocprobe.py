#!/usr/bin/env python3
"""allocprobe: fogate's own work per request, in figures that do not depend on the machine's
load: allocations (malloc/calloc/realloc through alloccount.so, an LD_PRELOAD counter built
from alloccount.c), system calls (perf stat -e raw_syscalls:sys_enter) and, for what it is
worth on a shared machine, CPU per request, on the bench's setup (benchkit: upstream nginx,
sink, two fosims; fogate on cpu 0, the rest on cpu 1).

Legs: "small" (the pass-through GET /data/small) and "status" (the simple API's message
status, status.lua), each paced at --rate req/s over 16 connections (pace.lua). With
--baseline OTHER_FOGATE both binaries are measured alternately, round by round, so a change
of load hits both. Per binary, leg and round: one run counting system calls and CPU, then
one run under the allocation counter (the counter's own cost stays out of the CPU figure).
With --callgrind, one more run per binary, leg and round under valgrind's callgrind
(paced at 200 req/s: valgrind slows fogate some 50 times): user-space instructions per
request, the CPU figure that does not depend on the machine's load (this machine's VMs
have no hardware counters for perf). Explains run.sh's figures; it does not replace them.

usage: allocprobe.py BUILD_DIR [--baseline FOGATE] [--legs small,status] [--rounds 3]
                     [--secs 5] [--rate 2000] [--callgrind [--keep-callgrind DIR]]
                     [--client C] [--baseline-client C]
--client / --baseline-client: upstream.client (curl or native) of each, as run.sh's; the
baseline may then be the same binary."""
import argparse
import glob
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import benchkit as k  # noqa: E402
import benchlegs  # noqa: E402

KEY = ["X-Api-Key: " + k.API_KEY]
CONNS = 16


class Target:
    """What benchlegs.route needs of a fogate."""

    def __init__(self, fg):
        self.base, self.status_mode = fg.base, "simple"


def build_counter(work):
    so = os.path.join(work, "alloccount.so")
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", so,
                    os.path.join(HERE, "alloccount.c")], check=True)
    return so


def start_fogate(s, binary, name, counter=None):
    saved = dict(os.environ)
    try:
        if counter:
            os.environ["LD_PRELOAD"] = s["counter"]
            os.environ["ALLOCCOUNT_FILE"] = counter
        return k.Fogate(s["work"], binary, s["up"], s["sink"], s["sims"][0], s["sims"][1],
                        name=name)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def read_count(path):
    with open(path, "rb") as f:
        return struct.unpack("L", f.read(8))[0]


def run(fg, leg, secs, rate):
    url, scripts, env = benchlegs.route(Target(fg), leg)
    if rate:
        scripts = scripts + [os.path.join(HERE, "pace.lua")]
        env = dict(env, BENCH_PACE_RATE=str(rate))
    return k.wrk(url, secs, CONNS, KEY, scripts, env=env)


def measure(s, binary, name, leg, secs, rate):
    fg = start_fogate(s, binary, name)
    try:
        run(fg, leg, 1, rate)  # warm: connections, tokens, heap
        c0, perf = fg.stats.cpu_s(), k.PerfSyscalls(fg.proc.pid, s["work"])
        r = run(fg, leg, secs, rate)
        calls, cpu = perf.stop(), fg.stats.cpu_s() - c0
    finally:
        fg.stop()
    path = os.path.join(s["work"], "allocs-" + name)
    fa = start_fogate(s, binary, name + "-counted", path)
    try:
        run(fa, leg, 1, rate)
        a0 = read_count(path)
        ra = run(fa, leg, secs, rate)
        allocs = read_count(path) - a0
    finally:
        fa.stop()
    return {"rps": r["rps"], "p99_ms": r["p99"], "cpu_us": cpu / r["requests"] * 1e6,
            "syscalls": calls / r["requests"], "allocs": allocs / ra["requests"]}


CG_RATE = 200
KEEP_CG = None  # --keep-callgrind DIR


def instructions(s, binary, name, leg, secs):
    """Thousands of user-space instructions per request, counted by callgrind (all threads)
    between a zeroing and a dump around one paced run."""
    out = os.path.join(s["work"], "cg-" + name)
    wrap = os.path.join(s["work"], "fogate-cg-" + name)
    with open(wrap, "w") as f:
        f.write('#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=%s %s "$@"\n'
                % (out, binary))
    os.chmod(wrap, 0o755)
    fg = start_fogate(s, wrap, name + "-cg")
    try:
        run(fg, leg, 2, CG_RATE)
        subprocess.run(["callgrind_control", "-z", str(fg.proc.pid)], check=True,
                       capture_output=True)
        r = run(fg, leg, secs, CG_RATE)
        subprocess.run(["callgrind_control", "--dump", str(fg.proc.pid)], check=True,
                       capture_output=True)
    finally:
        fg.stop()
    total = 0
    for path in glob.glob(out + ".*"):
        with open(path) as f:
            total += sum(int(line.split()[1]) for line in f if line.startswith("totals:"))
        if KEEP_CG:  # for callgrind_annotate: where the instructions went
            shutil.copy(path, os.path.join(KEEP_CG, "%s-%s-%s" % (
                name, leg, os.path.basename(path).rsplit(".", 1)[-1])))
        os.unlink(path)
    return total / r["requests"] / 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--baseline", help="another fogate binary, measured alternately")
    ap.add_argument("--legs", default="small,status")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--secs", type=int, default=5)
    ap.add_argument("--rate", type=int, default=2000, help="req/s; 0: closed loop")
    ap.add_argument("--callgrind", action="store_true",
                    help="also user-space instructions per request (valgrind)")
    ap.add_argument("--keep-callgrind", metavar="DIR",
                    help="with --callgrind: keep callgrind's files there (callgrind_annotate)")
    ap.add_argument("--client", choices=("curl", "native"))
    ap.add_argument("--baseline-client", choices=("curl", "native"))
    a = ap.parse_args()
    global KEEP_CG
    KEEP_CG = a.keep_callgrind
    k.CLIENTS.update(fogate=a.client, base=a.baseline_client)
    work = tempfile.mkdtemp(prefix="allocprobe-")
    os.environ["FOSIM_BIN"] = os.path.join(a.build, "tests", "sim", "fosim")
    bins = [("fogate", os.path.join(a.build, "proxy", "fogate"))]
    if a.baseline:
        bins.append(("fogate-base", a.baseline))  # benchkit gives it --baseline-client
    k.make_files(work, 1 << 20)
    up = k.Nginx("upstream", work, "nginx-upstream.conf.in", {}, k.LOAD_CPU)
    sink = k.Sink(work)
    sims = []
    try:
        sims = [k.start_sim(work, "sim-up", up.base), k.start_sim(work, "sim-sink", sink.base)]
        s = {"work": work, "up": up, "sink": sink, "sims": sims, "counter": build_counter(work)}
        res = {}
        for leg in a.legs.split(","):
            for i in range(a.rounds):
                for name, binary in bins if i % 2 == 0 else bins[::-1]:
                    r = measure(s, binary, name, leg, a.secs, a.rate)
                    if a.callgrind:
                        r["instr_k"] = instructions(s, binary, name, leg, a.secs)
                    res.setdefault((leg, name), []).append(r)
                    print("%-6s round %d %-6s %s" % (leg, i + 1, name, " ".join(
                        "%s=%.2f" % kv for kv in sorted(r.items()))), flush=True)
        for (leg, name), runs in res.items():
            print("%-6s median %-6s %s" % (leg, name, " ".join(
                "%s=%.2f" % (key, statistics.median(r[key] for r in runs))
                for key in sorted(runs[0]))))
    finally:
        for p in sims + [sink, up]:
            p.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
