# Shared by test/bench.sh, test/bench-ad.sh and test/bench-balancer.sh
# (sourced): the binaries under test, the benchmark user, where a started
# mppd listens, the config sections of the development backends.

# bench_binaries [BINDIR]: sets bindir (BINDIR, default bin, as `make
# build` leaves it), mppd and mpp (the binaries in it) and seconds (how
# long each load run lasts: BENCH_SECONDS, default 10); exits 1 if mppd or
# mpp is not there.
bench_binaries() {
  local b
  bindir=${1:-bin}
  mppd=$bindir/mppd
  mpp=$bindir/mpp
  seconds=${BENCH_SECONDS:-10}
  for b in "$mppd" "$mpp"; do
    [ -x "$b" ] || { echo "${0##*/}: $b not found; run make build" >&2; exit 1; }
  done
}

# bench_user DIR: sets user, the account the benchmarks post as, and
# writes a fresh password for it to DIR/pw (mode 600), for mppd passwd
# and mpp bench --password-file.
bench_user() {
  user=bench
  printf 'bench-password-%s-%s\n' "$$" "$RANDOM" >"$1/pw"
  chmod 600 "$1/pw"
}

# mppd_addr PID: 127.0.0.1:PORT of the listening TCP socket of mppd PID.
# Its engine (the child it starts) holds the listener once it runs; PID
# itself holds it only until then.
mppd_addr() {
  local p inodes port
  for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
    inodes=$(ls -l "/proc/$p/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\]/\1/p' | tr '\n' ' ')
    # /proc/net/tcp: local_address is hex IP:port, st 0A is LISTEN, the
    # tenth field the socket's inode.
    port=$(awk -v inodes=" $inodes" '$4 == "0A" && index(inodes, " " $10 " ") { split($2, a, ":"); print a[2]; exit }' /proc/net/tcp)
    [ -z "$port" ] || { echo "127.0.0.1:$((16#$port))"; return 0; }
  done
}

# wait_listen PID LOG: waits up to 10 s for mppd PID to listen and sets
# addr; if it does not (or exits), prints its LOG and exits 1.
wait_listen() {
  for _ in $(seq 1 100); do
    addr=$(mppd_addr "$1")
    [ -n "$addr" ] && return 0
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  echo "${0##*/}: mppd did not listen; its log, $2:" >&2
  cat "$2" >&2
  exit 1
}

# dev_backends DIR: the config sections of the development backends, the
# password file DIR/passwd and maildirs under DIR/maildir, and no sending
# limits.
dev_backends() {
  cat <<EOF
[authn]
backend = "passwdfile"

[authn.passwdfile]
path = "$1/passwd"
mail_domain = "bench.test"

[delivery]
backend = "maildir"

[delivery.maildir]
root = "$1/maildir"

EOF
  no_limits
}

# no_limits: the [limits] section that turns the sending limits off: a
# benchmark posts far more as one user than they allow.
no_limits() {
  cat <<EOF
[limits]
messages_per_hour = 0
recipients_per_hour = 0
recipients_per_day = 0
EOF
}
