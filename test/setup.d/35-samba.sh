#!/usr/bin/env bash
# Active Directory (authn/ldap against a real domain controller): installs
# Samba from Debian and provisions a test domain, CORP.MPPD.TEST (NetBIOS
# name CORP), that listens on loopback only. Nothing is started here and no
# system service is enabled: the tests that need the DC copy the domain
# provisioned here and start `samba` on the copy themselves (package
# authn/ldap/adtest), one at a time, and stop it by its pid file.
#
# Loopback only: `interfaces = lo`, `bind interfaces only = yes`, no DNS
# server and no DNS forwarder, and the NBT, winbind, replication (drepl),
# KCC and every other service off: `server services = ldap`, the LDAP
# server alone (389 with StartTLS, 636, and the global catalog's 3268 and
# 3269), on 127.0.0.1 and ::1. A simple bind needs nothing else, and every
# other task is one more thing that can fail at start on a loaded machine
# (when one does, samba stops altogether).
#
# The DC's certificate is signed by a CA made here for it, with the SANs a
# client checks (dc.corp.mppd.test, localhost, 127.0.0.1): Samba's own
# self-made certificate has a negative serial number and no SAN, which Go
# refuses.
#
# Provisioning takes about 15 s; the result is kept under $ROOT and made
# again only when this script changes (its hash is stamped into the copy)
# or the certificate is near its end. The fixture (users, groups, passwords)
# is described once, in authn/ldap/adtest/samba.go, and must match the
# Python below.
set -euo pipefail
. "$(dirname "$0")/../setup-lib.sh"

apt_install samba samba-ad-provision samba-dsdb-modules ldb-tools openssl

# The Debian package may start its file-server daemons (smbd, nmbd, on all
# addresses) and enables them at boot. The tests use none of them: stop
# and disable them, as 30-slapd.sh does for slapd.
for svc in smbd nmbd samba-ad-dc winbind; do
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    if systemctl is-active --quiet "$svc" 2>/dev/null; then
      systemctl stop "$svc"
    fi
    if systemctl is-enabled --quiet "$svc" 2>/dev/null; then
      systemctl disable --quiet "$svc" 2>/dev/null || true
    fi
  else
    # No systemd: only the package's own pid files (in /run/samba; a
    # test's DC keeps its own under $ROOT), never a test's DC.
    case $svc in
      samba-ad-dc) pidfile=/run/samba/samba.pid ;;
      winbind) pidfile=/run/samba/winbindd.pid ;;
      *) pidfile=/run/samba/$svc.pid ;;
    esac
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null && [ -x "/etc/init.d/$svc" ]; then
      "/etc/init.d/$svc" stop >/dev/null || true
    fi
    if command -v update-rc.d >/dev/null 2>&1 && ls /etc/rc2.d/S*"$svc" >/dev/null 2>&1; then
      update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  fi
done

ROOT=/var/cache/mppd-test/samba
# The stamp: this script's own hash. Any change to the fixture below makes
# a new domain on the next run.
stamp="$(sha256sum "$0" | cut -d' ' -f1)"

if [ -f "$ROOT/golden/mppd-fixture" ] && [ "$(cat "$ROOT/golden/mppd-fixture")" = "$stamp" ] &&
  openssl x509 -in "$ROOT/tls/dc.pem" -noout -checkend $((30 * 86400)) >/dev/null 2>&1; then
  echo "samba: test domain already provisioned in $ROOT ($(samba --version))"
  exit 0
fi

# Never provision under a running test DC (its pid file is in the run
# copy): stop it first.
pidfile="$ROOT/run/pid/samba.pid"
if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -TERM "$(cat "$pidfile")" || true
  sleep 2
fi
rm -rf "$ROOT/run" "$ROOT/golden" "$ROOT/tls"
mkdir -p "$ROOT/run" "$ROOT/tls"
chmod 700 "$ROOT"

# The test CA and the DC's certificate, valid ten years.
(
  cd "$ROOT/tls"
  umask 077
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=mppd test AD CA" \
    -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=dc.corp.mppd.test" -keyout dc.key -out dc.csr 2>/dev/null
  cat >dc.ext <<'EXT'
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:dc.corp.mppd.test, DNS:localhost, IP:127.0.0.1
EXT
  openssl x509 -req -in dc.csr -CA ca.pem -CAkey ca.key -set_serial 0x$(openssl rand -hex 8) \
    -days 3650 -extfile dc.ext -out dc.pem 2>/dev/null
  rm -f dc.csr dc.ext ca.key
  chmod 644 ca.pem dc.pem
)

# An empty base configuration, so that nothing of /etc/samba/smb.conf
# leaks into the domain's.
empty="$(mktemp)"
trap 'rm -f "$empty"' EXIT
timeout 300 samba-tool domain provision -s "$empty" \
  --realm=CORP.MPPD.TEST --domain=CORP --server-role=dc --dns-backend=NONE \
  --host-name=dc --host-ip=127.0.0.1 --adminpass='Admin-pw-1' \
  --targetdir="$ROOT/run" \
  --option="interfaces = lo" \
  --option="bind interfaces only = yes" \
  --option="server services = ldap" \
  --option="pid directory = $ROOT/run/pid" \
  --option="log file = $ROOT/run/log/samba.log" \
  --option="log level = 1" \
  --option="tls enabled = yes" \
  --option="tls keyfile = $ROOT/tls/dc.key" \
  --option="tls certfile = $ROOT/tls/dc.pem" \
  --option="tls cafile = $ROOT/tls/ca.pem" >"$ROOT/provision.log" 2>&1 ||
  { tail -n 30 "$ROOT/provision.log" >&2; exit 1; }
mkdir -p "$ROOT/run/pid" "$ROOT/run/log"

# The fixture, written straight into the new domain's database (the DC is
# not running). Samba's Python bindings do it in one process; samba-tool
# would take two seconds per step.
timeout 120 /usr/bin/python3 - "$ROOT/run" <<'PY'
import sys
import ldb
import samba.auth
import samba.param
from samba.samdb import SamDB

run = sys.argv[1]
lp = samba.param.LoadParm()
lp.load(run + "/etc/smb.conf")
db = SamDB(url=run + "/private/sam.ldb", session_info=samba.auth.system_session(), lp=lp)
base = str(db.domain_dn())
users = "CN=Users," + base

def modify(text):
    db.modify_ldif(text)

# Domain policy: lockout after 3 bad passwords, counter reset and lockout
# 30 minutes (AD's defaults for the two durations); no complexity rules,
# so that the fixture passwords stay readable.
thirty_min = str(-30 * 60 * 10**7)
modify(f"""dn: {base}
changetype: modify
replace: lockoutThreshold
lockoutThreshold: 3
-
replace: lockOutObservationWindow
lockOutObservationWindow: {thirty_min}
-
replace: lockoutDuration
lockoutDuration: {thirty_min}
-
replace: pwdProperties
pwdProperties: 0
-
replace: minPwdLength
minPwdLength: 0
-
replace: pwdHistoryLength
pwdHistoryLength: 0
-
replace: minPwdAge
minPwdAge: 0
""")

db.newgroup("mppd-users", description="may post mail through mppd")
db.newgroup("mppd-nested", description="a member group of mppd-users")
db.newgroup("others", description="not related to mppd")
db.add_remove_group_members("mppd-users", ["mppd-nested"], add_members_operation=True)

def user(name, mail=True, must_change=False):
    db.newuser(name, name + "-pw", mailaddress=(name + "@corp.mppd.test") if mail else None,
               force_password_change_at_next_login_req=must_change)

# name        what it is
user("svc-mppd")        # the service account mppd searches as
user("alice")           # member of mppd-users
user("bob")             # not in mppd-users (in "others")
user("carol")           # in mppd-nested, so in mppd-users through it
user("dave")            # member, account disabled
user("erin", must_change=True)  # member, must change the password (pwdLastSet 0)
user("frank")           # member, password expired (pwdLastSet 100 days ago, below)
user("gina")            # member, account expired (accountExpires in the past)
user("hank", mail=False)  # member, no mail attribute
user("ivy")             # member, userPrincipalName on another suffix
user("jack")            # member, no userPrincipalName at all
user("kate")            # mppd-users is her primary group (not in memberOf)
user("lena")            # member, for lockout tests (cache on)
user("mike")            # member, for lockout tests (cache off)
user("nina")            # member, locked and unlocked by a test
user("olga")            # member, spare for tests that change state

for m in ["alice", "dave", "erin", "frank", "gina", "hank", "ivy", "jack", "kate",
          "lena", "mike", "nina", "olga"]:
    db.add_remove_group_members("mppd-users", [m], add_members_operation=True)
db.add_remove_group_members("mppd-nested", ["carol"], add_members_operation=True)
db.add_remove_group_members("others", ["bob"], add_members_operation=True)

db.disable_account("(sAMAccountName=dave)")

# 2012-01-01 in FILETIME: long past.
modify(f"""dn: CN=gina,{users}
changetype: modify
replace: accountExpires
accountExpires: 129697344000000000
""")
modify(f"""dn: CN=ivy,{users}
changetype: modify
replace: userPrincipalName
userPrincipalName: ivy@other.mppd.test
""")
modify(f"""dn: CN=jack,{users}
changetype: modify
delete: userPrincipalName
""")

# kate's primary group: the group's RID in primaryGroupID. AD then keeps
# the membership out of the group's member and the user's memberOf.
res = db.search(base=f"CN=mppd-users,{users}", scope=ldb.SCOPE_BASE, attrs=["primaryGroupToken"])
rid = int(res[0]["primaryGroupToken"][0])
modify(f"""dn: CN=kate,{users}
changetype: modify
replace: primaryGroupID
primaryGroupID: {rid}
""")

print("samba: fixture users and groups added")
PY

# frank's password expired: AD refuses to set pwdLastSet to anything but 0
# or "now", so his is moved 100 days back (past the domain's 42-day maximum
# password age) in the raw partition, below Samba's checks, while no DC runs.
timeout 60 /usr/bin/python3 - "$ROOT/run" <<'PY'
import sys
import time
import ldb

run = sys.argv[1]
raw = ldb.Ldb(run + "/private/sam.ldb.d/DC=CORP,DC=MPPD,DC=TEST.ldb", options=["modules:"])
m = ldb.Message()
m.dn = ldb.Dn(raw, "CN=frank,CN=Users,DC=corp,DC=mppd,DC=test")
filetime = int((time.time() - 100 * 86400 + 11644473600) * 10**7)
m["pwdLastSet"] = ldb.MessageElement(str(filetime), ldb.FLAG_MOD_REPLACE, "pwdLastSet")
raw.modify(m)
PY

# The provisioned domain is kept as "golden"; each test DC starts from a
# fresh copy of it in "run", so that lockouts and bad-password counts of
# one test never reach the next.
cp -a "$ROOT/run" "$ROOT/golden"
echo "$stamp" >"$ROOT/golden/mppd-fixture"
echo "samba: test domain provisioned in $ROOT ($(samba --version))"
