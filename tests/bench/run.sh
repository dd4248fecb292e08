#!/bin/sh
# run.sh: the fogate vs nginx benchmark in one command (see tests/bench/README.md).
# Usage: tests/bench/run.sh [--smoke] [--legs LIST] [--out DIR] [--reps N]
#                           [--baseline FOGATE_BIN] [--client C] [--baseline-client C]
#                           [BUILD_DIR]
#   BUILD_DIR defaults to ./build (fogate at proxy/fogate, fosim at tests/sim/fosim).
#   Without --smoke it writes tests/bench/results.{md,json,png} (about 25 minutes, 40 with
#   --baseline; --reps 3: about 17 and 26).
#   --legs runs only the named legs (small, status, stream, ledger, idle, multicore; default
#   all); a partial run writes to a temporary directory unless --out is given.
#   --baseline measures that fogate binary too, alternately with the new one and nginx.
#   --client / --baseline-client set upstream.client (curl or native) of the fogate under
#   test / of the baseline (which may be the same binary as the one under test).
#   --reps overrides the repetitions of the small, status, ledger and multi-core legs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
args=""
build="$here/../../build"
while [ $# -gt 0 ]; do
    case "$1" in
        --smoke) args="$args --smoke" ;;
        --out) args="$args --out $2"; shift ;;
        --legs) args="$args --legs $2"; shift ;;
        --reps) args="$args --reps $2"; shift ;;
        --baseline) args="$args --baseline $2"; shift ;;
        --client) args="$args --client $2"; shift ;;
        --baseline-client) args="$args --baseline-client $2"; shift ;;
        *) build=$1 ;;
    esac
    shift
done
for tool in wrk nginx curl gnuplot perf taskset redis-cli; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is not installed" >&2; exit 2; }
done
exec /usr/bin/python3 "$here/bench.py" $args --fogate "$build/proxy/fogate" \
    --fosim "$build/tests/sim/fosim"
