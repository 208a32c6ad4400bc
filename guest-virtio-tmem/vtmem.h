/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio_tmem internals shared by the driver and its test-only debugfs
 * knob (vtmem_test.c, built with VTMEM_TEST=1).
 */
#ifndef VTMEM_H
#define VTMEM_H

#include <linux/atomic.h>
#include <linux/blkdev.h>
#include <linux/cache.h>
#include <linux/completion.h>
#include <linux/mempool.h>
#include <linux/mutex.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "virtio_tmem.h"
#include "compat.h"

/* One slot is one 4 KiB logical block: sector >> 3. */
#define VTMEM_SLOT_SHIFT	(PAGE_SHIFT - SECTOR_SHIFT)
/* Requests placed before one notification and one wait. */
#define VTMEM_BATCH		32
/* Largest discard, in sectors: whole slots, so splits stay aligned. */
#define VTMEM_MAX_DISCARD_SECTORS \
	(round_down(UINT_MAX >> SECTOR_SHIFT, 1 << VTMEM_SLOT_SHIFT))
/* Queues beyond this bring nothing: a slot maps to one queue anyway. */
#define VTMEM_MAX_QUEUES	64
/*
 * VIRTIO_TMEM_F_INVALIDATE_PAGES: freed slots collected per queue, up to
 * VTMEM_INVAL_MAX; once VTMEM_INVAL_RIDE are collected they ride, as one
 * INVALIDATE_PAGES, in the notification of the queue's next STORE or
 * LOAD.  What no request takes along goes after VTMEM_INVAL_DELAY.
 */
#define VTMEM_INVAL_MAX		VIRTIO_TMEM_INVALIDATE_PAGES_MAX
#define VTMEM_INVAL_RIDE	64
#define VTMEM_INVAL_DELAY	(HZ / 50 ?: 1)
/* INVALIDATE_PAGES a queue may have in flight. */
#define VTMEM_INVAL_BUFS	2

/* resp.status of a request the device never answered (reset, lost). */
#define VTMEM_S_NO_ANSWER	0xff
/* Status of an answer shorter than the request's writable part (DRV-5). */
#define VTMEM_S_SHORT		0xfe

/*
 * The device's size (config size_pages) or capacity hint sizes the disk
 * when no size is given, and the slot maps (5 bits a slot) are allocated
 * from it: it is taken up to this many slots per page of guest RAM (a
 * disk of 64 times the RAM, maps of 1% of it) and never above the 32-bit
 * key index.
 */
#define VTMEM_MAX_SLOTS_PER_RAM_PAGE	64
/* Default of the io_timeout parameter, in seconds. */
#define VTMEM_IO_TIMEOUT	30
/* Default of the return_rate parameter, in pages per second. */
#define VTMEM_RETURN_RATE	16384
/* One run of the return worker moves what return_rate allows in this. */
#define VTMEM_RETURN_PERIOD	(HZ / 10)
/* After a failed backing write, the same target is tried again after this. */
#define VTMEM_RETURN_RETRY	(10 * HZ)

struct vtmem_batch;

/*
 * One request in flight; also the virtqueue token.  hdr and resp are
 * device-visible, so they live in kmalloc'ed memory, never on a stack.
 * The device writes resp while the CPU writes the other fields of this
 * request and of its neighbours in the batch: without coherent DMA resp
 * needs cache lines of its own (the DMA API's ARCH_DMA_MINALIGN), and a
 * line of its own anywhere keeps the device's writes off the CPU's.  So
 * it is last, aligned to both (of two aligned attributes the larger
 * applies).
 */
struct vtmem_req {
	struct virtio_tmem_req hdr;
	struct vtmem_batch *batch;
	struct page *page;
	u32 slot;
	u32 used_len;
	u8 action;
	struct virtio_tmem_resp resp __aligned(ARCH_DMA_MINALIGN)
		____cacheline_aligned;
};

/* Up to VTMEM_BATCH requests that are sent together and waited for. */
struct vtmem_batch {
	struct completion done;
	atomic_t pending;
	unsigned int nr;
	/*
	 * synchronous=N: the bio the batch serves, completed by @work once
	 * every request is answered; NULL for a batch that is waited for.
	 */
	struct bio *bio;
	bool write;
	struct work_struct work;
	struct list_head node;
	unsigned long sent;
	struct vtmem_req req[VTMEM_BATCH];
};

/*
 * One INVALIDATE_PAGES in flight; its token is the pointer with bit 0
 * set (VTMEM_INVAL_TOKEN), which a struct vtmem_req never has.
 */
struct vtmem_inval {
	struct virtio_tmem_req hdr;
	__le32 index[VTMEM_INVAL_MAX];
	struct virtio_tmem_resp resp __aligned(ARCH_DMA_MINALIGN)
		____cacheline_aligned;
	bool busy;
};

#define VTMEM_INVAL_TOKEN	1UL

struct vtmem_queue {
	/* Orders adds to vq with the slot state they depend on. */
	spinlock_t lock;
	struct virtqueue *vq;
	/* Woken when the device returns buffers: room in vq again. */
	wait_queue_head_t room;
	char name[16];
	/* Waiters polling the queue: its callbacks stay off meanwhile. */
	unsigned int pollers;
	/*
	 * VIRTIO_TMEM_F_INVALIDATE_PAGES: slots freed since the last
	 * INVALIDATE_PAGES of this queue (their inval_pending bit decides
	 * when one is sent); overflow: some freed slot found no room here,
	 * so the invalidate worker scans inval_pending.
	 */
	u32 *freed;
	unsigned int nr_freed;
	bool overflow;
	struct vtmem_inval *inval[VTMEM_INVAL_BUFS];
};

struct vtmem_stats {
	atomic64_t succ_stores;
	atomic64_t failed_stores;
	atomic64_t loads;
	atomic64_t invalidates;
	atomic64_t backing_writes;
	atomic64_t backing_reads;
	atomic64_t load_errors;
	atomic64_t pages_in_host;
	atomic64_t write_errors;
	atomic64_t returned_pages;
	atomic64_t return_errors;
	/* Transport: requests added by kind, notifications each way. */
	atomic64_t req_stores;
	atomic64_t req_loads;
	atomic64_t req_invalidates;
	atomic64_t kicks;
	atomic64_t interrupts;
	/* Waits that polling ended, with no interrupt. */
	atomic64_t polled;
};

struct vtmem_raw;

struct vtmem {
	struct virtio_device *vdev;
	struct gendisk *disk;
	int id;

	struct vtmem_queue *queues;
	unsigned int nr_queues;
	unsigned int batch_max;
	/* Held for reading by users of the queues outside submit_bio. */
	struct rw_semaphore vq_sem;
	bool vqs_ready;
	/* The virtqueues exist (between find_vqs and del_vqs). */
	bool have_vqs;
	/* Reinitializing after NEEDS_RESET, through freeze and restore. */
	bool recovering;
	/* The device is gone or was reset: nothing it holds is reachable. */
	bool dead;

	u32 pool_id;
	bool pool_open;

	/* Serializes configuration (size, backing device) and life cycle. */
	struct mutex ctl_lock;
	mempool_t *batch_pool;

	/* Per slot: the host holds it / the backing device holds it. */
	u64 nr_slots;
	unsigned long *in_host;
	unsigned long *on_backing;
	/* Freed slot whose INVALIDATE_PAGE is still to be sent. */
	unsigned long *inval_pending;
	/* A STORE between its decision and the end of its bookkeeping. */
	unsigned long *storing;
	/* Held by the return worker from its LOAD to its INVALIDATE_PAGE. */
	unsigned long *return_io;
	/* VIRTIO_TMEM_F_INVALIDATE_PAGES was negotiated. */
	bool inval_pages;
	/*
	 * synchronous=N: batches of bios in flight (oldest first), for the
	 * io_timeout watchdog and for freeze and remove to wait on.
	 */
	bool async;
	spinlock_t async_lock;
	struct list_head async_list;
	wait_queue_head_t async_idle;
	struct delayed_work async_watch;
	struct delayed_work inval_work;
	struct work_struct config_work;

	/*
	 * VIRTIO_TMEM_F_RETURN: the device's target_pages, what the driver
	 * last wrote to return_state, the target the backing device failed
	 * at (VIRTIO_TMEM_NO_TARGET: none) and when, and where the next move
	 * starts.
	 */
	struct delayed_work return_work;
	u64 target_pages;
	u32 return_state;
	u64 return_failed_at;
	unsigned long return_failed_jiffies;
	unsigned long return_cursor;

	struct vtmem_backing backing;
	char *backing_path;

	struct vtmem_stats stats;
#ifdef VTMEM_TEST
	struct vtmem_raw *raw;
#endif
};

struct vtmem_batch *vtmem_batch_get(struct vtmem *vt);
void vtmem_batch_put(struct vtmem *vt, struct vtmem_batch *b);
void vtmem_queue_kick(struct vtmem *vt, struct vtmem_queue *q);
void vtmem_set_target(struct vtmem *vt, u64 target);

#ifdef VTMEM_TEST
void vtmem_test_init(struct vtmem *vt);
void vtmem_test_exit(struct vtmem *vt);
void vtmem_test_free(struct vtmem *vt);
void vtmem_test_module_init(void);
void vtmem_test_module_exit(void);
bool vtmem_test_hold_answers(struct vtmem *vt);
unsigned int vtmem_test_used_len(struct vtmem *vt, struct vtmem_req *req,
				 unsigned int len);
bool vtmem_test_fail_return_write(struct vtmem *vt);
void vtmem_test_hold_return(struct vtmem *vt);
void vtmem_test_race_return(struct vtmem *vt, struct vtmem_req *req);
#else
static inline void vtmem_test_init(struct vtmem *vt)
{
}

static inline void vtmem_test_exit(struct vtmem *vt)
{
}

static inline void vtmem_test_free(struct vtmem *vt)
{
}

static inline void vtmem_test_module_init(void)
{
}

static inline void vtmem_test_module_exit(void)
{
}

static inline bool vtmem_test_hold_answers(struct vtmem *vt)
{
	return false;
}

static inline unsigned int vtmem_test_used_len(struct vtmem *vt,
					       struct vtmem_req *req,
					       unsigned int len)
{
	return len;
}

static inline bool vtmem_test_fail_return_write(struct vtmem *vt)
{
	return false;
}

static inline void vtmem_test_hold_return(struct vtmem *vt)
{
}

static inline void vtmem_test_race_return(struct vtmem *vt,
					  struct vtmem_req *req)
{
}
#endif

#endif /* VTMEM_H */
