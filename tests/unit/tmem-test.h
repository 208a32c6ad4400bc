/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libtmem unit tests: deterministic page contents
 * (tests/common/vtmem-pages.h, so a page can be regenerated instead of
 * kept), client setup, and guarded buffers for the wire tests.
 */
#ifndef TMEM_TEST_H
#define TMEM_TEST_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tmem.h"

#define PAGE TMEM_PAGE_SIZE

/* liburing's convention: a test that cannot run here exits 77. */
#define T_EXIT_SKIP 77

#include "vtmem-pages.h"

/* Fill @page with content of @kind, fully determined by @seed. */
static inline void fill_page(void *page, enum page_kind kind, uint64_t seed)
{
	if (fill_page_kind(page, kind, seed))
		fail_msg("bad page kind %d", kind);
}

static inline void assert_page_is(const void *page, enum page_kind kind,
				  uint64_t seed)
{
	unsigned char want[PAGE];

	fill_page(want, kind, seed);
	if (memcmp(page, want, PAGE) != 0)
		fail_msg("page (kind %d seed %llu) differs from what was stored",
			 kind, (unsigned long long)seed);
}

static inline struct tmem_client_config test_config(uint64_t budget)
{
	struct tmem_client_config cfg = {
		.budget_bytes = budget,
		.max_pools = 0,
		.compress_threshold = 0,
		.incompressible = TMEM_INCOMPRESSIBLE_RAW,
	};

	return cfg;
}

/*
 * Does this libtmem have a disk tier?  A client on a file "probe" in
 * @dir: 0 when it has one, -ENOTSUP when it was built without liburing,
 * else the error.  The file is gone afterwards.
 */
static inline int tmem_test_probe_tier(const char *dir)
{
	struct tmem_client_config cfg = test_config(16ULL << 20);
	struct tmem_client *c = NULL;
	char path[4096];
	int ret;

	snprintf(path, sizeof(path), "%s/probe", dir);
	cfg.backing_file = path;
	cfg.backing_size = TMEM_TIER_MIN_SEGMENTS * TMEM_MIN_SEGMENT_SIZE;
	cfg.segment_size = TMEM_MIN_SEGMENT_SIZE;
	ret = tmem_client_new2(&cfg, sizeof(cfg), &c, NULL, 0);
	tmem_client_free(c);
	unlink(path);
	return ret;
}

struct tclient {
	struct tmem_client *client;
	struct tmem_ctx *ctx;
};

static inline void tclient_open(struct tclient *t,
				const struct tmem_client_config *cfg)
{
	assert_int_equal(tmem_client_new(cfg, &t->client), 0);
	assert_non_null(t->client);
	assert_int_equal(tmem_ctx_new(t->client, &t->ctx), 0);
	assert_non_null(t->ctx);
}

static inline void tclient_close(struct tclient *t)
{
	tmem_ctx_free(t->ctx);
	tmem_client_free(t->client);
	t->ctx = NULL;
	t->client = NULL;
}

static inline uint32_t tpool_new(struct tclient *t, enum tmem_pool_type type)
{
	uint32_t id = 0xdeadbeef;

	assert_int_equal(tmem_pool_new(t->client, type, &id), 0);
	return id;
}

static inline struct tmem_stats tstats(struct tmem_client *c)
{
	struct tmem_stats st;

	memset(&st, 0xff, sizeof(st));
	assert_int_equal(tmem_client_stats(c, &st), 0);
	return st;
}

/* Store a generated page; returns tmem_store()'s result. */
static inline int store_gen(struct tclient *t, uint32_t pool, uint64_t obj,
			    uint32_t idx, enum page_kind kind, uint64_t seed)
{
	unsigned char page[PAGE];

	fill_page(page, kind, seed);
	return tmem_store(t->ctx, pool, obj, idx, page);
}

/* Load and compare against a generated page. */
static inline void load_expect(struct tclient *t, uint32_t pool, uint64_t obj,
			       uint32_t idx, enum page_kind kind, uint64_t seed)
{
	unsigned char page[PAGE];
	int ret = tmem_load(t->ctx, pool, obj, idx, page);

	if (ret != 0)
		fail_msg("load pool %u obj %llu idx %u: %d (%s), want 0",
			 pool, (unsigned long long)obj, idx, ret,
			 tmem_strerror(ret));
	assert_page_is(page, kind, seed);
}

static inline void load_expect_miss(struct tclient *t, uint32_t pool,
				    uint64_t obj, uint32_t idx)
{
	unsigned char page[PAGE];
	int ret = tmem_load(t->ctx, pool, obj, idx, page);

	if (ret != -ENOENT)
		fail_msg("load pool %u obj %llu idx %u: %d (%s), want -ENOENT",
			 pool, (unsigned long long)obj, idx, ret,
			 tmem_strerror(ret));
}

#endif /* TMEM_TEST_H */
