#!/usr/bin/env bash
# chroot-base.sh SUITE: make sure a minimal Debian SUITE for this machine's
# architecture is in the cache, and print its directory.
#
# The base is debootstrap --variant=minbase plus man-db (for `man -l`), with
# fresh package lists, under $MPPD_TEST_CACHE (default
# /var/cache/mppd-test)/SUITE-ARCH/root. It is built once (a few minutes,
# from the Debian mirror this machine's apt uses) and reused by every later
# run; install-test.sh copies it and never changes it. A base older than 14
# days, or MPPD_TEST_REFRESH=1, is rebuilt, so security updates reach it.
# A half-built base (debootstrap interrupted) has no stamp and is rebuilt.
set -euo pipefail

suite=${1:?usage: chroot-base.sh SUITE}
cache=${MPPD_TEST_CACHE:-/var/cache/mppd-test}
arch=$(dpkg --print-architecture)
dir=$cache/$suite-$arch
stamp=$dir/complete

# The mirror: the first Debian archive URI this machine's apt uses (not the
# security archive), so the test reaches the same mirror apt-get does.
# MPPD_TEST_MIRROR overrides it.
mirror() {
  if [ -n "${MPPD_TEST_MIRROR:-}" ]; then
    echo "$MPPD_TEST_MIRROR"
    return
  fi
  local uri
  uri=$( (cat /etc/apt/sources.list.d/*.sources 2>/dev/null || true) |
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) print $i }' |
    grep -v -e security -e '^cdrom' | head -n 1)
  if [ -z "$uri" ]; then
    uri=$( (cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true) |
      awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; break } }' |
      grep -v security | head -n 1)
  fi
  if [ -z "$uri" ]; then
    echo "chroot-base.sh: no Debian mirror in /etc/apt; set MPPD_TEST_MIRROR" >&2
    exit 1
  fi
  echo "$uri"
}

fresh() {
  [ -f "$stamp" ] || return 1
  [ "${MPPD_TEST_REFRESH:-0}" = 1 ] && return 1
  [ -z "$(find "$stamp" -mtime +14)" ]
}

if fresh; then
  echo "$dir/root"
  exit 0
fi

url=$(mirror)
echo "chroot-base.sh: building a minimal $suite ($arch) from $url into $dir (once; takes minutes)" >&2
rm -rf -- "$dir"
mkdir -p -- "$dir"
start=$(date +%s)
debootstrap --variant=minbase --include=man-db,ca-certificates "$suite" "$dir/root" "$url" >"$dir/debootstrap.log" 2>&1 || {
  echo "chroot-base.sh: debootstrap failed; last lines of $dir/debootstrap.log:" >&2
  tail -n 20 "$dir/debootstrap.log" >&2
  exit 1
}
# Package lists inside the base, so that installing the .deb later
# resolves its dependencies without the network when they are in the base.
chroot "$dir/root" apt-get update -q >>"$dir/debootstrap.log" 2>&1
# The test's dpkg runs must not try to start services: there is no init
# in the chroot (Debian's policy-rc.d convention; 101 = action forbidden).
printf '#!/bin/sh\nexit 101\n' >"$dir/root/usr/sbin/policy-rc.d"
chmod 0755 "$dir/root/usr/sbin/policy-rc.d"
date -u +%FT%TZ >"$stamp"
echo "chroot-base.sh: base ready in $(($(date +%s) - start)) s" >&2
echo "$dir/root"
