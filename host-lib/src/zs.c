/* SPDX-License-Identifier: MIT */
/*
 * Size-class allocator; the layout and the locking are in zs_i.h.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "zs_i.h"

#define SLOT_NONE	0xfffu		/* also the bound on slots per slab */
#define EXT_NONE	0x3ffffffu	/* arena 4095 is never made */
#define PAGE_SHIFT	12
#define PAGE_SZ		(1u << PAGE_SHIFT)

/*
 * In-slab header; its 16 bytes are counted as metadata (a slab holds
 * about 9 stored pages, so each byte here is 0.1 byte per page).  The
 * neighbours on class->partial are extents, EXT_NONE for none.
 */
struct tmem_slab {
	uint64_t next : 26;
	uint64_t prev : 26;
	uint64_t inuse : 12;
	uint64_t ext : 26;		/* page | arena << 14 */
	uint64_t free_head : 12;	/* first freed slot, or SLOT_NONE */
	uint64_t carved : 12;		/* slots [carved, nslots) never used */
	uint64_t sparse : 1;		/* its bit in the arena's map is set */
};

#define SLAB_HDR	sizeof(struct tmem_slab)
_Static_assert(sizeof(struct tmem_slab) == 16, "slab header is 16 bytes");
_Static_assert(TMEM_MAX_ARENAS < 4096, "EXT_NONE names no slab");

#define LOC_SLOT(loc)	((uint32_t)(loc) & 0x3fff)
#define LOC_EXT(loc)	((uint32_t)((loc) >> 14) & 0x3ffffff)
#define EXT_PAGE(ext)	((ext) & 0x3fff)
#define EXT_ARENA(ext)	((ext) >> 14)

/*
 * Pages per slab: the fewest pages that waste at most 1/32 of the slab
 * (header and tail), else the least wasteful count up to 16 pages.  Two
 * wastes pull apart: the tail of every slab, smaller with more pages, and
 * the unused part of each class's last, partly filled slab, larger with
 * more pages (about half a slab per class in use, a few MiB over all
 * classes).  1/32 and 16 pages keep their sum near 4% from ~100 MiB of
 * data on (tmem-bench: host_bytes_per_compressed_byte).
 */
static void class_geometry(struct tmem_class *cls, uint32_t size)
{
	uint32_t best_k = 0, best_waste = UINT32_MAX;

	for (uint32_t k = 1; k <= TMEM_SLAB_MAX_PAGES; k++) {
		uint32_t bytes = k * PAGE_SZ;
		uint32_t n = (bytes - SLAB_HDR) / size;
		uint32_t waste = bytes - n * size;

		if (n == 0 || n >= SLOT_NONE)
			continue;
		if ((uint64_t)waste * TMEM_SLAB_WASTE <= bytes) {
			best_k = k;
			break;
		}
		/* Compare waste per byte of slab: waste/bytes. */
		if (!best_k || (uint64_t)waste * best_k * PAGE_SZ <
			       (uint64_t)best_waste * bytes) {
			best_k = k;
			best_waste = waste;
		}
	}
	cls->size = size;
	cls->pages = best_k;
	cls->nslots = (best_k * PAGE_SZ - SLAB_HDR) / size;
}

void tmem_zs_init(struct tmem_zs *zs, struct tmem_budget *budget)
{
	memset(zs, 0, sizeof(*zs));
	zs->budget = budget;
	pthread_mutex_init(&zs->lock, NULL);
	for (unsigned int c = 0; c < TMEM_NR_CLASSES; c++) {
		pthread_mutex_init(&zs->classes[c].lock, NULL);
		class_geometry(&zs->classes[c], (c + 1) << TMEM_CLASS_SHIFT);
	}
}

void tmem_zs_fini(struct tmem_zs *zs)
{
	for (uint32_t a = 0; a < zs->nr_arenas; a++) {
		tmem_munmap(zs->arenas[a], TMEM_ARENA_MAP);
		tmem_uncharge(zs->budget, 0, PAGE_SZ);
	}
	for (unsigned int k = 0; k <= TMEM_SLAB_MAX_PAGES; k++) {
		struct tmem_extents *fx = &zs->free[k];

		tmem_uncharge(zs->budget, 0, fx->cap ?
			      tmem_heap_cost(fx->cap * sizeof(uint32_t)) : 0);
		tmem_free(fx->v);
	}
	for (unsigned int c = 0; c < TMEM_NR_CLASSES; c++)
		pthread_mutex_destroy(&zs->classes[c].lock);
	pthread_mutex_destroy(&zs->lock);
}

uint64_t tmem_zs_fixed_bytes(struct tmem_zs *zs)
{
	uint64_t n;

	pthread_mutex_lock(&zs->lock);
	n = (uint64_t)zs->nr_arenas * PAGE_SZ;
	for (unsigned int k = 0; k <= TMEM_SLAB_MAX_PAGES; k++)
		if (zs->free[k].cap)
			n += tmem_heap_cost(zs->free[k].cap * sizeof(uint32_t));
	pthread_mutex_unlock(&zs->lock);
	return n;
}

static inline uint8_t *ext_ptr(struct tmem_zs *zs, uint32_t ext)
{
	return zs->arenas[EXT_ARENA(ext)] +
	       ((size_t)EXT_PAGE(ext) << PAGE_SHIFT);
}

/*
 * Make room to remember one more free extent of @k pages.  Done when an
 * extent is carved, so that freeing one later can never fail.
 */
static int extents_reserve(struct tmem_zs *zs, unsigned int k)
{
	struct tmem_extents *fx = &zs->free[k];
	uint32_t ncap = fx->cap ? fx->cap * 2 : 16;
	size_t old_cost = fx->cap ? tmem_heap_cost(fx->cap * 4) : 0;
	size_t new_cost = tmem_heap_cost((size_t)ncap * 4);
	uint32_t *v;
	int ret;

	if (fx->carved < fx->cap)
		return 0;
	ret = tmem_charge(zs->budget, 0, new_cost);
	if (ret)
		return ret;
	v = tmem_malloc((size_t)ncap * 4);
	if (!v) {
		tmem_uncharge(zs->budget, 0, new_cost);
		return -ENOMEM;
	}
	if (fx->n)
		memcpy(v, fx->v, fx->n * sizeof(*v));
	tmem_free(fx->v);
	tmem_uncharge(zs->budget, 0, old_cost);
	fx->v = v;
	fx->cap = ncap;
	return 0;
}

/* A fresh extent of @k pages from the last arena, or a new arena. */
static int extent_carve(struct tmem_zs *zs, unsigned int k, uint32_t *extp)
{
	int ret = extents_reserve(zs, k);

	if (ret)
		return ret;
	if (!zs->nr_arenas || zs->bump + k > TMEM_ARENA_PAGES) {
		uint8_t *a;

		if (zs->nr_arenas == TMEM_MAX_ARENAS)
			return -ENOMEM;
		ret = tmem_charge(zs->budget, 0, PAGE_SZ);
		if (ret)
			return ret;
		a = tmem_mmap(TMEM_ARENA_MAP);
		if (!a) {
			tmem_uncharge(zs->budget, 0, PAGE_SZ);
			return -ENOMEM;
		}
		zs->arenas[zs->nr_arenas++] = a;
		zs->bump = 0;
	}
	*extp = zs->bump | (zs->nr_arenas - 1) << 14;
	zs->bump += k;
	zs->free[k].carved++;
	return 0;
}

/* Charge and get a new, empty slab for @cls; no lock held on entry. */
static int slab_new(struct tmem_zs *zs, struct tmem_class *cls,
		    struct tmem_slab **slabp)
{
	struct tmem_extents *fx = &zs->free[cls->pages];
	size_t bytes = (size_t)cls->pages * PAGE_SZ;
	struct tmem_slab *slab;
	uint32_t ext;
	int ret;

	ret = tmem_charge(zs->budget, bytes - SLAB_HDR, SLAB_HDR);
	if (ret)
		return ret;
	pthread_mutex_lock(&zs->lock);
	if (fx->n)
		ext = fx->v[--fx->n];
	else
		ret = extent_carve(zs, cls->pages, &ext);
	pthread_mutex_unlock(&zs->lock);
	if (ret) {
		tmem_uncharge(zs->budget, bytes - SLAB_HDR, SLAB_HDR);
		return ret;
	}
	slab = (struct tmem_slab *)ext_ptr(zs, ext);
	slab->next = slab->prev = EXT_NONE;
	slab->ext = ext;
	slab->free_head = SLOT_NONE;
	slab->inuse = 0;
	slab->carved = 0;
	slab->sparse = false;	/* a released slab's bit was cleared */
	*slabp = slab;
	return 0;
}

/* Give an empty slab's pages back to the kernel and to its arena. */
static void slab_release(struct tmem_zs *zs, struct tmem_class *cls,
			 struct tmem_slab *slab)
{
	size_t bytes = (size_t)cls->pages * PAGE_SZ;
	uint32_t ext = slab->ext;
	struct tmem_extents *fx = &zs->free[cls->pages];

	madvise(slab, bytes, MADV_DONTNEED);
	pthread_mutex_lock(&zs->lock);
	fx->v[fx->n++] = ext;	/* room reserved by extents_reserve() */
	pthread_mutex_unlock(&zs->lock);
	atomic_fetch_add_explicit(&zs->released, 1, memory_order_relaxed);
	tmem_uncharge(zs->budget, bytes - SLAB_HDR, SLAB_HDR);
}

/* The fullness group of a partial slab holding @inuse objects. */
static inline unsigned int slab_group(const struct tmem_class *cls,
				      uint32_t inuse)
{
	return inuse * TMEM_FULLNESS_GROUPS / cls->nslots;
}

/* The word of the sparse-slab bitmap holding @ext's bit, and the bit. */
static inline uint64_t *sparse_word(struct tmem_zs *zs, uint32_t ext,
				    uint64_t *bitp)
{
	uint64_t *map = (uint64_t *)(zs->arenas[EXT_ARENA(ext)] +
				     ((size_t)1 << TMEM_ARENA_SHIFT));

	*bitp = 1ull << (EXT_PAGE(ext) % 64);
	return &map[EXT_PAGE(ext) / 64];
}

/*
 * Slabs of other classes share the word, under other locks: atomic.  A
 * slab changes group rarely, so this is not on every allocation.
 */
static void sparse_mark(struct tmem_zs *zs, struct tmem_slab *slab, bool on)
{
	uint64_t bit, *w = sparse_word(zs, slab->ext, &bit);

	if (slab->sparse == on)
		return;
	if (on)
		__atomic_fetch_or(w, bit, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(w, ~bit, __ATOMIC_RELAXED);
	slab->sparse = on;
}

static inline bool slab_sparse(const struct tmem_class *cls, uint32_t inuse)
{
	return slab_group(cls, inuse) < TMEM_FULLNESS_GROUPS - 1;
}

/* Link @slab into the group of its current inuse; class lock held. */
static void partial_add(struct tmem_zs *zs, struct tmem_class *cls,
			struct tmem_slab *slab)
{
	struct tmem_slab **head = &cls->partial[slab_group(cls, slab->inuse)];

	sparse_mark(zs, slab, slab_sparse(cls, slab->inuse));
	slab->prev = EXT_NONE;
	slab->next = *head ? (*head)->ext : EXT_NONE;
	if (*head)
		(*head)->prev = slab->ext;
	*head = slab;
}

static inline struct tmem_slab *slab_at(struct tmem_zs *zs, uint32_t ext)
{
	return ext == EXT_NONE ? NULL : (struct tmem_slab *)ext_ptr(zs, ext);
}

/* Unlink @slab; its inuse must still be the one it was linked with. */
static void partial_del(struct tmem_zs *zs, struct tmem_class *cls,
			struct tmem_slab *slab)
{
	struct tmem_slab *prev = slab_at(zs, slab->prev);
	struct tmem_slab *next = slab_at(zs, slab->next);

	if (prev)
		prev->next = slab->next;
	else
		cls->partial[slab_group(cls, slab->inuse)] = next;
	if (next)
		next->prev = slab->prev;
	slab->next = slab->prev = EXT_NONE;
}

/* The fullest partial slab of @cls, or NULL; class lock held. */
static struct tmem_slab *partial_fullest(struct tmem_class *cls)
{
	for (int g = TMEM_FULLNESS_GROUPS - 1; g >= 0; g--)
		if (cls->partial[g])
			return cls->partial[g];
	return NULL;
}

static inline uint8_t *slot_ptr(struct tmem_class *cls,
				struct tmem_slab *slab, uint32_t slot)
{
	return (uint8_t *)slab + SLAB_HDR + (size_t)slot * cls->size;
}

/*
 * Take a slot from @slab, a partial slab; class lock held.  The slab
 * changes group only when its fullness crosses a group's bound.
 */
static uint32_t slab_take(struct tmem_zs *zs, struct tmem_class *cls,
			  struct tmem_slab *slab)
{
	uint32_t slot = slab->free_head;
	bool full = slab->inuse + 1 == cls->nslots;
	uint16_t link;

	if (slot != SLOT_NONE) {
		memcpy(&link, slot_ptr(cls, slab, slot), sizeof(link));
		slab->free_head = link;
	} else {
		slot = slab->carved++;
	}
	__atomic_store_n(&cls->inuse, cls->inuse + 1, __ATOMIC_RELAXED);
	if (full || slab_group(cls, slab->inuse) !=
		    slab_group(cls, slab->inuse + 1)) {
		partial_del(zs, cls, slab);
		slab->inuse++;
		if (!full)
			partial_add(zs, cls, slab);
		else
			sparse_mark(zs, slab, false);
	} else {
		slab->inuse++;
	}
	return slot;
}

int tmem_zs_alloc(struct tmem_zs *zs, unsigned int len, uint64_t *locp,
		  void **ptrp)
{
	struct tmem_class *cls = &zs->classes[tmem_zs_class(len)];
	struct tmem_slab *slab;
	uint32_t slot;
	int ret;

	pthread_mutex_lock(&cls->lock);
	slab = partial_fullest(cls);
	if (!slab) {
		/* Creating a slab may mmap or madvise: not under the lock. */
		pthread_mutex_unlock(&cls->lock);
		ret = slab_new(zs, cls, &slab);
		if (ret)
			return ret;
		pthread_mutex_lock(&cls->lock);
		partial_add(zs, cls, slab);
		__atomic_store_n(&cls->nslabs, cls->nslabs + 1,
				 __ATOMIC_RELAXED);
	}
	slot = slab_take(zs, cls, slab);
	/* The header's words change under the lock: read ext under it. */
	*locp = slot | (uint64_t)slab->ext << 14;
	pthread_mutex_unlock(&cls->lock);
	*ptrp = slot_ptr(cls, slab, slot);
	return 0;
}

/*
 * Return a slot to its slab; class lock held.  True when the slab is now
 * empty and off the lists: the caller releases it once unlocked.
 */
static bool slab_put(struct tmem_zs *zs, struct tmem_class *cls,
		     struct tmem_slab *slab, uint32_t slot)
{
	bool was_full = slab->inuse == cls->nslots;
	uint16_t link = slab->free_head;

	memcpy(slot_ptr(cls, slab, slot), &link, sizeof(link));
	slab->free_head = slot;
	__atomic_store_n(&cls->inuse, cls->inuse - 1, __ATOMIC_RELAXED);
	if (was_full) {
		slab->inuse--;
	} else if (slab->inuse == 1 || slab_group(cls, slab->inuse) !=
		   slab_group(cls, slab->inuse - 1)) {
		partial_del(zs, cls, slab);
		slab->inuse--;
	} else {
		slab->inuse--;
		return false;
	}
	if (slab->inuse == 0) {
		__atomic_store_n(&cls->nslabs, cls->nslabs - 1,
				 __ATOMIC_RELAXED);
		sparse_mark(zs, slab, false);
		return true;
	}
	partial_add(zs, cls, slab);
	return false;
}

void tmem_zs_free(struct tmem_zs *zs, unsigned int len, uint64_t loc)
{
	struct tmem_class *cls = &zs->classes[tmem_zs_class(len)];
	struct tmem_slab *slab =
		(struct tmem_slab *)ext_ptr(zs, LOC_EXT(loc));
	bool empty;

	pthread_mutex_lock(&cls->lock);
	empty = slab_put(zs, cls, slab, LOC_SLOT(loc));
	pthread_mutex_unlock(&cls->lock);
	if (empty)
		slab_release(zs, cls, slab);
}

/*
 * A slab of the class with room and at least as many objects as @from,
 * or NULL; class lock held.  The fullest groups are looked at first, and
 * only the first few slabs of each, so a long list costs nothing.  "At
 * least as many" makes every move widen the gap between the two slabs:
 * compaction cannot ping-pong.
 */
static struct tmem_slab *fuller_slab(struct tmem_zs *zs,
				     struct tmem_class *cls,
				     struct tmem_slab *from)
{
	int low = slab_group(cls, from->inuse);

	for (int g = TMEM_FULLNESS_GROUPS - 1; g >= low; g--) {
		struct tmem_slab *s = cls->partial[g];

		for (int n = 0; s && n < 16; s = slab_at(zs, s->next), n++)
			if (s != from && s->inuse >= from->inuse)
				return s;
	}
	return NULL;
}

/*
 * Compaction: move the object at @loc out of its slab if the slab is
 * under three quarters full (its bit says so) and a fuller slab of the
 * class has room.  The caller holds the index shard lock that owns the
 * object, so nobody reads it meanwhile; it then stores *newlocp in the
 * handle.
 */
bool tmem_zs_move(struct tmem_zs *zs, unsigned int len, uint64_t loc,
		  uint64_t *newlocp)
{
	struct tmem_class *cls = &zs->classes[tmem_zs_class(len)];
	struct tmem_slab *from =
		(struct tmem_slab *)ext_ptr(zs, LOC_EXT(loc));
	struct tmem_slab *to;
	uint64_t bit, *w = sparse_word(zs, LOC_EXT(loc), &bit);
	uint32_t slot;
	bool empty;

	/* Most objects are in slabs that stay: do not touch those. */
	if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & bit))
		return false;
	pthread_mutex_lock(&cls->lock);
	to = slab_sparse(cls, from->inuse) ? fuller_slab(zs, cls, from) :
					     NULL;
	if (!to) {
		pthread_mutex_unlock(&cls->lock);
		return false;
	}
	slot = slab_take(zs, cls, to);
	memcpy(slot_ptr(cls, to, slot), slot_ptr(cls, from, LOC_SLOT(loc)),
	       len);
	empty = slab_put(zs, cls, from, LOC_SLOT(loc));
	*newlocp = slot | (uint64_t)to->ext << 14;
	pthread_mutex_unlock(&cls->lock);
	if (empty)
		slab_release(zs, cls, from);
	return true;
}

uint64_t tmem_zs_slack(struct tmem_zs *zs)
{
	uint64_t bytes = 0;

	for (unsigned int c = 0; c < TMEM_NR_CLASSES; c++) {
		struct tmem_class *cls = &zs->classes[c];
		uint64_t cap = (uint64_t)__atomic_load_n(&cls->nslabs,
							 __ATOMIC_RELAXED) *
			       cls->nslots;
		uint32_t inuse = __atomic_load_n(&cls->inuse,
						 __ATOMIC_RELAXED);

		if (cap > inuse)
			bytes += (cap - inuse) * cls->size;
	}
	return bytes;
}

void *tmem_zs_ptr(struct tmem_zs *zs, unsigned int len, uint64_t loc)
{
	struct tmem_class *cls = &zs->classes[tmem_zs_class(len)];
	struct tmem_slab *slab =
		(struct tmem_slab *)ext_ptr(zs, LOC_EXT(loc));

	return slot_ptr(cls, slab, LOC_SLOT(loc));
}
