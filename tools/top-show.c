/* SPDX-License-Identifier: MIT */
/*
 * vtmem-top: a sample as a table or as JSON.  Both are written from the
 * two lists of fields below (pool_fields, dev_fields): a new field of a
 * pool or a device is one line there and one getter, in both outputs.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vtmem-top.h"

#define PAGE_BYTES	4096
#define CELL_MAX	(TMEM_LEDGER_ID_MAX + 1)
/* A cell of the pool's line: room for the pressure source's path. */
#define POOL_CELL_MAX	(TMEM_LEDGER_PRESSURE_SOURCE_MAX + 128)

/* V_OBJ: a JSON object of more pool fields (@obj, @nobj of them). */
enum val_kind { V_NULL, V_U64, V_DBL, V_STR, V_OBJ };

struct pool_field;

struct val {
	enum val_kind kind;
	uint64_t u;
	double d;
	const char *s;
	const struct pool_field *obj;
	size_t nobj;
};

/* How a value reads in the table (JSON: sizes in bytes, always). */
enum cell_fmt { C_STR, C_NUM, C_SIZE, C_RATIO, C_RATE };

/* A device's row: its record now, and the same member's before. */
struct dev_row {
	const struct top_pool *pool;
	const struct tmem_ledger_member_info *m;
	const struct tmem_ledger_member_info *prev;	/* NULL: no rate */
	double dt;
};

struct pool_field {
	const char *json;	/* NULL: not in the JSON */
	const char *label;	/* NULL: not on the pool's line */
	enum cell_fmt fmt;
	struct val (*get)(const struct top_pool *p);
	/* NULL, or the pool line's text in place of the value's cell. */
	void (*text)(char *buf, size_t len, const struct top_pool *p);
};

struct dev_field {
	const char *json;	/* NULL: not in the JSON */
	const char *label;	/* NULL: not in the table */
	enum cell_fmt fmt;
	const char *none;	/* the table's text for null */
	struct val (*get)(const struct dev_row *r);
};

static struct val u64(uint64_t u)
{
	return (struct val){ .kind = V_U64, .u = u };
}

static struct val dbl(double d)
{
	return (struct val){ .kind = V_DBL, .d = d };
}

static struct val str(const char *s)
{
	return (struct val){ .kind = V_STR, .s = s };
}

static const struct val null = { .kind = V_NULL };

static struct val p_name(const struct top_pool *p)
{
	return str(p->name);
}

/* A getter of one number, as Linux's sysfs show functions are made. */
#define POOL_U64(fn, expr)					\
static struct val fn(const struct top_pool *p)			\
{								\
	return u64(expr);					\
}

POOL_U64(p_total, p->info.total_bytes)
POOL_U64(p_configured, p->info.configured_bytes)
POOL_U64(p_granted, p->info.granted_bytes)
POOL_U64(p_members, p->info.members)

static struct val p_free(const struct top_pool *p)
{
	const struct tmem_ledger_info *i = &p->info;

	return u64(i->total_bytes > i->granted_bytes ?
		   i->total_bytes - i->granted_bytes : 0);
}

/* ---- the memory-pressure mode (tmem_ledger_set_pressure()) ---- */

static const char *const decisions[] = {
	[TMEM_LEDGER_PRESSURE_NONE] = "none",
	[TMEM_LEDGER_PRESSURE_HOLD] = "hold",
	[TMEM_LEDGER_PRESSURE_SHRINK] = "shrink",
	[TMEM_LEDGER_PRESSURE_GROW] = "grow",
	[TMEM_LEDGER_PRESSURE_ERROR] = "error",
};

static const char *decision_name(uint32_t d)
{
	return d < sizeof(decisions) / sizeof(decisions[0]) && decisions[d] ?
	       decisions[d] : "unknown";
}

static struct val p_source(const struct top_pool *p)
{
	return str(p->pressure.source);
}

static struct val p_decision(const struct top_pool *p)
{
	return str(decision_name(p->info.pressure_decision));
}

POOL_U64(p_ppm, p->info.pressure_ppm)
POOL_U64(p_shrinks, p->info.pressure_shrinks)
POOL_U64(p_grows, p->info.pressure_grows)
POOL_U64(p_errors, p->info.pressure_errors)
POOL_U64(p_errno, p->info.pressure_errno)
POOL_U64(p_calm, p->info.pressure_calm)
POOL_U64(p_period, p->pressure.period_ms)
POOL_U64(p_high, p->pressure.high_ppm)
POOL_U64(p_low, p->pressure.low_ppm)
POOL_U64(p_shrink_pct, p->pressure.shrink_pct)
POOL_U64(p_grow_pct, p->pressure.grow_pct)
POOL_U64(p_calm_periods, p->pressure.calm_periods)
POOL_U64(p_min_pct, p->pressure.min_pct)

/* The state (tmem_ledger_list()'s info), then the settings. */
static const struct pool_field pressure_fields[] = {
	{ "source", NULL, C_STR, p_source, NULL },
	{ "ppm", NULL, C_NUM, p_ppm, NULL },
	{ "decision", NULL, C_STR, p_decision, NULL },
	{ "shrinks", NULL, C_NUM, p_shrinks, NULL },
	{ "grows", NULL, C_NUM, p_grows, NULL },
	{ "errors", NULL, C_NUM, p_errors, NULL },
	{ "errno", NULL, C_NUM, p_errno, NULL },
	{ "calm", NULL, C_NUM, p_calm, NULL },
	{ "period_ms", NULL, C_NUM, p_period, NULL },
	{ "high_ppm", NULL, C_NUM, p_high, NULL },
	{ "low_ppm", NULL, C_NUM, p_low, NULL },
	{ "shrink_pct", NULL, C_NUM, p_shrink_pct, NULL },
	{ "grow_pct", NULL, C_NUM, p_grow_pct, NULL },
	{ "calm_periods", NULL, C_NUM, p_calm_periods, NULL },
	{ "min_pct", NULL, C_NUM, p_min_pct, NULL },
};

static struct val p_pressure(const struct top_pool *p)
{
	if (!p->info.pressure_on)
		return null;
	return (struct val){
		.kind = V_OBJ, .obj = pressure_fields,
		.nobj = sizeof(pressure_fields) / sizeof(pressure_fields[0]),
	};
}

/* "off", or "/proc/pressure/memory 0.12% hold (shrinks 3, grows 1)". */
static void pressure_text(char *buf, size_t len, const struct top_pool *p)
{
	const struct tmem_ledger_info *i = &p->info;
	int n;

	if (!i->pressure_on) {
		snprintf(buf, len, "off");
		return;
	}
	n = snprintf(buf, len, "%s %u.%02u%% %s (shrinks %" PRIu64 ", grows %"
		     PRIu64, p->pressure.source[0] ? p->pressure.source : "?",
		     i->pressure_ppm / 10000, i->pressure_ppm % 10000 / 100,
		     decision_name(i->pressure_decision), i->pressure_shrinks,
		     i->pressure_grows);
	if (n > 0 && (size_t)n < len && i->pressure_errors)
		n += snprintf(buf + n, len - (size_t)n, ", errors %" PRIu64
			      ", last: %s", i->pressure_errors,
			      i->pressure_errno ?
			      strerror((int)i->pressure_errno) : "none");
	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ")");
}

static const struct pool_field pool_fields[] = {
	{ "name", NULL, C_STR, p_name, NULL },
	{ "total", "total", C_SIZE, p_total, NULL },
	{ "configured", "configured", C_SIZE, p_configured, NULL },
	{ "granted", "granted", C_SIZE, p_granted, NULL },
	{ "members", "members", C_NUM, p_members, NULL },
	{ "free", "free", C_SIZE, p_free, NULL },
	{ "pressure", "pressure", C_STR, p_pressure, pressure_text },
};

static struct val d_pool(const struct dev_row *r)
{
	return str(r->pool->name);
}

static struct val d_id(const struct dev_row *r)
{
	return str(r->m->id);
}

static struct val d_vm(const struct dev_row *r)
{
	return str(r->m->vm);
}

#define DEV_U64(fn, expr)					\
static struct val fn(const struct dev_row *r)			\
{								\
	return u64(expr);					\
}

DEV_U64(d_pid, r->m->pid)
DEV_U64(d_weight, r->m->weight)
DEV_U64(d_share, r->m->share_bytes)
DEV_U64(d_grant, r->m->grant_bytes)
DEV_U64(d_budget, r->m->budget_bytes)
DEV_U64(d_held, r->m->usage.held_bytes)
DEV_U64(d_compr, r->m->usage.compressed_bytes)
DEV_U64(d_pages, r->m->usage.stored_pages)
DEV_U64(d_stores, r->m->usage.stores)
DEV_U64(d_rejects, r->m->usage.rejects)
DEV_U64(d_tier, r->m->usage.tier_bytes)
DEV_U64(d_age, r->m->heartbeat_age_ms)

static struct val d_cap(const struct dev_row *r)
{
	return r->m->cap_bytes ? u64(r->m->cap_bytes) : null;
}

static struct val d_ratio(const struct dev_row *r)
{
	const struct tmem_ledger_usage *u = &r->m->usage;

	if (!u->compressed_bytes)
		return null;
	return dbl((double)u->stored_pages * PAGE_BYTES /
		   (double)u->compressed_bytes);
}

/* Per second between two samples of one process's member. */
static struct val rate(const struct dev_row *r, uint64_t now, uint64_t then)
{
	if (!r->prev || r->dt <= 0 || now < then)
		return null;
	return dbl((double)(now - then) / r->dt);
}

static struct val d_stores_s(const struct dev_row *r)
{
	return rate(r, r->m->usage.stores, r->prev ? r->prev->usage.stores : 0);
}

static struct val d_rejects_s(const struct dev_row *r)
{
	return rate(r, r->m->usage.rejects,
		    r->prev ? r->prev->usage.rejects : 0);
}

static const struct dev_field dev_fields[] = {
	{ "pool", "POOL", C_STR, "-", d_pool },
	{ "id", "ID", C_STR, "-", d_id },
	{ "vm", "VM", C_STR, "-", d_vm },
	{ "pid", "PID", C_NUM, "-", d_pid },
	{ "weight", "WEIGHT", C_NUM, "-", d_weight },
	{ "cap", "CAP", C_SIZE, "none", d_cap },
	{ "share", "SHARE", C_SIZE, "-", d_share },
	{ "grant", "GRANT", C_SIZE, "-", d_grant },
	{ "budget", "BUDGET", C_SIZE, "-", d_budget },
	{ "held", "HELD", C_SIZE, "-", d_held },
	{ "compressed", "COMPR", C_SIZE, "-", d_compr },
	{ "stored_pages", NULL, C_NUM, "-", d_pages },
	{ "ratio", "RATIO", C_RATIO, "-", d_ratio },
	{ "stores", NULL, C_NUM, "-", d_stores },
	{ "rejects", NULL, C_NUM, "-", d_rejects },
	{ "stores_per_s", "STORES/s", C_RATE, "-", d_stores_s },
	{ "rejects_per_s", "REJECTS/s", C_RATE, "-", d_rejects_s },
	{ "tier", "TIER", C_SIZE, "-", d_tier },
	{ "heartbeat_age_ms", NULL, C_NUM, "-", d_age },
};

#define N_DEV_FIELDS	(sizeof(dev_fields) / sizeof(dev_fields[0]))
#define N_POOL_FIELDS	(sizeof(pool_fields) / sizeof(pool_fields[0]))

/* The same member (id and pid) in the sample before, or NULL. */
static const struct tmem_ledger_member_info *
find_prev(const struct top_sample *prev, const struct top_pool *p,
	  const struct tmem_ledger_member_info *m)
{
	for (size_t i = 0; prev && i < prev->npools; i++) {
		const struct top_pool *q = &prev->pool[i];

		if (strcmp(q->name, p->name))
			continue;
		for (unsigned int j = 0; j < q->n; j++)
			if (q->m[j].pid == m->pid && !strcmp(q->m[j].id, m->id))
				return &q->m[j];
	}
	return NULL;
}

static struct dev_row row_of(const struct top_sample *s,
			     const struct top_sample *prev, size_t pool,
			     unsigned int member)
{
	const struct top_pool *p = &s->pool[pool];

	return (struct dev_row){
		.pool = p,
		.m = &p->m[member],
		.prev = find_prev(prev, p, &p->m[member]),
		.dt = prev ? s->t - prev->t : 0,
	};
}

/* Sizes as zramctl writes them: 0B, 4K, 512M, 1.5G. */
void top_human_size(char *buf, size_t len, uint64_t bytes)
{
	static const char units[] = "BKMGTPE";
	unsigned int exp = 0;
	uint64_t whole = bytes, tenth = 0;

	while (whole >= 1024 && exp < sizeof(units) - 2) {
		tenth = whole % 1024;
		whole /= 1024;
		exp++;
	}
	tenth = (tenth * 10 + 512) / 1024;	/* rounded to a tenth */
	if (tenth == 10) {
		whole++;
		tenth = 0;
	}
	if (tenth)
		snprintf(buf, len, "%" PRIu64 ".%" PRIu64 "%c", whole, tenth,
			 units[exp]);
	else
		snprintf(buf, len, "%" PRIu64 "%c", whole, units[exp]);
}

static void cell(char *buf, size_t len, enum cell_fmt fmt, const char *none,
		 struct val v, bool bytes)
{
	if (v.kind == V_NULL)
		snprintf(buf, len, "%s", none);
	else if (v.kind == V_STR)
		snprintf(buf, len, "%s", v.s[0] ? v.s : none);
	else if (v.kind == V_DBL)
		snprintf(buf, len, fmt == C_RATIO ? "%.2f" : "%.1f", v.d);
	else if (fmt == C_SIZE && !bytes)
		top_human_size(buf, len, v.u);
	else
		snprintf(buf, len, "%" PRIu64, v.u);
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

static void json_val(FILE *f, struct val v)
{
	if (v.kind == V_NULL)
		fputs("null", f);
	else if (v.kind == V_STR)
		json_str(f, v.s);
	else if (v.kind == V_DBL)
		fprintf(f, "%.3f", v.d);
	else
		fprintf(f, "%" PRIu64, v.u);
}

/* An object of @n fields of @p (a V_OBJ value: one more, nested). */
static void json_pool_fields(FILE *f, const struct pool_field *pf, size_t n,
			     const struct top_pool *p)
{
	const char *sep = "{";

	for (size_t i = 0; i < n; i++) {
		struct val v;

		if (!pf[i].json)
			continue;
		fprintf(f, "%s\"%s\":", sep, pf[i].json);
		v = pf[i].get(p);
		if (v.kind == V_OBJ)
			json_pool_fields(f, v.obj, v.nobj, p);
		else
			json_val(f, v);
		sep = ",";
	}
	fputc('}', f);
}

static void json_pool(FILE *f, const struct top_pool *p)
{
	json_pool_fields(f, pool_fields, N_POOL_FIELDS, p);
}

static void json_dev(FILE *f, const struct dev_row *r)
{
	const char *sep = "{";

	for (size_t i = 0; i < N_DEV_FIELDS; i++) {
		if (!dev_fields[i].json)
			continue;
		fprintf(f, "%s\"%s\":", sep, dev_fields[i].json);
		json_val(f, dev_fields[i].get(r));
		sep = ",";
	}
	fputc('}', f);
}

void top_show_json(FILE *f, const struct top_sample *s,
		   const struct top_sample *prev)
{
	const char *sep = "";

	fputs("{\"pools\":[", f);
	for (size_t i = 0; i < s->npools; i++, sep = ",") {
		fputs(sep, f);
		json_pool(f, &s->pool[i]);
	}
	fputs("],\"devices\":[", f);
	sep = "";
	for (size_t i = 0; i < s->npools; i++) {
		for (unsigned int j = 0; j < s->pool[i].n; j++, sep = ",") {
			struct dev_row r = row_of(s, prev, i, j);

			fputs(sep, f);
			json_dev(f, &r);
		}
	}
	fputs("]}\n", f);
}

/* ---- the table ---- */

static void pool_line(FILE *f, const struct top_pool *p, bool bytes)
{
	char buf[POOL_CELL_MAX];
	const char *sep = ": ";

	fprintf(f, "pool %s", p->name);
	for (size_t i = 0; i < N_POOL_FIELDS; i++) {
		const struct pool_field *pf = &pool_fields[i];

		if (!pf->label)
			continue;
		if (pf->text)
			pf->text(buf, sizeof(buf), p);
		else
			cell(buf, sizeof(buf), pf->fmt, "-", pf->get(p), bytes);
		fprintf(f, "%s%s %s", sep, pf->label, buf);
		sep = ", ";
	}
	fputc('\n', f);
}

static void print_row(FILE *f, char (*cells)[CELL_MAX], const int *width)
{
	const char *sep = "";

	for (size_t i = 0; i < N_DEV_FIELDS; i++) {
		if (!dev_fields[i].label)
			continue;
		/* Text to the left, numbers to the right, as zramctl. */
		fprintf(f, "%s%*s", sep,
			dev_fields[i].fmt == C_STR ? -width[i] : width[i],
			cells[i]);
		sep = " ";
	}
	fputc('\n', f);
}

/* One table of every device; widths from the widest cell of a column. */
static void dev_table(FILE *f, const struct top_opts *o,
		      const struct top_sample *s, const struct top_sample *prev)
{
	size_t rows = 1, k = 1;
	char (*cells)[N_DEV_FIELDS][CELL_MAX];
	int width[N_DEV_FIELDS] = { 0 };

	for (size_t i = 0; i < s->npools; i++)
		rows += s->pool[i].n;
	cells = calloc(rows, sizeof(*cells));
	if (!cells)
		return;
	for (size_t c = 0; c < N_DEV_FIELDS; c++)
		snprintf(cells[0][c], CELL_MAX, "%s",
			 dev_fields[c].label ? dev_fields[c].label : "");
	for (size_t i = 0; i < s->npools; i++) {
		for (unsigned int j = 0; j < s->pool[i].n; j++, k++) {
			struct dev_row r = row_of(s, prev, i, j);

			for (size_t c = 0; c < N_DEV_FIELDS; c++)
				cell(cells[k][c], CELL_MAX, dev_fields[c].fmt,
				     dev_fields[c].none,
				     dev_fields[c].get(&r), o->bytes);
		}
	}
	for (size_t r = 0; r < rows; r++)
		for (size_t c = 0; c < N_DEV_FIELDS; c++)
			if ((int)strlen(cells[r][c]) > width[c])
				width[c] = (int)strlen(cells[r][c]);
	for (size_t r = 0; r < rows; r++)
		print_row(f, cells[r], width);
	free(cells);
}

void top_show_table(FILE *f, const struct top_opts *o,
		    const struct top_sample *s, const struct top_sample *prev)
{
	char stamp[16] = "";
	time_t now = time(NULL);
	struct tm tm;

	if (localtime_r(&now, &tm))
		strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	fprintf(f, "vtmem-top - %s, %s, %zu pool%s\n", stamp, o->dir,
		s->npools, s->npools == 1 ? "" : "s");
	for (size_t i = 0; i < s->npools; i++)
		pool_line(f, &s->pool[i], o->bytes);
	fputc('\n', f);
	dev_table(f, o, s, prev);
}
