#!/usr/bin/env bash
# HAProxy (Debian package haproxy) for the load-balancer test in
# test/e2e/proxy_test.go, which writes its own configuration and runs
# haproxy itself on loopback. The packaged service is never started: a
# policy-rc.d forbids it during the install, and it is disabled after.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"
if ! command -v haproxy >/dev/null; then
  policy=/usr/sbin/policy-rc.d
  own_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  apt_install haproxy
  [ -n "$own_policy" ] && rm -f "$policy"
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now haproxy.service >/dev/null 2>&1 || true
fi
command -v haproxy >/dev/null || {
  echo "haproxy missing after installing it" >&2
  exit 1
}
