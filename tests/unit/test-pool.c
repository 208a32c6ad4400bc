/* SPDX-License-Identifier: MIT */
/*
 * Clients and pools: configuration checks, pool ids, max_pools,
 * destroy and invalidate_pool semantics, isolation between clients.
 */
#include "tmem-test.h"

#define BUDGET (64ULL << 20)

static void test_client_config_rejected(void **state)
{
	struct tmem_client_config cfg;
	struct tmem_client *c = (struct tmem_client *)0x1;

	(void)state;
	cfg = test_config(0);
	assert_int_equal(tmem_client_new(&cfg, &c), -EINVAL);

	cfg = test_config(BUDGET);
	cfg.max_pools = TMEM_MAX_POOLS + 1;
	assert_int_equal(tmem_client_new(&cfg, &c), -EINVAL);

	cfg = test_config(BUDGET);
	cfg.compress_threshold = TMEM_PAGE_SIZE + 1;
	assert_int_equal(tmem_client_new(&cfg, &c), -EINVAL);

	cfg = test_config(BUDGET);
	cfg.incompressible = (enum tmem_incompressible)7;
	assert_int_equal(tmem_client_new(&cfg, &c), -EINVAL);
}

static void test_client_config_limits_accepted(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tmem_client *c = NULL;

	(void)state;
	cfg.max_pools = TMEM_MAX_POOLS;
	cfg.compress_threshold = TMEM_PAGE_SIZE;
	cfg.incompressible = TMEM_INCOMPRESSIBLE_REJECT;
	assert_int_equal(tmem_client_new(&cfg, &c), 0);
	assert_non_null(c);
	assert_int_equal(tmem_client_stats(c, &(struct tmem_stats){ 0 }), 0);
	tmem_client_free(c);

	/* Free functions accept NULL. */
	tmem_client_free(NULL);
	tmem_ctx_free(NULL);
}

static void test_fresh_stats(void **state)
{
	struct tclient t;
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tmem_stats st;

	(void)state;
	tclient_open(&t, &cfg);
	st = tstats(t.client);
	assert_int_equal(st.budget_bytes, BUDGET);
	assert_int_equal(st.pools, 0);
	assert_int_equal(st.succ_stores, 0);
	assert_int_equal(st.failed_stores, 0);
	assert_int_equal(st.loads, 0);
	assert_int_equal(st.load_misses, 0);
	assert_int_equal(st.invalidates, 0);
	assert_int_equal(st.evictions, 0);
	assert_int_equal(st.pages, 0);
	assert_int_equal(st.compressed_bytes, 0);
	assert_int_equal(st.host_bytes, st.data_bytes + st.meta_bytes);
	assert_true(st.host_bytes <= BUDGET);
	tclient_close(&t);
}

/* Open pools have distinct ids; opening past max_pools fails. */
static void check_max_pools(uint32_t cfg_max, uint32_t expect_max)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	uint32_t *ids = calloc(expect_max, sizeof(*ids));
	uint32_t id, i, j;

	assert_non_null(ids);
	cfg.max_pools = cfg_max;
	tclient_open(&t, &cfg);
	for (i = 0; i < expect_max; i++) {
		ids[i] = tpool_new(&t, i % 2 ? TMEM_POOL_EPHEMERAL :
				   TMEM_POOL_PERSISTENT);
		for (j = 0; j < i; j++)
			assert_int_not_equal(ids[i], ids[j]);
	}
	assert_int_equal(tstats(t.client).pools, expect_max);
	assert_int_equal(tmem_pool_new(t.client, TMEM_POOL_PERSISTENT, &id),
			 -ENOSPC);
	assert_int_equal(tmem_pool_new(t.client, TMEM_POOL_EPHEMERAL, &id),
			 -ENOSPC);

	/* Closing one makes room for exactly one more. */
	assert_int_equal(tmem_pool_destroy(t.client, ids[expect_max / 2]), 0);
	assert_int_equal(tstats(t.client).pools, expect_max - 1);
	ids[expect_max / 2] = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(tmem_pool_new(t.client, TMEM_POOL_PERSISTENT, &id),
			 -ENOSPC);
	tclient_close(&t);
	free(ids);
}

static void test_max_pools_default(void **state)
{
	(void)state;
	check_max_pools(0, TMEM_DEFAULT_MAX_POOLS);
}

static void test_max_pools_configured(void **state)
{
	(void)state;
	check_max_pools(1, 1);
	check_max_pools(3, 3);
	check_max_pools(TMEM_MAX_POOLS, TMEM_MAX_POOLS);
}

static void test_pool_type_invalid(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	uint32_t id;

	(void)state;
	tclient_open(&t, &cfg);
	assert_int_equal(tmem_pool_new(t.client, (enum tmem_pool_type)2, &id),
			 -EINVAL);
	assert_int_equal(tmem_pool_new(t.client, (enum tmem_pool_type)-1, &id),
			 -EINVAL);
	assert_int_equal(tstats(t.client).pools, 0);
	tclient_close(&t);
}

/* Every page operation on an id that is not open fails with -EBADF. */
static void expect_badf(struct tclient *t, uint32_t pool)
{
	unsigned char page[PAGE];

	fill_page(page, PK_TEXT, 1);
	assert_int_equal(tmem_store(t->ctx, pool, 1, 1, page), -EBADF);
	assert_int_equal(tmem_load(t->ctx, pool, 1, 1, page), -EBADF);
	assert_int_equal(tmem_invalidate_page(t->ctx, pool, 1, 1), -EBADF);
	assert_int_equal(tmem_invalidate_object(t->ctx, pool, 1), -EBADF);
	assert_int_equal(tmem_pool_destroy(t->client, pool), -EBADF);
}

static void test_closed_and_unknown_ids(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	uint32_t a;

	(void)state;
	tclient_open(&t, &cfg);
	expect_badf(&t, 0);
	expect_badf(&t, 1);
	expect_badf(&t, TMEM_DEFAULT_MAX_POOLS);
	expect_badf(&t, TMEM_MAX_POOLS);
	expect_badf(&t, UINT32_MAX);
	a = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&t, a, 1, 1, PK_TEXT, 5), 0);
	assert_int_equal(tmem_pool_destroy(t.client, a), 0);
	expect_badf(&t, a);
	assert_int_equal(tstats(t.client).pools, 0);
	assert_int_equal(tstats(t.client).pages, 0);
	tclient_close(&t);
}

/* A destroyed pool's pages are gone, even if its id is handed out again. */
static void test_destroy_drops_pages(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	uint32_t a, b, i;

	(void)state;
	cfg.max_pools = 1;	/* the next pool must reuse the only id */
	tclient_open(&t, &cfg);
	a = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < 64; i++)
		assert_int_equal(store_gen(&t, a, i % 4, i, kind_for(i), i), 0);
	assert_int_equal(tstats(t.client).pages, 64);
	assert_int_equal(tmem_pool_destroy(t.client, a), 0);
	assert_int_equal(tstats(t.client).pages, 0);
	assert_int_equal(tstats(t.client).compressed_bytes, 0);

	b = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < 64; i++)
		load_expect_miss(&t, b, i % 4, i);
	tclient_close(&t);
}

/*
 * invalidate_pool is frontswap's invalidate_area: the pages go, the pool
 * stays open but refuses stores with -ESHUTDOWN until it is destroyed
 * (DEV-13).
 */
static void test_invalidate_pool(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	struct tmem_stats st;
	uint32_t a, b, c, i;

	(void)state;
	tclient_open(&t, &cfg);
	a = tpool_new(&t, TMEM_POOL_PERSISTENT);
	b = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < 32; i++) {
		assert_int_equal(store_gen(&t, a, 7, i, kind_for(i), i), 0);
		assert_int_equal(store_gen(&t, b, 7, i, PK_TEXT, 100 + i), 0);
	}
	assert_int_equal(tmem_invalidate_pool(t.client, a), 0);
	st = tstats(t.client);
	assert_int_equal(st.pools, 2);
	assert_int_equal(st.pages, 32);
	for (i = 0; i < 32; i++) {
		load_expect_miss(&t, a, 7, i);
		assert_int_equal(store_gen(&t, a, 7, i, PK_TEXT, i), -ESHUTDOWN);
		assert_int_equal(store_gen(&t, a, 8, i, PK_ZERO, i), -ESHUTDOWN);
		load_expect_miss(&t, a, 7, i);
		load_expect_miss(&t, a, 8, i);
		load_expect(&t, b, 7, i, PK_TEXT, 100 + i);
	}
	st = tstats(t.client);
	assert_int_equal(st.failed_stores, 64);
	assert_int_equal(st.failed_stores_other, 64);
	assert_int_equal(st.pages, 32);

	/* Invalidating again is harmless; destroying reopens the slot. */
	assert_int_equal(tmem_invalidate_pool(t.client, a), 0);
	assert_int_equal(tmem_pool_destroy(t.client, a), 0);
	c = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&t, c, 7, 0, PK_TEXT, 9), 0);
	load_expect(&t, c, 7, 0, PK_TEXT, 9);
	tclient_close(&t);
}

/* The same key in two pools names two pages. */
static void test_pools_independent(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	uint32_t a, b, i;

	(void)state;
	tclient_open(&t, &cfg);
	a = tpool_new(&t, TMEM_POOL_PERSISTENT);
	b = tpool_new(&t, TMEM_POOL_EPHEMERAL);
	for (i = 0; i < 16; i++) {
		assert_int_equal(store_gen(&t, a, 1, i, PK_TEXT, i), 0);
		assert_int_equal(store_gen(&t, b, 1, i, PK_TEXT, 1000 + i), 0);
	}
	assert_int_equal(tmem_invalidate_object(t.ctx, b, 1), 16);
	for (i = 0; i < 16; i++) {
		load_expect(&t, a, 1, i, PK_TEXT, i);
		load_expect_miss(&t, b, 1, i);
	}
	tclient_close(&t);
}

/* DEV-7: a client reaches only its own pools, whatever id it names. */
static void test_clients_isolated(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient ta, tb;
	unsigned char page[PAGE];
	uint32_t a, b, i;

	(void)state;
	tclient_open(&ta, &cfg);
	tclient_open(&tb, &cfg);
	a = tpool_new(&ta, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&ta, a, 1, 1, PK_TEXT, 42), 0);

	/* B has no pool open: A's id is just a closed id for B. */
	expect_badf(&tb, a);

	/* B opens its own pool, likely with the same number. */
	b = tpool_new(&tb, TMEM_POOL_PERSISTENT);
	for (i = 0; i < TMEM_DEFAULT_MAX_POOLS; i++) {
		int ret = tmem_load(tb.ctx, i, 1, 1, page);

		assert_true(ret == -ENOENT || ret == -EBADF);
	}
	assert_int_equal(store_gen(&tb, b, 1, 1, PK_TEXT, 43), 0);
	load_expect(&ta, a, 1, 1, PK_TEXT, 42);
	load_expect(&tb, b, 1, 1, PK_TEXT, 43);

	/* Destroying B's pool does not touch A's. */
	assert_int_equal(tmem_pool_destroy(tb.client, b), 0);
	load_expect(&ta, a, 1, 1, PK_TEXT, 42);
	assert_int_equal(tstats(ta.client).pages, 1);
	assert_int_equal(tstats(tb.client).pages, 0);
	tclient_close(&tb);
	load_expect(&ta, a, 1, 1, PK_TEXT, 42);
	tclient_close(&ta);
}

/*
 * DEV-3 (library half): reset drops every pool and page, counters zero,
 * the client usable.
 */
static void test_reset(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	struct tmem_stats st;
	uint32_t a, b, i;

	(void)state;
	tclient_open(&t, &cfg);
	a = tpool_new(&t, TMEM_POOL_PERSISTENT);
	b = tpool_new(&t, TMEM_POOL_EPHEMERAL);
	for (i = 0; i < 200; i++) {
		assert_int_equal(store_gen(&t, a, 0, i, kind_for(i), i), 0);
		assert_int_equal(store_gen(&t, b, 0, i, kind_for(i), i), 0);
	}
	load_expect_miss(&t, a, 5, 5);
	assert_int_equal(tmem_client_reset(t.client), 0);
	st = tstats(t.client);
	assert_int_equal(st.budget_bytes, BUDGET);
	assert_int_equal(st.pools, 0);
	assert_int_equal(st.succ_stores, 0);
	assert_int_equal(st.failed_stores, 0);
	assert_int_equal(st.loads, 0);
	assert_int_equal(st.load_misses, 0);
	assert_int_equal(st.pages, 0);
	assert_int_equal(st.same_filled_pages, 0);
	assert_int_equal(st.raw_pages, 0);
	assert_int_equal(st.compressed_bytes, 0);
	expect_badf(&t, a);
	expect_badf(&t, b);

	/* The context survives a reset. */
	a = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&t, a, 0, 0, PK_TEXT, 1), 0);
	load_expect(&t, a, 0, 0, PK_TEXT, 1);
	tclient_close(&t);
}

/* Counters of a freed context are kept; those of the client go on. */
static void test_stats_survive_ctx_free(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tmem_ctx *extra;
	struct tmem_stats st;
	struct tclient t;
	uint32_t pool, i;

	(void)state;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(tmem_ctx_new(t.client, &extra), 0);
	for (i = 0; i < 5; i++) {
		unsigned char page[PAGE];

		fill_page(page, PK_TEXT, i);
		assert_int_equal(tmem_store(extra, pool, 0, i, page), 0);
		assert_int_equal(tmem_load(extra, pool, 0, i, page), 0);
	}
	assert_int_equal(tmem_invalidate_page(extra, pool, 0, 0), 1);
	tmem_ctx_free(extra);
	load_expect(&t, pool, 0, 1, PK_TEXT, 1);
	load_expect_miss(&t, pool, 0, 0);
	st = tstats(t.client);
	assert_int_equal(st.succ_stores, 5);
	assert_int_equal(st.loads, 6);
	assert_int_equal(st.load_misses, 1);
	assert_int_equal(st.invalidates, 1);
	assert_int_equal(st.pages, 4);
	tclient_close(&t);
}

static void test_strerror(void **state)
{
	static const int errs[] = {
		0, -EINVAL, -ENOMEM, -ENOSPC, -EBADF, -E2BIG, -ESHUTDOWN,
		-ENOENT, -EIO, -EPROTO, -12345,
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		const char *s = tmem_strerror(errs[i]);

		assert_non_null(s);
		assert_true(strlen(s) > 0);
	}
	assert_string_not_equal(tmem_strerror(-ENOSPC),
				tmem_strerror(-E2BIG));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_config_rejected),
		cmocka_unit_test(test_client_config_limits_accepted),
		cmocka_unit_test(test_fresh_stats),
		cmocka_unit_test(test_max_pools_default),
		cmocka_unit_test(test_max_pools_configured),
		cmocka_unit_test(test_pool_type_invalid),
		cmocka_unit_test(test_closed_and_unknown_ids),
		cmocka_unit_test(test_destroy_drops_pages),
		cmocka_unit_test(test_invalidate_pool),
		cmocka_unit_test(test_pools_independent),
		cmocka_unit_test(test_clients_isolated),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_stats_survive_ctx_free),
		cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
