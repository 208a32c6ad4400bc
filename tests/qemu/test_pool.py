#!/usr/bin/python3
"""The host-wide pool (SPEC 6.6) in the built QEMU, with no guest.

Devices of two QEMU processes share one pool (properties host-pool,
weight, host-pool-total; budget is the cap) through a ledger file in a
temporary directory ($VTMEM_LEDGER_DIR).  The Python virtio driver of
test_datapath.py stores pages over the qtest protocol; query-tmem's
host-pool member shows what the ledger decided.

Usage: test_pool.py TEST     (TEST: one of the names in TESTS, or 'all')

Exit 77 (SKIP) when QEMU is not built.
"""

import os
import shutil
import signal
import stat
import json
import subprocess
import sys
import tempfile
import time

from qmp import check, run_tests, skip
from test_datapath import Device, QTestVM, F_EPHEMERAL, S_OK
from test_device import check_error
from test_elastic import held_pages, info, set_budget
from vtmem import wire
from vtmem.tools import find_vtmem_top

MiB = 1 << 20
TICK = 0.1                  # the device's update period


class LedgerDir:
    """A private ledger directory for the QEMUs started inside."""

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="vtmem-pool-")
        self.old = os.environ.get("VTMEM_LEDGER_DIR")
        os.environ["VTMEM_LEDGER_DIR"] = self.dir
        return self

    def __exit__(self, *exc):
        if self.old is None:
            del os.environ["VTMEM_LEDGER_DIR"]
        else:
            os.environ["VTMEM_LEDGER_DIR"] = self.old
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name + ".ledger")


def pool_vm(props, *extra):
    return QTestVM("-device", "virtio-tmem,id=tmem0,addr=04.0" + props,
                   *extra)


def pool_of(vm, qid=None):
    if qid is None:
        st = info(vm)
    else:
        infos = [i for i in vm.cmd("query-tmem") if i.get("id") == qid]
        check(len(infos) == 1, "query-tmem: no %s" % qid)
        st = infos[0]
    check("host-pool" in st, "query-tmem has no host-pool: %r" % st)
    return st, st["host-pool"]


def wait_pool(vm, what, cond, timeout=10, qid=None):
    """Poll query-tmem until cond(stats, pool) holds."""
    deadline = time.monotonic() + timeout
    while True:
        st, p = pool_of(vm, qid)
        if cond(st, p):
            return st, p
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %d s: %r" % (what, timeout,
                                                               st))
        time.sleep(TICK)


def test_pool_properties():
    """Clear errors for what cannot work; a device that creates the pool
    gets a private ledger file and reports the pool in query-tmem."""
    with LedgerDir() as ld, \
            pool_vm(",budget=16M", "-device",
                    "pcie-root-port,id=rp0,chassis=1") as vm:
        add = dict(driver="virtio-tmem", id="t1", bus="rp0")
        check_error(lambda: vm.cmd("device_add", **add, budget=16 * MiB,
                                   **{"host-pool": "p0"}),
                    "host pool 'p0' does not exist", "vtmem-top create")
        check_error(lambda: vm.cmd("device_add", **add, budget=16 * MiB,
                                   weight=200),
                    "'weight' needs 'host-pool'")
        check_error(lambda: vm.cmd("device_add", **add, budget=16 * MiB,
                                   **{"host-pool-total": 64 * MiB}),
                    "'host-pool-total' needs 'host-pool'")
        check_error(lambda: vm.cmd("device_add", **add, budget=16 * MiB,
                                   weight=0, **{"host-pool": "p0",
                                                "host-pool-total": 64 * MiB}),
                    "'weight' must be between 1 and 10000")
        check_error(lambda: vm.cmd("device_add", **add, budget=16 * MiB,
                                   **{"host-pool": "a/b",
                                      "host-pool-total": 64 * MiB}),
                    "host pool 'a/b'")
        check(not os.listdir(ld.dir), "a refused device left %r"
              % os.listdir(ld.dir))
        # A file that is no ledger is refused, never trusted.
        with open(ld.path("junk"), "wb") as f:
            f.write(b"\0" * 4096)
        os.chmod(ld.path("junk"), 0o600)
        check_error(lambda: vm.cmd("device_add", **add, budget=16 * MiB,
                                   **{"host-pool": "junk",
                                      "host-pool-total": 64 * MiB}),
                    "host pool 'junk'", ld.path("junk"))
        vm.cmd("device_add", **add, budget=16 * MiB,
               **{"host-pool": "p1", "host-pool-total": 64 * MiB})
        mode = os.stat(ld.path("p1")).st_mode
        check(stat.S_IMODE(mode) == 0o600, "ledger mode %o" % mode)
        infos = {i.get("id"): i for i in vm.cmd("query-tmem")}
        p = infos["t1"]["host-pool"]
        check(p["name"] == "p1" and p["joined"] and p["total"] == 64 * MiB
              and p["members"] == 1 and p["weight"] == 100 and
              p["cap"] == 16 * MiB and p["grant"] <= p["cap"] and
              p["granted"] <= p["total"] and "error" not in p,
              "host-pool %r" % p)
        check(infos["t1"]["budget"] <= p["grant"], "budget over the grant: %r"
              % infos["t1"])
        check("host-pool" not in infos["tmem0"], "a device without a pool "
              "reports one")


def fill_until(vm, st_pool, seeds, goal, what, timeout=30):
    """Store pages of st_pool (seeds: an iterator) until the device
    holds goal bytes."""
    deadline = time.monotonic() + timeout
    while info(vm)["host-bytes"] < goal:
        check(time.monotonic() < deadline, "%s: %r" % (what, info(vm)))
        st_pool.store([next(seeds) for _ in range(256)])


def within_grant(st, p, total):
    """DEV-28 at one sample: the budget within the grant (or the 1 MiB
    a member below it runs with), the grant within the cap and the
    total, held bytes within that unless a lowered grant is being
    reclaimed."""
    check(st["budget"] <= max(p["grant"], MiB) and
          (not p["cap"] or p["grant"] <= p["cap"]) and
          p["granted"] <= total and p["grant"] <= p["granted"],
          "budget or grant out of bounds: %r" % st)
    check(st["host-bytes"] <= max(p["grant"], MiB) or st["shrinking"],
          "held over the grant: %r" % st)


def test_pool_share():
    """Two QEMUs, weights 100 and 300, in a 16 MiB pool.  The first fills
    the pool alone; when the second wants more, the first is shrunk to
    its share (its ephemeral pages evicted) and the second grows to its
    own; the grants never sum above the total.  SIGKILL of the second
    gives its share back: the first grows again."""
    total = 16 * MiB
    with LedgerDir():
        a = pool_vm(",budget=0,host-pool=pool,host-pool-total=16M")
        b = pool_vm(",budget=0,host-pool=pool,weight=300")
        with a:
            dev_a = Device(a)
            dev_a.start(1 << F_EPHEMERAL, qsize=256)
            eph_a = held_pages(0, dev_a, flags=wire.POOL_EPHEMERAL)
            seeds = iter(range(1 << 30))
            # Alone: it grows past its share (a quarter) toward the total.
            fill_until(a, eph_a, seeds, total * 3 // 4, "A does not grow")
            with b:
                dev_b = Device(b)
                dev_b.start(0, qsize=256)
                pers_b = held_pages(0, dev_b)
                seeds_b = iter(range(1 << 30))
                share_b = total * 3 // 4
                deadline = time.monotonic() + 60
                while True:
                    statuses = pers_b.store([next(seeds_b)
                                             for _ in range(128)])
                    eph_a.store([next(seeds) for _ in range(64)])
                    st_a, p_a = pool_of(a)
                    st_b, p_b = pool_of(b)
                    for st, p in ((st_a, p_a), (st_b, p_b)):
                        within_grant(st, p, total)
                    # Two QEMUs read a few ms apart: a page's worth of
                    # slack per store in flight.
                    check(st_a["host-bytes"] + st_b["host-bytes"] <=
                          total + 256 * 1024, "held over the total: A %r "
                          "B %r" % (st_a, st_b))
                    if p_a["contended"] and p_a["grant"] > p_a["share"]:
                        check(st_a["budget"] <= p_a["share"],
                              "A above its share while contended: %r"
                              % st_a)
                    if (st_b["host-bytes"] >= share_b * 85 // 100 and
                            st_a["host-bytes"] <= total // 4 * 115 // 100):
                        break
                    check(time.monotonic() < deadline,
                          "no convergence: A %r B %r (last B statuses %r)"
                          % (st_a, st_b, statuses[-4:]))
                check(p_b["members"] == 2 and p_b["weight"] == 300 and
                      abs(p_b["share"] - share_b) <= MiB and
                      abs(p_a["share"] - total // 4) <= MiB,
                      "shares: A %r B %r" % (p_a, p_b))
                check(st_a["evictions"] > 0, "A was not shrunk by eviction")
                pers_b.check_all()
                os.kill(b.proc.pid, signal.SIGKILL)
                b.proc.wait()
            # B's share returns: A, storing, grows past its share again.
            deadline = time.monotonic() + 15
            while True:
                eph_a.store([next(seeds) for _ in range(256)])
                st_a, p_a = pool_of(a)
                if p_a["members"] == 1 and \
                        st_a["host-bytes"] > total // 2:
                    break
                check(time.monotonic() < deadline, "B's share not back: %r"
                      % st_a)


def test_pool_cap():
    """qom-set budget with a host pool sets the cap in the pool: the
    grant and the budget follow it down, and up again."""
    with LedgerDir(), pool_vm(",budget=32M,host-pool=c,host-pool-total=64M") \
            as vm:
        dev = Device(vm)
        dev.start(1 << F_EPHEMERAL, qsize=256)
        eph = held_pages(0, dev, flags=wire.POOL_EPHEMERAL)
        seeds = iter(range(1 << 30))
        fill_until(vm, eph, seeds, 20 * MiB, "no growth")
        set_budget(vm, 8 * MiB)
        st, p = wait_pool(vm, "the cap", lambda st, p:
                          p["cap"] == 8 * MiB and p["grant"] <= 8 * MiB and
                          st["budget"] <= 8 * MiB and
                          st["host-bytes"] <= 8 * MiB)
        check(st["evictions"] > 0, "nothing evicted: %r" % st)
        set_budget(vm, 48 * MiB)
        fill_until(vm, eph, seeds, 24 * MiB, "no growth after the cap was "
                   "raised")
        st, p = pool_of(vm)
        check(p["cap"] == 48 * MiB and st["budget"] <= 48 * MiB, "%r" % st)


def test_pool_removed():
    """The ledger file removed under a running device: it says so, keeps
    its budget and its pages, and creates the pool again (it has
    host-pool-total) to rejoin it."""
    with LedgerDir() as ld, \
            pool_vm(",budget=16M,host-pool=r,host-pool-total=32M") as vm:
        dev = Device(vm)
        dev.start(0, qsize=256)
        pers = held_pages(256, dev)
        os.unlink(ld.path("r"))
        st, p = wait_pool(vm, "the rejoin", lambda st, p:
                          p["rejoins"] >= 1 and p["joined"])
        check(os.path.exists(ld.path("r")), "the pool was not created again")
        pers.check_all()
        check(st["pages"] == 256, "pages lost: %r" % st)


def test_pool_busy():
    """A ledger whose lock another process holds: the device's update
    gives up after 10 ms, counts it, keeps its budget, and goes on once
    the lock is free."""
    import fcntl
    with LedgerDir() as ld, \
            pool_vm(",budget=16M,host-pool=l,host-pool-total=32M") as vm:
        _, p0 = wait_pool(vm, "an update", lambda st, p: p["updates"] > 0)
        fd = os.open(ld.path("l"), os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # The monitor answers while the lock is held: QEMU runs.
            _, p1 = wait_pool(vm, "busy updates", lambda st, p:
                              p["busy"] >= 3)
            updates = p1["updates"]
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        wait_pool(vm, "updates after the lock", lambda st, p:
                  p["updates"] > updates and "error" not in p)


def test_pool_unplug():
    """Hot-unplug of a member: its grant returns to the pool at once,
    as the other member (in the same process here) sees."""
    with LedgerDir(), QTestVM("-device", "virtio-tmem,id=tmem0,addr=04.0,"
                              "budget=0,host-pool=u,host-pool-total=64M",
                              machine="pc") as vm:
        vm.cmd("device_add", driver="virtio-tmem", id="t1", addr="05.0",
               budget=16 * MiB, **{"host-pool": "u"})
        wait_pool(vm, "two members", lambda st, p: p["members"] == 2,
                  qid="tmem0")
        infos = {i.get("id"): i for i in vm.cmd("query-tmem")}
        check(infos["t1"]["host-pool"]["cap"] == 16 * MiB and
              infos["t1"]["host-pool"]["grant"] > 0, "t1 %r" % infos["t1"])
        vm.cmd("device_del", id="t1")
        vm.outl(0xAE08, 1 << 5)         # PIIX4 ACPI PCI hot-plug: eject
        check(vm.wait_event("DEVICE_DELETED", 10) is not None,
              "no DEVICE_DELETED after eject")
        # Same process: no reaping by pid or heartbeat, only the leave.
        st, p = wait_pool(vm, "the member gone", lambda st, p:
                          p["members"] == 1, qid="tmem0", timeout=3)
        check(p["granted"] <= p["grant"] + MiB, "t1's grant still counted: "
              "%r" % p)


def find_tool():
    tool = find_vtmem_top()
    if not tool:
        skip("vtmem-top is not built (meson compile -C build)")
    return tool


class FakePSI:
    """A PSI file whose 'some' stall time the test advances."""

    def __init__(self, path):
        self.path = path
        self.total = 0
        self.write()

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                    % self.total)
        os.rename(tmp, self.path)

    def stall(self, seconds):
        self.total += int(seconds * 1e6)
        self.write()


def test_pool_pressure():
    """The pool's pressure mode (vtmem-top set --pressure) with a
    synthetic PSI source: while it says every task stalls, the pool's
    total falls to its floor and the device's budget and what it holds
    follow (ephemeral pages evicted); once calm, the total grows back to
    what was configured and the device grows with it; off restores it."""
    tool = find_tool()
    total = 32 * MiB
    with LedgerDir() as ld, \
            pool_vm(",budget=0,host-pool=pp,host-pool-total=32M") as vm:
        dev = Device(vm)
        dev.start(1 << F_EPHEMERAL, qsize=256)
        eph = held_pages(0, dev, flags=wire.POOL_EPHEMERAL)
        seeds = iter(range(1 << 30))
        fill_until(vm, eph, seeds, total * 3 // 4, "no growth")
        psi = FakePSI(os.path.join(ld.dir, "memory.pressure"))
        out = subprocess.run([tool, "--dir", ld.dir, "set", "pp",
                              "--pressure", psi.path, "--pressure-period",
                              "100", "--pressure-grow", "20"],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "set --pressure: %r" % out.stderr)
        # Every task stalls: the total falls to its floor (25%).
        deadline = time.monotonic() + 20
        while True:
            psi.stall(0.06)
            time.sleep(0.05)
            st, p = pool_of(vm)
            if p["total"] <= total // 4 and st["budget"] <= p["total"] and \
                    st["host-bytes"] <= p["total"]:
                break
            check(time.monotonic() < deadline, "pressure did not shrink "
                  "the pool and the device: %r" % st)
        check(st["evictions"] > 0, "nothing evicted: %r" % st)
        check(p["total"] >= total // 4 - MiB, "below the floor: %r" % p)
        doc = subprocess.run([tool, "--dir", ld.dir, "--json", "-d", "0"],
                             capture_output=True, text=True, timeout=30)
        pool = json.loads(doc.stdout)["pools"][0]
        check(pool["configured"] == total and pool["total"] == p["total"] and
              pool["pressure"] and pool["pressure"]["shrinks"] > 0,
              "vtmem-top: %r" % pool)
        # Calm: it grows back, and the device with it when it stores.
        deadline = time.monotonic() + 20
        while True:
            eph.store([next(seeds) for _ in range(64)])
            st, p = pool_of(vm)
            if p["total"] == total and st["host-bytes"] > total // 2:
                break
            check(time.monotonic() < deadline, "no growth once calm: %r"
                  % st)
        out = subprocess.run([tool, "--dir", ld.dir, "set", "pp",
                              "--pressure", "off"],
                             capture_output=True, text=True, timeout=30)
        check(out.returncode == 0, "set --pressure off: %r" % out.stderr)


def test_pool_lost():
    """A pool file removed under a device that cannot create it again
    (no host-pool-total): no longer a member, it keeps its pages, says
    why, stores nothing more than it holds (DEV-28); once the pool is
    back (vtmem-top create) it joins again and grows."""
    tool = find_tool()
    with LedgerDir() as ld:
        out = subprocess.run([tool, "--dir", ld.dir, "create", "lost",
                              "--total", "32M"], capture_output=True,
                             text=True, timeout=30)
        check(out.returncode == 0, "create: %r" % out.stderr)
        with pool_vm(",budget=16M,host-pool=lost") as vm:
            dev = Device(vm)
            dev.start(0, qsize=256)
            pers = held_pages(256, dev)
            os.unlink(ld.path("lost"))
            st, p = wait_pool(vm, "the device out of the pool",
                              lambda st, p: not p["joined"] and
                              "error" in p)
            check(st["budget"] <= max(st["host-bytes"], 4096),
                  "out of the pool, budget above what it holds: %r" % st)
            statuses = pers.store(range(1000, 1032))
            check(all(x != S_OK for x in statuses), "stored while out of "
                  "the pool: %r" % statuses)
            pers.check_all()
            out = subprocess.run([tool, "--dir", ld.dir, "create", "lost",
                                  "--total", "32M"], capture_output=True,
                                 text=True, timeout=30)
            check(out.returncode == 0, "create again: %r" % out.stderr)
            st, p = wait_pool(vm, "the rejoin", lambda st, p:
                              p["joined"] and p["rejoins"] >= 1 and
                              "error" not in p)
            for i in range(2000, 2256, 32):
                statuses = pers.store(range(i, i + 32))
                check(all(x == S_OK for x in statuses), "no stores after "
                      "the rejoin: %r" % statuses)
            pers.check_all()


TESTS = {
    "pool-properties": test_pool_properties,
    "pool-share": test_pool_share,
    "pool-cap": test_pool_cap,
    "pool-removed": test_pool_removed,
    "pool-busy": test_pool_busy,
    "pool-unplug": test_pool_unplug,
    "pool-pressure": test_pool_pressure,
    "pool-lost": test_pool_lost,
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
