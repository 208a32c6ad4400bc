#!/bin/sh
# Build the libFuzzer targets of tests/fuzz/ with clang, ASan and UBSan in
# their own build directory, and run each in turn:
#   fuzz-request   tmem_handle_request(), the wire entry point
#   fuzz-stateful  sequences of API calls (pools, stores, loads, the three
#                  invalidations, reset) with and without a disk tier
#
# Usage: scripts/run-fuzz.sh [extra libFuzzer arguments]
#
# Environment:
#   VTMEM_FUZZ_SECONDS  how long to fuzz each target (default 40)
#   VTMEM_FUZZ_TARGETS  which targets (default "fuzz-request fuzz-stateful")
#   VTMEM_FUZZ_BUILD    build directory (default build-fuzz)
#   VTMEM_FUZZ_JOBS     parallel fuzzing processes per target (default 1)
#
# The short default run (80 s in all) is a smoke test for CI.  For a real
# campaign run it for hours on every core, keeping the corpora between
# runs (the figures of the last campaign are in tests/fuzz/README.md):
#
#   VTMEM_FUZZ_SECONDS=14400 VTMEM_FUZZ_JOBS=$(nproc) scripts/run-fuzz.sh
#
# Each target's corpus grows in $VTMEM_FUZZ_BUILD/<target>-corpus (seeded
# from tests/fuzz/corpus/ or corpus-stateful/); a crash leaves its input
# in $VTMEM_FUZZ_BUILD/fuzz-artifacts/ and this script exits 1.
# Reproduce with: $VTMEM_FUZZ_BUILD/tests/unit/<target> <crash-file>
#
# Exit: 0 no crash, 1 crash or invariant violation, 77 clang missing.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${VTMEM_FUZZ_BUILD:-$top/build-fuzz}
secs=${VTMEM_FUZZ_SECONDS:-40}
targets=${VTMEM_FUZZ_TARGETS:-fuzz-request fuzz-stateful}
jobs=${VTMEM_FUZZ_JOBS:-1}

if ! command -v clang >/dev/null 2>&1; then
	echo "run-fuzz: clang not found (scripts/install-deps.sh base installs it)" >&2
	exit 77
fi

# -fsanitize=fuzzer-no-link instruments libtmem too, so that the fuzzer
# is guided by coverage of the library, not only of the harness.
if [ ! -f "$dir/build.ninja" ]; then
	setup_log=$(mktemp)
	CC=clang meson setup "$dir" "$top" -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false \
		-Dc_args=-fsanitize=fuzzer-no-link \
		-Dbuildtype=debugoptimized >"$setup_log" 2>&1 || {
		cat "$setup_log" >&2
		rm -f "$setup_log"
		exit 1
	}
	rm -f "$setup_log"
fi
# shellcheck disable=SC2086	# $targets is a list
meson compile -C "$dir" $targets >/dev/null

artifacts=$dir/fuzz-artifacts
mkdir -p "$artifacts"

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

set -- -max_total_time="$secs" -max_len=4096 -timeout=20 -error_exitcode=1 \
	-rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$artifacts/" "$@"
if [ "$jobs" -gt 1 ]; then
	set -- -jobs="$jobs" -workers="$jobs" "$@"
fi
status=0
cd "$dir"	# -jobs writes fuzz-N.log into the current directory
for target in $targets; do
	case $target in
	fuzz-request) seeds=$top/tests/fuzz/corpus ;;
	fuzz-stateful) seeds=$top/tests/fuzz/corpus-stateful ;;
	*) echo "run-fuzz: unknown target $target" >&2; exit 1 ;;
	esac
	corpus=$dir/$target-corpus
	mkdir -p "$corpus"
	cp "$seeds"/* "$corpus"/
	echo "run-fuzz: fuzzing $target for ${secs}s ($jobs job(s))"
	log=$dir/$target.log
	"$dir/tests/unit/$target" "$@" "$corpus" >"$log" 2>&1 || status=$?
	grep -E '^stat::|^#[0-9]+ +DONE|ERROR|SUMMARY|fuzz-(request|stateful):' "$log" | tail -20
done
crashes=$(find "$artifacts" -type f | wc -l)
if [ "$status" != 0 ] || [ "$crashes" != 0 ]; then
	echo "run-fuzz: FAILED (status $status); see $dir/*.log and $artifacts" >&2
	exit 1
fi
echo "run-fuzz: ok, no crash"
