"""The host-wide pool with real guests: three TCG VMs share one pool.

tests/vm/scenarios.py runs this for the scenario "host-pool": three QEMU
processes, devices with host-pool=NAME and weights 100/100/200, caps
(budget) above their shares, one pool whose total is far below what the
three guests swap out (random pages: the host holds what the guests
store, 4 KiB each).  Each guest runs the same swap workload (guest half:
scn_pool in guest/scenarios.sh).  The host samples every device's
query-tmem twice a second and checks:

  - the shares: each device's held memory (host-bytes) converges to its
    weighted share of the total (min(cap, L*w)) within +-10%, and stays
    there (the median of the samples after convergence);
  - no device ever holds more than its cap or has a budget above it,
    the grants it sees never sum above the total; and in the ledger's
    own snapshots (vtmem-top --json, every 0.5 s, taken under its lock):
    each member's published held bytes within its grant, the held bytes
    and the grants summed within the total, exactly (the sum of the
    devices' own samples, up to 250 ms apart, is only reported);
  - `vtmem-top --json` lists the three with their weights and shares;
  - SIGKILL of the weight-200 QEMU returns its share: within a few
    seconds the two others' shares grow to half the pool each, and what
    they hold follows;
  - the two survivors' workloads read back every page (0 mismatches).

The figures (convergence time, shares and held bytes) go to the JSON
report (--json) and the output.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import vmrun
from vtmem.tools import find_vtmem_top

MiB = 1 << 20
SAMPLE_S = 0.5
TOLERANCE = 0.10
# Converged: every device within TOLERANCE of its share for this long.
STABLE_S = 5.0
WEIGHTS = (100, 100, 200)


class PoolVM(vmrun.VM):
    """A VM whose device is a member of the pool; samples itself."""

    tick_interval = SAMPLE_S

    def __init__(self, *a, pool=None, weight=100, index=0, **kw):
        super().__init__(*a, **kw)
        self.pool = pool
        self.weight = weight
        self.index = index
        self.samples = []
        self.killed = False

    def _argv(self):
        argv = super()._argv()
        i = [n for n, x in enumerate(argv)
             if x.startswith("virtio-tmem,")][0]
        argv[i] += ",host-pool=%s,weight=%d" % (self.pool["name"],
                                                 self.weight)
        # -name: the ledger's vm field and the member id "vmN/tmem0".
        argv += ["-name", "vm%d" % self.index]
        return argv

    def tick(self, res):
        if self.killed or not self.qmp or res.verdict is not None:
            return
        try:
            q = self.query_tmem()
        except Exception:           # QEMU going away: no sample
            return
        hp = q.get("host-pool") or {}
        self.samples.append({
            "t": time.time(), "held": q["host-bytes"], "budget": q["budget"],
            "pages": q["pages"], "share": hp.get("share"),
            "grant": hp.get("grant"), "granted": hp.get("granted"),
            "total": hp.get("total"), "members": hp.get("members"),
            "cap": hp.get("cap"), "contended": hp.get("contended"),
            "joined": hp.get("joined"), "shrinking": q["shrinking"]})


def rounds(vms, since=0.0):
    """Samples of the VMs grouped by time: one per VM within SAMPLE_S."""
    out = []
    base = vms[0].samples
    for s0 in base:
        if s0["t"] < since:
            continue
        row = [s0]
        for vm in vms[1:]:
            near = [s for s in vm.samples if abs(s["t"] - s0["t"]) <=
                    SAMPLE_S / 2]
            if not near:
                break
            row.append(min(near, key=lambda s: abs(s["t"] - s0["t"])))
        if len(row) == len(vms):
            out.append(row)
    return out


def within(s):
    return s["share"] and abs(s["held"] - s["share"]) <= \
        TOLERANCE * s["share"]


def expected_shares(total, caps, weights):
    """min(cap, L*w) by water-filling (host-lib/README, "Host-wide pool")."""
    left, active = total, list(range(len(weights)))
    share = [0] * len(weights)
    while active:
        w = sum(weights[i] for i in active)
        capped = [i for i in active if caps[i] and
                  caps[i] <= left * weights[i] // w]
        if not capped:
            for i in active:
                share[i] = left * weights[i] // w
            break
        for i in capped:
            share[i] = caps[i]
            left -= caps[i]
            active.remove(i)
    return share


def run(name, series, sc, verbose=True, json_out=None):
    try:
        qemu, kernel, image, accel = vmrun.prepare(series, False)
    except vmrun.Unavailable as e:
        print("SKIP %s on %s: %s" % (name, series, e))
        return vmrun.SKIP
    tool = find_vtmem_top()
    if not tool:
        print("FAIL %s on %s: vtmem-top not found (VTMEM_TOP, build/tools, "
              "PATH): meson compile -C build" % (name, series))
        return 1
    ledger_dir = tempfile.mkdtemp(prefix="vtmem-ledger-")
    old_dir = os.environ.get("VTMEM_LEDGER_DIR")
    os.environ["VTMEM_LEDGER_DIR"] = ledger_dir
    try:
        return _run(name, series, sc, verbose, json_out, qemu, kernel, image,
                    accel, tool, ledger_dir)
    finally:
        if old_dir is None:
            os.environ.pop("VTMEM_LEDGER_DIR", None)
        else:
            os.environ["VTMEM_LEDGER_DIR"] = old_dir
        shutil.rmtree(ledger_dir, ignore_errors=True)


def _run(name, series, sc, verbose, json_out, qemu, kernel, image, accel,
         tool, ledger_dir):
    from scenarios import Checker, check_workload, timeout_scale
    pool = {"name": "ci", "total": sc["pool_total_mb"] * MiB}
    # The pool first: the QEMUs may start in any order.
    out = subprocess.run([tool, "--dir", ledger_dir, "create", pool["name"],
                          "--total", str(pool["total"])],
                         capture_output=True, text=True, timeout=30)
    if out.returncode:
        print("FAIL %s on %s: vtmem-top create: %s" % (name, series,
                                                        out.stderr))
        return 1
    cap = sc["cap_mb"] * MiB
    vms = [PoolVM(qemu, kernel, image, sc["guest"], accel=accel,
                  mem_mb=sc["mem"], budget="%dM" % sc["cap_mb"],
                  backing_mb=sc["backing_mb"], params=sc["params"],
                  timeout=sc.get("timeout", 540) * timeout_scale(),
                  quiet=not verbose, pool=pool, weight=w, index=i)
           for i, w in enumerate(WEIGHTS)]
    results, errors = [None] * 3, [None] * 3

    def runner(i):
        try:
            results[i] = vms[i].run()
        except vmrun.VMError as e:
            errors[i] = e

    t0 = time.time()
    threads = []
    for i, vm in enumerate(vms):
        th = threading.Thread(target=runner, args=(i,), daemon=True)
        th.start()
        threads.append(th)
    share = expected_shares(pool["total"], [cap] * 3, WEIGHTS)
    failures, report = [], {"pool_total": pool["total"], "cap": cap,
                            "weights": WEIGHTS, "expected_shares": share}

    def fail(msg):
        failures.append(msg)

    snaps = {"n": 0, "max_held_sum": 0, "max_granted": 0}

    def ledger_snapshot():
        """One consistent view of the pool (vtmem-top --json, taken under
        the ledger's lock): what each member last published must be
        within its grant, and the sums within the total, exactly."""
        if not tool:
            return None
        out = subprocess.run([tool, "--json", "-d", "0", "--dir",
                              ledger_dir], capture_output=True, text=True,
                             timeout=30)
        try:
            doc = json.loads(out.stdout)
            devs, total = doc["devices"], doc["pools"][0]["total"]
        except (ValueError, KeyError, TypeError, IndexError):
            fail("vtmem-top --json: %r %r" % (out.stdout[-500:],
                                              out.stderr[-500:]))
            return None
        snaps["n"] += 1
        held = sum(d["held"] for d in devs)
        granted = sum(d["grant"] for d in devs)
        snaps["max_held_sum"] = max(snaps["max_held_sum"], held)
        snaps["max_granted"] = max(snaps["max_granted"], granted)
        if held > total or granted > total:
            fail("ledger: held %d, granted %d, total %d: %s"
                 % (held, granted, total, devs))
        for d in devs:
            if d["held"] > d["grant"] or (d["cap"] and d["grant"] > d["cap"]):
                fail("ledger: %s holds %d, grant %d, cap %s"
                     % (d["id"], d["held"], d["grant"], d["cap"]))
        return devs

    # 1. Convergence: all three members, every device within its share.
    deadline = time.time() + sc["converge_s"] * timeout_scale()
    joined_at = converged_at = None
    while time.time() < deadline and not any(errors):
        time.sleep(SAMPLE_S)
        ledger_snapshot()
        last = [vm.samples[-1] if vm.samples else None for vm in vms]
        if joined_at is None and all(s and s["members"] == 3
                                     for s in last):
            joined_at = time.time()
        if joined_at is None:
            continue
        stable = rounds(vms, since=time.time() - STABLE_S)
        if len(stable) >= STABLE_S / SAMPLE_S - 2 and \
                all(all(within(s) for s in row) for row in stable):
            converged_at = stable[0][0]["t"]
            break
    report["joined_s"] = joined_at and round(joined_at - t0, 1)
    if converged_at is None:
        fail("held bytes did not converge to the shares within +-%d%% in "
             "%d s: last %s" % (TOLERANCE * 100, sc["converge_s"],
                                [vm.samples[-1:] for vm in vms]))
    else:
        report["convergence_s"] = round(converged_at - joined_at, 1)
        # Stay there a while: the medians of that stretch.
        time.sleep(sc["hold_s"])
        stretch = rounds(vms, since=converged_at)
        med = []
        for i in range(3):
            held = sorted(row[i]["held"] for row in stretch)
            med.append(held[len(held) // 2])
            s = stretch[-1][i]["share"]
            if abs(med[i] - s) > TOLERANCE * s:
                fail("vm%d (weight %d): median held %d vs share %d"
                     % (i, WEIGHTS[i], med[i], s))
            if abs(s - share[i]) > MiB:
                fail("vm%d: the ledger's share %d, the formula's %d"
                     % (i, s, share[i]))
        report["median_held"] = med
        report["held_fraction"] = [round(m / sum(med), 3) for m in med]
        if tool:
            devs = ledger_snapshot()
            if devs is not None:
                report["vtmem_top"] = devs
                by_vm = {d.get("vm"): d for d in devs}
                for i in range(3):
                    d = by_vm.get("vm%d" % i)
                    if not d or d.get("weight") != WEIGHTS[i] or \
                            abs(d.get("share", 0) - share[i]) > MiB:
                        fail("vtmem-top --json: vm%d is %r" % (i, d))

    # 2. SIGKILL of the weight-200 QEMU: its share goes to the others.
    killed_at = None
    if converged_at is not None and not any(errors):
        victim = vms[2]
        victim.killed = True
        killed_at = time.time()
        os.kill(victim.proc.pid, signal.SIGKILL)
        new_share = pool["total"] // 2
        back_at = grown_at = None
        deadline = killed_at + sc["after_kill_s"]
        while time.time() < deadline and not any(errors[:2]):
            time.sleep(SAMPLE_S)
            ledger_snapshot()
            last = [vm.samples[-1] for vm in vms[:2]]
            if back_at is None and all(s["members"] == 2 and
                                       abs(s["share"] - new_share) <= MiB
                                       for s in last):
                back_at = time.time()
            if back_at and all(s["held"] > share[i] * (1 + TOLERANCE) * 1.2
                               for i, s in enumerate(last)):
                grown_at = time.time()
                break
        report["share_back_s"] = back_at and round(back_at - killed_at, 1)
        report["survivors_grown_s"] = grown_at and \
            round(grown_at - killed_at, 1)
        if back_at is None:
            fail("the killed member's share did not return within %d s: %s"
                 % (sc["after_kill_s"], [vm.samples[-1] for vm in vms[:2]]))
        elif grown_at is None:
            fail("the survivors did not grow past their old shares: %s"
                 % [vm.samples[-1] for vm in vms[:2]])

    for th in threads[:2]:
        th.join()
    threads[2].join(timeout=60)

    # 3. Invariants over every round of samples: of the three, then of
    # the two survivors after the kill.
    worst = 0
    rows = rounds(vms)
    if vms[2].killed:
        rows += rounds(vms[:2], since=killed_at)
    for row in rows:
        total = row[0]["total"] or pool["total"]
        for i, s in enumerate(row):
            if s["held"] > cap or s["budget"] > cap:
                fail("vm%d over its cap: %s" % (i, s))
            if s["grant"] is not None and s["budget"] > max(s["grant"], MiB):
                fail("vm%d: budget above its grant: %s" % (i, s))
            if s["granted"] is not None and s["granted"] > total:
                fail("grants above the total: %s" % s)
        worst = max(worst, sum(s["held"] for s in row) - total)
    # For information: the exact check is the ledger's snapshots above.
    report["worst_sum_over_total"] = worst
    for i in range(2):
        if errors[i]:
            fail("vm%d: %s" % (i, errors[i]))
            continue
        c = Checker(results[i])
        v = results[i].verdict or {}
        if not v.get("ok"):
            c.failures.append("guest verdict not ok: %s" % v.get("failures"))
        check_workload(c, v.get("data", {}))
        for line in results[i].splats:
            c.failures.append("guest kernel: %s" % line)
        failures.extend("vm%d: %s" % (i, f) for f in c.failures)
    report["ledger_snapshots"] = snaps
    report["samples"] = [len(vm.samples) for vm in vms]
    report["rounds_checked"] = len(rows)
    report["seconds"] = round(time.time() - t0, 1)
    print("%s on %s (%s): %s" % (name, series, sc["doc"],
                                 json.dumps(report if verbose else
                                            {k: v for k, v in report.items()
                                             if k != "vtmem_top"})))
    if json_out:
        with open(json_out, "w") as f:
            json.dump(dict(report, series=[[s for s in vm.samples]
                                           for vm in vms]), f, indent=1)
    if failures:
        for i, r in enumerate(results):
            if r is not None and (verbose or failures):
                print("--- vm%d console (tail) ---\n%s" % (i,
                                                         r.console[-3000:]))
        for i, e in enumerate(errors):
            r = getattr(e, "result", None)
            if r is not None:
                print("--- vm%d console (tail) ---\n%s" % (i,
                                                         r.console[-3000:]))
        for f in failures:
            print("FAIL: %s" % f)
        return 1
    print("PASS")
    return 0
