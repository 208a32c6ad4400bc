/* SPDX-License-Identifier: MIT */
/*
 * Allocation-failure injection.  For nth = 0, 1, 2, ... the nth library
 * allocation of a mixed workload fails.  Every call must either succeed
 * or fail with an error its documentation allows; afterwards every page
 * that was acknowledged loads back identically, and no page that was
 * refused or invalidated is ever returned.  Leaks are caught by the
 * valgrind variant of this test (meson test faults-valgrind) and by
 * LeakSanitizer when built with -Db_sanitize=address.
 */
#include "wire-test.h"
#include "tmem_i.h"

/* Keys spread over many index chunks, so stores allocate metadata. */
#define NOBJ	96
#define NIDX	4
#define KOBJ(k)	((uint64_t)(k) / NIDX)
#define KIDX(k)	((uint32_t)((k) % NIDX) * 70)
#define NKEY	(NOBJ * NIDX)
#define NPOOL	2		/* 0: persistent, 1: ephemeral */
#define MAX_NTH	20000

struct key_state {
	int held;
	enum page_kind kind;
	uint64_t seed;
};

struct world {
	struct tclient t;
	uint32_t pool[NPOOL];
	int pool_ok[NPOOL];
	struct key_state key[NPOOL][NKEY];
	int closed[NPOOL];	/* invalidate_pool'd: stores refused */
	enum tmem_incompressible policy;
};

static void expect_store(struct world *w, int p, int k, enum page_kind kind,
			 uint64_t seed)
{
	int ret = store_gen(&w->t, w->pool[p], KOBJ(k), KIDX(k), kind, seed);

	if (w->closed[p]) {
		assert_int_equal(ret, -ESHUTDOWN);
	} else if (ret == 0) {
		w->key[p][k] = (struct key_state){ 1, kind, seed };
		return;
	} else if (ret == -E2BIG) {
		/* Only an incompressible page under the REJECT policy. */
		assert_int_equal(w->policy, TMEM_INCOMPRESSIBLE_REJECT);
		assert_int_equal(kind, PK_RANDOM);
	} else if (ret != -ENOMEM) {
		fail_msg("store: %d (%s)", ret, tmem_strerror(ret));
	}
	/* Refused: any older copy is gone too. */
	w->key[p][k].held = 0;
}

static void check_key(struct world *w, int p, int k)
{
	struct key_state *ks = &w->key[p][k];
	unsigned char page[PAGE];
	int ret;

	ret = tmem_load(w->t.ctx, w->pool[p], KOBJ(k), KIDX(k), page);
	if (ks->held && (p == 0 || ret == 0)) {
		if (ret != 0)
			fail_msg("acknowledged page %d/%d: load %d (%s)", p, k,
				 ret, tmem_strerror(ret));
		assert_page_is(page, ks->kind, ks->seed);
	} else {
		if (ret != -ENOENT)
			fail_msg("refused/invalidated page %d/%d: load %d (%s)",
				 p, k, ret, tmem_strerror(ret));
	}
}

static void open_pools(struct world *w)
{
	int p, tries, ret;

	for (p = 0; p < NPOOL; p++) {
		for (tries = 0; tries < 3 && !w->pool_ok[p]; tries++) {
			ret = tmem_pool_new(w->t.client,
					    p ? TMEM_POOL_EPHEMERAL :
					    TMEM_POOL_PERSISTENT, &w->pool[p]);
			if (ret == 0)
				w->pool_ok[p] = 1;
			else
				assert_int_equal(ret, -ENOMEM);
		}
	}
}

/* One step of the workload on pool @p; @i picks the operation. */
static void step(struct world *w, int p, unsigned int i)
{
	int k = (int)(splitmix64(&(uint64_t){ i * 31u + p }) % NKEY);
	int ret, n, j;

	switch (i % 8) {
	case 0: case 1: case 2: case 3:	/* store / overwrite */
		expect_store(w, p, k, kind_for(i), i);
		break;
	case 4:
		ret = tmem_invalidate_page(w->t.ctx, w->pool[p], KOBJ(k),
					   KIDX(k));
		if (p == 0 || ret == 1)
			assert_int_equal(ret, w->key[p][k].held);
		else
			assert_int_equal(ret, 0);
		w->key[p][k].held = 0;
		break;
	case 5:
		check_key(w, p, k);
		break;
	case 6:
		if (i % 48 != 6)
			break;
		for (n = 0, j = 0; j < NIDX; j++)
			n += w->key[p][(k / NIDX) * NIDX + j].held;
		ret = tmem_invalidate_object(w->t.ctx, w->pool[p], KOBJ(k));
		assert_true(ret >= 0 && ret <= NIDX);
		if (p == 0)
			assert_int_equal(ret, n);
		else
			assert_true(ret <= n);
		for (j = 0; j < NIDX; j++)
			w->key[p][(k / NIDX) * NIDX + j].held = 0;
		break;
	case 7:
		expect_store(w, p, k, PK_ZERO, 0);
		break;
	}
}

/* A pool that comes and goes, to inject failures into pool ops. */
static void churn_pool(struct world *w)
{
	uint32_t id;
	int ret;

	ret = tmem_pool_new(w->t.client, TMEM_POOL_PERSISTENT, &id);
	if (ret) {
		assert_int_equal(ret, -ENOMEM);
		return;
	}
	ret = store_gen(&w->t, id, 1, 1, PK_TEXT, 1);
	assert_true(ret == 0 || ret == -ENOMEM);
	assert_int_equal(tmem_invalidate_pool(w->t.client, id), 0);
	assert_int_equal(store_gen(&w->t, id, 1, 1, PK_TEXT, 1), -ESHUTDOWN);
	assert_int_equal(tmem_pool_destroy(w->t.client, id), 0);
}

static void verify_world(struct world *w)
{
	struct tmem_stats st = tstats(w->t.client);
	uint64_t held = 0;
	int p, k;

	for (p = 0; p < NPOOL; p++) {
		if (!w->pool_ok[p])
			continue;
		for (k = 0; k < NKEY; k++) {
			check_key(w, p, k);
			held += w->key[p][k].held;
		}
	}
	if (st.evictions == 0)
		assert_int_equal(st.pages, held);
	assert_true(st.host_bytes <= st.budget_bytes);
}

/*
 * Destroy every pool: nothing may stay charged to the budget, so a
 * failure path that forgot to free a slot or a chunk shows here even
 * when the allocator's arenas hide it from valgrind.
 */
static void release_all(struct world *w)
{
	struct tmem_stats st;
	int p;

	for (p = 0; p < NPOOL; p++)
		if (w->pool_ok[p])
			assert_int_equal(tmem_pool_destroy(w->t.client,
							   w->pool[p]), 0);
	st = tstats(w->t.client);
	assert_int_equal(st.pools, 0);
	assert_int_equal(st.pages, 0);
	assert_int_equal(st.compressed_bytes, 0);
	if (st.data_bytes != 0)
		fail_msg("%llu data bytes still charged with no page held",
			 (unsigned long long)st.data_bytes);
}

/* Returns 1 if the injected failure fired, 0 if the workload ran clean. */
static int run_workload(long nth, enum tmem_incompressible policy)
{
	struct tmem_client_config cfg = test_config(64ULL << 20);
	struct world *w = calloc(1, sizeof(*w));
	/*
	 * The sweep costs steps squared (allocations grow with the steps);
	 * under valgrind half the steps still reach every allocation site.
	 */
	unsigned int steps = getenv("TMEM_TEST_VALGRIND") ? 200 : 400;
	unsigned int i;
	long count;
	int ret, p;

	assert_non_null(w);
	cfg.incompressible = policy;
	w->policy = policy;
	tmem_fault_inject(nth);
	ret = tmem_client_new(&cfg, &w->t.client);
	if (ret) {
		assert_int_equal(ret, -ENOMEM);
		goto out;
	}
	ret = tmem_ctx_new(w->t.client, &w->t.ctx);
	if (ret) {
		assert_int_equal(ret, -ENOMEM);
		goto out;
	}
	open_pools(w);
	for (i = 0; i < steps; i++) {
		for (p = 0; p < NPOOL; p++)
			if (w->pool_ok[p])
				step(w, p, i);
		if (i % (steps / 4) == steps / 4 - 1)
			churn_pool(w);
		if (i == steps * 3 / 4 && w->pool_ok[1]) {
			assert_int_equal(tmem_invalidate_pool(w->t.client,
							      w->pool[1]), 0);
			memset(w->key[1], 0, sizeof(w->key[1]));
			w->closed[1] = 1;
		}
	}
out:
	count = tmem_fault_inject_count();
	tmem_fault_inject(-1);
	if (w->t.ctx) {
		verify_world(w);
		/* The client still works once memory is back. */
		open_pools(w);
		if (w->pool_ok[0]) {
			expect_store(w, 0, 1, PK_TEXT, 4242);
			assert_true(w->key[0][1].held);
			check_key(w, 0, 1);
		}
		release_all(w);
	}
	tclient_close(&w->t);
	free(w);
	return nth >= 0 && count > nth;
}

static void sweep(enum tmem_incompressible policy)
{
	long nth;

	for (nth = 0; nth < MAX_NTH; nth++)
		if (!run_workload(nth, policy))
			break;
	print_message("fault sweep: %ld injected failures\n", nth);
	/* The workload allocates, so some failures must have fired. */
	assert_true(nth > 3);
	assert_true(nth < MAX_NTH);
}

static void test_fault_sweep_raw(void **state)
{
	(void)state;
	sweep(TMEM_INCOMPRESSIBLE_RAW);
}

static void test_fault_sweep_reject(void **state)
{
	(void)state;
	/*
	 * Under valgrind (faults-valgrind) one sweep is enough to find leaks
	 * and invalid accesses; the REJECT policy adds no allocation path.
	 */
	if (getenv("TMEM_TEST_VALGRIND"))
		skip();
	sweep(TMEM_INCOMPRESSIBLE_REJECT);
}

/* Sanity of the hook itself: disarmed, nothing fails. */
static void test_fault_disarmed(void **state)
{
	(void)state;
	assert_int_equal(run_workload(-1, TMEM_INCOMPRESSIBLE_RAW), 0);
}

/*
 * The same sweep through the wire entry point: an allocation failure
 * turns into REJECTED (STORE, NEW_POOL), never into a wrong answer, and
 * a refused STORE leaves no copy behind (DEV-11).  Keys alternate
 * between a contiguous and a split page, so both the zero-copy and the
 * gather paths fail somewhere.
 */
#define WKEYS 48

static int wire_store_split(struct tmem_ctx *ctx, uint32_t pool, int k,
			    enum page_kind kind, uint64_t seed)
{
	static const size_t split[] = { 10, 14, 1000, 3096 };
	unsigned char out[REQ_LEN + PAGE];
	struct virtio_tmem_req q = mkreq(VIRTIO_TMEM_OP_STORE, 0, pool,
					 KOBJ(k), KIDX(k));
	struct wire_result r;
	int st;

	if (k % 2 == 0) {
		fill_page(out, kind, seed);
		return w_store(ctx, pool, KOBJ(k), KIDX(k), out);
	}
	memcpy(out, &q, REQ_LEN);
	fill_page(out + REQ_LEN, kind, seed);
	r = wire_raw(ctx, out, sizeof(out), split, 4, RESP_LEN, NULL, 0);
	st = check_answer(&r, VIRTIO_TMEM_OP_STORE);
	free(r.in);
	return st;
}

static int run_wire_workload(long nth)
{
	struct tmem_client_config cfg = test_config(64ULL << 20);
	struct key_state key[WKEYS];
	unsigned char page[PAGE];
	struct tclient t;
	uint32_t pool = 0, scratch;
	int have_pool = 0, i, k, st;
	long count;

	memset(key, 0, sizeof(key));
	tclient_open(&t, &cfg);
	tmem_fault_inject(nth);
	for (i = 0; i < 3 && !have_pool; i++) {
		st = wire_op(t.ctx, mkreq(VIRTIO_TMEM_OP_NEW_POOL, 0, 0, 0, 0),
			     NULL, NULL, &pool);
		assert_true(st == VIRTIO_TMEM_S_OK ||
			    st == VIRTIO_TMEM_S_REJECTED);
		have_pool = st == VIRTIO_TMEM_S_OK;
	}
	for (i = 0; have_pool && i < 200; i++) {
		k = (int)(splitmix64(&(uint64_t){ (uint64_t)i }) % WKEYS);
		switch (i % 5) {
		case 0: case 1: case 2:
			st = wire_store_split(t.ctx, pool, k, kind_for(i), i);
			assert_true(st == VIRTIO_TMEM_S_OK ||
				    st == VIRTIO_TMEM_S_REJECTED);
			key[k] = (struct key_state){ st == VIRTIO_TMEM_S_OK,
						     kind_for(i), i };
			break;
		case 3:
			st = w_load(t.ctx, pool, KOBJ(k), KIDX(k), page);
			assert_int_equal(st, key[k].held ? VIRTIO_TMEM_S_OK :
					 VIRTIO_TMEM_S_NOT_FOUND);
			if (key[k].held)
				assert_page_is(page, key[k].kind, key[k].seed);
			break;
		case 4:
			assert_int_equal(w_simple(t.ctx,
					 VIRTIO_TMEM_OP_INVALIDATE_PAGE, pool,
					 KOBJ(k), KIDX(k)), VIRTIO_TMEM_S_OK);
			key[k].held = 0;
			break;
		}
		if (i % 50 == 49) {
			st = wire_op(t.ctx, mkreq(VIRTIO_TMEM_OP_NEW_POOL, 0, 0,
						  0, 0), NULL, NULL, &scratch);
			assert_true(st == VIRTIO_TMEM_S_OK ||
				    st == VIRTIO_TMEM_S_REJECTED);
			if (st == VIRTIO_TMEM_S_OK)
				assert_int_equal(w_simple(t.ctx,
					VIRTIO_TMEM_OP_DESTROY_POOL, scratch,
					0, 0), VIRTIO_TMEM_S_OK);
		}
	}
	count = tmem_fault_inject_count();
	tmem_fault_inject(-1);
	for (k = 0; have_pool && k < WKEYS; k++) {
		st = w_load(t.ctx, pool, KOBJ(k), KIDX(k), page);
		assert_int_equal(st, key[k].held ? VIRTIO_TMEM_S_OK :
				 VIRTIO_TMEM_S_NOT_FOUND);
		if (key[k].held)
			assert_page_is(page, key[k].kind, key[k].seed);
	}
	if (have_pool)
		assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_DESTROY_POOL,
					  pool, 0, 0), VIRTIO_TMEM_S_OK);
	assert_int_equal(tstats(t.client).pages, 0);
	assert_int_equal(tstats(t.client).data_bytes, 0);
	tclient_close(&t);
	return count > nth;
}

static void test_fault_sweep_wire(void **state)
{
	long nth;

	(void)state;
	for (nth = 0; nth < MAX_NTH; nth++)
		if (!run_wire_workload(nth))
			break;
	print_message("wire fault sweep: %ld injected failures\n", nth);
	assert_true(nth > 3);
	assert_true(nth < MAX_NTH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fault_disarmed),
		cmocka_unit_test(test_fault_sweep_raw),
		cmocka_unit_test(test_fault_sweep_reject),
		cmocka_unit_test(test_fault_sweep_wire),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
