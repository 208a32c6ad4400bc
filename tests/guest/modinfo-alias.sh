#!/bin/sh
# The built module binds the virtio-tmem device: its modalias is
# virtio:d00000038v* (device ID 56, any vendor), and its vermagic names
# the kernel it was built for.  Exit 77 (skip) if that kernel's packages
# cannot be obtained.
#
# Usage: tests/guest/modinfo-alias.sh [SERIES]   (default 6.12)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
out=$("$top/scripts/build-guest-module.sh" -v normal "${1:-6.12}") || rc=$?
[ "$rc" = 0 ] || exit "$rc"
ko=${out##* }
modinfo -F alias "$ko"
modinfo -F alias "$ko" | grep -qx 'virtio:d00000038v\*'
# "<series> <krel> normal <ko>": the module is for exactly that release.
krel=$(echo "$out" | cut -d' ' -f2)
modinfo -F vermagic "$ko"
modinfo -F vermagic "$ko" | grep -q "^$krel "
