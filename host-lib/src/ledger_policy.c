/* SPDX-License-Identifier: MIT */
/*
 * The host-wide pool's policy (ledger_i.h): weighted shares and one
 * member's grant.  No file, no lock, no clock: ledger.c gives it the
 * numbers, checked, and writes back what it decides.
 */
#include "tmem_ledger.h"
#include "ledger_i.h"

void tmem_ledger_shares(uint64_t total, const uint32_t *weight,
			const uint64_t *cap, uint64_t *share, unsigned int n)
{
	uint64_t open = 0, left = total, fair[TMEM_LEDGER_MAX_MEMBERS];

	if (n > TMEM_LEDGER_MAX_MEMBERS) {
		for (unsigned int i = TMEM_LEDGER_MAX_MEMBERS; i < n; i++)
			share[i] = 0;
		n = TMEM_LEDGER_MAX_MEMBERS;
	}
	for (unsigned int i = 0; i < n; i++) {
		share[i] = 0;
		open |= 1ull << i;
	}
	/*
	 * Each round: the fair part of what is left for each open member;
	 * those whose cap is below it are fixed at their cap (their caps sum
	 * to at most what is left), and the rest share again.  At most n
	 * rounds, as every round but the last fixes one member at least.
	 */
	while (open) {
		uint64_t wsum = 0, capped = 0;

		for (unsigned int i = 0; i < n; i++)
			if (open & (1ull << i))
				wsum += weight[i] ? weight[i] : 1;
		for (unsigned int i = 0; i < n; i++) {
			if (!(open & (1ull << i)))
				continue;
			fair[i] = (uint64_t)((unsigned __int128)left *
					     (weight[i] ? weight[i] : 1) / wsum);
			if (cap[i] <= fair[i])
				capped |= 1ull << i;
		}
		if (!capped)
			break;
		for (unsigned int i = 0; i < n; i++) {
			if (capped & (1ull << i)) {
				share[i] = cap[i];
				left -= cap[i];
			}
		}
		open &= ~capped;
	}
	/* No open member is at its cap: each takes its fair part, and the
	 * remainder (fewer bytes than open members) a byte each. */
	for (unsigned int i = 0; i < n; i++) {
		if (open & (1ull << i)) {
			share[i] = fair[i];
			left -= fair[i];
		}
	}
	for (unsigned int i = 0; i < n && left; i++) {
		if ((open & (1ull << i)) && share[i] < cap[i]) {
			share[i]++;
			left--;
		}
	}
}

void tmem_ledger_decide(const struct ledger_in *in, struct ledger_out *out)
{
	uint64_t cap = ledger_min(in->cap, in->total);
	uint64_t share = ledger_min(in->share, cap);
	uint64_t grant = ledger_min(in->grant, cap);
	uint64_t used = ledger_add_sat(in->others, grant);
	uint64_t free = in->total > used ? in->total - used : 0;
	uint64_t floor = ledger_min(in->min_bytes ? in->min_bytes :
				    TMEM_LEDGER_FLOOR, share);
	uint64_t headroom = ledger_max(LEDGER_HEADROOM_MIN,
				       share >> LEDGER_HEADROOM_SHIFT);
	uint64_t target, g = grant, to_share, free_after;

	if (in->wants_more) {
		target = cap;
	} else {
		target = ledger_max(ledger_add_sat(in->held, headroom), floor);
		/* Hysteresis: within one headroom above that, keep it. */
		if (grant > target && grant - target <= headroom)
			target = grant;
		target = ledger_min(target, cap);
	}
	if (in->contended)
		target = ledger_min(target, share);

	if (target < grant) {
		/* Give back, but keep covering what is still held. */
		g = ledger_max(target, ledger_min(grant, in->held));
	} else if (target > grant) {
		uint64_t wsum = (uint64_t)in->others_growing_weight +
				(in->weight ? in->weight : 1);
		uint64_t allow = (uint64_t)((unsigned __int128)free *
					    (in->weight ? in->weight : 1) / wsum);

		allow = ledger_max(allow, ledger_min(free, LEDGER_GRANULE));
		g = grant + ledger_min(target - grant, ledger_min(allow, free));
	}
	to_share = ledger_min(share, target);
	free_after = g > grant ? free - (g - grant) :
		     ledger_add_sat(free, grant - g);
	out->grant = g;
	out->budget = ledger_min(g, target);
	out->growing = target > g;
	out->starved = g < to_share && free < to_share - grant;
	out->full = free_after < LEDGER_GRANULE;
}
