#!/usr/bin/env bash
# run.sh: builds fogate's libFuzzer targets with clang (-DFOGATE_FUZZ=ON) and fuzzes each
# for a bounded time, a few at a time, after replaying their corpora. CI runs it with the
# defaults (30 s per target, 2 at a time); a longer session is the same with -s.
#
#   tests/fuzz/run.sh [-s SECONDS] [-j PARALLEL] [-b BUILD_DIR] [-m] [-R REGEX]
#
#   -s SECONDS   fuzzing time per target (default 30)
#   -j PARALLEL  targets fuzzed at once (default 2)
#   -b DIR       the clang build directory (default build-fuzz in the source tree)
#   -m           afterwards, merge the inputs that add coverage into tests/fuzz/corpus
#                (cmake --build DIR --target fuzz-merge); review and commit them
#   -R REGEX     only the targets whose name matches (e.g. -R 'http1|dlrewrite')
#
# New inputs that raise coverage stay in DIR/tests/fuzz/corpus-<name> (scratch, kept from
# run to run), crashes in DIR/tests/fuzz/corpus-<name>-artifacts. Exits non-zero if a
# target crashed (the artifact's path is printed; replay it with
# DIR/tests/fuzz/fuzz_<name> <artifact>). See docs/testing.md.
set -euo pipefail

here=$(cd "$(dirname "$0")/../.." && pwd)
secs=30 par=2 dir="$here/build-fuzz" merge=0 only=""
while getopts "s:j:b:mR:h" opt; do
  case $opt in
    s) secs=$OPTARG ;;
    j) par=$OPTARG ;;
    b) dir=$OPTARG ;;
    m) merge=1 ;;
    R) only=$OPTARG ;;
    *) sed -n '2,18p' "$0"; exit 2 ;;
  esac
done

cmake -S "$here" -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFOGATE_FUZZ=ON -DFOGATE_WERROR=ON -DFOGATE_FUZZ_SECONDS="$secs" >/dev/null
cmake --build "$dir" -j"$(nproc)" --target fuzz-targets
ctest --test-dir "$dir" -L '^fuzz$' -R "fuzz_.*(${only:-.*}).*_corpus" --output-on-failure
rm -rf "$dir"/tests/fuzz/corpus-*-artifacts # findings of earlier runs
rc=0
ctest --test-dir "$dir" -L '^fuzz_run$' -R "fuzz_.*(${only:-.*}).*_run" -j"$par" \
  --output-on-failure || rc=$?
for a in "$dir"/tests/fuzz/corpus-*-artifacts/*; do
  [ -e "$a" ] || continue
  echo "fuzz: finding: $a" >&2
  rc=1
done
for c in "$dir"/tests/fuzz/corpus-*; do
  case $c in *-artifacts) continue ;; esac
  echo "fuzz: scratch corpus $(basename "$c"): $(find "$c" -type f | wc -l) inputs"
done
if [ "$merge" = 1 ]; then
  cmake --build "$dir" --target fuzz-merge
  git -C "$here" status --short -- tests/fuzz/corpus
fi
exit $rc
