/* SPDX-License-Identifier: MIT */
/*
 * The disk tier's space: each segment counts references (its live
 * pages, loads reading it, the writer while it fills or writes it), and
 * the last put gives it back to the free stack.  The lowest part of the
 * tier: the handle layer's put and pin land here.  See tier_impl_i.h.
 */
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tier_impl_i.h"


/*
 * XXH3 of the key and info (seeding) and of the page's bytes: a torn or
 * misdirected write, a flipped bit, another process writing the file, or
 * a slot reused for another key all show up as a mismatch.
 */
uint64_t tmem_seg_check(const struct seg_hdr *hdr, const void *data,
			unsigned int len)
{
	return XXH3_64bits_withSeed(data, len, XXH3_64bits(hdr, HDR_KEY));
}

static void seg_release(struct tmem_tier *t, uint32_t segno)
{
	struct tier_seg *seg = &t->segs[segno];

	pthread_mutex_lock(&t->lock);
	seg->state = SEG_FREE;
	seg->buf = -1;
	seg->used = 0;
	seg->gen++;
	t->free[t->nfree++] = segno;
	TMEM_WR(t->full, false);
	t->stalled = false;
	pthread_mutex_unlock(&t->lock);
}

bool tmem_seg_put(struct tmem_tier *t, uint32_t segno, unsigned int len)
{
	struct tier_seg *seg = &t->segs[segno];
	uint32_t old;

	if (len) {
		old = atomic_fetch_sub_explicit(&seg->live_bytes, len,
						memory_order_relaxed);
		/* Worth cleaning now: a full tier may have room again. */
		if (old >= CLEAN_MAX(t) && old - len < CLEAN_MAX(t))
			TMEM_WR(t->full, false);
	}
	if (atomic_fetch_sub_explicit(&seg->ref, 1, memory_order_acq_rel) != 1)
		return false;
	seg_release(t, segno);
	return true;
}

bool tmem_seg_tryget(struct tier_seg *seg)
{
	uint32_t r = atomic_load_explicit(&seg->ref, memory_order_relaxed);

	do {
		if (!r)
			return false;
	} while (!atomic_compare_exchange_weak_explicit(&seg->ref, &r, r + 1,
							memory_order_acq_rel,
							memory_order_relaxed));
	return true;
}

void tmem_tier_put(struct tmem_tier *t, uint64_t off, unsigned int len)
{
	tmem_seg_put(t, off / t->seg_size, len);
}

void tmem_tier_pin(struct tmem_tier *t, uint64_t off)
{
	/* The handle's own reference keeps it above 0. */
	atomic_fetch_add_explicit(&t->segs[off / t->seg_size].ref, 1,
				  memory_order_relaxed);
}

int tmem_tier_injected(struct tmem_tier *t, unsigned int op)
{
	if (!(__atomic_load_n(&t->inject_ops, __ATOMIC_RELAXED) & op))
		return 0;
	return __atomic_load_n(&t->inject_err, __ATOMIC_RELAXED);
}
