#!/bin/sh
# changelog.sh VERSION MAINTAINER: the Debian changelog of a package built
# from this tree (one entry naming the commit), for
# /usr/share/doc/mppd/changelog.Debian.gz. The history itself is git's.
set -eu
version=$1
maintainer=$2
git() { command git -c safe.directory="$(pwd)" "$@"; }
commit=$(git rev-parse HEAD)
when=$(LC_ALL=C TZ=UTC git log -1 --date=rfc2822 --format=%cd HEAD)
cat <<CHANGELOG
mppd ($version) unstable; urgency=medium

  * Package built from git commit $commit.

 -- $maintainer  $when
CHANGELOG
