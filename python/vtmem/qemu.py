"""Where the project's QEMU is, the environment it runs in, how it stops.

The one set of variables every test, script and benchmark honours:

  VTMEM_QEMU           the qemu-system-x86_64 to run, explicitly
  VTMEM_QEMU_SANITIZE  1: the ASan/UBSan build instead
                       (`scripts/build-qemu.sh --sanitize`; the meson test
                       setup `qemusan` sets it)
  VTMEM_CACHE          otherwise the binary scripts/build-qemu.sh
                       --print-path names under this cache (default
                       /var/cache/virtio-tmem)

A QEMU that is not there raises Unavailable: tests turn it into exit 77
(SKIP).
"""

import ctypes
import os
import signal
import subprocess
import sys

from . import TOP

SKIP = 77


class Unavailable(Exception):
    """Something a test needs is not built or cannot be obtained: skip."""


def find_qemu():
    """The path of the QEMU to run; raises Unavailable when not built."""
    qemu = os.environ.get("VTMEM_QEMU")
    if not qemu:
        if os.environ.get("QEMU"):
            sys.stderr.write("warning: $QEMU is not read; set VTMEM_QEMU\n")
        script = os.path.join(TOP, "scripts", "build-qemu.sh")
        which = (["--sanitize"] if os.environ.get("VTMEM_QEMU_SANITIZE") == "1"
                 else [])
        res = subprocess.run([script] + which + ["--print-path"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        lines = res.stdout.strip().splitlines()
        qemu = lines[-1] if lines else ""
        if res.stderr:
            # e.g. the binary was built from another checkout
            sys.stderr.write(res.stderr)
        if res.returncode != 0:
            raise Unavailable("QEMU with virtio-tmem is not built (%s "
                              "missing); run scripts/build-qemu.sh%s" %
                              (qemu or "no path", " --sanitize" if which
                               else ""))
    if not os.access(qemu, os.X_OK):
        raise Unavailable("VTMEM_QEMU=%s is not executable" % qemu)
    return qemu


def qemu_env():
    """The environment QEMU runs in: sanitizer reports are fatal (QEMU
    leaks by design at exit, so leak checking is off)."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "halt_on_error=1:print_stacktrace=1")
    return env


def die_with_parent():
    """In the child (preexec_fn): SIGKILL QEMU when its parent dies, e.g.
    a test killed by meson's timeout (PR_SET_PDEATHSIG)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def stop(proc, qmp=None, wait=5, quit_timeout=None, group=False):
    """Stop QEMU whatever state it is in: `quit` over @qmp (waiting
    @quit_timeout seconds for the answer, default the client's), @wait
    seconds for QEMU to exit, then SIGKILL (its process group with @group,
    for a QEMU started with start_new_session).  Closes @qmp.

    A clean exit matters: a sanitizer reports use-after-free in the
    device's teardown only when QEMU gets to run it."""
    if proc is not None and proc.poll() is None:
        if qmp:
            try:
                if quit_timeout is not None:
                    qmp.timeout = quit_timeout
                qmp.cmd("quit")
            except Exception:  # noqa: BLE001 - tear down whatever happens
                pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass
    if proc is not None and proc.poll() is None:
        try:
            if group:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait()
    if qmp:
        qmp.close()
