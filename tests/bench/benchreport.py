"""benchreport: results.json, results.md (tables: fogate, the baseline fogate when measured,
nginx, each fogate / nginx, upstream direct; the targets and how far each is; flags on runs
whose figures do not mean what they seem) and results.png (gnuplot) from one run."""
import json
import os
import subprocess
import tempfile

RATES = (5000, 10000)       # offered rates of the CPU-per-request runs (benchlegs.rate)
LG_BOUND = 0.85             # a proxy under this CPU use (cores) at full load was not the limit
RATE_SHORT = 0.97           # a paced run below this share of its offered rate is flagged
PROXIES = ("fogate", "base", "nginx")
LABEL = {"fogate": "fogate", "base": "fogate baseline", "nginx": "nginx",
         "direct": "upstream direct"}


def rate_rows(p, what):
    rows = []
    for r in RATES:
        k = "%sr%dk_" % (p, r // 1000)
        rows += [(k + "cpu_us_per_req", "**CPU per request at %s req/s offered** (utime+stime / "
                  "requests)" % "{:,}".format(r), "µs", "lower"),
                 (k + "rps", "%s req/s offered: achieved rate" % "{:,}".format(r), "req/s", None),
                 (k + "cpu_util", "%s req/s offered: proxy CPU use" % "{:,}".format(r), "cores",
                  None),
                 (k + "p99_ms", "%s req/s offered: latency p99" % "{:,}".format(r), "ms", None)]
    return rows + [
        (p + "rps", "throughput at full load, wrk 64 connections (a proxy's limit only when "
         "its CPU use is ~1 core)", "req/s", "higher"),
        (p + "cpu_util", "proxy CPU use at full load (1 = one core)", "cores", None),
        (p + "cpu_us_per_req", "proxy CPU per request at full load", "µs", "lower"),
        (p + "p50_ms", "latency p50 at full load", "ms", "lower"),
        (p + "p99_ms", "latency p99 at full load", "ms", "lower"),
        (p + "syscalls_per_req", "proxy system calls per request (16 connections)", "calls",
         "lower"),
        (p + "upstream_conns_per_req", "new upstream connections per request", "conns",
         "lower"),
        (p + "paced_rps", "paced run: achieved rate", "req/s", None),
        (p + "paced_p50_ms", "paced ~1,000 req/s: latency p50", "ms", "lower"),
        (p + "paced_p99_ms", "paced ~1,000 req/s: latency p99", "ms", "lower"),
    ]


# (metric, label, unit, better): better is "higher", "lower" or None (context only)
SMALL = rate_rows("", "pass-through")
STATUS = rate_rows("st_", "message status")
STREAMS = [("down1", "1 download"), ("down4", "4 downloads"),
           ("down3slow", "3 downloads + 1 slow reader"), ("up1", "1 upload"),
           ("up4", "4 uploads"), ("up3slow", "3 uploads + 1 slow sender")]
STREAM = [(s + "_mbps", what + ": throughput", "MB/s", "higher") for s, what in STREAMS] + \
         [(s + "_peak_rss_mb", what + ": proxy peak RSS (VmHWM)", "MB", "lower")
          for s, what in STREAMS]
IDLE = [("idle_bytes_per_conn", "memory per idle keep-alive connection (RSS delta / N)",
         "bytes", "lower"),
        ("idle_retained_mb", "RSS still held 2 s after the N connections closed", "MB", "lower")]
LEDGER = [
    ("dequeues_per_s", "connector dequeues answered 200 per second, wrk 64 connections",
     "1/s", "higher"),
    ("dequeue_cpu_util", "CPU use of the process measured (direct: fosim)", "cores", None),
    ("dequeue_sim_cpu_util", "fosim's CPU use during the run", "cores", None),
    ("dequeue_redis_cpu_util", "Redis's CPU use during the run", "cores", None),
    ("dequeue_load_cpu_busy", "cpu 1 busy during the run (wrk, fosim, Redis, the token "
     "fosims: the load side)", "share", None),
    ("dequeue_cpu_us", "CPU per dequeue of the process measured", "µs", "lower"),
    ("dequeue_redis_cmds", "Redis commands per dequeue (INFO commandstats)", "cmds", "lower"),
    ("dequeue_redis_trips", "Redis round trips per dequeue (PING, EVALSHA, EVAL sent)", "trips",
     "lower"),
    ("dequeue_redis_cpu_us", "Redis CPU per dequeue", "µs", "lower"),
    ("dequeue_p50_ms", "dequeue latency p50", "ms", "lower"),
    ("dequeue_p99_ms", "dequeue latency p99", "ms", "lower"),
    ("dequeue_200_share", "share of dequeues that got a message (the rest: 204)", "", None),
]
MULTI = [
    ("mc_rps", "throughput, N workers, wrk N threads 64 connections", "req/s", "higher"),
    ("mc_p50_ms", "latency p50 at full load", "ms", "lower"),
    ("mc_p99_ms", "latency p99 at full load", "ms", "lower"),
    ("mc_cpu_us_per_req", "proxy CPU per request (all workers)", "µs", "lower"),
    ("mc_cpu_util", "proxy CPU use during the run (cores)", "cores", None),
    ("mc1_rps", "fogate with 1 worker, same CPUs: throughput", "req/s", None),
    ("mc1_cpu_us_per_req", "fogate with 1 worker: CPU per request", "µs", None),
    ("mc1_cpu_util", "fogate with 1 worker: CPU use (cores)", "cores", None),
]
LEGS = [("1. Small pass-through requests (GET /data/small, 1 KiB JSON)", SMALL),
        ("1b. Message status (fogate: GET /v1/messages/{id}?job=exp; nginx: POST "
         "GetMessageStatus with the bearer; another id per request)", STATUS),
        ("2. Streaming 1 file each way (GET /data/big, POST enqueue)", STREAM),
        ("3. Dequeue through the ack ledger (fogate: ledger in Redis; nginx: plain "
         "pass-through; D365 = fosim answering from memory; direct = fosim alone)", LEDGER),
        ("4. Idle keep-alive connections", IDLE)]


def med(results, target, metric):
    s = results["runs"].get(target, {}).get(metric)
    return s["median"] if s else None


def ratio(results, metric, target="fogate"):
    f, n = med(results, target, metric), med(results, "nginx", metric)
    return f / n if f is not None and n not in (None, 0) else None


def proxies(results):
    """The proxies measured in this run, in column order."""
    return [t for t in PROXIES if t in results["runs"]]


def added_p99(results, target, p=""):
    t, d = med(results, target, p + "paced_p99_ms"), med(results, "direct", p + "paced_p99_ms")
    return t - d if t is not None and d is not None else None


def speedup(results, target="fogate"):
    """fogate's throughput with N workers over its throughput with 1 worker."""
    n, one = med(results, target, "mc_rps"), med(results, target, "mc1_rps")
    return n / one if n is not None and one else None


def lg_bound(results, metric):
    """For a closed-loop throughput metric: the nginx peer's CPU use when it stayed well
    under one core (the load generator's core was the limit, so no ratio means anything),
    else None."""
    if metric not in ("rps", "st_rps"):
        return None
    util = med(results, "nginx", metric[:-3] + "cpu_util")
    return util if util is not None and util < LG_BOUND else None


def cell(results, target, metric):
    s = results["runs"].get(target, {}).get(metric)
    if not s:
        return "–"
    if len(s["runs"]) == 1:
        return num(s["median"])
    return "%s (%s–%s)" % (num(s["median"]), num(s["min"]), num(s["max"]))


def num(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return "{:,.0f}".format(v)
    return "%.3g" % v


def ratio_cell(results, metric, target):
    bound = lg_bound(results, metric)
    if bound is not None and med(results, target, metric) is not None:
        return "load generator bound (nginx %.2f cores)" % bound
    r = ratio(results, metric, target)
    return "%.2f" % r if r is not None else "–"


def table(results, rows):
    ps = proxies(results)
    fogates = [t for t in ps if t != "nginx"]
    out = ["| metric | unit | %s | %s | upstream direct |" % (
               " | ".join(LABEL[t] for t in ps),
               " | ".join("%s/nginx" % LABEL[t] for t in fogates)),
           "|---|---|%s---|" % ("---|" * (len(ps) + len(fogates)))]
    for metric, label, unit, better in rows:
        if not any(metric in results["runs"].get(t, {}) for t in ps):
            continue
        hint = {"higher": " (higher is better)", "lower": " (lower is better)"}.get(better, "")
        out.append("| %s%s | %s | %s | %s | %s |" % (
            label, hint, unit, " | ".join(cell(results, t, metric) for t in ps),
            " | ".join(ratio_cell(results, metric, t) for t in fogates),
            cell(results, "direct", metric)))
    return out


def verdict(ok):
    return "yes" if ok else "**no**"


def targets(results):
    """(target, {proxy: its figure}, verdict for the new fogate) rows for the goals of
    issue 16 and before."""
    rows = []
    fogates = [t for t in proxies(results) if t != "nginx"]

    def add(goal, fig, ok):
        vals = {t: fig(t) for t in fogates}
        if vals.get("fogate") is not None:
            rows.append((goal, vals, ok("fogate")))

    for p, what in (("", "pass-through"), ("st_", "message status")):
        for r in RATES:
            m = "%sr%dk_cpu_us_per_req" % (p, r // 1000)
            add("%s: CPU per request <= 1.1 x nginx's at %s req/s" % (what, "{:,}".format(r)),
                lambda t, m=m: None if ratio(results, m, t) is None else "%.2f x (%s µs; "
                "nginx %s µs)" % (ratio(results, m, t), num(med(results, t, m)),
                                 num(med(results, "nginx", m))),
                lambda t, m=m: ratio(results, m, t) <= 1.1)
        m = p + "rps"
        bound = lg_bound(results, m)
        add("%s: throughput at full load >= nginx's" % what,
            lambda t, m=m, bound=bound: None if ratio(results, m, t) is None else (
                "load generator bound (nginx used %.2f cores; fogate %.2f)"
                % (bound, med(results, t, p + "cpu_util") or 0) if bound is not None else
                "%.2f x nginx (%s cores vs %s)" % (ratio(results, m, t),
                                                   num(med(results, t, p + "cpu_util")),
                                                   num(med(results, "nginx", p + "cpu_util")))),
            lambda t, m=m, bound=bound: bound is None and ratio(results, m, t) >= 1)
        add("%s: p99 added latency < 1 ms at ~1,000 req/s" % what,
            lambda t, p=p: None if added_p99(results, t, p) is None else "%.3f ms (nginx: %s ms)"
            % (added_p99(results, t, p), num(added_p99(results, "nginx", p))),
            lambda t, p=p: added_p99(results, t, p) < 1)
    for s in ("down1", "up1"):
        m = s + "_mbps"
        add("%s: throughput >= nginx's" % s,
            lambda t, m=m: None if ratio(results, m, t) is None else "%.2f x nginx (%s MB/s)"
            % (ratio(results, m, t), num(med(results, t, m))),
            lambda t, m=m: ratio(results, m, t) >= 1)
    for s in ("down1", "down4", "up1", "up4"):
        m = s + "_peak_rss_mb"
        add("%s: peak RSS <= 1.5 x nginx's" % s,
            lambda t, m=m: None if ratio(results, m, t) is None else "%s MB (%.2f x)"
            % (num(med(results, t, m)), ratio(results, m, t)),
            lambda t, m=m: ratio(results, m, t) <= 1.5)
    add("idle keep-alive connection <= 1 KB",
        lambda t: None if med(results, t, "idle_bytes_per_conn") is None else "%s bytes"
        % num(med(results, t, "idle_bytes_per_conn")),
        lambda t: med(results, t, "idle_bytes_per_conn") <= 1024)
    add("RSS held after the idle connections closed <= 2 MB",
        lambda t: None if med(results, t, "idle_retained_mb") is None else "%s MB"
        % num(med(results, t, "idle_retained_mb")),
        lambda t: med(results, t, "idle_retained_mb") <= 2)
    ceiling = med(results, "direct", "dequeues_per_s")
    add("dequeues through the ledger >= 10,000/s (fosim alone: %s/s)" % num(ceiling),
        lambda t: None if med(results, t, "dequeues_per_s") is None else "%s/s (%.2f x nginx)"
        % (num(med(results, t, "dequeues_per_s")), ratio(results, "dequeues_per_s", t) or 0),
        lambda t: med(results, t, "dequeues_per_s") >= 10000)
    # scaling means more throughput *and* more than one core used: a gain inside the
    # noise of a shared machine while the proxy uses under one core is not scaling
    add("multi-core: scales across the cores (N workers / 1 worker, and N workers use more "
        "than 1 core)", lambda t: None if speedup(results, t) is None else "%.2f x, %.2f cores"
        % (speedup(results, t), med(results, t, "mc_cpu_util") or 0),
        lambda t: speedup(results, t) > 1.1 and (med(results, t, "mc_cpu_util") or 0) > 1)
    add("multi-core: throughput >= nginx's with as many workers",
        lambda t: None if ratio(results, "mc_rps", t) is None else "%.2f x nginx"
        % ratio(results, "mc_rps", t), lambda t: ratio(results, "mc_rps", t) >= 1)
    return rows


def flags(results):
    """Notes on runs whose figures do not mean what they seem: a paced run short of its
    offered rate, a peer that was not CPU-bound at full load."""
    out = []
    for t in proxies(results):
        for p, what in (("", "pass-through"), ("st_", "message status")):
            for r in RATES:
                s = results["runs"].get(t, {}).get("%sr%dk_rate_share" % (p, r // 1000))
                if s and s["min"] < RATE_SHORT:
                    out.append("- %s, %s at %s req/s offered: %d of %d runs reached less than "
                               "%d%% of the rate (lowest %.0f%%); its CPU per request there "
                               "is at a lower rate than the others'." % (
                                   LABEL[t], what, "{:,}".format(r),
                                   sum(1 for v in s["runs"] if v < RATE_SHORT), len(s["runs"]),
                                   RATE_SHORT * 100, s["min"] * 100))
    for m, what in (("rps", "pass-through"), ("st_rps", "message status"),
                    ("mc_rps", "multi-core")):
        bound = lg_bound(results, m)
        if bound is not None:
            out.append("- %s at full load: nginx used only %.2f of a core, so the load "
                       "generator, not nginx, was the limit: the throughput figures are load "
                       "generator bound and their ratio is not reported." % (what, bound))
    return out or ["- none: every paced run reached at least %d%% of its offered rate and the "
                   "peer was CPU-bound at full load." % (RATE_SHORT * 100)]


def multicore_lines(results):
    """The multi-core section: its setup, table and the ratios."""
    m = results["meta"]
    run = m.get("multicore_run")
    when = ("Run %s, fogate %s, load average %s at start (a separate run of this leg only: "
            "`--legs multicore`)." % (run["date"], run["fogate_commit"],
                                      "/".join("%.1f" % x for x in run["loadavg_start"]))
            if run else "Same run as above.")
    cpus = (run or m).get("multicore_cpus", "all")
    summary = []
    for t in [x for x in proxies(results) if x != "nginx"]:
        up, r = speedup(results, t), ratio(results, "mc_rps", t)
        summary.append("%s: speed-up N workers / 1 worker %s, %s(N) / nginx(N) %s." % (
            LABEL[t], "%.2f x" % up if up is not None else "–", LABEL[t],
            "%.2f" % r if r is not None else "–"))
    return ["", "## 5. Multi-core (small requests, every proxy on cpus %s)" % cpus, "",
            "fogate with `workers` = N (one event loop per thread on its own SO_REUSEPORT "
            "listener) and with 1 worker, nginx with `worker_processes` N; N = the CPUs, "
            "none pinned inside the set; wrk with N threads on the same CPUs, so load "
            "generator, upstream and proxy share them. " + when, ""] + \
        table(results, MULTI) + [""] + summary


def header(results):
    m = results["meta"]
    p = m["params"]
    base = ""
    if m.get("fogate_client", "default") != "default":
        base = " fogate's `upstream.client`: `%s`." % m["fogate_client"]
    if "base" in results["runs"]:
        base += (" Baseline fogate (column \"fogate baseline\"): `%s` (%s%s), measured in "
                 "the same run, alternately with the new fogate (`%s`, %s) and nginx." % (
                     m.get("baseline_bin"), m.get("baseline_version"),
                     ", `upstream.client`: `%s`" % m["baseline_client"]
                     if m.get("baseline_client", "default") != "default" else "",
                     m.get("fogate_bin"), m.get("fogate_version")))
    return ["# fogate vs nginx: benchmark results", "",
            "<!-- Generated by tests/bench/run.sh; do not edit by hand. -->", "",
            "Run %s (%s mode, %d s), fogate %s, %s, %s. %s cores (%s), kernel %s. %s. "
            "Load average at start %s, at end %s (the machine is shared: other builds and "
            "tests may have run at the same time).%s" % (
                m["date"], m["mode"], m["duration_s"], m["fogate_commit"], m["nginx"],
                m["wrk"], m["cores"], m["cpu"], m["kernel"], m["pinning"].capitalize(),
                "/".join("%.1f" % x for x in m["loadavg_start"]),
                "/".join("%.1f" % x for x in m["loadavg_end"]), base), "",
            "Figures are medians of %d repetitions (%d s closed-loop and ~1,000 req/s runs, "
            "%d s runs at each offered rate) or %d (streaming, %d MiB per transfer), with "
            "(min–max); the proxies are measured alternately, each first in turn. The "
            "primary small-request figure is **CPU per request at the same offered rate** "
            "(%s req/s, wrk paced by pace.lua) for every proxy; throughput at full load is "
            "shown with each side's CPU use. MB = 10^6 bytes. Idle connections: N = %d." % (
                p["reps"], p["secs"], p.get("rate_secs", 0), p["stream_reps"], p["big"] >> 20,
                " and ".join("{:,}".format(r) for r in RATES), p["idle"]), ""]


def markdown(results):
    ps = [t for t in proxies(results) if t != "nginx"]
    lines = header(results)
    lines += ["## Targets", "", "| target | %s | met (fogate) |" % " | ".join(
        LABEL[t] for t in ps), "|---|%s---|" % ("---|" * len(ps))]
    lines += ["| %s | %s | %s |" % (goal, " | ".join(vals.get(t) or "–" for t in ps),
                                     verdict(ok))
              for goal, vals, ok in targets(results)]
    lines += ["", "## Flags", ""] + flags(results)
    for title, rows in LEGS:
        if not any(r[0] in results["runs"].get(t, {}) for r in rows for t in proxies(results)):
            continue
        lines += ["", "## " + title, ""] + table(results, rows)
        if rows is SMALL or rows is STATUS:
            p = "" if rows is SMALL else "st_"
            lines += ["", "p99 added latency at ~1,000 req/s (paced p99 minus the upstream's "
                      "own paced p99 on the same call): %s." % ", ".join(
                          "%s %s ms" % (LABEL[t], num(added_p99(results, t, p)))
                          for t in proxies(results))]
    if any(k.startswith("mc_") for k in results["runs"].get("fogate", {})):
        lines += multicore_lines(results)
    lines += ["", "See README.md for the method and the analysis of these figures.", ""]
    return "\n".join(lines)


def plot(results, path):
    """results.png: fogate's advantage per metric (nginx/fogate for lower-is-better), the
    new fogate and, when measured, the baseline side by side."""
    ps = [t for t in proxies(results) if t != "nginx"]
    bars = []
    for _, rows in LEGS + [("multi-core", MULTI)]:
        for metric, label, _, better in rows:
            rs = [ratio(results, metric, t) for t in ps]
            if rs[0] and rs[0] > 0 and better and lg_bound(results, metric) is None:
                bars.append((metric, [(r if better == "higher" else 1 / r) if r else 0
                                      for r in rs]))
    ymax = max([1.2] + [v * 1.1 for _, vs in bars for v in vs])
    with tempfile.TemporaryDirectory() as d:
        dat = os.path.join(d, "bars.dat")
        with open(dat, "w") as f:
            for metric, vs in bars:
                f.write('"%s" %s\n' % (metric.replace("_", "-"),
                                       " ".join("%.4f" % v for v in vs)))
        series = ", ".join("'%s' using %d%s title '%s' lc rgb '%s'" % (
            dat if i == 0 else "", i + 2, ":xtic(1)" if i == 0 else "", LABEL[t],
            ("#3070b0", "#b0b0b0")[i]) for i, t in enumerate(ps))
        gp = "\n".join([
            "set terminal pngcairo size 1400,600 font 'sans,10'",
            "set output '%s'" % path,
            "set title \"fogate vs nginx (%s run %s): bar > 1 means fogate is better\"" % (
                results["meta"]["mode"], results["meta"]["date"]),
            "set style data histograms", "set style histogram clustered gap 1",
            "set style fill solid 0.8 border -1",
            "set xtics rotate by -40 scale 0", "set grid ytics",
            "set ylabel 'fogate advantage (x)'", "set yrange [0:%g]" % ymax,
            "set key %s" % ("top right" if len(ps) > 1 else "off"),
            "set rmargin 10", "set bmargin 10",
            "set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb 'red'",
            "plot " + series, ""])
        subprocess.run(["gnuplot"], input=gp, text=True, check=True, timeout=60)


def write(results, out):
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(markdown(results))
    plot(results, os.path.join(out, "results.png"))


if __name__ == "__main__":
    # Re-renders results.md and results.png from a results.json: benchreport.py DIR
    import sys
    with open(os.path.join(sys.argv[1], "results.json")) as f:
        write(json.load(f), sys.argv[1])
