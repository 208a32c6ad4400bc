/* SPDX-License-Identifier: MIT */
/*
 * Allocation wrappers with fault injection, and the budget.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc_i.h"

static _Atomic long fault_nth = -1;
static _Atomic long fault_count;

void tmem_fault_inject(long nth)
{
	atomic_store(&fault_nth, -1);
	atomic_store(&fault_count, 0);
	atomic_store(&fault_nth, nth < 0 ? -1 : nth);
}

long tmem_fault_inject_count(void)
{
	return atomic_load(&fault_count);
}

/* True when this allocation is the one a test asked to fail. */
static bool fault_hit(void)
{
	long n = atomic_fetch_add_explicit(&fault_count, 1,
					   memory_order_relaxed);

	return n == atomic_load_explicit(&fault_nth, memory_order_relaxed);
}

void *tmem_malloc(size_t size)
{
	if (fault_hit())
		return NULL;
	return malloc(size);
}

void *tmem_zalloc_aligned(size_t size)
{
	void *p;

	if (fault_hit() || posix_memalign(&p, TMEM_CACHELINE, size))
		return NULL;
	return memset(p, 0, size);
}

void *tmem_zalloc_align(size_t size, size_t align)
{
	void *p;

	if (fault_hit() || posix_memalign(&p, align, size))
		return NULL;
	return memset(p, 0, size);
}

void tmem_free(void *p)
{
	free(p);
}

/*
 * Arenas reserve address space only: MAP_NORESERVE, and pages become
 * resident when a slab is first written.
 */
void *tmem_mmap(size_t len)
{
	void *p;

	if (fault_hit())
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void tmem_munmap(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

/*
 * Charge @data + @meta bytes to the budget.  The compare-and-swap never
 * lets the total pass the limit (budget_bytes) it read, so concurrent
 * stores cannot overshoot together.  The limit is read again on each
 * try: one lowered meanwhile (even below used) is the one the charge
 * must fit.  Called per slab, chunk or table, never per page.
 *
 * A lowering between the read and the compare-and-swap would let the
 * charge land above both the new limit and what was used when it was
 * lowered (DEV-25's bound).  So the limit is read once more after the
 * compare-and-swap; the limit's store and the loads around the swap
 * are sequentially consistent: either that read sees the new limit, or
 * the charge came before the lowering and is part of what was used at
 * it.  data_bytes and meta_bytes (host_bytes) are added before that
 * read, so that a charge kept is in the host_bytes read after the
 * lowering; one over the limit seen then is undone (host_bytes may show
 * it for that moment, never above a limit in force when it started).
 */
int tmem_charge(struct tmem_budget *b, size_t data, size_t meta)
{
	uint64_t add = (uint64_t)data + meta;
	uint64_t cur = atomic_load_explicit(&b->used, memory_order_relaxed);
	uint64_t limit;

	do {
		limit = atomic_load_explicit(&b->limit, memory_order_seq_cst);
		if (cur > limit || add > limit - cur)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak_explicit(&b->used, &cur,
							cur + add,
							memory_order_seq_cst,
							memory_order_relaxed));
	if (data)
		atomic_fetch_add_explicit(&b->data_bytes, data,
					  memory_order_seq_cst);
	if (meta)
		atomic_fetch_add_explicit(&b->meta_bytes, meta,
					  memory_order_seq_cst);
	limit = atomic_load_explicit(&b->limit, memory_order_seq_cst);
	if (cur + add > limit) {
		tmem_uncharge(b, data, meta);
		return -ENOSPC;
	}
	return 0;
}

void tmem_uncharge(struct tmem_budget *b, size_t data, size_t meta)
{
	if (data)
		atomic_fetch_sub_explicit(&b->data_bytes, data,
					  memory_order_relaxed);
	if (meta)
		atomic_fetch_sub_explicit(&b->meta_bytes, meta,
					  memory_order_relaxed);
	atomic_fetch_sub_explicit(&b->used, (uint64_t)data + meta,
				  memory_order_relaxed);
}
