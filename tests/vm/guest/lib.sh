# Helpers for the guest scenarios (sourced by /init; busybox ash).

VT_FAILURES=/tmp/vtmem-failures
VT_DATA=/tmp/vtmem-data
: > "$VT_FAILURES"
: > "$VT_DATA"

log() {
	echo "vtmem-test: $*" > /dev/console
}

# Record a failed check; the scenario goes on so the verdict shows them all.
fail() {
	log "FAIL: $*"
	printf '%s\n' "$*" | sed 's/["\\]/ /g' >> "$VT_FAILURES"
}

# Add "key": JSON-value to the verdict's data object.
data() {
	printf '"%s":%s\n' "$1" "$2" >> "$VT_DATA"
}

proto_open() {
	exec 3<> /dev/ttyS1
	stty -F /dev/ttyS1 raw -echo 2>/dev/null
}

proto_send() {
	printf '%s\n' "$*" >&3
}

# Wait for the host's VTMEM-GO; its argument lands in $VT_GO_ARG.
proto_wait() {
	while read -r line <&3; do
		case $line in
		VTMEM-GO*)
			VT_GO_ARG=${line#VTMEM-GO }
			return 0
			;;
		esac
	done
	log "protocol channel closed"
	poweroff -f
}

# The sysfs directory with the module's counters for disk $1 (vtmem0).
counter_dir() {
	for d in "/sys/block/$1/vtmem" "/sys/block/$1/stats_vtmem" "/sys/block/$1"; do
		[ -f "$d/succ_stores" ] && { echo "$d"; return 0; }
	done
	return 1
}

# req_* to polled: requests sent by kind, notifications each way and batches
# answered while polling (the transport's counters; swapbench reads them).
VT_COUNTERS="succ_stores failed_stores loads invalidates backing_writes backing_reads load_errors pages_in_host write_errors returned_pages req_stores req_loads req_invalidates kicks interrupts polled"

# The module's counters as a JSON object ({} while no disk exists).
counters() {
	dev=${1:-vtmem0}
	dir=$(counter_dir "$dev") || { echo '{}'; return 0; }
	out=
	for c in $VT_COUNTERS; do
		[ -r "$dir/$c" ] || continue
		v=$(cat "$dir/$c")
		out="$out${out:+,}\"$c\":${v:-0}"
	done
	echo "{$out}"
}

counter() {
	dir=$(counter_dir "${2:-vtmem0}") || { echo 0; return 0; }
	cat "$dir/$1" 2>/dev/null || echo 0
}

# Wait until the counters stop moving (deferred invalidates, writeback),
# so that a checkpoint compares a quiet guest with the host.
settle() {
	prev=
	i=0
	while [ $i -lt 60 ]; do
		sync
		cur=$(counters "$@")
		[ "$cur" = "$prev" ] && return 0
		prev=$cur
		sleep 1
		i=$((i + 1))
	done
	fail "counters still moving after 60 s"
}

# checkpoint NAME [EXTRA-JSON-MEMBERS]: let the host read query-tmem now.
# The guest reads its counters again right after the host's answer: under
# memory pressure the shell's own work moves them, so the host's figures
# must lie between the two readings (equal to both when nothing moved).
checkpoint() {
	proto_send "VTMEM-CHECKPOINT {\"name\":\"$1\",\"guest\":$(counters)${2:+,$2}}"
	proto_wait
	proto_send "VTMEM-POST {\"guest\":$(counters)}"
	proto_wait
}

result() {
	ok=true
	[ -s "$VT_FAILURES" ] && ok=false
	fl=$(sed 's/.*/"&"/' "$VT_FAILURES" | paste -sd, -)
	dl=$(paste -sd, "$VT_DATA")
	proto_send "VTMEM-RESULT {\"scenario\":\"$VT_SCENARIO\",\"ok\":$ok,\"kernel\":\"$(uname -r)\",\"boot\":${VT_BOOT:-0},\"guest\":$(counters),\"failures\":[$fl],\"data\":{$dl}}"
	proto_wait
}

# The /dev node of the virtio disk whose serial is $1 (set by the runner).
disk_by_serial() {
	for s in /sys/block/vd*/serial; do
		[ -r "$s" ] || continue
		if [ "$(cat "$s")" = "$1" ]; then
			d=${s%/serial}
			echo "/dev/${d##*/}"
			return 0
		fi
	done
	return 1
}

# insmod the project's module; the arguments are module parameters.
load_vtmem() {
	if ! insmod /lib/modules/virtio_tmem.ko "$@"; then
		fail "insmod virtio_tmem $*"
		return 1
	fi
	i=0
	while [ ! -b /dev/vtmem0 ] && [ $i -lt 50 ]; do
		usleep 100000
		i=$((i + 1))
	done
	[ -b /dev/vtmem0 ] || { fail "no /dev/vtmem0 after insmod"; return 1; }
	# The parameters in effect (the transport modes: vtmem.modparams=).
	pd=/sys/module/virtio_tmem/parameters
	[ -r $pd/poll_us ] && data module_params \
		"{\"poll_us\":$(cat $pd/poll_us),\"synchronous\":\"$(cat $pd/synchronous)\"}"
	return 0
}

swapon_vtmem() {
	mkswap /dev/vtmem0 > /dev/null || { fail "mkswap /dev/vtmem0"; return 1; }
	vtmem-swapon /dev/vtmem0 100 || { fail "swapon /dev/vtmem0"; return 1; }
}

# Module parameters from the runner's settings: backing disk and size, and
# vtmem.modparams=A=1:B=2 (any others, colon-separated).
vtmem_params() {
	p=
	if [ -n "${VT_BACKING:-}" ]; then
		dev=$(disk_by_serial "$VT_BACKING") ||
			{ fail "no disk with serial $VT_BACKING"; return 1; }
		p="backing_dev=$dev"
	fi
	[ -n "${VT_DISKSIZE_MB:-}" ] &&
		p="$p${p:+ }disksize=$((VT_DISKSIZE_MB * 1024 * 1024))"
	[ -n "${VT_MODPARAMS:-}" ] &&
		p="$p${p:+ }$(echo "$VT_MODPARAMS" | tr : ' ')"
	echo "$p"
}

# memtest ARGS...: run the workload, record its JSON as data "$VT_TAG".
# Returns the program's exit status.
memtest() {
	tag=${VT_TAG:-workload}
	out=/tmp/memtest-$tag.json
	/bin/vtmem-memtest "$@" > "$out" 2> /tmp/memtest-$tag.err
	rc=$?
	cat /tmp/memtest-$tag.err > /dev/console
	if [ -s "$out" ]; then
		data "$tag" "$(cat "$out")"
	else
		data "$tag" "{\"exit\":$rc}"
	fi
	data "${tag}_exit" "$rc"
	return $rc
}
