#!/bin/sh
# Set up everything missing on a Debian 12 or 13 machine (as root) and run
# every test suite: unit (libtmem, also under ASan/UBSan), scripts, qemu
# (also against QEMU built with ASan/UBSan), guest, vm, plus a short fuzz run.  Always ends with one line
#   N passed, N failed, N skipped
# and exits non-zero if anything failed.  A guest kernel that cannot be
# obtained here (e.g. 6.1, which only bookworm has) is no failure: its
# tests say SKIP, and the reason is printed with how to get it.
#
# Environment:
#   VTMEM_CACHE         where QEMU, guest kernels and modules are cached
#                       (default /var/cache/virtio-tmem)
#   VTMEM_FUZZ_SECONDS  length of the fuzz run of each target (default 40; 0 skips it)
#   VTMEM_SUITES        meson suites to run (default "unit scripts qemu guest vm")
#   VTMEM_KERNELS       guest kernel series to prepare (default "6.12 6.1 7.3")
#   QEMU_SERIES         the QEMU series the tests run on (default 10.0); the
#                       device is only compiled against the other one
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

status=0
extra=
logs=

say() { printf 'test-all: %s\n' "$*" >&2; }

# A setup step that failed counts as one failed test in the summary; the
# run goes on with what does not depend on it.
failed_step() {
	say "FAILED: $1"
	extra="$extra --extra $2:failed"
	status=1
}

if [ "$(id -u)" = 0 ]; then
	scripts/install-deps.sh all ||
		failed_step "scripts/install-deps.sh all" setup-install-deps
else
	say "not root: skipping scripts/install-deps.sh (packages may be missing)"
fi

setup() {
	dir=$1
	shift
	if [ -f "$dir/build.ninja" ]; then
		meson configure "$dir" "$@" || return 1
	else
		meson setup "$dir" "$@" || return 1
	fi
	meson compile -C "$dir"
}

built=
if setup build -Dwerror=true; then
	built="$built build"
else
	failed_step "meson build of build/" setup-build
fi
if setup build-asan -Dwerror=true -Db_sanitize=address,undefined \
	-Db_lundef=false; then
	built="$built build-asan"
else
	failed_step "meson build of build-asan/" setup-build-asan
fi

suites=${VTMEM_SUITES:-unit scripts qemu guest vm}
case " $suites " in
*" qemu "* | *" vm "*)
	# The qemu and vm suites build what they test; doing it here first
	# keeps build time out of the tests' timeouts.
	scripts/build-qemu.sh >/dev/null ||
		failed_step "scripts/build-qemu.sh (the qemu and vm tests will skip)" \
			setup-qemu
	;;
esac
case " $suites " in
*" qemu "*)
	scripts/build-qemu.sh --sanitize >/dev/null ||
		failed_step "scripts/build-qemu.sh --sanitize" setup-qemu-sanitize
	;;
esac
# The device must build against the supported QEMU series the tests do not
# run on too: its objects only, in a configured tree kept in the cache.
case " $suites " in
*" qemu "*)
	case ${QEMU_SERIES:-10.0} in
	10.0) other_series=10.2 ;;
	*) other_series=10.0 ;;
	esac
	rc=0
	QEMU_SERIES=$other_series scripts/build-qemu.sh --check-device \
		>/dev/null || rc=$?
	case $rc in
	0) extra="$extra --extra qemu-$other_series-device-builds:ok" ;;
	77) extra="$extra --extra qemu-$other_series-device-builds:skipped" ;;
	*)
		failed_step "QEMU_SERIES=$other_series scripts/build-qemu.sh --check-device" \
			"qemu-$other_series-device-builds"
		;;
	esac
	;;
esac

case " $suites " in
*" guest "* | *" vm "*)
	for k in ${VTMEM_KERNELS:-6.12 6.1 7.3}; do
		rc=0
		scripts/build-guest-module.sh "$k" >/dev/null || rc=$?
		case $rc in
		0) ;;
		77)
			say "SKIP: guest kernel $k cannot be obtained on this machine" \
				"(the reason is above); the tests on $k will say SKIP." \
				"To get it: make its Debian packages reachable through" \
				"apt, then run scripts/guest-kernels.sh fetch $k"
			;;
		*) failed_step "scripts/build-guest-module.sh $k" "setup-module-$k" ;;
		esac
	done
	;;
esac

case " $built " in
*" build "*)
	args=
	for s in $suites; do
		args="$args --suite $s"
	done
	# shellcheck disable=SC2086
	meson test -C build --print-errorlogs --num-processes 2 $args ||
		status=1
	logs="$logs build/meson-logs/testlog.json"
	case " $suites " in
	*" qemu "*)
		# A use-after-free in the device is caught here, not by luck.
		# meson names the log testlog-<setup>.json.
		meson test -C build --setup qemusan \
			--print-errorlogs --num-processes 2 --suite qemu ||
			status=1
		logs="$logs build/meson-logs/testlog-qemusan.json"
		;;
	esac
	;;
esac
case " $built " in
*" build-asan "*)
	case " $suites " in
	*" unit "*)
		meson test -C build-asan --print-errorlogs --num-processes 2 \
			--suite unit || status=1
		logs="$logs build-asan/meson-logs/testlog.json"
		;;
	esac
	;;
esac

if [ "${VTMEM_FUZZ_SECONDS:-40}" != 0 ]; then
	rc=0
	scripts/run-fuzz.sh || rc=$?
	case $rc in
	0) extra="$extra --extra fuzz-request+fuzz-stateful:ok" ;;
	77) extra="$extra --extra fuzz-request+fuzz-stateful:skipped" ;;
	*) extra="$extra --extra fuzz-request+fuzz-stateful:failed"; status=1 ;;
	esac
fi

if [ -x /usr/bin/python3 ]; then
	# shellcheck disable=SC2086
	/usr/bin/python3 scripts/test-summary.py $logs $extra || status=1
else
	# Without python3 (install-deps failed) nothing ran but the setup.
	# shellcheck disable=SC2086 # one word per entry
	n=$(printf '%s\n' $extra | grep -c ':failed$')
	echo "0 passed, $((n + 1)) failed, 0 skipped"
	status=1
fi
exit $status
