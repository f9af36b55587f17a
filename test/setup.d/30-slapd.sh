#!/usr/bin/env bash
# LDAP backend (authn/ldap): the integration tests start their own private
# slapd on a loopback port with a config directory and database under the
# test's temporary directory, so all this script needs is the binaries:
# slapd, slapadd (package slapd) and the ldap-utils clients for debugging.
#
# The Debian package also creates and starts a system instance on port 389.
# The tests never use it; it is stopped and disabled so that it holds no port
# and no memory. Every step checks first, so running this again does nothing.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"


if ! dpkg-query -W -f='${Status}' slapd 2>/dev/null | grep -q 'install ok installed'; then
  # Preseed debconf so the install asks nothing. The system instance gets a
  # throwaway random admin password: we never use it.
  pw="$(head -c 24 /dev/urandom | base64)"
  debconf-set-selections <<DEBCONF
slapd slapd/no_configuration boolean false
slapd slapd/domain string mppd.test
slapd shared/organization string mppd test
slapd slapd/password1 password $pw
slapd slapd/password2 password $pw
slapd slapd/purge_database boolean true
slapd slapd/move_old_database boolean true
DEBCONF
  unset pw
fi
apt_install slapd ldap-utils

# Stop the system instance when it runs, and keep it from starting at boot.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  if systemctl is-active --quiet slapd; then
    systemctl stop slapd
  fi
  if systemctl is-enabled --quiet slapd 2>/dev/null; then
    systemctl disable --quiet slapd
  fi
else
  # No systemd (a container): the package's init script may have started
  # it. Look at its own pid file only, never at other slapd processes (a
  # test's private slapd may be running).
  pidfile=/run/slapd/slapd.pid
  if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && [ -x /etc/init.d/slapd ]; then
    /etc/init.d/slapd stop >/dev/null || true
  fi
  if command -v update-rc.d >/dev/null 2>&1 && ls /etc/rc2.d/S*slapd >/dev/null 2>&1; then
    update-rc.d slapd disable >/dev/null 2>&1 || true
  fi
fi

command -v slapd >/dev/null || [ -x /usr/sbin/slapd ]
command -v slapadd >/dev/null || [ -x /usr/sbin/slapadd ]
echo "slapd: $(/usr/sbin/slapd -VV 2>&1 | head -n1)"
