"""What the D365 budget costs a call below its limits (docs/protect-budget.md): three fogates
in front of one fosim, budget off / local / shared through redis-server, one dequeue (204)
to each per round so the machine's noise hits all three alike; prints median, p90 and p99.

    FOGATE_BIN=build/proxy/fogate FOSIM_BIN=build/tests/sim/fosim \\
        python3 tests/bench/budget_overhead.py [rounds]
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.join(HERE, ".."), os.path.join(HERE, "..", "e2e")]
import harness  # noqa: E402
import passkit  # noqa: E402


def main(rounds):
    w = harness.Workdir()
    sim = harness.start_fosim(w.path)
    redis = harness.start_redis(w.path)
    modes = [("off", {"enabled": False}), ("local", {}), ("shared", {"shared": True})]
    gates = {n: passkit.Gate(w.path, sim, redis={"url": f"redis://127.0.0.1:{redis.port}"},
                             extra={"d365_budget": b}) for n, b in modes}
    lat = {n: [] for n in gates}
    path = "/api/connector/dequeue/" + harness.EXPORT_JOB
    try:
        for i in range(rounds + 50):
            for n, g in gates.items():
                t = time.perf_counter()
                r = g.request("GET", path)
                assert r.status == 204, r
                if i >= 50:  # warm-up: connections, tokens
                    lat[n].append(time.perf_counter() - t)
        for n, v in lat.items():
            v.sort()
            print(f"{n}: median {statistics.median(v) * 1e3:.3f} ms, p90 "
                  f"{v[int(.9 * len(v))] * 1e3:.3f} ms, p99 {v[int(.99 * len(v))] * 1e3:.3f} ms")
    finally:
        for g in gates.values():
            g.stop()
        sim.stop()
        redis.stop()
        w.cleanup(False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
