#!/usr/bin/env bash
# boot-root.sh SUITE: make sure a bootable Debian SUITE is in the cache for
# the boot test (boot-test.sh), and print its directory.
#
# It is the install test's base (chroot-base.sh) plus systemd as init, dbus,
# and Postfix's packages downloaded but not installed (the boot test
# installs Postfix with apt inside the booted system, which has no network),
# under $MPPD_TEST_CACHE (default /var/cache/mppd-test)/SUITE-ARCH-boot/root.
# Built once (seconds with a warm apt cache) and reused; boot-test.sh copies
# it and never changes it. Rebuilt when the base is rebuilt or this script
# changes, after 14 days, or with MPPD_TEST_REFRESH=1; a half-built root has no stamp and is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/../.."

suite=${1:?usage: boot-root.sh SUITE}
cache=${MPPD_TEST_CACHE:-/var/cache/mppd-test}
arch=$(dpkg --print-architecture)
base=$(test/packaging/chroot-base.sh "$suite")
dir=$cache/$suite-$arch-boot
stamp=$dir/complete
# A change to this script rebuilds the root: the stamp names its checksum.
recipe="recipe $(sha256sum <"$0" | cut -c1-16)"

fresh() {
  [ -f "$stamp" ] || return 1
  [ "${MPPD_TEST_REFRESH:-0}" = 1 ] && return 1
  [ "$stamp" -nt "$base/../complete" ] || return 1
  grep -qx "$recipe" "$stamp" || return 1
  [ -z "$(find "$stamp" -mtime +14)" ]
}

if fresh; then
  echo "$dir/root"
  exit 0
fi

echo "boot-root.sh: building a bootable $suite into $dir (once)" >&2
start=$(date +%s)
rm -rf --one-file-system -- "$dir"
mkdir -p -- "$dir"
root=$dir/root
cp -a "$base" "$root"
log=$dir/build.log
cleanup() {
  if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || umount -l "$root/proc"; fi
}
trap cleanup EXIT
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
fail() {
  echo "boot-root.sh: $*; last lines of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
}

# systemd as PID 1 (systemd-sysv), dbus (systemctl and the maintainer
# scripts' daemon-reload work without it, but a Debian system has it).
in_root apt-get install -y -q --no-install-recommends systemd systemd-sysv dbus >>"$log" 2>&1 ||
  fail "installing systemd failed"
# Postfix, and procps (the .deb depends on it), with what they depend on,
# into apt's cache only.
in_root apt-get install -y -q --no-install-recommends --download-only postfix procps >>"$log" 2>&1 ||
  fail "downloading postfix and procps failed"
ls "$root"/var/cache/apt/archives/postfix_*.deb >/dev/null 2>&1 || fail "no postfix .deb in the apt cache"

# The system's identity: a short host name (so mail_domain has to come from
# /etc/mailname, which Postfix's debconf answer writes), and a fixed
# machine id (an empty one makes every boot a first boot).
echo boottest >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tboottest.example.org boottest\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
echo 0f6d3a2bd2a84c7e9b1f5e4a3c2d1b0a >"$root/etc/machine-id"
# Postfix's debconf answers: local delivery only, this mail name.
printf '%s\n' \
  'postfix postfix/main_mailer_type select Local only' \
  'postfix postfix/mailname string boottest.example.org' \
  'postfix postfix/destinations string boottest.example.org, boottest, localhost' |
  in_root debconf-set-selections || fail "debconf-set-selections failed"

# What the test does not need and what would compete with it: a login
# prompt on the console, and timers that run apt or man-db (they would hold
# the dpkg lock the test's apt needs).
for unit in console-getty.service getty@.service apt-daily.timer apt-daily-upgrade.timer \
  man-db.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# The base forbids starting services (there is no init in a chroot); a
# booted system starts them.
rm -f "$root/usr/sbin/policy-rc.d"

cleanup
printf '%s\n%s\n' "$(date -u +%FT%TZ)" "$recipe" >"$stamp"
echo "boot-root.sh: ready in $(($(date +%s) - start)) s" >&2
echo "$root"
