/* SPDX-License-Identifier: MIT */
/*
 * Compaction.  Invalidations leave free slots scattered over slabs; new
 * stores of the same size class refill them, but until then the slabs
 * hold memory (and budget) that stores of other classes cannot use.
 * When a store finds the budget short and at least an eighth of the data
 * memory is such holes, the objects of slabs under three quarters full
 * are moved into fuller slabs of their class, so that whole slabs go
 * back to the system before any ephemeral page is evicted or a store
 * refused.
 *
 * It walks every handle of the client (O(pages), one shard locked at a
 * time), so it runs again only after a sixteenth of the pages have been
 * invalidated or evicted since the last run: holes only come from there,
 * and a guest that alternates invalidations and stores at the budget's
 * edge cannot make every store rescan (amortised: at most 16 handles
 * looked at per page freed).
 *
 * Under the budget, holes would stay until stores of their class come:
 * a swap device's steady state (random swap-ins freeing slots, swap-outs
 * filling the fullest slabs) keeps about 8% of the data memory as free
 * slots of slabs that drain slowly.  So compaction also runs in small
 * steps, a shard at a time, paid for by the pages freed: a context that
 * freed COMPACT_STEP_PAGES pages credits them, and a step compacts the
 * next shards while the credit covers a quarter of their pages each
 * (COMPACT_STEP_HANDLES handles looked at per freed page, whatever the
 * shards hold) and the free slots exceed COMPACT_SLACK_DIV-th of the
 * data.  A step never waits for another.  tmem-bench's churn run chose
 * the constants: with 16 handles per freed page instead of 4 the steady
 * state was as dense (1.054 against 1.059 data bytes per compressed
 * byte) but stores during churn cost 10-20% more CPU than fresh ones;
 * with COMPACT_SLACK_DIV 16 it was 1.085.
 */
#include "compact_i.h"
#include "tmem_i.h"

#define COMPACT_MIN_HOLES	(64u << 10)
#define COMPACT_STEP_PAGES	64
#define COMPACT_SLACK_DIV	32
/* Handles a step may look at per page freed (a quarter of a pass's 16). */
#define COMPACT_STEP_HANDLES	4

/* Move an object of a sparse slab into a fuller one of its class. */
static bool compact_one(void *arg, uint64_t object, uint32_t index,
			uint64_t *hp)
{
	struct tmem_zs *zs = arg;
	uint64_t h = *hp, loc;

	(void)object;
	(void)index;
	if (tmem_h_in_memory(h) &&
	    tmem_zs_move(zs, tmem_h_len(h), tmem_h_loc(h), &loc))
		*hp = tmem_h_make(tmem_h_type(h), tmem_h_len(h), loc);
	return true;
}

/* Loads read objects under the shard lock, so moving them here is safe. */
static void compact_shard(struct tmem_client *c, struct tmem_shard *sh)
{
	pthread_mutex_lock(&sh->lock);
	tmem_shard_for_each(sh, compact_one, &c->zs);
	pthread_mutex_unlock(&sh->lock);
}

/*
 * Bytes and pages stored in memory over all pools (relaxed, like the
 * stats): the disk tier's are not in the allocator.
 */
static void stored_sum(struct tmem_client *c, uint64_t *bytesp,
		       uint64_t *pagesp)
{
	*bytesp = *pagesp = 0;
	for (uint32_t id = 0; id < c->max_pools; id++) {
		struct tmem_shard *shards = tmem_pool_shards(c, id);

		for (unsigned int s = 0; shards && s < TMEM_NR_SHARDS; s++) {
			*bytesp += TMEM_RD(shards[s].compressed_bytes) -
				   TMEM_RD(shards[s].disk_bytes);
			*pagesp += TMEM_RD(shards[s].pages) -
				   TMEM_RD(shards[s].disk_pages);
		}
	}
}

/*
 * Pages invalidated, evicted or written back to the disk tier since
 * creation or reset: each left a hole in a slab.
 */
static uint64_t freed_pages(struct tmem_client *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->ctx_lock);
	n = TMEM_RD(c->retired.invalidates) + TMEM_RD(c->retired.evictions) +
	    TMEM_RD(c->written_back) + TMEM_RD(c->reclaim_evictions);
	for (struct tmem_ctx *ctx = c->ctxs; ctx; ctx = ctx->next)
		n += TMEM_RD(ctx->ops.invalidates) +
		     TMEM_RD(ctx->ops.evictions);
	pthread_mutex_unlock(&c->ctx_lock);
	return n;
}

/* Worth a scan: enough holes, and enough freed since the last scan. */
static bool compact_due(struct tmem_client *c, uint64_t *freedp)
{
	uint64_t data = atomic_load_explicit(&c->budget.data_bytes,
					     memory_order_relaxed);
	uint64_t stored, pages, holes;

	stored_sum(c, &stored, &pages);
	holes = data > stored ? data - stored : 0;
	if (holes < COMPACT_MIN_HOLES || holes < data / 8)
		return false;
	*freedp = freed_pages(c);
	return *freedp - c->compacted_freed >= pages / 16 + 1;
}

/* Returns true if at least one slab went back (the store should retry). */
bool tmem_compact(struct tmem_client *c)
{
	uint64_t released, freed;

	pthread_mutex_lock(&c->compact_lock);
	if (!compact_due(c, &freed)) {
		pthread_mutex_unlock(&c->compact_lock);
		return false;
	}
	c->compacted_freed = freed;
	released = atomic_load(&c->zs.released);
	for (uint32_t id = 0; id < c->max_pools; id++) {
		struct tmem_shard *shards = tmem_pool_shards(c, id);

		for (unsigned int s = 0; shards && s < TMEM_NR_SHARDS; s++)
			compact_shard(c, &shards[s]);
	}
	pthread_mutex_unlock(&c->compact_lock);
	return atomic_load(&c->zs.released) != released;
}

/* The shard the cursor names, or NULL if its pool id has none. */
static struct tmem_shard *cursor_shard(struct tmem_client *c)
{
	struct tmem_shard *shards;

	if (c->compact_cursor >= c->max_pools * TMEM_NR_SHARDS)
		c->compact_cursor = 0;
	shards = tmem_pool_shards(c, c->compact_cursor / TMEM_NR_SHARDS);
	return shards ? &shards[c->compact_cursor % TMEM_NR_SHARDS] : NULL;
}

/* The next shard of an open pool id, or NULL if there is none. */
static struct tmem_shard *next_shard(struct tmem_client *c)
{
	for (uint32_t n = 0; n <= c->max_pools; n++) {
		struct tmem_shard *sh = cursor_shard(c);

		if (sh)
			return sh;
		c->compact_cursor = (c->compact_cursor / TMEM_NR_SHARDS + 1) *
				    TMEM_NR_SHARDS;
	}
	return NULL;
}

/*
 * One step: the next shards, as many as the credit pays for (a shard
 * costs its pages / COMPACT_STEP_HANDLES); compact_lock held.
 */
static void compact_step(struct tmem_client *c)
{
	uint64_t data = atomic_load_explicit(&c->budget.data_bytes,
					     memory_order_relaxed);
	uint64_t slack = tmem_zs_slack(&c->zs);

	if (slack < COMPACT_MIN_HOLES || slack < data / COMPACT_SLACK_DIV) {
		c->compact_credit = 0;	/* no debt for later */
		return;
	}
	for (uint32_t n = 0; n < c->max_pools * TMEM_NR_SHARDS; n++) {
		struct tmem_shard *sh = next_shard(c);
		uint64_t cost;

		if (!sh)
			return;
		cost = TMEM_RD(sh->pages) / COMPACT_STEP_HANDLES + 1;
		if (c->compact_credit < cost)
			return;
		c->compact_credit -= cost;
		c->compact_cursor++;
		compact_shard(c, sh);
	}
}

void tmem_compact_freed(struct tmem_ctx *ctx)
{
	struct tmem_client *c = ctx->client;

	if (++ctx->freed < COMPACT_STEP_PAGES)
		return;
	ctx->freed = 0;
	if (pthread_mutex_trylock(&c->compact_lock))
		return;		/* another thread compacts */
	c->compact_credit += COMPACT_STEP_PAGES;
	compact_step(c);
	pthread_mutex_unlock(&c->compact_lock);
}
