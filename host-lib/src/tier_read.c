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
	if (!io->buf || io_uring_queue_init(2, &io->ring, 0)) {
		tmem_free(io->buf);
		tmem_free(io);
		return NULL;
	}
	ctx->io = io;
	return io;
}

/* One read with the context's ring; 0 or -EIO. */
static int read_blocks(struct tmem_tier *t, struct tmem_tier_io *io,
		       uint8_t *dst, uint64_t start, uint64_t end)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
	struct io_uring_cqe *cqe;
	int res;

	io_uring_prep_read(sqe, t->fd, dst, end - start, start);
	io_uring_submit(&io->ring);
	while ((res = io_uring_wait_cqe(&io->ring, &cqe)) == -EINTR)
		;
	if (res)
		return -EIO;
	res = cqe->res;
	io_uring_cqe_seen(&io->ring, cqe);
	if (res != (int)(end - start))
		return -EIO;
	TMEM_ADD(t->reads, 1);
	TMEM_ADD(t->read_bytes, end - start);
	return 0;
}

/*
 * The bytes [off, off + len) of written segment @segno (generation
 * @gen, pinned): from the read-ahead buffer, or read with the context's
 * own ring, TIER_RA bytes at once when the load follows the last one.
 */
static int read_back(struct tmem_ctx *ctx, struct tmem_tier *t, uint64_t off,
		     unsigned int len, uint32_t segno, uint32_t gen,
		     const uint8_t **srcp)
{
	uint64_t start = off & ~(uint64_t)(t->block - 1);
	uint64_t end = block_up(t, off + len);
	uint64_t seg_end = seg_off(t, segno + 1);
	struct tmem_tier_io *io;
	bool seq;

	if (tmem_tier_injected(t, TMEM_IO_READ))
		goto fail;		/* the cache too: a failing disk */
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
	/*
	 * Only when the whole page falls inside the window: with a 64 KiB
	 * O_DIRECT block, start may sit up to a block below off.
	 */
	if (seq && off + len <= start + TIER_RA &&
	    (io->ra || (io->ra = tmem_zalloc_align(TIER_RA, t->block)))) {
		end = start + TIER_RA < seg_end ? start + TIER_RA : seg_end;
		io->ra_end = 0;		/* invalid if the read fails */
		if (read_blocks(t, io, io->ra, start, end))
			goto fail;
		io->ra_seg = segno;
		io->ra_gen = gen;
		io->ra_start = start;
		io->ra_end = end;
		*srcp = io->ra + (off - start);
		return 0;
	}
	if (read_blocks(t, io, io->buf, start, end))
		goto fail;
	*srcp = io->buf + (off - start);
	return 0;
fail:
	__atomic_fetch_add(&t->errors, 1, __ATOMIC_RELAXED);
	return -EIO;
}

int tmem_tier_read(struct tmem_ctx *ctx, uint32_t pool, uint64_t object,
		   uint32_t index, uint64_t h, void *page)
{
	struct tmem_tier *t = ctx->client->tier;
	uint64_t off = tmem_h_disk_off(h) - HDR;	/* its header */
	uint32_t segno = off / t->seg_size;
	struct tier_seg *seg = &t->segs[segno];
	unsigned int len = tmem_h_len(h);
	const uint8_t *src = ctx->cbuf;
	uint32_t gen;
	int ret = 0;

	pthread_mutex_lock(&t->lock);
	if (seg->state != SEG_DISK) {
		/* Filling, being written or stranded: the buffer has it. */
		memcpy(ctx->cbuf, t->buf[seg->buf] + off % t->seg_size,
		       HDR + len);
		pthread_mutex_unlock(&t->lock);
	} else {
		gen = seg->gen;
		pthread_mutex_unlock(&t->lock);
		ret = read_back(ctx, t, off, HDR + len, segno, gen, &src);
	}
	if (!ret && !seg_page_ok(src, pool, object, index, h)) {
		__atomic_fetch_add(&t->errors, 1, __ATOMIC_RELAXED);
		ret = -EIO;
	}
	if (!ret)
		ret = tmem_decode_data(tmem_h_type(h) == TMEM_H_RAW, src + HDR,
				       len, page);
	tmem_seg_put(t, segno, 0);
	return ret == -ENOMEM ? -EIO : ret;
}

void tmem_tier_ctx_free(struct tmem_ctx *ctx)
{
	if (!ctx->io)
		return;
	io_uring_queue_exit(&ctx->io->ring);
	tmem_free(ctx->io->ra);
	tmem_free(ctx->io->buf);
	tmem_free(ctx->io);
	ctx->io = NULL;
}
