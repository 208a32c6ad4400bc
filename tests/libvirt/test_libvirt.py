#!/usr/bin/python3
"""virtio-tmem under libvirt: Debian's libvirtd runs the project's QEMU.

  tests/libvirt/test_libvirt.py [--kernel 6.12|6.1]     exit 0 / 1 / 77

Starts libvirtd by hand (no systemd) in a private mount namespace whose
/etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
/var/cache/libvirt are directories of this test, so it neither reads nor
changes the host's libvirt and does not collide with a libvirtd the host
runs.  The domain is the README's libvirt example (the XML block marked
"tests/libvirt: domain"), with its qemu.conf (the block marked
"tests/libvirt: qemu.conf"), completed only with what a test needs: the
project's QEMU as <emulator>, TCG unless KVM works, the test guest's
kernel and initramfs, and two serial ports.

1. virsh define, virsh start: the guest runs the vm suite's lifecycle
   scenario (tests/vm/guest/scenarios.sh): the module writes to
   /dev/vtmem0, the host holds it, rmmod, insmod, reboot -f; at every
   checkpoint the host reads query-tmem with `virsh qemu-monitor-command`
   and the vm suite's checks compare it with the guest's counters.  The
   guest powers off, libvirt ends the domain (<on_poweroff>destroy).
2. virsh start again: query-tmem shows the device with the README's
   budget and nothing stored; virsh destroy stops QEMU; virsh undefine.
3. libvirtd is stopped by its pid.

Skips (77) when not root, without libvirt (scripts/install-deps.sh
libvirt), without mount namespaces, or when QEMU, the guest kernel or the
module is not built (as the vm suite).
"""

import argparse
import json
import os
import re
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(TOP, "scripts", "vm"))
sys.path.insert(0, os.path.join(TOP, "tests", "vm"))
import vmrun  # noqa: E402
import scenarios  # noqa: E402

SKIP = 77
QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"
# Where Debian's privileged libvirtd keeps everything; each is bind-mounted
# from the test's directory inside the daemon's mount namespace.
LIBVIRT_DIRS = (("etc", "/etc/libvirt"), ("run", "/run/libvirt"),
                ("lib", "/var/lib/libvirt"), ("log", "/var/log/libvirt"),
                ("cache", "/var/cache/libvirt"))
# Added to the README's qemu.conf only when the QEMU user (libvirt-qemu)
# cannot reach the binary, kernel or initramfs (a private $VTMEM_CACHE).
QEMU_CONF_ROOT = """user = "root"
group = "root"
"""
# The host half: the vm suite's lifecycle scenario, a smaller disk.
SCENARIO = dict(scenarios.SCENARIOS["lifecycle"],
                params=dict(mb=8, mix="text"))


class Unavailable(Exception):
    """libvirt cannot run here: skip."""


def log(msg):
    print("test-libvirt: %s" % msg, file=sys.stderr, flush=True)


def readme_block(tag):
    """The fenced block after the README's <!-- tests/libvirt: TAG -->."""
    with open(os.path.join(TOP, "README.md")) as f:
        text = f.read()
    m = re.search(r"<!-- tests/libvirt: %s -->\n```[a-z]*\n(.*?)```"
                  % re.escape(tag), text, re.S)
    if not m:
        raise RuntimeError("README.md has no block marked tests/libvirt: %s"
                           % tag)
    return m.group(1)


def tool_path(name):
    return shutil.which(name, path=os.environ.get("PATH", "") +
                        ":/usr/sbin:/usr/bin:/sbin:/bin")


class Libvirtd:
    """A privileged libvirtd of our own, started and stopped by pid."""

    def __init__(self, root, qemu_as_root=False):
        self.root = root
        self.qemu_as_root = qemu_as_root
        self.sock = os.path.join(root, "run", "libvirt-sock")
        self.uri = "qemu:///system?socket=" + self.sock
        self.log = os.path.join(root, "libvirtd.log")
        self.proc = None

    @staticmethod
    def check_host():
        if os.geteuid() != 0:
            raise Unavailable("not root (a privileged libvirtd is tested)")
        for tool in ("libvirtd", "virsh", "unshare"):
            if not tool_path(tool):
                raise Unavailable("%s not installed (scripts/install-deps.sh "
                                  "libvirt)" % tool)
        try:
            pwd.getpwnam("libvirt-qemu")
        except KeyError:
            raise Unavailable("no libvirt-qemu user: Debian's qemu driver "
                              "will not start (scripts/install-deps.sh "
                              "libvirt)")
        r = subprocess.run([tool_path("unshare"), "--mount", "true"],
                           capture_output=True, text=True)
        if r.returncode:
            raise Unavailable("no mount namespaces: %s" % r.stderr.strip())

    def _configure(self):
        for name, _ in LIBVIRT_DIRS:
            os.makedirs(os.path.join(self.root, name))
        etc = os.path.join(self.root, "etc")
        with open(os.path.join(etc, "libvirtd.conf"), "w") as f:
            # No polkit for root on the socket; warnings and errors only.
            f.write('auth_unix_rw = "none"\nauth_unix_ro = "none"\n'
                    'log_outputs = "3:file:%s"\n' % self.log)
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            f.write(readme_block("qemu.conf") +
                    (QEMU_CONF_ROOT if self.qemu_as_root else ""))

    def start(self, timeout=90):
        self._configure()
        mounts = []
        for name, path in LIBVIRT_DIRS:
            # An empty mount point where libvirt-daemon-system is absent.
            os.makedirs(path, exist_ok=True)
            mounts.append('mount --bind "%s" "%s"'
                          % (os.path.join(self.root, name), path))
        script = " && ".join(mounts) + (
            " && exec %s -f /etc/libvirt/libvirtd.conf"
            " -p /run/libvirt/libvirtd.pid" % tool_path("libvirtd"))
        out = open(os.path.join(self.root, "libvirtd.out"), "wb")
        # unshare and sh exec: the child's pid is libvirtd's.
        self.proc = subprocess.Popen(
            [tool_path("unshare"), "--mount", "--propagation", "private",
             "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, preexec_fn=vmrun.vqemu.die_with_parent)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("libvirtd exited %d: %s" % (
                    self.proc.returncode, self.tail()))
            if os.path.exists(self.sock):
                r = self.virsh("uri", check=False, timeout=30)
                if r.returncode == 0:
                    break
            if time.time() > deadline:
                raise RuntimeError("libvirtd not answering after %d s: %s"
                                   % (timeout, self.tail()))
            time.sleep(0.2)
        with open(os.path.join(self.root, "run", "libvirtd.pid")) as f:
            pid = int(f.read())
        if pid != self.proc.pid:
            raise RuntimeError("libvirtd.pid says %d, started %d"
                               % (pid, self.proc.pid))

    def virsh(self, *args, check=True, timeout=120):
        r = subprocess.run([tool_path("virsh"), "-q", "-c", self.uri] +
                           list(args),
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode:
            raise vmrun.VMError("virsh %s: %s" % (" ".join(args[:2]),
                                                  r.stderr.strip()))
        return r

    def tail(self, n=20):
        out = []
        for name in ("libvirtd.out", "libvirtd.log"):
            try:
                with open(os.path.join(self.root, name),
                          errors="replace") as f:
                    out += f.readlines()[-n:]
            except OSError:
                pass
        return "".join(out).strip()

    def stop(self, timeout=30):
        """SIGTERM by pid; the exit status, or None if it had to be
        killed."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def others_can_reach(path):
    """Whether a user other than root can open path: every directory on
    the way searchable by others (libvirt gives the file itself to the
    QEMU user, but not the directories)."""
    d = os.path.dirname(os.path.realpath(path))
    while True:
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return False
        if d == "/":
            return True
        d = os.path.dirname(d)


def qemu_pid(daemon, name):
    try:
        with open(os.path.join(daemon.root, "run", "qemu",
                               name + ".pid")) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class LibvirtVM(vmrun.VM):
    """vmrun's VM and its guest protocol, with QEMU started by libvirt
    from the README's domain XML and query-tmem read through virsh."""

    def __init__(self, daemon, *a, **kw):
        super().__init__(*a, **kw)
        self.daemon = daemon
        self.name = "vtmem-test-%d" % os.getpid()
        # The domain's own files (console log, ttyS1's socket), reachable by
        # the QEMU user; vmrun's temporary directory goes at the end of
        # run(), these stay for the domain's second start.
        self.files = os.path.join(daemon.root, "domain")
        os.makedirs(self.files, exist_ok=True)
        os.chmod(daemon.root, 0o711)
        qemu_user = pwd.getpwnam("root" if daemon.qemu_as_root
                                 else "libvirt-qemu")
        os.chown(self.files, qemu_user.pw_uid, qemu_user.pw_gid)
        self.qemu_user = qemu_user
        self.ctl_path = os.path.join(self.files, "ctl.sock")
        self.listener = None
        self.chan = None
        self.pid = None

    def domain_xml(self):
        ET.register_namespace("qemu", QEMU_NS)
        dom = ET.fromstring(readme_block("domain"))
        dom.set("type", "kvm" if self.accel == "kvm" else "qemu")
        dom.find("name").text = self.name
        mem = dom.find("memory")
        mem.set("unit", "MiB")
        mem.text = str(self.mem_mb)
        os_ = dom.find("os")
        for tag, text in (("kernel", self.kernel["image"]),
                          ("initrd", self.initrd),
                          ("cmdline", self._cmdline())):
            ET.SubElement(os_, tag).text = text
        if self.accel == "tcg":
            # As vmrun: TCG's "max" model (libvirt's "maximum" mode).
            ET.SubElement(dom, "cpu", mode="maximum", check="none")
        devices = dom.find("devices")
        devices.find("emulator").text = self.qemu
        # ttyS0: the console, to a file vmrun watches; ttyS1: the guest's
        # protocol channel, a socket QEMU connects to.
        con = ET.SubElement(devices, "serial", type="file")
        ET.SubElement(con, "source", path=self.console_path)
        ET.SubElement(con, "target", port="0")
        ctl = ET.SubElement(devices, "serial", type="unix")
        ET.SubElement(ctl, "source", mode="connect", path=self.ctl_path)
        ET.SubElement(ctl, "target", port="1")
        return ET.tostring(dom, encoding="unicode")

    def tmem_arg(self):
        dom = ET.fromstring(readme_block("domain"))
        for arg in dom.iter("{%s}arg" % QEMU_NS):
            if arg.get("value").startswith("virtio-tmem"):
                return arg.get("value")
        raise RuntimeError("README's domain has no virtio-tmem device")

    def listen(self):
        if self.listener is None:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(self.ctl_path)
            os.chown(self.ctl_path, self.qemu_user.pw_uid,
                     self.qemu_user.pw_gid)
            self.listener.listen(1)
        self.listener.settimeout(120)

    def boot(self):
        """virsh start; returns once QEMU has connected ttyS1."""
        self.listen()
        self.daemon.virsh("start", self.name)
        try:
            self.chan, _ = self.listener.accept()
        except socket.timeout:
            raise vmrun.VMError("QEMU never connected its serial socket")
        self.pid = qemu_pid(self.daemon, self.name)
        if not self.pid:
            raise vmrun.VMError("libvirt wrote no pid for %s" % self.name)

    def _start(self):
        self.console_path = os.path.join(self.files, "console.log")
        path = os.path.join(self.files, "domain.xml")
        with open(path, "w") as f:
            f.write(self.domain_xml())
        self.daemon.virsh("define", path)
        if not self.quiet:
            vmrun.log("%s: virsh define %s; virsh start" % (self.scenario,
                                                           path))
        self.boot()

    def _channel(self):
        return self.chan.fileno()

    def _send(self, data):
        self.chan.sendall(data)

    def _exit_reason(self, wait=0):
        deadline = time.time() + wait
        while pid_alive(self.pid):
            if time.time() >= deadline:
                return None
            time.sleep(0.1)
        return "QEMU (pid %d) gone: domain %s" % (self.pid, self.state())

    def state(self):
        r = self.daemon.virsh("domstate", self.name, check=False)
        return r.stdout.strip() or r.stderr.strip()

    def query_tmem(self):
        r = self.daemon.virsh("qemu-monitor-command", self.name,
                              json.dumps({"execute": "query-tmem"}))
        devs = json.loads(r.stdout)["return"]
        for d in devs:
            if d.get("id") == "tmem0":
                return d
        raise vmrun.VMError("query-tmem has no tmem0: %s" % devs)

    def qemu_log(self):
        try:
            with open(os.path.join(self.daemon.root, "log", "qemu",
                                   self.name + ".log"),
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _stderr_hint(self):
        if self.pid and pid_alive(self.pid):
            return ""
        return "; libvirt's QEMU log: %s" % self.qemu_log()[-1500:].strip()

    def _stop(self):
        if self.chan:
            self.chan.close()
            self.chan = None
        if self.pid and pid_alive(self.pid):
            self.daemon.virsh("destroy", self.name, check=False)
        # vmrun's _teardown reports QEMU's stderr from here.
        with open(os.path.join(self.tmp, "qemu.stderr"), "w") as f:
            f.write(self.qemu_log())


def size_bytes(text):
    m = re.fullmatch(r"(\d+)([KMGT]?)", text)
    return int(m.group(1)) << (10 * " KMGT".index(m.group(2) or " "))


def scenario_failures(vm, res):
    """The vm suite's checks of the lifecycle scenario, and the budget."""
    c = scenarios.Checker(res)
    v = res.verdict or {}
    if not v.get("ok"):
        c.failures.append("guest verdict not ok: %s" % v.get("failures"))
    for line in res.splats:
        c.failures.append("guest kernel: %s" % line)
    budget = size_bytes(re.search(r"budget=(\w+)", vm.tmem_arg()).group(1))
    for cp in res.checkpoints:
        c.eq(scenarios.host(cp, "budget"), budget,
             "%s: query-tmem budget" % cp["name"])
    c.expect(len(res.checkpoints) >= 5, "only %d checkpoints"
             % len(res.checkpoints))
    try:
        SCENARIO["check"](c, res, SCENARIO)
    except (KeyError, TypeError) as e:
        c.failures.append("malformed checkpoint data: %r" % (e,))
    return c.failures, budget


def restart_and_destroy(vm, budget):
    """Second start of the defined domain: a fresh device with the
    README's budget; then virsh destroy and undefine."""
    failures = []
    vm.boot()
    h = vm.query_tmem()
    if h.get("budget") != budget:
        failures.append("restart: budget %s != %d" % (h.get("budget"),
                                                       budget))
    for k in ("pages", "succ-stores", "loads"):
        if h.get(k) != 0:
            failures.append("restart: fresh device has %s=%s" % (k, h.get(k)))
    state = vm.state()
    if state != "running":
        failures.append("restart: domain %s, not running" % state)
    vm.daemon.virsh("destroy", vm.name)
    if vm._exit_reason(wait=30) is None:
        failures.append("QEMU pid %d alive 30 s after virsh destroy"
                        % vm.pid)
    state = vm.state()
    if state != "shut off":
        failures.append("after destroy: domain %s" % state)
    vm.chan.close()
    vm.chan = None
    vm.daemon.virsh("undefine", vm.name)
    names = vm.daemon.virsh("list", "--all", "--name").stdout.split()
    if vm.name in names:
        failures.append("%s still listed after undefine" % vm.name)
    return failures


def run(series):
    try:
        Libvirtd.check_host()
        qemu, kernel, image, accel = vmrun.prepare(series)
    except (Unavailable, vmrun.Unavailable) as e:
        print("SKIP libvirt on %s: %s" % (series, e))
        return SKIP
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, vmrun._term_to_exit)
    root = tempfile.mkdtemp(prefix="vtmem-libvirt-")
    as_root = not all(others_can_reach(p) for p in
                      (qemu, kernel["image"], image))
    if as_root:
        log("the QEMU user cannot reach %s, %s or %s: QEMU runs as root"
            % (qemu, kernel["image"], image))
    daemon = Libvirtd(root, qemu_as_root=as_root)
    vm = None
    failures = []
    t_daemon = t_guest = t_restart = 0
    t0 = time.time()
    try:
        daemon.start()
        t_daemon = time.time() - t0
        vm = LibvirtVM(daemon, qemu, kernel, image, SCENARIO["guest"],
                       accel=accel, mem_mb=SCENARIO["mem"],
                       params=SCENARIO["params"], reboot=True,
                       timeout=420)
        res = vm.run()
        t_guest = res.seconds
        failures, budget = scenario_failures(vm, res)
        if failures:
            print(json.dumps(res.as_dict(), indent=1))
            print("--- console (tail) ---\n%s" % res.console[-6000:])
        t1 = time.time()
        failures += restart_and_destroy(vm, budget)
        t_restart = time.time() - t1
    except (vmrun.VMError, RuntimeError, OSError,
            subprocess.TimeoutExpired) as e:
        failures.append(str(e))
        r = getattr(e, "result", None)
        if r is not None:
            print("--- console (tail) ---\n%s" % r.console[-6000:])
            print("--- qemu ---\n%s" % getattr(r, "qemu_stderr", ""))
    finally:
        if vm is not None:
            if vm.pid and pid_alive(vm.pid):
                daemon.virsh("destroy", vm.name, check=False)
            if vm.listener:
                vm.listener.close()
        rc = daemon.stop()
        if rc != 0:
            failures.append("libvirtd did not exit cleanly on SIGTERM "
                            "(%s)" % rc)
        if failures:
            print("--- libvirtd ---\n%s" % daemon.tail(40))
        if os.environ.get("VTMEM_KEEP"):
            log("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("libvirt on %s (%s): libvirtd up in %.1f s, guest %.1f s, "
          "restart+destroy %.1f s, %.1f s in all" % (
              series, accel, t_daemon, t_guest, t_restart,
              time.time() - t0))
    for f in failures:
        print("FAIL: %s" % f)
    if failures:
        return 1
    print("PASS")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kernel", default="6.12", help="6.12 or 6.1")
    return run(ap.parse_args().kernel)


if __name__ == "__main__":
    sys.exit(main())
