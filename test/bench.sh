#!/usr/bin/env bash
# test/bench.sh: mpp bench against a local mppd with the development
# backends (password file + maildir), on 127.0.0.1 only. Run by `make bench`
# after the Go benchmarks; the figures go into BENCHMARKS.md by hand.
#
#   test/bench.sh [BINDIR]     (default: bin, as built by `make build`)
#
# Scenarios:
#   1. sessions/s at 1, 8 and 64 concurrent clients (1 KiB message each);
#   2. DATA throughput of a 10 MiB message;
#   3. server RSS with 1,000 and 10,000 idle sessions (a fresh mppd each),
#      KiB per session;
#   4. with root, the PAM test account and Postfix (test/setup.sh), the
#      floor of the production backends (BINDIR/benchfloor: a PAM login
#      alone, a sendmail submission alone, both in a row) next to mppd end
#      to end with the same backends, at 1 and 8 concurrent clients.
#      Otherwise it says it skipped them;
#   5. sessions/s at 1 and 8 clients, the 10 MiB message and 1,000 idle
#      sessions over TLS (mpps), with a throwaway certificate (openssl);
#   6. with what 4 needs, the auth cache on: the raw sendmail floor
#      (benchfloor -what raw: /usr/sbin/sendmail run as the user in a Go
#      loop, no login) and mppd (PAM behind the cache, sendmail) measured
#      alternately at 1 and 8 clients; mppd's CPU is its two processes'
#      (monitor and engine, summed), its children's sendmail and postdrop.
#      Between them, the same sessions against BINDIR/benchbare, the
#      leanest one-process Go MPP server (no login check, no logging, the
#      same sendmail run): what any Go server costs per session here. Last,
#      benchbare with no sendmail at all: the connection and dialogue alone.
# Every mppd this script starts is stopped on exit. Bounded: each load run
# lasts BENCH_SECONDS (default 10), each idle run holds for 3 s, each floor
# loop is a fixed count. BENCH_SECTIONS="1 2 3 5 4 6" (the default) picks
# the scenarios to run.
set -euo pipefail

. "$(dirname "$0")/bench-lib.sh"
bench_binaries "${1:-}"

# 10,000 idle sessions need 10,000 descriptors on each side, plus margin.
want_fds=20000
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want_fds" ]; then
  echo "bench.sh: the hard limit on open files is $hard, below $want_fds; the 10,000-session run may fail" >&2
  want_fds=$hard
fi
ulimit -n "$want_fds"

tmp=$(mktemp -d /tmp/mppd-bench.XXXXXX)
pid=""
stop() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  pid=""
}
barepid=""
cleanup() {
  stop
  [ -z "$barepid" ] || { kill "$barepid" 2>/dev/null; wait "$barepid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

bench_user "$tmp"

# common_settings prints the top of both daemons' configs: loopback, caps
# far above the load, quiet logs.
common_settings() {
  cat <<EOF
hostname = "bench.test"
listen = ["127.0.0.1:0"]
drain_timeout = "5s"
max_sessions = 20000
max_sessions_per_client = 20000
trusted_networks = ["127.0.0.0/8"]

[log]
level = "warn"
EOF
}

conf=$tmp/mppd.toml
{ common_settings; cat <<EOF

[session]
idle_timeout = "5m"

[message]
# A 10 MiB message (10,485,760 octets) is over the default limit.
max_size = 67108864

EOF
dev_backends "$tmp"
} >"$conf"
"$mppd" passwd --config "$conf" "$user" <"$tmp/pw" >/dev/null

addr=""
engine=""
start() {
  : >"$tmp/mppd.log"
  "$mppd" --config "$conf" >>"$tmp/mppd.log" 2>&1 &
  pid=$!
  # mppd logs where it listens at level info; at warn it does not, so
  # wait_listen finds the port in /proc.
  wait_listen "$pid" "$tmp/mppd.log"
  # The engine, the process mppd starts, holds the sessions, so its RSS
  # is the memory per session; mppd itself, the monitor, runs the PAM and
  # sendmail backends. An mppd from before the split is one process: its
  # own engine. (|| true: a thread ending while cat reads makes cat fail,
  # which set -e and pipefail would turn into a silent exit.)
  engine=$(cat /proc/"$pid"/task/*/children 2>/dev/null | awk '{ print $1; exit }' || true)
  [ -n "$engine" ] || engine=$pid
}

# server_pids: --server-pid for mppd's processes, the monitor and (after
# the split) the engine; mpp bench sums them.
server_pids() {
  echo --server-pid "$pid"
  [ "$engine" = "$pid" ] || echo --server-pid "$engine"
}

bench() {
  echo "\$ mpp bench $*"
  # shellcheck disable=SC2046 # two words per pid
  MPP_PASSWORD= "$mpp" bench -s "$addr" -u "$user" --password-file "$tmp/pw" $(server_pids) "$@" || true
  echo
}

echo "== machine: $(nproc) CPU ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r), $("$mppd" --version 2>&1 | head -n 1), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo

# BENCH_SECTIONS picks scenarios, e.g. "4" to repeat the floor alone.
sections=" ${BENCH_SECTIONS:-1 2 3 5 4 6} "
want() { [[ "$sections" == *" $1 "* ]]; }

if want 1 || want 2; then
  start
  if want 1; then
    echo "== 1. sessions/s (1 KiB message per session, ${seconds}s each)"
    for c in 1 8 64; do
      bench -c "$c" -d "${seconds}s" -m 1 --size 1024 --to rcpt@bench.test
    done
  fi
  if want 2; then
    echo "== 2. DATA throughput, 10 MiB message (one client)"
    bench -c 1 -n 5 -m 1 --size 10485760 --to big@bench.test
  fi
  stop
fi

if want 3; then
  echo "== 3. idle sessions (a fresh mppd each): greeting read, then nothing,"
  echo "   or each holding 1000 or 65000 octets of an unfinished command line"
  for n in 1000 10000; do
    for line in 0 1000 65000; do
      start
      bench --idle "$n" --idle-line "$line" --hold 3s
      stop
    done
  done
fi

if want 5; then
  echo "== 5. the same over TLS (mpps: listen_tls, a throwaway self-signed certificate)"
  if command -v openssl >/dev/null 2>&1; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
      -subj /CN=bench.test -addext "subjectAltName=DNS:bench.test,IP:127.0.0.1" \
      -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null
    plain_conf=$conf
    conf=$tmp/mppd-tls.toml
    sed -e 's/^listen = .*/listen = []\nlisten_tls = ["127.0.0.1:0"]/' "$plain_conf" >"$conf"
    printf '\n[tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$tmp/cert.pem" "$tmp/key.pem" >>"$conf"
    start
    addr_plain=$addr
    addr=mpps://$addr_plain
    for c in 1 8; do
      bench --ca-file "$tmp/cert.pem" -c "$c" -d "${seconds}s" -m 1 --size 1024 --to rcpt@bench.test
    done
    bench --ca-file "$tmp/cert.pem" -c 1 -n 5 -m 1 --size 10485760 --to big@bench.test
    stop
    start
    addr=mpps://$addr
    bench --ca-file "$tmp/cert.pem" --idle 1000 --hold 3s
    stop
    conf=$plain_conf
  else
    echo "skipped: needs openssl for a certificate"
  fi
fi

want 4 || want 6 || exit 0
echo "== 4 and 6. floor of the production backends (PAM + Postfix's sendmail) and mppd with them"
# The PAM test account of test/setup.d/20-pam.sh (its password is a test
# fixture written there) and Postfix of test/setup.d/40-postfix.sh.
pam_user=mppd-pam-ok
pam_password=Pam-ok-4711
floor=$bindir/benchfloor
why=""
[ "$(id -u)" -eq 0 ] || why="needs root"
[ -z "$why" ] && { { id "$pam_user" >/dev/null 2>&1 && [ -e /etc/pam.d/mppd-test ]; } || why="needs the PAM test account (test/setup.sh)"; }
[ -z "$why" ] && { postfix status >/dev/null 2>&1 || why="needs Postfix running (test/setup.sh)"; }
[ -z "$why" ] && { [ -x "$floor" ] || why="needs $floor (make bench builds it)"; }
[ -z "$why" ] && { [ -x "$bindir/benchbare" ] || why="needs $bindir/benchbare (make bench builds it)"; }
printf '%s\n' "$pam_password" >"$tmp/pampw"
chmod 600 "$tmp/pampw"
rcpt=$pam_user@localhost
# One login proves the build has PAM (-tags pam) and the account works.
[ -z "$why" ] && { "$floor" -user "$pam_user" -password-file "$tmp/pampw" -rcpt "$rcpt" -what login -n 1 >/dev/null 2>&1 ||
  why="benchfloor cannot log in (built without -tags pam, or the PAM setup is missing)"; }
if [ -n "$why" ]; then
  echo "skipped: $why"
  exit 0
fi
floor_run() {
  echo "\$ benchfloor $*"
  "$floor" -user "$pam_user" -password-file "$tmp/pampw" -rcpt "$rcpt" "$@" || echo "(failed)"
}
# floor_and_mppd WHAT N1 N8 LABEL [OTHER...]: BENCH_ROUNDS times (default
# 3), at 1 and 8 concurrent clients (N1 and N8 sessions), benchfloor -what
# WHAT, then mppd end to end with the same backends (LABEL says how mppd
# runs), then, if given, OTHER -c C -n N, alternately, so that a change in
# the machine's load hits them all alike.
floor_and_mppd() {
  local what=$1 n1=$2 n8=$3 label=$4 round c n
  shift 4
  for round in $(seq 1 "${BENCH_ROUNDS:-3}"); do
    for c in 1 8; do
      n=$((c == 1 ? n1 : n8))
      echo "-- round $round, $c concurrent, $n sessions"
      floor_run -what "$what" -c "$c" -n "$n"
      echo "\$ mpp bench -c $c -n $n -m 1 --size 1024 --to $rcpt ($label)"
      # shellcheck disable=SC2046 # two words per pid
      MPP_PASSWORD= "$mpp" bench -s "$addr" -u "$pam_user" --password-file "$tmp/pampw" \
        $(server_pids) -c "$c" -n "$n" -m 1 --size 1024 --to "$rcpt" || true
      [ "$#" -eq 0 ] || "$@" -c "$c" -n "$n"
      echo
    done
  done
}
# Each cost alone, for the breakdown.
if want 4; then
  floor_run -what login -c 1 -n 50
  floor_run -what sendmail -c 1 -n 100
  echo
fi

conf=$tmp/mppd-pam.toml
{ common_settings; cat <<EOF

[authn]
backend = "pam"

[authn.pam]
service = "mppd-test"
mail_domain = "mppd.test"

[delivery]
backend = "sendmail"

[delivery.sendmail]
timeout = "30s"

EOF
no_limits
} >"$conf"
if want 4; then
start
# The floor (login then sendmail, in a loop, no mppd) and mppd end to end.
floor_and_mppd both 40 80 "mppd with PAM + sendmail"
stop
fi

# bare_start ARGS: starts BINDIR/benchbare on a loopback port with ARGS
# and sets bareaddr; bare_bench ARGS runs mpp bench against it;
# bare_stop ends it.
bare_start() {
  "$bindir/benchbare" -listen 127.0.0.1:0 "$@" >"$tmp/bare.out" 2>&1 &
  barepid=$!
  bareaddr=""
  for _ in $(seq 1 50); do
    bareaddr=$(sed -n 's/^listening on //p' "$tmp/bare.out")
    [ -n "$bareaddr" ] && return 0
    sleep 0.1
  done
  echo "bench.sh: benchbare did not start:" >&2
  cat "$tmp/bare.out" >&2
  exit 1
}
bare_bench() {
  echo "\$ mpp bench $* -m 1 --size 1024 --to $rcpt (benchbare)"
  MPP_PASSWORD= "$mpp" bench -s "$bareaddr" -u "$pam_user" --password-file "$tmp/pampw" \
    --server-pid "$barepid" "$@" -m 1 --size 1024 --to "$rcpt" || true
}
bare_stop() {
  kill "$barepid" 2>/dev/null
  wait "$barepid" 2>/dev/null || true
  barepid=""
}

if want 6; then
  echo "== 6. auth cache on: the raw sendmail floor and mppd, alternately"
  printf '\n[authn.cache]\nenabled = true\nttl = "10m"\n' >>"$conf"
  start
  # One session fills the cache.
  MPP_PASSWORD= "$mpp" bench -s "$addr" -u "$pam_user" --password-file "$tmp/pampw" -n 1 -m 1 --to "$rcpt" >/dev/null || true
  bare_start -account "$pam_user" -from "$pam_user@mppd.test"
  floor_and_mppd raw 100 200 "mppd with the cache, PAM + sendmail" bare_bench
  bare_stop
  echo "-- benchbare -deliver=false: the connection and the dialogue alone"
  bare_start -deliver=false
  for c in 1 8; do
    bare_bench -c "$c" -n 1000
  done
  bare_stop
  stop
fi

# Postfix delivers the test messages into the account's Maildir; once its
# queue is empty (bounded wait), remove them again.
for _ in $(seq 1 120); do
  [ -z "$(postqueue -j 2>/dev/null | head -c 1)" ] && break
  sleep 0.5
done
home=$(getent passwd "$pam_user" | cut -d: -f6)
for d in "$home/Maildir/new" "$home/Maildir/cur"; do
  [ -d "$d" ] || continue
  # grep finds nothing in an empty directory: not an error here.
  { grep -l -s -Z -E '^Subject: (mpp bench|benchfloor)$' "$d"/* 2>/dev/null || true; } | xargs -0 -r rm -f --
done
echo "(test messages removed from $home/Maildir)"
