#!/bin/sh
# virtio-tmem demo: set up whatever is missing, boot a guest with little RAM
# whose swap is virtio-tmem, run a workload bigger than the guest's RAM with
# every byte verified, and print the guest's and the host's statistics.
# Mid-workload the host halves the budget (qom-set): pages move to the
# device's disk tier (--resize tier, the default) or back to a backing
# disk of the guest's (--resize guest); --resize none keeps the budget.
#
# Usage: scripts/demo.sh [--mem MiB] [--mb MiB] [--budget SIZE]
#                        [--backing-mb MiB] [--kernel 6.12|6.1]
#                        [--resize tier|guest|none]
#
# Setup (each step is quick when already done): apt packages
# (scripts/install-deps.sh, as root), QEMU with the device
# (scripts/build-qemu.sh), Debian's guest kernel (scripts/guest-kernels.sh)
# and the module (scripts/build-guest-module.sh).  Exits non-zero if any page
# failed to verify or the guest's and the host's counters disagree, or a
# setup step failed (the last line names it); 77 (skip) when the guest
# kernel cannot be obtained on this machine.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1

kernel=6.12
prev=
for a in "$@"; do
	[ "$prev" = --kernel ] && kernel=$a
	prev=$a
done

step() {
	printf 'demo: %s\n' "$*" >&2
}

# A setup step that fails ends the demo with a line saying which one; a
# guest kernel that cannot be obtained here is a skip (77), with how to
# get it.
fail() {
	rc=$1
	shift
	if [ "$rc" = 77 ]; then
		step "SKIP: $*"
		exit 77
	fi
	step "FAILED (exit $rc): $*"
	exit 1
}

if [ "$(id -u)" = 0 ]; then
	step "installing missing packages (scripts/install-deps.sh)"
	scripts/install-deps.sh all >&2 || fail $? "scripts/install-deps.sh all"
else
	step "not root: skipping scripts/install-deps.sh"
fi
if ! scripts/build-qemu.sh --print-path > /dev/null 2>&1; then
	step "building QEMU with virtio-tmem (first time: several minutes)"
fi
scripts/build-qemu.sh > /dev/null || fail $? "scripts/build-qemu.sh"
step "guest kernel $kernel (scripts/guest-kernels.sh)"
rc=0
scripts/guest-kernels.sh env "$kernel" > /dev/null || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 77 ] || fail "$rc" "scripts/guest-kernels.sh env $kernel"
[ "$rc" = 0 ] || fail 77 "guest kernel $kernel cannot be obtained on this" \
	"machine (the reason is above); make its Debian packages reachable" \
	"through apt, then run scripts/guest-kernels.sh fetch $kernel," \
	"or try another one with --kernel"
step "guest module (scripts/build-guest-module.sh -v normal $kernel)"
scripts/build-guest-module.sh -v normal "$kernel" > /dev/null ||
	fail $? "scripts/build-guest-module.sh -v normal $kernel"

exec /usr/bin/python3 scripts/vm/demo.py "$@"
