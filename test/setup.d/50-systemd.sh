#!/usr/bin/env bash
# systemd-socket-activate (Debian package systemd) for the socket-activation
# tests in test/e2e/systemd_test.go. Only the tool is used:
# nothing here starts systemd or any unit.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"
apt_install systemd
command -v systemd-socket-activate >/dev/null || {
  echo "systemd-socket-activate missing after installing systemd" >&2
  exit 1
}
