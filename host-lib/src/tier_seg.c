/* SPDX-License-Identifier: MIT */
/*
 * The writer's side of segments: one segment is filled in a buffer,
 * sealed and written with one io_uring write, and its buffer reused when
 * the write completed.  Only the writer thread runs this (the cleaner is
 * part of it), so its ring and the fill segment need no lock; buf_seg[]
 * changes under t->lock too, for stranded_locked().
 */
#include <string.h>

#include "tier_impl_i.h"

/* A buffer holds a segment whose write failed (under t->lock). */
static bool stranded_locked(const struct tmem_tier *t)
{
	for (int b = 0; b < TIER_BUFS; b++)
		if (t->buf_seg[b] >= 0 &&
		    t->segs[t->buf_seg[b]].state == SEG_STRANDED)
			return true;
	return false;
}

static void write_done(struct tmem_tier *t, int b, int res)
{
	int32_t segno = t->buf_seg[b];
	struct tier_seg *seg = &t->segs[segno];
	uint32_t len = block_up(t, seg->used);

	if (res != (int)len) {
		/* Stranded: the buffer keeps the pages, the tier stops. */
		TMEM_ADD(t->errors, 1);
		pthread_mutex_lock(&t->lock);
		seg->state = SEG_STRANDED;
		TMEM_WR(t->failed, true);
		pthread_cond_broadcast(&t->progress);
		tmem_tier_wake_locked(t, TIER_WAKE_ALL);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	TMEM_ADD(t->writes, 1);
	TMEM_ADD(t->write_bytes, len);
	pthread_mutex_lock(&t->lock);
	seg->state = SEG_DISK;
	seg->buf = -1;
	t->buf_seg[b] = -1;
	if (TMEM_RD(t->failed) && !stranded_locked(t)) {
		/* A retried write (RADOS) was the last stranded one. */
		TMEM_WR(t->failed, false);
		t->stalled = false;
		pthread_cond_broadcast(&t->progress);
	}
	pthread_mutex_unlock(&t->lock);
	tmem_seg_put(t, segno, 0);		/* the writer's reference */
}

int tmem_seg_retry(struct tmem_tier *t)
{
	int n = 0;

	for (int b = 0; b < TIER_BUFS; b++) {
		int32_t segno = t->buf_seg[b];
		struct tier_seg *seg = &t->segs[segno < 0 ? 0 : segno];
		bool stranded;

		if (segno < 0 || t->wop[b].comp)
			continue;
		pthread_mutex_lock(&t->lock);
		stranded = seg->state == SEG_STRANDED;
		if (stranded)
			seg->state = SEG_WRITING;
		pthread_mutex_unlock(&t->lock);
		if (!stranded)
			continue;
		if (tmem_rados_write(t->rados, &t->wop[b], segno, t->buf[b],
				     block_up(t, seg->used))) {
			pthread_mutex_lock(&t->lock);
			seg->state = SEG_STRANDED;
			pthread_mutex_unlock(&t->lock);
			continue;
		}
		t->inflight++;
		n++;
	}
	return n;
}

void tmem_seg_cqe_done(struct tmem_tier *t, struct io_uring_cqe *cqe)
{
	if (cqe->user_data >= 1 && cqe->user_data <= TIER_BUFS) {
		t->inflight--;
		write_done(t, cqe->user_data - 1, cqe->res);
	}
	io_uring_cqe_seen(&t->ring, cqe);
}

/* Buffer @b's RADOS write completed (or will: this waits for it). */
static void rados_write_done(struct tmem_tier *t, int b)
{
	int res = tmem_rados_op_finish(&t->wop[b]);

	t->inflight--;
	write_done(t, b, res ? res :
		   (int)block_up(t, t->segs[t->buf_seg[b]].used));
}

/* tmem_seg_reap() of the RADOS tier: its writes are the buffers' ops. */
static void rados_reap(struct tmem_tier *t, bool wait)
{
	int pending = -1;
	bool reaped = false;

	for (int b = 0; b < TIER_BUFS; b++) {
		if (!t->wop[b].comp)
			continue;
		if (!tmem_rados_op_done(&t->wop[b])) {
			pending = pending < 0 ? b : pending;
			continue;
		}
		rados_write_done(t, b);
		reaped = true;
	}
	if (wait && !reaped && pending >= 0) {
		TMEM_WR(t->io_wait, true);
		rados_write_done(t, pending);
		TMEM_WR(t->io_wait, false);
	}
}

void tmem_seg_reap(struct tmem_tier *t, bool wait)
{
	struct io_uring_cqe *cqe;

	if (t->rados) {
		rados_reap(t, wait);
		return;
	}
	if (wait && t->inflight) {
		TMEM_WR(t->io_wait, true);
		while (io_uring_wait_cqe(&t->ring, &cqe) == -EINTR)
			;
		TMEM_WR(t->io_wait, false);
	}
	while (io_uring_peek_cqe(&t->ring, &cqe) == 0)
		tmem_seg_cqe_done(t, cqe);
}

struct io_uring_sqe *tmem_seg_get_sqe(struct tmem_tier *t)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&t->ring))) {
		io_uring_submit(&t->ring);
		tmem_seg_reap(t, true);
	}
	return sqe;
}

void tmem_seg_seal(struct tmem_tier *t)
{
	struct tier_seg *seg = &t->segs[t->fill];
	uint32_t len = block_up(t, seg->used);
	int b = seg->buf, err = tmem_tier_injected(t, TMEM_IO_WRITE);
	struct io_uring_sqe *sqe;

	memset(t->buf[b] + seg->used, 0, len - seg->used);
	pthread_mutex_lock(&t->lock);
	seg->state = SEG_WRITING;
	pthread_mutex_unlock(&t->lock);
	t->fill = -1;
	if (err) {
		write_done(t, b, err);
		return;
	}
	tmem_tier_hang_wait(t, TMEM_IO_WRITE);
	if (t->rados) {
		err = tmem_rados_write(t->rados, &t->wop[b], seg - t->segs,
				       t->buf[b], len);
		if (err)
			write_done(t, b, err);
		else
			t->inflight++;
		return;
	}
	sqe = tmem_seg_get_sqe(t);
	io_uring_prep_write(sqe, t->fd, t->buf[b], len, seg_off(t, seg - t->segs));
	sqe->user_data = b + 1;
	io_uring_submit(&t->ring);
	t->inflight++;
}

/* A free buffer, waiting for a write if all are busy; -1 if none will be. */
static int buf_get(struct tmem_tier *t)
{
	for (;;) {
		for (int b = 0; b < TIER_BUFS; b++)
			if (t->buf_seg[b] < 0)
				return b;
		if (!t->inflight)
			return -1;	/* all stranded */
		tmem_seg_reap(t, true);
	}
}

/*
 * Start filling a free segment.  Only the cleaner may take the last
 * TIER_RESERVE ones.  0, or -ENOSPC / -EIO.
 */
int tmem_seg_fill_open(struct tmem_tier *t, bool cleaner)
{
	struct tier_seg *seg;
	uint32_t segno;
	int b = buf_get(t);

	if (b < 0)
		return -EIO;
	pthread_mutex_lock(&t->lock);
	if (t->nfree <= (cleaner ? 0 : TIER_RESERVE)) {
		pthread_mutex_unlock(&t->lock);
		return -ENOSPC;
	}
	segno = t->free[--t->nfree];
	seg = &t->segs[segno];
	seg->state = SEG_FILLING;
	seg->buf = b;
	seg->used = 0;
	atomic_store(&seg->live_bytes, 0);
	atomic_store(&seg->ref, 1);
	pthread_mutex_unlock(&t->lock);
	t->buf_seg[b] = segno;
	t->fill = segno;
	return 0;
}

/*
 * Append a page to the fill segment; its new handle.  @check: the
 * checksum it had in the segment it moves from (the cleaner's: so that a
 * page corrupted on disk stays detectably corrupt), or NULL.
 */
uint64_t tmem_seg_fill_put(struct tmem_tier *t, uint32_t pool,
			   uint64_t object, uint32_t index, unsigned int type,
			   unsigned int len, const void *data,
			   const uint64_t *check)
{
	struct tier_seg *seg = &t->segs[t->fill];
	uint8_t *dst = t->buf[seg->buf] + seg->used;
	struct seg_hdr hdr = {
		.object = object,
		.index = index,
		.pool = pool,
		.info = type | (len - 1) << 2,
	};
	uint64_t off = seg_off(t, t->fill) + seg->used + HDR;

	hdr.check = check ? *check : tmem_seg_check(&hdr, data, len);
	memcpy(dst, &hdr, HDR);
	memcpy(dst + HDR, data, len);
	seg->used += HDR + len;
	atomic_fetch_add_explicit(&seg->ref, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&seg->live_bytes, len, memory_order_relaxed);
	return tmem_h_make_disk(type, len, off);
}

bool tmem_seg_fill_fits(struct tmem_tier *t, unsigned int len)
{
	return t->segs[t->fill].used + HDR + len <= t->seg_size;
}
