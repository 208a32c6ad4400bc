#!/usr/bin/python3
"""virtio-tmem benchmark: libtmem alone, the device's cost inside QEMU, and
guest swap on virtio-tmem against swap on virtio-blk and in-guest zram.

Run through scripts/bench.sh, which sets up what is missing first.  One run:

 1. host path: build/bench/tmem-bench --json on its standard corpus (files
    under /usr/lib and /usr/share): libtmem alone.
 2. guests identical but for the swap device (kernel 6.12, the same
    initramfs, RAM, vCPUs, accelerator and devices; scripts/vm/vmrun.py):
      tmem  swap on /dev/vtmem0 (virtio-tmem, budget far above the workload);
            tmem-noevfd: the same with ioeventfd=off
      blk   swap on a virtio-blk disk: a host file opened with O_DIRECT
            (cache=none; aio=io_uring, else native, else threads: whatever
            this QEMU build has); blk-threads: the same with aio=threads
      zram  swap on in-guest zram with lz4 (Debian's zram.ko), in the
            same guest RAM
      zswap zswap (lz4, zsmalloc, Debian's defaults otherwise) in front of
            blk's disk
    and (a) with one transport setting changed (OPTION_CONFIG):
      tmem-gpoll (the driver polls 50 us: poll_us=50), tmem-iothread (an
      IOThread, QEMU's default polling), tmem-hpoll (an IOThread polling
      up to 500 us, event_idx=off), tmem-poll2 (tmem-hpoll + tmem-gpoll),
      tmem-async
      (synchronous=0), tmem-noidx (event_idx=off), tmem-noinval
      (invalidate-pages=off: one INVALIDATE_PAGE per freed slot),
      tmem-packed (packed=on: the packed virtqueue layout)
    each running the same workloads (bench/guest/vtmem-bench-touch.c),
    every page verified.  At a checkpoint after each workload the host
    reads QEMU's VmRSS/VmHWM (then resets VmHWM through clear_refs), its
    CPU time, the backing file's allocated bytes, query-tmem and the
    device's "timing" counters (qom-get .../virtio-backend timing); the
    guest adds its driver's transport counters, /proc/vmstat, the swap
    disk's requests and interrupts (table 4 and "transport" in latest.json).
 3. writes bench/results/latest.json, latest.md (tables) and latest.png
    (gnuplot), and prints latest.md.

The disk tier (VTMEM_BENCH_OPTIONS=tmem-tier,tmem-tier-noevfd,tmem-rados,blk):
      tmem-tier  virtio-tmem with budget VTMEM_BENCH_TIER_BUDGET (default
            12M: about a quarter of what the workloads keep in the host,
            41 MiB of text pages, 72 MiB of mixed ones) and a disk tier
            (backing-file in VTMEM_BENCH_DIR, backing-size
            VTMEM_BENCH_TIER_SIZE, default 1G), the blk disk as the
            guest's backing device for refused pages; tmem-tier-noevfd:
            the same with ioeventfd=off; tmem-rados: the tier's segments
            as objects of a throwaway single-node Ceph cluster
            (python/vtmem/ceph.py, scripts/ceph-cluster.sh).  Written to
            bench/results/disk-tier.{json,md} (with blk); latest.* are
            written only when tmem, tmem-noevfd, blk and zram ran, else a subset
            without the tier goes to partial.json.

Each option runs VTMEM_BENCH_ROUNDS times (default 2), the options
interleaved (tmem, tmem-noevfd, blk, ..., tmem, ...), and each workload's best round
(shortest wall time) is reported: other work on the machine slows single
runs a lot under TCG.

Sizes (documented in latest.md): guest RAM 256 MiB, 1 vCPU, each workload
384 MiB (1.5x RAM; zram, which keeps its compressed pages in that RAM, is
OOM-killed on the mixed workload at 128 MiB / 224 MiB), one touch pass.
Environment: VTMEM_BENCH_OPTIONS (the guests, comma-separated, in the
order each round runs them; also --options), VTMEM_BENCH_MEM (MiB),
VTMEM_BENCH_MB (MiB per workload), VTMEM_BENCH_PASSES, VTMEM_BENCH_DIR (where
the virtio-blk backing file lives; must support O_DIRECT; default
$VTMEM_CACHE/bench), TMEM_BENCH (the tmem-bench binary), TMEM_BENCH_ARGS,
plus vmrun.py's (VTMEM_ACCEL, VTMEM_QEMU, VTMEM_CACHE...).
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "scripts", "vm"))
import initramfs  # noqa: E402
import vmrun  # noqa: E402
from vtmem import ceph  # noqa: E402

RESULTS = os.path.join(TOP, "bench", "results")
OPTIONS = ("tmem", "tmem-noevfd", "blk", "zram")
# More baselines (issue 16: blk with aio=threads, zswap in front of blk)
# and the transport's modes, all virtio-tmem (a) but for one setting.
BASELINE_OPTIONS = ("blk-threads", "zswap")
TRANSPORT_OPTIONS = ("tmem-gpoll", "tmem-iothread", "tmem-hpoll",
                     "tmem-poll2", "tmem-async", "tmem-noidx",
                     "tmem-noinval", "tmem-packed")
# Each option's differences from its base (tmem, blk): device properties,
# an IOThread for the device (AioContext polling, on by default in an
# IOThread) and its properties, the driver's module parameters,
# virtio-blk's aio=.  An IOThread polls adaptively up to poll-max-ns
# (QEMU's default 32768) and stops polling when the gaps between requests
# are longer; under TCG a swapped page takes the guest 50-300 us, so
# tmem-hpoll lets it poll up to 500 us to show what host polling does to
# the kicks (under KVM the gaps are far shorter).  While it polls, QEMU
# turns the guest's notifications off, but on a split ring with
# VIRTIO_RING_F_EVENT_IDX it cannot: each virtqueue_pop() moves the avail
# event to the next entry, so the guest kicks anyway.  tmem-hpoll and
# tmem-poll2 therefore run with event_idx=off (VRING_USED_F_NO_NOTIFY).
HPOLL = ",poll-max-ns=500000"
OPTION_CONFIG = {
    "tmem-noevfd": dict(device=",ioeventfd=off"),
    "tmem-gpoll": dict(modparams="poll_us=50"),
    "tmem-iothread": dict(iothread=""),
    "tmem-hpoll": dict(iothread=HPOLL, device=",event_idx=off"),
    "tmem-poll2": dict(iothread=HPOLL, device=",event_idx=off",
                       modparams="poll_us=50"),
    "tmem-async": dict(modparams="synchronous=0"),
    "tmem-noidx": dict(device=",event_idx=off"),
    "tmem-noinval": dict(device=",invalidate-pages=off"),
    "tmem-packed": dict(device=",packed=on"),
    "blk-threads": dict(aio="threads"),
}
# What one run of scripts/bench.sh runs by default.
DEFAULT_OPTIONS = OPTIONS + BASELINE_OPTIONS + TRANSPORT_OPTIONS
# The disk tier comparison (bench/results/disk-tier.*): virtio-tmem with a
# small budget and the device's disk tier, against (b).
TIER_OPTIONS = ("tmem-tier", "tmem-tier-noevfd", "tmem-rados")
OPTION_NAMES = {
    "tmem": "(a) virtio-tmem",
    "tmem-noevfd": "(a') virtio-tmem, ioeventfd=off",
    "blk": "(b) virtio-blk O_DIRECT",
    "zram": "(c) zram lz4 in guest",
    "blk-threads": "(b') virtio-blk O_DIRECT, aio=threads",
    "zswap": "(e) zswap lz4/zsmalloc + virtio-blk",
    "tmem-gpoll": "(a) + guest polls 50 us",
    "tmem-iothread": "(a) + IOThread",
    "tmem-hpoll": "(a) + IOThread polling up to 500 us, event_idx=off",
    "tmem-poll2": "(a) + IOThread polling, event_idx=off, guest polls 50 us",
    "tmem-async": "(a) + synchronous=0",
    "tmem-noidx": "(a) + event_idx=off",
    "tmem-noinval": "(a) + invalidate-pages=off",
    "tmem-packed": "(a) + packed=on (packed ring)",
    "tmem-tier": "(d) virtio-tmem + disk tier",
    "tmem-tier-noevfd": "(d') virtio-tmem + disk tier, ioeventfd=off",
    "tmem-rados": "(d\") virtio-tmem + disk tier in Ceph RADOS",
}
WORKLOADS = ("seq:text", "random:text", "random:mixed")
WORKLOAD_NAMES = {
    "seq_text": "sequential, text pages",
    "random_text": "random, text pages",
    "random_mixed": "random, mixed compressibility",
}


def log(msg):
    print("bench: %s" % msg, file=sys.stderr, flush=True)


def env_int(name, default):
    return int(os.environ.get(name, default))


# ---------------------------------------------------------------- host path

def run_tmem_bench():
    exe = os.environ.get("TMEM_BENCH",
                         os.path.join(TOP, "build", "bench", "tmem-bench"))
    args = os.environ.get("TMEM_BENCH_ARGS", "--repeat=5").split()
    cmd = [exe, "--json"] + args
    log("libtmem alone: %s" % " ".join(cmd))
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit("tmem-bench failed (%d): %s" % (r.returncode,
                                                         r.stderr[-2000:]))
    out = json.loads(r.stdout.strip().splitlines()[-1])
    out["seconds"] = round(time.time() - t, 1)
    out["args"] = args
    return out


# ---------------------------------------------------------------- guests

def aio_mode(qemu, path):
    """The best aio= this QEMU build accepts with cache=none on path."""
    for aio in ("io_uring", "native", "threads"):
        r = subprocess.run(
            [qemu, "-nodefaults", "-display", "none", "-machine", "none",
             "-S", "-qmp", "stdio", "-drive",
             "if=none,id=d,format=raw,cache=none,aio=%s,file=%s" % (aio,
                                                                    path)],
            input='{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n',
            capture_output=True, text=True, timeout=60)
        if r.returncode == 0:
            return aio
    raise SystemExit("QEMU accepts no aio= mode with cache=none on %s"
                     % path)


def check_odirect(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
    os.close(fd)


def guest_dir(tmp):
    """The tests' /init and helpers, this benchmark's scenario and program."""
    d = os.path.join(tmp, "guest")
    os.makedirs(d)
    tests = os.path.join(TOP, "tests", "vm", "guest")
    for n in ("init.sh", "lib.sh", "vtmem-swapon.c"):
        shutil.copy(os.path.join(tests, n), d)
    mine = os.path.join(TOP, "bench", "guest")
    for n in ("scenarios.sh", "vtmem-bench-touch.c"):
        shutil.copy(os.path.join(mine, n), d)
    return d


def cpu_s(stat_path):
    """utime + stime of /proc/PID/stat or /proc/PID/task/TID/stat."""
    with open(stat_path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(
        os.sysconf("SC_CLK_TCK"))


def vcpu_cpu_s(pid):
    """CPU time of QEMU's vCPU threads ("CPU n/TCG", "CPU n/KVM": -name
    debug-threads=on), exited threads not included."""
    total = 0.0
    task = "/proc/%d/task" % pid
    for tid in os.listdir(task):
        try:
            with open(os.path.join(task, tid, "comm")) as f:
                if not f.read().startswith("CPU "):
                    continue
            total += cpu_s(os.path.join(task, tid, "stat"))
        except OSError:
            pass        # the thread exited meanwhile
    return total


def read_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    # All of QEMU's threads, dead ones included, and its vCPUs alone.
    out["cpu_s"] = cpu_s("/proc/%d/stat" % pid)
    out["vcpu_cpu_s"] = vcpu_cpu_s(pid)
    return out


class BenchVM(vmrun.VM):
    """vmrun's VM plus the benchmark's swap disk and host-side readings."""

    def __init__(self, *a, disk=None, aio="threads", tmem_extra="",
                 tier=None, iothread_props="", **kw):
        super().__init__(*a, **kw)
        self.iothread_props = iothread_props
        self.disk = disk
        self.aio = aio
        self.tmem_extra = tmem_extra
        self.tier = tier        # the disk tier's backing file, or None

    def _argv(self):
        argv = super()._argv()
        i = argv.index("-device")
        if argv[i + 1].startswith("virtio-tmem,"):
            argv[i + 1] += self.tmem_extra
        if self.iothread_props:
            argv[argv.index("iothread,id=io0")] += self.iothread_props
        # Thread names, so that the vCPUs' CPU time can be told apart.
        argv += ["-name", "bench,debug-threads=on"]
        with open(self.disk, "wb") as f:
            f.truncate(0)
            f.truncate(self.params["swap_mb"] << 20)     # sparse
        return argv + [
            "-drive", "if=none,id=bswap,format=raw,cache=none,aio=%s,file=%s"
            % (self.aio, self.disk),
            "-device", "virtio-blk-pci,drive=bswap,serial=bench-swap"]

    def query_tmem(self):
        tmem = super().query_tmem()
        timing = self.qmp.cmd("qom-get",
                              path="/machine/peripheral/tmem0/virtio-backend",
                              property="timing")
        st = read_status(self.proc.pid)
        # Peak RSS from here on: each workload gets its own VmHWM.
        with open("/proc/%d/clear_refs" % self.proc.pid, "w") as f:
            f.write("5")
        return {"tmem": tmem, "timing": timing, "rss_kb": st["VmRSS"],
                "hwm_kb": st["VmHWM"], "cpu_s": st["cpu_s"],
                "vcpu_cpu_s": st["vcpu_cpu_s"],
                "file_bytes": os.stat(self.disk).st_blocks * 512,
                "tier_file_bytes": os.stat(self.tier).st_blocks * 512
                if self.tier and os.path.exists(self.tier) else 0,
                "time": time.time()}


def tier_budget():
    return os.environ.get("VTMEM_BENCH_TIER_BUDGET", "12M")


def tier_size():
    return os.environ.get("VTMEM_BENCH_TIER_SIZE", "1G")


_cluster = []


def rados_cluster():
    """The Ceph cluster of the tmem-rados guests, started on first use and
    stopped when the benchmark exits."""
    if not _cluster:
        try:
            cl = ceph.Cluster(("bench",)).__enter__()
        except vmrun.Unavailable as e:
            raise SystemExit("tmem-rados: %s" % e)
        atexit.register(cl.__exit__, None)
        _cluster.append(cl)
    return _cluster[0]


def run_guest(opt, qemu, kernel, image, accel, aio, disk, mem, mb, passes,
              timeout):
    swap_mb = 2 * mb
    # (a') tmem-noevfd: (a) with the guest's kick handled in the vCPU
    # thread itself during the exit (ioeventfd=off: no hop to the main
    # loop), which is what costs most under TCG here.
    # x-timing=on: the device's "timing" counters, off by default.
    conf = OPTION_CONFIG.get(opt, {})
    if opt.endswith("-noevfd"):
        conf = OPTION_CONFIG["tmem-noevfd"]
    extra = ",x-timing=on" + conf.get("device", "")
    aio = conf.get("aio", aio)
    budget = "2G"
    params = dict(opt=opt.split("-")[0], mb=mb, swap_mb=swap_mb,
                  passes=passes, workloads=",".join(WORKLOADS), mem_mb=mem)
    if conf.get("modparams"):
        params["modparams"] = conf["modparams"].replace(" ", ":")
    tier = None
    if opt in TIER_OPTIONS:
        # (d) a budget far below what the workloads put in the host, the
        # rest in the disk tier, a fresh file next to (b)'s; the guest
        # keeps (b)'s disk as its backing device for pages the host
        # refuses (it should refuse none: counted as failed_stores).
        budget = tier_budget()
        if opt == "tmem-rados":
            # (d") the same tier as objects of a throwaway local Ceph
            # cluster's pool (one OSD, bluestore on a file in /tmp).
            props = rados_cluster().device_props("bench")
            extra += "".join(",%s=%s" % kv for kv in sorted(props.items()))
        else:
            tier = os.path.join(os.path.dirname(disk),
                                "tier-%d.img" % os.getpid())
            if os.path.exists(tier):
                os.unlink(tier)
            extra += ",backing-file=%s" % tier
        extra += ",backing-size=%s" % tier_size()
        params["backing"] = "bench-swap"
    vm = BenchVM(qemu, kernel, image, "bench", accel=accel, mem_mb=mem,
                 budget=budget, tmem_extra=extra, params=params,
                 timeout=timeout, disk=disk, aio=aio, tier=tier,
                 iothread="iothread" in conf,
                 iothread_props=conf.get("iothread", ""))
    log("%s: booting (%d MiB RAM, %d MiB per workload, budget %s%s)"
        % (opt, mem, mb, budget, ", " + ", ".join(
            "%s=%s" % kv for kv in sorted(conf.items())) if conf else ""))
    try:
        try:
            res = vm.run()
        finally:
            if tier and os.path.exists(tier):
                os.unlink(tier)
    except vmrun.VMError as e:
        r = getattr(e, "result", None)
        tail = r.console[-3000:] if r is not None else ""
        raise SystemExit("%s guest failed: %s\n%s" % (opt, e, tail))
    v = res.verdict or {}
    if not v.get("ok"):
        raise SystemExit("%s guest: %s\n%s" % (opt, v.get("failures"),
                                               res.console[-3000:]))
    log("%s: done in %.0f s" % (opt, res.seconds))
    return {"seconds": round(res.seconds, 1), "verdict": v, "config": conf,
            "aio": aio,
            "load": loadavg(),
            "checkpoints": res.checkpoints, "splats": res.splats}


def diff_timing(a, b):
    return {k: b[k] - a[k] for k in b}


# The workload's own cost per page without swap: the best baseline of all
# guests (the same program in the same guest; single runs are noisy).
BASELINE_S_PER_PAGE = 0


def set_baseline(guests):
    global BASELINE_S_PER_PAGE
    best = [(b["fill_s"] + b["touch_s"]) / b["pages"]
            for runs in guests.values() for run in runs
            for b in [run["verdict"]["data"].get("baseline") or {}]
            if b.get("pages")]
    BASELINE_S_PER_PAGE = min(best) if best else 0
    return BASELINE_S_PER_PAGE


def summarize(opt, runs):
    """Per workload, the best round (shortest wall time)."""
    best = {}
    for i, run in enumerate(runs):
        for tag, row in summarize_run(run).items():
            row["round"] = i + 1
            row["rounds_wall_s"] = [summarize_run(x)[tag].get("wall_s")
                                    for x in runs]
            if tag not in best or best[tag].get("oom") or (
                    not row.get("oom") and
                    row["wall_s"] < best[tag]["wall_s"]):
                best[tag] = row
    return best


def summarize_run(run):
    """Per workload: wall, swap rates, host memory; timing deltas."""
    cps = {c["name"]: c for c in run["checkpoints"]}
    prev = cps["ready"]
    data = run["verdict"]["data"]
    out = {}
    for w in WORKLOADS:
        tag = w.replace(":", "_")
        g = data[tag]
        cp = cps["after-" + tag]
        h0, h1 = prev["host"], cp["host"]
        if "fill_s" not in g:
            out[tag] = {"oom": True}
            prev = cp
            continue
        wall = g["fill_s"] + g["touch_s"]
        ins = g["fill_pswpin"] + g["touch_pswpin"]
        outs = g["fill_pswpout"] + g["touch_pswpout"]
        row = {
            "wall_s": wall, "fill_s": g["fill_s"], "touch_s": g["touch_s"],
            "pswpin": ins, "pswpout": outs,
            "touch_pswpin": g["touch_pswpin"],
            "touch_pswpout": g["touch_pswpout"],
            "swapins_per_s": ins / wall if wall else 0,
            "swapouts_per_s": outs / wall if wall else 0,
            "rss_start_mib": h0["rss_kb"] / 1024.0,
            "hwm_mib": h1["hwm_kb"] / 1024.0,
            "rss_growth_mib": (h1["hwm_kb"] - h0["rss_kb"]) / 1024.0,
            "file_mib": h1["file_bytes"] / 1048576.0,
            "file_growth_mib": (h1["file_bytes"] - h0["file_bytes"])
            / 1048576.0,
            "qemu_cpu_s": h1["cpu_s"] - h0["cpu_s"],
            "timing": diff_timing(h0["timing"], h1["timing"]),
            "tmem": h1["tmem"],
        }
        # Host footprint: QEMU's peak RSS plus the backing file.
        row["footprint_mib"] = row["hwm_mib"] + row["file_mib"]
        # What swapping added to the guest's time, per page swapped in or
        # out: wall minus the workload's own cost without swap (baseline).
        if BASELINE_S_PER_PAGE:
            row["own_s"] = BASELINE_S_PER_PAGE * g["pages"]
            row["swap_us_per_page"] = ((wall - row["own_s"]) / (ins + outs)
                                       * 1e6 if ins + outs else 0)
        d0 = (h0["tmem"] or {}).get("disk") or {}
        d1 = (h1["tmem"] or {}).get("disk") or {}
        if d1:
            # The disk tier over this workload (counters are cumulative).
            row["disk"] = {k: d1.get(k, 0) - d0.get(k, 0) for k in (
                "written-back", "reads", "read-bytes", "writes",
                "write-bytes", "errors", "cleaned-segments")}
            row["disk"]["failed"] = d1.get("failed")
            # Of the LOADs over the same interval (the workload and its
            # final check, which pswpin does not cover), those read from
            # the file.
            loads = h1["tmem"]["loads"] - h0["tmem"]["loads"]
            row["host_loads"] = loads
            row["disk_reads_per_load"] = (row["disk"]["reads"] / loads
                                          if loads else 0)
            row["host_failed_stores"] = (h1["tmem"]["failed-stores"] -
                                         h0["tmem"]["failed-stores"])
            g0, g1 = prev.get("guest") or {}, cp.get("guest") or {}
            row["guest_failed_stores"] = (g1.get("failed_stores", 0) -
                                          g0.get("failed_stores", 0))
            row["guest_backing_writes"] = (g1.get("backing_writes", 0) -
                                           g0.get("backing_writes", 0))
        row["transport"] = transport(prev, cp, row, ins + outs)
        if cp.get("zswap"):
            # Cumulative: written_back_pages, pool_limit_hit, reject_*.
            row["zswap"] = cp["zswap"]
        mm = (cp.get("zram_mm_stat") or "").split()
        if len(mm) >= 5:
            row["zram_mem_used_max_mib"] = int(mm[4]) / 1048576.0
        out[tag] = row
        prev = cp
    return out


GUEST_TRANSPORT = ("req_stores", "req_loads", "req_invalidates", "kicks",
                   "interrupts", "polled")


def transport(prev, cp, row, swapped_workload):
    """What a swapped page costs in round trips, between two checkpoints.

    The denominator is the guest's swap-ins + swap-outs over the same
    interval (/proc/vmstat at each checkpoint, zswap's included), which
    also covers the workload's final check, unlike pswpin/pswpout in the
    rows (fill + touch only).  virtio-tmem: the driver's counters
    (requests by kind, kicks it sent, interrupts it took, batches answered
    while it polled).  virtio-blk and zswap: the disk's completed requests
    and its queues' interrupts; the guest cannot count its kicks there
    (null).  zram: no device, no notifications.  Host CPU: QEMU's threads
    over the interval, the vCPUs' apart (under TCG the vCPU threads run
    the emulated guest, so only the rest carries over to KVM)."""
    v0, v1 = prev.get("vmstat") or {}, cp.get("vmstat") or {}
    swapped = sum(v1.get(k, 0) - v0.get(k, 0)
                  for k in ("pswpin", "pswpout", "zswpin", "zswpout"))
    if not swapped:
        swapped = swapped_workload
    t = {"swapped_pages": swapped}
    per = lambda n: n / float(swapped) if swapped and n is not None \
        else None  # noqa: E731
    g0, g1 = prev.get("guest") or {}, cp.get("guest") or {}
    if "kicks" in g1:
        for k in GUEST_TRANSPORT:
            t[k] = g1.get(k, 0) - g0.get(k, 0)
        t["requests"] = t["req_stores"] + t["req_loads"] + \
            t["req_invalidates"]
    elif "disk_ios" in cp:
        t["requests"] = cp["disk_ios"] - prev.get("disk_ios", 0)
        t["interrupts"] = cp["disk_irqs"] - prev.get("disk_irqs", 0)
        t["kicks"] = None if cp["disk_irqs"] else 0
        if not cp["disk_irqs"]:         # zram: an in-guest device
            t["interrupts"] = 0
    h0, h1 = prev["host"], cp["host"]
    cpu = h1["cpu_s"] - h0["cpu_s"]
    vcpu = h1.get("vcpu_cpu_s", 0) - h0.get("vcpu_cpu_s", 0)
    t["host_cpu_s"] = cpu
    t["host_vcpu_cpu_s"] = vcpu
    t["requests_per_swapped_page"] = per(t.get("requests"))
    t["kicks_per_swapped_page"] = per(t.get("kicks"))
    t["interrupts_per_swapped_page"] = per(t.get("interrupts"))
    t["notifications_per_swapped_page"] = (
        per(t["kicks"] + t["interrupts"])
        if t.get("kicks") is not None and t.get("interrupts") is not None
        else None)
    t["host_cpu_us_per_swapped_page"] = per((cpu - vcpu) * 1e6)
    t["host_cpu_all_us_per_swapped_page"] = per(cpu * 1e6)
    tm = row.get("timing") or {}
    for k in ("store", "load"):
        if tm.get(k + "-lib-ns"):
            t["device_vs_libtmem_" + k] = (tm[k + "-ns"] /
                                           float(tm[k + "-lib-ns"]))
    return t


def transport_summary(s):
    """latest.json's "transport": the default configuration (a) on the
    random text workload, and (a) with polling on both sides."""
    x = s.get("tmem", {}).get("random_text", {}).get("transport")
    if not x:
        return None
    out = {k: x.get(k) for k in (
        "requests_per_swapped_page", "kicks_per_swapped_page",
        "interrupts_per_swapped_page", "host_cpu_us_per_swapped_page",
        "device_vs_libtmem_store", "device_vs_libtmem_load")}
    out["notifications_per_swapped_page"] = x.get(
        "notifications_per_swapped_page")
    p = s.get("tmem-poll2", {}).get("random_text", {}).get("transport")
    out["notifications_per_swapped_page_polled"] = (
        p.get("notifications_per_swapped_page") if p else None)
    g = s.get("tmem-gpoll", {}).get("random_text", {}).get("transport")
    out["notifications_per_swapped_page_guest_polled"] = (
        g.get("notifications_per_swapped_page") if g else None)
    out["workload"] = "random_text"
    return out


def host_path(lib, tmem_runs):
    """Per-request costs inside QEMU against libtmem, same run: the
    round with the shortest total wall time."""
    def total(run):
        d = run["verdict"]["data"]
        return sum(d[w.replace(":", "_")]["fill_s"] +
                   d[w.replace(":", "_")]["touch_s"] for w in WORKLOADS)
    tmem_run = min(tmem_runs, key=total)
    cps = {c["name"]: c for c in tmem_run["checkpoints"]}
    last = cps["after-" + WORKLOADS[-1].replace(":", "_")]["host"]["timing"]
    first = cps["ready"]["host"]["timing"]
    t = diff_timing(first, last)
    us = lambda ns, n: ns / n / 1000.0 if n else 0  # noqa: E731
    reqs = t["store-requests"] + t["load-requests"] + t["other-requests"]
    libns = t["store-lib-ns"] + t["load-lib-ns"] + t["other-lib-ns"]
    reqns = t["store-ns"] + t["load-ns"] + t["other-ns"]
    page = 4096.0
    hp = {
        "timing": t,
        "store_requests": t["store-requests"],
        "load_requests": t["load-requests"],
        "other_requests": t["other-requests"],
        "store_lib_us": us(t["store-lib-ns"], t["store-requests"]),
        "load_lib_us": us(t["load-lib-ns"], t["load-requests"]),
        "store_dev_us": us(t["store-ns"], t["store-requests"]),
        "load_dev_us": us(t["load-ns"], t["load-requests"]),
        "handler_us_per_request": us(t["handler-ns"], reqs),
        "lib_us_per_request": us(libns, reqs),
        "requests_per_handler_call": reqs / t["handler-calls"]
        if t["handler-calls"] else 0,
        # libtmem alone, tmem-bench's corpus: us per page.
        "bench_store_us": page / (lib["store_gbps"] * 1e3)
        if lib.get("store_gbps") else 0,
        "bench_restore_us": page / (lib["restore_gbps"] * 1e3)
        if lib.get("restore_gbps") else 0,
        "bench_load_us": page / (lib["load_gbps"] * 1e3)
        if lib.get("load_gbps") else 0,
        "bench_lz4c_us": page / (lib["lz4_compress_gbps"] * 1e3)
        if lib.get("lz4_compress_gbps") else 0,
        "bench_lz4d_us": page / (lib["lz4_decompress_gbps"] * 1e3)
        if lib.get("lz4_decompress_gbps") else 0,
    }
    for k in ("store", "load"):
        hp[k + "_ratio"] = (hp[k + "_dev_us"] / hp[k + "_lib_us"]
                            if hp[k + "_lib_us"] else 0)
    hp["handler_ratio"] = t["handler-ns"] / libns if libns else 0
    hp["request_ratio"] = reqns / libns if libns else 0
    return hp


# ---------------------------------------------------------------- report

def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) // 1024
    distro = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"host": "%s, %s %s" % (distro, platform.system(),
                                    platform.release()),
            "cpu": cpu, "cpus": os.cpu_count(), "mem_mib": mem}


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def fmt(x, nd=2):
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if x >= 100:
        return "%.0f" % x
    if x >= 10:
        return "%.1f" % x
    return ("%%.%df" % nd) % x


def render_md(r):
    s = r["summary"]
    hp = r["host_path"]
    lib = r["libtmem"]
    L = []
    L.append("# virtio-tmem benchmark: latest result")
    L.append("")
    L.append("Produced by `scripts/bench.sh` on %s UTC (%.0f s). "
             % (r["started"], r["seconds"]))
    acc = r["accel"].upper()
    L.append("")
    if r["accel"] == "tcg":
        L.append("> **Warning: accelerator TCG.** Everything the guest does "
                 "(its kernel, its zram LZ4, the workload) is emulated, so "
                 "guest-side times and rates are far slower than on real "
                 "KVM and only the ratios between the three options are "
                 "meaningful.  The QEMU-side per-request times (table 1) "
                 "are native host code measured with the host clock.")
        L.append("")
    L.append("- Machine: %s; %s, %d CPUs, %d MiB RAM; load average "
             "(1/5/15 min) %s at start, %s at end"
             % (r["machine"]["host"], r["machine"]["cpu"],
                r["machine"]["cpus"], r["machine"]["mem_mib"],
                r["load_start"], r["load_end"]))
    L.append("- Accelerator: %s; QEMU %s; guest kernel %s (Debian), "
             "busybox initramfs" % (acc, r["qemu_version"], r["kernel"]))
    L.append("- Guest: %d MiB RAM, 1 vCPU; each workload maps %d MiB "
             "(%.2fx RAM), fills it in order, then touches every page "
             "%d time(s) (verify, rewrite), all pages verified; swap "
             "device %d MiB at priority 100, zswap off"
             % (r["mem"], r["mb"], r["mb"] / float(r["mem"]), r["passes"],
                2 * r["mb"]))
    L.append("- (a) virtio-tmem: 1 queue, budget 2G (never full), "
             "incompressible pages stored raw, defaults otherwise (the "
             "guest's kick goes through an ioeventfd to QEMU's main "
             "loop); (a') the same with ioeventfd=off (the vCPU thread "
             "runs the handler during its exit); (b) virtio-blk on a sparse "
             "host file, cache=none (O_DIRECT), aio=%s%s; (c) zram, "
             "algorithm %s, in the guest's own RAM"
             % (r["aio"], "" if r["aio"] == "io_uring" else
                " (this QEMU build has no io_uring" +
                (")" if r["aio"] == "native" else " nor linux-aio)"),
                r.get("zram_algorithm", "lz4")))
    L.append("")
    L.append("## 1. Host path: the device's cost per request against "
             "libtmem")
    L.append("")
    L.append("Inside QEMU: the device's timing counters over the guest "
             "benchmark (a), %d STOREs and %d LOADs, %.1f requests per "
             "handler call.  libtmem alone: `tmem-bench --json %s` "
             "(%d pages of files, best of %d)."
             % (hp["store_requests"], hp["load_requests"],
                hp["requests_per_handler_call"], " ".join(lib["args"]),
                lib["pages"], lib["repeat"]))
    L.append("")
    L.append("| per request (us) | STORE | LOAD |")
    L.append("| --- | ---: | ---: |")
    L.append("| libtmem alone, tmem-bench corpus (fresh / recycled memory "
             "for STORE) | %s / %s | %s |"
             % (fmt(hp["bench_store_us"]), fmt(hp["bench_restore_us"]),
                fmt(hp["bench_load_us"])))
    L.append("| raw LZ4 alone, same corpus (compress / decompress) | %s | "
             "%s |" % (fmt(hp["bench_lz4c_us"]), fmt(hp["bench_lz4d_us"])))
    L.append("| inside libtmem in QEMU (tmem_handle_request, the guest's "
             "pages) | %s | %s |"
             % (fmt(hp["store_lib_us"]), fmt(hp["load_lib_us"])))
    L.append("| device in QEMU (virtqueue_pop .. virtqueue_push) | %s | %s |"
             % (fmt(hp["store_dev_us"]), fmt(hp["load_dev_us"])))
    L.append("| **ratio device / libtmem, same requests** (target <= 1.2) "
             "| **%.2f** | **%.2f** |" % (hp["store_ratio"],
                                          hp["load_ratio"]))
    L.append("")
    L.append("Whole queue handler (pops, requests, pushes, notification) "
             "per request: %s us against %s us inside libtmem: **%.2fx**."
             % (fmt(hp["handler_us_per_request"]),
                fmt(hp["lib_us_per_request"]), hp["handler_ratio"]))
    L.append("")
    L.append("## 2. Guest swap: (a) virtio-tmem, (b) virtio-blk, (c) zram")
    L.append("")
    L.append("Wall time and swap rates are the guest's (CLOCK_MONOTONIC, "
             "/proc/vmstat pswpin/pswpout deltas) over fill + touch.  "
             "x(b): speed-up over (b) for time (b/x), ratio to (b) "
             "otherwise.  Host memory: QEMU's peak RSS during the "
             "workload (VmHWM) minus its RSS before it (the guest's RAM "
             "is already resident: a warm-up touched it); file: the "
             "backing file's allocated bytes.  Footprint: peak RSS + "
             "file.  Guest us per swapped page: (wall - the same "
             "workload's cost without swap, from a baseline run in RAM) / "
             "(swap-ins + swap-outs); the baseline is the best of all "
             "guests: %.1f us per page.  Each option ran %d rounds, "
             "interleaved; each row is its workload's best round (wall "
             "times of all rounds in latest.json)." % (
                 r.get("baseline_us_per_page", 0), r["rounds"]))
    L.append("")
    L.append("| workload | option | wall s | x(b) | swap-ins/s | x(b) | "
             "swap-outs/s | x(b) | host RSS growth MiB | file MiB | "
             "footprint MiB | x(b) | guest us per swapped page |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | "
             "---: | ---: | ---: | ---: | ---: |")
    for w in WORKLOADS:
        tag = w.replace(":", "_")
        b = s["blk"][tag]
        for opt in OPTIONS + BASELINE_OPTIONS:
            if opt not in s:
                continue
            x = s[opt][tag]
            if x.get("oom") or b.get("oom"):
                L.append("| %s | %s | killed by the guest's OOM killer |"
                         % (WORKLOAD_NAMES[tag], OPTION_NAMES[opt]) +
                         " |" * 10)
                continue
            rss = fmt(x["rss_growth_mib"], 1)
            if opt == "zram" and "zram_mem_used_max_mib" in x:
                rss += " (zram in guest: %s)" % fmt(
                    x["zram_mem_used_max_mib"], 1)
            L.append("| %s | %s | %s | %.2f | %s | %.2f | %s | %.2f | %s | "
                     "%s | %s | %.2f | %s |" % (
                         WORKLOAD_NAMES[tag], OPTION_NAMES[opt],
                         fmt(x["wall_s"], 1), b["wall_s"] / x["wall_s"],
                         fmt(x["swapins_per_s"], 0),
                         x["swapins_per_s"] / b["swapins_per_s"]
                         if b["swapins_per_s"] else 0,
                         fmt(x["swapouts_per_s"], 0),
                         x["swapouts_per_s"] / b["swapouts_per_s"]
                         if b["swapouts_per_s"] else 0,
                         rss, fmt(x["file_mib"], 1),
                         fmt(x["footprint_mib"], 1),
                         x["footprint_mib"] / b["footprint_mib"],
                         fmt(x.get("swap_us_per_page", 0), 1)))
    L.append("")
    rt = s["tmem"]["random_text"]
    rb = s["blk"]["random_text"]
    rm = s["tmem"]["random_mixed"]
    bm = s["blk"]["random_mixed"]
    nt = s["tmem-noevfd"]
    L.append("Targets: virtio-tmem >= 3x faster than (b) on the random "
             "workload: **%.2fx** (text pages), **%.2fx** (mixed); with "
             "ioeventfd=off (a') **%.2fx** and **%.2fx**; QEMU "
             "per-request cost <= 1.2x libtmem: **%.2f** (STORE), "
             "**%.2f** (LOAD), **%.2f** (whole handler).  Analysis: "
             "docs/performance.md."
             % (rb["wall_s"] / rt["wall_s"], bm["wall_s"] / rm["wall_s"],
                rb["wall_s"] / nt["random_text"]["wall_s"],
                bm["wall_s"] / nt["random_mixed"]["wall_s"],
                hp["store_ratio"], hp["load_ratio"], hp["handler_ratio"]))
    L.append("")
    L.append("## 3. Where a swapped page's time goes (virtio-tmem)")
    L.append("")
    L.append("Per page swapped in or out (pswpin + pswpout) in the guest, "
             "best round: the guest-visible time over fill + touch, QEMU's "
             "counters over the interval between two checkpoints (the "
             "workload's final check included, /proc/vmstat read at each "
             "checkpoint).  QEMU's share is native host code (device "
             "timing counters); the rest is the guest's kernel, driver and "
             "the virtio notifications both ways, emulated under %s and "
             "not separable with these counters." % acc)
    L.append("")
    L.append("| us per swapped page | " + " | ".join(
        WORKLOAD_NAMES[w.replace(":", "_")] for w in WORKLOADS) + " |")
    L.append("| --- |" + " ---: |" * len(WORKLOADS))
    rows = [("guest-visible swap time, virtio-tmem", []),
            ("  QEMU queue handler (all of the host's work)", []),
            ("    inside libtmem (LZ4, allocator, index, copies)", []),
            ("    QEMU dispatch (pop, push, notify)", []),
            ("  guest kernel + driver + notifications (the rest)", []),
            ("requests per swapped page (STORE, LOAD, INVALIDATE)", []),
            ("handler calls (guest kicks) per swapped page", []),
            ("for comparison: (a') ioeventfd=off", []),
            ("for comparison: zram, all in the guest", []),
            ("for comparison: virtio-blk", [])]
    for w in WORKLOADS:
        tag = w.replace(":", "_")
        x = s["tmem"][tag]
        if x.get("oom"):
            for _, v in rows:
                v.append("-")
            continue
        tm = x["timing"]
        # The host's counters cover the interval between checkpoints,
        # the workload's final check included: per page swapped then.
        sw = float((x.get("transport") or {}).get("swapped_pages") or
                   x["pswpin"] + x["pswpout"]) or 1.0
        lib_ns = tm["store-lib-ns"] + tm["load-lib-ns"] + tm["other-lib-ns"]
        reqs = tm["store-requests"] + tm["load-requests"] + \
            tm["other-requests"]
        vals = [x.get("swap_us_per_page", 0), tm["handler-ns"] / sw / 1e3,
                lib_ns / sw / 1e3, (tm["handler-ns"] - lib_ns) / sw / 1e3,
                x.get("swap_us_per_page", 0) - tm["handler-ns"] / sw / 1e3,
                reqs / sw, tm["handler-calls"] / sw,
                s.get("tmem-noevfd", {}).get(tag, {}).get(
                    "swap_us_per_page", 0),
                s["zram"][tag].get("swap_us_per_page", 0),
                s["blk"][tag].get("swap_us_per_page", 0)]
        for (_, v), val in zip(rows, vals):
            v.append(fmt(val, 2))
    for name, v in rows:
        L.append("| %s | %s |" % (name.replace("  ", "&nbsp;&nbsp;"),
                                  " | ".join(v)))
    L.append("")
    L += render_transport(r)
    L.append("![plot](latest.png)")
    L.append("")
    return "\n".join(L) + "\n"


def render_transport(r):
    """Table 4: round trips per swapped page, every option that ran."""
    s = r["summary"]
    L = ["## 4. Round trips per swapped page (counters that carry over "
         "to KVM)", ""]
    L.append("Per page swapped in or out over the interval between two "
             "checkpoints (/proc/vmstat, zswap's included; this also "
             "covers the workload's final check).  virtio-tmem: the "
             "driver's counters (requests sent by kind, kicks it sent, "
             "interrupts it took, batches answered while it polled); "
             "virtio-blk and zswap: the disk's completed requests and its "
             "queues' interrupts (its kicks are not visible to the guest: "
             "-).  Host CPU: QEMU's threads other than the vCPUs (the "
             "device's and the I/O threads; under %s the vCPU threads run "
             "the emulated guest); with ioeventfd=off the device runs in "
             "the vCPU thread and is not in this column.  Device / "
             "libtmem: the device's time per request over libtmem's for "
             "the same requests (x-timing)." % r["accel"].upper())
    L.append("")
    L.append("| option | workload | requests | kicks | interrupts | "
             "notifications | polled batches | host CPU us | device / "
             "libtmem STORE | LOAD | guest us per swapped page |")
    L.append("| --- | --- |" + " ---: |" * 9)
    order = [o for o in OPTIONS + BASELINE_OPTIONS + TRANSPORT_OPTIONS
             if o in s]
    for opt in order:
        for w in WORKLOADS:
            tag = w.replace(":", "_")
            x = s[opt].get(tag, {})
            t = x.get("transport")
            if not t:
                continue
            sw = float(t["swapped_pages"]) or 1.0
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | "
                     "%s |" % (
                         OPTION_NAMES[opt], WORKLOAD_NAMES[tag],
                         fmt(t.get("requests_per_swapped_page")),
                         fmt(t.get("kicks_per_swapped_page")),
                         fmt(t.get("interrupts_per_swapped_page")),
                         fmt(t.get("notifications_per_swapped_page")),
                         fmt(t["polled"] / sw) if "polled" in t else "-",
                         fmt(t.get("host_cpu_us_per_swapped_page"), 1),
                         fmt(t.get("device_vs_libtmem_store")),
                         fmt(t.get("device_vs_libtmem_load")),
                         fmt(x.get("swap_us_per_page"), 1)))
    L.append("")
    for opt, why in sorted((r.get("failed") or {}).items()):
        L.append("- %s failed and is left out: %s" % (
            OPTION_NAMES[opt], why.splitlines()[0] if why else "?"))
        L.append("")
    tr = r.get("transport")
    if tr:
        L.append("Targets (issue 16), (a) on random text pages: requests "
                 "per swapped page <= 1.2: **%s**; notifications <= 1.0: "
                 "**%s**; with the guest polling <= 0.5: **%s**; polling "
                 "on both sides <= 0.05: **%s**; device / libtmem <= 1.15: "
                 "**%s** (STORE), **%s** (LOAD)." % (
                     fmt(tr["requests_per_swapped_page"]),
                     fmt(tr["notifications_per_swapped_page"]),
                     fmt(tr["notifications_per_swapped_page_guest_polled"]),
                     fmt(tr["notifications_per_swapped_page_polled"]),
                     fmt(tr["device_vs_libtmem_store"]),
                     fmt(tr["device_vs_libtmem_load"])))
        L.append("")
    return L


def plot(r, png):
    gp = shutil.which("gnuplot")
    if not gp:
        log("no gnuplot: no plot")
        return False
    s = r["summary"]
    opts = [o for o in OPTIONS + ("zswap", "tmem-poll2") if o in s]
    tmp = tempfile.mkdtemp(prefix="vtmem-bench-plot-")
    try:
        dat = os.path.join(tmp, "d.dat")
        with open(dat, "w") as f:
            f.write("# workload, wall per option, footprint per option\n")
            for w in WORKLOADS:
                tag = w.replace(":", "_")
                f.write('"%s" %s\n' % (
                    tag.replace("_", " "), " ".join(
                        ["%.2f" % s[o][tag].get("wall_s", 0)
                         for o in opts] +
                        ["%.1f" % s[o][tag].get("footprint_mib", 0)
                         for o in opts])))

        def series(first):
            return ", ".join(
                "'%s' using %d%s title \"%s\"" % (
                    dat if i == 0 else "", first + i,
                    ":xtic(1)" if i == 0 else "",
                    OPTION_NAMES[o].replace('"', "'"))
                for i, o in enumerate(opts))
        script = """
set terminal pngcairo size 1400,560 noenhanced font ",10"
set output '%(png)s'
set multiplot layout 1,2 title "virtio-tmem swap benchmark (%(accel)s, guest %(mem)d MiB, %(mb)d MiB per workload, %(date)s)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key outside bottom center horizontal
set grid ytics
set yrange [0:*]
set xrange [-0.6:2.6]
set title "guest wall time (s), lower is better"
plot %(wall)s
set title "host footprint: QEMU peak RSS + backing file (MiB)"
plot %(foot)s
unset multiplot
""" % {"png": png, "wall": series(2), "foot": series(2 + len(opts)),
            "accel": r["accel"].upper(),
            "mem": r["mem"], "mb": r["mb"], "date": r["started"][:16]}
        p = subprocess.run([gp], input=script, text=True,
                           capture_output=True)
        if p.returncode:
            log("gnuplot failed: %s" % p.stderr[-1000:])
            return False
        return True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render_tier_md(r):
    """bench/results/disk-tier.md: (d) virtio-tmem with a small budget and
    the disk tier against (b) virtio-blk, plus whatever else ran."""
    s = r["summary"]
    opts = [o for o in ("tmem", "tmem-noevfd") + TIER_OPTIONS +
            ("blk", "zram") if o in s]
    cmd = "VTMEM_BENCH_OPTIONS=%s VTMEM_BENCH_ROUNDS=%d scripts/bench.sh" % (
        ",".join(r["options"]), r["rounds"])
    L = ["# virtio-tmem benchmark: the disk tier against virtio-blk", ""]
    L.append("Produced by `%s` on %s UTC (%.0f s)." % (cmd, r["started"],
                                                      r["seconds"]))
    L.append("")
    if r["accel"] == "tcg":
        L.append("> **Warning: accelerator TCG.** Everything the guest does "
                 "is emulated, so guest-side times and rates are far slower "
                 "than on real KVM and only the ratios between the options "
                 "are meaningful.")
        L.append("")
    L.append("- Machine: %s; %s, %d CPUs, %d MiB RAM; load average "
             "(1/5/15 min) %s at start, %s at end"
             % (r["machine"]["host"], r["machine"]["cpu"],
                r["machine"]["cpus"], r["machine"]["mem_mib"],
                r["load_start"], r["load_end"]))
    L.append("- Accelerator: %s; QEMU %s; guest kernel %s (Debian), "
             "busybox initramfs" % (r["accel"].upper(), r["qemu_version"],
                                    r["kernel"]))
    L.append("- Guest: %d MiB RAM, 1 vCPU; each workload maps %d MiB "
             "(%.2fx RAM), fills it in order, then touches every page "
             "%d time(s) (verify, rewrite), all pages verified; swap "
             "device %d MiB at priority 100, zswap off"
             % (r["mem"], r["mb"], r["mb"] / float(r["mem"]), r["passes"],
                2 * r["mb"]))
    L.append("- (d) virtio-tmem with `budget=%s` and a disk tier: "
             "`backing-file` on the host's file system next to (b)'s file "
             "(%s), `backing-size=%s`, segments and write-back marks at "
             "their defaults (256K, 90%%/80%% of the budget); the guest has "
             "(b)'s disk as its backing device for pages the host refuses "
             "(REJECTED below).  (d') the same with `ioeventfd=off`.  "
             "(d\") the same with `rados-pool=`: segments as objects of a "
             "throwaway single-node Ceph cluster on this host (one OSD, "
             "bluestore on a sparse file in /tmp, msgr2 on 127.0.0.1).  (b) "
             "virtio-blk on a sparse host file, cache=none (O_DIRECT), "
             "aio=%s.  The same guest, kernel and workloads as latest.md."
             % (r.get("tier_budget"), r.get("tier_dir_fs", "?"),
                r.get("tier_size"), r["aio"]))
    L.append("")
    L.append("Wall time and swap rates are the guest's over fill + touch; "
             "x(b): speed-up over (b).  Disk tier columns are the device's "
             "query-tmem `disk` counters over the workload: pages written "
             "back, bytes written, read requests and bytes read (one read "
             "per page loaded from the file), and those reads per LOAD the "
             "host answered over the same interval (which includes the "
             "workload's final check of every page, outside its timed "
             "fill + touch).  Host RSS growth: QEMU's peak "
             "RSS minus its RSS before the workload.  Each row is the "
             "workload's best of %d round(s)." % r["rounds"])
    L.append("")
    L.append("| workload | option | wall s | x(b) | swap-ins/s | "
             "swap-outs/s | host RSS growth MiB | written back (pages) | "
             "disk written MiB | disk reads | disk read MiB | disk reads "
             "per LOAD | REJECTED | guest us per swapped page |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: | ---: | ---: | ---: | ---: |")
    for w in WORKLOADS:
        tag = w.replace(":", "_")
        b = s.get("blk", {}).get(tag, {})
        for opt in opts:
            x = s[opt][tag]
            if x.get("oom"):
                L.append("| %s | %s | killed by the guest's OOM killer |"
                         % (WORKLOAD_NAMES[tag], OPTION_NAMES[opt]) +
                         " |" * 11)
                continue
            d = x.get("disk")
            dcols = ["-"] * 6
            if d:
                dcols = [fmt(d["written-back"], 0),
                         fmt(d["write-bytes"] / 1048576.0, 1),
                         fmt(d["reads"], 0),
                         fmt(d["read-bytes"] / 1048576.0, 1),
                         fmt(x["disk_reads_per_load"], 2),
                         "%d" % x["guest_failed_stores"]]
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                WORKLOAD_NAMES[tag], OPTION_NAMES[opt], fmt(x["wall_s"], 1),
                "%.2f" % (b["wall_s"] / x["wall_s"]) if b.get("wall_s")
                else "-",
                fmt(x["swapins_per_s"], 0), fmt(x["swapouts_per_s"], 0),
                fmt(x["rss_growth_mib"], 1), " | ".join(dcols),
                fmt(x.get("swap_us_per_page", 0), 1)))
    L.append("")
    if "blk" in s:
        parts = []
        for opt in TIER_OPTIONS:
            if opt not in s:
                continue
            xs = []
            for tag in ("random_text", "random_mixed"):
                x, b = s[opt][tag], s["blk"][tag]
                xs.append("**%.2fx**" % (b["wall_s"] / x["wall_s"])
                          if x.get("wall_s") and b.get("wall_s") else "-")
            parts.append("%s %s (random text pages), %s (random mixed)"
                         % (OPTION_NAMES[opt], xs[0], xs[1]))
        L.append("Target: virtio-tmem with the disk tier >= 2x faster than "
                 "(b) on the random workloads: " + "; ".join(parts) +
                 ".  Analysis: docs/performance.md.")
        L.append("")
    errs = [(o, w) for o in TIER_OPTIONS if o in s
            for w, x in s[o].items()
            if (x.get("disk") or {}).get("errors") or
            x.get("guest_failed_stores")]
    if errs:
        L.append("Note: disk errors or REJECTED stores in %s."
                 % ", ".join("%s/%s" % e for e in errs))
        L.append("")
    return "\n".join(L) + "\n"


def fs_type(path):
    """The file system type of the mount holding path (for the report)."""
    best, typ = "", "?"
    try:
        with open("/proc/mounts") as f:
            for line in f:
                fld = line.split()
                if len(fld) >= 3 and (path == fld[1] or path.startswith(
                        fld[1].rstrip("/") + "/")) and len(fld[1]) > len(best):
                    best, typ = fld[1], fld[2]
    except OSError:
        pass
    return typ


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--options",
                    default=os.environ.get("VTMEM_BENCH_OPTIONS",
                                           ",".join(DEFAULT_OPTIONS)),
                    help="which guests, in this order each round (default "
                    "$VTMEM_BENCH_OPTIONS, else %s; also: %s)"
                    % (",".join(DEFAULT_OPTIONS), ",".join(TIER_OPTIONS)))
    ap.add_argument("--out", default=RESULTS, help="results directory")
    ap.add_argument("--no-libtmem", action="store_true",
                    help="skip tmem-bench (testing only)")
    args = ap.parse_args()
    options = [o for o in args.options.split(",") if o]
    for o in options:
        if o not in OPTION_NAMES:
            ap.error("unknown option %r (known: %s)"
                     % (o, ",".join(OPTION_NAMES)))
    mem = env_int("VTMEM_BENCH_MEM", 256)
    mb = env_int("VTMEM_BENCH_MB", 384)
    passes = env_int("VTMEM_BENCH_PASSES", 1)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.time()
    r = {"started": started.strftime("%Y-%m-%d %H:%M:%S"),
         "load_start": loadavg(), "machine": machine(), "mem": mem,
         "mb": mb, "passes": passes, "options": options}
    log("load average %s" % r["load_start"])

    try:
        # The tests' image decides the accelerator (cached probe).
        qemu, kernel, _, accel = vmrun.prepare("6.12")
        ko = vmrun.find_module(kernel, False)
    except vmrun.Unavailable as e:
        log("cannot run guests: %s" % e)
        return 77
    tmp = tempfile.mkdtemp(prefix="vtmem-bench-")
    try:
        initramfs.GUEST_DIR = guest_dir(tmp)
        lock = vmrun.module_lock(ko)
        try:
            # lz4: the crypto API's, for zswap (zram has its own).
            image = initramfs.build(kernel["moddir"], [ko],
                                    extra_modules=("zram", "lz4"))
        finally:
            if lock:
                lock.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    r["accel"] = accel
    r["kernel"] = kernel["release"]
    try:
        with open(os.path.join(vmrun.cache_root(), "qemu",
                               "VERSION")) as f:
            r["qemu_version"] = f.read().strip()
    except OSError:
        r["qemu_version"] = "?"
    ddir = os.environ.get("VTMEM_BENCH_DIR",
                          os.path.join(vmrun.cache_root(), "bench"))
    os.makedirs(ddir, exist_ok=True)
    disk = os.path.join(ddir, "swap-%d.img" % os.getpid())
    try:
        check_odirect(disk)
        r["aio"] = aio_mode(qemu, disk)
        log("virtio-blk: cache=none aio=%s, file in %s" % (r["aio"], ddir))

        # libtmem alone only serves latest.md's table 1, from guest (a).
        r["libtmem"] = ({"args": [], "pages": 0, "repeat": 0}
                        if args.no_libtmem or "tmem" not in options
                        else run_tmem_bench())
        if any(o in TIER_OPTIONS for o in options):
            r["tier_budget"] = tier_budget()
            r["tier_size"] = tier_size()
            r["tier_dir_fs"] = fs_type(os.path.realpath(ddir))
        r["guests"] = {}
        timeout = env_int("VTMEM_BENCH_TIMEOUT", 1500)
        r["rounds"] = env_int("VTMEM_BENCH_ROUNDS", 2)
        for _ in range(r["rounds"]):
            for opt in options:
                if opt in r.get("failed", {}):
                    continue
                try:
                    run = run_guest(opt, qemu, kernel, image, accel,
                                    r["aio"], disk, mem, mb, passes, timeout)
                except SystemExit as e:
                    if opt in OPTIONS or opt in TIER_OPTIONS:
                        raise
                    # One of the extra options: the run goes on without it.
                    log("%s failed, left out: %s" % (opt, str(e)[:2000]))
                    r.setdefault("failed", {})[opt] = str(e)[:2000]
                    r["guests"].pop(opt, None)
                    continue
                r["guests"].setdefault(opt, []).append(run)
    finally:
        try:
            os.unlink(disk)
        except OSError:
            pass
    r["baseline_us_per_page"] = set_baseline(r["guests"]) * 1e6
    r["summary"] = {o: summarize(o, g) for o, g in r["guests"].items()}
    for g in r["guests"].values():
        alg = g[0]["verdict"]["data"].get("zram_algorithm")
        if alg:
            m = re.search(r"\[([^]]+)\]", alg)
            r["zram_algorithm"] = m.group(1) if m else alg
    r["load_end"] = loadavg()
    r["seconds"] = time.time() - t0
    os.makedirs(args.out, exist_ok=True)
    complete = all(o in r["summary"] for o in OPTIONS)
    if "tmem" in r["summary"]:
        r["host_path"] = host_path(r["libtmem"], r["guests"]["tmem"])
        r["transport"] = transport_summary(r["summary"])
    tier = any(o in r["summary"] for o in TIER_OPTIONS)
    if tier:
        # The disk tier comparison has its own files; latest.* stay.
        with open(os.path.join(args.out, "disk-tier.json"), "w") as f:
            json.dump(r, f, indent=1)
        if "blk" in r["summary"]:
            md = render_tier_md(r)
            with open(os.path.join(args.out, "disk-tier.md"), "w") as f:
                f.write(md)
            print(md)
        else:
            log("no (b) virtio-blk guest: wrote disk-tier.json only")
    if not complete:
        if not tier:
            with open(os.path.join(args.out, "partial.json"), "w") as f:
                json.dump(r, f, indent=1)
            log("not all of %s ran: wrote partial.json only (latest.* "
                "unchanged)" % ",".join(OPTIONS))
        return 0
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump(r, f, indent=1)
    md = render_md(r)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(md)
    plot(r, os.path.join(args.out, "latest.png"))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
