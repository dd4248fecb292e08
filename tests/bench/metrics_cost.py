#!/usr/bin/python3
"""What the metrics cost on the request path: small-request CPU per request (utime+stime of
fogate per request, bench.py leg `small`, 5 repetitions each) of a build with the counters
and one built with -DFOGATE_NO_METRICS (every statcell update compiled out), alternated
ROUNDS times on the shared machine; prints each run's median and the median of medians.

    tests/bench/metrics_cost.py BUILD_WITH BUILD_WITHOUT [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))


def run(build):
    out = tempfile.mkdtemp(prefix="metrics-cost-")
    subprocess.run([os.path.join(here, "run.sh"), "--legs", "small", "--out", out, build],
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "results.json")) as f:
        runs = json.load(f)["runs"]
    return runs["fogate"]["cpu_us_per_req"]["median"]


def main():
    on, off = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    got = {"on": [], "off": []}
    for i in range(rounds):
        for name, build in (("off", off), ("on", on)) if i % 2 else (("on", on), ("off", off)):
            got[name].append(run(build))
            print("round %d metrics %-3s: %.2f us CPU per request" % (i + 1, name, got[name][-1]),
                  flush=True)
    m_on, m_off = statistics.median(got["on"]), statistics.median(got["off"])
    print("median of medians: on %.2f us, off %.2f us, on/off %.3f (%+.1f%%)"
          % (m_on, m_off, m_on / m_off, (m_on / m_off - 1) * 100))


if __name__ == "__main__":
    main()
