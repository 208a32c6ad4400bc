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

/*
 * The memory-pressure mode's policy (ledger_pressure.c): from two samples
 * of a PSI source's "some ... total=" stall time, the share of wall time
 * stalled in between (ppm), and the pool's effective total from it.
 */

/* Its settings, defaults resolved (tmem_ledger_pressure_resolve()). */
struct ledger_pressure_cfg {
	uint32_t period_ms;
	uint32_t high_ppm;	/* above: shrink */
	uint32_t low_ppm;	/* below: a calm period */
	uint32_t shrink_pct;	/* of the configured total, per period */
	uint32_t grow_pct;
	uint32_t calm_periods;	/* calm periods in a row before growing */
	uint32_t min_pct;	/* the floor, of the configured total */
};

/*
 * A measurement longer than this many periods (and at least
 * LEDGER_PRESSURE_GAP_MIN_NS: nobody called) says nothing of now: it
 * only starts a new one.
 */
#define LEDGER_PRESSURE_GAP_PERIODS	10
#define LEDGER_PRESSURE_GAP_MIN_NS	10000000000ull

struct ledger_pressure_in {
	uint64_t configured;	/* the total as set, >= 1 */
	uint64_t effective;	/* the total now */
	uint64_t prev_ns;	/* CLOCK_BOOTTIME of the last sample; 0: none */
	uint64_t now_ns;
	uint64_t prev_us;	/* the source's stall time then */
	uint64_t now_us;	/* and now */
	uint32_t calm;		/* calm periods in a row before this one */
};

struct ledger_pressure_out {
	uint64_t effective;	/* within floor..configured */
	uint32_t calm;
	uint32_t ppm;		/* stalled share of the elapsed time */
	uint32_t decision;	/* enum tmem_ledger_pressure_decision */
};

/*
 * Defaults for the zeros of @c, then its rules (period, ppm and
 * percentages within their bounds, low <= high): 0 or -EINVAL.
 */
int tmem_ledger_pressure_resolve(struct ledger_pressure_cfg *c);

/* The least effective total: min_pct of @configured, at least 1. */
uint64_t tmem_ledger_pressure_floor(const struct ledger_pressure_cfg *c,
				    uint64_t configured);

/** tmem_ledger_pressure_decide() - one period's decision. */
void tmem_ledger_pressure_decide(const struct ledger_pressure_cfg *c,
				 const struct ledger_pressure_in *in,
				 struct ledger_pressure_out *out);

/*
 * The effective total when the configured one changes from @old to
 * @conf: the same fraction of it, within the floor and @conf.
 */
uint64_t tmem_ledger_pressure_rescale(const struct ledger_pressure_cfg *c,
				      uint64_t old, uint64_t effective,
				      uint64_t conf);

/*
 * The "some" line's total= (microseconds stalled since boot) of PSI text
 * @buf (NUL-terminated): 0, or -EINVAL when there is none to parse.
 */
int tmem_ledger_psi_parse(const char *buf, uint64_t *some_us);

#endif /* TMEM_LEDGER_I_H */
