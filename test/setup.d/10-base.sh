#!/usr/bin/env bash
# Tools every part of the suite uses: the C toolchain for cgo, and mandoc to
# check the man pages.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"
apt_install gcc libc6-dev mandoc
