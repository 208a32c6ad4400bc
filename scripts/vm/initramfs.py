#!/usr/bin/python3
"""Build the busybox initramfs that every virtio-tmem VM test boots.

The image holds busybox-static, the kernel modules the guest needs (taken
from the guest kernel's own lib/modules or usr/lib/modules tree,
dependencies resolved from modules.dep and decompressed, since busybox
insmod cannot read .ko.xz or .ko.zst),
the project's module (virtio_tmem.ko), the static test programs from
tests/vm/guest/ and tests/vm/guest/init.sh as /init.

Images are cached by content: the name is a hash of every input, so a
second build with the same inputs costs one hash of a few MB.  The cpio
is left uncompressed because under TCG decompressing costs more boot time
than reading a few extra MB.

Usage (also imported by vmrun.py):
  initramfs.py --moddir KMODDIR --ko virtio_tmem.ko [--ko ...]
               [--cache DIR]   -> prints the image path
"""

import argparse
import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
GUEST_DIR = os.path.join(TOP, "tests", "vm", "guest")
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
# Modules a guest needs from the kernel tree besides ours: virtio-pci and
# virtio-blk (virtio-pci built in on 6.12 and 7.x, modules on 6.1; builtins
# are skipped).
BASE_MODULES = ("virtio_pci", "virtio_blk")


class BuildError(Exception):
    pass


def cache_dir(override=None):
    if override:
        return override
    base = os.environ.get("VTMEM_CACHE", "/var/cache/virtio-tmem")
    return os.path.join(base, "vm")


def _norm(name):
    return name.replace("-", "_")


def _modname(path):
    base = os.path.basename(path)
    return _norm(re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base))


def _read_ko(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        zstd = shutil.which("zstd")
        if not zstd:
            raise BuildError("%s: zstd module but no zstd tool" % path)
        return subprocess.run([zstd, "-dc", path], check=True,
                              capture_output=True).stdout
    return data


def _ko_depends(data):
    """The depends= field of a module's .modinfo section."""
    m = re.search(rb"(?:^|\x00)depends=([^\x00]*)\x00", data)
    if not m or not m.group(1):
        return []
    return [_norm(d) for d in m.group(1).decode().split(",") if d]


class KernelModules:
    """lib/modules/KREL (usr/lib/modules/KREL) of an unpacked guest kernel.

    Debian's package ships no modules.dep (depmod runs at install time), so
    dependencies come from each needed module's own depends= field.
    """

    def __init__(self, moddir):
        self.moddir = moddir
        self.paths = {}
        self.builtin = set()
        for root, _, names in os.walk(os.path.join(moddir, "kernel")):
            for n in names:
                if re.search(r"\.ko(\.(xz|gz|zst))?$", n):
                    self.paths[_modname(n)] = os.path.join(root, n)
        try:
            with open(os.path.join(moddir, "modules.builtin")) as f:
                self.builtin = {_modname(x.strip()) for x in f if x.strip()}
        except FileNotFoundError:
            pass
        self.data = {}

    def read(self, name):
        if name not in self.data:
            self.data[name] = _read_ko(self.paths[name])
        return self.data[name]

    def load_order(self, names, order=None, seen=None):
        """Modules to insmod, dependencies first; builtins left out."""
        order = [] if order is None else order
        seen = set() if seen is None else seen
        for name in map(_norm, names):
            if name in seen or name in self.builtin:
                continue
            seen.add(name)
            if name not in self.paths:
                raise BuildError("module %s not in %s" % (name, self.moddir))
            self.load_order(_ko_depends(self.read(name)), order, seen)
            order.append(name)
        return order


# The headers the guest programs include: the wire format and the pages'
# content (shared with the host-side tests and tmem-bench).
PROGRAM_INCLUDES = (os.path.join(TOP, "proto"),
                    os.path.join(TOP, "tests", "common"))


def _headers_digest():
    h = hashlib.sha256()
    for d in PROGRAM_INCLUDES:
        for n in sorted(os.listdir(d)):
            if n.endswith(".h"):
                with open(os.path.join(d, n), "rb") as f:
                    h.update(n.encode() + b"\0" + f.read())
    return h.digest()


def _compile_programs(cache):
    """gcc -static every tests/vm/guest/*.c; cached by the hash of the
    source and the headers it may include."""
    out = {}
    headers = _headers_digest()
    for src in sorted(os.listdir(GUEST_DIR)):
        if not src.endswith(".c"):
            continue
        path = os.path.join(GUEST_DIR, src)
        with open(path, "rb") as f:
            digest = hashlib.sha256(headers + f.read()).hexdigest()[:16]
        name = src[:-2]
        binary = os.path.join(cache, "bin", "%s-%s" % (name, digest))
        if not os.path.exists(binary):
            os.makedirs(os.path.dirname(binary), exist_ok=True)
            tmp = binary + ".tmp%d" % os.getpid()
            cmd = ["gcc", "-static", "-O2", "-Wall", "-Wextra"]
            for d in PROGRAM_INCLUDES:
                cmd += ["-I", d]
            cmd += ["-o", tmp, path]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                raise BuildError("%s failed:\n%s" % (" ".join(cmd), r.stderr))
            os.replace(tmp, binary)
        out["bin/" + name] = binary
    return out


class Cpio:
    """A newc archive with root-owned entries, written in memory."""

    def __init__(self):
        self.parts = []
        self.ino = 1

    def _entry(self, name, mode, data=b"", nlink=1):
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0,
            len(name) + 1, 0))
        self.ino += 1
        blob = hdr.encode() + name.encode() + b"\0"
        blob += b"\0" * (-len(blob) % 4)
        blob += data + b"\0" * (-len(data) % 4)
        self.parts.append(blob)

    def dir(self, name):
        self._entry(name, 0o040755, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._entry(name, 0o120777, target.encode())

    def bytes(self):
        self._entry("TRAILER!!!", 0)
        return b"".join(self.parts)


def _busybox():
    for p in BUSYBOX_CANDIDATES:
        if os.path.exists(p):
            return p
    raise BuildError("busybox not found (apt-get install busybox-static)")


def build(moddir, kos, cache=None, extra_modules=()):
    """Return the path of the initramfs for this kernel and these modules."""
    cache = cache_dir(cache)
    os.makedirs(cache, exist_ok=True)
    km = KernelModules(moddir)
    files = {}   # path in image -> (bytes, mode)

    kos = list(kos)
    ext = {}
    for ko in kos:
        data = _read_ko(ko)
        ext[_modname(ko)] = data
    wanted = list(BASE_MODULES) + list(extra_modules)
    for data in ext.values():
        wanted += [d for d in _ko_depends(data) if d not in ext]
    order = km.load_order(wanted)
    for name in order:
        files["lib/modules/%s.ko" % name] = (km.read(name), 0o644)
    for name, data in ext.items():
        files["lib/modules/%s.ko" % name] = (data, 0o644)
    files["etc/vtmem/base-modules"] = (("\n".join(order) + "\n").encode(),
                                      0o644)
    files["etc/vtmem/kernel-release"] = (
        (os.path.basename(os.path.normpath(moddir)) + "\n").encode(), 0o644)

    with open(_busybox(), "rb") as f:
        files["bin/busybox"] = (f.read(), 0o755)
    for name, path in _compile_programs(cache).items():
        with open(path, "rb") as f:
            files[name] = (f.read(), 0o755)
    for src in sorted(os.listdir(GUEST_DIR)):
        if src.endswith(".sh"):
            with open(os.path.join(GUEST_DIR, src), "rb") as f:
                data = f.read()
            dest = "init" if src == "init.sh" else "lib/vtmem/" + src
            files[dest] = (data, 0o755)

    h = hashlib.sha256()
    for name in sorted(files):
        data, mode = files[name]
        h.update(name.encode() + b"\0%o\0" % mode)
        h.update(hashlib.sha256(data).digest())
    image = os.path.join(cache, "initramfs-%s.cpio" % h.hexdigest()[:20])
    if os.path.exists(image):
        return image

    cpio = Cpio()
    dirs = {"bin", "dev", "proc", "sys", "tmp", "run", "mnt", "etc",
            "lib", "lib/modules", "lib/vtmem", "etc/vtmem"}
    for name in files:
        d = os.path.dirname(name)
        while d:
            dirs.add(d)
            d = os.path.dirname(d)
    for d in sorted(dirs):
        cpio.dir(d)
    cpio.symlink("sbin", "bin")
    for name in sorted(files):
        data, mode = files[name]
        cpio.file(name, data, mode)
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".initramfs-")
    with os.fdopen(fd, "wb") as f:
        f.write(cpio.bytes())
    os.replace(tmp, image)
    return image


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--moddir", required=True,
                    help="lib/modules/KREL of the unpacked guest kernel")
    ap.add_argument("--ko", action="append", default=[],
                    help="extra module to include (repeatable)")
    ap.add_argument("--cache", help="cache directory")
    args = ap.parse_args()
    try:
        print(build(args.moddir, args.ko, args.cache))
    except BuildError as e:
        print("initramfs: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
