#!/bin/sh
# version.sh: the package version, from git, valid for both dpkg and rpm
# (digits first; only letters, digits and . + ~; no hyphen, which both use
# to separate the release).
#   on a tag vX.Y.Z               X.Y.Z
#   N commits after vX.Y.Z        X.Y.Z+git<date>.<hash>  (sorts after X.Y.Z)
#   no tag yet                    0.0~git<date>.<hash>    (sorts before 0.0)
# <date> is the commit's date (UTC, YYYYMMDD), so that versions of later
# commits sort later; <hash> names the commit.
set -eu
git() { command git -c safe.directory="$(pwd)" "$@"; }

hash=$(git rev-parse --short=8 HEAD)
date=$(TZ=UTC git log -1 --date=format-local:%Y%m%d --format=%cd HEAD)
if tag=$(git describe --tags --abbrev=0 --match 'v[0-9]*' HEAD 2>/dev/null); then
	base=${tag#v}
	if [ "$(git rev-list --count "$tag..HEAD")" -eq 0 ]; then
		echo "$base"
	else
		echo "$base+git$date.$hash"
	fi
else
	echo "0.0~git$date.$hash"
fi
