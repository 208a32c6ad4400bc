/* SPDX-License-Identifier: MIT */
/*
 * The client layer of libtmem: the client, pool and context structures
 * that the page operations, compaction, the disk tier and the client's
 * life cycle share.  The layers below (alloc, codec, zs, handle, index)
 * never include this.  See host-lib/README.md for the layer map.
 */
#ifndef TMEM_I_H
#define TMEM_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tmem.h"
#include "alloc_i.h"
#include "zs_i.h"
#include "handle_i.h"
#include "index_i.h"
#include "why_i.h"

/*
 * A pool has no lock of its own on the page path: its state is repeated
 * in each shard, and a page operation checks it under the shard lock it
 * takes anyway.  Pool operations take client->pools_lock and then every
 * shard lock in turn.  So the hot path writes no cache line shared by all
 * threads.  The shards, once allocated for a pool id, stay until the
 * client is reset, so a page operation can always dereference them.
 */
/* A pool id's shards, allocated when it is first opened (client.c). */
#define TMEM_SHARDS_SIZE	(TMEM_NR_SHARDS * sizeof(struct tmem_shard))
#define TMEM_SHARDS_COST	tmem_heap_cost(TMEM_SHARDS_SIZE)

struct tmem_pool {
	struct tmem_shard *shards;	/* TMEM_NR_SHARDS or NULL; acquire */
	enum tmem_pool_state state;	/* a hint outside pools_lock */
	enum tmem_pool_type type;
	uint32_t gen;			/* state changes; under pools_lock */
};

/* Operation counters; one set per context, summed by the stats call. */
struct tmem_ops {
	uint64_t succ_stores;
	uint64_t failed_budget;
	uint64_t failed_incompressible;
	uint64_t failed_other;
	uint64_t loads;
	uint64_t load_misses;
	uint64_t invalidates;
	uint64_t evictions;
	/* Not in the stats: for tests of INVALIDATE_OBJECT's cost. */
	uint64_t object_chunks_visited;
};

/* A context's pending request (at most one; request.c). */
struct tmem_async {
	void *opaque;
	const struct iovec *out, *in;
	unsigned int out_num, in_num;
	size_t in_len;
	uint8_t op;			/* 0: none pending */
	uint32_t pool, index;
	uint64_t object;
	void *page;			/* a LOAD's page: the guest's or ctx->page */
	uint64_t deadline;		/* a STORE's, CLOCK_MONOTONIC ns */
};

struct tmem_ctx {
	struct tmem_client *client;
	struct tmem_ctx *next, *prev;	/* client->ctxs, under ctx_lock */
	/* A chunk allocated before the shard lock is taken (see store). */
	struct tmem_chunk *spare;
	struct tmem_obj *spare_obj;
	struct tmem_ops ops;
	uint8_t *cbuf;			/* LZ4 output, compressBound(4096) */
	uint8_t *page;			/* gather/scatter of split pages */
	uint32_t freed;			/* since the last compaction step */
	struct tmem_tier_io *io;	/* disk tier reads; tier_read.c, lazily */

	/* Asynchronous requests (request.c). */
	int efd;			/* the completion fd, an eventfd */
	bool nowait;			/* this call must not wait */
	bool room_wait;			/* a nowait store asked for room */
	uint64_t room_gen;		/* the writer's pass it waits behind */
	/*
	 * A wait for room timed out in the writer's pass @stuck_gen while
	 * the writer waited for its I/O: until that pass ends, stores that
	 * need room are refused at once rather than each waiting the whole
	 * bound behind a stuck disk.
	 */
	bool stuck;
	uint64_t stuck_gen;
	/* The tier's list of contexts to wake (tier_space.c, tier lock). */
	struct tmem_ctx *wait_next;
	bool waiting;
	uint8_t wait_why;		/* TIER_WAKE_* it waits for */
	struct tmem_async req;		/* the pending request */
};

struct tmem_client {
	struct tmem_client_config cfg;
	uint64_t features;		/* atomic */

	/*
	 * limit: cfg.budget_bytes, then what tmem_client_set_budget() set
	 * (it stays across a reset).
	 */
	struct tmem_budget budget;

	uint64_t hash_seed;		/* of the index, from getrandom() */

	pthread_mutex_t pools_lock;	/* pool operations */
	uint32_t max_pools;
	struct tmem_pool *pools;
	_Atomic uint32_t evict_cursor;

	pthread_mutex_t ctx_lock;	/* ctx list and retired counters */
	struct tmem_ctx *ctxs;
	struct tmem_ops retired;	/* freed contexts and pool ops */

	pthread_mutex_t compact_lock;	/* one compaction at a time */
	uint64_t compacted_freed;	/* freed_pages() at the last one */
	/* Pages the disk tier's writer moved out of memory; relaxed. */
	uint64_t written_back;
	/* Pages tmem_client_reclaim() evicted; atomic (any thread). */
	uint64_t reclaim_evictions;
	/* Incremental compaction (compact.c), under compact_lock. */
	uint32_t compact_cursor;	/* next pool id * 64 + shard */
	uint64_t compact_credit;	/* pages freed, not yet paid for */

	struct tmem_tier *tier;		/* NULL without a disk tier */

	/*
	 * Migration (migrate.c).  @saving: a save runs, and the pools'
	 * shards track changes (pool ids opened meanwhile too; under
	 * pools_lock).  @track_pending: the keys marked plus tombstones,
	 * over all shards (atomic).  @pools_changes: pool state changes,
	 * ever (under pools_lock).
	 */
	bool saving;
	uint64_t track_pending;
	uint64_t pools_changes;
	/* Held by a save's block and by tmem_client_reset(). */
	pthread_mutex_t save_lock;

	struct tmem_zs zs;
};

/* The index's drops go back to the client's allocator and disk tier. */
static inline void tmem_client_drop_fn(void *arg, uint64_t h)
{
	struct tmem_client *c = arg;

	tmem_handle_free(&c->zs, c->tier, h);
}

static inline struct tmem_drop tmem_client_drop(struct tmem_client *c)
{
	return (struct tmem_drop){ .fn = tmem_client_drop_fn, .arg = c };
}

/* client.c: drop a context's pending request (reset, free, cancel). */
void tmem_async_drop(struct tmem_ctx *ctx);

/*
 * page.c.  With ctx->nowait, tmem_store() answers -EAGAIN when it must
 * wait for the writer (ctx->room_wait) and tmem_load() -EINPROGRESS when
 * it issued a read; neither counts that in the statistics, which these
 * do once the request is finished.
 */
void tmem_store_account(struct tmem_ctx *ctx, int ret);
void tmem_load_account(struct tmem_ctx *ctx, int ret);
/*
 * page.c: drop the coldest chunk of one shard of an ephemeral pool (the
 * pools in turn); pages dropped, 0 when nothing ephemeral is left.  The
 * caller holds no lock and counts them.
 */
uint32_t tmem_evict(struct tmem_client *c);

/*
 * client.c, for migrate.c: put pool @id in @state (of @type) at
 * generation @gen, dropping every page it had.  0, -ENOSPC, -ENOMEM.
 */
int tmem_pool_apply(struct tmem_client *c, uint32_t id,
		    enum tmem_pool_state state, enum tmem_pool_type type,
		    uint32_t gen);
/* Start or stop tracking every pool's shards (client->saving). */
void tmem_client_track(struct tmem_client *c, bool on);

/*
 * page.c, for migrate.c: put a page that arrives as stored under the
 * key (@kind TMEM_H_LZ4 or TMEM_H_RAW: @len bytes of data; TMEM_H_SAME:
 * the handle's 32-bit word in @word; 0: a wide slot's 64-bit @word),
 * making room as a store does.  0, -ENOSPC, -EBADF, -ENOMEM.
 */
int tmem_store_stored(struct tmem_ctx *ctx, uint32_t pool_id,
		      uint64_t object, uint32_t index, unsigned int kind,
		      const void *data, unsigned int len, uint64_t word);
/* page.c: forget one key, 1 if a page was dropped (no statistics). */
int tmem_drop_key(struct tmem_client *c, uint32_t pool_id, uint64_t object,
		  uint32_t index);

/* client.c: a pool id's shards, or NULL if it never had any. */
static inline struct tmem_shard *tmem_pool_shards(struct tmem_client *c,
						  uint32_t pool_id)
{
	if (pool_id >= c->max_pools)
		return NULL;
	return __atomic_load_n(&c->pools[pool_id].shards, __ATOMIC_ACQUIRE);
}

#endif /* TMEM_I_H */
