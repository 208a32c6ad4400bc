#!/bin/sh
# Install, through apt, everything the project needs on a Debian 12
# (bookworm) or Debian 13 (trixie) machine.  Run as root.
#
# Usage: scripts/install-deps.sh [base|qemu|guest|libvirt|all]   (default: all)
# (all adds Ceph: librados-dev, ceph-mon, ceph-osd, for the RADOS tier)
#
# The host's apt configuration is never changed.  What the host's own
# suites lack comes through a private apt configuration under
# ${VTMEM_CACHE:-/var/cache/virtio-tmem}/apt/ (scripts/lib/apt-archive.sh)
# whose URI is copied from the machine's own Debian entry, deb822
# (debian.sources) or one-line (sources.list), so no mirror is named here:
#   bookworm  meson >= 1.5 and python3-pycotap from bookworm-backports,
#             downloaded there and installed as local packages
#   trixie    everything from its own suites (meson 1.7)
# QEMU's source package (trixie for 10.0, sid for 10.2) and the guest
# kernels are fetched by
# scripts/build-qemu.sh and scripts/guest-kernels.sh the same way.
#
# A second run installs nothing and takes about a second: each
# package is checked with dpkg-query first, and apt-get update runs only
# when something is missing and the host's lists are older than a day.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib/apt-archive.sh"

what=${1:-all}
cache=${VTMEM_CACHE:-/var/cache/virtio-tmem}

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

case $what in
base | qemu | guest | libvirt | all) ;;
*) die "unknown set '$what' (base, qemu, guest, libvirt or all)" ;;
esac
[ "$(id -u)" = 0 ] || die "must run as root (apt-get install)"

rel=$(host_codename) || die "cannot tell this machine's Debian release"
case $rel in
bookworm | trixie) ;;
*) log "warning: Debian '$rel' is untested (12 bookworm, 13 trixie are)" ;;
esac

installed() {
	dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null |
		grep -q '^install ok installed'
}

# One dpkg-query for the whole list keeps a second run quick.
missing() {
	ok=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null |
		awk '/ install ok installed$/ { sub(/:.*/, "", $1); print $1 }')
	for p in "$@"; do
		printf '%s\n' "$ok" | grep -qxF "$p" || echo "$p"
	done
}

# apt-get update for the host's own suites, at most once a day and only
# when something has to be installed (a fresh debootstrap has no lists).
updated=0
host_update() {
	[ "$updated" = 0 ] || return 0
	updated=1
	if ls /var/lib/apt/lists/*_Packages* >/dev/null 2>&1 &&
		[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' \
			-mmin +1440 2>/dev/null | head -n 1)" ]; then
		return 0
	fi
	apt-get update -q
}

install() {
	pkgs=$(missing "$@")
	[ -n "$pkgs" ] || return 0
	host_update
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends $pkgs
}

# Is package $1 known to the host's apt?
available() {
	apt-cache show "$1" 2>/dev/null | grep -q '^Package:'
}

# Install with every service start refused (invoke-rc.d asks policy-rc.d):
# a package's postinst must not start a daemon on this host.
install_no_start() {
	policy=/usr/sbin/policy-rc.d
	if [ -e "$policy" ]; then
		install "$@"
		return
	fi
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod 755 "$policy"
	rc=0
	install "$@" || rc=$?
	rm -f "$policy"
	return $rc
}

meson_new_enough() {
	v=$(dpkg-query -W -f='${Version}' meson 2>/dev/null) || return 1
	dpkg --compare-versions "$v" ge 1.5
}

# bookworm's meson is 1.0: take meson and python3-pycotap from
# bookworm-backports through a private apt configuration and install the
# downloaded files, whose dependencies come from the host's own suites.
meson_from_backports() {
	bpo=$cache/apt/bookworm-backports
	apt_extra_init "$bpo" bookworm-backports ||
		die "cannot reach bookworm-backports (network?)"
	debs=$bpo/debs
	rm -rf "$debs"
	mkdir -p "$debs"
	(cd "$debs" && apt_extra "$bpo" apt-get download -q meson \
		python3-pycotap 2>&1 | grep -v 'unsandboxed as root' >&2) || true
	[ "$(find "$debs" -name '*.deb' | wc -l)" = 2 ] ||
		die "apt-get download of meson from bookworm-backports failed"
	host_update
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends "$debs"/*.deb
	rm -rf "$debs"
}

# The compiler-rt development files of the clang that is (or will be)
# installed (libFuzzer, sanitizers): libclang-rt-14-dev on bookworm,
# libclang-rt-19-dev on trixie, read from clang's own dependency.
clang_rt() {
	major=$( (dpkg-query -W -f='${Depends}\n' clang 2>/dev/null ||
		apt-cache show --no-all-versions clang 2>/dev/null |
			sed -n 's/^Depends: //p') |
		sed -n 's/^clang-\([0-9][0-9]*\).*/\1/p' | head -n 1)
	for p in ${major:+libclang-rt-$major-dev} libclang-rt-dev; do
		if installed "$p" || available "$p"; then
			echo "$p"
			return 0
		fi
	done
	die "no libclang-rt development package for clang${major:+-$major}"
}

# Library, tests, benchmark; python3 runs every helper script, zstd
# unpacks guest kernels (vmlinux extraction).
pkgs="build-essential pkgconf ninja-build liblz4-dev liburing-dev
	libxxhash-dev libcmocka-dev clang valgrind python3 zstd xz-utils"
case $what in
qemu | all)
	pkgs="$pkgs dpkg-dev patch libglib2.0-dev zlib1g-dev python3-venv
		seabios qemu-system-data socat libfdt-dev libaio-dev"
	;;
esac
case $what in
guest | all)
	# debhelper, dh-dkms, lintian, e2fsprogs: the virtio-tmem-dkms package
	# and the Debian guest image it is tested in (debootstrap, which
	# also makes the chroot that builds for 7.x kernels on Debian 12).
	pkgs="$pkgs gcc-12 dwarves cpio kmod busybox-static bc flex bison dkms
		libelf-dev libssl-dev debootstrap debhelper dh-dkms lintian e2fsprogs"
	;;
esac
case $what in
all)
	pkgs="$pkgs gnuplot-nox"
	;;
esac
# The disk tier's RADOS backend (librados-dev) and the throwaway Ceph
# cluster its tests start (scripts/ceph-cluster.sh): installed apart,
# with every service start refused, after the rest.
ceph_pkgs="librados-dev ceph-mon ceph-osd"
rt_ok() {
	rt=$(clang_rt 2>/dev/null) && installed "$rt"
}
# shellcheck disable=SC2086 # a list of package names
if [ -n "$(missing $pkgs)" ] || ! rt_ok || ! meson_new_enough; then
	host_update
	[ "$rel" = bookworm ] || meson_new_enough ||
		pkgs="$pkgs meson python3-pycotap"
	rt=$(clang_rt) || exit 1
	# One apt-get run for everything: a fresh machine's first run.
	# shellcheck disable=SC2086
	install $pkgs "$rt"
fi
if ! meson_new_enough; then
	[ "$rel" != bookworm ] || meson_from_backports
	meson_new_enough || die "meson >= 1.5 is needed; apt gave an older one"
fi

case $what in
all)
	# shellcheck disable=SC2086 # a list of package names
	install_no_start $ceph_pkgs
	;;
esac

case $what in
libvirt | all)
	# The daemon and virsh without libvirt-daemon-system: no units, no
	# default network, nothing started.  Debian's qemu driver runs as
	# libvirt-qemu unless qemu.conf says otherwise, and refuses to start
	# when that user does not exist; libvirt-daemon-system's postinst would
	# make it, so do what it does.
	install_no_start libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
	getent passwd libvirt-qemu >/dev/null ||
		useradd --system --user-group --home-dir /var/lib/libvirt \
			--no-create-home --shell /usr/sbin/nologin \
			--comment "Libvirt Qemu" libvirt-qemu
	;;
esac
