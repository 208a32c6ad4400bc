#!/bin/sh
# Fetch Debian's guest kernels (image, modules, headers) for building and
# booting virtio_tmem.ko, without installing any of them on this machine.
#
# Usage:
#   scripts/guest-kernels.sh [fetch] [SERIES...]  fetch and unpack (default:
#                                               6.12 6.1), then print `env`
#                                               of each
#   scripts/guest-kernels.sh env SERIES         print shell assignments for
#                                               one kernel (fetching it if
#                                               needed); use with eval
#   scripts/guest-kernels.sh checkpatch         print the path of checkpatch.pl
#                                               (from linux-source-6.12, only
#                                               scripts/ is unpacked)
#
# SERIES is 6.12 (bookworm-backports, 6.12.N+deb12-amd64) or 6.1 (bookworm,
# 6.1.0-N-amd64).  The newest version apt knows about is resolved at run
# time; with no usable apt lists, the newest complete copy in the cache is
# used.  Everything lives outside the source tree, in
#   ${VTMEM_CACHE:-/var/cache/virtio-tmem}/kernels/<KREL>/
# which holds the four packages unpacked with dpkg-deb -x as one root
# (boot/, lib/modules/, usr/src/, usr/lib/).  Running it again is cheap.
#
# `env` prints, for example:
#   KSERIES=6.12                        the series asked for
#   KREL=6.12.117+deb12-amd64           uname -r of the guest kernel
#   KPKGVER=6.12.117-1~deb12u1          Debian package version
#   KROOT=.../kernels/6.12.117+deb12-amd64/root
#   KIMAGE=$KROOT/boot/vmlinuz-$KREL    bzImage: qemu -kernel
#   KVMLINUX=.../vmlinux-$KREL          uncompressed ELF with the PVH note
#                                       (qemu -kernel boots it via PVH,
#                                       faster than the bzImage); empty if
#                                       it could not be extracted
#   KCONFIG=$KROOT/boot/config-$KREL
#   KMODDIR=$KROOT/lib/modules/$KREL    kernel/drivers/block/virtio_blk.ko.xz...
#   KBUILD=$KROOT/usr/src/linux-headers-$KREL   make -C $KBUILD M=...
#   KVIRTIO_MODS="..."                  virtio core modules to insmod, in this
#                                       order, before virtio_blk/virtio_tmem:
#                                       empty on 6.12 (built in), virtio_ring,
#                                       virtio, virtio_pci* on 6.1
#
# Exit status: 0 on success, 77 when the packages cannot be obtained (no
# apt source that carries them, no network, not root for apt-get update), so
# that a test can pass it on as a skip; 1 on other errors.
set -eu

CACHE=${VTMEM_CACHE:-/var/cache/virtio-tmem}
KDIR_ROOT=$CACHE/kernels

die() {
	echo "guest-kernels: $*" >&2
	exit 1
}

unavailable() {
	echo "guest-kernels: $*" >&2
	exit 77
}

# apt-cache needs package lists; fetch them once if this machine has none.
ensure_apt_lists() {
	if ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1; then
		return 0
	fi
	[ "$(id -u)" = 0 ] || return 1
	apt-get update -q >&2 || return 1
}

candidate() {
	apt-cache policy "$1" 2>/dev/null |
		awk '/Candidate:/ { if ($2 != "(none)") print $2; exit }'
}

# Does apt know package $1 in exactly version $2?
has_version() {
	apt-cache show "$1=$2" >/dev/null 2>&1
}

# Print "ABI VERSION" of the newest kernel of a series that apt can deliver
# in full, e.g. "6.12.117+deb12 6.12.117-1~deb12u1".
resolve() {
	case $1 in
	6.12) re='^linux-image-(6\.12\.[0-9]+\+deb12)-amd64-unsigned$' ;;
	6.1) re='^linux-image-(6\.1\.0-[0-9]+)-amd64-unsigned$' ;;
	*) die "unknown series '$1' (6.12 or 6.1)" ;;
	esac
	apt-cache pkgnames linux-image-"$1". 2>/dev/null |
		sed -En "s/$re/\\1/p" | sort -Vr |
	while read -r abi; do
		ver=$(candidate "linux-image-$abi-amd64-unsigned")
		[ -n "$ver" ] || continue
		kbuild=$(kbuild_pkg "$abi" "$ver") || continue
		for p in "linux-headers-$abi-amd64" "linux-headers-$abi-common" \
			"$kbuild"; do
			has_version "$p" "$ver" || continue 2
		done
		echo "$abi $ver"
		break
	done
}

# The linux-kbuild package the headers depend on: linux-kbuild-6.1 on
# bookworm, linux-kbuild-6.12.N+deb12 on bookworm-backports.
kbuild_pkg() {
	apt-cache show "linux-headers-$1-amd64=$2" 2>/dev/null |
		sed -n 's/^Depends:.*\(linux-kbuild-[^ ,]*\).*/\1/p' | head -n 1 |
		grep .
}

# Newest complete unpacked kernel of a series, for use without apt.
cached() {
	for d in $(ls -d "$KDIR_ROOT/$1".*-amd64 2>/dev/null | sort -Vr); do
		[ -f "$d/complete" ] || continue
		basename "$d"
		return 0
	done
	return 1
}

# bzImage -> vmlinux, as the kernel's scripts/extract-vmlinux does: the
# payload is a compressed ELF (zstd on Debian 6.12, xz on 6.1); find a
# magic, decompress from there, keep the result if it is ELF.
extract_vmlinux() {
	image=$1 out=$2
	try_decompress '\050\265\057\375' zstd "$image" "$out" ||
		try_decompress '\375\067\172\130\132\000' xz "$image" "$out" ||
		try_decompress '\037\213\010' gzip "$image" "$out" ||
		true
}

try_decompress() {
	magic=$1 tool=$2 image=$3 out=$4
	command -v "$tool" >/dev/null 2>&1 || return 1
	# shellcheck disable=SC2059 # $magic is an octal escape sequence
	for off in $(LC_ALL=C grep -abo "$(printf "$magic")" "$image" |
		cut -d: -f1); do
		tail -c +"$((off + 1))" "$image" | "$tool" -dcq 2>/dev/null \
			>"$out.tmp" || true
		if [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" = \
			'177ELF' ]; then
			mv "$out.tmp" "$out"
			return 0
		fi
	done
	rm -f "$out.tmp"
	return 1
}

fetch_one() {
	series=$1
	have_lists=1
	ensure_apt_lists || have_lists=0
	res=
	[ "$have_lists" = 0 ] || res=$(resolve "$series")
	if [ -z "$res" ]; then
		krel=$(cached "$series") ||
			unavailable "no $series kernel: apt knows none (is" \
				"bookworm-backports configured? see" \
				"scripts/install-deps.sh) and none is cached"
		echo "$krel"
		return 0
	fi
	abi=${res% *} ver=${res#* }
	krel=$abi-amd64
	dir=$KDIR_ROOT/$krel
	if [ -f "$dir/complete" ]; then
		echo "$krel"
		return 0
	fi

	mkdir -p "$KDIR_ROOT"
	exec 9>"$KDIR_ROOT/.lock"
	flock 9
	if [ -f "$dir/complete" ]; then
		exec 9>&-
		echo "$krel"
		return 0
	fi
	rm -rf "$dir"
	mkdir -p "$dir/debs" "$dir/root"
	kbuild=$(kbuild_pkg "$abi" "$ver")
	# apt's sandbox user cannot write into a root-only cache; it only
	# warns and downloads as root, so silence that one warning.
	(cd "$dir/debs" && apt-get download -q \
		"linux-image-$abi-amd64-unsigned=$ver" \
		"linux-headers-$abi-amd64=$ver" \
		"linux-headers-$abi-common=$ver" \
		"$kbuild=$ver" 2>&1 | grep -v 'unsandboxed as root' >&2) ||
		true
	n=$(ls "$dir"/debs/*.deb 2>/dev/null | wc -l)
	if [ "$n" != 4 ]; then
		rm -rf "$dir"
		unavailable "apt-get download of the $series kernel $ver failed"
	fi
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$dir/root"
	done
	fixup "$dir/root" "$krel" "$abi"
	extract_vmlinux "$dir/root/boot/vmlinuz-$krel" "$dir/vmlinux-$krel"
	rm -rf "$dir/debs"
	printf '%s\n' "$ver" >"$dir/version"
	touch "$dir/complete"
	exec 9>&-
	echo "$krel"
}

# The packages expect to live at /: repoint absolute paths into the copy.
fixup() {
	root=$1 krel=$2 abi=$3
	hdr=$root/usr/src/linux-headers-$krel
	common=$root/usr/src/linux-headers-$abi-common
	if [ ! -f "$hdr/Makefile" ] || [ ! -d "$common" ]; then
		die "unexpected package layout in $root"
	fi
	sed -i "s|^include /usr/src/linux-headers-$abi-common/|include $common/|" \
		"$hdr/Makefile"
	grep -q "^include $common/Makefile" "$hdr/Makefile" ||
		die "cannot repoint $hdr/Makefile at $common"
	mod=$root/lib/modules/$krel
	ln -sfn "../../../usr/src/linux-headers-$krel" "$mod/build"
	ln -sfn "../../../usr/src/linux-headers-$abi-common" "$mod/source"
}

print_env() {
	series=$1 krel=$2
	dir=$KDIR_ROOT/$krel
	root=$dir/root
	vmlinux=
	[ ! -f "$dir/vmlinux-$krel" ] || vmlinux=$dir/vmlinux-$krel
	mods=
	for m in virtio_ring virtio virtio_pci_legacy_dev \
		virtio_pci_modern_dev virtio_pci; do
		f=$(find "$root/lib/modules/$krel/kernel/drivers/virtio" \
			-name "$m.ko*" 2>/dev/null | head -n 1)
		[ -z "$f" ] || mods="$mods${mods:+ }$f"
	done
	cat <<EOT
KSERIES=$series
KREL=$krel
KPKGVER=$(cat "$dir/version")
KROOT=$root
KIMAGE=$root/boot/vmlinuz-$krel
KVMLINUX=$vmlinux
KCONFIG=$root/boot/config-$krel
KMODDIR=$root/lib/modules/$krel
KBUILD=$root/usr/src/linux-headers-$krel
KVIRTIO_MODS="$mods"
EOT
}

# checkpatch.pl is not in the headers or kbuild packages: take scripts/
# from the kernel source package, and keep only what checkpatch reads.
checkpatch() {
	dir=$CACHE/checkpatch
	if [ -x "$dir/scripts/checkpatch.pl" ]; then
		echo "$dir/scripts/checkpatch.pl"
		return 0
	fi
	ensure_apt_lists || unavailable "no apt lists, cannot fetch checkpatch"
	pkg=linux-source-6.12
	ver=$(candidate "$pkg")
	[ -n "$ver" ] || unavailable "apt knows no $pkg"
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.checkpatch.lock"
	flock 9
	tmp=$CACHE/checkpatch.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp/root"
	(cd "$tmp" && apt-get download -q "$pkg=$ver" 2>&1 |
		grep -v 'unsandboxed as root' >&2) || true
	ls "$tmp"/*.deb >/dev/null 2>&1 ||
		unavailable "apt-get download $pkg failed"
	dpkg-deb -x "$tmp"/*.deb "$tmp/root"
	tarball=$(ls "$tmp"/root/usr/src/linux-source-*.tar.* | head -n 1)
	mkdir -p "$tmp/out"
	tar -xf "$tarball" -C "$tmp/out" --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' \
		'*/scripts/const_structs.checkpatch'
	rm -rf "$dir"
	mv "$tmp/out" "$dir"
	rm -rf "$tmp"
	exec 9>&-
	echo "$dir/scripts/checkpatch.pl"
}

cmd=${1:-fetch}
case $cmd in
env)
	[ $# = 2 ] || die "usage: $0 env 6.12|6.1"
	krel=$(fetch_one "$2")
	print_env "$2" "$krel"
	;;
checkpatch)
	checkpatch
	;;
fetch | 6.*)
	[ $# = 0 ] || [ "$cmd" != fetch ] || shift
	[ $# -gt 0 ] || set -- 6.12 6.1
	for s in "$@"; do
		krel=$(fetch_one "$s")
		print_env "$s" "$krel"
		echo
	done
	;;
-h | --help | help)
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
	;;
*)
	die "unknown command '$cmd' (see $0 --help)"
	;;
esac
