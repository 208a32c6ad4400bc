#!/bin/sh
# scripts/test-summary.py: the closing line counts meson results and extra
# checks, a missing log is a failure, and the exit status follows.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
summary() { /usr/bin/python3 "$top/scripts/test-summary.py" "$@"; }
fails=0
check() {
	what=$1 want_line=$2 want_rc=$3
	shift 3
	rc=0
	out=$(summary "$@") || rc=$?
	last=$(printf '%s\n' "$out" | tail -n 1)
	if [ "$last" = "$want_line" ] && [ "$rc" = "$want_rc" ]; then
		echo "ok - $what"
	else
		echo "not ok - $what: '$last' exit $rc, want '$want_line' exit $want_rc"
		fails=$((fails + 1))
	fi
}

cat >"$t/log.json" <<EOT
{"name": "a", "result": "OK"}
{"name": "b", "result": "SKIP"}
{"name": "c", "result": "EXPECTEDFAIL"}
EOT
echo '{"name": "d", "result": "TIMEOUT"}' >"$t/bad.json"

check "passes and skips" "2 passed, 0 failed, 1 skipped" 0 "$t/log.json"
check "a timeout fails" "2 passed, 1 failed, 1 skipped" 1 \
	"$t/log.json" "$t/bad.json"
check "extra checks" "3 passed, 1 failed, 2 skipped" 1 "$t/log.json" \
	--extra fuzz:ok --extra k:skipped --extra setup:failed
check "a missing log is a failure" "2 passed, 1 failed, 1 skipped" 1 \
	"$t/log.json" "$t/none.json"
check "nothing passed is a failure" "0 passed, 0 failed, 1 skipped" 1 \
	--extra fuzz:skipped
[ "$fails" = 0 ]
