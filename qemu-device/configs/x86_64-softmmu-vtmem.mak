# Devices of the virtio-tmem project's minimal x86_64 system emulator.
# scripts/build-qemu.sh links this file into QEMU's tree as
# configs/devices/x86_64-softmmu/vtmem.mak and configures with
# --without-default-devices --with-devices-x86_64=vtmem.

# Boards: q35 (PCIe) and pc (i440fx); both bring the ISA serial port.
# microvm brings virtio-mmio, the transport of virtio-tmem-device (it needs
# libfdt: configured --enable-fdt=system).
CONFIG_Q35=y
CONFIG_I440FX=y
CONFIG_MICROVM=y

# q35 hot-plug needs a root port: -device pcie-root-port,id=rp0
CONFIG_PCIE_PORT=y

# Guest plumbing for tests: disk, console, entropy, isa-debug-exit.
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=y
CONFIG_VIRTIO_SERIAL=y
CONFIG_VIRTIO_RNG=y
CONFIG_ISA_DEBUG=y

# The device under development.
CONFIG_VIRTIO_TMEM=y
