#!/bin/sh
# A throwaway single-node Ceph cluster for the RADOS tier's tests: one
# monitor and one OSD (bluestore on a sparse file), no manager, bound to
# 127.0.0.1 on a free port, everything (configuration, keys, data, logs,
# sockets, pid files) under one directory.  Debian's ceph-mon and
# ceph-osd packages; nothing of the host's /etc/ceph or /var/lib/ceph is
# read or written, and no systemd unit is involved.
#
# Usage:
#   scripts/ceph-cluster.sh start DIR [POOL]   (default pool: tmem)
#   scripts/ceph-cluster.sh stop DIR           (by pid; removes DIR)
#   scripts/ceph-cluster.sh osd-stop DIR       (the OSD only: a fault)
#   scripts/ceph-cluster.sh osd-start DIR
#   scripts/ceph-cluster.sh user DIR NAME NAMESPACE [POOL]
#       a cephx user client.NAME whose caps reach only NAMESPACE of the
#       pool; its keyring is DIR/client.NAME.keyring
#
# start prints nothing on success; DIR/ceph.conf then names the monitor
# and DIR/keyring holds client.admin's key, so that
#   rados -c DIR/ceph.conf -p tmem ls
# works.  It exits 77 (skip) when Ceph is not installed, 1 when the
# cluster did not come up (DIR/log/ has the daemons' logs).
set -eu

log() { printf 'ceph-cluster: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ $# -ge 2 ] || die "usage: $0 start|stop|osd-stop|osd-start|user DIR ..."
cmd=$1
dir=$2

conf=$dir/ceph.conf
ceph_() { timeout 30 ceph -c "$conf" "$@"; }

pid_stop() {
	f=$dir/run/$1.pid
	[ -f "$f" ] || return 0
	p=$(cat "$f")
	kill "$p" 2>/dev/null || { rm -f "$f"; return 0; }
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	kill -9 "$p" 2>/dev/null || true
	rm -f "$f"
}

osd_start() {
	ceph-osd -c "$conf" -i 0 2>>"$dir/log/start.log" ||
		die "ceph-osd did not start (see $dir/log)"
	# Up when it takes a write; 60 s allows a loaded machine.
	i=0
	until timeout 10 rados -c "$conf" -p "$(cat "$dir/pool")" put \
		ceph-cluster.probe "$conf" 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 30 ] || die "the OSD takes no write after 60 s (see $dir/log)"
		sleep 2
	done
}

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case $cmd in
start)
	pool=${3:-tmem}
	for b in ceph-mon ceph-osd ceph monmaptool ceph-authtool rados; do
		command -v $b >/dev/null || {
			log "$b not found: install ceph-mon and ceph-osd"
			exit 77
		}
	done
	[ ! -e "$dir" ] || die "$dir exists: give a new directory"
	mkdir -p "$dir/mon" "$dir/osd" "$dir/run" "$dir/log"
	chmod 700 "$dir"
	echo "$pool" > "$dir/pool"
	fsid=$(cat /proc/sys/kernel/random/uuid)
	port=$(free_port)
	cat > "$conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$port
mon initial members = a
public addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
run dir = $dir/run
admin socket = $dir/run/\$name.asok
pid file = $dir/run/\$name.pid
log file = $dir/log/\$name.log
crash dir = $dir/log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
auth allow insecure global id reclaim = false
[mon]
mon data = $dir/mon/\$name
[osd]
osd data = $dir/osd/\$name
keyring = $dir/osd/\$name/keyring
osd objectstore = bluestore
bluestore block path = $dir/osd/\$name/block.file
bluestore block create = true
bluestore block size = 4294967296
bluestore block db create = false
bluestore block wal create = false
bluestore cache autotune = false
bluestore cache size = 67108864
osd memory target = 939524096
osd max object name len = 256
osd max object namespace len = 64
osd op num shards = 1
osd op num threads per shard = 2
EOF
	ceph-authtool --create-keyring "$dir/mon.keyring" --gen-key -n mon. \
		--cap mon 'allow *' >/dev/null
	ceph-authtool --create-keyring "$dir/keyring" --gen-key \
		-n client.admin --cap mon 'allow *' --cap osd 'allow *' \
		--cap mgr 'allow *' >/dev/null
	ceph-authtool "$dir/mon.keyring" --import-keyring "$dir/keyring" \
		>/dev/null
	monmaptool --create --addv a "[v2:127.0.0.1:$port]" --fsid "$fsid" \
		"$dir/monmap" >/dev/null
	ceph-mon -c "$conf" --mkfs -i a --monmap "$dir/monmap" \
		--keyring "$dir/mon.keyring" 2>>"$dir/log/mkfs.log" ||
		die "ceph-mon --mkfs failed (see $dir/log)"
	ceph-mon -c "$conf" -i a 2>>"$dir/log/start.log" ||
		die "ceph-mon did not start (see $dir/log)"
	uuid=$(cat /proc/sys/kernel/random/uuid)
	id=$(ceph_ osd new "$uuid") || die "ceph osd new failed"
	[ "$id" = 0 ] || die "the new OSD is osd.$id, not osd.0"
	mkdir -p "$dir/osd/osd.0"
	ceph_ auth get-or-create osd.0 mon 'allow profile osd' \
		osd 'allow *' mgr 'allow profile osd' \
		-o "$dir/osd/osd.0/keyring" || die "no key for osd.0"
	ceph-osd -c "$conf" -i 0 --mkfs --osd-uuid "$uuid" \
		2>>"$dir/log/mkfs.log" >/dev/null ||
		die "ceph-osd --mkfs failed (see $dir/log)"
	ceph_ osd pool create "$pool" 8 >/dev/null 2>&1 ||
		die "ceph osd pool create $pool failed"
	ceph_ osd pool application enable "$pool" virtio-tmem \
		>/dev/null 2>&1 || true
	osd_start
	;;
stop)
	[ -d "$dir" ] || exit 0
	pid_stop osd.0
	pid_stop mon.a
	rm -rf "$dir"
	;;
osd-stop)
	pid_stop osd.0
	;;
osd-start)
	osd_start
	;;
user)
	[ $# -ge 4 ] || die "usage: $0 user DIR NAME NAMESPACE [POOL]"
	pool=${5:-$(cat "$dir/pool")}
	ceph_ auth get-or-create "client.$3" mon 'allow r' \
		osd "allow rwx pool=$pool namespace=$4" \
		-o "$dir/client.$3.keyring" || die "no key for client.$3"
	;;
*)
	die "unknown command '$cmd'"
	;;
esac
