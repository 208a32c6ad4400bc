/* SPDX-License-Identifier: MIT */
/*
 * The budget is a hard cap: host_bytes (data plus metadata) never
 * exceeds budget_bytes, a refused store leaves no copy, and freeing
 * pages makes room again (DEV-16; DEV-11 for refused stores).
 */
#include "tmem-test.h"

#define SEED(obj, i) ((uint64_t)(obj) * 1000003u + (i))

static void assert_within_budget(struct tmem_client *c, uint64_t budget)
{
	struct tmem_stats st = tstats(c);

	if (st.host_bytes > budget)
		fail_msg("host_bytes %llu > budget %llu",
			 (unsigned long long)st.host_bytes,
			 (unsigned long long)budget);
	assert_int_equal(st.host_bytes, st.data_bytes + st.meta_bytes);
}

/* Store pages of @kind until -ENOSPC; returns how many were accepted. */
static uint32_t fill_until_enospc(struct tclient *t, uint32_t pool,
				  uint64_t obj, enum page_kind kind,
				  uint64_t budget, uint32_t limit)
{
	uint32_t i;
	int ret;

	for (i = 0; i < limit; i++) {
		ret = store_gen(t, pool, obj, i, kind, SEED(obj, i));
		assert_within_budget(t->client, budget);
		if (ret == -ENOSPC) {
			load_expect_miss(t, pool, obj, i);
			return i;
		}
		if (ret != 0)
			fail_msg("store %u: %d (%s)", i, ret,
				 tmem_strerror(ret));
	}
	fail_msg("%u stores of kind %d did not exhaust a %llu-byte budget",
		 limit, kind, (unsigned long long)budget);
	return 0;
}

/*
 * Fill to -ENOSPC, keep pushing (all refused, no copy left), check
 * everything acknowledged, then free half and store again.
 */
static void check_exhaustion(uint64_t budget, enum page_kind kind,
			     uint32_t limit)
{
	struct tmem_client_config cfg = test_config(budget);
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool, n, i, again;
	unsigned char *held;

	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n = fill_until_enospc(&t, pool, 1, kind, budget, limit);
	assert_true(n > 0);
	st = tstats(t.client);
	assert_int_equal(st.pages, n);
	assert_int_equal(st.failed_stores_budget, 1);
	assert_int_equal(st.failed_stores, 1);

	held = calloc(n + 64, 1);
	assert_non_null(held);
	memset(held, 1, n);
	for (i = n; i < n + 64; i++) {
		int ret = store_gen(&t, pool, 1, i, kind, SEED(1, i));

		assert_true(ret == -ENOSPC || ret == 0);
		assert_within_budget(t.client, budget);
		held[i] = ret == 0;
	}
	for (i = 0; i < n + 64; i++) {
		if (held[i])
			load_expect(&t, pool, 1, i, kind, SEED(1, i));
		else
			load_expect_miss(&t, pool, 1, i);
	}

	/*
	 * Invalidation frees room: stores succeed again.  Every other page
	 * leaves holes the allocator must reuse; same-filled pages cost
	 * only index metadata, which is freed per run of keys, so drop a
	 * contiguous half for them.
	 */
	for (i = 0; i < n + 64; i += kind == PK_ZERO ? 1 : 2) {
		if (kind == PK_ZERO && i >= (n + 64) / 2)
			break;
		assert_int_equal(tmem_invalidate_page(t.ctx, pool, 1, i),
				 held[i]);
		held[i] = 0;
	}
	assert_within_budget(t.client, budget);
	again = fill_until_enospc(&t, pool, 2, kind, budget, limit);
	assert_true(again >= n / 4);
	for (i = 0; i < n + 64; i++) {
		if (held[i])
			load_expect(&t, pool, 1, i, kind, SEED(1, i));
		else
			load_expect_miss(&t, pool, 1, i);
	}
	for (i = 0; i < again; i++)
		load_expect(&t, pool, 2, i, kind, SEED(2, i));
	free(held);
	tclient_close(&t);
}

static void test_exhaustion_text(void **state)
{
	(void)state;
	check_exhaustion(1ULL << 20, PK_TEXT, 100000);
}

static void test_exhaustion_random(void **state)
{
	(void)state;
	check_exhaustion(1ULL << 20, PK_RANDOM, 100000);
}

static void test_exhaustion_half(void **state)
{
	(void)state;
	check_exhaustion(3ULL << 20, PK_HALF, 100000);
}

/* Metadata counts too: same-filled pages alone must hit the cap. */
static void test_exhaustion_same_filled(void **state)
{
	(void)state;
	check_exhaustion(512ULL << 10, PK_ZERO, 2000000);
}

/*
 * An overwrite that no longer fits is refused and drops the old copy
 * (frontswap FAQ 5: a 1K page overwritten by an incompressible 4K one).
 */
static void test_overwrite_over_budget(void **state)
{
	uint64_t budget = 1ULL << 20;
	struct tmem_client_config cfg = test_config(budget);
	struct tclient t;
	uint32_t pool, n, i, refused = 0;

	(void)state;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n = fill_until_enospc(&t, pool, 1, PK_SPARSE, budget, 1000000);
	for (i = 0; i < n; i++) {
		int ret = store_gen(&t, pool, 1, i, PK_RANDOM, SEED(9, i));

		assert_within_budget(t.client, budget);
		if (ret == 0) {
			load_expect(&t, pool, 1, i, PK_RANDOM, SEED(9, i));
		} else {
			assert_int_equal(ret, -ENOSPC);
			load_expect_miss(&t, pool, 1, i);
			refused++;
		}
	}
	assert_true(refused > 0);
	tclient_close(&t);
}

/*
 * Holes left by invalidations sit in slabs of one size class; stores of
 * another class may need them back (libtmem compacts).  Whatever the
 * allocator does to make room, every page still held must load back
 * byte for byte, before and after, and the budget holds throughout
 * (DEV-9, DEV-16).
 */
static void test_fragmentation_round_trip(void **state)
{
	uint64_t budget = 2ULL << 20;
	struct tmem_client_config cfg = test_config(budget);
	static const enum page_kind other[3] = { PK_RANDOM, PK_HALF, PK_SPARSE };
	struct tclient t;
	uint32_t pool, n, m, i, round;

	(void)state;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n = fill_until_enospc(&t, pool, 1, PK_TEXT, budget, 100000);
	for (round = 0; round < 3; round++) {
		/* Punch holes in every slab: a quarter of the pages a round. */
		for (i = round; i < n; i += 4)
			assert_int_equal(tmem_invalidate_page(t.ctx, pool, 1, i),
					 1);
		m = fill_until_enospc(&t, pool, 10 + round, other[round],
				      budget, 100000);
		print_message("round %u: %u new pages fit after freeing %u\n",
			      round, m, (n + 3 - round) / 4);
		/* Pages i % 4 > round are still held, exactly. */
		for (i = 0; i < n; i++) {
			if (i % 4 > round)
				load_expect(&t, pool, 1, i, PK_TEXT, SEED(1, i));
			else
				load_expect_miss(&t, pool, 1, i);
		}
		for (i = 0; i < m; i++)
			load_expect(&t, pool, 10 + round, i, other[round],
				    SEED(10 + round, i));
	}
	tclient_close(&t);
}

/* Pools of one client share its budget. */
static void test_budget_shared_by_pools(void **state)
{
	uint64_t budget = 1ULL << 20;
	struct tmem_client_config cfg = test_config(budget);
	struct tclient t;
	uint32_t pool[4], i, n;
	int ret = 0;

	(void)state;
	tclient_open(&t, &cfg);
	for (i = 0; i < 4; i++)
		pool[i] = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (n = 0; n < 100000; n++) {
		ret = store_gen(&t, pool[n % 4], 0, n, PK_TEXT, n);
		assert_within_budget(t.client, budget);
		if (ret)
			break;
	}
	assert_int_equal(ret, -ENOSPC);
	/* Destroying one pool frees its share for the others. */
	assert_int_equal(tmem_pool_destroy(t.client, pool[0]), 0);
	assert_int_equal(store_gen(&t, pool[1], 1, 0, PK_TEXT, 1), 0);
	load_expect(&t, pool[1], 1, 0, PK_TEXT, 1);
	for (i = 1; i < n; i++)
		if (i % 4)
			load_expect(&t, pool[i % 4], 0, i, PK_TEXT, i);
	tclient_close(&t);
}

/* Clients have separate budgets: one full client does not starve another. */
static void test_budget_per_client(void **state)
{
	uint64_t budget = 1ULL << 20;
	struct tmem_client_config cfg = test_config(budget);
	struct tclient a, b;
	uint32_t pa, pb;

	(void)state;
	tclient_open(&a, &cfg);
	tclient_open(&b, &cfg);
	pa = tpool_new(&a, TMEM_POOL_PERSISTENT);
	pb = tpool_new(&b, TMEM_POOL_PERSISTENT);
	fill_until_enospc(&a, pa, 1, PK_TEXT, budget, 100000);
	assert_int_equal(store_gen(&b, pb, 1, 0, PK_TEXT, 5), 0);
	load_expect(&b, pb, 1, 0, PK_TEXT, 5);
	tclient_close(&a);
	tclient_close(&b);
}

/*
 * reset returns host_bytes to what a fresh client uses: the library half
 * of DEV-3 (the device calls tmem_client_reset() on device reset).
 */
static void test_reset_frees(void **state)
{
	uint64_t budget = 4ULL << 20;
	struct tmem_client_config cfg = test_config(budget);
	struct tclient t;
	uint64_t fresh;
	uint32_t pool, e;
	int round;

	(void)state;
	tclient_open(&t, &cfg);
	fresh = tstats(t.client).host_bytes;
	for (round = 0; round < 3; round++) {
		pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
		e = tpool_new(&t, TMEM_POOL_EPHEMERAL);
		fill_until_enospc(&t, pool, 1, PK_HALF, budget, 100000);
		store_gen(&t, e, 1, 0, PK_TEXT, 0);
		assert_true(tstats(t.client).host_bytes > fresh);
		assert_int_equal(tmem_client_reset(t.client), 0);
		if (tstats(t.client).host_bytes > fresh + 64 * 1024)
			fail_msg("after reset host_bytes %llu, fresh %llu",
				 (unsigned long long)tstats(t.client).host_bytes,
				 (unsigned long long)fresh);
		assert_int_equal(tstats(t.client).pages, 0);
		assert_int_equal(tstats(t.client).data_bytes, 0);
	}
	tclient_close(&t);
}

/* Destroying or invalidating pools also gives the bytes back. */
static void test_destroy_frees(void **state)
{
	uint64_t budget = 2ULL << 20;
	struct tmem_client_config cfg = test_config(budget);
	struct tclient t;
	uint32_t pool, n1, n2;

	(void)state;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n1 = fill_until_enospc(&t, pool, 1, PK_TEXT, budget, 100000);
	assert_int_equal(tmem_invalidate_pool(t.client, pool), 0);
	assert_int_equal(tstats(t.client).data_bytes, 0);
	assert_int_equal(tmem_pool_destroy(t.client, pool), 0);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n2 = fill_until_enospc(&t, pool, 2, PK_TEXT, budget, 100000);
	/* Within a few percent: nothing leaked into the budget. */
	assert_true(n2 >= n1 - n1 / 20);
	assert_int_equal(tmem_pool_destroy(t.client, pool), 0);
	assert_int_equal(tstats(t.client).data_bytes, 0);
	tclient_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exhaustion_text),
		cmocka_unit_test(test_exhaustion_random),
		cmocka_unit_test(test_exhaustion_half),
		cmocka_unit_test(test_exhaustion_same_filled),
		cmocka_unit_test(test_overwrite_over_budget),
		cmocka_unit_test(test_fragmentation_round_trip),
		cmocka_unit_test(test_budget_shared_by_pools),
		cmocka_unit_test(test_budget_per_client),
		cmocka_unit_test(test_reset_frees),
		cmocka_unit_test(test_destroy_frees),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
