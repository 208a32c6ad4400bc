// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio_tmem: transcendent memory for KVM guests, as a swap disk.
 *
 * Each virtio-tmem device becomes /dev/vtmemN, a synchronous block device
 * with 4 KiB blocks meant for swap.  A written block is offered to the host
 * (STORE into one persistent pool, key (pool, 0, slot)); what the host
 * refuses goes to an optional backing device, as frontswap fell back to
 * the real swap slot.  One bit per slot says where a block lives.
 *
 * Ordering (proto/SPEC.md DRV-4): every request for a slot goes to queue
 * slot % nr_queues, and the device applies one queue in order.  The
 * deferred INVALIDATE_PAGE of a freed slot is decided (test_and_clear of
 * its pending bit) under the same queue lock under which a later STORE to
 * that slot clears the bit and is added, so the invalidate is either in
 * the queue before the store or never sent.
 *
 * Moving pages back (VIRTIO_TMEM_F_RETURN, DRV-10): the return worker
 * takes a slot in the decision of its LOAD, under the queue lock, only if
 * no STORE of the slot is between its decision and the end of its
 * bookkeeping (the storing bit), the host holds it and no invalidate is
 * pending; it then holds the slot's return_io bit until the INVALIDATE_PAGE
 * that ends the move is decided, again under the queue lock.  Every STORE
 * waits for return_io to clear before its bookkeeping and before any
 * backing write of its own, and clears storing only after both.  So a
 * STORE decided after the worker's LOAD is still storing when the worker
 * decides the INVALIDATE: the worker drops the slot (the newer bytes win,
 * and no INVALIDATE follows a newer STORE), and the worker's backing write
 * is complete before the store's starts.  A STORE decided before the LOAD
 * was either done (its result is what the worker saw: a rejected one
 * cleared in_host, so nothing is loaded) or still storing (the worker
 * skipped the slot).  Freeing a slot takes the queue lock, so it comes
 * wholly before the worker's decision (which then sees inval_pending or
 * no in_host) or after it.  A read decided before the flip is queued ahead
 * of the INVALIDATE; one decided after it reads the complete copy on the
 * backing device.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bio.h>
#include <linux/blk-mq.h>
#include <linux/highmem.h>
#include <linux/idr.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/scatterlist.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>

#include "vtmem.h"

/* What a request turned out to need, decided under its queue lock. */
enum {
	VTMEM_A_SEND,		/* added to the virtqueue */
	VTMEM_A_FAILED,		/* could not be added: device lost */
	VTMEM_A_SKIP,		/* nothing to send */
	VTMEM_A_ZERO,		/* read of a slot never written */
	VTMEM_A_BACKING,	/* read from the backing device */
};

typedef u8 (*vtmem_decide_t)(struct vtmem *vt, struct vtmem_req *req);

/* Outcome of one block I/O; parent is NULL for ->rw_page. */
struct vtmem_io {
	struct bio *parent;
	blk_status_t status;
};

static u64 disksize;
static char *backing_dev;
static unsigned int io_timeout = VTMEM_IO_TIMEOUT;
static unsigned int return_rate = VTMEM_RETURN_RATE;
static unsigned int poll_us;
static bool synchronous = true;
static int vtmem_major;
static DEFINE_IDA(vtmem_index_ida);
static struct workqueue_struct *vtmem_wq;
static struct bio_set vtmem_bio_set;

static int vtmem_param_set_size(const char *val, const struct kernel_param *kp)
{
	char *end;
	u64 size = memparse(val, &end);

	if (end == val || (*end && *end != '\n'))
		return -EINVAL;
	*(u64 *)kp->arg = size;
	return 0;
}

static int vtmem_param_get_size(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%llu\n", *(u64 *)kp->arg);
}

static const struct kernel_param_ops vtmem_size_ops = {
	.set = vtmem_param_set_size,
	.get = vtmem_param_get_size,
};

module_param_cb(disksize, &vtmem_size_ops, &disksize, 0444);
MODULE_PARM_DESC(disksize,
		 "Size of each disk (K/M/G suffixes); 0: the device's capacity hint");
module_param(backing_dev, charp, 0444);
MODULE_PARM_DESC(backing_dev,
		 "Block device for pages the host rejects, for vtmem0");
module_param(io_timeout, uint, 0644);
MODULE_PARM_DESC(io_timeout,
		 "Seconds to wait for the device's answer before failing the device (0: forever)");
module_param(return_rate, uint, 0644);
MODULE_PARM_DESC(return_rate,
		 "Pages per second moved from the host to the backing device when the host asks for them back (0: never)");

module_param(poll_us, uint, 0644);
MODULE_PARM_DESC(poll_us,
		 "Microseconds a request's waiter polls for the answer before it sleeps until the interrupt (0: never polls)");

module_param(synchronous, bool, 0444);
MODULE_PARM_DESC(synchronous,
		 "The disk declares itself synchronous, and each bio waits for its answers (N: bios complete asynchronously, so swap can plug writes and read ahead)");

/* --- requests and queues ------------------------------------------------ */

struct vtmem_batch *vtmem_batch_get(struct vtmem *vt)
{
	struct vtmem_batch *b = mempool_alloc(vt->batch_pool, GFP_NOIO);

	init_completion(&b->done);
	b->nr = 0;
	b->bio = NULL;
	return b;
}

void vtmem_batch_put(struct vtmem *vt, struct vtmem_batch *b)
{
	mempool_free(b, vt->batch_pool);
}

static struct vtmem_req *vtmem_batch_add(struct vtmem *vt,
					 struct vtmem_batch *b, u8 opcode,
					 u32 slot, struct page *page)
{
	struct vtmem_req *req = &b->req[b->nr++];

	memset(&req->hdr, 0, sizeof(req->hdr));
	memset(&req->resp, 0, sizeof(req->resp));
	req->hdr.opcode = opcode;
	req->hdr.pool_id = cpu_to_le32(vt->pool_id);
	req->hdr.index = cpu_to_le32(slot);
	/* A device that never writes the answer must not read as OK. */
	req->resp.status = VTMEM_S_NO_ANSWER;
	req->batch = b;
	req->page = page;
	req->slot = slot;
	req->used_len = 0;
	return req;
}

static void vtmem_req_done(struct vtmem_req *req, unsigned int len)
{
	struct vtmem_batch *b = req->batch;

	req->used_len = len;
	if (!atomic_dec_and_test(&b->pending))
		return;
	if (b->bio)
		queue_work(vtmem_wq, &b->work);
	else
		complete(&b->done);
}

static struct vtmem_inval *vtmem_inval_of(void *token)
{
	if (!((unsigned long)token & VTMEM_INVAL_TOKEN))
		return NULL;
	return (void *)((unsigned long)token & ~VTMEM_INVAL_TOKEN);
}

/* An INVALIDATE_PAGES answered (or taken back after a reset). */
static void vtmem_inval_done(struct vtmem *vt, struct vtmem_inval *ib,
			     unsigned int len)
{
	u8 status = len >= sizeof(ib->resp) ? ib->resp.status :
		    VTMEM_S_NO_ANSWER;

	/*
	 * The slots are free either way; a device that kept the pages only
	 * wastes its own memory.  VTMEM_S_NO_ANSWER: a reset took it back.
	 */
	if (status != VIRTIO_TMEM_S_OK && status != VTMEM_S_NO_ANSWER)
		dev_warn_ratelimited(&vt->vdev->dev,
				     "INVALIDATE_PAGES of %u slots failed (status %u)\n",
				     le32_to_cpu(ib->hdr.index), status);
	ib->busy = false;
}

/* Collect what the device answered; called with q->lock held. */
static bool vtmem_queue_reap(struct vtmem *vt, struct vtmem_queue *q)
{
	struct vtmem_inval *ib;
	bool any = false;
	unsigned int len;
	void *token;

	while ((token = virtqueue_get_buf(q->vq, &len)) != NULL) {
		any = true;
		ib = vtmem_inval_of(token);
		if (ib)
			vtmem_inval_done(vt, ib, len);
		else
			vtmem_req_done(token, vtmem_test_used_len(vt, token,
								  len));
	}
	return any;
}

static void vtmem_vq_done(struct virtqueue *vq)
{
	struct vtmem *vt = vq->vdev->priv;
	struct vtmem_queue *q = &vt->queues[vq->index];
	unsigned long flags;

	atomic64_inc(&vt->stats.interrupts);
	/* Test build: a host that never answers. */
	if (vtmem_test_hold_answers(vt))
		return;
	spin_lock_irqsave(&q->lock, flags);
	do {
		virtqueue_disable_cb(vq);
		vtmem_queue_reap(vt, q);
		if (unlikely(virtqueue_is_broken(vq)))
			break;
		/* A poller turns the callbacks on again when it is done. */
	} while (!q->pollers && !virtqueue_enable_cb(vq));
	spin_unlock_irqrestore(&q->lock, flags);
	wake_up(&q->room);
}

/* Notify the device if it asked for it; called with q->lock held. */
static bool vtmem_kick_prepare(struct vtmem *vt, struct vtmem_queue *q)
{
	if (!virtqueue_kick_prepare(q->vq))
		return false;
	atomic64_inc(&vt->stats.kicks);
	return true;
}

void vtmem_queue_kick(struct vtmem *vt, struct vtmem_queue *q)
{
	unsigned long flags;
	bool notify;

	spin_lock_irqsave(&q->lock, flags);
	notify = vtmem_kick_prepare(vt, q);
	spin_unlock_irqrestore(&q->lock, flags);
	if (notify)
		virtqueue_notify(q->vq);
}

/*
 * Guest-side polling (poll_us): while a waiter polls a queue its
 * callbacks are off, so the device's answer raises no interrupt; the last
 * poller to stop turns them on again and collects what came meanwhile.
 */
static void vtmem_poll_begin(struct vtmem_queue *q)
{
	spin_lock_irq(&q->lock);
	if (!q->pollers++)
		virtqueue_disable_cb(q->vq);
	spin_unlock_irq(&q->lock);
}

static void vtmem_poll_end(struct vtmem *vt, struct vtmem_queue *q)
{
	spin_lock_irq(&q->lock);
	if (!--q->pollers && !vtmem_test_hold_answers(vt)) {
		while (!virtqueue_enable_cb(q->vq) &&
		       !virtqueue_is_broken(q->vq)) {
			virtqueue_disable_cb(q->vq);
			vtmem_queue_reap(vt, q);
		}
	}
	spin_unlock_irq(&q->lock);
	wake_up(&q->room);
}

/* Poll the queues of @used until @b is answered or poll_us passed. */
static bool vtmem_poll_batch(struct vtmem *vt, struct vtmem_batch *b,
			     u64 used, u64 poll_ns)
{
	u64 end = ktime_get_ns() + poll_ns;
	bool any;
	u64 m;

	do {
		for (m = used; m; m &= m - 1) {
			struct vtmem_queue *q = &vt->queues[__ffs64(m)];

			if (vtmem_test_hold_answers(vt))
				break;
			spin_lock_irq(&q->lock);
			any = vtmem_queue_reap(vt, q);
			spin_unlock_irq(&q->lock);
			if (any)
				wake_up(&q->room);
		}
		if (completion_done(&b->done))
			return true;
		cpu_relax();
	} while (ktime_get_ns() < end && !READ_ONCE(vt->dead));
	return false;
}

/* Chain layout of proto/SPEC.md 6.1; called with q->lock held. */
static int vtmem_add_req(struct vtmem_queue *q, struct vtmem_req *req)
{
	struct scatterlist hdr, data, resp, *sgs[3];
	unsigned int out = 0, in = 0;

	sg_init_one(&hdr, &req->hdr, sizeof(req->hdr));
	sgs[out++] = &hdr;
	if (req->hdr.opcode == VIRTIO_TMEM_OP_STORE ||
	    req->hdr.opcode == VIRTIO_TMEM_OP_LOAD) {
		sg_init_table(&data, 1);
		sg_set_page(&data, req->page, PAGE_SIZE, 0);
		if (req->hdr.opcode == VIRTIO_TMEM_OP_STORE)
			sgs[out++] = &data;
		else
			sgs[out + in++] = &data;
	}
	sg_init_one(&resp, &req->resp, sizeof(req->resp));
	sgs[out + in++] = &resp;
	return virtqueue_add_sgs(q->vq, sgs, out, in, req, GFP_ATOMIC);
}

static void vtmem_kill(struct vtmem *vt);

/* The io_timeout parameter in jiffies; MAX_SCHEDULE_TIMEOUT for 0. */
static unsigned long vtmem_io_timeout(void)
{
	unsigned int secs = READ_ONCE(io_timeout);

	if (!secs)
		return MAX_SCHEDULE_TIMEOUT;
	/* Never wraps: a huge value waits as long as a jiffies count can. */
	return min_t(unsigned long, secs, MAX_SCHEDULE_TIMEOUT / HZ) * HZ;
}

/*
 * The device did not answer within io_timeout: it is broken.  Fail what
 * it holds and every later request (vtmem_kill()) rather than hang the
 * block layer, probe, remove or a pool operation.  Idempotent: several
 * waiters may time out at once.
 */
static void vtmem_timed_out(struct vtmem *vt, const char *what)
{
	if (READ_ONCE(vt->dead))
		return;
	dev_err(&vt->vdev->dev,
		"no answer from the device to %s in %u s: failing it, all I/O fails from now on\n",
		what, READ_ONCE(io_timeout));
	vtmem_kill(vt);
}

/* Enough descriptors for any request, indirect or not. */
static bool vtmem_queue_has_room(struct vtmem *vt, struct vtmem_queue *q)
{
	return READ_ONCE(vt->dead) || READ_ONCE(q->vq->num_free) >= 3;
}

static void vtmem_count_req(struct vtmem *vt, u8 opcode)
{
	switch (opcode) {
	case VIRTIO_TMEM_OP_STORE:
		atomic64_inc(&vt->stats.req_stores);
		break;
	case VIRTIO_TMEM_OP_LOAD:
		atomic64_inc(&vt->stats.req_loads);
		break;
	case VIRTIO_TMEM_OP_INVALIDATE_PAGE:
	case VIRTIO_TMEM_OP_INVALIDATE_PAGES:
		atomic64_inc(&vt->stats.req_invalidates);
		break;
	}
}

static bool vtmem_clear_in_host(struct vtmem *vt, u32 slot);

/*
 * Send what the queue collected as one INVALIDATE_PAGES, without waiting
 * for it (its answer only frees the buffer); called with q->lock held.
 * Each slot still pending is decided here, as vtmem_decide_invalidate()
 * decides one, so the ordering of DRV-4 holds: a STORE decided before
 * this dropped its slot from the request, one decided after it is queued
 * behind it.  False when nothing could be sent: no free buffer or no room
 * in the ring; the slots then stay collected.
 */
static bool vtmem_inval_send(struct vtmem *vt, struct vtmem_queue *q)
{
	struct scatterlist hdr, data, resp, *sgs[3] = { &hdr, &data, &resp };
	struct vtmem_inval *ib = NULL;
	unsigned int i, n = 0;
	u32 slot;

	if (READ_ONCE(vt->dead) || q->vq->num_free < 6)
		return false;
	for (i = 0; i < VTMEM_INVAL_BUFS && !ib; i++)
		if (q->inval[i] && !q->inval[i]->busy)
			ib = q->inval[i];
	if (!ib)
		return false;
	for (i = 0; i < q->nr_freed; i++) {
		slot = q->freed[i];
		if (slot >= vt->nr_slots ||
		    !test_and_clear_bit(slot, vt->inval_pending))
			continue;
		vtmem_clear_in_host(vt, slot);
		ib->index[n++] = cpu_to_le32(slot);
	}
	q->nr_freed = 0;
	if (!n)
		return true;
	memset(&ib->hdr, 0, sizeof(ib->hdr));
	ib->hdr.opcode = VIRTIO_TMEM_OP_INVALIDATE_PAGES;
	ib->hdr.pool_id = cpu_to_le32(vt->pool_id);
	ib->hdr.index = cpu_to_le32(n);
	memset(&ib->resp, 0, sizeof(ib->resp));
	ib->resp.status = VTMEM_S_NO_ANSWER;
	sg_init_one(&hdr, &ib->hdr, sizeof(ib->hdr));
	sg_init_one(&data, ib->index, n * sizeof(ib->index[0]));
	sg_init_one(&resp, &ib->resp, sizeof(ib->resp));
	if (virtqueue_add_sgs(q->vq, sgs, 2, 1,
			      (void *)((unsigned long)ib | VTMEM_INVAL_TOKEN),
			      GFP_ATOMIC)) {
		/* Device lost (ring broken): the slots are free anyway. */
		return true;
	}
	ib->busy = true;
	atomic64_add(n, &vt->stats.invalidates);
	atomic64_inc(&vt->stats.req_invalidates);
	return true;
}

/* A buffer and ring room for vtmem_inval_send(), or the device is gone. */
static bool vtmem_inval_room(struct vtmem *vt, struct vtmem_queue *q)
{
	unsigned int i;

	if (READ_ONCE(vt->dead))
		return true;
	if (READ_ONCE(q->vq->num_free) < 6)
		return false;
	for (i = 0; i < VTMEM_INVAL_BUFS; i++)
		if (q->inval[i] && !READ_ONCE(q->inval[i]->busy))
			return true;
	return false;
}

/*
 * Decide and add one request under its queue lock.  Returns true if it
 * was added, so the caller kicks that queue.
 */
static bool vtmem_send_one(struct vtmem *vt, struct vtmem_queue *q,
			   struct vtmem_req *req, vtmem_decide_t decide)
{
	bool notify;

	spin_lock_irq(&q->lock);
	while (!vtmem_queue_has_room(vt, q)) {
		/* Let the device drain what is queued, then try again. */
		notify = vtmem_kick_prepare(vt, q);
		spin_unlock_irq(&q->lock);
		if (notify)
			virtqueue_notify(q->vq);
		if (!wait_event_timeout(q->room, vtmem_queue_has_room(vt, q),
					vtmem_io_timeout()))
			vtmem_timed_out(vt, "a full queue");
		spin_lock_irq(&q->lock);
	}
	req->action = decide(vt, req);
	if (req->action == VTMEM_A_SEND) {
		/* Invalidates collected here go first, in the same kick. */
		if (q->nr_freed >= VTMEM_INVAL_RIDE)
			vtmem_inval_send(vt, q);
		if (READ_ONCE(vt->dead) || vtmem_add_req(q, req)) {
			req->action = VTMEM_A_FAILED;
		} else {
			atomic_inc(&req->batch->pending);
			vtmem_count_req(vt, req->hdr.opcode);
		}
	}
	spin_unlock_irq(&q->lock);
	return req->action == VTMEM_A_SEND;
}

/* Send a batch, one notification per queue used, and wait for it. */
static void vtmem_batch_send(struct vtmem *vt, struct vtmem_batch *b,
			     vtmem_decide_t decide)
{
	u64 used = 0;
	unsigned int i, qi;
	u64 poll_ns = (u64)READ_ONCE(poll_us) * NSEC_PER_USEC;
	bool done;
	u64 m;

	reinit_completion(&b->done);
	atomic_set(&b->pending, 1);
	for (i = 0; i < b->nr; i++) {
		qi = b->req[i].slot % vt->nr_queues;
		if (vtmem_send_one(vt, &vt->queues[qi], &b->req[i], decide))
			used |= BIT_ULL(qi);
	}
	/* Callbacks off before the kick: a quick answer raises nothing. */
	if (poll_ns)
		for (m = used; m; m &= m - 1)
			vtmem_poll_begin(&vt->queues[__ffs64(m)]);
	for (m = used; m; m &= m - 1)
		vtmem_queue_kick(vt, &vt->queues[__ffs64(m)]);
	done = atomic_dec_and_test(&b->pending);
	if (poll_ns) {
		if (!done && vtmem_poll_batch(vt, b, used, poll_ns))
			atomic64_inc(&vt->stats.polled);
		for (m = used; m; m &= m - 1)
			vtmem_poll_end(vt, &vt->queues[__ffs64(m)]);
	}
	if (done)
		return;
	if (!wait_for_completion_io_timeout(&b->done, vtmem_io_timeout())) {
		vtmem_timed_out(vt, "a batch of requests");
		/* vtmem_kill() completed every request the device had. */
		wait_for_completion_io(&b->done);
	}
}

/* After a reset: complete every request the device had with no answer. */
static void vtmem_detach_all(struct vtmem *vt)
{
	struct vtmem_inval *ib;
	struct vtmem_req *req;
	unsigned int i;
	void *token;

	for (i = 0; i < vt->nr_queues; i++) {
		struct vtmem_queue *q = &vt->queues[i];

		spin_lock_irq(&q->lock);
		while ((token = virtqueue_detach_unused_buf(q->vq)) != NULL) {
			ib = vtmem_inval_of(token);
			if (ib) {
				vtmem_inval_done(vt, ib, 0);
				continue;
			}
			req = token;
			req->resp.status = VTMEM_S_NO_ANSWER;
			vtmem_req_done(req, 0);
		}
		spin_unlock_irq(&q->lock);
		wake_up_all(&q->room);
	}
}

/*
 * The device is gone or needs a reset: fail what it holds, and make every
 * later request fail at once instead of waiting for an answer.
 */
static void vtmem_kill(struct vtmem *vt)
{
	WRITE_ONCE(vt->dead, true);
	/* No request is added or collected from here on. */
	virtio_break_device(vt->vdev);
	virtio_reset_device(vt->vdev);
	vtmem_detach_all(vt);
}

/* --- slot state ----------------------------------------------------------- */

static bool vtmem_clear_in_host(struct vtmem *vt, u32 slot)
{
	if (!test_and_clear_bit(slot, vt->in_host))
		return false;
	atomic64_dec(&vt->stats.pages_in_host);
	return true;
}

/*
 * The device's answer, or VTMEM_S_SHORT when it says it wrote less than
 * the request's writable part (DRV-5): a LOAD answered OK without the
 * page would hand the caller whatever the buffer held before.
 */
static u8 vtmem_req_status(struct vtmem *vt, struct vtmem_req *req)
{
	u32 want = sizeof(req->resp);

	if (req->hdr.opcode == VIRTIO_TMEM_OP_LOAD)
		want += PAGE_SIZE;
	if (likely(req->used_len >= want) ||
	    req->resp.status == VTMEM_S_NO_ANSWER)
		return req->resp.status;
	dev_err_ratelimited(&vt->vdev->dev,
			    "opcode %u slot %u: answer of %u bytes, %u expected: device error\n",
			    req->hdr.opcode, req->slot, req->used_len, want);
	return VTMEM_S_SHORT;
}

static u8 vtmem_decide_send(struct vtmem *vt, struct vtmem_req *req)
{
	return VTMEM_A_SEND;
}

static u8 vtmem_decide_store(struct vtmem *vt, struct vtmem_req *req)
{
	/* The store replaces the old copy: its pending invalidate is moot. */
	clear_bit(req->slot, vt->inval_pending);
	/* Until vtmem_finish_store() is done: see the top of the file. */
	set_bit(req->slot, vt->storing);
	return VTMEM_A_SEND;
}

static u8 vtmem_decide_load(struct vtmem *vt, struct vtmem_req *req)
{
	if (test_bit(req->slot, vt->in_host) &&
	    !test_bit(req->slot, vt->inval_pending))
		return VTMEM_A_SEND;
	if (test_bit(req->slot, vt->on_backing))
		return VTMEM_A_BACKING;
	return VTMEM_A_ZERO;
}

static u8 vtmem_decide_invalidate(struct vtmem *vt, struct vtmem_req *req)
{
	if (!test_and_clear_bit(req->slot, vt->inval_pending))
		return VTMEM_A_SKIP;
	vtmem_clear_in_host(vt, req->slot);
	return VTMEM_A_SEND;
}

/* --- the backing device ---------------------------------------------------- */

/*
 * Inside ->submit_bio the I/O is chained to the parent bio, which then
 * completes only after it; submit_bio_wait() there would deadlock, as the
 * child is dispatched only once we return.  ->rw_page runs outside any
 * submit_bio and waits.
 */
static void vtmem_backing_io(struct vtmem *vt, struct vtmem_io *io,
			     struct vtmem_req *req, blk_opf_t opf)
{
	struct block_device *bdev = vt->backing.bdev;
	sector_t sector = (sector_t)req->slot << VTMEM_SLOT_SHIFT;
	struct bio *bio;

	if (!io->parent) {
		struct bio_vec bvec;
		struct bio sync;

		bio_init(&sync, bdev, &bvec, 1, opf);
		sync.bi_iter.bi_sector = sector;
		__bio_add_page(&sync, req->page, PAGE_SIZE, 0);
		if (submit_bio_wait(&sync))
			io->status = BLK_STS_IOERR;
		bio_uninit(&sync);
		return;
	}
	bio = bio_alloc_bioset(bdev, 1, opf, GFP_NOIO, &vtmem_bio_set);
	bio->bi_iter.bi_sector = sector;
	__bio_add_page(bio, req->page, PAGE_SIZE, 0);
	bio_chain(bio, io->parent);
	submit_bio_noacct(bio);
}

/* --- reads and writes ------------------------------------------------------ */

static void vtmem_store_result(struct vtmem *vt, struct vtmem_req *req,
			       struct vtmem_io *io)
{
	u8 status = req->action == VTMEM_A_SEND ? vtmem_req_status(vt, req) :
		    VTMEM_S_NO_ANSWER;

	if (req->action == VTMEM_A_SEND && status == VIRTIO_TMEM_S_OK) {
		atomic64_inc(&vt->stats.succ_stores);
		clear_bit(req->slot, vt->on_backing);
		if (!test_and_set_bit(req->slot, vt->in_host))
			atomic64_inc(&vt->stats.pages_in_host);
		return;
	}
	atomic64_inc(&vt->stats.failed_stores);
	if (req->action == VTMEM_A_SEND && status != VIRTIO_TMEM_S_REJECTED)
		pr_warn_ratelimited("%s: slot %u: STORE failed (status %u)\n",
				    vt->disk->disk_name, req->slot, status);
	/* DEV-11: after a failed store the host holds nothing for the key. */
	vtmem_clear_in_host(vt, req->slot);
	if (vt->backing.bdev) {
		set_bit(req->slot, vt->on_backing);
		atomic64_inc(&vt->stats.backing_writes);
		vtmem_backing_io(vt, io, req, REQ_OP_WRITE | REQ_SYNC);
		return;
	}
	clear_bit(req->slot, vt->on_backing);
	atomic64_inc(&vt->stats.write_errors);
	io->status = BLK_STS_IOERR;
}

/* The return worker is done with the slot: the invariant at the top. */
static void vtmem_wait_return_io(struct vtmem *vt, u32 slot)
{
	wait_on_bit_io(&vt->return_io[BIT_WORD(slot)], slot % BITS_PER_LONG,
		       TASK_UNINTERRUPTIBLE);
}

static void vtmem_finish_store(struct vtmem *vt, struct vtmem_req *req,
			       struct vtmem_io *io)
{
	if (req->action == VTMEM_A_SEND)
		vtmem_test_race_return(vt, req);
	vtmem_wait_return_io(vt, req->slot);
	vtmem_store_result(vt, req, io);
	/* Release: the bookkeeping is seen by vtmem_decide_return_load(). */
	clear_bit_unlock(req->slot, vt->storing);
}

static void vtmem_finish_load(struct vtmem *vt, struct vtmem_req *req,
			      struct vtmem_io *io)
{
	u8 status = VTMEM_S_NO_ANSWER;

	switch (req->action) {
	case VTMEM_A_ZERO:
		clear_highpage(req->page);
		return;
	case VTMEM_A_BACKING:
		atomic64_inc(&vt->stats.backing_reads);
		vtmem_backing_io(vt, io, req, REQ_OP_READ);
		return;
	case VTMEM_A_SEND:
		/* As frontswap's: loads counts pages brought back. */
		status = vtmem_req_status(vt, req);
		if (status == VIRTIO_TMEM_S_OK) {
			atomic64_inc(&vt->stats.loads);
			return;
		}
		break;
	}
	/* DRV-5: a stored page that cannot be loaded is a device error. */
	atomic64_inc(&vt->stats.load_errors);
	io->status = BLK_STS_IOERR;
	pr_err_ratelimited("%s: slot %u: LOAD failed (status %u)\n",
			   vt->disk->disk_name, req->slot, status);
}

static void vtmem_run_pages(struct vtmem *vt, struct vtmem_batch *b,
			    bool write, struct vtmem_io *io)
{
	unsigned int i;

	vtmem_batch_send(vt, b, write ? vtmem_decide_store : vtmem_decide_load);
	for (i = 0; i < b->nr; i++) {
		if (write)
			vtmem_finish_store(vt, &b->req[i], io);
		else
			vtmem_finish_load(vt, &b->req[i], io);
	}
	b->nr = 0;
}

static void vtmem_rw_bio(struct vtmem *vt, struct bio *bio)
{
	bool write = op_is_write(bio_op(bio));
	u8 opcode = write ? VIRTIO_TMEM_OP_STORE : VIRTIO_TMEM_OP_LOAD;
	struct vtmem_io io = { .parent = bio };
	struct vtmem_batch *b;
	struct bvec_iter iter;
	struct bio_vec bv;

	b = vtmem_batch_get(vt);
	bio_for_each_segment(bv, bio, iter) {
		/* dma_alignment and the block size make every bvec a page. */
		if (WARN_ON_ONCE(bv.bv_offset || bv.bv_len != PAGE_SIZE)) {
			io.status = BLK_STS_IOERR;
			break;
		}
		vtmem_batch_add(vt, b, opcode, iter.bi_sector >> VTMEM_SLOT_SHIFT,
				bv.bv_page);
		if (b->nr == vt->batch_max)
			vtmem_run_pages(vt, b, write, &io);
	}
	if (b->nr)
		vtmem_run_pages(vt, b, write, &io);
	vtmem_batch_put(vt, b);
	if (io.status)
		bio->bi_status = io.status;
	bio_endio(bio);
}

/* --- synchronous=N: bios completed by a worker --------------------------- */

/* The queues kicked when the submitter's plug is flushed. */
struct vtmem_plug {
	struct blk_plug_cb cb;
	u64 used;
};

static void vtmem_unplug(struct blk_plug_cb *cb, bool from_schedule)
{
	struct vtmem_plug *plug = container_of(cb, struct vtmem_plug, cb);
	struct vtmem *vt = cb->data;
	u64 m;

	for (m = plug->used; m; m &= m - 1)
		vtmem_queue_kick(vt, &vt->queues[__ffs64(m)]);
	kfree(plug);
}

/* Every request of the batch is answered: finish them, end the bio. */
static void vtmem_async_done(struct work_struct *work)
{
	struct vtmem_batch *b = container_of(work, struct vtmem_batch, work);
	struct bio *bio = b->bio;
	struct vtmem *vt = bio->bi_bdev->bd_disk->private_data;
	struct vtmem_io io = { .parent = bio };
	unsigned long flags;
	unsigned int i;
	bool idle;

	for (i = 0; i < b->nr; i++) {
		if (b->write)
			vtmem_finish_store(vt, &b->req[i], &io);
		else
			vtmem_finish_load(vt, &b->req[i], &io);
	}
	spin_lock_irqsave(&vt->async_lock, flags);
	list_del(&b->node);
	idle = list_empty(&vt->async_list);
	spin_unlock_irqrestore(&vt->async_lock, flags);
	vtmem_batch_put(vt, b);
	if (io.status)
		bio->bi_status = io.status;
	bio_endio(bio);
	if (idle)
		wake_up_all(&vt->async_idle);
}

/*
 * Add the batch's requests and return: the answers complete it in
 * vtmem_async_done().  Under a plug (swap's reclaim and read-ahead) the
 * kick waits for the plug's flush, so one notification carries them all.
 */
static void vtmem_async_send(struct vtmem *vt, struct vtmem_batch *b)
{
	vtmem_decide_t decide = b->write ? vtmem_decide_store :
					   vtmem_decide_load;
	struct blk_plug_cb *cb;
	unsigned int i, qi;
	bool first;
	u64 used = 0, m;

	INIT_WORK(&b->work, vtmem_async_done);
	b->sent = jiffies;
	spin_lock_irq(&vt->async_lock);
	first = list_empty(&vt->async_list);
	list_add_tail(&b->node, &vt->async_list);
	spin_unlock_irq(&vt->async_lock);
	if (first)
		queue_delayed_work(vtmem_wq, &vt->async_watch, HZ);
	atomic_set(&b->pending, 1);
	for (i = 0; i < b->nr; i++) {
		qi = b->req[i].slot % vt->nr_queues;
		if (vtmem_send_one(vt, &vt->queues[qi], &b->req[i], decide))
			used |= BIT_ULL(qi);
	}
	cb = used ? blk_check_plugged(vtmem_unplug, vt,
				      sizeof(struct vtmem_plug)) : NULL;
	if (cb)
		container_of(cb, struct vtmem_plug, cb)->used |= used;
	else
		for (m = used; m; m &= m - 1)
			vtmem_queue_kick(vt, &vt->queues[__ffs64(m)]);
	if (atomic_dec_and_test(&b->pending))
		queue_work(vtmem_wq, &b->work);
}

static void vtmem_rw_bio_async(struct vtmem *vt, struct bio *bio)
{
	bool write = op_is_write(bio_op(bio));
	u8 opcode = write ? VIRTIO_TMEM_OP_STORE : VIRTIO_TMEM_OP_LOAD;
	struct vtmem_batch *b = NULL;
	struct bvec_iter iter;
	struct bio_vec bv;

	bio_for_each_segment(bv, bio, iter) {
		if (WARN_ON_ONCE(bv.bv_offset || bv.bv_len != PAGE_SIZE)) {
			bio->bi_status = BLK_STS_IOERR;
			break;
		}
		if (!b) {
			b = vtmem_batch_get(vt);
			b->bio = bio;
			b->write = write;
		}
		vtmem_batch_add(vt, b, opcode,
				iter.bi_sector >> VTMEM_SLOT_SHIFT, bv.bv_page);
		if (b->nr == vt->batch_max) {
			/* One more vtmem_async_done() to end the bio. */
			bio_inc_remaining(bio);
			vtmem_async_send(vt, b);
			b = NULL;
		}
	}
	if (b)
		vtmem_async_send(vt, b);
	else
		bio_endio(bio);
}

/* io_timeout for bios in flight: the oldest batch decides. */
static void vtmem_async_watch(struct work_struct *work)
{
	struct vtmem *vt = container_of(to_delayed_work(work), struct vtmem,
					async_watch);
	unsigned long timeout = vtmem_io_timeout();
	struct vtmem_batch *b;
	bool late, more;

	spin_lock_irq(&vt->async_lock);
	b = list_first_entry_or_null(&vt->async_list, struct vtmem_batch,
				     node);
	more = b;
	late = b && timeout != MAX_SCHEDULE_TIMEOUT &&
	       time_after(jiffies, b->sent + timeout);
	spin_unlock_irq(&vt->async_lock);
	if (late)
		vtmem_timed_out(vt, "a bio");
	else if (more)
		queue_delayed_work(vtmem_wq, &vt->async_watch, HZ);
}

/* Freeze and remove: every bio in flight ended. */
static void vtmem_async_wait(struct vtmem *vt)
{
	if (vt->async)
		wait_event(vt->async_idle, list_empty_careful(&vt->async_list));
}

/* --- invalidation ----------------------------------------------------------- */

/*
 * A slot is free: its invalidate is pending.  With INVALIDATE_PAGES the
 * slot is also collected in its queue, to ride with the queue's next
 * request (vtmem_inval_send()).  False when the queue has no room for it
 * (then the invalidate worker finds it in inval_pending).
 */
static bool vtmem_mark_freed(struct vtmem *vt, u32 slot)
{
	struct vtmem_queue *q = &vt->queues[slot % vt->nr_queues];
	unsigned long flags;
	bool room = true;

	/* Wholly before or after a move's decision (vtmem_return_flip()). */
	spin_lock_irqsave(&q->lock, flags);
	clear_bit(slot, vt->on_backing);
	if (test_bit(slot, vt->in_host) &&
	    !test_and_set_bit(slot, vt->inval_pending) && q->freed) {
		if (q->nr_freed < VTMEM_INVAL_MAX)
			q->freed[q->nr_freed++] = slot;
		else
			room = false;
		q->overflow |= !room;
	}
	spin_unlock_irqrestore(&q->lock, flags);
	return room;
}

/* Have the invalidate worker run: now, or once the batch had time to fill. */
static void vtmem_inval_schedule(struct vtmem *vt, bool now)
{
	if (READ_ONCE(vt->dead))
		return;
	if (now || !vt->inval_pages)
		mod_delayed_work(vtmem_wq, &vt->inval_work, 0);
	else
		queue_delayed_work(vtmem_wq, &vt->inval_work,
				   VTMEM_INVAL_DELAY);
}

static void vtmem_run_invalidates(struct vtmem *vt, struct vtmem_batch *b)
{
	unsigned int i;

	vtmem_batch_send(vt, b, vtmem_decide_invalidate);
	for (i = 0; i < b->nr; i++)
		if (b->req[i].action == VTMEM_A_SEND)
			atomic64_inc(&vt->stats.invalidates);
	b->nr = 0;
}

/*
 * INVALIDATE_PAGES: send what every queue collected; true if a queue
 * overflowed, so inval_pending must be scanned.  A queue whose buffers
 * are all in flight waits for one (the device answers them in order).
 */
static bool vtmem_inval_flush(struct vtmem *vt)
{
	bool overflow = false, sent;
	unsigned int i;

	for (i = 0; i < vt->nr_queues; i++) {
		struct vtmem_queue *q = &vt->queues[i];

		for (;;) {
			spin_lock_irq(&q->lock);
			sent = !q->nr_freed || vtmem_inval_send(vt, q);
			if (sent) {
				overflow |= q->overflow;
				q->overflow = false;
			}
			spin_unlock_irq(&q->lock);
			vtmem_queue_kick(vt, q);
			if (sent || READ_ONCE(vt->dead))
				break;
			if (!wait_event_timeout(q->room, !q->nr_freed ||
						vtmem_inval_room(vt, q),
						vtmem_io_timeout()))
				vtmem_timed_out(vt, "INVALIDATE_PAGES");
		}
	}
	return overflow;
}

/* Collect every pending slot (after an overflow) and send them. */
static void vtmem_inval_scan(struct vtmem *vt)
{
	unsigned long slot;

	for_each_set_bit(slot, vt->inval_pending, vt->nr_slots) {
		struct vtmem_queue *q = &vt->queues[slot % vt->nr_queues];
		bool full;

		spin_lock_irq(&q->lock);
		if (q->nr_freed < VTMEM_INVAL_MAX)
			q->freed[q->nr_freed++] = slot;
		full = q->nr_freed == VTMEM_INVAL_MAX;
		spin_unlock_irq(&q->lock);
		if (full)
			vtmem_inval_flush(vt);
		if (READ_ONCE(vt->dead))
			return;
	}
	vtmem_inval_flush(vt);
}

static void vtmem_inval_work(struct work_struct *work)
{
	struct vtmem *vt = container_of(to_delayed_work(work), struct vtmem,
					inval_work);
	struct vtmem_batch *b;
	unsigned long slot;

	down_read(&vt->vq_sem);
	if (!vt->vqs_ready || READ_ONCE(vt->dead))
		goto out;
	if (vt->inval_pages) {
		if (vtmem_inval_flush(vt))
			vtmem_inval_scan(vt);
		goto out;
	}
	b = vtmem_batch_get(vt);
	for_each_set_bit(slot, vt->inval_pending, vt->nr_slots) {
		vtmem_batch_add(vt, b, VIRTIO_TMEM_OP_INVALIDATE_PAGE, slot, NULL);
		if (b->nr == vt->batch_max)
			vtmem_run_invalidates(vt, b);
	}
	if (b->nr)
		vtmem_run_invalidates(vt, b);
	vtmem_batch_put(vt, b);
out:
	up_read(&vt->vq_sem);
}

/* Called under swap_lock: must not sleep, so the request is deferred. */
static void vtmem_slot_free_notify(struct block_device *bdev,
				   unsigned long slot)
{
	struct vtmem *vt = bdev->bd_disk->private_data;

	if (slot >= vt->nr_slots)
		return;
	vtmem_inval_schedule(vt, !vtmem_mark_freed(vt, slot));
}

/*
 * Discard and write-zeroes: whole slots of the range read as zeroes
 * afterwards.  (4 KiB logical blocks make partial slots impossible.)
 */
static void vtmem_discard_bio(struct vtmem *vt, struct bio *bio)
{
	u64 slot = DIV_ROUND_UP_ULL(bio->bi_iter.bi_sector,
				    1 << VTMEM_SLOT_SHIFT);
	u64 end = bio_end_sector(bio) >> VTMEM_SLOT_SHIFT;
	bool room = true;

	for (; slot < end && slot < vt->nr_slots; slot++)
		room &= vtmem_mark_freed(vt, slot);
	vtmem_inval_schedule(vt, !room);
	bio_endio(bio);
}

static void vtmem_submit_bio(struct bio *bio)
{
	struct vtmem *vt = bio->bi_bdev->bd_disk->private_data;

	switch (bio_op(bio)) {
	case REQ_OP_READ:
	case REQ_OP_WRITE:
		if (vt->async)
			vtmem_rw_bio_async(vt, bio);
		else
			vtmem_rw_bio(vt, bio);
		break;
	case REQ_OP_DISCARD:
	case REQ_OP_WRITE_ZEROES:
		vtmem_discard_bio(vt, bio);
		break;
	case REQ_OP_FLUSH:
		/* Every write is complete when it completes: nothing cached. */
		bio_endio(bio);
		break;
	default:
		bio->bi_status = BLK_STS_NOTSUPP;
		bio_endio(bio);
		break;
	}
}

#ifdef VTMEM_HAVE_RW_PAGE
/* Before 6.4 swap's single-page I/O comes here; an error makes it retry
 * with a bio.
 */
static int vtmem_rw_page(struct block_device *bdev, sector_t sector,
			 struct page *page, enum req_op op)
{
	struct vtmem *vt = bdev->bd_disk->private_data;
	bool write = op_is_write(op);
	struct vtmem_io io = { };
	struct vtmem_batch *b;

	/* Backing I/O waits here, which it must not inside a submit_bio. */
	if (current->bio_list || PageTransHuge(page) || vt->async)
		return -EOPNOTSUPP;
	if (sector & ((1 << VTMEM_SLOT_SHIFT) - 1))
		return -EINVAL;
	b = vtmem_batch_get(vt);
	vtmem_batch_add(vt, b, write ? VIRTIO_TMEM_OP_STORE : VIRTIO_TMEM_OP_LOAD,
			sector >> VTMEM_SLOT_SHIFT, page);
	vtmem_run_pages(vt, b, write, &io);
	vtmem_batch_put(vt, b);
	if (io.status)
		return -EIO;
	page_endio(page, write, 0);
	return 0;
}
#endif

static void vtmem_free_disk(struct gendisk *disk);

static const struct block_device_operations vtmem_fops = {
	.owner = THIS_MODULE,
	.submit_bio = vtmem_submit_bio,
	.swap_slot_free_notify = vtmem_slot_free_notify,
	.free_disk = vtmem_free_disk,
#ifdef VTMEM_HAVE_RW_PAGE
	.rw_page = vtmem_rw_page,
#endif
};

/* --- moving pages back (VIRTIO_TMEM_F_RETURN) ------------------------------ */

/* The return worker's buffers for one batch: a page and a bio a request. */
struct vtmem_return {
	struct vtmem_batch *batch;
	atomic_t pending;
	struct completion done;
	u32 slot[VTMEM_BATCH];
	/* The LOAD's decision took the slot's return_io bit. */
	bool held[VTMEM_BATCH];
	/* Loaded, then written to the backing device. */
	bool copied[VTMEM_BATCH];
	/* LOADs of this batch the host answered with an error. */
	unsigned int load_errors;
	struct page *page[VTMEM_BATCH];
	struct bio bio[VTMEM_BATCH];
	struct bio_vec bvec[VTMEM_BATCH];
};

static void vtmem_return_free(struct vtmem *vt, struct vtmem_return *r)
{
	unsigned int i;

	for (i = 0; i < VTMEM_BATCH; i++)
		if (r->page[i])
			__free_page(r->page[i]);
	if (r->batch)
		vtmem_batch_put(vt, r->batch);
	kfree(r);
}

/* Before any slot is held: the allocations may swap, to this disk too. */
static struct vtmem_return *vtmem_return_alloc(struct vtmem *vt)
{
	struct vtmem_return *r;
	unsigned int i;

	r = kzalloc_obj(*r, GFP_KERNEL);
	if (!r)
		return NULL;
	init_completion(&r->done);
	for (i = 0; i < vt->batch_max; i++) {
		r->page[i] = alloc_page(GFP_KERNEL | __GFP_NOWARN);
		if (!r->page[i]) {
			vtmem_return_free(vt, r);
			return NULL;
		}
	}
	r->batch = vtmem_batch_get(vt);
	return r;
}

/* Pages the host holds beyond the target (DRV-12: any target is valid). */
static u64 vtmem_return_excess(struct vtmem *vt)
{
	s64 held = atomic64_read(&vt->stats.pages_in_host);
	u64 target = READ_ONCE(vt->target_pages);

	return held > 0 && (u64)held > target ? held - target : 0;
}

static void vtmem_set_return_state(struct vtmem *vt, u32 state)
{
	if (vt->return_state == state)
		return;
	WRITE_ONCE(vt->return_state, state);
	virtio_cwrite_le(vt->vdev, struct virtio_tmem_config, return_state,
			 &state);
}

/* Up to n slots the host holds, from the cursor on, as LOADs. */
static void vtmem_return_pick(struct vtmem *vt, struct vtmem_return *r,
			      unsigned int n)
{
	struct vtmem_batch *b = r->batch;
	unsigned long start = min_t(u64, vt->return_cursor, vt->nr_slots);
	unsigned long end = vt->nr_slots, slot = start;

	b->nr = 0;
	while (b->nr < n) {
		slot = find_next_bit(vt->in_host, end, slot);
		if (slot >= end) {
			if (end == start)
				break;
			end = start;
			slot = 0;
			continue;
		}
		r->slot[b->nr] = slot;
		vtmem_batch_add(vt, b, VIRTIO_TMEM_OP_LOAD, slot,
				r->page[b->nr]);
		slot++;
	}
	vt->return_cursor = slot;
}

static u8 vtmem_decide_return_load(struct vtmem *vt, struct vtmem_req *req)
{
	if (test_bit(req->slot, vt->storing))
		return VTMEM_A_SKIP;
	/* Pairs with vtmem_finish_store(): its bookkeeping is seen. */
	smp_rmb();
	if (!test_bit(req->slot, vt->in_host) ||
	    test_bit(req->slot, vt->inval_pending))
		return VTMEM_A_SKIP;
	set_bit(req->slot, vt->return_io);
	return VTMEM_A_SEND;
}

/* The move's decision: the copy is complete, the host's may go. */
static u8 vtmem_decide_return_flip(struct vtmem *vt, struct vtmem_req *req)
{
	if (test_bit(req->slot, vt->storing) ||
	    !test_bit(req->slot, vt->in_host) ||
	    test_bit(req->slot, vt->inval_pending))
		return VTMEM_A_SKIP;
	set_bit(req->slot, vt->on_backing);
	clear_bit(req->slot, vt->in_host);
	return VTMEM_A_SEND;
}

/*
 * Count what the flip queued; one it decided but could not queue (the
 * device is lost) is the host's again, as before the decision.  The slot's
 * return_io bit is still held: no store's bookkeeping is in between.
 */
static void vtmem_return_flipped(struct vtmem *vt, struct vtmem_req *req)
{
	switch (req->action) {
	case VTMEM_A_SEND:
		/* A copy dropped for newer bytes counts in neither. */
		atomic64_dec(&vt->stats.pages_in_host);
		atomic64_inc(&vt->stats.backing_writes);
		atomic64_inc(&vt->stats.returned_pages);
		break;
	case VTMEM_A_FAILED:
		set_bit(req->slot, vt->in_host);
		clear_bit(req->slot, vt->on_backing);
		break;
	}
}

/* Which slots the LOADs took, and which brought their page. */
static void vtmem_return_loaded(struct vtmem *vt, struct vtmem_return *r)
{
	struct vtmem_req *req;
	unsigned int i;
	u8 status;

	r->load_errors = 0;
	for (i = 0; i < r->batch->nr; i++) {
		req = &r->batch->req[i];
		r->held[i] = req->action != VTMEM_A_SKIP;
		r->copied[i] = false;
		if (req->action != VTMEM_A_SEND)
			continue;
		status = vtmem_req_status(vt, req);
		r->copied[i] = status == VIRTIO_TMEM_S_OK;
		if (r->copied[i])
			continue;
		/*
		 * DRV-5: the page stays where it is, the error is the host's;
		 * not a swap-in's: return_errors.  The cursor has moved on.
		 */
		r->load_errors++;
		atomic64_inc(&vt->stats.return_errors);
		pr_err_ratelimited("%s: slot %u: LOAD to return it failed (status %u)\n",
				   vt->disk->disk_name, req->slot, status);
	}
}

static void vtmem_return_end_io(struct bio *bio)
{
	struct vtmem_return *r = bio->bi_private;

	if (atomic_dec_and_test(&r->pending))
		complete(&r->done);
}

static void vtmem_return_submit(struct vtmem *vt, struct vtmem_return *r,
				unsigned int i)
{
	struct bio *bio = &r->bio[i];

	bio_init(bio, vt->backing.bdev, &r->bvec[i], 1,
		 REQ_OP_WRITE | REQ_SYNC);
	bio->bi_iter.bi_sector = (sector_t)r->slot[i] << VTMEM_SLOT_SHIFT;
	__bio_add_page(bio, r->page[i], PAGE_SIZE, 0);
	bio->bi_private = r;
	bio->bi_end_io = vtmem_return_end_io;
	atomic_inc(&r->pending);
	submit_bio(bio);
}

/*
 * Write every loaded page at its slot's place on the backing device and
 * wait for all of them; false if one failed.  Nothing here allocates: a
 * store that waits for these slots may be what reclaim waits for.
 */
static bool vtmem_return_write(struct vtmem *vt, struct vtmem_return *r)
{
	unsigned int i, n = r->batch->nr;
	struct blk_plug plug;
	bool ok = true;

	atomic_set(&r->pending, 1);
	reinit_completion(&r->done);
	blk_start_plug(&plug);
	for (i = 0; i < n; i++) {
		if (!r->copied[i])
			continue;
		if (vtmem_test_fail_return_write(vt)) {
			r->copied[i] = false;
			ok = false;
			continue;
		}
		vtmem_return_submit(vt, r, i);
	}
	blk_finish_plug(&plug);
	if (!atomic_dec_and_test(&r->pending))
		wait_for_completion_io(&r->done);
	for (i = 0; i < n; i++) {
		if (!r->copied[i])
			continue;
		if (r->bio[i].bi_status) {
			r->copied[i] = false;
			ok = false;
		}
		bio_uninit(&r->bio[i]);
	}
	return ok;
}

/* Complete copies move to the backing device; then the slots are let go. */
static void vtmem_return_flip(struct vtmem *vt, struct vtmem_return *r)
{
	struct vtmem_batch *b = r->batch;
	unsigned int i, n = b->nr;
	u32 slot;

	b->nr = 0;
	for (i = 0; i < n; i++)
		if (r->copied[i])
			vtmem_batch_add(vt, b, VIRTIO_TMEM_OP_INVALIDATE_PAGE,
					r->slot[i], NULL);
	if (b->nr)
		vtmem_batch_send(vt, b, vtmem_decide_return_flip);
	for (i = 0; i < b->nr; i++)
		vtmem_return_flipped(vt, &b->req[i]);
	b->nr = 0;
	for (i = 0; i < n; i++) {
		if (!r->held[i])
			continue;
		slot = r->slot[i];
		clear_and_wake_up_bit(slot % BITS_PER_LONG,
				      &vt->return_io[BIT_WORD(slot)]);
	}
}

/*
 * One batch of up to n pages, under vq_sem: *picked says how many slots
 * were tried.  False if a backing write failed: the return state is then
 * FAILED until the device sets another target or VTMEM_RETURN_RETRY passed.
 */
static bool vtmem_return_batch(struct vtmem *vt, struct vtmem_return *r,
			       unsigned int n, unsigned int *picked)
{
	bool ok;

	vtmem_return_pick(vt, r, n);
	*picked = r->batch->nr;
	if (!*picked)
		return true;
	vtmem_batch_send(vt, r->batch, vtmem_decide_return_load);
	vtmem_return_loaded(vt, r);
	vtmem_test_hold_return(vt);
	ok = vtmem_return_write(vt, r);
	vtmem_return_flip(vt, r);
	if (!ok) {
		dev_err(&vt->vdev->dev,
			"%s: backing device write failed: not returning pages to it\n",
			vt->disk->disk_name);
		vt->return_failed_jiffies = jiffies;
		WRITE_ONCE(vt->return_failed_at, READ_ONCE(vt->target_pages));
		vtmem_set_return_state(vt, VIRTIO_TMEM_RETURN_FAILED);
	}
	return ok;
}

/* How many pages to try next, under vq_sem; 0 to stop this run. */
static unsigned int vtmem_return_want(struct vtmem *vt, unsigned int left)
{
	if (!vt->vqs_ready || READ_ONCE(vt->dead) || !vt->backing.bdev)
		return 0;
	return min_t(u64, vtmem_return_excess(vt),
		     min(left, vt->batch_max));
}

/*
 * Move what return_rate allows in one VTMEM_RETURN_PERIOD, a batch at a
 * time, checking the target before each.  Returns the delay before the
 * next run.
 */
static long vtmem_return_pages(struct vtmem *vt, unsigned int rate)
{
	unsigned int quota, done = 0, n = 0, errors;
	unsigned long start = jiffies;
	struct vtmem_return *r;
	bool ok = true;

	r = vtmem_return_alloc(vt);
	if (!r)
		return VTMEM_RETURN_PERIOD;
	quota = max_t(u64, div_u64((u64)rate * VTMEM_RETURN_PERIOD, HZ), 1);
	while (ok && !r->load_errors && done < quota) {
		down_read(&vt->vq_sem);
		n = vtmem_return_want(vt, quota - done);
		if (n)
			ok = vtmem_return_batch(vt, r, n, &n);
		up_read(&vt->vq_sem);
		if (!n)
			break;
		done += n;
		cond_resched();
	}
	errors = r->load_errors;
	vtmem_return_free(vt, r);
	if (!ok)
		return VTMEM_RETURN_RETRY;
	/* The host failed a LOAD: the rest later, failures cannot spin. */
	if (errors)
		return HZ;
	/* Nothing could be taken (every page busy): try again later. */
	if (!n && done < quota && vtmem_return_excess(vt))
		return VTMEM_RETURN_PERIOD;
	return max_t(long, start + div_u64((u64)done * HZ, rate) - jiffies, 0);
}

/*
 * Under vq_sem: the state to report, and whether to move pages now (0),
 * later (the delay) or not until the device sets another target (-1).
 */
static long vtmem_return_check(struct vtmem *vt)
{
	u64 target = READ_ONCE(vt->target_pages);
	unsigned long retry;

	if (!vt->vqs_ready || READ_ONCE(vt->dead))
		return -1;
	if (target == VIRTIO_TMEM_NO_TARGET) {
		vtmem_set_return_state(vt, VIRTIO_TMEM_RETURN_IDLE);
		return -1;
	}
	/* While a target is set, stores may take the host above it again. */
	if (!vtmem_return_excess(vt)) {
		vtmem_set_return_state(vt, VIRTIO_TMEM_RETURN_IDLE);
		return HZ;
	}
	if (!vt->backing.bdev) {
		vtmem_set_return_state(vt, VIRTIO_TMEM_RETURN_NO_BACKING);
		return HZ;
	}
	/* DRV-11: after FAILED, again at another target or after a while. */
	if (READ_ONCE(vt->return_failed_at) == target) {
		retry = vt->return_failed_jiffies + VTMEM_RETURN_RETRY;
		if (time_before(jiffies, retry)) {
			vtmem_set_return_state(vt, VIRTIO_TMEM_RETURN_FAILED);
			return retry - jiffies;
		}
		WRITE_ONCE(vt->return_failed_at, VIRTIO_TMEM_NO_TARGET);
	}
	/* DRV-11: return_rate 0 is this driver's own policy; it may change. */
	if (!READ_ONCE(return_rate)) {
		vtmem_set_return_state(vt, VIRTIO_TMEM_RETURN_REFUSED);
		return HZ;
	}
	vtmem_set_return_state(vt, VIRTIO_TMEM_RETURN_ACTIVE);
	return 0;
}

static void vtmem_return_work(struct work_struct *work)
{
	struct vtmem *vt = container_of(to_delayed_work(work), struct vtmem,
					return_work);
	unsigned int rate = READ_ONCE(return_rate);
	long delay;

	down_read(&vt->vq_sem);
	delay = vtmem_return_check(vt);
	up_read(&vt->vq_sem);
	if (!delay && rate)
		delay = vtmem_return_pages(vt, rate);
	if (delay >= 0)
		queue_delayed_work(vtmem_wq, &vt->return_work, delay);
}

/* DRV-12: a new target replaces the one being worked towards. */
void vtmem_set_target(struct vtmem *vt, u64 target)
{
	/* DRV-11: another target is tried even where the last one failed. */
	if (target != READ_ONCE(vt->return_failed_at))
		WRITE_ONCE(vt->return_failed_at, VIRTIO_TMEM_NO_TARGET);
	WRITE_ONCE(vt->target_pages, target);
	mod_delayed_work(vtmem_wq, &vt->return_work, 0);
}

static void vtmem_read_target(struct vtmem *vt)
{
	u64 target;

	if (!virtio_has_feature(vt->vdev, VIRTIO_TMEM_F_RETURN))
		return;
	virtio_cread_le(vt->vdev, struct virtio_tmem_config, target_pages,
			&target);
	vtmem_set_target(vt, target);
}

/* After a reset the device asks for nothing and reads return_state 0. */
static void vtmem_reset_return(struct vtmem *vt)
{
	WRITE_ONCE(vt->target_pages, VIRTIO_TMEM_NO_TARGET);
	WRITE_ONCE(vt->return_state, VIRTIO_TMEM_RETURN_IDLE);
	vt->return_failed_at = VIRTIO_TMEM_NO_TARGET;
}

/* --- pools -------------------------------------------------------------------- */

static int vtmem_pool_request(struct vtmem *vt, u8 opcode)
{
	struct vtmem_batch *b = vtmem_batch_get(vt);
	struct vtmem_req *req;
	u8 status = VTMEM_S_NO_ANSWER;
	int err = 0;

	/* Slot 0: on queue 0, like every request not for a page. */
	req = vtmem_batch_add(vt, b, opcode, 0, NULL);
	vtmem_batch_send(vt, b, vtmem_decide_send);
	if (req->action == VTMEM_A_SEND)
		status = vtmem_req_status(vt, req);
	if (status != VIRTIO_TMEM_S_OK) {
		dev_err(&vt->vdev->dev, "pool request %u failed (status %u)\n",
			opcode, status);
		err = status == VIRTIO_TMEM_S_REJECTED ? -ENOSPC : -EIO;
	} else if (opcode == VIRTIO_TMEM_OP_NEW_POOL) {
		vt->pool_id = le32_to_cpu(req->resp.pool_id);
	}
	vtmem_batch_put(vt, b);
	return err;
}

static int vtmem_pool_open(struct vtmem *vt)
{
	int err = vtmem_pool_request(vt, VIRTIO_TMEM_OP_NEW_POOL);

	vt->pool_open = !err;
	return err;
}

/* Leaves nothing on the host (DRV-6); the slot maps are the caller's. */
static void vtmem_pool_destroy(struct vtmem *vt)
{
	if (!vt->pool_open || READ_ONCE(vt->dead))
		return;
	vtmem_pool_request(vt, VIRTIO_TMEM_OP_DESTROY_POOL);
	vt->pool_open = false;
	atomic64_set(&vt->stats.pages_in_host, 0);
}

/* --- slot maps ------------------------------------------------------------------ */

static void vtmem_free_maps(struct vtmem *vt)
{
	kvfree(vt->in_host);
	kvfree(vt->on_backing);
	kvfree(vt->inval_pending);
	kvfree(vt->storing);
	kvfree(vt->return_io);
	vt->in_host = NULL;
	vt->on_backing = NULL;
	vt->inval_pending = NULL;
	vt->storing = NULL;
	vt->return_io = NULL;
	vt->nr_slots = 0;
}

static int vtmem_alloc_maps(struct vtmem *vt, u64 nr_slots)
{
	size_t longs = BITS_TO_LONGS(nr_slots) ?: 1;

	vt->in_host = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	vt->on_backing = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	vt->inval_pending = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	vt->storing = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	vt->return_io = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	if (!vt->in_host || !vt->on_backing || !vt->inval_pending ||
	    !vt->storing || !vt->return_io) {
		vtmem_free_maps(vt);
		return -ENOMEM;
	}
	vt->nr_slots = nr_slots;
	return 0;
}

static u64 vtmem_bytes_to_slots(u64 bytes)
{
	/* The key's index is 32 bits wide. */
	return min_t(u64, bytes >> PAGE_SHIFT, U32_MAX);
}

/* --- virtqueues ----------------------------------------------------------------- */

static void vtmem_free_inval(struct vtmem *vt)
{
	unsigned int i, j;

	for (i = 0; vt->queues && i < vt->nr_queues; i++) {
		kfree(vt->queues[i].freed);
		for (j = 0; j < VTMEM_INVAL_BUFS; j++)
			kfree(vt->queues[i].inval[j]);
	}
}

/* VIRTIO_TMEM_F_INVALIDATE_PAGES: each queue's list and buffers. */
static int vtmem_alloc_inval(struct vtmem *vt)
{
	unsigned int i, j;

	if (!vt->inval_pages)
		return 0;
	for (i = 0; i < vt->nr_queues; i++) {
		struct vtmem_queue *q = &vt->queues[i];

		q->freed = kcalloc(VTMEM_INVAL_MAX, sizeof(*q->freed),
				   GFP_KERNEL);
		if (!q->freed)
			return -ENOMEM;
		for (j = 0; j < VTMEM_INVAL_BUFS; j++) {
			q->inval[j] = kzalloc_obj(*q->inval[j], GFP_KERNEL);
			if (!q->inval[j])
				return -ENOMEM;
		}
	}
	return 0;
}

static int vtmem_init_vqs(struct vtmem *vt)
{
	struct virtio_device *vdev = vt->vdev;
	const char *names[VTMEM_MAX_QUEUES];
	struct virtqueue *vqs[VTMEM_MAX_QUEUES];
	unsigned int i;
	int err;

	for (i = 0; i < vt->nr_queues; i++) {
		snprintf(vt->queues[i].name, sizeof(vt->queues[i].name),
			 "req.%u", i);
		names[i] = vt->queues[i].name;
	}
	err = vtmem_find_vqs(vdev, vt->nr_queues, vqs, vtmem_vq_done, names);
	if (err)
		return err;
	for (i = 0; i < vt->nr_queues; i++)
		vt->queues[i].vq = vqs[i];
	vt->have_vqs = true;
	return 0;
}

/* Reset the device, take back what it held, and delete the queues. */
static void vtmem_del_vqs(struct vtmem *vt)
{
	if (!vt->have_vqs)
		return;
	virtio_reset_device(vt->vdev);
	vtmem_detach_all(vt);
	vt->vdev->config->del_vqs(vt->vdev);
	vt->have_vqs = false;
}

/*
 * The configuration comes from the host and is checked like any other
 * input (DRV-8): what the driver cannot work with fails the probe, what
 * is merely large is clamped, each with a message saying so.
 */
static int vtmem_read_config(struct vtmem *vt)
{
	struct virtio_device *vdev = vt->vdev;
	u32 page_size, max_batch;
	u16 nr_queues = 1, max_pools;

	virtio_cread_le(vdev, struct virtio_tmem_config, page_size, &page_size);
	if (page_size != VIRTIO_TMEM_PAGE_SIZE) {
		dev_err(&vdev->dev, "unsupported page size %u\n", page_size);
		return -EINVAL;
	}
	virtio_cread_le(vdev, struct virtio_tmem_config, max_pools, &max_pools);
	if (!max_pools) {
		dev_err(&vdev->dev, "device offers no pool (max_pools 0)\n");
		return -EINVAL;
	}
	if (virtio_has_feature(vdev, VIRTIO_TMEM_F_MQ)) {
		virtio_cread_le(vdev, struct virtio_tmem_config, num_queues,
				&nr_queues);
		if (!nr_queues) {
			dev_err(&vdev->dev, "device offers no queue\n");
			return -EINVAL;
		}
	}
	if (nr_queues > VTMEM_MAX_QUEUES)
		dev_info(&vdev->dev, "device offers %u queues, using %u\n",
			 nr_queues, VTMEM_MAX_QUEUES);
	vt->nr_queues = min_t(unsigned int, nr_queues, nr_cpu_ids);
	vt->nr_queues = min_t(unsigned int, vt->nr_queues, VTMEM_MAX_QUEUES);
	vt->inval_pages = virtio_has_feature(vdev,
					     VIRTIO_TMEM_F_INVALIDATE_PAGES);
	virtio_cread_le(vdev, struct virtio_tmem_config, max_batch, &max_batch);
	vt->batch_max = max_batch ? min_t(u32, max_batch, VTMEM_BATCH) :
			VTMEM_BATCH;
	return 0;
}

/*
 * The disk's size: the disksize parameter, else the device's suggested
 * size (VIRTIO_TMEM_F_SIZE), else its capacity hint.  The size sizes the
 * slot maps allocated here: a value beyond VTMEM_MAX_SLOTS_PER_RAM_PAGE
 * slots per page of RAM is clamped to that.
 */
static u64 vtmem_initial_slots(struct vtmem *vt)
{
	const char *what = "capacity hint";
	u64 pages = 0, max;

	if (disksize)
		return vtmem_bytes_to_slots(disksize);
	if (virtio_has_feature(vt->vdev, VIRTIO_TMEM_F_SIZE))
		virtio_cread_le(vt->vdev, struct virtio_tmem_config,
				size_pages, &pages);
	if (pages)
		what = "size";
	else
		virtio_cread_le(vt->vdev, struct virtio_tmem_config,
				capacity_pages, &pages);
	max = min_t(u64, (u64)totalram_pages() * VTMEM_MAX_SLOTS_PER_RAM_PAGE,
		    U32_MAX);
	if (pages > max) {
		dev_err(&vt->vdev->dev,
			"%s of %llu pages is beyond %llu (%u per page of RAM): using %llu; set disksize for more\n",
			what, pages, max, VTMEM_MAX_SLOTS_PER_RAM_PAGE, max);
		pages = max;
	}
	return pages;
}

/* --- configuration: size and backing device ---------------------------------------- */

static int vtmem_check_backing_size(struct vtmem *vt, struct block_device *bdev,
				    u64 nr_slots)
{
	if (bdev_nr_sectors(bdev) >= nr_slots << VTMEM_SLOT_SHIFT)
		return 0;
	dev_err(&vt->vdev->dev, "backing device smaller than %llu bytes\n",
		nr_slots << PAGE_SHIFT);
	return -ENOSPC;
}

/* Open path as a backing device for nr_slots slots; *name keeps the path. */
static int vtmem_open_backing(struct vtmem *vt, const char *path, u64 nr_slots,
			      struct vtmem_backing *b, char **name)
{
	int err;

	*name = kstrdup(path, GFP_KERNEL);
	if (!*name)
		return -ENOMEM;
	err = vtmem_backing_open(b, *name, vt);
	if (err) {
		dev_err(&vt->vdev->dev, "cannot open backing device %s: %d\n",
			*name, err);
		goto err_free_name;
	}
	err = vtmem_check_backing_size(vt, b->bdev, nr_slots);
	if (err)
		goto err_close;
	return 0;

err_close:
	vtmem_backing_close(b);
err_free_name:
	kfree(*name);
	*name = NULL;
	return err;
}

static void vtmem_detach_backing(struct vtmem *vt)
{
	vtmem_backing_close(&vt->backing);
	kfree(vt->backing_path);
	vt->backing_path = NULL;
}

/* path: NULL keeps the backing device, "" detaches it. */
static int vtmem_prepare_config(struct vtmem *vt, u64 nr_slots,
				const char *path, struct vtmem *next)
{
	int err;

	err = vtmem_alloc_maps(next, nr_slots);
	if (err)
		return err;
	if (path && *path)
		err = vtmem_open_backing(vt, path, nr_slots, &next->backing,
					 &next->backing_path);
	else if (!path && vt->backing.bdev)
		err = vtmem_check_backing_size(vt, vt->backing.bdev, nr_slots);
	if (err)
		vtmem_free_maps(next);
	return err;
}

static void vtmem_swap_maps(struct vtmem *a, struct vtmem *b)
{
	swap(a->in_host, b->in_host);
	swap(a->on_backing, b->on_backing);
	swap(a->inval_pending, b->inval_pending);
	swap(a->storing, b->storing);
	swap(a->return_io, b->return_io);
	swap(a->nr_slots, b->nr_slots);
}

/*
 * Size and backing device change only while nobody has the disk open, and
 * start it afresh: a new pool and empty maps.
 */
static int vtmem_reconfigure(struct vtmem *vt, u64 nr_slots, const char *path)
{
	struct request_queue *q = vt->disk->queue;
	unsigned int memflags;
	struct vtmem *next;
	int err;

	next = kzalloc_obj(*next, GFP_KERNEL);
	if (!next)
		return -ENOMEM;
	mutex_lock(&vt->ctl_lock);
	err = -EBUSY;
	if (disk_openers(vt->disk))
		goto out_unlock;
	err = -EIO;
	if (READ_ONCE(vt->dead))
		goto out_unlock;
	err = vtmem_prepare_config(vt, nr_slots, path, next);
	if (err)
		goto out_unlock;

	/* Its slots go: the worker sees the new ones when it runs again. */
	cancel_delayed_work_sync(&vt->return_work);
	memflags = vtmem_freeze_queue(q);
	down_write(&vt->vq_sem);
	vtmem_pool_destroy(vt);
	vtmem_swap_maps(vt, next);
	if (path) {
		vtmem_detach_backing(vt);
		vt->backing = next->backing;
		vt->backing_path = next->backing_path;
	}
	err = vtmem_pool_open(vt);
	up_write(&vt->vq_sem);
	set_capacity_and_notify(vt->disk, vt->nr_slots << VTMEM_SLOT_SHIFT);
	vtmem_unfreeze_queue(q, memflags);
	if (virtio_has_feature(vt->vdev, VIRTIO_TMEM_F_RETURN))
		queue_delayed_work(vtmem_wq, &vt->return_work, 0);
	vtmem_free_maps(next);
out_unlock:
	mutex_unlock(&vt->ctl_lock);
	kfree(next);
	return err;
}

/* --- sysfs ---------------------------------------------------------------------- */

static struct vtmem *dev_to_vtmem(struct device *dev)
{
	return dev_to_disk(dev)->private_data;
}

#define VTMEM_STAT_ATTR(_name)						\
static ssize_t _name##_show(struct device *dev,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	struct vtmem *vt = dev_to_vtmem(dev);				\
									\
	return sysfs_emit(buf, "%lld\n",				\
			  (long long)atomic64_read(&vt->stats._name));	\
}									\
static DEVICE_ATTR_RO(_name)

VTMEM_STAT_ATTR(succ_stores);
VTMEM_STAT_ATTR(failed_stores);
VTMEM_STAT_ATTR(loads);
VTMEM_STAT_ATTR(invalidates);
VTMEM_STAT_ATTR(backing_writes);
VTMEM_STAT_ATTR(backing_reads);
VTMEM_STAT_ATTR(load_errors);
VTMEM_STAT_ATTR(pages_in_host);
VTMEM_STAT_ATTR(write_errors);
VTMEM_STAT_ATTR(returned_pages);
VTMEM_STAT_ATTR(return_errors);
VTMEM_STAT_ATTR(req_stores);
VTMEM_STAT_ATTR(req_loads);
VTMEM_STAT_ATTR(req_invalidates);
VTMEM_STAT_ATTR(kicks);
VTMEM_STAT_ATTR(interrupts);
VTMEM_STAT_ATTR(polled);

static ssize_t host_target_pages_show(struct device *dev,
				      struct device_attribute *attr, char *buf)
{
	u64 target = READ_ONCE(dev_to_vtmem(dev)->target_pages);

	if (target == VIRTIO_TMEM_NO_TARGET)
		return sysfs_emit(buf, "none\n");
	return sysfs_emit(buf, "%llu\n", target);
}
static DEVICE_ATTR_RO(host_target_pages);

static const char * const vtmem_return_states[] = {
	[VIRTIO_TMEM_RETURN_IDLE] = "idle",
	[VIRTIO_TMEM_RETURN_ACTIVE] = "active",
	[VIRTIO_TMEM_RETURN_NO_BACKING] = "no-backing",
	[VIRTIO_TMEM_RETURN_FAILED] = "failed",
	[VIRTIO_TMEM_RETURN_REFUSED] = "refused",
};

static ssize_t return_state_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	u32 state = READ_ONCE(dev_to_vtmem(dev)->return_state);

	return sysfs_emit(buf, "%s\n", vtmem_return_states[state]);
}
static DEVICE_ATTR_RO(return_state);

static ssize_t disksize_show(struct device *dev,
			     struct device_attribute *attr, char *buf)
{
	struct vtmem *vt = dev_to_vtmem(dev);

	return sysfs_emit(buf, "%llu\n", vt->nr_slots << PAGE_SHIFT);
}

static ssize_t disksize_store(struct device *dev,
			      struct device_attribute *attr,
			      const char *buf, size_t len)
{
	struct vtmem *vt = dev_to_vtmem(dev);
	char *end;
	u64 size;
	int err;

	size = memparse(buf, &end);
	if (end == buf || (*end && *end != '\n'))
		return -EINVAL;
	err = vtmem_reconfigure(vt, vtmem_bytes_to_slots(size), NULL);
	return err ? err : len;
}
static DEVICE_ATTR_RW(disksize);

static ssize_t backing_dev_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	struct vtmem *vt = dev_to_vtmem(dev);
	ssize_t ret;

	mutex_lock(&vt->ctl_lock);
	ret = sysfs_emit(buf, "%s\n", vt->backing_path ?: "none");
	mutex_unlock(&vt->ctl_lock);
	return ret;
}

static ssize_t backing_dev_store(struct device *dev,
				 struct device_attribute *attr,
				 const char *buf, size_t len)
{
	struct vtmem *vt = dev_to_vtmem(dev);
	char *path;
	int err;

	path = kstrndup(buf, len, GFP_KERNEL);
	if (!path)
		return -ENOMEM;
	strim(path);
	if (!strcmp(path, "none"))
		*path = '\0';
	err = vtmem_reconfigure(vt, vt->nr_slots, path);
	kfree(path);
	return err ? err : len;
}
static DEVICE_ATTR_RW(backing_dev);

static ssize_t pool_id_show(struct device *dev,
			    struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_to_vtmem(dev)->pool_id);
}
static DEVICE_ATTR_RO(pool_id);

static ssize_t num_queues_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", dev_to_vtmem(dev)->nr_queues);
}
static DEVICE_ATTR_RO(num_queues);

static struct attribute *vtmem_attrs[] = {
	&dev_attr_succ_stores.attr,
	&dev_attr_failed_stores.attr,
	&dev_attr_loads.attr,
	&dev_attr_invalidates.attr,
	&dev_attr_backing_writes.attr,
	&dev_attr_backing_reads.attr,
	&dev_attr_load_errors.attr,
	&dev_attr_pages_in_host.attr,
	&dev_attr_write_errors.attr,
	&dev_attr_returned_pages.attr,
	&dev_attr_return_errors.attr,
	&dev_attr_req_stores.attr,
	&dev_attr_req_loads.attr,
	&dev_attr_req_invalidates.attr,
	&dev_attr_kicks.attr,
	&dev_attr_interrupts.attr,
	&dev_attr_polled.attr,
	&dev_attr_host_target_pages.attr,
	&dev_attr_return_state.attr,
	&dev_attr_disksize.attr,
	&dev_attr_backing_dev.attr,
	&dev_attr_pool_id.attr,
	&dev_attr_num_queues.attr,
	NULL,
};

static const struct attribute_group vtmem_attr_group = {
	.attrs = vtmem_attrs,
};

static const struct attribute_group *vtmem_attr_groups[] = {
	&vtmem_attr_group,
	NULL,
};

/* --- probe and remove ------------------------------------------------------------ */

static struct gendisk *vtmem_create_disk(struct vtmem *vt)
{
	struct queue_limits lim = {
		.logical_block_size = PAGE_SIZE,
		.physical_block_size = PAGE_SIZE,
		.io_min = PAGE_SIZE,
		/* Every bvec a whole page: one page per request. */
		.dma_alignment = PAGE_SIZE - 1,
		.max_hw_discard_sectors = VTMEM_MAX_DISCARD_SECTORS,
		.max_write_zeroes_sectors = VTMEM_MAX_DISCARD_SECTORS,
		.discard_granularity = PAGE_SIZE,
	};
	struct gendisk *disk;

	disk = vtmem_alloc_disk(&lim, NUMA_NO_NODE, !vt->async);
	if (IS_ERR(disk))
		return disk;
	if (!vt->async)
		vtmem_disk_set_sync(disk);
	disk->major = vtmem_major;
	disk->first_minor = vt->id;
	disk->minors = 1;
	disk->flags |= GENHD_FL_NO_PART;
	disk->fops = &vtmem_fops;
	disk->private_data = vt;
	snprintf(disk->disk_name, sizeof(disk->disk_name), "vtmem%d", vt->id);
	set_capacity(disk, vt->nr_slots << VTMEM_SLOT_SHIFT);
	return disk;
}

/*
 * NEEDS_RESET: fail what the device held, then bring it up again the way
 * resume does, with a new pool.  Pages the host held are lost: their slots
 * stay marked "in host", so reading them fails (NOT_FOUND) rather than
 * returning zeroes.
 */
static void vtmem_recover(struct vtmem *vt)
{
#ifdef CONFIG_PM_SLEEP
	struct virtio_device *vdev = vt->vdev;
	int err;

	mutex_lock(&vt->ctl_lock);
	vt->recovering = true;
	err = virtio_device_freeze(vdev);
	if (!err)
		err = virtio_device_restore(vdev);
	vt->recovering = false;
	mutex_unlock(&vt->ctl_lock);
	if (err)
		dev_err(&vdev->dev, "cannot reinitialize the device: %d\n", err);
	else
		dev_info(&vdev->dev, "%s: device reinitialized, pool %u\n",
			 vt->disk->disk_name, vt->pool_id);
#endif
}

static void vtmem_config_work(struct work_struct *work)
{
	struct vtmem *vt = container_of(work, struct vtmem, config_work);
	u8 status = vt->vdev->config->get_status(vt->vdev);

	if (READ_ONCE(vt->dead))
		return;
	if (!(status & VIRTIO_CONFIG_S_NEEDS_RESET)) {
		vtmem_read_target(vt);
		return;
	}
	dev_err(&vt->vdev->dev,
		"device needs reset: pages in the host are lost\n");
	vtmem_kill(vt);
	vtmem_recover(vt);
}

static void vtmem_config_changed(struct virtio_device *vdev)
{
	struct vtmem *vt = vdev->priv;

	queue_work(vtmem_wq, &vt->config_work);
}

static int vtmem_probe(struct virtio_device *vdev)
{
	struct vtmem *vt;
	int err;

	BUILD_BUG_ON(PAGE_SIZE != VIRTIO_TMEM_PAGE_SIZE);
	if (!vdev->config->get) {
		dev_err(&vdev->dev, "config access disabled\n");
		return -EINVAL;
	}

	vt = kzalloc(sizeof(*vt), GFP_KERNEL);
	if (!vt)
		return -ENOMEM;
	vdev->priv = vt;
	vt->vdev = vdev;
	mutex_init(&vt->ctl_lock);
	init_rwsem(&vt->vq_sem);
	INIT_DELAYED_WORK(&vt->inval_work, vtmem_inval_work);
	vt->async = !synchronous;
	spin_lock_init(&vt->async_lock);
	INIT_LIST_HEAD(&vt->async_list);
	init_waitqueue_head(&vt->async_idle);
	INIT_DELAYED_WORK(&vt->async_watch, vtmem_async_watch);
	INIT_WORK(&vt->config_work, vtmem_config_work);
	INIT_DELAYED_WORK(&vt->return_work, vtmem_return_work);
	vtmem_reset_return(vt);

	err = vtmem_read_config(vt);
	if (err)
		goto err_free_vt;
	err = ida_alloc_max(&vtmem_index_ida, MINORMASK, GFP_KERNEL);
	if (err < 0)
		goto err_free_vt;
	vt->id = err;

	vt->queues = kcalloc(vt->nr_queues, sizeof(*vt->queues), GFP_KERNEL);
	if (!vt->queues) {
		err = -ENOMEM;
		goto err_free_id;
	}
	for (unsigned int i = 0; i < vt->nr_queues; i++) {
		spin_lock_init(&vt->queues[i].lock);
		init_waitqueue_head(&vt->queues[i].room);
	}
	err = vtmem_alloc_inval(vt);
	if (err)
		goto err_free_queues;
	/* Each user holds one batch at a time: the reserve lets one proceed. */
	vt->batch_pool = mempool_create_kmalloc_pool(4,
						      sizeof(struct vtmem_batch));
	if (!vt->batch_pool) {
		err = -ENOMEM;
		goto err_free_queues;
	}
	err = vtmem_alloc_maps(vt, vtmem_initial_slots(vt));
	if (err)
		goto err_destroy_pool;

	err = vtmem_init_vqs(vt);
	if (err)
		goto err_free_maps;
	vt->disk = vtmem_create_disk(vt);
	if (IS_ERR(vt->disk)) {
		err = PTR_ERR(vt->disk);
		goto err_del_vqs;
	}

	/* Like virtio_blk: the device must be live for the pool and add_disk. */
	virtio_device_ready(vdev);
	vt->vqs_ready = true;
	err = vtmem_pool_open(vt);
	if (err)
		goto err_reset;
	if (vt->id == 0 && backing_dev && *backing_dev)
		vtmem_open_backing(vt, backing_dev, vt->nr_slots, &vt->backing,
				   &vt->backing_path);

	err = device_add_disk(&vdev->dev, vt->disk, vtmem_attr_groups);
	if (err)
		goto err_destroy_tmem_pool;
	vtmem_test_init(vt);
	dev_info(&vdev->dev, "%s: %llu MiB, %u queue(s), pool %u\n",
		 vt->disk->disk_name, vt->nr_slots >> (20 - PAGE_SHIFT),
		 vt->nr_queues, vt->pool_id);
	return 0;

err_destroy_tmem_pool:
	vtmem_detach_backing(vt);
	vtmem_pool_destroy(vt);
err_reset:
	virtio_reset_device(vdev);
	put_disk(vt->disk);
err_del_vqs:
	vdev->config->del_vqs(vdev);
err_free_maps:
	vtmem_free_maps(vt);
err_destroy_pool:
	mempool_destroy(vt->batch_pool);
err_free_queues:
	vtmem_free_inval(vt);
	kfree(vt->queues);
err_free_id:
	ida_free(&vtmem_index_ida, vt->id);
err_free_vt:
	kfree(vt);
	return err;
}

/* The last reference to the disk is gone: swap may outlive remove(). */
static void vtmem_free_disk(struct gendisk *disk)
{
	struct vtmem *vt = disk->private_data;

	cancel_delayed_work_sync(&vt->inval_work);
	cancel_delayed_work_sync(&vt->return_work);
	cancel_delayed_work_sync(&vt->async_watch);
	vtmem_test_free(vt);
	vtmem_free_maps(vt);
	mempool_destroy(vt->batch_pool);
	vtmem_free_inval(vt);
	kfree(vt->queues);
	ida_free(&vtmem_index_ida, vt->id);
	kfree(vt);
}

static bool vtmem_device_broken(struct vtmem *vt)
{
	unsigned int i;

	for (i = 0; i < vt->nr_queues; i++)
		if (virtqueue_is_broken(vt->queues[i].vq))
			return true;
	return false;
}

static void vtmem_remove(struct virtio_device *vdev)
{
	struct vtmem *vt = vdev->priv;

	vtmem_test_exit(vt);
	cancel_work_sync(&vt->config_work);
	/* Surprise removal: nothing will answer what is in flight. */
	if (vt->have_vqs && vtmem_device_broken(vt))
		vtmem_kill(vt);
	cancel_delayed_work_sync(&vt->return_work);
	del_gendisk(vt->disk);
	vtmem_async_wait(vt);

	down_write(&vt->vq_sem);
	vtmem_pool_destroy(vt);
	vt->vqs_ready = false;
	WRITE_ONCE(vt->dead, true);
	up_write(&vt->vq_sem);
	cancel_delayed_work_sync(&vt->inval_work);

	vtmem_del_vqs(vt);
	vtmem_detach_backing(vt);
	put_disk(vt->disk);
}

#ifdef CONFIG_PM_SLEEP
/*
 * Restore resets the device, and a reset device holds nothing (DEV-3):
 * refuse to suspend while the host holds pages the guest still needs.
 */
static int vtmem_freeze(struct virtio_device *vdev)
{
	struct vtmem *vt = vdev->priv;
	s64 held;

	vtmem_freeze_queue_nomemsave(vt->disk->queue);
	vtmem_async_wait(vt);
	flush_delayed_work(&vt->inval_work);
	held = atomic64_read(&vt->stats.pages_in_host);
	if (held && !vt->recovering) {
		dev_warn(&vdev->dev, "%s: %lld pages in the host, not suspending\n",
			 vt->disk->disk_name, (long long)held);
		vtmem_unfreeze_queue_nomemrestore(vt->disk->queue);
		return -EBUSY;
	}
	cancel_delayed_work_sync(&vt->return_work);
	down_write(&vt->vq_sem);
	vtmem_pool_destroy(vt);
	vt->vqs_ready = false;
	up_write(&vt->vq_sem);
	/* Recovery runs in config_work itself. */
	if (!vt->recovering)
		cancel_work_sync(&vt->config_work);
	vtmem_del_vqs(vt);
	return 0;
}

static int vtmem_restore(struct virtio_device *vdev)
{
	struct vtmem *vt = vdev->priv;
	int err;

	err = vtmem_init_vqs(vt);
	if (!err) {
		virtio_device_ready(vdev);
		down_write(&vt->vq_sem);
		vtmem_reset_return(vt);
		vt->vqs_ready = true;
		WRITE_ONCE(vt->dead, false);
		err = vtmem_pool_open(vt);
		up_write(&vt->vq_sem);
	}
	/* Without a pool every request fails at once: never leave I/O hung. */
	if (err)
		WRITE_ONCE(vt->dead, true);
	vtmem_unfreeze_queue_nomemrestore(vt->disk->queue);
	/* Slots freed meanwhile still hold an invalidate to send. */
	if (!err)
		vtmem_inval_schedule(vt, true);
	return err;
}
#endif

static const struct virtio_device_id vtmem_id_table[] = {
	{ VIRTIO_ID_TMEM, VIRTIO_DEV_ANY_ID },
	{ 0 },
};
MODULE_DEVICE_TABLE(virtio, vtmem_id_table);

static unsigned int vtmem_features[] = {
	VIRTIO_TMEM_F_MQ,
	VIRTIO_TMEM_F_SIZE,
	VIRTIO_TMEM_F_RETURN,
	VIRTIO_TMEM_F_INVALIDATE_PAGES,
};

static struct virtio_driver vtmem_driver = {
	.feature_table = vtmem_features,
	.feature_table_size = ARRAY_SIZE(vtmem_features),
	.driver.name = KBUILD_MODNAME,
	.id_table = vtmem_id_table,
	.probe = vtmem_probe,
	.remove = vtmem_remove,
	.config_changed = vtmem_config_changed,
#ifdef CONFIG_PM_SLEEP
	.freeze = vtmem_freeze,
	.restore = vtmem_restore,
#endif
};

static int __init vtmem_init(void)
{
	int err;

	err = bioset_init(&vtmem_bio_set, BIO_POOL_SIZE, 0,
			  BIOSET_NEED_BVECS | BIOSET_NEED_RESCUER);
	if (err)
		return err;
	vtmem_wq = alloc_workqueue("vtmem", WQ_MEM_RECLAIM | VTMEM_WQ_PERCPU,
				   0);
	if (!vtmem_wq) {
		err = -ENOMEM;
		goto err_exit_bioset;
	}
	vtmem_major = register_blkdev(0, "vtmem");
	if (vtmem_major < 0) {
		err = vtmem_major;
		goto err_destroy_wq;
	}
	vtmem_test_module_init();
	err = register_virtio_driver(&vtmem_driver);
	if (err)
		goto err_unregister_blkdev;
	return 0;

err_unregister_blkdev:
	vtmem_test_module_exit();
	unregister_blkdev(vtmem_major, "vtmem");
err_destroy_wq:
	destroy_workqueue(vtmem_wq);
err_exit_bioset:
	bioset_exit(&vtmem_bio_set);
	return err;
}

static void __exit vtmem_exit(void)
{
	unregister_virtio_driver(&vtmem_driver);
	vtmem_test_module_exit();
	unregister_blkdev(vtmem_major, "vtmem");
	destroy_workqueue(vtmem_wq);
	bioset_exit(&vtmem_bio_set);
}

module_init(vtmem_init);
module_exit(vtmem_exit);

MODULE_DESCRIPTION("Transcendent memory swap disk for virtio-tmem devices");
MODULE_LICENSE("GPL");
