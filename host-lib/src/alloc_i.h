/* SPDX-License-Identifier: MIT */
/*
 * The bottom layer of libtmem: allocation wrappers (with fault injection
 * for the tests), the budget, and the relaxed counters every layer uses.
 * It knows nothing of pages, handles or clients.
 */
#ifndef TMEM_ALLOC_I_H
#define TMEM_ALLOC_I_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * A client's budget: bytes charged for slabs, chunks and tables (never
 * per page), with a compare-and-swap so used never passes @limit.  The
 * limit may be lowered below used at run time (tmem_client_set_budget()):
 * then no charge succeeds until uncharges bring used within it, so used
 * never grows while it is over.
 */
struct tmem_budget {
	_Atomic uint64_t limit;		/* budget_bytes; see tmem_charge() */
	_Atomic uint64_t used;
	_Atomic uint64_t data_bytes;
	_Atomic uint64_t meta_bytes;
};

/* 0, or -ENOSPC when @data + @meta do not fit (nothing charged). */
int tmem_charge(struct tmem_budget *b, size_t data, size_t meta);
void tmem_uncharge(struct tmem_budget *b, size_t data, size_t meta);

static inline uint64_t tmem_budget_used(struct tmem_budget *b)
{
	return atomic_load_explicit(&b->used, memory_order_relaxed);
}

static inline uint64_t tmem_budget_limit(struct tmem_budget *b)
{
	return atomic_load_explicit(&b->limit, memory_order_relaxed);
}

static inline void tmem_budget_set_limit(struct tmem_budget *b,
					 uint64_t limit)
{
	/* Sequentially consistent: see tmem_charge(). */
	atomic_store_explicit(&b->limit, limit, memory_order_seq_cst);
}

/*
 * Over a limit that was lowered below what is used (shrinking): only
 * tmem_budget_set_limit() can make it so, since a charge never passes
 * the limit.  A snapshot of two relaxed loads.
 */
static inline bool tmem_budget_over(struct tmem_budget *b)
{
	return tmem_budget_used(b) > tmem_budget_limit(b);
}

#endif /* TMEM_ALLOC_I_H */
