#!/usr/bin/env bash
# Builds fogate's OCI image from this source tree with buildah (Debian's package), setting the
# OCI labels from the tree: version (CMakeLists.txt), revision (git commit, "-dirty" when the
# tree has changes) and source (git remote "origin", or FOGATE_IMAGE_SOURCE).
# Usage: deploy/container/build.sh [-t TAG] [extra buildah bud arguments...]
#   e.g. deploy/container/build.sh -t fogate:0.1.0 --build-arg BASE=localhost/bookworm:base
# Default tag: localhost/fogate:<version>. Needs root or rootless buildah; the build stage
# fetches Debian packages, so it needs a Debian mirror (and the base image, if not local).
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's/^project(fogate VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
revision=unknown
source=${FOGATE_IMAGE_SOURCE:-unknown}
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
  revision=$(git -C "$src" rev-parse HEAD)
  git -C "$src" diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
  [ -n "${FOGATE_IMAGE_SOURCE:-}" ] ||
    source=$(git -C "$src" config --get remote.origin.url 2>/dev/null || echo unknown)
fi
tag="localhost/fogate:$version"
if [ "${1:-}" = "-t" ]; then tag=$2; shift 2; fi

exec buildah bud --format oci -f "$src/deploy/container/Containerfile" -t "$tag" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --build-arg SOURCE="$source" "$@" "$src"
