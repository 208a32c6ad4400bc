/* SPDX-License-Identifier: MIT */
/*
 * The index's part in migration (migrate_save.c): while a shard tracks,
 * which slots changed since they were last sent, and tombstones of sent
 * chunks that were freed.  Shard lock held throughout, as in index.c.
 */
#include <stdint.h>

#include "index_i.h"

static void track_add(struct tmem_shard *sh, int64_t n)
{
	if (sh->track_ctr && n)
		__atomic_fetch_add(sh->track_ctr, (uint64_t)n,
				   __ATOMIC_RELAXED);
}

void tmem_chunk_mark(struct tmem_shard *sh, struct tmem_chunk *ch,
		     uint32_t slot)
{
	uint64_t bit = 1ull << slot;

	if (sh->tracking && !(ch->dirty & bit)) {
		ch->dirty |= bit;
		sh->ndirty++;
		track_add(sh, 1);
	}
}

/* A chunk goes: its marks with it, and a tombstone if it was sent. */
void tmem_chunk_untrack(struct tmem_shard *sh, struct tmem_chunk *ch)
{
	unsigned int n = __builtin_popcountll(ch->dirty);
	struct tmem_tomb *t;

	if (!sh->tracking)
		return;
	sh->ndirty -= n;
	track_add(sh, -(int64_t)n);
	ch->dirty = 0;
	if (!ch->sent)
		return;
	/*
	 * Not charged to the budget: an invalidation must not fail.  At
	 * most one per chunk sent, freed when sent.  Without memory the
	 * destination would keep stale keys: the save fails instead.
	 */
	t = tmem_malloc(sizeof(*t));
	if (!t) {
		sh->tomb_lost = true;	/* the save fails: -ENOMEM */
		return;
	}
	t->object = ch->object;
	t->base = ch->base;
	t->next = sh->tombs;
	sh->tombs = t;
	sh->ntombs++;
	track_add(sh, 1);
}

void tmem_chunk_sent(struct tmem_shard *sh, struct tmem_chunk *ch,
		     uint64_t mask)
{
	unsigned int n = __builtin_popcountll(ch->dirty & mask);

	ch->dirty &= ~mask;
	ch->sent = 1;
	sh->ndirty -= n;
	track_add(sh, -(int64_t)n);
}

struct tmem_tomb *tmem_tomb_pop(struct tmem_shard *sh)
{
	struct tmem_tomb *t = sh->tombs;

	if (t) {
		sh->tombs = t->next;
		sh->ntombs--;
		track_add(sh, -1);
	}
	return t;
}

struct tmem_chunk *tmem_shard_next_dirty(struct tmem_shard *sh,
					 uint32_t *bucketp,
					 struct tmem_chunk *ch)
{
	ch = ch ? ch->hnext : *bucketp <= sh->mask ? sh->buckets[*bucketp] :
						     NULL;
	while (*bucketp <= sh->mask) {
		for (; ch; ch = ch->hnext)
			if (ch->dirty)
				return ch;
		if (++*bucketp <= sh->mask)
			ch = sh->buckets[*bucketp];
	}
	return NULL;
}

void tmem_shard_tombs_drop(struct tmem_shard *sh)
{
	struct tmem_tomb *t;

	while ((t = tmem_tomb_pop(sh)))
		tmem_free(t);
}

void tmem_shard_track(struct tmem_shard *sh, bool on, uint64_t *ctr)
{
	tmem_shard_tombs_drop(sh);
	sh->tomb_lost = false;
	track_add(sh, -(int64_t)sh->ndirty);
	sh->ndirty = 0;
	sh->tracking = on;
	sh->track_ctr = on ? ctr : NULL;
	for (uint32_t b = 0; b <= sh->mask; b++) {
		for (struct tmem_chunk *ch = sh->buckets[b]; ch;
		     ch = ch->hnext) {
			uint64_t used = 0;

			for (uint32_t i = 0; i < TMEM_CHUNK_PAGES; i++)
				if (ch->h[i])
					used |= 1ull << i;
			ch->dirty = on ? used : 0;
			ch->sent = 0;
			sh->ndirty += on ? __builtin_popcountll(used) : 0;
		}
	}
	track_add(sh, sh->ndirty);
}

