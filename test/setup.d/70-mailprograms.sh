#!/usr/bin/env bash
# The mail programs the client's integration tests drive through
# `mpp sendmail` (cmd/mpp, build tag integration):
#   git-email   git send-email --sendmail-cmd
#   libmailtools-perl  Mail::Address, which git send-email needs (only
#               recommended by git-email, and recommends are not installed)
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

apt_install git git-email libmailtools-perl s-nail mutt cron util-linux

for tool in git s-nail mutt cron unshare; do
  command -v "$tool" >/dev/null || { echo "70-mailprograms.sh: $tool missing" >&2; exit 1; }
done
# git send-email -h exits 129 after printing its usage.
usage=$(git send-email -h 2>&1 || true)
grep -q sendmail-cmd <<<"$usage" ||
  { echo "70-mailprograms.sh: git send-email does not work: $(head -n3 <<<"$usage")" >&2; exit 1; }
echo "70-mailprograms.sh: $(git --version), $(mutt -v | head -n1), s-nail $(s-nail -V 2>&1 | head -n1)"
