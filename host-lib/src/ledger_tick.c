/* SPDX-License-Identifier: MIT */
/*
 * The memory-pressure mode in the ledger file (ledger_tick_i.h).  The
 * header's pressure area is written by any process of the user: it is
 * copied and checked before each use, and what is written back keeps
 * the total within 1..the configured total whatever was read.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "ledger_tick_i.h"

#define NS_PER_MS	1000000ull

/* A copy of the area checked: its settings into @c; false: corrupt. */
static bool press_load(const struct ledger_hdr *h, struct ledger_press *p,
		       struct ledger_pressure_cfg *c)
{
	struct ledger_pressure_cfg r;

	memcpy(p, &h->press, sizeof(*p));
	if (!p->on)
		return p->configured == h->total;
	*c = (struct ledger_pressure_cfg){
		.period_ms = p->period_ms, .high_ppm = p->high_ppm,
		.low_ppm = p->low_ppm, .shrink_pct = p->shrink_pct,
		.grow_pct = p->grow_pct, .calm_periods = p->calm_periods,
		.min_pct = p->min_pct,
	};
	r = *c;
	/* Resolved values only: a zero would be a default resolved now. */
	return p->on == 1 && !tmem_ledger_pressure_resolve(&r) &&
	       !memcmp(&r, c, sizeof(r)) &&
	       memchr(p->source, '\0', sizeof(p->source)) &&
	       p->source[0] == '/' && p->configured >= h->total;
}

/* Off, the settings cleared; the state counters stay for the tool. */
static void press_off(struct ledger_hdr *h, uint64_t configured)
{
	struct ledger_press *p = &h->press;

	p->on = 0;
	p->period_ms = p->high_ppm = p->low_ppm = 0;
	p->shrink_pct = p->grow_pct = p->calm_periods = p->min_pct = 0;
	memset(p->source, 0, sizeof(p->source));
	p->check_ns = p->sample_ns = p->sample_us = 0;
	p->ppm = p->calm = 0;
	p->configured = configured;
	h->total = configured;
}

void tmem_ledger_pressure_tick(struct tmem_ledger *l, uint64_t now)
{
	struct ledger_press *hp = &l->hdr->press, p;
	struct ledger_pressure_cfg c;
	struct ledger_pressure_in in;
	struct ledger_pressure_out out;
	uint64_t us;
	int ret;

	if (!press_load(l->hdr, &p, &c)) {
		/* Keep the total as it is: corruption grows nothing. */
		press_off(l->hdr, l->hdr->total);
		hp->errors++;
		hp->last_errno = EBADMSG;
		hp->decision = TMEM_LEDGER_PRESSURE_ERROR;
		return;
	}
	/* A check time in the future (a forged one) does not stop it. */
	if (!p.on || (now >= p.check_ns &&
		      now - p.check_ns < c.period_ms * NS_PER_MS))
		return;
	hp->check_ns = now;
	ret = tmem_ledger_psi_read(p.source, &us);
	if (ret) {
		/* The total kept; tried again a period later. */
		hp->errors++;
		hp->last_errno = (uint32_t)-ret;
		hp->decision = TMEM_LEDGER_PRESSURE_ERROR;
		hp->calm = 0;
		return;
	}
	in = (struct ledger_pressure_in){
		.configured = p.configured, .effective = l->hdr->total,
		.prev_ns = p.sample_ns, .now_ns = now,
		.prev_us = p.sample_us, .now_us = us, .calm = p.calm,
	};
	tmem_ledger_pressure_decide(&c, &in, &out);
	hp->sample_ns = now;
	hp->sample_us = us;
	hp->ppm = out.ppm;
	hp->calm = out.calm;
	hp->decision = out.decision;
	if (out.decision == TMEM_LEDGER_PRESSURE_SHRINK)
		hp->shrinks++;
	if (out.decision == TMEM_LEDGER_PRESSURE_GROW)
		hp->grows++;
	l->hdr->total = out.effective;
}

void tmem_ledger_pressure_set(struct tmem_ledger *l,
			      const struct ledger_pressure_cfg *c,
			      const char *source, uint64_t some_us,
			      uint64_t now)
{
	struct ledger_hdr *h = l->hdr;
	struct ledger_press *hp = &h->press, p;
	struct ledger_pressure_cfg old;
	bool was_on = press_load(h, &p, &old) && p.on;
	uint64_t conf = was_on ? p.configured : h->total;
	uint64_t eff = was_on ? h->total : conf;

	press_off(h, conf);
	if (!c) {
		hp->decision = TMEM_LEDGER_PRESSURE_NONE;
		return;
	}
	hp->period_ms = c->period_ms;
	hp->high_ppm = c->high_ppm;
	hp->low_ppm = c->low_ppm;
	hp->shrink_pct = c->shrink_pct;
	hp->grow_pct = c->grow_pct;
	hp->calm_periods = c->calm_periods;
	hp->min_pct = c->min_pct;
	memcpy(hp->source, source, strnlen(source, sizeof(hp->source) - 1));
	hp->check_ns = now;
	hp->sample_ns = now;
	hp->sample_us = some_us;
	/* Settings changed while on keep what pressure cut, floor allowing. */
	h->total = tmem_ledger_pressure_rescale(c, conf, eff, conf);
	if (!was_on)
		hp->decision = TMEM_LEDGER_PRESSURE_NONE;
	hp->on = 1;
}

void tmem_ledger_pressure_total(struct tmem_ledger *l, uint64_t total)
{
	struct ledger_hdr *h = l->hdr;
	struct ledger_press p;
	struct ledger_pressure_cfg c;

	if (!press_load(h, &p, &c) || !p.on) {
		press_off(h, total);
		return;
	}
	/* The same fraction of the new total as pressure left of the old. */
	h->total = tmem_ledger_pressure_rescale(&c, p.configured, h->total,
						total);
	h->press.configured = total;
}

void tmem_ledger_pressure_get(struct tmem_ledger *l,
			      struct tmem_ledger_pressure *up,
			      struct tmem_ledger_info *info)
{
	struct ledger_press p;
	struct ledger_pressure_cfg c;
	bool on = press_load(l->hdr, &p, &c) && p.on;

	if (up) {
		memset(up, 0, sizeof(*up));
		if (on) {
			memcpy(up->source, p.source, sizeof(up->source));
			up->period_ms = c.period_ms;
			up->high_ppm = c.high_ppm;
			up->low_ppm = c.low_ppm;
			up->shrink_pct = c.shrink_pct;
			up->grow_pct = c.grow_pct;
			up->calm_periods = c.calm_periods;
			up->min_pct = c.min_pct;
		}
	}
	if (!info)
		return;
	info->configured_bytes = on ? p.configured : l->hdr->total;
	info->pressure_on = on;
	info->pressure_ppm = p.ppm;
	info->pressure_shrinks = p.shrinks;
	info->pressure_grows = p.grows;
	info->pressure_errors = p.errors;
	info->pressure_decision = p.decision;
	info->pressure_errno = p.last_errno;
	info->pressure_calm = p.calm;
}
