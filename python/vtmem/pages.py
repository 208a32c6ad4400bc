"""Page contents for the Python tests and benchmarks, each a pure function
of its seed (so a page is regenerated to check it, not kept).  The C
side's generator is tests/common/vtmem-pages.h.

  page_of(seed)            text of a few words: compresses well
  page_of(seed, False)     random: incompressible, kept raw
  tier_page(seed)          half random, half text (about 2.1 KiB
                           compressed), one in eight all random: pages
                           worth several budgets fit a disk tier test
  mixed_page(seed)         one of KINDS by seed % 5, each a class of
                           handle libtmem keeps: text (LZ4), random
                           (raw), a 32-bit word repeated, a 64-bit word
                           whose halves differ, zero (same-filled: no
                           data, the word in the handle)
"""

import random
import struct

from .wire import PAGE


def page_of(seed, compressible=True):
    rnd = random.Random(seed)
    if compressible:
        words = [b"tmem", b"page", b"%08d" % seed, b"swap", b"    "]
        data = b"".join(rnd.choice(words) for _ in range(PAGE // 4))
        return data[:PAGE]
    return bytes(rnd.getrandbits(8) for _ in range(PAGE))


def tier_page(seed):
    rnd = random.Random(seed)
    if seed % 8 == 7:
        return rnd.randbytes(PAGE)
    text = b"".join(rnd.choice([b"tmem ", b"page ", b"%06d " % seed])
                    for _ in range(PAGE // 8))
    return (rnd.randbytes(PAGE // 2) + text)[:PAGE]


KINDS = ("text", "random", "word32", "word64", "zero")


def mixed_page(seed):
    kind = KINDS[seed % len(KINDS)]
    if kind == "text":
        return page_of(seed)
    if kind == "random":
        return random.Random(seed).randbytes(PAGE)
    if kind == "word32":
        return struct.pack("<I", 0x5A000000 | seed & 0xFFFFFF) * (PAGE // 4)
    if kind == "word64":
        return struct.pack("<II", 0xA5000000 | seed & 0xFFFFFF,
                           ~seed & 0xFFFFFFFF) * (PAGE // 8)
    return bytes(PAGE)
