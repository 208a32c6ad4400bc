#!/bin/sh
# The virtio-tmem-dkms package builds (scripts/build-deb.sh), is lintian
# clean (--pedantic, no tag at all), and ships what the guest needs: the
# DKMS tree exactly as `make dkms-src` makes it (the module's own dkms.conf
# among it), the udev rule, the unit, its helper, the configuration as a
# conffile and the modules-load.d entry.  Exit 77 (skip) without the
# packaging tools.  Its behaviour in a guest: tests/vm/debian-guest.py.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
rc=0
deb=$("$top/scripts/build-deb.sh" --lintian) || rc=$?
[ "$rc" = 0 ] || exit "$rc"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"
ver=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/guest-virtio-tmem/dkms.conf")

make -s -C "$top/guest-virtio-tmem" dkms-src DKMS_SRC="$tmp/want" >/dev/null
diff -r "$tmp/want" "$tmp/root/usr/src/virtio_tmem-$ver" ||
	fail "the package's DKMS tree differs from make dkms-src's"

# The unit and the rule are where this release's debhelper puts them:
# lib/ on Debian 12, usr/lib/ on Debian 13; in one of the two, not both.
lib=
for d in lib usr/lib; do
	[ -e "$tmp/root/$d/systemd/system/vtmem-swap@.service" ] || continue
	[ -z "$lib" ] || fail "the unit is in both lib/ and usr/lib/"
	lib=$d
done
[ -n "$lib" ] || fail "no vtmem-swap@.service in lib/ or usr/lib/systemd/system"
[ -e "$tmp/root/$lib/udev/rules.d/60-virtio-tmem.rules" ] ||
	fail "no 60-virtio-tmem.rules beside the unit, in $lib/udev/rules.d"

for f in $lib/udev/rules.d/60-virtio-tmem.rules \
	$lib/systemd/system/vtmem-swap@.service \
	usr/lib/modules-load.d/virtio-tmem.conf \
	etc/default/virtio-tmem; do
	cmp "$tmp/root/$f" "$top/guest-virtio-tmem/boot/$(basename "$f" |
		sed -e 's/^virtio-tmem\.conf$/modules-load.conf/' \
		    -e 's/^virtio-tmem$/virtio-tmem.default/')" ||
		fail "$f is not guest-virtio-tmem/boot's"
done
[ -x "$tmp/root/usr/libexec/virtio-tmem/vtmem-swap" ] || fail "no vtmem-swap helper"
grep -qx /etc/default/virtio-tmem "$tmp/control/conffiles" ||
	fail "/etc/default/virtio-tmem is not a conffile"
grep -q 'common.postinst' "$tmp/control/postinst" ||
	fail "postinst does not register the module with DKMS"
dpkg-deb -f "$deb" Depends | grep -q dkms || fail "the package does not depend on dkms"
# The unit's ExecStart must name the helper where the package puts it.
grep -q '^ExecStart=/usr/libexec/virtio-tmem/vtmem-swap start %i$' \
	"$tmp/root/$lib/systemd/system/vtmem-swap@.service" || fail "unit's ExecStart"
echo "ok: $deb"
