#!/bin/sh
# Build virtio_tmem.ko against Debian's guest kernels, outside the source
# tree, with every compiler or modpost warning treated as an error.
#
# Usage: scripts/build-guest-module.sh [-v normal|test] [SERIES...]
#   SERIES   6.12 and/or 6.1 (default: both), fetched by guest-kernels.sh
#   -v       build only that variant (default: both); "test" is
#            `make VTMEM_TEST=1`, with the debugfs raw_request knob
#
# Prints one line per module built:
#   <series> <kernel release> <variant> <path of virtio_tmem.ko>
# The modules live in ${VTMEM_CACHE:-/var/cache/virtio-tmem}/build/<krel>/<variant>/.
#
# Exit status: 0 when every build succeeded, 77 when the kernel packages
# cannot be obtained (see guest-kernels.sh), 1 when a build failed.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VTMEM_CACHE:-/var/cache/virtio-tmem}

variants="normal test"
if [ "${1:-}" = -v ]; then
	[ $# -ge 2 ] || { echo "usage: $0 [-v normal|test] [SERIES...]" >&2; exit 1; }
	variants=$2
	shift 2
fi
[ $# -gt 0 ] || set -- 6.12 6.1

build_one() {
	series=$1 variant=$2
	rc=0
	kenv=$("$top/scripts/guest-kernels.sh" env "$series") || rc=$?
	[ "$rc" = 0 ] || exit "$rc"
	KREL='' KBUILD=''
	eval "$kenv"

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
	if ! make -C "$KBUILD" M="$dir/guest-virtio-tmem" KCFLAGS=-Werror \
		VTMEM_TEST=$test modules >"$log" 2>&1; then
		cat "$log" >&2
		echo "build-guest-module: $series $variant: build failed" >&2
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

for series in "$@"; do
	for variant in $variants; do
		case $variant in
		normal | test) ;;
		*) echo "build-guest-module: unknown variant $variant" >&2; exit 1 ;;
		esac
		build_one "$series" "$variant"
	done
done
