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
 * lets the total pass the limit (budget_bytes), even for a moment, so
 * concurrent stores cannot overshoot together.  The limit is read again
 * on each try: one lowered meanwhile (even below used) is the one the
 * charge must fit.  Called per slab, chunk or table, never per page.
 */
int tmem_charge(struct tmem_budget *b, size_t data, size_t meta)
{
	uint64_t add = (uint64_t)data + meta;
	uint64_t cur = atomic_load_explicit(&b->used, memory_order_relaxed);
	uint64_t limit;

	do {
		limit = tmem_budget_limit(b);
		if (cur > limit || add > limit - cur)
			return -ENOSPC;
	} while (!atomic_compare_exchange_weak_explicit(&b->used, &cur,
							cur + add,
							memory_order_relaxed,
							memory_order_relaxed));
	if (data)
		atomic_fetch_add_explicit(&b->data_bytes, data,
					  memory_order_relaxed);
	if (meta)
		atomic_fetch_add_explicit(&b->meta_bytes, meta,
					  memory_order_relaxed);
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
