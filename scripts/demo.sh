#!/bin/sh
# virtio-tmem demo: set up whatever is missing, boot a guest with little RAM
# whose swap is virtio-tmem, run a workload bigger than the guest's RAM with
# every byte verified, and print the guest's and the host's statistics.
#
# Usage: scripts/demo.sh [--mem MiB] [--mb MiB] [--budget SIZE]
#                        [--backing-mb MiB] [--kernel 6.12|6.1]
#
# Setup (each step is quick when already done): apt packages
# (scripts/install-deps.sh, as root), QEMU with the device
# (scripts/build-qemu.sh), Debian's guest kernel (scripts/guest-kernels.sh)
# and the module (scripts/build-guest-module.sh).  Exits non-zero if any page
# failed to verify or the guest's and the host's counters disagree.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

kernel=6.12
prev=
for a in "$@"; do
	[ "$prev" = --kernel ] && kernel=$a
	prev=$a
done

step() {
	printf 'demo: %s\n' "$*" >&2
}

if [ "$(id -u)" = 0 ]; then
	step "installing missing packages (scripts/install-deps.sh)"
	scripts/install-deps.sh all >&2
else
	step "not root: skipping scripts/install-deps.sh"
fi
if ! scripts/build-qemu.sh --print-path > /dev/null 2>&1; then
	step "building QEMU with virtio-tmem (first time: several minutes)"
fi
scripts/build-qemu.sh > /dev/null
step "guest kernel $kernel (scripts/guest-kernels.sh)"
scripts/guest-kernels.sh env "$kernel" > /dev/null
step "guest module (scripts/build-guest-module.sh -v normal $kernel)"
scripts/build-guest-module.sh -v normal "$kernel" > /dev/null

exec /usr/bin/python3 scripts/vm/demo.py "$@"
