/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the libtmem unit tests: deterministic page contents
 * (so a page can be regenerated instead of kept), client setup, and
 * guarded buffers for the wire tests.
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
#include <setjmp.h>
#include <cmocka.h>

#include "tmem.h"

#define PAGE TMEM_PAGE_SIZE

/* liburing's convention: a test that cannot run here exits 77. */
#define T_EXIT_SKIP 77

enum page_kind {
	PK_RANDOM,		/* incompressible */
	PK_TEXT,		/* English-like words: compresses ~2-3x */
	PK_ZERO,		/* same-filled, 0 */
	PK_BYTE,		/* same-filled, one nonzero byte value */
	PK_WORD,		/* one 8-byte word repeated */
	PK_HALF,		/* first half random, second half zero */
	PK_SPARSE,		/* zero page with a few random bytes */
	PK_NR,
};

static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void fill_random(unsigned char *p, size_t len, uint64_t *s)
{
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t v = splitmix64(s);

		memcpy(p + i, &v, 8);
	}
	for (; i < len; i++)
		p[i] = (unsigned char)splitmix64(s);
}

/* Fill @p with page content of @kind, fully determined by @seed. */
static inline void fill_page(void *page, enum page_kind kind, uint64_t seed)
{
	static const char *const words[] = {
		"the ", "swap ", "page ", "host ", "guest ", "memory ",
		"store ", "load ", "pool ", "object ", "index ", "kernel ",
		"virtio ", "queue ", "budget ", "compressed ",
	};
	unsigned char *p = page;
	uint64_t s = seed * 0x2545f4914f6cdd1dULL + kind;
	size_t i, n;
	uint64_t w;

	switch (kind) {
	case PK_RANDOM:
		fill_random(p, PAGE, &s);
		break;
	case PK_TEXT:
		for (i = 0; i < PAGE; i += n) {
			const char *word = words[splitmix64(&s) % 16];

			n = strlen(word);
			if (n > PAGE - i)
				n = PAGE - i;
			memcpy(p + i, word, n);
		}
		break;
	case PK_ZERO:
		memset(p, 0, PAGE);
		break;
	case PK_BYTE:
		memset(p, (int)(splitmix64(&s) % 255) + 1, PAGE);
		break;
	case PK_WORD:
		w = splitmix64(&s) | 1;
		for (i = 0; i < PAGE; i += 8)
			memcpy(p + i, &w, 8);
		break;
	case PK_HALF:
		fill_random(p, PAGE / 2, &s);
		memset(p + PAGE / 2, 0, PAGE / 2);
		break;
	case PK_SPARSE:
		memset(p, 0, PAGE);
		for (i = 0; i < 16; i++)
			p[splitmix64(&s) % PAGE] = (unsigned char)splitmix64(&s);
		break;
	default:
		fail_msg("bad page kind %d", kind);
	}
}

/* A mixed workload: mostly compressible, some random, some same-filled. */
static inline enum page_kind kind_for(uint64_t n)
{
	static const enum page_kind mix[10] = {
		PK_TEXT, PK_TEXT, PK_RANDOM, PK_ZERO, PK_WORD,
		PK_HALF, PK_TEXT, PK_SPARSE, PK_BYTE, PK_RANDOM,
	};

	return mix[splitmix64(&n) % 10];
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
