#!/usr/bin/python3
"""virtio-tmem in the built QEMU, driven over QMP with no guest.

Usage: test_device.py TEST     (TEST: one of the names in TESTS, or 'all')

QEMU comes from $QEMU, else from `scripts/build-qemu.sh --print-path`; if it
is not built every test exits 77 (SKIP).  QEMU runs under TCG, paused (-S)
unless a test needs the VM running.
"""

import sys

from qmp import QEMU, QMPError, Failure, check, run_qemu, run_tests

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
    "x-disk-error",
]
BLOCKER = "virtio-tmem: migration of stored pages is not supported yet"
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
        check(status["device-id"] == 56, "device id %r" % status["device-id"])
        check(status["num-vqs"] == 4, "num-vqs %r" % status["num-vqs"])
        feats = " ".join(status["host-features"]["dev-features"])
        check("VIRTIO_TMEM_F_MQ" in feats and "VIRTIO_TMEM_F_EPHEMERAL" in feats,
              "host features %s" % feats)
        status = vm.cmd("x-query-virtio-status",
                        path="/machine/peripheral/tmem0/virtio-backend")
        feats = " ".join(status["host-features"]["dev-features"])
        check("VIRTIO_TMEM_F_MQ" not in feats, "MQ offered with one queue")


BAD_PROPERTIES = [
    ("", "'budget' must be set"),
    ("budget=0", "'budget' must be set"),
    ("budget=garbage", "budget"),
    ("budget=1G,queue-size=3", "'queue-size' must be a power of 2"),
    ("budget=1G,queue-size=2048", "'queue-size' must be a power of 2"),
    ("budget=1G,num-queues=0", "'num-queues' must be between 1 and 16"),
    ("budget=1G,num-queues=17", "'num-queues' must be between 1 and 16"),
    ("budget=1G,max-pools=100000", "'max-pools' must be at most"),
    ("budget=1G,compress-threshold=4097", "'compress-threshold' must be at most"),
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
                              "virtio-tmem-pci," + props)
        check(rc != 0, "QEMU started with %s" % props)
        check(msg in err, "stderr for %s: %r" % (props, err))
    with QEMU("-device", "pcie-root-port,id=rp0,chassis=1",
              "-object", "iothread,id=io0") as vm:
        for props, msg in BAD_PROPERTIES:
            args = {k: qmp_value(v) for k, v in
                    (kv.split("=", 1) for kv in props.split(",") if kv)}
            check_error(lambda: vm.cmd("device_add", driver="virtio-tmem-pci",
                                       bus="rp0", id="bad", **args), msg)
        check_error(lambda: vm.cmd("device_add", driver="virtio-tmem-pci",
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
        vm.cmd("device_add", driver="virtio-tmem-pci", id="hp0", bus="rp0",
               budget=16 * MiB)
        ids = [i.get("id") for i in vm.cmd("query-tmem")]
        check(ids == ["hp0"], "query-tmem after device_add: %r" % ids)
        check_stats(vm.cmd("qom-get", path="/machine/peripheral/hp0",
                           property="stats"), 16 * MiB)
        check_error(lambda: vm.cmd("device_add", driver="virtio-tmem-pci",
                                   id="hp1", bus="pcie.0", budget=MiB),
                    "hotplug")
        # The migration blocker comes and goes with the device.
        check_error(lambda: vm.cmd("migrate", uri="exec:cat >/dev/null"),
                    BLOCKER)
        vm.cmd("device_del", id="hp0")
        if vm.wait_event("DEVICE_DELETED", 5):
            check(vm.cmd("query-tmem") == [], "device listed after deletion")
            print("device_del completed without a guest")
        else:
            ids = [i.get("id") for i in vm.cmd("query-tmem")]
            check(ids == ["hp0"], "pending unplug: %r" % ids)
            print("device_del pending: needs the guest's acknowledgement")
        # A second device on another port, then the same id again is refused.
        vm.cmd("device_add", driver="virtio-tmem-pci", id="hp2", bus="rp1",
               budget=MiB, **{"num-queues": 2})
        check_error(lambda: vm.cmd("device_add", driver="virtio-tmem-pci",
                                   id="hp2", bus="rp1", budget=MiB),
                    "hp2")


def test_migration_blocked():
    """migrate is refused with the blocker's message; the VM keeps
    running and answering; -only-migratable refuses the device."""
    with QEMU("-device", "virtio-tmem-pci,id=tmem0,budget=32M",
              paused=False) as vm:
        check(vm.cmd("query-status")["running"], "VM is not running")
        for uri in ("exec:cat >/dev/null", "file:/dev/null"):
            desc = check_error(lambda: vm.cmd("migrate", uri=uri), BLOCKER)
            check(desc == BLOCKER, "unexpected error %r" % desc)
        status = vm.cmd("query-status")
        check(status["running"] and status["status"] == "running",
              "VM stopped after a refused migration: %r" % status)
        check(vm.cmd("query-migrate").get("status") in (None, "none"),
              "a migration started")
        check(len(vm.cmd("query-tmem")) == 1, "device lost")
        vm.cmd("system_reset")
        check_stats(vm.cmd("query-tmem")[0], 32 * MiB)
    # A VM that must stay migratable refuses the device.
    rc, _, err = run_qemu("-machine", "q35", "-accel", "tcg", "-S",
                          "-nodefaults", "-nographic", "-only-migratable",
                          "-device", "virtio-tmem-pci,budget=1M")
    check(rc != 0 and BLOCKER in err, "-only-migratable: %d %r" % (rc, err))


TESTS = {
    "device-help": test_device_help,
    "query-tmem": test_query_tmem,
    "bad-properties": test_bad_properties,
    "hotplug": test_hotplug,
    "migration-blocked": test_migration_blocked,
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
