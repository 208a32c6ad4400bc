/* SPDX-License-Identifier: MIT */
/*
 * Page operations: store / load / invalidate semantics, the duplicate
 * store rule, same-filled pages, the incompressible policy, persistent
 * versus ephemeral pools, and a large byte-for-byte round trip.
 */
#include "tmem-test.h"
#include "tmem_i.h"		/* index internals: chunks visited, seed */

#define BUDGET (256ULL << 20)

static void open_default(struct tclient *t)
{
	struct tmem_client_config cfg = test_config(BUDGET);

	tclient_open(t, &cfg);
}

static void test_round_trip_each_kind(void **state)
{
	struct tclient t;
	uint32_t pool;
	int k;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (k = 0; k < PK_NR; k++)
		assert_int_equal(store_gen(&t, pool, 3, k, k, 77 + k), 0);
	for (k = 0; k < PK_NR; k++)
		load_expect(&t, pool, 3, k, k, 77 + k);
	/* Loads do not remove: a second pass sees the same bytes. */
	for (k = 0; k < PK_NR; k++)
		load_expect(&t, pool, 3, k, k, 77 + k);
	assert_int_equal(tstats(t.client).pages, PK_NR);
	assert_int_equal(tstats(t.client).succ_stores, PK_NR);
	assert_int_equal(tstats(t.client).loads, 2 * PK_NR);
	tclient_close(&t);
}

/* DEV-9: key extremes and unaligned page buffers. */
static void test_keys_and_alignment(void **state)
{
	static const uint64_t objs[] = { 0, 1, UINT32_MAX, 1ULL << 32,
					 UINT64_MAX - 1, UINT64_MAX };
	static const uint32_t idxs[] = { 0, 1, 511, 512, UINT32_MAX };
	unsigned char *buf = malloc(PAGE + 64);
	struct tclient t;
	uint32_t pool;
	size_t o, i;

	(void)state;
	assert_non_null(buf);
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (o = 0; o < 6; o++) {
		for (i = 0; i < 5; i++) {
			unsigned char *p = buf + 1 + (o + i) % 7;

			fill_page(p, PK_TEXT, o * 10 + i);
			assert_int_equal(tmem_store(t.ctx, pool, objs[o],
						    idxs[i], p), 0);
			/* The library copied: scribbling now is harmless. */
			memset(p, 0xee, PAGE);
		}
	}
	for (o = 0; o < 6; o++) {
		for (i = 0; i < 5; i++) {
			unsigned char *p = buf + 3 + (o + i) % 5;

			assert_int_equal(tmem_load(t.ctx, pool, objs[o],
						   idxs[i], p), 0);
			assert_page_is(p, PK_TEXT, o * 10 + i);
		}
	}
	assert_int_equal(tstats(t.client).pages, 30);
	free(buf);
	tclient_close(&t);
}

static void test_load_miss(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	load_expect_miss(&t, pool, 0, 0);
	assert_int_equal(store_gen(&t, pool, 1, 2, PK_TEXT, 1), 0);
	load_expect_miss(&t, pool, 1, 3);
	load_expect_miss(&t, pool, 2, 2);
	st = tstats(t.client);
	assert_int_equal(st.load_misses, 3);
	assert_int_equal(st.loads, 0);
	tclient_close(&t);
}

/*
 * DEV-9: a duplicate store that succeeds overwrites, whatever the size
 * change.
 */
static void test_overwrite(void **state)
{
	static const enum page_kind seq[] = {
		PK_TEXT, PK_RANDOM, PK_ZERO, PK_HALF, PK_BYTE, PK_TEXT,
		PK_WORD, PK_SPARSE, PK_RANDOM, PK_ZERO,
	};
	struct tclient t;
	uint32_t pool;
	size_t i;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		assert_int_equal(store_gen(&t, pool, 9, 9, seq[i], i), 0);
		load_expect(&t, pool, 9, 9, seq[i], i);
		assert_int_equal(tstats(t.client).pages, 1);
	}
	tclient_close(&t);
}

/*
 * A duplicate store that fails invalidates the old copy: stale data is
 * never returned (frontswap's duplicate-store rule; DEV-11).
 */
static void test_failed_duplicate_invalidates(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	uint32_t pool;

	(void)state;
	cfg.incompressible = TMEM_INCOMPRESSIBLE_REJECT;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&t, pool, 1, 1, PK_TEXT, 1), 0);
	assert_int_equal(store_gen(&t, pool, 1, 1, PK_RANDOM, 2), -E2BIG);
	load_expect_miss(&t, pool, 1, 1);
	assert_int_equal(tstats(t.client).pages, 0);

	/* Same-filled old copy. */
	assert_int_equal(store_gen(&t, pool, 1, 2, PK_ZERO, 0), 0);
	assert_int_equal(store_gen(&t, pool, 1, 2, PK_RANDOM, 3), -E2BIG);
	load_expect_miss(&t, pool, 1, 2);

	/* Ephemeral pools follow the same rule. */
	pool = tpool_new(&t, TMEM_POOL_EPHEMERAL);
	assert_int_equal(store_gen(&t, pool, 1, 1, PK_TEXT, 1), 0);
	assert_int_equal(store_gen(&t, pool, 1, 1, PK_RANDOM, 2), -E2BIG);
	load_expect_miss(&t, pool, 1, 1);
	assert_int_equal(tstats(t.client).pages, 0);
	tclient_close(&t);
}

/* DEV-12 */
static void test_invalidate_page(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&t, pool, 1, 1, PK_TEXT, 1), 0);
	assert_int_equal(store_gen(&t, pool, 1, 2, PK_ZERO, 1), 0);
	assert_int_equal(tmem_invalidate_page(t.ctx, pool, 1, 1), 1);
	assert_int_equal(tmem_invalidate_page(t.ctx, pool, 1, 1), 0);
	assert_int_equal(tmem_invalidate_page(t.ctx, pool, 1, 3), 0);
	assert_int_equal(tmem_invalidate_page(t.ctx, pool, 2, 1), 0);
	load_expect_miss(&t, pool, 1, 1);
	assert_int_equal(tmem_invalidate_page(t.ctx, pool, 1, 2), 1);
	load_expect_miss(&t, pool, 1, 2);
	st = tstats(t.client);
	assert_int_equal(st.pages, 0);
	assert_int_equal(st.invalidates, 2);
	assert_int_equal(st.compressed_bytes, 0);
	/* The key can be stored again. */
	assert_int_equal(store_gen(&t, pool, 1, 1, PK_HALF, 5), 0);
	load_expect(&t, pool, 1, 1, PK_HALF, 5);
	tclient_close(&t);
}

/* DEV-12 */
static void test_invalidate_object(void **state)
{
	struct tclient t;
	uint32_t pool, i;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < 1000; i++) {
		assert_int_equal(store_gen(&t, pool, 5, i * 7, kind_for(i), i),
				 0);
		assert_int_equal(store_gen(&t, pool, 6, i, PK_TEXT, i), 0);
	}
	assert_int_equal(tmem_invalidate_object(t.ctx, pool, 5), 1000);
	assert_int_equal(tmem_invalidate_object(t.ctx, pool, 5), 0);
	assert_int_equal(tmem_invalidate_object(t.ctx, pool, 4), 0);
	for (i = 0; i < 1000; i++) {
		load_expect_miss(&t, pool, 5, i * 7);
		if (i % 50 == 0)
			load_expect(&t, pool, 6, i, PK_TEXT, i);
	}
	assert_int_equal(tstats(t.client).pages, 1000);
	assert_int_equal(tstats(t.client).invalidates, 1000);
	tclient_close(&t);
}

/* Same-filled pages keep no data at all. */
static uint64_t chunks_visited(struct tclient *t)
{
	return t->ctx->ops.object_chunks_visited;
}

/*
 * INVALIDATE_OBJECT of an object the pool does not hold looks at no
 * chunk, however many the pool has; of one it holds, at its own chunks
 * only.  Counted, not timed.
 */
static void test_invalidate_object_cost(void **state)
{
	const uint32_t nobj = 512, sparse = 64 * 1024;
	struct tclient t;
	uint32_t pool, i;
	uint64_t v;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	/* A sparse zero page per chunk: the guest's cheapest chunk. */
	for (i = 0; i < sparse; i++)
		assert_int_equal(store_gen(&t, pool, i % nobj,
					   (i / nobj) * TMEM_CHUNK_PAGES,
					   PK_ZERO, 0), 0);
	/* Object 'nobj': 10 dense chunks. */
	for (i = 0; i < 10 * TMEM_CHUNK_PAGES; i++)
		assert_int_equal(store_gen(&t, pool, nobj, i, PK_ZERO, 0), 0);
	v = chunks_visited(&t);
	for (uint64_t obj = nobj + 1; obj < nobj + 1000; obj++)
		assert_int_equal(tmem_invalidate_object(t.ctx, pool, obj), 0);
	assert_int_equal(chunks_visited(&t) - v, 0);
	assert_int_equal(tmem_invalidate_object(t.ctx, pool, nobj),
			 10 * TMEM_CHUNK_PAGES);
	assert_int_equal(chunks_visited(&t) - v, 10);
	assert_int_equal(tmem_invalidate_object(t.ctx, pool, 3),
			 sparse / nobj);
	assert_int_equal(chunks_visited(&t) - v, 10 + sparse / nobj);
	assert_int_equal(tstats(t.client).pages, sparse - sparse / nobj);
	tclient_close(&t);
}

/*
 * Many objects, interleaved in the same chunks' shards, some dense, some
 * sparse; invalidating every third one leaves the others whole, and the
 * objects can be stored again afterwards.
 */
static void test_invalidate_object_many(void **state)
{
	const uint32_t nobj = 300;
	struct tclient t;
	uint32_t pool, o, i;
	uint64_t want = 0;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < 200; i++)
		for (o = 0; o < nobj; o++)
			assert_int_equal(store_gen(&t, pool, o * 0x9e3779b9ull,
						   o % 2 ? i : i * 97,
						   kind_for(i + o), o * 1000 + i),
					 0);
	for (o = 0; o < nobj; o += 3)
		assert_int_equal(tmem_invalidate_object(t.ctx, pool,
							o * 0x9e3779b9ull),
				 200);
	for (o = 0; o < nobj; o++) {
		for (i = 0; i < 200; i += 7) {
			uint32_t idx = o % 2 ? i : i * 97;

			if (o % 3 == 0)
				load_expect_miss(&t, pool, o * 0x9e3779b9ull,
						 idx);
			else
				load_expect(&t, pool, o * 0x9e3779b9ull, idx,
					    kind_for(i + o), o * 1000 + i);
		}
		want += o % 3 ? 200 : 0;
	}
	assert_int_equal(tstats(t.client).pages, want);
	/* Object 1's pages dropped one by one leave nothing of it. */
	for (i = 0; i < 200; i++)
		assert_int_equal(tmem_invalidate_page(t.ctx, pool,
						      0x9e3779b9ull, i), 1);
	assert_int_equal(tmem_invalidate_object(t.ctx, pool, 0x9e3779b9ull),
			 0);
	assert_int_equal(store_gen(&t, pool, 0, 5, PK_TEXT, 5), 0);
	load_expect(&t, pool, 0, 5, PK_TEXT, 5);
	assert_int_equal(tmem_invalidate_object(t.ctx, pool, 0), 1);
	tclient_close(&t);
}

/*
 * The index hash is keyed per client from getrandom(): two clients (and
 * their pools' shards) do not share a seed, so a guest cannot carry
 * colliding keys from one to another.
 */
static void test_hash_seed_per_client(void **state)
{
	struct tclient a, b;
	uint32_t pa, pb;

	(void)state;
	open_default(&a);
	open_default(&b);
	assert_true(a.client->hash_seed != b.client->hash_seed);
	pa = tpool_new(&a, TMEM_POOL_PERSISTENT);
	pb = tpool_new(&b, TMEM_POOL_PERSISTENT);
	assert_true(tmem_pool_shards(a.client, pa)[0].seed ==
		    a.client->hash_seed);
	assert_true(tmem_pool_shards(b.client, pb)[TMEM_NR_SHARDS - 1].seed ==
		    b.client->hash_seed);
	/* The same key lands in different shards for some of 64 keys. */
	{
		unsigned int differ = 0;

		for (uint32_t i = 0; i < 64; i++)
			differ += (tmem_shard_of(tmem_pool_shards(a.client, pa),
						 1, i << TMEM_CHUNK_SHIFT) -
				   tmem_pool_shards(a.client, pa)) !=
				  (tmem_shard_of(tmem_pool_shards(b.client, pb),
						 1, i << TMEM_CHUNK_SHIFT) -
				   tmem_pool_shards(b.client, pb));
		assert_true(differ > 0);
	}
	tclient_close(&a);
	tclient_close(&b);
}

static void test_same_filled(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool, i;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < 1000; i++)
		assert_int_equal(store_gen(&t, pool, 0, i,
					   i % 2 ? PK_ZERO : PK_BYTE, i), 0);
	st = tstats(t.client);
	assert_int_equal(st.pages, 1000);
	assert_int_equal(st.same_filled_pages, 1000);
	assert_int_equal(st.raw_pages, 0);
	assert_int_equal(st.compressed_bytes, 0);
	for (i = 0; i < 1000; i++)
		load_expect(&t, pool, 0, i, i % 2 ? PK_ZERO : PK_BYTE, i);

	/* Overwriting with real data leaves the same-filled count. */
	assert_int_equal(store_gen(&t, pool, 0, 0, PK_TEXT, 0), 0);
	st = tstats(t.client);
	assert_int_equal(st.same_filled_pages, 999);
	assert_true(st.compressed_bytes > 0);
	load_expect(&t, pool, 0, 0, PK_TEXT, 0);
	tclient_close(&t);
}

/*
 * Near-misses of same-filled detection must round-trip exactly: a page
 * that differs from a repeated pattern in its first, last or one middle
 * byte, and pages of repeated 16/32/64-bit words (sign bits set too).
 */
static void test_same_filled_edges(void **state)
{
	static const uint32_t words[] = {
		0x01020304, 0x80000001, 0xffffffff, 0x00000001, 0xfffffffe,
	};
	unsigned char page[PAGE], back[PAGE];
	struct tclient t;
	uint32_t pool, idx = 0;
	size_t i, w;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		size_t spots[] = { 0, PAGE - 1, PAGE / 2 + 3, 4, PAGE - 8 };
		size_t j;

		for (i = 0; i < PAGE; i += 4)
			memcpy(page + i, &words[w], 4);
		assert_int_equal(tmem_store(t.ctx, pool, 0, idx, page), 0);
		assert_int_equal(tmem_load(t.ctx, pool, 0, idx++, back), 0);
		assert_memory_equal(back, page, PAGE);
		for (j = 0; j < sizeof(spots) / sizeof(spots[0]); j++) {
			page[spots[j]] ^= 0x40;
			assert_int_equal(tmem_store(t.ctx, pool, 0, idx, page),
					 0);
			assert_int_equal(tmem_load(t.ctx, pool, 0, idx++, back),
					 0);
			assert_memory_equal(back, page, PAGE);
			page[spots[j]] ^= 0x40;
		}
		/* 16-bit and 64-bit periods built from the same word. */
		for (i = 0; i < PAGE; i += 2)
			memcpy(page + i, &words[w], 2);
		assert_int_equal(tmem_store(t.ctx, pool, 0, idx, page), 0);
		assert_int_equal(tmem_load(t.ctx, pool, 0, idx++, back), 0);
		assert_memory_equal(back, page, PAGE);
		for (i = 0; i < PAGE; i += 8) {
			uint64_t v = (uint64_t)words[w] << 32 | (words[w] ^ 1);

			memcpy(page + i, &v, 8);
		}
		assert_int_equal(tmem_store(t.ctx, pool, 0, idx, page), 0);
		assert_int_equal(tmem_load(t.ctx, pool, 0, idx++, back), 0);
		assert_memory_equal(back, page, PAGE);
	}
	tclient_close(&t);
}

/* Policy RAW: an incompressible page is kept uncompressed. */
static void test_incompressible_raw(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool, i;

	(void)state;
	open_default(&t);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < 100; i++)
		assert_int_equal(store_gen(&t, pool, 0, i, PK_RANDOM, i), 0);
	assert_int_equal(store_gen(&t, pool, 0, 100, PK_TEXT, 1), 0);
	st = tstats(t.client);
	assert_int_equal(st.raw_pages, 100);
	assert_int_equal(st.failed_stores, 0);
	assert_true(st.compressed_bytes >= 100 * PAGE);
	assert_true(st.data_bytes >= st.compressed_bytes);
	for (i = 0; i < 100; i++)
		load_expect(&t, pool, 0, i, PK_RANDOM, i);
	/* Invalidating raw pages gives the count back. */
	assert_int_equal(tmem_invalidate_object(t.ctx, pool, 0), 101);
	assert_int_equal(tstats(t.client).raw_pages, 0);
	tclient_close(&t);
}

/* Policy REJECT: -E2BIG, no copy, counted as incompressible. */
static void test_incompressible_reject(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool, i;

	(void)state;
	cfg.incompressible = TMEM_INCOMPRESSIBLE_REJECT;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < 50; i++) {
		assert_int_equal(store_gen(&t, pool, 0, i, PK_RANDOM, i),
				 -E2BIG);
		assert_int_equal(store_gen(&t, pool, 1, i, PK_TEXT, i), 0);
	}
	st = tstats(t.client);
	assert_int_equal(st.failed_stores, 50);
	assert_int_equal(st.failed_stores_incompressible, 50);
	assert_int_equal(st.failed_stores_budget, 0);
	assert_int_equal(st.succ_stores, 50);
	assert_int_equal(st.pages, 50);
	assert_int_equal(st.raw_pages, 0);
	for (i = 0; i < 50; i++) {
		load_expect_miss(&t, pool, 0, i);
		load_expect(&t, pool, 1, i, PK_TEXT, i);
	}
	tclient_close(&t);
}

/*
 * The threshold decides: a half-random page (LZ4 ~2.1 KiB) is fine at
 * the default threshold and incompressible at 1 KiB; same-filled pages
 * are never incompressible.
 */
static void test_compress_threshold(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct tclient t;
	uint32_t pool;

	(void)state;
	cfg.incompressible = TMEM_INCOMPRESSIBLE_REJECT;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&t, pool, 0, 0, PK_HALF, 1), 0);
	load_expect(&t, pool, 0, 0, PK_HALF, 1);
	tclient_close(&t);

	cfg.compress_threshold = 1024;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&t, pool, 0, 0, PK_HALF, 1), -E2BIG);
	assert_int_equal(store_gen(&t, pool, 0, 1, PK_TEXT, 1), -E2BIG);
	assert_int_equal(store_gen(&t, pool, 0, 2, PK_SPARSE, 1), 0);
	assert_int_equal(store_gen(&t, pool, 0, 3, PK_ZERO, 1), 0);
	assert_int_equal(store_gen(&t, pool, 0, 4, PK_WORD, 1), 0);
	load_expect_miss(&t, pool, 0, 0);
	load_expect_miss(&t, pool, 0, 1);
	load_expect(&t, pool, 0, 2, PK_SPARSE, 1);
	assert_int_equal(tstats(t.client).failed_stores_incompressible, 2);
	tclient_close(&t);

	/* Same threshold, RAW policy: kept, uncompressed. */
	cfg.incompressible = TMEM_INCOMPRESSIBLE_RAW;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&t, pool, 0, 0, PK_HALF, 1), 0);
	assert_int_equal(tstats(t.client).raw_pages, 1);
	load_expect(&t, pool, 0, 0, PK_HALF, 1);
	tclient_close(&t);
}

/*
 * Pages whose LZ4 output sits right around a full page (random data after
 * a run of zeros): with the threshold at TMEM_PAGE_SIZE every size from
 * ~3.9 KiB to just over 4 KiB is met, and each page either round-trips
 * or, above the threshold, is refused with -E2BIG and leaves no copy.
 */
static void test_threshold_boundary(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	unsigned char page[PAGE];
	struct tclient t;
	uint32_t pool, z, stored = 0, refused = 0;
	int ret;

	(void)state;
	cfg.compress_threshold = TMEM_PAGE_SIZE;
	cfg.incompressible = TMEM_INCOMPRESSIBLE_REJECT;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (z = 0; z < 256; z++) {
		fill_page(page, PK_RANDOM, z);
		memset(page, 0, z);
		ret = tmem_store(t.ctx, pool, 0, z, page);
		if (ret == 0) {
			unsigned char back[PAGE];

			assert_int_equal(tmem_load(t.ctx, pool, 0, z, back), 0);
			assert_memory_equal(back, page, PAGE);
			stored++;
		} else {
			assert_int_equal(ret, -E2BIG);
			load_expect_miss(&t, pool, 0, z);
			refused++;
		}
	}
	/* Both sides of the threshold were exercised. */
	assert_true(stored > 0);
	assert_true(refused > 0);
	assert_int_equal(tstats(t.client).pages, stored);
	tclient_close(&t);
}

/*
 * >= 100k pages of mixed compressibility round-trip byte for byte; every
 * page is regenerated from its key instead of kept.  Persistent: none may
 * miss (DEV-9, DEV-10, DEV-15).
 */
#define RT_PAGES 102400u
static void test_round_trip_100k(void **state)
{
	struct tmem_client_config cfg = test_config(1ULL << 30);
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool[2], i;

	(void)state;
	tclient_open(&t, &cfg);
	pool[0] = tpool_new(&t, TMEM_POOL_PERSISTENT);
	pool[1] = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < RT_PAGES; i++) {
		int ret = store_gen(&t, pool[i & 1], i >> 9, i & 511,
				    kind_for(i), i);

		if (ret)
			fail_msg("store %u: %d (%s)", i, ret,
				 tmem_strerror(ret));
	}
	/* Overwrite every 7th page with other content. */
	for (i = 0; i < RT_PAGES; i += 7)
		assert_int_equal(store_gen(&t, pool[i & 1], i >> 9, i & 511,
					   kind_for(i + 1), i + RT_PAGES), 0);
	st = tstats(t.client);
	assert_int_equal(st.pages, RT_PAGES);
	assert_true(st.host_bytes <= cfg.budget_bytes);
	assert_true(st.compressed_bytes < (uint64_t)RT_PAGES * PAGE);
	for (i = 0; i < RT_PAGES; i++) {
		if (i % 7 == 0)
			load_expect(&t, pool[i & 1], i >> 9, i & 511,
				    kind_for(i + 1), i + RT_PAGES);
		else
			load_expect(&t, pool[i & 1], i >> 9, i & 511,
				    kind_for(i), i);
	}
	assert_int_equal(tstats(t.client).load_misses, 0);
	tclient_close(&t);
}

/*
 * Ephemeral pools may miss, but never return wrong bytes.  Storing far
 * more than the budget holds evicts instead of failing.
 */
static void test_ephemeral_may_miss(void **state)
{
	struct tmem_client_config cfg = test_config(1ULL << 20);
	struct tclient t;
	struct tmem_stats st;
	unsigned char page[PAGE];
	uint32_t pool, i, hits = 0;

	(void)state;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_EPHEMERAL);
	for (i = 0; i < 4096; i++) {
		int ret = store_gen(&t, pool, 0, i, PK_TEXT, i);

		assert_true(ret == 0 || ret == -ENOSPC);
		assert_true(tstats(t.client).host_bytes <= cfg.budget_bytes);
	}
	st = tstats(t.client);
	assert_true(st.evictions > 0);
	assert_true(st.succ_stores > 4096 / 2);
	for (i = 0; i < 4096; i++) {
		int ret = tmem_load(t.ctx, pool, 0, i, page);

		assert_true(ret == 0 || ret == -ENOENT);
		if (ret == 0) {
			assert_page_is(page, PK_TEXT, i);
			hits++;
		}
	}
	assert_true(hits > 0);
	tclient_close(&t);
}

/*
 * Ephemeral pages are evicted before a persistent store is refused, and
 * a persistent page is never evicted (DEV-15, DEV-16).
 */
static void test_ephemeral_evicted_first(void **state)
{
	struct tmem_client_config cfg = test_config(2ULL << 20);
	struct tclient t;
	struct tmem_stats st;
	uint32_t eph, per, i, held = 0;
	uint64_t eph_pages;
	int ret;

	(void)state;
	tclient_open(&t, &cfg);
	eph = tpool_new(&t, TMEM_POOL_EPHEMERAL);
	per = tpool_new(&t, TMEM_POOL_PERSISTENT);
	/* Fill the budget with ephemeral pages (until eviction starts). */
	for (i = 0; i < 8192; i++) {
		assert_int_equal(store_gen(&t, eph, 0, i, PK_TEXT, i), 0);
		if (tstats(t.client).evictions > 0)
			break;
	}
	st = tstats(t.client);
	assert_true(st.evictions > 0);
	eph_pages = st.pages;
	assert_true(eph_pages > 100);

	/* Persistent stores succeed while anything ephemeral is left. */
	for (i = 0; i < 16384; i++) {
		ret = store_gen(&t, per, 1, i, PK_TEXT, 100000 + i);
		st = tstats(t.client);
		assert_true(st.host_bytes <= cfg.budget_bytes);
		if (ret == -ENOSPC) {
			/* Nothing ephemeral may be left to evict. */
			if (st.pages != held)
				fail_msg("persistent store %u refused with %llu ephemeral pages still held",
					 i,
					 (unsigned long long)(st.pages - held));
			break;
		}
		assert_int_equal(ret, 0);
		held++;
	}
	assert_int_equal(ret, -ENOSPC);
	assert_true(held >= eph_pages / 2);
	for (i = 0; i < 8192; i++)
		load_expect_miss(&t, eph, 0, i);

	/* Ephemeral stores now cannot evict persistent pages. */
	for (i = 0; i < 64; i++) {
		ret = store_gen(&t, eph, 2, i, PK_TEXT, i);
		assert_true(ret == 0 || ret == -ENOSPC);
	}
	for (i = 0; i < held; i++)
		load_expect(&t, per, 1, i, PK_TEXT, 100000 + i);
	assert_true(tstats(t.client).host_bytes <= cfg.budget_bytes);
	tclient_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_each_kind),
		cmocka_unit_test(test_keys_and_alignment),
		cmocka_unit_test(test_load_miss),
		cmocka_unit_test(test_overwrite),
		cmocka_unit_test(test_failed_duplicate_invalidates),
		cmocka_unit_test(test_invalidate_page),
		cmocka_unit_test(test_invalidate_object),
		cmocka_unit_test(test_invalidate_object_cost),
		cmocka_unit_test(test_invalidate_object_many),
		cmocka_unit_test(test_hash_seed_per_client),
		cmocka_unit_test(test_same_filled),
		cmocka_unit_test(test_same_filled_edges),
		cmocka_unit_test(test_incompressible_raw),
		cmocka_unit_test(test_incompressible_reject),
		cmocka_unit_test(test_compress_threshold),
		cmocka_unit_test(test_threshold_boundary),
		cmocka_unit_test(test_ephemeral_may_miss),
		cmocka_unit_test(test_ephemeral_evicted_first),
		cmocka_unit_test(test_round_trip_100k),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
