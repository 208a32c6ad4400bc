/* SPDX-License-Identifier: MIT */
/*
 * The page index of one pool: (object, index) -> 8-byte handle.
 *
 * A pool has TMEM_NR_SHARDS shards chosen by a hash of (object,
 * index >> 6); each shard has its own mutex and a chained hash table of
 * chunks, a chunk holding the handles of 64 consecutive indices of one
 * object.  Swap slots are allocated in clusters, so chunks are dense and
 * the index costs about 9 bytes per page; a lone page in a chunk costs a
 * whole chunk (592 bytes), the price of not having a per-page node.
 *
 * Each shard also keeps, per object it holds chunks of, a tmem_obj that
 * lists those chunks, in a second hash table keyed by the object alone:
 * so INVALIDATE_OBJECT visits the object's own chunks, never the pool's.
 *
 * Both tables hash with XXH3 under a random seed drawn for each client
 * (getrandom()), so that a guest cannot choose keys that fill one chain.
 */
#ifndef TMEM_INDEX_I_H
#define TMEM_INDEX_I_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc_i.h"
#include "handle_i.h"

#define TMEM_CHUNK_SHIFT	6
#define TMEM_CHUNK_PAGES	(1u << TMEM_CHUNK_SHIFT)
#define TMEM_NR_SHARDS		64

/* Pool states; a pool id is an index into client->pools. */
enum tmem_pool_state {
	TMEM_POOL_FREE = 0,	/* id not open: -EBADF */
	TMEM_POOL_OPEN,
	TMEM_POOL_CLOSED,	/* invalidated: stores -ESHUTDOWN, loads miss */
};

struct tmem_chunk {
	struct tmem_chunk *hnext;		/* hash chain */
	struct tmem_chunk *lru_prev, *lru_next;	/* ephemeral pools only */
	/* The chunks of one object in this shard (tmem_obj.chunks). */
	struct tmem_chunk *onext, **opprev;
	uint64_t object;
	uint32_t base;				/* index >> TMEM_CHUNK_SHIFT */
	uint16_t count;				/* non-empty handles */
	uint16_t sent;				/* migration: see dirty */
	/*
	 * Bit i set: h[i] is not a handle but a 64-bit word whose repetition
	 * is the page (its halves differ, so it is never 0; a page of one
	 * 32-bit word is a TMEM_H_SAME handle).  8 bytes per 64 pages buy
	 * same-filled pages of 64-bit period without data.
	 */
	uint64_t wide;
	/*
	 * Migration (migrate.c), while the shard tracks: bit i set, slot i
	 * changed since it was last sent (stored, overwritten, emptied);
	 * @sent: part of the chunk was sent, so the destination may hold
	 * keys of it, and freeing it leaves a tombstone.
	 */
	uint64_t dirty;
	uint64_t h[TMEM_CHUNK_PAGES];
};

/* A sent chunk freed while tracking: the destination drops its keys. */
struct tmem_tomb {
	struct tmem_tomb *next;
	uint64_t object;
	uint32_t base;
};

/* The chunks one shard holds of one object. */
struct tmem_obj {
	struct tmem_obj *hnext;			/* hash chain */
	struct tmem_chunk *chunks;		/* never empty */
	uint64_t object;
};

struct tmem_shard {
	pthread_mutex_t lock;
	struct tmem_chunk **buckets;	/* &bucket0 until the first growth */
	struct tmem_chunk *bucket0;
	uint32_t mask;
	uint32_t nchunks;
	struct tmem_obj **obuckets;	/* &obucket0 until the first growth */
	struct tmem_obj *obucket0;
	uint32_t omask;
	uint32_t nobjs;
	uint64_t seed;			/* of the hash: the client's */
	uint8_t state;			/* enum tmem_pool_state of its pool */
	bool ephemeral;			/* evictable */
	bool lru;			/* chunks go on the LRU */
	/*
	 * LRU of chunks, most recent at head: ephemeral pools (eviction)
	 * and, with a disk tier, persistent ones (write-back).
	 */
	struct tmem_chunk *lru_head, *lru_tail;
	/* Current state, written under lock, read by stats without it. */
	uint64_t pages;
	uint64_t same_filled;
	uint64_t raw;
	uint64_t compressed_bytes;
	uint64_t disk_pages;		/* of which the disk tier holds */
	uint64_t disk_bytes;
	/*
	 * Migration: @gen counts the pool's state changes (open, close,
	 * free), so the destination tells a pool from the one that had its
	 * id before.  While @tracking, changes of slots are marked (struct
	 * tmem_chunk.dirty; @ndirty of them) and sent chunks freed leave
	 * tombstones (@tombs, @ntombs).  @track_ctr, when set, counts the
	 * client's total of both (atomically).
	 */
	uint32_t gen;
	bool tracking;
	uint32_t ndirty;
	uint32_t ntombs;
	bool tomb_lost;			/* a tombstone's allocation failed */
	struct tmem_tomb *tombs;
	uint64_t *track_ctr;
} __attribute__((aligned(64)));

/*
 * The index is a pure map: it frees no handle.  Whatever it drops (a
 * chunk, an object, a whole pool) it hands to @fn one handle at a time
 * (a wide slot's word as tmem_h_same(0), which holds nothing), and the
 * caller gives back what the handle holds (tmem_handle_free()).
 */
struct tmem_drop {
	void (*fn)(void *arg, uint64_t h);
	void *arg;
};

/*
 * The iterator's callback: the handle of key (@object, @index) is *@hp;
 * it may put another handle of the same page there (a page moved by
 * compaction or written back), which the index then accounts.  Returns
 * false to stop the walk.  Empty slots and wide words are not offered.
 */
typedef bool tmem_replace_fn(void *arg, uint64_t object, uint32_t index,
			     uint64_t *hp);

void tmem_shards_init(struct tmem_shard *shards, uint64_t seed);
/*
 * Returns the pages dropped (all of them unless @state is open).  @gen:
 * the pool's generation from now on (its tombstones go).
 */
uint64_t tmem_shards_set_state(struct tmem_budget *budget,
			       struct tmem_shard *shards, int state,
			       bool ephemeral, bool lru, uint32_t gen,
			       const struct tmem_drop *drop);
void tmem_shards_fini(struct tmem_budget *budget, struct tmem_shard *shards,
		      const struct tmem_drop *drop);
struct tmem_shard *tmem_shard_of(struct tmem_shard *shards, uint64_t object,
				 uint32_t index);
struct tmem_chunk *tmem_chunk_find(struct tmem_shard *sh, uint64_t object,
				   uint32_t base);
/*
 * Link a new chunk for (ch->object, ch->base), zeroing it.  If the shard
 * holds nothing of that object yet, *@objp (allocated before the lock)
 * becomes its tmem_obj and is set to NULL; -ENOSPC when it is needed and
 * NULL (nothing done), else 0.
 */
int tmem_chunk_insert(struct tmem_budget *budget, struct tmem_shard *sh,
		      struct tmem_chunk *ch, struct tmem_obj **objp, bool lru);
/*
 * Drop every chunk of @object in @sh; returns pages dropped, and adds the
 * chunks visited to *@visitedp.
 */
uint64_t tmem_object_drop(struct tmem_budget *budget, struct tmem_shard *sh,
			  uint64_t object, uint64_t *visitedp,
			  const struct tmem_drop *drop);
/* Drop the pages of @ch, unlink and free it; returns pages dropped. */
uint32_t tmem_chunk_drop(struct tmem_budget *budget, struct tmem_shard *sh,
			 struct tmem_chunk *ch, const struct tmem_drop *drop);
/*
 * Offer each handle of @ch, then of every chunk of @sh, to @fn (see
 * tmem_replace_fn); false when @fn stopped the walk.  Shard lock held.
 */
bool tmem_chunk_for_each(struct tmem_shard *sh, struct tmem_chunk *ch,
			 tmem_replace_fn *fn, void *arg);
bool tmem_shard_for_each(struct tmem_shard *sh, tmem_replace_fn *fn,
			 void *arg);
/*
 * Set one handle (0 to clear), or with @wide a 64-bit word; returns the
 * old handle, tmem_h_same(0) for an old word (nothing to free).  Frees
 * nothing.  A change of the key: marked dirty while the shard tracks.
 */
uint64_t tmem_chunk_set(struct tmem_shard *sh, struct tmem_chunk *ch,
			uint32_t slot, uint64_t h, bool wide);
/*
 * tmem_chunk_set() of another handle of the same page (moved on the disk
 * tier, say): not a change of the key, so not marked for migration.
 */
uint64_t tmem_chunk_move(struct tmem_shard *sh, struct tmem_chunk *ch,
			 uint32_t slot, uint64_t h);
/*
 * The entry of @slot of @ch: a handle, 0 when empty, or with *@widep
 * set a 64-bit word (not a handle).
 */
static inline uint64_t tmem_chunk_get(const struct tmem_chunk *ch,
				      uint32_t slot, bool *widep)
{
	*widep = ch->wide & 1ull << slot;
	return ch->h[slot];
}

/*
 * Migration (index_track.c).  A change of @slot (marked while @sh
 * tracks); @ch going away (its marks go, a tombstone if it was sent);
 * the shard's tombstones dropped (a new generation of its pool).
 */
void tmem_chunk_mark(struct tmem_shard *sh, struct tmem_chunk *ch,
		     uint32_t slot);
void tmem_chunk_untrack(struct tmem_shard *sh, struct tmem_chunk *ch);
void tmem_shard_tombs_drop(struct tmem_shard *sh);
/*
 * Start tracking @sh (its chunks' occupied slots all dirty,
 * none sent; @ctr counts) or stop it (marks and tombstones dropped).
 */
void tmem_shard_track(struct tmem_shard *sh, bool on, uint64_t *ctr);
/* @ch's slots in @mask were sent: clean, and the chunk is sent. */
void tmem_chunk_sent(struct tmem_shard *sh, struct tmem_chunk *ch,
		     uint64_t mask);
/*
 * The next chunk with marked slots: after @ch in bucket *@bucketp (from
 * the bucket's head when @ch is NULL), then in the buckets that follow;
 * NULL at the table's end.  *@bucketp follows the walk.
 */
struct tmem_chunk *tmem_shard_next_dirty(struct tmem_shard *sh,
					 uint32_t *bucketp,
					 struct tmem_chunk *ch);
/* Take the shard's newest tombstone (the caller frees it), or NULL. */
struct tmem_tomb *tmem_tomb_pop(struct tmem_shard *sh);

void tmem_lru_touch(struct tmem_shard *sh, struct tmem_chunk *ch);
void tmem_lru_remove(struct tmem_shard *sh, struct tmem_chunk *ch);
void tmem_chunk_free(struct tmem_budget *budget, struct tmem_chunk *ch);
/* 0, -ENOSPC (budget) or -ENOMEM. */
int tmem_chunk_alloc(struct tmem_budget *budget, struct tmem_chunk **chp);
void tmem_obj_free(struct tmem_budget *budget, struct tmem_obj *obj);
/* 0, -ENOSPC (budget) or -ENOMEM. */
int tmem_obj_alloc(struct tmem_budget *budget, struct tmem_obj **objp);

#endif /* TMEM_INDEX_I_H */
