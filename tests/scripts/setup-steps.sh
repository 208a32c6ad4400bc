#!/bin/sh
# scripts/demo.sh and scripts/test-all.sh, run in a scratch tree whose setup
# scripts are stubs: a guest kernel that cannot be obtained (exit 77) is a
# SKIP with a reason, never an abort; a failed step is named; test-all
# always ends with the summary line.  Needs root (both run install-deps
# then) or not: the stub install-deps does nothing either way.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
fails=0

ok() { echo "ok - $1"; }
notok() { echo "not ok - $1"; fails=$((fails + 1)); }

# tree KERNEL_RC_6_12 KERNEL_RC_6_1 QEMU_RC: a scratch copy of the two
# scripts with stubs that log their calls to $t/calls.
tree() {
	rm -rf "$t/tree" "$t/calls"
	mkdir -p "$t/tree/scripts/vm"
	cp "$top/scripts/demo.sh" "$top/scripts/test-all.sh" \
		"$top/scripts/test-summary.py" "$t/tree/scripts/"
	stub install-deps.sh 'exit 0'
	stub build-qemu.sh "[ \"\${1:-}\" = --print-path ] && exit 0; exit $3"
	stub guest-kernels.sh "case \$2 in 6.12) rc=$1 ;; *) rc=$2 ;; esac
[ \$rc = 0 ] || echo \"guest-kernels: no \$2 kernel (stub)\" >&2; exit \$rc"
	stub build-guest-module.sh "k=\$1; [ \$1 != -v ] || k=\$3
case \$k in 6.12) rc=$1 ;; *) rc=$2 ;; esac; exit \$rc"
	stub run-fuzz.sh 'exit 0'
	printf 'import sys\nopen("%s", "a").write("demo.py\\n")\n' \
		"$t/calls" >"$t/tree/scripts/vm/demo.py"
	cat >"$t/tree/meson.build" <<EOT
project('stub', 'c')
test('ok', find_program('true'), suite: 'unit')
test('guest-6.1', find_program('sh'), args: ['-c', 'exit 77'], suite: 'guest')
EOT
}

stub() {
	printf '#!/bin/sh\necho "%s $*" >>"%s"\n%s\n' "$1" "$t/calls" "$2" \
		>"$t/tree/scripts/$1"
	chmod +x "$t/tree/scripts/$1"
}

called() { grep -q "^$1" "$t/calls" 2>/dev/null; }

# demo.sh: exit status, last line of stderr.
demo() {
	rc=0
	(cd "$t/tree" && sh scripts/demo.sh) >"$t/out" 2>"$t/err" || rc=$?
	last=$(tail -n 1 "$t/err")
}

tree 77 0 0
demo
if [ "$rc" = 77 ] && ! called build-guest-module && ! called demo.py &&
	echo "$last" | grep -q 'SKIP: guest kernel 6.12 cannot be obtained' &&
	grep -q 'no 6.12 kernel (stub)' "$t/err"; then
	ok "demo: a missing kernel is a SKIP (77) with its reason"
else
	notok "demo: missing kernel: exit $rc, '$last'"
fi

tree 1 0 0
demo
if [ "$rc" = 1 ] && echo "$last" | grep -q 'FAILED (exit 1): scripts/guest-kernels.sh'; then
	ok "demo: guest-kernels failing otherwise is a named failure"
else
	notok "demo: guest-kernels failure: exit $rc, '$last'"
fi

tree 0 0 1
demo
if [ "$rc" = 1 ] && ! called guest-kernels &&
	echo "$last" | grep -q 'FAILED (exit 1): scripts/build-qemu.sh'; then
	ok "demo: a failed QEMU build stops the demo, named"
else
	notok "demo: QEMU failure: exit $rc, '$last'"
fi

tree 0 0 0
demo
if [ "$rc" = 0 ] && called demo.py; then
	ok "demo: with everything there the demo runs"
else
	notok "demo: all there: exit $rc, '$last'"
fi

# test-all.sh: the summary line is the last line of stdout.
testall() {
	rc=0
	(cd "$t/tree" && VTMEM_SUITES="unit guest" VTMEM_KERNELS="6.12 6.1" \
		sh scripts/test-all.sh) >"$t/out" 2>"$t/err" || rc=$?
	last=$(tail -n 1 "$t/out")
}

tree 0 77 0
testall
if [ "$rc" = 0 ] && [ "$last" = "3 passed, 0 failed, 1 skipped" ] &&
	grep -q 'SKIP: guest kernel 6.1 cannot be obtained' "$t/err" &&
	called run-fuzz; then
	ok "test-all: a missing kernel is a SKIP, the run goes on to the summary"
else
	notok "test-all: missing kernel: exit $rc, '$last'"
fi

tree 1 0 0
testall
if [ "$rc" = 1 ] && [ "$last" = "3 passed, 1 failed, 1 skipped" ] &&
	grep -q 'FAILED: scripts/build-guest-module.sh 6.12' "$t/err"; then
	ok "test-all: a failed module build is a failure, the summary still comes"
else
	notok "test-all: failed module build: exit $rc, '$last'"
fi

[ "$fails" = 0 ]
