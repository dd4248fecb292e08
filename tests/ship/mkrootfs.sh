#!/usr/bin/env bash
# mkrootfs.sh: prints the path of a tarball holding a minimal Debian 12 (bookworm) root made
# with mmdebstrap (variant minbase, like debian:bookworm-slim: no docs, man pages or locales),
# whose APT sources include bookworm-updates, -security and -backports (for libhiredict).
# The tarball is cached (default /var/cache/fogate-test, outside the source tree) under a name
# derived from this script and its inputs, so a second run costs nothing; FOGATE_ROOTFS_MAX_AGE_DAYS
# (default 7) bounds how old a cached root may be before it is made again (security updates).
#
# Usage: tests/ship/mkrootfs.sh [--include pkg,pkg...]
# Env:   FOGATE_TEST_CACHE (cache folder), FOGATE_DEBIAN_MIRROR (default http://deb.debian.org),
#        FOGATE_ROOTFS_MAX_AGE_DAYS. Needs root (mmdebstrap's root mode) and mmdebstrap.
# Used by the container image test (tests/ship/test_container.py) as the image's base; the .deb
# install test may use it as its fresh Debian root.
set -euo pipefail

include=""
while [ $# -gt 0 ]; do
  case "$1" in
    --include) include=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "mkrootfs: unknown argument $1" >&2; exit 2 ;;
  esac
done

cache=${FOGATE_TEST_CACHE:-/var/cache/fogate-test}
mirror=${FOGATE_DEBIAN_MIRROR:-http://deb.debian.org}
max_age=${FOGATE_ROOTFS_MAX_AGE_DAYS:-7}
mkdir -p "$cache"

# The cache key: this script's text and every input that changes the root.
key=$( { cat "$0"; echo "$include|$mirror"; } | sha256sum | cut -c1-16)
out="$cache/bookworm-minbase-$key.tar"

if [ -s "$out" ] && [ -z "$(find "$out" -mtime +"$max_age")" ]; then
  echo "$out"
  exit 0
fi

tmp=$(mktemp "$cache/.rootfs.XXXXXX.tar")
trap 'rm -f "$tmp"' EXIT
# merged /usr made by mmdebstrap's hook, not by the usrmerge package (which would pull in perl)
args=(--variant=minbase --mode=root --format=tar
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
      --aptopt='Acquire::Languages "none"'
      --aptopt='APT::Install-Recommends "false"'
      --dpkgopt='path-exclude=/usr/share/man/*'
      --dpkgopt='path-exclude=/usr/share/locale/*'
      --dpkgopt='path-include=/usr/share/locale/locale.alias'
      --dpkgopt='path-exclude=/usr/share/doc/*'
      --dpkgopt='path-include=/usr/share/doc/*/copyright'
      --dpkgopt='path-exclude=/usr/share/info/*'
      --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin')
[ -z "$include" ] || args+=(--include="$include")
# stdout is the path only: mmdebstrap's progress goes to stderr
mmdebstrap "${args[@]}" bookworm "$tmp" \
  "deb $mirror/debian bookworm main" \
  "deb $mirror/debian bookworm-updates main" \
  "deb $mirror/debian-security bookworm-security main" \
  "deb $mirror/debian bookworm-backports main" >&2
chmod 0644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
# roots that no run has made anew for a long time (older script versions, other inputs)
find "$cache" -maxdepth 1 -name 'bookworm-minbase-*.tar' -mtime +"$((max_age * 4))" -delete
echo "$out"
