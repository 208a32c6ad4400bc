/* SPDX-License-Identifier: MIT */
/*
 * The sharded chunk index of a pool; the layout is in index_i.h.  Every
 * function here runs with the shard's mutex held (or the pool's lock
 * held exclusive), except allocation and freeing of whole chunks.  It is
 * a map and nothing more: the handles it drops go back to its caller
 * (struct tmem_drop), which frees what they hold.
 */
#include <errno.h>
#include <string.h>

/* Header-only use of libxxhash: the hash is on every page operation. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "index_i.h"

#define CHUNK_COST	tmem_heap_cost(sizeof(struct tmem_chunk))
#define OBJ_COST	tmem_heap_cost(sizeof(struct tmem_obj))
#define TABLE_MIN	16

/*
 * Keyed by the client's random seed: XXH3 mixes the seed into every
 * input, so chains stay short for keys a guest picks without it.
 */
static inline uint64_t key_hash(uint64_t seed, uint64_t object, uint32_t base)
{
	uint8_t key[12];

	memcpy(key, &object, 8);
	memcpy(key + 8, &base, 4);
	return XXH3_64bits_withSeed(key, sizeof(key), seed);
}

static inline uint64_t obj_hash(uint64_t seed, uint64_t object)
{
	return XXH3_64bits_withSeed(&object, sizeof(object), seed);
}

void tmem_shards_init(struct tmem_shard *shards, uint64_t seed)
{
	for (unsigned int i = 0; i < TMEM_NR_SHARDS; i++) {
		struct tmem_shard *sh = &shards[i];

		memset(sh, 0, sizeof(*sh));
		pthread_mutex_init(&sh->lock, NULL);
		sh->buckets = &sh->bucket0;
		sh->obuckets = &sh->obucket0;
		sh->seed = seed;
	}
}

/* The top bits pick the shard, the low bits the bucket inside it. */
struct tmem_shard *tmem_shard_of(struct tmem_shard *shards, uint64_t object,
				 uint32_t index)
{
	uint64_t h = key_hash(shards[0].seed, object,
			      index >> TMEM_CHUNK_SHIFT);

	return &shards[h >> (64 - 6)];
}
_Static_assert(TMEM_NR_SHARDS == 64, "shard_of takes the top 6 bits");

struct tmem_chunk *tmem_chunk_find(struct tmem_shard *sh, uint64_t object,
				   uint32_t base)
{
	struct tmem_chunk *ch =
		sh->buckets[key_hash(sh->seed, object, base) & sh->mask];

	while (ch && (ch->base != base || ch->object != object))
		ch = ch->hnext;
	return ch;
}

int tmem_chunk_alloc(struct tmem_budget *budget, struct tmem_chunk **chp)
{
	struct tmem_chunk *ch;

	if (tmem_charge(budget, 0, CHUNK_COST))
		return -ENOSPC;
	ch = tmem_malloc(sizeof(*ch));
	if (!ch) {
		tmem_uncharge(budget, 0, CHUNK_COST);
		return -ENOMEM;
	}
	*chp = ch;
	return 0;
}

void tmem_chunk_free(struct tmem_budget *budget, struct tmem_chunk *ch)
{
	if (!ch)
		return;
	tmem_free(ch);
	tmem_uncharge(budget, 0, CHUNK_COST);
}

int tmem_obj_alloc(struct tmem_budget *budget, struct tmem_obj **objp)
{
	struct tmem_obj *obj;

	if (tmem_charge(budget, 0, OBJ_COST))
		return -ENOSPC;
	obj = tmem_malloc(sizeof(*obj));
	if (!obj) {
		tmem_uncharge(budget, 0, OBJ_COST);
		return -ENOMEM;
	}
	*objp = obj;
	return 0;
}

void tmem_obj_free(struct tmem_budget *budget, struct tmem_obj *obj)
{
	if (!obj)
		return;
	tmem_free(obj);
	tmem_uncharge(budget, 0, OBJ_COST);
}

static size_t table_cost(uint32_t mask)
{
	return mask ? tmem_heap_cost(((size_t)mask + 1) * sizeof(void *)) : 0;
}

/*
 * Double the table at load factor 1.  Called under the shard lock; if
 * memory or budget is short the table stays as it is and chains grow,
 * so an insert never fails for the table's sake.
 */
static void table_grow(struct tmem_budget *budget, struct tmem_shard *sh)
{
	uint32_t nsize = sh->mask ? (sh->mask + 1) * 2 : TABLE_MIN;
	struct tmem_chunk **nb;

	if (nsize > (1u << 26) ||
	    tmem_charge(budget, 0, table_cost(nsize - 1)))
		return;
	nb = tmem_malloc(nsize * sizeof(*nb));
	if (!nb) {
		tmem_uncharge(budget, 0, table_cost(nsize - 1));
		return;
	}
	memset(nb, 0, nsize * sizeof(*nb));
	for (uint32_t b = 0; b <= sh->mask; b++) {
		struct tmem_chunk *ch = sh->buckets[b], *next;

		for (; ch; ch = next) {
			uint64_t i = key_hash(sh->seed, ch->object, ch->base) &
				     (nsize - 1);

			next = ch->hnext;
			ch->hnext = nb[i];
			nb[i] = ch;
		}
	}
	if (sh->buckets != &sh->bucket0)
		tmem_free(sh->buckets);
	tmem_uncharge(budget, 0, table_cost(sh->mask));
	sh->bucket0 = NULL;
	sh->buckets = nb;
	sh->mask = nsize - 1;
}

/* The same for the object table; the load factor counts objects. */
static void otable_grow(struct tmem_budget *budget, struct tmem_shard *sh)
{
	uint32_t nsize = sh->omask ? (sh->omask + 1) * 2 : TABLE_MIN;
	struct tmem_obj **nb;

	if (nsize > (1u << 26) ||
	    tmem_charge(budget, 0, table_cost(nsize - 1)))
		return;
	nb = tmem_malloc(nsize * sizeof(*nb));
	if (!nb) {
		tmem_uncharge(budget, 0, table_cost(nsize - 1));
		return;
	}
	memset(nb, 0, nsize * sizeof(*nb));
	for (uint32_t b = 0; b <= sh->omask; b++) {
		struct tmem_obj *obj = sh->obuckets[b], *next;

		for (; obj; obj = next) {
			uint64_t i = obj_hash(sh->seed, obj->object) &
				     (nsize - 1);

			next = obj->hnext;
			obj->hnext = nb[i];
			nb[i] = obj;
		}
	}
	if (sh->obuckets != &sh->obucket0)
		tmem_free(sh->obuckets);
	tmem_uncharge(budget, 0, table_cost(sh->omask));
	sh->obucket0 = NULL;
	sh->obuckets = nb;
	sh->omask = nsize - 1;
}

static struct tmem_obj **obj_slot(struct tmem_shard *sh, uint64_t object)
{
	struct tmem_obj **pp =
		&sh->obuckets[obj_hash(sh->seed, object) & sh->omask];

	while (*pp && (*pp)->object != object)
		pp = &(*pp)->hnext;
	return pp;
}

/* Put @ch on the list of its object, taking *@objp for a new object. */
static int obj_link(struct tmem_budget *budget, struct tmem_shard *sh,
		    struct tmem_chunk *ch, struct tmem_obj **objp)
{
	struct tmem_obj **pp = obj_slot(sh, ch->object), *obj = *pp;

	if (!obj) {
		if (!*objp)
			return -ENOSPC;
		obj = *objp;
		*objp = NULL;
		obj->object = ch->object;
		obj->chunks = NULL;
		if (sh->nobjs > sh->omask) {
			otable_grow(budget, sh);
			pp = obj_slot(sh, ch->object);
		}
		obj->hnext = *pp;
		*pp = obj;
		sh->nobjs++;
	}
	ch->onext = obj->chunks;
	ch->opprev = &obj->chunks;
	if (ch->onext)
		ch->onext->opprev = &ch->onext;
	obj->chunks = ch;
	return 0;
}

/* Take @ch off its object's list; the last chunk frees the object. */
static void obj_unlink(struct tmem_budget *budget, struct tmem_shard *sh,
		       struct tmem_chunk *ch)
{
	struct tmem_obj **pp, *obj;

	*ch->opprev = ch->onext;
	if (ch->onext)
		ch->onext->opprev = ch->opprev;
	pp = obj_slot(sh, ch->object);
	obj = *pp;
	if (obj->chunks)
		return;
	*pp = obj->hnext;
	sh->nobjs--;
	tmem_obj_free(budget, obj);
}

static void lru_del(struct tmem_shard *sh, struct tmem_chunk *ch)
{
	if (ch->lru_prev)
		ch->lru_prev->lru_next = ch->lru_next;
	else if (sh->lru_head == ch)
		sh->lru_head = ch->lru_next;
	else
		return;		/* not on the list */
	if (ch->lru_next)
		ch->lru_next->lru_prev = ch->lru_prev;
	else
		sh->lru_tail = ch->lru_prev;
	ch->lru_prev = ch->lru_next = NULL;
}

static void lru_add(struct tmem_shard *sh, struct tmem_chunk *ch)
{
	ch->lru_prev = NULL;
	ch->lru_next = sh->lru_head;
	if (sh->lru_head)
		sh->lru_head->lru_prev = ch;
	else
		sh->lru_tail = ch;
	sh->lru_head = ch;
}

void tmem_lru_remove(struct tmem_shard *sh, struct tmem_chunk *ch)
{
	lru_del(sh, ch);
}

void tmem_lru_touch(struct tmem_shard *sh, struct tmem_chunk *ch)
{
	if (sh->lru_head == ch)
		return;
	lru_del(sh, ch);
	lru_add(sh, ch);
}

int tmem_chunk_insert(struct tmem_budget *budget, struct tmem_shard *sh,
		      struct tmem_chunk *ch, struct tmem_obj **objp, bool lru)
{
	uint64_t b;

	if (obj_link(budget, sh, ch, objp))
		return -ENOSPC;
	memset(ch->h, 0, sizeof(ch->h));
	ch->wide = 0;
	ch->count = 0;
	ch->dirty = 0;
	ch->sent = 0;
	ch->lru_prev = ch->lru_next = NULL;
	if (sh->nchunks > sh->mask)
		table_grow(budget, sh);
	b = key_hash(sh->seed, ch->object, ch->base) & sh->mask;
	ch->hnext = sh->buckets[b];
	sh->buckets[b] = ch;
	sh->nchunks++;
	if (lru)
		lru_add(sh, ch);
	return 0;
}

static void chunk_unlink(struct tmem_budget *budget, struct tmem_shard *sh,
			 struct tmem_chunk *ch)
{
	struct tmem_chunk **pp =
		&sh->buckets[key_hash(sh->seed, ch->object, ch->base) &
			     sh->mask];

	while (*pp != ch)
		pp = &(*pp)->hnext;
	*pp = ch->hnext;
	sh->nchunks--;
	lru_del(sh, ch);
	obj_unlink(budget, sh, ch);
}

/* Changes to a shard's state counters, summed over the handles of one change. */
struct shard_delta {
	int64_t pages, same_filled, raw, compressed_bytes;
	int64_t disk_pages, disk_bytes;
};

static void account(struct shard_delta *d, uint64_t h, bool wide,
		    int64_t sign)
{
	if (!h)
		return;
	d->pages += sign;
	if (wide || tmem_h_type(h) == TMEM_H_SAME) {
		d->same_filled += sign;
		return;
	}
	d->compressed_bytes += sign * tmem_h_len(h);
	if (tmem_h_type(h) == TMEM_H_RAW)
		d->raw += sign;
	if (tmem_h_on_disk(h)) {
		d->disk_pages += sign;
		d->disk_bytes += sign * tmem_h_len(h);
	}
}

/*
 * Each counter moves once, by the net change: tmem_client_stats() reads
 * them without the shard lock, and a handle replaced by another (a page
 * written back to the tier) must not show there as one page less.
 */
static void account_apply(struct tmem_shard *sh, const struct shard_delta *d)
{
	if (d->pages)
		TMEM_ADD(sh->pages, d->pages);
	if (d->same_filled)
		TMEM_ADD(sh->same_filled, d->same_filled);
	if (d->raw)
		TMEM_ADD(sh->raw, d->raw);
	if (d->compressed_bytes)
		TMEM_ADD(sh->compressed_bytes, d->compressed_bytes);
	if (d->disk_pages)
		TMEM_ADD(sh->disk_pages, d->disk_pages);
	if (d->disk_bytes)
		TMEM_ADD(sh->disk_bytes, d->disk_bytes);
}

/* Set a slot without marking it: a page moved, not changed. */
static uint64_t slot_set(struct tmem_shard *sh, struct tmem_chunk *ch,
			 uint32_t slot, uint64_t h, bool wide)
{
	uint64_t bit = 1ull << slot;
	bool old_wide = ch->wide & bit;
	uint64_t old = ch->h[slot];
	struct shard_delta d = { 0 };

	ch->h[slot] = h;
	ch->wide = wide ? ch->wide | bit : ch->wide & ~bit;
	ch->count += (h != 0) - (old != 0);
	account(&d, old, old_wide, -1);
	account(&d, h, wide, 1);
	account_apply(sh, &d);
	return old && old_wide ? tmem_h_same(0) : old;
}

uint64_t tmem_chunk_set(struct tmem_shard *sh, struct tmem_chunk *ch,
			uint32_t slot, uint64_t h, bool wide)
{
	tmem_chunk_mark(sh, ch, slot);
	return slot_set(sh, ch, slot, h, wide);
}

uint64_t tmem_chunk_move(struct tmem_shard *sh, struct tmem_chunk *ch,
			 uint32_t slot, uint64_t h)
{
	return slot_set(sh, ch, slot, h, false);
}

uint32_t tmem_chunk_drop(struct tmem_budget *budget, struct tmem_shard *sh,
			 struct tmem_chunk *ch, const struct tmem_drop *drop)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < TMEM_CHUNK_PAGES && ch->count; i++) {
		uint64_t h = slot_set(sh, ch, i, 0, false);

		if (h) {
			drop->fn(drop->arg, h);
			n++;
		}
	}
	tmem_chunk_untrack(sh, ch);
	chunk_unlink(budget, sh, ch);
	tmem_chunk_free(budget, ch);
	return n;
}

bool tmem_chunk_for_each(struct tmem_shard *sh, struct tmem_chunk *ch,
			 tmem_replace_fn *fn, void *arg)
{
	for (uint32_t i = 0; i < TMEM_CHUNK_PAGES; i++) {
		uint64_t h = ch->h[i], nh = h;

		if (!h || (ch->wide & 1ull << i))
			continue;
		if (!fn(arg, ch->object, ch->base << TMEM_CHUNK_SHIFT | i, &nh))
			return false;
		if (nh != h)
			slot_set(sh, ch, i, nh, false);
	}
	return true;
}

bool tmem_shard_for_each(struct tmem_shard *sh, tmem_replace_fn *fn,
			 void *arg)
{
	for (uint32_t b = 0; b <= sh->mask; b++)
		for (struct tmem_chunk *ch = sh->buckets[b]; ch; ch = ch->hnext)
			if (!tmem_chunk_for_each(sh, ch, fn, arg))
				return false;
	return true;
}

uint64_t tmem_object_drop(struct tmem_budget *budget, struct tmem_shard *sh,
			  uint64_t object, uint64_t *visitedp,
			  const struct tmem_drop *drop)
{
	struct tmem_obj *obj = *obj_slot(sh, object);
	struct tmem_chunk *ch;
	uint64_t n = 0;
	bool last;

	/* The object goes with its last chunk: do not look at it after. */
	for (ch = obj ? obj->chunks : NULL; ch; ch = last ? NULL : obj->chunks) {
		last = !ch->onext;
		n += tmem_chunk_drop(budget, sh, ch, drop);
		(*visitedp)++;
	}
	return n;
}

/* Drop every page of one shard and free its table; lock held. */
static uint64_t shard_drop_all(struct tmem_budget *budget, struct tmem_shard *sh,
			       const struct tmem_drop *drop)
{
	uint64_t n = 0;

	for (uint32_t b = 0; b <= sh->mask; b++)
		while (sh->buckets[b])
			n += tmem_chunk_drop(budget, sh, sh->buckets[b], drop);
	if (sh->buckets != &sh->bucket0)
		tmem_free(sh->buckets);
	tmem_uncharge(budget, 0, table_cost(sh->mask));
	sh->bucket0 = NULL;
	sh->buckets = &sh->bucket0;
	sh->mask = 0;
	/* Every object went with its last chunk. */
	if (sh->obuckets != &sh->obucket0)
		tmem_free(sh->obuckets);
	tmem_uncharge(budget, 0, table_cost(sh->omask));
	sh->obucket0 = NULL;
	sh->obuckets = &sh->obucket0;
	sh->omask = 0;
	return n;
}

/*
 * Open, close or free the pool of @shards: one shard lock at a time, so
 * page operations on other shards go on; a page operation that gets its
 * shard afterwards sees the new state.  Returns the pages dropped.
 */
uint64_t tmem_shards_set_state(struct tmem_budget *budget,
			       struct tmem_shard *shards, int state,
			       bool ephemeral, bool lru, uint32_t gen,
			       const struct tmem_drop *drop)
{
	uint64_t n = 0;

	for (unsigned int i = 0; i < TMEM_NR_SHARDS; i++) {
		struct tmem_shard *sh = &shards[i];

		pthread_mutex_lock(&sh->lock);
		if (state != TMEM_POOL_OPEN)
			n += shard_drop_all(budget, sh, drop);
		/* A new generation: the destination drops all it had of it. */
		tmem_shard_tombs_drop(sh);
		sh->gen = gen;
		sh->state = state;
		sh->ephemeral = ephemeral;
		sh->lru = lru;
		pthread_mutex_unlock(&sh->lock);
	}
	return n;
}

/* Free everything; no other thread may use the shards. */
void tmem_shards_fini(struct tmem_budget *budget, struct tmem_shard *shards,
		      const struct tmem_drop *drop)
{
	for (unsigned int i = 0; i < TMEM_NR_SHARDS; i++) {
		shard_drop_all(budget, &shards[i], drop);
		tmem_shard_track(&shards[i], false, NULL);
		pthread_mutex_destroy(&shards[i].lock);
	}
}
