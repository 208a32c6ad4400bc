"""The wire format, read from proto/virtio_tmem.h at import time.

The header is the one definition of the protocol (the guest driver, the
device and libtmem compile it); Python reads it rather than retyping it:

  DEFINES         every object-like #define with a value: {name: int}
  <name>          each of them, e.g. VIRTIO_TMEM_OP_STORE, VIRTIO_ID_TMEM,
                  and without the VIRTIO_TMEM_ prefix: OP_STORE, S_OK,
                  F_MQ, PAGE_SIZE, POOL_EPHEMERAL
  PAGE            PAGE_SIZE
  STRUCTS         {struct name: Layout}: a little-endian struct.Struct
                  whose fields are the header's, in its order; an array
                  (reserved bytes) is padding
  REQ, RESP, CONFIG  virtio_tmem_req, virtio_tmem_resp, virtio_tmem_config

The header's own static assertions (sizeof and VIRTIO_TMEM_CHECK_LAYOUT)
are checked against the layout read here, so a parse that went wrong
fails at import, as does a constant the header no longer defines.
tests/scripts/wire-python.py compares all of it with what the C compiler
makes of the header.

parse_defines() reads the same #define form from other headers, e.g.
the virtio headers of <linux/...> (virtio_header()).
"""

import ast
import operator
import os
import re
import struct

from . import TOP

HEADER = os.path.join(TOP, "proto", "virtio_tmem.h")
LINUX_INCLUDE = "/usr/include/linux"

TYPES = {"__u8": "B", "__le16": "H", "__le32": "I", "__le64": "Q",
         "__u16": "H", "__u32": "I", "__u64": "Q"}

_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+([A-Za-z_]\w*)\b(?!\()"
                     r"[ \t]*(.*?)[ \t]*$", re.M)
_STRUCT = re.compile(r"\bstruct\s+(\w+)\s*\{(.*?)\}\s*;", re.S)
_FIELD = re.compile(r"^\s*(\w+)\s+(\w+)\s*(?:\[\s*(\w+)\s*\])?\s*;\s*$")
_SIZEOF = re.compile(r"_Static_assert\s*\(\s*sizeof\s*\(\s*struct\s+(\w+)"
                     r"\s*\)\s*==\s*(\w+)")
_OFFSET = re.compile(r"^VIRTIO_TMEM_CHECK_LAYOUT\s*\(\s*(\w+)\s*,\s*(\w+)"
                     r"\s*,\s*(\w+)\s*\)\s*;", re.M)

_OPS = {ast.LShift: operator.lshift, ast.RShift: operator.rshift,
        ast.BitOr: operator.or_, ast.BitAnd: operator.and_,
        ast.BitXor: operator.xor, ast.Add: operator.add,
        ast.Sub: operator.sub, ast.Mult: operator.mul}


class WireError(Exception):
    """The header says something this reader does not understand, or
    contradicts itself."""


def _strip_comments(text):
    # A comment keeps its newlines: line-anchored patterns still match.
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"),
                  text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _int(text, known):
    """The value of a C integer constant expression: literals (with U/L
    suffixes), earlier defines, parentheses, + - * << >> | & ^ ~."""
    text = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]+\b", r"\1", text)
    text = re.sub(r"\b0([0-7]+)\b", r"0o\1", text)

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
            return ~ev(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise WireError("not an integer expression")

    try:
        return ev(ast.parse(text.strip(), mode="eval"))
    except (SyntaxError, WireError):
        raise WireError("cannot evaluate %r" % text) from None


def parse_defines(text, strict=True):
    """{name: value} of every object-like #define with a value.  strict:
    a value that is not an integer expression raises WireError (else it
    is left out, for headers not written for this reader)."""
    text = _strip_comments(text)
    text = re.sub(r"\\\n", " ", text)
    out = {}
    for name, value in _DEFINE.findall(text):
        if not value:
            continue            # include guards
        try:
            out[name] = _int(value, out)
        except WireError:
            if strict:
                raise WireError("#define %s %s: not an integer constant"
                                % (name, value))
    return out


class Layout(struct.Struct):
    """A wire struct: struct.Struct plus the names and offsets of its
    fields (padding has none)."""

    def __init__(self, name, fields):
        fmt, self.fields, self.offsets, off = "<", (), {}, 0
        for ctype, field, count in fields:
            size = struct.calcsize("<" + TYPES[ctype])
            self.offsets[field] = off
            if count is None:
                fmt += TYPES[ctype]
                self.fields += (field,)
                off += size
            else:
                fmt += "%dx" % (size * count)
                off += size * count
        super().__init__(fmt)
        self.name = name


def parse_structs(text, known):
    out = {}
    for name, body in _STRUCT.findall(_strip_comments(text)):
        fields = []
        for decl in filter(str.strip, body.split("\n")):
            m = _FIELD.match(decl)
            if not m or m.group(1) not in TYPES:
                raise WireError("struct %s: cannot read %r" % (name, decl))
            ctype, field, count = m.groups()
            if count is not None:
                # Only reserved bytes come in arrays: a field that means
                # something must not silently become padding.
                if not field.startswith("reserved"):
                    raise WireError("struct %s: array %s is not reserved"
                                    % (name, field))
                count = int(count) if count.isdigit() else known[count]
            fields.append((ctype, field, count))
        out[name] = Layout(name, fields)
    return out


def check_asserts(text, structs, known):
    """The header's static assertions, against the layouts read."""
    n = 0
    for name, size in _SIZEOF.findall(text):
        if structs[name].size != _int(size, known):
            raise WireError("struct %s: %d bytes read, the header says %s"
                            % (name, structs[name].size, size))
        n += 1
    for name, field, off in _OFFSET.findall(text):
        if structs[name].offsets.get(field) != _int(off, known):
            raise WireError("%s.%s: offset %s read, the header says %s"
                            % (name, field, structs[name].offsets.get(field),
                               off))
        n += 1
    return n


def load(path=HEADER):
    """(defines, structs) of a header in proto/virtio_tmem.h's form."""
    with open(path) as f:
        text = f.read()
    defines = parse_defines(text)
    structs = parse_structs(text, defines)
    check_asserts(text, structs, defines)
    return defines, structs


def virtio_header(name):
    """The integer #defines of <linux/NAME> (the virtio standard's own
    constants: virtio_config.h, virtio_ring.h, virtio_pci.h)."""
    with open(os.path.join(LINUX_INCLUDE, name)) as f:
        return parse_defines(f.read(), strict=False)


DEFINES, STRUCTS = load()
globals().update(DEFINES)
globals().update({k[len("VIRTIO_TMEM_"):]: v for k, v in DEFINES.items()
                  if k.startswith("VIRTIO_TMEM_")})
PAGE = DEFINES["VIRTIO_TMEM_PAGE_SIZE"]
REQ = STRUCTS["virtio_tmem_req"]
RESP = STRUCTS["virtio_tmem_resp"]
CONFIG = STRUCTS["virtio_tmem_config"]
