#!/usr/bin/python3
"""virtio-tmem demo: a guest with little RAM swaps a workload bigger than
its RAM into host memory, every byte verified; prints the guest's and the
host's view side by side.  Run through scripts/demo.sh, which builds what
is missing first.

Mid-workload, with the workload's pages swapped out, the host halves the
device's budget (qom-set) and waits for its TMEM_BUDGET_CHANGED event:
with --resize tier (the default) the device writes pages to its disk tier
(a file in the VM's temporary directory), with --resize guest the driver
moves pages back to a backing disk of the guest's; --resize none leaves
the budget alone.  The workload then reads every page back.

Exit status: 0 when every page verified and guest and host agree, 1 if
not, 77 when QEMU, the guest kernel or the module is missing.
"""

import argparse
import os
import sys
import time

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "scripts", "vm"))
sys.path.insert(0, os.path.join(TOP, "tests", "vm"))
import vmrun  # noqa: E402
import scenarios  # noqa: E402
from vtmem.wire import PAGE  # noqa: E402


def mib(n):
    return "%.1f MiB" % (n / 1048576.0)


def size_bytes(s):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    s = s.strip().upper().rstrip("B")
    if s and s[-1] in units:
        return int(float(s[:-1]) * units[s[-1]])
    return int(s)


def table(rows, head):
    w0 = max(len(r[0]) for r in rows + [head])
    w = [max(len(str(r[i])) for r in rows + [head]) for i in (1, 2)]
    out = []
    fmt = "  %-*s  %*s  %*s"
    out.append(fmt % (w0, head[0], w[0], head[1], w[1], head[2]))
    out.append("  " + "-" * (w0 + w[0] + w[1] + 4))
    for r in rows:
        out.append(fmt % (w0, r[0], w[0], r[1], w[1], r[2]))
    return "\n".join(out)


def resize_rows(args, res, held):
    """The table's rows for the shrink at the hold."""
    rec = held.get("shrink") or {}
    ev = rec.get("event") or {}
    end = res.checkpoint("after-workload")
    rows = [
        ("budget at the hold: half the host bytes", "",
         "%s -> %s" % (mib(size_bytes(args.budget)),
                       mib(rec.get("budget", 0)))),
        ("  host bytes before / after", "",
         "%s / %s" % (mib(rec.get("host_bytes_before", 0)),
                      mib(rec.get("host_bytes_after", 0)))),
        ("  TMEM_BUDGET_CHANGED", "", "%s in %s s (%s MiB/s)" % (
            ev.get("status", "none"), rec.get("seconds", "-"),
            rec.get("mib_s", "-"))),
    ]
    if args.resize == "tier":
        rows.append(("  pages on the host's disk tier before / after", "",
                     "%s / %s" % (rec.get("disk_pages_before"),
                                  rec.get("disk_pages_after"))))
    rows.append(("  pages moved back to the guest (returned_pages)",
                 end["guest"].get("returned_pages", 0),
                 "%s -> %s pages held" % (rec.get("pages_before"),
                                          rec.get("pages_after"))))
    return rows


def report(args, res, kernel):
    v = res.verdict or {}
    data = v.get("data", {})
    wl = data.get("workload", {})
    held = res.checkpoint("holding")
    end = res.checkpoint("after-workload")
    g, h = end["guest"], end["host"]
    hg, hh = held["guest"], held["host"]
    pages = hh["pages"]
    comp = hh["compressed-bytes"]
    ratio = (pages * PAGE / hh["host-bytes"]) if hh["host-bytes"] else 0
    cratio = (pages * PAGE / comp) if comp else 0

    print()
    print("virtio-tmem demo: guest kernel %s, %d MiB RAM, QEMU %s, budget %s"
          % (v.get("kernel", kernel["release"]), args.mem,
             res.accel.upper(), args.budget))
    print("workload: %d MiB of anonymous memory (%.1fx RAM), %d pages, "
          "%d verify passes (sequential, random, after rewrite, after hold)"
          % (wl.get("mb", 0), wl.get("mb", 0) / float(args.mem),
             wl.get("pages", 0), wl.get("passes", 0)))
    print()
    rows = [
        ("stores accepted (succ_stores)", g.get("succ_stores"),
         h["succ-stores"]),
        ("stores rejected (failed_stores)", g.get("failed_stores"),
         h["failed-stores"]),
        ("  of which: budget / incompressible", "",
         "%d / %d" % (h["failed-stores-budget"],
                      h["failed-stores-incompressible"])),
        ("loads", g.get("loads"), h["loads"]),
        ("load misses / load errors", g.get("load_errors", 0),
         h["load-misses"]),
        ("invalidates", g.get("invalidates"), h["invalidates"]),
        ("rejected pages written to backing disk", g.get("backing_writes", 0),
         ""),
        ("pages in host, workload swapped out", hg.get("pages_in_host", ""),
         pages),
        ("  same-filled (no data) / kept raw", "",
         "%d / %d" % (hh.get("same-filled-pages", 0),
                      hh.get("raw-pages", 0))),
        ("  original size", "", mib(pages * PAGE)),
        ("  compressed bytes", "", mib(comp)),
        ("  host bytes (data + metadata)", "", mib(hh["host-bytes"])),
        ("  compression ratio (orig / compressed)", "", "%.2fx" % cratio),
        ("  memory saved (orig / host bytes)", "", "%.2fx" % ratio),
    ]
    if args.resize != "none":
        rows += resize_rows(args, res, held)
    rows += [
        ("verified pages", wl.get("verified_pages"), ""),
        ("mismatched pages", wl.get("mismatches"), ""),
    ]
    print(table([(a, "" if b is None else str(b), str(c)) for a, b, c in rows],
                ("", "guest (sysfs)", "host (query-tmem)")))
    if end.get("guest_post") and end["guest_post"] != g:
        print("  (the guest read its counters just before the host's query;"
              " its own shell\n   paged a few more in meanwhile: %s loads "
              "just after)" % end["guest_post"].get("loads"))
    print()


def check_resize(c, res, args):
    held = res.checkpoint("holding")
    rec = held.get("shrink") or {}
    scenarios.check_event(c, rec.get("event"), "done", "the halved budget")
    scenarios.check_samples(c, res.vm)
    end = res.checkpoint("after-workload")
    if args.resize == "tier":
        c.expect((rec.get("disk_pages_after") or 0) >
                 (rec.get("disk_pages_before") or 0),
                 "no page moved to the disk tier")
        c.eq(end["guest"].get("returned_pages") or 0, 0,
             "pages returned to the guest although the tier had room")
    else:
        c.expect((end["guest"].get("returned_pages") or 0) > 0,
                 "no page moved back to the guest")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", default="6.12", help="guest kernel series")
    ap.add_argument("--mem", type=int, default=256, help="guest RAM, MiB")
    ap.add_argument("--mb", type=int, default=448,
                    help="workload, MiB (default 1.75x RAM)")
    ap.add_argument("--budget", default="512M", help="host budget")
    ap.add_argument("--backing-mb", type=int, default=0,
                    help="add a backing disk for rejected pages")
    ap.add_argument("--resize", choices=("tier", "guest", "none"),
                    default="tier",
                    help="halve the budget at the hold: pages go to the "
                    "host's disk tier (default) or back to the guest")
    args = ap.parse_args()
    if args.resize == "guest" and not args.backing_mb:
        args.backing_mb = args.mb
    try:
        qemu, kernel, image, accel = vmrun.prepare(args.kernel)
    except vmrun.Unavailable as e:
        print("demo: cannot run: %s" % e, file=sys.stderr)
        return vmrun.SKIP
    sc = dict(guest="swap", mem=args.mem, budget=args.budget,
              backing_mb=args.backing_mb,
              params=dict(mb=args.mb, disksize_mb=args.mb + 256, seq=1,
                          random=1, hold=1))
    print("demo: booting a %d MiB guest (%s) under %s; the workload takes "
          "a minute or two under TCG..." % (args.mem, kernel["release"],
                                            accel.upper()), flush=True)
    kw = {}
    if args.resize != "none":
        kw = dict(hooks={"holding": scenarios.hook_shrink_done},
                  tier={"backing-size": args.budget}
                  if args.resize == "tier" else None)
    vm = scenarios.ElasticVM(qemu, kernel, image, "swap", accel=accel,
                             mem_mb=args.mem, budget=args.budget,
                             backing_mb=args.backing_mb, params=sc["params"],
                             timeout=900, quiet=True, **kw)
    t = time.time()
    try:
        res = vm.run()
    except vmrun.VMError as e:
        print("demo: FAILED: %s" % e)
        r = getattr(e, "result", None)
        if r is not None:
            print(r.console[-4000:])
        return 1
    res.vm = vm
    c = scenarios.Checker(res)
    v = res.verdict or {}
    if not v.get("ok"):
        c.failures.append("guest verdict: %s" % v.get("failures"))
    try:
        scenarios.check_swap(c, res, sc)
        if args.resize != "none":
            check_resize(c, res, args)
        report(args, res, kernel)
    except (KeyError, TypeError) as e:
        c.failures.append("incomplete results: %r" % (e,))
    if c.failures:
        for f in c.failures:
            print("FAIL: %s" % f)
        print("demo: FAILED after %.0f s" % (time.time() - t))
        return 1
    print("demo: PASS: every page verified, guest and host agree "
          "(%.0f s)" % (time.time() - t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
