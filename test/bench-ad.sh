#!/usr/bin/env bash
# test/bench-ad.sh: mppd's LDAP backend against the test Active Directory DC
# (Samba, test/setup.d/35-samba.sh), on loopback only. Run by `make bench`
# after test/bench.sh; the figures go into BENCHMARKS.md by hand.
#
#   test/bench-ad.sh [BINDIR]     (default: bin; needs mppd, mpp, benchad)
#
# In one run, with one DC:
#   1. the DC's raw bind rate on pooled TLS connections (BINDIR/benchad: one
#      connection per client, binding again and again), 1 and 8 clients;
#   2. logins/s through mppd (`mpp bench -m 0`: USER, PASS, QUIT) with the
#      manual's AD configuration (search as the service account, bind as
#      the user, nested-group check), the cache off, 1 and 8 clients;
#   3. the same with [authn.cache] on: every login after the first is
#      answered from the cache.
# Needs root and the provisioned domain; otherwise it says why and skips.
# Bounded: each run lasts BENCH_SECONDS (default 10). The DC and mppd it
# starts are stopped on exit (the DC by its pid file).
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"

bindir=${1:-bin}
seconds=${BENCH_SECONDS:-10}
ROOT=/var/cache/mppd-test/samba

echo "== AD: mppd against the test domain controller (Samba, loopback)"
why=""
[ "$(id -u)" -eq 0 ] || why="needs root"
[ -z "$why" ] && { [ -f "$ROOT/golden/mppd-fixture" ] || why="needs the provisioned domain (test/setup.sh)"; }
[ -z "$why" ] && { command -v samba >/dev/null || why="needs samba (test/setup.sh)"; }
for b in mppd mpp benchad; do
  [ -z "$why" ] && { [ -x "$bindir/$b" ] || why="needs $bindir/$b (make bench builds it)"; }
done
if [ -n "$why" ]; then
  echo "skipped: $why"
  exit 0
fi

tmp=$(mktemp -d /tmp/mppd-bench-ad.XXXXXX)
mppd_pid=""
stop_mppd() {
  if [ -n "$mppd_pid" ] && kill -0 "$mppd_pid" 2>/dev/null; then
    kill -TERM "$mppd_pid"
    wait "$mppd_pid" 2>/dev/null || true
  fi
  mppd_pid=""
}
stop_dc() {
  local pidfile=$ROOT/run/pid/samba.pid p
  [ -s "$pidfile" ] || return 0
  p=$(cat "$pidfile")
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 200); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$p" 2>/dev/null || true
}
cleanup() { stop_mppd; stop_dc; rm -rf "$tmp"; }
trap cleanup EXIT

# One DC at a time on the machine (fixed ports): the tests' lock.
exec 9>"$ROOT/lock"
flock -w 600 9 || { echo "bench-ad.sh: the DC is busy (lock $ROOT/lock)" >&2; exit 1; }
stop_dc
rm -rf "$ROOT/run"
cp -a "$ROOT/golden" "$ROOT/run"
setsid samba -F -s "$ROOT/run/etc/smb.conf" >"$tmp/samba.log" 2>&1 &
for _ in $(seq 1 600); do
  if LDAPTLS_CACERT=$ROOT/tls/ca.pem timeout 2 openssl s_client -connect 127.0.0.1:636 \
    -CAfile "$ROOT/tls/ca.pem" -verify_return_error </dev/null >/dev/null 2>&1; then
    break
  fi
  sleep 0.1
done
sleep 1 # the LDAP server's workers come up just after the port

ca=$ROOT/tls/ca.pem
printf 'alice-pw\n' >"$tmp/alice.pw"
printf 'svc-mppd-pw\n' >"$tmp/svc.pw"
chmod 600 "$tmp"/*.pw

echo "-- 1. the DC's raw bind rate, pooled TLS connections (${seconds}s each)"
for c in 1 8; do
  "$bindir/benchad" -uri ldaps://127.0.0.1:636 -ca "$ca" \
    -dn "CN=alice,CN=Users,DC=corp,DC=mppd,DC=test" -password-file "$tmp/alice.pw" -c "$c" -d "${seconds}s"
done
echo

write_conf() { # write_conf CACHE(true|false)
  cat >"$tmp/mppd.toml" <<EOF
hostname = "bench.test"
listen = ["127.0.0.1:0"]
trusted_networks = ["127.0.0.0/8"]

[log]
level = "warn"

[authn]
backend = "ldap"

[authn.ldap]
uris = ["ldaps://127.0.0.1:636"]
ca_file = "$ca"
search_base = "DC=corp,DC=mppd,DC=test"
search_filter = "(&(objectCategory=person)(objectClass=user)(sAMAccountName={user})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))"
service_dn = "CN=svc-mppd,CN=Users,DC=corp,DC=mppd,DC=test"
service_password_file = "$tmp/svc.pw"
group_filter = "(memberOf:1.2.840.113556.1.4.1941:=CN=mppd-users,CN=Users,DC=corp,DC=mppd,DC=test)"
address_attributes = ["mail", "proxyAddresses"]
account_attribute = "sAMAccountName"

[authn.cache]
enabled = $1

[delivery]
backend = "maildir"

[delivery.maildir]
root = "$tmp/maildir"
EOF
}

run_mppd() { # run_mppd CACHE LABEL
  write_conf "$1"
  "$bindir/mppd" --config "$tmp/mppd.toml" >"$tmp/mppd.log" 2>&1 &
  mppd_pid=$!
  wait_listen "$mppd_pid" "$tmp/mppd.log"
  echo "-- $2 (${seconds}s each)"
  for c in 1 8; do
    echo "\$ mpp bench -m 0 -c $c"
    MPP_PASSWORD= "$bindir/mpp" bench -s "$addr" -u alice --password-file "$tmp/alice.pw" \
      --server-pid "$mppd_pid" -m 0 -c "$c" -d "${seconds}s" || true
    echo
  done
  stop_mppd
}

run_mppd false "2. logins/s through mppd, cache off (search + bind + group check per login)"
run_mppd true "3. logins/s through mppd, cache on"
