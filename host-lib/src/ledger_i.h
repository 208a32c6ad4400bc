/* SPDX-License-Identifier: MIT */
/*
 * The host-wide pool's policy (ledger_policy.c), pure functions of
 * numbers that ledger.c reads from the file and has checked: weighted
 * shares and one member's grant.  host-lib/README.md, "Host-wide pool",
 * states it.  Every sum saturates and every product is 128-bit, so no
 * value of a hostile file overflows.  At the bottom: it includes nothing
 * of the library.
 */
#ifndef TMEM_LEDGER_I_H
#define TMEM_LEDGER_I_H

#include <stdbool.h>
#include <stdint.h>

/* An idle member keeps max(4 MiB, share / 64) above what it holds. */
#define LEDGER_HEADROOM_MIN	(4ull << 20)
#define LEDGER_HEADROOM_SHIFT	6
/* A member growing takes at least this much of what is free. */
#define LEDGER_GRANULE		(1ull << 20)

static inline uint64_t ledger_add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static inline uint64_t ledger_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t ledger_max(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* A cap as the member set it (0: none) against the total. */
static inline uint64_t ledger_cap(uint64_t cap, uint64_t total)
{
	return cap && cap < total ? cap : total;
}

/**
 * tmem_ledger_shares() - weighted water-filling of @total over @n
 * members: share[i] = min(cap[i], L * weight[i]) with L such that the
 * shares sum to @total, or every member is at its cap.  @cap[i] is an
 * effective cap (ledger_cap()); @weight[i] >= 1.  The remainder of the
 * integer division goes one byte each to the first uncapped members,
 * so the sum is exactly min(@total, sum of caps).
 */
void tmem_ledger_shares(uint64_t total, const uint32_t *weight,
			const uint64_t *cap, uint64_t *share, unsigned int n);

/* What the grant of one member is decided from (all checked values). */
struct ledger_in {
	uint64_t total;
	uint64_t others;	/* the other members' grants, summed */
	uint64_t grant;		/* its grant now */
	uint64_t held;
	uint64_t share;
	uint64_t cap;		/* effective: <= total */
	uint64_t min_bytes;	/* 0: TMEM_LEDGER_FLOOR */
	uint32_t weight;
	uint32_t others_growing_weight;	/* the weights of the others growing */
	bool wants_more;	/* as the member said */
	bool contended;		/* another member is starved */
};

struct ledger_out {
	uint64_t grant;
	uint64_t budget;
	bool growing;		/* it wants more than its grant */
	bool starved;		/* below its share, the pool short of it */
	bool full;		/* nothing free left */
};

/** tmem_ledger_decide() - one member's grant and budget at its update. */
void tmem_ledger_decide(const struct ledger_in *in, struct ledger_out *out);

#endif /* TMEM_LEDGER_I_H */
