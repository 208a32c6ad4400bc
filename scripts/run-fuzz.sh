#!/bin/sh
# Build the libFuzzer target for tmem_handle_request() (tests/fuzz/) with
# clang, ASan and UBSan in its own build directory, and run it.
#
# Usage: scripts/run-fuzz.sh [extra libFuzzer arguments]
#
# Environment:
#   VTMEM_FUZZ_SECONDS  how long to fuzz (default 60)
#   VTMEM_FUZZ_BUILD    build directory (default build-fuzz)
#   VTMEM_FUZZ_JOBS     parallel fuzzing processes (default 1)
#
# The short default run is a smoke test for CI.  For a real campaign run
# it for hours on every core, keeping the corpus between runs:
#
#   VTMEM_FUZZ_SECONDS=14400 VTMEM_FUZZ_JOBS=$(nproc) scripts/run-fuzz.sh
#
# The corpus grows in $VTMEM_FUZZ_BUILD/fuzz-corpus (seeded from
# tests/fuzz/corpus/); a crash leaves its input in
# $VTMEM_FUZZ_BUILD/fuzz-artifacts/ and this script exits 1.  Reproduce
# with: $VTMEM_FUZZ_BUILD/tests/unit/fuzz-request <crash-file>
#
# Exit: 0 no crash, 1 crash or invariant violation, 77 clang missing.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
dir=${VTMEM_FUZZ_BUILD:-$top/build-fuzz}
secs=${VTMEM_FUZZ_SECONDS:-60}
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
meson compile -C "$dir" fuzz-request >/dev/null

corpus=$dir/fuzz-corpus
artifacts=$dir/fuzz-artifacts
mkdir -p "$corpus" "$artifacts"
cp "$top"/tests/fuzz/corpus/* "$corpus"/

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}"

echo "run-fuzz: fuzzing tmem_handle_request for ${secs}s ($jobs job(s))"
log=$dir/fuzz.log
set -- -max_total_time="$secs" -max_len=4096 -timeout=20 -error_exitcode=1 \
	-rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$artifacts/" "$@"
if [ "$jobs" -gt 1 ]; then
	set -- -jobs="$jobs" -workers="$jobs" "$@"
fi
status=0
cd "$dir"	# -jobs writes fuzz-N.log into the current directory
"$dir/tests/unit/fuzz-request" "$@" "$corpus" >"$log" 2>&1 || status=$?
grep -E '^stat::|^#[0-9]+ +DONE|ERROR|SUMMARY|fuzz-request:' "$log" | tail -20
crashes=$(find "$artifacts" -type f | wc -l)
if [ "$status" != 0 ] || [ "$crashes" != 0 ]; then
	echo "run-fuzz: FAILED (status $status); see $log and $artifacts" >&2
	exit 1
fi
echo "run-fuzz: ok, no crash"
