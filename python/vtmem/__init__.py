"""The Python helpers the project's tests, scripts and benchmarks share.

Standard library only, importable from a fresh clone without installing
anything: a caller puts the repository's python/ directory on sys.path
(as QEMU's own tree does with python/qemu/).

  vtmem.qemu   where the project's QEMU is, and how it runs and stops
  vtmem.qmp    one QMP client
  vtmem.wire   proto/virtio_tmem.h's constants and structs, read from it
  vtmem.pages  page contents for the Python tests (C: tests/common/)
  vtmem.tools  the project's own programs (vtmem-top)
"""

import os

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
