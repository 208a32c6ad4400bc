/* SPDX-License-Identifier: MIT */
/*
 * The disk tier's space: each segment counts references (its live
 * pages, loads reading it, the writer while it fills or writes it), and
 * the last put gives it back to the free stack.  The lowest part of the
 * tier: the handle layer's put and pin land here.  See tier_impl_i.h.
 */
#include <string.h>
#include <sys/eventfd.h>

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

bool tmem_tier_hung(struct tmem_tier *t, unsigned int op)
{
	return __atomic_load_n(&t->hang_ops, __ATOMIC_ACQUIRE) & op;
}

void tmem_tier_hang_wait(struct tmem_tier *t, unsigned int op)
{
	if (!tmem_tier_hung(t, op))
		return;
	pthread_mutex_lock(&t->lock);
	TMEM_WR(t->io_wait, true);
	while (tmem_tier_hung(t, op) && !t->stop)
		pthread_cond_wait(&t->unhang, &t->lock);
	TMEM_WR(t->io_wait, false);
	pthread_mutex_unlock(&t->lock);
}

/*
 * Waiting contexts are woken through their completion fd; each stays on
 * the list until its request is finished (tmem_tier_unwait()), so that
 * a wakeup for another reason does not lose it.
 */
void tmem_tier_wait_locked(struct tmem_tier *t, struct tmem_ctx *ctx,
			   unsigned int why)
{
	ctx->wait_why |= why;
	if (ctx->waiting)
		return;
	ctx->waiting = true;
	ctx->wait_next = t->waiters;
	t->waiters = ctx;
}

void tmem_tier_wake_locked(struct tmem_tier *t, unsigned int why)
{
	for (struct tmem_ctx *ctx = t->waiters; ctx; ctx = ctx->wait_next)
		if (ctx->wait_why & why)
			eventfd_write(ctx->efd, 1);
}

void tmem_tier_unwait(struct tmem_ctx *ctx)
{
	struct tmem_tier *t = ctx->client->tier;
	struct tmem_ctx **pp;

	if (!ctx->waiting)
		return;		/* only this context's thread sets it */
	pthread_mutex_lock(&t->lock);
	for (pp = &t->waiters; *pp; pp = &(*pp)->wait_next) {
		if (*pp == ctx) {
			*pp = ctx->wait_next;
			break;
		}
	}
	ctx->waiting = false;
	ctx->wait_why = 0;
	pthread_mutex_unlock(&t->lock);
}
