#!/bin/sh
# Guest half of tests/vm/debian-guest.py, run at the end of every boot by the
# image's vtmem-harness.service (scripts/build-debian-image.sh) from the test
# disk, which also carries the virtio-tmem-dkms .deb.  It only acts as a
# user would and reports what it sees; the host decides.
#
# Boot 1: installs the .deb with dpkg (DKMS builds the module here, in the
# guest), edits /etc/default/virtio-tmem (priority, backing device) and
# reboots.  Boot 2: nothing but reporting: the unit's state and /proc/swaps;
# after the host's VTMEM-GO it stops and starts the unit, then powers off.
#
# Protocol on /dev/ttyS1: "VTMEM-DEB KEY VALUE..." lines; the host answers
# "VTMEM-GO" to "VTMEM-DEB checkpoint" after reading query-tmem.
here=/run/vtmem-harness
stage=/var/lib/vtmem-harness/stage
prio=${VTMEM_TEST_PRIORITY:-77}
backing=/dev/disk/by-id/virtio-vtmem-backing
unit=vtmem-swap@vtmem0.service

exec 3<>/dev/ttyS1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
say() { printf 'VTMEM-DEB %s\n' "$*" >&3; }
swaps() {
	while read -r line; do
		say "$1" "$line"
	done </proc/swaps
}
wait_go() {
	while read -r line <&3; do
		case $line in VTMEM-GO*) return 0 ;; esac
	done
	return 1
}
# The unit once it has settled (udev pulls it in when the disk appears).
wait_unit() {
	t=0
	while [ "$t" -lt 300 ]; do
		s=$(systemctl is-active "$unit")
		case $s in active | failed) break ;; esac
		sleep 1
		t=$((t + 1))
	done
	echo "$s"
}

if [ ! -f "$stage" ]; then
	say boot 1
	say kernel "$(uname -r)"
	swaps swaps-before
	t0=$(date +%s)
	dpkg -i "$here"/virtio-tmem-dkms_*.deb >"$here/dpkg.log" 2>&1
	rc=$?
	say dpkg-rc "$rc"
	say dpkg-seconds $(($(date +%s) - t0))
	sed 's/^/dpkg: /' "$here/dpkg.log"
	say dkms "$(dkms status virtio_tmem 2>/dev/null | tr '\n' ' ')"
	sed -i -e "s|^VTMEM_PRIORITY=.*|VTMEM_PRIORITY=$prio|" \
		-e "s|^VTMEM_BACKING_DEV=.*|VTMEM_BACKING_DEV=$backing|" \
		/etc/default/virtio-tmem
	say config "$(grep -E '^VTMEM_(PRIORITY|BACKING_DEV)=' /etc/default/virtio-tmem | tr '\n' ' ')"
	mkdir -p "${stage%/*}"
	echo installed >"$stage"
	sync
	say rebooting
	systemctl reboot
	exit 0
fi

say boot 2
say unit "$(wait_unit)"
swaps swaps
say module "$(grep -c '^virtio_tmem ' /proc/modules)"
say backing_dev "$(cat /sys/block/vtmem0/backing_dev 2>&1)"
say backing_path "$(readlink -f "$backing")"
say succ_stores "$(cat /sys/block/vtmem0/succ_stores 2>&1)"
journalctl -b -u "$unit" --no-pager 2>&1 | sed 's/^/journal: /'
say checkpoint
wait_go
systemctl stop "$unit"
say unit-stopped "$(systemctl is-active "$unit")"
swaps swaps-stopped
systemctl start "$unit"
say unit-restarted "$(systemctl is-active "$unit")"
swaps swaps-restarted
say finished
systemctl poweroff
