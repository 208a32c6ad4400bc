#!/bin/sh
# Run a test binary against a throwaway single-node Ceph cluster
# (scripts/ceph-cluster.sh), started here and stopped on exit, with a
# cephx user client.vm1 limited to namespace vm1 of the pool.
#
# Usage: tests/unit/rados-run.sh TEST-BINARY [ARGS...]
# Exits 77 (skip) when Ceph is not installed.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
ctl=$top/scripts/ceph-cluster.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vtmem-ceph.XXXXXX")
dir=$tmp/cluster
trap '"$ctl" stop "$dir"; rm -rf "$tmp"' EXIT INT TERM
rc=0
"$ctl" start "$dir" tmem || rc=$?
if [ $rc = 77 ]; then
	echo "SKIP: Ceph is not installed (apt-get install ceph-mon ceph-osd)"
	exit 77
fi
[ $rc = 0 ] || { tail -n 20 "$dir"/log/*.log >&2 || true; exit 1; }
"$ctl" user "$dir" vm1 vm1
VTMEM_CEPH_DIR=$dir VTMEM_CEPH_POOL=tmem VTMEM_CEPH_CTL=$ctl "$@"
