/* SPDX-License-Identifier: MIT */
/*
 * Handles; the encoding is in handle_i.h.
 */
#include "codec_i.h"
#include "handle_i.h"
#include "tier_space_i.h"

void tmem_handle_free(struct tmem_zs *zs, struct tmem_tier *tier, uint64_t h)
{
	if (tmem_h_on_disk(h))
		tmem_tier_put(tier, tmem_h_disk_off(h), tmem_h_len(h));
	else if (tmem_h_in_memory(h))
		tmem_zs_free(zs, tmem_h_len(h), tmem_h_loc(h));
}

int tmem_handle_load(struct tmem_zs *zs, uint64_t h, bool wide, void *page)
{
	if (wide) {
		tmem_fill_word(page, h);
		return 0;
	}
	if (tmem_h_type(h) == TMEM_H_SAME) {
		tmem_fill_word(page, h >> 32 | (h >> 32) << 32);
		return 0;
	}
	return tmem_decode_data(tmem_h_type(h) == TMEM_H_RAW,
				tmem_zs_ptr(zs, tmem_h_len(h), tmem_h_loc(h)),
				tmem_h_len(h), page);
}

const void *tmem_handle_data(struct tmem_zs *zs, uint64_t h)
{
	return tmem_zs_ptr(zs, tmem_h_len(h), tmem_h_loc(h));
}
