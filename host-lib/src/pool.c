/* SPDX-License-Identifier: MIT */
/*
 * Pool ids and their states: open (new), invalidate, destroy, and for
 * migration a pool put in the state and generation a stream says, and
 * tracking switched on and off for every pool's shards.
 */
#include <errno.h>

#include "tmem_i.h"

#define SHARDS_SIZE	TMEM_SHARDS_SIZE
#define SHARDS_COST	TMEM_SHARDS_COST

/*
 * A pool id's shards are allocated (and charged: about 8 KiB) when the id
 * is first opened and kept until the client is reset, so that page
 * operations never need a pool-wide lock to use them safely.  A budget
 * too small for them refuses the pool with -ENOSPC.
 */
static int pool_shards_alloc(struct tmem_client *c, struct tmem_pool *pool)
{
	struct tmem_shard *shards;

	if (pool->shards)
		return 0;
	if (tmem_charge(&c->budget, 0, SHARDS_COST))
		return -ENOSPC;
	shards = tmem_zalloc_aligned(SHARDS_SIZE);
	if (!shards) {
		tmem_uncharge(&c->budget, 0, SHARDS_COST);
		return -ENOMEM;
	}
	tmem_shards_init(shards, c->hash_seed);
	/* Under pools_lock: a save running tracks the new id too. */
	for (unsigned int i = 0; c->saving && i < TMEM_NR_SHARDS; i++)
		tmem_shard_track(&shards[i], true, &c->track_pending);
	__atomic_store_n(&pool->shards, shards, __ATOMIC_RELEASE);
	return 0;
}

/* Under pools_lock: every change of a pool's state is a generation. */
static uint64_t pool_set_state(struct tmem_client *c, struct tmem_pool *pool,
			       enum tmem_pool_state state,
			       enum tmem_pool_type type, uint32_t gen)
{
	const struct tmem_drop drop = tmem_client_drop(c);
	bool eph = state == TMEM_POOL_OPEN && type == TMEM_POOL_EPHEMERAL;
	uint64_t n;

	n = tmem_shards_set_state(&c->budget, pool->shards, state, eph,
				  state == TMEM_POOL_OPEN && (eph || c->tier),
				  gen, &drop);
	pool->gen = gen;
	TMEM_WR(c->pools_changes, c->pools_changes + 1);
	if (state == TMEM_POOL_OPEN)
		TMEM_WR(pool->type, type);
	TMEM_WR(pool->state, state);
	return n;
}

int tmem_pool_apply(struct tmem_client *c, uint32_t id,
		    enum tmem_pool_state state, enum tmem_pool_type type,
		    uint32_t gen)
{
	struct tmem_pool *pool = &c->pools[id];
	int ret = 0;

	pthread_mutex_lock(&c->pools_lock);
	if (state != TMEM_POOL_FREE)
		ret = pool_shards_alloc(c, pool);
	if (!ret && pool->shards) {
		/* Opening does not drop: the older generation's pages go. */
		if (state == TMEM_POOL_OPEN && pool->state == TMEM_POOL_OPEN)
			pool_set_state(c, pool, TMEM_POOL_CLOSED, type, gen);
		pool_set_state(c, pool, state, type, gen);
	} else if (!ret) {
		pool->gen = gen;	/* never opened here: nothing to drop */
		c->pools_changes++;
	}
	pthread_mutex_unlock(&c->pools_lock);
	return ret;
}

void tmem_client_track(struct tmem_client *c, bool on)
{
	pthread_mutex_lock(&c->pools_lock);
	c->saving = on;
	for (uint32_t id = 0; id < c->max_pools; id++) {
		struct tmem_shard *shards = c->pools[id].shards;

		for (unsigned int i = 0; shards && i < TMEM_NR_SHARDS; i++) {
			pthread_mutex_lock(&shards[i].lock);
			tmem_shard_track(&shards[i], on, &c->track_pending);
			pthread_mutex_unlock(&shards[i].lock);
		}
	}
	pthread_mutex_unlock(&c->pools_lock);
}

/* Lowest free id, so that ids (and their shards) are reused first. */
int tmem_pool_new(struct tmem_client *c, enum tmem_pool_type type,
		  uint32_t *pool_idp)
{
	struct tmem_pool *pool = NULL;
	int ret = -ENOSPC;
	uint32_t id;

	if (type != TMEM_POOL_PERSISTENT && type != TMEM_POOL_EPHEMERAL)
		return -EINVAL;
	pthread_mutex_lock(&c->pools_lock);
	for (id = 0; id < c->max_pools; id++) {
		if (c->pools[id].state == TMEM_POOL_FREE) {
			pool = &c->pools[id];
			break;
		}
	}
	if (pool)
		ret = pool_shards_alloc(c, pool);
	if (!ret) {
		pool_set_state(c, pool, TMEM_POOL_OPEN, type, pool->gen + 1);
		*pool_idp = id;
	}
	pthread_mutex_unlock(&c->pools_lock);
	return ret;
}

/* Move an open or closed pool to @state, dropping all of its pages. */
static int pool_close(struct tmem_client *c, uint32_t pool_id,
		      enum tmem_pool_state state)
{
	struct tmem_pool *pool;
	uint64_t n;

	if (pool_id >= c->max_pools)
		return -EBADF;
	pool = &c->pools[pool_id];
	pthread_mutex_lock(&c->pools_lock);
	if (pool->state == TMEM_POOL_FREE) {
		pthread_mutex_unlock(&c->pools_lock);
		return -EBADF;
	}
	n = pool_set_state(c, pool, state, pool->type, pool->gen + 1);
	pthread_mutex_unlock(&c->pools_lock);
	__atomic_fetch_add(&c->retired.invalidates, n, __ATOMIC_RELAXED);
	return 0;
}

int tmem_pool_destroy(struct tmem_client *c, uint32_t pool_id)
{
	return pool_close(c, pool_id, TMEM_POOL_FREE);
}

int tmem_invalidate_pool(struct tmem_client *c, uint32_t pool_id)
{
	return pool_close(c, pool_id, TMEM_POOL_CLOSED);
}

