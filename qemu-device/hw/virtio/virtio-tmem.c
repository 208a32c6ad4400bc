/*
 * Virtio transcendent memory device
 *
 * The guest stores and loads whole pages by key; the host keeps them
 * compressed within a byte budget and may refuse any store.  For requests
 * this file is the transport only: each is handed, as the descriptor
 * chain's scatter-gather lists, to libtmem's wire entry point, which
 * validates, executes and answers it.  What is the device's own: the
 * config space and the steps of a shrink when the host lowers the
 * budget at run time (libtmem reclaims, the device asks the guest).
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qapi/qapi-events-virtio.h"
#include "qapi/qapi-visit-virtio.h"
#include "qapi/visitor.h"
#include "block/aio-wait.h"
#include "qemu/error-report.h"
#include "qemu/iov.h"
#include "qemu/main-loop.h"
#include "qemu/module.h"
#include "qemu/timer.h"
#include "qemu/uuid.h"
#include "hw/boards.h"
#include "hw/qdev-properties.h"
#include "hw/qdev-properties-system.h"
#include "hw/virtio/virtio.h"
#include "hw/virtio/virtio-bus.h"
#include "hw/virtio/iothread-vq-mapping.h"
#include "hw/virtio/virtio-tmem.h"
#include "hw/virtio/virtio-tmem-compat.h"
#include "migration/qemu-file-types.h"
#include "migration/vmstate.h"
#include "system/iothread.h"
#include "system/system.h"
#include "standard-headers/linux/virtio_tmem.h"
#include "trace.h"

#include <tmem.h>

#define VIRTIO_TMEM_DEFAULT_QUEUE_SIZE 256

/* size_pages is a 64-bit field, but guests count keys in 32 bits. */
#define VIRTIO_TMEM_MAX_SIZE_PAGES ((uint64_t)UINT32_MAX)

/*
 * A queue handler yields to its event loop after this long (or after
 * queue-size requests), and continues from a bottom half: one guest's
 * slow requests cannot keep the main loop or an IOThread to itself.
 */
#define VIRTIO_TMEM_SLICE_NS (1 * SCALE_MS)

static const char *virtio_tmem_id(VirtIOTmem *s)
{
    DeviceState *dev = DEVICE(s);
    BusState *bus = qdev_get_parent_bus(dev);

    /* Users name the proxy (-device virtio-tmem-pci,id=...), not us. */
    if (!dev->id && bus && bus->parent) {
        return bus->parent->id;
    }
    return dev->id;
}

/* The device has a disk tier: a backing file, or a RADOS pool it reached. */
static bool virtio_tmem_has_tier(VirtIOTmem *s)
{
    return s->conf.backing_file ||
           (s->conf.rados_pool && !s->conf.rados_off);
}

static void virtio_tmem_trace_request(VirtIOTmem *s, unsigned queue,
                                      VirtQueueElement *elem)
{
    uint8_t opcode = 0;

    if (trace_event_get_state_backends(TRACE_VIRTIO_TMEM_REQUEST)) {
        iov_to_buf(elem->out_sg, elem->out_num, 0, &opcode, sizeof(opcode));
        trace_virtio_tmem_request(s, queue, opcode, elem->out_num,
                                  elem->in_num);
    }
}

static void virtio_tmem_trace_response(VirtIOTmem *s, unsigned queue,
                                       VirtQueueElement *elem, int len)
{
    struct virtio_tmem_resp resp = { 0 };

    if (trace_event_get_state_backends(TRACE_VIRTIO_TMEM_RESPONSE)) {
        /* libtmem puts the response in the last bytes it wrote. */
        if (len >= sizeof(resp)) {
            iov_to_buf(elem->in_sg, elem->in_num, len - sizeof(resp),
                       &resp, sizeof(resp));
        }
        trace_virtio_tmem_response(s, queue, len, resp.status);
    }
}

/* Only the queue's own thread writes its counters; readers take a snapshot. */
static inline void virtio_tmem_timing_add(uint64_t *counter, uint64_t delta)
{
    qatomic_set(counter, *counter + delta);
}

static unsigned virtio_tmem_timing_kind(VirtQueueElement *elem)
{
    uint8_t opcode = 0;

    iov_to_buf(elem->out_sg, elem->out_num, 0, &opcode, sizeof(opcode));
    return opcode == VIRTIO_TMEM_OP_STORE ? VIRTIO_TMEM_TIMING_STORE :
           opcode == VIRTIO_TMEM_OP_LOAD ? VIRTIO_TMEM_TIMING_LOAD :
           VIRTIO_TMEM_TIMING_OTHER;
}

/*
 * Only guest RAM may hold a request's buffers.  Anything else (the
 * device's own BAR, unassigned space) was copied through a bounce
 * buffer, and writing it back would run MMIO handlers, possibly our own
 * reset, from inside this queue's handler.
 */
static bool virtio_tmem_elem_in_ram(VirtQueueElement *elem)
{
    ram_addr_t offset;
    unsigned i;

    for (i = 0; i < elem->out_num; i++) {
        if (!memory_region_from_host(elem->out_sg[i].iov_base, &offset)) {
            return false;
        }
    }
    for (i = 0; i < elem->in_num; i++) {
        if (!memory_region_from_host(elem->in_sg[i].iov_base, &offset)) {
            return false;
        }
    }
    return true;
}

/* x-timing: a request answered, charged the time since *clock. */
static void virtio_tmem_timing_request(VirtIOTmem *s, unsigned queue,
                                       unsigned kind, int64_t *clock)
{
    VirtIOTmemTiming *tm = &s->timing[queue];
    int64_t now = get_clock();

    virtio_tmem_timing_add(&tm->requests[kind], 1);
    virtio_tmem_timing_add(&tm->request_ns[kind], now - *clock);
    *clock = now;
}

/*
 * Hand one request to libtmem.  Returns 1 when it was answered (pushed),
 * 0 when libtmem keeps it pending (r->pending holds it until the
 * completion fd says it is done), and -1 when the chain violates the
 * transport (no room for a response): the device is then broken and
 * the queue must not be processed further.  *clock: see x-timing.
 */
static int virtio_tmem_handle_request(VirtIOTmem *s, VirtQueue *vq,
                                      unsigned queue, VirtQueueElement *elem,
                                      int64_t *clock)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    VirtIOTmemResume *r = &s->resume[queue];
    unsigned kind = 0;
    int64_t lib_start = 0;
    int len;

    if (!virtio_tmem_elem_in_ram(elem)) {
        virtqueue_detach_element(vq, elem, 0);
        virtio_error(vdev, "virtio-tmem: request on queue %u has a buffer "
                     "outside guest RAM", queue);
        return -1;
    }
    virtio_tmem_trace_request(s, queue, elem);
    if (s->timing_enabled) {
        kind = virtio_tmem_timing_kind(elem);
        lib_start = get_clock();
    }
    len = tmem_submit_request(s->ctxs[queue], elem->out_sg, elem->out_num,
                              elem->in_sg, elem->in_num, elem);
    if (s->timing_enabled) {
        virtio_tmem_timing_add(&s->timing[queue].lib_ns[kind],
                               get_clock() - lib_start);
    }
    if (len == -EINPROGRESS) {
        trace_virtio_tmem_pending(s, queue);
        r->pending = elem;
        r->submitted = *clock;
        return 0;
    }
    if (len < 0) {
        trace_virtio_tmem_bad_request(s, queue, elem->out_num, elem->in_num);
        virtqueue_detach_element(vq, elem, 0);
        virtio_error(vdev, "virtio-tmem: request on queue %u has no room "
                     "for a response (%s)", queue, tmem_strerror(len));
        return -1;
    }
    virtio_tmem_trace_response(s, queue, elem, len);
    virtqueue_push(vq, elem, len);
    if (s->timing_enabled) {
        virtio_tmem_timing_request(s, queue, kind, clock);
    }
    return 1;
}

/*
 * Push the pending request if libtmem answered it.  False while it is
 * still pending: the queue waits behind it (DEV-14).
 */
static bool virtio_tmem_finish_pending(VirtIOTmem *s, VirtQueue *vq,
                                       unsigned queue)
{
    VirtIOTmemResume *r = &s->resume[queue];
    VirtQueueElement *elem = r->pending;

    if (!elem) {
        return true;
    }
    if (!r->answered) {
        return false;
    }
    r->pending = NULL;
    r->answered = false;
    virtio_tmem_trace_response(s, queue, elem, r->len);
    virtqueue_push(vq, elem, r->len);
    if (s->timing_enabled) {
        virtio_tmem_timing_request(s, queue, virtio_tmem_timing_kind(elem),
                                   &r->submitted);
    }
    g_free(elem);
    virtio_tmem_notify(VIRTIO_DEVICE(s), vq);
    return true;
}

/*
 * Context: the queue's home AioContext.  While a request is pending the
 * handler leaves the ring as it is, so the ring must not be polled then:
 * its poll handler (the ring is not empty) would report progress on
 * every pass and keep the IOThread busy for as long as the disk takes.
 * virtio_queue_aio_attach_host_notifier_no_poll() is QEMU's attach for a
 * queue whose handler does not pop everything; both attaches kick.
 */
static void virtio_tmem_update_poll(VirtIOTmem *s, unsigned queue)
{
    VirtIOTmemResume *r = &s->resume[queue];
    bool poll = !r->pending;

    if (!r->attached || r->polled == poll) {
        return;
    }
    r->polled = poll;
    if (poll) {
        virtio_queue_aio_attach_host_notifier(s->vqs[queue],
                                              s->vq_aio_context[queue]);
    } else {
        virtio_queue_aio_attach_host_notifier_no_poll(s->vqs[queue],
                                                      s->vq_aio_context[queue]);
    }
}

/*
 * Has this handler call used its time slice?  The clock is read only
 * every 16 requests (x-timing reads it anyway, at each push).
 */
static bool virtio_tmem_slice_over(VirtIOTmem *s, unsigned quota,
                                   int64_t start, int64_t clock)
{
    if (!s->timing_enabled) {
        if (quota % 16) {
            return false;
        }
        clock = get_clock();
    }
    return clock - start >= VIRTIO_TMEM_SLICE_NS;
}

/*
 * libtmem answers at once whatever needs no I/O; a load from the disk
 * tier or a store waiting for room stays pending, and the queue takes no
 * other request until it is answered (DEV-14): at most one element per
 * queue is outstanding at any time, whatever the guest queues.  One
 * call answers at most queue-size requests or runs VIRTIO_TMEM_SLICE_NS,
 * then yields to its event loop and continues from a bottom half: a
 * guest that keeps its ring full cannot keep the main loop or an
 * IOThread to itself.
 *
 * A queue runs only in its home AioContext (vq_aio_context), and only
 * while the driver is ready (DRIVER_OK).  Before DRIVER_OK, ioeventfd is
 * not started and a kick reaches us in the vCPU's thread: nothing is
 * consumed then (virtio 1.x), and set_status and the host notifier's
 * attach take the queue up in its home context at DRIVER_OK.
 */
static void virtio_tmem_handle_output(VirtIODevice *vdev, VirtQueue *vq)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    unsigned queue = virtio_get_queue_index(vq);
    unsigned quota = s->conf.queue_size;
    VirtQueueElement *elem;
    int ret = 1;
    int64_t start, clock;

    if (queue >= s->conf.num_queues || !s->ctxs[queue] ||
        !qatomic_read(&s->driver_ok) || vdev->broken ||
        !qatomic_read(&vdev->vm_running) ||
        qemu_get_current_aio_context() != s->vq_aio_context[queue]) {
        return;
    }
    if (!virtio_tmem_finish_pending(s, vq, queue)) {
        virtio_tmem_update_poll(s, queue);
        return;
    }
    start = clock = get_clock();
    if (s->resume[queue].restored) {
        /* In flight at the source's stop: it goes first (DEV-14). */
        elem = s->resume[queue].restored;
        s->resume[queue].restored = NULL;
        ret = virtio_tmem_handle_request(s, vq, queue, elem, &clock);
        if (ret) {
            g_free(elem);
        }
        if (ret > 0) {
            virtio_tmem_notify(vdev, vq);
        } else {
            virtio_tmem_update_poll(s, queue);
            return;
        }
    }

    do {
        unsigned batch = 0;
        /*
         * Off while the batch is drained, then on again, as virtio-blk
         * does: unless they were off already because an IOThread is
         * polling this ring (virtio_queue_host_notifier_aio_poll_begin()),
         * which turns them on when it stops.  Turning them on here
         * would make the guest kick while the host polls anyway.
         */
        bool suppress = virtio_queue_get_notification(vq);

        if (suppress) {
            virtio_queue_set_notification(vq, 0);
        }
        while (ret > 0 && quota &&
               (elem = virtqueue_pop(vq, sizeof(VirtQueueElement)))) {
            ret = virtio_tmem_handle_request(s, vq, queue, elem, &clock);
            batch += ret > 0;
            quota--;
            if (ret) {
                g_free(elem);
            }
            if (virtio_tmem_slice_over(s, quota, start, clock)) {
                quota = 0;
            }
        }
        if (suppress) {
            virtio_queue_set_notification(vq, 1);
        }

        if (batch) {
            trace_virtio_tmem_batch(s, queue, batch);
            virtio_tmem_notify(vdev, vq);
        }
        if (!ret) {
            break;      /* the completion fd resumes the queue */
        }
        if (!quota) {
            qemu_bh_schedule(s->resume[queue].bh);
            break;
        }
    } while (ret > 0 && !virtio_queue_empty(vq));
    virtio_tmem_update_poll(s, queue);
    if (s->timing_enabled) {
        virtio_tmem_timing_add(&s->timing[queue].handler_calls, 1);
        virtio_tmem_timing_add(&s->timing[queue].handler_ns,
                               get_clock() - start);
    }
}

static void virtio_tmem_resume_bh(void *opaque)
{
    VirtIOTmemResume *r = opaque;

    virtio_tmem_handle_output(VIRTIO_DEVICE(r->s), r->s->vqs[r->queue]);
}

/*
 * Context: the queue's home AioContext.  libtmem's completion fd is
 * readable: reap, then push the answer and go on with the queue, as
 * QEMU's block drivers do with libnfs' and libiscsi's fds.
 */
static void virtio_tmem_completion_read(void *opaque)
{
    VirtIOTmemResume *r = opaque;
    VirtIOTmem *s = r->s;
    struct tmem_completion done;

    if (tmem_ctx_reap(s->ctxs[r->queue], &done, 1) != 1) {
        return;         /* nothing pending, or not yet done */
    }
    assert(done.opaque == r->pending);
    r->answered = true;
    r->len = done.len;
    trace_virtio_tmem_completed(s, r->queue, done.len);
    if (!qatomic_read(&r->paused)) {
        virtio_tmem_handle_output(VIRTIO_DEVICE(s), s->vqs[r->queue]);
    }
}

/*
 * The completion fd's poll handler, for an IOThread that polls: an fd
 * handler without one turns polling off for its whole AioContext
 * (aio-posix's poll_disable_cnt), and with it the ring polling that lets
 * the guest skip its kicks.  Nothing can complete while no request is
 * pending, the common case, so that costs no system call; a pending one
 * (the disk tier, a STORE waiting for room) is looked at with a poll of
 * the fd, as polling would otherwise hide its completion until polling
 * stops.
 */
static bool virtio_tmem_completion_poll(void *opaque)
{
    VirtIOTmemResume *r = opaque;
    GPollFD pfd;

    if (!r->pending || r->answered) {
        return false;
    }
    pfd.fd = tmem_ctx_completion_fd(r->s->ctxs[r->queue]);
    pfd.events = G_IO_IN;
    pfd.revents = 0;
    return qemu_poll_ns(&pfd, 1, 0) == 1;
}

/* Context: the queue's home AioContext; no handler runs after it. */
static void virtio_tmem_unwatch_bh(void *opaque)
{
    VirtIOTmemResume *r = opaque;

    aio_set_fd_handler(qemu_get_current_aio_context(),
                       tmem_ctx_completion_fd(r->s->ctxs[r->queue]),
                       NULL, NULL, NULL, NULL, NULL);
}

/*
 * Context: the queue's home AioContext.  A reset drops the queue's
 * pending request unanswered (the driver forgets it too); libtmem lets
 * go of its buffers first.
 */
static void virtio_tmem_cancel_pending(VirtIOTmemResume *r)
{
    VirtIOTmem *s = r->s;
    void *opaque;

    if (r->restored) {
        virtqueue_detach_element(s->vqs[r->queue], r->restored, 0);
        g_free(r->restored);
        r->restored = NULL;
    }
    if (!r->pending) {
        return;
    }
    if (!r->answered) {
        tmem_ctx_cancel(s->ctxs[r->queue], &opaque);
    }
    trace_virtio_tmem_cancelled(s, r->queue);
    virtqueue_detach_element(s->vqs[r->queue], r->pending, 0);
    g_free(r->pending);
    r->pending = NULL;
    r->answered = false;
}

static void virtio_tmem_get_config(VirtIODevice *vdev, uint8_t *config_data)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    struct virtio_tmem_config config = { 0 };
    uint32_t max_pools = s->conf.max_pools ?: TMEM_DEFAULT_MAX_POOLS;

    stw_le_p(&config.num_queues, s->conf.num_queues);
    stw_le_p(&config.max_pools, max_pools);
    stl_le_p(&config.page_size, VIRTIO_TMEM_PAGE_SIZE);
    stq_le_p(&config.capacity_pages, s->capacity_pages);
    /*
     * Half the ring: the driver keeps filling one half while the device
     * answers the other.
     */
    stl_le_p(&config.max_batch, MAX(s->conf.queue_size / 2, 1));
    stq_le_p(&config.size_pages, s->size_pages);
    stq_le_p(&config.target_pages, s->target_pages);
    stl_le_p(&config.return_state, s->return_state);
    memcpy(config_data, &config, sizeof(config));
}

static uint64_t virtio_tmem_get_features(VirtIODevice *vdev, uint64_t features,
                                         Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);

    /*
     * A new device type has no legacy interface (the wire format is
     * little-endian): virtio-pci forces virtio 1, virtio-mmio offers it
     * only with force-legacy=off.
     */
    if (!virtio_has_feature(features, VIRTIO_F_VERSION_1)) {
        error_setg(errp, "virtio-tmem: the transport must be virtio 1 "
                   "(modern); for virtio-mmio set "
                   "-global virtio-mmio.force-legacy=off");
        return 0;
    }
    features |= s->host_features;
    virtio_add_feature(&features, VIRTIO_TMEM_F_SIZE);
    if (s->conf.num_queues > 1) {
        virtio_add_feature(&features, VIRTIO_TMEM_F_MQ);
    }
    return features;
}

static void virtio_tmem_set_features(VirtIODevice *vdev, uint64_t features)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);

    trace_virtio_tmem_set_features(s, features);
    tmem_client_set_features(s->client, features);
}

/* Context: the queue's home AioContext */
static void virtio_tmem_cancel_resume_bh(void *opaque)
{
    VirtIOTmemResume *r = opaque;

    qemu_bh_cancel(r->bh);
    virtio_tmem_cancel_pending(r);
    virtio_tmem_update_poll(r->s, r->queue);
}

/*
 * Context: BQL held, main loop thread.
 * Once this returns, no queue handler runs and none starts until
 * DRIVER_OK is set again: each queue's home context has finished what it
 * was doing, dropped its continuation and its pending request.  Whether or not ioeventfd was
 * ever started (kicks before DRIVER_OK, ioeventfd=off), the caller may
 * then touch libtmem.
 */
static void virtio_tmem_quiesce(VirtIOTmem *s)
{
    unsigned i;

    qatomic_set(&s->driver_ok, false);
    for (i = 0; i < s->conf.num_queues; i++) {
        if (s->resume[i].bh) {
            aio_wait_bh_oneshot(s->vq_aio_context[i],
                                virtio_tmem_cancel_resume_bh, &s->resume[i]);
        }
    }
}

/*
 * The device consumes no buffer before DRIVER_OK.  At DRIVER_OK the
 * requests already made available are taken up in each queue's home
 * context: with ioeventfd, by the kick of the host notifier's attach
 * (virtio-pci starts ioeventfd right after this); without, by the
 * continuation bottom half, which then lives in the main loop.
 */
static VirtIOTmemSetStatusRet virtio_tmem_set_status(VirtIODevice *vdev,
                                                     uint8_t status)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    bool driver_ok = status & VIRTIO_CONFIG_S_DRIVER_OK;
    unsigned i;

    if (driver_ok == qatomic_read(&s->driver_ok)) {
        return VIRTIO_TMEM_STATUS_SET;
    }
    if (!driver_ok) {
        virtio_tmem_quiesce(s);
        return VIRTIO_TMEM_STATUS_SET;
    }
    qatomic_set(&s->driver_ok, true);
    for (i = 0; i < s->conf.num_queues; i++) {
        qatomic_set(&s->resume[i].paused, false);
    }
    if (!virtio_device_ioeventfd_enabled(vdev)) {
        for (i = 0; i < s->conf.num_queues; i++) {
            qemu_bh_schedule(s->resume[i].bh);
        }
    }
    return VIRTIO_TMEM_STATUS_SET;
}

static void virtio_tmem_reset(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);

    /* A system reset does not go through set_status(0). */
    virtio_tmem_quiesce(s);
    trace_virtio_tmem_reset(s);
    tmem_client_reset(s->client);
    /*
     * The driver reads the config anew: capacity_pages may follow the
     * live budget now.  A shrink goes on, and ends at its next step:
     * the reset dropped every page.
     */
    s->capacity_pages = s->conf.budget / VIRTIO_TMEM_PAGE_SIZE;
    s->target_pages = VIRTIO_TMEM_NO_TARGET;
    s->return_state = VIRTIO_TMEM_RETURN_IDLE;
    s->return_known = VIRTIO_TMEM_RETURN_IDLE;
    s->config_pending = false;
    /*
     * QEMU refreshes vdev->config only on a config read: a config write
     * lands in it and set_config() sees the whole buffer.  Made current
     * here, a write after the reset that does not touch return_state
     * cannot bring back the value written before it.
     */
    virtio_tmem_get_config(vdev, vdev->config);
    if (s->disk_error) {
        /* A test's failing disk stays failing until x-disk-error=none. */
        tmem_client_inject_io_error(s->client, s->disk_error, -EIO);
    }
    if (s->disk_hang) {
        tmem_client_inject_io_hang(s->client, s->disk_hang);
    }
}

/*
 * Context: BH in the queue's AioContext.  A request still pending from
 * before the stop keeps the ring unpolled; the attach's kick takes up
 * its answer and whatever the guest queued meanwhile.
 */
static void virtio_tmem_start_vq_bh(void *opaque)
{
    VirtIOTmemResume *r = opaque;
    VirtQueue *vq = r->s->vqs[r->queue];
    AioContext *ctx = qemu_get_current_aio_context();

    qatomic_set(&r->paused, false);
    r->attached = true;
    r->polled = !r->pending;
    if (r->polled) {
        virtio_queue_aio_attach_host_notifier(vq, ctx);
    } else {
        virtio_queue_aio_attach_host_notifier_no_poll(vq, ctx);
    }
}

/* Context: BQL held */
static int virtio_tmem_start_ioeventfd(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    BusState *qbus = qdev_get_parent_bus(DEVICE(vdev));
    VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
    unsigned nvqs = s->conf.num_queues;
    unsigned i;
    int r;

    if (s->ioeventfd_started || s->ioeventfd_starting) {
        return 0;
    }
    s->ioeventfd_starting = true;

    /* Guest notifiers let an IOThread raise the interrupt itself. */
    r = k->set_guest_notifiers(qbus->parent, nvqs, true);
    if (r != 0) {
        error_report("virtio-tmem: failed to set guest notifiers (%d)", r);
        goto fail_guest_notifiers;
    }

    memory_region_transaction_begin();
    for (i = 0; i < nvqs; i++) {
        r = virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), i, true);
        if (r != 0) {
            error_report("virtio-tmem: failed to set host notifier (%d)", r);
            while (i--) {
                virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), i, false);
                virtio_bus_cleanup_host_notifier(VIRTIO_BUS(qbus), i);
            }
            memory_region_transaction_commit();
            goto fail_host_notifiers;
        }
    }
    memory_region_transaction_commit();

    s->ioeventfd_starting = false;
    s->ioeventfd_started = true;
    smp_wmb(); /* paired with aio_notify_accept() */

    for (i = 0; i < nvqs; i++) {
        aio_wait_bh_oneshot(s->vq_aio_context[i], virtio_tmem_start_vq_bh,
                            &s->resume[i]);
    }
    return 0;

fail_host_notifiers:
    k->set_guest_notifiers(qbus->parent, nvqs, false);
fail_guest_notifiers:
    s->ioeventfd_starting = false;
    return -ENOSYS;
}

/* Context: BH in the queue's AioContext */
static void virtio_tmem_stop_vq_bh(void *opaque)
{
    VirtIOTmemResume *r = opaque;
    VirtQueue *vq = r->s->vqs[r->queue];

    r->attached = false;
    virtio_queue_aio_detach_host_notifier(vq, qemu_get_current_aio_context());
    /*
     * A kick that raced with the detach is taken now; whatever it leaves
     * waits for the attach's kick (start_ioeventfd, queue_enable).
     */
    virtio_queue_host_notifier_read(virtio_queue_get_host_notifier(vq));
    /* No batch resumes behind the caller's back (reset, unplug). */
    qemu_bh_cancel(r->bh);
    /* A pending request's answer waits for the restart's kick. */
    qatomic_set(&r->paused, true);
}

/* Context: BQL held */
static void virtio_tmem_stop_ioeventfd(VirtIODevice *vdev)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    BusState *qbus = qdev_get_parent_bus(DEVICE(vdev));
    VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
    unsigned nvqs = s->conf.num_queues;
    unsigned i;

    if (!s->ioeventfd_started || s->ioeventfd_stopping) {
        return;
    }
    s->ioeventfd_stopping = true;

    /*
     * Returns once no handler of the queue runs.  A pending request stays
     * with libtmem: its answer waits for the restart's kick.
     */
    for (i = 0; i < nvqs; i++) {
        aio_wait_bh_oneshot(s->vq_aio_context[i], virtio_tmem_stop_vq_bh,
                            &s->resume[i]);
    }

    memory_region_transaction_begin();
    for (i = 0; i < nvqs; i++) {
        virtio_bus_set_host_notifier(VIRTIO_BUS(qbus), i, false);
    }
    memory_region_transaction_commit();
    for (i = 0; i < nvqs; i++) {
        virtio_bus_cleanup_host_notifier(VIRTIO_BUS(qbus), i);
    }

    k->set_guest_notifiers(qbus->parent, nvqs, false);
    s->ioeventfd_stopping = false;
    s->ioeventfd_started = false;
}

/*
 * A guest may reset one queue at any time (whether or not it negotiated
 * VIRTIO_F_RING_RESET): take the queue from its AioContext first, so that
 * the core does not reset it under a running handler.
 */
static void virtio_tmem_queue_reset(VirtIODevice *vdev, uint32_t index)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);

    if (index >= s->conf.num_queues) {
        return;
    }
    if (s->ioeventfd_started) {
        aio_wait_bh_oneshot(s->vq_aio_context[index], virtio_tmem_stop_vq_bh,
                            &s->resume[index]);
    }
    /* Without ioeventfd the continuation still runs in the home context. */
    aio_wait_bh_oneshot(s->vq_aio_context[index],
                        virtio_tmem_cancel_resume_bh, &s->resume[index]);
}

static void virtio_tmem_queue_enable(VirtIODevice *vdev, uint32_t index)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);

    if (index < s->conf.num_queues && s->ioeventfd_started) {
        aio_wait_bh_oneshot(s->vq_aio_context[index], virtio_tmem_start_vq_bh,
                            &s->resume[index]);
    }
}

/*
 * What only the device knows: its queues and its config space.  The
 * page store's rules are libtmem's, and it names what it refuses
 * (virtio_tmem_reason()).
 */
static bool virtio_tmem_check_conf(VirtIOTmem *s, Error **errp)
{
    VirtIOTmemConf *conf = &s->conf;

    if (conf->num_queues < 1 || conf->num_queues > VIRTIO_TMEM_MAX_QUEUES) {
        error_setg(errp, "virtio-tmem: 'num-queues' must be between 1 and %d, "
                   "not %" PRIu16, VIRTIO_TMEM_MAX_QUEUES, conf->num_queues);
        return false;
    }
    if (conf->queue_size < 2 || conf->queue_size > VIRTQUEUE_MAX_SIZE ||
        !is_power_of_2(conf->queue_size)) {
        error_setg(errp, "virtio-tmem: 'queue-size' must be a power of 2 "
                   "between 2 and %d, not %" PRIu16, VIRTQUEUE_MAX_SIZE,
                   conf->queue_size);
        return false;
    }
    if (conf->max_pools > UINT16_MAX) {
        error_setg(errp, "virtio-tmem: 'max-pools' must be at most %d (the "
                   "config space's max_pools has 16 bits), not %" PRIu32,
                   UINT16_MAX, conf->max_pools);
        return false;
    }
    if (conf->size && (conf->size < VIRTIO_TMEM_PAGE_SIZE ||
                       conf->size / VIRTIO_TMEM_PAGE_SIZE >
                       VIRTIO_TMEM_MAX_SIZE_PAGES)) {
        error_setg(errp, "virtio-tmem: 'size' must be between %d and %"
                   PRIu64 " bytes (one page to 2^32-1 pages), not %" PRIu64,
                   VIRTIO_TMEM_PAGE_SIZE,
                   VIRTIO_TMEM_MAX_SIZE_PAGES * VIRTIO_TMEM_PAGE_SIZE,
                   conf->size);
        return false;
    }
    /* x-disk-error is the device's: it injects through the library. */
    if (conf->backing_file && conf->rados_pool) {
        error_setg(errp, "virtio-tmem: 'backing-file' and 'rados-pool' are "
                   "two disk tiers: set one");
        return false;
    }
    if (!conf->rados_pool &&
        (conf->rados_namespace || conf->rados_conf || conf->rados_user ||
         conf->rados_keyring || conf->rados_optional)) {
        error_setg(errp, "virtio-tmem: the rados-* properties need "
                   "'rados-pool'");
        return false;
    }
    if ((s->disk_error || s->disk_hang) && !conf->backing_file &&
        !conf->rados_pool) {
        error_setg(errp, "virtio-tmem: '%s' needs a disk tier: set "
                   "'backing-file' or 'rados-pool' too",
                   s->disk_error ? "x-disk-error" : "x-disk-hang");
        return false;
    }
    return true;
}

static bool virtio_tmem_parse_incompressible(VirtIOTmem *s, Error **errp)
{
    if (!s->incompressible_str || !strcmp(s->incompressible_str, "raw")) {
        s->conf.incompressible = VIRTIO_TMEM_INCOMPRESSIBLE_RAW;
    } else if (!strcmp(s->incompressible_str, "reject")) {
        s->conf.incompressible = VIRTIO_TMEM_INCOMPRESSIBLE_REJECT;
    } else {
        error_setg(errp, "virtio-tmem: 'incompressible' must be 'raw' or "
                   "'reject', not '%s'", s->incompressible_str);
        return false;
    }
    return true;
}

/* libtmem's names (struct tmem_client_config) of what properties set. */
static const struct {
    const char *field;
    const char *prop;
} virtio_tmem_fields[] = {
    { "budget_bytes", "budget" },
    { "max_pools", "max-pools" },
    { "compress_threshold", "compress-threshold" },
    { "incompressible", "incompressible" },
    { "backing_file", "backing-file" },
    { "backing_size", "backing-size" },
    { "segment_size", "segment-size" },
    { "writeback_high", "writeback-high" },
    { "writeback_low", "writeback-low" },
    { "room_wait_ms", "room-wait-ms" },
    { "rados_pool", "rados-pool" },
    { "rados_namespace", "rados-namespace" },
    { "rados_conf", "rados-conf" },
    { "rados_user", "rados-user" },
    { "rados_keyring", "rados-keyring" },
};

/* Part of a word or a path: a field name inside one is not that field. */
static bool virtio_tmem_word_char(char c)
{
    return g_ascii_isalnum(c) || c == '_' || c == '/' || c == '.' || c == '-';
}

/*
 * libtmem says which field of its configuration it refuses, and by what
 * rule; the user set that field with a property: name the property.
 */
static char *virtio_tmem_reason(const char *why)
{
    GString *out = g_string_new(NULL);
    const char *p = why;

    while (*p) {
        bool named = false;
        unsigned i;

        for (i = 0; !named && i < ARRAY_SIZE(virtio_tmem_fields) &&
                    (p == why || !virtio_tmem_word_char(p[-1])); i++) {
            size_t n = strlen(virtio_tmem_fields[i].field);

            if (!strncmp(p, virtio_tmem_fields[i].field, n) &&
                !virtio_tmem_word_char(p[n])) {
                g_string_append_printf(out, "'%s'",
                                       virtio_tmem_fields[i].prop);
                p += n;
                named = true;
            }
        }
        if (!named) {
            g_string_append_c(out, *p++);
        }
    }
    return g_string_free(out, false);
}

/*
 * Elastic memory (SPEC 6.5): the host changes the budget at run time.
 * Growing takes effect at once.  A shrink below what is held is stepped
 * from a main loop timer, with the BQL: libtmem reclaims (ephemeral
 * eviction, disk tier writeback) while it can; when it cannot, the
 * driver is asked through target_pages to take pages back.  Until
 * host-bytes is within the budget libtmem refuses every store (DEV-25)
 * and keeps every page of a persistent pool.
 */

/* Pages one step may evict: bounded work for the main loop. */
#define VIRTIO_TMEM_RECLAIM_PAGES 4096
#define VIRTIO_TMEM_SHRINK_PERIOD_MS 100
/* While the driver reports FAILED: how often a changed target is sent. */
#define VIRTIO_TMEM_REOFFER_MS 5000

/* Each reason one object: compared by address. */
static const char VIRTIO_TMEM_REASON_NO_BACKING[] =
    "shrink blocked: guest has no backing device";
static const char VIRTIO_TMEM_REASON_FAILED[] =
    "shrink blocked: guest cannot take pages back: its backing device "
    "failed or is full";
static const char VIRTIO_TMEM_REASON_REFUSED[] =
    "shrink blocked: guest declines to return pages";
static const char VIRTIO_TMEM_REASON_NO_RETURN[] =
    "shrink blocked: guest driver cannot return pages";

static void virtio_tmem_stats(VirtIOTmem *s, struct tmem_stats *st)
{
    memset(st, 0, sizeof(*st));
    tmem_client_stats2(s->client, st, sizeof(*st));
}

/*
 * A change of target_pages is told to the driver with a configuration
 * change notification (DEV-2), but not into a stopped VM: the guest
 * hears of it when the VM runs again.  virtio_notify_config() itself
 * does nothing before DRIVER_OK.
 */
static void virtio_tmem_notify_config(VirtIOTmem *s)
{
    if (!runstate_is_running()) {
        s->config_pending = true;
        return;
    }
    s->config_pending = false;
    virtio_notify_config(VIRTIO_DEVICE(s));
}

/*
 * No queue runs while the VM is stopped (virtio_tmem_handle_output()):
 * a migration's last pass and the device's VMState see pages and rings
 * as they were at the stop.  At the run each queue's continuation takes
 * up what waits, whatever became of ioeventfd meanwhile.
 */
static void virtio_tmem_vm_state_change(void *opaque, bool running,
                                        RunState state)
{
    VirtIOTmem *s = opaque;
    unsigned i;

    if (!running) {
        return;
    }
    if (s->config_pending) {
        virtio_tmem_notify_config(s);
    }
    for (i = 0; i < s->conf.num_queues; i++) {
        if (s->resume[i].bh) {
            qemu_bh_schedule(s->resume[i].bh);
        }
    }
}

static void virtio_tmem_set_target(VirtIOTmem *s, uint64_t target)
{
    if (target == s->target_pages) {
        return;
    }
    trace_virtio_tmem_target(s, s->target_pages, target);
    s->target_pages = target;
    s->target_changed_ms = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);
    virtio_tmem_notify_config(s);
}

static void virtio_tmem_budget_event(VirtIOTmem *s, TmemBudgetStatus status,
                                     const char *reason)
{
    g_autofree char *path = object_get_canonical_path(OBJECT(s));
    struct tmem_stats st;

    virtio_tmem_stats(s, &st);
    qapi_event_send_tmem_budget_changed(virtio_tmem_id(s), path,
                                        st.budget_bytes, st.host_bytes,
                                        status, reason);
}

static void virtio_tmem_shrink_done(VirtIOTmem *s)
{
    timer_del(s->shrink_timer);
    s->shrinking = false;
    s->shrink_phase = TMEM_SHRINK_PHASE_NONE;
    s->shrink_reason = NULL;
    s->blocked_events = 0;
    virtio_tmem_set_target(s, VIRTIO_TMEM_NO_TARGET);
    virtio_tmem_budget_event(s, TMEM_BUDGET_STATUS_DONE, NULL);
}

/*
 * One bit per reason in blocked_events: a guest that keeps changing
 * return_state (or goes idle and back) gets one blocked event per
 * distinct reason in one shrink, not one per step.
 */
static unsigned virtio_tmem_reason_bit(const char *reason)
{
    if (reason == VIRTIO_TMEM_REASON_NO_BACKING) {
        return 1u << 0;
    }
    if (reason == VIRTIO_TMEM_REASON_FAILED) {
        return 1u << 1;
    }
    if (reason == VIRTIO_TMEM_REASON_REFUSED) {
        return 1u << 2;
    }
    return 1u << 3;
}

/* Why the driver cannot help, or NULL when it is asked to (DEV-26). */
static const char *virtio_tmem_return_blocked(VirtIOTmem *s)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);

    if (!virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_RETURN) ||
        !qatomic_read(&s->driver_ok)) {
        return VIRTIO_TMEM_REASON_NO_RETURN;
    }
    switch (s->return_known) {
    case VIRTIO_TMEM_RETURN_NO_BACKING:
        return VIRTIO_TMEM_REASON_NO_BACKING;
    case VIRTIO_TMEM_RETURN_FAILED:
        return VIRTIO_TMEM_REASON_FAILED;
    case VIRTIO_TMEM_RETURN_REFUSED:
        return VIRTIO_TMEM_REASON_REFUSED;
    default:
        return NULL;
    }
}

/*
 * The pages the driver should keep so that the host gets back what it
 * still must free: each page it moves away frees, on average, what a
 * page held in memory takes (pages on the disk tier and same-filled
 * pages hold no data in memory).  With no such page, all are asked for.
 */
static uint64_t virtio_tmem_compute_target(const struct tmem_stats *st)
{
    /* Invalidations in an IOThread may have got there meanwhile. */
    uint64_t excess = st->host_bytes > st->budget_bytes ?
                      st->host_bytes - st->budget_bytes : 0;
    uint64_t in_memory = st->pages - MIN(st->pages, st->disk_pages +
                                         st->same_filled_pages);
    uint64_t per_page = in_memory ? st->data_bytes / in_memory : 0;
    uint64_t need;

    if (!excess) {
        return st->pages;
    }
    if (!per_page) {
        return 0;
    }
    need = DIV_ROUND_UP(excess, per_page);
    return st->pages > need ? st->pages - need : 0;
}

/*
 * The number of pages to return is fixed when reclaim first says STUCK
 * in a goal: host-bytes lags behind the pages returned (what they held
 * is given back by compaction), so a target recomputed from it at each
 * step would ask for far more than needed.  It is corrected only from
 * what returning has actually freed: once the driver has got down to
 * the target and a step's reclaim (compaction) has run since, memory
 * still over the budget lowers it by what remains.  Never raised while
 * one goal runs: the driver may be midway.
 */
static void virtio_tmem_shrink_target(VirtIOTmem *s,
                                      const struct tmem_stats *st)
{
    uint64_t target = s->target_pages;

    if (s->target_fresh || target == VIRTIO_TMEM_NO_TARGET) {
        target = virtio_tmem_compute_target(st);
        s->target_fresh = false;
        s->target_reached = false;
    } else if (st->pages <= target) {
        if (s->target_reached) {
            target = MIN(target, virtio_tmem_compute_target(st));
        }
        s->target_reached = !s->target_reached;
    }
    virtio_tmem_set_target(s, target);
}

/*
 * Blocked by what the driver reported: a new goal still gets a target,
 * and while FAILED the target is offered again, one page lower, every
 * VIRTIO_TMEM_REOFFER_MS after its last change: DRV-11's driver tries
 * again after FAILED when target_pages changes (its disk may have
 * recovered or got space).
 */
static void virtio_tmem_shrink_reoffer(VirtIOTmem *s,
                                       const struct tmem_stats *st,
                                       const char *reason)
{
    int64_t now = qemu_clock_get_ms(QEMU_CLOCK_REALTIME);

    if (s->target_fresh || s->target_pages == VIRTIO_TMEM_NO_TARGET) {
        virtio_tmem_shrink_target(s, st);
    } else if (reason == VIRTIO_TMEM_REASON_FAILED && s->target_pages &&
               now - s->target_changed_ms >= VIRTIO_TMEM_REOFFER_MS) {
        virtio_tmem_set_target(s, s->target_pages - 1);
    }
}

/* libtmem can free nothing more: ask the driver, or say why not. */
static void virtio_tmem_shrink_stuck(VirtIOTmem *s, const struct tmem_stats *st)
{
    const char *reason = virtio_tmem_return_blocked(s);

    if (!reason) {
        s->shrink_phase = TMEM_SHRINK_PHASE_GUEST_RETURN;
        s->shrink_reason = NULL;
        virtio_tmem_shrink_target(s, st);
        return;
    }
    if (reason != VIRTIO_TMEM_REASON_NO_RETURN) {
        virtio_tmem_shrink_reoffer(s, st, reason);
    }
    s->shrink_phase = TMEM_SHRINK_PHASE_BLOCKED;
    s->shrink_reason = reason;
    if (!(s->blocked_events & virtio_tmem_reason_bit(reason))) {
        s->blocked_events |= virtio_tmem_reason_bit(reason);
        virtio_tmem_budget_event(s, TMEM_BUDGET_STATUS_BLOCKED, reason);
    }
}

/*
 * What makes progress while reclaim says BUSY, as it is: evictions, or
 * the disk tier's writer (pages written back, or a usable tier whose
 * writer is woken); compaction alone freeing what returned pages held
 * is the guest return going on; else the phase stands.
 */
static TmemShrinkPhase virtio_tmem_busy_phase(VirtIOTmem *s,
                                              const struct tmem_stats *st)
{
    if (st->evictions != s->shrink_evictions) {
        return TMEM_SHRINK_PHASE_EVICTING;
    }
    if (st->written_back != s->shrink_written_back) {
        return TMEM_SHRINK_PHASE_WRITING_BACK;
    }
    if (s->target_pages != VIRTIO_TMEM_NO_TARGET) {
        return TMEM_SHRINK_PHASE_GUEST_RETURN;
    }
    if (st->disk_segment_size && !st->disk_failed && !st->disk_full) {
        return TMEM_SHRINK_PHASE_WRITING_BACK;
    }
    return s->shrink_phase;
}

/*
 * Context: main loop, BQL held.  One step of the shrink; the timer runs
 * until host-bytes is within the budget, also while blocked: memory
 * then falls as the guest loads and invalidates pages.
 */
static void virtio_tmem_shrink_step(void *opaque)
{
    VirtIOTmem *s = opaque;
    struct tmem_stats st;
    int r;

    r = tmem_client_reclaim(s->client, VIRTIO_TMEM_RECLAIM_PAGES);
    virtio_tmem_stats(s, &st);
    trace_virtio_tmem_reclaim(s, r, st.host_bytes, st.budget_bytes);
    switch (r) {
    case TMEM_RECLAIM_DONE:
        virtio_tmem_shrink_done(s);
        return;
    case TMEM_RECLAIM_BUSY:
        s->shrink_phase = virtio_tmem_busy_phase(s, &st);
        break;
    default:
        virtio_tmem_shrink_stuck(s, &st);
        break;
    }
    s->shrink_evictions = st.evictions;
    s->shrink_written_back = st.written_back;
    timer_mod(s->shrink_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) +
                               VIRTIO_TMEM_SHRINK_PERIOD_MS);
}

/* A new budget: a new goal, which replaces that of a shrink running. */
static void virtio_tmem_budget_changed(VirtIOTmem *s)
{
    struct tmem_stats st;

    virtio_tmem_stats(s, &st);
    if (st.host_bytes <= st.budget_bytes) {
        virtio_tmem_shrink_done(s);
        return;
    }
    if (!s->shrinking) {
        s->shrinking = true;
        s->shrink_phase = TMEM_SHRINK_PHASE_EVICTING;
    }
    s->shrink_reason = NULL;
    s->blocked_events = 0;      /* a new goal: its events anew */
    s->target_fresh = true;
    s->shrink_evictions = st.evictions;
    s->shrink_written_back = st.written_back;
    timer_mod(s->shrink_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME));
}

/* The host pool's tick: its grant applied, the shrink started or ended. */
static void virtio_tmem_pool_timer(void *opaque)
{
    VirtIOTmem *s = opaque;

    if (virtio_tmem_pool_tick(s)) {
        virtio_tmem_budget_changed(s);
    }
}

static void virtio_tmem_get_budget(Object *obj, Visitor *v, const char *name,
                                   void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    uint64_t value = s->conf.budget;

    visit_type_size(v, name, &value, errp);
}

/*
 * As virtio-mem's requested-size: before realize (-device) the value is
 * kept for realize to check; after, libtmem takes it or says why not.
 */
static void virtio_tmem_set_budget(Object *obj, Visitor *v, const char *name,
                                   void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    char why[TMEM_ERRBUF_SIZE] = "";
    uint64_t value;
    int r;

    if (!visit_type_size(v, name, &value, errp)) {
        return;
    }
    if (!DEVICE(obj)->realized) {
        s->conf.budget = value;
        return;
    }
    if (s->pool) {
        /* The cap in the pool: the granted budget follows (SPEC 6.6). */
        r = virtio_tmem_pool_set_cap(s, value, errp);
        if (r >= 0 && !qatomic_read(&s->driver_ok)) {
            s->capacity_pages = value / VIRTIO_TMEM_PAGE_SIZE;
        }
        if (r > 0) {
            virtio_tmem_budget_changed(s);
        }
        return;
    }
    r = tmem_client_set_budget(s->client, value, why, sizeof(why));
    if (r < 0) {
        g_autofree char *reason = virtio_tmem_reason(why);

        if (reason[0]) {
            error_setg(errp, "virtio-tmem: %s", reason);
        } else {
            error_setg_errno(errp, -r, "virtio-tmem: cannot set 'budget' to "
                             "%" PRIu64, value);
        }
        return;
    }
    trace_virtio_tmem_set_budget(s, s->conf.budget, value);
    s->conf.budget = value;
    /* No driver uses the config yet: the hint may follow (DEV-2). */
    if (!qatomic_read(&s->driver_ok)) {
        s->capacity_pages = value / VIRTIO_TMEM_PAGE_SIZE;
    }
    virtio_tmem_budget_changed(s);
}

/*
 * The driver writes return_state (DEV-27): any value, at any time, and
 * nothing held changes because of it.  A value this version does not
 * know reads back as written but says nothing new: the last known one
 * stands.  QEMU passes the whole of vdev->config, whatever bytes the
 * write covered: it is kept current (reset), so return_state differs
 * from the value held only when a write changed its bytes.
 */
static void virtio_tmem_set_config(VirtIODevice *vdev, const uint8_t *config)
{
    VirtIOTmem *s = VIRTIO_TMEM(vdev);
    const struct virtio_tmem_config *c = (const void *)config;
    uint32_t state = ldl_le_p(&c->return_state);
    bool known = state <= VIRTIO_TMEM_RETURN_REFUSED;

    if (!virtio_vdev_has_feature(vdev, VIRTIO_TMEM_F_RETURN) ||
        state == s->return_state) {
        return;
    }
    trace_virtio_tmem_return_state(s, state, known);
    s->return_state = state;
    if (known) {
        s->return_known = state;
    }
}

/* Which AioContext runs each queue: the main loop's, or IOThreads'. */
static bool virtio_tmem_iothread_setup(VirtIOTmem *s, Error **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    BusState *qbus = qdev_get_parent_bus(DEVICE(vdev));
    VirtioBusClass *k = VIRTIO_BUS_GET_CLASS(qbus);
    VirtIOTmemConf *conf = &s->conf;
    AioContext *ctx = qemu_get_aio_context();
    unsigned i;

    if (conf->iothread && conf->iothread_vq_mapping_list) {
        error_setg(errp, "virtio-tmem: 'iothread' and 'iothread-vq-mapping' "
                   "cannot be set at the same time");
        return false;
    }
    if (conf->iothread || conf->iothread_vq_mapping_list) {
        if (!k->set_guest_notifiers || !k->ioeventfd_assign) {
            error_setg(errp, "virtio-tmem: device is incompatible with "
                       "iothread (transport does not support notifiers)");
            return false;
        }
        if (!virtio_device_ioeventfd_enabled(vdev)) {
            error_setg(errp, "virtio-tmem: ioeventfd is required for "
                       "iothread");
            return false;
        }
    }

    if (conf->iothread_vq_mapping_list) {
        /* One thread per queue is what libtmem's contexts are made for. */
        return iothread_vq_mapping_apply(conf->iothread_vq_mapping_list,
                                         s->vq_aio_context, conf->num_queues,
                                         errp);
    }
    if (conf->iothread) {
        ctx = iothread_get_aio_context(conf->iothread);
        /* Released in virtio_tmem_iothread_cleanup() */
        object_ref(OBJECT(conf->iothread));
    }
    for (i = 0; i < conf->num_queues; i++) {
        s->vq_aio_context[i] = ctx;
    }
    return true;
}

static void virtio_tmem_iothread_cleanup(VirtIOTmem *s)
{
    if (s->conf.iothread_vq_mapping_list) {
        iothread_vq_mapping_cleanup(s->conf.iothread_vq_mapping_list);
    }
    if (s->conf.iothread) {
        object_unref(OBJECT(s->conf.iothread));
    }
}

static void virtio_tmem_add_resume_bhs(VirtIOTmem *s)
{
    DeviceState *transport = qdev_get_parent_bus(DEVICE(s))->parent;
    unsigned i;

    for (i = 0; i < s->conf.num_queues; i++) {
        /*
         * As virtio_bh_new_guarded(): the transport owns the MMIO.  Only
         * in the main loop, though: the guard is not per thread, so a BH
         * running in an IOThread under it would make the main thread drop
         * the guest's MMIO to the transport ("Blocked re-entrant IO"),
         * a status write among them.
         */
        MemReentrancyGuard *guard =
            s->vq_aio_context[i] == qemu_get_aio_context() ?
            &transport->mem_reentrancy_guard : NULL;

        s->resume[i].s = s;
        s->resume[i].queue = i;
        s->resume[i].bh = aio_bh_new_guarded(s->vq_aio_context[i],
                                             virtio_tmem_resume_bh,
                                             &s->resume[i], guard);
        /* Nothing is pending yet: no handler can run before this. */
        aio_set_fd_handler(s->vq_aio_context[i],
                           tmem_ctx_completion_fd(s->ctxs[i]),
                           virtio_tmem_completion_read, NULL,
                           virtio_tmem_completion_poll,
                           virtio_tmem_completion_read, &s->resume[i]);
    }
}

static void virtio_tmem_del_resume_bhs(VirtIOTmem *s)
{
    unsigned i;

    for (i = 0; i < s->conf.num_queues; i++) {
        aio_wait_bh_oneshot(s->vq_aio_context[i], virtio_tmem_unwatch_bh,
                            &s->resume[i]);
        qemu_bh_delete(s->resume[i].bh);
        s->resume[i].bh = NULL;
    }
}

static void virtio_tmem_del_queues(VirtIOTmem *s, unsigned n)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(s);

    while (n--) {
        tmem_ctx_free(s->ctxs[n]);
        s->ctxs[n] = NULL;
        virtio_delete_queue(s->vqs[n]);
        s->vqs[n] = NULL;
    }
    virtio_cleanup(vdev);
}

/*
 * The key space the guest sees (size_pages): what 'size' says, or what
 * serves a user who sets only the budget: the guest's RAM, and never
 * less than the budget and the disk tier together can hold.
 */
static uint64_t virtio_tmem_size_pages(VirtIOTmem *s)
{
    MachineState *ms = MACHINE(qdev_get_machine());
    struct tmem_stats st;
    uint64_t size = s->conf.size;

    if (!size) {
        virtio_tmem_stats(s, &st);
        size = MAX(ms->ram_size, s->conf.budget + st.disk_size);
    }
    return MIN(size / VIRTIO_TMEM_PAGE_SIZE, VIRTIO_TMEM_MAX_SIZE_PAGES);
}

/* No guest memory stays on the host's disk after QEMU (DEV-22). */
static void virtio_tmem_exit_notify(Notifier *n, void *data)
{
    VirtIOTmem *s = container_of(n, VirtIOTmem, exit_notifier);

    tmem_client_release_backing(s->client);
}

/*
 * The RADOS namespace of this device: rados-namespace, else one per VM
 * and device, "vm-UUID" (-uuid) or "vm-NAME" (-name), with "-ID" for a
 * device with an id.  NULL and errp when the VM has neither.
 */
static char *virtio_tmem_rados_namespace(VirtIOTmem *s, Error **errp)
{
    const char *id = virtio_tmem_id(s), *name = qemu_get_vm_name();
    g_autofree char *vm = NULL;

    if (s->conf.rados_namespace) {
        return g_strdup(s->conf.rados_namespace);
    }
    if (qemu_uuid_set) {
        vm = qemu_uuid_unparse_strdup(&qemu_uuid);
    } else if (name && name[0]) {
        vm = g_strdup(name);
    } else {
        error_setg(errp, "virtio-tmem: 'rados-namespace' is needed, or "
                   "-uuid or -name for the default (one per VM)");
        return NULL;
    }
    return id ? g_strdup_printf("vm-%s-%s", vm, id) :
                g_strdup_printf("vm-%s", vm);
}

/* The configuration without its RADOS tier: rados-optional=on. */
static void virtio_tmem_rados_drop(VirtIOTmem *s,
                                   struct tmem_client_config *cfg,
                                   const char *reason)
{
    warn_report("virtio-tmem: %s; running without a disk tier "
                "(rados-optional=on)", reason);
    cfg->rados_pool = cfg->rados_namespace = NULL;
    cfg->rados_conf = cfg->rados_user = cfg->rados_keyring = NULL;
    cfg->backing_size = 0;
    cfg->segment_size = 0;
    cfg->writeback_high = cfg->writeback_low = 0;
    s->conf.rados_off = true;
}

static void virtio_tmem_device_realize(DeviceState *dev, Error **errp)
{
    VirtIODevice *vdev = VIRTIO_DEVICE(dev);
    VirtIOTmem *s = VIRTIO_TMEM(dev);
    struct tmem_client_config cfg = { 0 };
    g_autofree char *rados_ns = NULL;
    char why[TMEM_ERRBUF_SIZE];
    unsigned i;
    int r;

    if (!virtio_tmem_check_conf(s, errp) ||
        !virtio_tmem_parse_incompressible(s, errp) ||
        !virtio_tmem_pool_realize(s, virtio_tmem_id(s),
                                  virtio_tmem_pool_timer, &cfg.budget_bytes,
                                  errp)) {
        return;
    }

    cfg.max_pools = s->conf.max_pools;
    cfg.compress_threshold = s->conf.compress_threshold;
    cfg.incompressible = s->conf.incompressible ==
                         VIRTIO_TMEM_INCOMPRESSIBLE_REJECT ?
                         TMEM_INCOMPRESSIBLE_REJECT : TMEM_INCOMPRESSIBLE_RAW;
    cfg.backing_file = s->conf.backing_file;
    cfg.backing_size = s->conf.backing_size;
    cfg.segment_size = s->conf.segment_size;
    cfg.writeback_high = s->conf.writeback_high;
    cfg.writeback_low = s->conf.writeback_low;
    cfg.room_wait_ms = s->conf.room_wait_ms;
    s->conf.rados_off = false;
    if (s->conf.rados_pool) {
        rados_ns = virtio_tmem_rados_namespace(s, errp);
        if (!rados_ns) {
            virtio_tmem_pool_unrealize(s);
            return;
        }
        cfg.rados_pool = s->conf.rados_pool;
        cfg.rados_namespace = rados_ns;
        cfg.rados_conf = s->conf.rados_conf;
        cfg.rados_user = s->conf.rados_user;
        cfg.rados_keyring = s->conf.rados_keyring;
    }
    r = tmem_client_new2(&cfg, sizeof(cfg), &s->client, why, sizeof(why));
    if (r < 0 && s->conf.rados_pool && s->conf.rados_optional &&
        r != -EINVAL) {
        g_autofree char *reason = virtio_tmem_reason(why);

        virtio_tmem_rados_drop(s, &cfg, reason);
        r = tmem_client_new2(&cfg, sizeof(cfg), &s->client, why,
                             sizeof(why));
    }
    if (r < 0) {
        g_autofree char *reason = virtio_tmem_reason(why);

        if (reason[0]) {
            error_setg(errp, "virtio-tmem: %s", reason);
        } else {
            error_setg_errno(errp, -r, "virtio-tmem: cannot create the page "
                             "store");
        }
        s->client = NULL;
        virtio_tmem_pool_unrealize(s);
        return;
    }
    if (s->disk_error) {
        /* x-disk-error given with -device: cannot fail with a tier. */
        tmem_client_inject_io_error(s->client, s->disk_error, -EIO);
    }
    if (s->disk_hang) {
        tmem_client_inject_io_hang(s->client, s->disk_hang);
    }

    s->size_pages = virtio_tmem_size_pages(s);
    s->capacity_pages = s->conf.budget / VIRTIO_TMEM_PAGE_SIZE;
    s->target_pages = VIRTIO_TMEM_NO_TARGET;
    s->return_state = VIRTIO_TMEM_RETURN_IDLE;
    s->return_known = VIRTIO_TMEM_RETURN_IDLE;

    virtio_init(vdev, VIRTIO_ID_TMEM, sizeof(struct virtio_tmem_config));

    for (i = 0; i < s->conf.num_queues; i++) {
        s->vqs[i] = virtio_add_queue(vdev, s->conf.queue_size,
                                     virtio_tmem_handle_output);
        r = tmem_ctx_new(s->client, &s->ctxs[i]);
        if (r < 0) {
            error_setg_errno(errp, -r, "virtio-tmem: cannot create the "
                             "context of queue %u", i);
            virtio_delete_queue(s->vqs[i]);
            s->vqs[i] = NULL;
            goto fail_queues;
        }
    }

    if (!virtio_tmem_iothread_setup(s, errp)) {
        goto fail_queues;
    }
    virtio_tmem_add_resume_bhs(s);

    virtio_tmem_migrate_realize(s, virtio_tmem_quiesce);

    if (virtio_tmem_has_tier(s)) {
        s->exit_notifier.notify = virtio_tmem_exit_notify;
        qemu_add_exit_notifier(&s->exit_notifier);
    }
    s->shrink_timer = timer_new_ms(QEMU_CLOCK_REALTIME,
                                   virtio_tmem_shrink_step, s);
    s->vm_state = qemu_add_vm_change_state_handler(virtio_tmem_vm_state_change,
                                                   s);
    if (s->pool) {
        /* The first grant, before the guest can store anything. */
        virtio_tmem_pool_timer(s);
    }

    trace_virtio_tmem_realize(s, s->conf.budget, s->conf.num_queues,
                              s->conf.queue_size);
    return;

fail_queues:
    virtio_tmem_del_queues(s, i);
    tmem_client_free(s->client);
    s->client = NULL;
    virtio_tmem_pool_unrealize(s);
}

static void virtio_tmem_device_unrealize(DeviceState *dev)
{
    VirtIOTmem *s = VIRTIO_TMEM(dev);

    qemu_del_vm_change_state_handler(s->vm_state);
    s->vm_state = NULL;
    timer_free(s->shrink_timer);
    s->shrink_timer = NULL;
    s->shrinking = false;
    if (s->exit_notifier.notify) {
        qemu_remove_exit_notifier(&s->exit_notifier);
        s->exit_notifier.notify = NULL;
    }
    virtio_tmem_migrate_unrealize(s);
    virtio_tmem_quiesce(s);
    virtio_tmem_del_resume_bhs(s);
    virtio_tmem_iothread_cleanup(s);
    virtio_tmem_del_queues(s, s->conf.num_queues);
    tmem_client_free(s->client);
    s->client = NULL;
    /* Its timer reads the client: no main loop timer runs before this. */
    virtio_tmem_pool_unrealize(s);
}

static TmemDiskInfo *virtio_tmem_disk_info(const struct tmem_stats *st)
{
    TmemDiskInfo *disk = g_new0(TmemDiskInfo, 1);
    uint64_t capacity = st->disk_segments * st->disk_segment_size;

    disk->size = st->disk_size;
    disk->segment_size = st->disk_segment_size;
    disk->segments = st->disk_segments;
    disk->pages = st->disk_pages;
    disk->bytes = st->disk_bytes;
    disk->fill = capacity ? (double)st->disk_bytes / capacity : 0;
    disk->written_back = st->written_back;
    disk->reads = st->disk_reads;
    disk->read_bytes = st->disk_read_bytes;
    disk->writes = st->disk_writes;
    disk->write_bytes = st->disk_write_bytes;
    disk->errors = st->disk_errors;
    disk->cleaned_segments = st->cleaned_segments;
    disk->failed = st->disk_failed != 0;
    return disk;
}

static TmemGuestReturnState virtio_tmem_guest_return_state(VirtIOTmem *s)
{
    if (!virtio_vdev_has_feature(VIRTIO_DEVICE(s), VIRTIO_TMEM_F_RETURN)) {
        return TMEM_GUEST_RETURN_STATE_UNSUPPORTED;
    }
    switch (s->return_known) {
    case VIRTIO_TMEM_RETURN_ACTIVE:
        return TMEM_GUEST_RETURN_STATE_ACTIVE;
    case VIRTIO_TMEM_RETURN_NO_BACKING:
        return TMEM_GUEST_RETURN_STATE_NO_BACKING;
    case VIRTIO_TMEM_RETURN_FAILED:
        return TMEM_GUEST_RETURN_STATE_FAILED;
    case VIRTIO_TMEM_RETURN_REFUSED:
        return TMEM_GUEST_RETURN_STATE_REFUSED;
    default:
        return TMEM_GUEST_RETURN_STATE_IDLE;
    }
}

static void virtio_tmem_fill_shrink_info(VirtIOTmem *s,
                                         const struct tmem_stats *st,
                                         TmemInfo *info)
{
    info->size = s->size_pages * VIRTIO_TMEM_PAGE_SIZE;
    info->shrinking = s->shrinking;
    info->shrink_phase = s->shrink_phase;
    if (s->target_pages != VIRTIO_TMEM_NO_TARGET) {
        info->has_target_pages = true;
        info->target_pages = s->target_pages;
        info->pages_to_return = st->pages > s->target_pages ?
                                st->pages - s->target_pages : 0;
    }
    info->guest_return_state = virtio_tmem_guest_return_state(s);
    info->shrink_reason = g_strdup(s->shrink_reason);
}

static void virtio_tmem_fill_info(VirtIOTmem *s, TmemInfo *info)
{
    struct tmem_stats st;
    const char *id = virtio_tmem_id(s);

    tmem_client_stats2(s->client, &st, sizeof(st));
    info->id = g_strdup(id);
    info->qom_path = object_get_canonical_path(OBJECT(s));
    info->budget = st.budget_bytes;
    info->pools = st.pools;
    info->pages = st.pages;
    info->same_filled_pages = st.same_filled_pages;
    info->raw_pages = st.raw_pages;
    info->compressed_bytes = st.compressed_bytes;
    info->data_bytes = st.data_bytes;
    info->meta_bytes = st.meta_bytes;
    info->host_bytes = st.host_bytes;
    info->succ_stores = st.succ_stores;
    info->failed_stores = st.failed_stores;
    info->failed_stores_budget = st.failed_stores_budget;
    info->failed_stores_incompressible = st.failed_stores_incompressible;
    info->failed_stores_other = st.failed_stores_other;
    info->loads = st.loads;
    info->load_misses = st.load_misses;
    info->invalidates = st.invalidates;
    info->evictions = st.evictions;
    if (virtio_tmem_has_tier(s)) {
        info->disk = virtio_tmem_disk_info(&st);
    }
    virtio_tmem_fill_shrink_info(s, &st, info);
    info->host_pool = virtio_tmem_pool_info(s);
}

/* tmem_client_stats() is safe against queue handlers in IOThreads. */
static void virtio_tmem_get_stats(Object *obj, Visitor *v, const char *name,
                                  void *opaque, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    TmemInfo *info;

    if (!s->client) {
        error_setg(errp, "virtio-tmem: device is not realized");
        return;
    }
    info = g_new0(TmemInfo, 1);
    virtio_tmem_fill_info(s, info);
    visit_type_TmemInfo(v, name, &info, errp);
    qapi_free_TmemInfo(info);
}

/*
 * "timing": where the device's time went since realize, summed over the
 * queues (for bench/, not a stable interface; all 0 unless x-timing=on): handler-ns is all time in
 * the queue handlers (pops, requests, pushes, notifications); per kind
 * (store, load, other) the requests answered, their time from the end of
 * the previous answer (or the handler's start) to their own push, and
 * the part of it inside libtmem's tmem_handle_request().
 */
static void virtio_tmem_get_timing(Object *obj, Visitor *v, const char *name,
                                   void *opaque, Error **errp)
{
    static const char *const kinds[VIRTIO_TMEM_TIMING_NR] = {
        "store", "load", "other",
    };
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    VirtIOTmemTiming sum = { 0 };
    unsigned i, k;

    for (i = 0; i < VIRTIO_TMEM_MAX_QUEUES; i++) {
        VirtIOTmemTiming *tm = &s->timing[i];

        sum.handler_calls += qatomic_read(&tm->handler_calls);
        sum.handler_ns += qatomic_read(&tm->handler_ns);
        for (k = 0; k < VIRTIO_TMEM_TIMING_NR; k++) {
            sum.requests[k] += qatomic_read(&tm->requests[k]);
            sum.request_ns[k] += qatomic_read(&tm->request_ns[k]);
            sum.lib_ns[k] += qatomic_read(&tm->lib_ns[k]);
        }
    }
    if (!visit_start_struct(v, name, NULL, 0, errp)) {
        return;
    }
    if (!visit_type_uint64(v, "handler-calls", &sum.handler_calls, errp) ||
        !visit_type_uint64(v, "handler-ns", &sum.handler_ns, errp)) {
        goto out;
    }
    for (k = 0; k < VIRTIO_TMEM_TIMING_NR; k++) {
        g_autofree char *n = g_strdup_printf("%s-requests", kinds[k]);
        g_autofree char *r = g_strdup_printf("%s-ns", kinds[k]);
        g_autofree char *l = g_strdup_printf("%s-lib-ns", kinds[k]);

        if (!visit_type_uint64(v, n, &sum.requests[k], errp) ||
            !visit_type_uint64(v, r, &sum.request_ns[k], errp) ||
            !visit_type_uint64(v, l, &sum.lib_ns[k], errp)) {
            goto out;
        }
    }
    visit_check_struct(v, errp);
out:
    visit_end_struct(v, NULL);
}

/* x-disk-error values, indexed by TMEM_IO_* bits */
static const char *const virtio_tmem_disk_errors[] = {
    [0] = "none",
    [TMEM_IO_READ] = "read",
    [TMEM_IO_WRITE] = "write",
    [TMEM_IO_READ | TMEM_IO_WRITE] = "read+write",
};

/* The value of x-disk-error or x-disk-hang: which tier I/O it affects. */
static bool virtio_tmem_parse_disk_ops(const char *prop, const char *value,
                                       unsigned *ops, Error **errp)
{
    for (*ops = 0; *ops < ARRAY_SIZE(virtio_tmem_disk_errors); (*ops)++) {
        if (!strcmp(value, virtio_tmem_disk_errors[*ops])) {
            return true;
        }
    }
    error_setg(errp, "virtio-tmem: '%s' must be 'none', 'read', 'write' or "
               "'read+write', not '%s'", prop, value);
    return false;
}

static char *virtio_tmem_get_disk_error(Object *obj, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);

    return g_strdup(virtio_tmem_disk_errors[s->disk_error]);
}

/*
 * A testing aid: from now on every disk tier read and/or write fails with
 * EIO, as on a failing disk.  Before realize (-device) the value is kept
 * for realize to apply.
 */
static void virtio_tmem_set_disk_error(Object *obj, const char *value,
                                       Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    unsigned ops;
    int r;

    if (!virtio_tmem_parse_disk_ops("x-disk-error", value, &ops, errp)) {
        return;
    }
    if (s->client) {
        if (!virtio_tmem_has_tier(s)) {
            error_setg(errp, "virtio-tmem: 'x-disk-error' needs a disk tier, "
                       "and this device has none");
            return;
        }
        r = tmem_client_inject_io_error(s->client, ops, -EIO);
        if (r < 0) {
            error_setg_errno(errp, -r, "virtio-tmem: cannot inject disk "
                             "errors");
            return;
        }
    }
    s->disk_error = ops;
}

static char *virtio_tmem_get_disk_hang(Object *obj, Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);

    return g_strdup(virtio_tmem_disk_errors[s->disk_hang]);
}

/*
 * A testing aid: from now on disk tier reads and/or writes are held, as
 * on a hung disk, until x-disk-hang=none issues them.  Loads of pages on
 * the disk and stores that wait for room stay pending meanwhile; the
 * queue waits, QEMU does not.
 */
static void virtio_tmem_set_disk_hang(Object *obj, const char *value,
                                      Error **errp)
{
    VirtIOTmem *s = VIRTIO_TMEM(obj);
    unsigned ops;
    int r;

    if (!virtio_tmem_parse_disk_ops("x-disk-hang", value, &ops, errp)) {
        return;
    }
    if (s->client) {
        r = tmem_client_inject_io_hang(s->client, ops);
        if (r < 0) {
            error_setg_errno(errp, -r, "virtio-tmem: cannot hang disk I/O "
                             "(x-disk-hang needs a disk tier)");
            return;
        }
    }
    s->disk_hang = ops;
}

static void virtio_tmem_instance_init(Object *obj)
{
    object_property_add(obj, "budget", "size", virtio_tmem_get_budget,
                        virtio_tmem_set_budget, NULL, NULL);
    object_property_set_description(obj, "budget",
                                    "cap on host bytes for stored pages, "
                                    "data plus metadata (required without "
                                    "host-pool, where it is the cap; e.g. 2G; "
                                    "qom-set changes it at run time)");
    object_property_add(obj, "stats", "TmemInfo", virtio_tmem_get_stats,
                        NULL, NULL, NULL);
    object_property_set_description(obj, "stats",
                                    "page store statistics (as query-tmem)");
    object_property_add(obj, "timing", "any", virtio_tmem_get_timing,
                        NULL, NULL, NULL);
    object_property_set_description(obj, "timing",
                                    "time spent per request kind, for "
                                    "benchmarks");
    object_property_add(obj, "migration", "any",
                        virtio_tmem_migrate_get_stats, NULL, NULL, NULL);
    object_property_set_description(obj, "migration",
                                    "the last migration of the stored pages: "
                                    "state, passes, bytes and pages sent or "
                                    "loaded, the stopped pass's bytes and "
                                    "time");
    object_property_add_str(obj, "x-disk-error", virtio_tmem_get_disk_error,
                            virtio_tmem_set_disk_error);
    object_property_set_description(obj, "x-disk-error",
                                    "testing aid: none|read|write|read+write, "
                                    "make disk tier I/O fail with EIO");
    object_property_add_str(obj, "x-disk-hang", virtio_tmem_get_disk_hang,
                            virtio_tmem_set_disk_hang);
    object_property_set_description(obj, "x-disk-hang",
                                    "testing aid: none|read|write|read+write, "
                                    "hold disk tier I/O as a hung disk");
}

/*
 * Migration (virtio-tmem-migrate.c sends the stored pages before this):
 * a request in flight at the stop goes with the device state, as
 * virtio-blk's do, and the destination submits it before it reads the
 * ring (a LOAD loads again, a STORE stores again: the pages it reads and
 * writes are guest RAM, which is migrated).  Nothing waits at the stop
 * for a disk, hung or not.  Queues do not run while the VM is stopped,
 * so the element is the one libtmem has, answered or not.
 */
static int virtio_tmem_put_in_flight(QEMUFile *f, void *pv, size_t size,
                                     const VMStateField *field,
                                     JSONWriter *vmdesc)
{
    VirtIOTmem *s = pv;
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    unsigned i;

    qemu_put_be16(f, s->conf.num_queues);
    for (i = 0; i < s->conf.num_queues; i++) {
        VirtIOTmemResume *r = &s->resume[i];
        VirtQueueElement *elem = qatomic_read(&r->pending) ?: r->restored;

        qemu_put_byte(f, elem != NULL);
        if (elem) {
            qemu_put_virtqueue_element(vdev, f, elem);
        }
    }
    return 0;
}

static int virtio_tmem_get_in_flight(QEMUFile *f, void *pv, size_t size,
                                     const VMStateField *field)
{
    VirtIOTmem *s = pv;
    VirtIODevice *vdev = VIRTIO_DEVICE(s);
    unsigned queues = qemu_get_be16(f), i;

    /* The virtio core checked the rings; this is only our own count. */
    if (queues != s->conf.num_queues) {
        error_report("virtio-tmem: migration: the source had %u queues, "
                     "this device %u ('num-queues' must match)", queues,
                     s->conf.num_queues);
        return -EINVAL;
    }
    for (i = 0; i < s->conf.num_queues; i++) {
        VirtIOTmemResume *r = &s->resume[i];

        if (!qemu_get_byte(f)) {
            continue;
        }
        /* QEMU asserts on an element it cannot map, as for virtio-blk. */
        g_free(r->restored);
        r->restored = qemu_get_virtqueue_element(vdev, f,
                                                 sizeof(VirtQueueElement));
    }
    return qemu_file_get_error(f);
}

/*
 * The guest keeps the config it saw (size_pages, capacity_pages: the
 * source's).  A shrink of the source does not go on here: this device's
 * budget is its own, and it holds the pages within it (the load fails
 * otherwise), so a target the guest was given is withdrawn, told to it
 * when the VM runs.
 */
static int virtio_tmem_post_load(void *opaque, int version_id)
{
    VirtIOTmem *s = opaque;
    Error *err = NULL;

    if (!virtio_tmem_migrate_loaded(s, &err)) {
        error_report_err(err);
        return -EINVAL;
    }
    if (s->size_pages > VIRTIO_TMEM_MAX_SIZE_PAGES) {
        error_report("virtio-tmem: migration: size_pages %" PRIu64
                     " is over 2^32-1", s->size_pages);
        return -EINVAL;
    }
    if (s->target_pages != VIRTIO_TMEM_NO_TARGET) {
        s->target_pages = VIRTIO_TMEM_NO_TARGET;
        s->config_pending = true;
    }
    if (s->return_known > VIRTIO_TMEM_RETURN_REFUSED) {
        s->return_known = VIRTIO_TMEM_RETURN_IDLE;
    }
    return 0;
}

static const VMStateDescription vmstate_virtio_tmem_device = {
    .name = "virtio-tmem-device",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = virtio_tmem_post_load,
    .fields = (const VMStateField[]) {
        {
            .name = "in-flight",
            .info = &(const VMStateInfo) {
                .name = "virtio-tmem-in-flight",
                .get = virtio_tmem_get_in_flight,
                .put = virtio_tmem_put_in_flight,
            },
            .flags = VMS_SINGLE,
        },
        VMSTATE_UINT64(size_pages, VirtIOTmem),
        VMSTATE_UINT64(capacity_pages, VirtIOTmem),
        VMSTATE_UINT64(target_pages, VirtIOTmem),
        VMSTATE_UINT32(return_state, VirtIOTmem),
        VMSTATE_UINT32(return_known, VirtIOTmem),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_virtio_tmem = {
    .name = "virtio-tmem",
    .minimum_version_id = 1,
    .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_VIRTIO_DEVICE,
        VMSTATE_END_OF_LIST()
    },
};

static const Property virtio_tmem_properties[] = {
    DEFINE_PROP_SIZE("size", VirtIOTmem, conf.size, 0),
    DEFINE_PROP_UINT16("num-queues", VirtIOTmem, conf.num_queues, 1),
    DEFINE_PROP_UINT16("queue-size", VirtIOTmem, conf.queue_size,
                       VIRTIO_TMEM_DEFAULT_QUEUE_SIZE),
    DEFINE_PROP_UINT32("max-pools", VirtIOTmem, conf.max_pools, 0),
    DEFINE_PROP_STRING("incompressible", VirtIOTmem, incompressible_str),
    DEFINE_PROP_UINT32("compress-threshold", VirtIOTmem,
                       conf.compress_threshold, 0),
    DEFINE_PROP_BIT64("ephemeral", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_EPHEMERAL, true),
    DEFINE_PROP_BIT64("page-return", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_RETURN, true),
    DEFINE_PROP_BIT64("invalidate-pages", VirtIOTmem, host_features,
                      VIRTIO_TMEM_F_INVALIDATE_PAGES, true),
    DEFINE_PROP_LINK("iothread", VirtIOTmem, conf.iothread, TYPE_IOTHREAD,
                     IOThread *),
    DEFINE_PROP_IOTHREAD_VQ_MAPPING_LIST("iothread-vq-mapping", VirtIOTmem,
                                         conf.iothread_vq_mapping_list),
    DEFINE_PROP_STRING("backing-file", VirtIOTmem, conf.backing_file),
    DEFINE_PROP_SIZE("backing-size", VirtIOTmem, conf.backing_size, 0),
    DEFINE_PROP_SIZE32("segment-size", VirtIOTmem, conf.segment_size, 0),
    DEFINE_PROP_UINT8("writeback-high", VirtIOTmem, conf.writeback_high, 0),
    DEFINE_PROP_UINT8("writeback-low", VirtIOTmem, conf.writeback_low, 0),
    DEFINE_PROP_UINT32("room-wait-ms", VirtIOTmem, conf.room_wait_ms, 0),
    DEFINE_PROP_STRING("rados-pool", VirtIOTmem, conf.rados_pool),
    DEFINE_PROP_STRING("rados-namespace", VirtIOTmem, conf.rados_namespace),
    DEFINE_PROP_STRING("rados-conf", VirtIOTmem, conf.rados_conf),
    DEFINE_PROP_STRING("rados-user", VirtIOTmem, conf.rados_user),
    DEFINE_PROP_STRING("rados-keyring", VirtIOTmem, conf.rados_keyring),
    DEFINE_PROP_BOOL("rados-optional", VirtIOTmem, conf.rados_optional,
                     false),
    DEFINE_PROP_BOOL("x-timing", VirtIOTmem, timing_enabled, false),
    DEFINE_PROP_STRING("host-pool", VirtIOTmem, host_pool),
    DEFINE_PROP_UINT32("weight", VirtIOTmem, host_pool_weight,
                       TMEM_LEDGER_DEFAULT_WEIGHT),
    DEFINE_PROP_SIZE("host-pool-total", VirtIOTmem, host_pool_total, 0),
};

static void virtio_tmem_class_init(ObjectClass *klass,
                                   VirtIOTmemClassData data)
{
    DeviceClass *dc = DEVICE_CLASS(klass);
    VirtioDeviceClass *vdc = VIRTIO_DEVICE_CLASS(klass);

    device_class_set_props(dc, virtio_tmem_properties);
    object_class_property_set_description(klass, "size",
        "key space the guest sees, e.g. its swap disk's size (0: the "
        "larger of guest RAM and budget plus backing-size)");
    object_class_property_set_description(klass, "page-return",
        "offer VIRTIO_TMEM_F_RETURN (the guest takes pages back when the "
        "budget shrinks below what is held)");
    object_class_property_set_description(klass, "num-queues",
        "number of request queues, 1-" stringify(VIRTIO_TMEM_MAX_QUEUES));
    object_class_property_set_description(klass, "queue-size",
        "entries per request queue, a power of 2");
    object_class_property_set_description(klass, "max-pools",
        "pools a guest may have open at once (0: libtmem's default, 16)");
    object_class_property_set_description(klass, "incompressible",
        "raw|reject: keep or refuse a page that does not compress below "
        "compress-threshold (default raw)");
    object_class_property_set_description(klass, "compress-threshold",
        "compressed size in bytes above which a page is incompressible "
        "(0: libtmem's default, 3584)");
    object_class_property_set_description(klass, "ephemeral",
        "offer VIRTIO_TMEM_F_EPHEMERAL (ephemeral pools)");
    object_class_property_set_description(klass, "invalidate-pages",
        "offer VIRTIO_TMEM_F_INVALIDATE_PAGES (many invalidates in one "
        "request)");
    object_class_property_set_description(klass, "iothread",
        "IOThread that runs the request queues (default: main loop)");
    object_class_property_set_description(klass, "iothread-vq-mapping",
        "IOThreads for the request queues, e.g. one per queue "
        "(JSON -device syntax, as for virtio-blk)");
    object_class_property_set_description(klass, "backing-file",
        "file of the disk tier, for pages of persistent pools written back "
        "over writeback-high (default: no disk tier)");
    object_class_property_set_description(klass, "backing-size",
        "bytes of backing-file to use; the file is created and allocated "
        "(0: the existing file's size)");
    object_class_property_set_description(klass, "segment-size",
        "disk tier write unit, a power of 2 from 64K to 16M "
        "(0: libtmem's default, 256K)");
    object_class_property_set_description(klass, "writeback-high",
        "percent of the budget at which writeback to the disk tier starts "
        "(0: libtmem's default, 90)");
    object_class_property_set_description(klass, "writeback-low",
        "percent of the budget at which writeback stops "
        "(0: libtmem's default, 80)");
    object_class_property_set_description(klass, "room-wait-ms",
        "how long a store over the budget may wait for writeback to the "
        "disk tier before it is refused (0: libtmem's default, 1000); "
        "keep it below the guest driver's io_timeout (30 s by default), "
        "past which the guest resets the device");
    object_class_property_set_description(klass, "rados-pool",
        "Ceph RADOS pool of the disk tier instead of backing-file: "
        "segments are objects of rados-namespace, backing-size (required) "
        "bytes of them");
    object_class_property_set_description(klass, "rados-namespace",
        "this device's own namespace in rados-pool (default: vm-UUID or "
        "vm-NAME from -uuid/-name, -ID for a device with an id)");
    object_class_property_set_description(klass, "rados-conf",
        "Ceph configuration file (default /etc/ceph/ceph.conf)");
    object_class_property_set_description(klass, "rados-user",
        "cephx id without 'client.' (default admin); its caps should allow "
        "rw in rados-namespace only");
    object_class_property_set_description(klass, "rados-keyring",
        "keyring of rados-user (default: the configuration's)");
    object_class_property_set_description(klass, "rados-optional",
        "when the cluster cannot be reached or refuses the namespace at "
        "start, run without a disk tier (with a warning) instead of "
        "failing");
    object_class_property_set_description(klass, "host-pool",
        "name of a host-wide pool of memory that devices of several QEMU "
        "processes share by weight (its ledger: "
        "/run/virtio-tmem/NAME.ledger, or under $VTMEM_LEDGER_DIR); "
        "budget is then this device's cap (0: none but the pool's total)");
    object_class_property_set_description(klass, "weight",
        "this device's weight in its host pool, 1-10000 (default 100)");
    object_class_property_set_description(klass, "host-pool-total",
        "bytes of the host pool, if this device creates it (a pool that "
        "exists keeps its total; vtmem-top set changes it)");
    object_class_property_set_description(klass, "x-timing",
        "count where request time goes, for the 'timing' property "
        "(benchmarks; two clock reads per request)");
    dc->vmsd = &vmstate_virtio_tmem;
    set_bit(DEVICE_CATEGORY_MISC, dc->categories);
    vdc->realize = virtio_tmem_device_realize;
    vdc->unrealize = virtio_tmem_device_unrealize;
    vdc->get_config = virtio_tmem_get_config;
    vdc->set_config = virtio_tmem_set_config;
    vdc->get_features = virtio_tmem_get_features;
    vdc->set_features = virtio_tmem_set_features;
    vdc->set_status = virtio_tmem_set_status;
    vdc->reset = virtio_tmem_reset;
    vdc->queue_reset = virtio_tmem_queue_reset;
    vdc->queue_enable = virtio_tmem_queue_enable;
    vdc->start_ioeventfd = virtio_tmem_start_ioeventfd;
    vdc->stop_ioeventfd = virtio_tmem_stop_ioeventfd;
    vdc->vmsd = &vmstate_virtio_tmem_device;
}

static const TypeInfo virtio_tmem_info = {
    .name = TYPE_VIRTIO_TMEM,
    .parent = TYPE_VIRTIO_DEVICE,
    .instance_size = sizeof(VirtIOTmem),
    .instance_init = virtio_tmem_instance_init,
    .class_init = virtio_tmem_class_init,
};

static void virtio_tmem_register_types(void)
{
    type_register_static(&virtio_tmem_info);
}

type_init(virtio_tmem_register_types)
