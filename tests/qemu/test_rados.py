#!/usr/bin/python3
"""The disk tier of virtio-tmem in a Ceph RADOS pool (rados-pool=), in
the built QEMU, against a throwaway single-node Ceph cluster that each
test starts with scripts/ceph-cluster.sh (one monitor, one OSD, a cephx
user client.vm1 whose caps reach only namespace vm1).

The data path is driven through the qtest driver of test_datapath.py, as
in test_tier.py: pages worth several budgets go to segment objects of
the device's namespace and load back byte for byte; QEMU's exit leaves
no object of it behind; the cluster refuses a namespace the user's caps
do not reach, and a namespace another QEMU holds is refused; an unreachable cluster is a realize error, or with
rados-optional=on a warning and no tier; a stopped OSD makes loads of
pages held there IOERR and stores that need the tier REJECTED, QMP keeps
answering, and once the OSD is back every page stored OK loads and the
tier writes again.

Usage: test_rados.py TEST     (TEST: one of the names in TESTS, or 'all')

Exit 77 (SKIP) when QEMU is not built, when Ceph is not installed, or
when QEMU's libtmem was built without librados.
"""

import os
import subprocess
import sys
import tempfile
import time

from qmp import QEMU, check, run_qemu, run_tests, skip
from test_datapath import OP_LOAD, PAGE, REQ, RESP, S_IOERR, S_OK, \
    S_REJECTED
from test_tier import BATCH, BUDGET, Store, TierVM, check_disk_info, \
    disk, info, qmp_latencies

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CTL = os.path.join(TOP, "scripts", "ceph-cluster.sh")
NO_RADOS = "without the RADOS tier (no librados)"
UUID = "6f1e0c2a-7d3b-4c55-9a8e-0123456789ab"
NS = "vm-%s-tmem0" % UUID           # the default: -uuid and the device id
BACKING = 256 << 20


class Cluster:
    """A single-node Ceph cluster in a temporary directory."""

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="vtmem-ceph-")
        self.dir = os.path.join(self.tmp.name, "cluster")
        self.conf = os.path.join(self.dir, "ceph.conf")
        rc = subprocess.run([CTL, "start", self.dir, "tmem"]).returncode
        if rc == 77:
            self.tmp.cleanup()
            skip("Ceph is not installed (apt-get install ceph-mon ceph-osd)")
        if rc != 0:
            self.__exit__(None)
            raise RuntimeError("the Ceph cluster did not start")
        self.ctl("user", "vm1", "vm1")
        return self

    def __exit__(self, *exc):
        subprocess.run([CTL, "stop", self.dir])
        self.tmp.cleanup()

    def ctl(self, *args):
        subprocess.run([CTL, args[0], self.dir] + list(args[1:]), check=True)

    def objects(self, ns):
        """The names of the objects in namespace @ns of the pool."""
        out = subprocess.run(["rados", "-c", self.conf, "-p", "tmem", "-N",
                              ns, "ls"], check=True, timeout=60,
                             stdout=subprocess.PIPE, text=True).stdout
        return sorted(out.split())

    def props(self, extra=""):
        return ("rados-pool=tmem,rados-conf=%s,backing-size=%d%s"
                % (self.conf, BACKING, extra))


class RadosVM(TierVM):
    """test_tier's TierVM, its tier in the cluster's pool."""

    def __init__(self, cluster, props=""):
        dev = ('{"driver": "virtio-tmem", "id": "tmem0", "addr": "04.0",'
               ' "budget": %d, "rados-pool": "tmem", "rados-conf": "%s",'
               ' "backing-size": %d, "room-wait-ms": 30000%s}'
               % (BUDGET, cluster.conf, BACKING, props))
        super().__init__(dev_json=dev, extra=("-uuid", UUID))

    def __enter__(self):
        try:
            return super().__enter__()
        except RuntimeError as e:
            if NO_RADOS in str(e):
                self.tmp.cleanup()
                skip("QEMU's libtmem has no RADOS tier (built without "
                     "librados-dev)")
            raise


def test_rados_store_load():
    """Pages worth several budgets are all accepted, the coldest become
    segment objects of the device's namespace, every load returns the
    stored bytes; QEMU's exit removes the namespace's objects."""
    with Cluster() as cl:
        with RadosVM(cl) as vm:
            st = Store(vm)
            count = 10000
            statuses = st.store(range(count))
            s = info(vm)
            check(statuses.count(S_OK) == count, "%d of %d stores refused: "
                  "%r" % (count - statuses.count(S_OK), count, s))
            check(s["pages"] == count and s["host-bytes"] <= BUDGET,
                  "stats %r" % s)
            d = s["disk"]
            check_disk_info(d)
            check(d["size"] == BACKING and d["pages"] > 0 and
                  d["writes"] > 0 and d["bytes"] > BUDGET, "disk %r" % d)
            objs = cl.objects(NS)
            segs = [o for o in objs if o.startswith("seg.")]
            check("tmem.owner" in objs, "no owner object in %s: %r"
                  % (NS, objs))
            # Segments still filling or in flight are in buffers only.
            check(0 < len(segs) and len(segs) + 4 >= d["segments"],
                  "%d segment objects, %d segments"
                  % (len(segs), d["segments"]))
            print("stored %d pages: %d on the cluster in %d segments, "
                  "%d objects in namespace %s"
                  % (count, d["pages"], d["segments"], len(objs), NS))
            st.check_all()
            d = disk(vm)
            check(d["reads"] > 0 and d["errors"] == 0, "disk %r" % d)
            print("loaded %d pages: %d reads of %d bytes"
                  % (count, d["reads"], d["read-bytes"]))
        left = cl.objects(NS)
        check(left == [], "QEMU left %d objects in %s: %r"
              % (len(left), NS, left[:5]))


def realize_error(cl, props, *extra):
    """Start QEMU with a RADOS tier device; return its error message."""
    t0 = time.monotonic()
    rc, _, err = run_qemu("-machine", "q35", "-accel", "tcg", "-S",
                          "-nodefaults", "-nographic", *extra, "-device",
                          "virtio-tmem,id=tmem0,budget=16M," + props,
                          timeout=60)
    check(rc != 0, "QEMU started with %s" % props)
    if NO_RADOS in err:
        skip("QEMU's libtmem has no RADOS tier")
    return err, time.monotonic() - t0


def test_rados_realize_errors():
    """What the cluster or libtmem refuses at realize comes back naming
    the property: caps that do not reach the namespace (the cluster's
    refusal), a second QEMU on a namespace in use, no such pool, an unreachable cluster (within the timeout),
    no namespace to default to; and the properties' own rules."""
    with Cluster() as cl:
        keyring = os.path.join(cl.dir, "client.vm1.keyring")
        user = ",rados-user=vm1,rados-keyring=" + keyring
        err, _ = realize_error(cl, cl.props(user + ",rados-namespace=vm2"))
        check("'rados-pool' tmem: the cluster refused to lock namespace "
              "vm2 for client.vm1" in err, "refused namespace: %r" % err)
        # The same user in its own namespace starts; a second QEMU on
        # that namespace is refused while the first holds it.
        vm1 = cl.props(user + ",rados-namespace=vm1")
        with QEMU("-device", "virtio-tmem,id=tmem0,budget=16M," + vm1) as vm:
            check(info(vm)["disk"]["size"] == BACKING, "no tier in vm1")
            err, _ = realize_error(cl, vm1)
            check("namespace vm1 is held by another client" in err and
                  "lock break tmem.owner tmem" in err,
                  "second client: %r" % err)
            check(info(vm)["disk"]["failed"] is False,
                  "the refused QEMU harmed the first: %r" % info(vm))
        check(cl.objects("vm1") == [], "objects left in vm1")

        err, _ = realize_error(cl, cl.props().replace("pool=tmem",
                                                       "pool=nope"),
                               "-uuid", UUID)
        check("'rados-pool' nope: no such pool" in err, "pool: %r" % err)
        err, _ = realize_error(cl, cl.props())
        check("'rados-namespace' is needed, or -uuid or -name" in err,
              "no namespace: %r" % err)
        err, _ = realize_error(cl, "rados-user=vm1")
        check("the rados-* properties need 'rados-pool'" in err,
              "rados-user alone: %r" % err)
        err, _ = realize_error(cl, cl.props(",backing-file=/tmp/x"),
                               "-uuid", UUID)
        check("two disk tiers" in err, "both tiers: %r" % err)
        err, _ = realize_error(cl, "rados-pool=tmem,rados-namespace=x")
        check("'backing-size' must be set with 'rados-pool'" in err,
              "no backing-size: %r" % err)

        dead = os.path.join(cl.dir, "dead.conf")
        with open(dead, "w") as f:
            f.write("[global]\nmon host = v2:127.0.0.1:9\n"
                    "ms bind msgr1 = false\nkeyring = %s/keyring\n" % cl.dir)
        props = cl.props().replace(cl.conf, dead)
        err, secs = realize_error(cl, props, "-name", "deadvm")
        check("cannot connect to the cluster" in err, "dead: %r" % err)
        check(secs < 40, "realize took %.0f s against a dead cluster" % secs)
        # rados-optional=on: a warning, and a device without a tier.
        with QEMU("-name", "deadvm", "-device",
                  "virtio-tmem,id=tmem0,budget=16M,rados-optional=on," +
                  props) as vm:
            s = info(vm)
            check("disk" not in s, "a tier without the cluster: %r" % s)
            check("running without a disk tier (rados-optional=on)"
                  in vm.log(), "no warning: %r" % vm.log())


def test_rados_osd_lost():
    """The OSD stopped while the device holds pages there: a LOAD of one
    answers IOERR once the operation times out, QMP answers meanwhile,
    STOREs that need the tier are REJECTED (never lost), and after the
    OSD is back every page stored OK loads with its bytes, the tier
    writes again and takes stores past the budget."""
    with Cluster() as cl:
        with RadosVM(cl) as vm:
            st = Store(vm)
            nxt = st.fill_past_budget(0, 5000)
            cl.ctl("osd-stop")
            # The first pages stored are the coldest: on the cluster.
            q = st.dev.queues[0]
            layout = st.dev._prepare(q, [
                [(REQ.pack(OP_LOAD, 0, 0, st.pool, 1, 0, 0), 0),
                 (None, PAGE), (None, RESP.size)]])
            t0 = time.monotonic()
            vm.writew(q.notify, q.index)
            lat = qmp_latencies(vm, n=20)
            (used, bufs), = st.dev._collect(q, layout)
            secs = time.monotonic() - t0
            status = RESP.unpack(bufs[1])[0]
            print("OSD stopped: LOAD of a page on the cluster answered %d "
                  "after %.1f s; QMP max %.1f ms meanwhile"
                  % (status, secs, lat[-1] * 1e3))
            check(status == S_IOERR, "LOAD with the OSD gone: status %d"
                  % status)
            check(lat[-1] < 1.0, "QMP took %.0f ms with the OSD gone"
                  % (lat[-1] * 1e3))
            statuses = st.store(range(nxt, nxt + 3000))
            d = disk(vm)
            print("stores with the OSD gone: %d of %d REJECTED; %r"
                  % (statuses.count(S_REJECTED), len(statuses), d))
            check(set(statuses) <= {S_OK, S_REJECTED}, "statuses %r"
                  % sorted(set(statuses)))
            check(S_REJECTED in statuses and d["failed"],
                  "no store refused with the OSD gone: %r" % d)
            check(info(vm)["host-bytes"] <= BUDGET, "over budget")
            cl.ctl("osd-start")
            st.check_all()
            print("OSD back: all %d pages stored OK load" % len(st.held))
            # The stranded segments are written again: the tier works.
            t0 = time.monotonic()
            while disk(vm)["failed"] and time.monotonic() - t0 < 90:
                time.sleep(0.2)
            check(not disk(vm)["failed"], "the tier stayed failed: %r"
                  % disk(vm))
            writes = disk(vm)["writes"]
            statuses = st.store(range(nxt + 3000, nxt + 6000))
            check(set(statuses) == {S_OK}, "stores after the OSD came "
                  "back: %r" % sorted(set(statuses)))
            check(disk(vm)["writes"] > writes, "no write-back after the "
                  "OSD came back: %r" % disk(vm))
            st.check_all()
            print("tier back after %.1f s: 3000 more stores OK, all %d "
                  "pages load" % (time.monotonic() - t0, len(st.held)))


TESTS = {
    "rados-store-load": test_rados_store_load,
    "rados-realize-errors": test_rados_realize_errors,
    "rados-osd-lost": test_rados_osd_lost,
}

if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
