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
        "environments": {
            "sim": {
                "base_url": sim.base_url,
                "allow_http": True,
                "tenant": harness.TENANT,
                "client_id": harness.APP_ID,
                "client_secret_env": SECRET_ENV,
                "token_endpoint": f"{sim.base_url}/{harness.TENANT}/oauth2/v2.0/token",
            }
        },
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
    }


def step(text):
    print(f"demo: {text}", flush=True)


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

        r = harness.request(base, "GET", "/healthz")
        step(f"GET /healthz -> {r.status} {r.body.decode()}")
        ok = r.status == 200
    finally:
        for p in reversed(procs):
            p.stop()
        work.cleanup(failed=not ok)
    step("all stopped; " + ("OK" if ok else "FAILED (logs kept in " + work.path + ")"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
