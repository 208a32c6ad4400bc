/* SPDX-License-Identifier: MIT */
/*
 * The disk tier: cold compressed pages of persistent pools, written back
 * to a file in large segments with io_uring.
 *
 * The backing file is cut into segments of segment_size bytes.  A writer
 * thread, woken when the client's host bytes reach the high watermark
 * (or by a store that found the budget full), takes the coldest chunk of
 * each persistent shard in turn (the shard's LRU tail: 64 consecutive
 * swap slots, stored about the same time) and, under that shard's lock,
 * copies each compressed page into the segment being filled, behind a
 * 24-byte header naming its key and holding a checksum (XXH3) of the key
 * and the bytes, and points the index at the page's
 * byte offset in the file (a TMEM_H_DISK handle).  Its allocator slot is
 * freed at once: from then on the segment's buffer holds the bytes, and
 * loads of such pages copy them from the buffer.  A full segment is
 * written with one io_uring write (O_DIRECT where the file system
 * allows); the buffer is reused only after that write completed, and
 * loads then read the page back with the loading thread's own ring: a
 * load waits for its own read only, never for another page's.
 * TIER_BUFS segment buffers, plus one for the cleaner, are charged to
 * the budget once, so host_bytes stays under it.
 *
 * Space: each segment counts references (its live pages, loads reading
 * it, and the writer while it fills or writes it); the last put frees
 * it.  A load reads the header with the page and answers -EIO unless the
 * key is its own and the checksum matches: never other bytes (DEV-18).
 * Swap invalidates a page when it is loaded, so segments empty
 * out on their own; when none is free, the cleaner reads the segment
 * with the least live data, walks its headers and moves each page whose
 * key still points at it into the segment being filled (one free
 * segment is kept in reserve for this), which frees the victim.
 *
 * Errors: a failed write strands its segment in memory (its pages stay
 * readable from the buffer) and fails the tier: nothing is written back
 * any more, and stores over budget are refused as without a tier.  A
 * failed read fails that load with -EIO; the page stays stored.  The
 * file's content means nothing across a restart of the client.
 *
 * Locks: shard -> tier->lock.  The writer never holds tier->lock while it
 * takes a shard lock; what only the writer touches (its ring, the fill
 * segment's used bytes, buf_seg[]) needs no lock.
 */
#define _GNU_SOURCE		/* O_DIRECT, fallocate() */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <linux/fs.h>

#include <lz4.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tmem_i.h"

#ifdef TMEM_HAVE_LIBURING
#include <liburing.h>

#define TIER_BUFS	4		/* one filling, the rest in flight */
#define TIER_RESERVE	1		/* free segments kept for the cleaner */
#define TIER_BLOCK_MAX	(64u << 10)	/* O_DIRECT alignment we take */
#define TIER_BATCH	512		/* pages per pass before waking stores */
#define TIER_RA		(64u << 10)	/* read-ahead of a sequential load */
#define CLEAN_TAG	(TIER_BUFS + 1)
/* Live bytes under which a segment is worth cleaning: it frees 1/4 at least. */
#define CLEAN_MAX(t)	((t)->seg_size / 4 * 3)

/* Before each page in a segment; the page's handle points past it. */
struct seg_hdr {
	uint64_t object;
	uint32_t index;
	uint16_t pool;
	uint16_t info;			/* handle type | (length - 1) << 2 */
	uint64_t check;			/* seg_check() */
};
_Static_assert(sizeof(struct seg_hdr) == 24, "segment header is 24 bytes");
#define HDR	sizeof(struct seg_hdr)
#define HDR_KEY	offsetof(struct seg_hdr, check)
/* A load stages the header and the page in ctx->cbuf. */
_Static_assert(HDR + TMEM_PAGE_SIZE <= LZ4_COMPRESSBOUND(TMEM_PAGE_SIZE),
	       "header and page fit in a context's cbuf");

enum seg_state {
	SEG_FREE,
	SEG_FILLING,			/* in a buffer, taking pages */
	SEG_WRITING,			/* in a buffer, being written */
	SEG_DISK,
	SEG_STRANDED,			/* its write failed: the buffer stays */
};

struct tier_seg {
	_Atomic uint32_t ref;		/* live pages + readers + writer */
	_Atomic uint32_t live_bytes;	/* compressed bytes of live pages */
	uint32_t used;			/* bytes of headers and pages */
	uint8_t state;			/* enum seg_state, under tier->lock */
	int8_t buf;			/* its buffer unless SEG_DISK/FREE */
	uint32_t gen;			/* bumped when freed, under tier->lock */
};

struct tmem_tier {
	struct tmem_client *c;
	int fd;
	bool direct;
	bool created;			/* tier_open() created the file */
	bool blkdev;
	char *path;			/* to remove the file we created */
	uint32_t block;			/* O_DIRECT alignment of offsets */
	uint32_t seg_size;
	uint32_t nsegs;
	uint64_t high, low;		/* watermarks, bytes */
	size_t charged;
	struct tier_seg *segs;
	uint8_t *buf[TIER_BUFS];
	uint8_t *clean_buf;

	pthread_mutex_t lock;
	uint32_t *free;			/* stack of free segments */
	uint32_t nfree;
	pthread_cond_t wake;		/* the writer waits for work */
	pthread_cond_t progress;	/* stores wait for a pass */
	uint64_t gen;			/* passes done */
	bool last_moved;		/* the last pass moved pages */
	bool room_wanted;		/* a store waits */
	bool draining;			/* above low after a high mark */
	bool stalled;			/* nothing to write back */
	bool full;			/* no segment, nothing to clean */
	bool failed;			/* a write failed */
	bool stop;
	bool running;
	bool awake;			/* atomic: the writer is in a pass */
	unsigned int inject_ops;	/* atomic */
	int inject_err;			/* atomic */

	/* The writer's own. */
	pthread_t thread;
	struct io_uring ring;
	unsigned int inflight;
	int32_t fill;			/* segment being filled, or -1 */
	int32_t buf_seg[TIER_BUFS];	/* segment in each buffer, or -1 */
	uint32_t cursor;		/* next (pool, shard) to visit */

	/* Counters, relaxed. */
	uint64_t written_back;
	uint64_t reads, read_bytes;
	uint64_t writes, write_bytes;
	uint64_t errors;
	uint64_t cleaned;
};

/* A context's reads: its own ring and an aligned bounce buffer. */
struct tmem_tier_io {
	struct io_uring ring;
	uint8_t *buf;			/* header and page, and a block more */
	/*
	 * Read-ahead: when a load reads just after the previous one in the
	 * same segment (swap-in of neighbouring slots, written back as one
	 * chunk), TIER_RA bytes are read and kept here for the next loads.
	 * Valid while the segment's generation is the same: a written
	 * segment's bytes never change until it is freed.
	 */
	uint8_t *ra;
	uint64_t ra_start, ra_end;	/* file offsets held in ra */
	uint32_t ra_seg, ra_gen;
	uint64_t last_end;		/* end of the last disk load */
};

static inline uint64_t block_up(const struct tmem_tier *t, uint64_t bytes)
{
	return (bytes + t->block - 1) & ~(uint64_t)(t->block - 1);
}

/*
 * XXH3 of the key and info (seeding) and of the page's bytes: a torn or
 * misdirected write, a flipped bit, another process writing the file, or
 * a slot reused for another key all show up as a mismatch.
 */
static uint64_t seg_check(const struct seg_hdr *hdr, const void *data,
			  unsigned int len)
{
	return XXH3_64bits_withSeed(data, len, XXH3_64bits(hdr, HDR_KEY));
}

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
	       hdr.check == seg_check(&hdr, p + HDR, len);
}

static inline uint64_t seg_off(const struct tmem_tier *t, uint32_t segno)
{
	return (uint64_t)segno * t->seg_size;
}

static void seg_release(struct tmem_tier *t, uint32_t segno)
{
	struct tier_seg *seg = &t->segs[segno];

	pthread_mutex_lock(&t->lock);
	seg->state = SEG_FREE;
	seg->buf = -1;
	seg->used = 0;
	seg->gen++;
	t->free[t->nfree++] = segno;
	TMEM_WR(t->full, false);
	t->stalled = false;
	pthread_mutex_unlock(&t->lock);
}

/* Drop one reference (and @len live bytes); true if it freed the segment. */
static bool seg_put(struct tmem_tier *t, uint32_t segno, unsigned int len)
{
	struct tier_seg *seg = &t->segs[segno];
	uint32_t old;

	if (len) {
		old = atomic_fetch_sub_explicit(&seg->live_bytes, len,
						memory_order_relaxed);
		/* Worth cleaning now: a full tier may have room again. */
		if (old >= CLEAN_MAX(t) && old - len < CLEAN_MAX(t))
			TMEM_WR(t->full, false);
	}
	if (atomic_fetch_sub_explicit(&seg->ref, 1, memory_order_acq_rel) != 1)
		return false;
	seg_release(t, segno);
	return true;
}

/* A reference on a segment that may be about to go: fails if it has. */
static bool seg_tryget(struct tier_seg *seg)
{
	uint32_t r = atomic_load_explicit(&seg->ref, memory_order_relaxed);

	do {
		if (!r)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&seg->ref, &r, r + 1,
							memory_order_acq_rel,
							memory_order_relaxed));
	return true;
}

void tmem_tier_put(struct tmem_client *c, uint64_t h)
{
	struct tmem_tier *t = c->tier;

	seg_put(t, tmem_h_disk_off(h) / t->seg_size, tmem_h_len(h));
}

void tmem_tier_pin(struct tmem_client *c, uint64_t h)
{
	struct tmem_tier *t = c->tier;

	/* The handle's own reference keeps it above 0. */
	atomic_fetch_add_explicit(&t->segs[tmem_h_disk_off(h) / t->seg_size].ref,
				  1, memory_order_relaxed);
}

static int injected(struct tmem_tier *t, unsigned int op)
{
	if (!(__atomic_load_n(&t->inject_ops, __ATOMIC_RELAXED) & op))
		return 0;
	return __atomic_load_n(&t->inject_err, __ATOMIC_RELAXED);
}

/* ---- The writer: segments, writes and their completions. ---- */

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
		pthread_mutex_unlock(&t->lock);
		return;
	}
	TMEM_ADD(t->writes, 1);
	TMEM_ADD(t->write_bytes, len);
	pthread_mutex_lock(&t->lock);
	seg->state = SEG_DISK;
	seg->buf = -1;
	pthread_mutex_unlock(&t->lock);
	t->buf_seg[b] = -1;
	seg_put(t, segno, 0);		/* the writer's reference */
}

static void cqe_done(struct tmem_tier *t, struct io_uring_cqe *cqe)
{
	if (cqe->user_data >= 1 && cqe->user_data <= TIER_BUFS) {
		t->inflight--;
		write_done(t, cqe->user_data - 1, cqe->res);
	}
	io_uring_cqe_seen(&t->ring, cqe);
}

/* Handle completed writes; with @wait, wait for one first. */
static void reap(struct tmem_tier *t, bool wait)
{
	struct io_uring_cqe *cqe;

	if (wait && t->inflight) {
		while (io_uring_wait_cqe(&t->ring, &cqe) == -EINTR)
			;
	}
	while (io_uring_peek_cqe(&t->ring, &cqe) == 0)
		cqe_done(t, cqe);
}

static struct io_uring_sqe *get_sqe(struct tmem_tier *t)
{
	struct io_uring_sqe *sqe;

	while (!(sqe = io_uring_get_sqe(&t->ring))) {
		io_uring_submit(&t->ring);
		reap(t, true);
	}
	return sqe;
}

/* Write the fill segment out; its buffer stays busy until that is done. */
static void seal(struct tmem_tier *t)
{
	struct tier_seg *seg = &t->segs[t->fill];
	uint32_t len = block_up(t, seg->used);
	int b = seg->buf, err = injected(t, TMEM_IO_WRITE);
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
	sqe = get_sqe(t);
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
		reap(t, true);
	}
}

/*
 * Start filling a free segment.  Only the cleaner may take the last
 * TIER_RESERVE ones.  0, or -ENOSPC / -EIO.
 */
static int fill_open(struct tmem_tier *t, bool cleaner)
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
static uint64_t fill_put(struct tmem_tier *t, uint32_t pool, uint64_t object,
			 uint32_t index, unsigned int type, unsigned int len,
			 const void *data, const uint64_t *check)
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

	hdr.check = check ? *check : seg_check(&hdr, data, len);
	memcpy(dst, &hdr, HDR);
	memcpy(dst + HDR, data, len);
	seg->used += HDR + len;
	atomic_fetch_add_explicit(&seg->ref, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&seg->live_bytes, len, memory_order_relaxed);
	return tmem_h_make_disk(type, len, off);
}

static bool fill_fits(struct tmem_tier *t, unsigned int len)
{
	return t->segs[t->fill].used + HDR + len <= t->seg_size;
}

/* ---- The cleaner. ---- */

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
	bool room = true;
	uint64_t h;

	if (!shards)
		return true;
	sh = tmem_shard_of(shards, hdr->object, hdr->index);
	pthread_mutex_lock(&sh->lock);
	ch = tmem_chunk_find(sh, hdr->object, hdr->index >> TMEM_CHUNK_SHIFT);
	if (sh->state == TMEM_POOL_OPEN && ch && !(ch->wide & 1ull << slot) &&
	    ch->h[slot] == old) {
		room = fill_fits(t, tmem_h_len(old));
		if (room) {
			h = fill_put(t, hdr->pool, hdr->object, hdr->index,
				     tmem_h_type(old), tmem_h_len(old), data,
				     &hdr->check);
			tmem_chunk_set(sh, ch, slot, h, false);
			/* Pinned by the cleaner: this put never frees it. */
			seg_put(t, victim, tmem_h_len(old));
		}
	}
	pthread_mutex_unlock(&sh->lock);
	return room;
}

/* Read a whole segment with the writer's ring (writes may complete). */
static int read_segment(struct tmem_tier *t, uint32_t segno, uint32_t len)
{
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int res = injected(t, TMEM_IO_READ);

	if (!res) {
		sqe = get_sqe(t);
		io_uring_prep_read(sqe, t->fd, t->clean_buf, len,
				   seg_off(t, segno));
		sqe->user_data = CLEAN_TAG;
		io_uring_submit(&t->ring);
		for (;;) {
			res = io_uring_wait_cqe(&t->ring, &cqe);
			if (res == -EINTR)
				continue;
			if (res)
				return -EIO;	/* the ring itself failed */
			if (cqe->user_data == CLEAN_TAG)
				break;
			cqe_done(t, cqe);
		}
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
	if (seg->state != SEG_DISK || !seg_tryget(seg)) {
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
	freed = seg_put(t, victim, 0);
	if (freed)
		TMEM_ADD(t->cleaned, 1);
	return freed;
}

/*
 * Open a new fill segment; when only the reserve is left, clean into it
 * the segments with the least live data that fit.  0, -ENOSPC or -EIO.
 */
static int fill_next(struct tmem_tier *t)
{
	int32_t victim;
	int ret = fill_open(t, false);

	if (ret != -ENOSPC)
		return ret;
	victim = pick_victim(t, CLEAN_MAX(t));
	if (victim < 0 || fill_open(t, true))
		return -ENOSPC;
	while (clean_segment(t, victim)) {
		victim = pick_victim(t, t->seg_size - t->segs[t->fill].used);
		if (victim < 0)
			break;
	}
	return 0;
}

/* ---- Write-back. ---- */

/*
 * Move the memory pages of @ch into the fill segment; false when one
 * did not fit.  Shard lock held.
 */
static bool move_chunk(struct tmem_tier *t, uint32_t pool,
		       struct tmem_shard *sh, struct tmem_chunk *ch,
		       uint32_t *movedp)
{
	struct tmem_client *c = t->c;

	for (uint32_t i = 0; i < TMEM_CHUNK_PAGES; i++) {
		uint64_t h = ch->h[i], nh;
		unsigned int type = tmem_h_type(h), len;

		if (!h || (ch->wide & 1ull << i) || type == TMEM_H_SAME ||
		    tmem_h_on_disk(h))
			continue;
		len = tmem_h_len(h);
		if (!fill_fits(t, len))
			return false;
		nh = fill_put(t, pool, ch->object,
			      ch->base << TMEM_CHUNK_SHIFT | i, type, len,
			      tmem_zs_ptr(&c->zs, len, tmem_h_loc(h)), NULL);
		tmem_chunk_set(sh, ch, i, nh, false);
		tmem_zs_free(&c->zs, len, tmem_h_loc(h));
		(*movedp)++;
	}
	return true;
}

/*
 * Write back the coldest chunk of one shard that has pages in memory.
 * Pages moved, or -EAGAIN when the fill segment is full.
 */
static int writeback_shard(struct tmem_tier *t, uint32_t pool,
			   struct tmem_shard *sh)
{
	struct tmem_chunk *ch;
	uint32_t moved = 0;
	bool done = true;

	pthread_mutex_lock(&sh->lock);
	while (sh->state == TMEM_POOL_OPEN && !sh->ephemeral &&
	       (ch = sh->lru_tail)) {
		done = move_chunk(t, pool, sh, ch, &moved);
		if (!done)
			break;
		tmem_lru_remove(sh, ch);	/* nothing left in memory */
		if (moved)
			break;
	}
	pthread_mutex_unlock(&sh->lock);
	TMEM_ADD(t->written_back, moved);
	return moved ? (int)moved : done ? 0 : -EAGAIN;
}

/* Pages in memory with data: the shard's candidates (a hint). */
static uint64_t shard_mem_pages(struct tmem_shard *sh)
{
	return TMEM_RD(sh->pages) - TMEM_RD(sh->same_filled) -
	       TMEM_RD(sh->disk_pages);
}

/* One chunk's worth; pages moved, or -1 when nothing can be. */
static int writeback_some(struct tmem_tier *t)
{
	struct tmem_client *c = t->c;
	uint32_t npos = c->max_pools * TMEM_NR_SHARDS;

	if (t->fill < 0 && fill_next(t))
		return -1;
	for (uint32_t i = 0; i < npos; i++) {
		uint32_t pos = t->cursor, id = pos / TMEM_NR_SHARDS;
		struct tmem_shard *shards = tmem_pool_shards(c, id);
		int n;

		if (!shards ||
		    TMEM_RD(c->pools[id].type) != TMEM_POOL_PERSISTENT ||
		    !shard_mem_pages(&shards[pos % TMEM_NR_SHARDS])) {
			t->cursor = (pos + 1) % npos;
			continue;
		}
		n = writeback_shard(t, id, &shards[pos % TMEM_NR_SHARDS]);
		if (n == -EAGAIN) {
			/* Same shard again, in a new segment. */
			seal(t);
			if (fill_next(t))
				return -1;
			i--;
			continue;
		}
		t->cursor = (pos + 1) % npos;
		if (n > 0)
			return n;
	}
	return -1;
}

static uint64_t used_bytes(struct tmem_tier *t)
{
	return atomic_load_explicit(&t->c->used, memory_order_relaxed);
}

/* One pass: down to the low watermark, TIER_BATCH pages at most. */
static uint64_t writer_pass(struct tmem_tier *t)
{
	uint64_t moved = 0;
	int n;

	do {
		n = writeback_some(t);
		if (n > 0)
			moved += n;
		reap(t, false);
	} while (n > 0 && moved < TIER_BATCH && used_bytes(t) > t->low &&
		 !TMEM_RD(t->failed));
	/* Holes left in slabs go back to the system only by compaction. */
	if (moved && used_bytes(t) > t->low)
		tmem_compact(t->c);
	return moved;
}

static bool writer_due(struct tmem_tier *t)
{
	if (t->stop || TMEM_RD(t->failed) || TMEM_RD(t->full))
		return false;
	if (t->room_wanted)
		return true;
	return !t->stalled &&
	       (used_bytes(t) >= t->high || (t->draining &&
					     used_bytes(t) > t->low));
}

static void *writer_main(void *arg)
{
	struct tmem_tier *t = arg;
	uint64_t moved;

	pthread_mutex_lock(&t->lock);
	for (;;) {
		while (!t->stop && !writer_due(t)) {
			if (t->inflight) {
				/* Idle: finish the writes before sleeping. */
				pthread_mutex_unlock(&t->lock);
				reap(t, true);
				pthread_mutex_lock(&t->lock);
				continue;
			}
			TMEM_WR(t->awake, false);
			pthread_cond_wait(&t->wake, &t->lock);
		}
		if (t->stop)
			break;
		TMEM_WR(t->awake, true);
		t->room_wanted = false;
		pthread_mutex_unlock(&t->lock);
		moved = writer_pass(t);
		pthread_mutex_lock(&t->lock);
		t->gen++;
		t->last_moved = moved;
		t->stalled = !moved;
		t->draining = moved && used_bytes(t) > t->low;
		if (!moved && t->fill < 0 && !TMEM_RD(t->failed))
			TMEM_WR(t->full, t->nfree <= TIER_RESERVE);
		pthread_cond_broadcast(&t->progress);
	}
	TMEM_WR(t->awake, false);
	pthread_mutex_unlock(&t->lock);
	while (t->inflight)
		reap(t, true);
	return NULL;
}

static int writer_start(struct tmem_tier *t)
{
	sigset_t all, old;
	int ret;

	/* No signal of the application's may land on the writer. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&t->thread, NULL, writer_main, t);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	t->running = !ret;
	return -ret;
}

/* ---- What the page operations call. ---- */

void tmem_tier_kick(struct tmem_client *c)
{
	struct tmem_tier *t = c->tier;

	if (!t || TMEM_RD(t->awake) || TMEM_RD(t->failed) ||
	    TMEM_RD(t->full) || used_bytes(t) < t->high)
		return;
	pthread_mutex_lock(&t->lock);
	t->stalled = false;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
}

bool tmem_tier_make_room(struct tmem_ctx *ctx)
{
	struct tmem_tier *t = ctx->client->tier;
	bool moved;
	uint64_t gen;

	if (!t)
		return false;
	pthread_mutex_lock(&t->lock);
	if (TMEM_RD(t->failed) || TMEM_RD(t->full) || t->stop) {
		pthread_mutex_unlock(&t->lock);
		return false;
	}
	gen = t->gen;
	t->room_wanted = true;
	pthread_cond_signal(&t->wake);
	while (t->gen == gen && !TMEM_RD(t->failed) && !t->stop)
		pthread_cond_wait(&t->progress, &t->lock);
	moved = t->gen != gen && t->last_moved;
	pthread_mutex_unlock(&t->lock);
	return moved;
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

	if (injected(t, TMEM_IO_READ))
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
		ret = tmem_decode_data(tmem_h_type(h), src + HDR, len, page);
	seg_put(t, segno, 0);
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

/* ---- Life cycle. ---- */

/* The configuration with its defaults filled in (see tmem.h). */
static void tier_params(const struct tmem_client_config *cfg, uint32_t *segp,
			unsigned int *highp, unsigned int *lowp)
{
	unsigned int high = cfg->writeback_high ? cfg->writeback_high :
						  TMEM_DEFAULT_WRITEBACK_HIGH;

	*segp = cfg->segment_size ? cfg->segment_size :
				    TMEM_DEFAULT_SEGMENT_SIZE;
	*highp = high;
	*lowp = cfg->writeback_low ? cfg->writeback_low :
				     high > 10 ? high - 10 : high / 2;
}

int tmem_tier_config_check(const struct tmem_client_config *cfg)
{
	unsigned int high, low;
	uint32_t seg;

	tier_params(cfg, &seg, &high, &low);
	if (!cfg->backing_file)
		return 0;
	if (seg < TMEM_MIN_SEGMENT_SIZE || seg > TMEM_MAX_SEGMENT_SIZE ||
	    (seg & (seg - 1)))
		return -EINVAL;
	if (high > 100 || low >= high)
		return -EINVAL;
	if (cfg->backing_size &&
	    (cfg->backing_size / seg < TMEM_TIER_MIN_SEGMENTS ||
	     cfg->backing_size >> TMEM_DISK_OFF_BITS))
		return -EINVAL;
	return 0;
}

static uint32_t tier_nsegs(const struct tmem_tier *t, uint64_t bytes)
{
	return bytes / t->seg_size > UINT32_MAX / 2 ? UINT32_MAX / 2 :
						    bytes / t->seg_size;
}

/* Charge the segment buffers and the per-segment arrays: 0 or -ENOSPC. */
static int tier_charge(struct tmem_client *c, struct tmem_tier *t,
		       uint32_t nsegs)
{
	size_t charge = (TIER_BUFS + 1) * (size_t)t->seg_size +
			tmem_heap_cost(nsegs * sizeof(*t->segs)) +
			tmem_heap_cost(nsegs * sizeof(*t->free));

	if (tmem_charge(c, 0, charge))
		return -ENOSPC;
	t->charged = charge;
	return 0;
}

/*
 * open(2) with O_DIRECT if the file system takes it; -errno on failure.
 * O_NOFOLLOW: a symbolic link is refused (-ELOOP), so that whoever may
 * write the directory cannot point the tier at another file.
 */
static int open_direct(struct tmem_tier *t, const char *path, int flags)
{
	int fd;

	flags |= O_RDWR | O_CLOEXEC | O_NOFOLLOW;
	fd = open(path, flags | O_DIRECT, 0600);
	t->direct = fd >= 0;
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags, 0600);
	return fd < 0 ? -errno : fd;
}

/*
 * Guest memory lands in the file: it must be ours alone.  Owned by the
 * process's user and, for a regular file, neither readable nor writable
 * by group or others; a block device may be its group's (disk), never
 * others'.  -EPERM otherwise.
 */
static int check_private(const struct stat *st)
{
	mode_t shared = S_ISBLK(st->st_mode) ? S_IROTH | S_IWOTH :
			S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH;

	if (st->st_uid != geteuid() || (st->st_mode & shared))
		return -EPERM;
	return 0;
}

/*
 * One user per file: an exclusive open file description lock over the
 * whole file, as QEMU locks its images (it conflicts with another open
 * of the file in this process too).  -EBUSY when someone holds one.
 */
static int lock_file(int fd)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
	};

	if (!fcntl(fd, F_OFD_SETLK, &fl))
		return 0;
	return errno == EAGAIN || errno == EACCES ? -EBUSY : -errno;
}

/*
 * The alignment O_DIRECT wants of offsets, lengths and buffers: the
 * device's logical block size, or what statx() says of the file (Linux
 * 6.1+), else the file system's block size (a multiple of it).  Without
 * O_DIRECT any will do; the file system's block is still the unit it
 * reads in.  -EINVAL for one larger than we take.
 */
static int block_size(struct tmem_tier *t, const struct stat *st)
{
	struct statvfs vfs;
	struct statx stx;
	int sector;

	if (S_ISBLK(st->st_mode)) {
		if (ioctl(t->fd, BLKSSZGET, &sector))
			return -errno;
		t->block = sector;
	} else if (t->direct &&
		   !statx(t->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
		   (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		t->block = stx.stx_dio_offset_align > stx.stx_dio_mem_align ?
			   stx.stx_dio_offset_align : stx.stx_dio_mem_align;
	} else {
		if (fstatvfs(t->fd, &vfs))
			return -errno;
		t->block = vfs.f_bsize;
	}
	if (t->block < 512 || t->block > TIER_BLOCK_MAX ||
	    (t->block & (t->block - 1)))
		return -EINVAL;
	return 0;
}

/* Bytes the file or device holds; -EINVAL for anything else. */
static int file_size(struct tmem_tier *t, const struct stat *st,
		     uint64_t *sizep)
{
	if (S_ISBLK(st->st_mode)) {
		t->blkdev = true;
		return ioctl(t->fd, BLKGETSIZE64, sizep) ? -errno : 0;
	}
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	*sizep = st->st_size;
	return 0;
}

/*
 * Open (or create) and size the backing file; sets fd, direct, block,
 * nsegs, and created when the file is ours to remove.
 */
static int tier_open(struct tmem_tier *t, const struct tmem_client_config *cfg)
{
	uint64_t size, want;
	struct stat st;
	int ret;

	t->fd = open_direct(t, cfg->backing_file, 0);
	if (t->fd == -ENOENT && cfg->backing_size) {
		t->fd = open_direct(t, cfg->backing_file, O_CREAT | O_EXCL);
		t->created = t->fd >= 0;
	}
	if (t->fd < 0)
		return t->fd;
	if (fstat(t->fd, &st))
		return -errno;
	ret = file_size(t, &st, &size);
	if (!ret)
		ret = check_private(&st);
	if (!ret)
		ret = lock_file(t->fd);
	if (!ret)
		ret = block_size(t, &st);
	if (ret)
		return ret;
	want = cfg->backing_size ? cfg->backing_size : size;
	if (want > size) {
		if (!S_ISREG(st.st_mode))
			return -ENOSPC;
		/* Reserve the blocks now: a write never meets a full disk. */
		if (fallocate(t->fd, 0, 0, want)) {
			if (errno != EOPNOTSUPP)
				return -errno;
			if (ftruncate(t->fd, want))
				return -errno;
		}
	}
	if (want / t->seg_size < TMEM_TIER_MIN_SEGMENTS ||
	    want >> TMEM_DISK_OFF_BITS)
		return -EINVAL;
	t->nsegs = tier_nsegs(t, want);
	return 0;
}

/*
 * Guest memory must not stay on the host's disk after the client: a file
 * we created is removed (if its name still names it), the range of a
 * block device we used is discarded (best effort: a device without
 * discard keeps the bytes).  A regular file the caller gave is the
 * caller's and stays as it is.
 */
static void tier_scrub(struct tmem_tier *t)
{
	uint64_t range[2] = { 0, (uint64_t)t->nsegs * t->seg_size };
	struct stat a, b;

	if (t->created && t->path && !fstat(t->fd, &a) &&
	    !fstatat(AT_FDCWD, t->path, &b, AT_SYMLINK_NOFOLLOW) &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		unlink(t->path);
	if (t->blkdev && range[1])
		ioctl(t->fd, BLKDISCARD, range);
}

/* Every segment free, the writer idle and its counters at 0. */
static void tier_clear(struct tmem_tier *t)
{
	for (uint32_t i = 0; i < t->nsegs; i++) {
		struct tier_seg *seg = &t->segs[i];

		atomic_store(&seg->ref, 0);
		atomic_store(&seg->live_bytes, 0);
		seg->used = 0;
		seg->state = SEG_FREE;
		seg->buf = -1;
		seg->gen++;		/* contexts' read-ahead is stale */
		t->free[i] = t->nsegs - 1 - i;	/* segment 0 first */
	}
	t->nfree = t->nsegs;
	for (int b = 0; b < TIER_BUFS; b++)
		t->buf_seg[b] = -1;
	t->fill = -1;
	t->cursor = 0;
	t->gen = 0;
	t->last_moved = t->room_wanted = t->draining = false;
	t->stalled = t->full = t->failed = t->stop = false;
	TMEM_WR(t->written_back, 0);
	TMEM_WR(t->reads, 0);
	TMEM_WR(t->read_bytes, 0);
	TMEM_WR(t->writes, 0);
	TMEM_WR(t->write_bytes, 0);
	TMEM_WR(t->errors, 0);
	TMEM_WR(t->cleaned, 0);
}

static void tier_destroy(struct tmem_client *c, struct tmem_tier *t)
{
	if (t->ring.ring_fd >= 0)
		io_uring_queue_exit(&t->ring);
	if (t->fd >= 0) {
		tier_scrub(t);
		close(t->fd);
	}
	tmem_free(t->path);
	for (int b = 0; b < TIER_BUFS; b++)
		tmem_free(t->buf[b]);
	tmem_free(t->clean_buf);
	tmem_free(t->segs);
	tmem_free(t->free);
	if (t->charged)
		tmem_uncharge(c, 0, t->charged);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->wake);
	pthread_cond_destroy(&t->progress);
	tmem_free(t);
}

static uint64_t percent_of(uint64_t v, unsigned int pct)
{
	return v / 100 * pct + v % 100 * pct / 100;
}

int tmem_tier_new(struct tmem_client *c)
{
	const struct tmem_client_config *cfg = &c->cfg;
	unsigned int high, low;
	struct tmem_tier *t;
	int ret;

	if (!cfg->backing_file)
		return 0;
	t = tmem_zalloc_aligned(sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->c = c;
	t->fd = -1;
	t->ring.ring_fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->wake, NULL);
	pthread_cond_init(&t->progress, NULL);
	t->path = tmem_malloc(strlen(cfg->backing_file) + 1);
	if (!t->path) {
		ret = -ENOMEM;
		goto fail;
	}
	strcpy(t->path, cfg->backing_file);
	tier_params(cfg, &t->seg_size, &high, &low);
	t->high = percent_of(cfg->budget_bytes, high);
	t->low = percent_of(cfg->budget_bytes, low);
	/*
	 * With a size, the budget is checked before the file is touched: a
	 * refusal for the budget then creates no file, and leaves an
	 * existing one alone.
	 */
	if (cfg->backing_size) {
		ret = tier_charge(c, t, tier_nsegs(t, cfg->backing_size));
		if (ret)
			goto fail;
	}
	ret = tier_open(t, cfg);
	if (ret)
		goto fail;
	if (!t->charged) {
		ret = tier_charge(c, t, t->nsegs);
		if (ret)
			goto fail;
	}
	ret = -ENOMEM;
	t->segs = tmem_malloc(t->nsegs * sizeof(*t->segs));
	t->free = tmem_malloc(t->nsegs * sizeof(*t->free));
	t->clean_buf = tmem_zalloc_align(t->seg_size, t->block);
	for (int b = 0; b < TIER_BUFS; b++)
		t->buf[b] = tmem_zalloc_align(t->seg_size, t->block);
	if (!t->segs || !t->free || !t->clean_buf)
		goto fail;
	for (int b = 0; b < TIER_BUFS; b++)
		if (!t->buf[b])
			goto fail;
	ret = io_uring_queue_init(2 * TIER_BUFS, &t->ring, 0);
	if (ret) {
		t->ring.ring_fd = -1;
		goto fail;
	}
	tier_clear(t);
	ret = writer_start(t);
	if (ret)
		goto fail;
	c->tier = t;
	return 0;
fail:
	tier_destroy(c, t);
	return ret;
}

void tmem_tier_stop(struct tmem_client *c)
{
	struct tmem_tier *t = c->tier;

	if (!t || !t->running)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->wake);
	pthread_cond_broadcast(&t->progress);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->running = false;
}

int tmem_tier_restart(struct tmem_client *c)
{
	struct tmem_tier *t = c->tier;

	if (!t)
		return 0;
	tier_clear(t);
	return writer_start(t);
}

void tmem_tier_free(struct tmem_client *c)
{
	if (!c->tier)
		return;
	tmem_tier_stop(c);
	tier_destroy(c, c->tier);
	c->tier = NULL;
}

void tmem_tier_release(struct tmem_client *c)
{
	if (!c->tier)
		return;
	tmem_tier_stop(c);
	tier_scrub(c->tier);
}

void tmem_tier_stats(struct tmem_client *c, struct tmem_stats *st)
{
	struct tmem_tier *t = c->tier;

	if (!t)
		return;
	st->disk_size = (uint64_t)t->nsegs * t->seg_size;
	st->disk_segment_size = t->seg_size;
	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < t->nsegs; i++) {
		const struct tier_seg *seg = &t->segs[i];
		/* Not counting the writer's own reference. */
		uint32_t held = atomic_load(&seg->ref) -
				(seg->state != SEG_DISK && seg->state != SEG_FREE);

		st->disk_segments += seg->state != SEG_FREE && held;
	}
	st->disk_failed = TMEM_RD(t->failed);
	pthread_mutex_unlock(&t->lock);
	st->written_back = TMEM_RD(t->written_back);
	st->disk_reads = TMEM_RD(t->reads);
	st->disk_read_bytes = TMEM_RD(t->read_bytes);
	st->disk_writes = TMEM_RD(t->writes);
	st->disk_write_bytes = TMEM_RD(t->write_bytes);
	st->disk_errors = TMEM_RD(t->errors);
	st->cleaned_segments = TMEM_RD(t->cleaned);
}

uint64_t tmem_tier_written_back(struct tmem_client *c)
{
	return c->tier ? TMEM_RD(c->tier->written_back) : 0;
}

int tmem_client_inject_io_error(struct tmem_client *c, unsigned int ops,
				int err)
{
	struct tmem_tier *t = c->tier;

	if (!t)
		return -ENODEV;
	if ((ops & ~(TMEM_IO_READ | TMEM_IO_WRITE)) || (ops && err >= 0))
		return -EINVAL;
	__atomic_store_n(&t->inject_err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&t->inject_ops, ops, __ATOMIC_RELAXED);
	return 0;
}

#else /* !TMEM_HAVE_LIBURING */

/* Built without liburing: no disk tier, and these are never reached. */
int tmem_tier_config_check(const struct tmem_client_config *cfg)
{
	return cfg->backing_file ? -ENOTSUP : 0;
}

int tmem_tier_new(struct tmem_client *c)
{
	return c->cfg.backing_file ? -ENOTSUP : 0;
}

void tmem_tier_stop(struct tmem_client *c) { (void)c; }
int tmem_tier_restart(struct tmem_client *c) { (void)c; return 0; }
void tmem_tier_free(struct tmem_client *c) { (void)c; }
void tmem_tier_release(struct tmem_client *c) { (void)c; }
void tmem_tier_put(struct tmem_client *c, uint64_t h) { (void)c; (void)h; }
void tmem_tier_pin(struct tmem_client *c, uint64_t h) { (void)c; (void)h; }
int tmem_tier_read(struct tmem_ctx *ctx, uint32_t pool, uint64_t object,
		   uint32_t index, uint64_t h, void *page)
{
	(void)ctx; (void)pool; (void)object; (void)index; (void)h; (void)page;
	return -EIO;
}
bool tmem_tier_make_room(struct tmem_ctx *ctx) { (void)ctx; return false; }
void tmem_tier_kick(struct tmem_client *c) { (void)c; }
void tmem_tier_ctx_free(struct tmem_ctx *ctx) { (void)ctx; }
void tmem_tier_stats(struct tmem_client *c, struct tmem_stats *st)
{
	(void)c; (void)st;
}
uint64_t tmem_tier_written_back(struct tmem_client *c) { (void)c; return 0; }

int tmem_client_inject_io_error(struct tmem_client *c, unsigned int ops,
				int err)
{
	(void)c; (void)ops; (void)err;
	return -ENODEV;
}

#endif /* TMEM_HAVE_LIBURING */
