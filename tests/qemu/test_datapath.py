#!/usr/bin/python3
"""The virtio-tmem data path with no guest: a Python virtio driver.

QEMU runs with the qtest accelerator (no CPU executes); this script plays
the guest through QEMU's qtest protocol (port I/O and memory access): it
enumerates the PCI function, maps BAR 4, negotiates features through the
modern common configuration, builds split virtqueues in guest RAM and
submits proto/virtio_tmem.h requests.  Answers are read from the used
ring; counters are checked against query-tmem.

Usage: test_datapath.py TEST     (TEST: one of the names in TESTS, or 'all')

Exit 77 (SKIP) when QEMU is not built; see qmp.py.
"""

import os
import socket
import struct
import sys
import time

from qmp import QEMU, Failure, check, run_tests
from vtmem import wire
from vtmem.pages import page_of  # noqa: F401 (test_hardening takes it too)
# proto/virtio_tmem.h, read by vtmem.wire (REQ, RESP, CONFIG: its structs)
from vtmem.wire import (CONFIG, F_EPHEMERAL, F_INVALIDATE_PAGES,  # noqa
                        F_MQ, INVALIDATE_PAGES_MAX, OP_DESTROY_POOL,
                        OP_INVALIDATE_OBJECT, OP_INVALIDATE_PAGE,
                        OP_INVALIDATE_PAGES, OP_INVALIDATE_POOL, OP_LOAD, OP_NEW_POOL, OP_STORE,
                        PAGE, REQ, RESP, S_INVALID, S_IOERR, S_NO_POOL,
                        S_NOT_FOUND, S_OK, S_REJECTED, S_UNSUPP,
                        VIRTIO_ID_TMEM)

# virtio 1.x, from <linux/virtio_config.h>, <linux/virtio_ring.h> and
# <linux/virtio_pci.h>
_VIRTIO = {**wire.virtio_header("virtio_config.h"),
           **wire.virtio_header("virtio_ring.h"),
           **wire.virtio_header("virtio_pci.h")}
VIRTIO_F_VERSION_1 = _VIRTIO["VIRTIO_F_VERSION_1"]
S_ACK, S_DRIVER, S_DRIVER_OK, S_FEATURES_OK, S_NEEDS_RESET = (
    _VIRTIO["VIRTIO_CONFIG_S_" + n] for n in
    ("ACKNOWLEDGE", "DRIVER", "DRIVER_OK", "FEATURES_OK", "NEEDS_RESET"))
VRING_DESC_F_NEXT, VRING_DESC_F_WRITE, VRING_DESC_F_INDIRECT = (
    _VIRTIO["VRING_DESC_F_" + n] for n in ("NEXT", "WRITE", "INDIRECT"))
VIRTIO_RING_F_INDIRECT_DESC = _VIRTIO["VIRTIO_RING_F_INDIRECT_DESC"]
PCI_CAP_COMMON, PCI_CAP_NOTIFY, PCI_CAP_DEVICE = (
    _VIRTIO["VIRTIO_PCI_CAP_%s_CFG" % n] for n in ("COMMON", "NOTIFY",
                                                   "DEVICE"))

SLOT = 4                    # -device ...,addr=04.0 on pcie.0
BAR_ADDR = 0xE0000000       # where libqos puts PCI MMIO on x86 too
RAM_BASE = 0x100000         # rings and buffers, in the 128 MiB of RAM


class QTestVM(QEMU):
    """QEMU with -accel qtest, a qtest socket and a QMP socket."""

    BASE = ["-machine", "q35", "-accel", "qtest", "-nographic", "-nodefaults",
            "-m", "128M"]

    def __init__(self, *args, machine="q35"):
        super().__init__(*args, paused=False)
        self.BASE = ["-machine", machine] + self.BASE[2:]
        self.qtest_path = os.path.join(self.dir, "qtest.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.qtest_path)
        self.listener.listen(1)
        self.qt = None
        self.qt_buf = b""

    def cmdline(self):
        return super().cmdline() + ["-qtest", "unix:" + self.qtest_path,
                                    "-qtest-log", "/dev/null"]

    def __enter__(self):
        super().__enter__()
        self.listener.settimeout(self.timeout)
        self.qt, _ = self.listener.accept()
        self.listener.close()
        return self

    def close(self):
        if self.qt:
            self.qt.close()
        super().close()

    def qtest(self, line):
        self.qt.sendall(line.encode() + b"\n")
        while True:
            while b"\n" not in self.qt_buf:
                data = self.qt.recv(65536)
                if not data:
                    raise RuntimeError("qtest connection closed")
                self.qt_buf += data
            reply, self.qt_buf = self.qt_buf.split(b"\n", 1)
            words = reply.decode().split()
            if words and words[0] == "OK":
                return words[1] if len(words) > 1 else None
            if words and words[0] == "FAIL":
                raise RuntimeError("qtest %r: %s" % (line, reply))
            # "IRQ raise/lower" notifications are not ours to track.

    # Port I/O and memory.
    def outl(self, port, val):
        self.qtest("outl 0x%x 0x%x" % (port, val))

    def inl(self, port):
        return int(self.qtest("inl 0x%x" % port), 16)

    def read(self, addr, size):
        return bytes.fromhex(self.qtest("read 0x%x 0x%x" % (addr, size))[2:])

    def write(self, addr, data):
        self.qtest("write 0x%x 0x%x 0x%s" % (addr, len(data), data.hex()))

    def readb(self, addr):
        return int(self.qtest("readb 0x%x" % addr), 16)

    def readw(self, addr):
        return int(self.qtest("readw 0x%x" % addr), 16)

    def readl(self, addr):
        return int(self.qtest("readl 0x%x" % addr), 16)

    def writeb(self, addr, val):
        self.qtest("writeb 0x%x 0x%x" % (addr, val))

    def writew(self, addr, val):
        self.qtest("writew 0x%x 0x%x" % (addr, val))

    def writel(self, addr, val):
        self.qtest("writel 0x%x 0x%x" % (addr, val))

    def writeq(self, addr, val):
        self.qtest("writeq 0x%x 0x%x" % (addr, val))

    # PCI configuration space of bus 0, function 0 of a slot.
    def cfg_readl(self, slot, off):
        self.outl(0xCF8, 0x80000000 | slot << 11 | (off & 0xFC))
        return self.inl(0xCFC)

    def cfg_writel(self, slot, off, val):
        self.outl(0xCF8, 0x80000000 | slot << 11 | (off & 0xFC))
        self.outl(0xCFC, val)


class Queue:
    """A split virtqueue in guest RAM."""

    def __init__(self, dev, index, size, base):
        self.dev, self.index, self.size = dev, index, size
        self.desc = base
        self.avail = base + 16 * size
        self.used = (self.avail + 6 + 2 * size + 4095) & ~4095
        self.bufs = self.used + 4096 + ((8 * size + 4095) & ~4095)
        self.avail_idx = 0
        self.used_idx = 0
        self.next_desc = 0


class Device:
    """A minimal virtio-pci modern driver for virtio-tmem."""

    def __init__(self, vm, slot=SLOT):
        self.vm, self.slot = vm, slot
        ids = vm.cfg_readl(slot, 0)
        check(ids == (0x1040 + VIRTIO_ID_TMEM) << 16 | 0x1AF4,
              "slot %d holds %#x, not virtio-tmem" % (slot, ids))
        vm.cfg_writel(slot, 0x20, BAR_ADDR)        # BAR 4, 64-bit
        vm.cfg_writel(slot, 0x24, 0)
        vm.cfg_writel(slot, 0x04, 0x6)             # memory + bus master
        self.caps = {}
        cap = vm.cfg_readl(slot, 0x34) & 0xFF
        while cap:
            head = vm.cfg_readl(slot, cap)
            vndr, nxt, cfg_type = head & 0xFF, head >> 8 & 0xFF, head >> 24
            if vndr == 0x09 and cfg_type <= 4 and cfg_type not in self.caps:
                bar = vm.cfg_readl(slot, cap + 4) & 0xFF
                offset = vm.cfg_readl(slot, cap + 8)
                mult = vm.cfg_readl(slot, cap + 16) if cfg_type == 2 else 0
                check(bar == 4, "capability %d in BAR %d" % (cfg_type, bar))
                self.caps[cfg_type] = (BAR_ADDR + offset, mult)
            cap = nxt
        self.common = self.caps[PCI_CAP_COMMON][0]
        self.queues = []

    def migrated(self, vm):
        """Go on driving the device in @vm, where it was migrated: the
        same RAM (rings, buffers) and configuration space (BAR), so the
        queues and the indexes this driver keeps stay as they were."""
        self.vm = vm
        return self

    def status(self):
        return self.vm.readb(self.common + 20)

    def set_status(self, val):
        self.vm.writeb(self.common + 20, val)

    def config(self):
        data = self.vm.read(self.caps[PCI_CAP_DEVICE][0], CONFIG.size)
        return dict(zip(CONFIG.fields, CONFIG.unpack(data)))

    def host_features(self):
        vm, c = self.vm, self.common
        vm.writel(c + 0, 0)
        lo = vm.readl(c + 4)
        vm.writel(c + 0, 1)
        return vm.readl(c + 4) << 32 | lo

    def start(self, features, nqueues=1, qsize=64, driver_ok=True,
              grow=False):
        vm, c = self.vm, self.common
        self.set_status(0)
        self.set_status(S_ACK | S_DRIVER)
        features |= 1 << VIRTIO_F_VERSION_1
        vm.writel(c + 8, 0)
        vm.writel(c + 12, features & 0xFFFFFFFF)
        vm.writel(c + 8, 1)
        vm.writel(c + 12, features >> 32)
        self.set_status(S_ACK | S_DRIVER | S_FEATURES_OK)
        check(self.status() & S_FEATURES_OK, "features %#x refused" % features)
        self.queues = []
        base = RAM_BASE
        for i in range(nqueues):
            q = self.setup_queue(i, qsize, base, grow)
            self.queues.append(q)
            base = q.bufs + 64 * PAGE
        if driver_ok:
            self.set_status(S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK)

    def setup_queue(self, i, qsize, base, grow=False):
        """grow: a hostile driver sets a size above the device's maximum
        (QEMU takes up to 1024)."""
        vm, c = self.vm, self.common
        vm.writew(c + 22, i)
        check(grow or vm.readw(c + 24) >= qsize, "queue %d too small" % i)
        vm.writew(c + 24, qsize)
        check(vm.readw(c + 24) == qsize, "queue %d: size %d not taken" %
              (i, qsize))
        q = Queue(self, i, qsize, base)
        # Rings start zeroed: the device reads avail idx 0.
        vm.write(q.avail, bytes(4))
        vm.write(q.used, bytes(4))
        vm.writeq(c + 32, q.desc)
        vm.writeq(c + 40, q.avail)
        vm.writeq(c + 48, q.used)
        q.notify = (self.caps[PCI_CAP_NOTIFY][0] +
                    vm.readw(c + 30) * self.caps[PCI_CAP_NOTIFY][1])
        vm.writew(c + 28, 1)
        return q

    def reset_queue(self, q):
        """VIRTIO_F_RING_RESET: reset one queue, then set it up again."""
        vm, c = self.vm, self.common
        vm.writew(c + 22, q.index)
        vm.writew(c + 58, 1)
        check(vm.readw(c + 58) == 0 and vm.readw(c + 28) == 0,
              "queue %d not reset" % q.index)
        new = self.setup_queue(q.index, q.size, q.desc)
        self.queues[q.index] = new
        return new

    def submit(self, q, chains):
        """Queue descriptor chains, kick once, wait for every answer.

        A chain is a list of (bytes, writable_len): readable buffers carry
        bytes, writable ones a length.  Returns, per chain, (used_len,
        [contents of each writable buffer])."""
        return self.submit_many({q: chains})[q]

    def submit_many(self, work):
        """submit() on several queues at once: every queue is filled and
        kicked before any answer is awaited, so that queues in different
        IOThreads run concurrently."""
        layouts = {q: self._prepare(q, chains) for q, chains in work.items()}
        for q in work:
            self.vm.writew(q.notify, q.index)
        return {q: self._collect(q, layouts[q]) for q in work}

    def _prepare(self, q, chains):
        vm = self.vm
        layout = []
        buf = q.bufs
        check(sum(len(c) for c in chains) <= q.size, "batch overflows the ring")
        for n, chain in enumerate(chains):
            head = q.next_desc
            descs = []
            for data, wlen in chain:
                length = len(data) if data is not None else wlen
                if data is not None:
                    vm.write(buf, data)
                descs.append((buf, length, data is None))
                buf += max(length, 8)
            for i, (addr, length, writable) in enumerate(descs):
                idx = (head + i) % q.size
                flags = (VRING_DESC_F_WRITE if writable else 0)
                if i + 1 < len(descs):
                    flags |= VRING_DESC_F_NEXT
                vm.write(q.desc + 16 * idx,
                         struct.pack("<QIHH", addr, length, flags,
                                     (idx + 1) % q.size))
            q.next_desc = (head + len(descs)) % q.size
            vm.writew(q.avail + 4 + 2 * ((q.avail_idx + n) % q.size), head)
            layout.append((head, [d for d in descs if d[2]]))
        q.avail_idx = (q.avail_idx + len(chains)) & 0xFFFF
        vm.writew(q.avail + 2, q.avail_idx)
        return layout

    def _collect(self, q, layout):
        vm = self.vm
        want = (q.used_idx + len(layout)) & 0xFFFF
        deadline = time.monotonic() + 10
        while vm.readw(q.used + 2) != want:
            if self.status() & S_NEEDS_RESET:
                raise Failure("device needs reset")
            check(time.monotonic() < deadline, "no answer within 10 s")
            time.sleep(0.01)
        by_head = {}
        for n in range(len(layout)):
            slot = q.used + 4 + 8 * ((q.used_idx + n) % q.size)
            head, length = struct.unpack("<II", vm.read(slot, 8))
            by_head[head] = length
        q.used_idx = want
        results = []
        for head, writable in layout:
            check(head in by_head, "chain %d not answered" % head)
            results.append((by_head[head],
                            [vm.read(a, l) for a, l, _ in writable]))
        return results

    def request(self, q, opcode, pool=0, obj=0, index=0, flags=0, page=None,
                load=False):
        """One request; returns (status, pool_id, loaded page or None)."""
        chain = [(REQ.pack(opcode, flags, 0, pool, obj, index, 0), 0)]
        if page is not None:
            chain.append((page, 0))
        if load:
            chain.append((None, PAGE))
        chain.append((None, RESP.size))
        used_len, bufs = self.submit(q, [chain])[0]
        status, pool_id = RESP.unpack(bufs[-1])
        check(used_len == (PAGE if load else 0) + RESP.size,
              "used length %d" % used_len)
        return status, pool_id, bufs[0] if load else None


def stats(vm, qid="tmem0"):
    return vm.cmd("qom-get", path="/machine/peripheral/" + qid,
                  property="stats")


def tmem_vm(props="", *extra):
    return QTestVM("-device", "virtio-tmem,id=tmem0,addr=04.0,budget=16M"
                   + props, *extra)


def test_config():
    """Config space and features as documented."""
    with tmem_vm(",num-queues=2,queue-size=64,max-pools=8") as vm:
        dev = Device(vm)
        cfg = dev.config()
        check(cfg == {"num_queues": 2, "max_pools": 8, "page_size": PAGE,
                      "capacity_pages": 16 * 1024 * 1024 // PAGE,
                      "max_batch": 32, "reserved": 0,
                      # -m 128M: the guest's RAM (test_elastic.py: size)
                      "size_pages": 128 * 1024 * 1024 // PAGE,
                      "target_pages": (1 << 64) - 1, "return_state": 0,
                      "reserved2": 0}, "config %r" % cfg)
        feats = dev.host_features()
        check(feats & (1 << F_MQ) and feats & (1 << F_EPHEMERAL),
              "features %#x" % feats)
        check(feats & (1 << VIRTIO_F_VERSION_1), "not a virtio 1 device")
    with tmem_vm(",ephemeral=off") as vm:
        feats = Device(vm).host_features()
        check(not feats & (1 << F_MQ | 1 << F_EPHEMERAL), "features %#x" % feats)


def roundtrip(vm, dev, q, seeds, pool_flags=0):
    status, pool, _ = dev.request(q, OP_NEW_POOL, flags=pool_flags)
    check(status == S_OK, "NEW_POOL: status %d" % status)
    pages = {s: page_of(s, compressible=s % 4 != 3) for s in seeds}
    # One batch of stores: several chains per kick.
    chains = [[(REQ.pack(OP_STORE, 0, 0, pool, 7, s, 0), 0), (p, 0),
               (None, RESP.size)] for s, p in pages.items()]
    for used_len, bufs in dev.submit(q, chains):
        check(RESP.unpack(bufs[0])[0] == S_OK, "STORE refused")
    for s, p in pages.items():
        status, _, data = dev.request(q, OP_LOAD, pool, 7, s, load=True)
        check(status == S_OK and data == p, "LOAD %d: status %d, %s" %
              (s, status, "same" if data == p else "different bytes"))
    return pool


def test_store_load():
    """Stores and loads round-trip; misses, bad pools, bad opcodes get
    their status; query-tmem counts them."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(1 << F_EPHEMERAL)
        q = dev.queues[0]
        pool = roundtrip(vm, dev, q, range(8))
        status, _, _ = dev.request(q, OP_LOAD, pool, 7, 100, load=True)
        check(status == S_NOT_FOUND, "LOAD miss: status %d" % status)
        status, _, _ = dev.request(q, OP_LOAD, pool + 5, 7, 0, load=True)
        check(status == S_NO_POOL, "LOAD, no pool: status %d" % status)
        status, _, _ = dev.request(q, 99)
        check(status in (S_UNSUPP, S_INVALID), "opcode 99: status %d" % status)
        status, _, _ = dev.request(q, OP_INVALIDATE_PAGE, pool, 7, 0)
        check(status == S_OK, "INVALIDATE_PAGE: status %d" % status)
        st = stats(vm)
        check(st == vm.cmd("query-tmem")[0], "qom-get and query-tmem differ")
        expect = {"pools": 1, "pages": 7, "succ-stores": 8, "loads": 8,
                  "load-misses": 1, "invalidates": 1, "failed-stores": 0}
        for k, v in expect.items():
            check(st[k] == v, "%s = %d, expected %d" % (k, st[k], v))
        check(0 < st["host-bytes"] <= st["budget"], "host-bytes %d" %
              st["host-bytes"])


def invalidate_pages(dev, q, pool, obj, indices, count=None, split=None):
    """One INVALIDATE_PAGES; split: where the list is cut into another
    descriptor (in indices).  Returns the status."""
    count = len(indices) if count is None else count
    body = struct.pack("<%dI" % len(indices), *indices)
    parts = [body] if split is None else [body[:4 * split],
                                          body[4 * split:]]
    chain = [(REQ.pack(OP_INVALIDATE_PAGES, 0, 0, pool, obj, count, 0), 0)]
    chain += [(part, 0) for part in parts if part]
    chain.append((None, RESP.size))
    used_len, bufs = dev.submit(q, [chain])[0]
    check(used_len == RESP.size, "used length %d" % used_len)
    return RESP.unpack(bufs[-1])[0]


def test_invalidate_pages():
    """VIRTIO_TMEM_F_INVALIDATE_PAGES: offered by default, not with
    invalidate-pages=off; UNSUPP unless negotiated; one request drops
    every key of its list (DEV-35), INVALID for a count out of range;
    batched in one kick with a STORE and a LOAD, in ring order."""
    with tmem_vm(",invalidate-pages=off") as vm:
        check(not Device(vm).host_features() & 1 << F_INVALIDATE_PAGES,
              "offered with invalidate-pages=off")
    with tmem_vm() as vm:
        dev = Device(vm)
        check(dev.host_features() & 1 << F_INVALIDATE_PAGES, "not offered")
        dev.start(0)
        q = dev.queues[0]
        pool = roundtrip(vm, dev, q, range(8))
        status = invalidate_pages(dev, q, pool, 7, [1, 3])
        check(status == S_UNSUPP, "not negotiated: status %d" % status)
        check(stats(vm)["pages"] == 8, "pages dropped without the feature")

        dev.start(1 << F_INVALIDATE_PAGES)
        q = dev.queues[0]
        pool = roundtrip(vm, dev, q, range(8))
        for count, n in ((0, 0), (3, 2), (2, 3),
                         (INVALIDATE_PAGES_MAX + 1, INVALIDATE_PAGES_MAX),
                         (0xFFFFFFFF, 4)):
            status = invalidate_pages(dev, q, pool, 7, [1] * n, count)
            check(status == S_INVALID, "count %d with %d indices: status "
                  "%d" % (count, n, status))
        check(stats(vm)["pages"] == 8, "pages dropped by malformed lists")
        status = invalidate_pages(dev, q, pool + 5, 7, [1, 2])
        check(status == S_NO_POOL, "no pool: status %d" % status)
        status = invalidate_pages(dev, q, pool, 7, [1, 3, 3, 200], split=1)
        check(status == S_OK, "INVALIDATE_PAGES: status %d" % status)
        st = stats(vm)
        check(st["pages"] == 6 and st["invalidates"] == 2,
              "pages %d, invalidates %d" % (st["pages"], st["invalidates"]))
        for i in range(8):
            status, _, data = dev.request(q, OP_LOAD, pool, 7, i, load=True)
            want = S_NOT_FOUND if i in (1, 3) else S_OK
            check(status == want, "LOAD %d: status %d" % (i, status))

        # One kick: STORE 5 anew, drop 5 and 6, LOAD 5 -> NOT_FOUND.
        new = page_of(99)
        body = struct.pack("<2I", 5, 6)
        chains = [
            [(REQ.pack(OP_STORE, 0, 0, pool, 7, 5, 0), 0), (new, 0),
             (None, RESP.size)],
            [(REQ.pack(OP_INVALIDATE_PAGES, 0, 0, pool, 7, 2, 0) + body, 0),
             (None, RESP.size)],
            [(REQ.pack(OP_LOAD, 0, 0, pool, 7, 5, 0), 0), (None, PAGE),
             (None, RESP.size)]]
        res = dev.submit(q, chains)
        got = [RESP.unpack(bufs[-1])[0] for _, bufs in res]
        check(got == [S_OK, S_OK, S_NOT_FOUND], "batch: %r" % got)
        # The whole list in one request, in a single descriptor.
        pool = roundtrip(vm, dev, q, range(8))
        status = invalidate_pages(dev, q, pool, 7,
                                  list(range(INVALIDATE_PAGES_MAX)))
        check(status == S_OK, "1024 indices: status %d" % status)
        check(stats(vm)["pages"] == 4, "pages %d" % stats(vm)["pages"])


def test_multiqueue_iothread():
    """Four queues served by an IOThread; a reset stops them and empties
    the store; they start again."""
    with tmem_vm(",num-queues=4,iothread=io0",
                 "-object", "iothread,id=io0") as vm:
        dev = Device(vm)
        for _ in range(2):
            dev.start(1 << F_MQ, nqueues=4)
            for i, q in enumerate(dev.queues):
                roundtrip(vm, dev, q, range(10 * i, 10 * i + 4))
            st = stats(vm)
            check(st["pools"] == 4 and st["pages"] == 16, "stats %r" % st)
            dev.set_status(0)
            st = stats(vm)
            check(st["pools"] == 0 and st["pages"] == 0, "reset: %r" % st)


def test_queue_reset():
    """One queue of an IOThread is reset and set up again while another
    keeps working; the store keeps its pages (a queue reset is not a device
    reset)."""
    with tmem_vm(",num-queues=2,iothread=io0",
                 "-object", "iothread,id=io0") as vm:
        dev = Device(vm)
        dev.start(1 << F_MQ | 1 << 40, nqueues=2)   # 40: VIRTIO_F_RING_RESET
        pool = roundtrip(vm, dev, dev.queues[0], range(4))
        q = dev.reset_queue(dev.queues[0])
        roundtrip(vm, dev, dev.queues[1], range(4, 8))
        status, _, data = dev.request(q, OP_LOAD, pool, 7, 1, load=True)
        check(status == S_OK and data == page_of(1), "LOAD after queue reset")
        check(stats(vm)["pages"] == 8, "pages lost by a queue reset")


def test_host_polling():
    """An IOThread that polls the ring keeps the guest's notifications off
    (VRING_USED_F_NO_NOTIFY, no event index) while it polls: a driver that
    honours the flag and does not kick is still answered.  The device's
    handler must not turn notifications back on after each batch while
    the IOThread polls."""
    with tmem_vm(",iothread=io0",
                 "-object", "iothread,id=io0,poll-max-ns=1000000000") as vm:
        dev = Device(vm)
        dev.start(0)                    # no VIRTIO_RING_F_EVENT_IDX
        q = dev.queues[0]
        status, pool, _ = dev.request(q, OP_NEW_POOL)
        check(status == S_OK, "NEW_POOL: status %d" % status)
        quiet = 0
        for i in range(60):
            chain = [(REQ.pack(OP_STORE, 0, 0, pool, 7, i, 0), 0),
                     (page_of(i), 0), (None, RESP.size)]
            # As a driver does (virtqueue_kick_prepare()): publish the
            # request first, then read the flag; read before, it races
            # with the IOThread leaving its poll (which turns the flag
            # off and polls one last time).
            layout = dev._prepare(q, [chain])
            if vm.readw(q.used) & 1:            # VRING_USED_F_NO_NOTIFY
                quiet += 1
            else:
                vm.writew(q.notify, q.index)
            used_len, bufs = dev._collect(q, layout)[0]
            check(RESP.unpack(bufs[-1])[0] == S_OK,
                  "STORE %d: status %d" % (i, RESP.unpack(bufs[-1])[0]))
            # Gaps the adaptive poll time grows past (4 us, doubling).
            time.sleep(0.005)
        check(quiet >= 20, "only %d of 60 requests went without a kick "
              "while the IOThread polled" % quiet)
        check(stats(vm)["pages"] == 60, "pages %d" % stats(vm)["pages"])


def test_iothread_per_queue():
    """iothread-vq-mapping: four queues in two IOThreads, filled and kicked
    together so that they run concurrently, with query-tmem read
    meanwhile."""
    dev_json = ('{"driver": "virtio-tmem", "id": "tmem0", "addr": "04.0",'
                ' "budget": 16777216, "num-queues": 4, "iothread-vq-mapping":'
                ' [{"iothread": "io0"}, {"iothread": "io1"}]}')
    with QTestVM("-object", "iothread,id=io0", "-object", "iothread,id=io1",
                 "-device", dev_json) as vm:
        dev = Device(vm)
        dev.start(1 << F_MQ, nqueues=4)
        pools = {}
        for q in dev.queues:
            status, pools[q], _ = dev.request(q, OP_NEW_POOL)
            check(status == S_OK, "NEW_POOL: %d" % status)
        for rnd in range(4):
            work = {}
            for q in dev.queues:
                work[q] = [[(REQ.pack(OP_STORE, 0, 0, pools[q], rnd, i, 0), 0),
                            (page_of(100 * q.index + i), 0),
                            (None, RESP.size)] for i in range(16)]
            for q, results in dev.submit_many(work).items():
                for _, bufs in results:
                    check(RESP.unpack(bufs[0])[0] == S_OK, "STORE refused")
            vm.cmd("query-tmem")
        for q in dev.queues:
            status, _, data = dev.request(q, OP_LOAD, pools[q], 3, 5, load=True)
            check(status == S_OK and data == page_of(100 * q.index + 5),
                  "LOAD on queue %d" % q.index)
        st = stats(vm)
        check(st["pages"] == 4 * 4 * 16 and st["succ-stores"] == 256,
              "stats %r" % st)
        dev.set_status(0)
        check(stats(vm)["pages"] == 0, "reset")


def test_no_ioeventfd():
    """With ioeventfd=off the queue runs in the vCPU's notify write."""
    with tmem_vm(",ioeventfd=off") as vm:
        dev = Device(vm)
        dev.start(0)
        roundtrip(vm, dev, dev.queues[0], range(4))
        check(stats(vm)["pages"] == 4, "pages not stored")


def test_reset():
    """A device reset drops every pool and byte."""
    with tmem_vm() as vm:
        dev = Device(vm)
        dev.start(0)
        roundtrip(vm, dev, dev.queues[0], range(4))
        check(stats(vm)["pages"] == 4, "pages not stored")
        dev.set_status(0)
        st = stats(vm)
        check(st["pages"] == 0 and st["pools"] == 0 and st["host-bytes"] == 0,
              "after reset: %r" % st)
        dev.start(0)
        status, pool, _ = dev.request(dev.queues[0], OP_NEW_POOL)
        check(status == S_OK, "NEW_POOL after reset: status %d" % status)
        status, _, _ = dev.request(dev.queues[0], OP_LOAD, pool, 7, 0,
                                   load=True)
        check(status == S_NOT_FOUND, "old data after reset: %d" % status)


def test_transport_violation():
    """A chain with no room for a response breaks the device
    (NEEDS_RESET); QEMU survives and a reset recovers it.  In the main
    loop and in an IOThread."""
    transport_violation(tmem_vm())
    transport_violation(tmem_vm(",iothread=io0", "-object", "iothread,id=io0"))


def transport_violation(vm):
    with vm:
        dev = Device(vm)
        dev.start(0)
        q = dev.queues[0]
        try:
            dev.submit(q, [[(REQ.pack(OP_NEW_POOL, 0, 0, 0, 0, 0, 0), 0)]])
            raise Failure("a chain without a response buffer was answered")
        except Failure as e:
            check("needs reset" in str(e), str(e))
        check(vm.cmd("query-status")["status"] in ("running", "prelaunch"),
              "QEMU state")
        dev.start(0)
        status, _, _ = dev.request(dev.queues[0], OP_NEW_POOL)
        check(status == S_OK, "NEW_POOL after recovery: status %d" % status)


def expect_broken(vm, dev, q, what):
    """Either NEEDS_RESET, or (for a buffer QEMU can bounce, e.g. outside
    RAM) an answer that is not OK."""
    deadline = time.monotonic() + 10
    while not dev.status() & S_NEEDS_RESET:
        if vm.readw(q.used + 2) != q.used_idx:
            status = vm.read(q.bufs, 1)[0]
            check(status != S_OK, "%s: answered OK" % what)
            print("%s: answered with status %d" % (what, status))
            break
        check(time.monotonic() < deadline, "%s: no answer" % what)
        time.sleep(0.01)
    else:
        print("%s: device needs reset" % what)
    check(vm.cmd("query-status")["status"] == "running", "QEMU state")


def test_hostile_rings():
    """Ring-level garbage (a descriptor outside guest RAM, an avail index
    ahead by more than the ring, a descriptor loop) gets an error answer
    or breaks the device, never QEMU; a reset recovers."""
    with tmem_vm(",iothread=io0", "-object", "iothread,id=io0") as vm:
        dev = Device(vm)
        cases = ["descriptor outside RAM", "avail index jump", "descriptor loop"]
        for what in cases:
            dev.start(0)
            q = dev.queues[0]
            status, pool, _ = dev.request(q, OP_NEW_POOL)
            check(status == S_OK, "NEW_POOL: %d" % status)
            if what == "avail index jump":
                vm.writew(q.avail + 2, q.avail_idx + q.size + 5)
            else:
                nxt = 0 if what == "descriptor loop" else 1
                addr = q.bufs if what == "descriptor loop" else 1 << 40
                vm.write(q.desc, struct.pack("<QIHH", addr, REQ.size,
                                             VRING_DESC_F_NEXT, nxt))
                vm.write(q.desc + 16, struct.pack("<QIHH", q.bufs, RESP.size,
                                                  VRING_DESC_F_WRITE, 0))
                vm.writew(q.avail + 4 + 2 * (q.avail_idx % q.size), 0)
                vm.writew(q.avail + 2, q.avail_idx + 1)
            vm.writew(q.notify, 0)
            if what == "avail index jump":
                # The core pops stale but well-formed ring entries: they
                # are answered, within the limits of the store.
                time.sleep(0.5)
            else:
                expect_broken(vm, dev, q, what)
            st = stats(vm)
            check(st["pools"] <= 16 and st["host-bytes"] <= st["budget"],
                  "%s: stats %r" % (what, st))
            check(vm.cmd("query-status")["status"] == "running", "QEMU state")


def test_budget():
    """A full budget rejects stores; host bytes never exceed it."""
    with QTestVM("-device", "virtio-tmem,id=tmem0,addr=04.0,budget=256K,"
                 "incompressible=reject") as vm:
        dev = Device(vm)
        dev.start(0)
        q = dev.queues[0]
        status, pool, _ = dev.request(q, OP_NEW_POOL)
        check(status == S_OK, "NEW_POOL: %d" % status)
        statuses = []
        for s in range(0, 160, 8):
            chains = [[(REQ.pack(OP_STORE, 0, 0, pool, 1, i, 0), 0),
                       (page_of(i, compressible=i % 2 == 0), 0),
                       (None, RESP.size)] for i in range(s, s + 8)]
            statuses += [RESP.unpack(b[0])[0] for _, b in dev.submit(q, chains)]
        st = stats(vm)
        check(S_REJECTED in statuses, "nothing rejected: %r" % st)
        check(st["host-bytes"] <= st["budget"], "over budget: %r" % st)
        check(st["failed-stores-incompressible"] > 0, "no incompressible "
              "rejection: %r" % st)
        check(st["succ-stores"] + st["failed-stores"] == 160, "count %r" % st)


def test_unplug():
    """Hot-unplug with pages stored and an IOThread: the device is
    unrealized and gone; the VM goes on.  The pc machine's ACPI PCI
    hot-plug controller lets us play the guest's part (eject)."""
    with QTestVM("-object", "iothread,id=io0", machine="pc") as vm:
        vm.cmd("device_add", driver="virtio-tmem", id="tmem0",
               addr="05.0", budget=16 << 20, iothread="io0",
               **{"num-queues": 2})
        dev = Device(vm, slot=5)
        dev.start(1 << F_MQ, nqueues=2)
        for q in dev.queues:
            roundtrip(vm, dev, q, range(4))
        check(stats(vm)["pages"] == 8, "pages not stored")
        vm.cmd("device_del", id="tmem0")
        vm.outl(0xAE08, 1 << 5)         # PIIX4 ACPI PCI hot-plug: eject
        check(vm.wait_event("DEVICE_DELETED", 10) is not None,
              "no DEVICE_DELETED after eject")
        check(vm.cmd("query-tmem") == [], "device still reported")
        # The same id can be plugged again, and works.
        vm.cmd("device_add", driver="virtio-tmem", id="tmem0",
               addr="05.0", budget=16 << 20)
        dev = Device(vm, slot=5)
        dev.start(0)
        roundtrip(vm, dev, dev.queues[0], range(2))


def timing(vm):
    return vm.cmd("qom-get", path="/machine/peripheral/tmem0/virtio-backend",
                  property="timing")


def test_timing():
    """The "timing" property bench/ reads: all 0 by default (no clock
    reads per request on the hot path), counted with x-timing=on."""
    for props, on in (("", False), (",x-timing=on", True)):
        with tmem_vm(props) as vm:
            dev = Device(vm)
            dev.start(0)
            roundtrip(vm, dev, dev.queues[0], range(8))
            tm = timing(vm)
            if not on:
                check(set(tm.values()) == {0}, "timing counted with "
                      "x-timing off: %r" % tm)
                continue
            check(tm["store-requests"] == 8 and tm["load-requests"] == 8 and
                  tm["other-requests"] == 1, "requests %r" % tm)
            check(tm["handler-calls"] > 0 and
                  tm["handler-ns"] >= tm["store-ns"] > 0 and
                  tm["store-ns"] >= tm["store-lib-ns"] > 0 and
                  tm["load-lib-ns"] > 0, "times %r" % tm)


TESTS = {
    "timing": test_timing,
    "config": test_config,
    "store-load": test_store_load,
    "invalidate-pages": test_invalidate_pages,
    "multiqueue-iothread": test_multiqueue_iothread,
    "reset": test_reset,
    "transport-violation": test_transport_violation,
    "budget": test_budget,
    "unplug": test_unplug,
    "no-ioeventfd": test_no_ioeventfd,
    "queue-reset": test_queue_reset,
    "hostile-rings": test_hostile_rings,
    "iothread-per-queue": test_iothread_per_queue,
    "host-polling": test_host_polling,
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
