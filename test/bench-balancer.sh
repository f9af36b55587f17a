#!/usr/bin/env bash
# test/bench-balancer.sh: sessions/s through HAProxy in front of two mppd
# instances (send-proxy-v2, proxy_protocol_from) against one mppd
# reached directly, in the same run, with the same development backends
# (password file + maildir), on 127.0.0.1 only. Run by `make bench` after
# test/bench.sh; the figures go into BENCHMARKS.md by hand.
#
#   test/bench-balancer.sh [BINDIR]     (default: bin, as built by `make build`)
#
# It needs haproxy (test/setup.d/70-haproxy.sh) and says so and exits 0
# without it. Every process it starts is stopped on exit; each load run
# lasts BENCH_SECONDS (default 10).
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"

bench_binaries "${1:-}"
if ! command -v haproxy >/dev/null; then
  echo "== balancer: skipped, haproxy is not installed (test/setup.d/70-haproxy.sh)"
  exit 0
fi

tmp=$(mktemp -d /tmp/mppd-bench-lb.XXXXXX)
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

bench_user "$tmp"

# config NAME PROXY: an instance's config; PROXY is the value of
# proxy_protocol_from. All instances share the password file and the
# maildir root.
config() {
  cat >"$tmp/$1.toml" <<CONF
hostname = "$1.bench.test"
listen = ["127.0.0.1:0"]
drain_timeout = "5s"
max_sessions = 20000
max_sessions_per_client = 20000
trusted_networks = ["127.0.0.0/8"]
proxy_protocol_from = $2

[log]
level = "warn"

$(dev_backends "$tmp")
CONF
}

# start NAME: starts the instance NAME; sets pid and addr.
start() {
  "$mppd" --config "$tmp/$1.toml" >"$tmp/$1.log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_listen "$pid" "$tmp/$1.log"
}

# listening PORT: whether a TCP socket listens on PORT.
listening() {
  awk -v p="$(printf '%04X' "$1")" '$4 == "0A" { split($2, a, ":"); if (a[2] == p) found = 1 } END { exit !found }' /proc/net/tcp
}

# free_port: a loopback port nobody listens on now, for HAProxy.
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! listening "$p"; then
      echo "$p"
      return 0
    fi
  done
  echo "bench-balancer.sh: no free port" >&2
  exit 1
}

bench() {
  echo "\$ mpp bench -s $1 ${*:2}"
  MPP_PASSWORD= "$mpp" bench -s "$1" -u "$user" --password-file "$tmp/pw" "${@:2}" || true
  echo
}

config direct '[]'
config lb1 '["127.0.0.1/32"]'
config lb2 '["127.0.0.1/32"]'
"$mppd" passwd --config "$tmp/direct.toml" "$user" <"$tmp/pw" >/dev/null

echo "== balancer: $(nproc) CPU, $(haproxy -v | head -n 1), $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo

start direct
direct=$addr
start lb1
a=$addr
start lb2
b=$addr
port=$(free_port)
cat >"$tmp/haproxy.cfg" <<CFG
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
frontend mpp
    bind 127.0.0.1:$port
    default_backend mppd
backend mppd
    balance roundrobin
    option tcp-check
    tcp-check expect rstring ^220
    tcp-check send "QUIT\r\n"
    tcp-check expect rstring ^221
    server mppd1 $a send-proxy-v2 check inter 2s
    server mppd2 $b send-proxy-v2 check inter 2s
CFG
haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
pids+=("$!")
for i in $(seq 1 51); do
  listening "$port" && break
  if [ "$i" = 51 ]; then
    echo "bench-balancer.sh: haproxy did not listen" >&2
    cat "$tmp/haproxy.log" >&2
    exit 1
  fi
  sleep 0.1
done

for c in 1 8 32; do
  echo "== sessions/s, $c concurrent clients, 1 KiB message each, ${seconds}s"
  bench "$direct" -c "$c" -d "${seconds}s" -m 1 --size 1024 --to rcpt@bench.test
  bench "127.0.0.1:$port" -c "$c" -d "${seconds}s" -m 1 --size 1024 --to rcpt@bench.test
done
echo "(first of each pair: one mppd directly; second: HAProxy + two mppd, send-proxy-v2)"
