#!/bin/sh
# Build virtio_tmem.ko (normal and VTMEM_TEST=1) against one guest kernel
# series, warnings as errors.  Exit 77 (skip) if its packages cannot be
# obtained.
#
# Usage: tests/guest/build-module.sh SERIES
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
exec "$top/scripts/build-guest-module.sh" "$1"
