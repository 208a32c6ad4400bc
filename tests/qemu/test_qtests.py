#!/usr/bin/python3
"""QEMU's own qtests that every device must pass, run against the
project's QEMU: qom-test (each machine's QOM tree and properties) and
device-introspect-test (device_add help and instance introspection of
every device type, virtio-tmem-device and virtio-tmem-pci among them).

They are programs of QEMU's build tree, not of this project: they are
looked for next to the binary (its build directory: $VTMEM_CACHE/qemu-
<version>/build, or build-sanitize, whose tests are then taken from the
build directory beside it, of the same tree), which
scripts/build-qemu.sh builds with QEMU; they exit 77 (SKIP) when they
are not there.  QTEST_QEMU_BINARY is the
QEMU every test here runs (python/vtmem/qemu.py).  They run in glib's
quick mode (each device once, machine "none"; about 5 s each);
VTMEM_QTESTS_SLOW=1 runs the slow mode (every machine: 30 s and 70 s on
the 2-core machine).

Usage: test_qtests.py TEST     (TEST: one of the names in TESTS, or 'all')
"""

import os
import subprocess
import sys

from qmp import check, find_qemu, qemu_env, run_tests, skip


def qtest_binary(qemu, name):
    """The qtest @name of the build tree @qemu comes from."""
    build = os.path.dirname(os.path.realpath(qemu))
    if not os.path.exists(os.path.join(build, "build.ninja")):
        skip("%s is not in a QEMU build tree: no %s to run" % (qemu, name))
    for d in (build, os.path.join(os.path.dirname(build), "build")):
        path = os.path.join(d, "tests", "qtest", name)
        if os.access(path, os.X_OK):
            return path
    skip("%s is not built (ninja -C %s tests/qtest/%s)"
         % (name, build, name))


def run_qtest(name, expect=()):
    """Run QEMU's qtest @name against the project's QEMU: every test
    case passes, and the output names each of @expect."""
    qemu = find_qemu()
    binary = qtest_binary(qemu, name)
    env = qemu_env()
    env["QTEST_QEMU_BINARY"] = qemu
    args = [binary, "--tap", "-k"]
    if os.environ.get("VTMEM_QTESTS_SLOW") == "1":
        args += ["-m", "slow"]
    res = subprocess.run(args, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=600)
    lines = res.stdout.splitlines()
    ok = [ln for ln in lines if ln.startswith("ok ")]
    bad = [ln for ln in lines if ln.startswith("not ok")]
    print("%s: %d passed, %d failed, exit %d" % (name, len(ok), len(bad),
                                                 res.returncode))
    check(res.returncode == 0 and not bad and ok,
          "%s: exit %d, %s; last output: %s" % (name, res.returncode,
                                                bad or "no test passed",
                                                "\n".join(lines[-20:])))
    for what in expect:
        check(what in res.stdout, "%s did not test %s" % (name, what))


TESTS = {
    "qtest-qom": lambda: run_qtest("qom-test"),
    "qtest-device-introspect": lambda: run_qtest(
        "device-introspect-test",
        ("Testing device 'virtio-tmem-pci'",
         "Testing device 'virtio-tmem-device'")),
}


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, sys.argv))
