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
 * any more, and stores over budget are refused as without a tier.  With
 * RADOS, where a failure is the cluster's and passes, the writer writes
 * stranded segments again every TIER_RETRY_S seconds, and the tier works
 * again once they are all written.  A
 * failed read fails that load with -EIO; the page stays stored.  The
 * file's content means nothing across a restart of the client.
 *
 * Locks: shard -> tier->lock.  The writer never holds tier->lock while it
 * takes a shard lock; what only the writer touches (its ring, the fill
 * segment's used bytes, buf_seg[]) needs no lock.
 *
 * The files of the tier, bottom up (each calls only those before it):
 *   tier_space.c   segment references, checksums, fault injection
 *   tier_seg.c     the writer's ring: filling, sealing and writing
 *                  segments, reaping their completions
 *   tier_clean.c   the cleaner: a victim's live pages into the reserve
 *   tier_writer.c  write-back policy and the writer thread, and what a
 *                  store calls (kick, make_room)
 *   tier_read.c    the read path of a load, and its read-ahead
 *   tier_config.c  the configuration's defaults and checks
 *   tier_file.c    the backing file (open, checks, scrub), life cycle,
 *                  stats
 * With rados_pool, segments are objects (rados.c, below them all) and
 * the same files issue rados_aio_* operations where they would issue
 * io_uring reads and writes of the file.
 * This header is theirs alone; the layers above see tier_i.h.
 */
#ifndef TMEM_TIER_IMPL_I_H
#define TMEM_TIER_IMPL_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <liburing.h>
#include <lz4.h>

#include "rados_i.h"
#include "tier_i.h"
#include "tmem_i.h"

#define TIER_BUFS	4		/* one filling, the rest in flight */
#define TIER_RESERVE	1		/* free segments kept for the cleaner */
#define TIER_BLOCK_MAX	(64u << 10)	/* O_DIRECT alignment we take */
#define TIER_BATCH	512		/* pages per pass before waking stores */
#define TIER_RA		(64u << 10)	/* read-ahead of a sequential load */
#define TIER_IO_STUCK_NS 2000000000ull	/* in its I/O that long: STUCK */
#define TIER_RETRY_S	5		/* RADOS: stranded writes retried */
#define CLEAN_TAG	(TIER_BUFS + 1)
/* user_data on a context's ring: its load's read, its room timer. */
#define IO_READ_TAG	1
#define IO_TIMER_TAG	2		/* | sequence << 8 */
#define IO_TIMER_RM_TAG	3
#define IO_NOP_TAG	4		/* a read that was never submitted */
/* Live bytes under which a segment is worth cleaning: it frees 1/4 at least. */
#define CLEAN_MAX(t)	((t)->seg_size / 4 * 3)

/* Before each page in a segment; the page's handle points past it. */
struct seg_hdr {
	uint64_t object;
	uint32_t index;
	uint16_t pool;
	uint16_t info;			/* handle type | (length - 1) << 2 */
	uint64_t check;			/* tmem_seg_check() */
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
	/*
	 * Where segments go: the file @fd, or with @rados (rados_pool) the
	 * objects of a RADOS namespace, segment N at byte 0 of "seg.N":
	 * file offsets (seg_off()) then only name a segment and a place in
	 * it.  The writer's ops: one per buffer, and the cleaner's read.
	 */
	struct tmem_rados *rados;
	struct tmem_rados_op wop[TIER_BUFS];
	struct tmem_rados_op clean_op;
	int fd;
	bool direct;
	bool created;			/* tier_open() created the file */
	bool blkdev;
	char *path;			/* to remove the file we created */
	uint32_t block;			/* O_DIRECT alignment of offsets */
	uint32_t seg_size;
	uint32_t nsegs;
	/*
	 * Watermarks in bytes, writeback_high and writeback_low percent
	 * of the budget: changed with it under @lock, read relaxed.
	 */
	uint64_t high, low;
	uint8_t high_pct, low_pct;
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
	unsigned int hang_ops;		/* atomic; changes under lock */
	pthread_cond_t unhang;		/* hung I/O waits for the end */
	bool io_wait;			/* atomic: the writer waits for I/O */
	/* tmem_tier_reclaim()'s, under lock: a writer hung in its I/O. */
	uint64_t reclaim_gen;		/* gen at the last call */
	uint64_t reclaim_io_ns;		/* since when in I/O, same gen; or 0 */
	/* Contexts whose pending request waits for the tier (wait_next). */
	struct tmem_ctx *waiters;

	/* The writer's own. */
	pthread_t thread;
	struct io_uring ring;
	unsigned int inflight;
	int32_t fill;			/* segment being filled, or -1 */
	int32_t buf_seg[TIER_BUFS];	/* segment in each buffer, or -1 */
	uint32_t cursor;		/* next (pool, shard) to visit */

	/* Counters, relaxed (written_back is the client's: compaction's). */
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

	/* The context's asynchronous load, if any (one at a time). */
	struct tmem_rados_op rop;	/* its read, with the RADOS tier */
	uint8_t rstate;			/* enum io_read_state */
	int rres;			/* the read's cqe->res */
	bool into_ra;
	uint32_t pool, index, segno, gen;
	uint64_t object, h, off, start, end;
	uint64_t need;			/* end of the page's blocks */
	uint8_t *dst;
	void *page;

	/* The room timer of an asynchronous store (IORING_OP_TIMEOUT). */
	struct __kernel_timespec ts;
	uint64_t timer_tag;		/* armed, or 0 */
	uint32_t timer_seq;
};

enum io_read_state {
	RD_IDLE,
	RD_HELD,			/* tmem_client_inject_io_hang() */
	RD_ISSUED,
	RD_DONE,
};

/* @pct percent of @v, without overflow: the watermarks. */
static inline uint64_t tmem_tier_percent_of(uint64_t v, unsigned int pct)
{
	return v / 100 * pct + v % 100 * pct / 100;
}

static inline uint64_t block_up(const struct tmem_tier *t, uint64_t bytes)
{
	return (bytes + t->block - 1) & ~(uint64_t)(t->block - 1);
}

static inline uint64_t seg_off(const struct tmem_tier *t, uint32_t segno)
{
	return (uint64_t)segno * t->seg_size;
}

/* tier_config.c: segment size and watermarks, defaults filled in. */
void tmem_tier_params(const struct tmem_client_config *cfg, uint32_t *segp,
		      unsigned int *highp, unsigned int *lowp);

/* tier_space.c: segment references and checksums. */
uint64_t tmem_seg_check(const struct seg_hdr *hdr, const void *data,
			unsigned int len);
/* Drop one reference (and @len live bytes); true if it freed the segment. */
bool tmem_seg_put(struct tmem_tier *t, uint32_t segno, unsigned int len);
/* A reference on a segment that may be about to go: fails if it has. */
bool tmem_seg_tryget(struct tier_seg *seg);
/* The error injected for @op (TMEM_IO_READ/WRITE), or 0. */
int tmem_tier_injected(struct tmem_tier *t, unsigned int op);
/* tmem_client_inject_io_hang() holds @op's I/O. */
bool tmem_tier_hung(struct tmem_tier *t, unsigned int op);
/* I/O of a hung @op waits here until it is let go or the tier stops. */
void tmem_tier_hang_wait(struct tmem_tier *t, unsigned int op);
/* What a waiting context waits for. */
#define TIER_WAKE_PASS	1u		/* a writer's pass: room */
#define TIER_WAKE_HANG	2u		/* the end of a hang: its read */
#define TIER_WAKE_ALL	(TIER_WAKE_PASS | TIER_WAKE_HANG)
/* Under t->lock: wake @ctx at the next tmem_tier_wake_locked(@why). */
void tmem_tier_wait_locked(struct tmem_tier *t, struct tmem_ctx *ctx,
			   unsigned int why);
/*
 * Under t->lock: make the completion fd of every context waiting for
 * one of @why readable (TIER_WAKE_ALL: a failure, a stop).
 */
void tmem_tier_wake_locked(struct tmem_tier *t, unsigned int why);

/* tier_seg.c: the writer's ring and the segment being filled. */
void tmem_seg_cqe_done(struct tmem_tier *t, struct io_uring_cqe *cqe);
/* Handle completed writes; with @wait, wait for one first. */
void tmem_seg_reap(struct tmem_tier *t, bool wait);
struct io_uring_sqe *tmem_seg_get_sqe(struct tmem_tier *t);
/* Write the fill segment out; its buffer stays busy until that is done. */
void tmem_seg_seal(struct tmem_tier *t);
/*
 * RADOS: write the stranded segments again (the cluster may be back);
 * the number of writes started.  The last one to succeed clears failed.
 */
int tmem_seg_retry(struct tmem_tier *t);
/* Start filling a free segment; 0, or -ENOSPC / -EIO. */
int tmem_seg_fill_open(struct tmem_tier *t, bool cleaner);
uint64_t tmem_seg_fill_put(struct tmem_tier *t, uint32_t pool,
			   uint64_t object, uint32_t index, unsigned int type,
			   unsigned int len, const void *data,
			   const uint64_t *check);
bool tmem_seg_fill_fits(struct tmem_tier *t, unsigned int len);

/* tier_clean.c: a new fill segment, cleaning for it; 0, -ENOSPC, -EIO. */
int tmem_tier_fill_next(struct tmem_tier *t);

/* tier_writer.c: start the writer thread; 0 or -errno. */
int tmem_tier_writer_start(struct tmem_tier *t);

#endif /* TMEM_TIER_IMPL_I_H */
