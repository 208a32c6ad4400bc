/* SPDX-License-Identifier: MIT */
/*
 * Elastic memory: the budget changed while the client runs, and the
 * steps that give memory back when it was lowered below what is used.
 *
 * Shrinking is no state of its own: a charge never passes the limit, so
 * used is over it only after tmem_client_set_budget() lowered it, and
 * for as long as it stays over (tmem_budget_over()).  Meanwhile every
 * charge fails, so the memory in use never grows, and every store is
 * refused at once (page.c's store_open(), DEV-25), even one that would
 * fit in a slot an invalidation freed.  Memory comes back
 * by reclaim (ephemeral pages evicted here, persistent ones written back
 * by the disk tier's writer) and by the guest's invalidations; never by
 * dropping a persistent page.
 */
#include <errno.h>

#include "compact_i.h"
#include "tier_i.h"
#include "tmem_i.h"

/* Pool ids that ever had shards: they keep them until a reset. */
static uint64_t shards_bytes(struct tmem_client *c)
{
	uint64_t n = 0;

	for (uint32_t id = 0; id < c->max_pools; id++)
		if (tmem_pool_shards(c, id))
			n += TMEM_SHARDS_COST;
	return n;
}

/*
 * What the client holds that no reclaim gives back before a reset: the
 * disk tier's buffers and tables, the pool ids' shards, the allocator's
 * arena bitmaps and free-extent stacks.  A budget below it could never
 * be reached.  Persistent pages are not in it: the guest can still give
 * them back.
 */
static int floor_check(struct tmem_client *c, uint64_t bytes,
		       struct tmem_why *why)
{
	uint64_t tier = tmem_tier_fixed_bytes(c);
	uint64_t shards = shards_bytes(c);
	uint64_t zs = tmem_zs_fixed_bytes(&c->zs);
	uint64_t floor = tier + shards + zs;

	if (bytes >= floor)
		return 0;
	return tmem_refuse(why, -ENOSPC, "budget_bytes %llu is below the "
			   "%llu bytes that no reclaim can give back: the "
			   "disk tier's buffers and tables (%llu), the pools' "
			   "shards (%llu) and the allocator's arena maps and "
			   "extent stacks (%llu)", (unsigned long long)bytes,
			   (unsigned long long)floor, (unsigned long long)tier,
			   (unsigned long long)shards, (unsigned long long)zs);
}

int tmem_client_set_budget(struct tmem_client *c, uint64_t bytes,
			   char *errbuf, size_t errlen)
{
	struct tmem_why why = { .buf = errbuf, .len = errlen };
	int ret;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!bytes)
		return tmem_refuse(&why, -EINVAL, "budget_bytes must be set to "
				   "more than 0 bytes");
	ret = floor_check(c, bytes, &why);
	if (ret)
		return ret;
	tmem_budget_set_limit(&c->budget, bytes);
	/* The watermarks after the limit: see tmem_tier_set_budget(). */
	tmem_tier_set_budget(c);
	return 0;
}

/* Evict ephemeral pages, whole chunks, until @max_pages or within budget. */
static uint64_t reclaim_evict(struct tmem_client *c, unsigned int max_pages)
{
	uint64_t n = 0;
	uint32_t got;

	while (n < max_pages && tmem_budget_over(&c->budget)) {
		got = tmem_evict(c);
		if (!got)
			break;
		n += got;
	}
	if (n)
		__atomic_fetch_add(&c->reclaim_evictions, n, __ATOMIC_RELAXED);
	return n;
}

int tmem_client_reclaim(struct tmem_client *c, unsigned int max_pages)
{
	bool freed;

	if (!tmem_budget_over(&c->budget))
		return TMEM_RECLAIM_DONE;
	/* Holes first: slabs freed without losing a page. */
	freed = tmem_compact(c);
	if (!tmem_budget_over(&c->budget))
		return TMEM_RECLAIM_DONE;
	if (reclaim_evict(c, max_pages)) {
		freed = true;
		tmem_compact(c);	/* the holes the evictions left */
	}
	if (!tmem_budget_over(&c->budget))
		return TMEM_RECLAIM_DONE;
	if (tmem_tier_reclaim(c))
		return TMEM_RECLAIM_BUSY;	/* the writer is at it */
	return freed ? TMEM_RECLAIM_BUSY : TMEM_RECLAIM_STUCK;
}
