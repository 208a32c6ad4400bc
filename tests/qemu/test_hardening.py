#!/usr/bin/python3
"""A hostile guest against the virtio-tmem device (issue 11): requests
before DRIVER_OK, rings grown past queue-size, reset and unplug while an
IOThread is in the middle of a batch, and malformed descriptor chains.

Each case checks that QEMU stays alive, that the device answers with an
error status or sets DEVICE_NEEDS_RESET, and that nothing outside the
request's buffers is read (no stored page holds bytes from outside the
page buffer) or written (guard pages around the buffers keep their bytes).

Usage: test_hardening.py TEST     (TEST: one of the names in TESTS, or 'all')

Exit 77 (SKIP) when QEMU is not built; see qmp.py.
"""

import struct
import sys
import time

from qmp import Failure, check, run_tests
from test_datapath import (BAR_ADDR, F_MQ, OP_INVALIDATE_OBJECT, OP_LOAD,
                           OP_NEW_POOL, OP_STORE, PAGE, REQ, RESP, S_ACK,
                           S_DRIVER, S_DRIVER_OK, S_FEATURES_OK,
                           S_NEEDS_RESET, S_OK, VIRTIO_RING_F_INDIRECT_DESC,
                           VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT,
                           VRING_DESC_F_WRITE, Device, QTestVM, page_of,
                           stats)

GROWN = 1024                # VIRTQUEUE_MAX_SIZE: what QEMU lets a guest set
GUARD = bytes([0xA5]) * PAGE
RAM_END = 64 << 20          # a descriptor from here runs past the 128 MiB


def hostile_vm(props="", *extra, machine="q35"):
    return QTestVM("-object", "iothread,id=io0", "-device",
                   "virtio-tmem,id=tmem0,addr=04.0,iothread=io0,"
                   "budget=256M" + props, *extra, machine=machine)


class Flood:
    """Many chains in a few qtest writes: every chain is a header, an
    optional page shared by all chains of the batch, and a response.
    The ring must be idle (every earlier chain answered, or the device
    reset) before the next post()."""

    def __init__(self, dev, q):
        self.dev, self.vm, self.q = dev, dev.vm, q
        self.hdrs = q.bufs                          # 24 bytes per chain
        self.resps = q.bufs + REQ.size * q.size     # 8 bytes per chain
        self.page = (self.resps + RESP.size * q.size + PAGE) & ~(PAGE - 1)
        self.vm.write(self.page, bytes(PAGE))       # a zero page
        self.posted = 0

    def post(self, headers, with_page=False, kick=True):
        """with_page: for every chain, or a list with one bool per chain."""
        q, vm = self.q, self.vm
        if not isinstance(with_page, list):
            with_page = [with_page] * len(headers)
        check(sum(3 if p else 2 for p in with_page) <= q.size,
              "batch overflows the ring")
        descs = bytearray()
        avail = bytearray(2 * q.size)
        for k, _ in enumerate(headers):
            d = len(descs) // 16
            chain = [(self.hdrs + REQ.size * k, REQ.size, 0)]
            if with_page[k]:
                chain.append((self.page, PAGE, 0))
            chain.append((self.resps + RESP.size * k, RESP.size,
                          VRING_DESC_F_WRITE))
            for i, (addr, length, flags) in enumerate(chain):
                nxt = d + i + 1 if i + 1 < len(chain) else 0
                flags |= VRING_DESC_F_NEXT if i + 1 < len(chain) else 0
                descs += struct.pack("<QIHH", addr, length, flags, nxt)
            struct.pack_into("<H", avail, 2 * ((q.avail_idx + k) % q.size), d)
        vm.write(q.desc, bytes(descs))
        vm.write(self.hdrs, b"".join(headers))
        vm.write(self.resps, bytes(RESP.size * len(headers)))
        vm.write(q.avail + 4, bytes(avail))
        q.avail_idx = (q.avail_idx + len(headers)) & 0xFFFF
        vm.writew(q.avail + 2, q.avail_idx)
        self.posted = len(headers)
        if kick:
            vm.writew(q.notify, q.index)

    def answered(self):
        return (self.vm.readw(self.q.used + 2) - self.q.used_idx) & 0xFFFF

    def wait(self, timeout=30):
        """Wait for every chain of the last post(); return their responses
        (status, pool_id) in posting order, or None on a timeout."""
        q = self.q
        deadline = time.monotonic() + timeout
        while self.answered() < self.posted:
            if self.dev.status() & S_NEEDS_RESET:
                raise Failure("device needs reset")
            if time.monotonic() > deadline:
                return None
            time.sleep(0.005)
        q.used_idx = (q.used_idx + self.posted) & 0xFFFF
        data = self.vm.read(self.resps, RESP.size * self.posted)
        return [RESP.unpack_from(data, RESP.size * k)
                for k in range(self.posted)]


def store_headers(pool, obj, first, n):
    return [REQ.pack(OP_STORE, 0, 0, pool, obj, first + i, 0)
            for i in range(n)]


def fill(flood, pool, pages, timeout=30):
    """Store @pages zero pages (each one chunk, no data); return how many
    were answered OK, or None when the device consumed nothing."""
    per = flood.q.size // 3
    ok = 0
    for first in range(0, pages, per):
        n = min(per, pages - first)
        flood.post(store_headers(pool, 1, first, n), with_page=True)
        res = flood.wait(timeout)
        if res is None:
            return None
        ok += sum(1 for s, _ in res if s == S_OK)
    return ok


def absent_object_invalidations(pool, n):
    """The most expensive request before a per-object index: each one
    looks for an object that holds nothing."""
    return [REQ.pack(OP_INVALIDATE_OBJECT, 0, 0, pool, 1 << 40 | i, 0, 0)
            for i in range(n)]


def alive(vm, what):
    try:
        st = vm.cmd("query-status")
    except Exception as e:
        raise Failure("%s: QEMU died (%s); its output:\n%s" %
                      (what, e, vm.log()[-4000:]))
    check(st["status"] in ("running", "prelaunch"), "%s: %r" % (what, st))


def check_empty(vm, what):
    st = stats(vm)
    check(st["pools"] == 0 and st["pages"] == 0 and st["host-bytes"] == 0,
          "%s: store not empty: %r" % (what, st))


def recovers(vm, dev):
    """A fresh start after the hostile part works and starts empty."""
    dev.start(0)
    q = dev.queues[0]
    status, pool, _ = dev.request(q, OP_NEW_POOL)
    check(status == S_OK, "NEW_POOL after recovery: %d" % status)
    status, _, _ = dev.request(q, OP_STORE, pool, 2, 3, page=page_of(3))
    check(status == S_OK, "STORE after recovery: %d" % status)
    status, _, data = dev.request(q, OP_LOAD, pool, 2, 3, load=True)
    check(status == S_OK and data == page_of(3), "LOAD after recovery")
    check(stats(vm)["pages"] == 1, "old pages after recovery: %r" % stats(vm))


def test_before_driver_ok():
    """The trigger of issue 11 item 1: iothread=io0, FEATURES_OK without
    DRIVER_OK, the ring grown to 1024 entries, zero pages to make the pool
    big, 512 INVALIDATE_OBJECT queued, a kick, then status 0.  The device
    must consume nothing before DRIVER_OK (so the kick, which arrives
    through the main loop, never runs the queue beside the IOThread), the
    reset must find no request running, and QEMU must live."""
    problems = []
    with hostile_vm() as vm:
        try:
            trigger(vm, problems)
        except (OSError, RuntimeError) as e:
            raise Failure("%s; QEMU died (%s); its output:\n%s" %
                          ("; ".join(problems), e, vm.log()[-6000:]))
    check(not problems, "; ".join(problems))


def trigger(vm, problems):
    if True:
        dev = Device(vm)
        dev.start(0, qsize=GROWN, grow=True, driver_ok=False)
        q = dev.queues[0]
        flood = Flood(dev, q)
        # Before the fix this was answered: a pool, then pages in it.
        flood.post([REQ.pack(OP_NEW_POOL, 0, 0, 0, 0, 0, 0)])
        res = flood.wait(timeout=2)
        pool = 0
        if res is not None:
            problems.append("NEW_POOL answered before DRIVER_OK: %r" % res)
            pool = res[0][1]
            stored = fill(flood, pool, 60000)
            problems.append("%s zero pages stored before DRIVER_OK" % stored)
        else:
            check(flood.answered() == 0, "used ring moved")
            check(stats(vm)["pools"] == 0, "a pool opened before DRIVER_OK")
        # The ring holds the NEW_POOL if it was not consumed: 512 more.
        q.used_idx = vm.readw(q.used + 2)
        q.avail_idx = q.used_idx
        flood.post(absent_object_invalidations(pool, 512))
        dev.set_status(0)
        alive(vm, "reset after the kick")
        check_empty(vm, "after reset")
        time.sleep(1)           # an IOThread still busy would show now
        alive(vm, "1 s after the reset")
        check_empty(vm, "1 s after reset")
        recovers(vm, dev)


def test_pending_at_driver_ok():
    """Requests made available before DRIVER_OK are processed once
    DRIVER_OK is set, in the queue's own context, all of them although
    the ring (1024) holds more than one batch (queue-size 256).  With an
    IOThread, in the main loop, and with ioeventfd=off (no host notifier:
    the device itself must pick them up)."""
    for props, extra in ((",iothread=io0", ("-object", "iothread,id=io0")),
                         ("", ()), (",ioeventfd=off", ())):
        with QTestVM("-device", "virtio-tmem,id=tmem0,addr=04.0,"
                     "budget=64M" + props, *extra) as vm:
            dev = Device(vm)
            dev.start(0, qsize=GROWN, grow=True, driver_ok=False)
            q = dev.queues[0]
            flood = Flood(dev, q)
            flood.post([REQ.pack(OP_NEW_POOL, 0, 0, 0, 0, 0, 0)] +
                       store_headers(0, 1, 0, 340),
                       with_page=[False] + [True] * 340)
            time.sleep(0.3)
            check(flood.answered() == 0, "%s: answered before DRIVER_OK" %
                  props)
            dev.set_status(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)
            res = flood.wait(timeout=30)
            check(res is not None, "%s: not answered after DRIVER_OK" % props)
            check(all(s == S_OK for s, _ in res), "%s: statuses %r" %
                  (props, sorted(set(s for s, _ in res))))
            st = stats(vm)
            check(st["pools"] == 1 and st["pages"] == 340,
                  "%s: stats %r" % (props, st))


# Enough zero pages that 512 INVALIDATE_OBJECTs of absent objects take
# a while without a per-object index (about 0.3 ms each here).
MID_BATCH_PAGES = 200000


def big_pool(vm, dev, pages):
    dev.start(0, qsize=GROWN, grow=True)
    q = dev.queues[0]
    flood = Flood(dev, q)
    flood.post([REQ.pack(OP_NEW_POOL, 0, 0, 0, 0, 0, 0)])
    (status, pool), = flood.wait()
    check(status == S_OK, "NEW_POOL: %d" % status)
    stored = fill(flood, pool, pages)
    check(stored == pages, "stored %s of %d zero pages" % (stored, pages))
    return flood, pool


def started(flood, what):
    """Wait until the IOThread has answered a first request of the batch;
    say how far it got (the checks hold either way, but only a batch still
    running tests the race)."""
    deadline = time.monotonic() + 10
    while flood.answered() == 0 and time.monotonic() < deadline:
        pass
    print("%s: %d of %d answered at the reset" %
          (what, flood.answered(), flood.posted))


def test_reset_mid_batch():
    """Status 0 while the IOThread works through 512 slow requests (more
    than one batch, so a continuation is pending): QEMU lives, the store
    is empty at once and stays empty, the device works again."""
    with hostile_vm() as vm:
        dev = Device(vm)
        flood, pool = big_pool(vm, dev, MID_BATCH_PAGES)
        flood.post(absent_object_invalidations(pool, 512))
        started(flood, "reset")
        dev.set_status(0)
        alive(vm, "reset mid-batch")
        check_empty(vm, "after reset")
        time.sleep(1)
        alive(vm, "1 s after the reset")
        check_empty(vm, "1 s after the reset")
        recovers(vm, dev)


def test_unplug_mid_batch():
    """Hot-unplug while the IOThread works through 512 slow requests: the
    device goes away, QEMU lives and can plug it again."""
    with QTestVM("-object", "iothread,id=io0", machine="pc") as vm:
        vm.cmd("device_add", driver="virtio-tmem", id="tmem0",
               addr="05.0", budget=256 << 20, iothread="io0")
        dev = Device(vm, slot=5)
        flood, pool = big_pool(vm, dev, MID_BATCH_PAGES)
        flood.post(absent_object_invalidations(pool, 512))
        started(flood, "unplug")
        vm.cmd("device_del", id="tmem0")
        vm.outl(0xAE08, 1 << 5)         # PIIX4 ACPI PCI hot-plug: eject
        check(vm.wait_event("DEVICE_DELETED", 30) is not None,
              "no DEVICE_DELETED after eject")
        alive(vm, "unplug mid-batch")
        check(vm.cmd("query-tmem") == [], "device still reported")
        vm.cmd("device_add", driver="virtio-tmem", id="tmem0",
               addr="05.0", budget=16 << 20, iothread="io0")
        recovers(vm, Device(vm, slot=5))


# --- malformed chains ---------------------------------------------------------

class Arena:
    """Buffers for hand-made chains, each page-aligned between guard pages
    whose bytes must never change; a 'secret' page that no request names,
    whose bytes must never turn up in a stored page."""

    SECRET = b"SECRET!!" * (PAGE // 8)

    def __init__(self, vm, base):
        self.vm, self.base, self.next = vm, base, base
        self.guards = []

    def buf(self, data=None, size=PAGE):
        """A buffer with a guard page before and after it."""
        pages = (size + PAGE - 1) // PAGE
        before, addr = self.next, self.next + PAGE
        after = addr + pages * PAGE
        self.next = after + PAGE
        for g in (before, after):
            self.vm.write(g, GUARD)
            self.guards.append(g)
        self.vm.write(addr, data if data is not None else bytes(size))
        return addr

    def secret(self):
        addr = self.buf(self.SECRET)
        return addr

    def check_guards(self, what):
        for g in self.guards:
            check(self.vm.read(g, PAGE) == GUARD,
                  "%s: guard page at %#x overwritten" % (what, g))


def post_chain(vm, q, descs, heads=None, table=0):
    """Write descriptors @descs (addr, len, flags, next) from index 0
    and make @heads (default [0]) available; kick."""
    raw = b"".join(struct.pack("<QIHH", *d) for d in descs)
    vm.write(table or q.desc, raw)
    heads = heads or [0]
    for k, h in enumerate(heads):
        vm.writew(q.avail + 4 + 2 * ((q.avail_idx + k) % q.size), h)
    q.avail_idx = (q.avail_idx + len(heads)) & 0xFFFF
    vm.writew(q.avail + 2, q.avail_idx)
    vm.writew(q.notify, q.index)


def outcome(vm, dev, q, n=1, timeout=10):
    """'reset' when the device set NEEDS_RESET, else the list of the
    (used length, head) of the @n answers."""
    deadline = time.monotonic() + timeout
    while True:
        if dev.status() & S_NEEDS_RESET:
            return "reset"
        done = (vm.readw(q.used + 2) - q.used_idx) & 0xFFFF
        if done >= n:
            out = []
            for k in range(n):
                slot = q.used + 4 + 8 * ((q.used_idx + k) % q.size)
                head, length = struct.unpack("<II", vm.read(slot, 8))
                out.append((length, head))
            q.used_idx = (q.used_idx + n) & 0xFFFF
            return out
        if time.monotonic() > deadline:
            return "timeout"
        time.sleep(0.005)


def hostile_case(vm, dev, what, build, allow_ok=False, n=1):
    """Start the device, open a pool, run @build(arena, q, pool) which
    posts a hostile chain and returns the response buffer's address (or
    None); check the outcome; return (outcome, pool, arena)."""
    dev.start(1 << VIRTIO_RING_F_INDIRECT_DESC)
    q = dev.queues[0]
    status, pool, _ = dev.request(q, OP_NEW_POOL)
    check(status == S_OK, "%s: NEW_POOL: %d" % (what, status))
    arena = Arena(vm, q.bufs + 64 * PAGE)
    arena.secret()
    resp = build(arena, q, pool)
    res = outcome(vm, dev, q, n)
    alive(vm, what)
    check(res != "timeout", "%s: neither answered nor NEEDS_RESET" % what)
    if res != "reset" and resp is not None:
        status = vm.read(resp, 1)[0]
        check(allow_ok or status != S_OK, "%s: answered OK" % what)
        print("%s: answered, status %d" % (what, status))
    else:
        print("%s: %s" % (what, res if res == "reset" else "answered"))
    arena.check_guards(what)
    st = stats(vm)
    check(st["host-bytes"] <= st["budget"] and st["pools"] <= 16,
          "%s: stats %r" % (what, st))
    return res, pool, arena


def no_secret_stored(vm, dev, pool, keys, what):
    """Every key the hostile case may have stored loads back without a
    byte of the secret page (nothing read outside the request)."""
    if dev.status() & S_NEEDS_RESET:
        dev.start(0)    # the store is gone with the reset: nothing to read
        return
    q = dev.queues[0]
    for obj, index in keys:
        status, _, data = dev.request(q, OP_LOAD, pool, obj, index, load=True)
        if status == S_OK:
            check(b"SECRET!!" not in data, "%s: a stored page holds bytes "
                  "from outside its buffer" % what)


def hdr(op, pool, obj=1, index=0):
    return REQ.pack(op, 0, 0, pool, obj, index, 0)


W, N, I = VRING_DESC_F_WRITE, VRING_DESC_F_NEXT, VRING_DESC_F_INDIRECT


def case_indirect_nested(a, q, pool):
    inner = a.buf(size=64)
    h = a.buf(hdr(OP_STORE, pool))
    page = a.buf(page_of(1))
    resp = a.buf(bytes(RESP.size))
    a.vm.write(inner, struct.pack("<QIHH", h, REQ.size, 0, 0))
    table = a.buf(size=64)
    a.vm.write(table, struct.pack("<QIHH", inner, 16, I | N, 1) +
               struct.pack("<QIHH", page, PAGE, N, 2) +
               struct.pack("<QIHH", resp, RESP.size, W, 0))
    post_chain(a.vm, q, [(table, 48, I, 0)])
    return resp


def case_indirect_zero(a, q, pool):
    table = a.buf(size=64)
    post_chain(a.vm, q, [(table, 0, I, 0)])
    return None


def case_indirect_odd(a, q, pool):
    h = a.buf(hdr(OP_NEW_POOL, 0))
    resp = a.buf(bytes(RESP.size))
    table = a.buf(size=64)
    a.vm.write(table, struct.pack("<QIHH", h, REQ.size, N, 1) +
               struct.pack("<QIHH", resp, RESP.size, W, 0))
    post_chain(a.vm, q, [(table, 33, I, 0)])
    return resp


def case_indirect_huge(a, q, pool):
    table = a.buf(size=64)
    post_chain(a.vm, q, [(table, 0xFFFFFFF0, I, 0)])
    return None


def case_indirect_long(a, q, pool):
    """A table of 2048 readable descriptors, each naming the same header:
    more elements than a chain may have."""
    h = a.buf(hdr(OP_NEW_POOL, 0))
    n = 2048
    table = a.buf(size=16 * n)
    a.vm.write(table, b"".join(struct.pack("<QIHH", h, 1, N, i + 1)
                               for i in range(n - 1)) +
               struct.pack("<QIHH", h, RESP.size, W, 0))
    post_chain(a.vm, q, [(table, 16 * n, I, 0)])
    return None


def case_zero_header(a, q, pool):
    h = a.buf(hdr(OP_STORE, pool))
    page = a.buf(page_of(2))
    resp = a.buf(bytes(RESP.size))
    post_chain(a.vm, q, [(h, 0, N, 1), (page, PAGE, N, 2),
                         (resp, RESP.size, W, 0)])
    return resp


def case_zero_response(a, q, pool):
    h = a.buf(hdr(OP_NEW_POOL, 0))
    resp = a.buf(bytes(RESP.size))
    post_chain(a.vm, q, [(h, REQ.size, N, 1), (resp, 0, W, 0)])
    return None


def case_write_before_read(a, q, pool):
    h = a.buf(hdr(OP_STORE, pool))
    page = a.buf(page_of(3))
    resp = a.buf(bytes(RESP.size))
    post_chain(a.vm, q, [(resp, RESP.size, W | N, 1), (h, REQ.size, N, 2),
                         (page, PAGE, 0, 0)])
    return None


def case_overlap_store(a, q, pool):
    """STORE whose page (readable) is also its response (writable)."""
    h = a.buf(hdr(OP_STORE, pool, 1, 4))
    page = a.buf(page_of(4))
    post_chain(a.vm, q, [(h, REQ.size, N, 1), (page, PAGE, N, 2),
                         (page + PAGE - 8, 8, W, 0)])
    return page + PAGE - 8


def case_overlap_load(a, q, pool):
    """LOAD whose writable page covers its own header."""
    h = a.buf(hdr(OP_LOAD, pool, 1, 4), size=2 * PAGE)
    post_chain(a.vm, q, [(h, REQ.size, N, 1), (h, PAGE, W | N, 2),
                         (h + PAGE, 8, W, 0)])
    return h + PAGE


def case_bar_page(a, q, pool):
    """STORE whose page is the device's own BAR (common configuration)."""
    h = a.buf(hdr(OP_STORE, pool, 1, 5))
    resp = a.buf(bytes(RESP.size))
    post_chain(a.vm, q, [(h, REQ.size, N, 1), (BAR_ADDR, PAGE, N, 2),
                         (resp, RESP.size, W, 0)])
    return resp


def case_bar_response(a, q, pool):
    """A LOAD that would write a page into the device's own BAR."""
    h = a.buf(hdr(OP_LOAD, pool, 1, 5))
    resp = a.buf(bytes(RESP.size))
    post_chain(a.vm, q, [(h, REQ.size, N, 1), (BAR_ADDR, PAGE, W | N, 2),
                         (resp, RESP.size, W, 0)])
    return resp


def case_int_max(a, q, pool):
    """A writable part of more than INT_MAX bytes, all of it guest RAM:
    18 descriptors of 126 MiB over the same memory (above 1 MiB, where
    the 128 MiB of RAM have no holes)."""
    h = a.buf(hdr(OP_LOAD, pool, 1, 0))
    resp = a.buf(bytes(RESP.size))
    big = 126 << 20
    descs = [(h, REQ.size, N, 1)]
    for i in range(18):
        descs.append((1 << 20, big, W | N, len(descs) + 1))
    descs.append((resp, RESP.size, W, 0))
    post_chain(a.vm, q, descs)
    return None


def case_near_int_max(a, q, pool):
    """One writable descriptor of 0x7FFFFFF8 bytes (more than RAM)."""
    h = a.buf(hdr(OP_LOAD, pool, 1, 0))
    post_chain(a.vm, q, [(h, REQ.size, N, 1), (RAM_END, 0x7FFFFFF8, W, 0)])
    return None


def case_repeated_head(a, q, pool):
    """One NEW_POOL chain made available three times."""
    h = a.buf(hdr(OP_NEW_POOL, 0))
    resp = a.buf(bytes(RESP.size))
    post_chain(a.vm, q, [(h, REQ.size, N, 1), (resp, RESP.size, W, 0)],
               heads=[0, 0, 0])
    return resp


HOSTILE = [
    ("indirect table nested", case_indirect_nested, False, 1),
    ("indirect table of length 0", case_indirect_zero, False, 1),
    ("indirect table of odd length", case_indirect_odd, False, 1),
    ("indirect table of 4 GiB", case_indirect_huge, False, 1),
    ("indirect table of 2048 descriptors", case_indirect_long, False, 1),
    ("zero-length header", case_zero_header, False, 1),
    ("zero-length response", case_zero_response, False, 1),
    ("writable before readable", case_write_before_read, False, 1),
    ("STORE page overlapping its response", case_overlap_store, True, 1),
    ("LOAD page overlapping its header", case_overlap_load, True, 1),
    ("STORE page in the device's BAR", case_bar_page, False, 1),
    ("LOAD page into the device's BAR", case_bar_response, False, 1),
    ("writable part above INT_MAX", case_int_max, False, 1),
    ("writable descriptor near INT_MAX", case_near_int_max, False, 1),
    ("the same head three times", case_repeated_head, True, 3),
]


def test_hostile_descriptors():
    """Malformed chains, each on a freshly started device with an
    IOThread: an error status or NEEDS_RESET, QEMU alive, guard pages
    intact, no stored page with bytes from outside its buffer."""
    with hostile_vm(",queue-size=1024") as vm:
        dev = Device(vm)
        for what, build, allow_ok, n in HOSTILE:
            try:
                _, pool, _ = hostile_case(vm, dev, what, build, allow_ok, n)
                no_secret_stored(vm, dev, pool, [(1, i) for i in range(8)],
                                 what)
            except OSError as e:
                raise Failure("%s: QEMU died (%s); its output:\n%s" %
                              (what, e, vm.log()[-4000:]))
        recovers(vm, dev)


TESTS = {
    "before-driver-ok": test_before_driver_ok,
    "pending-at-driver-ok": test_pending_at_driver_ok,
    "reset-mid-batch": test_reset_mid_batch,
    "unplug-mid-batch": test_unplug_mid_batch,
    "hostile-descriptors": test_hostile_descriptors,
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
