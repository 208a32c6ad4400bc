/* SPDX-License-Identifier: MIT */
/*
 * The memory-pressure mode's policy (ledger_i.h): the stall share of a
 * period and the pool's effective total from it.  No file, no lock, no
 * clock: ledger_file.c reads the source and the clock, and writes back
 * what is decided.  host-lib/README.md, "Memory pressure", states it.
 */
#include <errno.h>
#include <string.h>

#include "tmem_ledger.h"
#include "ledger_i.h"

#define PPM	1000000u

static int in_range(uint32_t v, uint32_t lo, uint32_t hi)
{
	return v >= lo && v <= hi;
}

int tmem_ledger_pressure_resolve(struct ledger_pressure_cfg *c)
{
	if (!c->period_ms)
		c->period_ms = TMEM_LEDGER_PRESSURE_PERIOD_MS;
	if (!c->high_ppm)
		c->high_ppm = TMEM_LEDGER_PRESSURE_HIGH_PPM;
	if (!c->low_ppm)
		c->low_ppm = TMEM_LEDGER_PRESSURE_LOW_PPM;
	if (!c->shrink_pct)
		c->shrink_pct = TMEM_LEDGER_PRESSURE_SHRINK_PCT;
	if (!c->grow_pct)
		c->grow_pct = TMEM_LEDGER_PRESSURE_GROW_PCT;
	if (!c->calm_periods)
		c->calm_periods = TMEM_LEDGER_PRESSURE_CALM_PERIODS;
	if (!c->min_pct)
		c->min_pct = TMEM_LEDGER_PRESSURE_MIN_PCT;
	if (!in_range(c->period_ms, TMEM_LEDGER_PRESSURE_PERIOD_MIN_MS,
		      TMEM_LEDGER_PRESSURE_PERIOD_MAX_MS) ||
	    c->high_ppm > TMEM_LEDGER_PRESSURE_PPM_MAX ||
	    c->low_ppm > c->high_ppm || c->shrink_pct > 100 ||
	    c->grow_pct > 100 || c->min_pct > 100 ||
	    c->calm_periods > TMEM_LEDGER_PRESSURE_CALM_MAX)
		return -EINVAL;
	return 0;
}

/* @pct percent of @v, at least 1 (a step that moves, a floor above 0). */
static uint64_t pct_of(uint64_t v, uint32_t pct)
{
	uint64_t r = (uint64_t)((unsigned __int128)v * pct / 100);

	return r ? r : 1;
}

uint64_t tmem_ledger_pressure_floor(const struct ledger_pressure_cfg *c,
				    uint64_t configured)
{
	return pct_of(configured, c->min_pct);
}

static uint64_t clamp(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void tmem_ledger_pressure_decide(const struct ledger_pressure_cfg *c,
				 const struct ledger_pressure_in *in,
				 struct ledger_pressure_out *out)
{
	uint64_t conf = in->configured ? in->configured : 1;
	uint64_t floor = tmem_ledger_pressure_floor(c, conf);
	uint64_t eff = clamp(in->effective, floor, conf);
	uint64_t gap = (uint64_t)c->period_ms * 1000000ull *
		       LEDGER_PRESSURE_GAP_PERIODS;
	uint64_t elapsed, step;
	unsigned __int128 ppm;

	out->effective = eff;
	out->calm = 0;
	out->ppm = 0;
	out->decision = TMEM_LEDGER_PRESSURE_HOLD;
	if (gap < LEDGER_PRESSURE_GAP_MIN_NS)
		gap = LEDGER_PRESSURE_GAP_MIN_NS;
	/*
	 * No sample before, a counter that went back (another file at the
	 * path), or one averaged over a gap too long to tell of now: this
	 * sample only starts the next measurement.
	 */
	if (!in->prev_ns || in->now_ns <= in->prev_ns ||
	    in->now_us < in->prev_us || in->now_ns - in->prev_ns > gap)
		return;
	elapsed = in->now_ns - in->prev_ns;
	ppm = (unsigned __int128)(in->now_us - in->prev_us) * 1000u * PPM /
	      elapsed;
	out->ppm = ppm > PPM ? PPM : (uint32_t)ppm;
	if (out->ppm > c->high_ppm) {
		step = pct_of(conf, c->shrink_pct);
		out->effective = eff > floor && eff - floor > step ?
				 eff - step : floor;
		if (out->effective < eff)
			out->decision = TMEM_LEDGER_PRESSURE_SHRINK;
		return;
	}
	if (out->ppm >= c->low_ppm)
		return;
	out->calm = in->calm < TMEM_LEDGER_PRESSURE_CALM_MAX ?
		    in->calm + 1 : in->calm;
	if (out->calm < c->calm_periods)
		return;
	step = pct_of(conf, c->grow_pct);
	out->effective = conf - eff > step ? eff + step : conf;
	if (out->effective > eff)
		out->decision = TMEM_LEDGER_PRESSURE_GROW;
}

uint64_t tmem_ledger_pressure_rescale(const struct ledger_pressure_cfg *c,
				      uint64_t old, uint64_t effective,
				      uint64_t conf)
{
	uint64_t v = old ? (uint64_t)((unsigned __int128)conf *
				      (effective < old ? effective : old) /
				      old) : conf;

	return clamp(v, tmem_ledger_pressure_floor(c, conf), conf);
}

int tmem_ledger_psi_parse(const char *buf, uint64_t *some_us)
{
	const char *line = buf, *end, *p;
	uint64_t v = 0;

	while (strncmp(line, "some ", 5)) {
		line = strchr(line, '\n');
		if (!line)
			return -EINVAL;
		line++;
	}
	end = strchr(line, '\n');
	if (!end)
		end = line + strlen(line);
	for (p = line; p < end && strncmp(p, " total=", 7); p++)
		;
	if (p >= end)
		return -EINVAL;
	p += 7;
	if (p >= end || *p < '0' || *p > '9')
		return -EINVAL;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p < end && *p != ' ')
		return -EINVAL;
	*some_us = v;
	return 0;
}
