/* SPDX-License-Identifier: MIT */
/*
 * Concurrency: several threads, each with its own tmem_ctx, store, load
 * and invalidate distinct and overlapping keys of shared pools while
 * another thread reads statistics and opens, invalidates and destroys
 * pools.  Every byte is verified afterwards.  Worker threads never call
 * cmocka (its longjmp is per-thread unsafe): they record the first
 * failure and the main thread asserts on it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "wire-test.h"

#define NWORKERS	3
#define NPRIV		512	/* private keys per worker and pool */
#define NSHARED		64	/* keys every worker writes */
#define ITERS		30000
#define SHARED_OBJ	1
#define MAGIC		0x746d656d70616765ULL	/* "tmempage" */
#define BUDGET		(512ULL << 20)

static struct tmem_client *client;
static uint32_t pers, eph;
static atomic_int workers_left;
static char first_error[256];
static atomic_int failed;

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			if (atomic_exchange(&failed, 1) == 0)		\
				snprintf(first_error,			\
					 sizeof(first_error),		\
					 __VA_ARGS__);			\
			return;						\
		}							\
	} while (0)

/* Shared-key pages describe themselves: any torn or misfiled page shows. */
struct page_hdr {
	uint64_t magic;
	uint64_t object;
	uint64_t index;
	uint64_t seed;
};

static void make_shared_page(unsigned char *page, uint64_t obj, uint32_t idx,
			     uint64_t seed)
{
	struct page_hdr h = { MAGIC, obj, idx, seed };

	fill_page(page, kind_for(seed), seed);
	memcpy(page, &h, sizeof(h));
}

static int shared_page_ok(const unsigned char *page, uint64_t obj,
			  uint32_t idx)
{
	unsigned char want[PAGE];
	struct page_hdr h;

	memcpy(&h, page, sizeof(h));
	if (h.magic != MAGIC || h.object != obj || h.index != idx)
		return 0;
	make_shared_page(want, obj, idx, h.seed);
	return memcmp(page, want, PAGE) == 0;
}

struct worker {
	int id;
	struct tmem_ctx *ctx;
	/* Private keys: last acknowledged seed + 1, 0 = not held. */
	uint64_t priv[2][NPRIV];
};

static void private_op(struct worker *w, int p, uint64_t r,
		       unsigned char *page)
{
	uint32_t pool = p ? eph : pers;
	uint64_t obj = 100 + w->id;
	uint32_t idx = (r >> 8) % NPRIV;
	uint64_t seed = (r >> 20) | 1;
	int ret;

	switch (r % 4) {
	case 0: case 1:
		fill_page(page, kind_for(seed), seed);
		ret = tmem_store(w->ctx, pool, obj, idx, page);
		CHECK(ret == 0 || (p && ret == -ENOSPC),
		      "worker %d store: %d", w->id, ret);
		w->priv[p][idx] = ret == 0 ? seed + 1 : 0;
		break;
	case 2:
		ret = tmem_load(w->ctx, pool, obj, idx, page);
		if (w->priv[p][idx] && !(p && ret == -ENOENT)) {
			unsigned char want[PAGE];

			seed = w->priv[p][idx] - 1;
			CHECK(ret == 0, "worker %d load of held key: %d",
			      w->id, ret);
			fill_page(want, kind_for(seed), seed);
			CHECK(memcmp(page, want, PAGE) == 0,
			      "worker %d pool %d idx %u: wrong bytes", w->id,
			      p, idx);
		} else {
			CHECK(ret == -ENOENT, "worker %d load of absent key: %d",
			      w->id, ret);
		}
		break;
	case 3:
		ret = tmem_invalidate_page(w->ctx, pool, obj, idx);
		CHECK(ret == 0 || ret == 1, "invalidate: %d", ret);
		CHECK(p || ret == (w->priv[p][idx] != 0),
		      "worker %d invalidate returned %d", w->id, ret);
		w->priv[p][idx] = 0;
		break;
	}
}

static void shared_op(struct worker *w, uint64_t r, unsigned char *page)
{
	uint32_t idx = (r >> 8) % NSHARED;
	int ret;

	switch (r % 3) {
	case 0:
		make_shared_page(page, SHARED_OBJ, idx, r >> 16);
		ret = tmem_store(w->ctx, pers, SHARED_OBJ, idx, page);
		CHECK(ret == 0, "shared store: %d", ret);
		break;
	case 1:
		ret = tmem_load(w->ctx, pers, SHARED_OBJ, idx, page);
		CHECK(ret == 0 || ret == -ENOENT, "shared load: %d", ret);
		CHECK(ret || shared_page_ok(page, SHARED_OBJ, idx),
		      "shared key %u: torn or misfiled page", idx);
		break;
	case 2:
		ret = tmem_invalidate_page(w->ctx, pers, SHARED_OBJ, idx);
		CHECK(ret == 0 || ret == 1, "shared invalidate: %d", ret);
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned char *page = malloc(PAGE);
	uint64_t s = 0x1234 + w->id;
	int i;

	for (i = 0; i < ITERS && page && !atomic_load(&failed); i++) {
		uint64_t r = splitmix64(&s);

		switch ((r >> 60) % 4) {
		case 0: case 1:
			private_op(w, 0, r, page);
			break;
		case 2:
			private_op(w, 1, r, page);
			break;
		case 3:
			shared_op(w, r, page);
			break;
		}
	}
	free(page);
	atomic_fetch_sub(&workers_left, 1);
	return NULL;
}

/* Stats and pool operations racing with the page traffic. */
static void admin_loop(void)
{
	struct tmem_ctx *ctx;
	unsigned char page[PAGE];
	struct tmem_stats st;
	uint32_t id;
	int ret, rounds = 0;

	CHECK(tmem_ctx_new(client, &ctx) == 0, "admin ctx");
	while (atomic_load(&workers_left) > 0 || rounds < 10) {
		rounds++;
		CHECK(tmem_client_stats(client, &st) == 0, "stats");
		CHECK(st.host_bytes <= BUDGET, "over budget");
		CHECK(st.pools >= 2 && st.pools <= 3, "pools %llu",
		      (unsigned long long)st.pools);
		ret = tmem_pool_new(client, rounds % 2 ? TMEM_POOL_EPHEMERAL :
				    TMEM_POOL_PERSISTENT, &id);
		CHECK(ret == 0, "admin pool_new: %d", ret);
		CHECK(id != pers && id != eph, "pool id reused while open");
		fill_page(page, PK_TEXT, rounds);
		CHECK(tmem_store(ctx, id, 0, 0, page) == 0, "admin store");
		CHECK(tmem_load(ctx, id, 0, 0, page) == 0, "admin load");
		CHECK(tmem_invalidate_pool(client, id) == 0, "admin inval");
		CHECK(tmem_store(ctx, id, 0, 1, page) == -ESHUTDOWN,
		      "store after invalidate_pool");
		CHECK(tmem_pool_destroy(client, id) == 0, "admin destroy");
	}
	tmem_ctx_free(ctx);
}

static void verify_after(struct worker *w)
{
	unsigned char page[PAGE];
	int p, idx, ret;

	for (p = 0; p < 2; p++) {
		for (idx = 0; idx < NPRIV; idx++) {
			ret = tmem_load(w->ctx, p ? eph : pers, 100 + w->id,
					idx, page);
			if (!w->priv[p][idx] || (p && ret == -ENOENT)) {
				assert_int_equal(ret, -ENOENT);
				continue;
			}
			assert_int_equal(ret, 0);
			assert_page_is(page, kind_for(w->priv[p][idx] - 1),
				       w->priv[p][idx] - 1);
		}
	}
	for (idx = 0; idx < NSHARED; idx++) {
		ret = tmem_load(w->ctx, pers, SHARED_OBJ, idx, page);
		assert_true(ret == 0 || ret == -ENOENT);
		if (ret == 0)
			assert_true(shared_page_ok(page, SHARED_OBJ, idx));
	}
}

static void test_threads_shared_pools(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	static struct worker w[NWORKERS];
	pthread_t tid[NWORKERS];
	struct tmem_stats st;
	int i;

	(void)state;
	assert_int_equal(tmem_client_new(&cfg, &client), 0);
	assert_int_equal(tmem_pool_new(client, TMEM_POOL_PERSISTENT, &pers), 0);
	assert_int_equal(tmem_pool_new(client, TMEM_POOL_EPHEMERAL, &eph), 0);
	atomic_store(&workers_left, NWORKERS);
	for (i = 0; i < NWORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].id = i;
		assert_int_equal(tmem_ctx_new(client, &w[i].ctx), 0);
		assert_int_equal(pthread_create(&tid[i], NULL, worker_main,
						&w[i]), 0);
	}
	admin_loop();
	for (i = 0; i < NWORKERS; i++)
		pthread_join(tid[i], NULL);
	if (atomic_load(&failed))
		fail_msg("%s", first_error);

	for (i = 0; i < NWORKERS; i++)
		verify_after(&w[i]);
	st = tstats(client);
	assert_int_equal(st.pools, 2);
	assert_true(st.host_bytes <= BUDGET);
	assert_int_equal(st.failed_stores, st.failed_stores_budget +
			 st.failed_stores_incompressible +
			 st.failed_stores_other);
	for (i = 0; i < NWORKERS; i++)
		tmem_ctx_free(w[i].ctx);
	tmem_client_free(client);
	client = NULL;
}

/*
 * Small budget: ephemeral eviction runs concurrently with persistent
 * stores of other threads; persistent data must survive it.
 */
static void evict_loop(struct worker *w)
{
	unsigned char page[PAGE];
	int i, ret;

	for (i = 0; i < 6000 && !atomic_load(&failed); i++) {
		fill_page(page, PK_TEXT, i * 7 + w->id);
		ret = tmem_store(w->ctx, eph, w->id, i, page);
		CHECK(ret == 0 || ret == -ENOSPC, "eph store: %d", ret);
		ret = tmem_load(w->ctx, eph, w->id, i / 2, page);
		CHECK(ret == -ENOENT || ret == 0, "eph load: %d", ret);
		if (ret == 0) {
			unsigned char want[PAGE];

			fill_page(want, PK_TEXT, (i / 2) * 7 + w->id);
			CHECK(memcmp(want, page, PAGE) == 0,
			      "evicting pool returned wrong bytes");
		}
	}
}

static void *evict_worker(void *arg)
{
	evict_loop(arg);
	return NULL;
}

static void test_threads_eviction(void **state)
{
	struct tmem_client_config cfg = test_config(4ULL << 20);
	struct worker *w = calloc(3, sizeof(*w));
	pthread_t tid[2];
	unsigned char page[PAGE];
	uint32_t i, held = 0;
	int ret;

	(void)state;
	assert_non_null(w);
	assert_int_equal(tmem_client_new(&cfg, &client), 0);
	assert_int_equal(tmem_pool_new(client, TMEM_POOL_PERSISTENT, &pers), 0);
	assert_int_equal(tmem_pool_new(client, TMEM_POOL_EPHEMERAL, &eph), 0);
	for (i = 0; i < 3; i++) {
		w[i].id = i;
		assert_int_equal(tmem_ctx_new(client, &w[i].ctx), 0);
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, evict_worker,
						&w[i]), 0);
	/* Persistent stores in this thread, racing with the evictions. */
	for (i = 0; i < 1000; i++) {
		fill_page(page, PK_TEXT, 50000 + i);
		ret = tmem_store(w[2].ctx, pers, 9, i, page);
		assert_true(ret == 0 || ret == -ENOSPC);
		if (ret)
			break;
		held++;
	}
	for (i = 0; i < 2; i++)
		pthread_join(tid[i], NULL);
	if (atomic_load(&failed))
		fail_msg("%s", first_error);
	assert_true(held > 500);
	for (i = 0; i < held; i++)
		load_expect(&(struct tclient){ client, w[2].ctx }, pers, 9, i,
			    PK_TEXT, 50000 + i);
	assert_true(tstats(client).host_bytes <= cfg.budget_bytes);
	for (i = 0; i < 3; i++)
		tmem_ctx_free(w[i].ctx);
	tmem_client_free(client);
	client = NULL;
	free(w);
}

/*
 * Pool operations on the very pool other threads are using: stores and
 * loads race with INVALIDATE_POOL, DESTROY_POOL and re-creation of the
 * id.  Every page operation must answer one of its documented results,
 * and a page that is returned must be a whole page stored under that key
 * (self-describing, so a torn or misfiled page shows).  Run it in the
 * ASan build to catch a pool freed under a reader.
 */
static _Atomic uint32_t race_pool;
static atomic_int race_stop;

static void race_loop(struct worker *w)
{
	unsigned char page[PAGE];
	uint64_t s = 77 + w->id;
	int ret;

	while (!atomic_load(&race_stop) && !atomic_load(&failed)) {
		uint64_t r = splitmix64(&s);
		uint32_t pool = atomic_load(&race_pool);
		uint32_t idx = (r >> 8) % 256;

		switch (r % 4) {
		case 0: case 1:
			make_shared_page(page, w->id, idx, r >> 16);
			ret = tmem_store(w->ctx, pool, w->id, idx, page);
			CHECK(ret == 0 || ret == -ESHUTDOWN || ret == -EBADF,
			      "racing store: %d", ret);
			break;
		case 2:
			ret = tmem_load(w->ctx, pool, w->id, idx, page);
			CHECK(ret == 0 || ret == -ENOENT || ret == -EBADF,
			      "racing load: %d", ret);
			CHECK(ret || shared_page_ok(page, w->id, idx),
			      "racing load returned a wrong page");
			break;
		case 3:
			ret = r & 0x100 ?
			      tmem_invalidate_page(w->ctx, pool, w->id, idx) :
			      tmem_invalidate_object(w->ctx, pool, w->id);
			CHECK(ret >= 0 || ret == -EBADF, "racing invalidate: %d",
			      ret);
			break;
		}
	}
}

static void *race_worker(void *arg)
{
	race_loop(arg);
	return NULL;
}

static void test_threads_pool_ops_race(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	struct worker *w = calloc(NWORKERS, sizeof(*w));
	pthread_t tid[NWORKERS];
	uint32_t id;
	int i, round;

	(void)state;
	assert_non_null(w);
	atomic_store(&race_stop, 0);
	assert_int_equal(tmem_client_new(&cfg, &client), 0);
	assert_int_equal(tmem_pool_new(client, TMEM_POOL_PERSISTENT, &id), 0);
	atomic_store(&race_pool, id);
	for (i = 0; i < NWORKERS; i++) {
		w[i].id = i;
		assert_int_equal(tmem_ctx_new(client, &w[i].ctx), 0);
		assert_int_equal(pthread_create(&tid[i], NULL, race_worker,
						&w[i]), 0);
	}
	for (round = 0; round < 300 && !atomic_load(&failed); round++) {
		struct timespec ts = { 0, 200000 };

		nanosleep(&ts, NULL);
		assert_int_equal(tmem_invalidate_pool(client, id), 0);
		nanosleep(&ts, NULL);
		assert_int_equal(tmem_pool_destroy(client, id), 0);
		assert_int_equal(tmem_pool_new(client, round % 2 ?
					       TMEM_POOL_EPHEMERAL :
					       TMEM_POOL_PERSISTENT, &id), 0);
		atomic_store(&race_pool, id);
		assert_true(tstats(client).host_bytes <= BUDGET);
	}
	atomic_store(&race_stop, 1);
	for (i = 0; i < NWORKERS; i++)
		pthread_join(tid[i], NULL);
	if (atomic_load(&failed))
		fail_msg("%s", first_error);
	assert_int_equal(tstats(client).pools, 1);
	for (i = 0; i < NWORKERS; i++)
		tmem_ctx_free(w[i].ctx);
	assert_int_equal(tmem_pool_destroy(client, id), 0);
	assert_int_equal(tstats(client).pages, 0);
	assert_int_equal(tstats(client).data_bytes, 0);
	tmem_client_free(client);
	client = NULL;
	free(w);
}

/*
 * tmem.h: -ENOSPC only "over the client's budget (and nothing ephemeral
 * to evict)"; DEV-16: REJECTED "after any ephemeral eviction".  Other
 * threads merely loading ephemeral pages (and so holding their shard
 * locks for a moment) must not make a persistent store give up while
 * ephemeral pages are still held.
 */
#define EVL_LOADERS 2

struct evl_loader {
	struct tmem_ctx *ctx;
	uint32_t nkeys;
	uint64_t seed;
};

static void *evl_loader_main(void *arg)
{
	struct evl_loader *l = arg;
	unsigned char page[PAGE];

	while (!atomic_load(&race_stop))
		tmem_load(l->ctx, eph, 0, splitmix64(&l->seed) % l->nkeys,
			  page);
	return NULL;
}

/* One trial; returns ephemeral pages left when -ENOSPC came (0: good). */
static uint64_t evl_trial(int trial)
{
	struct tmem_client_config cfg = test_config(2ULL << 20);
	struct evl_loader l[EVL_LOADERS];
	pthread_t tid[EVL_LOADERS];
	struct tmem_stats st;
	struct tclient t;
	uint32_t i, n, held = 0;
	int ret = 0;

	tclient_open(&t, &cfg);
	client = t.client;
	eph = tpool_new(&t, TMEM_POOL_EPHEMERAL);
	pers = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (n = 0; n < 8192 && !tstats(t.client).evictions; n++)
		assert_int_equal(store_gen(&t, eph, 0, n, PK_TEXT, n), 0);
	atomic_store(&race_stop, 0);
	for (i = 0; i < EVL_LOADERS; i++) {
		l[i] = (struct evl_loader){ NULL, n, trial * 10u + i };
		assert_int_equal(tmem_ctx_new(t.client, &l[i].ctx), 0);
		assert_int_equal(pthread_create(&tid[i], NULL,
						evl_loader_main, &l[i]), 0);
	}
	for (i = 0; i < 100000; i++) {
		ret = store_gen(&t, pers, 1, i, PK_TEXT, 500000 + i);
		if (ret)
			break;
		held++;
	}
	st = tstats(t.client);
	atomic_store(&race_stop, 1);
	for (i = 0; i < EVL_LOADERS; i++) {
		pthread_join(tid[i], NULL);
		tmem_ctx_free(l[i].ctx);
	}
	assert_int_equal(ret, -ENOSPC);
	for (i = 0; i < held; i += 97)
		load_expect(&t, pers, 1, i, PK_TEXT, 500000 + i);
	tclient_close(&t);
	client = NULL;
	/* Ephemeral pages never come back, so these were there at -ENOSPC. */
	return st.pages - held;
}

static void test_threads_evict_under_load(void **state)
{
	int trial;

	(void)state;
	for (trial = 0; trial < 8; trial++) {
		uint64_t left = evl_trial(trial);

		if (left)
			fail_msg("trial %d: persistent store got -ENOSPC with %llu ephemeral pages still held (eviction gave up on busy shards)",
				 trial, (unsigned long long)left);
	}
}

/*
 * Loads racing with whatever the allocator does to make room (libtmem
 * compacts half-empty slabs): one thread keeps punching holes in one
 * size class and filling the budget with another, while loaders read a
 * fixed set of persistent pages and check every byte (DEV-9, DEV-10).
 */
#define FRAG_FIXED 256

static void frag_loader_loop(struct worker *w)
{
	unsigned char page[PAGE], want[PAGE];
	uint64_t s = 5 + w->id;
	int ret;

	while (!atomic_load(&race_stop) && !atomic_load(&failed)) {
		uint32_t idx = splitmix64(&s) % FRAG_FIXED;

		ret = tmem_load(w->ctx, pers, 1, idx, page);
		CHECK(ret == 0, "fixed page %u: load %d", idx, ret);
		fill_page(want, PK_TEXT, idx);
		CHECK(memcmp(page, want, PAGE) == 0,
		      "fixed page %u changed under compaction", idx);
	}
}

static void *frag_loader(void *arg)
{
	frag_loader_loop(arg);
	return NULL;
}

static void test_threads_loads_during_compaction(void **state)
{
	struct tmem_client_config cfg = test_config(2ULL << 20);
	struct worker w[2];
	pthread_t tid[2];
	struct tclient t;
	uint32_t i, n, round;
	int ret;

	(void)state;
	tclient_open(&t, &cfg);
	client = t.client;
	pers = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (i = 0; i < FRAG_FIXED; i++)
		assert_int_equal(store_gen(&t, pers, 1, i, PK_TEXT, i), 0);
	atomic_store(&race_stop, 0);
	for (i = 0; i < 2; i++) {
		w[i].id = (int)i;
		assert_int_equal(tmem_ctx_new(client, &w[i].ctx), 0);
		assert_int_equal(pthread_create(&tid[i], NULL, frag_loader,
						&w[i]), 0);
	}
	for (round = 0; round < 6 && !atomic_load(&failed); round++) {
		for (n = 0; n < 100000; n++) {
			ret = store_gen(&t, pers, 2, n, PK_TEXT, n);
			if (ret)
				break;
		}
		assert_int_equal(ret, -ENOSPC);
		for (i = 0; i < n; i++)
			if (i % 4)
				tmem_invalidate_page(t.ctx, pers, 2, i);
		for (i = 0; i < 100000; i++) {
			ret = store_gen(&t, pers, 3, i,
					round % 2 ? PK_RANDOM : PK_HALF, i);
			if (ret)
				break;
		}
		assert_int_equal(ret, -ENOSPC);
		assert_true(tstats(client).host_bytes <= cfg.budget_bytes);
		for (i = 0; i < n; i += 4)
			load_expect(&t, pers, 2, i, PK_TEXT, i);
		tmem_invalidate_object(t.ctx, pers, 2);
		tmem_invalidate_object(t.ctx, pers, 3);
	}
	atomic_store(&race_stop, 1);
	for (i = 0; i < 2; i++) {
		pthread_join(tid[i], NULL);
		tmem_ctx_free(w[i].ctx);
	}
	if (atomic_load(&failed))
		fail_msg("%s", first_error);
	for (i = 0; i < FRAG_FIXED; i++)
		load_expect(&t, pers, 1, i, PK_TEXT, i);
	tclient_close(&t);
	client = NULL;
}

/*
 * A hostile or buggy guest rewrites a page while the device stores it
 * (guest memory is shared: nothing stops it).  The device may keep any
 * mixture of the bytes, but it must stay sound: the STORE is answered,
 * and a LOAD of a page it acknowledged answers OK (never IOERR, never a
 * crash) with a whole page (DEV-9, DEV-4).  The page iovec is one
 * contiguous buffer, so the library reads guest memory in place.
 */
static unsigned char *volatile race_page;

#ifndef __has_feature
#define __has_feature(x) 0
#endif

static int tsan_build(void)
{
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
	return 1;
#else
	return 0;
#endif
}

static void *scribbler(void *arg)
{
	uint64_t s = 99, i = 0;

	(void)arg;
	while (!atomic_load(&race_stop)) {
		uint64_t r = splitmix64(&s);
		unsigned char *p = race_page;

		/* Flip between same-filled, compressible and random. */
		switch (r % 4) {
		case 0:
			memset(p, (int)(r >> 8) & 0xff, PAGE);
			break;
		case 1:
			p[(r >> 8) % PAGE] = (unsigned char)(r >> 20);
			break;
		default:
			memcpy(p + (r >> 8) % (PAGE - 8), &r, 8);
			break;
		}
		i++;
	}
	return NULL;
}

static void test_threads_guest_rewrites_page(void **state)
{
	struct tmem_client_config cfg = test_config(BUDGET);
	unsigned char *out = malloc(REQ_LEN + PAGE), back[PAGE];
	struct iovec oiov[2], iiov[2];
	struct virtio_tmem_resp resp;
	struct virtio_tmem_req q;
	struct tclient t;
	pthread_t tid;
	uint32_t pool;
	int i, ret;

	(void)state;
	/* The race is the point; ThreadSanitizer would only report it. */
	if (tsan_build())
		skip();
	assert_non_null(out);
	memset(out, 0, REQ_LEN + PAGE);
	race_page = out + REQ_LEN;
	tclient_open(&t, &cfg);
	pool = w_new_pool(t.ctx, 0);
	atomic_store(&race_stop, 0);
	assert_int_equal(pthread_create(&tid, NULL, scribbler, NULL), 0);
	for (i = 0; i < 3000; i++) {
		q = mkreq(VIRTIO_TMEM_OP_STORE, 0, pool, 1, i % 128);
		memcpy(out, &q, REQ_LEN);
		oiov[0] = (struct iovec){ out, REQ_LEN };
		oiov[1] = (struct iovec){ out + REQ_LEN, PAGE };
		iiov[0] = (struct iovec){ &resp, RESP_LEN };
		ret = tmem_handle_request(t.ctx, oiov, 2, iiov, 1);
		assert_int_equal(ret, RESP_LEN);
		if (resp.status != VIRTIO_TMEM_S_OK) {
			assert_int_equal(resp.status, VIRTIO_TMEM_S_REJECTED);
			continue;
		}
		q = mkreq(VIRTIO_TMEM_OP_LOAD, 0, pool, 1, i % 128);
		oiov[0] = (struct iovec){ &q, REQ_LEN };
		iiov[0] = (struct iovec){ back, PAGE };
		iiov[1] = (struct iovec){ &resp, RESP_LEN };
		ret = tmem_handle_request(t.ctx, oiov, 1, iiov, 2);
		assert_int_equal(ret, PAGE + RESP_LEN);
		if (resp.status != VIRTIO_TMEM_S_OK)
			fail_msg("STORE answered OK, LOAD answered %u",
				 resp.status);
	}
	atomic_store(&race_stop, 1);
	pthread_join(tid, NULL);
	/* Quiet now: the ordinary contract holds again. */
	fill_page(out + REQ_LEN, PK_TEXT, 5);
	assert_int_equal(w_store(t.ctx, pool, 2, 0, out + REQ_LEN), 0);
	w_load_expect(t.ctx, pool, 2, 0, PK_TEXT, 5);
	tclient_close(&t);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_shared_pools),
		cmocka_unit_test(test_threads_eviction),
		cmocka_unit_test(test_threads_pool_ops_race),
		cmocka_unit_test(test_threads_evict_under_load),
		cmocka_unit_test(test_threads_loads_during_compaction),
		cmocka_unit_test(test_threads_guest_rewrites_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
