#!/usr/bin/env bash
# stress.sh: runs a test command many times while CPU hogs load the machine, and counts how
# often it passes. The proof that a test (or the whole suite) waits on events, not on time.
#
#   tests/stress.sh [-n RUNS] [-j PARALLEL] [-l HOGS] [-o LOGDIR] -- COMMAND [ARGS...]
#
#   -n RUNS      how many times to run COMMAND (default 10)
#   -j PARALLEL  how many runs at once (default 1); parallel runs load the machine too
#   -l HOGS      CPU hogs kept busy for the whole time (default 2): stress-ng --cpu HOGS,
#                or busy shell loops where stress-ng is missing
#   -o LOGDIR    where each run's output goes (default: a new /tmp/fogate-stress-XXXXXX);
#                run-<i>.log, kept for every run; failed runs are listed at the end
#
# Examples:
#   tests/stress.sh -n 50 -j 4 -- ctest --test-dir build -R '^unit_token$' --output-on-failure
#   tests/stress.sh -n 10 -- ctest --test-dir build-asan --output-on-failure
#   tests/stress.sh -n 10 -- env FOGATE_SKIP_INSTALL=1 bash deploy/test.sh
# Prints one line per run and "stress: P passed, F failed of N"; exits 0 iff all passed.
set -euo pipefail

runs=10 par=1 hogs=2 logdir=""
while getopts "n:j:l:o:h" opt; do
  case $opt in
    n) runs=$OPTARG ;;
    j) par=$OPTARG ;;
    l) hogs=$OPTARG ;;
    o) logdir=$OPTARG ;;
    *) sed -n '2,19p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then
  sed -n '2,19p' "$0"
  exit 2
fi
[ -n "$logdir" ] || logdir=$(mktemp -d /tmp/fogate-stress-XXXXXX)
mkdir -p "$logdir"

hog_pids=()
stop_hogs() {
  for p in "${hog_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${hog_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  hog_pids=()
}
trap stop_hogs EXIT
trap 'exit 130' INT TERM
if [ "$hogs" -gt 0 ]; then
  if command -v stress-ng >/dev/null 2>&1; then
    stress-ng --cpu "$hogs" --quiet &
    hog_pids+=($!)
  else
    for _ in $(seq "$hogs"); do
      bash -c 'while :; do :; done' &
      hog_pids+=($!)
    done
  fi
fi

# run <i>: one run of the command, its output in run-<i>.log, "PASS i" or "FAIL i" on stdout.
run() {
  local i=$1 t0=$SECONDS
  shift
  if "$@" >"$logdir/run-$i.log" 2>&1; then
    echo "PASS $i $((SECONDS - t0))s"
  else
    echo "FAIL $i $((SECONDS - t0))s"
  fi
}
export -f run
export logdir

echo "stress: $runs runs of '$*', $par at a time, $hogs CPU hogs; logs in $logdir"
seq "$runs" | xargs -P "$par" -I{} bash -c 'run "$@"' _ {} "$@" | tee "$logdir/summary"
stop_hogs
pass=$(grep -c '^PASS' "$logdir/summary" || true)
fail=$(grep -c '^FAIL' "$logdir/summary" || true)
echo "stress: $pass passed, $fail failed of $runs (load: $hogs CPU hogs, $par at a time)"
if [ "$fail" -gt 0 ]; then
  grep '^FAIL' "$logdir/summary" | while read -r _ i _; do echo "  failed: $logdir/run-$i.log"; done
fi
[ "$fail" -eq 0 ] && [ "$pass" -eq "$runs" ]
