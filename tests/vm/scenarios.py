#!/usr/bin/python3
"""End-to-end virtio-tmem scenarios: a real guest swapping into the device.

Each scenario boots a guest (scripts/vm/vmrun.py), runs the guest half of
the same name from tests/vm/guest/scenarios.sh, and then checks the
guest's verdict and every checkpoint, where guest sysfs counters and the
host's query-tmem were read at the same quiet moment.  Any wrong byte,
any counter that disagrees, any host figure out of bounds fails the test.

  tests/vm/scenarios.py NAME [--kernel 6.12|6.1|7.3]   exit 0 / 1 / 77 (skip)
  tests/vm/scenarios.py --list

Sizes are chosen for TCG on 2 cores: the whole vm suite stays within
about 15 minutes (see tests/vm/meson.build).  On a machine loaded by other
jobs, VTMEM_VM_TIMEOUT_SCALE=N multiplies each scenario's timeout (with
meson, add -t N for its own).
"""

import argparse
import json
import os
import sys
import time

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "scripts", "vm"))
import vmrun  # noqa: E402
from vtmem.wire import PAGE  # noqa: E402

MiB = 1 << 20


class Checker:
    def __init__(self, res):
        self.res = res
        self.failures = []

    def expect(self, cond, what):
        if not cond:
            self.failures.append(what)
        return cond

    def eq(self, a, b, what):
        return self.expect(a == b, "%s: %r != %r" % (what, a, b))

    def cp(self, name, boot=None):
        try:
            return self.res.checkpoint(name, boot)
        except KeyError as e:
            self.failures.append(str(e))
            return None


def host(cp, key):
    """A query-tmem member; QAPI spells them with dashes."""
    h = cp["host"]
    for k in (key, key.replace("_", "-")):
        if k in h:
            return h[k]
    raise KeyError("query-tmem has no %s: %s" % (key, sorted(h)))


def guest(cp, key):
    return cp["guest"].get(key)


def check_agreement(c, cp, base=None, load_errors=0):
    """Guest sysfs counters and host query-tmem at one checkpoint.

    The guest read its counters just before (guest) and just after
    (guest_post) the host's query-tmem: each host counter must lie between
    the two readings, which are equal when the guest was quiet.  With
    base (an earlier checkpoint), only what happened since is compared:
    requests the guest sent around the block layer (the hostile test's
    raw requests) count on the host but not in sysfs.  load_errors: the
    guest's expected load_errors (LOADs the host answered with an error,
    which the host may count in its loads).
    """
    if cp is None:
        return
    n = cp["name"]
    pre = cp["guest"]
    post = cp.get("guest_post") or pre

    def hv(h, g=None):
        v = host(cp, h)
        if base is not None:
            v -= host(base, h) - ((base.get("guest_post") or base["guest"])
                                  .get(g, 0) if g else 0)
        return v

    for g, h in (("succ_stores", "succ-stores"),
                 ("failed_stores", "failed-stores"),
                 ("loads", "loads")):
        lo, hi, v = pre.get(g), post.get(g), hv(h, g)
        if g == "loads" and load_errors and lo is not None:
            hi += load_errors
        if lo == hi:
            c.eq(lo, v, "%s: guest %s vs host %s" % (n, g, h))
        else:
            c.expect(lo is not None and lo <= v <= hi,
                     "%s: host %s %s not within guest %s [%s, %s]" % (
                         n, h, v, g, lo, hi))
    if pre.get("pages_in_host") is not None:
        # Between the readings pages come (stores) and go (invalidates).
        came = post["succ_stores"] - pre["succ_stores"]
        went = post["invalidates"] - pre["invalidates"]
        lo = min(pre["pages_in_host"], post["pages_in_host"]) - went
        hi = max(pre["pages_in_host"], post["pages_in_host"]) + came
        v = hv("pages", "pages_in_host")
        if lo == hi:
            c.eq(pre["pages_in_host"], v,
                 "%s: guest pages_in_host vs host pages" % n)
        else:
            c.expect(lo <= v <= hi,
                     "%s: host pages %d not within guest pages_in_host "
                     "[%d, %d]" % (n, v, lo, hi))
    # A persistent pool never misses a page it accepted.
    c.eq(hv("load-misses"), 0, "%s: host load-misses" % n)
    c.eq(post.get("load_errors") or 0, load_errors,
         "%s: guest load_errors" % n)
    c.expect(host(cp, "host-bytes") <= host(cp, "budget"),
             "%s: host-bytes %d over budget %d" % (
                 n, host(cp, "host-bytes"), host(cp, "budget")))
    # The host counts pages it dropped, the guest requests it sent.
    c.expect(hv("invalidates", "invalidates") <= (post.get("invalidates") or 0),
             "%s: host invalidates %d > guest %s" % (
                 n, hv("invalidates", "invalidates"), post.get("invalidates")))


def check_workload(c, data, tag="workload"):
    w = data.get(tag)
    if not c.expect(isinstance(w, dict), "no result for %s" % tag):
        return
    c.eq(w.get("mismatches"), 0, "%s mismatches" % tag)
    c.expect(not w.get("error"), "%s reported an error" % tag)
    if w.get("mode") == "mem":
        c.eq(w.get("verified_pages"), w.get("pages", 0) * w.get("passes", 0),
             "%s verified pages" % tag)


def check_swap(c, res, sc):
    if sc["params"].get("hold"):
        held = c.cp("holding")
        check_agreement(c, held)
        if held:
            c.expect(host(held, "pages") > 0,
                     "host holds no pages while the workload is swapped out")
    cp = c.cp("after-workload")
    check_agreement(c, cp)
    check_workload(c, res.verdict.get("data", {}))
    if cp is None:
        return
    c.expect(guest(cp, "succ_stores") > 0, "no successful stores")
    c.expect(guest(cp, "loads") > 0, "no loads")
    if sc.get("backing_mb"):
        c.expect(guest(cp, "failed_stores") > 0, "guest failed_stores is 0")
        c.expect(host(cp, "failed-stores") > 0, "host failed-stores is 0")
        c.expect(guest(cp, "backing_writes") > 0, "no backing writes")
        c.expect(guest(cp, "backing_reads") > 0, "no backing reads")
        c.eq(guest(cp, "backing_writes"), guest(cp, "failed_stores"),
             "every rejected store went to the backing disk")


def check_nobacking(c, res, sc):
    cp = c.cp("after-workload")
    check_agreement(c, cp)
    data = res.verdict.get("data", {})
    check_workload(c, data)
    check_workload(c, data, "after")
    w = data.get("workload") or {}
    c.expect(w.get("mb", 0) * 256 > w.get("pages", 0) > 0,
             "the workload stopped growing at %s of %s pages" % (
                 w.get("pages"), w.get("mb", 0) * 256))
    c.expect(w.get("pages", 0) > data.get("mem_available_mb", 1 << 30) * 256,
             "the workload (%s pages) never outgrew RAM (%s MiB available)"
             % (w.get("pages"), data.get("mem_available_mb")))
    if cp:
        c.expect(guest(cp, "failed_stores") >= sc["params"]["refusals"],
                 "guest failed_stores %s" % guest(cp, "failed_stores"))
        c.expect(host(cp, "failed-stores") > 0, "host failed-stores is 0")
        c.eq(guest(cp, "write_errors"), guest(cp, "failed_stores"),
             "every refused store failed its write (no backing disk)")


def check_swapoff(c, res, sc):
    before = c.cp("before-swapoff")
    after = c.cp("after-swapoff")
    discarded = c.cp("after-discard")
    for cp in (before, after, discarded):
        check_agreement(c, cp)
    check_workload(c, res.verdict.get("data", {}))
    if before:
        c.expect(host(before, "pages") > 256,
                 "host held %d pages before swapoff" % host(before, "pages"))
    if after:
        # swapoff frees every slot; the disk keeps its swap header page.
        c.expect(host(after, "pages") <= 1,
                 "after swapoff: host still holds %d pages"
                 % host(after, "pages"))
    if discarded:
        for k in ("pages", "compressed-bytes", "data-bytes"):
            c.eq(host(discarded, k), 0, "after discard: host %s" % k)
        c.eq(guest(discarded, "pages_in_host"), 0,
             "after discard: pages_in_host")


def check_lifecycle(c, res, sc):
    written = c.cp("written", 1)
    check_agreement(c, written)
    if written:
        c.expect(host(written, "pages") >= sc["params"]["mb"] * 256,
                 "host holds %d pages, wrote %d" % (
                     host(written, "pages"), sc["params"]["mb"] * 256))
    # A reloaded module has opened a fresh pool; nothing else is left.
    for name, boot, pools in (("unloaded", 1, 0), ("reloaded", 1, 1),
                              ("boot", 2, 0)):
        cp = c.cp(name, boot)
        if cp is None:
            continue
        for k in ("pages", "compressed-bytes", "data-bytes"):
            c.eq(host(cp, k), 0, "%s (boot %d): host %s" % (name, boot, k))
        c.eq(host(cp, "pools"), pools, "%s (boot %d): host pools" % (name, boot))
    before = c.cp("before-reboot", 1)
    if before:
        c.expect(host(before, "pages") > 0, "no pages in host before reboot")
    c.eq(res.verdict.get("boot"), 2, "verdict comes from the second boot")
    data = res.verdict.get("data", {})
    for tag in ("after_reboot_zero", "after_reboot_write",
                "after_reboot_verify"):
        check_workload(c, data, tag)


def check_hostile(c, res, sc):
    data = res.verdict.get("data", {})
    h = data.get("hostile")
    if c.expect(isinstance(h, dict), "no hostile report"):
        c.expect(h.get("cases", 0) > 0, "no hostile cases ran")
        c.eq(h.get("wrong", -1), 0, "hostile cases with the wrong status")
    base = c.cp("after-hostile")
    cp = c.cp("after-workload")
    if base is not None:
        check_agreement(c, cp, base)
        c.expect(guest(cp, "succ_stores") > 1000,
                 "the workload after the hostile requests did not swap")
    # NEEDS_RESET: the host drops everything, the driver opens a new pool,
    # old pages fail to read, new ones work.
    r = data.get("needs_reset")
    if c.expect(isinstance(r, dict), "no needs-reset report"):
        c.eq(r.get("wrong", -1), 0, "needs-reset request answered wrongly")
    before = c.cp("before-reset")
    after = c.cp("after-reset")
    io = c.cp("after-reset-io")
    if before:
        c.expect(host(before, "pages") >= 1024, "no pages before the reset")
    if after:
        for k in ("pages", "compressed-bytes", "data-bytes"):
            c.eq(host(after, k), 0, "after NEEDS_RESET: host %s" % k)
        c.eq(host(after, "pools"), 1, "after NEEDS_RESET: host pools")
    if io:
        c.expect(host(io, "pages") >= 1024,
                 "after NEEDS_RESET: new writes not in the host")
    lost = data.get("lost") or {}
    c.expect(lost.get("error") or lost.get("mismatches", 0) == 0 and
             data.get("lost_exit") != 0,
             "reading pages lost in the reset did not fail: %s" % lost)
    check_workload(c, data, "after_reset_write")
    check_workload(c, data, "after_reset_verify")
    check_workload(c, data)


def check_hostile_host(c, res, sc):
    data = res.verdict.get("data", {})
    slots = data.get("disksize", 0) // PAGE
    ram_pages = data.get("mem_total_kb", 0) // 4
    # DRV-8: a capacity hint of 2^34 pages is clamped to 64 slots per page
    # of RAM, with a message; the disk still appears.
    c.expect(0 < slots <= 64 * ram_pages,
             "disk of %d slots for a guest of %d pages (hint 2^34)" %
             (slots, ram_pages))
    c.eq(data.get("clamp_dmesg"), 1, "capacity clamp messages")
    # DRV-5: every LOAD answered with a used length of 8 fails.
    short = data.get("short_read") or {}
    c.expect(data.get("short_read_exit") not in (0, None),
             "reads answered without the page succeeded: %s" % short)
    c.expect(data.get("short_load_errors", 0) >= 1,
             "no load_errors from short answers")
    c.expect(data.get("short_dmesg", 0) >= 1, "no short-answer message")
    check_workload(c, data, "short_verify")
    w = c.cp("short-written")
    if w:
        c.expect(host(w, "pages") >= 512, "short-written: pages not in host")
    # DRV-9: no answer fails the device after io_timeout (3 s), no hang.
    c.eq(data.get("hold_dmesg"), 1, "device-failed messages")
    c.expect(data.get("hold_pool_seconds", 99) <= 20,
             "pool operation took %s s" % data.get("hold_pool_seconds"))
    c.expect(data.get("dead_write_exit") not in (0, None),
             "a write to the failed device succeeded")
    c.expect(data.get("dead_io_seconds", 99) <= 10,
             "I/O to the failed device took %s s" %
             data.get("dead_io_seconds"))
    f = c.cp("failed")
    if f:
        # The driver reset the device: it holds nothing.
        c.eq(host(f, "pools"), 0, "failed: host pools")
        c.eq(host(f, "pages"), 0, "failed: host pages")
    check_workload(c, data, "after_write")
    check_workload(c, data, "after_verify")
    r = c.cp("reloaded")
    if r:
        c.eq(host(r, "pools"), 1, "reloaded: host pools")
        c.expect(host(r, "pages") >= 512, "reloaded: pages not in host")


def check_parallel(c, res, sc):
    cp = c.cp("after-workload")
    check_agreement(c, cp)
    data = res.verdict.get("data", {})
    for i in range(sc["params"]["procs"]):
        check_workload(c, data, "workload%d" % i)
    c.eq(data.get("num_queues"), sc["num_queues"], "queues the driver uses")
    if cp:
        c.expect(guest(cp, "succ_stores") > 0, "no successful stores")


def disk(cp):
    """query-tmem's disk tier member (a dict; {} when the host has none)."""
    return cp["host"].get("disk") or {}


def check_tier_common(c, cp):
    if cp is None:
        return
    n = cp["name"]
    d = disk(cp)
    if not c.expect(d, "%s: query-tmem has no disk member" % n):
        return
    c.expect(d.get("pages", 0) <= host(cp, "pages"),
             "%s: disk pages %s > host pages %s" % (n, d.get("pages"),
                                                    host(cp, "pages")))
    c.expect(d.get("bytes", 0) <= host(cp, "compressed-bytes"),
             "%s: disk bytes %s > compressed-bytes %s" % (
                 n, d.get("bytes"), host(cp, "compressed-bytes")))
    c.expect(d.get("segments", 0) * d.get("segment-size", 0) <=
             d.get("size", 0),
             "%s: %s segments of %s bytes in a tier of %s" % (
                 n, d.get("segments"), d.get("segment-size"), d.get("size")))


def check_disk_tier(c, res, sc):
    """Far more compressed data than budget: the host writes the cold part
    to its file and refuses nothing; everything comes back."""
    held = c.cp("holding")
    cp = c.cp("after-workload")
    for x in (held, cp):
        check_agreement(c, x)
        check_tier_common(c, x)
    check_workload(c, res.verdict.get("data", {}))
    if held and disk(held):
        d = disk(held)
        c.expect(host(held, "pages") > 0,
                 "host holds no pages while the workload is swapped out")
        c.expect(d.get("pages", 0) > 0,
                 "holding: no pages on the disk tier (%s)" % d)
        c.expect(d.get("writes", 0) > 0, "holding: no disk writes (%s)" % d)
        c.expect(d.get("written-back", 0) >= d.get("pages", 0),
                 "holding: written-back %s < disk pages %s" % (
                     d.get("written-back"), d.get("pages")))
    if cp is None:
        return
    d = disk(cp)
    c.expect(guest(cp, "succ_stores") > 0, "no successful stores")
    c.expect(guest(cp, "loads") > 0, "no loads")
    # While the file has room nothing is REJECTED: stores wait for
    # write-back instead, and the guest never uses its backing disk.
    c.eq(host(cp, "failed-stores"), 0, "host failed-stores")
    c.eq(guest(cp, "failed_stores"), 0, "guest failed_stores (REJECTED)")
    c.eq(guest(cp, "backing_writes"), 0, "guest backing_writes")
    c.eq(guest(cp, "write_errors") or 0, 0, "guest write_errors")
    if d:
        c.expect(d.get("reads", 0) > 0,
                 "no page came back from the disk tier (%s)" % d)
        c.eq(d.get("errors"), 0, "disk errors")
        c.eq(d.get("failed"), False, "disk failed")
        c.expect(d.get("written-back", 0) > 0, "nothing written back")


def check_tier_errors(c, res, sc):
    """Read errors fail the read and never return other data; after a
    write error the tier is failed and refused pages go to the backing
    disk."""
    data = res.verdict.get("data", {})
    written = c.cp("blk-written")
    failed = c.cp("read-failed")
    discarded = c.cp("discarded")
    cp = c.cp("after-workload")
    check_workload(c, data, "blk_write")
    check_agreement(c, written)
    check_tier_common(c, written)
    if written and disk(written):
        c.expect(disk(written).get("pages", 0) > 0,
                 "blk-written: no pages on the disk tier: %s"
                 % disk(written))
        c.eq(host(written, "failed-stores"), 0,
             "blk-written: host failed-stores")
    # (b) reading back with disk reads failing: an error, no wrong byte.
    bad = data.get("blk_read_error") or {}
    c.expect(data.get("blk_read_error_exit") not in (None, 0),
             "reads with failing disk reads exited 0: %s" % bad)
    c.eq(bad.get("mismatches", 0), 0, "wrong data read from a failing tier")
    c.expect(bad.get("error") is True,
             "failing disk reads: memtest saw no I/O error: %s" % bad)
    c.expect(data.get("read_error_load_errors", 0) > 0,
             "guest load_errors did not grow on failing disk reads")
    c.expect(data.get("read_error_dmesg", 0) > 0,
             "no 'LOAD failed' in the guest's kernel log")
    errs = data.get("read_error_load_errors", 0)
    for x in (failed, discarded):
        check_agreement(c, x, load_errors=errs)
        check_tier_common(c, x)
    if failed and disk(failed):
        d = disk(failed)
        c.expect(d.get("errors", 0) >= 1, "read-failed: disk errors %s" % d)
        c.eq(d.get("failed"), False,
             "read-failed: a read error must not fail the tier")
        # No miss: the pages that failed to read are still stored.
        c.eq(host(failed, "load-misses"), 0, "read-failed: load-misses")
        c.eq(host(failed, "pages"), host(written, "pages") if written else
             None, "read-failed: host pages (a failed read keeps the page)")
    # Once disk reads work again, every page reads back intact.
    check_workload(c, data, "blk_verify")
    if discarded:
        for k in ("pages", "compressed-bytes"):
            c.eq(host(discarded, k), 0, "after discard: host %s" % k)
        c.eq(disk(discarded).get("pages"), 0, "after discard: disk pages")
    # (a) write errors: the tier fails, the host refuses, the guest writes
    # the refused pages to its backing disk; nothing is lost.
    check_workload(c, data)
    if cp is None:
        return
    check_agreement(c, cp, load_errors=errs)
    check_tier_common(c, cp)
    d = disk(cp)
    c.expect(d.get("failed") is True, "after-workload: tier not failed: %s"
             % d)
    c.expect(d.get("errors", 0) >= 1 + (disk(failed).get("errors", 0)
                                        if failed else 0),
             "after-workload: no write error counted: %s" % d)
    # The failed write wrote nothing and the tier writes nothing more (its
    # stranded segment's pages stay in memory and may count as disk
    # pages).  Writes issued before the error was injected may complete,
    # and be counted, later: query-tmem counts a write when the tier's
    # writer reaps it, on its next pass.  At most its 4 segment buffers.
    d0 = disk(discarded) if discarded else {}
    if d0:
        c.expect(d.get("writes", 0) - d0.get("writes", 0) <= 4 and
                 d.get("write-bytes", 0) - d0.get("write-bytes", 0) <=
                 4 * d.get("segment-size", 0),
                 "after-workload: a failing tier wrote %d segments (%d "
                 "bytes) after the error was injected" % (
                     d.get("writes", 0) - d0.get("writes", 0),
                     d.get("write-bytes", 0) - d0.get("write-bytes", 0)))
    c.expect(host(cp, "failed-stores") > 0,
             "no store REJECTED after the tier failed")
    c.expect(guest(cp, "failed_stores") > 0, "guest failed_stores is 0")
    c.eq(guest(cp, "backing_writes"), guest(cp, "failed_stores"),
         "every rejected store went to the backing disk")
    c.expect(guest(cp, "backing_reads") > 0, "no backing reads")


class TierVM(vmrun.VM):
    """vmrun's VM with the device's disk tier in the VM's temporary
    directory, and QOM properties set at named checkpoints."""

    def __init__(self, *a, tier=None, actions=None, **kw):
        super().__init__(*a, **kw)
        self.tier = dict(tier or {})
        self.actions = actions or {}
        self.tier_path = None

    def _argv(self):
        argv = super()._argv()
        i = [n for n, x in enumerate(argv)
             if x.startswith("virtio-tmem,")][0]
        self.tier_path = os.path.join(self.tmp, "tier.img")
        props = dict(self.tier, **{"backing-file": self.tier_path})
        argv[i] += "".join(",%s=%s" % kv for kv in sorted(props.items()))
        return argv

    def _file_bytes(self):
        try:
            st = os.stat(self.tier_path)
            return {"size": st.st_size, "allocated": st.st_blocks * 512}
        except OSError:
            return None

    def at_checkpoint(self, cp):
        cp["tier_file"] = self._file_bytes()
        for prop, value in self.actions.get(cp["name"], {}).items():
            self.qmp.cmd("qom-set", path="/machine/peripheral/tmem0",
                         property=prop, value=value)
            cp.setdefault("qom_set", {})[prop] = value
            if not self.quiet:
                vmrun.log("%s: qom-set %s=%s" % (cp["name"], prop, value))


# The host halves.  params become vtmem.KEY=VALUE for the guest.
def check_return_fake(c, res, sc):
    d = res.verdict.get("data", {})
    check_agreement(c, c.cp("holding"))
    for n in ("returned", "failed", "after-workload"):
        check_returned_clean(c, c.cp(n))
    check_workload(c, d)
    c.expect(d.get("target", 0) > 0, "nothing held to return")
    c.eq(d.get("state_refused"), "refused", "return state with return_rate 0")
    c.eq(d.get("refused_returned"), 0, "pages moved with return_rate 0")
    c.eq(d.get("return_errors"), 3, "return_errors after 3 failed LOADs")
    c.eq(d.get("state_done"), "idle", "return state when done")
    c.eq(d.get("host_target"), str(d.get("target")), "host_target_pages")
    ret = c.cp("returned")
    if ret:
        c.expect(guest(ret, "pages_in_host") <= d.get("target", 0),
                 "pages_in_host above the target")
        c.eq(guest(ret, "returned_pages") if "returned_pages" in ret["guest"]
             else d.get("returned"), d.get("returned"), "returned_pages")
        c.expect(d.get("returned", 0) >= d.get("held", 0) - d.get("target", 0),
                 "returned %s < held %s - target %s" % (
                     d.get("returned"), d.get("held"), d.get("target")))
    c.eq(d.get("state_failed"), "failed", "return state after a write error")
    c.expect(d.get("after_failed", 0) > d.get("low", 0),
             "pages moved after the backing write failed")
    c.eq(d.get("retry_fault_left"), 0, "another target not tried after FAILED")
    c.eq(d.get("state_failed2"), "failed", "return state after a second error")
    c.expect(d.get("after_retry", 1) <= d.get("low2", 0),
             "FAILED not retried on its own (%s s)" % d.get("retry_seconds"))
    c.eq(d.get("state_none"), "idle", "return state without a target")
    c.eq(d.get("host_target_none"), "none", "host_target_pages without one")


def check_returned_clean(c, cp):
    """After pages were returned: the guest's LOADs and INVALIDATEs of
    them count on the host only, so only what must be 0 is compared."""
    if cp is None:
        return
    c.eq(host(cp, "load-misses"), 0, "%s: host load-misses" % cp["name"])
    c.eq(guest(cp, "load_errors"), 0, "%s: guest load_errors" % cp["name"])


def check_return_fake_race(c, res, sc):
    d = res.verdict.get("data", {})
    check_return_fake_busy(c, res, sc)
    c.expect(d.get("races", 0) > 0, "no STORE raced with the worker")
    c.eq(d.get("bad_pass"), 0, "a pass read back older bytes")


def check_return_fake_busy(c, res, sc):
    d = res.verdict.get("data", {})
    check_returned_clean(c, c.cp("after-workload"))
    check_workload(c, d)
    c.expect(d.get("returned", 0) > 0, "no page returned")


SCENARIOS = {
    "return-fake-race": dict(
        guest="return_fake_race", mem=128, budget="1G", backing_mb=64,
        test_build=True, check=check_return_fake_race,
        params=dict(mb=8, disksize_mb=64, passes=8, race_ms=100),
        doc="a STORE of a slot the worker holds reads REJECTED while the "
            "worker waits before its backing write (test hook): each "
            "pass reads back its own bytes (DRV-10)"),
    "return-fake-rewrite": dict(
        guest="return_fake_rewrite", mem=128, budget="1G", backing_mb=64,
        test_build=True, check=check_return_fake_busy,
        params=dict(mb=8, disksize_mb=64, passes=16),
        doc="every page asked back while O_DIRECT passes rewrite the same "
            "blocks with new content: the last pass reads back"),
    "return-fake-busy": dict(
        guest="return_fake_busy", mem=128, budget="1G", backing_mb=512,
        test_build=True, check=check_return_fake_busy,
        params=dict(mb=192, disksize_mb=384),
        doc="pages asked back while the workload rewrites them (fake "
            "target every 2 s): 0 mismatches"),
    "return-fake": dict(
        guest="return_fake", mem=128, budget="1G", backing_mb=512,
        test_build=True, check=check_return_fake,
        params=dict(mb=192, disksize_mb=384),
        doc="half the host's pages asked back (fake target): moved to the "
            "backing disk, 0 mismatches; a write error stops it"),
    "swap-pressure": dict(
        guest="swap", mem=256, budget="1G", check=check_swap,
        params=dict(mb=384, disksize_mb=640, seq=1, random=0, hold=1),
        doc="1.5x RAM: sequential, rewrite+random, held, sequential passes"),
    "small-budget": dict(
        guest="swap", mem=128, budget="8M", backing_mb=512, check=check_swap,
        params=dict(mb=192, disksize_mb=384, seq=0, random=0, hold=1),
        doc="budget far below the workload: rejects go to the backing disk"),
    "nobacking": dict(
        guest="nobacking", mem=192, budget="4M", check=check_nobacking,
        params=dict(mb=256, refusals=2000, disksize_mb=256),
        doc="no backing disk, tiny budget: failed writes, no corruption"),
    "swapoff": dict(
        guest="swapoff", mem=192, budget="1G", plain_swap_mb=512,
        check=check_swapoff, params=dict(mb=256, disksize_mb=512),
        doc="swapoff with pages in the host: all come back, host empties"),
    "lifecycle": dict(
        guest="lifecycle", mem=192, budget="256M", reboot=True,
        check=check_lifecycle, params=dict(mb=32, mix="text"),
        doc="rmmod/insmod and a guest reboot start empty on the host"),
    "multiqueue": dict(
        guest="parallel", mem=192, smp=2, num_queues=2, iothread=True,
        budget="1G", check=check_parallel,
        params=dict(procs=2, mb=128, seq=0, random=0, disksize_mb=512),
        doc="2 vCPUs, 2 queues, an IOThread: two workloads at once"),
    "hostile": dict(
        guest="hostile", mem=128, budget="256M", test_build=True,
        check=check_hostile, params=dict(mb=160, disksize_mb=256),
        doc="malformed requests get error statuses; the device serves on"),
    "hostile-host": dict(
        guest="hostile_host", mem=128, budget="64T", test_build=True,
        check=check_hostile_host, params=dict(),
        doc="a host with an absurd capacity hint, short answers and no "
            "answers: clamped, failed loads, a failed device, no hang"),
    "disk-tier": dict(
        guest="swap", mem=128, budget="24M", backing_mb=512,
        # room-wait-ms: under TCG on a loaded host the writer may be
        # starved past the 1 s default; this scenario expects no refusal.
        tier={"backing-size": "512M", "room-wait-ms": "30000"},
        check=check_disk_tier,
        params=dict(mb=256, disksize_mb=512, seq=0, random=0, hold=1),
        doc="budget far below the workload: cold pages go to the host's "
            "disk tier, none REJECTED"),
    "disk-tier-errors": dict(
        guest="tier_errors", mem=128, budget="16M", backing_mb=384,
        tier={"backing-size": "128M"}, check=check_tier_errors,
        actions={"blk-written": {"x-disk-error": "read"},
                 "read-failed": {"x-disk-error": "none"},
                 "discarded": {"x-disk-error": "write"}},
        params=dict(blk_mb=96, mb=160, disksize_mb=384),
        doc="disk tier read errors fail reads (no wrong data); after a "
            "write error stores are REJECTED to the backing disk"),
}


def timeout_scale():
    try:
        return max(1.0, float(os.environ.get("VTMEM_VM_TIMEOUT_SCALE", "1")))
    except ValueError:
        return 1.0


def run(name, series, verbose=True, json_out=None):
    sc = SCENARIOS[name]
    try:
        qemu, kernel, image, accel = vmrun.prepare(series,
                                                   sc.get("test_build", False))
    except vmrun.Unavailable as e:
        print("SKIP %s on %s: %s" % (name, series, e))
        return vmrun.SKIP
    cls, extra = vmrun.VM, {}
    if "tier" in sc:
        cls, extra = TierVM, dict(tier=sc["tier"],
                                  actions=sc.get("actions"))
    vm = cls(qemu, kernel, image, sc["guest"], accel=accel,
                  mem_mb=sc["mem"], budget=sc["budget"],
                  backing_mb=sc.get("backing_mb", 0),
                  plain_swap_mb=sc.get("plain_swap_mb", 0),
                  params=sc["params"], reboot=sc.get("reboot", False),
                  smp=sc.get("smp", 1), num_queues=sc.get("num_queues"),
                  iothread=sc.get("iothread", False),
                  timeout=sc.get("timeout", 420) * timeout_scale(), **extra)
    t = time.time()
    try:
        res = vm.run()
    except vmrun.VMError as e:
        if "tier" in sc and "without disk tier support" in str(e):
            # libtmem was built without liburing: nothing to test here.
            print("SKIP %s on %s: %s" % (name, series, e))
            return vmrun.SKIP
        print("FAIL %s on %s: %s" % (name, series, e))
        r = getattr(e, "result", None)
        if r is not None and json_out:
            with open(json_out, "w") as f:
                json.dump(r.as_dict(), f, indent=1)
        if r is not None:
            print("--- console (tail) ---\n%s" % r.console[-6000:])
            print("--- qemu stderr ---\n%s" % getattr(r, "qemu_stderr", ""))
            print(json.dumps(r.as_dict(), indent=1))
        return 1
    if json_out:
        with open(json_out, "w") as f:
            json.dump(res.as_dict(), f, indent=1)
    c = Checker(res)
    v = res.verdict or {}
    if not v.get("ok"):
        c.failures.append("guest verdict not ok: %s" % v.get("failures"))
    for line in res.splats:
        c.failures.append("guest kernel: %s" % line)
    try:
        sc["check"](c, res, sc)
    except (KeyError, TypeError) as e:
        c.failures.append("malformed checkpoint data: %r" % (e,))
    print("%s on %s (%s, %s): %.1f s" % (name, v.get("kernel", series),
                                        res.accel, sc["doc"], time.time() - t))
    if verbose or c.failures:
        print(json.dumps(res.as_dict(), indent=1))
    if c.failures:
        print("--- console (tail) ---\n%s" % res.console[-6000:])
        for f in c.failures:
            print("FAIL: %s" % f)
        return 1
    print("PASS")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", nargs="?", choices=sorted(SCENARIOS))
    ap.add_argument("--kernel", default="6.12", help="6.12, 6.1 or 7.3")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true",
                    help="print checkpoints only on failure")
    ap.add_argument("--json", help="write checkpoints and verdict here")
    args = ap.parse_args()
    if args.list or not args.name:
        for n in sorted(SCENARIOS):
            print("%-17s %s" % (n, SCENARIOS[n]["doc"]))
        return 0
    return run(args.name, args.kernel, verbose=not args.quiet,
               json_out=args.json)


if __name__ == "__main__":
    sys.exit(main())
