#!/usr/bin/env bash
# Installs and starts everything the integration tests need, as root,
# idempotently: Debian packages, test users, service files, services on
# loopback. Each component has its own script in test/setup.d/, run in name
# order; each one may be run again at any time and does nothing it has
# already done.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test/setup.sh must run as root (it installs packages and test users)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive

# apt_install PKG...: install the packages that are not installed yet,
# refreshing the package lists once when something is missing.
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ ! -f /tmp/.mppd-apt-updated ]; then
    apt-get update -q
    touch /tmp/.mppd-apt-updated
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}
export -f apt_install

for part in test/setup.d/*.sh; do
  [ -e "$part" ] || continue
  echo "== setup: $part"
  bash "$part"
done
echo "== setup: done"
