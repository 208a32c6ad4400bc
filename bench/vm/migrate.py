#!/usr/bin/python3
"""virtio-tmem migration benchmark: what a live migration of a guest whose
swap is in the device costs, against the same guest swapping to a disk.

Run through `scripts/bench.sh migrate`, which sets up what is missing
first.  Two guests (kernel 6.12, 1 vCPU), each migrated twice over a unix
socket to a new QEMU with QEMU's default migration parameters (no -S on
the destination: it starts on its own, as in use):

  tmem    swap on /dev/vtmem0 (-device virtio-tmem-pci, budget 1G): the
          device's pages move with the VM
  blk     swap on a virtio-blk disk instead: the swapped pages stay in the
          host file (shared by both QEMUs), only RAM moves

  quiet   the workload (vtmem-memtest, mixed pages: 3/4 compressible,
          3/16 random, 1/16 same-filled) has written its pages and holds
          still with most of them swapped out
  busy    the same workload churns (--churn: one page in eight rewritten
          per round, then a random verify pass) while it is migrated

Measured (tests/vm/migrate.py does the migrations; query-migrate on the
source, the device's 'migration' property):

  - bytes the device sent / compressed bytes it held when the migration
    began (sent-bytes / setup-compressed-bytes; target <= 1.05 quiet);
  - query-migrate's total-time, downtime, setup-time, the RAM pages sent
    (normal-bytes) and the whole stream (ram.transferred: in QEMU 10 every
    byte written, the device's included), for both guests;
  - the device's share of the downtime: final-ns, the time of its pass
    under the stopped VM (target <= 50 ms at 256 MiB held; the device
    waits for no request at the stop: one in flight is carried in its
    VMState and submitted again by the destination, so there is no
    drain-ns);
  - the device's pre-copy passes (sweeps over its index), busy and quiet.

Every page is verified afterwards (0 mismatches) and the driver must log
no error.  Writes bench/results/migrate.json and prints a table.  A
benchmark, not a test: not in any test suite.

Caveat: TCG (the guest's CPU emulated, 10-50x slower than KVM, so the
busy workload dirties far less per second than it would on hardware); the
host side (libtmem, the migration stream) runs at native speed.

Environment: VTMEM_MIGBENCH_MEM (guest MiB, 256), VTMEM_MIGBENCH_MB
(workload MiB, 960: about 256 MiB compressed held),
VTMEM_MIGBENCH_GUESTS (tmem,blk), plus vmrun.py's (VTMEM_ACCEL,
VTMEM_QEMU, VTMEM_CACHE, ...).  Exit 0, 1 when a run
failed, 77 when QEMU, the kernel or the module is missing.
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
import migrate  # noqa: E402
from scenarios import MiB  # noqa: E402

RESULTS = os.path.join(TOP, "bench", "results")
RATIO_MAX = 1.05
DEVICE_DOWNTIME_MS_MAX = 50.0
GUESTS = {
    "tmem": dict(tmem=True, plain_swap_mb=0),
    "blk": dict(tmem=False),
}


def figures(step):
    """One migration's figures from its step report."""
    m = step.get("migrate") or {}
    p = step.get("src_migration") or {}
    before = step.get("src_before") or {}
    out = {"status": m.get("status"), "total_ms": m.get("total-time"),
           "downtime_ms": m.get("downtime"), "setup_ms": m.get("setup-time"),
           "stream_mib": m.get("ram-transferred") and
           round(m["ram-transferred"] / MiB, 1),
           "ram_mib": m.get("ram-normal-bytes") and
           round(m["ram-normal-bytes"] / MiB, 1),
           "ram_dirty_syncs": m.get("ram-dirty-sync-count"),
           "wall_s": step.get("wall_s")}
    if p:
        held = p.get("setup-compressed-bytes") or 0
        out.update({
            "held_compressed_mib": round(held / MiB, 1),
            "pages_before": before.get("pages"),
            "sent_mib": round(p.get("sent-bytes", 0) / MiB, 1),
            "sent_over_held": held and round(p.get("sent-bytes", 0) / held,
                                             4),
            "sent_pages": p.get("sent-pages"),
            "drops": p.get("drops"),
            "passes": p.get("passes"),
            "blocks": p.get("blocks"),
            "final_mib": round(p.get("final-bytes", 0) / MiB, 2),
            "disk_reads": p.get("disk-reads"),
            "final_ms": round(p.get("final-ns", 0) / 1e6, 2),
            "device_downtime_ms": round(p.get("final-ns", 0) / 1e6, 2)})
    return out


def run_guest(name, qemu, kernel, image, accel, mem, mb):
    g = GUESTS[name]
    params = dict(mb=mb, busy_after=10)
    if g["tmem"]:
        params["disksize_mb"] = mb + 256
    quiet = {"op": "live", "paused": False, "idle": True}
    busy = {"op": "live", "paused": False}
    vm = migrate.MigrateVM(
        qemu, kernel, image, "migrate_bench", accel=accel, mem_mb=mem,
        budget="1G", tmem=g["tmem"],
        plain_swap_mb=0 if g["tmem"] else mb + 256, params=params,
        timeout=1500 * scenarios.timeout_scale(), quiet=True,
        plan={"quiet": [quiet], "busy": [busy]}, gap_s=2,
        step_timeout=600 * scenarios.timeout_scale())
    print("migrate: %s guest: booting (%d MiB guest, %d MiB workload)..."
          % (name, mem, mb), file=sys.stderr, flush=True)
    try:
        res = vm.run()
    except vmrun.VMError as e:
        return {"failures": [str(e)] + vm.failures,
                "console": getattr(getattr(e, "result", None), "console",
                                   "")[-3000:]}
    c = scenarios.Checker(res)
    v = res.verdict or {}
    if not v.get("ok"):
        c.failures.append("guest verdict: %s" % v.get("failures"))
    data = v.get("data", {})
    scenarios.check_workload(c, data)
    c.eq(data.get("driver_errors"), 0, "driver errors and warnings in dmesg")
    c.failures.extend(vm.failures)
    c.eq([s["checkpoint"] for s in vm.steps], ["quiet", "busy"],
         "migrations done")
    out = {"seconds": round(res.seconds, 1), "failures": c.failures}
    for s in vm.steps:
        out[s["checkpoint"]] = figures(s)
    q = c.cp("quiet")
    if q:
        out["swap_used_mib"] = round(q.get("swap_used_kb", 0) / 1024, 1)
    w = data.get("workload") or {}
    out["workload"] = {k: w.get(k) for k in ("pages", "mismatches",
                                              "churn_rounds",
                                              "churn_rewritten")}
    return out


def fmt(v, unit=""):
    return "-" if v is None else "%s%s" % (v, unit)


def table(results):
    lines = ["| guest | migration | held (compressed) | sent / held | "
             "passes | total | downtime | device (final pass) | RAM pages "
             "| stream |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        for kind in ("quiet", "busy"):
            s = r.get(kind) or {}
            dev = fmt(s.get("device_downtime_ms"), " ms")
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                         % (name, kind,
                            fmt(s.get("held_compressed_mib"), " MiB"),
                            fmt(s.get("sent_over_held")),
                            fmt(s.get("passes")),
                            fmt(s.get("total_ms"), " ms"),
                            fmt(s.get("downtime_ms"), " ms"), dev,
                            fmt(s.get("ram_mib"), " MiB"),
                            fmt(s.get("stream_mib"), " MiB")))
    return "\n".join(lines)


def verdicts(results):
    """The targets, judged on what was measured."""
    out = {}
    t = results.get("tmem") or {}
    q = t.get("quiet") or {}
    if q.get("sent_over_held"):
        out["quiet_sent_over_held_le_1.05"] = q["sent_over_held"] <= RATIO_MAX
    for kind in ("quiet", "busy"):
        s = t.get(kind) or {}
        if "device_downtime_ms" in s:
            out["%s_device_downtime_le_50ms" % kind] = \
                s["device_downtime_ms"] <= DEVICE_DOWNTIME_MS_MAX
    b = results.get("blk") or {}
    for kind in ("quiet", "busy"):
        a, z = (t.get(kind) or {}).get("total_ms"), \
            (b.get(kind) or {}).get("total_ms")
        if a and z:
            out["%s_total_time_tmem_over_blk" % kind] = round(a / z, 2)
    return out


def main():
    mem = int(os.environ.get("VTMEM_MIGBENCH_MEM", "256"))
    mb = int(os.environ.get("VTMEM_MIGBENCH_MB", "960"))
    names = os.environ.get("VTMEM_MIGBENCH_GUESTS", "tmem,blk").split(",")
    try:
        qemu, kernel, image, accel = vmrun.prepare("6.12")
    except vmrun.Unavailable as e:
        print("migrate: cannot run: %s" % e, file=sys.stderr)
        return vmrun.SKIP
    load0 = os.getloadavg()
    results, failed = {}, False
    for name in names:
        results[name] = run_guest(name, qemu, kernel, image, accel, mem, mb)
        if results[name]["failures"]:
            failed = True
            for f in results[name]["failures"]:
                print("migrate: %s: FAIL: %s" % (name, f), file=sys.stderr)
    doc = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "host": platform.release(),
                    "accel": accel, "guest_kernel": kernel["release"],
                    "qemu": qemu,
                    "loadavg_start": [round(x, 1) for x in load0],
                    "loadavg_end": [round(x, 1) for x in os.getloadavg()]},
        "setup": {"guest_ram_mib": mem, "workload_mib": mb,
                  "mix": "mixed", "budget": "1G",
                  "transport": "unix socket, default parameters, "
                               "destination without -S",
                  "busy": "vtmem-memtest --churn, migrated 10 s after it "
                          "began"},
        "targets": {"sent_over_held_max": RATIO_MAX,
                    "device_downtime_ms_max": DEVICE_DOWNTIME_MS_MAX},
        "verdicts": verdicts(results),
        "caveat": "%s: guest CPU emulated; figures compare the two guests "
                  "on this machine, not real hardware" % accel.upper(),
        "guests": results,
    }
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "migrate.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print("virtio-tmem migration benchmark (%s, %d CPUs, load %.1f-%.1f; "
          "guest %s, %d MiB RAM, %d MiB workload; unix socket, defaults)" % (
              accel.upper(), os.cpu_count(), load0[0], os.getloadavg()[0],
              kernel["release"], mem, mb))
    print(table(results))
    print("verdicts: %s" % json.dumps(doc["verdicts"]))
    print("caveat: %s" % doc["caveat"])
    print("written: bench/results/migrate.json")
    return 1 if failed else 0


if __name__ == "__main__":
    t = time.time()
    rc = main()
    print("migrate: %.0f s" % (time.time() - t), file=sys.stderr)
    sys.exit(rc)
