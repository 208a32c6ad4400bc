# Guest half of the swap benchmark (sourced by tests/vm/guest/init.sh,
# which bench/vm/swapbench.py puts into the image with this file in place
# of the tests' scenarios.sh).  The host half and the sizes are in
# bench/vm/swapbench.py.
#
#   vtmem.scenario=bench vtmem.opt=tmem|blk|zram|zswap vtmem.swap_mb=N
#   [vtmem.backing=SERIAL]   (tmem: the backing device for refused pages)
#   [vtmem.modparams=A=1:B=2]  (tmem: more module parameters)
#   vtmem.workloads=seq:text,random:text,random:mixed vtmem.mb=N
#
# One swap device at priority 100, then each workload in turn
# (vtmem-bench-touch), with a checkpoint after each so that the host reads
# QEMU's RSS, the backing file and the device's counters at that moment.

bench_swapon() {
	case $VT_OPT in
	tmem)
		# vtmem.backing=SERIAL: that disk takes pages the host refuses.
		set -- disksize=$((VT_SWAP_MB * 1024 * 1024))
		if [ -n "${VT_BACKING:-}" ]; then
			bdev=$(disk_by_serial "$VT_BACKING") ||
				{ fail "no disk with serial $VT_BACKING"; return 1; }
			set -- "$@" backing_dev="$bdev"
		fi
		# shellcheck disable=SC2046
		load_vtmem "$@" $(echo "${VT_MODPARAMS:-}" | tr : ' ') ||
			return 1
		dev=/dev/vtmem0
		;;
	blk)
		dev=$(disk_by_serial bench-swap) ||
			{ fail "no disk with serial bench-swap"; return 1; }
		;;
	zswap)
		# (e) zswap (lz4, zsmalloc) in front of the virtio-blk disk, its
		# other settings Debian's defaults (max_pool_percent 20, shrinker
		# off); its pool lives in the guest's RAM like zram's.
		zp=/sys/module/zswap/parameters
		[ -w $zp/enabled ] || { fail "no zswap"; return 1; }
		echo lz4 > $zp/compressor || { fail "zswap: no lz4"; return 1; }
		echo zsmalloc > $zp/zpool 2>/dev/null
		echo Y > $zp/enabled || { fail "zswap: cannot enable"; return 1; }
		data zswap_params "{\"compressor\":\"$(cat $zp/compressor)\",\"zpool\":\"$(cat $zp/zpool)\",\"max_pool_percent\":$(cat $zp/max_pool_percent)}"
		dev=$(disk_by_serial bench-swap) ||
			{ fail "no disk with serial bench-swap"; return 1; }
		;;
	zram)
		[ -d /sys/block/zram0 ] || { fail "no zram0"; return 1; }
		echo lz4 > /sys/block/zram0/comp_algorithm ||
			{ fail "zram: no lz4"; return 1; }
		echo $((VT_SWAP_MB * 1024 * 1024)) > /sys/block/zram0/disksize
		dev=/dev/zram0
		;;
	*)
		fail "unknown vtmem.opt=$VT_OPT"
		return 1
		;;
	esac
	mkswap "$dev" > /dev/null || { fail "mkswap $dev"; return 1; }
	vtmem-swapon "$dev" 100 || { fail "swapon $dev"; return 1; }
	data device "\"$dev\""
	BENCH_DEV=$dev
}

# What the host cannot count, as checkpoint members: /proc/vmstat's swap
# counters; the swap disk's requests (reads + writes + discards completed,
# /sys/block/DEV/stat) and its virtio device's interrupts (/proc/interrupts,
# every queue's vector; 0 for zram, which has none); zswap's debugfs
# counters.
bench_readings() {
	printf '"vmstat":{%s}' "$(awk '$1 ~ /^(pswpin|pswpout|zswpin|zswpout)$/ {
		printf "%s\"%s\":%s", n++ ? "," : "", $1, $2 }' /proc/vmstat)"
	d=${BENCH_DEV#/dev/}
	# shellcheck disable=SC2046
	set -- $(cat "/sys/block/$d/stat")
	v=$(readlink -f "/sys/block/$d/device" 2>/dev/null)
	v=${v##*/}
	irqs=0
	case $v in
	virtio*)
		irqs=$(awk -v p="$v-" 'index($NF, p) == 1 && $NF !~ /config$/ {
			for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i }
			END { print s + 0 }' /proc/interrupts)
		;;
	esac
	printf ',"disk_ios":%s,"disk_irqs":%s' $(($1 + $5 + ${12:-0})) "$irqs"
	z=/sys/kernel/debug/zswap
	if [ "$VT_OPT" = zswap ] && [ -d $z ]; then
		printf ',"zswap":{%s}' "$(for f in $z/*; do
			printf '"%s":%s\n' "${f##*/}" "$(cat "$f")"; done |
			paste -sd, -)"
	fi
}

scn_bench() {
	# Nothing but the device under test compresses pages (zswap: (e)).
	[ -w /sys/module/zswap/parameters/enabled ] &&
		echo N > /sys/module/zswap/parameters/enabled
	bench_swapon || return
	data mem_total_kb "$(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
	[ -r /sys/block/zram0/comp_algorithm ] &&
		data zram_algorithm "\"$(cat /sys/block/zram0/comp_algorithm)\""
	# Warm-up: the guest touches all of its RAM once, so that QEMU's RSS
	# already holds it and each workload's RSS growth is its swap store.
	/bin/vtmem-bench-touch --mb "${VT_MEM_MB:-64}" --passes 0 > /dev/null ||
		fail "warm-up failed"
	# Baseline: the workload's own (emulated) cost per page, with no swap:
	# a random touch pass over a quarter of RAM.
	/bin/vtmem-bench-touch --mb $((${VT_MEM_MB:-64} / 4)) --pattern random \
		--mix mixed > /tmp/baseline.json || fail "baseline failed"
	data baseline "$(cat /tmp/baseline.json)"
	sync
	sleep 1
	checkpoint ready "$(bench_readings)"
	for w in $(echo "$VT_WORKLOADS" | tr , ' '); do
		pattern=${w%%:*}
		mix=${w#*:}
		tag=$(echo "$w" | tr : _)
		out=/tmp/bench-$tag.json
		/bin/vtmem-bench-touch --mb "$VT_MB" --pattern "$pattern" \
			--mix "$mix" --passes "${VT_PASSES:-1}" > "$out"
		rc=$?
		if [ -s "$out" ]; then
			data "$tag" "$(cat "$out")"
		else
			data "$tag" "{\"exit\":$rc}"
		fi
		case $rc in
		0) ;;
		137) data "${tag}_oom" true ;;	# the OOM killer: a result
		*) fail "workload $w exited with status $rc" ;;
		esac
		extra=$(bench_readings)
		[ -r /sys/block/zram0/mm_stat ] && [ "$VT_OPT" = zram ] &&
			extra="$extra,\"zram_mm_stat\":\"$(cat /sys/block/zram0/mm_stat)\""
		checkpoint "after-$tag" "$extra"
		[ "$VT_OPT" = zram ] && echo 0 > /sys/block/zram0/mem_used_max
		# The next workload starts with empty swap (exited process).
		sync
		sleep 1
	done
}
