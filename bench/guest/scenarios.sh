# Guest half of the swap benchmark (sourced by tests/vm/guest/init.sh,
# which bench/vm/swapbench.py puts into the image with this file in place
# of the tests' scenarios.sh).  The host half and the sizes are in
# bench/vm/swapbench.py.
#
#   vtmem.scenario=bench vtmem.opt=tmem|blk|zram vtmem.swap_mb=N
#   [vtmem.backing=SERIAL]   (tmem: the backing device for refused pages)
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
		load_vtmem "$@" || return 1
		dev=/dev/vtmem0
		;;
	blk)
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
}

scn_bench() {
	# Nothing but the device under test compresses pages.
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
	checkpoint ready
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
		extra=
		[ -r /sys/block/zram0/mm_stat ] && [ "$VT_OPT" = zram ] &&
			extra="\"zram_mm_stat\":\"$(cat /sys/block/zram0/mm_stat)\""
		checkpoint "after-$tag" "$extra"
		[ "$VT_OPT" = zram ] && echo 0 > /sys/block/zram0/mem_used_max
		# The next workload starts with empty swap (exited process).
		sync
		sleep 1
	done
}
