#!/usr/bin/env bash
# The system account mppd's unprivileged engine runs as when mppd starts as
# root (engine_user, default "mppd"): no shell, no home, no files. The
# packages create it with systemd-sysusers; the tests that start mppd as
# root need it too. Idempotent.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"

if ! getent passwd mppd >/dev/null; then
  getent group mppd >/dev/null || groupadd --system mppd
  useradd --system --gid mppd --no-create-home --home-dir / \
    --shell /usr/sbin/nologin --comment "mppd engine" mppd
fi
id mppd
