#!/usr/bin/env bash
# Installs everything fogate needs on a fresh Debian 12 (bookworm) machine: build tools,
# libraries, test servers and the npm test tools. Run as root (or with sudo). Idempotent.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# hiredict (the hiredis API with TLS) is only in bookworm-backports.
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo 'deb http://deb.debian.org/debian bookworm-backports main' |
    $SUDO tee /etc/apt/sources.list.d/fogate-backports.list >/dev/null
fi
$SUDO apt-get update -q

# Test servers must not be started by their packages: the tests start their own on loopback.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi

$SUDO apt-get install -y -q --no-install-recommends \
  build-essential cmake pkg-config git ca-certificates curl openssl \
  clang libclang-rt-14-dev \
  libevent-dev libcurl4-openssl-dev libjansson-dev libssl-dev libhttp-parser-dev \
  redis-server nginx-light haproxy wrk gnuplot-nox procps iproute2 strace linux-perf stress-ng \
  python3 python3-pytest \
  systemd systemd-container mmdebstrap lintian
$SUDO apt-get install -y -q --no-install-recommends -t bookworm-backports libhiredict-dev

# Shipping tests (tests/ship): mmdebstrap makes a Debian root, podman imports it as the base
# image, buildah builds and runs the image; python3-yaml reads kubectl kustomize's output.
$SUDO apt-get install -y -q --no-install-recommends mmdebstrap podman buildah python3-yaml
# kubectl for `kubectl kustomize`: Debian's kubernetes-client, unless a kubectl is already
# installed (another package owning /usr/bin/kubectl makes kubernetes-client fail to unpack);
# the manifests render with both kustomize v2 (Debian's) and v5.
if ! command -v kubectl >/dev/null 2>&1; then
  $SUDO apt-get install -y -q --no-install-recommends kubernetes-client
fi

# Node.js runs Azurite (the Azure Blob emulator). Keep an existing Node; otherwise Debian's.
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get install -y -q --no-install-recommends nodejs npm
fi
if [ -f "$here/tests/package-lock.json" ]; then
  npm ci --prefix "$here/tests" --no-audit --no-fund
fi
echo "install-deps: done"
