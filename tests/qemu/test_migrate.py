#!/usr/bin/python3
"""Live migration of virtio-tmem with no guest: two QEMUs, one driver.

Source and destination are QTestVMs (test_datapath.py: -accel qtest, the
Python virtio driver); the destination is started with the same -device
line (its own budget or backing file) and -incoming, the source migrates
to it over a unix socket, and the driver goes on against the
destination (Device.migrated(): the same RAM, rings and BAR) with its
model of what every key holds: what the last answered operation left.

A qtest "guest" is not stopped with the VM: its writes to guest RAM
would land after the last RAM pass and be lost.  A test that drives the
device while it migrates sets pause-before-switchover: once the source
stops (query-migrate says "pre-switchover") the driver makes no more
writes, then migrate-continue lets the device's final pass and RAM's
run.  No queue runs while the VM is stopped: a batch the source did not
answer by then is answered on the destination, with no new kick (a
request the device had taken goes in its state, SPEC DEV-32).

The device's "migration" property (qom-get .../virtio-backend migration)
gives each side's figures; every test prints them with the timings.

Usage: test_migrate.py TEST     (TEST: one of the names in TESTS, or 'all')

Exit 77 (SKIP) when QEMU is not built, or was built before the device
migrates (no "migration" property); the tier tests also when libtmem has
no disk tier.
"""

import os
import random
import subprocess
import sys
import tempfile
import time

from qmp import QMPError, check, run_tests, skip
from test_datapath import (Device, QTestVM, F_EPHEMERAL, F_MQ, OP_LOAD,
                           OP_NEW_POOL, OP_STORE, OP_INVALIDATE_OBJECT,
                           OP_INVALIDATE_PAGE, OP_DESTROY_POOL, PAGE, REQ,
                           RESP, S_NOT_FOUND, S_OK, S_REJECTED)
from test_elastic import budget_event, set_budget
from test_tier import Store, TierVM, disk
from vtmem import wire
from vtmem.pages import KINDS, mixed_page, page_of, tier_page

MiB = 1 << 20
DEVICE = "virtio-tmem,id=tmem0,addr=04.0"
BACKEND = "/machine/peripheral/tmem0/virtio-backend"
# Chains per kick: Device.start() leaves 64 pages of buffers per queue.
BATCH = 32
# Migration states on the way (query-migrate's "status").
MOVING = ("setup", "active", "device", "pre-switchover", "cancelling",
          "wait-unplug")
HDR = 32                    # TMEM_MIGRATE_HDR_SIZE: each block's header


def info(vm):
    infos = vm.cmd("query-tmem")
    check(len(infos) == 1, "query-tmem: %r" % infos)
    return infos[0]


def migration(vm):
    return vm.cmd("qom-get", path=BACKEND, property="migration")


def require_migration(vm):
    """SKIP on a QEMU whose device has no "migration" property: built
    before the device migrates."""
    try:
        return migration(vm)
    except QMPError as e:
        if "not found" in e.desc:
            skip("this QEMU's virtio-tmem has no 'migration' property (built "
                 "before the device migrates; run scripts/build-qemu.sh)")
        raise


def incoming(*args, at_start=False, tier=False, **tier_args):
    """A destination: a QTestVM (or, tier: a TierVM with **tier_args)
    started with -incoming defer, or with at_start, -incoming unix: on
    the socket it then listens on at once (vm.mig_uri either way); and
    -S, as a management layer does, so that what it holds is read
    before it runs (arrived())."""
    vm = TierVM(**tier_args) if tier else QTestVM(*args)
    vm.mig_uri = "unix:" + os.path.join(vm.dir, "mig.sock")
    vm.args[:0] = ["-S", "-incoming", vm.mig_uri if at_start else "defer"]
    vm.listening = at_start
    return vm


def listen(dst):
    if not dst.listening:
        dst.cmd("migrate-incoming", uri=dst.mig_uri)
        dst.listening = True


def set_params(vm, **params):
    vm.cmd("migrate-set-parameters",
           **{k.replace("_", "-"): v for k, v in params.items()})


def set_caps(vm, **caps):
    vm.cmd("migrate-set-capabilities", capabilities=[
        {"capability": k.replace("_", "-"), "state": v}
        for k, v in caps.items()])


def wait_migration(vm, timeout=120, until=None):
    """Poll query-migrate until the migration is no longer on the way
    (or its status is @until); return query-migrate's answer."""
    deadline = time.monotonic() + timeout
    while True:
        mig = vm.cmd("query-migrate")
        status = mig.get("status")
        if status == until or status not in MOVING:
            return mig
        check(time.monotonic() < deadline, "migration still %s after %d s: "
              "%r; device %r" % (status, timeout, mig, migration(vm)))
        time.sleep(0.05)


def arrived(dst, timeout=60):
    """Wait for the destination to have loaded the stream (paused: -S, or
    a paused source); return its query-tmem from before it runs, then
    let it run."""
    deadline = time.monotonic() + timeout
    while True:
        status = dst.cmd("query-status")["status"]
        if status == "paused" and migration(dst)["state"] == "loaded":
            break
        check(status in ("inmigrate", "prelaunch", "paused") and
              time.monotonic() < deadline,
              "destination %s: %r" % (status, migration(dst)))
        time.sleep(0.05)
    held = info(dst)
    dst.cmd("cont")
    status = dst.cmd("query-status")["status"]
    check(status == "running", "destination %s after cont" % status)
    return held


def completed(src, dst, t0, timeout=120):
    """The end of a migration started at t0: the source's query-migrate
    answer (status completed), with "wall-s" and the destination's
    query-tmem as it came ("held")."""
    mig = wait_migration(src, timeout)
    check(mig["status"] == "completed", "migration %s: %r; device %r; "
          "destination's log: %s" % (mig["status"], mig, migration(src),
                                     dst.log()[-2000:]))
    mig["held"] = arrived(dst)
    mig["wall-s"] = time.monotonic() - t0
    return mig


def migrate(src, dst, timeout=120):
    """Migrate src to dst and wait for both ends; return completed()."""
    listen(dst)
    t0 = time.monotonic()
    src.cmd("migrate", uri=dst.mig_uri)
    return completed(src, dst, t0, timeout)


def report(what, mig, src, dst=None):
    """One line of the migration's figures, for the log."""
    s = migration(src)
    line = ("%s: %.2f s (QEMU total %s ms, downtime %s ms); source %r"
            % (what, mig.get("wall-s", 0), mig.get("total-time"),
               mig.get("downtime"), s))
    if dst is not None:
        line += "; destination %r" % migration(dst)
    print(line)
    return s


def check_figures(src, dst, held):
    """The two sides' "migration" figures agree with each other and with
    the @held pages (the destination's query-tmem after the load)."""
    s, d = migration(src), migration(dst)
    check(s["state"] == "completed" and d["state"] == "loaded",
          "states: source %r, destination %r" % (s, d))
    check(s["passes"] >= 1 and s["blocks"] > 0 and
          s["sent-pages"] >= held["pages"] and
          s["final-bytes"] <= s["sent-bytes"] and
          s["blocks"] * HDR < s["sent-bytes"],
          "source figures %r for %r" % (s, held))
    check(d["blocks"] == s["blocks"] and d["loaded-pages"] == s["sent-pages"]
          and d["loaded-bytes"] == s["sent-bytes"],
          "destination %r, source %r" % (d, s))
    return s, d


def kick(vm, q):
    vm.writew(q.notify, q.index)


class Pool:
    """A pool as the driver sees it: what each key holds, after the last
    operation the device answered."""

    def __init__(self, pool_id, ephemeral=False, q=None):
        self.id, self.ephemeral, self.q = pool_id, ephemeral, q
        self.keys = {}              # (object, index) -> page
        self.touched = set()        # every key an operation named


class Guest:
    """The driver: a Device, its pools, and the operations it makes."""

    def __init__(self, dev):
        self.dev = dev
        self.pools = {}
        self.ops = 0

    def new_pool(self, q, ephemeral=False):
        status, pool_id, _ = self.dev.request(
            q, OP_NEW_POOL, flags=wire.POOL_EPHEMERAL if ephemeral else 0)
        check(status == S_OK, "NEW_POOL: status %d" % status)
        check(pool_id not in self.pools, "NEW_POOL gave %d, which is open"
              % pool_id)
        self.pools[pool_id] = Pool(pool_id, ephemeral, q)
        return self.pools[pool_id]

    @staticmethod
    def chain(op, pool, obj, index, page=None):
        req = (REQ.pack(op, 0, 0, pool.id, obj, index, 0), 0)
        if op == OP_STORE:
            return [req, (page, 0), (None, RESP.size)]
        if op == OP_LOAD:
            return [req, (None, PAGE), (None, RESP.size)]
        return [req, (None, RESP.size)]

    def apply(self, op, pool, obj, index, page, bufs):
        """The answer to one operation, checked against the model and
        applied to it."""
        status = RESP.unpack(bufs[-1])[0]
        key = (obj, index)
        pool.touched.add(key)
        self.ops += 1
        if op == OP_STORE:
            check(status in (S_OK, S_REJECTED), "STORE %r: status %d"
                  % (key, status))
            if status == S_OK:
                pool.keys[key] = page
            else:
                pool.keys.pop(key, None)    # DEV-11: no stale page
        elif op == OP_INVALIDATE_PAGE:
            check(status == S_OK, "INVALIDATE_PAGE %r: %d" % (key, status))
            pool.keys.pop(key, None)
        elif op == OP_INVALIDATE_OBJECT:
            check(status == S_OK, "INVALIDATE_OBJECT %d: %d" % (obj, status))
            for k in [k for k in pool.keys if k[0] == obj]:
                del pool.keys[k]
        elif op == OP_LOAD:
            self.check_load(pool, key, status, bufs[0])
        return status

    @staticmethod
    def check_load(pool, key, status, data):
        want = pool.keys.get(key)
        if want is None:
            check(status == S_NOT_FOUND, "LOAD %d %r of a key not held: "
                  "status %d" % (pool.id, key, status))
        elif pool.ephemeral and status == S_NOT_FOUND:
            pool.keys.pop(key)              # evicted: allowed
        else:
            check(status == S_OK, "LOAD %d %r: status %d" % (pool.id, key,
                                                            status))
            check(data == want, "LOAD %d %r: different bytes" % (pool.id,
                                                                 key))

    def post(self, q, ops):
        """Make the operations available on @q and kick: a batch whose
        answers are collected by reap()."""
        layout = self.dev._prepare(q, [self.chain(*o) for o in ops])
        kick(self.dev.vm, q)
        return q, ops, layout

    def answered(self, batch):
        q, ops, _ = batch
        return (self.dev.vm.readw(q.used + 2) - q.used_idx) & 0xFFFF

    def reap(self, batch):
        """Wait (10 s at most) for a posted batch; apply its answers."""
        q, ops, layout = batch
        return [self.apply(*o, bufs) for o, (_, bufs) in
                zip(ops, self.dev._collect(q, layout))]

    def run(self, q, ops):
        statuses = []
        for i in range(0, len(ops), BATCH):
            statuses += self.reap(self.post(q, ops[i:i + BATCH]))
        return statuses

    def store(self, pool, keys, seed_of):
        return self.run(pool.q, [(OP_STORE, pool, o, i,
                                  mixed_page(seed_of(o, i)))
                                 for o, i in keys])

    def verify(self, pools=None):
        """Load every key an operation named: each holds what the model
        says (an ephemeral one may be gone).  Returns the pages loaded."""
        found = 0
        for pool in pools or self.pools.values():
            keys = sorted(pool.touched)
            self.run(pool.q, [(OP_LOAD, pool, o, i, None) for o, i in keys])
            found += sum(1 for k in keys if k in pool.keys)
        return found

    def held(self, ephemeral=None):
        return sum(len(p.keys) for p in self.pools.values()
                   if ephemeral is None or p.ephemeral == ephemeral)


def held_like(a, b, fields=("pages", "compressed-bytes", "pools",
                            "same-filled-pages", "raw-pages")):
    """What two query-tmem answers must agree on across a migration."""
    diff = {f: (a[f], b[f]) for f in fields if a[f] != b[f]}
    check(not diff, "source and destination differ: %r" % diff)


def mixed_guest(vm, dev, objects=3, per_object=800):
    """A persistent pool of objects x per_object pages of every kind and
    an ephemeral one (if F_EPHEMERAL) of 2 x per_object pages, a destroyed
    pool between them (a gap in the ids); some pages and one object
    invalidated.  Returns the Guest."""
    g = Guest(dev)
    q = dev.queues[0]
    pers = g.new_pool(q)
    gap = g.new_pool(q)
    keys = [(o, i) for o in range(1, objects + 1) for i in range(per_object)]
    statuses = g.store(pers, keys, lambda o, i: o << 20 | i)
    check(statuses == [S_OK] * len(keys), "%d stores refused"
          % (len(keys) - statuses.count(S_OK)))
    if dev.features & 1 << F_EPHEMERAL:
        eph = g.new_pool(q, ephemeral=True)
        g.store(eph, [(o, i) for o in (1, 2) for i in range(per_object)],
                lambda o, i: (6 + o) << 20 | i)
    status, _, _ = dev.request(q, OP_DESTROY_POOL, pool=gap.id)
    check(status == S_OK, "DESTROY_POOL: status %d" % status)
    del g.pools[gap.id]
    # Invalidated: one page in seven of object 1, all of object 2.
    g.run(q, [(OP_INVALIDATE_PAGE, pers, 1, i, None)
              for i in range(0, per_object, 7)])
    g.run(q, [(OP_INVALIDATE_OBJECT, pers, 2, 0, None)])
    return g


def started(vm, features=1 << F_EPHEMERAL, nqueues=1):
    dev = Device(vm)
    dev.features = dev.host_features() & features
    dev.start(dev.features, nqueues=nqueues, qsize=256)
    return dev


def test_migrate_pages():
    """Two pools of every kind of page, some invalidated, migrated from
    an idle source to a destination of another budget: every key holds
    there what it held (NOT_FOUND where invalidated), query-tmem agrees,
    the config space is the one the driver read, pool ids and types are
    kept (a store to each id works, NEW_POOL gets a new id, a budget cut
    evicts ephemeral pages only), the figures are consistent and the
    stream costs about what is stored."""
    src = QTestVM("-device", DEVICE + ",budget=64M")
    with src:
        require_migration(src)
        dev = started(src)
        g = mixed_guest(src, dev)
        g.verify()
        before = info(src)
        config = dev.config()
        # The destination's budget: what the source holds and a little.
        dst = incoming("-device", DEVICE + ",budget=%d"
                       % (before["host-bytes"] + 4 * MiB), at_start=True)
        with dst:
            check(migration(dst)["state"] in ("none", "loading"),
                  "destination %r before the migration" % migration(dst))
            mig = migrate(src, dst)
            s = report("migrate-pages", mig, src, dst)
            after = mig["held"]
            held_like(before, after)
            check(after["host-bytes"] <= after["budget"], "over budget: %r"
                  % after)
            for f in ("succ-stores", "loads", "invalidates", "evictions"):
                check(after[f] == 0, "%s = %d on the destination" %
                      (f, after[f]))
            check(info(src) == before, "the source changed: %r, was %r"
                  % (info(src), before))
            check_figures(src, dst, after)
            check(s["setup-compressed-bytes"] == before["compressed-bytes"],
                  "setup-compressed-bytes %d, held %d" %
                  (s["setup-compressed-bytes"], before["compressed-bytes"]))
            # An idle source, one pass: the pages as stored, their
            # records and the blocks' headers.
            bound = 1.10 * before["compressed-bytes"] + 16 * before["pages"] \
                + 64 * 1024
            print("sent %d bytes for %d compressed bytes (%.3f), %d pages; "
                  "bound %d" % (s["sent-bytes"], before["compressed-bytes"],
                                s["sent-bytes"] / before["compressed-bytes"],
                                before["pages"], bound))
            check(s["sent-bytes"] <= bound, "sent %d bytes, bound %d" %
                  (s["sent-bytes"], bound))
            check(s["drops"] == 0, "drops sent by an idle source: %r" % s)

            dev.migrated(dst)
            # DEV-31: what the driver read stays, capacity_pages too
            # (the destination's budget is another).
            check(dev.config() == config, "config space %r, was %r"
                  % (dev.config(), config))
            check(g.verify() == before["pages"], "pages loaded differ")
            # Every kind came through: the loads above compared bytes.
            check(after["same-filled-pages"] > 0 and after["raw-pages"] > 0,
                  "kinds missing: %r" % after)
            q = dev.queues[0]
            for pool in g.pools.values():
                key = (9, 0)
                statuses = g.store(pool, [key], lambda o, i: 99)
                check(statuses == [S_OK], "STORE to pool %d: %r" %
                      (pool.id, statuses))
            new = g.new_pool(q)
            print("pools %r kept, NEW_POOL gave %d" %
                  (sorted(p.id for p in g.pools.values() if p is not new),
                   new.id))
            check_types(dst, g)


def check_types(vm, g):
    """A budget cut below what is held evicts pages of the ephemeral pool
    and none of a persistent one: the types came through."""
    eph = sum(len(p.keys) for p in g.pools.values() if p.ephemeral)
    if not eph:
        return
    st = info(vm)
    goal = st["host-bytes"] * 3 // 4
    set_budget(vm, goal)
    ev = budget_event(vm)
    st = info(vm)
    check(ev["status"] == "done" and st["evictions"] > 0,
          "budget cut to %d: %r, %r" % (goal, ev, st))
    g.verify()          # every persistent page; the ephemeral ones kept
    left = sum(len(p.keys) for p in g.pools.values() if p.ephemeral)
    check(left < eph, "no ephemeral page evicted: %r" % st)
    print("budget cut to %d: %d evictions, %d of %d ephemeral pages kept, "
          "every persistent page" % (goal, st["evictions"], left, eph))


class Churn:
    """Stores, overwrites, invalidations and loads on the pools, one batch
    per queue at a time, from a seeded generator: keys
    of objects 1..objects (per_object each), and a small object after
    them (16 keys) that INVALIDATE_OBJECT drops now and then."""

    def __init__(self, g, pools, objects, per_object, seed):
        self.g, self.pools = g, pools
        self.objects, self.per_object = objects, per_object
        self.rnd = random.Random(seed)
        self.gen = 0

    def page_seed(self):
        # Mostly text (it is what costs bytes in the stream), random
        # ones too (REJECTED with incompressible=reject).
        self.gen += 1
        kind = self.rnd.choice(("text",) * 5 + ("random", "word32",
                                               "word64", "zero"))
        return self.gen * len(KINDS) + KINDS.index(kind)

    def key(self):
        if self.rnd.random() < 0.1:
            return self.objects + 1, self.rnd.randrange(16)
        return (self.rnd.randrange(1, self.objects + 1),
                self.rnd.randrange(self.per_object))

    def ops(self, pools):
        out = []
        while len(out) < BATCH:
            pool = self.rnd.choice(pools)
            obj, index = self.key()
            r = self.rnd.random()
            if r < 0.6:
                out.append((OP_STORE, pool, obj, index,
                            mixed_page(self.page_seed())))
            elif r < 0.75:
                out.append((OP_INVALIDATE_PAGE, pool, obj, index, None))
            elif r < 0.77:
                out.append((OP_INVALIDATE_OBJECT, pool, self.objects + 1, 0,
                            None))
            else:
                out.append((OP_LOAD, pool, obj, index, None))
        return out

    def post(self):
        """One batch on each queue (the chains of a queue share its
        buffers), over the pools of that queue."""
        queues = {}
        for p in self.pools:
            queues.setdefault(p.q.index, []).append(p)
        return [self.g.post(pools[0].q, self.ops(pools))
                for pools in queues.values()]


def churn_while_migrating(src, dst, churn, slow=None, raise_bw=None,
                          timeout=120):
    """Migrate src to dst with pause-before-switchover while churn posts
    batches on the source and reaps their answers, until the source
    stops.  slow(), between batches while the bandwidth is low: True
    calls raise_bw().  A batch the source left unanswered is answered on
    the destination, with no new kick.  Returns (query-migrate's answer,
    batches made, batches unanswered at the stop, the source's figures
    when its first pass was over)."""
    g = churn.g
    set_caps(src, pause_before_switchover=True)
    listen(dst)
    t0 = time.monotonic()
    src.cmd("migrate", uri=dst.mig_uri)
    batches, left, raised, first = 0, [], slow is None, None
    deadline = time.monotonic() + timeout
    while not left:
        status = src.cmd("query-migrate")["status"]
        if status not in ("setup", "active"):
            break
        fig = migration(src)
        if first is None and fig["passes"] >= 1:
            first = fig
        check(time.monotonic() < deadline, "not converged in %d s: %r" %
              (timeout, fig))
        if not raised and slow():
            raised = True
            raise_bw()
        posted = churn.post()
        batches += 1
        # The answers, unless the source stops first.
        while True:
            waiting = [b for b in posted if g.answered(b) < len(b[1])]
            if not waiting:
                break
            if src.cmd("query-migrate")["status"] not in ("setup", "active"):
                time.sleep(0.5)     # what the stop finished is in the ring
                left = [b for b in posted if g.answered(b) < len(b[1])]
                break
            check(time.monotonic() < deadline, "no answer from the running "
                  "source: %r" % migration(src))
            time.sleep(0.005)
        for b in posted:
            if b not in left:
                g.reap(b)
    # The source is stopped (or the migration failed): no more writes to
    # its RAM from here on.
    mig = wait_migration(src, 30, until="pre-switchover")
    check(mig["status"] == "pre-switchover", "migration %s: %r; device %r"
          % (mig["status"], mig, migration(src)))
    src.cmd("migrate-continue", state="pre-switchover")
    mig = completed(src, dst, t0, timeout)
    g.dev.migrated(dst)
    end = time.monotonic() + 10
    while time.monotonic() < end and \
            any(g.answered(b) < len(b[1]) for b in left):
        time.sleep(0.02)
    check(all(g.answered(b) == len(b[1]) for b in left), "batches left at "
          "the stop, answered on the destination within 10 s: %r of %d"
          % ([g.answered(b) for b in left], BATCH))
    for b in left:
        g.reap(b)
    return mig, batches, len(left), first


def test_migrate_dirty():
    """The driver stores, overwrites, invalidates and loads on the source
    all along a pre-copy slowed by max-bandwidth: the device sends what
    changed again, over several passes; on the destination every key
    holds what the last answered operation left (absent after REJECTED
    or an invalidation)."""
    dev_line = DEVICE + ",budget=64M,incompressible=reject"
    with QTestVM("-device", dev_line) as src:
        require_migration(src)
        dev = started(src)
        g = Guest(dev)
        q = dev.queues[0]
        pools = [g.new_pool(q)]
        if dev.features & 1 << F_EPHEMERAL:
            pools.append(g.new_pool(q, ephemeral=True))
        churn = Churn(g, pools, objects=4, per_object=1024, seed=1)
        for pool in pools:
            keys = [(o, i) for o in range(1, 5) for i in range(1024)]
            g.run(q, [(OP_STORE, pool, o, i, mixed_page(churn.page_seed()))
                      for o, i in keys])
        g.verify()
        before = info(src)
        # About 4 s for the first pass over what is stored.
        bw = max(256 * 1024, before["compressed-bytes"] // 4)
        set_params(src, max_bandwidth=bw)
        with incoming("-device", dev_line) as dst:
            t_raise = []

            def slow():
                return (migration(src)["passes"] >= 2 or
                        time.monotonic() - t0 > 40)

            def raise_bw():
                t_raise.append(time.monotonic() - t0)
                set_params(src, max_bandwidth=1 << 30)

            ops0, t0 = g.ops, time.monotonic()
            mig, batches, late, first = churn_while_migrating(
                src, dst, churn, slow, raise_bw)
            s = report("migrate-dirty", mig, src, dst)
            after = mig["held"]
            print("%d operations in %d batches during the migration, %d "
                  "batches answered on the destination; bandwidth %d B/s, "
                  "raised after %s s; at the first pass's end %r"
                  % (g.ops - ops0, batches, late, bw,
                     ["%.1f" % t for t in t_raise], first))
            held_like(info(src), after)
            check_figures(src, dst, after)
            found = g.verify()
            print("destination: %d keys named, %d held, %r" % (
                sum(len(p.touched) for p in pools), found, info(dst)))
            check(info(dst)["pages"] == g.held(), "destination holds %d "
                  "pages, the model %d" % (info(dst)["pages"], g.held()))
            # The destination goes on taking the same workload.
            for _ in range(20):
                for b in churn.post():
                    g.reap(b)
            g.verify()
            # Pre-copy as it should be: several passes, pages sent after
            # the first one before the stop (the final pass's apart).
            check(s["passes"] >= 2, "%d passes: %r" % (s["passes"], s))
            check(s["sent-pages"] > before["pages"] and s["drops"] > 0,
                  "nothing sent again: %r" % s)
            check(first is not None and s["sent-pages"] > first["sent-pages"]
                  and s["sent-bytes"] - s["final-bytes"] > first["sent-bytes"],
                  "nothing sent after the first pass but in the final one: "
                  "first %r, last %r" % (first, s))


def test_migrate_bandwidth():
    """max-bandwidth holds for the device's pages as for RAM: an idle
    source holding about 4 MB, at 1 MiB/s, takes about 4 s; and QEMU
    switches over only when what is left fits the downtime-limit
    (300 ms) at that rate: the device's stopped pass is no larger."""
    bw = 1 << 20
    with QTestVM("-device", DEVICE + ",budget=64M") as src:
        require_migration(src)
        dev = started(src)
        g = Guest(dev)
        pool = g.new_pool(dev.queues[0])
        g.run(pool.q, [(OP_STORE, pool, 1, i, page_of(i))
                       for i in range(2000)])
        held = info(src)["compressed-bytes"]
        set_params(src, max_bandwidth=bw)
        with incoming("-device", DEVICE + ",budget=64M") as dst:
            mig = migrate(src, dst)
            s = report("migrate-bandwidth", mig, src, dst)
            rate = s["sent-bytes"] / mig["wall-s"]
            print("%d bytes held, %d sent in %.2f s: %.0f B/s for a "
                  "max-bandwidth of %d B/s; %d bytes in the stopped pass"
                  % (held, s["sent-bytes"], mig["wall-s"], rate, bw,
                     s["final-bytes"]))
            check(mig["wall-s"] >= 0.75 * held / bw, "%d bytes sent in %.2f "
                  "s: %.1f times max-bandwidth" % (s["sent-bytes"],
                                                   mig["wall-s"], rate / bw))
            check(s["final-bytes"] <= 2 * bw * 0.3 + 64 * 1024,
                  "%d bytes sent with the VM stopped: %.1f s of downtime at "
                  "max-bandwidth" % (s["final-bytes"], s["final-bytes"] / bw))
            dev.migrated(dst)
            g.verify()


def cancelled(src, dst, before, g, when):
    """After migrate_cancel: the source's status, its device's state, the
    source running with what it held, every page loading; the
    destination never runs with part of the stream."""
    mig = wait_migration(src, 30)
    s = migration(src)
    print("cancelled %s: %r; device %r" % (when, mig, s))
    check(mig["status"] == "cancelled", "status %r" % mig)
    check(s["state"] == "failed", "device state %r" % s)
    status = src.cmd("query-status")
    check(status["running"] and status["status"] == "running",
          "source after the cancel: %r" % status)
    check(info(src) == before, "the source changed: %r, was %r" %
          (info(src), before))
    check(g.verify() == before["pages"], "pages differ on the source")
    try:
        dst.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        check(dst.cmd("query-status")["status"] != "running",
              "destination runs after the cancel")
    return s


def test_migrate_cancel():
    """migrate_cancel half way through the pre-copy, then again with the
    VM stopped for the switchover (pause-before-switchover): each time
    the source reports "cancelled" (its device "failed"), runs again
    and holds everything as before; a third migration succeeds."""
    with QTestVM("-device", DEVICE + ",budget=64M") as src:
        require_migration(src)
        dev = started(src)
        g = mixed_guest(src, dev)
        before = info(src)
        set_params(src, max_bandwidth=max(256 * 1024,
                                          before["compressed-bytes"] // 8))
        with incoming("-device", DEVICE + ",budget=64M") as dst:
            listen(dst)
            src.cmd("migrate", uri=dst.mig_uri)
            deadline = time.monotonic() + 30
            while migration(src)["blocks"] < 1:
                check(src.cmd("query-migrate")["status"] in MOVING and
                      time.monotonic() < deadline, "no block sent: %r, %r"
                      % (src.cmd("query-migrate"), migration(src)))
                time.sleep(0.005)
            mid = migration(src)
            src.cmd("migrate_cancel")
            check(mid["sent-pages"] < before["pages"], "the first pass was "
                  "over before the cancel: %r" % mid)
            cancelled(src, dst, info(src), g, "after %d of %d pages"
                      % (mid["sent-pages"], before["pages"]))
        before = info(src)
        set_caps(src, pause_before_switchover=True)
        set_params(src, max_bandwidth=1 << 30)
        with incoming("-device", DEVICE + ",budget=64M") as dst:
            listen(dst)
            src.cmd("migrate", uri=dst.mig_uri)
            mig = wait_migration(src, 60, until="pre-switchover")
            check(mig["status"] == "pre-switchover", "migration %r" % mig)
            check(not src.cmd("query-status")["running"], "source runs in "
                  "pre-switchover")
            src.cmd("migrate_cancel")
            cancelled(src, dst, before, g, "at the switchover")
        set_caps(src, pause_before_switchover=False)
        before = info(src)
        with incoming("-device", DEVICE + ",budget=64M") as dst:
            mig = migrate(src, dst)
            report("migrate-cancel, third migration", mig, src, dst)
            after = mig["held"]
            held_like(before, after)
            check_figures(src, dst, after)
            dev.migrated(dst)
            check(g.verify() == before["pages"], "pages differ")


def test_migrate_too_small():
    """A destination whose budget cannot hold what the source sends:
    the destination exits non-zero naming virtio-tmem and the budget,
    the source reports "failed", runs, and holds every page."""
    with QTestVM("-device", DEVICE + ",budget=64M") as src:
        require_migration(src)
        dev = started(src)
        g = mixed_guest(src, dev)
        before = info(src)
        dst = incoming("-device", DEVICE + ",budget=1M")
        with dst:
            listen(dst)
            src.cmd("migrate", uri=dst.mig_uri)
            mig = wait_migration(src, 60)
            s = migration(src)
            try:
                rc = dst.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                rc = None
            log = dst.log()
            print("too small: source %r, device %r; destination exit %r: %s"
                  % (mig, s, rc, log.strip()[-600:]))
            check(mig["status"] == "failed", "source status %r" % mig)
            check(s["state"] == "failed", "device state %r" % s)
            check(rc is not None and rc != 0, "destination exit status %r"
                  % rc)
            check(any("virtio-tmem" in ln and "budget" in ln
                      for ln in log.splitlines()),
                  "no budget error in the destination's log: %r" % log)
        status = src.cmd("query-status")
        check(status["running"], "source after the failure: %r" % status)
        check(info(src) == before, "the source changed: %r, was %r" %
              (info(src), before))
        check(g.verify() == before["pages"], "pages differ")


def save(src, path, what):
    t0 = time.monotonic()
    src.cmd("migrate", uri="file:" + path)
    mig = wait_migration(src, 60)
    mig["wall-s"] = time.monotonic() - t0
    check(mig["status"] == "completed", "to file: %r, %r" %
          (mig, migration(src)))
    s = report(what, mig, src)
    print("file of %d bytes" % os.path.getsize(path))
    return s


def restore(path, how, saved, before, g):
    """A new QEMU restores the file (how: "-incoming file:" or
    "migrate-incoming"): what it holds is what the source held, every
    key what the model says."""
    args = ["-S", "-device", DEVICE + ",budget=64M"]
    if how == "migrate-incoming":
        vm = QTestVM("-incoming", "defer", *args)
    else:
        vm = QTestVM("-incoming", "file:" + path, *args)
    with vm:
        t0 = time.monotonic()
        if how == "migrate-incoming":
            vm.cmd("migrate-incoming", uri="file:" + path)
        after = arrived(vm)
        d = migration(vm)
        print("restored with %s in %.2f s: %r" %
              (how, time.monotonic() - t0, d))
        held_like(before, after)
        check(d["loaded-pages"] == saved["sent-pages"] and
              d["loaded-bytes"] == saved["sent-bytes"],
              "loaded %r, saved %r" % (d, saved))
        g.dev.migrated(vm)
        check(g.verify() == before["pages"], "pages differ")
        # It goes on: a store and its invalidation, which leave the
        # model as the file has it.
        pool = g.pools[min(g.pools)]
        check(g.store(pool, [(9, 1)], lambda o, i: 5) == [S_OK],
              "STORE refused")
        g.run(pool.q, [(OP_INVALIDATE_PAGE, pool, 9, 1, None)])


def test_migrate_file():
    """Snapshots: the paused source saved to a file, restored twice (by
    -incoming file: and by -incoming defer with migrate-incoming), the
    source continued with every page; then, changed, saved again while
    it runs and restored."""
    with tempfile.TemporaryDirectory(prefix="vtmem-mig-") as tmp:
        with QTestVM("-device", DEVICE + ",budget=64M") as src:
            require_migration(src)
            dev = started(src)
            g = mixed_guest(src, dev)
            before = info(src)
            src.cmd("stop")
            s = save(src, os.path.join(tmp, "paused"), "migrate-file "
                     "(paused source)")
            check(s["state"] == "completed" and
                  s["sent-pages"] >= before["pages"], "paused source: %r" % s)
            src.cmd("cont")
            check(info(src) == before, "the source changed")
            g.verify()
            for how in ("-incoming file:", "migrate-incoming"):
                restore(os.path.join(tmp, "paused"), how, s, before, g)
            dev.migrated(src)
            pool = g.pools[min(g.pools)]
            g.run(pool.q, [(OP_INVALIDATE_PAGE, pool, 3, i, None)
                           for i in range(0, 800, 2)])
            g.store(pool, [(4, i) for i in range(200)],
                    lambda o, i: o << 20 | i)
            before = info(src)
            s = save(src, os.path.join(tmp, "running"), "migrate-file "
                     "(running source)")
        restore(os.path.join(tmp, "running"), "-incoming file:", s, before, g)


def test_migrate_tier():
    """A source whose disk tier holds part of the pages: to a destination
    with a tier of its own (the same budget: it writes back while it
    loads), then from there to one without a tier and a larger budget;
    every page loads at each end."""
    src = TierVM()
    with src:
        require_migration(src)
        st = Store(src)
        st.fill_past_budget(0, 5000)
        d = disk(src)
        before = info(src)
        print("source: %d pages, %d on disk" % (before["pages"], d["pages"]))
        check(d["pages"] > 0, "nothing on disk: %r" % d)
        with incoming(tier=True) as dst:
            mig = migrate(src, dst)
            report("migrate-tier (tier to tier)", mig, src, dst)
            after = mig["held"]
            held_like(before, after, ("pages", "compressed-bytes", "pools"))
            check_figures(src, dst, after)
            check(after["host-bytes"] <= after["budget"], "over budget: %r"
                  % after)
            print("destination: %d pages on disk" % after["disk"]["pages"])
            st.dev.migrated(dst)
            st.vm = dst
            st.check_all()
            third = incoming("-device", DEVICE + ",budget=64M")
            with third:
                mig = migrate(dst, third)
                report("migrate-tier (tier to memory)", mig, dst, third)
                last = mig["held"]
                held_like(after, last, ("pages", "compressed-bytes", "pools"))
                check_figures(dst, third, last)
                check("disk" not in last, "a disk tier appeared: %r" % last)
                st.dev.migrated(third)
                st.vm = third
                st.check_all()


HANG = {"path": "/machine/peripheral/tmem0", "property": "x-disk-hang"}


class Dirtier:
    """A guest that dirties RAM, megabytes at a time (qtest memset of a
    scratch area past the rings), so that a migration always has RAM
    left to send and does not converge while the driver sets up what it
    tests; RAM keeps to max-bandwidth."""

    SCRATCH, SIZE = 64 << 20, 8 << 20

    def __init__(self, src):
        self.src, self.n = src, 0

    def busy(self, seconds, until=lambda: False):
        """Dirty for @seconds at most, until until() is true."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            mig = self.src.cmd("query-migrate")
            check(mig["status"] in ("setup", "active"), "the VM stopped "
                  "while the driver set up the test: %r, %r"
                  % (mig, migration(self.src)))
            self.n += 1
            self.src.qtest("memset 0x%x 0x%x 0x%x" % (
                self.SCRATCH, self.SIZE, 1 + self.n % 255))
            time.sleep(0.01)


def pending_at_stop(src, dst, g, cold, hot, store_wait=False,
                    release=False, cancel=False):
    """Migrate src to dst with requests pending in the device when the VM
    stops: LOADs of @cold's coldest pages (on disk) behind a hung read,
    then a STORE and a LOAD of one of those keys (DEV-14); with
    store_wait also STOREs of @hot past the budget, the writer hung, one
    of them waiting for room (room-wait-ms 60 s), each batch's LOADs of
    the same keys behind them.  The first pass is over, with every page
    of the disk sent, before anything hangs (the save reads the disk
    too); until the requests wait, the guest dirties RAM (Dirtier) and
    the downtime-limit is 1 ms, so that the migration does not converge;
    the default 300 ms then lets it.  release: the
    hang ends while the VM is stopped (pause-before-switchover), so the
    reads complete then.  On the destination, with no new kick, every
    request is answered exactly once, as the model says; with cancel, the
    migration is cancelled at the switchover instead, and the source
    answers them once its disk is back.  Returns a line for the log."""
    q0, q1 = cold.q, hot.q
    dirt = Dirtier(src)
    set_caps(src, pause_before_switchover=True)
    set_params(src, downtime_limit=1,
               max_bandwidth=max(1 << 20, info(src)["compressed-bytes"] // 4))
    listen(dst)
    t0 = time.monotonic()
    src.cmd("migrate", uri=dst.mig_uri)
    dirt.busy(60, until=lambda: migration(src)["passes"] >= 1)
    first_s = time.monotonic() - t0
    check(migration(src)["passes"] >= 1, "first pass not over in 60 s: %r"
          % migration(src))
    src.cmd("qom-set", value="read+write" if store_wait else "read", **HANG)
    new = page_of(424242)
    loads = g.post(q0, [(OP_LOAD, cold, 1, i, None)
                        for i in range(BATCH - 2)] +
                   [(OP_STORE, cold, 1, 0, new), (OP_LOAD, cold, 1, 0, None)])
    dirt.busy(0.3)
    check(g.answered(loads) < BATCH, "every LOAD answered with the reads "
          "hung")
    posted = [loads]
    if store_wait:
        for n in range(200):
            keys = range(n * 16, (n + 1) * 16)
            b = g.post(q1, [(OP_STORE, hot, 2, i, page_of(1 << 30 | i))
                            for i in keys] +
                       [(OP_LOAD, hot, 2, i, None) for i in keys])
            dirt.busy(0.5, until=lambda: g.answered(b) == BATCH)
            if g.answered(b) < BATCH:
                posted.append(b)
                break
            g.reap(b)
        check(len(posted) == 2, "no STORE waits for room with the writer "
              "hung: %r" % info(src))
    mig = src.cmd("query-migrate")
    check(mig["status"] == "active", "the VM stopped before the requests "
          "waited: %r" % mig)
    set_params(src, downtime_limit=300, max_bandwidth=1 << 30)
    mig = wait_migration(src, 60, until="pre-switchover")
    check(mig["status"] == "pre-switchover", "migration %r, device %r"
          % (mig, migration(src)))
    at_stop = [g.answered(b) for b in posted]
    check(all(n < BATCH for n in at_stop), "answered before the stop: %r"
          % at_stop)
    if release:
        src.cmd("qom-set", value="none", **HANG)
        time.sleep(0.5)
    after_release = [g.answered(b) for b in posted]
    if cancel:
        held = info(src)
        src.cmd("migrate_cancel")
        mig = wait_migration(src, 30)
        check(mig["status"] == "cancelled" and
              src.cmd("query-status")["status"] == "running",
              "after the cancel: %r, %r" % (mig, src.cmd("query-status")))
        check(info(src) == held, "the source changed: %r, was %r"
              % (info(src), held))
        src_fig = migration(src)
        print("pending at the stop, cancelled: %r" % src_fig)
        where = "on the source once its disk is back"
        src.cmd("qom-set", value="none", **HANG)
    else:
        src.cmd("migrate-continue", state="pre-switchover")
        mig = completed(src, dst, t0, 60)
        held_like(info(src), mig["held"])
        src_fig = report("pending at the stop", mig, src, dst)
        g.dev.migrated(dst)
        where = "on the destination, without a new kick"
    end = time.monotonic() + 10
    while any(g.answered(b) < BATCH for b in posted) and \
            time.monotonic() < end:
        time.sleep(0.02)
    time.sleep(0.5)
    got = [g.answered(b) for b in posted]
    check(got == [BATCH] * len(posted), "answers %s, within 10 s: %r of %d "
          "per queue (more: answered twice)" % (where, got, BATCH))
    statuses = [g.reap(b) for b in posted]
    # The source's own copies of the requests: whatever they do there
    # after the migration is not the driver's any more.
    src.cmd("qom-set", value="none", **HANG)
    stores = [st for b, sts in zip(posted, statuses)
              for (op, *_), st in zip(b[1], sts) if op == OP_STORE]
    return ("first pass %.1f s; of %d requests a queue, answered at the "
            "stop %r, after the release %r, %s %r; STOREs %d OK, %d "
            "REJECTED; final pass %.3f ms"
            % (first_s, BATCH, at_stop, after_release, where, got,
               stores.count(S_OK), stores.count(S_REJECTED),
               src_fig["final-ns"] / 1e6))


def pending_vm(dst=False):
    """A tier VM with two queues (for pending_guest()); a source, or
    with dst a destination."""
    args = {"props": ",num-queues=2", "room_wait_ms": 60000}
    return incoming(tier=True, **args) if dst else TierVM(**args)


def pending_guest(src):
    """The Guest of a pending_vm(): a cold pool on queue 0 (5000 pages,
    part of them on disk), a hot one on queue 1."""
    dev = started(src, 1 << F_MQ, nqueues=2)
    g = Guest(dev)
    pools = [g.new_pool(q) for q in dev.queues]
    statuses = g.run(pools[0].q, [(OP_STORE, pools[0], 1, i, tier_page(i))
                                  for i in range(5000)])
    check(statuses == [S_OK] * 5000, "stores refused: %d"
          % (5000 - statuses.count(S_OK)))
    check(disk(src)["pages"] > BATCH, "not on disk: %r" % disk(src))
    return g, pools


def test_migrate_pending():
    """DEV-32: requests the device took and had not answered when the VM
    stopped, LOADs behind a hung disk read and a STORE waiting for room
    behind a hung writer, go with the device: the destination answers
    each of them once, then what its queue had behind them, with no new
    kick; nothing waits at the stop; every page holds what the driver's
    model says."""
    with pending_vm() as src:
        require_migration(src)
        g, pools = pending_guest(src)
        with pending_vm(dst=True) as dst:
            print(pending_at_stop(src, dst, g, *pools, store_wait=True))
            g.verify()
            check(info(dst)["pages"] == g.held(), "pages %r, the model %d"
                  % (info(dst), g.held()))


def test_migrate_pending_release():
    """The disk read a pending LOAD waits for completes while the VM is
    stopped (the hang released during pause-before-switchover): the
    answer reaches the driver once, from one side or the other."""
    with pending_vm() as src:
        require_migration(src)
        g, pools = pending_guest(src)
        with pending_vm(dst=True) as dst:
            print(pending_at_stop(src, dst, g, *pools, release=True))
            g.verify()


def test_migrate_pending_cancel():
    """DEV-32 and DEV-33 when the migration fails: LOADs behind a hung
    read and a STORE waiting for room when the VM stops, the migration
    cancelled at the switchover: the source runs again, holds what it
    held, and answers each request once when its disk is back."""
    with pending_vm() as src:
        require_migration(src)
        g, pools = pending_guest(src)
        with pending_vm(dst=True) as dst:
            print(pending_at_stop(src, dst, g, *pools, store_wait=True,
                                  cancel=True))
            g.verify()
            check(info(src)["pages"] == g.held(), "pages %r, the model %d"
                  % (info(src), g.held()))


def test_migrate_queues():
    """Two queues, each in its IOThread (iothread-vq-mapping), both
    storing and loading while the device migrates; on the destination
    both work on."""
    dev_json = ('{"driver": "virtio-tmem", "id": "tmem0", "addr": "04.0",'
                ' "budget": %d, "num-queues": 2, "iothread-vq-mapping":'
                ' [{"iothread": "io0"}, {"iothread": "io1"}]}' % (64 * MiB))
    objs = ("-object", "iothread,id=io0", "-object", "iothread,id=io1")
    with QTestVM(*objs, "-device", dev_json) as src:
        require_migration(src)
        dev = started(src, 1 << F_MQ, nqueues=2)
        g = Guest(dev)
        pools = [g.new_pool(q) for q in dev.queues]
        churn = Churn(g, pools, objects=2, per_object=512, seed=2)
        for pool in pools:
            g.run(pool.q, [(OP_STORE, pool, o, i,
                            mixed_page(churn.page_seed()))
                           for o in (1, 2) for i in range(512)])
        set_params(src, max_bandwidth=max(256 * 1024,
                                          info(src)["compressed-bytes"] // 3))
        with incoming(*objs, "-device", dev_json) as dst:
            t0 = time.monotonic()
            mig, batches, late, _ = churn_while_migrating(
                src, dst, churn, lambda: time.monotonic() - t0 > 3,
                lambda: set_params(src, max_bandwidth=1 << 30))
            report("migrate-queues", mig, src, dst)
            print("%d batches on each of 2 queues during the migration, %d "
                  "answered on the destination" % (batches, late))
            held_like(info(src), mig["held"])
            check_figures(src, dst, mig["held"])
            g.verify()
            for _ in range(10):
                posted = churn.post()
                for b in posted:
                    g.reap(b)
            more = [g.new_pool(q) for q in dev.queues]
            for pool in more:
                check(g.store(pool, [(1, 0)], lambda o, i: 1) == [S_OK],
                      "STORE on queue %d" % pool.q.index)
            g.verify()


TESTS = {
    "migrate-pages": test_migrate_pages,
    "migrate-dirty": test_migrate_dirty,
    "migrate-bandwidth": test_migrate_bandwidth,
    "migrate-cancel": test_migrate_cancel,
    "migrate-too-small": test_migrate_too_small,
    "migrate-file": test_migrate_file,
    "migrate-tier": test_migrate_tier,
    "migrate-pending": test_migrate_pending,
    "migrate-pending-release": test_migrate_pending_release,
    "migrate-pending-cancel": test_migrate_pending_cancel,
    "migrate-queues": test_migrate_queues,
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
