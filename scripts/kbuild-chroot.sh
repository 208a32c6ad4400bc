#!/bin/sh
# A minimal Debian chroot that holds the compiler a guest kernel's headers
# were built with, for hosts that lack it (Debian 12 has gcc-12; Linux 7.x
# from trixie-backports wants x86_64-linux-gnu-gcc-14 and pahole 1.30).
#
# Usage:
#   scripts/kbuild-chroot.sh path RELEASE COMPILER
#       create the chroot if needed (debootstrap from the machine's own
#       Debian archive, see scripts/lib/apt-archive.sh) and print its path
#   scripts/kbuild-chroot.sh run RELEASE COMPILER DIR... -- COMMAND...
#       run COMMAND in it, with each DIR bind-mounted at its own path, so
#       that absolute paths of the host (kernel headers, build dirs) are the
#       same inside; the mounts are undone on every exit
#
# RELEASE is a Debian codename (trixie); COMPILER the command the headers'
# CONFIG_CC_VERSION_TEXT names (x86_64-linux-gnu-gcc-14), whose package
# (gcc-14) is installed with make, binutils, pahole and what Kbuild runs.
# DIRs must not contain blanks.
# The chroot lives in ${VTMEM_CACHE:-/var/cache/virtio-tmem}/chroot/ and is
# made once (about 500 MB); debootstrap's time and the size are written to
# its .made file.
#
# Exit status: 0, 77 when the chroot cannot be made here (not root, no
# debootstrap, no archive entry or network), else the command's status.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VTMEM_CACHE:-/var/cache/virtio-tmem}
# shellcheck source=lib/apt-archive.sh
. "$top/scripts/lib/apt-archive.sh"

unavailable() {
	echo "kbuild-chroot: $*" >&2
	exit 77
}

die() {
	echo "kbuild-chroot: $*" >&2
	exit 1
}

# x86_64-linux-gnu-gcc-14 -> gcc-14, gcc-12 -> gcc-12
compiler_pkg() {
	echo "${1##*-linux-gnu-}"
}

make_chroot() {
	rel=$1 cc=$2
	pkg=$(compiler_pkg "$cc")
	dir=$CACHE/chroot/$rel-$pkg
	if [ -f "$dir/.made" ]; then
		echo "$dir"
		return 0
	fi
	[ "$(id -u)" = 0 ] || unavailable "making a $rel chroot for $cc" \
		"needs root (debootstrap)"
	command -v debootstrap >/dev/null 2>&1 ||
		unavailable "no debootstrap: apt-get install debootstrap" \
			"(scripts/install-deps.sh guest)"
	uri=$(debian_archive_uri) ||
		unavailable "no Debian archive entry in $APT_ETC"
	mkdir -p "$CACHE/chroot"
	exec 7>"$CACHE/chroot/.lock"
	flock 7
	if [ -f "$dir/.made" ]; then
		echo "$dir"
		return 0
	fi
	rm -rf "$dir" "$dir.tmp"
	echo "kbuild-chroot: debootstrap $rel with $pkg into $dir" >&2
	start=$(date +%s)
	# Kbuild of an out-of-tree module: the compiler, make, binutils,
	# pahole for BTF, libelf, and the tools the headers' Makefiles call.
	inc=$pkg,libc6-dev,make,binutils,dwarves,libelf-dev,bc,flex,bison
	inc=$inc,kmod,cpio,libssl-dev,xz-utils,zstd
	if ! debootstrap --variant=minbase --include="$inc" \
		--keyring="$APT_KEYRING" "$rel" "$dir.tmp" "$uri" \
		>"$CACHE/chroot/$rel-$pkg.log" 2>&1; then
		tail -n 20 "$CACHE/chroot/$rel-$pkg.log" >&2
		rm -rf "$dir.tmp"
		unavailable "debootstrap $rel failed (network? see above)"
	fi
	rm -rf "$dir.tmp/var/cache/apt/archives/"*.deb
	mv "$dir.tmp" "$dir"
	secs=$(($(date +%s) - start))
	size=$(du -sm "$dir" | cut -f1)
	echo "debootstrap $rel $pkg: ${secs}s, ${size} MB" >"$dir/.made"
	echo "kbuild-chroot: $(cat "$dir/.made")" >&2
	exec 7>&-
	echo "$dir"
}

# Mount points made by run_in, undone in reverse order by cleanup.
mounts=

cleanup() {
	for m in $mounts; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	mounts=
}

run_in() {
	rel=$1 cc=$2
	shift 2
	dir=$(make_chroot "$rel" "$cc")
	trap cleanup EXIT
	trap 'cleanup; exit 130' INT TERM HUP
	for m in proc dev; do
		mount --bind "/$m" "$dir/$m"
		mounts="$dir/$m $mounts"
	done
	# At the path as given and, through symlinks, where it really is:
	# paths written into the headers may name either.
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		for src in $(cd "$1" && pwd) $(cd "$1" && pwd -P); do
			case " $mounts " in *" $dir$src "*) continue ;; esac
			mkdir -p "$dir$src"
			mount --bind "$src" "$dir$src"
			mounts="$dir$src $mounts"
		done
		shift
	done
	[ $# -gt 1 ] || die "run: no command after --"
	shift
	rc=0
	chroot "$dir" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LC_ALL=C.UTF-8 "$@" || rc=$?
	cleanup
	return "$rc"
}

cmd=${1:-}
case $cmd in
path)
	[ $# = 3 ] || die "usage: $0 path RELEASE COMPILER"
	make_chroot "$2" "$3"
	;;
run)
	[ $# -ge 5 ] || die "usage: $0 run RELEASE COMPILER DIR... -- CMD..."
	shift
	run_in "$@"
	;;
*)
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
	[ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 1
	;;
esac
