#!/bin/bash
# Build QEMU 10.0 or 10.2 from Debian's source package with the virtio-tmem
# device.
#
# Usage:
#   scripts/build-qemu.sh               build (or bring up to date); the last
#                                       line of output is the binary's path
#   scripts/build-qemu.sh --print-path  print the binary's path, build nothing;
#                                       exit 0 if it exists, 1 if not built
#   scripts/build-qemu.sh --check-device  compile the device's objects only
#                                       (no link, the binary's path is not
#                                       touched): does the device still build
#                                       against QEMU_SERIES?  Exit 77 when
#                                       no source of the series can be had
#   scripts/build-qemu.sh --sanitize [--print-path]
#                                       the same for a second build, with
#                                       --enable-asan --enable-ubsan and an
#                                       ASan/UBSan libtmem, beside the first
#   scripts/build-qemu.sh --help
#
# Other scripts find QEMU with:
#   QEMU=$(scripts/build-qemu.sh --print-path) || { echo "build QEMU first"; exit 77; }
#
# One cache holds one build: a checkout that builds re-points it at its own
# sources (--print-path warns when the binary comes from another checkout);
# give concurrent checkouts their own VTMEM_CACHE.
#
# The binary is ${VTMEM_CACHE}/qemu/bin/qemu-system-x86_64, a symlink into the
# build directory of the current version (with --sanitize:
# ${VTMEM_CACHE}/qemu-sanitize/bin/qemu-system-x86_64, built in build-sanitize/
# of the same source tree).  It finds its firmware in Debian's
# seabios and qemu-system-data packages (configured --firmwarepath), so no -L
# is needed.  Environment:
#   VTMEM_CACHE   where QEMU's source, build and the libtmem build it links
#                 live, outside the git work tree so they survive a fresh
#                 clone (default /var/cache/virtio-tmem).  CI keeps this
#                 directory between runs to avoid rebuilding QEMU.
#   QEMU_SERIES   10.0 (default: Debian 13 "trixie") or 10.2 (the newest
#                 QEMU source in Debian's archive, from sid): the newest
#                 Debian source package of that series is built.
#   QEMU_VERSION  build this Debian source version (e.g. 1:10.0.13+ds-0+deb13u1)
#                 instead; its series is the one of the version.
#   JOBS          ninja parallelism (default: nproc).
#   VTMEM_NO_DEPS=1  do not run scripts/install-deps.sh (e.g. not root).
#   LIBTMEM_PKG_CONFIG_PATH  development only: link the libtmem whose .pc
#                 is there (e.g. a sanitizer build) instead of building one.
#
# What it does, each step skipped when already done:
#   1. scripts/install-deps.sh qemu (apt; root)
#   2. resolve the newest qemu <series>.x in the deb-src lists of the suite
#      that has it (10.0: trixie, 10.2: sid), apt-get source it (a private
#      apt configuration in $cache/apt/qemu-source-<series>, see
#      scripts/lib/apt-archive.sh: the host's own apt entries stay as they are)
#   3. dpkg-source -x (Debian's patches applied) into $cache/qemu-<ver>/src
#   4. apply qemu-device/patches/*.patch and qemu-device/patches/<series>/
#      *.patch in the order of their file names (stamp: a hash of the patch
#      set; a changed set is reverse-applied and the new one applied)
#   5. symlink the device sources, the devices .mak and proto/virtio_tmem.h
#      into the tree (editing them in the repo is editing the build)
#   6. build libtmem from this repo (static, meson) in $cache/qemu-<ver>/libtmem
#   7. configure (when these options change; meson itself re-runs when a
#      meson.build or the devices .mak changes, and we make it re-run when
#      libtmem's pkg-config flags change, e.g. a new dependency such as
#      liburing), ninja qemu-system-x86_64; a newer libtmem.a relinks QEMU
#   8. point $cache/qemu/bin/qemu-system-x86_64 at the result (the binary
#      last built, of whichever series; $cache/qemu/VERSION says which)
# A new Debian point release is a new tree and a cold build (3-4 minutes);
# older trees stay in $cache until removed by hand.  Without network, a
# version that cannot be downloaded falls back to the last one built.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${VTMEM_CACHE:-/var/cache/virtio-tmem}
python=/usr/bin/python3
# shellcheck source=SCRIPTDIR/lib/apt-archive.sh
. "$repo/scripts/lib/apt-archive.sh"

log() { printf 'build-qemu: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The sanitized build is a second build of the same source tree: its own
# build and libtmem directories (suffix), its own stable path (state).
sanitize=0
suffix=
if [ "${1:-}" = --sanitize ]; then
	sanitize=1
	suffix=-sanitize
	shift
fi
state="$cache/qemu$suffix"
stable="$state/bin/qemu-system-x86_64"

case ${1:-} in
--print-path)
	echo "$stable"
	from=$(cat "$state/SOURCE" 2>/dev/null || true)
	if [ -n "$from" ] && [ "$from" != "$repo" ]; then
		log "warning: $stable was last built from $from, not $repo"
	fi
	[ -x "$stable" ]
	exit
	;;
-h|--help)
	sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
--check-device)
	check_device=1
	;;
"") ;;
*)
	die "unknown argument '$1' (try --help)"
	;;
esac

check_device=${check_device:-0}
start=$(date +%s)
mkdir -p "$cache"
# One build at a time per cache: VM tests may call us concurrently.
exec 9>"$cache/.lock"
flock 9

# --- 1. packages --------------------------------------------------------------
if [ "${VTMEM_NO_DEPS:-0}" != 1 ]; then
	if [ "$(id -u)" = 0 ]; then
		"$repo/scripts/install-deps.sh" qemu >&2
	else
		log "not root: skipping scripts/install-deps.sh qemu"
	fi
fi

# --- 2. source version --------------------------------------------------------
# A series and the Debian suite whose deb-src has it, reached through a
# private apt configuration (scripts/lib/apt-archive.sh).
series_of() { v=${1#*:}; echo "${v%%.*}.$(echo "$v" | cut -d. -f2)"; }
series=${QEMU_SERIES:-10.0}
[ -z "${QEMU_VERSION:-}" ] || series=$(series_of "$QEMU_VERSION")
case $series in
10.0) suite=trixie ;;
10.2) suite=sid ;;
*) die "QEMU_SERIES=$series: supported are 10.0 and 10.2" ;;
esac
[ -d "$repo/qemu-device/patches/$series" ] ||
	die "no qemu-device/patches/$series/ for QEMU $series"

qemu_apt=$cache/apt/qemu-source-$series
qemu_source_apt "$qemu_apt" "$suite" ||
	log "warning: cannot update the $suite deb-src lists in $qemu_apt"

newest_in_series() {
	best=
	for v in $(apt_extra "$qemu_apt" apt-cache showsrc qemu 2>/dev/null |
		   awk '/^Package: /{p=$2} /^Version: /{ if (p == "qemu") print $2 }' |
		   grep -E "^([0-9]+:)?${series%.*}\\.${series#*.}\\."); do
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done
	echo "$best"
}

last_built=$(cat "$state/VERSION-$series" 2>/dev/null || true)
version=${QEMU_VERSION:-$(newest_in_series)}
if [ -z "$version" ]; then
	if [ -z "$last_built" ] && [ "$check_device" = 1 ]; then
		# CI's check of the other series: nothing to check against.
		log "apt knows no qemu $series.x source package: SKIP"
		exit 77
	fi
	[ -n "$last_built" ] ||
		die "apt knows no qemu $series.x source package (no $suite deb-src lists in $qemu_apt: network?)"
	log "apt knows no qemu $series source; staying with $last_built"
	version=$last_built
fi

mkdir -p "$cache/dl"
dsc_of() { echo "$cache/dl/qemu_${1#*:}.dsc"; }   # no epoch in file names
if [ ! -f "$(dsc_of "$version")" ]; then
	log "downloading the qemu $version source package"
	if ! (cd "$cache/dl" && apt_extra "$qemu_apt" apt-get source \
		--download-only -q "qemu=$version" >&2); then
		if [ -n "${QEMU_VERSION:-}" ] || [ -z "$last_built" ] ||
		   [ ! -f "$(dsc_of "$last_built")" ]; then
			die "apt-get source qemu=$version failed"
		fi
		log "cannot download qemu $version; staying with $last_built"
		version=$last_built
	fi
fi
dsc=$(dsc_of "$version")
upstream_ver=${version#*:}
top="$cache/qemu-$upstream_ver"
src="$top/src"
build="$top/build$suffix"
libbuild="$top/libtmem$suffix"
mkdir -p "$top"
log "QEMU source: qemu $version in $top"

# --- 3. unpack ----------------------------------------------------------------
if [ ! -f "$top/.unpacked" ]; then
	rm -rf "$src" "$build" "$top/.patched"
	log "unpacking with Debian's patches"
	dpkg-source --no-check -x "$dsc" "$src" >&2
	touch "$top/.unpacked"
fi

# --- 4. our patches -----------------------------------------------------------
# Those for every series and those of this one, in the order of their names.
mapfile -t patches < <(
	for p in "$repo"/qemu-device/patches/*.patch \
		 "$repo/qemu-device/patches/$series"/*.patch; do
		printf '%s/%s\n' "$(basename "$p")" "$p"
	done | sort | cut -d/ -f2-)
dup=$(printf '%s\n' "${patches[@]##*/}" | uniq -d)
[ -z "$dup" ] || die "patches of the same name for every series and for $series: $dup"
want=$(cat "${patches[@]}" | sha256sum | cut -d' ' -f1)
have=$(cat "$top/.patched" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
	# Files whose content ends up unchanged get their old mtime back, so
	# that editing one patch does not rebuild all of QEMU.
	mtimes="$top/.mtimes"
	: > "$mtimes"
	if [ -n "$have" ]; then
		grep -h '^+++ b/' "$top/applied"/*.patch "${patches[@]}" |
			sed 's|^+++ b/||; s|\t.*||' | sort -u |
			while read -r f; do
				[ -f "$src/$f" ] || continue
				printf '%s|%s|%s\n' "$(sha256sum < "$src/$f" | cut -d' ' -f1)" \
					"$(stat -c %y "$src/$f")" "$f"
			done > "$mtimes"
		log "patch set changed: reverting the applied one"
		applied=("$top/applied"/*.patch)
		for (( i = ${#applied[@]} - 1; i >= 0; i-- )); do
			p=${applied[i]}
			patch -d "$src" -p1 -R -s --no-backup-if-mismatch < "$p" ||
				die "cannot revert $p; remove $top/.unpacked to start over"
		done
	fi
	rm -rf "$top/applied"
	mkdir -p "$top/applied"
	for p in "${patches[@]}"; do
		log "applying $(basename "$p")"
		patch -d "$src" -p1 -s --forward --no-backup-if-mismatch < "$p" ||
			die "$(basename "$p") does not apply to qemu $version"
		cp "$p" "$top/applied/"
	done
	while IFS='|' read -r sum mtime f; do
		if [ -f "$src/$f" ] &&
		   [ "$(sha256sum < "$src/$f" | cut -d' ' -f1)" = "$sum" ]; then
			touch -d "$mtime" "$src/$f"
		fi
	done < "$mtimes"
	rm -f "$mtimes"
	echo "$want" > "$top/.patched"
fi

# --- 5. our sources, linked, never copied -------------------------------------
relinked=()
link() {
	[ -e "$repo/$1" ] || die "missing $1"
	if [ "$(readlink "$src/$2" 2>/dev/null)" != "$repo/$1" ]; then
		ln -sfn "$repo/$1" "$src/$2"
		relinked+=("$2")
	fi
}
link qemu-device/hw/virtio/virtio-tmem.c hw/virtio/virtio-tmem.c
link qemu-device/hw/virtio/virtio-tmem-pci.c hw/virtio/virtio-tmem-pci.c
link qemu-device/hw/virtio/virtio-tmem-qmp.c hw/virtio/virtio-tmem-qmp.c
link qemu-device/hw/virtio/virtio-tmem-pool.c hw/virtio/virtio-tmem-pool.c
link qemu-device/hw/virtio/virtio-tmem-migrate.c hw/virtio/virtio-tmem-migrate.c
link qemu-device/include/hw/virtio/virtio-tmem.h include/hw/virtio/virtio-tmem.h
link qemu-device/include/hw/virtio/virtio-tmem-compat.h \
	include/hw/virtio/virtio-tmem-compat.h
link proto/virtio_tmem.h include/standard-headers/linux/virtio_tmem.h
link qemu-device/configs/x86_64-softmmu-vtmem.mak \
	configs/devices/x86_64-softmmu/vtmem.mak

# Linked to another checkout: its files may be older than our objects, which
# ninja's mtime check would then keep.  Drop every object built from them,
# in both builds of the tree (the links are shared).
for b in "$top/build" "$top/build-sanitize"; do
	if [ ${#relinked[@]} -eq 0 ] || [ ! -f "$b/build.ninja" ]; then
		continue
	fi
	log "sources now come from $repo: rebuilding what used them in $b"
	ninja -C "$b" -t deps |
		awk -v files="${relinked[*]}" -v src="$src" '
			BEGIN { n = split(files, f, " ")
				for (i = 1; i <= n; i++) {
					want["../src/" f[i]] = 1   # sources
					want[src "/" f[i]] = 1     # headers
				} }
			/^[^ ].*: #deps/ { t = $1; sub(/:$/, "", t) }
			/^    / && ($1 in want) { print t }' |
		sort -u | (cd "$b" && xargs -r rm -f)
	# The devices .mak is an input of meson's configuration.  A build
	# configured with older options may refuse the new .mak (a machine
	# that needs a feature it disabled): step 7 configures that one anew.
	ninja -C "$b" reconfigure >&2 ||
		log "reconfiguring $b failed; configuring it anew if its options changed"
done

# --- 6. libtmem from this repo ------------------------------------------------
if [ -n "${LIBTMEM_PKG_CONFIG_PATH:-}" ]; then
	# Development only: a libtmem built elsewhere (e.g. with sanitizers).
	pcpath=$LIBTMEM_PKG_CONFIG_PATH
	libfile=
	log "libtmem from PKG_CONFIG_PATH=$pcpath"
else
	[ -f "$repo/host-lib/meson.build" ] || die "host-lib/meson.build is missing"
	if [ -f "$libbuild/build.ninja" ] &&
	   [ "$(cat "$libbuild/.vtmem-source" 2>/dev/null)" != "$repo" ]; then
		log "libtmem build dir belongs to another checkout: starting over"
		rm -rf "$libbuild"
	fi
	if [ ! -f "$libbuild/build.ninja" ]; then
		log "configuring libtmem"
		libopts=(-Dbuildtype=debugoptimized)
		if [ $sanitize = 1 ]; then
			# shellcheck disable=SC2054 # one meson option, two sanitizers
			libopts+=(-Db_sanitize=address,undefined -Db_lundef=false)
		fi
		meson setup "$libbuild" "$repo" "${libopts[@]}" >&2
		echo "$repo" > "$libbuild/.vtmem-source"
	fi
	# Only the library: the project's tests are not QEMU's business.
	libfile=$("$python" - "$libbuild" <<'EOF'
import json, subprocess, sys
targets = json.loads(subprocess.check_output(
    ["meson", "introspect", "--targets", sys.argv[1]]))
for t in targets:
    if t["name"] == "tmem" and t["type"] == "static library":
        print(t["filename"][0])
        break
else:
    sys.exit("build-qemu: libtmem: no static library target 'tmem'")
EOF
)
	ninja -C "$libbuild" "${libfile#"$libbuild"/}" >&2
	pcpath="$libbuild/meson-uninstalled"
	[ -f "$pcpath/libtmem-uninstalled.pc" ] ||
		die "libtmem's meson.build generates no libtmem pkg-config file"
fi

# --- 7. configure and build ---------------------------------------------------
# Firmware (bios-256k.bin, kvmvapic.bin, ...) from seabios, qemu-system-data.
firmwarepath=(/usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu)
configure_args=(
	--python="$python"
	--target-list=x86_64-softmmu
	--without-default-features
	--without-default-devices
	--with-devices-x86_64=vtmem
	--enable-kvm
	--enable-tcg
	# virtio-blk's aio=io_uring and aio=native, the benchmark's baselines.
	--enable-linux-io-uring
	--enable-linux-aio
	--disable-tools
	--enable-fdt=system
	--disable-download
	--disable-docs
	--disable-install-blobs
	--disable-werror
	--disable-relocatable
	--firmwarepath="$(IFS=:; echo "${firmwarepath[*]}")"
	# Kept by meson for its own re-runs, unlike the environment.
	-Dpkg_config_path="$pcpath"
)
if [ $sanitize = 1 ]; then
	configure_args+=(--enable-asan --enable-ubsan)
fi
conf_id=$(printf '%s\n' "${configure_args[@]}" | sha256sum | cut -d' ' -f1)
# Meson asks pkg-config only when it configures: flags of libtmem that
# changed since (a new Requires:) would otherwise be missing at link time.
pc_flags=$(PKG_CONFIG_PATH="$pcpath" pkg-config --static --cflags --libs libtmem) ||
	die "pkg-config cannot resolve libtmem (a library it requires is not installed?)"
if [ ! -f "$build/build.ninja" ] || [ "$(cat "$build/.vtmem-configured" 2>/dev/null)" != "$conf_id" ]; then
	log "configuring QEMU"
	rm -rf "$build"
	mkdir -p "$build"
	(cd "$build" && PKG_CONFIG_PATH="$pcpath" "$src/configure" "${configure_args[@]}" >&2) ||
		die "configure failed (see above)"
	grep -q '^CONFIG_VIRTIO_TMEM=y' "$build/x86_64-softmmu-config-devices.mak" ||
		die "virtio-tmem is not in the configuration (libtmem not found by pkg-config?)"
	echo "$conf_id" > "$build/.vtmem-configured"
	echo "$pc_flags" > "$build/.vtmem-libtmem-flags"
elif [ "$(cat "$build/.vtmem-libtmem-flags" 2>/dev/null)" != "$pc_flags" ]; then
	log "libtmem's pkg-config flags changed: reconfiguring QEMU"
	# Found dependencies are cached across meson's own re-runs.
	"$build/pyvenv/bin/meson" configure --clearcache "$build" >&2
	PKG_CONFIG_PATH="$pcpath" ninja -C "$build" reconfigure >&2
	echo "$pc_flags" > "$build/.vtmem-libtmem-flags"
fi

# Meson does not track a static library from pkg-config as a link input.
# Age the binary rather than delete it: running VMs and tests keep a path.
if [ -n "$libfile" ] && [ -e "$build/qemu-system-x86_64" ] &&
   [ "$libfile" -nt "$build/qemu-system-x86_64" ]; then
	log "libtmem changed: relinking"
	touch -h -d @0 "$build/qemu-system-x86_64"
fi

if [ "$check_device" = 1 ]; then
	# The device's objects and what they need (generated QAPI and trace
	# headers), not the other 2000 objects nor the link.
	mapfile -t objs < <(ninja -C "$build" -t targets all |
		sed -n 's|^\([^:]*/[^/:]*virtio-tmem[^/:]*\.c\.o\):.*|\1|p' | sort -u)
	[ ${#objs[@]} -ge 5 ] ||
		die "the build knows ${#objs[@]} virtio-tmem objects, not 5 (device, host pool, migration, proxy, QMP)"
	# Compiled anew each time, so that their warnings are seen: a
	# warning is an error here (an API that changed its type, as
	# set_status's did in 10.1, compiles with one).
	(cd "$build" && rm -f "${objs[@]}")
	out=$(PKG_CONFIG_PATH="$pcpath" ninja -C "$build" -j"${JOBS:-$(nproc)}" \
		"${objs[@]}" 2>&1) || { printf '%s\n' "$out" >&2; die "the device does not compile against qemu $version"; }
	printf '%s\n' "$out" >&2
	if printf '%s\n' "$out" | grep -q 'warning:'; then
		die "the device compiles with warnings against qemu $version (above)"
	fi
	log "qemu $version: ${#objs[@]} virtio-tmem objects compiled in $(( $(date +%s) - start )) s, no warning"
	exit 0
fi

# QEMU's own qom-test and device-introspect-test, which the qemu suite
# runs against the device (tests/qemu/test_qtests.py; the sanitizer
# build's QEMU with these programs of the plain build).
qtests=()
[ -z "$suffix" ] && qtests=(tests/qtest/qom-test tests/qtest/device-introspect-test)
PKG_CONFIG_PATH="$pcpath" ninja -C "$build" -j"${JOBS:-$(nproc)}" qemu-system-x86_64 \
	"${qtests[@]}" >&2

# --- 8. the stable path -------------------------------------------------------
# Run from its build directory, QEMU looks for every configured directory
# under build/qemu-bundle/: point those at Debian's firmware packages.
for dir in "${firmwarepath[@]}"; do
	mkdir -p "$build/qemu-bundle$(dirname "$dir")"
	ln -sfn "$dir" "$build/qemu-bundle$dir"
done
mkdir -p "$state/bin"
ln -sfn "$build/qemu-system-x86_64" "$stable"
echo "$version" > "$state/VERSION"
echo "$version" > "$state/VERSION-$series"
echo "$repo" > "$state/SOURCE"
log "qemu $version with virtio-tmem${suffix:+ (ASan/UBSan)}, up to date in $(( $(date +%s) - start )) s"
echo "$stable"
