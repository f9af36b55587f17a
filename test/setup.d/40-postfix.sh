#!/usr/bin/env bash
# Sendmail backend (delivery/sendmail): a real Postfix that accepts local
# mail only, delivers user@localhost (and user@mppd.test) into ~/Maildir/,
# and listens on loopback only. Plus the test accounts the integration tests
# submit as:
#   mppd-mta1, mppd-mta2   ordinary users (uid >= 1000, own home, Maildir)
#   mppd-mta1 is also in the supplementary group mppd-mtagrp, so the tests
#   can check that supplementary groups reach the sendmail child.
#
# Run by test/setup.sh as root; it can also be run on its own
# (`sudo bash test/setup.d/40-postfix.sh`). Every step checks first or is
# idempotent, so running it again changes nothing and ends with the same
# delivery check.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"



test_domain=mppd.test

# Preseed debconf so the package installs without asking: "Local only" is
# the configuration with no SMTP relaying and no outside delivery.
if ! dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q 'install ok installed'; then
  debconf-set-selections <<DEBCONF
postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string $test_domain
postfix postfix/destinations string \$myhostname, localhost.localdomain, localhost, $test_domain
postfix postfix/protocols select ipv4
DEBCONF
fi
apt_install postfix

# The settings the tests rely on. postconf -e only rewrites main.cf; we
# compare first so that a second run neither rewrites nor reloads anything.
changed=0
set_param() {
  local name=$1 want=$2 have
  have="$(postconf -h "$name" 2>/dev/null || true)"
  if [ "$have" != "$want" ]; then
    postconf -e "$name = $want"
    changed=1
  fi
}
# Never listen beyond loopback; IPv4 only so that a host without ::1 on lo
# cannot stop master from starting (the tests never use SMTP anyway).
set_param inet_interfaces loopback-only
set_param inet_protocols ipv4
set_param home_mailbox Maildir/
set_param mydestination "\$myhostname, localhost.localdomain, localhost, $test_domain"
set_param mynetworks "127.0.0.0/8"
set_param relayhost ""
# Containers often have no syslog daemon: have Postfix write its own log so
# a failing test can be diagnosed (postlogd, Postfix >= 3.4).
set_param maillog_file /var/log/postfix-mppd.log

# Debian's package builds the aliases database at install time; make sure
# it exists (local delivery defers every message without it).
if [ ! -e /etc/aliases.db ] && [ ! -e /etc/aliases.lmdb ]; then
  newaliases
fi

postfix check

# Start it, or reload it when the configuration changed. With systemd as
# PID 1 use the unit; otherwise (a container) drive postfix directly.
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl enable --quiet postfix 2>/dev/null || true
  if ! systemctl is-active --quiet postfix; then
    systemctl start postfix
  elif [ "$changed" -eq 1 ]; then
    systemctl reload postfix
  fi
  # Debian's postfix.service is a wrapper around postfix@-.service.
  postfix status >/dev/null 2>&1 || systemctl restart postfix
else
  if postfix status >/dev/null 2>&1; then
    [ "$changed" -eq 1 ] && postfix reload
  else
    postfix start
  fi
fi
# Bounded wait for master to be up.
for _ in $(seq 1 50); do
  postfix status >/dev/null 2>&1 && break
  sleep 0.2
done
if ! postfix status >/dev/null 2>&1; then
  echo "40-postfix.sh: postfix did not start; see /var/log/postfix-mppd.log" >&2
  exit 1
fi

# Test accounts. useradd picks a uid >= UID_MIN (1000 on Debian).
getent group mppd-mtagrp >/dev/null || groupadd mppd-mtagrp
for u in mppd-mta1 mppd-mta2; do
  if ! getent passwd "$u" >/dev/null; then
    useradd -m -U -s /usr/sbin/nologin -c "mppd sendmail test user" "$u"
  fi
  uid="$(id -u "$u")"
  if [ "$uid" -lt 1000 ]; then
    echo "40-postfix.sh: $u has uid $uid < 1000; remove it and run again" >&2
    exit 1
  fi
done
id -nG mppd-mta1 | tr ' ' '\n' | grep -qx mppd-mtagrp || usermod -a -G mppd-mtagrp mppd-mta1

# Prove local delivery works end to end: a probe to each test user must
# land in ~/Maildir/new within 30 s. The probe is removed afterwards.
for u in mppd-mta1 mppd-mta2; do
  home="$(getent passwd "$u" | cut -d: -f6)"
  token="mppd-setup-probe-$(date +%s)-$$-$u"
  printf 'From: root@localhost\nTo: %s@localhost\nSubject: %s\n\nprobe\n' "$u" "$token" |
    /usr/sbin/sendmail -i -f root@localhost -- "$u@localhost"
  found=""
  for _ in $(seq 1 150); do
    found="$(grep -l -s -F "$token" "$home"/Maildir/new/* 2>/dev/null | head -n 1 || true)"
    [ -n "$found" ] && break
    sleep 0.2
  done
  if [ -z "$found" ]; then
    echo "40-postfix.sh: local delivery to $u@localhost did not reach $home/Maildir/new in 30 s" >&2
    echo "postqueue -p:" >&2
    postqueue -p >&2 || true
    tail -n 20 /var/log/postfix-mppd.log >&2 || true
    exit 1
  fi
  rm -f -- "$found"
done
echo "40-postfix.sh: postfix $(postconf -h mail_version) up, local delivery to Maildir works"
