#!/bin/sh
# virtio-tmem benchmark: one command for all of it (bench/vm/swapbench.py).
#
# Usage: scripts/bench.sh [elastic|migrate]  (as root, like scripts/demo.sh)
#
# Sets up whatever is missing, as the demo does: apt packages
# (scripts/install-deps.sh all, gnuplot-nox included), QEMU with the
# device (scripts/build-qemu.sh), Debian's 6.12 guest kernel
# (scripts/guest-kernels.sh), the module (scripts/build-guest-module.sh)
# and tmem-bench (meson build directory ./build).  Then runs libtmem's
# benchmark and the guests: virtio-tmem, the same with ioeventfd=off,
# virtio-blk O_DIRECT (io_uring, and aio=threads), zram, zswap in front
# of virtio-blk, and virtio-tmem in each transport mode (guest polling,
# IOThread, host polling, both, synchronous=0, event_idx=off,
# invalidate-pages=off, packed ring); writes
# bench/results/latest.{md,png,json} and prints the tables.
#
# Time, under TCG on 2 cores: one round of 12 of the guests at
# VTMEM_BENCH_MEM=128 VTMEM_BENCH_MB=160 took 30 minutes (2026-12-04, the
# committed latest.*); the default size (256 MiB, 384 MiB per workload)
# and the default 2 rounds of all 15 take several times that.  The four
# guests of the first results alone, VTMEM_BENCH_OPTIONS=tmem,tmem-noevfd,
# blk,zram, took about 13 minutes for two rounds (2026-11-22, a faster
# machine).  Sizes and other knobs: see the
# header of bench/vm/swapbench.py (VTMEM_BENCH_MEM, VTMEM_BENCH_MB,
# VTMEM_BENCH_ROUNDS, VTMEM_BENCH_DIR, VTMEM_ACCEL, VTMEM_CACHE...).
#
# The disk tier against virtio-blk (bench/results/disk-tier.{md,json};
# latest.* stay as they are):
#
#   VTMEM_BENCH_OPTIONS=tmem-tier,tmem-tier-noevfd,blk scripts/bench.sh
#
# tmem-rados in that list adds the tier in Ceph RADOS, against a
# throwaway single-node cluster (scripts/ceph-cluster.sh; Ceph's packages
# come with install-deps.sh all).
#
# VTMEM_BENCH_OPTIONS picks the guests (python3 bench/vm/swapbench.py
# --help lists them); VTMEM_BENCH_TIER_BUDGET (default 12M)
# and VTMEM_BENCH_TIER_SIZE (default 1G) size the tier guests.
# How fast the host takes memory back when it halves the budget (disk tier
# and guest-return paths) and what it costs the guest's workload
# (bench/vm/elastic.py; bench/results/elastic.json; about 5 minutes):
#
#   scripts/bench.sh elastic
#
# VTMEM_QEMU and VTMEM_KO_6_12, when set, name the QEMU and the module to
# use: then neither is built.
#
# A live migration of a guest whose swap is in the device, against the
# same guest swapping to a virtio-blk disk (bench/vm/migrate.py;
# bench/results/migrate.json): bytes sent per byte held, total time,
# downtime and the device's share of it, pre-copy passes; quiet and busy:
#
#   scripts/bench.sh migrate
#
# A benchmark, not a test: it never runs in CI's test suites.
set -eu

mode=swap
case ${1:-} in
elastic | migrate)
	mode=$1
	shift
	;;
esac

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

step() {
	printf 'bench: %s\n' "$*" >&2
}

if [ "$(id -u)" = 0 ]; then
	step "installing missing packages (scripts/install-deps.sh)"
	scripts/install-deps.sh all >&2    # gnuplot-nox included
else
	step "not root: skipping scripts/install-deps.sh"
fi
# VTMEM_QEMU, VTMEM_KO_6_12: that QEMU, that module; nothing is built.
if [ -n "${VTMEM_QEMU:-}" ]; then
	step "QEMU: $VTMEM_QEMU (VTMEM_QEMU)"
else
	if ! scripts/build-qemu.sh --print-path > /dev/null 2>&1; then
		step "building QEMU with virtio-tmem (first time: several minutes)"
	fi
	scripts/build-qemu.sh > /dev/null
fi
step "guest kernel 6.12 (scripts/guest-kernels.sh)"
scripts/guest-kernels.sh env 6.12 > /dev/null
if [ -n "${VTMEM_KO_6_12:-}" ]; then
	step "guest module: $VTMEM_KO_6_12 (VTMEM_KO_6_12)"
else
	step "guest module (scripts/build-guest-module.sh)"
	scripts/build-guest-module.sh -v normal 6.12 > /dev/null
fi
[ "$mode" = elastic ] && exec /usr/bin/python3 bench/vm/elastic.py "$@"
[ "$mode" = migrate ] && exec /usr/bin/python3 bench/vm/migrate.py "$@"
# tmem-bench serves only guest (a)'s table: not needed without it.
case ",${VTMEM_BENCH_OPTIONS:-tmem}," in
*,tmem,*) ;;
*) TMEM_BENCH=${TMEM_BENCH:-none} ;;
esac
if [ -z "${TMEM_BENCH:-}" ]; then
	step "tmem-bench (meson, ./build)"
	[ -f build/build.ninja ] || meson setup build > /dev/null
	ninja -C build bench/tmem-bench > /dev/null
fi

exec /usr/bin/python3 bench/vm/swapbench.py "$@"
