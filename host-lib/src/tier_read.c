/* SPDX-License-Identifier: MIT */
/*
 * The read path of a load from the disk tier: a page whose segment is
 * still in a buffer is copied from it, else the loading context reads
 * it with its own ring (so a load waits for its own read only), with
 * read-ahead for loads that follow each other in a segment.  The header
 * read with the page must name the key and match its checksum (DEV-18).
 */
#include <string.h>

#include "codec_i.h"
#include "tier_impl_i.h"

/*
 * The header at @p (unaligned) belongs to the page of key (@pool,
 * @object, @index) and handle @h, and the bytes after it are intact.
 */
static bool seg_page_ok(const uint8_t *p, uint32_t pool, uint64_t object,
			uint32_t index, uint64_t h)
{
	unsigned int len = tmem_h_len(h);
	struct seg_hdr hdr;

	memcpy(&hdr, p, HDR);
	return hdr.object == object && hdr.index == index && hdr.pool == pool &&
	       hdr.info == (tmem_h_type(h) | (len - 1) << 2) &&
	       hdr.check == tmem_seg_check(&hdr, p + HDR, len);
}


static struct tmem_tier_io *ctx_io(struct tmem_ctx *ctx, struct tmem_tier *t)
{
	struct tmem_tier_io *io = ctx->io;

	if (io)
		return io;
	io = tmem_zalloc_aligned(sizeof(*io));
	if (!io)
		return NULL;
	io->buf = tmem_zalloc_align(block_up(t, HDR + TMEM_PAGE_SIZE) + t->block,
				    t->block);
	if (!io->buf || io_uring_queue_init(4, &io->ring, 0)) {
		tmem_free(io->buf);
		tmem_free(io);
		return NULL;
	}
	/* Every completion on the ring makes the completion fd readable. */
	if (io_uring_register_eventfd(&io->ring, ctx->efd)) {
		io_uring_queue_exit(&io->ring);
		tmem_free(io->buf);
		tmem_free(io);
		return NULL;
	}
	io->rop.efd = ctx->efd;		/* RADOS reads: the same fd */
	ctx->io = io;
	return io;
}

/* Take the context ring's completions: the read's result, timers. */
static void io_poll(struct tmem_tier_io *io)
{
	struct io_uring_cqe *cqe;

	if (io->rstate == RD_ISSUED && io->rop.comp &&
	    tmem_rados_op_done(&io->rop)) {
		io->rres = tmem_rados_op_finish(&io->rop);
		io->rstate = RD_DONE;
	}
	while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
		if (cqe->user_data == IO_READ_TAG && io->rstate == RD_ISSUED) {
			io->rres = cqe->res;
			io->rstate = RD_DONE;
		} else if (cqe->user_data == io->timer_tag) {
			io->timer_tag = 0;	/* fired or removed */
		}
		io_uring_cqe_seen(&io->ring, cqe);
	}
}

/* io_uring_submit(), or the failure tmem_client_inject_io_error() asks. */
static int read_submit(struct tmem_tier *t, struct tmem_tier_io *io)
{
	int err = tmem_tier_injected(t, TMEM_IO_READ_SUBMIT);

	return err ? err : io_uring_submit(&io->ring);
}

/*
 * Issue the load's read, or hold it while the disk "hangs": the end of
 * the hang wakes the context, whose reap issues it then.
 */
static void read_issue(struct tmem_ctx *ctx, struct tmem_tier *t,
		       struct tmem_tier_io *io)
{
	struct io_uring_sqe *sqe;

	if (tmem_tier_hung(t, TMEM_IO_READ)) {
		pthread_mutex_lock(&t->lock);
		/*
		 * Again under the lock, which the hang's end takes to wake
		 * the waiters: had it ended since, no wakeup would come.
		 */
		if (tmem_tier_hung(t, TMEM_IO_READ)) {
			io->rstate = RD_HELD;
			tmem_tier_wait_locked(t, ctx, TIER_WAKE_HANG);
			pthread_mutex_unlock(&t->lock);
			return;
		}
		pthread_mutex_unlock(&t->lock);
	}
	if (t->rados) {
		int err = tmem_tier_injected(t, TMEM_IO_READ_SUBMIT);

		if (!err)
			err = tmem_rados_read(t->rados, &io->rop,
					      io->start / t->seg_size,
					      io->start % t->seg_size, io->dst,
					      io->end - io->start);
		io->rres = -EIO;
		io->rstate = err ? RD_DONE : RD_ISSUED;
		return;
	}
	sqe = io_uring_get_sqe(&io->ring);
	if (!sqe) {
		io_uring_submit(&io->ring);
		sqe = io_uring_get_sqe(&io->ring);
	}
	if (!sqe) {
		io->rres = -EBUSY;
		io->rstate = RD_DONE;
		return;
	}
	io_uring_prep_read(sqe, t->fd, io->dst, io->end - io->start, io->start);
	sqe->user_data = IO_READ_TAG;
	io->rstate = RD_ISSUED;
	if (read_submit(t, io) < 0) {
		/*
		 * Not issued, but the SQE may still sit in the submission
		 * queue (io_uring_enter() failed before taking it; no
		 * SQPOLL): a NOP in its place, so that the next submit
		 * starts no read whose completion a later load would take
		 * for its own.
		 */
		io_uring_prep_nop(sqe);
		sqe->user_data = IO_NOP_TAG;
		io->rres = -EIO;
		io->rstate = RD_DONE;
	}
}

/* Wait for an issued read to complete. */
static void read_wait_issued(struct tmem_tier_io *io)
{
	struct io_uring_cqe *cqe;

	if (io->rstate == RD_ISSUED && io->rop.comp) {
		io->rres = tmem_rados_op_finish(&io->rop);
		io->rstate = RD_DONE;
	}
	while (io->rstate == RD_ISSUED) {
		if (io_uring_wait_cqe(&io->ring, &cqe) == -EINTR)
			continue;
		io_poll(io);
	}
}

/* Synchronously: wait for the load's read. */
static void read_wait(struct tmem_ctx *ctx, struct tmem_tier *t,
		      struct tmem_tier_io *io)
{
	if (io->rstate == RD_HELD) {
		tmem_tier_hang_wait(t, TMEM_IO_READ);
		io->rstate = RD_IDLE;
		read_issue(ctx, t, io);
		if (io->rstate == RD_HELD)	/* the tier stops */
			io->rstate = RD_IDLE;
	}
	read_wait_issued(io);
}

/*
 * The read came back: check it, update the read-ahead window, and point
 * *srcp at the load's header.  0 or -EIO.
 */
static int read_done(struct tmem_tier *t, struct tmem_tier_io *io,
		     const uint8_t **srcp)
{
	io->rstate = RD_IDLE;
	/*
	 * The whole window, or (a segment object is only as long as its
	 * written part) at least the page: the window ends where it did.
	 */
	if (io->rres < (int)(io->need - io->start) ||
	    io->rres > (int)(io->end - io->start)) {
		__atomic_fetch_add(&t->errors, 1, __ATOMIC_RELAXED);
		return -EIO;
	}
	io->end = io->start + io->rres;
	TMEM_ADD(t->reads, 1);
	TMEM_ADD(t->read_bytes, io->end - io->start);
	if (io->into_ra) {
		io->ra_seg = io->segno;
		io->ra_gen = io->gen;
		io->ra_start = io->start;
		io->ra_end = io->end;
	}
	*srcp = io->dst + (io->off - io->start);
	return 0;
}

/*
 * Plan the read of [off, off + len) of written segment @segno
 * (generation @gen, pinned): 0 with *srcp when the read-ahead buffer
 * has it, 1 when io->dst must be read from io->start to io->end (TIER_RA
 * bytes at once when the load follows the last one), or -errno.
 */
static int read_plan(struct tmem_ctx *ctx, struct tmem_tier *t, uint64_t off,
		     unsigned int len, uint32_t segno, uint32_t gen,
		     const uint8_t **srcp)
{
	uint64_t start = off & ~(uint64_t)(t->block - 1);
	uint64_t seg_end = seg_off(t, segno + 1);
	struct tmem_tier_io *io;
	bool seq;

	if (tmem_tier_injected(t, TMEM_IO_READ)) {
		/* The cache too: a failing disk. */
		__atomic_fetch_add(&t->errors, 1, __ATOMIC_RELAXED);
		return -EIO;
	}
	io = ctx_io(ctx, t);
	if (!io)
		return -ENOMEM;
	if (io->ra_seg == segno && io->ra_gen == gen && off >= io->ra_start &&
	    off + len <= io->ra_end) {
		*srcp = io->ra + (off - io->ra_start);
		io->last_end = off + len;
		return 0;
	}
	seq = off >= io->last_end && off - io->last_end < TIER_RA &&
	      off / t->seg_size == io->last_end / t->seg_size;
	io->last_end = off + len;
	io->off = off;
	io->segno = segno;
	io->gen = gen;
	io->start = start;
	io->end = io->need = block_up(t, off + len);
	io->dst = io->buf;
	io->into_ra = false;
	/*
	 * Only when the whole page falls inside the window: with a 64 KiB
	 * O_DIRECT block, start may sit up to a block below off.
	 */
	if (seq && off + len <= start + TIER_RA &&
	    (io->ra || (io->ra = tmem_zalloc_align(TIER_RA, t->block)))) {
		io->end = start + TIER_RA < seg_end ? start + TIER_RA : seg_end;
		io->ra_end = 0;		/* invalid until the read is done */
		io->dst = io->ra;
		io->into_ra = true;
	}
	return 1;
}

/*
 * Check the staged header and page, decode it (or with @stored copy its
 * bytes as they are), unpin the segment.
 */
static int read_finish(struct tmem_tier *t, const uint8_t *src, int ret,
		       uint32_t pool, uint64_t object, uint32_t index,
		       uint64_t h, void *page, bool stored)
{
	uint32_t segno = (tmem_h_disk_off(h) - HDR) / t->seg_size;

	if (!ret && !seg_page_ok(src, pool, object, index, h)) {
		__atomic_fetch_add(&t->errors, 1, __ATOMIC_RELAXED);
		ret = -EIO;
	}
	if (!ret && stored)
		memcpy(page, src + HDR, tmem_h_len(h));
	else if (!ret)
		ret = tmem_decode_data(tmem_h_type(h) == TMEM_H_RAW, src + HDR,
				       tmem_h_len(h), page);
	tmem_seg_put(t, segno, 0);
	return ret == -ENOMEM ? -EIO : ret;
}

static int tier_read(struct tmem_ctx *ctx, uint32_t pool, uint64_t object,
		     uint32_t index, uint64_t h, void *page, bool stored)
{
	struct tmem_tier *t = ctx->client->tier;
	uint64_t off = tmem_h_disk_off(h) - HDR;	/* its header */
	uint32_t segno = off / t->seg_size;
	struct tier_seg *seg = &t->segs[segno];
	unsigned int len = tmem_h_len(h);
	const uint8_t *src = ctx->cbuf;
	struct tmem_tier_io *io;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	if (seg->state != SEG_DISK) {
		/* Filling, being written or stranded: the buffer has it. */
		memcpy(ctx->cbuf, t->buf[seg->buf] + off % t->seg_size,
		       HDR + len);
		pthread_mutex_unlock(&t->lock);
	} else {
		uint32_t gen = seg->gen;

		pthread_mutex_unlock(&t->lock);
		ret = read_plan(ctx, t, off, HDR + len, segno, gen, &src);
	}
	if (ret <= 0)
		return read_finish(t, src, ret, pool, object, index, h, page,
				   stored);
	io = ctx->io;
	read_issue(ctx, t, io);
	/* A read that could not be issued ends now: no completion will. */
	if (ctx->nowait && !stored && io->rstate != RD_DONE) {
		/* tmem_tier_read_poll() finishes it. */
		io->pool = pool;
		io->object = object;
		io->index = index;
		io->h = h;
		io->page = page;
		return -EINPROGRESS;
	}
	read_wait(ctx, t, io);
	ret = io->rstate == RD_DONE ? read_done(t, io, &src) : -EIO;
	io->rstate = RD_IDLE;
	return read_finish(t, src, ret, pool, object, index, h, page, stored);
}

int tmem_tier_read(struct tmem_ctx *ctx, uint32_t pool, uint64_t object,
		   uint32_t index, uint64_t h, void *page)
{
	return tier_read(ctx, pool, object, index, h, page, false);
}

int tmem_tier_read_stored(struct tmem_ctx *ctx, uint32_t pool,
			  uint64_t object, uint32_t index, uint64_t h,
			  void *dst)
{
	return tier_read(ctx, pool, object, index, h, dst, true);
}

int tmem_tier_read_poll(struct tmem_ctx *ctx)
{
	struct tmem_tier *t = ctx->client->tier;
	struct tmem_tier_io *io = ctx->io;
	const uint8_t *src = NULL;
	int ret;

	io_poll(io);
	if (io->rstate == RD_HELD && !tmem_tier_hung(t, TMEM_IO_READ))
		read_issue(ctx, t, io);
	if (io->rstate != RD_DONE)
		return -EINPROGRESS;
	ret = read_done(t, io, &src);
	return read_finish(t, src, ret, io->pool, io->object, io->index,
			   io->h, io->page, false);
}

void tmem_tier_read_cancel(struct tmem_ctx *ctx)
{
	struct tmem_tier_io *io = ctx->io;

	if (!io || io->rstate == RD_IDLE)
		return;
	/* The kernel or librados may still write io->dst: wait for it. */
	read_wait_issued(io);
	io->rstate = RD_IDLE;
	io->ra_end = 0;
	tmem_seg_put(ctx->client->tier, (tmem_h_disk_off(io->h) - HDR) /
				   ctx->client->tier->seg_size, 0);
}

int tmem_tier_timer(struct tmem_ctx *ctx, uint64_t deadline_ns)
{
	struct tmem_tier *t = ctx->client->tier;
	struct tmem_tier_io *io = t ? ctx_io(ctx, t) : NULL;
	struct io_uring_sqe *sqe;

	if (!io)
		return -ENOMEM;
	io_poll(io);		/* the last timer's completions */
	if (io->timer_tag) {
		sqe = io_uring_get_sqe(&io->ring);
		if (!sqe)
			return -EBUSY;
		io_uring_prep_timeout_remove(sqe, io->timer_tag, 0);
		sqe->user_data = IO_TIMER_RM_TAG;
		io->timer_tag = 0;
	}
	if (deadline_ns) {
		sqe = io_uring_get_sqe(&io->ring);
		if (!sqe) {
			io_uring_submit(&io->ring);
			sqe = io_uring_get_sqe(&io->ring);
		}
		if (!sqe)
			return -EBUSY;
		io->ts.tv_sec = deadline_ns / 1000000000;
		io->ts.tv_nsec = deadline_ns % 1000000000;
		/* Absolute, on CLOCK_MONOTONIC: as the caller's deadline. */
		io_uring_prep_timeout(sqe, &io->ts, 0, IORING_TIMEOUT_ABS);
		io->timer_tag = IO_TIMER_TAG | (uint64_t)++io->timer_seq << 8;
		sqe->user_data = io->timer_tag;
	}
	return io_uring_submit(&io->ring) < 0 ? -EIO : 0;
}

void tmem_tier_ctx_free(struct tmem_ctx *ctx)
{
	if (!ctx->io)
		return;
	tmem_rados_op_finish(&ctx->io->rop);	/* none in flight, normally */
	io_uring_queue_exit(&ctx->io->ring);
	tmem_free(ctx->io->ra);
	tmem_free(ctx->io->buf);
	tmem_free(ctx->io);
	ctx->io = NULL;
}
