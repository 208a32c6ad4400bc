/* SPDX-License-Identifier: MIT */
/*
 * vtmem-top: what the host-wide pools' ledgers say, and changes to them,
 * through tmem_ledger.h only.  The parts: vtmem-top.c (the command line),
 * top-sample.c (opening pools, one sample of them), top-show.c (the
 * table and the JSON, from one list of fields each for pools and devices).
 */
#ifndef VTMEM_TOP_H
#define VTMEM_TOP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tmem.h"

/* One pool as one tmem_ledger_list() saw it. */
struct top_pool {
	char name[NAME_MAX + 1];
	struct tmem_ledger_info info;
	/* tmem_ledger_get_pressure()'s settings: all 0 when the mode is off. */
	struct tmem_ledger_pressure pressure;
	unsigned int n;
	struct tmem_ledger_member_info m[TMEM_LEDGER_MAX_MEMBERS];
};

/* Every pool asked for, at one time. */
struct top_sample {
	struct top_pool *pool;
	size_t npools;
	double t;		/* CLOCK_MONOTONIC, seconds */
};

struct top_opts {
	const char *dir;	/* resolved: never NULL */
	char **pools;		/* --pool NAME...; NULL: every *.ledger */
	size_t npools;
	double delay;		/* -d, seconds */
	unsigned long iterations;	/* -n; 0: until interrupted */
	bool json;
	bool bytes;
};

/* top-sample.c */
const char *top_ledger_dir(const char *opt);
void top_error(const char *dir, const char *pool, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int top_open(const char *dir, const char *pool, uint64_t create_total,
	     uint32_t stale_ms, struct tmem_ledger **lp, bool quiet_enoent);
int top_sample_take(const struct top_opts *o, struct top_sample *s);
void top_sample_free(struct top_sample *s);
double top_now(void);

/* top-pressure.c: 0, or -errno (said on stderr, naming the pool). */
int top_set_pressure(const char *dir, const char *pool,
		     struct tmem_ledger *l,
		     const struct tmem_ledger_pressure *p);

/* top-show.c: @prev NULL, or the sample before (for the rates). */
void top_show_json(FILE *f, const struct top_sample *s,
		   const struct top_sample *prev);
void top_show_table(FILE *f, const struct top_opts *o,
		    const struct top_sample *s, const struct top_sample *prev);
void top_human_size(char *buf, size_t len, uint64_t bytes);

#endif /* VTMEM_TOP_H */
