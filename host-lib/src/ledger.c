/* SPDX-License-Identifier: MIT */
/*
 * The host-wide pool's ledger (tmem_ledger.h): the file, its checks, the
 * lock, the members' records and their liveness.  What a member is
 * granted is ledger_policy.c's.
 *
 * File: a 512-byte header, then TMEM_LEDGER_MAX_MEMBERS records.  Every
 * change, and every read that acts on the numbers, is made under
 * flock(LOCK_EX) of the file, from a copy of each record checked first:
 * another process (or a hostile one of the same user) may have written
 * anything there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmem_ledger.h"
#include "why_i.h"
#include "ledger_i.h"
#include "ledger_file_i.h"
#include "ledger_tick_i.h"

_Static_assert(sizeof(struct tmem_ledger_config) ==
	       TMEM_LEDGER_CONFIG_SIZE_VER0, "ledger config VER0");
_Static_assert(sizeof(struct tmem_ledger_usage) ==
	       TMEM_LEDGER_USAGE_SIZE_VER0, "ledger usage VER0");
_Static_assert(sizeof(struct tmem_ledger_grant) ==
	       TMEM_LEDGER_GRANT_SIZE_VER0, "ledger grant VER0");
_Static_assert(sizeof(struct tmem_ledger_info) ==
	       TMEM_LEDGER_INFO_SIZE_VER1, "ledger info VER1");
_Static_assert(offsetof(struct tmem_ledger_info, configured_bytes) ==
	       TMEM_LEDGER_INFO_SIZE_VER0, "ledger info VER0");
_Static_assert(sizeof(struct tmem_ledger_pressure) ==
	       TMEM_LEDGER_PRESSURE_SIZE_VER0, "ledger pressure VER0");
_Static_assert(sizeof(struct tmem_ledger_member_info) ==
	       TMEM_LEDGER_MEMBER_INFO_SIZE_VER0, "ledger member info VER0");

#define UPDATE_LOCK_MS	10
#define PID_LIMIT	4194304u	/* PID_MAX_LIMIT of 64-bit Linux */
#define START_CHECK_NS	1000000000ull
/* A heartbeat further in the future is corrupt (clocks agree on a host). */
#define FUTURE_NS	1000000000ull

static bool printable(const char *s, size_t max, bool empty_ok)
{
	size_t i;

	for (i = 0; i < max && s[i]; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return i < max && (empty_ok || i > 0);
}

/*
 * A copy of record @i checked: 1 live, 0 free, -1 corrupt or dead (to
 * reap).  The handle's own record (its token at its slot) is live if it
 * is ours; a copy of it elsewhere is just another record.
 */
static int rec_check(struct tmem_ledger *l, unsigned int i,
		     struct ledger_rec *r, uint64_t total, uint64_t now)
{
	uint64_t stale = (uint64_t)l->stale_ms * 1000000ull;
	struct ledger_seen *c;
	uint64_t st;

	memcpy(r, &l->recs[i], sizeof(*r));
	if (r->state == LEDGER_FREE)
		return 0;
	if (r->state != LEDGER_LIVE || !r->weight ||
	    r->weight > TMEM_LEDGER_WEIGHT_MAX ||
	    !printable(r->id, sizeof(r->id), false) ||
	    !printable(r->vm, sizeof(r->vm), true) ||
	    !r->pid || r->pid > PID_LIMIT || r->budget > r->grant ||
	    r->heartbeat_ns > ledger_add_sat(now, FUTURE_NS))
		return -1;
	/* A lowered total or cap: cut, as the scan cuts what sums above. */
	r->grant = ledger_min(r->grant, ledger_cap(r->cap, total));
	r->budget = ledger_min(r->budget, r->grant);
	if (l->token && i == l->slot && r->token == l->token)
		return r->pid == l->pid ? 1 : -1;
	/*
	 * A process of our PID namespace whose start time is known is
	 * judged by its pid alone: stopped (SIGSTOP, a debugger, a host
	 * suspend), it still holds its pages and keeps its grant.  The
	 * heartbeat judges the others.
	 */
	if (!(r->pidns == l->pidns && r->start_time && l->start_time) &&
	    now > r->heartbeat_ns && now - r->heartbeat_ns > stale)
		return -1;
	/* Its pid names nothing here: the heartbeat alone judges it. */
	if (r->pidns != l->pidns)
		return 1;
	/* A start time of 0 is unknown: kill() and the heartbeat judge. */
	if (r->pid == l->pid)
		return !r->start_time || !l->start_time ||
		       r->start_time == l->start_time ? 1 : -1;
	if (kill((pid_t)r->pid, 0) < 0 && errno == ESRCH)
		return -1;
	/* /proc costs ~6 us: once a second per record, or when it changed. */
	c = &l->seen[i];
	if (c->token == r->token && c->start_time == r->start_time &&
	    now - c->ns < START_CHECK_NS)
		return 1;
	st = tmem_ledger_start_time(r->pid);
	if (st && r->start_time && st != r->start_time)
		return -1;
	c->token = r->token;
	c->start_time = r->start_time;
	c->ns = now;
	return 1;
}

/*
 * Under the lock: read every record, reap what is dead, stale or
 * corrupt, compute the shares of the live ones, and if their grants sum
 * above the total (a lowered total, a hostile file) cut each to its
 * share: the shares sum to at most the total.
 */
static void ledger_scan(struct tmem_ledger *l, uint64_t now)
{
	struct ledger_scan *s = &l->scan;
	uint64_t total = l->hdr->total;
	unsigned __int128 sum = 0;	/* 64 grants cannot overflow it */
	uint32_t w[TMEM_LEDGER_MAX_MEMBERS];
	uint64_t cap[TMEM_LEDGER_MAX_MEMBERS];

	s->n = 0;
	s->reaped = 0;
	s->self = -1;
	s->granted = 0;
	for (unsigned int i = 0; i < TMEM_LEDGER_MAX_MEMBERS; i++) {
		struct ledger_rec *r = &s->rec[s->n];
		int ret = rec_check(l, i, r, total, now);

		if (ret < 0) {
			memset(&l->recs[i], 0, sizeof(l->recs[i]));
			s->reaped++;
			continue;
		}
		if (!ret)
			continue;
		if (l->token && i == l->slot && r->token == l->token)
			s->self = (int)s->n;
		l->recs[i].grant = r->grant;
		l->recs[i].budget = r->budget;
		s->idx[s->n] = i;
		w[s->n] = r->weight;
		cap[s->n] = ledger_cap(r->cap, total);
		sum += r->grant;
		s->n++;
	}
	tmem_ledger_shares(total, w, cap, s->share, s->n);
	s->granted = sum > total ? UINT64_MAX : (uint64_t)sum;
	if (sum > total) {
		s->granted = 0;
		for (unsigned int k = 0; k < s->n; k++) {
			struct ledger_rec *r = &s->rec[k];

			r->grant = ledger_min(r->grant, s->share[k]);
			r->budget = ledger_min(r->budget, r->grant);
			l->recs[s->idx[k]].grant = r->grant;
			l->recs[s->idx[k]].budget = r->budget;
			s->granted += r->grant;
		}
	}
	for (unsigned int k = 0; k < s->n; k++)
		l->recs[s->idx[k]].share = s->share[k];
}

/* The end of a change: the header's figures for the tool. */
static void publish(struct tmem_ledger *l)
{
	l->hdr->granted = l->scan.granted;
	l->hdr->generation++;
	flock(l->fd, LOCK_UN);
}

/*
 * Lock, check that the file is still linked and its header again (it
 * may have been changed), scan.  The reason of a failure into @why.
 */
static int begin(struct tmem_ledger *l, unsigned int ms, struct tmem_why *why)
{
	struct stat st;
	uint64_t now;
	int ret;

	ret = tmem_ledger_lock(l->fd, ms);
	if (ret == -EAGAIN)
		return tmem_refuse(why, ret, "ledger %s: locked by another "
				   "process for over %u ms", l->path, ms);
	if (ret)
		return tmem_refuse(why, ret, "ledger %s: flock: %s", l->path,
				   strerror(-ret));
	if (fstat(l->fd, &st))
		ret = tmem_refuse(why, -errno, "ledger %s: fstat: %s", l->path,
				  strerror(errno));
	else if (!st.st_nlink)
		ret = tmem_refuse(why, -EIDRM, "ledger %s was removed: the pool "
				  "is gone; open it again", l->path);
	else
		ret = tmem_ledger_hdr_check(l, why);
	if (ret) {
		flock(l->fd, LOCK_UN);
		return ret;
	}
	now = tmem_ledger_now_ns();
	/* The memory-pressure mode's check, if due, may lower the total. */
	tmem_ledger_pressure_tick(l, now);
	ledger_scan(l, now);
	return 0;
}

/* Our struct @src of @ssize bytes out to the caller's of @size. */
static void struct_out(void *dst, size_t size, const void *src, size_t ssize)
{
	if (size > ssize) {
		memset((char *)dst + ssize, 0, size - ssize);
		size = ssize;
	}
	memcpy(dst, src, size);
}

static int find_id(struct tmem_ledger *l, const char *id)
{
	for (unsigned int k = 0; k < l->scan.n; k++)
		if (!strcmp(l->scan.rec[k].id, id))
			return (int)k;
	return -1;
}

int tmem_ledger_join(struct tmem_ledger *l, const char *id, const char *vm,
		     uint32_t weight, uint64_t cap_bytes, char *errbuf,
		     size_t errlen)
{
	struct tmem_why why = { errbuf, errlen };
	struct ledger_rec *r;
	uint64_t token;
	int ret, slot = -1;

	if (!l)
		return -EINVAL;
	if (l->token)
		return tmem_refuse(&why, -EALREADY, "ledger %s: this handle "
				   "is already member %s", l->path, l->id);
	if (!id || !printable(id, TMEM_LEDGER_ID_MAX + 1, false))
		return tmem_refuse(&why, -EINVAL, "id: 1 to %d printable "
				   "ASCII characters", TMEM_LEDGER_ID_MAX);
	if (vm && !printable(vm, TMEM_LEDGER_ID_MAX + 1, true))
		return tmem_refuse(&why, -EINVAL, "vm: at most %d printable "
				   "ASCII characters", TMEM_LEDGER_ID_MAX);
	if (weight > TMEM_LEDGER_WEIGHT_MAX)
		return tmem_refuse(&why, -EINVAL, "weight %u is above %d",
				   weight, TMEM_LEDGER_WEIGHT_MAX);
	do
		ret = (int)getrandom(&token, sizeof(token), 0);
	while ((ret < 0 && errno == EINTR) || (ret == sizeof(token) && !token));
	if (ret != sizeof(token))
		return tmem_refuse(&why, -errno, "ledger %s: getrandom: %s",
				   l->path, strerror(errno));
	ret = begin(l, l->admin_ms, &why);
	if (ret)
		return ret;
	if (find_id(l, id) >= 0) {
		publish(l);
		return tmem_refuse(&why, -EEXIST, "ledger %s: id %s is a live "
				   "member's", l->path, id);
	}
	for (unsigned int i = 0; i < TMEM_LEDGER_MAX_MEMBERS && slot < 0; i++)
		if (l->recs[i].state == LEDGER_FREE)
			slot = (int)i;
	if (slot < 0) {
		publish(l);
		return tmem_refuse(&why, -ENOSPC, "ledger %s: %d live members "
				   "already", l->path, TMEM_LEDGER_MAX_MEMBERS);
	}
	r = &l->recs[slot];
	memset(r, 0, sizeof(*r));
	r->pid = l->pid;
	r->start_time = l->start_time;
	r->pidns = l->pidns;
	r->token = token;
	r->heartbeat_ns = tmem_ledger_now_ns();
	r->weight = weight ? weight : TMEM_LEDGER_DEFAULT_WEIGHT;
	r->cap = cap_bytes;
	r->flags = LEDGER_F_GROWING;
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->vm, sizeof(r->vm), "%s", vm ? vm : "");
	atomic_thread_fence(memory_order_release);
	r->state = LEDGER_LIVE;
	l->token = token;
	l->slot = (unsigned int)slot;
	snprintf(l->id, sizeof(l->id), "%s", id);
	publish(l);
	return 0;
}

int tmem_ledger_leave(struct tmem_ledger *l)
{
	int ret;

	if (!l || !l->token)
		return -ENOTCONN;
	ret = begin(l, l->admin_ms, NULL);
	if (ret)
		return ret;
	if (l->scan.self >= 0)
		memset(&l->recs[l->slot], 0, sizeof(l->recs[l->slot]));
	else
		ret = -ESTALE;
	l->token = 0;
	ledger_scan(l, tmem_ledger_now_ns());
	publish(l);
	return ret;
}

int tmem_ledger_set_total(struct tmem_ledger *l, uint64_t total_bytes)
{
	int ret;

	if (!l || !total_bytes)
		return -EINVAL;
	ret = begin(l, l->admin_ms, NULL);
	if (ret)
		return ret;
	tmem_ledger_pressure_total(l, total_bytes);
	ledger_scan(l, tmem_ledger_now_ns());
	publish(l);
	return 0;
}

int tmem_ledger_set_pressure(struct tmem_ledger *l,
			     const struct tmem_ledger_pressure *up,
			     size_t p_size)
{
	struct tmem_ledger_pressure p;
	struct ledger_pressure_cfg c;
	uint64_t us = 0, now;
	int ret;

	if (!l || !up || p_size < TMEM_LEDGER_PRESSURE_SIZE_VER0)
		return -EINVAL;
	ret = tmem_ledger_struct_in(&p, sizeof(p), up, p_size);
	if (ret)
		return ret;
	if (p.reserved || !memchr(p.source, '\0', sizeof(p.source)))
		return -EINVAL;
	if (p.source[0]) {
		c = (struct ledger_pressure_cfg){
			.period_ms = p.period_ms, .high_ppm = p.high_ppm,
			.low_ppm = p.low_ppm, .shrink_pct = p.shrink_pct,
			.grow_pct = p.grow_pct, .calm_periods = p.calm_periods,
			.min_pct = p.min_pct,
		};
		if (p.source[0] != '/' || tmem_ledger_pressure_resolve(&c))
			return -EINVAL;
		/* Readable now, and the first sample of the measurement. */
		ret = tmem_ledger_psi_read(p.source, &us);
		if (ret)
			return ret;
	}
	now = tmem_ledger_now_ns();
	ret = begin(l, l->admin_ms, NULL);
	if (ret)
		return ret;
	tmem_ledger_pressure_set(l, p.source[0] ? &c : NULL, p.source, us, now);
	ledger_scan(l, tmem_ledger_now_ns());
	publish(l);
	return 0;
}

int tmem_ledger_get_pressure(struct tmem_ledger *l,
			     struct tmem_ledger_pressure *up, size_t p_size)
{
	struct tmem_ledger_pressure p;
	int ret;

	if (!l || !up || p_size < TMEM_LEDGER_PRESSURE_SIZE_VER0)
		return -EINVAL;
	ret = begin(l, l->admin_ms, NULL);
	if (ret)
		return ret;
	tmem_ledger_pressure_get(l, &p, NULL);
	publish(l);
	struct_out(up, p_size, &p, sizeof(p));
	return 0;
}

int tmem_ledger_set_member(struct tmem_ledger *l, const char *id,
			   uint32_t weight, uint64_t cap_bytes)
{
	struct ledger_rec *r;
	int ret, k;

	if (!l || !id || !printable(id, TMEM_LEDGER_ID_MAX + 1, false) ||
	    weight > TMEM_LEDGER_WEIGHT_MAX)
		return -EINVAL;
	ret = begin(l, l->admin_ms, NULL);
	if (ret)
		return ret;
	k = find_id(l, id);
	if (k < 0) {
		publish(l);
		return -ENOENT;
	}
	r = &l->recs[l->scan.idx[k]];
	if (weight)
		r->weight = weight;
	if (cap_bytes != UINT64_MAX) {
		uint64_t cap = ledger_cap(cap_bytes, l->hdr->total);

		r->cap = cap_bytes;
		r->grant = ledger_min(l->scan.rec[k].grant, cap);
		r->budget = ledger_min(l->scan.rec[k].budget, r->grant);
	}
	ledger_scan(l, tmem_ledger_now_ns());
	publish(l);
	return 0;
}

static void publish_self(struct ledger_rec *m,
			 const struct tmem_ledger_usage *u,
			 const struct ledger_out *out, uint64_t share)
{
	m->use.held = u->held_bytes;
	m->use.compressed = u->compressed_bytes;
	m->use.stored_pages = u->stored_pages;
	m->use.stores = u->stores;
	m->use.rejects = u->rejects;
	m->use.tier = u->tier_bytes;
	m->use.min_bytes = u->min_bytes;
	m->use.wants_more = u->wants_more;
	m->heartbeat_ns = tmem_ledger_now_ns();
	m->grant = out->grant;
	m->budget = out->budget;
	m->share = share;
	m->flags = (out->growing ? LEDGER_F_GROWING : 0) |
		   (out->starved ? LEDGER_F_STARVED : 0);
}

int tmem_ledger_set_lock_timeout(struct tmem_ledger *l, unsigned int ms)
{
	if (!l || ms > TMEM_LEDGER_LOCK_TIMEOUT_MAX_MS)
		return -EINVAL;
	l->admin_ms = ms ? ms : TMEM_LEDGER_LOCK_TIMEOUT_MS;
	return 0;
}

void tmem_ledger_close(struct tmem_ledger *l)
{
	if (!l)
		return;
	/* Locked for over the timeout: once more, then reaping. */
	if (l->token && tmem_ledger_leave(l) == -EAGAIN &&
	    tmem_ledger_leave(l) == -EAGAIN) {
		struct ledger_rec *r = &l->recs[l->slot];

		/* Left behind: its heartbeat, no longer beating, judges it. */
		if (__atomic_load_n(&r->token, __ATOMIC_RELAXED) == l->token)
			__atomic_store_n(&r->start_time, 0, __ATOMIC_RELAXED);
	}
	tmem_ledger_unmap(l);
}

int tmem_ledger_update(struct tmem_ledger *l,
		       const struct tmem_ledger_usage *uu, size_t u_size,
		       struct tmem_ledger_grant *ug, size_t g_size)
{
	struct ledger_scan *s;
	struct tmem_ledger_usage u;
	struct tmem_ledger_grant g = { 0 };
	struct ledger_in in = { 0 };
	struct ledger_out out;
	struct ledger_rec *me;
	int ret;

	if (!l || !uu || !ug || u_size < TMEM_LEDGER_USAGE_SIZE_VER0 ||
	    g_size < TMEM_LEDGER_GRANT_SIZE_VER0)
		return -EINVAL;
	ret = tmem_ledger_struct_in(&u, sizeof(u), uu, u_size);
	if (ret)
		return ret;
	if (u.reserved || u.wants_more > 1)
		return -EINVAL;
	if (!l->token)
		return -ENOTCONN;
	s = &l->scan;
	ret = begin(l, UPDATE_LOCK_MS, NULL);
	if (ret)
		return ret;
	if (s->self < 0) {
		l->token = 0;
		publish(l);
		return -ESTALE;
	}
	me = &s->rec[s->self];
	in.total = l->hdr->total;
	in.grant = me->grant;
	in.held = u.held_bytes;
	in.share = s->share[s->self];
	in.cap = ledger_cap(me->cap, in.total);
	in.min_bytes = u.min_bytes;
	in.weight = me->weight;
	in.wants_more = u.wants_more;
	for (unsigned int k = 0; k < s->n; k++) {
		if ((int)k == s->self)
			continue;
		in.others = ledger_add_sat(in.others, s->rec[k].grant);
		if (s->rec[k].flags & LEDGER_F_GROWING)
			in.others_growing_weight += s->rec[k].weight;
		if (s->rec[k].flags & LEDGER_F_STARVED)
			in.contended = true;
	}
	tmem_ledger_decide(&in, &out);
	publish_self(&l->recs[l->slot], &u, &out, in.share);
	s->granted = ledger_add_sat(in.others, out.grant);

	g.budget_bytes = out.budget;
	g.grant_bytes = out.grant;
	g.share_bytes = in.share;
	g.pool_total = in.total;
	g.pool_granted = s->granted;
	g.weight = in.weight;
	g.members = s->n;
	g.full = out.full;
	g.reaped = s->reaped;
	g.contended = in.contended || out.starved;
	publish(l);
	struct_out(ug, g_size, &g, sizeof(g));
	return 0;
}

int tmem_ledger_list(struct tmem_ledger *l, struct tmem_ledger_info *uinfo,
		     size_t info_size, struct tmem_ledger_member_info *m,
		     size_t m_size, unsigned int max, unsigned int *n)
{
	struct tmem_ledger_info info = { 0 };
	struct ledger_scan *s;
	uint64_t now;
	int ret;

	if (!l || !uinfo || !n || (max && !m) ||
	    info_size < TMEM_LEDGER_INFO_SIZE_VER0 ||
	    (max && m_size < TMEM_LEDGER_MEMBER_INFO_SIZE_VER0))
		return -EINVAL;
	s = &l->scan;
	ret = begin(l, l->admin_ms, NULL);
	if (ret)
		return ret;
	now = tmem_ledger_now_ns();
	info.total_bytes = l->hdr->total;
	info.granted_bytes = s->granted;
	info.members = s->n;
	info.version = TMEM_LEDGER_FORMAT;
	tmem_ledger_pressure_get(l, NULL, &info);
	*n = s->n < max ? s->n : max;
	for (unsigned int k = 0; k < *n; k++) {
		const struct ledger_rec *r = &s->rec[k];
		struct tmem_ledger_member_info mi = { 0 };

		memcpy(mi.id, r->id, sizeof(mi.id));
		memcpy(mi.vm, r->vm, sizeof(mi.vm));
		mi.pid = r->pid;
		mi.weight = r->weight;
		mi.cap_bytes = r->cap;
		mi.grant_bytes = r->grant;
		mi.budget_bytes = r->budget;
		mi.share_bytes = s->share[k];
		mi.heartbeat_age_ms = now > r->heartbeat_ns ?
				      (now - r->heartbeat_ns) / 1000000 : 0;
		mi.usage.held_bytes = r->use.held;
		mi.usage.compressed_bytes = r->use.compressed;
		mi.usage.stored_pages = r->use.stored_pages;
		mi.usage.stores = r->use.stores;
		mi.usage.rejects = r->use.rejects;
		mi.usage.tier_bytes = r->use.tier;
		mi.usage.min_bytes = r->use.min_bytes;
		mi.usage.wants_more = r->use.wants_more;
		struct_out((char *)m + (size_t)k * m_size, m_size, &mi,
			   sizeof(mi));
	}
	publish(l);
	struct_out(uinfo, info_size, &info, sizeof(info));
	return 0;
}
