/* SPDX-License-Identifier: MIT */
/*
 * The disk tier's configuration: its defaults and the checks of
 * tmem_client_new2(), for a backing file and for a RADOS pool alike.
 */
#include <errno.h>

#include "tier_impl_i.h"

#define TMEM_XSTR(x)	#x
#define TMEM_STR(x)	TMEM_XSTR(x)

/* The configuration with its defaults filled in (see tmem.h). */
void tmem_tier_params(const struct tmem_client_config *cfg, uint32_t *segp,
		      unsigned int *highp, unsigned int *lowp)
{
	unsigned int high = cfg->writeback_high ? cfg->writeback_high :
						  TMEM_DEFAULT_WRITEBACK_HIGH;

	*segp = cfg->segment_size ? cfg->segment_size :
				    TMEM_DEFAULT_SEGMENT_SIZE;
	*highp = high;
	*lowp = cfg->writeback_low ? cfg->writeback_low :
				     high > 10 ? high - 10 : high / 2;
}

int tmem_tier_config_check(const struct tmem_client_config *cfg,
			   struct tmem_why *why)
{
	unsigned int high, low;
	uint32_t seg;

	tmem_tier_params(cfg, &seg, &high, &low);
	if (cfg->rados_pool) {
		if (!cfg->rados_pool[0])
			return tmem_refuse(why, -EINVAL, "rados_pool is empty: "
					   "name the pool, or give NULL for no "
					   "RADOS tier");
		if (!cfg->rados_namespace || !cfg->rados_namespace[0])
			return tmem_refuse(why, -EINVAL, "rados_namespace is "
					   "needed with rados_pool: each client "
					   "has its own");
		if (!cfg->backing_size)
			return tmem_refuse(why, -EINVAL, "backing_size must be "
					   "set with rados_pool: the bytes of "
					   "the pool the tier may use");
	} else if (!cfg->backing_file[0]) {
		return tmem_refuse(why, -EINVAL, "backing_file is empty: name "
				   "a file, or give NULL for no disk tier");
	}
	if (seg < TMEM_MIN_SEGMENT_SIZE || seg > TMEM_MAX_SEGMENT_SIZE ||
	    (seg & (seg - 1)))
		return tmem_refuse(why, -EINVAL, "segment_size %u is not a "
				   "power of 2 between %u and %u bytes (0 "
				   "selects %u)", seg, TMEM_MIN_SEGMENT_SIZE,
				   TMEM_MAX_SEGMENT_SIZE,
				   TMEM_DEFAULT_SEGMENT_SIZE);
	if (high > 100)
		return tmem_refuse(why, -EINVAL, "writeback_high %u is over "
				   "100 (a percentage of budget_bytes)", high);
	if (low >= high)
		return tmem_refuse(why, -EINVAL, "writeback_low %u is not below "
				   "writeback_high %u%s", low, high,
				   cfg->writeback_high ? "" :
				   " (0 selects " TMEM_STR(TMEM_DEFAULT_WRITEBACK_HIGH)
				   ")");
	if (cfg->backing_size &&
	    cfg->backing_size / seg < TMEM_TIER_MIN_SEGMENTS)
		return tmem_refuse(why, -EINVAL, "backing_size %llu is smaller "
				   "than %d segments of %u bytes (%llu bytes)",
				   (unsigned long long)cfg->backing_size,
				   TMEM_TIER_MIN_SEGMENTS, seg,
				   TMEM_TIER_MIN_SEGMENTS *
				   (unsigned long long)seg);
	if (cfg->backing_size >> TMEM_DISK_OFF_BITS)
		return tmem_refuse(why, -EINVAL, "backing_size %llu is over the "
				   "disk tier's limit of %llu bytes",
				   (unsigned long long)cfg->backing_size,
				   (1ull << TMEM_DISK_OFF_BITS) - 1);
	return 0;
}
