#!/usr/bin/python3
"""python/vtmem/wire.py reads proto/virtio_tmem.h the way the C compiler
does, and what Python uses of it is there.

1. Every object-like #define with a value in the header (found by a plain
   scan, independent of the reader) is in wire.DEFINES, with the value a
   C program compiled against the header prints; every struct has the
   compiler's sizeof and the offset of every named field.
2. Every name the Python code of the repository imports from vtmem.wire
   (or reads as wire.NAME) is defined: a constant the header drops or
   renames fails here, by name, rather than in a test that happens to run.
3. The reader refuses what it cannot read (a non-integer #define, an array
   that is not reserved, a layout contradicting the header's assertions),
   and a header missing a constant yields a reader without it.

Exit 77 (SKIP) without a C compiler.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "python"))
from vtmem import wire  # noqa: E402

HEADER = os.path.join(TOP, "proto", "virtio_tmem.h")
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def scan(text):
    """Names of the #defines with a value, and the structs, by plain scan."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    defines = [m.group(1) for m in re.finditer(
        r"^#define\s+(\w+)[ \t]+\S", text, re.M)
        if not re.match(r"\w+\(", text[m.start(1):m.start(1) + 80])]
    structs = re.findall(r"^struct\s+(\w+)\s*\{", text, re.M)
    return defines, structs


def compiler_view(defines, structs):
    """What C makes of the header: {name: value}, {struct: (size,
    {field: offset})}."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        print("SKIP: no C compiler")
        sys.exit(77)
    lines = ["#include <stdio.h>", "#include <stddef.h>",
             '#include "virtio_tmem.h"', "int main(void)", "{"]
    for d in defines:
        lines.append('\tprintf("D %s %%lld\\n", (long long)(%s));' % (d, d))
    for s in structs:
        lines.append('\tprintf("S %s %%zu\\n", sizeof(struct %s));' % (s, s))
        for f in wire.STRUCTS[s].offsets:
            lines.append('\tprintf("F %s %s %%zu\\n", offsetof(struct %s, %s));'
                         % (s, f, s, f))
    lines += ["\treturn 0;", "}"]
    tmp = tempfile.mkdtemp(prefix="wire-python-")
    try:
        src = os.path.join(tmp, "t.c")
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        exe = os.path.join(tmp, "t")
        subprocess.run([cc, "-std=gnu11", "-Wall", "-Werror", "-I",
                        os.path.dirname(HEADER), "-o", exe, src], check=True)
        out = subprocess.run([exe], check=True, capture_output=True,
                             text=True).stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    values, layouts = {}, {}
    for line in out.splitlines():
        w = line.split()
        if w[0] == "D":
            values[w[1]] = int(w[2])
        elif w[0] == "S":
            layouts[w[1]] = (int(w[2]), {})
        else:
            layouts[w[1]][1][w[2]] = int(w[3])
    return values, layouts


def check_against_compiler():
    with open(HEADER) as f:
        defines, structs = scan(f.read())
    if len(defines) < 15 or len(structs) < 3:
        fail("the scan found only %d defines and %d structs in %s" %
             (len(defines), len(structs), HEADER))
    values, layouts = compiler_view(defines, structs)
    for d in defines:
        if d not in wire.DEFINES:
            fail("%s is in the header but not in wire.DEFINES" % d)
        elif wire.DEFINES[d] != values[d]:
            fail("%s: wire reads %d, C says %d" % (d, wire.DEFINES[d],
                                                    values[d]))
    for d in wire.DEFINES:
        if d not in defines:
            fail("wire.DEFINES has %s, which the header does not define" % d)
    for s in structs:
        size, offsets = layouts[s]
        lay = wire.STRUCTS.get(s)
        if lay is None:
            fail("struct %s is not in wire.STRUCTS" % s)
            continue
        if lay.size != size:
            fail("struct %s: wire %d bytes, C %d" % (s, lay.size, size))
        for f, off in offsets.items():
            if lay.offsets[f] != off:
                fail("%s.%s: wire offset %d, C %d" % (s, f, lay.offsets[f],
                                                      off))
    print("%d defines and %d structs agree with the C compiler" %
          (len(defines), len(structs)))


def python_files():
    for d in ("tests", "scripts", "bench", "python"):
        for root, _, files in os.walk(os.path.join(TOP, d)):
            for f in files:
                if f.endswith(".py"):
                    yield os.path.join(root, f)


def check_users():
    """Every name taken from vtmem.wire exists in it."""
    used = {}
    for path in python_files():
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "vtmem.wire":
                names = [a.name for a in node.names]
            elif (isinstance(node, ast.Attribute) and
                  isinstance(node.value, ast.Name) and node.value.id == "wire"):
                names = [node.attr]
            else:
                continue
            for n in names:
                used.setdefault(n, os.path.relpath(path, TOP))
    missing = [n for n in used if not hasattr(wire, n)]
    for n in missing:
        fail("%s uses vtmem.wire.%s, which proto/virtio_tmem.h does not "
             "define" % (used[n], n))
    if len(used) < 10:
        fail("only %d names used from vtmem.wire: is the scan broken?" %
             len(used))
    print("%d names used from vtmem.wire, %d of them undefined" %
          (len(used), len(missing)))


def expect_error(what, text):
    try:
        d = wire.parse_defines(text)
        wire.check_asserts(text, wire.parse_structs(text, d), d)
    except wire.WireError:
        return
    fail("the reader took %s" % what)


def check_reader():
    with open(HEADER) as f:
        text = f.read()
    expect_error("a define that is not an integer",
                 text + '\n#define VIRTIO_TMEM_NAME "tmem"\n')
    expect_error("an array that is not reserved", text.replace(
        "__u8 reserved[3];", "__u8 status2[3];"))
    expect_error("a layout against the header's assertion", text.replace(
        "virtio_tmem_req, pool_id, 4", "virtio_tmem_req, pool_id, 8"))
    gone = wire.parse_defines(text.replace("#define VIRTIO_TMEM_S_IOERR",
                                           "#define VIRTIO_TMEM_S_IOERR_"))
    if "VIRTIO_TMEM_S_IOERR" in gone:
        fail("a renamed define is still read under its old name")
    print("the reader refuses what it cannot read")


def main():
    check_against_compiler()
    check_users()
    check_reader()
    if failures:
        print("%d failures" % len(failures))
        return 1
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
