#!/usr/bin/python3
"""A stock Debian guest sets itself up: install virtio-tmem-dkms, reboot,
find swap on /dev/vtmem0 with the configured priority.

The guest is a Debian 12 system with systemd and Linux 6.12 from
bookworm-backports (scripts/build-debian-image.sh, cached), booted with its
own kernel and initramfs under the project's QEMU with
-device virtio-tmem.  The package is built from the work tree
(scripts/build-deb.sh) and reaches the guest on a disk with serial
vtmem-harness, together with tests/vm/debian/run.sh, which the image runs
at the end of each boot.  Boot 1: dpkg -i (DKMS builds the module in the
guest), the configuration is edited (priority, a backing disk), reboot.
Boot 2: nothing but the package sets up swap; the guest reports
/proc/swaps and sysfs, the host reads query-tmem, then the guest stops and
starts the unit (swapoff, swap again) and powers off.

  tests/vm/debian-guest.py [--kernel 6.12]     exit 0 / 1 / 77 (skip)

Exit 77 when QEMU, the image (not root, no debootstrap, no network) or the
package tools are not available.  Environment as for scripts/vm/vmrun.py
(VTMEM_QEMU, VTMEM_ACCEL, VTMEM_CACHE, VTMEM_KEEP); VTMEM_DEB_TIMEOUT: the
VM's time limit in seconds (default 2400).
"""

import argparse
import os
import re
import select
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "scripts", "vm"))
import vmrun  # noqa: E402

PRIORITY = 77           # not the package's default (100): the config counts
BACKING_SERIAL = "vtmem-backing"
# Two TCG boots of a full Debian and a DKMS build in the guest: 1318 s of
# VM time on 2 cores at load 20 (dpkg -i 842 s of it).
TIMEOUT = int(os.environ.get("VTMEM_DEB_TIMEOUT", "2400"))


def build(script, *args, timeout=None):
    """Run a build script; its last stdout line is the path it made."""
    r = subprocess.run([os.path.join(TOP, "scripts", script)] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    if r.returncode == vmrun.SKIP:
        raise vmrun.Unavailable("%s: %s" % (script, r.stderr.strip()))
    if r.returncode or not r.stdout.strip():
        raise vmrun.VMError("%s failed (%d): %s" % (
            script, r.returncode, r.stderr.strip()[-3000:]))
    return r.stdout.strip().splitlines()[-1]


def harness_disk(tmp, deb):
    """A raw disk holding a tar archive: run.sh as run, and the .deb."""
    path = os.path.join(tmp, "harness.img")
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as t:
        t.add(os.path.join(TOP, "tests", "vm", "debian", "run.sh"), "run")
        t.add(deb, os.path.basename(deb))
    size = os.path.getsize(path)
    with open(path, "ab") as f:
        f.truncate((size + (1 << 20)) & ~((1 << 20) - 1))
    return path


class DebianVM:
    def __init__(self, qemu, image, accel, tmp):
        self.qemu = qemu
        self.image = image
        self.accel = accel
        self.tmp = tmp
        self.console = os.path.join(tmp, "console.log")
        self.qmp_path = os.path.join(tmp, "qmp.sock")
        self.reports = []       # (boot, key, value) in arrival order
        self.host = None        # query-tmem at the checkpoint
        self.proc = None
        self.qmp = None

    def argv(self, harness):
        backing = os.path.join(self.tmp, "backing.img")
        with open(backing, "wb") as f:
            f.truncate(512 << 20)
        drive = "-drive", "if=none,id=%s,file=%s,format=raw,cache=unsafe%s"
        blk = "virtio-blk-pci,drive=%s,serial=%s"
        return [self.qemu, "-nodefaults", "-no-user-config",
                "-display", "none", "-machine", "q35",
                "-accel", self.accel, "-cpu", "max" if self.accel == "tcg"
                else "qemu64", "-m", "1024M", "-smp", "1",
                "-kernel", os.path.join(self.image, "vmlinuz"),
                "-initrd", os.path.join(self.image, "initrd.img"),
                "-append", "root=/dev/vda rw console=ttyS0 panic=-1 "
                "nokaslr mitigations=off tsc=reliable no_timer_check "
                "nowatchdog systemd.show_status=1",
                drive[0], drive[1] % ("root", os.path.join(
                    self.image, "root.img"), ",snapshot=on"),
                "-device", blk % ("root", "vtmem-root"),
                drive[0], drive[1] % ("harness", harness, ",readonly=on"),
                "-device", blk % ("harness", "vtmem-harness"),
                drive[0], drive[1] % ("backing", backing, ""),
                "-device", blk % ("backing", BACKING_SERIAL),
                "-device", "virtio-tmem,id=tmem0,budget=256M",
                "-chardev", "file,id=con,path=%s" % self.console,
                "-serial", "chardev:con",
                "-chardev", "stdio,id=ctl,signal=off",
                "-serial", "chardev:ctl",
                "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]

    def run(self, harness):
        with open(os.path.join(self.tmp, "qemu.stderr"), "wb") as err:
            self.proc = subprocess.Popen(
                self.argv(harness), stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, start_new_session=True,
                preexec_fn=vmrun.vqemu.die_with_parent)
        try:
            self.qmp = vmrun.QMP(self.qmp_path,
                                 alive=lambda: self.proc.poll() is None)
            self.loop()
        finally:
            self.teardown()

    def loop(self):
        start = time.time()
        buf = b""
        boot = 0
        con_pos = 0
        while True:
            if time.time() - start > TIMEOUT:
                raise vmrun.VMError("timeout after %d s" % TIMEOUT)
            con_pos = self.watch_console(con_pos)
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if not r:
                if self.proc.poll() is not None:
                    return
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.proc.wait(timeout=60)
                return
            buf += chunk
            while b"\n" in buf:
                line, _, buf = buf.partition(b"\n")
                m = re.search(r"VTMEM-DEB (\S+) ?(.*)$",
                              line.decode(errors="replace").strip())
                if not m:
                    continue
                key, value = m.group(1), m.group(2).strip()
                if key == "boot":
                    boot = int(value)
                vmrun.log("boot %d, %.0f s: %s %s" % (
                    boot, time.time() - start, key, value))
                self.reports.append((boot, key, value))
                if key == "checkpoint":
                    self.host = self.query_tmem()
                    self.proc.stdin.write(b"VTMEM-GO %d\n" % boot)
                    self.proc.stdin.flush()

    def query_tmem(self):
        for d in self.qmp.cmd("query-tmem"):
            if d.get("id") == "tmem0":
                return d
        raise vmrun.VMError("query-tmem has no tmem0")

    def watch_console(self, pos):
        try:
            with open(self.console, "rb") as f:
                f.seek(pos)
                data = f.read()
        except OSError:
            return pos
        end = data.rfind(b"\n") + 1
        for line in data[:end].decode(errors="replace").splitlines():
            if vmrun.FATAL_RE.search(line):
                raise vmrun.VMError("guest kernel: %s" % line.strip())
        return pos + end

    def teardown(self):
        vmrun.vqemu.stop(self.proc, self.qmp, quit_timeout=3, group=True)

    def console_tail(self, n=80):
        return vmrun.file_tail(self.console, n)


def values(reports, boot, key):
    return [v for b, k, v in reports if b == boot and k == key]


def one(reports, boot, key):
    v = values(reports, boot, key)
    return v[0] if len(v) == 1 else None


def vtmem_swap(lines):
    """The /proc/swaps fields of /dev/vtmem0, or None."""
    for line in lines:
        f = line.split()
        if f and f[0] == "/dev/vtmem0":
            return f
    return None


def check(vm):
    """Every failure as a sentence; empty when the guest set itself up."""
    rep, fail = vm.reports, []

    def expect(cond, what):
        if not cond:
            fail.append(what)

    # Boot 1: the stock guest, before the package.
    expect(one(rep, 1, "kernel") and one(rep, 1, "kernel").startswith("6.12."),
           "boot 1: kernel %r is not 6.12" % one(rep, 1, "kernel"))
    expect(vtmem_swap(values(rep, 1, "swaps-before")) is None,
           "boot 1: swap on /dev/vtmem0 before the package was installed")
    expect(one(rep, 1, "dpkg-rc") == "0",
           "boot 1: dpkg -i exited %r" % one(rep, 1, "dpkg-rc"))
    dkms = one(rep, 1, "dkms") or ""
    expect(re.search(r"virtio_tmem/0\.1\.0, 6\.12\.\S+, x86_64: installed",
                     dkms), "boot 1: dkms status: %r" % dkms)
    expect(one(rep, 1, "rebooting") is not None, "boot 1: no reboot")

    # Boot 2: nothing but the package set swap up.
    expect(one(rep, 2, "unit") == "active",
           "boot 2: vtmem-swap@vtmem0.service is %r" % one(rep, 2, "unit"))
    sw = vtmem_swap(values(rep, 2, "swaps"))
    expect(sw is not None, "boot 2: no swap on /dev/vtmem0: %r"
           % values(rep, 2, "swaps"))
    if sw:
        expect(len(sw) == 5 and sw[1] == "partition",
               "boot 2: /proc/swaps line %r" % sw)
        expect(sw[-1] == str(PRIORITY), "boot 2: priority %s, configured %d"
               % (sw[-1], PRIORITY))
    expect(one(rep, 2, "module") == "1", "boot 2: virtio_tmem not loaded")
    bdev, bpath = one(rep, 2, "backing_dev"), one(rep, 2, "backing_path")
    expect(bpath and bpath.startswith("/dev/vd") and bdev == bpath,
           "boot 2: backing_dev %r, configured %r" % (bdev, bpath))
    h = vm.host
    expect(h is not None, "boot 2: no checkpoint")
    if h:
        # The swap header is a stored page: the host holds swap's data.
        expect(h.get("pools") == 1, "host pools %r, not 1" % h.get("pools"))
        expect(h.get("pages", 0) >= 1 and h.get("succ-stores", 0) >= 1,
               "host holds no page: %r" % h)
    expect(one(rep, 2, "unit-stopped") == "inactive",
           "stop: unit %r" % one(rep, 2, "unit-stopped"))
    expect(vtmem_swap(values(rep, 2, "swaps-stopped")) is None,
           "stop: /dev/vtmem0 still in /proc/swaps (no swapoff)")
    sw = vtmem_swap(values(rep, 2, "swaps-restarted"))
    expect(one(rep, 2, "unit-restarted") == "active" and sw is not None
           and sw[-1] == str(PRIORITY),
           "restart: unit %r, /proc/swaps %r"
           % (one(rep, 2, "unit-restarted"), sw))
    expect(one(rep, 2, "finished") is not None, "boot 2: did not finish")
    expect(vm.proc.returncode == 0, "QEMU exited %r, not 0 (poweroff)"
           % vm.proc.returncode)
    return fail


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", default="6.12",
                    help="guest kernel series (the image has 6.12 only)")
    args = ap.parse_args()
    if args.kernel != "6.12":
        print("SKIP: the Debian guest image has Linux 6.12 only")
        return vmrun.SKIP
    t0 = time.time()
    try:
        qemu = vmrun.find_qemu()
        image = build("build-debian-image.sh", timeout=3600)
        t_image = time.time() - t0
        deb = build("build-deb.sh", timeout=600)
    except vmrun.Unavailable as e:
        print("SKIP: %s" % e)
        return vmrun.SKIP
    except (vmrun.VMError, subprocess.TimeoutExpired) as e:
        print("FAIL: %s" % e)
        return 1
    accel = os.environ.get("VTMEM_ACCEL", "tcg")
    tmp = tempfile.mkdtemp(prefix="vtmem-deb-")
    vm = DebianVM(qemu, image, accel, tmp)
    t1 = time.time()
    err = None
    try:
        vm.run(harness_disk(tmp, deb))
    except (vmrun.VMError, vmrun.QMPError, vmrun.QMPClosed,
            TimeoutError) as e:
        err = str(e)
    t_vm = time.time() - t1
    fail = [err] if err else check(vm)
    print("debian-guest (%s): image %.0f s, package %.0f s, VM %.0f s "
          "(dpkg -i in the guest %s s)" % (
              accel, t_image, t1 - t0 - t_image, t_vm,
              one(vm.reports, 1, "dpkg-seconds")))
    if fail:
        print("--- console (tail) ---\n%s" % vm.console_tail())
        for f in fail:
            print("FAIL: %s" % f)
    if os.environ.get("VTMEM_KEEP"):
        print("kept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    if fail:
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
