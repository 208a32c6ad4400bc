#!/bin/sh
# `make dkms-install`'s tree builds with DKMS against Debian's 6.12 headers:
# the same copy of guest-virtio-tmem/ and proto/virtio_tmem.h that the
# Makefile puts in /usr/src, registered, built for that kernel, then
# removed again.  Exit 77 (skip) without root, dkms or the kernel packages.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] || { echo "SKIP: dkms needs root"; exit 77; }
command -v dkms >/dev/null || { echo "SKIP: dkms is not installed"; exit 77; }
rc=0
env=$("$top/scripts/guest-kernels.sh" env 6.12) || rc=$?
[ "$rc" = 0 ] || exit "$rc"
eval "$env"

ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/guest-virtio-tmem/dkms.conf")
src=/usr/src/virtio_tmem-$ver
cleanup() {
	dkms remove "virtio_tmem/$ver" --all >/dev/null 2>&1 || true
	rm -rf "$src"
}
cleanup
trap cleanup EXIT

# The file list of the Makefile's dkms-install target, without its
# `dkms install` (which would build for the running kernel).
(cd "$top/guest-virtio-tmem" &&
	make -s -n dkms-install DKMS_SRC="$src" | grep -v '^dkms ' | sh -e)
dkms add "virtio_tmem/$ver"
dkms build "virtio_tmem/$ver" -k "$KREL" --kernelsourcedir "$KBUILD"
ko=$(find "/var/lib/dkms/virtio_tmem/$ver/$KREL" -name 'virtio_tmem.ko*' | head -n 1)
[ -n "$ko" ] || { echo "FAIL: dkms built no virtio_tmem.ko"; exit 1; }
modinfo -F alias "$ko" | grep -qx 'virtio:d00000038v\*'
echo "dkms built $ko for $KREL"
