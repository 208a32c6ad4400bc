#!/usr/bin/python3
"""virtio-tmem elastic benchmark: how fast the host gets memory back when
it halves a device's budget, and what that costs the guest's workload.

Run through `scripts/bench.sh elastic`, which sets up what is missing
first.  Two guests (kernel 6.12, 192 MiB RAM, 1 vCPU, budget 1G), one per
path the device reclaims by:

  tier    the device's disk tier (backing-file in a temporary directory,
          backing-size 512M): pages are written back to the file
  return  no tier, a 512 MiB backing disk in the guest: the driver moves
          pages from the host to it (LOAD, write, INVALIDATE), at its
          default return_rate

Each guest (tests/vm/guest/scenarios.sh scn_elastic_bench) does two
shrinks to half of what the host holds, timed from the qom-set to the
device's TMEM_BUDGET_CHANGED "done" event (QEMU's timestamp):

  quiet   a 256 MiB workload holds still with its pages swapped out
  busy    a 256 MiB workload runs random verify passes (vtmem-memtest
          --duration, a progress sample each second): its throughput
          (pages verified per second) in the 10 s before the qom-set
          against the time until the event, and the 10 s after

Every page is verified (0 mismatches) and the tests' checks of the
scenario's counters apply.  Writes bench/results/elastic.json and prints
a table.  A benchmark, not a test: not in any test suite.

Caveat: the figures come from TCG (software emulation: the guest's CPU,
which runs the driver and the workload, is 10-50x slower than under KVM)
on whatever machine runs it; the host side (libtmem, the tier's io_uring
writes) runs at native speed.  They compare the paths with each other and
with the workload's own speed on the same machine, not with real
hardware.

Environment: VTMEM_ELASTIC_MEM (MiB, 192), VTMEM_ELASTIC_MB (MiB, 256),
VTMEM_ELASTIC_PATHS (tier,return), plus vmrun.py's (VTMEM_ACCEL,
VTMEM_QEMU, VTMEM_CACHE, ...).  Exit 0, 1 when a run failed, 77 when
QEMU, the kernel or the module is missing.
"""

import datetime
import json
import os
import platform
import sys
import time

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "scripts", "vm"))
sys.path.insert(0, os.path.join(TOP, "tests", "vm"))
import vmrun  # noqa: E402
import scenarios  # noqa: E402
from scenarios import MiB  # noqa: E402

RESULTS = os.path.join(TOP, "bench", "results")
WINDOW = 10.0   # seconds of throughput before and after the busy shrink


def rate_between(progress, t1, t2):
    """Pages per second verified between guest times t1 and t2, from the
    workload's progress samples ([uptime, pages verified so far]),
    interpolated linearly; None when the samples do not cover it."""
    if not progress or t2 <= t1:
        return None

    def at(t):
        if t < progress[0][0] or t > progress[-1][0]:
            return None
        for (ta, na), (tb, nb) in zip(progress, progress[1:]):
            if ta <= t <= tb:
                return na + (nb - na) * (t - ta) / max(tb - ta, 1e-6)
        return progress[-1][1]

    a, b = at(t1), at(t2)
    if a is None or b is None:
        return None
    return (b - a) / (t2 - t1)


def hook_quiet(vm, cp):
    cp["shrink"] = vm.shrink(scenarios.half_held(vm, cp), "done", 300)
    # Room again for the busy run.
    vm.set_budget(scenarios.size_bytes(vm.budget))


def hook_busy(vm, cp):
    cp["shrink"] = vm.shrink(scenarios.half_held(vm, cp), "done", 300)


PATHS = {
    "tier": dict(tier={"backing-size": "512M", "room-wait-ms": "30000"},
                 backing_mb=0),
    "return": dict(tier=None, backing_mb=512),
}


def summarize(rec):
    if not rec or "mib_s" not in rec:
        return None
    return {"freed_mib": round(rec["freed_bytes"] / MiB, 1),
            "seconds": rec["seconds"], "mib_s": rec["mib_s"],
            "host_bytes_before": rec["host_bytes_before"],
            "budget": rec["budget"]}


def run_path(name, qemu, kernel, image, accel, mem, mb):
    p = PATHS[name]
    params = dict(mb=mb, disksize_mb=2 * mb, duration=75, baseline=30)
    vm = scenarios.ElasticVM(
        qemu, kernel, image, "elastic_bench", accel=accel, mem_mb=mem,
        budget="1G", backing_mb=p["backing_mb"], params=params,
        timeout=900 * scenarios.timeout_scale(), quiet=True, tier=p["tier"],
        hooks={"holding": hook_quiet, "busy": hook_busy})
    print("elastic: %s path: booting (%d MiB guest, %d MiB workload)..."
          % (name, mem, mb), file=sys.stderr, flush=True)
    res = vm.run()
    res.vm = vm
    c = scenarios.Checker(res)
    v = res.verdict or {}
    if not v.get("ok"):
        c.failures.append("guest verdict: %s" % v.get("failures"))
    data = v.get("data", {})
    for tag in ("quiet", "busy"):
        scenarios.check_workload(c, data, tag)
    held, busy, done = (c.cp("holding"), c.cp("busy"), c.cp("busy-done"))
    for cp in (held, busy):
        scenarios.check_agreement(c, cp)
    scenarios.check_agreement(c, c.cp("after-workload"), busy_returns=True)
    scenarios.check_samples(c, vm)
    out = {"seconds": round(res.seconds, 1), "failures": c.failures}
    out["quiet"] = summarize(held and held.get("shrink"))
    b = summarize(busy and busy.get("shrink"))
    if b and busy and done:
        prog = (data.get("busy") or {}).get("progress") or []
        u1, u2 = busy["uptime"], done["uptime"]
        before = rate_between(prog, u1 - WINDOW, u1)
        during = rate_between(prog, u1, u2)
        after = rate_between(prog, u2, u2 + WINDOW)
        b.update(guest_window_s=round(u2 - u1, 2),
                 pages_s_before=before and round(before),
                 pages_s_during=during and round(during),
                 pages_s_after=after and round(after),
                 during_vs_before=(round(during / before, 2)
                                   if before and during is not None
                                   else None))
    out["busy"] = b
    last = c.cp("after-workload")
    if last:
        g = last["guest"]
        out["guest"] = {k: g.get(k) for k in ("returned_pages",
                                              "backing_writes",
                                              "failed_stores")}
        out["disk_pages_after"] = scenarios.disk(last).get("pages")
    for cp in (held, busy):
        if cp and not (cp.get("shrink") or {}).get("event"):
            c.failures.append("%s: no done event" % cp["name"])
    return out


def fmt(v, unit=""):
    return "-" if v is None else "%s%s" % (v, unit)


def table(results):
    lines = ["| path | shrink | freed | time | MiB/s | workload pages/s "
             "before / during / after | during vs before |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        for kind in ("quiet", "busy"):
            s = r.get(kind) or {}
            tput = "-"
            if kind == "busy":
                tput = "%s / %s / %s" % (fmt(s.get("pages_s_before")),
                                         fmt(s.get("pages_s_during")),
                                         fmt(s.get("pages_s_after")))
            lines.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                name, kind, fmt(s.get("freed_mib"), " MiB"),
                fmt(s.get("seconds"), " s"), fmt(s.get("mib_s")), tput,
                fmt(s.get("during_vs_before"), "x") if kind == "busy"
                else "-"))
    return "\n".join(lines)


def main():
    mem = int(os.environ.get("VTMEM_ELASTIC_MEM", "192"))
    mb = int(os.environ.get("VTMEM_ELASTIC_MB", "256"))
    paths = os.environ.get("VTMEM_ELASTIC_PATHS", "tier,return").split(",")
    try:
        qemu, kernel, image, accel = vmrun.prepare("6.12")
    except vmrun.Unavailable as e:
        print("elastic: cannot run: %s" % e, file=sys.stderr)
        return vmrun.SKIP
    load0 = os.getloadavg()
    results, failed = {}, False
    for name in paths:
        try:
            results[name] = run_path(name, qemu, kernel, image, accel, mem, mb)
        except vmrun.VMError as e:
            results[name] = {"failures": [str(e)]}
        if results[name]["failures"]:
            failed = True
            for f in results[name]["failures"]:
                print("elastic: %s: FAIL: %s" % (name, f), file=sys.stderr)
    doc = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "host": platform.release(),
                    "accel": accel, "guest_kernel": kernel["release"],
                    "loadavg_start": [round(x, 1) for x in load0],
                    "loadavg_end": [round(x, 1) for x in os.getloadavg()]},
        "setup": {"guest_ram_mib": mem, "workload_mib": mb, "budget": "1G",
                  "shrink": "to half of host-bytes",
                  "window_s": WINDOW},
        "caveat": "%s: guest CPU emulated; figures compare the paths on "
                  "this machine, not real hardware" % accel.upper(),
        "paths": results,
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "elastic.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("virtio-tmem elastic benchmark (%s, %d CPUs, load %.1f-%.1f; "
          "guest %s, %d MiB RAM, %d MiB workload; budget 1G halved)" % (
              accel.upper(), os.cpu_count(), load0[0], os.getloadavg()[0],
              kernel["release"], mem, mb))
    print(table(results))
    print("caveat: %s" % doc["caveat"])
    print("written: bench/results/elastic.json")
    return 1 if failed else 0


if __name__ == "__main__":
    t = time.time()
    rc = main()
    print("elastic: %.0f s" % (time.time() - t), file=sys.stderr)
    sys.exit(rc)
