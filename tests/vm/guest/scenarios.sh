# Guest halves of the VM scenarios (sourced by /init).  Each scn_NAME runs
# in the guest, records failures with fail() and facts with data(), and
# stops at checkpoints where the host compares query-tmem with the guest's
# counters.  The host halves (sizes, devices, host-side checks) are in
# tests/vm/scenarios.py.

# Check a memtest result: finished, every page verified, nothing wrong.
check_workload() {
	if [ "$1" != 0 ]; then
		fail "workload ${VT_TAG:-workload} exited with status $1"
	fi
}

# Boot only: the runner's own smoke test and the KVM probe.
scn_boot() {
	data mem_total_kb "$(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
}

# Swap on /dev/vtmem0 under a workload bigger than RAM, verified over
# sequential, random and rewrite passes.  With vtmem.backing= the module
# writes rejected pages to that disk.
scn_swap() {
	load_vtmem $(vtmem_params) || return
	swapon_vtmem || return
	set -- mem --mb "$VT_MB" --seq "${VT_SEQ:-1}" --random "${VT_RANDOM:-1}" \
		--rewrite --mix "${VT_MIX:-mixed}"
	if [ -z "${VT_HOLD:-}" ]; then
		VT_TAG=workload memtest "$@"
		check_workload $?
	else
		# Checkpoint while the workload's pages are still out.
		rm -f /tmp/ready
		VT_TAG=workload memtest "$@" --hold /tmp/ready &
		pid=$!
		while [ ! -s /tmp/ready ] && kill -0 $pid 2>/dev/null; do
			sleep 1
		done
		if [ -s /tmp/ready ]; then
			settle
			checkpoint holding
			kill -USR1 "$(cat /tmp/ready)"
		fi
		wait $pid
		check_workload $?
	fi
	settle
	checkpoint after-workload
	data swaps "\"$(tail -n +2 /proc/swaps | awk '{ print $1 ":" $4 }' | paste -sd' ' -)\""
}

# No backing disk and a tiny budget: a STORE the host refuses fails the
# swap write and the kernel keeps that page in RAM.  The workload grows
# past the guest's RAM until the host has refused vtmem.refusals pages,
# then verifies everything it wrote: refused pages stayed in RAM, accepted
# ones come back from the host, none may come back wrong.  Growing on
# would only end in the OOM killer.
scn_nobacking() {
	load_vtmem $(vtmem_params) || return
	swapon_vtmem || return
	data mem_available_mb "$(awk '/MemAvailable/ { print int($2 / 1024) }' /proc/meminfo)"
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 1 --random 1 \
		--mix "${VT_MIX:-mixed}" \
		--stop-when "$(counter_dir vtmem0)/failed_stores=${VT_REFUSALS:-2000}"
	check_workload $?
	settle
	checkpoint after-workload
	# The guest is still here and can still swap.
	VT_TAG=after memtest mem --mb 16 --seq 1 --random 1
	check_workload $?
}

# swapoff while the host holds pages: everything must come back (through
# the plain swap disk at lower priority), then the host holds nothing.
scn_swapoff() {
	load_vtmem $(vtmem_params) || return
	plain=$(disk_by_serial "$VT_PLAIN") || { fail "no plain swap disk"; return; }
	mkswap "$plain" > /dev/null && vtmem-swapon "$plain" 10 ||
		{ fail "swapon $plain"; return; }
	swapon_vtmem || return
	rm -f /tmp/ready
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 1 --random 1 \
		--hold /tmp/ready &
	pid=$!
	while [ ! -s /tmp/ready ] && kill -0 $pid 2>/dev/null; do
		sleep 1
	done
	[ -s /tmp/ready ] || { fail "workload died before swapoff"; return; }
	wpid=$(cat /tmp/ready)
	settle
	checkpoint before-swapoff
	if ! swapoff /dev/vtmem0; then
		fail "swapoff /dev/vtmem0"
	fi
	settle
	# Only the swap header that mkswap wrote may still be in the host.
	checkpoint after-swapoff
	kill -USR1 "$wpid"
	wait $pid
	check_workload $?
	# Discarding the whole disk leaves the host nothing at all.
	blkdiscard /dev/vtmem0 || fail "blkdiscard /dev/vtmem0"
	settle
	checkpoint after-discard
}

# Block-level life cycle: data written to /dev/vtmem0 stays in the host
# until the module goes; unload, reload and a reboot all start empty.
scn_lifecycle() {
	if [ "$VT_BOOT" -ge 2 ]; then
		# The boot checkpoint already showed the host after the reset.
		load_vtmem || return
		VT_TAG=after_reboot_zero memtest blk /dev/vtmem0 --mb 4 --op zero
		check_workload $?
		VT_TAG=after_reboot_write memtest blk /dev/vtmem0 --mb 4 --op write
		check_workload $?
		VT_TAG=after_reboot_verify memtest blk /dev/vtmem0 --mb 4 --op verify
		check_workload $?
		return
	fi
	load_vtmem || return
	VT_TAG=write memtest blk /dev/vtmem0 --mb "$VT_MB" --op write
	check_workload $?
	settle
	checkpoint written
	VT_TAG=verify memtest blk /dev/vtmem0 --mb "$VT_MB" --op verify
	check_workload $?
	rmmod virtio_tmem || fail "rmmod virtio_tmem"
	checkpoint unloaded
	load_vtmem || return
	checkpoint reloaded
	VT_TAG=zero memtest blk /dev/vtmem0 --mb "$VT_MB" --op zero
	check_workload $?
	VT_TAG=rewrite memtest blk /dev/vtmem0 --mb "$VT_MB" --op write
	check_workload $?
	settle
	checkpoint before-reboot
	sync
	reboot -f
}

# Malformed requests through the test build's debugfs knob.
scn_hostile() {
	load_vtmem || return
	/bin/vtmem-hostile > /tmp/hostile.json 2> /tmp/hostile.err
	rc=$?
	cat /tmp/hostile.err > /dev/console
	data hostile "$(cat /tmp/hostile.json 2>/dev/null || echo null)"
	[ $rc = 0 ] || fail "hostile requests: $rc"
	checkpoint after-hostile
	# The device still serves the swap path.
	swapon_vtmem || return
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 1 --random 1
	check_workload $?
	settle
	checkpoint after-workload
	swapoff /dev/vtmem0 || { fail "swapoff"; return; }

	# DEV-5: a chain with no room for the answer makes the device set
	# NEEDS_RESET; the driver brings it up again with a new pool.  Data
	# the host held is gone: reading it must fail, never return zeroes.
	VT_TAG=before_reset memtest blk /dev/vtmem0 --mb 4 --op write --mix text
	check_workload $?
	settle
	checkpoint before-reset
	/bin/vtmem-hostile needs-reset > /tmp/reset.json 2> /tmp/reset.err
	rc=$?
	cat /tmp/reset.err > /dev/console
	data needs_reset "$(cat /tmp/reset.json 2>/dev/null || echo null)"
	[ $rc = 0 ] || fail "needs-reset request: $rc"
	sleep 2
	settle
	checkpoint after-reset
	VT_TAG=lost memtest blk /dev/vtmem0 --mb 4 --op verify --mix text
	[ $? != 0 ] || fail "pages held before the reset read back without error"
	VT_TAG=after_reset_write memtest blk /dev/vtmem0 --mb 4 --offset-mb 8 --op write
	check_workload $?
	VT_TAG=after_reset_verify memtest blk /dev/vtmem0 --mb 4 --offset-mb 8 --op verify
	check_workload $?
	settle
	checkpoint after-reset-io
}

# A host the driver must not trust (proto/SPEC.md DRV-5, DRV-8, DRV-9).
# The device's hints are absurd (the host half sets budget=64T: a
# capacity hint of 2^34 pages and, with F_SIZE, a size of 2^32-1 pages,
# which the driver takes instead): the module must clamp the one it uses,
# with one message, not fail to allocate its slot maps.  The test
# build's fault knobs (vtmem_test.c) then make the host answer LOADs
# without the page, which must fail, and answer nothing at all, which
# must fail the device after io_timeout instead of hanging a pool
# operation, I/O or rmmod.
scn_hostile_host() {
	load_vtmem io_timeout=3 || return
	dir=$(counter_dir vtmem0)
	knobs=/sys/kernel/debug/virtio_tmem/vtmem0
	data disksize "$(cat "$dir/disksize")"
	data mem_total_kb "$(awk '/MemTotal/ { print $2 }' /proc/meminfo)"
	data clamp_dmesg "$(dmesg | grep -c -e 'capacity hint of .* is beyond' \
		-e 'size of .* is beyond')"

	VT_TAG=short_write memtest blk /dev/vtmem0 --mb 2 --op write --mix text
	check_workload $?
	settle
	checkpoint short-written
	before=$(counter load_errors)
	echo 100000 > "$knobs/fault_short_loads" || fail "no fault_short_loads knob"
	VT_TAG=short_read memtest blk /dev/vtmem0 --mb 2 --op verify --mix text
	[ $? != 0 ] || fail "LOADs answered without their page read back without error"
	echo 0 > "$knobs/fault_short_loads"
	data short_load_errors $(($(counter load_errors) - before))
	data short_dmesg "$(dmesg | grep -c 'answer of 8 bytes, 4104 expected')"
	# The host did write the pages: with honest answers they read back.
	VT_TAG=short_verify memtest blk /dev/vtmem0 --mb 2 --op verify --mix text
	check_workload $?

	echo Y > "$knobs/fault_hold_answers" || fail "no fault_hold_answers knob"
	t0=$(date +%s)
	if echo 64M > "$dir/disksize"; then
		fail "resizing with a host that never answers succeeded"
	fi
	data hold_pool_seconds $(($(date +%s) - t0))
	data hold_dmesg "$(dmesg | grep -c 'no answer from the device')"
	t0=$(date +%s)
	VT_TAG=dead_write memtest blk /dev/vtmem0 --mb 1 --op write
	[ $? != 0 ] || fail "writes to a failed device succeeded"
	data dead_io_seconds $(($(date +%s) - t0))
	settle
	checkpoint failed
	rmmod virtio_tmem || fail "rmmod virtio_tmem after the device failed"
	# A new probe resets the device: it works again.
	load_vtmem || return
	VT_TAG=after_write memtest blk /dev/vtmem0 --mb 2 --op write
	check_workload $?
	VT_TAG=after_verify memtest blk /dev/vtmem0 --mb 2 --op verify
	check_workload $?
	settle
	checkpoint reloaded
}

# The same workload with swap on a plain virtio-blk disk only: the
# comparison baseline (no virtio-tmem involved).
scn_plainswap() {
	plain=$(disk_by_serial "$VT_PLAIN") || { fail "no plain swap disk"; return; }
	mkswap "$plain" > /dev/null && vtmem-swapon "$plain" 10 ||
		{ fail "swapon $plain"; return; }
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq "${VT_SEQ:-2}" \
		--random "${VT_RANDOM:-1}" --rewrite --mix "${VT_MIX:-mixed}"
	check_workload $?
}

# vtmem.procs workloads at once (different seeds), for the multi-queue
# device with several vCPUs: concurrent bios on different queues.
scn_parallel() {
	load_vtmem $(vtmem_params) || return
	swapon_vtmem || return
	data num_queues "$(cat "$(counter_dir vtmem0)/num_queues" 2>/dev/null || echo 0)"
	pids=
	i=0
	while [ $i -lt "${VT_PROCS:-2}" ]; do
		VT_TAG=workload$i memtest mem --mb "$VT_MB" --seq "${VT_SEQ:-1}" \
			--random "${VT_RANDOM:-1}" \
			--rewrite --seed $((i + 7)) &
		pids="$pids $!"
		i=$((i + 1))
	done
	i=0
	for p in $pids; do
		wait "$p"
		rc=$?
		[ $rc = 0 ] || fail "workload$i exited with status $rc"
		i=$((i + 1))
	done
	settle
	checkpoint after-workload
}

# The host's disk tier failing under the guest.  The host half injects the
# errors (qom-set x-disk-error) at the checkpoints named here.
#
# Read errors first, on the block device itself: pages written with
# O_DIRECT, more than the host's budget holds, so that the host wrote the
# oldest to its file; with disk reads failing, reading them back must fail
# (EIO), never return other data; once the errors stop, every page reads
# back intact.  Not through swap: a failed swap-in kills whichever process
# owned the page with SIGBUS, and that could be /init, this shell.
#
# Then write errors, under swap: the tier fails on its first write-back, the
# host refuses what its budget cannot hold, and the guest writes those
# pages to its backing disk; nothing is lost.
scn_tier_errors() {
	load_vtmem $(vtmem_params) || return
	VT_TAG=blk_write memtest blk /dev/vtmem0 --mb "$VT_BLK_MB" --op write
	check_workload $?
	settle
	checkpoint blk-written		# the host: x-disk-error=read
	before=$(counter load_errors)
	VT_TAG=blk_read_error memtest blk /dev/vtmem0 --mb "$VT_BLK_MB" --op verify
	[ $? != 0 ] || fail "reads from a failing disk tier all succeeded"
	data read_error_load_errors $(($(counter load_errors) - before))
	data read_error_dmesg "$(dmesg | grep -c 'LOAD failed')"
	settle
	checkpoint read-failed		# the host: x-disk-error=none
	VT_TAG=blk_verify memtest blk /dev/vtmem0 --mb "$VT_BLK_MB" --op verify
	check_workload $?
	blkdiscard /dev/vtmem0 || fail "blkdiscard /dev/vtmem0"
	settle
	checkpoint discarded		# the host: x-disk-error=write
	swapon_vtmem || return
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 1 --random 0 \
		--mix "${VT_MIX:-mixed}"
	check_workload $?
	settle
	checkpoint after-workload
}

# Pages moved back to the backing disk (VIRTIO_TMEM_F_RETURN) on a device
# without the feature: the test build's fake_target_pages stands in for
# the device's target_pages.  Half of what the host holds is asked back
# while the workload's pages are out; every page must verify afterwards.
# Then a backing write fails (fault_return_write_errors): state failed,
# and the pages stay in the host.
scn_return_fake() {
	load_vtmem $(vtmem_params) return_rate="${VT_RATE:-16384}" || return
	swapon_vtmem || return
	dir=$(counter_dir vtmem0)
	knobs=/sys/kernel/debug/virtio_tmem/vtmem0
	rm -f /tmp/ready
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 0 --random 0 --rewrite \
		--mix mixed --hold /tmp/ready &
	pid=$!
	while [ ! -s /tmp/ready ] && kill -0 $pid 2>/dev/null; do
		sleep 1
	done
	settle
	checkpoint holding
	held=$(counter pages_in_host)
	target=$((held / 2))
	data held "$held"
	data target "$target"
	# DRV-11: return_rate 0 refuses, and says so; setting it again resumes.
	echo 0 > /sys/module/virtio_tmem/parameters/return_rate
	echo "$target" > "$knobs/fake_target_pages" || fail "no fake_target_pages knob"
	sleep 3
	data state_refused "\"$(cat "$dir/return_state")\""
	data refused_returned "$(counter returned_pages)"
	t0=$(date +%s)
	# Review #6: LOADs of pages asked back that fail count on their own.
	echo 3 > "$knobs/fault_short_loads"
	echo "${VT_RATE:-16384}" > /sys/module/virtio_tmem/parameters/return_rate
	sleep 1
	data state_active "\"$(cat "$dir/return_state")\""
	i=0
	while [ "$(counter pages_in_host)" -gt "$target" ] && [ $i -lt 300 ]; do
		sleep 1
		i=$((i + 1))
	done
	data return_seconds $(($(date +%s) - t0))
	sleep 2
	data state_done "\"$(cat "$dir/return_state")\""
	data host_target "\"$(cat "$dir/host_target_pages")\""
	data returned "$(counter returned_pages)"
	data return_errors "$(counter return_errors)"
	settle
	checkpoint returned

	echo 1 > "$knobs/fault_return_write_errors"
	low=$((target / 2))
	echo "$low" > "$knobs/fake_target_pages"
	i=0
	while [ "$(cat "$dir/return_state")" != failed ] && [ $i -lt 60 ]; do
		sleep 1
		i=$((i + 1))
	done
	data state_failed "\"$(cat "$dir/return_state")\""
	data low "$low"
	data after_failed "$(counter pages_in_host)"
	# DRV-11: another target is tried at once (the fault is used up) ...
	echo 1 > "$knobs/fault_return_write_errors"
	low=$((low - 1))
	echo "$low" > "$knobs/fake_target_pages"
	sleep 2
	data retry_fault_left "$(cat "$knobs/fault_return_write_errors")"
	data state_failed2 "\"$(cat "$dir/return_state")\""
	# ... and the same target after a while on its own.
	t0=$(date +%s)
	i=0
	while [ "$(counter pages_in_host)" -gt "$low" ] && [ $i -lt 60 ]; do
		sleep 1
		i=$((i + 1))
	done
	data retry_seconds $(($(date +%s) - t0))
	data after_retry "$(counter pages_in_host)"
	data low2 "$low"
	echo 18446744073709551615 > "$knobs/fake_target_pages"
	sleep 2
	data state_none "\"$(cat "$dir/return_state")\""
	data host_target_none "\"$(cat "$dir/host_target_pages")\""
	settle
	checkpoint failed
	kill -USR1 "$(cat /tmp/ready)"
	wait $pid
	check_workload $?
	settle
	checkpoint after-workload
}

# The same while the workload writes, rewrites and reads its pages: every
# 2 s the fake target asks half of what the host holds back, so returns
# race with stores, reads and frees of the same slots (DRV-10).
scn_return_fake_busy() {
	load_vtmem $(vtmem_params) return_rate="${VT_RATE:-16384}" || return
	swapon_vtmem || return
	knobs=/sys/kernel/debug/virtio_tmem/vtmem0
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 1 --random 1 --rewrite \
		--mix mixed &
	pid=$!
	n=0
	while kill -0 $pid 2>/dev/null; do
		sleep 2
		echo $(($(counter pages_in_host) / 2)) > "$knobs/fake_target_pages"
		n=$((n + 1))
	done
	wait $pid
	check_workload $?
	data targets "$n"
	data returned "$(counter returned_pages)"
	echo 18446744073709551615 > "$knobs/fake_target_pages"
	settle
	checkpoint after-workload
}

# Rewrites racing with moves (DRV-10): with a fake target of 0 the driver
# moves every page it can while O_DIRECT passes rewrite the same blocks,
# each pass with new content; the last pass must read back, none of the
# older ones, and no read may fail.
scn_return_fake_rewrite() {
	load_vtmem $(vtmem_params) return_rate="${VT_RATE:-16384}" || return
	knobs=/sys/kernel/debug/virtio_tmem/vtmem0
	echo 0 > "$knobs/fake_target_pages" || fail "no fake_target_pages knob"
	k=1
	while [ $k -le "${VT_PASSES:-16}" ]; do
		VT_TAG=pass memtest blk /dev/vtmem0 --mb "$VT_MB" --op write \
			--seed $k --mix text || fail "write pass $k"
		k=$((k + 1))
	done
	VT_TAG=workload memtest blk /dev/vtmem0 --mb "$VT_MB" --op verify \
		--seed $((k - 1)) --mix text
	check_workload $?
	data returned "$(counter returned_pages)"
	echo 18446744073709551615 > "$knobs/fake_target_pages"
	settle
	checkpoint after-workload
}

# --- Elastic memory: the host resizes the device's budget -----------------
# The host halves (tests/vm/scenarios.py elastic-*) qom-set the budget at
# the checkpoints named here and wait there for the device's
# TMEM_BUDGET_CHANGED event, or keep resizing while the workload runs.

# The driver's side of a shrink as checkpoint members, with the guest's
# clock (vtmem-memtest --duration's progress uses the same one).
elastic_attrs() {
	dir=$(counter_dir vtmem0) || dir=/nonexistent
	printf '"uptime":%s,"ret":{"host_target_pages":"%s","return_state":"%s"}' \
		"$(cut -d' ' -f1 /proc/uptime)" \
		"$(cat "$dir/host_target_pages" 2>/dev/null)" \
		"$(cat "$dir/return_state" 2>/dev/null)"
}

# Module parameters: the runner's, plus vtmem.return_rate=N.
elastic_params() {
	echo "$(vtmem_params)${VT_RETURN_RATE:+ return_rate=$VT_RETURN_RATE}"
}

# insmod with elastic_params; the backing disk, if any, must be taken (the
# module refuses one smaller than the disk and goes on without it).
load_elastic() {
	load_vtmem $(elastic_params) || return
	[ -z "${VT_BACKING:-}" ] && return
	b=$(cat "$(counter_dir vtmem0)/backing_dev")
	[ "$b" != none ] || { fail "the module took no backing device"; return 1; }
}

# memtest mem ARGS --hold in the background; returns once its pages are
# written and it waits (its shell in $VT_PID, the program in $VT_WPID).
start_held() {
	rm -f /tmp/ready
	memtest mem "$@" --hold /tmp/ready &
	VT_PID=$!
	while [ ! -s /tmp/ready ] && kill -0 $VT_PID 2>/dev/null; do
		sleep 1
	done
	if [ ! -s /tmp/ready ]; then
		fail "workload ${VT_TAG:-workload} ended before its hold"
		wait $VT_PID
		return 1
	fi
	VT_WPID=$(cat /tmp/ready)
}

release_held() {
	kill -USR1 "$VT_WPID"
	wait $VT_PID
	check_workload $?
}

# elastic-tier, elastic-return: the workload's pages are out and it holds
# still; at "holding" the host halves the budget and waits until the device
# is within it; "shrunk" shows where the pages went; then every page is
# read back.
scn_elastic_hold() {
	load_elastic || return
	data disksize "$(cat "$(counter_dir vtmem0)/disksize")"
	swapon_vtmem || return
	VT_TAG=workload start_held --mb "$VT_MB" --seq 0 --random 0 || return
	settle
	checkpoint holding "$(elastic_attrs)"
	settle
	checkpoint shrunk "$(elastic_attrs)"
	release_held
	settle
	checkpoint after-workload "$(elastic_attrs)"
}

# elastic-none: no disk tier, no backing device.  At "holding" the host
# halves the budget and waits for the device to say it is blocked.  New
# stores are then refused: a second workload grows until the host has
# refused vtmem.refusals more (those pages stay in RAM) and verifies.
# The first workload then reads its pages back, dropping each once
# checked: the only way the host's usage falls, until it is within the
# budget and the device says done.
scn_elastic_none() {
	load_elastic || return
	swapon_vtmem || return
	VT_TAG=workload start_held --mb "$VT_MB" --seq 0 --random 0 \
		--free-verified || return
	settle
	checkpoint holding "$(elastic_attrs)"
	checkpoint blocked "$(elastic_attrs)"
	n=$(($(counter failed_stores) + ${VT_REFUSALS:-200}))
	VT_TAG=refused memtest mem --mb "$VT_REFUSED_MB" --seq 1 --random 0 \
		--stop-when "$(counter_dir vtmem0)/failed_stores=$n"
	check_workload $?
	settle
	checkpoint refused "$(elastic_attrs)"
	release_held
	settle
	checkpoint after-workload "$(elastic_attrs)"
}

# elastic-resize, elastic-storm: a swap workload runs (rewrites, random
# passes, for vtmem.duration seconds) while the host, at "start", resizes
# the budget; the checkpoint ends when the host is done, the workload
# must still be running then.
scn_elastic_busy() {
	load_elastic || return
	swapon_vtmem || return
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 1 --random 1 --rewrite \
		--duration "$VT_DURATION" &
	pid=$!
	# Start once the host holds a good part of the workload.
	i=0
	while [ "$(counter pages_in_host)" -lt "${VT_WARM_PAGES:-8192}" ] &&
	      [ $i -lt 120 ] && kill -0 $pid 2>/dev/null; do
		sleep 1
		i=$((i + 1))
	done
	checkpoint start "$(elastic_attrs)"
	if kill -0 $pid 2>/dev/null; then
		data running_after_resizes true
	else
		data running_after_resizes false
	fi
	wait $pid
	check_workload $?
	settle
	checkpoint after-workload "$(elastic_attrs)"
}

# host-pool: one of three guests whose devices share the host's pool
# (tests/vm/pool.py).  A swap workload of random pages (the host holds
# them raw: what it holds is what the guest stores) runs for
# vtmem.duration seconds while the host measures the shares; the pages
# the host refuses or asks back go to the backing disk; every page is
# verified.
scn_pool() {
	load_elastic || return
	swapon_vtmem || return
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 1 --random 1 --rewrite \
		--mix random --duration "$VT_DURATION"
	check_workload $?
	settle
	checkpoint after-workload "$(elastic_attrs)"
}

# elastic-reset: a shrink under way (the driver moving pages back at
# vtmem.return_rate) when the guest swaps off, then when the device is
# reset (rmmod).  A plain swap disk takes the pages at swapoff.
scn_elastic_reset() {
	load_elastic || return
	plain=$(disk_by_serial "$VT_PLAIN") || { fail "no plain swap disk"; return; }
	mkswap "$plain" > /dev/null && vtmem-swapon "$plain" 10 ||
		{ fail "swapon $plain"; return; }
	swapon_vtmem || return
	VT_TAG=workload start_held --mb "$VT_MB" --seq 0 --random 0 || return
	settle
	# The host halves the budget and waits until pages are moving back.
	checkpoint holding "$(elastic_attrs)"
	data returned_at_swapoff "$(counter returned_pages)"
	data target_at_swapoff "\"$(cat "$(counter_dir vtmem0)/host_target_pages")\""
	swapoff /dev/vtmem0 || fail "swapoff /dev/vtmem0 during a shrink"
	settle
	checkpoint after-swapoff "$(elastic_attrs)"
	release_held

	blkdiscard /dev/vtmem0 || fail "blkdiscard /dev/vtmem0"
	VT_TAG=blk_write memtest blk /dev/vtmem0 --mb "$VT_BLK_MB" --op write
	check_workload $?
	settle
	checkpoint blk-written "$(elastic_attrs)"
	# Read everything back while pages move to the backing device.
	VT_TAG=blk_verify memtest blk /dev/vtmem0 --mb "$VT_BLK_MB" --op verify
	check_workload $?
	data returned_at_rmmod "$(counter returned_pages)"
	checkpoint before-rmmod "$(elastic_attrs)"
	rmmod virtio_tmem || fail "rmmod virtio_tmem during a shrink"
	checkpoint unloaded
	load_elastic || return
	checkpoint reloaded "$(elastic_attrs)"
	VT_TAG=after_write memtest blk /dev/vtmem0 --mb 4 --op write
	check_workload $?
	VT_TAG=after_verify memtest blk /dev/vtmem0 --mb 4 --op verify
	check_workload $?
	settle
	checkpoint after-io "$(elastic_attrs)"
}

# The elastic benchmark (bench/vm/elastic.py): a shrink with the guest
# quiet (a held workload), then one while a workload runs random passes
# for vtmem.duration seconds; "busy" comes vtmem.baseline seconds into
# those, so that its progress samples give the throughput before and
# during the shrink.
scn_elastic_bench() {
	load_elastic || return
	swapon_vtmem || return
	VT_TAG=quiet start_held --mb "$VT_MB" --seq 0 --random 0 \
		--free-verified || return
	settle
	checkpoint holding "$(elastic_attrs)"	# the host halves, waits, grows
	VT_TAG=quiet release_held
	settle
	VT_TAG=busy memtest mem --mb "$VT_MB" --seq 0 --random 1 \
		--duration "$VT_DURATION" &
	pid=$!
	sleep "$VT_BASELINE"
	checkpoint busy "$(elastic_attrs)"	# the host halves, waits
	checkpoint busy-done "$(elastic_attrs)"
	wait $pid
	check_workload $?
	settle
	checkpoint after-workload "$(elastic_attrs)"
}

# DRV-10's order, made to happen (test build): the worker waits
# VT_RACE_MS between its LOADs and its backing writes, and a STORE of a
# slot it holds then reads REJECTED, so the store's own backing write
# races with the worker's older copy.  The store's must land last: every
# pass reads back at once.
scn_return_fake_race() {
	load_vtmem $(vtmem_params) return_rate="${VT_RATE:-16384}" || return
	knobs=/sys/kernel/debug/virtio_tmem/vtmem0
	echo "${VT_RACE_MS:-100}" > "$knobs/fault_return_race_ms" ||
		fail "no fault_return_race_ms knob"
	echo 0 > "$knobs/fake_target_pages" || fail "no fake_target_pages knob"
	k=1
	bad=0
	# At least VT_PASSES passes, more (up to 100, a quarter of a second
	# each) until a STORE raced with the worker: it looks for pages
	# once a second, and 8 passes can end before it finds any (seen:
	# 0 races in 2 of 5 runs).
	while [ $k -le "${VT_PASSES:-8}" ] ||
	      { [ "$(cat "$knobs/return_races")" -eq 0 ] && [ $k -le 100 ]; }; do
		VT_TAG=pass memtest blk /dev/vtmem0 --mb "$VT_MB" --op write \
			--seed $k --mix text || fail "write pass $k"
		VT_TAG=workload memtest blk /dev/vtmem0 --mb "$VT_MB" \
			--op verify --seed $k --mix text || bad=$k
		[ $bad -eq 0 ] || break
		k=$((k + 1))
	done
	echo 0 > "$knobs/fault_return_race_ms"
	data bad_pass "$bad"
	data races "$(cat "$knobs/return_races")"
	# Each pass rewrites the slots the worker holds, so a batch may be
	# given up every time (seen in CI: 10 races, nothing moved before the
	# passes ended).  Without the hold the worker moves the last pass's
	# pages, which must then read back from the backing disk.
	r0=$(counter returned_pages)
	i=0
	while [ "$(counter returned_pages)" -eq "$r0" ] && [ $i -lt 30 ]; do
		sleep 1
		i=$((i + 1))
	done
	r1=$(counter returned_pages)
	data returned "$r1"
	data returned_after_passes $((r1 - r0))
	echo 18446744073709551615 > "$knobs/fake_target_pages"
	[ $bad -eq 0 ]
	check_workload $?
	data backing_reads_before_moved "$(counter backing_reads)"
	if [ $bad -eq 0 ]; then
		VT_TAG=moved memtest blk /dev/vtmem0 --mb "$VT_MB" \
			--op verify --seed $((k - 1)) --mix text
		check_workload $?
	fi
	settle
	checkpoint after-workload
}

# Warnings and errors of the driver in the kernel log (levels 0-4 of
# virtio_tmem or its disk, but for the taint of loading it), each copied
# to the console.
driver_errors() {
	dmesg -r | grep -E '^<[0-4]>' | grep -E 'virtio_tmem|vtmem[0-9]' |
		grep -v 'out-of-tree module taints kernel' > /tmp/drv.err
	cat /tmp/drv.err > /dev/console
	wc -l < /tmp/drv.err
}

# migrate-live, migrate-fail (tests/vm/migrate.py): a swap workload
# rewrites and verifies its pages (memtest --churn) while the host, at
# "migrate", moves the VM from QEMU to QEMU (live migrations, a cancelled
# one, a failed one, a snapshot to a file and its restore); this shell
# waits there.  Afterwards the workload checks every page once more,
# dropping each once checked (that pass only loads).
scn_migrate() {
	load_vtmem $(vtmem_params) || return
	data num_queues "$(cat "$(counter_dir vtmem0)/num_queues" 2>/dev/null || echo 0)"
	swapon_vtmem || return
	rm -f /tmp/ready
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 0 --random 0 \
		--churn /tmp/ready --free-verified &
	pid=$!
	while [ ! -s /tmp/ready ] && kill -0 $pid 2>/dev/null; do
		sleep 1
	done
	if [ ! -s /tmp/ready ]; then
		fail "the workload ended before it churned"
		wait $pid
		check_workload $?
		return
	fi
	wpid=$(cat /tmp/ready)
	checkpoint migrate '"churning":true'
	if kill -0 "$wpid" 2>/dev/null; then
		data churning_after_migrations true
	else
		data churning_after_migrations false
	fi
	kill -USR1 "$wpid"
	wait $pid
	check_workload $?
	settle
	checkpoint after-workload
	data driver_errors "$(driver_errors)"
}

# The migration benchmark (bench/vm/migrate.py): swap on /dev/vtmem0 or,
# with vtmem.plain=SERIAL, on that virtio-blk disk instead.  The workload
# writes its pages and holds still ("quiet": the host migrates the VM),
# then churns them for a while ("busy": migrated again), then checks
# every page.
scn_migrate_bench() {
	if [ -n "${VT_PLAIN:-}" ]; then
		plain=$(disk_by_serial "$VT_PLAIN") ||
			{ fail "no plain swap disk"; return; }
		mkswap "$plain" > /dev/null && vtmem-swapon "$plain" 100 ||
			{ fail "swapon $plain"; return; }
	else
		load_vtmem $(vtmem_params) || return
		swapon_vtmem || return
	fi
	rm -f /tmp/ready /tmp/churn
	VT_TAG=workload memtest mem --mb "$VT_MB" --seq 0 --random 0 \
		--hold /tmp/ready --churn /tmp/churn --free-verified &
	pid=$!
	while [ ! -s /tmp/ready ] && kill -0 $pid 2>/dev/null; do
		sleep 1
	done
	[ -s /tmp/ready ] || { fail "the workload ended before its hold"; return; }
	wpid=$(cat /tmp/ready)
	settle
	checkpoint quiet "\"swap_used_kb\":$(awk 'NR > 1 { s += $4 } END { print s + 0 }' /proc/swaps)"
	kill -USR1 "$wpid"
	while [ ! -s /tmp/churn ] && kill -0 $pid 2>/dev/null; do
		sleep 1
	done
	sleep "${VT_BUSY_AFTER:-10}"
	checkpoint busy
	kill -USR1 "$wpid"
	wait $pid
	check_workload $?
	settle
	checkpoint after-workload
	data driver_errors "$(driver_errors)"
}
