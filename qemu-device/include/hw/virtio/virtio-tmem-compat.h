/*
 * Virtio transcendent memory device: differences between QEMU releases
 *
 * The device builds against QEMU 10.0 and 10.2 (scripts/build-qemu.sh,
 * QEMU_SERIES).  Every API difference between them is handled here, and
 * nowhere else, so that the device reads as code of one QEMU release.
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef QEMU_VIRTIO_TMEM_COMPAT_H
#define QEMU_VIRTIO_TMEM_COMPAT_H

#include "hw/virtio/virtio.h"
#include "qemu/main-loop.h"

#define VIRTIO_TMEM_QEMU_AT_LEAST(major, minor) \
    (QEMU_VERSION_MAJOR > (major) || \
     (QEMU_VERSION_MAJOR == (major) && QEMU_VERSION_MINOR >= (minor)))

/* The memory API moved from exec/ to system/ in 10.1. */
#if VIRTIO_TMEM_QEMU_AT_LEAST(10, 1)
#include "system/memory.h"
#else
#include "exec/memory.h"
#endif

/*
 * The type of TypeInfo.class_init's data argument: const since 10.1
 * ("qom: Make class_init's data argument const").
 */
#if VIRTIO_TMEM_QEMU_AT_LEAST(10, 1)
typedef const void *VirtIOTmemClassData;
#else
typedef void *VirtIOTmemClassData;
#endif

/*
 * VirtioDeviceClass.set_status returns an int since 10.1 (non-zero: the
 * status could not be set, which virtio_set_status() logs); before, void.
 * The device always succeeds: it returns VIRTIO_TMEM_STATUS_SET.
 */
#if VIRTIO_TMEM_QEMU_AT_LEAST(10, 1)
typedef int VirtIOTmemSetStatusRet;
#define VIRTIO_TMEM_STATUS_SET 0
#else
typedef void VirtIOTmemSetStatusRet;
#define VIRTIO_TMEM_STATUS_SET
#endif

/*
 * SaveVMHandlers' last pass of pre-copy: save_live_complete_precopy in
 * 10.0, save_complete since 10.1 (same signature).
 */
#if VIRTIO_TMEM_QEMU_AT_LEAST(10, 1)
#define VIRTIO_TMEM_SAVE_COMPLETE .save_complete
#else
#define VIRTIO_TMEM_SAVE_COMPLETE .save_live_complete_precopy
#endif

/*
 * Notify the guest about used buffers of @vq, from the main loop or from
 * an IOThread.  Since 10.1 virtio_notify() itself takes the guest notifier
 * (irqfd) path in an IOThread and virtio_notify_irqfd() is gone; before,
 * a caller in an IOThread had to choose virtio_notify_irqfd().
 */
static inline void virtio_tmem_notify(VirtIODevice *vdev, VirtQueue *vq)
{
#if VIRTIO_TMEM_QEMU_AT_LEAST(10, 1)
    virtio_notify(vdev, vq);
#else
    if (qemu_in_iothread()) {
        virtio_notify_irqfd(vdev, vq);
    } else {
        virtio_notify(vdev, vq);
    }
#endif
}

#endif
