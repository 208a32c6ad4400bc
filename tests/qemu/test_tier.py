#!/usr/bin/python3
"""The disk tier of virtio-tmem (backing-file) in the built QEMU.

Realize errors over the command line and device_add, then the data path
through the qtest driver of test_datapath.py: a device with an 8 MiB
budget and a 256 MiB backing file takes pages worth several budgets,
answers every load with the stored bytes, and behaves as documented when
x-disk-error makes the file fail.  Every figure is read with query-tmem.

Usage: test_tier.py TEST     (TEST: one of the names in TESTS, or 'all')

Exit 77 (SKIP) when QEMU is not built, or when its libtmem has no disk
tier (built without liburing).
"""

import os
import struct
import sys
import tempfile
import time

from qmp import QEMU, Failure, check, run_qemu, run_tests, skip
from test_datapath import (Device, QTestVM, F_MQ, OP_NEW_POOL, OP_STORE,
                           OP_LOAD, OP_INVALIDATE_PAGE, PAGE, REQ, RESP,
                           S_IOERR, S_OK, S_REJECTED)
from test_device import check_error, qmp_value
# Half random, half text: about 2.1 KiB compressed, one in eight random.
from vtmem.pages import tier_page as page_of

MiB = 1 << 20
BUDGET = 8 * MiB
BACKING = 256 * MiB
NO_TIER = "libtmem built without disk tier support"
# Chains per kick, 3 descriptors and a page each: Device.start() leaves
# 64 pages of buffers per queue.
BATCH = 32
DISK_FIELDS = {
    "size": int, "segment-size": int, "segments": int, "pages": int,
    "bytes": int, "fill": float, "written-back": int, "reads": int,
    "read-bytes": int, "writes": int, "write-bytes": int, "errors": int,
    "cleaned-segments": int, "failed": bool,
}


class TierVM(QTestVM):
    """A QTestVM whose device tmem0 has a disk tier in a temporary
    directory; SKIP when libtmem has none."""

    def __init__(self, props="", backing_size=BACKING, dev_json=None,
                 extra=(), room_wait_ms=30000):
        self.tmp = tempfile.TemporaryDirectory(prefix="vtmem-tier-")
        self.backing = os.path.join(self.tmp.name, "tier.img")
        if dev_json:
            dev = dev_json.replace("@FILE@", self.backing)
        else:
            # A long wait for room: a loaded machine may starve the
            # writer past the 1 s default, and most tests expect no
            # refusal while the tier has room (tier-hang sets its own).
            dev = ("virtio-tmem,id=tmem0,addr=04.0,budget=%d,"
                   "backing-file=%s,backing-size=%d,room-wait-ms=%d%s"
                   % (BUDGET, self.backing, backing_size, room_wait_ms,
                      props))
        super().__init__(*extra, "-device", dev)

    def __enter__(self):
        try:
            return super().__enter__()
        except RuntimeError as e:
            if NO_TIER in str(e):
                self.tmp.cleanup()
                skip(NO_TIER)
            raise

    def close(self):
        super().close()
        self.tmp.cleanup()


def info(vm):
    infos = vm.cmd("query-tmem")
    check(len(infos) == 1, "query-tmem: %r" % infos)
    return infos[0]


def disk(vm):
    st = info(vm)
    check("disk" in st, "query-tmem has no disk: %r" % st)
    return st["disk"]


def check_disk_info(d):
    for k, kind in DISK_FIELDS.items():
        check(k in d, "disk lacks %r: %r" % (k, d))
        check(isinstance(d[k], kind) or (kind is float and
                                         isinstance(d[k], int)),
              "disk %s: %r is not a %s" % (k, d[k], kind.__name__))
    check(set(d) == set(DISK_FIELDS), "disk fields %r" % sorted(d))


def started(dev):
    dev.start(0, qsize=256)
    return dev


class Store:
    """One pool of the device and what the guest believes it holds
    (flags: NEW_POOL's, e.g. VIRTIO_TMEM_POOL_EPHEMERAL)."""

    def __init__(self, vm, dev=None, q=None, flags=0):
        self.vm = vm
        if dev is None:
            dev = Device(vm)
            dev.start(0, qsize=256)
        self.dev = dev
        self.q = q or dev.queues[0]
        status, self.pool, _ = self.dev.request(self.q, OP_NEW_POOL,
                                                flags=flags)
        check(status == S_OK, "NEW_POOL: status %d" % status)
        self.held = {}              # index -> page, for stores answered OK

    def store(self, seeds):
        """Store page_of(seed) at index seed; return the statuses."""
        statuses = []
        seeds = list(seeds)
        for i in range(0, len(seeds), BATCH):
            batch = seeds[i:i + BATCH]
            pages = [page_of(s) for s in batch]
            chains = [[(REQ.pack(OP_STORE, 0, 0, self.pool, 1, s, 0), 0),
                       (p, 0), (None, RESP.size)]
                      for s, p in zip(batch, pages)]
            for s, p, (_, bufs) in zip(batch, pages,
                                       self.dev.submit(self.q, chains)):
                status = RESP.unpack(bufs[0])[0]
                statuses.append(status)
                if status == S_OK:
                    self.held[s] = p
                else:
                    self.held.pop(s, None)
        return statuses

    @staticmethod
    def store_many(stores, seeds):
        """store() on several queues (one Store each) at once, batch by
        batch: each queue's chains are kicked before any answer is
        awaited, so that queues in different IOThreads run concurrently."""
        seeds = list(seeds)
        for i in range(0, len(seeds), BATCH):
            work = {}
            for st in stores:
                work[st.q] = [[(REQ.pack(OP_STORE, 0, 0, st.pool, 1, s, 0),
                                0), (page_of(s), 0), (None, RESP.size)]
                              for s in seeds[i:i + BATCH]]
            answers = stores[0].dev.submit_many(work)
            for st in stores:
                for s, (_, bufs) in zip(seeds[i:i + BATCH], answers[st.q]):
                    check(RESP.unpack(bufs[0])[0] == S_OK,
                          "STORE %d on queue %d refused" % (s, st.q.index))
                    st.held[s] = page_of(s)

    def invalidate(self, seeds):
        for i in range(0, len(seeds), BATCH):
            chains = [[(REQ.pack(OP_INVALIDATE_PAGE, 0, 0, self.pool, 1, s,
                                 0), 0), (None, RESP.size)]
                      for s in seeds[i:i + BATCH]]
            for s, (_, bufs) in zip(seeds[i:i + BATCH],
                                    self.dev.submit(self.q, chains)):
                check(RESP.unpack(bufs[0])[0] == S_OK,
                      "INVALIDATE_PAGE %d refused" % s)
                del self.held[s]

    def load(self, seeds):
        """Load the pages at these indexes; return {seed: (status, data)}."""
        out = {}
        seeds = list(seeds)
        for i in range(0, len(seeds), BATCH):
            batch = seeds[i:i + BATCH]
            chains = [[(REQ.pack(OP_LOAD, 0, 0, self.pool, 1, s, 0), 0),
                       (None, PAGE), (None, RESP.size)] for s in batch]
            for s, (used, bufs) in zip(batch, self.dev.submit(self.q, chains)):
                check(used == PAGE + RESP.size, "LOAD %d: used length %d"
                      % (s, used))
                out[s] = (RESP.unpack(bufs[1])[0], bufs[0])
        return out

    def check_all(self):
        """Every page stored OK loads with its bytes."""
        for s, (status, data) in self.load(sorted(self.held)).items():
            check(status == S_OK, "LOAD %d: status %d" % (s, status))
            check(data == self.held[s], "LOAD %d: different bytes" % s)

    def fill_past_budget(self, start, count):
        """Store until the tier holds pages; return the next seed."""
        statuses = self.store(range(start, start + count))
        check(statuses.count(S_OK) == count, "stores refused: %d of %d"
              % (count - statuses.count(S_OK), count))
        d = disk(self.vm)
        check(d["pages"] > 0 and d["writes"] > 0,
              "nothing written back after %d pages: %r" % (count, d))
        return start + count


TIER_PROPS = [
    ("segment-size=64K", "'segment-size' needs a disk tier: set "
     "'backing-file' too"),
    ("backing-size=1G", "'backing-size' needs a disk tier"),
    ("writeback-high=50,writeback-low=40", "'writeback-high' needs a disk "
     "tier"),
    ("x-disk-error=write", "'x-disk-error' needs a disk tier"),
    # From here on libtmem's reasons, with the property for its field.
    ("backing-file=F,segment-size=100K", "'segment-size' 102400 is not a "
     "power of 2 between 65536 and 16777216 bytes (0 selects 262144)"),
    ("backing-file=F,segment-size=32K", "'segment-size' 32768 is not a "
     "power of 2"),
    ("backing-file=F,segment-size=32M", "'segment-size' 33554432 is not a "
     "power of 2"),
    ("backing-file=F,backing-size=512K", "'backing-size' 524288 is smaller "
     "than 4 segments of 262144 bytes (1048576 bytes)"),
    ("backing-file=F,segment-size=1M,backing-size=3M",
     "'backing-size' 3145728 is smaller than 4 segments of 1048576 bytes"),
    ("backing-file=F,writeback-high=70,writeback-low=75", "'writeback-low' "
     "75 is not below 'writeback-high' 70"),
    ("backing-file=F,writeback-low=95", "'writeback-low' 95 is not below "
     "'writeback-high' 90 (0 selects 90)"),
    ("backing-file=F,writeback-high=60,writeback-low=60",
     "'writeback-low' 60 is not below 'writeback-high' 60"),
    ("backing-file=F,writeback-high=101", "'writeback-high' 101 is over "
     "100 (a percentage of 'budget')"),
    ("backing-file=", "'backing-file' is empty: name a file"),
    ("backing-file=F,x-disk-error=sometimes", "'x-disk-error' must be "
     "'none', 'read', 'write' or 'read+write', not 'sometimes'"),
]


def test_tier_properties():
    """Tier properties libtmem refuses (or QEMU: x-disk-error) are
    refused with an error naming them, on the command line and by
    device_add; x-disk-error cannot be set on a device without a tier.
    No file is touched."""
    with tempfile.TemporaryDirectory(prefix="vtmem-tier-") as tmp:
        backing = os.path.join(tmp, "tier.img")
        for props, msg in TIER_PROPS:
            props = props.replace("=F", "=" + backing)
            rc, _, err = run_qemu("-machine", "q35", "-accel", "tcg", "-S",
                                  "-nodefaults", "-nographic", "-device",
                                  "virtio-tmem,budget=8M," + props)
            check(rc != 0, "QEMU started with %s" % props)
            if NO_TIER in err:
                skip(NO_TIER)
            check("virtio-tmem: " + msg in err, "stderr for %s: %r"
                  % (props, err))
        with QEMU("-device", "pcie-root-port,id=rp0,chassis=1",
                  "-device", "virtio-tmem,id=tmem0,budget=8M") as vm:
            for props, msg in TIER_PROPS:
                props = props.replace("=F", "=" + backing)
                args = {k: qmp_value(v) for k, v in
                        (kv.split("=", 1) for kv in props.split(","))}
                check_error(lambda: vm.cmd("device_add",
                                           driver="virtio-tmem",
                                           bus="rp0", id="bad",
                                           budget=8 * MiB, **args), msg)
            st = vm.cmd("query-tmem")
            check(len(st) == 1 and "disk" not in st[0],
                  "query-tmem: %r" % st)
            check(vm.cmd("qom-get", path="/machine/peripheral/tmem0",
                         property="x-disk-error") == "none",
                  "x-disk-error of a device without a tier")
            for value in ("read", "none"):
                check_error(lambda: vm.cmd("qom-set",
                                           path="/machine/peripheral/tmem0",
                                           property="x-disk-error",
                                           value=value),
                            "'x-disk-error' needs a disk tier")
        check(os.listdir(tmp) == [], "files created: %r" % os.listdir(tmp))


def private_file(path, size):
    """An existing backing file as libtmem takes it: ours, mode 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, size)
    os.close(fd)
    return path


def realize_error(props):
    """Start QEMU with a tier device; return its error message."""
    rc, _, err = run_qemu("-machine", "q35", "-accel", "tcg", "-S",
                          "-nodefaults", "-nographic", "-device",
                          "virtio-tmem," + props)
    check(rc != 0, "QEMU started with %s" % props)
    if NO_TIER in err:
        skip(NO_TIER)
    return err


def test_tier_realize_errors():
    """What libtmem refuses at realize comes back naming the file or the
    property: a missing file without backing-size, a directory, an
    existing file too small, a budget too small for the tier's buffers;
    a good configuration creates and allocates the file."""
    with tempfile.TemporaryDirectory(prefix="vtmem-tier-") as tmp:
        missing = os.path.join(tmp, "missing.img")
        err = realize_error("budget=8M,backing-file=" + missing)
        check("virtio-tmem: 'backing-file' %s: No such file or directory "
              "(without 'backing-size' the file must exist)" % missing in err,
              "missing file: %r" % err)
        check(not os.path.exists(missing), "created without backing-size")

        err = realize_error("budget=8M,backing-file=" + tmp)
        check("virtio-tmem: 'backing-file' %s: Is a directory" % tmp in err,
              "directory: %r" % err)

        err = realize_error("budget=8M,backing-file=/dev/null")
        check("virtio-tmem: 'backing-file' /dev/null: neither a regular "
              "file nor a block device" in err, "/dev/null: %r" % err)

        small = private_file(os.path.join(tmp, "small.img"), MiB - 4096)
        err = realize_error("budget=8M,backing-file=" + small)
        check("virtio-tmem: 'backing-file' %s: its 1044480 bytes are fewer "
              "than 4 segments of 262144 bytes (1048576 bytes)" % small in err,
              "small file: %r" % err)

        err = realize_error("budget=1M,backing-size=4M,backing-file="
                            + os.path.join(tmp, "t.img"))
        check("virtio-tmem: 'budget' 1048576 cannot hold the disk tier's "
              "buffers (5 segments of 262144 bytes)" in err,
              "small budget: %r" % err)
        check(not os.path.exists(os.path.join(tmp, "t.img")),
              "a refused budget created the backing file")

        # A good one: the file is created and allocated, and removed when
        # QEMU is done with it; an existing file is used at its size with
        # backing-size=0, and kept.
        good = os.path.join(tmp, "good.img")
        for props in (",backing-size=16M", ""):
            if not props:
                private_file(good, 16 * MiB)
            with QEMU("-device", "virtio-tmem,id=tmem0,budget=8M,"
                      "segment-size=1M,backing-file=" + good + props) as vm:
                d = info(vm)["disk"]
                check_disk_info(d)
                check(d["size"] == 16 * MiB and d["segment-size"] == MiB,
                      "disk %r" % d)
                check(d["pages"] == 0 and not d["failed"], "disk %r" % d)
                st = os.stat(good)
                check(st.st_size == 16 * MiB and
                      (props == "" or st.st_blocks * 512 >= 16 * MiB),
                      "file size %d, %d blocks" % (st.st_size, st.st_blocks))
            check(os.path.exists(good) == (props == ""),
                  "after QEMU (%s): exists %s" % (props or "existing file",
                                                  os.path.exists(good)))


def test_tier_file_rules():
    """The backing file must be the device's alone: a symbolic link, a
    file others or its group may read, and a file another device holds
    are refused with an error naming the file, and left as they were."""
    with tempfile.TemporaryDirectory(prefix="vtmem-tier-") as tmp:
        target = private_file(os.path.join(tmp, "target.img"), 16 * MiB)
        link = os.path.join(tmp, "link.img")
        os.symlink(target, link)
        err = realize_error("budget=8M,backing-size=32M,backing-file=" + link)
        check("virtio-tmem: 'backing-file' %s: a symbolic link" % link
              in err, "symlink: %r" % err)
        check(os.path.getsize(target) == 16 * MiB, "the link's target grew")

        os.chmod(target, 0o644)
        err = realize_error("budget=8M,backing-file=" + target)
        check("virtio-tmem: 'backing-file' %s: mode 0644 lets its group or "
              "others read or write it (chmod 0600)" % target in err,
              "0644: %r" % err)
        os.chmod(target, 0o600)

        dev = "virtio-tmem,budget=8M,backing-file=" + target
        rc, _, err = run_qemu("-machine", "q35", "-accel", "tcg", "-S",
                              "-nodefaults", "-nographic",
                              "-device", dev + ",id=a",
                              "-device", dev + ",id=b")
        if NO_TIER in err:
            skip(NO_TIER)
        check(rc != 0 and "virtio-tmem: 'backing-file' %s: in use by "
              "another process or client (locked)" % target in err,
              "two devices on one file: rc %d, %r" % (rc, err))
        check(os.path.exists(target), "the refusal removed the file")


def test_tier_store_load():
    """Pages worth several budgets are all accepted, the coldest go to
    the file, every load returns the stored bytes."""
    with TierVM() as vm:
        st = Store(vm)
        count = 10000
        statuses = st.store(range(count))
        refused = len(statuses) - statuses.count(S_OK)
        s = info(vm)
        check(refused == 0, "%d of %d stores refused: %r" % (refused, count, s))
        check(s["compressed-bytes"] > 2 * BUDGET, "compressed bytes %d: not "
              "far above the budget" % s["compressed-bytes"])
        check(s["pages"] == count and s["host-bytes"] <= BUDGET,
              "stats %r" % s)
        d = s["disk"]
        check_disk_info(d)
        check(d["size"] == BACKING and d["segment-size"] == 256 << 10,
              "disk %r" % d)
        check(d["pages"] > 0 and d["writes"] > 0 and d["written-back"] > 0,
              "nothing on disk: %r" % d)
        check(d["bytes"] > BUDGET, "disk holds only %d bytes" % d["bytes"])
        check(d["write-bytes"] > BUDGET, "disk %r" % d)
        check(0 < d["fill"] <= 1 and d["segments"] > 0, "disk %r" % d)
        check(d["errors"] == 0 and not d["failed"], "disk %r" % d)
        check(os.path.getsize(vm.backing) == BACKING, "backing file size")
        print("stored %d pages: %d compressed bytes, %d on disk in %d "
              "segments (fill %.2f), %d writes"
              % (count, s["compressed-bytes"], d["pages"], d["segments"],
                 d["fill"], d["writes"]))

        st.check_all()
        s = info(vm)
        d = s["disk"]
        check(s["loads"] == count and s["load-misses"] == 0, "stats %r" % s)
        check(d["reads"] > 0 and d["read-bytes"] > 0, "no disk reads: %r" % d)
        check(vm.cmd("qom-get", path="/machine/peripheral/tmem0",
                     property="stats")["disk"]["size"] == BACKING,
              "qom-get stats has no disk")
        print("loaded %d pages: %d disk reads" % (count, d["reads"]))

        # A device reset empties the tier too.
        st.dev.set_status(0)
        d = disk(vm)
        check(d["pages"] == 0 and d["bytes"] == 0 and d["segments"] == 0,
              "after reset: %r" % d)


def test_tier_write_error():
    """A failing disk (x-disk-error=write) fails the tier: stores over
    the budget are then refused, everything stored before still loads;
    after x-disk-error=none and a device reset the tier works again."""
    with TierVM() as vm:
        st = Store(vm)
        nxt = st.fill_past_budget(0, 5000)
        before = disk(vm)
        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-error", value="write")
        check(vm.cmd("qom-get", path="/machine/peripheral/tmem0/"
                     "virtio-backend", property="x-disk-error") == "write",
              "qom-get x-disk-error")
        statuses = st.store(range(nxt, nxt + 5000))
        s = info(vm)
        d = s["disk"]
        print("after x-disk-error=write: %d of 5000 stores refused; %r"
              % (statuses.count(S_REJECTED), d))
        check(d["failed"] and d["errors"] > 0, "tier not failed: %r" % d)
        check(S_REJECTED in statuses, "no store refused: %r" % s)
        check(set(statuses) <= {S_OK, S_REJECTED}, "statuses %r"
              % sorted(set(statuses)))
        check(statuses[-100:] == [S_REJECTED] * 100,
              "stores accepted after the tier failed")
        check(s["failed-stores-budget"] == statuses.count(S_REJECTED),
              "failed-stores-budget %d" % s["failed-stores-budget"])
        check(d["written-back"] >= before["written-back"] and
              d["pages"] <= before["pages"] + d["written-back"] -
              before["written-back"], "disk %r, before %r" % (d, before))
        check(s["host-bytes"] <= BUDGET, "over budget: %r" % s)
        st.check_all()

        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-error", value="none")
        check(disk(vm)["failed"], "a failed tier recovered without reset")
        st.dev.set_status(0)
        check(not disk(vm)["failed"], "still failed after reset")
        st = Store(vm)
        st.fill_past_budget(0, 5000)
        st.check_all()


def test_tier_read_error():
    """x-disk-error=read: a LOAD of a page on disk answers IOERR and the
    page stays stored; after x-disk-error=none it loads correctly."""
    with TierVM() as vm:
        st = Store(vm)
        st.fill_past_budget(0, 5000)
        errors = disk(vm)["errors"]
        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-error", value="read")
        # The coldest pages are the first stored.
        failed = []
        for s, (status, data) in st.load(range(0, 2000)).items():
            check(status in (S_OK, S_IOERR), "LOAD %d: status %d"
                  % (s, status))
            if status == S_OK:
                check(data == st.held[s], "LOAD %d: different bytes" % s)
            else:
                failed.append(s)
        d = disk(vm)
        print("x-disk-error=read: %d of 2000 loads answered IOERR; %r"
              % (len(failed), d))
        check(failed, "no load failed: %r" % d)
        check(d["errors"] > errors, "disk errors not counted: %r" % d)
        check(not d["failed"], "a read error failed the tier: %r" % d)
        s = info(vm)
        check(s["pages"] == 5000, "pages lost by read errors: %r" % s)

        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-error", value="none")
        for s, (status, data) in st.load(failed).items():
            check(status == S_OK and data == st.held[s],
                  "LOAD %d after x-disk-error=none: status %d, %s"
                  % (s, status, "same" if data == st.held[s] else
                     "different bytes"))
        st.check_all()


def test_tier_cleaner():
    """A full tier refuses stores over the budget; once the guest drops
    three pages of four, the cleaner packs what is left of the segments
    together and stores are taken again; every page loads."""
    with TierVM(backing_size=16 * MiB) as vm:
        st = Store(vm)
        statuses = st.store(range(12000))
        s = info(vm)
        d = s["disk"]
        print("16 MiB tier: %d of 12000 stores refused; %r"
              % (statuses.count(S_REJECTED), d))
        check(set(statuses) == {S_OK, S_REJECTED}, "statuses %r"
              % sorted(set(statuses)))
        check(d["segments"] >= 16 * MiB // d["segment-size"] - 2,
              "tier not full: %r" % d)
        check(s["failed-stores-budget"] == statuses.count(S_REJECTED) and
              s["host-bytes"] <= BUDGET, "stats %r" % s)
        st.invalidate([i for i in sorted(st.held) if i % 4])
        d = disk(vm)
        check(d["fill"] < 0.5, "fill %r after dropping 3 pages of 4" % d)
        statuses = st.store(range(20000, 23000))
        d = disk(vm)
        print("after dropping 3 pages of 4: %d of 3000 stores refused; %r"
              % (statuses.count(S_REJECTED), d))
        check(statuses == [S_OK] * 3000, "%d of 3000 stores refused: %r"
              % (3000 - statuses.count(S_OK), d))
        check(d["cleaned-segments"] > 0 and d["reads"] > 0,
              "nothing cleaned: %r" % d)
        st.check_all()


def test_tier_iothreads():
    """Two queues in two IOThreads store past the budget at the same
    time; the writer thread keeps up with both; every page loads."""
    dev_json = ('{"driver": "virtio-tmem", "id": "tmem0", "addr": "04.0",'
                ' "budget": %d, "backing-file": "@FILE@", "backing-size": %d,'
                ' "room-wait-ms": 30000,'
                ' "num-queues": 2, "iothread-vq-mapping": [{"iothread": "io0"},'
                ' {"iothread": "io1"}]}' % (BUDGET, BACKING))
    with TierVM(dev_json=dev_json,
                extra=("-object", "iothread,id=io0",
                       "-object", "iothread,id=io1")) as vm:
        dev = Device(vm)
        dev.start(1 << F_MQ, nqueues=2, qsize=256)
        stores = [Store(vm, dev, q) for q in dev.queues]
        Store.store_many(stores, range(3000))
        s = info(vm)
        d = s["disk"]
        print("2 x 3000 pages from two IOThreads: %r" % d)
        check(s["pages"] == 6000 and s["host-bytes"] <= BUDGET,
              "stats %r" % s)
        check(d["pages"] > 0 and d["errors"] == 0, "disk %r" % d)
        for st in stores:
            st.check_all()


def test_tier_unplug():
    """Hot-unplug of a device whose tier holds pages removes the file it
    created; a new device on the same name starts empty."""
    with tempfile.TemporaryDirectory(prefix="vtmem-tier-") as tmp:
        backing = os.path.join(tmp, "tier.img")
        with QTestVM(machine="pc") as vm:
            args = {"budget": BUDGET, "backing-file": backing,
                    "backing-size": 64 * MiB, "segment-size": MiB}
            try:
                vm.cmd("device_add", driver="virtio-tmem", id="tmem0",
                       addr="05.0", **args)
            except Exception as e:
                if NO_TIER in str(e):
                    skip(NO_TIER)
                raise
            st = Store(vm, started(Device(vm, slot=5)))
            st.fill_past_budget(0, 4000)
            vm.cmd("device_del", id="tmem0")
            vm.outl(0xAE08, 1 << 5)     # PIIX4 ACPI PCI hot-plug: eject
            check(vm.wait_event("DEVICE_DELETED", 10) is not None,
                  "no DEVICE_DELETED after eject")
            check(vm.cmd("query-tmem") == [], "device still reported")
            # The device created the file: it went with the device.
            check(not os.path.exists(backing), "backing file left behind")
            vm.cmd("device_add", driver="virtio-tmem", id="tmem0",
                   addr="05.0", **args)
            d = disk(vm)
            check(d["size"] == 64 * MiB and d["pages"] == 0 and
                  d["writes"] == 0, "new device: %r" % d)
            st = Store(vm, started(Device(vm, slot=5)))
            st.fill_past_budget(0, 4000)
            st.check_all()


# libtmem's segment layout (host-lib/src/tier_impl_i.h): each page follows a
# header of its key, its handle's type and length, and an XXH3 checksum.
SEG_HDR = struct.Struct("<QIHHQ")       # object, index, pool, info, check


def segment_pages(path, seg_size, pool):
    """(index, offset of its header, length) of the pages written to the
    first segment of the file, in order."""
    with open(path, "rb") as f:
        data = os.pread(f.fileno(), seg_size, 0)
    pages, pos = [], 0
    while pos + SEG_HDR.size <= seg_size:
        obj, index, hpool, info_, _ = SEG_HDR.unpack_from(data, pos)
        length = (info_ >> 2) + 1
        if obj != 1 or hpool != pool or info_ & 3 not in (1, 2) or \
           pos + SEG_HDR.size + length > seg_size:
            break
        pages.append((index, pos, length))
        pos += SEG_HDR.size + length
    return pages


def flip_byte(path, off):
    fd = os.open(path, os.O_RDWR)
    b = os.pread(fd, 1, off)
    os.pwrite(fd, bytes([b[0] ^ 0x40]), off)
    os.fsync(fd)
    os.close(fd)


def test_tier_corrupt():
    """A byte of the backing file changed under the running device (in a
    page's bytes, its key, its checksum): that LOAD answers IOERR, never
    other bytes; every other page loads intact; the page stays stored."""
    with TierVM() as vm:
        st = Store(vm)
        st.fill_past_budget(0, 5000)
        errors = disk(vm)["errors"]
        pages = segment_pages(vm.backing, 256 << 10, st.pool)
        check(len(pages) >= 8, "segment 0 holds %d pages" % len(pages))
        bad = {}
        for n, (index, pos, length) in enumerate(pages[1:7]):
            off = (pos + SEG_HDR.size + length // 2, pos + 8,
                   pos + 16)[n % 3]     # bytes, key (index), checksum
            flip_byte(vm.backing, off)
            bad[index] = off
        answers = st.load(sorted(st.held))
        for s, (status, data) in answers.items():
            if s in bad:
                check(status == S_IOERR, "LOAD %d (byte %d flipped): "
                      "status %d" % (s, bad[s], status))
            else:
                check(status == S_OK and data == st.held[s],
                      "LOAD %d: status %d, %s" % (s, status, "same" if
                      data == st.held[s] else "different bytes"))
        d = disk(vm)
        check(d["errors"] >= errors + len(bad), "disk %r" % d)
        check(not d["failed"], "corruption failed the tier: %r" % d)
        check(info(vm)["pages"] == 5000, "pages lost: %r" % info(vm))
        print("%d corrupted pages of segment 0 answered IOERR, %d others "
              "intact" % (len(bad), len(answers) - len(bad)))


def qmp_latencies(vm, n=40):
    """Seconds per query-status, n times, 10 ms apart."""
    out = []
    for _ in range(n):
        t0 = time.monotonic()
        vm.cmd("query-status")
        out.append(time.monotonic() - t0)
        time.sleep(0.01)
    return sorted(out)


def thread_cpu(vm, name, seconds):
    """The share of one core QEMU's thread @name (-name debug-threads=on)
    uses over @seconds, from its utime + stime."""
    def ticks(stat):
        with open(stat) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    task = "/proc/%d/task" % vm.proc.pid
    stats = []
    for tid in os.listdir(task):
        with open("%s/%s/comm" % (task, tid)) as f:
            if f.read().strip() == name:
                stats.append("%s/%s/stat" % (task, tid))
    check(len(stats) == 1, "QEMU has %d threads named %r"
          % (len(stats), name))
    c0, t0 = ticks(stats[0]), time.monotonic()
    time.sleep(seconds)
    return ((ticks(stats[0]) - c0) / os.sysconf("SC_CLK_TCK")
            / (time.monotonic() - t0))


def test_tier_hang(iothreads=False):
    """x-disk-hang=read+write, as a hung backing device, with both
    queues in the main loop (or each in its IOThread): a LOAD of a page on disk stays pending (its
    queue waits behind it), STOREs over the budget on the other queue
    are answered within the bound (REJECTED once no room comes), QMP
    keeps answering, and (with IOThreads) the waiting queue's IOThread
    does not busy-poll its ring; after x-disk-hang=none the loads complete and every
    page stored OK reads back byte for byte."""
    if not iothreads:
        vm = TierVM(props=",num-queues=2", room_wait_ms=1000)
    else:
        vm = TierVM(dev_json=(
            '{"driver": "virtio-tmem", "id": "tmem0", "addr": "04.0",'
            ' "budget": %d, "backing-file": "@FILE@", "backing-size": %d,'
            ' "num-queues": 2, "iothread-vq-mapping": [{"iothread": "io0"},'
            ' {"iothread": "io1"}]}' % (BUDGET, BACKING)),
            # A polling window longer than the gap between two kicks
            # keeps io0's adaptive polling on (the default 32 us does
            # only when kicks come fast, as in a busy guest).
            extra=("-name", "tmem,debug-threads=on",
                   "-object", "iothread,id=io0,poll-max-ns=100000000",
                   "-object", "iothread,id=io1"))
    with vm:
        dev = Device(vm)
        dev.start(1 << F_MQ, nqueues=2, qsize=256)
        loads, stores = Store(vm, dev, dev.queues[0]), \
            Store(vm, dev, dev.queues[1])
        loads.fill_past_budget(0, 5000)
        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-hang", value="read+write")
        # The coldest pages, first stored, are on disk: queue 0 waits.
        # Behind the loads, a STORE of key 0 and a LOAD of it (DEV-14).
        q0 = dev.queues[0]
        seeds = list(range(BATCH))
        new0 = page_of(424242)
        layout = dev._prepare(q0, [
            [(REQ.pack(OP_LOAD, 0, 0, loads.pool, 1, s, 0), 0),
             (None, PAGE), (None, RESP.size)] for s in seeds] + [
            [(REQ.pack(OP_STORE, 0, 0, loads.pool, 1, 0, 0), 0), (new0, 0),
             (None, RESP.size)],
            [(REQ.pack(OP_LOAD, 0, 0, loads.pool, 1, 0, 0), 0),
             (None, PAGE), (None, RESP.size)]])
        vm.writew(q0.notify, q0.index)
        # Queue 1 stores past the budget while the writer is stuck.
        t0 = time.monotonic()
        statuses = stores.store(range(100000, 100000 + 40 * BATCH))
        store_s = time.monotonic() - t0
        lat = qmp_latencies(vm)
        if iothreads:
            io0 = thread_cpu(vm, "IO io0", 2.0)
        answered = (vm.readw(q0.used + 2) - q0.used_idx) & 0xFFFF
        s = info(vm)
        p99, worst = lat[int(len(lat) * 0.99) - 1], lat[-1]
        print("hung disk: %d of %d loads answered; %d stores in %.2f s, "
              "%d REJECTED; QMP p99 %.1f ms, max %.1f ms; %r"
              % (answered, len(seeds), len(statuses), store_s,
                 statuses.count(S_REJECTED), p99 * 1e3, worst * 1e3,
                 s["disk"]))
        check(answered < len(seeds), "every load answered with reads hung")
        check(set(statuses) <= {S_OK, S_REJECTED}, "store statuses %r"
              % sorted(set(statuses)))
        check(S_REJECTED in statuses, "no store refused with the writer "
              "stuck: %r" % s)
        check(s["host-bytes"] <= BUDGET, "over budget: %r" % s)
        # Liveness, not a benchmark: the target is 50 ms.
        check(worst < 1.0, "QMP took %.0f ms with the disk hung"
              % (worst * 1e3))
        if iothreads:
            # A queue that waits behind a pending request is not polled:
            # io0 would busy-poll its ring, a whole core, for as long as
            # the disk hangs.  Generous: an idle thread uses about 0%.
            print("io0 used %.0f%% of a core over 2 s of the hang"
                  % (io0 * 100))
            check(io0 < 0.5, "io0 used %.0f%% of a core while its queue "
                  "waited for the hung disk" % (io0 * 100))
        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-hang", value="none")
        answers = dev._collect(q0, layout)
        for s_, (used, bufs) in zip(seeds, answers):
            status = RESP.unpack(bufs[1])[0]
            check(used == PAGE + RESP.size and status == S_OK,
                  "LOAD %d after the hang: used %d status %d"
                  % (s_, used, status))
            check(bufs[0] == loads.held[s_], "LOAD %d: different bytes" % s_)
        check(RESP.unpack(answers[-2][1][0])[0] == S_OK, "STORE of key 0")
        check(answers[-1][1][0] == new0, "the LOAD behind the STORE of key "
              "0 did not see it (DEV-14)")
        loads.held[0] = new0
        loads.check_all()
        stores.check_all()
        check(info(vm)["pages"] == len(loads.held) + len(stores.held),
              "pages lost: %r" % info(vm))


def _loads_behind_hung_reads(vm, dev, st):
    """Hang the disk's reads and queue BATCH LOADs of disk pages on queue
    0, each page buffer filled with a marker; return the queue, the first
    LOAD left pending and the marker."""
    vm.cmd("qom-set", path="/machine/peripheral/tmem0",
           property="x-disk-hang", value="read")
    q = dev.queues[0]
    layout = dev._prepare(q, [
        [(REQ.pack(OP_LOAD, 0, 0, st.pool, 1, s, 0), 0), (None, PAGE),
         (None, RESP.size)] for s in range(BATCH)])
    marker = b"\x5a" * PAGE
    for _, bufs in layout:
        vm.write(bufs[0][0], marker)
    vm.writew(q.notify, q.index)
    time.sleep(0.2)
    answered = (vm.readw(q.used + 2) - q.used_idx) & 0xFFFF
    check(answered < BATCH, "every load answered with reads hung")
    return q, layout[answered], marker


def test_tier_hang_reset():
    """A device reset while a LOAD waits for a hung disk drops it: QEMU
    survives, the guest's buffers are not written afterwards, and the
    device works again (nothing pending leaks into the next life)."""
    with TierVM() as vm:
        dev = started(Device(vm))
        st = Store(vm, dev)
        st.fill_past_budget(0, 5000)
        q, pending, marker = _loads_behind_hung_reads(vm, dev, st)
        dev.set_status(0)
        check(dev.status() == 0, "reset not done")
        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-hang", value="none")
        time.sleep(0.2)
        check(vm.read(pending[1][0][0], PAGE) == marker,
              "a dropped LOAD wrote the guest's page after the reset")
        s = info(vm)
        check(s["pages"] == 0 and s["disk"]["pages"] == 0,
              "reset kept pages: %r" % s)
        st = Store(vm, started(dev))
        st.store(range(3000))
        st.check_all()


def test_tier_hang_queue_reset():
    """DEV-4: a reset of one queue (VIRTIO_F_RING_RESET) while a LOAD on
    it waits for a hung disk drops the LOAD: its buffers are not written
    afterwards, the store keeps its pages and the queue works again."""
    with TierVM() as vm:
        dev = Device(vm)
        dev.start(1 << 40, qsize=256)       # 40: VIRTIO_F_RING_RESET
        st = Store(vm, dev)
        st.fill_past_budget(0, 5000)
        q, pending, marker = _loads_behind_hung_reads(vm, dev, st)
        st.q = dev.reset_queue(q)
        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-hang", value="none")
        time.sleep(0.2)
        check(vm.read(pending[1][0][0], PAGE) == marker,
              "a dropped LOAD wrote the guest's page after the queue reset")
        st.check_all()
        st.store(range(5000, 5100))
        st.check_all()


def test_tier_hang_stop_cont():
    """A VM stopped and continued while a LOAD waits for a hung disk
    (ioeventfd stopped and started, in an IOThread): once the disk
    recovers, every LOAD queued behind it is answered with its page."""
    with TierVM(props=",iothread=io0",
                extra=("-object", "iothread,id=io0")) as vm:
        dev = started(Device(vm))
        st = Store(vm, dev)
        st.fill_past_budget(0, 5000)
        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-hang", value="read")
        q = dev.queues[0]
        seeds = list(range(BATCH))
        layout = dev._prepare(q, [
            [(REQ.pack(OP_LOAD, 0, 0, st.pool, 1, s, 0), 0), (None, PAGE),
             (None, RESP.size)] for s in seeds])
        vm.writew(q.notify, q.index)
        time.sleep(0.2)
        answered = (vm.readw(q.used + 2) - q.used_idx) & 0xFFFF
        check(answered < BATCH, "every load answered with reads hung")
        vm.cmd("stop")
        vm.cmd("cont")
        vm.cmd("qom-set", path="/machine/peripheral/tmem0",
               property="x-disk-hang", value="none")
        for s_, (used, bufs) in zip(seeds, dev._collect(q, layout)):
            check(used == PAGE + RESP.size and
                  RESP.unpack(bufs[1])[0] == S_OK,
                  "LOAD %d after stop and cont: used %d" % (s_, used))
            check(bufs[0] == st.held[s_], "LOAD %d: different bytes" % s_)
        st.check_all()


TESTS = {
    "tier-properties": test_tier_properties,
    "tier-realize-errors": test_tier_realize_errors,
    "tier-store-load": test_tier_store_load,
    "tier-write-error": test_tier_write_error,
    "tier-read-error": test_tier_read_error,
    "tier-corrupt": test_tier_corrupt,
    "tier-file-rules": test_tier_file_rules,
    "tier-cleaner": test_tier_cleaner,
    "tier-iothreads": test_tier_iothreads,
    "tier-unplug": test_tier_unplug,
    "tier-hang": test_tier_hang,
    "tier-hang-iothreads": lambda: test_tier_hang(iothreads=True),
    "tier-hang-reset": test_tier_hang_reset,
    "tier-hang-queue-reset": test_tier_hang_queue_reset,
    "tier-hang-stop-cont": test_tier_hang_stop_cont,
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
