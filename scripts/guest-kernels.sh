#!/bin/sh
# Fetch Debian's guest kernels (image, modules, headers) for building and
# booting virtio_tmem.ko, without installing any of them on this machine.
#
# Usage:
#   scripts/guest-kernels.sh [fetch] [SERIES...]  fetch and unpack (default:
#                                               6.12 6.1 7.3), then print
#                                               `env` of each
#   scripts/guest-kernels.sh env SERIES         print shell assignments for
#                                               one kernel (fetching it if
#                                               needed); use with eval
#   scripts/guest-kernels.sh checkpatch [SERIES]  print the path of
#                                               checkpatch.pl (from
#                                               linux-source-SERIES, default
#                                               6.12; only scripts/ is
#                                               unpacked)
#
# SERIES and the Debian suites that serve it, best first:
#   6.1    bookworm                            6.1.0-N-amd64
#   6.12   bookworm-backports, trixie          6.12.N+deb12-amd64,
#          (trixie first on a trixie host)     6.12.N+deb13[.M]-amd64
#   7.2    sid, trixie-backports               7.2.N+deb14-amd64 (gcc-16),
#                                              7.2.N+deb13-amd64
#   7.N    trixie-backports, sid               7.3.N+deb13-amd64
# Each suite is reached through a private apt configuration under
# ${VTMEM_CACHE:-/var/cache/virtio-tmem}/apt/<suite>/ whose archive URI is
# copied from the machine's own entries (scripts/lib/apt-archive.sh): the
# host's apt sources are never changed.  The newest kernel a suite delivers
# in full is resolved at run time; without network, the newest complete copy
# in the cache is used.  Everything lives outside the source tree, in
#   ${VTMEM_CACHE:-/var/cache/virtio-tmem}/kernels/<KREL>/
# which holds the packages unpacked with dpkg-deb -x as one root.  Two
# layouts exist: up to 6.12, linux-image-KREL-unsigned with boot/vmlinuz-KREL
# and lib/modules/KREL (usr/lib/modules/KREL in trixie's merged /usr); from
# 7.0, linux-image-KREL is a metapackage over linux-binary[-unsigned]-KREL
# (usr/lib/modules/KREL/vmlinuz.unsigned), linux-modules-KREL and
# linux-base-KREL (config, System.map).  Headers, their -common tree and
# linux-kbuild come along in both.  Running it again is cheap.
#
# `env` prints, for example:
#   KSERIES=6.12                        the series asked for
#   KREL=6.12.117+deb12-amd64           uname -r of the guest kernel
#   KPKGVER=6.12.117-1~deb12u1          Debian package version
#   KSUITE=bookworm-backports           the suite it came from
#   KDEBREL=bookworm                    the release it was built for
#   KROOT=.../kernels/6.12.117+deb12-amd64/root
#   KIMAGE=$KROOT/boot/vmlinuz-$KREL    bzImage: qemu -kernel (7.x:
#                                       $KMODDIR/vmlinuz.unsigned)
#   KVMLINUX=.../vmlinux-$KREL          uncompressed ELF with the PVH note
#                                       (qemu -kernel boots it via PVH,
#                                       faster than the bzImage); empty if
#                                       it could not be extracted
#   KCONFIG=$KROOT/boot/config-$KREL    (7.x: $KMODDIR/config)
#   KMODDIR=$KROOT/lib/modules/$KREL    kernel/drivers/block/virtio_blk.ko.xz...
#                                       (usr/lib/modules on merged /usr)
#   KBUILD=$KROOT/usr/src/linux-headers-$KREL   make -C $KBUILD M=...
#   KCC=gcc-12                          the compiler the headers want
#                                       (CONFIG_CC_VERSION_TEXT)
#   KVIRTIO_MODS="..."                  virtio core modules to insmod, in this
#                                       order, before virtio_blk/virtio_tmem:
#                                       empty on 6.12 and 7.x (built in),
#                                       virtio_ring, virtio, virtio_pci* on 6.1
#
# Exit status: 0 on success, 77 when the packages cannot be obtained (no
# Debian entry in the machine's apt sources, no network, the suite does not
# carry the series), with a message saying how to get them, so that a test
# can pass it on as a skip; 1 on other errors.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${VTMEM_CACHE:-/var/cache/virtio-tmem}
KDIR_ROOT=$CACHE/kernels
# The headers' Makefiles get absolute paths under it (fixup): those of its
# real place, so that they hold where only that is mounted (kbuild-chroot)
# when kernels/ is a symbolic link into another cache.
[ ! -d "$KDIR_ROOT" ] || KDIR_ROOT=$(cd -P "$KDIR_ROOT" && pwd)
# shellcheck source=lib/apt-archive.sh
. "$top/scripts/lib/apt-archive.sh"

die() {
	echo "guest-kernels: $*" >&2
	exit 1
}

unavailable() {
	echo "guest-kernels: $*" >&2
	exit 77
}

# The suites that may carry a series, best first, for this host's release.
# Each is reached through a private apt configuration (apt-archive.sh), so
# the host's own sources stay as they are.
suites_for() {
	case $1 in
	6.1) echo bookworm ;;
	6.12)
		if [ "$(host_codename || true)" = bookworm ]; then
			echo bookworm-backports trixie
		else
			echo trixie bookworm-backports
		fi
		;;
	# sid's kernel is the 7.2 series (its compiler gcc-16, newer than
	# trixie's); trixie-backports has 7.2 and 7.3 built with gcc-14.
	7.2) echo sid trixie-backports ;;
	7.*) echo trixie-backports sid ;;
	*) die "unknown series '$1' (6.1, 6.12 or 7.N)" ;;
	esac
}

# A private apt configuration for one suite, updated at most once a day.
suite_apt() {
	d=$CACHE/apt/$1
	apt_extra_init "$d" "$1" || return 1
	echo "$d"
}

candidate() {
	apt_extra "$APTD" apt-cache policy "$1" 2>/dev/null |
		awk '/Candidate:/ { if ($2 != "(none)") print $2; exit }'
}

# Does the suite carry package $1 in exactly version $2?
has_version() {
	apt_extra "$APTD" apt-cache show "$1=$2" >/dev/null 2>&1
}

# The names matching $2 among the Depends of package $1 in version $3.
depends_on() {
	apt_extra "$APTD" apt-cache show "$1=$3" 2>/dev/null |
		sed -n '/^Depends:/{s/^Depends://; s/([^)]*)//g; s/,/\n/g; p; q}' |
		sed 's/^ *//; s/ .*//' | grep -E "^$2\$"
}

# The packages that make up a kernel image, modules included:
#   before 7.0  linux-image-ABI-amd64-unsigned (boot/, lib/modules/)
#   7.0 and on  linux-image-ABI-amd64 is a metapackage over linux-base-,
#               linux-modules- and linux-binary[-unsigned]- (usr/lib/modules/)
image_pkgs() {
	abi=$1 ver=$2
	if has_version "linux-image-$abi-amd64-unsigned" "$ver"; then
		echo "linux-image-$abi-amd64-unsigned"
		return 0
	fi
	deps=$(depends_on "linux-image-$abi-amd64" 'linux-(base|modules|binary)-.*' \
		"$ver") || return 1
	for p in $deps; do
		case $p in
		linux-binary-"$abi"-amd64)
			u=linux-binary-unsigned-$abi-amd64
			if has_version "$u" "$ver"; then echo "$u"; else echo "$p"; fi
			;;
		*) echo "$p" ;;
		esac
	done
}

# Headers, their -common tree and the linux-kbuild package they use.
header_pkgs() {
	abi=$1 ver=$2
	echo "linux-headers-$abi-amd64"
	depends_on "linux-headers-$abi-amd64" \
		'linux-(headers-.*-common|kbuild-.*)' "$ver"
}

# Print "ABI VERSION PACKAGE..." of the newest kernel of a series that the
# suite behind $APTD delivers in full, e.g. "6.12.117+deb12
# 6.12.117-1~deb12u1 linux-image-6.12.117+deb12-amd64-unsigned ...".
# Release names: 6.1.0-N, 6.12.N+deb12, 6.12.N+deb13, 6.12.N+deb13.1,
# 7.3.N+deb13.
resolve() {
	esc=$(echo "$1" | sed 's/\./\\./g')
	re="^linux-image-($esc\\.[0-9]+\\+deb[0-9]+(\\.[0-9]+)?|$esc\\.0-[0-9]+)-amd64\$"
	apt_extra "$APTD" apt-cache pkgnames "linux-image-$1." 2>/dev/null |
		sed -En "s/$re/\\1/p" | sort -Vr |
	while read -r abi; do
		ver=$(candidate "linux-headers-$abi-amd64")
		[ -n "$ver" ] || continue
		pkgs=$(image_pkgs "$abi" "$ver") || continue
		hdrs=$(header_pkgs "$abi" "$ver") || continue
		[ "$(echo "$hdrs" | wc -l)" = 3 ] || continue
		for p in $pkgs $hdrs; do
			has_version "$p" "$ver" || continue 2
		done
		# shellcheck disable=SC2086 # package names, one a word
		echo "$abi $ver" $pkgs $hdrs
		break
	done
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
# payload is a compressed ELF (zstd on Debian 6.12 and 7.x, xz on 6.1);
# find a magic, decompress from there, keep the result if it is ELF.
extract_vmlinux() {
	image=$1 out=$2
	try_decompress '\050\265\057\375' zstd "$image" "$out" ||
		try_decompress '\375\067\172\130\132\000' xz "$image" "$out" ||
		try_decompress '\037\213\010' gzip "$image" "$out" ||
		echo "guest-kernels: no vmlinux extracted from $image" \
			"(zstd or xz missing?); booting the bzImage" >&2
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

how_to_get() {
	echo "no $1 kernel: none of the suites $(suites_for "$1") has it" \
		"complete, or apt-get update failed there (network?), and" \
		"none is cached; run 'scripts/guest-kernels.sh fetch $1' as" \
		"root on a machine with Debian's archive in its apt sources," \
		"or copy a complete $KDIR_ROOT/<release>/ here"
}

fetch_one() {
	series=$1
	res='' suite=''
	for s in $(suites_for "$series"); do
		APTD=$(suite_apt "$s") || continue
		res=$(resolve "$series")
		suite=$s
		[ -z "$res" ] || break
	done
	if [ -z "$res" ]; then
		krel=$(cached "$series") || unavailable "$(how_to_get "$series")"
		echo "$krel"
		return 0
	fi
	# shellcheck disable=SC2086 # ABI VERSION PACKAGE..., one a word
	set -- $res
	abi=$1 ver=$2
	shift 2
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
	want=$#
	pins=$(for p in "$@"; do echo "$p=$ver"; done)
	# apt's sandbox user cannot write into a root-only cache; it only
	# warns and downloads as root, so silence that one warning.
	# shellcheck disable=SC2086 # one package=version per word
	(cd "$dir/debs" && apt_extra "$APTD" apt-get download -q $pins 2>&1 |
		grep -v 'unsandboxed as root' >&2) || true
	n=$(ls "$dir"/debs/*.deb 2>/dev/null | wc -l)
	if [ "$n" != "$want" ]; then
		rm -rf "$dir"
		unavailable "apt-get download of the $series kernel $ver" \
			"from $suite failed"
	fi
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$dir/root"
	done
	fixup "$dir/root" "$krel"
	extract_vmlinux "$(find_image "$dir/root" "$krel")" "$dir/vmlinux-$krel"
	rm -rf "$dir/debs"
	printf '%s\n' "$ver" >"$dir/version"
	printf '%s\n' "$suite" >"$dir/suite"
	touch "$dir/complete"
	exec 9>&-
	echo "$krel"
}

# Modules live in lib/modules (bookworm) or usr/lib/modules (merged /usr:
# trixie, 7.x); the kernel in boot/ or next to the modules.
find_moddir() {
	for d in "$1/usr/lib/modules/$2" "$1/lib/modules/$2"; do
		[ ! -d "$d/kernel" ] || { echo "$d"; return 0; }
	done
	return 1
}

find_image() {
	m=$(find_moddir "$1" "$2") || m=$1/none
	for f in "$1/boot/vmlinuz-$2" "$m/vmlinuz.unsigned" "$m/vmlinuz"; do
		[ ! -f "$f" ] || { echo "$f"; return 0; }
	done
	return 1
}

find_config() {
	m=$(find_moddir "$1" "$2") || m=$1/none
	for f in "$1/boot/config-$2" "$m/config"; do
		[ ! -f "$f" ] || { echo "$f"; return 0; }
	done
	return 1
}

# The packages expect to live at /: repoint absolute paths into the copy.
# The headers' Makefile includes the -common tree's Makefile, and since 7.0
# also sets KBUILD_OUTPUT, both by absolute path.
fixup() {
	root=$1 krel=$2
	hdr=$root/usr/src/linux-headers-$krel
	mod=$(find_moddir "$root" "$krel") ||
		die "no modules of $krel in $root"
	[ -f "$hdr/Makefile" ] || die "no headers of $krel in $root"
	find_image "$root" "$krel" >/dev/null || die "no kernel image in $root"
	sed -Ei "s#^(include |KBUILD_OUTPUT *:?= *)/usr/src/#\\1$root/usr/src/#" \
		"$hdr/Makefile"
	if grep -Eq '(^|[ =])/usr/src/' "$hdr/Makefile"; then
		die "cannot repoint $hdr/Makefile into $root"
	fi
	grep -q "^include $root/usr/src/linux-headers-.*-common/Makefile" \
		"$hdr/Makefile" || die "unexpected headers Makefile in $hdr"
	common=$(sed -n "s#^include $root/usr/src/\\([^/]*\\)/Makefile#\\1#p" \
		"$hdr/Makefile")
	[ -d "$root/usr/src/$common" ] || die "no $common in $root"
	# build and source as the packages' postinst or own links make them,
	# relative so that they resolve inside the copy.
	up=../../..
	case $mod in "$root"/usr/*) up=../../../.. ;; esac
	[ -e "$mod/build/Makefile" ] ||
		ln -sfn "$up/usr/src/linux-headers-$krel" "$mod/build"
	[ -e "$mod/source/Makefile" ] ||
		ln -sfn "$up/usr/src/$common" "$mod/source"
	[ -e "$mod/build/Makefile" ] || die "cannot link $mod/build"
}

# The compiler the headers want: the first word of CONFIG_CC_VERSION_TEXT,
# e.g. gcc-12 (bookworm) or x86_64-linux-gnu-gcc-14 (trixie, 7.x).
kernel_cc() {
	sed -n 's/^CONFIG_CC_VERSION_TEXT="\([^ "]*\).*/\1/p' "$1/.config"
}

print_env() {
	series=$1 krel=$2
	dir=$KDIR_ROOT/$krel
	root=$dir/root
	moddir=$(find_moddir "$root" "$krel")
	vmlinux=
	[ ! -f "$dir/vmlinux-$krel" ] || vmlinux=$dir/vmlinux-$krel
	mods=
	for m in virtio_ring virtio virtio_pci_legacy_dev \
		virtio_pci_modern_dev virtio_pci; do
		f=$(find "$moddir/kernel/drivers/virtio" \
			-name "$m.ko*" 2>/dev/null | head -n 1)
		[ -z "$f" ] || mods="$mods${mods:+ }$f"
	done
	suite=$(cat "$dir/suite" 2>/dev/null || echo unknown)
	kbuild=$root/usr/src/linux-headers-$krel
	cat <<EOT
KSERIES=$series
KREL=$krel
KPKGVER=$(cat "$dir/version")
KSUITE=$suite
KDEBREL=${suite%-backports}
KROOT=$root
KIMAGE=$(find_image "$root" "$krel")
KVMLINUX=$vmlinux
KCONFIG=$(find_config "$root" "$krel")
KMODDIR=$moddir
KBUILD=$kbuild
KCC=$(kernel_cc "$kbuild")
KVIRTIO_MODS="$mods"
EOT
}

# checkpatch.pl is not in the headers or kbuild packages: take scripts/
# from the series' kernel source package, and keep only what checkpatch
# reads.
checkpatch() {
	series=$1
	dir=$CACHE/checkpatch-$series
	if [ -x "$dir/scripts/checkpatch.pl" ]; then
		echo "$dir/scripts/checkpatch.pl"
		return 0
	fi
	pkg=linux-source-$series
	ver=
	for s in $(suites_for "$series"); do
		APTD=$(suite_apt "$s") || continue
		ver=$(candidate "$pkg")
		[ -z "$ver" ] || break
	done
	[ -n "$ver" ] || unavailable "no suite of $(suites_for "$series")" \
		"has $pkg (or apt-get update failed there)"
	mkdir -p "$CACHE"
	exec 9>"$CACHE/.checkpatch.lock"
	flock 9
	tmp=$CACHE/checkpatch-$series.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp/root"
	(cd "$tmp" && apt_extra "$APTD" apt-get download -q "$pkg=$ver" 2>&1 |
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
	[ $# = 2 ] || die "usage: $0 env SERIES"
	krel=$(fetch_one "$2")
	print_env "$2" "$krel"
	;;
checkpatch)
	checkpatch "${2:-6.12}"
	;;
fetch | [0-9]*)
	[ $# = 0 ] || [ "$cmd" != fetch ] || shift
	[ $# -gt 0 ] || set -- 6.12 6.1 7.3
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
