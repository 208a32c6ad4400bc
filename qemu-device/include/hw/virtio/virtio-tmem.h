/*
 * Virtio transcendent memory device
 *
 * Copyright (c) 2026 The virtio-tmem authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or
 * (at your option) any later version.  See the COPYING file in the
 * top-level directory.
 */

#ifndef QEMU_VIRTIO_TMEM_H
#define QEMU_VIRTIO_TMEM_H

#include "hw/virtio/virtio.h"
#include "qapi/qapi-types-virtio.h"
#include "qemu/timer.h"
#include "system/iothread.h"
#include "system/runstate.h"
#include "qom/object.h"
#include "qemu/notify.h"

#define TYPE_VIRTIO_TMEM "virtio-tmem-device"
OBJECT_DECLARE_SIMPLE_TYPE(VirtIOTmem, VIRTIO_TMEM)

/* Upper bound of the num-queues property. */
#define VIRTIO_TMEM_MAX_QUEUES 16

struct tmem_client;
struct tmem_ctx;
struct tmem_save;
struct tmem_load;
struct tmem_migrate_stats;
typedef struct VirtIOTmemPool VirtIOTmemPool;

/* Values of the incompressible property. */
enum {
    VIRTIO_TMEM_INCOMPRESSIBLE_RAW = 0,
    VIRTIO_TMEM_INCOMPRESSIBLE_REJECT = 1,
};

typedef struct VirtIOTmemConf {
    uint64_t budget;            /* the live budget, set with qom-set too */
    uint64_t size;              /* key space; 0: the default (realize) */
    uint16_t num_queues;
    uint16_t queue_size;
    uint32_t max_pools;
    uint32_t compress_threshold;
    int incompressible;
    IOThread *iothread;
    IOThreadVirtQueueMappingList *iothread_vq_mapping_list;
    /* Disk tier: none without a backing file. */
    char *backing_file;
    uint64_t backing_size;
    uint32_t segment_size;
    uint8_t writeback_high;
    uint8_t writeback_low;
    uint32_t room_wait_ms;      /* a STORE's wait for room; 0: libtmem's */
    /* Or the disk tier in a Ceph RADOS pool (libtmem: rados_*). */
    char *rados_pool;
    char *rados_namespace;      /* NULL: one per VM, from -uuid or -name */
    char *rados_conf;
    char *rados_user;
    char *rados_keyring;
    bool rados_optional;        /* a refused pool: run without the tier */
    bool rados_off;             /* ... which realize did */
} VirtIOTmemConf;

/*
 * Where a queue's time goes, for benchmarks (the "timing" QOM property,
 * counted only with x-timing=on): cumulative nanoseconds since realize,
 * written only by the thread that runs the queue, read by anyone.
 * Index: VIRTIO_TMEM_TIMING_STORE, _LOAD, _OTHER.
 */
enum {
    VIRTIO_TMEM_TIMING_STORE,
    VIRTIO_TMEM_TIMING_LOAD,
    VIRTIO_TMEM_TIMING_OTHER,
    VIRTIO_TMEM_TIMING_NR,
};

typedef struct VirtIOTmemTiming {
    uint64_t handler_calls;
    uint64_t handler_ns;        /* the whole queue handler */
    uint64_t requests[VIRTIO_TMEM_TIMING_NR];
    uint64_t request_ns[VIRTIO_TMEM_TIMING_NR];  /* pop .. push, per request */
    uint64_t lib_ns[VIRTIO_TMEM_TIMING_NR];      /* in tmem_handle_request() */
} VirtIOTmemTiming;

typedef struct VirtIOTmemResume {
    VirtIOTmem *s;
    unsigned queue;
    /* Continues a batch cut at queue-size requests, in the queue's thread. */
    QEMUBH *bh;
    /*
     * The request libtmem is still working on (a load from the disk
     * tier, a store waiting for room), or NULL.  While there is one, the
     * queue takes no other (DEV-14); libtmem's completion fd, watched in
     * the queue's AioContext, says when it is answered (@answered, @len).
     * Only the queue's home context touches these.
     */
    VirtQueueElement *pending;
    bool answered;
    int len;
    int64_t submitted;          /* x-timing: get_clock() at submit */
    /* ioeventfd stopped (vm stop, reset): answers wait for the restart. */
    bool paused;
    /*
     * A request that was in flight when the source of a migration
     * stopped, to be submitted before the ring is read (VMState).
     */
    VirtQueueElement *restored;
    /*
     * The host notifier is attached (ioeventfd started, queue enabled),
     * and then with polling (@polled) or, while a request is pending,
     * without.  Only the queue's home context touches these.
     */
    bool attached;
    bool polled;
} VirtIOTmemResume;

/* Where the last migration of the device's pages stands. */
typedef enum VirtIOTmemMigState {
    VIRTIO_TMEM_MIG_NONE,
    VIRTIO_TMEM_MIG_ACTIVE,     /* the source sends */
    VIRTIO_TMEM_MIG_COMPLETED,
    VIRTIO_TMEM_MIG_FAILED,     /* failed or cancelled */
    VIRTIO_TMEM_MIG_LOADING,    /* the destination takes them */
    VIRTIO_TMEM_MIG_LOADED,
} VirtIOTmemMigState;

/* virtio-tmem-migrate.c: the stored pages' part of a migration. */
typedef struct VirtIOTmemMig {
    struct tmem_save *save;     /* while the source sends */
    struct tmem_load *load;     /* while the destination takes */
    uint8_t *buf;               /* one block */
    bool dest;
    bool ended;                 /* the stream's end arrived */
    VirtIOTmemMigState state;
    /* What the last migration did (the "migration" property). */
    struct tmem_migrate_stats *stats;
    uint64_t setup_pages;
    uint64_t setup_compressed;
    uint64_t final_bytes;       /* sent with the VM stopped */
    uint64_t final_ns;          /* time of that last pass */
    NotifierWithReturn notifier;
    void (*quiesce)(VirtIOTmem *s);
} VirtIOTmemMig;

struct VirtIOTmem {
    VirtIODevice parent_obj;

    VirtIOTmemConf conf;
    char *incompressible_str;
    uint64_t host_features;

    /* The page store: one client per device, one context per queue. */
    struct tmem_client *client;
    VirtQueue *vqs[VIRTIO_TMEM_MAX_QUEUES];
    struct tmem_ctx *ctxs[VIRTIO_TMEM_MAX_QUEUES];
    /* The AioContext each queue's host notifier is handled in. */
    AioContext *vq_aio_context[VIRTIO_TMEM_MAX_QUEUES];
    VirtIOTmemResume resume[VIRTIO_TMEM_MAX_QUEUES];
    VirtIOTmemTiming timing[VIRTIO_TMEM_MAX_QUEUES];

    /*
     * DRIVER_OK is set: queues may run.  Written with the BQL held, read
     * by the queue handlers in their home contexts.
     */
    bool driver_ok;
    bool ioeventfd_started;
    bool ioeventfd_starting;
    bool ioeventfd_stopping;

    /* x-disk-error: the injected disk tier failure (TMEM_IO_* bits). */
    unsigned disk_error;
    /* x-disk-hang: the disk tier I/O held as by a hung disk (TMEM_IO_*). */
    unsigned disk_hang;
    /* x-timing: count the "timing" property's figures (benchmarks). */
    bool timing_enabled;

    /*
     * Elastic memory (SPEC 6.5).  The config space's fixed fields are
     * latched at realize and reset: a qom-set of the budget changes no
     * field but target_pages after DRIVER_OK (DEV-2).
     */
    uint64_t size_pages;
    uint64_t capacity_pages;
    uint64_t target_pages;      /* VIRTIO_TMEM_NO_TARGET: nothing asked */
    uint32_t return_state;      /* as the driver last wrote it */
    uint32_t return_known;      /* its last VIRTIO_TMEM_RETURN_* value */
    /* A lowered budget not reached yet; the timer steps the reclaim. */
    bool shrinking;
    bool target_fresh;          /* a new goal: the target may go up */
    bool target_reached;        /* pages <= target seen at the last step */
    int64_t target_changed_ms;  /* QEMU_CLOCK_REALTIME of its last change */
    TmemShrinkPhase shrink_phase;
    const char *shrink_reason;  /* while blocked: the event's reason */
    unsigned blocked_events;    /* reasons told in this goal's events */
    uint64_t shrink_evictions;  /* evictions at the last step */
    uint64_t shrink_written_back;   /* written_back at the last step */
    QEMUTimer *shrink_timer;
    /* A config change made while the VM was stopped, told at resume. */
    bool config_pending;
    VMChangeStateEntry *vm_state;

    /*
     * The host-wide pool (SPEC 6.6, virtio-tmem-pool.c): properties
     * host-pool, weight and host-pool-total; conf.budget is the cap.
     */
    char *host_pool;
    uint32_t host_pool_weight;
    uint64_t host_pool_total;
    VirtIOTmemPool *pool;       /* NULL without host-pool */

    VirtIOTmemMig mig;
    /* QEMU does not unrealize at exit: the disk tier's file goes then. */
    Notifier exit_notifier;
};

/* virtio-tmem-pool.c: the host-wide pool (SPEC 6.6). */
bool virtio_tmem_pool_realize(VirtIOTmem *s, const char *dev_id,
                              QEMUTimerCB *tick, uint64_t *budget,
                              Error **errp);
bool virtio_tmem_pool_tick(VirtIOTmem *s);
void virtio_tmem_pool_unrealize(VirtIOTmem *s);
int virtio_tmem_pool_set_cap(VirtIOTmem *s, uint64_t cap, Error **errp);
TmemHostPoolInfo *virtio_tmem_pool_info(VirtIOTmem *s);

/* virtio-tmem-migrate.c: migration of the stored pages. */
void virtio_tmem_migrate_realize(VirtIOTmem *s,
                                 void (*quiesce)(VirtIOTmem *s));
void virtio_tmem_migrate_unrealize(VirtIOTmem *s);
bool virtio_tmem_migrate_loaded(VirtIOTmem *s, Error **errp);
void virtio_tmem_migrate_get_stats(Object *obj, Visitor *v, const char *name,
                                   void *opaque, Error **errp);

#endif
