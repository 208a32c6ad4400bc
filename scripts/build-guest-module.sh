#!/bin/sh
# Build virtio_tmem.ko against Debian's guest kernels, outside the source
# tree, with every compiler or modpost warning treated as an error.
#
# Usage: scripts/build-guest-module.sh [-v normal|test] [SERIES...]
#   SERIES   6.12, 6.1 and/or 7.3 (default: all three), fetched by
#            guest-kernels.sh
#   -v       build only that variant (default: both); "test" is
#            `make VTMEM_TEST=1`, with the debugfs raw_request knob
#
# The module is built with the compiler the headers name
# (CONFIG_CC_VERSION_TEXT): natively if this machine has it and a pahole at
# least as new as the kernel's (CONFIG_PAHOLE_VERSION, for BTF), else in a
# chroot of the release the kernel was built for, made by
# scripts/kbuild-chroot.sh (Linux 7.x on Debian 12: trixie with gcc-14).
# VTMEM_KBUILD=native|chroot forces one.
#
# Prints one line per module built:
#   <series> <kernel release> <variant> <path of virtio_tmem.ko>
# The modules live in ${VTMEM_CACHE:-/var/cache/virtio-tmem}/build/<krel>/<variant>/.
#
# Exit status: 0 when every build succeeded, 77 when the kernel packages or
# the build environment of a series cannot be obtained (see guest-kernels.sh
# and kbuild-chroot.sh; the other series are still built), 1 when a build
# failed.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VTMEM_CACHE:-/var/cache/virtio-tmem}

variants="normal test"
if [ "${1:-}" = -v ]; then
	[ $# -ge 2 ] || { echo "usage: $0 [-v normal|test] [SERIES...]" >&2; exit 1; }
	variants=$2
	shift 2
fi
[ $# -gt 0 ] || set -- 6.12 6.1 7.3

# pahole's version as the kernel's config writes it: v1.24 -> 124.
pahole_version() {
	command -v pahole >/dev/null 2>&1 || { echo 0; return; }
	pahole --version | sed -n 's/^v\([0-9]*\)\.\([0-9]*\).*/\1\2/p'
}

# native or chroot: does this machine have what the headers want?
kbuild_env() {
	if [ -n "${VTMEM_KBUILD:-}" ]; then
		echo "$VTMEM_KBUILD"
		return
	fi
	cfg=$KBUILD/.config
	if ! command -v "$KCC" >/dev/null 2>&1; then
		echo chroot
		return
	fi
	if grep -q '^CONFIG_DEBUG_INFO_BTF_MODULES=y' "$cfg"; then
		want=$(sed -n 's/^CONFIG_PAHOLE_VERSION=//p' "$cfg")
		if [ "$(pahole_version)" -lt "${want:-0}" ]; then
			echo chroot
			return
		fi
	fi
	echo native
}

build_one() {
	series=$1 variant=$2
	rc=0
	kenv=$("$top/scripts/guest-kernels.sh" env "$series") || rc=$?
	[ "$rc" = 0 ] || exit "$rc"
	KREL='' KBUILD='' KCC='' KROOT='' KDEBREL=''
	eval "$kenv"
	[ -n "$KCC" ] || { echo "build-guest-module: no compiler named" \
		"in $KBUILD/.config" >&2; exit 1; }
	how=$(kbuild_env)

	dir=$CACHE/build/$KREL/$variant
	mkdir -p "$dir"
	exec 8>"$dir/.lock"
	flock 8
	# Mirror the source layout: the module finds ../proto/virtio_tmem.h.
	rm -rf "$dir/guest-virtio-tmem" "$dir/proto"
	mkdir -p "$dir/guest-virtio-tmem" "$dir/proto"
	cp "$top"/guest-virtio-tmem/Kbuild "$top"/guest-virtio-tmem/Makefile \
		"$top"/guest-virtio-tmem/*.c "$top"/guest-virtio-tmem/*.h \
		"$dir/guest-virtio-tmem/"
	cp "$top/proto/virtio_tmem.h" "$dir/proto/"

	test=0
	[ "$variant" = normal ] || test=1
	log=$dir/build.log
	set -- make -C "$KBUILD" M="$dir/guest-virtio-tmem" KCFLAGS=-Werror \
		VTMEM_TEST=$test modules
	case $how in
	native) ;;
	chroot)
		chroot_rc=0
		"$top/scripts/kbuild-chroot.sh" path "$KDEBREL" "$KCC" \
			>/dev/null || chroot_rc=$?
		[ "$chroot_rc" = 0 ] || exit "$chroot_rc"
		set -- "$top/scripts/kbuild-chroot.sh" run "$KDEBREL" "$KCC" \
			"$KROOT" "$dir" -- "$@"
		;;
	*) echo "build-guest-module: VTMEM_KBUILD is native or chroot" >&2
		exit 1 ;;
	esac
	echo "$how $KCC" >"$dir/kbuild-env"
	if ! "$@" >"$log" 2>&1; then
		cat "$log" >&2
		echo "build-guest-module: $series $variant ($how," \
			"$KCC): build failed" >&2
		exit 1
	fi
	# KCFLAGS covers the compiler; modpost only warns.
	if grep -Ei '(^|[^a-z])(warning|error):' "$log" >&2; then
		echo "build-guest-module: $series $variant: warnings" >&2
		exit 1
	fi
	exec 8>&-
	echo "$series $KREL $variant $dir/guest-virtio-tmem/virtio_tmem.ko"
}

# A series that cannot be had does not stop the others from being built.
missing=
for series in "$@"; do
	for variant in $variants; do
		case $variant in
		normal | test) ;;
		*) echo "build-guest-module: unknown variant $variant" >&2; exit 1 ;;
		esac
		rc=0
		(build_one "$series" "$variant") || rc=$?
		[ "$rc" = 0 ] && continue
		[ "$rc" = 77 ] || exit "$rc"
		missing="$missing $series"
		break
	done
done
if [ -n "$missing" ]; then
	echo "build-guest-module: not built (unavailable):$missing" >&2
	exit 77
fi
