#!/bin/sh
# bench_rps.sh: requests per second fosim serves on one core, measured with wrk.
# Usage: tests/sim/bench_rps.sh [path/to/fosim]   (default: build-sim/tests/sim/fosim)
# Runs wrk (1 thread, 64 connections, 5 s) against GET /_sim/healthz and an authorised
# dequeue that answers 204, and prints one "name: N requests/sec" line for each.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fosim=${1:-$here/../../build-sim/tests/sim/fosim}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 2; }
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
cat >"$work/fosim.json" <<JSON
{"tenant":"t-bench","tenants":[{"id":"t-bench","apps":[
  {"client_id":"bench-app","secret":"bench-secret","user":"Admin"}]}],
 "jobs":[{"activity_id":"b0b5401e-56ca-4dc8-b566-84389a001236","direction":"export",
          "apps":["bench-app"]}]}
JSON
taskset -c 0 "$fosim" --config "$work/fosim.json" --data-dir "$work/data" \
    --log-level warn >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do [ -s "$work/out" ] && break; sleep 0.05; done
base=$(sed -n 's/.*"base_url":"\([^"]*\)".*/\1/p' "$work/out")
token=$(curl -s -d "grant_type=client_credentials&client_id=bench-app&client_secret=bench-secret&resource=$base" \
    "$base/t-bench/oauth2/token" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "could not get a token" >&2; exit 1; }
run() {
    name=$1; shift
    rps=$(taskset -c 1 wrk -t1 -c64 -d5s "$@" | awk '/Requests\/sec/ {print $2}')
    echo "$name: $rps requests/sec"
}
run healthz "$base/_sim/healthz"
run dequeue-204 -H "Authorization: Bearer $token" \
    "$base/api/connector/dequeue/b0b5401e-56ca-4dc8-b566-84389a001236"
