#!/bin/sh
# The module's sources pass the checkpatch.pl --no-tree -f of one kernel
# series (default 6.12) with no error and no warning.  Exit 77 (skip) if
# that checkpatch.pl cannot be obtained.
#
# Usage: tests/guest/checkpatch.sh [SERIES]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
checkpatch=$("$top/scripts/guest-kernels.sh" checkpatch "${1:-6.12}") ||
	rc=$?
[ "$rc" = 0 ] || exit "$rc"
cd "$top/guest-virtio-tmem"
# checkpatch exits non-zero on any error or warning.
# shellcheck disable=SC2046
perl "$checkpatch" --no-tree -f --show-types $(ls ./*.c ./*.h) Kbuild Makefile
