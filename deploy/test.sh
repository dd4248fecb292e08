#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine and passes fogate's whole test suite: unit tests,
# simulator conformance tests and end-to-end tests, in a normal build and again in an
# ASan+UBSan build, then fuzzes every libFuzzer target for a bounded time (clang build).
# Set FOGATE_SKIP_INSTALL=1 to skip the package installation step.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc)

if [ "${FOGATE_SKIP_INSTALL:-0}" != 1 ]; then
  "$here/deploy/install-deps.sh"
fi

# Tests run several at a time (most of their time is spent waiting on servers they started):
# each reserves its own ports (tests/harness.py free_port), the few that pin CPUs or build
# root filesystems are RUN_SERIAL. FOGATE_TEST_JOBS=1 runs them one by one.
test_jobs=${FOGATE_TEST_JOBS:-$((2 * jobs))}

run_suite() { # run_suite <build dir> <extra cmake args...>
  local dir=$1; shift
  cmake -S "$here" -B "$dir" -DFOGATE_WERROR=ON "$@"
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure --timeout 900 -j"$test_jobs"
}

run_suite "$here/build-asan" -DCMAKE_BUILD_TYPE=Debug -DFOGATE_SANITIZE=ON
run_suite "$here/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
# The libFuzzer targets, built with clang: corpora replayed, then each target fuzzed for
# FOGATE_FUZZ_SECONDS (default 30), two at a time. Any crash fails the run.
"$here/tests/fuzz/run.sh" -s "${FOGATE_FUZZ_SECONDS:-30}" -j 2
