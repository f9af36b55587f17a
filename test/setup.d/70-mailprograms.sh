#!/usr/bin/env bash
# The mail programs the client's integration tests drive through
# `mpp sendmail` (cmd/mpp, build tag integration):
#   git-email   git send-email --sendmail-cmd
#   s-nail      mailx with mta= pointing at mpp
#   mutt        sendmail= pointing at mpp
#   cron        a job's output mailed to MAILTO through the sendmail shim
#   util-linux  unshare, for the private mount namespace the cron test
#               runs cron in (the shim bind-mounted on /usr/sbin/sendmail)
# Installing cron may start its service (where policy allows); the tests
# run their own cron daemon in a namespace and leave the system one alone.
# Each step checks first, so running this again changes nothing.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"

apt_install git git-email s-nail mutt cron util-linux

for tool in git s-nail mutt cron unshare; do
  command -v "$tool" >/dev/null || { echo "70-mailprograms.sh: $tool missing" >&2; exit 1; }
done
git send-email --help >/dev/null 2>&1 || git send-email -h 2>&1 | grep -q sendmail-cmd ||
  { echo "70-mailprograms.sh: git send-email missing" >&2; exit 1; }
echo "70-mailprograms.sh: $(git --version), $(mutt -v | head -n1), s-nail $(s-nail -V 2>&1 | head -n1)"
