"""The project's own programs the tests and scripts run."""

import os
import shutil

from vtmem import TOP


def find_vtmem_top():
    """vtmem-top: the one meson points at ($VTMEM_TOP), build/'s, or
    PATH's; None when there is none."""
    for path in (os.environ.get("VTMEM_TOP"),
                 os.path.join(TOP, "build", "tools", "vtmem-top")):
        if path and os.access(path, os.X_OK):
            return path
    return shutil.which("vtmem-top")
