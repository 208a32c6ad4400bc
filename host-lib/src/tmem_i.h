/* SPDX-License-Identifier: MIT */
/*
 * libtmem internals shared by every source file: allocation wrappers
 * (with fault injection for the tests), the budget, and the client,
 * pool and context structures.  See host-lib/README.md for the design.
 */
#ifndef TMEM_I_H
#define TMEM_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tmem.h"
#include "zs_i.h"
#include "index_i.h"

#define TMEM_CACHELINE		64

/*
 * Relaxed single-writer counters: the owner updates them under its own
 * lock (or from its own thread) with a plain load and store, so there is
 * no locked read-modify-write on the hot path; tmem_client_stats() reads
 * them concurrently, which is why they are atomic accesses at all.
 */
#define TMEM_RD(x)	__atomic_load_n(&(x), __ATOMIC_RELAXED)
#define TMEM_WR(x, v)	__atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define TMEM_ADD(x, v)	TMEM_WR(x, TMEM_RD(x) + (v))

/*
 * Every allocation of the library goes through these, so that a test can
 * make the nth one fail and check that nothing leaks or breaks.
 */
void *tmem_malloc(size_t size);
void *tmem_zalloc_aligned(size_t size);
/* Zeroed and aligned to @align (a power of two), for O_DIRECT. */
void *tmem_zalloc_align(size_t size, size_t align);
void tmem_free(void *p);
void *tmem_mmap(size_t len);
void tmem_munmap(void *p, size_t len);

/**
 * tmem_fault_inject() - make the @nth allocation from now fail with
 * ENOMEM (0 = the very next one); -1 disables.  Process-global, atomic.
 * Not exported from the shared library: tests link the static one.
 */
void tmem_fault_inject(long nth);
/** tmem_fault_inject_count() - allocations done since the last arm. */
long tmem_fault_inject_count(void);

/*
 * What a heap block really costs in glibc: an 8-byte header, 16-byte
 * granularity, 32 bytes at least.  Metadata is charged with this, not
 * with the requested size, so that meta_bytes is honest.
 */
static inline size_t tmem_heap_cost(size_t size)
{
	size_t c = (size + 8 + 15) & ~(size_t)15;

	return c < 32 ? 32 : c;
}

/* Pool states; a pool id is an index into client->pools. */
enum tmem_pool_state {
	TMEM_POOL_FREE = 0,	/* id not open: -EBADF */
	TMEM_POOL_OPEN,
	TMEM_POOL_CLOSED,	/* invalidated: stores -ESHUTDOWN, loads miss */
};

/*
 * A pool has no lock of its own on the page path: its state is repeated
 * in each shard, and a page operation checks it under the shard lock it
 * takes anyway.  Pool operations take client->pools_lock and then every
 * shard lock in turn.  So the hot path writes no cache line shared by all
 * threads.  The shards, once allocated for a pool id, stay until the
 * client is reset, so a page operation can always dereference them.
 */
struct tmem_pool {
	struct tmem_shard *shards;	/* TMEM_NR_SHARDS or NULL; acquire */
	enum tmem_pool_state state;	/* a hint outside pools_lock */
	enum tmem_pool_type type;
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

struct tmem_ctx {
	struct tmem_client *client;
	struct tmem_ctx *next, *prev;	/* client->ctxs, under ctx_lock */
	/* A chunk allocated before the shard lock is taken (see store). */
	struct tmem_chunk *spare;
	struct tmem_obj *spare_obj;
	struct tmem_ops ops;
	uint8_t *cbuf;			/* LZ4 output, compressBound(4096) */
	uint8_t *page;			/* gather/scatter of split pages */
	struct tmem_tier_io *io;	/* disk tier reads; tier.c, lazily */
};

struct tmem_client {
	struct tmem_client_config cfg;
	uint64_t features;		/* atomic */

	/*
	 * Budget: bytes charged for slabs, chunks and tables (never per
	 * page), with a compare-and-swap so used never passes the limit.
	 */
	_Atomic uint64_t used;
	_Atomic uint64_t data_bytes;
	_Atomic uint64_t meta_bytes;

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

	struct tmem_tier *tier;		/* NULL without a disk tier */

	struct tmem_zs zs;
};

int tmem_charge(struct tmem_client *c, size_t data, size_t meta);
void tmem_uncharge(struct tmem_client *c, size_t data, size_t meta);

/* page.c */
void tmem_handle_free(struct tmem_client *c, uint64_t h);
bool tmem_evict_one(struct tmem_ctx *ctx);

/* Turn a stored (LZ4 or RAW) object of @len bytes back into a page. */
int tmem_decode_data(unsigned int type, const void *src, unsigned int len,
		     void *page);

/* compact.c */
bool tmem_compact(struct tmem_client *c);

/*
 * tier.c, the disk tier.  Lock order: shard -> tier lock; the tier
 * never takes a shard lock while it holds its own.
 */
int tmem_tier_config_check(const struct tmem_client_config *cfg);
/* Open the backing file and start the writer; no-op without one. */
int tmem_tier_new(struct tmem_client *c);
/* Stop the writer and wait for its I/O: before dropping all pages. */
void tmem_tier_stop(struct tmem_client *c);
/* After every page was dropped: all segments free, counters 0, restart. */
int tmem_tier_restart(struct tmem_client *c);
void tmem_tier_free(struct tmem_client *c);
/* Stop the writer, remove or discard the file now (tier.c). */
void tmem_tier_release(struct tmem_client *c);
/* A disk handle was dropped from the index. */
void tmem_tier_put(struct tmem_client *c, uint64_t h);
/* Keep the segment of a disk handle (under the shard lock holding it). */
void tmem_tier_pin(struct tmem_client *c, uint64_t h);
/*
 * Read a pinned disk handle's page of key (@pool, @object, @index) back
 * and unpin it; 0, or -EIO (unreadable, or what was read is not that
 * key's page: checksum or key mismatch).
 */
int tmem_tier_read(struct tmem_ctx *ctx, uint32_t pool, uint64_t object,
		   uint32_t index, uint64_t h, void *page);
/* A store found the budget full: wait for write-back; false if none. */
bool tmem_tier_make_room(struct tmem_ctx *ctx);
/* A store went over the high watermark: wake the writer. */
void tmem_tier_kick(struct tmem_client *c);
void tmem_tier_ctx_free(struct tmem_ctx *ctx);
void tmem_tier_stats(struct tmem_client *c, struct tmem_stats *st);
uint64_t tmem_tier_written_back(struct tmem_client *c);

/* client.c: a pool id's shards, or NULL if it never had any. */
static inline struct tmem_shard *tmem_pool_shards(struct tmem_client *c,
						  uint32_t pool_id)
{
	if (pool_id >= c->max_pools)
		return NULL;
	return __atomic_load_n(&c->pools[pool_id].shards, __ATOMIC_ACQUIRE);
}

#endif /* TMEM_I_H */
