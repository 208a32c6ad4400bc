#!/usr/bin/python3
"""Boot a guest under the project's QEMU with virtio-tmem and run one scenario.

The guest is Debian's kernel (scripts/guest-kernels.sh) with a busybox
initramfs (scripts/vm/initramfs.py) holding virtio_tmem.ko
(scripts/build-guest-module.sh) and the test programs of tests/vm/guest/.
The guest's /init runs the scenario named on the kernel command line and
talks to this runner over a second serial port: at every checkpoint the
runner reads query-tmem over QMP, so each checkpoint pairs the guest's
sysfs counters with the host's view at the same quiet moment.

QEMU is always torn down: on a verdict, a timeout, a crash, ^C or an
exception; its temporary directory goes with it.

Exit status of the command line: 0 when the guest's verdict is ok, 1 when
not, 77 when QEMU, the kernel or the module is not available (a skip), 2
on a usage or infrastructure error.

Environment (QEMU is found as every test finds it, python/vtmem/qemu.py):
  VTMEM_QEMU          qemu-system-x86_64 to use (default: build-qemu.sh
                      --print-path; VTMEM_QEMU_SANITIZE=1: --sanitize)
  VTMEM_ACCEL         kvm or tcg (default: probe whether KVM really boots
                      the guest, once, cached; else tcg)
  VTMEM_CACHE         cache root (default /var/cache/virtio-tmem)
  VTMEM_KO_<SERIES>   virtio_tmem.ko to use for kernel SERIES (6_12, 6_1, 7_3);
                      VTMEM_KO_<SERIES>_TEST for the test build
  VTMEM_KEEP          keep the temporary directory (serial logs, disks)
"""

import argparse
import fcntl
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import initramfs  # noqa: E402

TOP = initramfs.TOP
sys.path.insert(0, os.path.join(TOP, "python"))
from vtmem import qemu as vqemu  # noqa: E402
from vtmem.qemu import SKIP, Unavailable, find_qemu  # noqa: E402,F401
from vtmem.qmp import QMP, QMPClosed, QMPError  # noqa: E402

class VMError(Exception):
    """The VM misbehaved: timeout, crash, protocol error."""


def log(msg):
    print("vmrun: %s" % msg, file=sys.stderr, flush=True)


def file_tail(path, n):
    """The last @n lines of a log file, "" if it cannot be read."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def cache_root():
    return os.environ.get("VTMEM_CACHE", "/var/cache/virtio-tmem")


def _script(name, *args, timeout=None):
    path = os.path.join(TOP, "scripts", name)
    if not os.path.exists(path):
        raise Unavailable("scripts/%s does not exist yet" % name)
    r = subprocess.run([path] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode == SKIP:
        raise Unavailable("scripts/%s %s: %s" % (name, " ".join(args),
                                                  r.stderr.strip()))
    if r.returncode:
        raise Unavailable("scripts/%s %s failed (%d): %s" % (
            name, " ".join(args), r.returncode, r.stderr.strip()[-2000:]))
    return r.stdout


def _assignments(text):
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2).strip("'\"")
    return out


def find_kernel(series):
    env = _assignments(_script("guest-kernels.sh", "env", series))
    image = env.get("KVMLINUX") or env.get("KIMAGE")
    if not image or not os.path.exists(image):
        image = env.get("KIMAGE")
    if not image or not os.path.exists(image):
        raise Unavailable("guest kernel %s not available" % series)
    return {"series": series, "release": env.get("KREL", "?"),
            "image": image, "moddir": env["KMODDIR"]}


def _module_sources_mtime():
    newest = os.path.getmtime(os.path.join(TOP, "proto", "virtio_tmem.h"))
    src = os.path.join(TOP, "guest-virtio-tmem")
    for n in os.listdir(src):
        newest = max(newest, os.path.getmtime(os.path.join(src, n)))
    return newest


def find_module(kernel, test_build):
    """Path of virtio_tmem.ko for this kernel (test build: debugfs knob).

    build-guest-module.sh rebuilds every time it runs (16 s a build), so
    it is only called when the cached module is older than its sources.
    """
    variant = "test" if test_build else "normal"
    var = "VTMEM_KO_" + kernel["series"].replace(".", "_")
    if test_build:
        var += "_TEST"
    ko = os.environ.get(var)
    if ko:
        if not os.path.exists(ko):
            raise Unavailable("%s=%s does not exist" % (var, ko))
        return ko
    if not os.path.isdir(os.path.join(TOP, "guest-virtio-tmem")):
        raise Unavailable("guest-virtio-tmem/ does not exist yet")
    ko = os.path.join(cache_root(), "build", kernel["release"], variant,
                      "guest-virtio-tmem", "virtio_tmem.ko")
    try:
        fresh = os.path.getmtime(ko) >= _module_sources_mtime()
    except OSError:
        fresh = False
    if not fresh:
        out = _script("build-guest-module.sh", "-v", variant,
                      kernel["series"])
        for line in out.splitlines():
            f = line.split()
            if len(f) == 4 and f[0] == kernel["series"] and f[2] == variant:
                ko = f[3]
    if not os.path.exists(ko):
        raise Unavailable("virtio_tmem.ko for %s (%s) not built" % (
            kernel["series"], variant))
    return ko


def module_lock(ko):
    """build-guest-module.sh's lock for this module's build directory."""
    lock = os.path.join(os.path.dirname(os.path.dirname(ko)), ".lock")
    try:
        f = open(lock, "a")
    except OSError:
        return None
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _term_to_exit(signum, frame):
    # meson's timeout and ^C: unwind through the finally that kills QEMU.
    raise SystemExit(128 + signum)


# Console lines that end the run at once, and splats that fail it later.
FATAL_RE = re.compile(r"Kernel panic|BUG: (?!soft lockup)|kernel BUG at|"
                      r"Oops|general protection fault|"
                      r"Fixing recursive fault")
# 7.x warns (a WARN splat after a pr_warn line naming the queue) when a
# module's alloc_workqueue() names neither WQ_PERCPU nor WQ_UNBOUND.
SPLAT_RE = re.compile(r"WARNING: |INFO: task .* blocked for more than|"
                      r"soft lockup|hard LOCKUP|rcu_sched self-detected stall|"
                      r"is using neither WQ_PERCPU")


def probe_accel(qemu, kernel, image):
    """kvm when a short boot under KVM reaches /init, else tcg; cached."""
    forced = os.environ.get("VTMEM_ACCEL")
    if forced:
        if forced not in ("kvm", "tcg"):
            raise VMError("VTMEM_ACCEL must be kvm or tcg")
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    st = os.stat(qemu)
    key = "%s-%d-%s" % (os.path.basename(qemu), int(st.st_mtime),
                        kernel["release"])
    cache = os.path.join(cache_root(), "vm", "accel-probe")
    try:
        with open(cache) as f:
            k, v = f.read().split()
            if k == key:
                return v
    except (OSError, ValueError):
        pass
    accel = "tcg"
    try:
        vm = VM(qemu, kernel, image, accel="kvm", scenario="boot",
                timeout=15, quiet=True)
        res = vm.run()
        if res.verdict and res.verdict.get("ok"):
            accel = "kvm"
    except (VMError, OSError) as e:
        log("KVM probe failed (%s); using TCG" % str(e).splitlines()[0])
    try:
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        with open(cache, "w") as f:
            f.write("%s %s\n" % (key, accel))
    except OSError:
        pass
    return accel


class Result:
    def __init__(self):
        self.checkpoints = []   # {"name", "boot", "guest", "host", ...}
        self.splats = []        # kernel warnings seen on the console
        self.verdict = None
        self.host_final = None
        self.console = ""
        self.seconds = 0.0
        self.accel = None
        self.exit_reason = None

    def checkpoint(self, name, boot=None):
        for c in self.checkpoints:
            if c["name"] == name and (boot is None or c["boot"] == boot):
                return c
        raise KeyError("no checkpoint %s (boot %s)" % (name, boot))

    def as_dict(self):
        return {"accel": self.accel, "seconds": round(self.seconds, 1),
                "exit": self.exit_reason, "splats": self.splats,
                "checkpoints": self.checkpoints,
                "verdict": self.verdict, "host_final": self.host_final}


class VM:
    """One QEMU process, one scenario; use run() once.

    How QEMU starts and stops and how the guest's protocol channel is
    reached are methods (_start, _channel, _send, _exit_reason, _stop, and
    query_tmem), so that a subclass can run the same scenario with QEMU
    under another manager (tests/libvirt/).
    """

    def __init__(self, qemu, kernel, initrd, scenario, accel="tcg",
                 mem_mb=256, smp=1, budget="64M", num_queues=None,
                 backing_mb=0, plain_swap_mb=0, params=None, timeout=300,
                 reboot=False, quiet=False, console_log=None, tmem=True,
                 iothread=False):
        self.qemu = qemu
        self.kernel = kernel
        self.initrd = initrd
        self.scenario = scenario
        self.accel = accel
        self.mem_mb = mem_mb
        self.smp = smp
        self.budget = budget
        self.num_queues = num_queues
        self.backing_mb = backing_mb
        self.plain_swap_mb = plain_swap_mb
        self.params = dict(params or {})
        self.timeout = timeout
        self.reboot = reboot
        self.quiet = quiet
        self.console_log = console_log
        self.tmem = tmem
        self.iothread = iothread
        self.proc = None
        self.qmp = None
        self.tmp = None

    def _cmdline(self):
        # nowatchdog: under TCG on a loaded host the guest's clock jumps
        # and the lockup detectors report lockups that are not there.
        args = ["console=ttyS0", "panic=-1", "loglevel=5", "nokaslr",
                "mitigations=off", "tsc=reliable", "no_timer_check",
                "nowatchdog", "sysrq_always_enabled",
                "vtmem.scenario=%s" % self.scenario]
        for k, v in sorted(self.params.items()):
            args.append("vtmem.%s=%s" % (k, v))
        return " ".join(args)

    def _disk(self, name, size_mb, serial):
        path = os.path.join(self.tmp, name + ".img")
        with open(path, "wb") as f:
            f.truncate(size_mb << 20)   # sparse
        return ["-drive", "if=none,id=%s,file=%s,format=raw,cache=unsafe"
                % (name, path),
                "-device", "virtio-blk-pci,drive=%s,serial=%s" % (name, serial)]

    def _argv(self):
        tmem = "virtio-tmem,id=tmem0,budget=%s" % self.budget
        if self.num_queues:
            tmem += ",num-queues=%d" % self.num_queues
        argv = [self.qemu, "-nodefaults", "-no-user-config",
                "-display", "none", "-machine", "q35", "-accel", self.accel,
                "-m", "%dM" % self.mem_mb, "-smp", str(self.smp),
                "-kernel", self.kernel["image"], "-initrd", self.initrd,
                "-append", self._cmdline(),
                "-chardev", "file,id=con,path=%s" % self.console_path,
                "-serial", "chardev:con",
                "-chardev", "stdio,id=ctl,signal=off",
                "-serial", "chardev:ctl",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if self.iothread:
            argv += ["-object", "iothread,id=io0"]
            tmem += ",iothread=io0"
        if self.tmem:
            argv += ["-device", tmem]
        if self.accel == "tcg":
            # Under KVM the default model: "-cpu host" and "max" fail on
            # some hosts (PVM: MSR 0x10a) and gain nothing for these tests.
            argv += ["-cpu", "max"]
        if self.backing_mb:
            argv += self._disk("backing", self.backing_mb, "vtmem-backing")
            self.params.setdefault("backing", "vtmem-backing")
        if self.plain_swap_mb:
            argv += self._disk("plainswap", self.plain_swap_mb, "plain-swap")
            self.params.setdefault("plain", "plain-swap")
        if not self.reboot:
            argv.append("-no-reboot")
        # The command line is built last: the disks add parameters.
        argv[argv.index("-append") + 1] = self._cmdline()
        return argv

    def at_checkpoint(self, cp):
        """Hook for subclasses: the host has read query-tmem at checkpoint
        cp (its dict, already in the result); the guest waits until this
        returns.  A test acts on the host here (qom-set over self.qmp)."""

    # How often tick() runs while the guest works (seconds).
    tick_interval = 0.5

    def tick(self, res):
        """Hook for subclasses: called about every tick_interval seconds
        while the guest runs (between checkpoints too), for a host side
        that acts or samples while the guest works."""

    def query_tmem(self):
        if not self.tmem:
            return None
        devs = self.qmp.cmd("query-tmem")
        for d in devs:
            if d.get("id") == "tmem0":
                return d
        raise VMError("query-tmem has no tmem0: %s" % devs)

    def _stderr_hint(self):
        if self.proc.poll() is None:
            return ""
        try:
            with open(os.path.join(self.tmp, "qemu.stderr"),
                      errors="replace") as f:
                return "; QEMU exited %d: %s" % (self.proc.returncode,
                                                 f.read()[-1500:].strip())
        except OSError:
            return ""

    def _console_tail(self, n=60):
        return file_tail(self.console_path, n)

    def run(self):
        res = Result()
        res.accel = self.accel
        # Only the main thread may; tests/vm/pool.py runs VMs in threads.
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, _term_to_exit)
        self.tmp = tempfile.mkdtemp(prefix="vtmem-vm-")
        self.console_path = os.path.join(self.tmp, "console.log")
        self.qmp_path = os.path.join(self.tmp, "qmp.sock")
        start = time.time()
        try:
            try:
                self._start()
                self._loop(res, start)
            except (QMPError, QMPClosed, TimeoutError) as e:
                raise VMError("QMP: %s%s" % (e, self._stderr_hint()))
        except VMError as e:
            e.result = res
            raise
        finally:
            res.seconds = time.time() - start
            self._teardown(res)
        return res

    def _start(self):
        """Start QEMU; its protocol channel and QMP are ready on return."""
        argv = self._argv()
        if not self.quiet:
            log("%s: %s" % (self.scenario, " ".join(argv)))
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.tmp, "qemu.stderr"), "wb"),
            start_new_session=True, preexec_fn=vqemu.die_with_parent)
        try:
            self.qmp = QMP(self.qmp_path,
                           alive=lambda: self.proc.poll() is None)
        except (QMPClosed, OSError) as e:
            time.sleep(0.2)
            raise VMError("QMP: %s%s" % (e, self._stderr_hint()))

    def _channel(self):
        """The fd the guest's protocol lines arrive on."""
        return self.proc.stdout.fileno()

    def _send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _exit_reason(self, wait=0):
        """How QEMU ended, or None while it runs (after waiting up to wait
        seconds for it to end)."""
        try:
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return None
        return "qemu exited %d" % self.proc.returncode

    def _watch_console(self, res):
        """Fail fast on a guest oops or panic; note warnings."""
        try:
            with open(self.console_path, "rb") as f:
                f.seek(self._con_pos)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self._con_pos += end
        for line in data[:end].decode(errors="replace").splitlines():
            if FATAL_RE.search(line):
                time.sleep(1)   # let the trace reach the log
                raise VMError("guest kernel: %s" % line.strip())
            if SPLAT_RE.search(line):
                res.splats.append(line.strip())

    def _loop(self, res, start):
        fd = self._channel()
        buf = b""
        self._con_pos = 0
        boot = 0
        deadline = start + self.timeout
        while True:
            if time.time() > deadline:
                self._sysrq_dump()
                raise VMError("timeout after %d s" % self.timeout)
            r, _, _ = select.select([fd], [], [], self.tick_interval)
            self._watch_console(res)
            self.tick(res)
            if not r:
                reason = self._exit_reason()
                if reason:
                    res.exit_reason = reason
                    if res.verdict is None:
                        raise VMError("QEMU exited without a verdict%s"
                                      % self._stderr_hint())
                    return
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                res.exit_reason = (self._exit_reason(wait=30) or
                                   "protocol channel closed")
                if res.verdict is None:
                    raise VMError("QEMU exited without a verdict%s"
                                  % self._stderr_hint())
                return
            buf += chunk
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                line = line.decode(errors="replace").strip()
                m = re.search(r"VTMEM-(CHECKPOINT|POST|RESULT) (\{.*\})$",
                              line)
                if not m:
                    continue
                try:
                    msg = json.loads(m.group(2))
                except ValueError as e:
                    raise VMError("bad guest message %r: %s" % (line, e))
                if m.group(1) == "POST":
                    if res.checkpoints:
                        res.checkpoints[-1]["guest_post"] = msg.get("guest")
                    self._send(b"VTMEM-GO %d\n" % boot)
                    continue
                host = self.query_tmem()
                if m.group(1) == "CHECKPOINT":
                    if msg.get("name") == "boot":
                        boot += 1
                    msg["boot"] = boot
                    msg["host"] = host
                    msg["t"] = round(time.time() - start, 1)
                    res.checkpoints.append(msg)
                    if not self.quiet:
                        log("checkpoint %s (boot %d, %.1f s)" % (
                            msg.get("name"), boot, msg["t"]))
                    self.at_checkpoint(msg)
                else:
                    res.verdict = msg
                    res.host_final = host
                self._send(b"VTMEM-GO %d\n" % boot)

    def _sysrq_dump(self):
        """A guest that timed out: ask its kernel, through the PS/2
        keyboard, for the blocked tasks (w) and every CPU's stack (l) at
        full console level (9), so that the console tail says where it
        stands.  Best effort: QEMU may itself be what hangs."""
        if not self.qmp:
            return
        try:
            self.qmp.timeout = 5
            for key in ("9", "w", "l"):
                self.qmp.cmd("human-monitor-command",
                             **{"command-line": "sendkey alt-sysrq-" + key})
                time.sleep(1)
            time.sleep(2)
        except Exception as e:      # QMP gone or hung: nothing to add
            log("sysrq dump: %s" % e)

    def _teardown(self, res):
        self._stop()
        res.console = self._console_tail(400)
        try:
            with open(os.path.join(self.tmp, "qemu.stderr"),
                      errors="replace") as f:
                res.qemu_stderr = f.read()[-4000:]
        except OSError:
            res.qemu_stderr = ""
        if self.console_log:
            try:
                shutil.copyfile(self.console_path, self.console_log)
            except OSError:
                pass
        if os.environ.get("VTMEM_KEEP"):
            log("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def _stop(self):
        """Stop QEMU whatever state it is in."""
        vqemu.stop(self.proc, self.qmp, quit_timeout=3, group=True)
        if self.proc is not None:
            for f in (self.proc.stdin, self.proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass


def prepare(series="6.12", test_build=False):
    """Everything a VM needs: QEMU, kernel, initramfs, accelerator."""
    qemu = find_qemu()
    kernel = find_kernel(series)
    ko = find_module(kernel, test_build)
    # Read the module while no concurrent build replaces it.
    lock = module_lock(ko)
    try:
        image = initramfs.build(kernel["moddir"], [ko])
    except initramfs.BuildError as e:
        raise VMError(str(e))
    finally:
        if lock:
            lock.close()
    accel = probe_accel(qemu, kernel, image)
    return qemu, kernel, image, accel


def main():
    ap = argparse.ArgumentParser(
        description="Boot a virtio-tmem guest and run one scenario.")
    ap.add_argument("scenario", help="guest scenario (tests/vm/guest/scenarios.sh)")
    ap.add_argument("--kernel", default="6.12", help="guest kernel series")
    ap.add_argument("--test-build", action="store_true",
                    help="use the module's VTMEM_TEST=1 build")
    ap.add_argument("--mem", type=int, default=256, help="guest RAM, MiB")
    ap.add_argument("--smp", type=int, default=1)
    ap.add_argument("--budget", default="64M")
    ap.add_argument("--num-queues", type=int)
    ap.add_argument("--iothread", action="store_true",
                    help="run the device's queues in an IOThread")
    ap.add_argument("--backing-mb", type=int, default=0)
    ap.add_argument("--plain-swap-mb", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--reboot", action="store_true")
    ap.add_argument("--console-log", help="copy the serial console here")
    ap.add_argument("-p", "--param", action="append", default=[],
                    help="KEY=VALUE for the guest (vtmem.KEY=VALUE)")
    ap.add_argument("--json", help="write checkpoints and verdict here")
    args = ap.parse_args()
    try:
        qemu, kernel, image, accel = prepare(args.kernel, args.test_build)
    except Unavailable as e:
        log("SKIP: %s" % e)
        return SKIP
    except VMError as e:
        log("ERROR: %s" % e)
        return 2
    params = dict(p.split("=", 1) for p in args.param)
    vm = VM(qemu, kernel, image, args.scenario, accel=accel, mem_mb=args.mem,
            smp=args.smp, budget=args.budget, num_queues=args.num_queues,
            backing_mb=args.backing_mb, plain_swap_mb=args.plain_swap_mb,
            params=params, timeout=args.timeout, reboot=args.reboot,
            console_log=args.console_log, iothread=args.iothread)
    try:
        res = vm.run()
    except VMError as e:
        log("FAIL: %s" % e)
        return 1
    out = json.dumps(res.as_dict(), indent=1)
    if args.json:
        with open(args.json, "w") as f:
            f.write(out + "\n")
    else:
        print(out)
    return 0 if res.verdict and res.verdict.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
