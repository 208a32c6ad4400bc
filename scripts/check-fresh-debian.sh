#!/bin/sh
# Check the README's two commands on a fresh Debian machine: a root made with
# debootstrap, the stock apt sources of that release, a clean clone of this
# repository's HEAD, and the commands run inside it as root with chroot, with
# the chroot's own VTMEM_CACHE (nothing built on this machine is reused).
#
# Usage: scripts/check-fresh-debian.sh [options] [demo|test|both|deps]
#   demo | test | both   ./scripts/demo.sh, ./scripts/test-all.sh, or both in
#                        that order (default: both)
#   deps                 only ./scripts/install-deps.sh all (a quick check of
#                        the package step)
#   --release R          trixie (Debian 13, default) or bookworm (Debian 12)
#   --sources F          deb822 (debian.sources, as a trixie install writes
#                        it; the default on trixie) or oneline (a one-line
#                        /etc/apt/sources.list; the default on bookworm)
#   --keep               leave the root in place afterwards (its path is
#                        printed); by default it is removed
#   --new-root           make the pristine root again instead of unpacking
#                        the cached one
#
# Runs as root on a Debian host with network access to its Debian archive.
# Needs debootstrap (installed if missing) and about 4 GB free for a `both`
# run.  The archive's URI is copied from this machine's own apt entries.
# The pristine root (before anything of the project ran in it) is cached as
# ${VTMEM_CACHE:-/var/cache/virtio-tmem}/fresh-debian/RELEASE-root.tar.zst;
# each run unpacks it into a new directory under ${TMPDIR:-/var/tmp}.
# /proc, /sys, /dev and /dev/pts are bind-mounted (so /dev/kvm is there if
# this machine has one) and unmounted on every exit path.  JOBS,
# VTMEM_ACCEL, VTMEM_SUITES, VTMEM_KERNELS and VTMEM_FUZZ_SECONDS are
# passed through when set (e.g. a shorter `test` run); nothing else is.
#
# Prints the wall time of each command and a closing line
#   check-fresh-debian: trixie: demo passed in N s, test failed in N s
# Exit status: 0 when every command asked for passed, 1 when one failed,
# 77 when one said SKIP (e.g. a guest kernel it cannot obtain) and none failed.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/lib/apt-archive.sh"
cache=${VTMEM_CACHE:-/var/cache/virtio-tmem}

release=trixie
sources=
keep=0
new_root=0
what=both
while [ $# -gt 0 ]; do
	case $1 in
	--release) release=${2:?}; shift ;;
	--sources) sources=${2:?}; shift ;;
	--keep) keep=1 ;;
	--new-root) new_root=1 ;;
	demo | test | both | deps) what=$1 ;;
	-h | --help)
		sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	*) echo "check-fresh-debian: unknown argument '$1' (see --help)" >&2
	   exit 1 ;;
	esac
	shift
done
case $release in
trixie) sources=${sources:-deb822} ;;
bookworm) sources=${sources:-oneline} ;;
*) echo "check-fresh-debian: release trixie or bookworm" >&2; exit 1 ;;
esac
case $sources in
deb822 | oneline) ;;
*) echo "check-fresh-debian: --sources deb822 or oneline" >&2; exit 1 ;;
esac

log() { printf 'check-fresh-debian: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, mount, chroot)"
uri=$(debian_archive_uri) || die "no Debian archive entry in /etc/apt"
sec=$(debian_security_uri) || sec=
if ! command -v debootstrap >/dev/null 2>&1; then
	log "installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends debootstrap zstd >&2
fi
sha=$(git -C "$top" rev-parse HEAD)
if [ -n "$(git -C "$top" status --porcelain --untracked-files=no)" ]; then
	log "warning: uncommitted changes are not part of the check (HEAD $sha)"
fi

# --- the pristine root, made once ---------------------------------------------
tarball=$cache/fresh-debian/$release-root.tar.zst
if [ "$new_root" = 1 ] || [ ! -f "$tarball" ]; then
	mkdir -p "$cache/fresh-debian"
	tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/fresh-debian-make.XXXXXX")
	log "debootstrap $release from $uri (a few minutes)"
	t0=$(date +%s)
	if ! debootstrap --keyring="$APT_KEYRING" "$release" "$tmp/root" \
		"$uri" >"$tmp/debootstrap.log" 2>&1; then
		tail -n 20 "$tmp/debootstrap.log" >&2
		rm -rf --one-file-system "$tmp"
		die "debootstrap failed"
	fi
	# What the installer leaves behind, not debootstrap's build state.
	rm -f "$tmp/root/etc/apt/sources.list"
	rm -rf "$tmp/root/var/lib/apt/lists/"*
	tar -C "$tmp/root" --numeric-owner -cf - . | zstd -q -T0 >"$tarball.tmp"
	mv "$tarball.tmp" "$tarball"
	rm -rf --one-file-system "$tmp"
	log "pristine $release root cached in $tarball ($(( $(date +%s) - t0 )) s)"
fi

# --- a fresh copy of it ---------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/var/tmp}/fresh-debian.XXXXXX")
root=$work/root
mounted=

# Processes left in the root (an interrupted VM) would keep the mounts busy:
# end those, by pid, then unmount in reverse order.
cleanup() {
	rc=$?
	trap - EXIT INT TERM HUP
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] || continue
		kill "${p#/proc/}" 2>/dev/null || true
	done
	for m in $mounted; do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done
	if grep -q " ${root}[/ ]" /proc/mounts; then
		log "still mounted under $root: not removing it"
	elif [ "$keep" = 1 ]; then
		log "root kept in $root"
	else
		rm -rf --one-file-system "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

mkdir -p "$root"
zstd -q -dc "$tarball" | tar -C "$root" --numeric-owner -xf -

# The stock apt sources of a fresh install of that release.
security() {
	[ -n "$sec" ] || return 0
	case $sources in
	deb822) cat <<EOT

Types: deb
URIs: $sec
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
		;;
	oneline) echo "deb $sec $release-security main" ;;
	esac
}
rm -f "$root/etc/apt/sources.list" "$root/etc/apt/sources.list.d/"*
if [ "$sources" = deb822 ]; then
	{
		cat <<EOT
Types: deb
URIs: $uri
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOT
		security
	} >"$root/etc/apt/sources.list.d/debian.sources"
else
	{
		echo "deb $uri $release main"
		echo "deb $uri $release-updates main"
		security
	} >"$root/etc/apt/sources.list"
fi
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# A clean clone of HEAD, as a user would have it.
git clone -q --no-hardlinks --no-checkout "$top" "$root/root/virtio-tmem"
git -C "$root/root/virtio-tmem" checkout -q --detach "$sha"
log "$release root in $root (sources: $sources, repository at $sha)"

bind() {
	mkdir -p "$root$1"
	mount --bind "$1" "$root$1"
	mounted="$root$1 $mounted"
}
mount -t proc proc "$root/proc"
mounted="$root/proc"
bind /sys
bind /dev
bind /dev/pts
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mounted="$root/dev/shm $mounted"

# --- the README's commands ------------------------------------------------------
run() {
	name=$1
	cmd=$2
	log "$release: $cmd (as root in the chroot)"
	t0=$(date +%s)
	st=0
	chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		VTMEM_CACHE=/var/cache/virtio-tmem \
		${JOBS:+JOBS=$JOBS} ${VTMEM_ACCEL:+VTMEM_ACCEL=$VTMEM_ACCEL} \
		${VTMEM_SUITES:+VTMEM_SUITES="$VTMEM_SUITES"} \
		${VTMEM_KERNELS:+VTMEM_KERNELS="$VTMEM_KERNELS"} \
		${VTMEM_FUZZ_SECONDS:+VTMEM_FUZZ_SECONDS=$VTMEM_FUZZ_SECONDS} \
		/bin/sh -c "cd /root/virtio-tmem && $cmd" </dev/null || st=$?
	secs=$(( $(date +%s) - t0 ))
	if [ "$st" = 0 ]; then
		res="$name passed in $secs s"
	elif [ "$st" = 77 ]; then
		res="$name skipped (exit 77, the reason is above) after $secs s"
		skipped=1
	else
		res="$name failed (exit $st) in $secs s"
		failed=1
	fi
	log "$release: $res"
	summary="${summary:+$summary, }$res"
}

failed=0
skipped=0
summary=
case $what in
demo | both) run demo ./scripts/demo.sh ;;
esac
case $what in
test | both) run test ./scripts/test-all.sh ;;
esac
case $what in
deps) run deps "./scripts/install-deps.sh all" ;;
esac
[ "$what" != both ] || log "$release: $summary"
[ "$failed" = 0 ] || exit 1
[ "$skipped" = 0 ] || exit 77
