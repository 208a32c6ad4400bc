/* SPDX-License-Identifier: MIT */
/*
 * Write-back: a writer thread, woken when the client's host bytes reach
 * the high watermark (or by a store that found the budget full), takes
 * the coldest chunk of each persistent shard in turn and, through the
 * index's iterator, moves its compressed pages into the fill segment,
 * down to the low watermark.  Stores wait here for a pass when they
 * must.
 */
#include <errno.h>
#include <signal.h>
#include <time.h>

#include "compact_i.h"
#include "tier_impl_i.h"

/* Where move_page() appends a chunk's pages. */
struct wb_walk {
	struct tmem_tier *t;
	uint32_t pool;
	uint32_t moved;
};

/*
 * The index's iterator hands over each handle of the chunk: a page in
 * memory moves into the fill segment; false when it did not fit.  Shard
 * lock held.
 */
static bool move_page(void *arg, uint64_t object, uint32_t index,
		      uint64_t *hp)
{
	struct wb_walk *wb = arg;
	struct tmem_tier *t = wb->t;
	struct tmem_zs *zs = &t->c->zs;
	uint64_t h = *hp;
	unsigned int len;

	if (!tmem_h_in_memory(h))
		return true;
	len = tmem_h_len(h);
	if (!tmem_seg_fill_fits(t, len))
		return false;
	*hp = tmem_seg_fill_put(t, wb->pool, object, index, tmem_h_type(h),
				len, tmem_zs_ptr(zs, len, tmem_h_loc(h)), NULL);
	tmem_zs_free(zs, len, tmem_h_loc(h));
	wb->moved++;
	return true;
}

/*
 * Write back the coldest chunk of one shard that has pages in memory.
 * Pages moved, or -EAGAIN when the fill segment is full.
 */
static int writeback_shard(struct tmem_tier *t, uint32_t pool,
			   struct tmem_shard *sh)
{
	struct wb_walk wb = { .t = t, .pool = pool };
	struct tmem_chunk *ch;
	bool done = true;

	pthread_mutex_lock(&sh->lock);
	while (sh->state == TMEM_POOL_OPEN && !sh->ephemeral &&
	       (ch = sh->lru_tail)) {
		done = tmem_chunk_for_each(sh, ch, move_page, &wb);
		if (!done)
			break;
		tmem_lru_remove(sh, ch);	/* nothing left in memory */
		if (wb.moved)
			break;
	}
	pthread_mutex_unlock(&sh->lock);
	TMEM_ADD(t->c->written_back, wb.moved);
	return wb.moved ? (int)wb.moved : done ? 0 : -EAGAIN;
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

	if (t->fill < 0 && tmem_tier_fill_next(t))
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
			tmem_seg_seal(t);
			if (tmem_tier_fill_next(t))
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
	return tmem_budget_used(&t->c->budget);
}

/* The watermarks follow the budget (tmem_tier_set_budget()). */
static bool over_low(struct tmem_tier *t)
{
	return used_bytes(t) > TMEM_RD(t->low);
}

static bool over_high(struct tmem_tier *t)
{
	return used_bytes(t) >= TMEM_RD(t->high);
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
		tmem_seg_reap(t, false);
	} while (n > 0 && moved < TIER_BATCH && over_low(t) &&
		 !TMEM_RD(t->failed));
	/* Holes left in slabs go back to the system only by compaction. */
	if (moved && over_low(t))
		tmem_compact(t->c);
	return moved;
}

static bool writer_due(struct tmem_tier *t)
{
	if (t->stop || TMEM_RD(t->failed) || TMEM_RD(t->full))
		return false;
	if (t->room_wanted)
		return true;
	return !t->stalled && (over_high(t) || (t->draining && over_low(t)));
}

/*
 * Failed on RADOS (t->lock held): after TIER_RETRY_S seconds unless
 * woken, write the stranded segments again.
 */
static void retry_wait(struct tmem_tier *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += TIER_RETRY_S;
	if (pthread_cond_timedwait(&t->wake, &t->lock, &ts) != ETIMEDOUT ||
	    t->stop)
		return;
	pthread_mutex_unlock(&t->lock);
	tmem_seg_retry(t);
	pthread_mutex_lock(&t->lock);
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
				tmem_seg_reap(t, true);
				pthread_mutex_lock(&t->lock);
				continue;
			}
			TMEM_WR(t->awake, false);
			if (t->rados && TMEM_RD(t->failed)) {
				retry_wait(t);
				continue;
			}
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
		t->draining = moved && over_low(t);
		if (!moved && t->fill < 0 && !TMEM_RD(t->failed))
			TMEM_WR(t->full, t->nfree <= TIER_RESERVE);
		pthread_cond_broadcast(&t->progress);
		tmem_tier_wake_locked(t, TIER_WAKE_PASS);
	}
	TMEM_WR(t->awake, false);
	pthread_mutex_unlock(&t->lock);
	while (t->inflight)
		tmem_seg_reap(t, true);
	return NULL;
}

int tmem_tier_writer_start(struct tmem_tier *t)
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
	    TMEM_RD(t->full) || !over_high(t))
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
	if (ctx->nowait) {
		if (ctx->stuck && t->gen == ctx->stuck_gen) {
			pthread_mutex_unlock(&t->lock);
			return false;
		}
		ctx->stuck = false;
		/* Asynchronous: the writer's pass wakes the context. */
		if (!ctx->room_wait) {
			ctx->room_gen = t->gen;
			ctx->room_wait = true;
			t->room_wanted = true;
			tmem_tier_wait_locked(t, ctx, TIER_WAKE_PASS);
			pthread_cond_signal(&t->wake);
		}
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

bool tmem_tier_room_ready(struct tmem_ctx *ctx)
{
	struct tmem_tier *t = ctx->client->tier;
	bool ready;

	pthread_mutex_lock(&t->lock);
	ready = t->gen != ctx->room_gen || TMEM_RD(t->failed) ||
		TMEM_RD(t->full) || t->stop;
	pthread_mutex_unlock(&t->lock);
	return ready;
}

bool tmem_tier_writer_in_io(struct tmem_client *c)
{
	return c->tier && TMEM_RD(c->tier->io_wait);
}

/* ---- Elastic memory (elastic.c). ---- */

void tmem_tier_set_budget(struct tmem_client *c)
{
	struct tmem_tier *t = c->tier;
	uint64_t limit;

	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	/* The limit in force now: a later change redoes this after it. */
	limit = tmem_budget_limit(&c->budget);
	TMEM_WR(t->high, tmem_tier_percent_of(limit, t->high_pct));
	TMEM_WR(t->low, tmem_tier_percent_of(limit, t->low_pct));
	t->stalled = false;
	pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
}

/* Persistent pages in memory with data: what write-back can take. */
static bool mem_pages_left(struct tmem_client *c)
{
	for (uint32_t id = 0; id < c->max_pools; id++) {
		struct tmem_shard *shards = tmem_pool_shards(c, id);

		if (!shards ||
		    TMEM_RD(c->pools[id].type) != TMEM_POOL_PERSISTENT)
			continue;
		for (unsigned int s = 0; s < TMEM_NR_SHARDS; s++)
			if (shard_mem_pages(&shards[s]))
				return true;
	}
	return false;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * A writer waiting for its own I/O is making progress, unless it has
 * waited, without finishing a pass, across reclaim calls for longer
 * than TIER_IO_STUCK_NS: a hung disk must not keep reclaim BUSY forever
 * (the device would never turn to the guest, nor report blocked).
 * Only reclaim reads the clock: no page operation does.
 */
static bool writer_hung_locked(struct tmem_tier *t)
{
	uint64_t now;

	if (!TMEM_RD(t->io_wait) || t->gen != t->reclaim_gen) {
		t->reclaim_gen = t->gen;
		t->reclaim_io_ns = 0;
		return false;
	}
	now = mono_ns();
	if (!t->reclaim_io_ns) {
		t->reclaim_io_ns = now;
		return false;
	}
	return now - t->reclaim_io_ns > TIER_IO_STUCK_NS;
}

bool tmem_tier_reclaim(struct tmem_client *c)
{
	struct tmem_tier *t = c->tier;
	bool can;

	if (!t)
		return false;
	pthread_mutex_lock(&t->lock);
	/*
	 * A stalled writer found nothing to write in its last pass: waking
	 * it again would only repeat that.  A freed segment or a store
	 * clears it (seg_release(), tmem_tier_kick()).  A hung one is no
	 * progress either.
	 */
	can = !t->stop && !TMEM_RD(t->failed) && !TMEM_RD(t->full) &&
	      !t->stalled && !writer_hung_locked(t);
	if (can)
		pthread_cond_signal(&t->wake);
	pthread_mutex_unlock(&t->lock);
	return can && mem_pages_left(c);
}
