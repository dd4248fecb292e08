#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds fogate and runs its main job end to end against
# the bundled D365 simulator (deploy/demo.py). Set FOGATE_SKIP_INSTALL=1 to skip installing.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${FOGATE_SKIP_INSTALL:-0}" != 1 ]; then
  "$here/deploy/install-deps.sh"
fi
cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$here/build" -j"$(nproc)" >/dev/null
exec /usr/bin/python3 "$here/deploy/demo.py" "$here/build"
