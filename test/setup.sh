#!/usr/bin/env bash
# Installs and starts everything the integration tests need, as root,
# idempotently: Debian packages, test users, service files, services on
# loopback. Each component has its own script in test/setup.d/, run in name
# order; each one may be run again at any time and does nothing it has
# already done.
set -euo pipefail
cd "$(dirname "$0")/.."

. test/setup-lib.sh

for part in test/setup.d/*.sh; do
  [ -e "$part" ] || continue
  echo "== setup: $part"
  bash "$part"
done
echo "== setup: done"
