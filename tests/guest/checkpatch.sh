#!/bin/sh
# The module's sources pass the kernel's checkpatch.pl --no-tree -f with
# no error and no warning.  Exit 77 (skip) if checkpatch.pl cannot be
# obtained.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
checkpatch=$("$top/scripts/guest-kernels.sh" checkpatch) || rc=$?
[ "$rc" = 0 ] || exit "$rc"
cd "$top/guest-virtio-tmem"
# checkpatch exits non-zero on any error or warning.
# shellcheck disable=SC2046
perl "$checkpatch" --no-tree -f --show-types $(ls ./*.c ./*.h) Kbuild Makefile
