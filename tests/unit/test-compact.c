/* SPDX-License-Identifier: MIT */
/*
 * Density: the allocator fills its fullest partial slab first and
 * compaction moves objects only out of sparse slabs (zs.c, internal API);
 * under the budget, invalidations at random and swap-like churn give
 * slabs back by incremental compaction (compact.c, public API), and
 * every page reads back byte for byte.
 */
#include "tmem-test.h"
#include "tmem_i.h"

#define LOC_EXT(loc)	((loc) >> 14)	/* slab of a location (zs_i.h) */

struct zs_fixture {
	struct tmem_budget budget;
	struct tmem_zs zs;
};

static int zs_setup(void **state)
{
	struct zs_fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->budget.limit = 64 << 20;
	tmem_zs_init(&f->zs, &f->budget);
	*state = f;
	return 0;
}

static int zs_teardown(void **state)
{
	struct zs_fixture *f = *state;

	tmem_zs_fini(&f->zs);
	assert_int_equal(tmem_budget_used(&f->budget), 0);
	free(f);
	return 0;
}

#define OBJ_LEN	200	/* class of 208-byte slots, 39 a slab */

/* Fill two slabs of the class; loc[] gets the objects, slab A's first. */
static unsigned int fill_two_slabs(struct tmem_zs *zs, uint64_t *loc)
{
	unsigned int n = zs->classes[tmem_zs_class(OBJ_LEN)].nslots;
	void *p;

	assert_true(n >= 4 && n <= 64);
	for (unsigned int i = 0; i < 2 * n; i++) {
		assert_int_equal(tmem_zs_alloc(zs, OBJ_LEN, &loc[i], &p), 0);
		memset(p, (int)i, OBJ_LEN);
	}
	assert_true(LOC_EXT(loc[0]) == LOC_EXT(loc[n - 1]));
	assert_true(LOC_EXT(loc[0]) != LOC_EXT(loc[n]));
	return n;
}

/*
 * Slab A keeps a quarter of its objects, slab B three quarters: new
 * objects go to B until it is full, then to A, never to a new slab.
 */
static void test_zs_fullest_first(void **state)
{
	struct zs_fixture *f = *state;
	uint64_t loc[128], l;
	unsigned int n = fill_two_slabs(&f->zs, loc), freed_a = 0, freed_b = 0;
	void *p;

	for (unsigned int i = 0; i < n; i++) {
		if (i % 4 != 0) {
			tmem_zs_free(&f->zs, OBJ_LEN, loc[i]);	/* A */
			freed_a++;
		}
		if (i % 4 == 0) {
			tmem_zs_free(&f->zs, OBJ_LEN, loc[n + i]); /* B */
			freed_b++;
		}
	}
	for (unsigned int i = 0; i < freed_b; i++) {
		assert_int_equal(tmem_zs_alloc(&f->zs, OBJ_LEN, &l, &p), 0);
		if (LOC_EXT(l) != LOC_EXT(loc[n]))
			fail_msg("object %u of %u went to the emptier slab", i,
				 freed_b);
		loc[n + 4 * i] = l;
	}
	for (unsigned int i = 0; i < freed_a; i++) {
		assert_int_equal(tmem_zs_alloc(&f->zs, OBJ_LEN, &l, &p), 0);
		assert_true(LOC_EXT(l) == LOC_EXT(loc[0]));
		loc[i + 1 + i / 3] = l;	/* the slots i % 4 != 0 of A */
	}
	for (unsigned int i = 0; i < 2 * n; i++)
		tmem_zs_free(&f->zs, OBJ_LEN, loc[i]);
	assert_int_equal(atomic_load(&f->budget.data_bytes), 0);
}

/*
 * Compaction moves an object out of a slab under three quarters full
 * into a fuller one, bytes intact, and the emptied slab goes back to the
 * budget; an object of a full or at least 3/4 full slab stays.
 */
static void test_zs_move_sparse_only(void **state)
{
	struct zs_fixture *f = *state;
	uint64_t loc[128], nl;
	unsigned int n = fill_two_slabs(&f->zs, loc), kept = 0;
	uint64_t data;

	/* Full slabs: nothing moves. */
	assert_false(tmem_zs_move(&f->zs, OBJ_LEN, loc[0], &nl));
	/* A keeps objects 0 and 1, B loses a quarter. */
	for (unsigned int i = 2; i < n; i++)
		tmem_zs_free(&f->zs, OBJ_LEN, loc[i]);
	for (unsigned int i = 0; i < n / 4; i++)
		tmem_zs_free(&f->zs, OBJ_LEN, loc[n + i]);
	assert_false(tmem_zs_move(&f->zs, OBJ_LEN, loc[n + n / 2], &nl));
	data = atomic_load(&f->budget.data_bytes);
	for (unsigned int i = 0; i < 2; i++) {
		const uint8_t *q;

		assert_true(tmem_zs_move(&f->zs, OBJ_LEN, loc[i], &nl));
		assert_true(LOC_EXT(nl) == LOC_EXT(loc[n]));
		q = tmem_zs_ptr(&f->zs, OBJ_LEN, nl);
		for (unsigned int b = 0; b < OBJ_LEN; b++)
			if (q[b] != (uint8_t)i)
				fail_msg("moved object %u differs at %u", i, b);
		loc[i] = nl;
		kept++;
	}
	/* Slab A emptied: its bytes are no longer charged. */
	assert_true(atomic_load(&f->budget.data_bytes) < data);
	for (unsigned int i = 0; i < kept; i++)
		tmem_zs_free(&f->zs, OBJ_LEN, loc[i]);
	for (unsigned int i = n / 4; i < n; i++)
		tmem_zs_free(&f->zs, OBJ_LEN, loc[n + i]);
	assert_int_equal(atomic_load(&f->budget.data_bytes), 0);
}

#define NPAGES	8192

/* The seed of a key's current page; 0 = none. */
static uint64_t seeds[NPAGES];

static enum page_kind churn_kind(uint64_t seed)
{
	static const enum page_kind mix[4] = {
		PK_TEXT, PK_HALF, PK_SPARSE, PK_TEXT,
	};

	return mix[seed % 4];
}

static void store_key(struct tclient *t, uint32_t pool, uint32_t key,
		      uint64_t seed)
{
	seeds[key] = seed;
	assert_int_equal(store_gen(t, pool, 0, key, churn_kind(seed), seed), 0);
}

static void check_all(struct tclient *t, uint32_t pool)
{
	unsigned char page[PAGE];

	for (uint32_t k = 0; k < NPAGES; k++) {
		if (seeds[k])
			load_expect(t, pool, 0, k, churn_kind(seeds[k]),
				    seeds[k]);
		else
			assert_int_equal(tmem_load(t->ctx, pool, 0, k, page),
					 -ENOENT);
	}
}

static double data_per_compressed(struct tmem_client *c)
{
	struct tmem_stats st = tstats(c);

	return (double)st.data_bytes / st.compressed_bytes;
}

/*
 * A budget far from full, so only incremental compaction can give the
 * holes back: after invalidating a random half of the keys the slabs
 * would hold about twice the compressed bytes.
 */
static void test_compact_holes_under_budget(void **state)
{
	struct tmem_client_config cfg = test_config(256 << 20);
	struct tclient t;
	uint64_t s = 42;
	uint32_t pool;
	double r;

	(void)state;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	memset(seeds, 0, sizeof(seeds));
	for (uint32_t k = 0; k < NPAGES; k++)
		store_key(&t, pool, k, k + 1);
	r = data_per_compressed(t.client);
	print_message("fresh: data/compressed %.3f\n", r);
	for (uint32_t k = 0; k < NPAGES; k++) {
		if (splitmix64(&s) & 1) {
			assert_int_equal(tmem_invalidate_page(t.ctx, pool, 0, k),
					 1);
			seeds[k] = 0;
		}
	}
	r = data_per_compressed(t.client);
	print_message("half invalidated: data/compressed %.3f\n", r);
	if (r > 1.5)
		fail_msg("data/compressed %.3f after holes: not compacted", r);
	check_all(&t, pool);
	tclient_close(&t);
}

/*
 * Swap-like churn under the budget: each step invalidates a random key
 * and stores a new page at a random free one.  The steady state keeps
 * data within 6.5% of the compressed bytes (about 8% without
 * incremental compaction with this mix, 4% for a fresh store).
 */
static void test_compact_churn_steady(void **state)
{
	struct tmem_client_config cfg = test_config(256 << 20);
	const uint32_t live = NPAGES * 7 / 8;
	uint64_t s = 7, seed = 1;
	struct tclient t;
	uint32_t pool;
	double r;

	(void)state;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	memset(seeds, 0, sizeof(seeds));
	for (uint32_t k = 0; k < live; k++)
		store_key(&t, pool, k, seed++);
	for (uint32_t step = 0; step < 6 * live; step++) {
		uint32_t from, to;

		do
			from = splitmix64(&s) % NPAGES;
		while (!seeds[from]);
		do
			to = splitmix64(&s) % NPAGES;
		while (seeds[to] && to != from);
		assert_int_equal(tmem_invalidate_page(t.ctx, pool, 0, from), 1);
		seeds[from] = 0;
		store_key(&t, pool, to, seed++);
	}
	r = data_per_compressed(t.client);
	print_message("churn: data/compressed %.3f\n", r);
	if (r > 1.065)
		fail_msg("data/compressed %.3f in steady churn", r);
	check_all(&t, pool);
	tclient_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_zs_fullest_first,
						zs_setup, zs_teardown),
		cmocka_unit_test_setup_teardown(test_zs_move_sparse_only,
						zs_setup, zs_teardown),
		cmocka_unit_test(test_compact_holes_under_budget),
		cmocka_unit_test(test_compact_churn_steady),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
