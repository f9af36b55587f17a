#!/usr/bin/env bash
# copyright.sh GO PACKAGE...: write the Debian machine-readable copyright
# file (DEP-5) for the binaries built from PACKAGE... to standard output:
# mppd's own stanza (LICENSE), then one stanza for each module compiled
# into them, Go's standard library included, with the module's own license
# text. Generated at build time so that it never falls behind go.mod.
set -euo pipefail
go=$1
shift

# indent: a DEP-5 text block (one leading space, " ." for an empty line).
indent() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /'; }

# license_name FILE: the SPDX-style short name of a license text.
license_name() {
  local f=$1
  if grep -q 'Apache License' "$f" && grep -q 'Version 2.0' "$f"; then echo Apache-2.0
  elif grep -q 'Permission is hereby granted, free of charge' "$f"; then echo Expat
  elif grep -q 'Neither the name' "$f"; then echo BSD-3-clause
  elif grep -q 'Redistributions in binary form' "$f"; then echo BSD-2-clause
  else echo "unknown license in $f" >&2; exit 1
  fi
}

# license_file DIR: the module's license file.
license_file() {
  local f
  for f in "$1"/LICENSE "$1"/LICENSE.txt "$1"/LICENSE.md "$1"/COPYING; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
  echo "no license file in $1" >&2
  exit 1
}

cat <<'HEAD'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: mppd
Comment: mppd and mpp are statically linked Go programs: the Files
 stanzas after the first name the Go modules compiled into them.

Files: *
Copyright: 2026 the mppd authors
License: Expat
HEAD
sed -n '/^Permission/,$p' LICENSE | indent

stanza() { # NAME DIR
  local name=$1 dir=$2 file lic
  file=$(license_file "$dir")
  lic=$(license_name "$file")
  echo
  echo "Files: $name/*"
  printf 'Copyright:'
  # The copyright lines of the license file, else its holder as named in it.
  { grep -i -E '^[[:space:]]*(portions )?copyright' "$file" | grep -v -i 'copyright notice\|copyright holder\|copyright owner\|copyright license' || echo "the $name authors"; } |
    sed -e 's/^[[:space:]]*//' -e 's/^[Cc]opyright\( (c)\| ©\)\?[[:space:]]*//' | sed -e 's/^/ /'
  echo "License: $lic"
  if [ "$lic" = Apache-2.0 ]; then
    echo " On Debian systems the full text of the Apache License 2.0 is in"
    echo " /usr/share/common-licenses/Apache-2.0."
  else
    indent <"$file"
  fi
}

stanza GOROOT "$("$go" env GOROOT)"
"$go" list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Dir}}{{end}}{{end}}' "$@" | sort -u |
  while read -r path dir; do
    stanza "$path" "$dir"
  done
