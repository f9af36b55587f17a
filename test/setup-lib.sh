# Shared by test/setup.sh and every test/setup.d/*.sh part (sourced, so a
# part also works run on its own: sudo bash test/setup.d/40-postfix.sh).

if [ "$(id -u)" -ne 0 ]; then
  echo "${0##*/} must run as root (it installs packages and test users)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# One stamp file per run of test/setup.sh (or of one part run alone), so
# the package lists are refreshed at most once per run, and always fresh.
if [ -z "${MPPD_APT_STAMP:-}" ]; then
  MPPD_APT_STAMP=$(mktemp)
  export MPPD_APT_STAMP
  trap 'rm -f "$MPPD_APT_STAMP"' EXIT
fi

# apt_install PKG...: install the packages that are not installed yet,
# refreshing the package lists once per run of the setup when something is
# missing.
apt_install() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ ! -s "$MPPD_APT_STAMP" ]; then
    apt-get update -q
    echo updated >"$MPPD_APT_STAMP"
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}"
}
