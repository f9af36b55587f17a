#!/usr/bin/env bash
# PAM backend (authn/pam): build headers, the PAM service files and the test
# accounts its integration tests (authn/pam, test/e2e/pam_test.go) log in as.
# Run as root. Idempotent: packages and files are written only when missing
# or different, users created only when missing; the test passwords and the
# locked/expired states are re-applied every run, to the same result.
# Runs from test/setup.sh, or alone: bash test/setup.d/20-pam.sh
#
#   /etc/pam.d/mppd-test        pam_unix auth + account, and pam_access with
#                               a rule refusing the client 192.0.2.66 (a
#                               documentation address; nothing connects
#                               from it), so a test sees PAM_RHOST reach a
#                               module through the real stack
#   /etc/pam.d/mppd-test-rhost  pam_unix, plus pam_exec recording
#                               "$PAM_USER $PAM_RHOST" in
#                               /run/mppd-test/rhost.log
#   /etc/pam.d/mppd-test-deny   pam_deny for everything
#   /etc/pam.d/mppd-test-permit pam_permit for everything: any password of
#                               any account passes PAM, so a test sees
#                               mppd's own account policy refuse root and
#                               system accounts at PASS
#   mppd-pam-ok       password Pam-ok-4711     an ordinary account
#   mppd-pam-locked   password Pam-locked-4711 locked with passwd -l
#   mppd-pam-expired  password Pam-exp-4711    account expired (chage -E 0)
#   mppd-pam-wheel    password Pam-wheel-4711  supplementary member of root
#   mppd-pam-shadow   password Pam-shadow-4711 supplementary member of shadow
#                     (the sendmail backend refuses both: privileged_groups)
# The passwords are test fixtures, known to the tests; the accounts have no
# login shell.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"



# libpam0g-dev: headers for the cgo build (-tags pam). gcc: cgo, and the
# unit tests build a small test module. libpam-modules(-bin): pam_unix,
# pam_access, pam_exec, pam_deny and unix_chkpwd. passwd: useradd, chage.
apt_install libpam0g-dev libpam-modules libpam-modules-bin libpam-runtime gcc libc6-dev passwd

# install_file MODE DEST: write stdin to DEST only when it differs.
install_file() {
  local mode=$1 dest=$2 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
  else
    install -D -m "$mode" -o root -g root "$tmp" "$dest"
    rm -f "$tmp"
    echo "pam: wrote $dest"
  fi
}

install_file 0644 /etc/pam.d/mppd-test <<'PAMCONF'
# mppd integration tests (test/setup.d/20-pam.sh). Not for production.
auth     required  pam_unix.so
account  required  pam_unix.so
account  required  pam_access.so accessfile=/etc/security/mppd-test-access.conf
PAMCONF

install_file 0644 /etc/security/mppd-test-access.conf <<'ACCESS'
# mppd integration tests: refuse every user from 192.0.2.66 (RFC 5737
# documentation address), allow everything else. pam_access matches the
# origin field against PAM_RHOST.
- : ALL : 192.0.2.66
+ : ALL : ALL
ACCESS

install_file 0644 /etc/pam.d/mppd-test-rhost <<'PAMCONF'
# mppd integration tests (test/setup.d/20-pam.sh). Not for production.
auth     required  pam_unix.so
account  required  pam_unix.so
account  required  pam_exec.so quiet /usr/local/libexec/mppd-test/record-rhost
PAMCONF

install_file 0755 /usr/local/libexec/mppd-test/record-rhost <<'SCRIPT'
#!/bin/sh
# pam_exec helper for the mppd tests: record what PAM passed us.
mkdir -p /run/mppd-test
printf '%s %s\n' "${PAM_USER:-}" "${PAM_RHOST:-(none)}" >>/run/mppd-test/rhost.log
SCRIPT

install_file 0644 /etc/pam.d/mppd-test-deny <<'PAMCONF'
# mppd integration tests (test/setup.d/20-pam.sh): refuse everyone.
auth     requisite pam_deny.so
account  requisite pam_deny.so
PAMCONF

install_file 0644 /etc/pam.d/mppd-test-permit <<'PAMCONF'
# mppd integration tests (test/setup.d/20-pam.sh): let everyone in, so that
# only mppd's account policy decides. Never for production.
auth     required  pam_permit.so
account  required  pam_permit.so
PAMCONF

# The tests use a service name with no file, to see libpam fall back to
# "other"; make sure nobody created it.
rm -f /etc/pam.d/mppd-test-missing

# ensure_user NAME PASSWORD: the account exists, has PASSWORD, is unlocked
# and not expired (the special states are applied below).
ensure_user() {
  local name=$1 password=$2
  if ! getent passwd "$name" >/dev/null; then
    useradd --create-home --shell /usr/sbin/nologin --comment "mppd PAM test" "$name"
    echo "pam: created user $name"
  fi
  printf '%s:%s\n' "$name" "$password" | chpasswd
  chage -E -1 "$name"
}

ensure_user mppd-pam-ok      Pam-ok-4711
ensure_user mppd-pam-locked  Pam-locked-4711
ensure_user mppd-pam-expired Pam-exp-4711
ensure_user mppd-pam-wheel   Pam-wheel-4711
ensure_user mppd-pam-shadow  Pam-shadow-4711
usermod -a -G root mppd-pam-wheel
usermod -a -G shadow mppd-pam-shadow
passwd -q -l mppd-pam-locked >/dev/null
chage -E 0 mppd-pam-expired

# Check the result: the states the tests rely on.
passwd -S mppd-pam-locked | awk '$2 != "L" { print "pam: mppd-pam-locked is not locked"; exit 1 }'
[ "$(getent shadow mppd-pam-expired | cut -d: -f8)" = 0 ] || { echo "pam: mppd-pam-expired is not expired" >&2; exit 1; }
id -nG mppd-pam-wheel | tr ' ' '\n' | grep -qx root || { echo "pam: mppd-pam-wheel is not in group root" >&2; exit 1; }
id -nG mppd-pam-shadow | tr ' ' '\n' | grep -qx shadow || { echo "pam: mppd-pam-shadow is not in group shadow" >&2; exit 1; }
[ -f /usr/include/security/pam_appl.h ] || { echo "pam: libpam headers missing" >&2; exit 1; }
echo "pam: services mppd-test, mppd-test-rhost, mppd-test-deny, mppd-test-permit; users mppd-pam-{ok,locked,expired,wheel,shadow} ready"
