/* SPDX-License-Identifier: MIT */
/*
 * The codec; see codec_i.h.
 */
#include <errno.h>
#include <string.h>

#include <lz4.h>

#include "codec_i.h"

bool tmem_same_filled(const void *page, uint64_t *wordp)
{
	const uint8_t *p = page;
	uint64_t first, w;

	memcpy(&first, p, sizeof(first));
	for (size_t off = 8; off < TMEM_PAGE_SIZE; off += 8) {
		memcpy(&w, p + off, sizeof(w));
		if (w != first)
			return false;
	}
	*wordp = first;
	return true;
}

void tmem_fill_word(void *page, uint64_t w)
{
	for (size_t off = 0; off < TMEM_PAGE_SIZE; off += 8)
		memcpy((uint8_t *)page + off, &w, sizeof(w));
}

/*
 * Capping the output makes LZ4 give up early on an incompressible page,
 * and keeps it in its bounds-checked mode: the page may be guest memory
 * that the guest changes under us.
 */
int tmem_compress(const void *page, void *dst, int cap)
{
	int len = LZ4_compress_default(page, dst, TMEM_PAGE_SIZE, cap);

	return len > 0 ? len : 0;
}

int tmem_decode_data(bool raw, const void *src, unsigned int len, void *page)
{
	if (raw) {
		memcpy(page, src, TMEM_PAGE_SIZE);
		return 0;
	}
	if (LZ4_decompress_safe(src, page, len, TMEM_PAGE_SIZE) !=
	    TMEM_PAGE_SIZE)
		return -EIO;
	return 0;
}
