/* SPDX-License-Identifier: MIT */
/*
 * Page operations: store, load, invalidate, and eviction of ephemeral
 * pages when the budget is short.
 *
 * Lock order: shard mutex -> class mutex.  A page operation takes no
 * pool-wide lock: the pool's state is checked under the shard lock (see
 * struct tmem_pool).  A store allocates everything it may need (slot,
 * spare chunk) before it takes the shard lock, so the only thing done
 * under the shard lock is swapping handles, and it evicts (which takes
 * shard locks) only while it holds no lock at all.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "codec_i.h"
#include "compact_i.h"
#include "tier_i.h"
#include "tmem_i.h"

static void handle_free(struct tmem_client *c, uint64_t h)
{
	tmem_handle_free(&c->zs, c->tier, h);
}

/*
 * Drop the coldest chunk of one shard of a pool; returns pages dropped.
 * The caller holds no lock (see slot_alloc() and spare_fill()), so this
 * may wait for a shard: giving up on a shard that another thread merely
 * holds for a load would refuse a store while ephemeral pages remain.
 */
static uint32_t evict_pool(struct tmem_client *c, struct tmem_shard *shards,
			   uint32_t start)
{
	const struct tmem_drop drop = tmem_client_drop(c);

	for (unsigned int s = 0; s < TMEM_NR_SHARDS; s++) {
		struct tmem_shard *sh = &shards[(start + s) % TMEM_NR_SHARDS];
		uint32_t n = 0;

		if (!TMEM_RD(sh->pages))
			continue;	/* a hint; checked again locked */
		pthread_mutex_lock(&sh->lock);
		if (sh->state == TMEM_POOL_OPEN && sh->ephemeral &&
		    sh->lru_tail)
			n = tmem_chunk_drop(&c->budget, sh, sh->lru_tail,
					    &drop);
		pthread_mutex_unlock(&sh->lock);
		if (n)
			return n;
	}
	return 0;
}

/*
 * The cursor spreads evictions over pools and shards: LRU is per shard,
 * so this is only an approximation of a global LRU, which is all
 * ephemeral pages promise.
 */
uint32_t tmem_evict(struct tmem_client *c)
{
	uint32_t start = atomic_fetch_add_explicit(&c->evict_cursor, 1,
						   memory_order_relaxed);

	for (uint32_t i = 0; i < c->max_pools; i++) {
		uint32_t id = (start + i) % c->max_pools;
		struct tmem_shard *shards = tmem_pool_shards(c, id);
		uint32_t n;

		if (!shards || TMEM_RD(c->pools[id].type) != TMEM_POOL_EPHEMERAL)
			continue;
		n = evict_pool(c, shards, start);
		if (n)
			return n;
	}
	return 0;
}

static bool evict_one(struct tmem_ctx *ctx)
{
	uint32_t n = tmem_evict(ctx->client);

	TMEM_ADD(ctx->ops.evictions, n);
	return n;
}

/*
 * Make room while over budget: compact, else evict ephemeral pages, else
 * wait for the disk tier to write pages back.  No lock may be held here:
 * all three take shard locks.  While a lowered budget is still over what
 * is used (shrinking), store_open() refuses every store before it gets
 * here; one that the lowering overtook is refused here at once: nothing
 * it could free makes its charge fit before reclaim
 * (tmem_client_reclaim()) is done, and waiting for the writer's pass
 * would hold the guest's queue for nothing.
 */
static bool make_room(struct tmem_ctx *ctx)
{
	if (tmem_budget_over(&ctx->client->budget))
		return false;
	return tmem_compact(ctx->client) || evict_one(ctx) ||
	       tmem_tier_make_room(ctx);
}

/* A slot for @len bytes, making room while over budget. */
static int slot_alloc(struct tmem_ctx *ctx, unsigned int len, uint64_t *locp,
		      void **ptrp)
{
	int ret;

	do {
		ret = tmem_zs_alloc(&ctx->client->zs, len, locp, ptrp);
	} while (ret == -ENOSPC && make_room(ctx));
	return ret;
}

/* A spare chunk and object for index_set(); 0, -ENOSPC or -ENOMEM. */
static int spare_fill(struct tmem_ctx *ctx)
{
	struct tmem_budget *b = &ctx->client->budget;
	int ret = 0;

	while (!ctx->spare &&
	       (ret = tmem_chunk_alloc(b, &ctx->spare)) == -ENOSPC &&
	       make_room(ctx))
		;
	if (ret)
		return ret;
	while (!ctx->spare_obj &&
	       (ret = tmem_obj_alloc(b, &ctx->spare_obj)) == -ENOSPC &&
	       make_room(ctx))
		;
	return ret;
}

/*
 * Compress @page and copy it into a slot; *hp is its handle.  A page of
 * one repeated word keeps no data: a 32-bit word goes in a TMEM_H_SAME
 * handle, a 64-bit one takes the whole handle and sets *widep.
 */
static int encode(struct tmem_ctx *ctx, const void *page, uint64_t *hp,
		  bool *widep)
{
	struct tmem_client *c = ctx->client;
	const void *src = ctx->cbuf;
	unsigned int type = TMEM_H_LZ4;
	uint64_t loc, word;
	void *dst;
	int len, ret;

	*widep = false;
	if (tmem_same_filled(page, &word)) {
		*widep = (uint32_t)word != (uint32_t)(word >> 32);
		*hp = *widep ? word : tmem_h_same((uint32_t)word);
		return 0;
	}
	len = tmem_compress(page, ctx->cbuf, c->cfg.compress_threshold);
	if (!len) {
		if (c->cfg.incompressible == TMEM_INCOMPRESSIBLE_REJECT)
			return -E2BIG;
		type = TMEM_H_RAW;
		len = TMEM_PAGE_SIZE;
		src = page;
	}
	ret = slot_alloc(ctx, len, &loc, &dst);
	if (ret)
		return ret;
	memcpy(dst, src, len);
	*hp = tmem_h_make(type, len, loc);
	return 0;
}

/*
 * Lock the shard of a key if its pool is open.  Otherwise NULL, and *errp
 * is -EBADF (no such pool) or -ESHUTDOWN (invalidated).
 */
static struct tmem_shard *key_lock(struct tmem_client *c, uint32_t pool_id,
				   uint64_t object, uint32_t index, int *errp)
{
	struct tmem_shard *shards = tmem_pool_shards(c, pool_id);
	struct tmem_shard *sh;

	*errp = -EBADF;
	if (!shards)
		return NULL;
	sh = tmem_shard_of(shards, object, index);
	pthread_mutex_lock(&sh->lock);
	if (sh->state == TMEM_POOL_OPEN)
		return sh;
	if (sh->state == TMEM_POOL_CLOSED)
		*errp = -ESHUTDOWN;
	pthread_mutex_unlock(&sh->lock);
	return NULL;
}

/*
 * Put @h under the key; *oldp gets the handle it replaces.  A missing
 * chunk is taken from ctx->spare (and a missing object from
 * ctx->spare_obj), allocated before the lock; without one the store
 * fails with @spare_err and, there being no chunk, no old copy exists.
 */
static int index_set(struct tmem_ctx *ctx, uint32_t pool_id,
		     uint64_t object, uint32_t index, uint64_t h, bool wide,
		     uint64_t *oldp, int spare_err)
{
	uint32_t base = index >> TMEM_CHUNK_SHIFT;
	struct tmem_chunk *ch;
	struct tmem_shard *sh;
	int ret;

	sh = key_lock(ctx->client, pool_id, object, index, &ret);
	if (!sh)
		return ret;
	ch = tmem_chunk_find(sh, object, base);
	if (!ch) {
		ch = ctx->spare;
		if (ch) {
			ch->object = object;
			ch->base = base;
		}
		if (!ch || tmem_chunk_insert(&ctx->client->budget, sh, ch,
					     &ctx->spare_obj, sh->lru)) {
			pthread_mutex_unlock(&sh->lock);
			return spare_err ? spare_err : -ENOSPC;
		}
		ctx->spare = NULL;
	} else if (sh->lru) {
		tmem_lru_touch(sh, ch);
	}
	*oldp = tmem_chunk_set(sh, ch, index % TMEM_CHUNK_PAGES, h, wide);
	pthread_mutex_unlock(&sh->lock);
	return 0;
}

/* Forget one key; 1 if a page was dropped, 0 if none, or -errno. */
static int drop_key(struct tmem_client *c, uint32_t pool_id,
		    uint64_t object, uint32_t index)
{
	const struct tmem_drop drop = tmem_client_drop(c);
	struct tmem_chunk *ch;
	struct tmem_shard *sh;
	uint64_t old = 0;
	int ret;

	sh = key_lock(c, pool_id, object, index, &ret);
	if (!sh)
		return ret;
	ch = tmem_chunk_find(sh, object, index >> TMEM_CHUNK_SHIFT);
	if (ch) {
		old = tmem_chunk_set(sh, ch, index % TMEM_CHUNK_PAGES, 0,
				     false);
		if (!ch->count)
			tmem_chunk_drop(&c->budget, sh, ch, &drop);
	}
	pthread_mutex_unlock(&sh->lock);
	if (!old)
		return 0;
	handle_free(c, old);
	return 1;
}

static int store_open(struct tmem_ctx *ctx, uint32_t pool_id,
		      uint64_t object, uint32_t index, const void *page)
{
	uint64_t h, old = 0;
	int spare_err;
	bool wide;
	int ret;

	/*
	 * DEV-25: while shrinking every store is refused, even one that
	 * would fit in memory already held (a slot an invalidation freed):
	 * otherwise a swapping guest refills what it gives back and the
	 * shrink never ends.  The old copy goes, as after any failed store.
	 */
	if (tmem_budget_over(&ctx->client->budget)) {
		drop_key(ctx->client, pool_id, object, index);
		return -ENOSPC;
	}
	spare_err = spare_fill(ctx);
	ret = encode(ctx, page, &h, &wide);
	if (!ret) {
		ret = index_set(ctx, pool_id, object, index, h, wide, &old,
				spare_err);
		if (ret && !wide)
			handle_free(ctx->client, h);
	}
	if (ret) {
		/* Never leave a stale copy behind a failed store. */
		drop_key(ctx->client, pool_id, object, index);
		return ret;
	}
	if (old) {
		handle_free(ctx->client, old);
		tmem_compact_freed(ctx);
	}
	return 0;
}

int tmem_drop_key(struct tmem_client *c, uint32_t pool_id, uint64_t object,
		  uint32_t index)
{
	return drop_key(c, pool_id, object, index);
}

/*
 * A page that arrives as it was stored elsewhere (migration): its data
 * copied into a slot as it is, never compressed again; what a store
 * does around that (the spare chunk, room, the old copy) as a store.
 */
int tmem_store_stored(struct tmem_ctx *ctx, uint32_t pool_id,
		      uint64_t object, uint32_t index, unsigned int kind,
		      const void *data, unsigned int len, uint64_t word)
{
	bool wide = kind == 0;
	uint64_t h, old = 0, loc;
	int spare_err = spare_fill(ctx);
	void *dst;
	int ret;

	if (wide) {
		h = word;
	} else if (kind == TMEM_H_SAME) {
		h = tmem_h_same((uint32_t)word);
	} else {
		ret = slot_alloc(ctx, len, &loc, &dst);
		if (ret)
			return ret;
		memcpy(dst, data, len);
		h = tmem_h_make(kind, len, loc);
	}
	ret = index_set(ctx, pool_id, object, index, h, wide, &old,
			spare_err);
	if (ret) {
		if (!wide)
			handle_free(ctx->client, h);
		return ret;
	}
	if (old)
		handle_free(ctx->client, old);
	return 0;
}

/*
 * The pool's state is only a hint here (it is checked again under the
 * shard lock): it spares compressing a page for a pool that is not open.
 */
static int pool_hint(struct tmem_client *c, uint32_t pool_id)
{
	if (pool_id >= c->max_pools)
		return -EBADF;
	switch (TMEM_RD(c->pools[pool_id].state)) {
	case TMEM_POOL_OPEN:
		return 0;
	case TMEM_POOL_CLOSED:
		return -ESHUTDOWN;
	default:
		return -EBADF;
	}
}

int tmem_store(struct tmem_ctx *ctx, uint32_t pool_id, uint64_t object,
	       uint32_t index, const void *page)
{
	int ret = pool_hint(ctx->client, pool_id);

	if (!ret)
		ret = store_open(ctx, pool_id, object, index, page);
	if (ret == -ENOSPC && ctx->room_wait)
		return -EAGAIN;		/* nowait: the writer will tell */
	tmem_store_account(ctx, ret);
	return ret;
}

void tmem_store_account(struct tmem_ctx *ctx, int ret)
{
	if (!ret) {
		TMEM_ADD(ctx->ops.succ_stores, 1);
		tmem_tier_kick(ctx->client);
	} else if (ret == -ENOSPC)
		TMEM_ADD(ctx->ops.failed_budget, 1);
	else if (ret == -E2BIG)
		TMEM_ADD(ctx->ops.failed_incompressible, 1);
	else
		TMEM_ADD(ctx->ops.failed_other, 1);
}

/*
 * The shard lock is held while decompressing: an eviction may run in
 * another thread, and it must not free the slot under our feet.  A page
 * of the disk tier is read without it (other keys of the shard need not
 * wait for the disk): its segment is pinned instead, so that it cannot
 * be reused while we read.  A closed pool misses.
 */
int tmem_load(struct tmem_ctx *ctx, uint32_t pool_id, uint64_t object,
	      uint32_t index, void *page)
{
	uint32_t slot = index % TMEM_CHUNK_PAGES;
	struct tmem_chunk *ch;
	struct tmem_shard *sh;
	bool disk = false, wide = false;
	uint64_t h = 0;
	int ret;

	sh = key_lock(ctx->client, pool_id, object, index, &ret);
	if (sh) {
		ch = tmem_chunk_find(sh, object, index >> TMEM_CHUNK_SHIFT);
		h = ch ? tmem_chunk_get(ch, slot, &wide) : 0;
		disk = h && !wide && tmem_h_on_disk(h);
		if (disk)
			tmem_tier_pin(ctx->client->tier, tmem_h_disk_off(h));
		else
			ret = h ? tmem_handle_load(&ctx->client->zs, h, wide,
						   page) : -ENOENT;
		if (h && sh->lru)
			tmem_lru_touch(sh, ch);
		pthread_mutex_unlock(&sh->lock);
		if (disk)
			ret = tmem_tier_read(ctx, pool_id, object, index, h,
					     page);
	} else if (ret == -ESHUTDOWN) {
		ret = -ENOENT;
	}
	if (ret != -EINPROGRESS)
		tmem_load_account(ctx, ret);
	return ret;
}

void tmem_load_account(struct tmem_ctx *ctx, int ret)
{
	if (!ret)
		TMEM_ADD(ctx->ops.loads, 1);
	else if (ret == -ENOENT)
		TMEM_ADD(ctx->ops.load_misses, 1);
}

int tmem_invalidate_page(struct tmem_ctx *ctx, uint32_t pool_id,
			 uint64_t object, uint32_t index)
{
	int ret = drop_key(ctx->client, pool_id, object, index);

	if (ret == -ESHUTDOWN)
		return 0;
	if (ret > 0) {
		TMEM_ADD(ctx->ops.invalidates, ret);
		tmem_compact_freed(ctx);
	}
	return ret;
}

static uint64_t drop_object(struct tmem_ctx *ctx, struct tmem_shard *sh,
			    uint64_t object)
{
	const struct tmem_drop drop = tmem_client_drop(ctx->client);
	uint64_t n = 0;

	pthread_mutex_lock(&sh->lock);
	if (sh->state == TMEM_POOL_OPEN)
		n = tmem_object_drop(&ctx->client->budget, sh, object,
				     &ctx->ops.object_chunks_visited, &drop);
	pthread_mutex_unlock(&sh->lock);
	return n;
}

/*
 * An object's chunks are spread over all shards (so that one object's
 * pages do not all wait for one lock), and each shard lists its chunks
 * of the object: this visits the object's chunks and one object-table
 * chain per shard, whatever else the pool holds.
 */
int tmem_invalidate_object(struct tmem_ctx *ctx, uint32_t pool_id,
			   uint64_t object)
{
	struct tmem_shard *shards = tmem_pool_shards(ctx->client, pool_id);
	uint64_t n = 0;

	if (!shards || TMEM_RD(ctx->client->pools[pool_id].state) ==
		       TMEM_POOL_FREE)
		return -EBADF;
	for (unsigned int s = 0; s < TMEM_NR_SHARDS; s++)
		n += drop_object(ctx, &shards[s], object);
	TMEM_ADD(ctx->ops.invalidates, n);
	return n > INT_MAX ? INT_MAX : (int)n;
}
