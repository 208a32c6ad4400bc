"""The harness of the virtio-tmem device tests: QEMU under a test.

The QMP client and the way QEMU is found are the project's one copy in
python/vtmem/ (vtmem.qmp, vtmem.qemu: VTMEM_QEMU, else the build of
scripts/build-qemu.sh --print-path, with VTMEM_QEMU_SANITIZE=1 the
ASan/UBSan build); when QEMU is not built the tests exit 77, which meson
counts as SKIP.  A sanitizer report makes that QEMU exit at once
(vtmem.qemu.qemu_env), so a test sees it die rather than a report scroll
by in its log.
"""

import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))

from vtmem import qemu as vqemu  # noqa: E402
from vtmem.qemu import SKIP, qemu_env  # noqa: E402,F401
from vtmem.qmp import QMP, QMPError  # noqa: E402,F401


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(SKIP)


def find_qemu():
    try:
        return vqemu.find_qemu()
    except vqemu.Unavailable as e:
        skip(str(e))


class QEMU:
    """One QEMU process with a QMP socket; use as a context manager."""

    BASE = ["-machine", "q35", "-accel", "tcg", "-nographic", "-nodefaults",
            "-m", "128M"]

    def __init__(self, *args, paused=True, timeout=30):
        self.qemu = find_qemu()
        self.dir = tempfile.mkdtemp(prefix="vtmem-qmp-")
        self.sock_path = os.path.join(self.dir, "qmp.sock")
        self.args = list(args)
        self.paused = paused
        self.timeout = timeout
        self.proc = None
        self.qmp = None
        self.final_log = ""

    def cmdline(self):
        cmd = [self.qemu] + self.BASE + ["-qmp", "unix:%s,server=on,wait=off"
                                         % self.sock_path]
        if self.paused:
            cmd.append("-S")
        return cmd + self.args

    def __enter__(self):
        # A file, not a pipe: nobody reads QEMU's output while it runs.
        self.log_path = os.path.join(self.dir, "qemu.log")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.cmdline(),
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env=qemu_env(),
                                         preexec_fn=vqemu.die_with_parent)
        try:
            self.qmp = QMP(self.sock_path, self.timeout,
                           alive=lambda: self.proc.poll() is None)
        except RuntimeError as e:
            if self.proc.poll() is not None:
                raise RuntimeError("QEMU exited with %d: %s" %
                                   (self.proc.returncode, self.log()))
            raise RuntimeError(str(e))
        return self

    def __exit__(self, exc_type, *exc):
        self.close()
        log = self.final_log
        report = [m for m in ("ERROR: AddressSanitizer", "runtime error:")
                  if m in log]
        if report and exc_type is None:
            raise RuntimeError("QEMU's sanitizer reported: %s" %
                               log[log.index(report[0]):][:4000])

    def close(self):
        vqemu.stop(self.proc, self.qmp, wait=10)
        self.qmp = None
        self.final_log = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        """What QEMU printed so far."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def cmd_raw(self, name, **arguments):
        return self.qmp.cmd_raw(name, **arguments)

    def cmd(self, name, **arguments):
        """Run a command; return its result or raise QMPError."""
        return self.qmp.cmd(name, **arguments)

    def wait_event(self, name, timeout):
        """The first event called name within timeout seconds, else None."""
        return self.qmp.wait_event(name, timeout)


def run_qemu(*args, timeout=30):
    """Run QEMU to completion (e.g. -device help); return (rc, out, err)."""
    res = subprocess.run([find_qemu()] + list(args), stdin=subprocess.DEVNULL,
                         env=qemu_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=timeout, text=True)
    return res.returncode, res.stdout, res.stderr


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def run_tests(tests, argv):
    """Run the named tests (all without names); return the exit status."""
    names = list(tests) if argv[1:] in ([], ["all"]) else argv[1:]
    failed = 0
    for name in names:
        try:
            tests[name]()
            print("ok %s" % name)
        except (Failure, QMPError, AssertionError, RuntimeError) as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
    return 1 if failed else 0
