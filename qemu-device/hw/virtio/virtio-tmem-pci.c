/*
 * Virtio transcendent memory PCI bindings
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"

#include "hw/virtio/virtio-pci.h"
#include "hw/virtio/virtio-tmem.h"
#include "hw/virtio/virtio-tmem-compat.h"
#include "hw/qdev-properties.h"
#include "qapi/error.h"
#include "qemu/module.h"
#include "qom/object.h"

typedef struct VirtIOTmemPCI VirtIOTmemPCI;

/*
 * virtio-tmem-pci: This extends VirtioPCIProxy.
 */
#define TYPE_VIRTIO_TMEM_PCI "virtio-tmem-pci"
DECLARE_INSTANCE_CHECKER(VirtIOTmemPCI, VIRTIO_TMEM_PCI,
                         TYPE_VIRTIO_TMEM_PCI)

struct VirtIOTmemPCI {
    VirtIOPCIProxy parent_obj;
    VirtIOTmem vdev;
};

static const Property virtio_tmem_pci_properties[] = {
    DEFINE_PROP_BIT("ioeventfd", VirtIOPCIProxy, flags,
                    VIRTIO_PCI_FLAG_USE_IOEVENTFD_BIT, true),
    DEFINE_PROP_UINT32("vectors", VirtIOPCIProxy, nvectors,
                       DEV_NVECTORS_UNSPECIFIED),
};

static void virtio_tmem_pci_realize(VirtIOPCIProxy *vpci_dev, Error **errp)
{
    VirtIOTmemPCI *dev = VIRTIO_TMEM_PCI(vpci_dev);
    DeviceState *vdev = DEVICE(&dev->vdev);

    /* One vector per request queue, plus one for configuration changes. */
    if (vpci_dev->nvectors == DEV_NVECTORS_UNSPECIFIED) {
        vpci_dev->nvectors = dev->vdev.conf.num_queues + 1;
    }

    virtio_pci_force_virtio_1(vpci_dev);
    qdev_realize(vdev, BUS(&vpci_dev->bus), errp);
}

static void virtio_tmem_pci_class_init(ObjectClass *klass,
                                       VirtIOTmemClassData data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioPCIClass *k = VIRTIO_PCI_CLASS(klass);
    PCIDeviceClass *pcidev_k = PCI_DEVICE_CLASS(klass);

    k->realize = virtio_tmem_pci_realize;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    pcidev_k->revision = VIRTIO_PCI_ABI_VERSION;
    pcidev_k->class_id = PCI_CLASS_OTHERS;
    device_class_set_props(dc, virtio_tmem_pci_properties);
}

static void virtio_tmem_pci_instance_init(Object *obj)
{
    VirtIOTmemPCI *dev = VIRTIO_TMEM_PCI(obj);

    virtio_instance_init_common(obj, &dev->vdev, sizeof(dev->vdev),
                                TYPE_VIRTIO_TMEM);
    /* Instance properties are not aliased by virtio_instance_init_common(). */
    object_property_add_alias(obj, "budget", OBJECT(&dev->vdev), "budget");
    object_property_add_alias(obj, "stats", OBJECT(&dev->vdev), "stats");
    object_property_add_alias(obj, "x-disk-error", OBJECT(&dev->vdev),
                              "x-disk-error");
    object_property_add_alias(obj, "x-disk-hang", OBJECT(&dev->vdev),
                              "x-disk-hang");
}

static const VirtioPCIDeviceTypeInfo virtio_tmem_pci_info = {
    .generic_name  = TYPE_VIRTIO_TMEM_PCI,
    .instance_size = sizeof(VirtIOTmemPCI),
    .instance_init = virtio_tmem_pci_instance_init,
    .class_init    = virtio_tmem_pci_class_init,
};

static void virtio_tmem_pci_register(void)
{
    virtio_pci_types_register(&virtio_tmem_pci_info);
}

type_init(virtio_tmem_pci_register)
