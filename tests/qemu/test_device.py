#!/usr/bin/python3
"""virtio-tmem in the built QEMU, driven over QMP with no guest.

Usage: test_device.py TEST     (TEST: one of the names in TESTS, or 'all')

QEMU comes from $VTMEM_QEMU, else from `scripts/build-qemu.sh --print-path`
(python/vtmem/qemu.py); if it is not built every test exits 77 (SKIP).
QEMU runs under TCG, paused (-S) unless a test needs the VM running.
"""

import os
import sys
import tempfile
import time

from qmp import QEMU, QMPError, Failure, check, run_qemu, run_tests, skip
from vtmem.wire import VIRTIO_ID_TMEM

STAT_FIELDS = [
    "budget", "pools", "pages", "same-filled-pages", "raw-pages",
    "compressed-bytes", "data-bytes", "meta-bytes", "host-bytes",
    "succ-stores", "failed-stores", "failed-stores-budget",
    "failed-stores-incompressible", "failed-stores-other", "loads",
    "load-misses", "invalidates", "evictions",
]
PROPERTIES = [
    "budget", "num-queues", "queue-size", "max-pools", "incompressible",
    "compress-threshold", "ephemeral", "iothread", "backing-file",
    "backing-size", "segment-size", "writeback-high", "writeback-low",
    "x-disk-error", "size", "page-return",
]
MiB = 1 << 20


def check_error(fn, *fragments):
    """fn() must raise QMPError whose description has every fragment."""
    try:
        fn()
    except QMPError as e:
        for frag in fragments:
            check(frag in e.desc, "error %r lacks %r" % (e.desc, frag))
        return e.desc
    raise Failure("expected an error containing %r" % (fragments,))


def check_stats(info, budget):
    for f in STAT_FIELDS:
        check(f in info, "stats lack %r: %r" % (f, info))
        check(isinstance(info[f], int) and info[f] >= 0,
              "%s is not a count: %r" % (f, info[f]))
    check(info["budget"] == budget, "budget %d != %d" % (info["budget"], budget))
    check(info["host-bytes"] <= info["budget"], "host-bytes over budget")
    check("disk" not in info, "disk tier reported without backing-file")
    check(info["failed-stores"] == info["failed-stores-budget"] +
          info["failed-stores-incompressible"] + info["failed-stores-other"],
          "failed-stores is not the sum of its parts")
    # Nothing stored: no guest ever ran.
    for f in ("pools", "pages", "succ-stores", "loads", "host-bytes"):
        check(info[f] == 0, "%s is %d without a guest" % (f, info[f]))


def test_device_help():
    """-device help lists the device; -device virtio-tmem-pci,help its
    properties."""
    rc, out, err = run_qemu("-device", "help")
    check(rc == 0, "-device help failed: %s" % err)
    check('name "virtio-tmem-pci"' in out, "virtio-tmem-pci not listed")
    rc, out, err = run_qemu("-device", "virtio-tmem-pci,help")
    check(rc == 0, "-device virtio-tmem-pci,help failed: %s" % err)
    for prop in PROPERTIES:
        check("\n  %s=" % prop in out, "property %s not listed" % prop)
    check("budget=<size>" in out, "budget is not a size")
    check("backing-size=<size>" in out and "segment-size=<size>" in out,
          "backing-size or segment-size is not a size")


def test_query_tmem():
    """query-tmem and qom-get .../stats report the documented fields."""
    with QEMU() as vm:
        check(vm.cmd("query-tmem") == [], "query-tmem without devices")
    with QEMU("-object", "iothread,id=io0",
              "-device", "virtio-tmem-pci,id=tmem0,budget=2G",
              "-device", "virtio-tmem-pci,id=tmem1,budget=64M,num-queues=4,"
                         "queue-size=128,iothread=io0",
              "-device", "virtio-tmem-pci,budget=1M") as vm:
        infos = vm.cmd("query-tmem")
        check(len(infos) == 3, "%d devices reported" % len(infos))
        paths = [i["qom-path"] for i in infos]
        check(paths == sorted(paths), "not sorted by qom-path: %r" % paths)
        by_path = {i["qom-path"]: i for i in infos}
        budgets = {"/machine/peripheral/tmem0/virtio-backend": 2 << 30,
                   "/machine/peripheral/tmem1/virtio-backend": 64 * MiB}
        for path, budget in budgets.items():
            check(path in by_path, "%s not reported" % path)
            info = by_path[path]
            check(info.get("id") == path.split("/")[3], "id of %s" % path)
            check_stats(info, budget)
        anon = [i for i in infos if "id" not in i]
        check(len(anon) == 1, "the device without id has an id")
        check_stats(anon[0], MiB)

        for path in ("/machine/peripheral/tmem0",
                     "/machine/peripheral/tmem0/virtio-backend"):
            stats = vm.cmd("qom-get", path=path, property="stats")
            check(stats == by_path["/machine/peripheral/tmem0/virtio-backend"],
                  "qom-get %s stats differs from query-tmem" % path)
        check_error(lambda: vm.cmd("qom-set", path="/machine/peripheral/tmem0",
                                   property="stats", value={}),
                    "stats")

        status = vm.cmd("x-query-virtio-status",
                        path="/machine/peripheral/tmem1/virtio-backend")
        check(status["device-id"] == VIRTIO_ID_TMEM,
              "device id %r" % status["device-id"])
        check(status["num-vqs"] == 4, "num-vqs %r" % status["num-vqs"])
        feats = " ".join(status["host-features"]["dev-features"])
        check("VIRTIO_TMEM_F_MQ" in feats and "VIRTIO_TMEM_F_EPHEMERAL" in feats,
              "host features %s" % feats)
        status = vm.cmd("x-query-virtio-status",
                        path="/machine/peripheral/tmem0/virtio-backend")
        feats = " ".join(status["host-features"]["dev-features"])
        check("VIRTIO_TMEM_F_MQ" not in feats, "MQ offered with one queue")


BAD_PROPERTIES = [
    # libtmem's refusals, with the property named for its field.
    ("", "virtio-tmem: 'budget' must be set to more than 0 bytes"),
    ("budget=0", "virtio-tmem: 'budget' must be set to more than 0 bytes"),
    ("budget=garbage", "budget"),
    ("budget=1G,queue-size=3", "'queue-size' must be a power of 2"),
    ("budget=1G,queue-size=2048", "'queue-size' must be a power of 2"),
    ("budget=1G,num-queues=0", "'num-queues' must be between 1 and 16"),
    ("budget=1G,num-queues=17", "'num-queues' must be between 1 and 16"),
    ("budget=1G,max-pools=100000", "'max-pools' must be at most 65535 "
     "(the config space's max_pools has 16 bits), not 100000"),
    ("budget=1G,max-pools=2000", "virtio-tmem: 'max-pools' 2000 is over the "
     "limit of 1024 (0 selects 16)"),
    ("budget=1G,compress-threshold=4097", "virtio-tmem: 'compress-threshold' "
     "4097 is over the page size, 4096 bytes (0 selects 3584)"),
    ("budget=1G,incompressible=maybe", "'incompressible' must be 'raw' or"),
    ("budget=1G,iothread=nosuch", "nosuch"),
    ("budget=1G,iothread=io0,ioeventfd=off", "ioeventfd is required"),
]


def qmp_value(text):
    """device_add over QMP takes JSON types: numbers and sizes as ints."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text in ("on", "off"):
        return text == "on"
    if text.isdigit():
        return int(text)
    if text[:-1].isdigit() and text[-1] in units:
        return int(text[:-1]) * units[text[-1]]
    return text


def test_bad_properties():
    """Invalid properties are refused with a clear error, on the command
    line and by device_add; the VM keeps running."""
    for props, msg in (BAD_PROPERTIES[1], BAD_PROPERTIES[2],
                       BAD_PROPERTIES[3]):
        rc, _, err = run_qemu("-machine", "q35", "-accel", "tcg", "-S",
                              "-nodefaults", "-nographic", "-device",
                              "virtio-tmem," + props)
        check(rc != 0, "QEMU started with %s" % props)
        check(msg in err, "stderr for %s: %r" % (props, err))
    with QEMU("-device", "pcie-root-port,id=rp0,chassis=1",
              "-object", "iothread,id=io0") as vm:
        for props, msg in BAD_PROPERTIES:
            args = {k: qmp_value(v) for k, v in
                    (kv.split("=", 1) for kv in props.split(",") if kv)}
            check_error(lambda: vm.cmd("device_add", driver="virtio-tmem",
                                       bus="rp0", id="bad", **args), msg)
        check_error(lambda: vm.cmd("device_add", driver="virtio-tmem",
                                   bus="rp0", id="bad", budget=MiB,
                                   iothread="io0",
                                   **{"iothread-vq-mapping":
                                      [{"iothread": "io0"}]}),
                    "'iothread' and 'iothread-vq-mapping' cannot be set")
        check(vm.cmd("query-tmem") == [], "a refused device is reported")
        check(vm.cmd("query-status")["status"] == "prelaunch",
              "VM state changed")


def test_hotplug():
    """device_add on a root port works; on q35's root bus it is refused.

    device_del of a PCIe device needs the guest to acknowledge the
    attention button.  Here no guest ever ran, so QEMU either completes
    the unplug at once (slot never powered on by a guest) or leaves it
    pending; both are accepted, but device_del itself must succeed and
    the device must stay consistent (listed while present, absent after
    DEVICE_DELETED)."""
    with QEMU("-device", "pcie-root-port,id=rp0,chassis=1",
              "-device", "pcie-root-port,id=rp1,chassis=2") as vm:
        vm.cmd("device_add", driver="virtio-tmem", id="hp0", bus="rp0",
               budget=16 * MiB)
        ids = [i.get("id") for i in vm.cmd("query-tmem")]
        check(ids == ["hp0"], "query-tmem after device_add: %r" % ids)
        check_stats(vm.cmd("qom-get", path="/machine/peripheral/hp0",
                           property="stats"), 16 * MiB)
        check_error(lambda: vm.cmd("device_add", driver="virtio-tmem",
                                   id="hp1", bus="pcie.0", budget=MiB),
                    "hotplug")
        vm.cmd("device_del", id="hp0")
        if vm.wait_event("DEVICE_DELETED", 5):
            check(vm.cmd("query-tmem") == [], "device listed after deletion")
            print("device_del completed without a guest")
        else:
            ids = [i.get("id") for i in vm.cmd("query-tmem")]
            check(ids == ["hp0"], "pending unplug: %r" % ids)
            print("device_del pending: needs the guest's acknowledgement")
        # A second device on another port, then the same id again is refused.
        vm.cmd("device_add", driver="virtio-tmem", id="hp2", bus="rp1",
               budget=MiB, **{"num-queues": 2})
        check_error(lambda: vm.cmd("device_add", driver="virtio-tmem",
                                   id="hp2", bus="rp1", budget=MiB),
                    "hp2")


def device_del(vm, dev):
    """device_del of a PCIe device no guest acknowledges: done at once,
    or pending (test_hotplug)."""
    vm.cmd("device_del", id=dev)
    if vm.wait_event("DEVICE_DELETED", 5):
        check(dev not in [i.get("id") for i in vm.cmd("query-tmem")],
              "%s listed after deletion" % dev)
        return "done"
    check(dev in [i.get("id") for i in vm.cmd("query-tmem")],
          "pending unplug of %s not listed" % dev)
    return "pending"


def wait_migration(vm, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        mig = vm.cmd("query-migrate")
        if mig.get("status") not in ("setup", "active", "device"):
            return mig
        check(time.monotonic() < deadline, "migration: %r" % mig)
        time.sleep(0.05)


def test_migratable():
    """The device no longer blocks migration: -only-migratable takes it
    (QEMU would refuse to start); a VM with it and one hot-plugged
    migrates to a file, keeps answering; a new QEMU restores both, where
    unplug and plug work as before; a device added after the restore
    migrates again."""
    ports = ("-device", "pcie-root-port,id=rp0,chassis=1",
             "-device", "pcie-root-port,id=rp1,chassis=2")
    with tempfile.TemporaryDirectory(prefix="vtmem-mig-") as tmp:
        path = os.path.join(tmp, "state")
        with QEMU(*ports, "-only-migratable",
                  "-device", "virtio-tmem,id=tmem0,budget=32M",
                  paused=False) as vm:
            try:
                state = vm.cmd("qom-get", path="/machine/peripheral/tmem0/"
                               "virtio-backend", property="migration")
            except QMPError as e:
                skip("this QEMU's virtio-tmem has no 'migration' property "
                     "(built before the device migrates; run "
                     "scripts/build-qemu.sh): %s" % e.desc)
            check(state["state"] == "none", "migration state %r" % state)
            caps = {c["capability"]: c["state"]
                    for c in vm.cmd("query-migrate-capabilities")}
            check(caps and not any(caps.values()), "capabilities %r" % caps)
            vm.cmd("device_add", driver="virtio-tmem", id="hp0", bus="rp0",
                   budget=16 * MiB)
            vm.cmd("migrate", uri="file:" + path)
            mig = wait_migration(vm)
            check(mig["status"] == "completed" and os.path.getsize(path) > 0,
                  "migration to a file: %r" % mig)
            for dev in ("tmem0", "hp0"):
                state = vm.cmd("qom-get", path="/machine/peripheral/%s/"
                               "virtio-backend" % dev, property="migration")
                check(state["state"] == "completed", "%s: %r" % (dev, state))
            check(vm.cmd("query-status")["status"] == "postmigrate",
                  "source after the migration: %r" % vm.cmd("query-status"))
            check(len(vm.cmd("query-tmem")) == 2, "devices lost")
            print("migrated to a file of %d bytes in %s ms"
                  % (os.path.getsize(path), mig.get("total-time")))
        with QEMU(*ports, "-device", "virtio-tmem,id=tmem0,budget=32M",
                  "-device", "virtio-tmem,id=hp0,bus=rp0,budget=16M",
                  "-incoming", "file:" + path) as vm:
            deadline = time.monotonic() + 30
            while vm.cmd("query-status")["status"] == "inmigrate":
                check(time.monotonic() < deadline, "not restored")
                time.sleep(0.05)
            check(vm.cmd("query-status")["status"] == "paused",
                  "restored: %r" % vm.cmd("query-status"))
            infos = {i.get("id"): i for i in vm.cmd("query-tmem")}
            check(sorted(infos) == ["hp0", "tmem0"], "restored %r"
                  % sorted(infos))
            check_stats(infos["tmem0"], 32 * MiB)
            check_stats(infos["hp0"], 16 * MiB)
            vm.cmd("cont")
            print("device_del after the restore: %s" % device_del(vm, "hp0"))
            vm.cmd("device_add", driver="virtio-tmem", id="hp1", bus="rp1",
                   budget=MiB)
            check("hp1" in [i.get("id") for i in vm.cmd("query-tmem")],
                  "hp1 not listed")
            vm.cmd("migrate", uri="file:" + path + ".2")
            mig = wait_migration(vm)
            check(mig["status"] == "completed", "second migration: %r" % mig)


VIRTIO_PCI_VENDOR = 0x1af4
VIRTIO_PCI_DEVICE_MODERN = 0x1040 + VIRTIO_ID_TMEM   # 0x1040 + device ID
VIRTIO_MMIO_MAGIC = 0x74726976           # "virt"
MICROVM_VIRTIO_MMIO_BASE = 0xfeb00000    # include/hw/i386/microvm.h
MICROVM_VIRTIO_MMIO_SLOTS = 24           # at most, with the second IOAPIC


def test_short_name():
    """-device virtio-tmem is virtio-tmem-pci on x86 (QEMU's qdev alias
    table, as for virtio-rng): on the command line, in JSON -device and in
    device_add; -device help names the alias."""
    rc, out, err = run_qemu("-device", "help")
    check(rc == 0, "-device help failed: %s" % err)
    line = [ln for ln in out.splitlines()
            if ln.startswith('name "virtio-tmem-pci"')]
    check(line and 'alias "virtio-tmem"' in line[0],
          "-device help: %r" % line)
    rc, out, err = run_qemu("-device", "virtio-tmem,help")
    check(rc == 0, "-device virtio-tmem,help failed: %s" % err)
    for prop in PROPERTIES:
        check("\n  %s=" % prop in out, "property %s not listed" % prop)
    with QEMU("-device", "pcie-root-port,id=rp0,chassis=1",
              "-device", "virtio-tmem,id=tmem0,budget=16M",
              "-device", '{"driver": "virtio-tmem", "id": "tmem1",'
                         ' "budget": 33554432}') as vm:
        vm.cmd("device_add", driver="virtio-tmem", id="hp0", bus="rp0",
               budget=MiB)
        for dev in ("tmem0", "tmem1", "hp0"):
            path = "/machine/peripheral/" + dev
            typ = vm.cmd("qom-get", path=path, property="type")
            check(typ == "virtio-tmem-pci", "%s is a %s" % (dev, typ))
            status = vm.cmd("x-query-virtio-status",
                            path=path + "/virtio-backend")
            check(status["device-id"] == VIRTIO_ID_TMEM,
                  "%s: device id %r" % (dev, status["device-id"]))
        infos = {i.get("id"): i for i in vm.cmd("query-tmem")}
        check(sorted(infos) == ["hp0", "tmem0", "tmem1"],
              "query-tmem reports %r" % sorted(infos))
        for dev, budget in (("tmem0", 16 * MiB), ("tmem1", 32 * MiB),
                            ("hp0", MiB)):
            check_stats(infos[dev], budget)
        # Behind the root port no guest numbered the bus: pcie.0 only.
        pci = {d.get("qdev_id"): d
               for bus in vm.cmd("query-pci") for d in bus["devices"]}
        for dev in ("tmem0", "tmem1"):
            check(dev in pci, "%s is not a PCI function" % dev)
            ids = pci[dev]["id"]
            check((ids["vendor"], ids["device"]) ==
                  (VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE_MODERN),
                  "%s: PCI id %04x:%04x" % (dev, ids["vendor"], ids["device"]))


def test_microvm_mmio():
    """virtio-tmem-device on microvm's virtio-mmio: a modern transport
    whose registers give device ID 56 and VIRTIO_F_VERSION_1; on a legacy
    virtio-mmio transport (the default) realize fails with the fix."""
    from test_datapath import QTestVM

    rc, out, err = run_qemu("-machine", "help")
    if rc == 0 and not any(ln.split()[:1] == ["microvm"]
                           for ln in out.splitlines()):
        skip("this QEMU has no microvm machine (built before CONFIG_MICROVM "
             "was in qemu-device/configs/; run scripts/build-qemu.sh)")
    check(rc == 0, "-machine help failed: %s" % err)
    legacy = QEMU("-device", "virtio-tmem-device,budget=16M")
    legacy.BASE = ["-machine", "microvm"] + legacy.BASE[2:]
    try:
        with legacy:
            raise Failure("realized on a legacy virtio-mmio transport")
    except (RuntimeError, OSError):  # QEMU exited as QMP came up
        legacy.proc.wait(timeout=10)
        check(legacy.proc.returncode != 0 and
              "force-legacy=off" in legacy.log(),
              "legacy transport: %d %r" % (legacy.proc.returncode,
                                           legacy.log()))
    finally:
        legacy.close()

    with QTestVM("-global", "virtio-mmio.force-legacy=off",
                 "-device", "virtio-tmem-device,id=tmem0,budget=16M",
                 machine="microvm") as vm:
        typ = vm.cmd("qom-get", path="/machine/peripheral/tmem0",
                     property="type")
        check(typ == "virtio-tmem-device", "tmem0 is a %s" % typ)
        infos = vm.cmd("query-tmem")
        check(len(infos) == 1 and infos[0].get("id") == "tmem0" and
              infos[0]["qom-path"] == "/machine/peripheral/tmem0",
              "query-tmem: %r" % infos)
        check_stats(infos[0], 16 * MiB)
        found = []
        for slot in range(MICROVM_VIRTIO_MMIO_SLOTS):
            base = MICROVM_VIRTIO_MMIO_BASE + slot * 512
            if vm.readl(base) != VIRTIO_MMIO_MAGIC:
                continue
            if vm.readl(base + 0x08) != 0:      # DeviceID; 0: empty slot
                found.append(base)
        check(len(found) == 1, "virtio-mmio slots with a device: %r" % found)
        base = found[0]
        check(vm.readl(base + 0x04) == 2, "virtio-mmio version %d, not 2" %
              vm.readl(base + 0x04))
        check(vm.readl(base + 0x08) == VIRTIO_ID_TMEM,
              "DeviceID %d" % vm.readl(base + 0x08))
        vm.writel(base + 0x14, 0)               # DeviceFeaturesSel
        low = vm.readl(base + 0x10)
        vm.writel(base + 0x14, 1)
        high = vm.readl(base + 0x10)
        check(low & (1 << 1), "VIRTIO_TMEM_F_EPHEMERAL not offered: %#x" % low)
        check(high & 1, "VIRTIO_F_VERSION_1 not offered: %#x" % high)


TESTS = {
    "device-help": test_device_help,
    "short-name": test_short_name,
    "microvm-mmio": test_microvm_mmio,
    "query-tmem": test_query_tmem,
    "bad-properties": test_bad_properties,
    "hotplug": test_hotplug,
    "migratable": test_migratable,
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
