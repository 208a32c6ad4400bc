#!/bin/sh
# The built module binds the virtio-tmem device: its modalias is
# virtio:d00000038v* (device ID 56, any vendor).  Exit 77 (skip) if the
# 6.12 kernel packages cannot be obtained.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
out=$("$top/scripts/build-guest-module.sh" -v normal 6.12) || rc=$?
[ "$rc" = 0 ] || exit "$rc"
ko=${out##* }
modinfo -F alias "$ko"
modinfo -F alias "$ko" | grep -qx 'virtio:d00000038v\*'
