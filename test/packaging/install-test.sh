#!/usr/bin/env bash
# install-test.sh SUITE DEB RPM: install the .deb into a fresh minimal Debian
# SUITE (a copy of the cached debootstrap base, see chroot-base.sh) and check
# what a user gets; then check the .rpm's file list and scriptlets with rpm.
# Run as root (make install-test). Every step prints what it checks; the
# first failure stops the test with the evidence.
#
# In the chroot: the package installs with its dependencies (apt), ships
# exactly the expected files, marks the configuration as conffiles, enables
# mppd.socket (not mppd-tls.socket) without starting anything, runs (mppd
# --version, --check-config on the shipped config), its man pages render
# with man -l without a warning, a changed conffile survives reinstalling,
# removal leaves only the conffiles (as dpkg does by policy) and purge
# leaves the file system as it was before the install.
set -euo pipefail
cd "$(dirname "$0")/../.."

suite=$1 deb=$2 rpm=$3
[ -f "$deb" ] && [ -f "$rpm" ] || { echo "install-test: missing $deb or $rpm (make packages)" >&2; exit 1; }
t0=$(date +%s)

fail() { echo "install-test: FAIL: $*" >&2; exit 1; }
step() { echo "== install-test: $*"; }

# The files both packages ship; each adds its own below.
common_files="/etc/mppd
/etc/mppd/mppd.toml
/etc/pam.d/mppd
/usr/bin/mpp
/usr/lib/systemd/system/mpp-flush.service
/usr/lib/systemd/system/mpp-flush.timer
/usr/lib/systemd/system/mppd-tls.socket
/usr/lib/systemd/system/mppd.service
/usr/lib/systemd/system/mppd.socket
/usr/lib/systemd/user/mpp-flush.service
/usr/lib/systemd/user/mpp-flush.timer
/usr/lib/sysusers.d/mppd.conf
/usr/sbin/mppd
/usr/share/doc/mppd/examples/fail2ban/filter.d/mppd.conf
/usr/share/doc/mppd/examples/fail2ban/jail.d/mppd.local
/usr/share/man/man1/mpp.1.gz
/usr/share/man/man5/mppd.conf.5.gz
/usr/share/man/man8/mppd.8.gz"
deb_files="$common_files
/usr/share/doc/mppd/changelog.Debian.gz
/usr/share/doc/mppd/copyright
/usr/share/lintian/overrides/mppd"
rpm_files="$common_files
/usr/lib/systemd/system-preset/80-mppd.preset
/usr/share/licenses/mppd/copyright"

# ---------------------------------------------------------------- the .rpm
step "rpm: file list, config files, requirements, scriptlets of ${rpm##*/}"
got=$(rpm -qlp "$rpm" | sort)
want=$(echo "$rpm_files" | sort)
[ "$got" = "$want" ] || fail "rpm -qlp differs from the expected list:
$(diff <(echo "$want") <(echo "$got"))"
[ "$(rpm -qcp "$rpm" | sort | tr '\n' ' ')" = "/etc/mppd/mppd.toml /etc/pam.d/mppd " ] ||
  fail "rpm config files: $(rpm -qcp "$rpm" | tr '\n' ' ')"
# %config(noreplace): rpm's file flag for noreplace is 16 (RPMFILE_NOREPLACE).
rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm" | grep -qx '/etc/mppd/mppd.toml cn' ||
  fail "mppd.toml is not %config(noreplace): $(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpm" | grep toml)"
rpm -qpR "$rpm" | grep -qx pam || fail "rpm does not require pam"
grep -q '^auth *include *password-auth' <(rpm2cpio "$rpm" | cpio -i --quiet --to-stdout '*etc/pam.d/mppd') ||
  fail "the rpm's /etc/pam.d/mppd is not the RHEL policy"
scripts=$(rpm -qp --scripts "$rpm")
for want in \
  'postinstall scriptlet' 'systemctl --no-reload preset mppd.socket' \
  'preuninstall scriptlet' 'systemctl --no-reload disable --now mppd.socket mppd-tls.socket mppd.service' \
  'postuninstall scriptlet' 'systemctl daemon-reload' 'systemctl try-restart mppd.service'; do
  grep -qF -- "$want" <<<"$scripts" || fail "rpm scriptlets lack \"$want\":
$scripts"
done
echo "rpm: $(echo "$got" | wc -l) files as expected; config(noreplace); requires pam; scriptlets enable by preset, stop+disable on erase, reload and try-restart"

# ---------------------------------------------------------------- the .deb
step "deb: static checks of ${deb##*/}"
got=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed -e 's|^\./|/|' -e 's|/$||' | sort)
# dpkg-deb lists the parent directories too; compare the files and /etc/mppd.
got_files=$(comm -12 <(echo "$got") <(echo "$deb_files" | sort))
[ "$got_files" = "$(echo "$deb_files" | sort)" ] || fail "the .deb lacks:
$(comm -13 <(echo "$got") <(echo "$deb_files" | sort))"
extra=$(comm -23 <(echo "$got") <(echo "$deb_files" | sort) | grep -v -x -e / -e /etc -e /etc/pam.d -e /usr -e /usr/bin -e /usr/sbin -e '/usr/lib\(/systemd\(/system\|/user\)\?\|/sysusers.d\)\?' -e '/usr/share\(/man\(/man[158]\)\?\|/doc\(/mppd\(/examples\(/fail2ban\(/filter.d\|/jail.d\)\?\)\?\)\?\)\?\|/lintian\(/overrides\)\?\)\?' || true)
[ -z "$extra" ] || fail "the .deb holds files nobody expects:
$extra"
# The file list minus what only one format has must be the same for both.
diff <(echo "$common_files") <(comm -12 <(echo "$got") <(echo "$common_files" | sort)) >/dev/null ||
  fail "the .deb and .rpm differ in their common files"
echo "deb: same common files as the rpm, plus changelog, copyright, lintian overrides"

step "deb: a fresh $suite from the cached base"
base=$(test/packaging/chroot-base.sh "$suite")
work=$(mktemp -d /var/tmp/mppd-install-test.XXXXXX)
root=$work/root
cleanup() {
  if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || umount -l "$root/proc"; fi
  rm -rf --one-file-system -- "$work"
}
trap cleanup EXIT
cp -a "$base" "$root"
mount -t proc proc "$root/proc"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# What is on the file system, for the "nothing left behind" check. Logs,
# caches and package-manager state change by design; /proc and /tmp are
# not the package's.
snapshot() {
  (cd "$root" && find . -xdev \
    \( -path ./proc -o -path ./tmp -o -path ./var/log -o -path ./var/cache \
       -o -path ./var/lib/dpkg -o -path ./var/lib/apt -o -path ./run \) -prune -o -print) | sort
}
snapshot >"$work/before"

step "deb: apt-get install (with dependencies)"
cp "$deb" "$root/tmp/mppd.deb"
in_root apt-get install -y -q --no-install-recommends /tmp/mppd.deb >"$work/apt.log" 2>&1 ||
  fail "apt-get install failed:
$(tail -n 30 "$work/apt.log")"
in_root dpkg-query -W -f='${Status} ${Version}\n' mppd | grep -q '^install ok installed' || fail "mppd not installed"
echo "installed $(in_root dpkg-query -W -f='${Version}' mppd)"

step "deb: files, conffiles, enabled socket"
got=$(in_root dpkg -L mppd | sort)
for f in $deb_files; do
  grep -qx -- "$f" <<<"$got" || fail "dpkg -L lacks $f"
  [ -e "$root$f" ] || fail "$f is not on disk"
done
conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' mppd | awk 'NF { print $1 }' | sort | tr '\n' ' ')
[ "$conffiles" = "/etc/mppd/mppd.toml /etc/pam.d/mppd " ] || fail "conffiles are: $conffiles"
[ "$(stat -c %a "$root/usr/sbin/mppd")" = 755 ] || fail "mppd mode $(stat -c %a "$root/usr/sbin/mppd")"
grep -q '@include common-auth' "$root/etc/pam.d/mppd" || fail "/etc/pam.d/mppd is not the Debian policy"
# deb-systemd-helper links to /lib/systemd/system on bookworm (/lib is
# /usr/lib there, merged /usr).
case "$(readlink "$root/etc/systemd/system/sockets.target.wants/mppd.socket")" in
/lib/systemd/system/mppd.socket | /usr/lib/systemd/system/mppd.socket) true ;;
*) false ;;
esac ||
  fail "mppd.socket is not enabled: $(ls -l "$root/etc/systemd/system/sockets.target.wants/" 2>&1)"
[ ! -e "$root/etc/systemd/system/sockets.target.wants/mppd-tls.socket" ] || fail "mppd-tls.socket is enabled"
! grep -q -i 'mppd.*\(started\|starting\)' "$work/apt.log" || fail "the install started something"
echo "files and conffiles as expected; mppd.socket enabled, mppd-tls.socket not"
# The engine's system account: no shell, no home.
acct=$(in_root getent passwd mppd) || fail "the install did not create the account mppd"
case $acct in
mppd:*:/:/usr/sbin/nologin) echo "account: $acct" ;;
*) fail "the account mppd is not a system account without shell or home: $acct" ;;
esac

step "deb: mppd --version, --check-config on the shipped config"
in_root mppd --version
in_root mpp --help >/dev/null 2>&1 || in_root mpp --version >/dev/null 2>&1 || true
# The chroot has no MTA: the sendmail backend warns that /usr/sbin/sendmail
# is missing (messages would get 451 until one is installed) but the
# configuration is valid.
out=$(in_root mppd --check-config 2>&1) || fail "mppd --check-config on the shipped config failed:
$out"
grep -qx 'config OK' <<<"$out" || fail "no \"config OK\": $out"
grep -q 'sendmail' <<<"$out" || fail "no warning about the missing sendmail: $out"
echo "$out" | sed 's/^/  | /'

step "deb: man -l renders each page without a warning"
for page in /usr/share/man/man8/mppd.8.gz /usr/share/man/man5/mppd.conf.5.gz /usr/share/man/man1/mpp.1.gz; do
  text=$(in_root env MANWIDTH=80 man -l "$page" 2>"$work/man.err" | col -b) || fail "man -l $page failed: $(cat "$work/man.err")"
  [ ! -s "$work/man.err" ] || fail "man -l $page warned: $(cat "$work/man.err")"
  grep -q '^NAME' <<<"$text" || fail "man -l $page has no NAME section"
  grep -q '^SEE ALSO' <<<"$text" || fail "man -l $page has no SEE ALSO section"
  echo "$page: $(wc -l <<<"$text") lines"
done
in_root man -w mppd.conf >/dev/null || fail "man -w mppd.conf finds nothing"

step "deb: a changed conffile survives reinstalling"
sed -i 's/^#drain_timeout = "30s"/drain_timeout = "45s"/' "$root/etc/mppd/mppd.toml"
grep -q '^drain_timeout = "45s"' "$root/etc/mppd/mppd.toml" || fail "could not change the conffile"
# Something the administrator adds: purge must remove it too.
printf 'alice:$2y$10$abcdefghijklmnopqrstuuJ0zLJ1S1k2XwqKJZxvvp4h0S8gl0bwK\n' >"$root/etc/mppd/passwd"
in_root dpkg -i /tmp/mppd.deb >>"$work/apt.log" 2>&1 || fail "reinstall failed: $(tail -n 20 "$work/apt.log")"
grep -q '^drain_timeout = "45s"' "$root/etc/mppd/mppd.toml" || fail "reinstalling replaced the changed conffile"
[ ! -e "$root/etc/mppd/mppd.toml.dpkg-new" ] || fail "reinstalling left mppd.toml.dpkg-new"
in_root mppd --check-config >/dev/null 2>&1 || fail "check-config fails on the changed conffile"
echo "changed drain_timeout kept; config OK"

step "deb: remove leaves only the conffiles"
in_root apt-get remove -y -q mppd >>"$work/apt.log" 2>&1 || fail "apt-get remove failed: $(tail -n 20 "$work/apt.log")"
in_root dpkg-query -W -f='${Status}\n' mppd | grep -q 'config-files' || fail "mppd is not in state config-files"
for f in /usr/sbin/mppd /usr/bin/mpp /usr/lib/systemd/system/mppd.service /usr/share/man/man8/mppd.8.gz; do
  [ ! -e "$root$f" ] || fail "$f is still there after remove"
done
[ -f "$root/etc/mppd/mppd.toml" ] && [ -f "$root/etc/pam.d/mppd" ] || fail "remove took the conffiles"
echo "binaries, units, man pages gone; conffiles kept (dpkg policy)"

step "deb: purge leaves nothing behind"
in_root dpkg --purge mppd >>"$work/apt.log" 2>&1 || fail "dpkg --purge failed: $(tail -n 20 "$work/apt.log")"
in_root dpkg-query -W mppd >/dev/null 2>&1 && in_root dpkg-query -W -f='${Status}\n' mppd | grep -qv 'not-installed' &&
  fail "mppd still known to dpkg: $(in_root dpkg-query -W -f='${Status}' mppd)"
# What apt installed for mppd alone (procps) goes too.
in_root apt-get autoremove --purge -y -q >>"$work/apt.log" 2>&1 || fail "apt-get autoremove failed: $(tail -n 20 "$work/apt.log")"
rm -f "$root/tmp/mppd.deb"
snapshot >"$work/after"
# deb-systemd-helper keeps its (now empty) state directories: that is
# init-system-helpers' own bookkeeping, not mppd's. The system account
# mppd stays, as Debian's system accounts do (a later account with its uid
# could own files it left); the backups useradd wrote are its trace.
left=$(comm -13 "$work/before" "$work/after" | grep -v -x -e './var/lib/systemd/deb-systemd-helper-enabled' -e './var/lib/systemd/deb-systemd-helper-masked' -e './var/lib/systemd' \
  -e './etc/passwd-' -e './etc/group-' -e './etc/shadow-' -e './etc/gshadow-' || true)
gone=$(comm -23 "$work/before" "$work/after" || true)
[ -z "$left$gone" ] || fail "purge did not restore the file system:
left behind:
$left
gone:
$gone"
grep -rqs mppd "$root/var/lib/systemd" "$root/etc/systemd" && fail "systemd state still names mppd: $(grep -rls mppd "$root/var/lib/systemd" "$root/etc/systemd"; ls -lR "$root/etc/systemd" | grep mppd)"
in_root getent passwd mppd >/dev/null || fail "the account mppd is gone after purge"
echo "file system as before the install (but the system account mppd)"

echo "== install-test: passed in $(($(date +%s) - t0)) s"
