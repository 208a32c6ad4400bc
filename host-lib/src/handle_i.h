/* SPDX-License-Identifier: MIT */
/*
 * The handle: the 8 bytes the index keeps per page, naming where the
 * page's data is.  This layer owns the encoding of every kind (in the
 * allocator, same-filled, on the disk tier) and frees and loads them;
 * no other layer takes a handle apart by hand.
 *
 * A handle is 0 when the slot of a chunk is empty, else:
 *   bits  1..0   type: TMEM_H_LZ4, TMEM_H_RAW or TMEM_H_SAME
 *   LZ4/RAW:
 *   bits 13..2   stored length - 1 (LZ4_decompress_safe needs the exact
 *                length; RAW is always 4096)
 *   bits 53..14  object location in the allocator (zs_i.h: slot, slab
 *                page, arena)
 *   LZ4/RAW with bit 63 set (TMEM_H_DISK): the disk tier holds the data,
 *   bits 62..14 are its byte offset in the backing file
 *   SAME (the page is one 32-bit word repeated; no data is stored):
 *   bits 63..32  the word
 * A page of one 64-bit word whose halves differ does not fit: the index
 * then keeps the word itself in the slot and marks it wide (index_i.h).
 */
#ifndef TMEM_HANDLE_I_H
#define TMEM_HANDLE_I_H

#include <stdbool.h>
#include <stdint.h>

#include "zs_i.h"

enum {
	TMEM_H_LZ4 = 1,
	TMEM_H_RAW = 2,
	TMEM_H_SAME = 3,
};

static inline unsigned int tmem_h_type(uint64_t h)
{
	return h & 3;
}

/* Bytes the allocator holds for @h: 0 for a same-filled page. */
static inline unsigned int tmem_h_len(uint64_t h)
{
	switch (tmem_h_type(h)) {
	case TMEM_H_LZ4:
		return ((h >> 2) & 0xfff) + 1;
	case TMEM_H_RAW:
		return 4096;
	default:
		return 0;
	}
}

static inline uint64_t tmem_h_loc(uint64_t h)
{
	return h >> 14;
}

#define TMEM_H_DISK		(1ull << 63)
#define TMEM_DISK_OFF_BITS	49

/*
 * Only for a handle, never for the word of a wide slot.  A SAME handle's
 * word may have its top bit set: it is never a disk handle.
 */
static inline bool tmem_h_on_disk(uint64_t h)
{
	return (h & TMEM_H_DISK) && (h & 3) != TMEM_H_SAME;
}

/* A handle whose data is in the allocator (LZ4 or RAW, not on disk). */
static inline bool tmem_h_in_memory(uint64_t h)
{
	unsigned int t = tmem_h_type(h);

	return (t == TMEM_H_LZ4 || t == TMEM_H_RAW) && !(h & TMEM_H_DISK);
}

static inline uint64_t tmem_h_disk_off(uint64_t h)
{
	return (h >> 14) & ((1ull << TMEM_DISK_OFF_BITS) - 1);
}

static inline uint64_t tmem_h_make(unsigned int type, unsigned int len,
				   uint64_t loc)
{
	return type | (uint64_t)((len - 1) & 0xfff) << 2 | loc << 14;
}

static inline uint64_t tmem_h_make_disk(unsigned int type, unsigned int len,
					uint64_t off)
{
	return TMEM_H_DISK | tmem_h_make(type, len, off);
}

static inline uint64_t tmem_h_same(uint32_t word)
{
	return TMEM_H_SAME | (uint64_t)word << 32;
}

struct tmem_tier;

/*
 * Give back what @h holds: its allocator slot, or its reference on the
 * disk tier's segment (@tier may be NULL when no disk handle exists).
 * Nothing for 0 or a same-filled page.
 */
void tmem_handle_free(struct tmem_zs *zs, struct tmem_tier *tier, uint64_t h);

/*
 * Rebuild the page of @h into @page; @wide: @h is a wide slot's 64-bit
 * word.  Not for a disk handle (the tier reads those).  0 or -EIO.
 */
int tmem_handle_load(struct tmem_zs *zs, uint64_t h, bool wide, void *page);

/* The stored bytes (tmem_h_len(@h) of them) of an in-memory handle. */
const void *tmem_handle_data(struct tmem_zs *zs, uint64_t h);

#endif /* TMEM_HANDLE_I_H */
