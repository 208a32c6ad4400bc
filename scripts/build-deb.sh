#!/bin/sh
# Build the Debian package virtio-tmem-dkms (the guest driver with DKMS and
# swap on /dev/vtmemN at boot) from the repository's guest-virtio-tmem/ and
# proto/, with packaging/debian/ as its debian/ directory.  The source tree
# is assembled and built in the cache, never in the work tree.
#
# Usage: scripts/build-deb.sh [--lintian]
#   prints the path of the .deb; --lintian also checks the binary and the
#   source package with lintian and fails on any tag it prints.
#
# Output: $VTMEM_CACHE/deb/ (default cache /var/cache/virtio-tmem).
# Needs dpkg-dev, debhelper, dh-dkms (scripts/install-deps.sh guest);
# exit status 77 when they are missing.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${VTMEM_CACHE:-/var/cache/virtio-tmem}
out=$cache/deb

log() { echo "build-deb: $*" >&2; }
die() { log "$*"; exit 1; }

lint=false
case ${1:-} in
--lintian) lint=true ;;
"") ;;
*) die "usage: build-deb.sh [--lintian]" ;;
esac

for t in dpkg-buildpackage dh dh_dkms; do
	command -v "$t" >/dev/null || {
		log "SKIP: $t is not installed (scripts/install-deps.sh guest)"
		exit 77
	}
done
if $lint && ! command -v lintian >/dev/null; then
	log "SKIP: lintian is not installed (scripts/install-deps.sh guest)"
	exit 77
fi

# One version: the module's (dkms.conf), which the changelog must carry.
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' "$top/guest-virtio-tmem/dkms.conf")
chver=$(dpkg-parsechangelog -l "$top/packaging/debian/changelog" -S Version)
[ "$version" = "$chver" ] ||
	die "dkms.conf has version $version, packaging/debian/changelog $chver"

mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
work=$out/build
tree=$work/virtio-tmem-$version
rm -rf "$work"
mkdir -p "$tree/guest-virtio-tmem/boot" "$tree/proto"
g=$top/guest-virtio-tmem
cp "$g"/Kbuild "$g"/Makefile "$g"/dkms.conf "$g"/*.c "$g"/*.h "$g"/README.md \
	"$tree/guest-virtio-tmem/"
cp "$g"/boot/* "$tree/guest-virtio-tmem/boot/"
cp "$top/proto/virtio_tmem.h" "$tree/proto/"
cp -R "$top/packaging/debian" "$tree/debian"

# The source package too, for lintian: from the tree before it is built.
if $lint; then
	(cd "$work" && dpkg-source -b "virtio-tmem-$version") >"$work/source.log" 2>&1 ||
		die "dpkg-source -b failed (log: $work/source.log)"
fi

log "dpkg-buildpackage in $tree"
(cd "$tree" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 || {
	tail -40 "$work/build.log" >&2
	die "dpkg-buildpackage failed (log: $work/build.log)"
}
deb=virtio-tmem-dkms_${version}_all.deb
[ -f "$work/$deb" ] || die "no $deb after the build"

if $lint; then
	changes=$(ls "$work"/virtio-tmem_"$version"_*.changes)
	# Tags go to stdout; stderr has lintian's own notes (running as root).
	st=0
	tags=$(lintian --info --pedantic --fail-on error,warning,info,pedantic \
		"$changes" "$work/virtio-tmem_$version.dsc" 2>"$work/lintian.log") || st=$?
	if [ -n "$tags" ] || [ "$st" != 0 ]; then
		cat "$work/lintian.log" >&2
		printf '%s\n' "$tags" >&2
		die "lintian failed ($st) or reported the tags above"
	fi
	log "lintian --pedantic: no tags"
fi
cp "$work/$deb" "$out/$deb"
echo "$out/$deb"
