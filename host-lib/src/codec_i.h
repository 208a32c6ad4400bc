/* SPDX-License-Identifier: MIT */
/*
 * The codec: what a page's bytes become and how they come back.  A page
 * of one repeated 64-bit word keeps no data; any other is compressed
 * with LZ4, or kept raw when LZ4 does not shrink it enough.  No state,
 * no allocation: the caller owns every buffer.
 */
#ifndef TMEM_CODEC_I_H
#define TMEM_CODEC_I_H

#include <stdbool.h>
#include <stdint.h>

#include "tmem.h"		/* TMEM_PAGE_SIZE */

/* True when @page is one 64-bit word repeated; *wordp gets it. */
bool tmem_same_filled(const void *page, uint64_t *wordp);

/* Fill @page with the 64-bit word @w. */
void tmem_fill_word(void *page, uint64_t w);

/*
 * Compress @page into @dst, at most @cap bytes; the length, or 0 when it
 * does not fit in @cap (the page is then stored raw or refused).
 */
int tmem_compress(const void *page, void *dst, int cap);

/*
 * Turn @len stored bytes back into a page: a copy when @raw, else LZ4;
 * 0, or -EIO when they do not decompress to exactly one page.
 */
int tmem_decode_data(bool raw, const void *src, unsigned int len, void *page);

#endif /* TMEM_CODEC_I_H */
