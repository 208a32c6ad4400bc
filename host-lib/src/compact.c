/* SPDX-License-Identifier: MIT */
/*
 * Compaction.  Invalidations leave free slots scattered over slabs; new
 * stores of the same size class refill them, but until then the slabs
 * hold memory (and budget) that stores of other classes cannot use.
 * When a store finds the budget short and at least an eighth of the data
 * memory is such holes, the objects of half-empty slabs are moved into
 * fuller slabs of their class, so that whole slabs go back to the system
 * before any ephemeral page is evicted or a store refused.
 *
 * It walks every handle of the client (O(pages), one shard locked at a
 * time), so it runs at most once for a given amount of stored data: if
 * nothing was invalidated since the last try, there is nothing new to
 * gain.
 */
#include "tmem_i.h"

#define COMPACT_MIN_HOLES	(64u << 10)

/* Move the sparse-slab objects of one chunk; shard lock held. */
static void compact_chunk(struct tmem_client *c, struct tmem_chunk *ch)
{
	for (uint32_t i = 0; i < TMEM_CHUNK_PAGES; i++) {
		uint64_t h = ch->h[i], loc;
		unsigned int type = tmem_h_type(h);

		if (!h || (ch->wide & 1ull << i) || type == TMEM_H_SAME)
			continue;
		if (tmem_zs_move(&c->zs, tmem_h_len(h), tmem_h_loc(h), &loc))
			ch->h[i] = tmem_h_make(type, tmem_h_len(h), loc);
	}
}

/* Loads read objects under the shard lock, so moving them here is safe. */
static void compact_shard(struct tmem_client *c, struct tmem_shard *sh)
{
	pthread_mutex_lock(&sh->lock);
	for (uint32_t b = 0; b <= sh->mask; b++)
		for (struct tmem_chunk *ch = sh->buckets[b]; ch; ch = ch->hnext)
			compact_chunk(c, ch);
	pthread_mutex_unlock(&sh->lock);
}

/* Sum of the stored sizes over all pools (relaxed, like the stats). */
static uint64_t stored_bytes(struct tmem_client *c)
{
	uint64_t sum = 0;

	for (uint32_t id = 0; id < c->max_pools; id++) {
		struct tmem_shard *shards = tmem_pool_shards(c, id);

		for (unsigned int s = 0; shards && s < TMEM_NR_SHARDS; s++)
			sum += TMEM_RD(shards[s].compressed_bytes);
	}
	return sum;
}

/*
 * Called by a store that is over budget, holding no lock.  Returns true
 * if at least one slab went back (the store should retry).
 */
bool tmem_compact(struct tmem_client *c)
{
	uint64_t data = atomic_load_explicit(&c->data_bytes,
					     memory_order_relaxed);
	uint64_t stored = stored_bytes(c), released;
	uint64_t holes = data > stored ? data - stored : 0;

	if (holes < COMPACT_MIN_HOLES || holes < data / 8)
		return false;
	pthread_mutex_lock(&c->compact_lock);
	if (stored == c->compacted_at) {
		pthread_mutex_unlock(&c->compact_lock);
		return false;
	}
	c->compacted_at = stored;
	released = atomic_load(&c->zs.released);
	for (uint32_t id = 0; id < c->max_pools; id++) {
		struct tmem_shard *shards = tmem_pool_shards(c, id);

		for (unsigned int s = 0; shards && s < TMEM_NR_SHARDS; s++)
			compact_shard(c, &shards[s]);
	}
	pthread_mutex_unlock(&c->compact_lock);
	return atomic_load(&c->zs.released) != released;
}
