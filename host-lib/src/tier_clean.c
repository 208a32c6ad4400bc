/* SPDX-License-Identifier: MIT */
/*
 * The cleaner: when only the reserve segment is left, read the written
 * segment with the least live data, walk its headers and move each page
 * whose key still points at it into the reserve (through the index's
 * lookup and set, under the key's shard lock), which frees the victim.
 * Part of the writer thread.
 */
#include <string.h>

#include "tier_impl_i.h"

/* Bytes a segment's live pages take, headers included (an upper bound). */
static uint64_t seg_live(struct tier_seg *seg)
{
	return atomic_load_explicit(&seg->live_bytes, memory_order_relaxed) +
	       (uint64_t)HDR * atomic_load_explicit(&seg->ref,
						    memory_order_relaxed);
}

/* The written segment with the least live data, if it fits in @room. */
static int32_t pick_victim(struct tmem_tier *t, uint64_t room)
{
	uint64_t best = room + 1;
	int32_t victim = -1;

	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < t->nsegs; i++) {
		uint64_t live;

		if (t->segs[i].state != SEG_DISK)
			continue;
		live = seg_live(&t->segs[i]);
		if (live < best) {
			best = live;
			victim = i;
		}
	}
	pthread_mutex_unlock(&t->lock);
	return victim;
}

/*
 * Move one page of the victim if its key still points at it.  False when
 * it does and there is no room for it in the fill segment.
 */
static bool relocate(struct tmem_tier *t, uint32_t victim,
		     const struct seg_hdr *hdr, uint64_t old, const void *data)
{
	struct tmem_client *c = t->c;
	struct tmem_shard *shards = tmem_pool_shards(c, hdr->pool);
	uint32_t slot = hdr->index % TMEM_CHUNK_PAGES;
	struct tmem_chunk *ch;
	struct tmem_shard *sh;
	bool room = true, wide;
	uint64_t h;

	if (!shards)
		return true;
	sh = tmem_shard_of(shards, hdr->object, hdr->index);
	pthread_mutex_lock(&sh->lock);
	ch = tmem_chunk_find(sh, hdr->object, hdr->index >> TMEM_CHUNK_SHIFT);
	h = ch ? tmem_chunk_get(ch, slot, &wide) : 0;
	if (sh->state == TMEM_POOL_OPEN && h && !wide && h == old) {
		room = tmem_seg_fill_fits(t, tmem_h_len(old));
		if (room) {
			h = tmem_seg_fill_put(t, hdr->pool, hdr->object,
					      hdr->index, tmem_h_type(old),
					      tmem_h_len(old), data,
					      &hdr->check);
			tmem_chunk_move(sh, ch, slot, h);
			/* Pinned by the cleaner: this put never frees it. */
			tmem_seg_put(t, victim, tmem_h_len(old));
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return room;
}

/*
 * Read a whole segment with the writer's ring (writes may complete), or
 * its object; the writer waits for it either way.
 */
static int read_segment(struct tmem_tier *t, uint32_t segno, uint32_t len)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int res = tmem_tier_injected(t, TMEM_IO_READ);

	if (!res && t->rados) {
		tmem_tier_hang_wait(t, TMEM_IO_READ);
		res = tmem_rados_read(t->rados, &t->clean_op, segno, 0,
				      t->clean_buf, len);
		TMEM_WR(t->io_wait, true);
		if (!res)
			res = tmem_rados_op_finish(&t->clean_op);
		TMEM_WR(t->io_wait, false);
	} else if (!res) {
		tmem_tier_hang_wait(t, TMEM_IO_READ);
		sqe = tmem_seg_get_sqe(t);
		io_uring_prep_read(sqe, t->fd, t->clean_buf, len,
				   seg_off(t, segno));
		sqe->user_data = CLEAN_TAG;
		io_uring_submit(&t->ring);
		/* Stores that time out meanwhile: one bound, not one each. */
		TMEM_WR(t->io_wait, true);
		for (;;) {
			res = io_uring_wait_cqe(&t->ring, &cqe);
			if (res == -EINTR)
				continue;
			if (res || cqe->user_data == CLEAN_TAG)
				break;
			tmem_seg_cqe_done(t, cqe);
		}
		TMEM_WR(t->io_wait, false);
		if (res)
			return -EIO;	/* the ring itself failed */
		res = cqe->res;
		io_uring_cqe_seen(&t->ring, cqe);
	}
	if (res != (int)len) {
		TMEM_ADD(t->errors, 1);
		return -EIO;
	}
	TMEM_ADD(t->reads, 1);
	TMEM_ADD(t->read_bytes, len);
	return 0;
}

/*
 * Move the live pages of @victim into the fill segment, as many as fit.
 * True when that freed it; false when it stays (no room for one of its
 * pages, or its read failed): the caller must not pick it again now.
 */
static bool clean_segment(struct tmem_tier *t, uint32_t victim)
{
	struct tier_seg *seg = &t->segs[victim];
	uint32_t used, len, pos = 0;
	struct seg_hdr hdr;
	bool freed;

	pthread_mutex_lock(&t->lock);
	if (seg->state != SEG_DISK || !tmem_seg_tryget(seg)) {
		pthread_mutex_unlock(&t->lock);
		return true;		/* gone meanwhile */
	}
	used = seg->used;
	pthread_mutex_unlock(&t->lock);
	len = block_up(t, used);
	if (!read_segment(t, victim, len)) {
		while (pos + HDR <= used) {
			unsigned int plen;

			memcpy(&hdr, t->clean_buf + pos, HDR);
			plen = (hdr.info >> 2) + 1;
			if (pos + HDR + plen > used ||
			    !relocate(t, victim, &hdr,
				      tmem_h_make_disk(hdr.info & 3, plen,
						       seg_off(t, victim) +
						       pos + HDR),
				      t->clean_buf + pos + HDR))
				break;
			pos += HDR + plen;
		}
	}
	freed = tmem_seg_put(t, victim, 0);
	if (freed)
		TMEM_ADD(t->cleaned, 1);
	return freed;
}

/*
 * Open a new fill segment; when only the reserve is left, clean into it
 * the segments with the least live data that fit.  0, -ENOSPC or -EIO.
 */
int tmem_tier_fill_next(struct tmem_tier *t)
{
	int32_t victim;
	int ret = tmem_seg_fill_open(t, false);

	if (ret != -ENOSPC)
		return ret;
	victim = pick_victim(t, CLEAN_MAX(t));
	if (victim < 0 || tmem_seg_fill_open(t, true))
		return -ENOSPC;
	while (clean_segment(t, victim)) {
		victim = pick_victim(t, t->seg_size - t->segs[t->fill].used);
		if (victim < 0)
			break;
	}
	return 0;
}
