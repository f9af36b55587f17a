#!/usr/bin/env bash
# Packaging (make packages, lint-packages, install-test): the tools that
# check the .deb and .rpm and the install test's chroot.
#   lintian, rpmlint        lint the packages
#   rpm                     rpm -qlp / rpm -qp --scripts on the .rpm
#   debootstrap             the minimal Debian the .deb is installed into
#   fail2ban                fail2ban-regex, to test the example filter
#   mandoc                  man page lint (also in 10-base.sh)
#   systemd                 systemd-analyze verify / security on the units
#   bsdextrautils           col, which install-test.sh pipes man -l through
# The fail2ban package starts its service on install; the tests only need
# fail2ban-regex, so the service is stopped and disabled. Each step checks
# first, so running this again changes nothing.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"

apt_install lintian rpmlint rpm cpio debootstrap fail2ban mandoc systemd bsdextrautils

# fail2ban: stop its server if it runs, keep it from starting at boot.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  if systemctl is-active --quiet fail2ban; then
    systemctl stop fail2ban
  fi
  if systemctl is-enabled --quiet fail2ban 2>/dev/null; then
    systemctl disable --quiet fail2ban
  fi
else
  # No systemd (a container): the init script may have started it. Ask the
  # server itself through its own client; only its socket is looked at.
  if [ -S /run/fail2ban/fail2ban.sock ] && fail2ban-client ping >/dev/null 2>&1; then
    fail2ban-client stop >/dev/null 2>&1 || true
  fi
  if command -v update-rc.d >/dev/null 2>&1 && ls /etc/rc2.d/S*fail2ban >/dev/null 2>&1; then
    update-rc.d fail2ban disable >/dev/null 2>&1 || true
  fi
fi

for tool in lintian rpmlint rpm debootstrap fail2ban-regex mandoc systemd-analyze col; do
  command -v "$tool" >/dev/null || { echo "60-packaging.sh: $tool missing" >&2; exit 1; }
done
echo "60-packaging.sh: $(lintian --version), rpmlint $(rpmlint --version 2>/dev/null | head -n1), $(systemd-analyze --version | head -n1)"
