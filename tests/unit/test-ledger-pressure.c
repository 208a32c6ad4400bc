/* SPDX-License-Identifier: MIT */
/*
 * The host-wide pool's memory-pressure mode (tmem_ledger.h,
 * host-lib/README.md "Memory pressure"): the pure policy of
 * src/ledger_pressure.c driven directly (shrink above high, hold
 * between, grow only after calm_periods, the floor, the cap, a long
 * gap, a counter that goes back, PSI text).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tmem-test.h"
#include "ledger_i.h"

#define MiB		(1ull << 20)
#define GiB		(1ull << 30)
#define SEC		1000000000ull

/* ---- the pure policy --------------------------------------------------- */

static struct ledger_pressure_cfg defaults(void)
{
	struct ledger_pressure_cfg c = { 0 };

	assert_int_equal(tmem_ledger_pressure_resolve(&c), 0);
	return c;
}

/* One period of @ns at @ppm stalled, from @eff after @calm calm ones. */
static struct ledger_pressure_out period(const struct ledger_pressure_cfg *c,
					 uint64_t eff, uint32_t calm,
					 uint64_t ns, uint32_t ppm)
{
	struct ledger_pressure_in in = {
		.configured = 1 * GiB,
		.effective = eff,
		.prev_ns = 100 * SEC,
		.now_ns = 100 * SEC + ns,
		.prev_us = 5000,
		.now_us = 5000 + (uint64_t)((unsigned __int128)ns / 1000 *
					    ppm / 1000000),
		.calm = calm,
	};
	struct ledger_pressure_out out;

	tmem_ledger_pressure_decide(c, &in, &out);
	return out;
}

static void test_resolve(void **state)
{
	struct ledger_pressure_cfg c = defaults(), bad;

	(void)state;
	assert_int_equal(c.period_ms, 1000);
	assert_int_equal(c.high_ppm, 10000);
	assert_int_equal(c.low_ppm, 1000);
	assert_int_equal(c.shrink_pct, 10);
	assert_int_equal(c.grow_pct, 2);
	assert_int_equal(c.calm_periods, 3);
	assert_int_equal(c.min_pct, 25);
	/* The bounds, each just inside and just outside. */
	bad = c;
	bad.period_ms = TMEM_LEDGER_PRESSURE_PERIOD_MIN_MS;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), 0);
	bad.period_ms = TMEM_LEDGER_PRESSURE_PERIOD_MIN_MS - 1;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
	bad = c;
	bad.period_ms = TMEM_LEDGER_PRESSURE_PERIOD_MAX_MS + 1;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
	bad = c;
	bad.high_ppm = TMEM_LEDGER_PRESSURE_PPM_MAX;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), 0);
	bad.high_ppm = TMEM_LEDGER_PRESSURE_PPM_MAX + 1;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
	bad = c;
	bad.low_ppm = bad.high_ppm;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), 0);
	bad.low_ppm = bad.high_ppm + 1;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
	/* A high below the default low, low left 0: refused, not guessed. */
	bad = (struct ledger_pressure_cfg){ .high_ppm = 500 };
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
	bad = c;
	bad.shrink_pct = 101;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
	bad = c;
	bad.grow_pct = 101;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
	bad = c;
	bad.min_pct = 101;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
	bad.min_pct = 100;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), 0);
	bad = c;
	bad.calm_periods = TMEM_LEDGER_PRESSURE_CALM_MAX + 1;
	assert_int_equal(tmem_ledger_pressure_resolve(&bad), -EINVAL);
}

static void test_shrink_hold_grow(void **state)
{
	struct ledger_pressure_cfg c = defaults();
	struct ledger_pressure_out o;
	uint64_t step = 1 * GiB / 10;

	(void)state;
	/* 2% stalled: above high, one step of 10% of the configured. */
	o = period(&c, 1 * GiB, 2, SEC, 20000);
	assert_int_equal(o.ppm, 20000);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_SHRINK);
	assert_int_equal(o.effective, 1 * GiB - step);
	assert_int_equal(o.calm, 0);
	/* Just above high shrinks, at high holds. */
	o = period(&c, 1 * GiB, 0, SEC, 10001);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_SHRINK);
	o = period(&c, 1 * GiB, 0, SEC, 10000);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	/* Between low and high: hold, and the calm row is broken. */
	o = period(&c, 600 * MiB, 2, SEC, 5000);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(o.effective, 600 * MiB);
	assert_int_equal(o.calm, 0);
	o = period(&c, 600 * MiB, 2, SEC, 1000);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(o.calm, 0);
	/* Below low: calm, but growth only at the third in a row. */
	o = period(&c, 600 * MiB, 0, SEC, 999);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(o.calm, 1);
	o = period(&c, 600 * MiB, 1, SEC, 0);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(o.calm, 2);
	assert_int_equal(o.effective, 600 * MiB);
	o = period(&c, 600 * MiB, 2, SEC, 0);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_GROW);
	assert_int_equal(o.calm, 3);
	assert_int_equal(o.effective, 600 * MiB + 1 * GiB * 2 / 100);
	/* And every calm period after. */
	o = period(&c, 700 * MiB, 40, SEC, 0);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_GROW);
	assert_int_equal(o.calm, 41);
}

static void test_floor_and_cap(void **state)
{
	struct ledger_pressure_cfg c = defaults();
	struct ledger_pressure_out o;
	uint64_t eff = 1 * GiB, floor = 1 * GiB / 4;
	int n = 0;

	(void)state;
	assert_int_equal(tmem_ledger_pressure_floor(&c, 1 * GiB), floor);
	/* Full pressure: 8 steps of 10% reach the floor, never below. */
	do {
		o = period(&c, eff, 0, SEC, 1000000);
		assert_true(o.effective >= floor && o.effective < eff);
		eff = o.effective;
		n++;
	} while (eff > floor);
	assert_int_equal(n, 8);
	o = period(&c, eff, 0, SEC, 1000000);
	assert_int_equal(o.effective, floor);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(o.ppm, 1000000);
	/* Calm: up by 2% to the configured total, never above. */
	o = period(&c, 1 * GiB - 1000, 5, SEC, 0);
	assert_int_equal(o.effective, 1 * GiB);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_GROW);
	o = period(&c, 1 * GiB, 5, SEC, 0);
	assert_int_equal(o.effective, 1 * GiB);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	/* Out of range in (a file's value): brought within. */
	o = period(&c, 5 * GiB, 0, SEC, 5000);
	assert_int_equal(o.effective, 1 * GiB);
	o = period(&c, 1, 0, SEC, 5000);
	assert_int_equal(o.effective, floor);
	/* A stall counter that moved more than the wall clock: 100%. */
	o = period(&c, 1 * GiB, 0, SEC, 5000000);
	assert_int_equal(o.ppm, 1000000);
	/* A tiny pool still moves and keeps a floor above 0. */
	{
		struct ledger_pressure_in in = {
			.configured = 3, .effective = 3,
			.prev_ns = SEC, .now_ns = 2 * SEC,
			.prev_us = 0, .now_us = 1000000,
		};

		tmem_ledger_pressure_decide(&c, &in, &o);
		assert_int_equal(o.effective, 2);
		in.effective = 1;
		tmem_ledger_pressure_decide(&c, &in, &o);
		assert_int_equal(o.effective, 1);
	}
}

static void test_gap_and_baseline(void **state)
{
	struct ledger_pressure_cfg c = defaults();
	struct ledger_pressure_in in = {
		.configured = 1 * GiB, .effective = 800 * MiB,
		.prev_ns = 50 * SEC, .now_ns = 51 * SEC,
		.prev_us = 1000, .now_us = 1000 + 500000, .calm = 7,
	};
	struct ledger_pressure_out o;

	(void)state;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_SHRINK);
	/* A gap of over 10 periods (10 s at least): only a new baseline. */
	in.now_ns = in.prev_ns + 10 * SEC + 1;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(o.effective, 800 * MiB);
	assert_int_equal(o.calm, 0);
	/* Exactly at the gap it still counts (50% stalled over 10 s). */
	in.now_ns = in.prev_ns + 10 * SEC;
	in.now_us = in.prev_us + 5000000;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_SHRINK);
	/* A calm hour idle does not grow, however long it was. */
	in.now_ns = in.prev_ns + 3600 * SEC;
	in.now_us = in.prev_us;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(o.calm, 0);
	/* A longer period has a longer gap. */
	c.period_ms = 60000;
	in.now_ns = in.prev_ns + 3600 * SEC;
	in.now_us = in.prev_us + 3600ull * 1000000 / 2;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	in.now_ns = in.prev_ns + 600 * SEC;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_SHRINK);
	c = defaults();
	/* No sample before, a clock or counter going back: baseline. */
	in.now_ns = in.prev_ns + SEC;
	in.now_us = in.prev_us + 500000;
	in.prev_ns = 0;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	in.prev_ns = in.now_ns;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	in.prev_ns = in.now_ns - SEC;
	in.prev_us = in.now_us + 1;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(o.ppm, 0);
	/* Hostile extremes do not overflow. */
	in.prev_us = 0;
	in.now_us = UINT64_MAX;
	in.prev_ns = 1;
	in.now_ns = 2;
	tmem_ledger_pressure_decide(&c, &in, &o);
	assert_int_equal(o.ppm, 1000000);
	assert_int_equal(o.decision, TMEM_LEDGER_PRESSURE_SHRINK);
}

static void test_rescale(void **state)
{
	struct ledger_pressure_cfg c = defaults();

	(void)state;
	/* Shrunk to half of 1 GiB, configured 2 GiB: half of that. */
	assert_int_equal(tmem_ledger_pressure_rescale(&c, 1 * GiB, 512 * MiB,
						      2 * GiB), 1 * GiB);
	/* At the configured total: the new one. */
	assert_int_equal(tmem_ledger_pressure_rescale(&c, 1 * GiB, 1 * GiB,
						      3 * GiB), 3 * GiB);
	/* Never below the floor nor above the configured. */
	assert_int_equal(tmem_ledger_pressure_rescale(&c, 1 * GiB, 1,
						      4 * GiB), 1 * GiB);
	assert_int_equal(tmem_ledger_pressure_rescale(&c, 1 * GiB, 9 * GiB,
						      2 * GiB), 2 * GiB);
	assert_int_equal(tmem_ledger_pressure_rescale(&c, 0, 1, 2 * GiB),
			 2 * GiB);
}

static void test_psi_parse(void **state)
{
	uint64_t us = 7;

	(void)state;
	assert_int_equal(tmem_ledger_psi_parse(
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=12345\n"
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=99\n", &us), 0);
	assert_int_equal(us, 12345);
	/* "full" first, no newline at the end. */
	assert_int_equal(tmem_ledger_psi_parse(
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=99\n"
		"some avg10=1.00 avg60=0.00 avg300=0.00 total=18446744073709551615",
		&us), 0);
	assert_int_equal(us, UINT64_MAX);
	us = 7;
	assert_int_equal(tmem_ledger_psi_parse("", &us), -EINVAL);
	assert_int_equal(tmem_ledger_psi_parse("hello\nworld\n", &us),
			 -EINVAL);
	/* total= only on the full line. */
	assert_int_equal(tmem_ledger_psi_parse(
		"some avg10=0.00\nfull avg10=0.00 total=5\n", &us), -EINVAL);
	assert_int_equal(tmem_ledger_psi_parse("some total=\n", &us),
			 -EINVAL);
	assert_int_equal(tmem_ledger_psi_parse("some total=-1\n", &us),
			 -EINVAL);
	assert_int_equal(tmem_ledger_psi_parse("some total=12x\n", &us),
			 -EINVAL);
	assert_int_equal(tmem_ledger_psi_parse(
		"some total=18446744073709551616\n", &us), -EINVAL);
	assert_int_equal(tmem_ledger_psi_parse("xsome total=5\n", &us),
			 -EINVAL);
	assert_int_equal(us, 7);
	assert_int_equal(tmem_ledger_psi_parse("some total=5 extra=1\n", &us),
			 0);
	assert_int_equal(us, 5);
}

/* ---- main -------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_shrink_hold_grow),
		cmocka_unit_test(test_floor_and_cap),
		cmocka_unit_test(test_gap_and_baseline),
		cmocka_unit_test(test_rescale),
		cmocka_unit_test(test_psi_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
