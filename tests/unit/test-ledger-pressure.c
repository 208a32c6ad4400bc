/* SPDX-License-Identifier: MIT */
/*
 * The host-wide pool's memory-pressure mode (tmem_ledger.h,
 * host-lib/README.md "Memory pressure"): the pure policy of
 * src/ledger_pressure.c driven directly (shrink above high, hold
 * between, grow only after calm_periods, the floor, the cap, a long
 * gap, a counter that goes back, PSI text); then a ledger driven by a
 * synthetic pressure source (a temp file in PSI format whose "some"
 * total= the test advances): members' grants follow the effective total
 * down and back up, an unreadable source keeps the total, set_pressure
 * refuses bad settings and sources without a change, and a corrupt
 * pressure area in the file turns the mode off.
 *
 * The ledger's period is the shortest allowed, 100 ms: a step sleeps
 * just over it, so that the next call checks; a slow machine only makes
 * a step longer (nothing asserts speed; a step would have to take 10 s
 * to be a gap), and the test's stall counter moves by far more than any
 * period's wall time (a share of 100%) or not at all (0%).  Ledgers
 * live in a mkdtemp() directory, never /run.
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
#include "ledger-test.h"
#include "ledger_i.h"
#include "ledger_file_i.h"

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

/* ---- a ledger under a synthetic source --------------------------------- */

#define PSZ		sizeof(struct tmem_ledger_pressure)
#define PERIOD_MS	TMEM_LEDGER_PRESSURE_PERIOD_MIN_MS

static char dir[PATH_MAX / 2];

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* A PSI file whose "some" line says @total_us. */
static void write_psi(const char *path, uint64_t total_us)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fprintf(f, "some avg10=0.00 avg60=0.00 avg300=0.00 total=%llu\n"
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		(unsigned long long)total_us);
	assert_int_equal(fclose(f), 0);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Just over a period: the next call of any opener checks the source. */
static void next_period(void)
{
	const struct timespec ts = { 0, (PERIOD_MS + 5) * 1000000l };

	assert_int_equal(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL), 0);
}

static struct tmem_ledger *lopen(const char *name, uint64_t total)
{
	struct tmem_ledger_config cfg = { .create_total = total };
	struct tmem_ledger *l = NULL;
	char why[TMEM_ERRBUF_SIZE] = "";
	int ret = tmem_ledger_open(name, &cfg, sizeof(cfg), &l, why,
				   sizeof(why));

	if (ret)
		fail_msg("open %s: %d: %s", name, ret, why);
	return l;
}

static struct tmem_ledger_info info_of(struct tmem_ledger *l, uint64_t *sum)
{
	struct tmem_ledger_member_info m[TMEM_LEDGER_MAX_MEMBERS];
	struct tmem_ledger_info info;
	unsigned __int128 s = 0;
	unsigned int n;

	assert_int_equal(tmem_ledger_list(l, &info, sizeof(info), m,
					  sizeof(m[0]), TMEM_LEDGER_MAX_MEMBERS,
					  &n), 0);
	for (unsigned int i = 0; i < n; i++)
		s += m[i].grant_bytes;
	/* The sum of the grants, never above the effective total. */
	if (s > info.total_bytes)
		fail_msg("grants sum to %llu, above the total %llu",
			 (unsigned long long)s,
			 (unsigned long long)info.total_bytes);
	assert_true(info.total_bytes <= info.configured_bytes);
	if (sum)
		*sum = (uint64_t)s;
	return info;
}

static struct tmem_ledger_grant tick(struct tmem_ledger *l, bool wants)
{
	struct tmem_ledger_usage u = { .wants_more = wants };
	struct tmem_ledger_grant g;
	int ret = tmem_ledger_update(l, &u, sizeof(u), &g, sizeof(g));

	if (ret)
		fail_msg("update: %d (%s)", ret, strerror(-ret));
	assert_true(g.pool_granted <= g.pool_total);
	assert_true(g.grant_bytes <= g.pool_total);
	return g;
}

static struct tmem_ledger_pressure settings(const char *source)
{
	struct tmem_ledger_pressure p = {
		.period_ms = PERIOD_MS,
		.shrink_pct = 25,
		.grow_pct = 25,
		.calm_periods = 2,
	};

	/* A $TMPDIR too long for a source fails here, not later. */
	assert_true(strlen(source) < sizeof(p.source));
	snprintf(p.source, sizeof(p.source), "%s", source);
	return p;
}

#define N_MEMBERS	3

static void tick_all(struct tmem_ledger **m)
{
	for (int k = 0; k < 4; k++)
		for (int i = 0; i < N_MEMBERS; i++)
			tick(m[i], true);
}

static void test_follow(void **state)
{
	struct tmem_ledger *m[N_MEMBERS], *tool;
	struct tmem_ledger_pressure p;
	struct tmem_ledger_info info;
	struct tmem_ledger_grant g;
	char psi[PATH_MAX];
	uint64_t stall = 1000, sum, prev;

	(void)state;
	path_of(psi, sizeof(psi), "follow.psi");
	write_psi(psi, stall);
	tool = lopen("follow", 1 * GiB);
	for (int i = 0; i < N_MEMBERS; i++) {
		char id[8];

		m[i] = lopen("follow", 0);
		snprintf(id, sizeof(id), "m%d", i);
		assert_int_equal(tmem_ledger_join(m[i], id, NULL, 0, 0, NULL,
						  0), 0);
	}
	tick_all(m);
	info = info_of(tool, &sum);
	assert_true(sum > 1 * GiB - 8 * MiB);
	assert_int_equal(info.pressure_on, 0);
	assert_int_equal(info.configured_bytes, 1 * GiB);

	p = settings(psi);
	assert_int_equal(tmem_ledger_set_pressure(tool, &p, PSZ), 0);
	info = info_of(tool, NULL);
	assert_int_equal(info.pressure_on, 1);
	assert_int_equal(info.total_bytes, 1 * GiB);
	assert_int_equal(info.pressure_decision, TMEM_LEDGER_PRESSURE_NONE);

	/* Full pressure: a member's update checks and cuts the total. */
	for (int step = 1; step <= 3; step++) {
		stall += 1000000000ull;
		write_psi(psi, stall);
		next_period();
		g = tick(m[step % N_MEMBERS], true);
		assert_int_equal(g.pool_total, 1 * GiB - step * (GiB / 4));
		info = info_of(tool, NULL);
		assert_int_equal(info.pressure_decision,
				 TMEM_LEDGER_PRESSURE_SHRINK);
		assert_int_equal(info.pressure_ppm, 1000000);
		assert_int_equal(info.pressure_shrinks, step);
		tick_all(m);
	}
	/* At the floor, 25%: held there. */
	stall += 1000000000ull;
	write_psi(psi, stall);
	next_period();
	info = info_of(tool, &sum);
	assert_int_equal(info.total_bytes, 256 * MiB);
	assert_int_equal(info.configured_bytes, 1 * GiB);
	assert_int_equal(info.pressure_decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(info.pressure_shrinks, 3);
	assert_true(sum <= 256 * MiB);

	/* Calm: the first period holds, the second grows; back to 1 GiB. */
	next_period();
	info = info_of(tool, NULL);
	assert_int_equal(info.total_bytes, 256 * MiB);
	assert_int_equal(info.pressure_calm, 1);
	prev = 256 * MiB;
	for (int step = 1; step <= 3; step++) {
		next_period();
		g = tick(m[0], true);
		assert_int_equal(g.pool_total, prev + GiB / 4);
		prev = g.pool_total;
		tick_all(m);
		info = info_of(tool, &sum);
		assert_int_equal(info.pressure_decision,
				 TMEM_LEDGER_PRESSURE_GROW);
		/* The members wanting more take what grew. */
		assert_true(sum > prev - 8 * MiB);
	}
	next_period();
	info = info_of(tool, NULL);
	assert_int_equal(info.total_bytes, 1 * GiB);
	assert_int_equal(info.pressure_decision, TMEM_LEDGER_PRESSURE_HOLD);
	assert_int_equal(info.pressure_grows, 3);
	assert_int_equal(info.pressure_errors, 0);

	for (int i = 0; i < N_MEMBERS; i++)
		tmem_ledger_close(m[i]);
	tmem_ledger_close(tool);
}

static void test_source_errors(void **state)
{
	struct tmem_ledger_pressure p;
	struct tmem_ledger_info info;
	struct tmem_ledger *l;
	char psi[PATH_MAX];
	uint64_t stall = 0;

	(void)state;
	path_of(psi, sizeof(psi), "errors.psi");
	write_psi(psi, stall);
	l = lopen("errors", 1 * GiB);
	p = settings(psi);
	assert_int_equal(tmem_ledger_set_pressure(l, &p, PSZ), 0);
	stall += 1000000000ull;
	write_psi(psi, stall);
	next_period();
	info = info_of(l, NULL);
	assert_int_equal(info.total_bytes, 768 * MiB);
	/* Gone: the total kept, the error counted, tried a period later. */
	assert_int_equal(unlink(psi), 0);
	next_period();
	info = info_of(l, NULL);
	assert_int_equal(info.total_bytes, 768 * MiB);
	assert_int_equal(info.pressure_decision, TMEM_LEDGER_PRESSURE_ERROR);
	assert_int_equal(info.pressure_errno, ENOENT);
	assert_int_equal(info.pressure_errors, 1);
	assert_int_equal(info.pressure_on, 1);
	info = info_of(l, NULL);
	assert_int_equal(info.pressure_errors, 1);	/* not at every call */
	/* Garbage in it. */
	write_text(psi, "no pressure here\n");
	next_period();
	info = info_of(l, NULL);
	assert_int_equal(info.pressure_errno, EINVAL);
	assert_int_equal(info.pressure_errors, 2);
	assert_int_equal(info.total_bytes, 768 * MiB);
	/* Back: measured from the last good sample, pressure again. */
	stall += 1000000000ull;
	write_psi(psi, stall);
	next_period();
	info = info_of(l, NULL);
	assert_int_equal(info.pressure_decision, TMEM_LEDGER_PRESSURE_SHRINK);
	assert_int_equal(info.total_bytes, 512 * MiB);
	assert_int_equal(info.pressure_errors, 2);
	/* set_total: the same fraction of the new configured total. */
	assert_int_equal(tmem_ledger_set_total(l, 2 * GiB), 0);
	info = info_of(l, NULL);
	assert_int_equal(info.configured_bytes, 2 * GiB);
	assert_int_equal(info.total_bytes, 1 * GiB);
	/* Off: the configured total at once. */
	p = settings("");
	assert_int_equal(tmem_ledger_set_pressure(l, &p, PSZ), 0);
	info = info_of(l, NULL);
	assert_int_equal(info.pressure_on, 0);
	assert_int_equal(info.total_bytes, 2 * GiB);
	assert_int_equal(info.configured_bytes, 2 * GiB);
	tmem_ledger_close(l);
}

static void expect_refused(struct tmem_ledger *l,
			   const struct tmem_ledger_pressure *p, size_t size,
			   int err, const struct tmem_ledger_pressure *want)
{
	struct tmem_ledger_pressure now;

	assert_int_equal(tmem_ledger_set_pressure(l, p, size), err);
	/* Nothing changed. */
	assert_int_equal(tmem_ledger_get_pressure(l, &now, PSZ), 0);
	assert_memory_equal(&now, want, PSZ);
}

static void test_validation(void **state)
{
	struct tmem_ledger_pressure p, off = { 0 }, on;
	struct tmem_ledger_info info;
	unsigned char big[PSZ + 8];
	char psi[PATH_MAX], other[PATH_MAX];
	struct tmem_ledger *l;

	(void)state;
	path_of(psi, sizeof(psi), "valid.psi");
	l = lopen("valid", 1 * GiB);
	assert_int_equal(tmem_ledger_set_pressure(l, NULL, PSZ), -EINVAL);
	assert_int_equal(tmem_ledger_set_pressure(NULL, &off, PSZ), -EINVAL);
	assert_int_equal(tmem_ledger_get_pressure(l, &p, PSZ - 1), -EINVAL);
	/* Missing, relative, a directory, a FIFO (no blocking), garbage. */
	p = settings(psi);
	expect_refused(l, &p, PSZ, -ENOENT, &off);
	p = settings("valid.psi");
	expect_refused(l, &p, PSZ, -EINVAL, &off);
	p = settings(dir);
	expect_refused(l, &p, PSZ, -EINVAL, &off);
	path_of(other, sizeof(other), "fifo");
	assert_int_equal(mkfifo(other, 0600), 0);
	p = settings(other);
	expect_refused(l, &p, PSZ, -EINVAL, &off);
	write_text(psi, "some avg10=0.00 total=\n");
	p = settings(psi);
	expect_refused(l, &p, PSZ, -EINVAL, &off);
	write_text(psi, "");
	expect_refused(l, &p, PSZ, -EINVAL, &off);
	/* A symbolic link to a good one. */
	write_psi(psi, 5);
	path_of(other, sizeof(other), "link.psi");
	assert_int_equal(symlink(psi, other), 0);
	p = settings(other);
	expect_refused(l, &p, PSZ, -ELOOP, &off);
	/* A source without its NUL. */
	p = settings(psi);
	memset(p.source, 'a', sizeof(p.source));
	p.source[0] = '/';
	expect_refused(l, &p, PSZ, -EINVAL, &off);

	/* Good: defaults applied, as get_pressure shows. */
	p = settings(psi);
	p.period_ms = p.shrink_pct = p.grow_pct = p.calm_periods = 0;
	assert_int_equal(tmem_ledger_set_pressure(l, &p, PSZ), 0);
	assert_int_equal(tmem_ledger_get_pressure(l, &on, PSZ), 0);
	assert_string_equal(on.source, psi);
	assert_int_equal(on.period_ms, 1000);
	assert_int_equal(on.high_ppm, 10000);
	assert_int_equal(on.low_ppm, 1000);
	assert_int_equal(on.shrink_pct, 10);
	assert_int_equal(on.grow_pct, 2);
	assert_int_equal(on.calm_periods, 3);
	assert_int_equal(on.min_pct, 25);

	/* Out of range: refused, the settings kept. */
	p = settings(psi);
	p.period_ms = PERIOD_MS - 1;
	expect_refused(l, &p, PSZ, -EINVAL, &on);
	p = settings(psi);
	p.low_ppm = 2000;
	p.high_ppm = 1999;
	expect_refused(l, &p, PSZ, -EINVAL, &on);
	p = settings(psi);
	p.high_ppm = 1000001;
	expect_refused(l, &p, PSZ, -EINVAL, &on);
	p = settings(psi);
	p.min_pct = 101;
	expect_refused(l, &p, PSZ, -EINVAL, &on);
	p = settings(psi);
	p.shrink_pct = 101;
	expect_refused(l, &p, PSZ, -EINVAL, &on);
	p = settings(psi);
	p.calm_periods = 1001;
	expect_refused(l, &p, PSZ, -EINVAL, &on);
	p = settings(psi);
	p.reserved = 1;
	expect_refused(l, &p, PSZ, -EINVAL, &on);
	expect_refused(l, &p, PSZ - 1, -EINVAL, &on);
	/* Sized: a larger struct with a non-zero byte beyond is -E2BIG. */
	p = settings(psi);
	memset(big, 0, sizeof(big));
	memcpy(big, &p, PSZ);
	big[PSZ + 3] = 1;
	expect_refused(l, (void *)big, sizeof(big), -E2BIG, &on);
	big[PSZ + 3] = 0;
	assert_int_equal(tmem_ledger_set_pressure(l, (void *)big, sizeof(big)),
			 0);
	memset(big, 0xee, sizeof(big));
	assert_int_equal(tmem_ledger_get_pressure(l, (void *)big, sizeof(big)),
			 0);
	for (size_t i = PSZ; i < sizeof(big); i++)
		assert_int_equal(big[i], 0);

	/* The 0.4 size of the info still works, written up to it only. */
	memset(&info, 0xee, sizeof(info));
	{
		unsigned int n;

		assert_int_equal(tmem_ledger_list(l, &info,
						  TMEM_LEDGER_INFO_SIZE_VER0,
						  NULL, 0, 0, &n), 0);
	}
	assert_int_equal(info.total_bytes, 1 * GiB);
	assert_int_equal(info.version, TMEM_LEDGER_FORMAT);
	assert_true(info.configured_bytes == 0xeeeeeeeeeeeeeeeeull);
	tmem_ledger_close(l);
}

/* The header of ledger @name, mapped, to forge. */
static struct ledger_hdr *map_hdr(const char *name, int *fdp)
{
	char path[PATH_MAX], file[64];
	void *p;

	snprintf(file, sizeof(file), "%s.ledger", name);
	path_of(path, sizeof(path), file);
	*fdp = open(path, O_RDWR);
	assert_true(*fdp >= 0);
	p = mmap(NULL, LEDGER_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 *fdp, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

/* A corrupt pressure area: off, counted, the total kept. */
static void expect_off(struct tmem_ledger *l, uint64_t errors,
		       uint64_t total)
{
	struct tmem_ledger_info info = info_of(l, NULL);
	struct tmem_ledger_pressure p;

	assert_int_equal(info.pressure_on, 0);
	assert_int_equal(info.pressure_errors, errors);
	assert_int_equal(info.pressure_errno, EBADMSG);
	assert_int_equal(info.pressure_decision, TMEM_LEDGER_PRESSURE_ERROR);
	assert_int_equal(info.total_bytes, total);
	assert_int_equal(info.configured_bytes, total);
	assert_int_equal(tmem_ledger_get_pressure(l, &p, PSZ), 0);
	assert_string_equal(p.source, "");
}

/* The good area back, its error count kept (what is counted). */
static void restore(struct ledger_hdr *h, const struct ledger_press *good)
{
	uint64_t errors = h->press.errors;

	memcpy(&h->press, good, sizeof(*good));
	h->press.errors = errors;
}

static void test_corrupt_area(void **state)
{
	struct tmem_ledger_pressure p;
	struct tmem_ledger_info info;
	struct ledger_hdr *h;
	struct ledger_press good;
	struct tmem_ledger *l;
	char psi[PATH_MAX];
	uint64_t errors = 0;
	int fd;

	(void)state;
	path_of(psi, sizeof(psi), "corrupt.psi");
	write_psi(psi, 0);
	l = lopen("corrupt", 1 * GiB);
	p = settings(psi);
	assert_int_equal(tmem_ledger_set_pressure(l, &p, PSZ), 0);
	h = map_hdr("corrupt", &fd);
	memcpy(&good, &h->press, sizeof(good));
	info = info_of(l, NULL);
	assert_int_equal(info.pressure_on, 1);

	/* A path without its NUL. */
	memset(h->press.source, 'a', sizeof(h->press.source));
	h->press.source[0] = '/';
	expect_off(l, ++errors, 1 * GiB);
	/* A relative path, thresholds out of order or out of range, a 0
	 * (defaults are resolved when set), a flag of another value. */
	for (int k = 0; k < 7; k++) {
		restore(h, &good);
		switch (k) {
		case 0: h->press.source[0] = 'x'; break;
		case 1: h->press.low_ppm = h->press.high_ppm + 1; break;
		case 2: h->press.high_ppm = 1000001; break;
		case 3: h->press.period_ms = 1; break;
		case 4: h->press.min_pct = 0; break;
		case 5: h->press.on = 2; break;
		case 6: h->press.configured = h->total - 1; break;
		}
		expect_off(l, ++errors, 1 * GiB);
	}
	/* Off with a configured total that is not the total. */
	h->press.configured = 5 * GiB;
	expect_off(l, ++errors, 1 * GiB);
	info = info_of(l, NULL);
	assert_int_equal(info.pressure_errors, errors);	/* fixed: once */
	/* A shrunk pool whose area breaks stays shrunk (grows nothing). */
	restore(h, &good);
	h->press.sample_us = 0;
	h->press.sample_ns = 1;
	h->press.check_ns = UINT64_MAX;	/* a forged check time */
	write_psi(psi, 0);
	info = info_of(l, NULL);	/* checked at once, a baseline */
	assert_int_equal(info.pressure_on, 1);
	assert_int_equal(info.pressure_decision, TMEM_LEDGER_PRESSURE_HOLD);
	write_psi(psi, 1000000000ull);
	next_period();
	info = info_of(l, NULL);
	assert_int_equal(info.total_bytes, 768 * MiB);
	h->press.grow_pct = 200;
	expect_off(l, ++errors, 768 * MiB);
	munmap(h, LEDGER_FILE_SIZE);
	close(fd);
	tmem_ledger_close(l);
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
		cmocka_unit_test(test_follow),
		cmocka_unit_test(test_source_errors),
		cmocka_unit_test(test_validation),
		cmocka_unit_test(test_corrupt_area),
	};
	int ret;

	if (ledger_test_dir(dir, sizeof(dir), "tmem-pressure"))
		return 1;
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	ledger_test_rmdir(dir);
	return ret;
}
