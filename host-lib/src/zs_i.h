/* SPDX-License-Identifier: MIT */
/*
 * Size-class allocator for compressed pages (zsmalloc-like).
 *
 * Objects are rounded up to 16 bytes: class c holds objects of
 * (c + 1) * 16 bytes, so 256 classes cover 16..4096.  A slab of a class
 * is k contiguous 4 KiB pages (k per class, chosen to waste the least)
 * carved from 64 MiB anonymous arenas; a 16-byte header at its start
 * keeps the free list, whose links live in the free slots themselves.
 * An object never crosses a slab, so it is one memcpy to store and one
 * pointer to decompress from.  A slab whose last object is freed goes
 * back to its arena's free extents and is madvise(MADV_DONTNEED)'d: the
 * budget charged for it is returned, so host_bytes stays honest.
 *
 * Locking: one mutex per class around slot allocation and free; the
 * arena lock is taken only when a whole slab is created or released.
 */
#ifndef TMEM_ZS_I_H
#define TMEM_ZS_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "alloc_i.h"

#define TMEM_CLASS_SHIFT	4
#define TMEM_NR_CLASSES		256
#define TMEM_ARENA_SHIFT	26		/* 64 MiB */
#define TMEM_ARENA_PAGES	(1u << (TMEM_ARENA_SHIFT - 12))
#define TMEM_MAX_ARENAS		4095		/* 256 GiB of slabs */
#define TMEM_SLAB_MAX_PAGES	16
/* A slab may waste (header and tail) 1/TMEM_SLAB_WASTE of itself. */
#define TMEM_SLAB_WASTE		32
/*
 * Partial slabs of a class are kept in groups by how full they are
 * (inuse * TMEM_FULLNESS_GROUPS / nslots), as zsmalloc's fullness groups:
 * a slot is taken from the fullest, so the emptiest drain and go back.
 */
#define TMEM_FULLNESS_GROUPS	4
/*
 * Behind each arena's slab pages, one page holds a bit per slab page:
 * set on the first page of a slab in any group but the fullest (under
 * three quarters full), the slabs compaction empties.  tmem_zs_move() reads
 * it before touching the slab, so compaction walking the index touches
 * only the slabs it moves objects out of.  Charged as metadata.
 */
#define TMEM_ARENA_MAP		((1ul << TMEM_ARENA_SHIFT) + 4096)

/*
 * Location of an object: slot (14 bits) | first page of its slab in the
 * arena (14 bits) | arena (12 bits).  40 bits; a handle holds it (handle_i.h).
 */
#define TMEM_LOC_BITS		40

struct tmem_slab;

struct tmem_class {
	pthread_mutex_t lock;
	/* Slabs with a free slot, by fullness group, fullest last. */
	struct tmem_slab *partial[TMEM_FULLNESS_GROUPS];
	uint32_t size;			/* bytes per slot */
	uint16_t nslots;		/* slots per slab */
	uint16_t pages;			/* pages per slab */
	/* Written under the lock, read without it by tmem_zs_slack(). */
	uint32_t nslabs;		/* slabs of the class */
	uint32_t inuse;			/* objects in them */
} __attribute__((aligned(64)));

/* Free extents of one length: a stack sized when extents are carved. */
struct tmem_extents {
	uint32_t *v;
	uint32_t n, cap;
	uint32_t carved;		/* extents of this length ever made */
};

struct tmem_zs {
	struct tmem_class classes[TMEM_NR_CLASSES];
	struct tmem_budget *budget;	/* charged for slabs */
	pthread_mutex_t lock;		/* arenas and free extents */
	uint32_t nr_arenas;
	uint32_t bump;			/* first uncarved page, last arena */
	_Atomic uint64_t released;	/* slabs given back, ever */
	struct tmem_extents free[TMEM_SLAB_MAX_PAGES + 1];
	uint8_t *arenas[TMEM_MAX_ARENAS];
};

static inline unsigned int tmem_zs_class(unsigned int len)
{
	return (len + (1u << TMEM_CLASS_SHIFT) - 1) / (1u << TMEM_CLASS_SHIFT) - 1;
}

void tmem_zs_init(struct tmem_zs *zs, struct tmem_budget *budget);
/* Frees the arenas; every object must have been freed before. */
void tmem_zs_fini(struct tmem_zs *zs);
/* 0, -ENOSPC (budget) or -ENOMEM; *locp and *ptrp on success. */
int tmem_zs_alloc(struct tmem_zs *zs, unsigned int len, uint64_t *locp,
		  void **ptrp);
void tmem_zs_free(struct tmem_zs *zs, unsigned int len, uint64_t loc);
void *tmem_zs_ptr(struct tmem_zs *zs, unsigned int len, uint64_t loc);
bool tmem_zs_move(struct tmem_zs *zs, unsigned int len, uint64_t loc,
		  uint64_t *newlocp);
/*
 * Bytes of free slots in partly used slabs, over all classes: what
 * compaction can give back (relaxed reads, a snapshot).
 */
uint64_t tmem_zs_slack(struct tmem_zs *zs);
/*
 * Bytes charged for what lives until tmem_zs_fini(): each arena's
 * sparse-slab bitmap and the free-extent stacks.
 */
uint64_t tmem_zs_fixed_bytes(struct tmem_zs *zs);

#endif /* TMEM_ZS_I_H */
