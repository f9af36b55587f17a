#!/usr/bin/env bash
# The boot test (make boot-test, test/packaging/boot-test.sh): a Debian
# root booted with systemd as PID 1 in a container.
#   systemd-container   systemd-nspawn, which boots the root
#   util-linux          nsenter, to run commands inside it
#   openssl             the test's TLS certificate
# Nothing here starts a container or a service.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"

apt_install systemd-container util-linux openssl debootstrap
for tool in systemd-nspawn nsenter openssl debootstrap; do
  command -v "$tool" >/dev/null || { echo "65-boot-test.sh: $tool missing" >&2; exit 1; }
done
echo "65-boot-test.sh: $(systemd-nspawn --version | head -n1)"
