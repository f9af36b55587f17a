#!/usr/bin/env bash
# verify-units.sh MPPD MAX: systemd-analyze verify on packaging/systemd/*,
# and `systemd-analyze security` of mppd.service, whose exposure must be
# at most MAX (a number such as 3.0).
#
# verify checks that every ExecStart= program exists, so it is run on
# copies of the units whose /usr/sbin/mppd is MPPD (the binary just built)
# and /usr/bin/mpp the mpp next to it; nothing else is changed. The user
# units (systemd/user/) are verified with --user. Any message from verify
# fails the check.
set -euo pipefail
mppd=$(realpath "$1")
mpp=$(dirname "$mppd")/mpp
max=$2
units=packaging/systemd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir "$tmp/user"
for u in "$units"/*.socket "$units"/*.service "$units"/*.timer "$units"/user/*; do
  sed -e "s|/usr/sbin/mppd|$mppd|g" -e "s|/usr/bin/mpp|$mpp|g" "$u" >"$tmp/${u#"$units"/}"
done
out=$(cd "$tmp" && systemd-analyze verify --man=no ./*.socket ./*.service ./*.timer 2>&1 &&
  cd user && XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$tmp} systemd-analyze verify --user --man=no ./*.service ./*.timer 2>&1) || {
  echo "$out"
  echo "verify-units: systemd-analyze verify failed" >&2
  exit 1
}
if [ -n "$out" ]; then
  echo "$out"
  echo "verify-units: systemd-analyze verify complained" >&2
  exit 1
fi
echo "verify-units: systemd-analyze verify: $(cd "$units" && echo *.socket *.service *.timer user/*) OK"

for s in mppd.service; do
  line=$(cd "$tmp" && systemd-analyze security --offline=true --no-pager "./$s" 2>&1 | grep 'Overall exposure level') || {
    echo "verify-units: no exposure level for $s" >&2
    exit 1
  }
  score=$(echo "$line" | sed -n 's/.*: \([0-9.]*\) .*/\1/p')
  echo "verify-units: $s exposure $score (at most $max)"
  awk -v s="$score" -v m="$max" 'BEGIN { exit !(s != "" && s + 0 <= m + 0) }' || {
    echo "verify-units: exposure of $s is $score, above $max" >&2
    exit 1
  }
done
