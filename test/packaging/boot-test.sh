#!/usr/bin/env bash
# boot-test.sh SUITE DEB: the .deb under a real systemd. Run as root (make
# boot-test; make test runs it too).
#
# A copy of a bootable Debian SUITE (boot-root.sh: the install test's base
# plus systemd and dbus, cached) is booted with systemd as PID 1 by
# systemd-nspawn, in a private network namespace (only its loopback), and
# every command runs inside it through nsenter. In it, with apt inside the
# booted system (so the maintainer scripts see a running systemd), the test
# installs the .deb, then Postfix (local only, Maildir), and walks through
# what an administrator does, each step named, each check with the
# evidence when it fails. The administrator procedures are run exactly as
# mppd(8), ADMINISTRATION, words them.
#
# Bounded: every wait has a timeout, and the container is powered off (and
# killed if it does not stop) on exit. MPPD_BOOT_KEEP=1 keeps the work
# directory (the container's file system) for a look after a failure.
#
# A machine that cannot boot a container (no systemd-nspawn, no namespaces)
# fails the test with the reason: it is never skipped.
#
# Adding a step: write it as `step NAME "what it shows"` followed by the
# commands (in_c runs one inside, post/mpp_session talk MPP to it), each
# check ending in `|| fail "what went wrong: evidence"`.
set -Eeuo pipefail
cd "$(dirname "$0")/../.."
# The whole script is one block, read before it runs: editing the file
# during a run does not change the run.
{

suite=${1:?usage: boot-test.sh SUITE DEB} deb=${2:?usage: boot-test.sh SUITE DEB}
[ -f "$deb" ] || { echo "boot-test: no $deb (make packages)" >&2; exit 1; }
deb=$(realpath "$deb")
t0=$(date +%s)
current=setup

# ---------------------------------------------------------------- helpers
say() { echo "   $*"; }
step() {
  current=$1
  echo "== boot-test: [$1] $2 ($(($(date +%s) - t0)) s)"
}
# fail MESSAGE: the step failed; show what the container's journal says.
fail() {
  echo "boot-test: FAIL [$current]: $*" >&2
  if [ -n "${pid1:-}" ] && [ -d "/proc/$pid1" ]; then
    echo "--- last journal lines of mppd and postfix in the container:" >&2
    in_c journalctl --no-pager -n 40 -u 'mppd*' -u 'postfix*' >&2 2>&1 || true
    echo "--- systemctl --failed:" >&2
    in_c systemctl --no-pager --failed >&2 2>&1 || true
  fi
  exit 1
}
# cannot WHY: this machine cannot run the test at all.
cannot() {
  echo "boot-test: FAIL [$current]: this machine cannot run the boot test: $*" >&2
  echo "boot-test: it needs root, systemd-nspawn (test/setup.d/65-boot-test.sh) and a kernel that lets it boot a container" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || cannot "not root"
for tool in systemd-nspawn nsenter openssl dpkg-deb; do
  command -v "$tool" >/dev/null || cannot "$tool is not installed"
done

work=$(mktemp -d /var/tmp/mppd-boot-test.XXXXXX)
root=$work/root
nspawn_pid='' pid1=''

# in_c CMD...: run CMD inside the booted container, bounded in time, with
# a clean environment.
in_c() {
  timeout "${IN_C_TIMEOUT:-120}" nsenter -t "$pid1" -a \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    DEBIAN_FRONTEND=noninteractive SYSTEMD_PAGER= SYSTEMD_COLORS=0 "$@"
}
# wait_for SECONDS WHAT CMD...: poll CMD until it succeeds; fail after SECONDS.
wait_for() {
  local secs=$1 what=$2 end
  shift 2
  end=$(($(date +%s) + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "$what: not within $secs s"
    sleep 0.2
  done
}
prop() { in_c systemctl show -P "$2" "$1"; }
state_is() { [ "$(prop "$1" ActiveState)" = "$2" ]; }
# listening PORT: a TCP socket listens on PORT inside the container.
listening() {
  local hex
  hex=$(printf '%04X' "$1")
  in_c cat /proc/net/tcp /proc/net/tcp6 | awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { found = 1 } END { exit !found }'
}
maildir_count() { in_c sh -c 'ls /home/alice/Maildir/new 2>/dev/null | wc -l'; }

# boot: boot the copy in $root and wait for systemd to finish starting up.
boot() {
  systemd-nspawn -D "$root" -b --register=no --keep-unit --private-network \
    -M boottest --console=pipe </dev/null >>"$work/console.log" 2>&1 &
  nspawn_pid=$!
  pid1=''
  local end=$(($(date +%s) + 30)) p
  while [ -z "$pid1" ]; do
    kill -0 "$nspawn_pid" 2>/dev/null || cannot "systemd-nspawn exited: $(tail -n 5 "$work/console.log")"
    [ "$(date +%s)" -lt "$end" ] || cannot "no init in the container after 30 s"
    # PID 1 of the container: nspawn's child whose id in its own
    # namespace is 1.
    for p in $(cat "/proc/$nspawn_pid/task/$nspawn_pid/children" 2>/dev/null); do
      if awk '$1 == "NSpid:" && $NF == 1 { ok = 1 } END { exit !ok }' "/proc/$p/status" 2>/dev/null; then
        pid1=$p
      fi
    done
    [ -n "$pid1" ] || sleep 0.2
  done
  # is-system-running --wait needs systemd's control socket to exist.
  wait_for 30 "systemd's control socket in the container" in_c test -S /run/systemd/private
  local st
  st=$(IN_C_TIMEOUT=90 in_c systemctl is-system-running --wait 2>&1) || true
  [ "$st" = running ] || fail "the container did not boot cleanly: is-system-running says \"$st\"; $(in_c systemctl --no-pager --failed 2>&1)"
}
# poweroff: shut the container down; kill it if that takes too long.
poweroff() {
  [ -n "$nspawn_pid" ] || return 0
  if kill -0 "$nspawn_pid" 2>/dev/null; then
    # SIGRTMIN+4 is systemd's "power off" signal.
    [ -n "$pid1" ] && kill -s RTMIN+4 "$pid1" 2>/dev/null
    timeout 60 tail --pid="$nspawn_pid" -f /dev/null || {
      echo "boot-test: the container did not power off in 60 s; killing it" >&2
      [ -n "$pid1" ] && kill -KILL "$pid1" 2>/dev/null
      kill -KILL "$nspawn_pid" 2>/dev/null || true
    }
  fi
  wait "$nspawn_pid" 2>/dev/null || true
  nspawn_pid='' pid1=''
}

# MPP sessions by hand, for the steps that act during DATA: a relay in the
# container's network namespace (bash's /dev/tcp, from this machine's bash)
# between two FIFOs and 127.0.0.1:PORT in the container.
declare -A s_in s_out s_pid
mpp_open() { # NAME PORT
  local name=$1 port=$2
  rm -f "$work/$name.in" "$work/$name.out"
  mkfifo "$work/$name.in" "$work/$name.out"
  # shellcheck disable=SC2016
  timeout 300 nsenter -t "$pid1" -n -- bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1; cat <&3 & cat >&3; wait' relay "$port" \
    <"$work/$name.in" >"$work/$name.out" &
  s_pid[$name]=$!
  local w r
  exec {w}>"$work/$name.in" {r}<"$work/$name.out"
  s_in[$name]=$w s_out[$name]=$r
}
mpp_send() { printf '%s\r\n' "$2" >&"${s_in[$1]}"; }
# mpp_expect NAME CODE [SECONDS]: the next reply starts with CODE.
mpp_expect() {
  local line=''
  IFS= read -r -t "${3:-15}" line <&"${s_out[$1]}" || fail "session $1: no reply within ${3:-15} s (expected $2)${line:+; partial: $line}"
  line=${line%$'\r'}
  [ "${line:0:3}" = "$2" ] || fail "session $1: expected $2, got \"$line\""
  say "$1: $line"
}
mpp_close() {
  local name=$1
  local w=${s_in[$name]} r=${s_out[$name]}
  exec {w}>&- {r}<&-
  timeout 10 tail --pid="${s_pid[$name]}" -f /dev/null 2>/dev/null || kill "${s_pid[$name]}" 2>/dev/null || true
  wait "${s_pid[$name]}" 2>/dev/null || true
}
# mpp_login NAME PORT USER PASSWORD: open, greeting, USER, PASS (250).
mpp_login() {
  mpp_open "$1" "$2"
  mpp_expect "$1" 220
  mpp_send "$1" "USER $3"
  mpp_expect "$1" 250
  mpp_send "$1" "PASS $4"
  mpp_expect "$1" 250
}

# text_open NAME SUBJECT: logs alice in on session NAME (port 218) and
# sends DATA and the header of a message with SUBJECT; the text stays open.
text_open() {
  mpp_login "$1" 218 alice alice-Pw-1
  mpp_send "$1" DATA
  mpp_expect "$1" 354
  mpp_send "$1" "To: alice@boottest.example.org"
  mpp_send "$1" "Subject: $2"
  mpp_send "$1" ""
}
# text_close NAME: ends the open text (250 within 30 s), then QUIT (221).
text_close() {
  mpp_send "$1" "the rest of the text"
  mpp_send "$1" "."
  mpp_expect "$1" 250 30
  mpp_send "$1" QUIT
  mpp_expect "$1" 221
  mpp_close "$1"
}

# post USER PASSWORD SUBJECT [mpp flags]: one message to alice with the
# packaged client inside the container; prints mpp's output, returns its
# status.
post() {
  local user=$1 pass=$2 subject=$3
  shift 3
  printf 'To: alice@boottest.example.org\nSubject: %s\n\nboot test\n' "$subject" >"$root/var/tmp/msg"
  in_c env MPP_PASSWORD="$pass" mpp send -s 127.0.0.1 -u "$user" --timeout 30s "$@" /var/tmp/msg 2>&1
}
# delivered SUBJECT: a message with this subject is in alice's Maildir.
delivered() { in_c sh -c 'grep -lx "Subject: $1" /home/alice/Maildir/new/* 2>/dev/null' sh "$1"; }
wait_delivered() { wait_for 30 "message \"$1\" in /home/alice/Maildir/new" delivered "$1"; }
# journal_has UNIT PRIORITY REGEX: a line of UNIT's journal since the
# test's mark at exactly PRIORITY matches REGEX.
journal_has() {
  # Not "| grep -q": under pipefail, journalctl killed by SIGPIPE when
  # grep stops early would fail the check.
  local lines
  lines=$(in_c journalctl --no-pager -o cat -u "$1" -p "$2..$2" --since "@$mark")
  grep -qE -- "$3" <<<"$lines"
}
mark_journal() { mark=$(in_c date +%s); sleep 1; }

# procedure TITLE [N]: run the commands of mppd(8)'s ADMINISTRATION
# subsection TITLE (its .Dl lines; the Nth group of consecutive ones, else
# all) inside the container, one after the other, as written there.
procedure() {
  local title=$1 group=${2:-0} cmd out
  mapfile -t cmds < <(awk -v t=".Ss $title" -v g="$group" '
    /^\.S[sh] / { in_ss = ($0 == t); prev = 0; next }
    in_ss && /^\.Dl / { if (!prev) n++; prev = 1; if (g == 0 || n == g) print substr($0, 5); next }
    { prev = 0 }' man/mppd.8 | sed -e 's/\\-/-/g' -e 's/\\&//g' -e 's/\\e/\\/g')
  [ ${#cmds[@]} -gt 0 ] || fail "mppd(8) has no commands in \"$title\" (group $group)"
  for cmd in "${cmds[@]}"; do
    say "# $cmd"
    out=$(in_c sh -c "$cmd" 2>&1) || fail "\"$cmd\" (mppd(8), $title) failed: $out"
    [ -z "$out" ] || say "$out"
  done
}

cleanup() {
  local rc=$?
  for s in "${!s_pid[@]}"; do kill "${s_pid[$s]}" 2>/dev/null || true; done
  poweroff
  if [ "${MPPD_BOOT_KEEP:-0}" = 1 ]; then
    echo "boot-test: kept $work" >&2
  else
    rm -rf --one-file-system -- "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A command that fails outside a check (set -e) names itself.
trap 'echo "boot-test: FAIL [$current]: line $LINENO: \"$BASH_COMMAND\" exited $?" >&2' ERR

# ------------------------------------------------------------- the system
step boot "a copy of the cached bootable $suite, booted with systemd as PID 1"
cached=$(test/packaging/boot-root.sh "$suite")
cp -a "$cached" "$root"
boot
say "$(in_c systemctl --version | head -n1), booted in $(($(date +%s) - t0)) s"

# The second build the upgrade step installs: the same package with a
# later version (dpkg-deb repacks it; what changes is what dpkg sees).
mkdir -p "$work/deb2"
dpkg-deb -R "$deb" "$work/deb2/pkg"
v1=$(dpkg-deb -f "$deb" Version)
v2="$v1+boot1"
sed -i "s/^Version: .*/Version: $v2/" "$work/deb2/pkg/DEBIAN/control"
dpkg-deb -Zxz -b "$work/deb2/pkg" "$root/var/tmp/mppd2.deb" >/dev/null
cp "$deb" "$root/var/tmp/mppd.deb"

# What /etc and systemd's state look like before the package, for purge.
snapshot() {
  in_c sh -c 'find /etc /var/lib/systemd /usr/lib/systemd /var/lib/mppd -xdev 2>/dev/null | grep -v -e "^/etc/ld.so.cache" -e "^/var/lib/systemd/timers" -e "^/var/lib/systemd/catalog" -e "^/var/lib/systemd/deb-systemd-helper-\(enabled\|masked\)$" | sort'
}
snapshot >"$work/before"

# ------------------------------------------------------------ the install
step install "apt-get install of the .deb inside the booted system"
in_c apt-get install -y -q --no-install-recommends /var/tmp/mppd.deb >"$work/apt.log" 2>&1 ||
  fail "apt-get install failed: $(tail -n 20 "$work/apt.log")"
[ "$(in_c systemctl is-enabled mppd.socket)" = enabled ] || fail "mppd.socket is not enabled after install: $(in_c systemctl is-enabled mppd.socket)"
[ "$(in_c systemctl is-enabled mppd-tls.socket || true)" = disabled ] || fail "mppd-tls.socket: $(in_c systemctl is-enabled mppd-tls.socket)"
state_is mppd.socket inactive || fail "the install started mppd.socket"
state_is mppd.service inactive || fail "the install started mppd.service"
grep -q 'systemctl start mppd.socket' "$work/apt.log" || fail "the postinst does not say how to start the socket: $(grep -i mppd "$work/apt.log")"
# deb-systemd-helper records every unit, enabled or not, so that purge
# finds a link the administrator made (systemctl enable mppd-tls.socket).
for unit in mppd.socket mppd-tls.socket mppd.service; do
  in_c test -f "/var/lib/systemd/deb-systemd-helper-enabled/$unit.dsh-also" ||
    fail "deb-systemd-helper has no state for $unit: $(in_c ls /var/lib/systemd/deb-systemd-helper-enabled)"
done
say "mppd.socket enabled, not started; mppd-tls.socket disabled; state recorded for every unit"
say "postinst says: $(grep '^mppd: ' "$work/apt.log" | tr '\n' ' ')"

step socket "mppd(8) Starting: the socket listens; mppd.service waits for a connection"
procedure Starting
listening 218 || fail "nothing listens on 218 after systemctl start mppd.socket"
state_is mppd.service inactive || fail "mppd.service is $(prop mppd.service ActiveState) before any connection"
say "218 listening, mppd.service inactive"

step users "local users: alice (uid 1001), a system account (uid 990), root with a password"
in_c useradd -m -u 1001 -s /bin/bash alice
in_c useradd -r -m -u 990 -d /var/lib/svcacct -s /bin/bash svcacct
printf 'alice:alice-Pw-1\nsvcacct:svc-Pw-1\nroot:root-Pw-1\n' | in_c chpasswd || fail "chpasswd failed"

step no-mta "a post before any MTA is installed: 451 at once"
start=$(date +%s)
out=$(post alice alice-Pw-1 "no mta") && fail "a post without an MTA got 250: $out"
grep -q ' 451 ' <<<"$out" || fail "a post without an MTA: $out"
[ $(($(date +%s) - start)) -le 10 ] || fail "the 451 took $(($(date +%s) - start)) s"
state_is mppd.service active || fail "mppd.service is $(prop mppd.service ActiveState) after a connection"
say "$out"

step postfix "Postfix installed with apt while mppd runs: 451 at once and a restart asked for; then served"
in_c apt-get install -y -q --no-install-recommends postfix >>"$work/apt.log" 2>&1 ||
  fail "apt-get install postfix failed: $(tail -n 20 "$work/apt.log")"
in_c postconf -e home_mailbox=Maildir/ || fail "postconf failed"
in_c systemctl restart postfix || fail "postfix does not restart"
wait_for 20 "postfix running" in_c sh -c 'systemctl is-active postfix@-.service'
say "postfix $(in_c dpkg-query -W -f='${Version}' postfix), mailname $(in_c cat /etc/mailname)"
# mppd started before /var/spool/postfix/maildrop existed, so its sandbox
# has it read-only: postdrop would retry until the sendmail timeout.
mark_journal
start=$(date +%s)
out=$(post alice alice-Pw-1 "mta installed while running") && fail "got 250 with the maildrop read-only in the sandbox: $out"
grep -q ' 451 ' <<<"$out" || fail "post with a read-only maildrop: $out"
[ $(($(date +%s) - start)) -le 10 ] || fail "the 451 took $(($(date +%s) - start)) s (the sendmail timeout?)"
journal_has mppd.service 3 'restart mppd' || fail "no error in the journal asking for a restart: $(in_c journalctl --no-pager -o cat -u mppd.service --since "@$mark" | tail -n 5)"
say "451 in $(($(date +%s) - start)) s; journal: $(in_c journalctl --no-pager -o cat -u mppd.service -p err --since "@$mark" | grep -m1 -o 'msg="[^"]*"')"
in_c systemctl restart mppd.service || fail "systemctl restart mppd failed"

# ------------------------------------------------------------- posting
step post "a post as alice: PAM through /etc/pam.d/mppd, sendmail as alice under the sandbox"
mark_journal
out=$(post alice alice-Pw-1 "first post") || fail "mpp send as alice failed: $out"
wait_delivered "first post"
msg=$(in_c sh -c 'cat "$(grep -lx "Subject: first post" /home/alice/Maildir/new/*)"')
grep -q 'from userid 1001)' <<<"$msg" || fail "Postfix did not get the message from uid 1001:
$msg"
grep -q '^Return-Path: <alice@boottest.example.org>' <<<"$msg" || fail "the sender is not alice@ the mail name of /etc/mailname:
$msg"
say "delivered; $(grep -m1 'from userid' <<<"$msg" | sed 's/^[[:space:]]*//'); sender alice@boottest.example.org"
# Without /etc/mailname and a fully qualified name, the mail domain is the
# short host name: --check-config warns.
out=$(in_c sh -c 'mv /etc/mailname /etc/mailname.away && cp /etc/hosts /etc/hosts.away &&
  printf "127.0.0.1 localhost\n" >/etc/hosts; mppd --check-config; s=$?;
  mv /etc/mailname.away /etc/mailname; mv /etc/hosts.away /etc/hosts; exit $s' 2>&1) || fail "--check-config failed: $out"
grep -q 'mail_domain has no dot' <<<"$out" || fail "no warning about a mail_domain without a dot: $out"
say "with no mail name and no FQDN, --check-config warns: $(grep -o 'msg="[^"]*' <<<"$out" | head -n1 | cut -c6-80)..."

step refused "root and a uid below 1000 cannot post"
for who in "root root-Pw-1" "svcacct svc-Pw-1"; do
  set -- $who
  out=$(post "$1" "$2" "from $1") && fail "$1 could post: $out"
  say "$1: $(tail -n1 <<<"$out")"
done
sleep 2
[ -z "$(delivered "from root")$(delivered "from svcacct")" ] || fail "a message from root or svcacct was delivered"

step journal "the session's lines in the journal at their priorities"
out=$(post alice wrong-password "bad password") && fail "a wrong password posted: $out"
journal_has mppd.service 6 'event=login .*user="?alice' || fail "no event=login for alice at priority 6 (info): $(in_c journalctl --no-pager -o cat -u mppd.service --since "@$mark" | tail -n 20)"
journal_has mppd.service 6 'event=delivered' || fail "no event=delivered at priority 6"
journal_has mppd.service 4 'event=auth-failed' || fail "no event=auth-failed at priority 4 (warning): $(in_c journalctl --no-pager -o cat -u mppd.service -p warning --since "@$mark" | tail -n 5)"
say "login, delivered at info; auth-failed at warning"

step notify "Type=notify: READY=1, STATUS= with the session count"
[ "$(prop mppd.service Type)" = notify ] || fail "Type is $(prop mppd.service Type)"
[ "$(prop mppd.service SubState)" = running ] || fail "SubState is $(prop mppd.service SubState)"
mpp_login status 218 alice alice-Pw-1
wait_for 5 "STATUS= shows one session (now \"$(prop mppd.service StatusText)\")" \
  sh -c "[ \"\$(timeout 10 nsenter -t $pid1 -a systemctl show -P StatusText mppd.service)\" = 'serving: 1 session' ]"
mpp_send status QUIT
mpp_expect status 221
mpp_close status
wait_for 5 "STATUS= back to 0 sessions" \
  sh -c "[ \"\$(timeout 10 nsenter -t $pid1 -a systemctl show -P StatusText mppd.service)\" = 'serving: 0 sessions' ]"
say "StatusText \"serving: 1 session\", then \"serving: 0 sessions\""

step reload "systemctl reload mppd (SIGHUP) keeps it running"
mainpid=$(prop mppd.service MainPID)
in_c systemctl reload mppd || fail "systemctl reload mppd failed"
state_is mppd.service active || fail "mppd is $(prop mppd.service ActiveState) after reload"
[ "$(prop mppd.service MainPID)" = "$mainpid" ] || fail "reload restarted mppd"
say "same MainPID $mainpid, active"

step watchdog "a hung mppd (SIGSTOP) is aborted by the watchdog and restarted"
# WatchdogSec=60s would make this step a minute long: a runtime drop-in
# shortens it for this step only.
in_c sh -c 'mkdir -p /run/systemd/system/mppd.service.d && printf "[Service]\nWatchdogSec=3s\n" >/run/systemd/system/mppd.service.d/watchdog.conf'
in_c systemctl daemon-reload
in_c systemctl restart mppd.service || fail "mppd does not start with WatchdogSec=3s"
hung=$(prop mppd.service MainPID)
restarts=$(prop mppd.service NRestarts)
restarted() { [ "$(prop mppd.service NRestarts)" -gt "$restarts" ] && state_is mppd.service active; }
mark_journal
in_c kill -STOP "$hung"
wait_for 30 "mppd restarted after the watchdog timeout (now $(prop mppd.service ActiveState), result $(prop mppd.service Result), NRestarts $(prop mppd.service NRestarts))" restarted
[ "$(prop mppd.service MainPID)" != "$hung" ] || fail "the same mppd still runs"
journal=$(in_c journalctl --no-pager -o cat -u mppd.service --since "@$mark")
grep -q "Failed with result 'watchdog'" <<<"$journal" || fail "no watchdog failure in the journal"
restarts=$(prop mppd.service NRestarts)
in_c rm -r /run/systemd/system/mppd.service.d
in_c systemctl daemon-reload
in_c systemctl restart mppd.service
out=$(post alice alice-Pw-1 "after watchdog") || fail "post after the watchdog restart failed: $out"
say "result 'watchdog', then restarted by systemd (NRestarts $restarts)"

step stop-during-data "systemctl stop while a message is being received: 250, delivered"
text_open stop "during stop"
in_c systemctl stop mppd.service &
stopper=$!
wait_for 10 "mppd deactivating after systemctl stop" state_is mppd.service deactivating
text_close stop
timeout 60 tail --pid="$stopper" -f /dev/null || fail "systemctl stop did not return"
wait "$stopper" || fail "systemctl stop mppd failed"
state_is mppd.service inactive || fail "mppd.service is $(prop mppd.service ActiveState) after stop"
wait_delivered "during stop"
journal_has mppd.service 6 'event=shutdown' || fail "no event=shutdown line"
[ -z "$(prop mppd.service StatusText)" ] || fail "the stopped unit keeps STATUS \"$(prop mppd.service StatusText)\""
say "250, then 221 to QUIT; delivered; unit inactive with no stale STATUS"

step exit-on-idle "exit_on_idle: mppd exits when idle, the next connection starts it again"
# Below 5 s steady traffic would trip systemd's start limit.
sed -i 's/^#exit_on_idle = .*/exit_on_idle = "2s"/' "$root/etc/mppd/mppd.toml"
out=$(in_c mppd --check-config 2>&1) && fail "--check-config accepted exit_on_idle = \"2s\": $out"
grep -q 'exit_on_idle: 2s is out of range 5s' <<<"$out" || fail "--check-config on exit_on_idle = \"2s\": $out"
sed -i 's/^exit_on_idle = .*/exit_on_idle = "5s"/' "$root/etc/mppd/mppd.toml"
procedure "Changing the configuration" 1
mark_journal
out=$(post alice alice-Pw-1 "before idle") || fail "post failed: $out"
wait_for 20 "mppd exits on idle" state_is mppd.service inactive
journal_has mppd.service 6 'event=exit-on-idle' || fail "no event=exit-on-idle in the journal"
state_is mppd.socket active || fail "mppd.socket is $(prop mppd.socket ActiveState) after the exit on idle"
out=$(post alice alice-Pw-1 "after idle") || fail "the post after the exit on idle failed: $out"
wait_delivered "after idle"
say "exited after 5 s idle; socket kept; the next post started it and was delivered"
sed -i 's/^exit_on_idle = .*/#exit_on_idle = "0s"/' "$root/etc/mppd/mppd.toml"
procedure "Changing the configuration" 1

step config-typo "mppd(8): a typo is caught by --check-config; the recovery after restarting anyway"
sed -i '1i hostnme = "boottest.example.org"' "$root/etc/mppd/mppd.toml"
out=$(in_c mppd --check-config 2>&1) && fail "mppd --check-config accepted an unknown key: $out"
grep -q 'hostnme' <<<"$out" || fail "--check-config does not name the bad key: $out"
say "--check-config: $out"
mark_journal
in_c systemctl restart mppd.service >/dev/null 2>&1 && fail "systemctl restart mppd with a typo succeeded"
[ "$(prop mppd.service ExecMainStatus)" = 78 ] || fail "mppd exited $(prop mppd.service ExecMainStatus), not 78 (EX_CONFIG)"
journal_has mppd.service 3 'hostnme: unknown key' || fail "journalctl -p err does not show why mppd did not start: $(in_c journalctl --no-pager -o cat -u mppd.service --since "@$mark" | tail -n 5)"
say "exit status 78; the reason is in the journal at priority err"
# Each connection starts mppd again; it fails each time, until systemd
# stops the socket too.
for _ in 1 2 3 4 5 6 7 8; do
  state_is mppd.socket active || break
  timeout 5 nsenter -t "$pid1" -n -- bash -c 'exec 3<>/dev/tcp/127.0.0.1/218 && read -r -t 3 -u 3 _' 2>/dev/null || true
done
wait_for 20 "mppd.socket given up after repeated failed starts" state_is mppd.socket failed
[ "$(prop mppd.socket Result)" = service-start-limit-hit ] || fail "mppd.socket result: $(prop mppd.socket Result)"
listening 218 && fail "218 still listens with mppd.socket failed"
say "mppd.socket: failed, service-start-limit-hit; 218 refused"
sed -i '/^hostnme = /d' "$root/etc/mppd/mppd.toml"
procedure "Changing the configuration" 2
listening 218 || fail "218 does not listen after the recovery"
out=$(post alice alice-Pw-1 "after recovery") || fail "post after the recovery failed: $out"
wait_delivered "after recovery"

# A certificate for 127.0.0.1, self-signed (the client trusts it as its CA).
make_cert() { # NAME
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=boottest $1" -addext "subjectAltName=IP:127.0.0.1,DNS:boottest.example.org" \
    -keyout "$work/$1.key" -out "$work/$1.pem" >/dev/null 2>&1 || fail "openssl could not make a certificate"
}
install_cert() { # NAME
  install -d -m 0700 "$root/etc/mppd/tls"
  install -m 0644 "$work/$1.pem" "$root/etc/mppd/tls/cert.pem"
  install -m 0600 "$work/$1.key" "$root/etc/mppd/tls/key.pem"
  cp "$work/$1.pem" "$root/var/tmp/$1.pem"
}

step tls-on "mppd(8) Turning TLS on, while mppd runs"
make_cert cert1
install_cert cert1
sed -i -e 's|^#cert_file = |cert_file = |' -e 's|^#key_file = |key_file = |' "$root/etc/mppd/mppd.toml"
state_is mppd.service active || fail "mppd is not running before the procedure"
procedure "Turning TLS on"
listening 1218 || fail "nothing listens on 1218"
listening 218 || fail "218 stopped listening"
out=$(post alice alice-Pw-1 "over tls" --tls --ca-file /var/tmp/cert1.pem) || fail "post over TLS failed: $out"
out=$(post alice alice-Pw-1 "plain with tls on") || fail "plain post with TLS on failed: $out"
wait_delivered "over tls"
wait_delivered "plain with tls on"
say "1218 and 218 served by one mppd ($(prop mppd.service MainPID))"

step tls-renew "mppd(8) Renewing the certificate, mppd running and not"
make_cert cert2
install_cert cert2
mark_journal
procedure "Renewing the certificate"
journal_has mppd.service 6 'event=tls-reload' || fail "no event=tls-reload after the renewal"
out=$(post alice alice-Pw-1 "renewed" --tls --ca-file /var/tmp/cert2.pem) || fail "post trusting the new certificate failed: $out"
out=$(post alice alice-Pw-1 "old cert" --tls --ca-file /var/tmp/cert1.pem) && fail "the old certificate is still served"
in_c systemctl stop mppd.service
make_cert cert3
install_cert cert3
out=$(in_c systemctl reload mppd 2>&1) && fail "systemctl reload of an inactive mppd succeeded (the man page says it fails): $out"
procedure "Renewing the certificate"
state_is mppd.service inactive || fail "try-reload-or-restart started an inactive mppd"
out=$(post alice alice-Pw-1 "renewed while stopped" --tls --ca-file /var/tmp/cert3.pem) || fail "post trusting the certificate renewed while stopped failed: $out"
wait_delivered "renewed while stopped"
say "running: reloaded without a restart; stopped: nothing to do, the next start reads the new pair"

step tls-only "mppd(8) TLS only, and back"
procedure "TLS only" 1
listening 218 && fail "218 still listens"
out=$(post alice alice-Pw-1 "plain while tls only") && fail "plain MPP still served: $out"
out=$(post alice alice-Pw-1 "tls only" --tls --ca-file /var/tmp/cert3.pem) || fail "post over TLS failed: $out"
[ "$(in_c systemctl is-enabled mppd.socket || true)" = masked ] || fail "mppd.socket is not masked"
say "218 refused; 1218 served"
procedure "TLS only" 2
listening 218 || fail "218 does not listen again"
out=$(post alice alice-Pw-1 "plain again") || fail "plain post after TLS only failed: $out"
wait_delivered "plain again"

step mpps-without-tls "mppd-tls.socket enabled, [tls] removed: --check-config says so; port 218 stays served"
sed -i -e 's|^cert_file = |#cert_file = |' -e 's|^key_file = |#key_file = |' "$root/etc/mppd/mppd.toml"
out=$(in_c mppd --check-config 2>&1) && fail "--check-config accepted an enabled mppd-tls.socket without [tls]: $out"
grep -q 'mppd-tls.socket is enabled' <<<"$out" || fail "--check-config does not name mppd-tls.socket: $out"
say "--check-config: $out"
mark_journal
in_c systemctl restart mppd.service || fail "mppd does not start with an mpps socket and no [tls]"
out=$(post alice alice-Pw-1 "plain without tls") || fail "plain MPP not served with an unusable mpps socket: $out"
journal_has mppd.service 3 'not serving an mpps socket' || fail "no error about the mpps socket at priority err"
wait_delivered "plain without tls"
say "218 served; the journal says at err why 1218 is not"
sed -i -e 's|^#cert_file = |cert_file = |' -e 's|^#key_file = |key_file = |' "$root/etc/mppd/mppd.toml"
procedure "Changing the configuration" 1
out=$(post alice alice-Pw-1 "tls again" --tls --ca-file /var/tmp/cert3.pem) || fail "post over TLS after restoring [tls] failed: $out"

step reboot "after a reboot: both sockets listen, mppd.service waits for a connection"
poweroff
boot
state_is mppd.socket active || fail "mppd.socket is $(prop mppd.socket ActiveState) after the reboot"
state_is mppd-tls.socket active || fail "mppd-tls.socket is $(prop mppd-tls.socket ActiveState) after the reboot"
listening 218 || fail "218 does not listen after the reboot"
listening 1218 || fail "1218 does not listen after the reboot"
state_is mppd.service inactive || fail "mppd.service is $(prop mppd.service ActiveState) before any connection"
out=$(post alice alice-Pw-1 "after reboot") || fail "post after the reboot failed: $out"
wait_delivered "after reboot"
say "218 and 1218 listening; mppd started by the first connection"

step upgrade "an upgrade to a second build during DATA: 250, the changed conffile kept"
sed -i 's/^#drain_timeout = "30s"/drain_timeout = "45s"/' "$root/etc/mppd/mppd.toml"
grep -q '^drain_timeout = "45s"' "$root/etc/mppd/mppd.toml" || fail "could not change the conffile"
before_pid=$(prop mppd.service MainPID)
text_open up "during upgrade"
in_c apt-get install -y -q --no-install-recommends /var/tmp/mppd2.deb >"$work/upgrade.log" 2>&1 &
upgrader=$!
wait_for 90 "mppd stopping for the upgrade" state_is mppd.service deactivating
text_close up
timeout 120 tail --pid="$upgrader" -f /dev/null || fail "the upgrade did not finish"
wait "$upgrader" || fail "the upgrade failed: $(tail -n 20 "$work/upgrade.log")"
[ "$(in_c dpkg-query -W -f='${Version}' mppd)" = "$v2" ] || fail "installed: $(in_c dpkg-query -W -f='${Version}' mppd), not $v2"
grep -q '^drain_timeout = "45s"' "$root/etc/mppd/mppd.toml" || fail "the upgrade replaced the changed conffile"
[ -z "$(ls "$root"/etc/mppd/*.dpkg-* 2>/dev/null)" ] || fail "the upgrade left $(ls "$root"/etc/mppd/*.dpkg-*)"
wait_delivered "during upgrade"
wait_for 20 "mppd running again after the upgrade" state_is mppd.service active
[ "$(prop mppd.service MainPID)" != "$before_pid" ] || fail "mppd was not restarted by the upgrade"
out=$(post alice alice-Pw-1 "after upgrade") || fail "post after the upgrade failed: $out"
say "$v1 -> $v2 during DATA: 250, delivered, conffile kept, mppd restarted"

step remove "apt-get remove: stopped, binaries and units gone, conffiles kept"
in_c apt-get remove -y -q mppd >>"$work/apt.log" 2>&1 || fail "apt-get remove failed: $(tail -n 20 "$work/apt.log")"
listening 218 && fail "218 still listens after remove"
listening 1218 && fail "1218 still listens after remove"
for f in /usr/sbin/mppd /usr/bin/mpp /usr/lib/systemd/system/mppd.service /usr/lib/systemd/system/mppd.socket; do
  [ ! -e "$root$f" ] || fail "$f is still there after remove"
done
[ -f "$root/etc/mppd/mppd.toml" ] || fail "remove took the conffile"
say "nothing listens; conffiles kept"

step purge "apt-get purge leaves nothing, no *.wants link included"
in_c apt-get purge -y -q mppd >>"$work/apt.log" 2>&1 || fail "apt-get purge failed: $(tail -n 20 "$work/apt.log")"
in_c systemctl daemon-reload
snapshot >"$work/after"
left=$(comm -13 "$work/before" "$work/after" | grep -i mppd || true)
[ -z "$left" ] || fail "purge left behind:
$left"
left=$(in_c sh -c 'ls -d /etc/systemd/system/*/mppd* /etc/systemd/system/mppd* /run/systemd/system/mppd* 2>/dev/null' || true)
[ -z "$left" ] || fail "purge left units or links: $left"
[ "$(in_c systemctl is-enabled mppd-tls.socket 2>&1 || true)" != enabled ] || fail "mppd-tls.socket still enabled"
say "no file, link or state of mppd left"

echo "== boot-test: passed in $(($(date +%s) - t0)) s"
exit 0
}
