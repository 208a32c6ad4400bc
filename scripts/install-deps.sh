#!/bin/sh
# Install, through apt, everything the project needs on a Debian 12 machine.
#
# Usage: scripts/install-deps.sh [base|qemu|guest|all]   (default: all)
#
# Extra suites (bookworm-backports for meson >= 1.5 and the 6.12 guest kernel,
# trixie deb-src for QEMU 10.0) reuse the URIs of the machine's own Debian
# entry, so no mirror is ever named here.
set -eu

what=${1:-all}
src=/etc/apt/sources.list.d/debian.sources
extra=/etc/apt/sources.list.d/virtio-tmem.sources

need_root() {
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: must run as root (apt-get install)" >&2
		exit 1
	fi
}

debian_uri() {
	# First URIs: line of the entry whose Suites: names bookworm.
	awk '/^URIs:/ { uri = $2 }
	     /^Suites:/ && / bookworm( |$)/ { print uri; exit }' "$src"
}

add_suites() {
	[ -f "$extra" ] && return 0
	uri=$(debian_uri)
	if [ -z "$uri" ]; then
		echo "install-deps: no bookworm entry in $src" >&2
		exit 1
	fi
	cat > "$extra" <<EOT
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: $uri
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
	apt-get update -q
	touch /var/lib/apt/periodic/.vtmem-updated 2>/dev/null || true
}

missing() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
			grep -q '^install ok installed' || echo "$p"
	done
}

install() {
	pkgs=$(missing "$@")
	[ -n "$pkgs" ] || return 0
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $pkgs
}

install_bpo() {
	pkgs=$(missing "$@")
	[ -n "$pkgs" ] || return 0
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		-t bookworm-backports $pkgs
}

meson_new_enough() {
	v=$(dpkg-query -W -f='${Version}' meson 2>/dev/null) || return 1
	dpkg --compare-versions "$v" ge 1.5
}

need_root
add_suites

# Library, tests, benchmark.
install build-essential pkgconf ninja-build liblz4-dev liburing-dev \
	libcmocka-dev clang libclang-rt-14-dev valgrind
meson_new_enough || install_bpo meson python3-pycotap

case $what in
qemu|all)
	install dpkg-dev libglib2.0-dev zlib1g-dev python3-venv seabios \
		qemu-system-data socat python3
	;;
esac
case $what in
guest|all)
	install gcc-12 dwarves cpio kmod busybox-static xz-utils bc flex bison dkms \
		libelf-dev libssl-dev
	install debootstrap zstd	# 7.x build chroot; vmlinux from vmlinuz
	;;
esac
case $what in
all)
	install gnuplot-nox
	;;
esac
