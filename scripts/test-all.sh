#!/bin/sh
# Set up everything missing on a Debian 12 machine (as root) and run every
# test suite: unit (libtmem, also under ASan/UBSan), qemu, guest, vm, plus a
# short fuzz run.  Exits non-zero if anything failed.
#
# Environment:
#   VTMEM_CACHE         where QEMU, guest kernels and modules are cached
#                       (default /var/cache/virtio-tmem)
#   VTMEM_FUZZ_SECONDS  length of the fuzz run of each target (default 40; 0 skips it)
#   VTMEM_SUITES        meson suites to run (default "unit qemu guest vm")
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

scripts/install-deps.sh all

setup() {
	dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
	meson compile -C "$dir"
}

setup build -Dwerror=true
setup build-asan -Dwerror=true -Db_sanitize=address,undefined \
	-Db_lundef=false

# The qemu, guest and vm suites build what they test; doing it here first
# keeps build time out of the tests' timeouts.
scripts/build-qemu.sh
scripts/build-guest-module.sh

status=0
suites=${VTMEM_SUITES:-unit qemu guest vm}
args=
for s in $suites; do
	args="$args --suite $s"
done
# shellcheck disable=SC2086
meson test -C build --print-errorlogs --num-processes 2 $args || status=1
meson test -C build-asan --print-errorlogs --num-processes 2 --suite unit ||
	status=1

fuzz_status=ok
if [ "${VTMEM_FUZZ_SECONDS:-60}" != 0 ]; then
	scripts/run-fuzz.sh || { status=1; fuzz_status=failed; }
fi

/usr/bin/python3 scripts/test-summary.py \
	build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
	--extra "fuzz-request+fuzz-stateful:$fuzz_status" || status=1
exit $status
