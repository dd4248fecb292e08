#!/usr/bin/env python3
"""demo: fogate's main job against the bundled D365 simulator, end to end.

Starts redis-server, the D365 F&O + Entra ID simulator (fosim) and fogate on free loopback
ports, then does what an internal service does through fogate, printing each step, and
stops everything by PID. Usage: deploy/demo.py BUILD_DIR
"""
import hashlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRC, "tests"))

import harness  # noqa: E402  (tests/harness.py: process start/stop, HTTP helpers)

API_KEY = "demo-key-0123456789abcdef"
SECRET_ENV = "FOGATE_DEMO_SECRET"


def fogate_config(port, sim, redis_port):
    return {
        "listen": f"127.0.0.1:{port}",
        "public_base_url": f"http://127.0.0.1:{port}",
        "environments": {"sim": harness.sim_environment(sim, SECRET_ENV)},
        "jobs": {
            "customer-groups-in": {"environment": "sim", "activity_id": harness.IMPORT_JOB,
                                   "entity": "Customer groups", "company": "usmf",
                                   "direction": "import"},
            "customers-out": {"environment": "sim", "activity_id": harness.EXPORT_JOB,
                              "direction": "export"},
        },
        "clients": {
            "demo": {"api_key_sha256": hashlib.sha256(API_KEY.encode()).hexdigest(),
                     "jobs": ["customer-groups-in", "customers-out"]}
        },
        "redis": {"url": f"redis://127.0.0.1:{redis_port}"},
        "ledger": {"enabled": True},
    }


def step(text):
    print(f"demo: {text}", flush=True)


def call(base, method, path, body=None, headers=None, want=(200,)):
    """One request to fogate with the demo's API key; prints it and checks the status."""
    h = {"X-Api-Key": API_KEY}
    h.update(headers or {})
    r = harness.request(base, method, path, body, h, timeout=60)
    shown = r.body[:160].decode(errors="replace") if r.body else ""
    step(f"{method} {path} -> {r.status} {shown}")
    if r.status not in want:
        raise RuntimeError(f"unexpected status {r.status}")
    return r


def run_job(base, sim):
    """The main job: a file in (enqueue, wait for D365 to process it) and a file out
    (D365 produces an export; take it, confirm it; it is never handed out again)."""
    call(base, "GET", "/healthz")
    harness.wait_until(lambda: harness.request(base, "GET", "/readyz").status == 200,
                       what="fogate ready (token obtained)")
    step("ready: fogate holds an Entra ID token for the environment")

    csv = b"CUSTOMERGROUPID,DESCRIPTION\nWEB,Web shop customers\n"
    r = call(base, "POST", "/v1/jobs/customer-groups-in/messages", csv,
             {"X-File-Name": "customer-groups.csv"}, want=(202,))
    status_path = r.json()["status_url"].split(base, 1)[1]
    r = call(base, "GET", status_path + "&wait=30")
    if not r.json()["final"]:
        raise RuntimeError("import did not reach a final status")

    export = b"<Customers><Customer id='US-001'/></Customers>\n"
    sim.feed_export(export)
    step("the simulator (as D365) produced an export file")
    r = call(base, "POST", "/v1/jobs/customers-out/next")
    if r.body != export:
        raise RuntimeError("the exported file differs from what D365 produced")
    msg = r.header("X-Fogate-Message-Id")
    call(base, "POST", f"/v1/jobs/customers-out/messages/{msg}/ack")
    call(base, "POST", "/v1/jobs/customers-out/next", want=(204,))
    acks = sim.counters()["acks"]
    step(f"D365 received {acks} ack; the export will not come back")
    return acks == 1


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build"))
    os.environ.setdefault("FOGATE_BIN", os.path.join(build, "proxy", "fogate"))
    os.environ.setdefault("FOSIM_BIN", os.path.join(build, "tests", "sim", "fosim"))
    os.environ["FOGATE_SRC"] = SRC
    os.environ[SECRET_ENV] = harness.APP_SECRET  # the simulator's app secret, never on argv

    work = harness.Workdir(prefix="fogate-demo-")
    procs = []
    ok = False
    try:
        redis = harness.start_redis(work.path)
        procs.append(redis)
        step(f"redis-server up on 127.0.0.1:{redis.port} (pid {redis.pid})")
        sim = harness.start_fosim(work.path)
        procs.append(sim)
        step(f"D365 simulator up at {sim.base_url}")

        port = harness.free_port()
        cfg_path = os.path.join(work.path, "fogate.json")
        with open(cfg_path, "w") as f:
            json.dump(fogate_config(port, sim, redis.port), f, indent=2)
        fogate = harness.start_fogate(work.path, cfg_path, port=port)
        procs.append(fogate)
        base = f"http://127.0.0.1:{port}"
        step(f"fogate up at {base} (config {cfg_path})")

        try:
            ok = run_job(base, sim)
        except (RuntimeError, TimeoutError) as e:
            step(f"FAILED: {e}")
    finally:
        for p in reversed(procs):
            p.stop()
        work.cleanup(failed=not ok)
    step("all stopped; " + ("OK" if ok else "FAILED (logs kept in " + work.path + ")"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
