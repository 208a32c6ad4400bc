"""Live migration of a guest whose swap is in virtio-tmem.

tests/vm/scenarios.py runs this for the scenarios "migrate-live" and
"migrate-fail": one guest (guest half: scn_migrate in guest/scenarios.sh)
whose workload rewrites and verifies its swapped-out pages (vtmem-memtest
--churn) while the host moves the VM from QEMU process to QEMU process.
Each destination is a new QEMU with the same command line (its own QMP
socket, serial console file and disk tier file, the guest's disks
shared) plus -S and -incoming.  The runner follows the guest across them:
every QEMU writes its protocol serial port (ttyS1) to one pipe, which the
runner reads from start to end, and the runner answers on the stdin of
the QEMU that runs the guest; each QEMU's console (ttyS0) is its own file,
watched for oopses in turn.

Steps (a scenario's "plan"), each while the guest's workload runs:

  live      migrate over a unix socket to a new QEMU started with -S: once
            the source says completed, the stopped source and the paused
            destination must hold the same pools, pages, same-filled and
            raw pages and compressed bytes, the destination's operation
            counters must be 0, the device's 'migration' property must
            say completed (source: passes, sent-bytes, final-ns) and
            loaded (destination: the pages and blocks the source sent);
            then cont, the source quits, and the guest's swap must work
            on the new device (its loads or stores counted there).
  file      the same through a snapshot: migrate to file:, the source
            quits, a new QEMU restores it with -incoming file: and -S.
  cancel    a migration (at a low max-bandwidth, so that it is mid-way)
            cancelled once the device has sent some of its stream: status
            cancelled, the device says failed, the source runs on and
            its guest keeps swapping.
  budget    a destination whose budget cannot hold what the device holds:
            the migration fails, the destination exits non-zero with an
            error naming 'virtio-tmem' and 'budget', the source runs on
            (the device says failed) and its guest keeps swapping.

At the end the workload checks every page once more: 0 mismatches, no
error from the driver, the host's pages within the guest's pages_in_host
and no load miss.  Each step's figures (query-migrate's total-time,
downtime and RAM, the device's 'migration' property, query-tmem on both
sides) go to the report.
"""

import json
import os
import subprocess
import time

import vmrun
from vtmem import qemu as vqemu
from vtmem.qmp import QMP, QMPClosed

MiB = 1 << 20
BACKEND = "/machine/peripheral/tmem0/virtio-backend"
# What a migration carries as it is: a stopped source and a paused
# destination hold the same (the swap's pool is persistent: nothing may be
# evicted).  Operation counters restart at 0 on the destination.
CARRIED = ("pools", "pages", "same-filled-pages", "raw-pages",
           "compressed-bytes")
COUNTERS = ("succ-stores", "failed-stores", "loads", "load-misses",
            "invalidates")
# query-tmem members kept in a step's report.
TMEM_KEYS = CARRIED + COUNTERS + ("budget", "host-bytes", "data-bytes")
FINAL = ("completed", "failed", "cancelled")
POLL_S = 0.1


def tmem_brief(q):
    out = {k: q.get(k) for k in TMEM_KEYS}
    out["disk-pages"] = (q.get("disk") or {}).get("pages")
    return out


class Instance:
    """One QEMU process of the VM: the first or a migration's destination."""

    def __init__(self, tmp, n, role):
        self.n = n
        self.role = role
        self.console_path = os.path.join(tmp, "console-%d.log" % n)
        self.qmp_path = os.path.join(tmp, "qmp-%d.sock" % n)
        # The first one's is vmrun's qemu.stderr.
        self.stderr_path = os.path.join(tmp, "qemu.stderr" if n == 0 else
                                        "qemu-%d.stderr" % n)
        self.tier_path = os.path.join(tmp, "tier-%d.img" % n)
        self.proc = None
        self.qmp = None
        self.stderr = ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def read_stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                self.stderr = f.read()
        except OSError:
            pass
        return self.stderr


class MigrateVM(vmrun.VM):
    """vmrun's VM, moved from QEMU to QEMU at its "migrate" checkpoint.

    device: -device properties besides id, budget and the disk tier's
    file (num-queues, backing-size, room-wait-ms...); iothreads: one
    IOThread per queue (iothread-vq-mapping); tier: a disk tier file per
    QEMU; plan: the steps (dicts with "op", see the module's doc) done at
    the checkpoint "migrate", or a dict of such lists by checkpoint name.
    """

    tick_interval = 0.5

    def __init__(self, *a, device=None, iothreads=0, tier=False, plan=(),
                 gap_s=3.0, step_timeout=180, **kw):
        super().__init__(*a, **kw)
        self.device = dict(device or {})
        self.iothreads = iothreads
        self.tier = tier
        self.plans = dict(plan) if isinstance(plan, dict) else \
            {"migrate": list(plan)}
        self.gap_s = gap_s
        self.step_timeout = step_timeout
        self.instances = []
        self.cur = None
        self.steps = []         # one report per step
        self.failures = []      # host-side checks that failed
        self._res = None
        self._rfd = self._wfd = None

    # --- QEMU processes ---------------------------------------------------

    def _argv(self):
        """vmrun's command line with the device as JSON (iothread-vq-
        mapping needs it) and the IOThreads; the device and the paths of
        each QEMU are filled in by _instance_argv()."""
        argv = super()._argv()
        if not self.tmem:
            return argv
        i = [n for n, x in enumerate(argv) if x.startswith("virtio-tmem,")][0]
        argv[i] = None
        objs = []
        for q in range(self.iothreads):
            objs += ["-object", "iothread,id=io%d" % q]
        argv[i - 1:i - 1] = objs
        return argv

    def _device(self, inst, budget):
        from scenarios import size_bytes
        dev = {"driver": "virtio-tmem-pci", "id": "tmem0",
               "budget": size_bytes(budget)}
        for k, v in self.device.items():
            dev[k] = size_bytes(v) if k == "backing-size" else v
        if self.iothreads:
            dev["iothread-vq-mapping"] = [{"iothread": "io%d" % q}
                                          for q in range(self.iothreads)]
        if self.tier:
            dev["backing-file"] = inst.tier_path
        return json.dumps(dev)

    def _instance_argv(self, inst, budget, incoming, paused=True):
        first = self.instances[0]
        argv = []
        for x in self.base_argv:
            if x is None:
                x = self._device(inst, budget)
            else:
                x = x.replace(first.console_path, inst.console_path)
                x = x.replace(first.qmp_path, inst.qmp_path)
            argv.append(x)
        if incoming:
            argv += ["-incoming", incoming] + (["-S"] if paused else [])
        return argv

    def _spawn(self, role, budget=None, incoming=None, paused=True):
        inst = Instance(self.tmp, len(self.instances), role)
        self.instances.append(inst)
        argv = self._instance_argv(inst, budget or self.budget, incoming,
                                   paused)
        if not self.quiet:
            vmrun.log("QEMU %d (%s): %s" % (inst.n, role, " ".join(argv)))
        with open(inst.stderr_path, "wb") as err:
            inst.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=self._wfd, stderr=err,
                start_new_session=True, preexec_fn=vqemu.die_with_parent)
        try:
            inst.qmp = QMP(inst.qmp_path, alive=inst.alive)
        except (QMPClosed, OSError) as e:
            time.sleep(0.2)
            raise vmrun.VMError("QEMU %d: QMP: %s; stderr: %s" % (
                inst.n, e, inst.read_stderr()[-1500:]))
        return inst

    def _switch(self, inst):
        """The guest runs in inst from now on: its console, its stdin."""
        if self.cur is not None and self._res is not None:
            self._watch_console(self._res)     # the rest of the old one
        self.cur = inst
        self.proc, self.qmp = inst.proc, inst.qmp
        self.console_path = inst.console_path
        self._con_pos = 0

    def _start(self):
        # Every QEMU's ttyS1 output goes into this one pipe, in the order
        # the guest wrote it (a source stops before its destination runs).
        self._rfd, self._wfd = os.pipe()
        first = Instance(self.tmp, 0, "source")
        self.console_path = first.console_path
        self.qmp_path = first.qmp_path
        self.base_argv = self._argv()
        self.instances = []
        self._switch(self._spawn("source"))

    def _channel(self):
        return self._rfd

    def _loop(self, res, start):
        self._res = res
        return super()._loop(res, start)

    def _stderr_hint(self):
        if self.cur is None or self.cur.alive():
            return ""
        return "; QEMU %d exited %d: %s" % (
            self.cur.n, self.cur.proc.returncode,
            self.cur.read_stderr()[-1500:].strip())

    def _console_tail(self, n=60):
        text = ""
        for inst in self.instances:
            text += "=== console of QEMU %d (%s) ===\n" % (inst.n, inst.role)
            text += vmrun.file_tail(inst.console_path, 100000)
        return "".join(text.splitlines(True)[-n:])

    def _stop(self):
        for inst in reversed(self.instances):
            vqemu.stop(inst.proc, inst.qmp, quit_timeout=3, group=True)
            if inst.proc is not None:
                try:
                    inst.proc.stdin.close()
                except OSError:
                    pass
            inst.read_stderr()
        for fd in (self._rfd, self._wfd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._rfd = self._wfd = None

    def _teardown(self, res):
        super()._teardown(res)
        res.qemu_stderr = "".join(
            "=== stderr of QEMU %d (%s), exit %s ===\n%s\n" % (
                i.n, i.role, i.proc and i.proc.returncode, i.stderr[-3000:])
            for i in self.instances)

    # --- helpers ----------------------------------------------------------

    def fail(self, step, msg):
        msg = "step %d (%s): %s" % (len(self.steps), step["op"], msg)
        self.failures.append(msg)
        if not self.quiet:
            vmrun.log("FAIL: " + msg)

    def expect(self, step, cond, msg):
        if not cond:
            self.fail(step, msg)
        return cond

    def watch(self):
        self._watch_console(self._res)

    def sleep(self, secs):
        end = time.time() + secs
        while time.time() < end:
            self.watch()
            time.sleep(min(0.25, max(0.0, end - time.time())))

    def tmem_of(self, inst):
        """inst's query-tmem ({} for a VM without the device)."""
        if not self.tmem:
            return {}
        for d in inst.qmp.cmd("query-tmem"):
            if d.get("id") == "tmem0":
                return d
        raise vmrun.VMError("query-tmem of QEMU %d has no tmem0" % inst.n)

    def mig_prop(self, inst):
        """The device's 'migration' property ({} without the device)."""
        if not self.tmem:
            return {}
        return inst.qmp.cmd("qom-get", path=BACKEND, property="migration")

    @staticmethod
    def status(inst):
        return inst.qmp.cmd("query-status")["status"]

    def wait_migration(self, src, poll=None, timeout=None):
        """Poll the source's query-migrate (and the device's 'migration')
        until the migration ends; (query-migrate, the device's property,
        the device's samples).  poll(query-migrate, property) is called
        at each sample."""
        deadline = time.time() + (timeout or self.step_timeout)
        samples = []
        while True:
            self.watch()
            qm = src.qmp.cmd("query-migrate")
            prop = self.mig_prop(src)
            samples.append({"t": time.time(), "status": qm.get("status"),
                            "state": prop.get("state"),
                            "passes": prop.get("passes"),
                            "sent-bytes": prop.get("sent-bytes")})
            if qm.get("status") in FINAL:
                return qm, prop, samples
            if poll:
                poll(qm, prop)
            if time.time() > deadline:
                raise vmrun.VMError("migration from QEMU %d still %s after "
                                    "%d s: %s" % (src.n, qm.get("status"),
                                                  self.step_timeout, qm))
            time.sleep(POLL_S)

    def wait_loaded(self, dst, paused=True, timeout=60):
        """The destination's incoming side: completed, and paused (-S)
        or running."""
        deadline = time.time() + timeout
        want = "paused" if paused else "running"
        while True:
            self.watch()
            if not dst.alive():
                return None, "exited %d" % dst.proc.returncode
            qm = dst.qmp.cmd("query-migrate")
            st = self.status(dst)
            if qm.get("status") == "completed" and st == want:
                return qm, st
            if qm.get("status") == "failed" or time.time() > deadline:
                return qm, st
            time.sleep(POLL_S)

    def wait_exit(self, inst, timeout=30):
        try:
            inst.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return inst.proc.returncode

    @staticmethod
    def mig_figures(qm):
        ram = qm.get("ram") or {}
        return {k: qm.get(k) for k in ("status", "total-time", "downtime",
                                       "setup-time", "expected-downtime",
                                       "error-desc")} | {
            # QEMU 10: the whole stream (the device's part included).
            "ram-transferred": ram.get("transferred"),
            "ram-normal-bytes": ram.get("normal-bytes"),
            "ram-dirty-sync-count": ram.get("dirty-sync-count"),
            "mbps": ram.get("mbps")}

    def check_handover(self, step, src, dst, q_src, paused=True):
        """A stopped source and a paused destination: the same pages.
        A destination already running: only what the devices say."""
        q_dst = self.tmem_of(dst)
        step["dst_tmem"] = tmem_brief(q_dst)
        for k in CARRIED if paused else ():
            self.expect(step, q_dst.get(k) == q_src.get(k),
                        "destination %s %s, the stopped source held %s"
                        % (k, q_dst.get(k), q_src.get(k)))
        for k in COUNTERS if paused else ():
            self.expect(step, q_dst.get(k) == 0,
                        "destination %s %s before it ran (counters restart "
                        "at 0)" % (k, q_dst.get(k)))
        self.expect(step, q_dst.get("pages", 0) > 0,
                    "destination holds no pages")
        self.expect(step, q_dst.get("host-bytes", 0) <= q_dst.get("budget"),
                    "destination host-bytes %s over its budget %s"
                    % (q_dst.get("host-bytes"), q_dst.get("budget")))
        if self.tier and q_dst.get("compressed-bytes", 0) > \
                q_dst.get("budget", 0):
            self.expect(step, (q_dst.get("disk") or {}).get("pages", 0) > 0,
                        "destination holds %s compressed bytes, budget %s, "
                        "and nothing on its disk tier" % (
                            q_dst.get("compressed-bytes"),
                            q_dst.get("budget")))
        # What the device says it sent, and its destination got.
        ps, pd = step["src_migration"], step["dst_migration"]
        self.expect(step, ps.get("state") == "completed",
                    "source device migration state %s" % ps.get("state"))
        self.expect(step, pd.get("state") == "loaded",
                    "destination device migration state %s" % pd.get("state"))
        self.expect(step, ps.get("passes", 0) >= 1,
                    "source device: %s passes" % ps.get("passes"))
        self.expect(step, ps.get("final-ns", 0) > 0,
                    "source device: final-ns %s" % ps.get("final-ns"))
        if paused:
            self.expect(step, ps.get("sent-pages", 0) >= q_dst.get("pages"),
                        "source sent %s pages, the destination holds %s" % (
                            ps.get("sent-pages"), q_dst.get("pages")))
        self.expect(step, ps.get("sent-bytes", 0) >=
                    ps.get("final-bytes", 0) > 0,
                    "source sent-bytes %s, final-bytes %s" % (
                        ps.get("sent-bytes"), ps.get("final-bytes")))
        self.expect(step, pd.get("loaded-pages") == ps.get("sent-pages"),
                    "destination loaded %s pages, source sent %s" % (
                        pd.get("loaded-pages"), ps.get("sent-pages")))
        self.expect(step, pd.get("blocks") == ps.get("blocks"),
                    "destination read %s blocks, source wrote %s" % (
                        pd.get("blocks"), ps.get("blocks")))

    def check_runs_on(self, step, inst, before=None):
        """After a gap the guest swaps through inst's device: its loads or
        stores grew (from 0 on a destination, from before on a source).
        step["idle"]: a guest that holds still, only running."""
        self.sleep(self.gap_s)
        if not self.tmem or step.get("idle"):
            self.expect(step, self.status(inst) == "running",
                        "QEMU %d is %s" % (inst.n, self.status(inst)))
            return
        q = self.tmem_of(inst)
        moved = sum(q.get(k, 0) for k in ("succ-stores", "loads"))
        base = sum(before.get(k, 0) for k in ("succ-stores", "loads")) \
            if before else 0
        step["after_gap"] = tmem_brief(q)
        self.expect(step, self.status(inst) == "running",
                    "QEMU %d is %s" % (inst.n, self.status(inst)))
        self.expect(step, moved > base,
                    "the guest did not swap through QEMU %d's device in %.0f "
                    "s (stores + loads %d, %d before)" % (
                        inst.n, self.gap_s, moved, base))
        self.expect(step, q.get("load-misses") == 0,
                    "QEMU %d: %s load misses" % (inst.n, q.get("load-misses")))

    # --- the steps --------------------------------------------------------

    def step_live(self, step, to_file=False):
        """A migration to a new QEMU; step["paused"] False: the
        destination starts on its own (no -S), as it would in use."""
        paused = step.get("paused", True)
        src = self.cur
        q0 = self.tmem_of(src)
        step["src_before"] = tmem_brief(q0)
        if self.tier and len(self.steps) == 1:
            self.expect(step, (q0.get("disk") or {}).get("pages", 0) > 0,
                        "nothing on the source's disk tier before the first "
                        "migration: %s" % q0.get("disk"))
        if to_file:
            path = os.path.join(self.tmp, "snapshot.mig")
            uri = "file:" + path
        else:
            uri = "unix:" + os.path.join(self.tmp, "mig-%d.sock"
                                         % len(self.instances))
            dst = self._spawn("destination", incoming=uri, paused=paused)
            self._wait_listening(dst, uri)
        t0 = time.time()
        src.qmp.cmd("migrate", uri=uri)
        qm, prop, samples = self.wait_migration(src)
        step["wall_s"] = round(time.time() - t0, 2)
        step["migrate"] = self.mig_figures(qm)
        step["src_migration"] = prop
        step["samples"] = len(samples)
        if not self.expect(step, qm.get("status") == "completed",
                           "migration %s: %s" % (qm.get("status"),
                                                 qm.get("error-desc"))):
            if not to_file:
                vqemu.stop(dst.proc, dst.qmp, quit_timeout=3, group=True)
            return
        self.expect(step, self.status(src) == "postmigrate",
                    "source is %s after the migration" % self.status(src))
        q_src = self.tmem_of(src)
        step["src_after"] = tmem_brief(q_src)
        if to_file:
            step["file_bytes"] = os.path.getsize(path)
            self._quit(src)
            t1 = time.time()
            dst = self._spawn("restore", incoming=uri, paused=paused)
        qd, st = self.wait_loaded(dst, paused)
        if to_file:
            step["restore_s"] = round(time.time() - t1, 2)
        step["dst_status"] = st
        if not (qd and qd.get("status") == "completed" and
                st == ("paused" if paused else "running")):
            raise vmrun.VMError("QEMU %d did not load the VM: %s, %s; "
                                "stderr: %s" % (dst.n, qd, st,
                                                dst.read_stderr()[-1500:]))
        step["dst_migration"] = self.mig_prop(dst)
        if self.tmem:
            self.check_handover(step, src, dst, q_src, paused)
        if paused:
            dst.qmp.cmd("cont")
        self._switch(dst)
        if not to_file:
            self._quit(src)
        self.check_runs_on(step, dst)

    def _wait_listening(self, dst, uri, timeout=30):
        path = uri.split(":", 1)[1]
        deadline = time.time() + timeout
        while not os.path.exists(path):
            if not dst.alive() or time.time() > deadline:
                raise vmrun.VMError("QEMU %d never listened on %s: %s" % (
                    dst.n, uri, dst.read_stderr()[-1500:]))
            time.sleep(0.05)

    def _quit(self, inst):
        vqemu.stop(inst.proc, inst.qmp, quit_timeout=10, wait=30, group=True)
        inst.read_stderr()

    def step_cancel(self, step):
        src = self.cur
        q0 = self.tmem_of(src)
        step["src_before"] = tmem_brief(q0)
        params = src.qmp.cmd("query-migrate-parameters")
        bw = params.get("max-bandwidth")
        slow = step.get("bandwidth", 16 * MiB)
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": slow})
        uri = "unix:" + os.path.join(self.tmp, "mig-%d.sock"
                                     % len(self.instances))
        dst = self._spawn("cancelled destination", incoming=uri)
        self._wait_listening(dst, uri)
        cancelled = {}

        def poll(qm, prop):
            if not cancelled and qm.get("status") == "active" and \
                    prop.get("state") == "active" and \
                    prop.get("sent-bytes", 0) > 0:
                cancelled.update(prop)
                cancelled["t"] = time.time()
                src.qmp.cmd("migrate_cancel")
        t0 = time.time()
        src.qmp.cmd("migrate", uri=uri)
        qm, prop, samples = self.wait_migration(src, poll=poll)
        step["wall_s"] = round(time.time() - t0, 2)
        step["migrate"] = self.mig_figures(qm)
        step["src_migration"] = prop
        step["at_cancel"] = cancelled
        src.qmp.cmd("migrate-set-parameters", **{"max-bandwidth": bw})
        self.expect(step, bool(cancelled),
                    "the migration ended (%s) before the device had sent "
                    "anything to cancel it after" % qm.get("status"))
        self.expect(step, qm.get("status") == "cancelled",
                    "migration %s after migrate_cancel" % qm.get("status"))
        # The device reports a cancelled migration as failed.
        self.expect(step, prop.get("state") == "failed",
                    "source device migration state %s after migrate_cancel"
                    % prop.get("state"))
        self.expect(step, self.status(src) == "running",
                    "source is %s after migrate_cancel" % self.status(src))
        rc = self.wait_exit(dst)
        step["dst_exit"] = rc
        step["dst_stderr"] = dst.read_stderr()[-600:]
        self._quit(dst)
        self.check_runs_on(step, src, before=self.tmem_of(src))

    def step_budget(self, step):
        from scenarios import size_bytes
        src = self.cur
        q0 = self.tmem_of(src)
        step["src_before"] = tmem_brief(q0)
        small = size_bytes(step["budget"])
        self.expect(step, q0["compressed-bytes"] > 2 * small,
                    "the source holds %d compressed bytes: not enough to "
                    "overflow a budget of %d" % (q0["compressed-bytes"],
                                                 small))
        uri = "unix:" + os.path.join(self.tmp, "mig-%d.sock"
                                     % len(self.instances))
        dst = self._spawn("small destination", budget=step["budget"],
                          incoming=uri)
        self._wait_listening(dst, uri)
        t0 = time.time()
        src.qmp.cmd("migrate", uri=uri)
        qm, prop, samples = self.wait_migration(src)
        step["wall_s"] = round(time.time() - t0, 2)
        step["migrate"] = self.mig_figures(qm)
        step["src_migration"] = prop
        rc = self.wait_exit(dst)
        err = dst.read_stderr()
        step["dst_exit"] = rc
        step["dst_stderr"] = err[-1000:]
        self._quit(dst)
        self.expect(step, qm.get("status") == "failed",
                    "migration to a budget of %s: %s" % (step["budget"],
                                                          qm.get("status")))
        self.expect(step, prop.get("state") == "failed",
                    "source device migration state %s" % prop.get("state"))
        self.expect(step, rc not in (None, 0),
                    "the destination's exit status: %s" % rc)
        self.expect(step, any("virtio-tmem" in line and "budget" in line
                              for line in err.splitlines()),
                    "no error naming virtio-tmem and budget on the "
                    "destination's stderr: %r" % err[-600:])
        self.expect(step, self.status(src) == "running",
                    "source is %s after the failed migration"
                    % self.status(src))
        self.check_runs_on(step, src, before=self.tmem_of(src))

    def at_checkpoint(self, cp):
        ops = {"live": self.step_live,
               "file": lambda s: self.step_live(s, to_file=True),
               "cancel": self.step_cancel, "budget": self.step_budget}
        for spec in self.plans.get(cp["name"], ()):
            step = dict(spec)
            step["checkpoint"] = cp["name"]
            step["from"] = self.cur.n
            self.steps.append(step)
            t = time.time()
            if not self.quiet:
                vmrun.log("step %d: %s from QEMU %d" % (
                    len(self.steps), spec["op"], self.cur.n))
            ops[spec["op"]](step)
            step["to"] = self.cur.n
            step["step_s"] = round(time.time() - t, 1)
            st = self.status(self.cur)
            if st != "running":
                # Nothing runs the guest any more: no verdict will come.
                raise vmrun.VMError("after step %d (%s) QEMU %d is %s" % (
                    len(self.steps), spec["op"], self.cur.n, st))
            if not self.quiet:
                vmrun.log("step %d: %s" % (len(self.steps), json.dumps(
                    {k: step.get(k) for k in ("wall_s", "migrate",
                                              "src_migration")})))


def check_migrate(c, res, vm, sc):
    from scenarios import check_workload, guest, host
    data = res.verdict.get("data", {})
    check_workload(c, data)
    w = data.get("workload") or {}
    c.expect(w.get("churn_rounds", 0) >= 1,
             "the workload finished no churn round: %s" % w)
    c.eq(data.get("churning_after_migrations"), True,
         "the workload still churned when the migrations ended")
    c.eq(data.get("driver_errors"), 0, "driver errors and warnings in dmesg")
    c.eq(data.get("num_queues"), sc["device"].get("num-queues", 1),
         "queues the driver uses")
    c.failures.extend(vm.failures)
    c.eq([s["op"] for s in vm.steps], [s["op"] for s in sc["plan"]],
         "steps done")
    c.eq(len(vm.instances), 1 + len(sc["plan"]), "QEMU processes started")
    cp = c.cp("after-workload")
    if cp is None:
        return
    c.eq(cp["boot"], 1, "the guest booted once")
    pre, post = cp["guest"], cp.get("guest_post") or cp["guest"]
    for k in ("load_errors", "write_errors"):
        c.eq(post.get(k) or 0, 0, "after-workload: guest %s" % k)
    c.eq(host(cp, "load-misses"), 0, "after-workload: host load-misses")
    lo = min(pre["pages_in_host"], post["pages_in_host"]) - \
        (post["invalidates"] - pre["invalidates"])
    hi = max(pre["pages_in_host"], post["pages_in_host"]) + \
        (post["succ_stores"] - pre["succ_stores"])
    c.expect(lo <= host(cp, "pages") <= hi,
             "after-workload: host pages %d not within the guest's "
             "pages_in_host [%d, %d]" % (host(cp, "pages"), lo, hi))
    c.expect(guest(cp, "succ_stores") > 0 and guest(cp, "loads") > 0,
             "the guest stored %s and loaded %s pages" % (
                 guest(cp, "succ_stores"), guest(cp, "loads")))


def run(name, series, sc, verbose=True, json_out=None):
    from scenarios import Checker, KERNEL_TIMEOUT, timeout_scale
    try:
        qemu, kernel, image, accel = vmrun.prepare(series, False)
    except vmrun.Unavailable as e:
        print("SKIP %s on %s: %s" % (name, series, e))
        return vmrun.SKIP
    scale = timeout_scale() * KERNEL_TIMEOUT.get(series, 1.0)
    vm = MigrateVM(qemu, kernel, image, sc["guest"], accel=accel,
                   mem_mb=sc["mem"], smp=sc.get("smp", 1),
                   budget=sc["budget"], backing_mb=sc.get("backing_mb", 0),
                   params=sc["params"], quiet=not verbose,
                   timeout=sc.get("timeout", 420) * scale,
                   device=sc["device"], iothreads=sc.get("iothreads", 0),
                   tier=sc.get("tier", False), plan=sc["plan"],
                   gap_s=sc.get("gap_s", 3.0), step_timeout=180 * scale)
    t = time.time()
    try:
        res = vm.run()
    except vmrun.VMError as e:
        print("FAIL %s on %s: %s" % (name, series, e))
        r = getattr(e, "result", None)
        if r is not None:
            print("--- console (tail) ---\n%s" % r.console[-6000:])
            print("--- qemu stderr ---\n%s" % getattr(r, "qemu_stderr", ""))
        print("steps: %s" % json.dumps(vm.steps, indent=1))
        for f in vm.failures:
            print("FAIL: %s" % f)
        return 1
    seconds = time.time() - t
    out = res.as_dict()
    out["steps"] = vm.steps
    if json_out:
        with open(json_out, "w") as f:
            json.dump(out, f, indent=1)
    c = Checker(res)
    v = res.verdict or {}
    if not v.get("ok"):
        c.failures.append("guest verdict not ok: %s" % v.get("failures"))
    for line in res.splats:
        c.failures.append("guest kernel: %s" % line)
    try:
        check_migrate(c, res, vm, sc)
    except (KeyError, TypeError) as e:
        c.failures.append("malformed checkpoint data: %r" % (e,))
    summary = [{k: s.get(k) for k in ("op", "from", "to", "wall_s", "step_s",
                                      "migrate", "src_migration",
                                      "dst_migration", "dst_exit")}
               for s in vm.steps]
    print("%s on %s (%s, %s): %.1f s" % (name, v.get("kernel", series),
                                        res.accel, sc["doc"], seconds))
    print(json.dumps({"steps": summary,
                      "workload": (v.get("data") or {}).get("workload")},
                     indent=1 if verbose else None))
    if verbose:
        print(json.dumps(out, indent=1))
    if c.failures:
        print("--- console (tail) ---\n%s" % res.console[-6000:])
        for f in c.failures:
            print("FAIL: %s" % f)
        return 1
    print("PASS")
    return 0
