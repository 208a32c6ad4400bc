/* SPDX-License-Identifier: MIT */
/*
 * What the handle layer needs of the disk tier: the reference a disk
 * handle holds on its segment.  The segments are the tier's (see
 * tier_impl_i.h); this is the only part of it below the handles.
 */
#ifndef TMEM_TIER_SPACE_I_H
#define TMEM_TIER_SPACE_I_H

#include <stdint.h>

struct tmem_tier;

/* A disk handle for @len bytes at @off was dropped from the index. */
void tmem_tier_put(struct tmem_tier *t, uint64_t off, unsigned int len);
/* Keep the segment of @off (under the shard lock holding its handle). */
void tmem_tier_pin(struct tmem_tier *t, uint64_t off);

#endif /* TMEM_TIER_SPACE_I_H */
