"""A minimal QMP client and QEMU launcher for the virtio-tmem tests.

Standard library only.  QEMU is found through $QEMU, else through
`scripts/build-qemu.sh --print-path` (with VTMEM_QEMU_SANITIZE=1:
`--sanitize --print-path`, the ASan/UBSan build); when it is not built
the tests exit 77, which meson counts as SKIP.  A sanitizer report makes
that QEMU exit at once (ASAN_OPTIONS/UBSAN_OPTIONS below, unless set), so
a test sees it die rather than a report scroll by in its log.
"""

import ctypes
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _die_with_parent():
    """QEMU must not outlive a test killed by meson's timeout."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def skip(reason):
    print("SKIP: " + reason)
    sys.exit(SKIP)


def find_qemu():
    qemu = os.environ.get("QEMU")
    if not qemu:
        script = os.path.join(REPO, "scripts", "build-qemu.sh")
        which = (["--sanitize"] if os.environ.get("VTMEM_QEMU_SANITIZE") == "1"
                 else [])
        res = subprocess.run([script] + which + ["--print-path"],
                             stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        qemu = res.stdout.strip()
        if res.stderr:
            # e.g. the binary was built from another checkout
            sys.stderr.write(res.stderr)
        if res.returncode != 0:
            skip("QEMU with virtio-tmem is not built (%s missing); run "
                 "scripts/build-qemu.sh" % qemu)
    if not os.access(qemu, os.X_OK):
        skip("QEMU=%s is not executable" % qemu)
    return qemu


def qemu_env():
    """The environment QEMU runs in: sanitizer reports are fatal (QEMU
    leaks by design at exit, so leak checking is off)."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    return env


class QMPError(Exception):
    def __init__(self, reply):
        self.cls = reply["error"].get("class")
        self.desc = reply["error"].get("desc", "")
        super().__init__("%s: %s" % (self.cls, self.desc))


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
        self.sock = None
        self.buf = b""
        self.events = []
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
                                         preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("QEMU exited with %d: %s" %
                                   (self.proc.returncode, self.log()))
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(self.sock_path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise RuntimeError("no QMP socket after %ds" % self.timeout)
                time.sleep(0.05)
        greeting = self._read()
        assert "QMP" in greeting, greeting
        self.cmd("qmp_capabilities")
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
        if self.proc and self.proc.poll() is None:
            try:
                self.cmd("quit")
            except Exception:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait()
        if self.sock:
            self.sock.close()
        self.final_log = self.log()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        """What QEMU printed so far."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _read(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("QMP: no answer in %ss" % timeout)
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("QMP connection closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd_raw(self, name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            return reply

    def cmd(self, name, **arguments):
        """Run a command; return its result or raise QMPError."""
        reply = self.cmd_raw(name, **arguments)
        if "error" in reply:
            raise QMPError(reply)
        return reply["return"]

    def wait_event(self, name, timeout):
        """The first event called name within timeout seconds, else None."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self.events.append(self._read(timeout=left))
            except TimeoutError:
                return None


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
