#!/usr/bin/python3
"""Elastic memory (SPEC 6.5) in the built QEMU, with no guest.

The budget changed at run time with qom-set (on the virtio-tmem-pci
proxy and on the virtio device itself), the TMEM_BUDGET_CHANGED event,
query-tmem's shrink members and the config fields size_pages,
target_pages and return_state, read and written by the Python driver of
test_datapath.py over the qtest protocol.  A shrink is tried with each
of the ways the device has to get memory back: ephemeral pages, a disk
tier, the guest (F_RETURN), and none of them.

Usage: test_elastic.py TEST     (TEST: one of the names in TESTS, or 'all')

Exit 77 (SKIP) when QEMU is not built; the disk tier test also when its
libtmem has no disk tier.
"""

import sys
import time

from qmp import check, run_qemu, run_tests
from test_datapath import (Device, QTestVM, F_EPHEMERAL, OP_STORE, PAGE,
                           REQ, RESP, S_OK, S_REJECTED, page_of)
from test_device import check_error
from test_tier import Store, TierVM
from vtmem import wire

MiB = 1 << 20
PROXY = "/machine/peripheral/tmem0"
BACKEND = PROXY + "/virtio-backend"
NO_TARGET = wire.NO_TARGET & (1 << 64) - 1
PCI_CAP_ISR = 3
ISR_CONFIG = 2              # VIRTIO_PCI_ISR_CONFIG
# The reasons of TMEM_BUDGET_CHANGED's blocked status (qapi/virtio.json).
NO_BACKING = "shrink blocked: guest has no backing device"
NO_RETURN = "shrink blocked: guest driver cannot return pages"
FAILED = ("shrink blocked: guest cannot take pages back: its backing "
          "device failed or is full")
REFUSED = "shrink blocked: guest declines to return pages"
# Fields that must not change after DRIVER_OK (DEV-2): all but
# target_pages, and return_state, which the driver writes.
FIXED_FIELDS = ("num_queues", "max_pools", "page_size", "capacity_pages",
                "max_batch", "reserved", "size_pages", "reserved2")


def tmem_vm(props="", *extra):
    return QTestVM("-device", "virtio-tmem,id=tmem0,addr=04.0,budget=16M"
                   + props, *extra)


def info(vm):
    infos = vm.cmd("query-tmem")
    check(len(infos) == 1, "query-tmem: %r" % infos)
    return infos[0]


def budget_of(vm):
    """The budget, as query-tmem and both QOM objects see it."""
    values = {info(vm)["budget"]}
    for path in (PROXY, BACKEND):
        values.add(vm.cmd("qom-get", path=path, property="budget"))
    check(len(values) == 1, "budget differs: %r" % values)
    return values.pop()


def set_budget(vm, value, path=PROXY):
    vm.cmd("qom-set", path=path, property="budget", value=value)


def budget_event(vm, timeout=10):
    ev = vm.wait_event("TMEM_BUDGET_CHANGED", timeout)
    check(ev is not None, "no TMEM_BUDGET_CHANGED within %d s" % timeout)
    data = ev["data"]
    check(data["id"] == "tmem0" and data["qom-path"] == BACKEND,
          "event names %r" % data)
    return data


def budget_event_any(vm, timeout=10):
    """TMEM_BUDGET_CHANGED of a device with no proxy (virtio-mmio)."""
    ev = vm.wait_event("TMEM_BUDGET_CHANGED", timeout)
    check(ev is not None, "no TMEM_BUDGET_CHANGED within %d s" % timeout)
    return ev["data"]


def no_budget_event(vm, seconds):
    ev = vm.wait_event("TMEM_BUDGET_CHANGED", seconds)
    check(ev is None, "unexpected event %r" % ev)


def config_notified(dev):
    """The ISR's configuration change bit (reading it clears it)."""
    return bool(dev.vm.readb(dev.caps[PCI_CAP_ISR][0]) & ISR_CONFIG)


def wait_config(dev, what, timeout=10):
    deadline = time.monotonic() + timeout
    while not config_notified(dev):
        check(time.monotonic() < deadline, "no config change notification "
              "for %s within %d s" % (what, timeout))
        time.sleep(0.05)
    return dev.config()


def write_return_state(dev, value):
    dev.vm.writel(dev.caps[4][0] + wire.CONFIG.offsets["return_state"],
                  value)


def store_refused(st, seed):
    """One more store of a new key: what the device answers."""
    statuses = st.store([seed])
    return statuses[0]


def held_pages(n, dev, flags=0):
    """A pool of n compressible pages (about 1 KiB each in memory)."""
    st = Store(dev.vm, dev, flags=flags)
    for i in range(0, n, 32):
        chains = [[(REQ.pack(OP_STORE, 0, 0, st.pool, 1, s, 0), 0),
                   (page_of(s), 0), (None, RESP.size)]
                  for s in range(i, min(n, i + 32))]
        for s, (_, bufs) in zip(range(i, i + 32), dev.submit(st.q, chains)):
            check(RESP.unpack(bufs[0])[0] == S_OK, "STORE %d refused" % s)
            st.held[s] = page_of(s)
    return st


def test_budget_property():
    """budget from -device, then qom-set on the proxy and on the virtio
    device, before and after the driver starts: qom-get on both and
    query-tmem agree; capacity_pages waits for a reset (DEV-2)."""
    with tmem_vm() as vm:
        check(budget_of(vm) == 16 * MiB, "budget from -device")
        set_budget(vm, 32 * MiB)
        check(budget_of(vm) == 32 * MiB, "qom-set on the proxy")
        set_budget(vm, 8 * MiB, BACKEND)
        check(budget_of(vm) == 8 * MiB, "qom-set on the device")
        dev = Device(vm)
        check(dev.config()["capacity_pages"] == 8 * MiB // PAGE,
              "capacity_pages before the driver: %r" % dev.config())
        dev.start(0)
        set_budget(vm, 64 * MiB)
        check(budget_of(vm) == 64 * MiB, "qom-set while the driver runs")
        check(dev.config()["capacity_pages"] == 8 * MiB // PAGE,
              "capacity_pages changed after DRIVER_OK")
        dev.start(0)                    # a reset: the config follows
        check(dev.config()["capacity_pages"] == 64 * MiB // PAGE,
              "capacity_pages after reset: %r" % dev.config())
    # device_add (the proxy's alias, before realize; pc: a hot-pluggable
    # bus) and the bare device.
    with QTestVM(machine="pc") as vm:
        vm.cmd("device_add", driver="virtio-tmem-pci", id="tmem0",
               addr="05.0", budget=4 * MiB)
        check(budget_of(vm) == 4 * MiB, "budget from device_add")
        set_budget(vm, 5 * MiB)
        check(budget_of(vm) == 5 * MiB, "qom-set after device_add")
    rc, out, err = run_qemu("-device", "virtio-tmem-device,help")
    check(rc == 0 and "\n  budget=" in out, "virtio-tmem-device,help: %s"
          % (out + err))
    rc, out, _ = run_qemu("-machine", "help")
    if rc == 0 and any(ln.split()[:1] == ["microvm"]
                       for ln in out.splitlines()):
        with QTestVM("-global", "virtio-mmio.force-legacy=off",
                     "-device", "virtio-tmem-device,id=tmem0,budget=4M",
                     machine="microvm") as vm:
            get = lambda: vm.cmd("qom-get", path=PROXY, property="budget")
            check(get() == 4 * MiB == info(vm)["budget"],
                  "virtio-mmio: budget from -device")
            set_budget(vm, 6 * MiB)
            check(get() == 6 * MiB == info(vm)["budget"],
                  "virtio-mmio: qom-set")
            check(budget_event_any(vm)["status"] == "done", "no done")


def test_bad_budget():
    """qom-set of 0, and of a budget below a disk tier's buffers, is
    refused with an error naming 'budget'; the budget stays."""
    with tmem_vm() as vm:
        for path in (PROXY, BACKEND):
            check_error(lambda: set_budget(vm, 0, path), "'budget'")
            check(budget_of(vm) == 16 * MiB, "budget changed by a refusal")
    with TierVM() as vm:
        before = budget_of(vm)
        desc = check_error(lambda: set_budget(vm, 64 << 10), "'budget'")
        print("below the tier's buffers: %s" % desc)
        check(budget_of(vm) == before, "budget changed by a refusal")
        check("budget_bytes" not in desc, "libtmem's field name: %s" % desc)


def test_grow():
    """A grow takes effect at once: TMEM_BUDGET_CHANGED done, with the
    new budget, before qom-set's answer is even read."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        held_pages(256, dev)
        set_budget(vm, 32 * MiB)
        ev = budget_event(vm, 1)
        st = info(vm)
        check(ev["status"] == "done" and ev["budget"] == 32 * MiB and
              "reason" not in ev and ev["host-bytes"] == st["host-bytes"],
              "event %r, stats %r" % (ev, st))
        check(not st["shrinking"] and st["shrink-phase"] == "none" and
              "target-pages" not in st and st["pages-to-return"] == 0,
              "stats %r" % st)
        check(dev.config()["target_pages"] == NO_TARGET, "target set")


def test_shrink_ephemeral():
    """Below what is held, with ephemeral pages: they are evicted, the
    shrink is done, no page of a persistent pool is lost and the guest
    is asked for nothing, also while libtmem says BUSY (more pages to
    evict than one step's 4096)."""
    with tmem_vm(",budget=32M") as vm:
        dev = Device(vm)
        dev.start(1 << F_EPHEMERAL | 1 << wire.F_RETURN, qsize=256)
        persistent = held_pages(512, dev)
        held_pages(6144, dev, flags=wire.POOL_EPHEMERAL)
        before = info(vm)
        check(before["evictions"] == 0, "evicted before the shrink")
        goal = before["host-bytes"] // 5
        set_budget(vm, goal)
        ev = budget_event(vm)
        st = info(vm)
        check(ev["status"] == "done", "event %r" % ev)
        check(st["host-bytes"] <= goal and st["evictions"] > 0 and
              not st["shrinking"] and st["shrink-phase"] == "none",
              "stats %r" % st)
        check(dev.config()["target_pages"] == NO_TARGET and
              not config_notified(dev), "the guest was asked for pages")
        persistent.check_all()


def test_shrink_tier():
    """Below what is held, with a disk tier: pages are written back, the
    shrink is done, every page loads."""
    with TierVM() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        st = Store(vm, dev)
        statuses = st.store(range(1500))
        check(statuses.count(S_OK) == 1500, "stores refused")
        before = info(vm)
        goal = before["host-bytes"] // 2
        set_budget(vm, goal)
        ev = budget_event(vm, 30)
        after = info(vm)
        check(ev["status"] == "done", "event %r" % ev)
        check(after["host-bytes"] <= goal and after["disk"]["pages"] > 0,
              "after: %r" % after)
        check(dev.config()["target_pages"] == NO_TARGET and
              not config_notified(dev), "the guest was asked for pages")
        print("host bytes %d -> %d, %d pages on disk"
              % (before["host-bytes"], after["host-bytes"],
                 after["disk"]["pages"]))
        st.check_all()


def test_shrink_guest_return():
    """Neither ephemeral pages nor a disk tier, F_RETURN negotiated:
    target_pages drops below the pages held, with a config change
    notification (DEV-26); stores are refused and host-bytes never grows
    (DEV-25); return_state NO_BACKING blocks the shrink with its reason;
    the driver invalidating pages ends it: done, target_pages all ones,
    notified again."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        st = held_pages(2048, dev)
        before = info(vm)
        check(before["guest-return-state"] == "idle", "%r" % before)
        check(not config_notified(dev), "config notified before a shrink")
        goal = before["host-bytes"] // 2
        set_budget(vm, goal)
        cfg = wait_config(dev, "the target")
        target = cfg["target_pages"]
        now = info(vm)
        check(target < 2048, "target_pages %#x" % target)
        check(now["shrinking"] and now["shrink-phase"] == "guest-return" and
              now["target-pages"] == target and
              now["pages-to-return"] == 2048 - target and
              "shrink-reason" not in now, "stats %r" % now)
        print("target_pages %d of 2048 for %d -> %d bytes"
              % (target, before["host-bytes"], goal))
        check(store_refused(st, 5000) == S_REJECTED, "store accepted")
        check(info(vm)["host-bytes"] <= before["host-bytes"], "grew")
        write_return_state(dev, wire.RETURN_NO_BACKING)
        ev = budget_event(vm)
        check(ev["status"] == "blocked" and ev["reason"] == NO_BACKING and
              ev["budget"] == goal, "event %r" % ev)
        now = info(vm)
        check(now["shrink-phase"] == "blocked" and
              now["shrink-reason"] == NO_BACKING and
              now["guest-return-state"] == "no-backing", "stats %r" % now)
        no_budget_event(vm, 0.5)        # once per reason
        # The guest swaps pages in: memory falls, the shrink ends.
        seeds = sorted(st.held)
        done = None
        while seeds and done is None:
            st.invalidate(seeds[:128])
            seeds = seeds[128:]
            check(info(vm)["host-bytes"] <= before["host-bytes"], "grew")
            check(store_refused(st, 5000) in (S_OK, S_REJECTED), "store")
            done = vm.wait_event("TMEM_BUDGET_CHANGED", 0.3)
        check(done is not None, "no event after every page went")
        check(done["data"]["status"] == "done", "event %r" % done)
        cfg = wait_config(dev, "NO_TARGET")
        now = info(vm)
        check(cfg["target_pages"] == NO_TARGET and "target-pages" not in now
              and not now["shrinking"] and now["host-bytes"] <= goal,
              "config %r, stats %r" % (cfg, now))
        st.check_all()


def test_shrink_no_return():
    """Neither ephemeral pages nor a disk tier, and a driver that did not
    negotiate F_RETURN (or a device with page-return=off): blocked with
    its reason, target_pages untouched; a grow ends it."""
    for props, offered in (("", True), (",page-return=off", False)):
        with tmem_vm(props) as vm:
            dev = Device(vm)
            check(bool(dev.host_features() & 1 << wire.F_RETURN) == offered,
                  "%s: features %#x" % (props, dev.host_features()))
            dev.start(0, qsize=256)
            held_pages(1024, dev)
            goal = info(vm)["host-bytes"] // 2
            set_budget(vm, goal)
            ev = budget_event(vm)
            st = info(vm)
            check(ev["status"] == "blocked" and ev["reason"] == NO_RETURN,
                  "event %r" % ev)
            check(st["shrink-phase"] == "blocked" and
                  st["guest-return-state"] == "unsupported" and
                  "target-pages" not in st, "stats %r" % st)
            check(dev.config()["target_pages"] == NO_TARGET and
                  not config_notified(dev), "the config changed")
            set_budget(vm, 16 * MiB)
            ev = budget_event(vm, 1)
            check(ev["status"] == "done" and not info(vm)["shrinking"],
                  "event %r" % ev)


def test_return_state():
    """return_state takes any value at any time and changes nothing the
    device holds (DEV-27): garbage during a shrink neither blocks nor
    ends it, and reads back as written."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        st = held_pages(1024, dev)
        for value in (5, 0x7FFFFFFF, 0xFFFFFFFF):
            before = info(vm)
            write_return_state(dev, value)
            check(dev.config()["return_state"] == value, "not read back")
            after = info(vm)
            check(after == before, "%#x changed %r into %r"
                  % (value, before, after))
        goal = info(vm)["host-bytes"] // 2
        set_budget(vm, goal)
        target = wait_config(dev, "the target")["target_pages"]
        # An unknown value says nothing new: the last known one stands.
        for value, state in ((5, "idle"), (0xFFFFFFFF, "idle"),
                             (wire.RETURN_ACTIVE, "active"), (99, "active")):
            write_return_state(dev, value)
            time.sleep(0.3)             # three steps of the shrink
            now = info(vm)
            check(now["shrink-phase"] == "guest-return" and
                  now["target-pages"] == target and now["pages"] == 1024 and
                  now["guest-return-state"] == state,
                  "%#x: stats %r" % (value, now))
        no_budget_event(vm, 0.2)
        st.check_all()


def test_size():
    """F_SIZE is always offered; size_pages is 'size', or the larger of
    guest RAM (128M here) and budget plus the disk tier; a size below a
    page or above 2^32-1 pages is refused at realize."""
    cases = (("", 128 * MiB), (",budget=256M", 256 * MiB),
             (",size=1G", 1 << 30), (",size=1G,page-return=off", 1 << 30),
             (",size=4097", PAGE))
    for props, size in cases:
        with tmem_vm(props) as vm:
            dev = Device(vm)
            check(dev.host_features() & 1 << wire.F_SIZE, "F_SIZE not offered")
            cfg = dev.config()
            check(cfg["size_pages"] == size // PAGE and
                  cfg["target_pages"] == NO_TARGET and cfg["return_state"] == 0,
                  "%s: config %r" % (props, cfg))
            check(info(vm)["size"] == size, "%s: query-tmem size" % props)
            feats = 1 << wire.F_SIZE
            if "page-return=off" not in props:
                feats |= 1 << wire.F_RETURN
            dev.start(feats)            # checks FEATURES_OK
    with TierVM() as vm:
        check(Device(vm).config()["size_pages"] == (8 + 256) * MiB // PAGE,
              "size_pages with a disk tier")
    for size in ("1K", "16T", "17T"):
        rc, _, err = run_qemu("-machine", "q35", "-accel", "tcg", "-S",
                              "-nodefaults", "-nographic", "-device",
                              "virtio-tmem,budget=16M,size=" + size)
        check(rc != 0 and "'size' must be between 4096 and" in err,
              "size=%s: rc %d, %s" % (size, rc, err))


def test_config_stable():
    """DEV-2: after DRIVER_OK a grow, a shrink that asks the guest for
    pages and its end change no config field but target_pages."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN | 1 << wire.F_SIZE, qsize=256)
        st = held_pages(2048, dev)
        first = dev.config()
        set_budget(vm, 64 * MiB)
        budget_event(vm, 1)
        set_budget(vm, info(vm)["host-bytes"] // 2)
        lowered = wait_config(dev, "the target")
        check(lowered["target_pages"] < 2048, "no target")
        st.invalidate(sorted(st.held))
        check(budget_event(vm)["status"] == "done", "not done")
        last = wait_config(dev, "NO_TARGET")
        for cfg in (lowered, last):
            for f in FIXED_FIELDS:
                check(cfg[f] == first[f], "%s changed: %r -> %r"
                      % (f, first[f], cfg[f]))
        check(last["target_pages"] == NO_TARGET, "target left set")


def test_shrink_stopped():
    """A shrink while the VM is stopped: the host reclaims and lowers
    target_pages, but notifies the guest only when the VM runs again; a
    device reset during the shrink sets target_pages to all ones and the
    shrink ends (the reset dropped every page)."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        held_pages(2048, dev)
        vm.cmd("stop")
        set_budget(vm, info(vm)["host-bytes"] // 2)
        deadline = time.monotonic() + 10
        while dev.config()["target_pages"] == NO_TARGET:
            check(time.monotonic() < deadline, "no target while stopped")
            time.sleep(0.05)
        time.sleep(0.3)
        check(not config_notified(dev), "notified while stopped")
        vm.cmd("cont")
        wait_config(dev, "the target after cont", 5)
        dev.set_status(0)
        check(dev.config()["target_pages"] == NO_TARGET, "target after reset")
        ev = budget_event(vm)
        check(ev["status"] == "done" and not info(vm)["shrinking"],
              "event %r" % ev)


def test_shrink_unplug():
    """Hot-unplug while a blocked shrink keeps its timer running: the
    device goes, its timer with it, and QEMU goes on (pc machine: the
    Python driver plays the guest's eject, as test_datapath's unplug)."""
    with QTestVM(machine="pc") as vm:
        vm.cmd("device_add", driver="virtio-tmem", id="tmem0",
               addr="05.0", budget=16 * MiB)
        dev = Device(vm, slot=5)
        dev.start(0, qsize=256)
        held_pages(1024, dev)
        set_budget(vm, info(vm)["host-bytes"] // 2)
        check(budget_event(vm)["status"] == "blocked", "not blocked")
        vm.cmd("device_del", id="tmem0")
        vm.outl(0xAE08, 1 << 5)         # PIIX4 ACPI PCI hot-plug: eject
        check(vm.wait_event("DEVICE_DELETED", 10) is not None,
              "no DEVICE_DELETED after eject")
        time.sleep(0.5)                 # five periods of the old timer
        check(vm.cmd("query-tmem") == [] and
              vm.cmd("query-status")["status"] == "running", "after unplug")


def test_config_reset():
    """A reset makes the config QEMU holds current: return_state FAILED
    written before it does not come back with a 1-byte config write
    elsewhere after it (QEMU hands set_config the whole buffer), and a
    shrink then asks the guest for pages, unblocked."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        write_return_state(dev, wire.RETURN_FAILED)
        check(info(vm)["guest-return-state"] == "failed", "not failed")
        dev.start(1 << wire.F_RETURN, qsize=256)     # resets first
        dev.vm.writeb(dev.caps[4][0] + wire.CONFIG.offsets["num_queues"], 1)
        check(info(vm)["guest-return-state"] == "idle",
              "stale return_state: %r" % info(vm))
        held_pages(2048, dev)
        set_budget(vm, info(vm)["host-bytes"] // 2)
        wait_config(dev, "the target")
        now = info(vm)
        check(now["shrink-phase"] == "guest-return" and
              "shrink-reason" not in now, "stats %r" % now)
        no_budget_event(vm, 0.3)



def test_shrink_refused():
    """return_state REFUSED (the driver's own policy) blocks the shrink
    with its reason; query-tmem says 'refused'; ACTIVE unblocks it."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        held_pages(2048, dev)
        set_budget(vm, info(vm)["host-bytes"] // 2)
        wait_config(dev, "the target")
        write_return_state(dev, wire.RETURN_REFUSED)
        ev = budget_event(vm)
        now = info(vm)
        check(ev["status"] == "blocked" and ev["reason"] == REFUSED,
              "event %r" % ev)
        check(now["shrink-phase"] == "blocked" and
              now["shrink-reason"] == REFUSED and
              now["guest-return-state"] == "refused", "stats %r" % now)
        write_return_state(dev, wire.RETURN_ACTIVE)
        time.sleep(0.3)
        now = info(vm)
        check(now["shrink-phase"] == "guest-return" and
              now["guest-return-state"] == "active", "stats %r" % now)



def test_blocked_flood():
    """A guest alternating return_state NO_BACKING and FAILED (50
    writes, each seen by a step of the shrink), and going idle between:
    one blocked event per distinct reason in the shrink, 2 in all."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        held_pages(2048, dev)
        set_budget(vm, info(vm)["host-bytes"] // 2)
        wait_config(dev, "the target")
        for i in range(50):
            write_return_state(dev, (wire.RETURN_NO_BACKING,
                                     wire.RETURN_FAILED)[i % 2])
            time.sleep(0.12)
            if i % 10 == 9:
                write_return_state(dev, wire.RETURN_IDLE)
                time.sleep(0.12)
        events = []
        while True:
            ev = vm.wait_event("TMEM_BUDGET_CHANGED", 0.3)
            if ev is None:
                break
            events.append(ev["data"])
        reasons = sorted(e.get("reason") for e in events)
        check(all(e["status"] == "blocked" for e in events) and
              reasons == sorted([NO_BACKING, FAILED]),
              "%d events: %r" % (len(events), events))



def test_return_exact():
    """The Python driver returns (invalidates) exactly down to the target
    it reads between batches: the shrink ends within the budget, having
    returned no more than 1.5 times the pages needed (the excess over
    the average bytes a page holds in memory): the target is fixed when
    reclaim is first stuck, not recomputed from host-bytes that lags
    until compaction."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        st = held_pages(4096, dev)
        before = info(vm)
        goal = before["host-bytes"] * 3 // 4
        per_page = before["data-bytes"] / before["pages"]
        needed = (before["host-bytes"] - goal) / per_page
        set_budget(vm, goal)
        returned, done, targets, phases = 0, None, [], set()
        deadline = time.monotonic() + 60
        while done is None:
            check(time.monotonic() < deadline, "not done: %r" % info(vm))
            phases.add(info(vm)["shrink-phase"])
            # The target as the driver sees it, between batches.
            target = dev.config()["target_pages"]
            if target != NO_TARGET and len(st.held) > target:
                if not targets or targets[-1] != target:
                    targets.append(target)
                seeds = sorted(st.held)[:min(64, len(st.held) - target)]
                st.invalidate(seeds)
                returned += len(seeds)
                time.sleep(0.02)            # a bounded rate
                continue
            ev = vm.wait_event("TMEM_BUDGET_CHANGED", 0.1)
            if ev is not None:
                done = ev["data"]
        now = info(vm)
        print("returned %d pages, needed about %d; targets %r; phases %r"
              % (returned, needed, targets, sorted(phases)))
        check(done["status"] == "done" and now["host-bytes"] <= goal,
              "event %r, stats %r" % (done, now))
        check(returned <= 1.5 * needed, "returned %d pages, %d needed"
              % (returned, needed))
        # No disk tier: compaction freeing memory is no writeback.
        check(phases <= {"guest-return", "none"}, "phases %r" % phases)


def test_failed_reoffer():
    """Blocked on FAILED, the device still offers targets: a changed one
    after a backoff (5 s), and at once for a new goal (qom-set), so that
    a driver that tries again when the target changes (DRV-11) can."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << wire.F_RETURN, qsize=256)
        held_pages(2048, dev)
        goal = info(vm)["host-bytes"] // 2
        set_budget(vm, goal)
        first = wait_config(dev, "the target")["target_pages"]
        write_return_state(dev, wire.RETURN_FAILED)
        ev = budget_event(vm)
        check(ev["status"] == "blocked" and ev["reason"] == FAILED,
              "event %r" % ev)
        time.sleep(1)
        check(not config_notified(dev), "target changed at once")
        second = wait_config(dev, "a target offered again", 8)
        check(second["target_pages"] != first, "the same target %d" % first)
        check(info(vm)["shrink-phase"] == "blocked", "not blocked")
        set_budget(vm, goal // 2)
        third = wait_config(dev, "the new goal's target", 2)
        check(third["target_pages"] < second["target_pages"],
              "target %d after the new goal" % third["target_pages"])
        write_return_state(dev, wire.RETURN_ACTIVE)
        time.sleep(0.3)
        check(info(vm)["shrink-phase"] == "guest-return", "still blocked")


TESTS = {
    "budget-property": test_budget_property,
    "bad-budget": test_bad_budget,
    "grow": test_grow,
    "shrink-ephemeral": test_shrink_ephemeral,
    "shrink-tier": test_shrink_tier,
    "shrink-guest-return": test_shrink_guest_return,
    "shrink-no-return": test_shrink_no_return,
    "return-state": test_return_state,
    "size": test_size,
    "config-stable": test_config_stable,
    "shrink-stopped": test_shrink_stopped,
    "shrink-unplug": test_shrink_unplug,
    "config-reset": test_config_reset,
    "shrink-refused": test_shrink_refused,
    "blocked-flood": test_blocked_flood,
    "return-exact": test_return_exact,
    "failed-reoffer": test_failed_reoffer,
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
