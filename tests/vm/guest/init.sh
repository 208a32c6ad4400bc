#!/bin/busybox sh
# /init of the virtio-tmem test initramfs.
#
# Mounts the pseudo file systems, loads the base modules, then runs the
# scenario named by vtmem.scenario= on the kernel command line (see
# scenarios.sh) and reports to the host runner (scripts/vm/vmrun.py) over
# the second serial port, /dev/ttyS1, which carries nothing but this
# protocol (the kernel console stays on ttyS0):
#
#   guest: VTMEM-CHECKPOINT {"name": ..., "guest": {sysfs counters}, ...}
#   host:  VTMEM-GO <boot number>        after it has read query-tmem
#   guest: VTMEM-RESULT {"ok": ..., "failures": [...], ...}
#   host:  VTMEM-GO <boot number>        then the guest powers off
#
# Every vtmem.KEY=VALUE on the command line becomes $VT_KEY.
/bin/busybox mkdir -p /bin
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null

for arg in $(cat /proc/cmdline); do
	case $arg in
	vtmem.*=*)
		key=${arg#vtmem.}
		key=${key%%=*}
		val=${arg#*=}
		key=$(echo "$key" | tr 'a-z-' 'A-Z_')
		export "VT_$key=$val"
		;;
	esac
done

. /lib/vtmem/lib.sh
. /lib/vtmem/scenarios.sh

proto_open

while read -r mod; do
	[ -n "$mod" ] && insmod "/lib/modules/$mod.ko"
done < /etc/vtmem/base-modules

# The first checkpoint tells the guest which boot this is (reboot tests).
checkpoint boot
VT_BOOT=$VT_GO_ARG

scenario=$(echo "${VT_SCENARIO:-none}" | tr - _)
if type "scn_$scenario" >/dev/null 2>&1; then
	"scn_$scenario"
else
	fail "unknown scenario ${VT_SCENARIO:-}"
fi
result
sync
poweroff -f
