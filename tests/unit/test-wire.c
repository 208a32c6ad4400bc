/* SPDX-License-Identifier: MIT */
/*
 * The wire entry point, tmem_handle_request(): every opcode through
 * scatter-gather lists split at odd places, malformed requests, feature
 * negotiation, pool isolation between clients, and the DEV-n
 * requirements of proto/SPEC.md that the library implements.  Every
 * buffer is guarded (DEV-8).
 */
#include "wire-test.h"

#define BUDGET (64ULL << 20)
#define F_EPH (1ULL << VIRTIO_TMEM_F_EPHEMERAL)
#define F_INVP (1ULL << VIRTIO_TMEM_F_INVALIDATE_PAGES)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t pool_ops[] = {
	VIRTIO_TMEM_OP_DESTROY_POOL, VIRTIO_TMEM_OP_STORE,
	VIRTIO_TMEM_OP_LOAD, VIRTIO_TMEM_OP_INVALIDATE_PAGE,
	VIRTIO_TMEM_OP_INVALIDATE_OBJECT, VIRTIO_TMEM_OP_INVALIDATE_POOL,
};

static void open_client(struct tclient *t, uint32_t max_pools)
{
	struct tmem_client_config cfg = test_config(BUDGET);

	cfg.max_pools = max_pools;
	tclient_open(t, &cfg);
}

/* A request with the right lengths for @op and the default layout. */
static int wire_any(struct tmem_ctx *ctx, struct virtio_tmem_req q)
{
	unsigned char page[PAGE];

	fill_page(page, PK_TEXT, 1);
	return wire_op(ctx, q, page, page, NULL);
}

/* NEW_POOL: OK with a fresh id in resp.pool_id; REJECTED when full. */
static void test_new_pool(void **state)
{
	struct tclient t;
	uint32_t ids[3], id = 0xdeadbeef;
	struct virtio_tmem_req q;

	(void)state;
	open_client(&t, 3);
	ids[0] = w_new_pool(t.ctx, 0);
	/* req.pool_id is ignored by NEW_POOL. */
	q = mkreq(VIRTIO_TMEM_OP_NEW_POOL, 0, 0xffffffff, 5, 6);
	assert_int_equal(wire_op(t.ctx, q, NULL, NULL, &ids[1]),
			 VIRTIO_TMEM_S_OK);
	ids[2] = w_new_pool(t.ctx, 0);
	assert_int_not_equal(ids[0], ids[1]);
	assert_int_not_equal(ids[0], ids[2]);
	assert_int_not_equal(ids[1], ids[2]);
	assert_int_equal(tstats(t.client).pools, 3);

	/* max_pools open: REJECTED, pool_id 0 (check_answer), no pool. */
	q = mkreq(VIRTIO_TMEM_OP_NEW_POOL, 0, 0, 0, 0);
	assert_int_equal(wire_op(t.ctx, q, NULL, NULL, &id),
			 VIRTIO_TMEM_S_REJECTED);
	assert_int_equal(tstats(t.client).pools, 3);

	/* Each id works, independently. */
	assert_int_equal(w_store_gen(t.ctx, ids[0], 1, 1, PK_TEXT, 10),
			 VIRTIO_TMEM_S_OK);
	assert_int_equal(w_store_gen(t.ctx, ids[2], 1, 1, PK_TEXT, 12),
			 VIRTIO_TMEM_S_OK);
	w_load_expect(t.ctx, ids[0], 1, 1, PK_TEXT, 10);
	w_load_expect(t.ctx, ids[2], 1, 1, PK_TEXT, 12);
	assert_int_equal(w_load(t.ctx, ids[1], 1, 1, NULL),
			 VIRTIO_TMEM_S_NOT_FOUND);

	/* DESTROY_POOL frees the slot. */
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_DESTROY_POOL, ids[1],
				  0, 0), VIRTIO_TMEM_S_OK);
	assert_int_equal(tstats(t.client).pools, 2);
	ids[1] = w_new_pool(t.ctx, 0);
	assert_int_equal(w_load(t.ctx, ids[1], 1, 1, NULL),
			 VIRTIO_TMEM_S_NOT_FOUND);
	tclient_close(&t);
}

/* DEV-9, DEV-10, DEV-12, DEV-14: every page opcode, default layout. */
static void test_page_opcodes(void **state)
{
	struct tclient t;
	uint32_t pool, i;
	int k;

	(void)state;
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);
	for (k = 0; k < PK_NR; k++)
		for (i = 0; i < 4; i++)
			assert_int_equal(w_store_gen(t.ctx, pool, k, i, k,
						     k * 10 + i),
					 VIRTIO_TMEM_S_OK);
	/* DEV-9 and DEV-10: OK, same bytes, twice. */
	for (k = 0; k < PK_NR; k++) {
		for (i = 0; i < 4; i++) {
			w_load_expect(t.ctx, pool, k, i, k, k * 10 + i);
			w_load_expect(t.ctx, pool, k, i, k, k * 10 + i);
		}
	}
	/* DEV-12: INVALIDATE_PAGE, held or not, answers OK. */
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_PAGE, pool,
				  0, 0), VIRTIO_TMEM_S_OK);
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_PAGE, pool,
				  0, 0), VIRTIO_TMEM_S_OK);
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_PAGE, pool,
				  99, 99), VIRTIO_TMEM_S_OK);
	assert_int_equal(w_load(t.ctx, pool, 0, 0, NULL),
			 VIRTIO_TMEM_S_NOT_FOUND);
	w_load_expect(t.ctx, pool, 0, 1, 0, 1);
	/* DEV-12: INVALIDATE_OBJECT drops every key of the object only. */
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_OBJECT,
				  pool, 1, 0), VIRTIO_TMEM_S_OK);
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_OBJECT,
				  pool, 1234, 0), VIRTIO_TMEM_S_OK);
	for (i = 0; i < 4; i++) {
		assert_int_equal(w_load(t.ctx, pool, 1, i, NULL),
				 VIRTIO_TMEM_S_NOT_FOUND);
		w_load_expect(t.ctx, pool, 2, i, 2, 20 + i);
	}
	/* Stored again after invalidation: found again. */
	assert_int_equal(w_store_gen(t.ctx, pool, 1, 2, PK_HALF, 5),
			 VIRTIO_TMEM_S_OK);
	w_load_expect(t.ctx, pool, 1, 2, PK_HALF, 5);
	/* DEV-14: requests on one key apply in the order made. */
	assert_int_equal(w_store_gen(t.ctx, pool, 7, 7, PK_TEXT, 1), 0);
	assert_int_equal(w_store_gen(t.ctx, pool, 7, 7, PK_RANDOM, 2), 0);
	w_load_expect(t.ctx, pool, 7, 7, PK_RANDOM, 2);
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_PAGE, pool,
				  7, 7), 0);
	assert_int_equal(w_store_gen(t.ctx, pool, 7, 7, PK_WORD, 3), 0);
	w_load_expect(t.ctx, pool, 7, 7, PK_WORD, 3);
	tclient_close(&t);
}

/* DEV-13: INVALIDATE_POOL keeps the id; LOAD misses, STORE is refused. */
static void test_invalidate_pool(void **state)
{
	struct tclient t;
	uint32_t pool, other, i;

	(void)state;
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);
	other = w_new_pool(t.ctx, 0);
	for (i = 0; i < 8; i++) {
		assert_int_equal(w_store_gen(t.ctx, pool, i, i, PK_TEXT, i), 0);
		assert_int_equal(w_store_gen(t.ctx, other, i, i, PK_TEXT,
					     100 + i), 0);
	}
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_POOL, pool,
				  0, 0), VIRTIO_TMEM_S_OK);
	for (i = 0; i < 8; i++) {
		assert_int_equal(w_load(t.ctx, pool, i, i, NULL),
				 VIRTIO_TMEM_S_NOT_FOUND);
		assert_int_equal(w_store_gen(t.ctx, pool, i, i, PK_TEXT, i),
				 VIRTIO_TMEM_S_REJECTED);
		assert_int_equal(w_store_gen(t.ctx, pool, 50, i, PK_ZERO, 0),
				 VIRTIO_TMEM_S_REJECTED);
		assert_int_equal(w_load(t.ctx, pool, i, i, NULL),
				 VIRTIO_TMEM_S_NOT_FOUND);
		assert_int_equal(w_load(t.ctx, pool, 50, i, NULL),
				 VIRTIO_TMEM_S_NOT_FOUND);
		w_load_expect(t.ctx, other, i, i, PK_TEXT, 100 + i);
	}
	/* Other operations on the invalidated pool still name a pool. */
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_PAGE, pool,
				  1, 1), VIRTIO_TMEM_S_OK);
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_OBJECT,
				  pool, 1, 0), VIRTIO_TMEM_S_OK);
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_INVALIDATE_POOL, pool,
				  0, 0), VIRTIO_TMEM_S_OK);
	assert_int_equal(tstats(t.client).pages, 8);
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_DESTROY_POOL, pool,
				  0, 0), VIRTIO_TMEM_S_OK);
	/* Destroyed: the id names nothing now (DEV-7). */
	assert_int_equal(w_load(t.ctx, pool, 1, 1, NULL),
			 VIRTIO_TMEM_S_NO_POOL);
	assert_int_equal(w_store_gen(t.ctx, pool, 1, 1, PK_TEXT, 1),
			 VIRTIO_TMEM_S_NO_POOL);
	tclient_close(&t);
}

struct layout {
	const char *name;
	size_t osplit[8];
	unsigned int onum;
	size_t isplit[8];
	unsigned int inum;
};

/*
 * STORE layouts (out: req + page) and LOAD layouts (in: page + resp);
 * SEG_NULL is a zero-length iovec with a NULL base.
 */
static const struct layout store_layouts[] = {
	{ "req|page", { 24, 4096 }, 2, { 8 }, 1 },
	{ "one iovec", { 4120 }, 1, { 8 }, 1 },
	{ "header in 3", { 5, 11, 8, 4096 }, 4, { 8 }, 1 },
	{ "header in 3, page in 2", { 1, 22, 1, 2048, 2048 }, 5, { 8 }, 1 },
	{ "page split odd", { 24, 1, 4095 }, 3, { 8 }, 1 },
	{ "page split odd 2", { 24, 4095, 1 }, 3, { 8 }, 1 },
	{ "req+page fused", { 30, 4090 }, 2, { 8 }, 1 },
	{ "req+page fused 2", { 23, 4097 }, 2, { 8 }, 1 },
	{ "zero-length iovecs", { 0, 24, 0, 4096, 0 }, 5, { 0, 8, 0 }, 3 },
	{ "NULL zero-length", { SEG_NULL, 12, SEG_NULL, 12, 4096, SEG_NULL }, 6,
	  { SEG_NULL, 3, SEG_NULL, 5, SEG_NULL }, 5 },
	{ "resp split", { 24, 4096 }, 2, { 1, 7 }, 2 },
	{ "resp in 3", { 24, 4096 }, 2, { 2, 2, 4 }, 3 },
};

static const struct layout load_layouts[] = {
	{ "page|resp", { 24 }, 1, { 4096, 8 }, 2 },
	{ "one iovec", { 24 }, 1, { 4104 }, 1 },
	{ "header in 3", { 5, 11, 8 }, 3, { 4096, 8 }, 2 },
	{ "page in 2", { 24 }, 1, { 2048, 2048, 8 }, 3 },
	{ "page split odd", { 24 }, 1, { 1, 4095, 8 }, 3 },
	{ "page+resp fused", { 24 }, 1, { 4100, 4 }, 2 },
	{ "page+resp fused 2", { 24 }, 1, { 4095, 9 }, 2 },
	{ "page+resp odd", { 24 }, 1, { 1, 4102, 1 }, 3 },
	{ "zero-length iovecs", { 0, 24, 0 }, 3, { 0, 4096, 0, 8, 0 }, 5 },
	{ "NULL zero-length", { SEG_NULL, 24 }, 2,
	  { SEG_NULL, 3000, SEG_NULL, 1096, 3, 5, SEG_NULL }, 7 },
};

static struct wire_result run_layout(struct tmem_ctx *ctx,
				     struct virtio_tmem_req q,
				     const void *page, const struct layout *l)
{
	unsigned char out[REQ_LEN + PAGE];
	size_t olen = out_len_for(q.opcode);

	memcpy(out, &q, REQ_LEN);
	if (page)
		memcpy(out + REQ_LEN, page, PAGE);
	return wire_raw(ctx, out, olen, l->osplit, l->onum,
			in_len_for(q.opcode), l->isplit, l->inum);
}

/* Every STORE layout against every LOAD layout, with varied pages. */
static void test_scatter_gather(void **state)
{
	struct tclient t;
	unsigned char page[PAGE];
	struct wire_result r;
	uint32_t pool;
	size_t s, l;

	(void)state;
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);
	for (s = 0; s < ARRAY_SIZE(store_layouts); s++) {
		for (l = 0; l < ARRAY_SIZE(load_layouts); l++) {
			uint32_t idx = (uint32_t)(s * 100 + l);
			enum page_kind kind = kind_for(idx);

			fill_page(page, kind, idx);
			r = run_layout(t.ctx, mkreq(VIRTIO_TMEM_OP_STORE, 0,
						    pool, s, idx),
				       page, &store_layouts[s]);
			if (check_answer(&r, VIRTIO_TMEM_OP_STORE))
				fail_msg("store layout '%s': status %d",
					 store_layouts[s].name,
					 r.resp.status);
			free(r.in);
			r = run_layout(t.ctx, mkreq(VIRTIO_TMEM_OP_LOAD, 0,
						    pool, s, idx),
				       NULL, &load_layouts[l]);
			if (check_answer(&r, VIRTIO_TMEM_OP_LOAD))
				fail_msg("load layout '%s': status %d",
					 load_layouts[l].name, r.resp.status);
			assert_page_is(r.in, kind, idx);
			free(r.in);
		}
	}
	/* LOAD misses through split layouts answer in the right place. */
	for (l = 0; l < ARRAY_SIZE(load_layouts); l++) {
		r = run_layout(t.ctx, mkreq(VIRTIO_TMEM_OP_LOAD, 0, pool, 77,
					    0), NULL, &load_layouts[l]);
		assert_int_equal(check_answer(&r, VIRTIO_TMEM_OP_LOAD),
				 VIRTIO_TMEM_S_NOT_FOUND);
		free(r.in);
	}
	tclient_close(&t);
}

/* The header split across 3 iovecs for every other opcode. */
static void test_header_split_all_opcodes(void **state)
{
	static const size_t osplit[] = { 3, SEG_NULL, 9, 0, 12 };
	static const size_t isplit[] = { 0, 5, SEG_NULL, 3 };
	struct virtio_tmem_req q;
	struct wire_result r;
	struct tclient t;
	uint32_t pool;

	(void)state;
	open_client(&t, 0);
	q = mkreq(VIRTIO_TMEM_OP_NEW_POOL, 0, 0, 0, 0);
	r = wire_raw(t.ctx, &q, REQ_LEN, osplit, 5, RESP_LEN, isplit, 4);
	assert_int_equal(check_answer(&r, q.opcode), VIRTIO_TMEM_S_OK);
	pool = le32toh(r.resp.pool_id);
	free(r.in);
	assert_int_equal(w_store_gen(t.ctx, pool, 3, 3, PK_TEXT, 3), 0);

	q = mkreq(VIRTIO_TMEM_OP_INVALIDATE_PAGE, 0, pool, 3, 3);
	r = wire_raw(t.ctx, &q, REQ_LEN, osplit, 5, RESP_LEN, isplit, 4);
	assert_int_equal(check_answer(&r, q.opcode), VIRTIO_TMEM_S_OK);
	free(r.in);
	assert_int_equal(w_load(t.ctx, pool, 3, 3, NULL),
			 VIRTIO_TMEM_S_NOT_FOUND);

	assert_int_equal(w_store_gen(t.ctx, pool, 3, 4, PK_TEXT, 3), 0);
	q = mkreq(VIRTIO_TMEM_OP_INVALIDATE_OBJECT, 0, pool, 3, 0);
	r = wire_raw(t.ctx, &q, REQ_LEN, osplit, 5, RESP_LEN, isplit, 4);
	assert_int_equal(check_answer(&r, q.opcode), VIRTIO_TMEM_S_OK);
	free(r.in);
	assert_int_equal(w_load(t.ctx, pool, 3, 4, NULL),
			 VIRTIO_TMEM_S_NOT_FOUND);

	q = mkreq(VIRTIO_TMEM_OP_INVALIDATE_POOL, 0, pool, 0, 0);
	r = wire_raw(t.ctx, &q, REQ_LEN, osplit, 5, RESP_LEN, isplit, 4);
	assert_int_equal(check_answer(&r, q.opcode), VIRTIO_TMEM_S_OK);
	free(r.in);
	assert_int_equal(w_store_gen(t.ctx, pool, 3, 3, PK_TEXT, 3),
			 VIRTIO_TMEM_S_REJECTED);

	q = mkreq(VIRTIO_TMEM_OP_DESTROY_POOL, 0, pool, 0, 0);
	r = wire_raw(t.ctx, &q, REQ_LEN, osplit, 5, RESP_LEN, isplit, 4);
	assert_int_equal(check_answer(&r, q.opcode), VIRTIO_TMEM_S_OK);
	free(r.in);
	assert_int_equal(tstats(t.client).pools, 0);
	tclient_close(&t);
}

/* Hundreds of 7-byte iovecs: the gather/scatter has no segment limit. */
static void test_tiny_iovecs(void **state)
{
	size_t osplit[MAX_SEGS], isplit[MAX_SEGS], rest;
	unsigned char page[PAGE], out[REQ_LEN + PAGE];
	unsigned int on = 0, in = 0;
	struct virtio_tmem_req q;
	struct wire_result r;
	struct tclient t;
	uint32_t pool;

	(void)state;
	for (rest = REQ_LEN + PAGE; rest; rest -= osplit[on++])
		osplit[on] = rest < 7 ? rest : 7;
	for (rest = PAGE + RESP_LEN; rest; rest -= isplit[in++])
		isplit[in] = rest < 7 ? rest : 7;
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);
	fill_page(page, PK_RANDOM, 7);
	q = mkreq(VIRTIO_TMEM_OP_STORE, 0, pool, 7, 7);
	memcpy(out, &q, REQ_LEN);
	memcpy(out + REQ_LEN, page, PAGE);
	r = wire_raw(t.ctx, out, sizeof(out), osplit, on, RESP_LEN, NULL, 0);
	assert_int_equal(check_answer(&r, q.opcode), VIRTIO_TMEM_S_OK);
	free(r.in);
	q = mkreq(VIRTIO_TMEM_OP_LOAD, 0, pool, 7, 7);
	r = wire_raw(t.ctx, &q, REQ_LEN, NULL, 0, PAGE + RESP_LEN, isplit, in);
	assert_int_equal(check_answer(&r, q.opcode), VIRTIO_TMEM_S_OK);
	assert_memory_equal(r.in, page, PAGE);
	free(r.in);
	tclient_close(&t);
}

/* DEV-6: unknown opcodes answer UNSUPP and change nothing. */
static void test_dev6_unknown_opcode(void **state)
{
	static const uint8_t bad[] = { 0, 8, 9, 16, 0x7f, 0x80, 0xff };
	struct tclient t;
	uint32_t pool;
	size_t i;

	(void)state;
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);
	assert_int_equal(w_store_gen(t.ctx, pool, 0, 0, PK_TEXT, 1), 0);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		struct virtio_tmem_req q = mkreq(bad[i], 0, pool, 0, 0);
		struct wire_result r = wire_raw(t.ctx, &q, REQ_LEN, NULL, 0,
						RESP_LEN, NULL, 0);

		assert_int_equal(check_answer(&r, bad[i]),
				 VIRTIO_TMEM_S_UNSUPP);
		free(r.in);
	}
	w_load_expect(t.ctx, pool, 0, 0, PK_TEXT, 1);
	assert_int_equal(tstats(t.client).pools, 1);
	tclient_close(&t);
}

/*
 * DEV-7: ids never opened, out of range, destroyed: NO_POOL for every
 * opcode but NEW_POOL.
 */
static void test_dev7_no_pool(void **state)
{
	struct tclient t;
	uint32_t ids[16], pool, dead;
	size_t i, o, n = 0;

	(void)state;
	open_client(&t, 4);
	pool = w_new_pool(t.ctx, 0);
	dead = w_new_pool(t.ctx, 0);
	assert_int_equal(w_simple(t.ctx, VIRTIO_TMEM_OP_DESTROY_POOL, dead, 0,
				  0), VIRTIO_TMEM_S_OK);
	assert_int_equal(w_store_gen(t.ctx, pool, 0, 0, PK_TEXT, 1), 0);
	ids[n++] = dead;
	ids[n++] = 4;		/* == max_pools */
	ids[n++] = 5;
	ids[n++] = TMEM_MAX_POOLS;
	ids[n++] = 0x10000;
	ids[n++] = 0x7fffffff;
	ids[n++] = 0xffffffff;
	for (i = 0; i < 4; i++)	/* in range, never opened */
		if (i != pool && i != dead)
			ids[n++] = (uint32_t)i;
	for (i = 0; i < n; i++) {
		for (o = 0; o < ARRAY_SIZE(pool_ops); o++) {
			int st = wire_any(t.ctx, mkreq(pool_ops[o], 0, ids[i],
						       0, 0));

			if (st != VIRTIO_TMEM_S_NO_POOL)
				fail_msg("opcode %u pool %#x: status %d, want NO_POOL",
					 pool_ops[o], ids[i], st);
		}
	}
	w_load_expect(t.ctx, pool, 0, 0, PK_TEXT, 1);
	assert_int_equal(tstats(t.client).pools, 1);
	tclient_close(&t);
}

/*
 * DEV-7: a client never reaches another client's pool, even when both
 * use the same pool id.
 */
static void test_dev7_clients_isolated(void **state)
{
	struct tclient a, b;
	unsigned char page[PAGE];
	uint32_t pa, pb, i;
	size_t o;

	(void)state;
	open_client(&a, 0);
	open_client(&b, 0);
	pa = w_new_pool(a.ctx, 0);
	for (i = 0; i < 16; i++)
		assert_int_equal(w_store_gen(a.ctx, pa, 1, i, PK_TEXT, i), 0);
	/* B has no pools: A's id is NO_POOL for every opcode. */
	for (o = 0; o < ARRAY_SIZE(pool_ops); o++)
		assert_int_equal(wire_any(b.ctx, mkreq(pool_ops[o], 0, pa, 1,
						       1)),
				 VIRTIO_TMEM_S_NO_POOL);
	/* B's first pool gets the same number, most likely: still B's. */
	pb = w_new_pool(b.ctx, 0);
	for (i = 0; i < 16; i++) {
		memset(page, 0, PAGE);
		assert_int_equal(w_load(b.ctx, pb, 1, i, page),
				 VIRTIO_TMEM_S_NOT_FOUND);
		assert_int_equal(w_load(b.ctx, pa, 1, i, page),
				 pa == pb ? VIRTIO_TMEM_S_NOT_FOUND :
				 VIRTIO_TMEM_S_NO_POOL);
	}
	assert_int_equal(w_store_gen(b.ctx, pb, 1, 0, PK_RANDOM, 0), 0);
	assert_int_equal(w_simple(b.ctx, VIRTIO_TMEM_OP_INVALIDATE_OBJECT, pb,
				  1, 0), 0);
	assert_int_equal(w_simple(b.ctx, VIRTIO_TMEM_OP_INVALIDATE_POOL, pb,
				  0, 0), 0);
	assert_int_equal(w_simple(b.ctx, VIRTIO_TMEM_OP_DESTROY_POOL, pb,
				  0, 0), 0);
	for (i = 0; i < 16; i++)
		w_load_expect(a.ctx, pa, 1, i, PK_TEXT, i);
	assert_int_equal(w_store_gen(a.ctx, pa, 1, 99, PK_TEXT, 99), 0);
	tclient_close(&b);
	w_load_expect(a.ctx, pa, 1, 99, PK_TEXT, 99);
	tclient_close(&a);
}

struct bad_len {
	uint8_t op;
	size_t olen, ilen;
};

/*
 * DEV-6: any length but the exact one is INVALID, without changing any
 * pool; the answer still goes into the last 8 writable bytes.  Includes
 * a page sent in the wrong direction and out_num = 0.
 */
static void test_dev6_lengths(void **state)
{
	static const struct bad_len bad[] = {
		{ VIRTIO_TMEM_OP_STORE, 24 + 4095, 8 },
		{ VIRTIO_TMEM_OP_STORE, 24 + 4097, 8 },
		{ VIRTIO_TMEM_OP_STORE, 24 + 8192, 8 },
		{ VIRTIO_TMEM_OP_STORE, 24, 8 },		/* no page */
		{ VIRTIO_TMEM_OP_STORE, 24, 4104 },	/* wrong direction */
		{ VIRTIO_TMEM_OP_STORE, 24 + 4096, 9 },
		{ VIRTIO_TMEM_OP_STORE, 24 + 4096, 16 },
		{ VIRTIO_TMEM_OP_STORE, 24 + 4096, 4104 },
		{ VIRTIO_TMEM_OP_STORE, 23, 8 },
		{ VIRTIO_TMEM_OP_LOAD, 24, 4103 },
		{ VIRTIO_TMEM_OP_LOAD, 24, 4105 },
		{ VIRTIO_TMEM_OP_LOAD, 24, 8 },		/* no page */
		{ VIRTIO_TMEM_OP_LOAD, 24 + 4096, 8 },	/* wrong direction */
		{ VIRTIO_TMEM_OP_LOAD, 24 + 4096, 4104 },
		{ VIRTIO_TMEM_OP_LOAD, 25, 4104 },
		{ VIRTIO_TMEM_OP_LOAD, 23, 4104 },
		{ VIRTIO_TMEM_OP_NEW_POOL, 25, 8 },
		{ VIRTIO_TMEM_OP_NEW_POOL, 24 + 4096, 8 },
		{ VIRTIO_TMEM_OP_NEW_POOL, 24, 16 },
		{ VIRTIO_TMEM_OP_NEW_POOL, 24, 4104 },
		{ VIRTIO_TMEM_OP_DESTROY_POOL, 32, 8 },
		{ VIRTIO_TMEM_OP_DESTROY_POOL, 24, 12 },
		{ VIRTIO_TMEM_OP_INVALIDATE_PAGE, 24 + 4096, 8 },
		{ VIRTIO_TMEM_OP_INVALIDATE_PAGE, 24, 4104 },
		{ VIRTIO_TMEM_OP_INVALIDATE_OBJECT, 16, 8 },
		{ VIRTIO_TMEM_OP_INVALIDATE_OBJECT, 24, 9 },
		{ VIRTIO_TMEM_OP_INVALIDATE_POOL, 48, 8 },
		{ VIRTIO_TMEM_OP_INVALIDATE_POOL, 24, 4104 },
		{ VIRTIO_TMEM_OP_INVALIDATE_POOL, 1, 8 },
		{ VIRTIO_TMEM_OP_INVALIDATE_POOL, 0, 8 },	/* out_num = 0 */
	};
	unsigned char out[24 + 8192];
	struct tclient t;
	struct tmem_stats before, after;
	uint32_t pool;
	size_t i;

	(void)state;
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);
	assert_int_equal(w_store_gen(t.ctx, pool, 0, 0, PK_TEXT, 1), 0);
	assert_int_equal(w_store_gen(t.ctx, pool, 0, 1, PK_HALF, 2), 0);
	before = tstats(t.client);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		/* Aimed at key (0, 0), which holds a page. */
		struct virtio_tmem_req q = mkreq(bad[i].op, 0, pool, 0, 0);
		struct wire_result r;

		fill_page(out + 24, PK_RANDOM, i);
		fill_page(out + 24 + 4096, PK_RANDOM, i + 1000);
		memcpy(out, &q, REQ_LEN);
		r = wire_raw(t.ctx, out, bad[i].olen, NULL, 0, bad[i].ilen,
			     NULL, 0);
		if (r.ret < 0 || r.resp.status != VIRTIO_TMEM_S_INVALID)
			fail_msg("opcode %u out %zu in %zu: ret %d status %u, want INVALID",
				 bad[i].op, bad[i].olen, bad[i].ilen, r.ret,
				 r.resp.status);
		check_answer(&r, bad[i].op);
		free(r.in);
		w_load_expect(t.ctx, pool, 0, 0, PK_TEXT, 1);
	}
	after = tstats(t.client);
	assert_int_equal(after.pools, before.pools);
	assert_int_equal(after.pages, before.pages);
	assert_int_equal(after.compressed_bytes, before.compressed_bytes);
	w_load_expect(t.ctx, pool, 0, 1, PK_HALF, 2);
	tclient_close(&t);
}

/* DEV-6: flags on anything but NEW_POOL are INVALID and change nothing. */
static void test_dev6_flags(void **state)
{
	static const uint8_t flags[] = { 1, 2, 0x80, 0xff };
	struct tclient t;
	uint32_t pool;
	size_t f, o;

	(void)state;
	open_client(&t, 0);
	tmem_client_set_features(t.client, F_EPH);
	pool = w_new_pool(t.ctx, 0);
	assert_int_equal(w_store_gen(t.ctx, pool, 0, 0, PK_TEXT, 1), 0);
	for (f = 0; f < ARRAY_SIZE(flags); f++) {
		for (o = 0; o < ARRAY_SIZE(pool_ops); o++) {
			int st = wire_any(t.ctx, mkreq(pool_ops[o], flags[f],
						       pool, 0, 0));

			if (st != VIRTIO_TMEM_S_INVALID)
				fail_msg("opcode %u flags %#x: status %d, want INVALID",
					 pool_ops[o], flags[f], st);
			w_load_expect(t.ctx, pool, 0, 0, PK_TEXT, 1);
		}
	}
	/* NEW_POOL: any bit but EPHEMERAL is INVALID. */
	assert_int_equal(wire_any(t.ctx, mkreq(VIRTIO_TMEM_OP_NEW_POOL, 2, 0,
					       0, 0)), VIRTIO_TMEM_S_INVALID);
	assert_int_equal(wire_any(t.ctx, mkreq(VIRTIO_TMEM_OP_NEW_POOL, 0x80,
					       0, 0, 0)),
			 VIRTIO_TMEM_S_INVALID);
	assert_int_equal(wire_any(t.ctx, mkreq(VIRTIO_TMEM_OP_NEW_POOL, 3, 0,
					       0, 0)), VIRTIO_TMEM_S_INVALID);
	assert_int_equal(tstats(t.client).pools, 1);
	assert_int_equal(tstats(t.client).pages, 1);
	tclient_close(&t);
}

/* DEV-6: EPHEMERAL needs VIRTIO_TMEM_F_EPHEMERAL negotiated. */
static void test_dev6_ephemeral_feature(void **state)
{
	struct virtio_tmem_req q = mkreq(VIRTIO_TMEM_OP_NEW_POOL,
					 VIRTIO_TMEM_POOL_EPHEMERAL, 0, 0, 0);
	struct tclient t;
	int st;

	(void)state;
	open_client(&t, 0);
	assert_int_equal(wire_any(t.ctx, q), VIRTIO_TMEM_S_UNSUPP);
	assert_int_equal(tmem_client_set_features(t.client,
				1ULL << VIRTIO_TMEM_F_MQ), 0);
	assert_int_equal(wire_any(t.ctx, q), VIRTIO_TMEM_S_UNSUPP);
	/* An unknown bit with it: INVALID or UNSUPP, never a pool. */
	st = wire_any(t.ctx, mkreq(VIRTIO_TMEM_OP_NEW_POOL, 3, 0, 0, 0));
	assert_true(st == VIRTIO_TMEM_S_INVALID || st == VIRTIO_TMEM_S_UNSUPP);
	assert_int_equal(tstats(t.client).pools, 0);
	assert_int_equal(tmem_client_set_features(t.client, F_EPH), 0);
	w_new_pool(t.ctx, VIRTIO_TMEM_POOL_EPHEMERAL);
	w_new_pool(t.ctx, 0);
	assert_int_equal(tstats(t.client).pools, 2);
	tclient_close(&t);
}

/*
 * DEV-3 (library half): after tmem_client_reset() the client is as new:
 * no pool answers, and features must be negotiated again, as after a
 * virtio reset.
 */
static void test_dev3_reset(void **state)
{
	struct virtio_tmem_req q = mkreq(VIRTIO_TMEM_OP_NEW_POOL,
					 VIRTIO_TMEM_POOL_EPHEMERAL, 0, 0, 0);
	struct tclient t;
	uint32_t pool, eph;

	(void)state;
	open_client(&t, 0);
	assert_int_equal(tmem_client_set_features(t.client, F_EPH), 0);
	pool = w_new_pool(t.ctx, 0);
	eph = w_new_pool(t.ctx, VIRTIO_TMEM_POOL_EPHEMERAL);
	assert_int_equal(w_store_gen(t.ctx, pool, 1, 1, PK_TEXT, 1), 0);
	assert_int_equal(w_store_gen(t.ctx, eph, 1, 1, PK_TEXT, 1), 0);
	assert_int_equal(tmem_client_reset(t.client), 0);
	assert_int_equal(w_load(t.ctx, pool, 1, 1, NULL), VIRTIO_TMEM_S_NO_POOL);
	assert_int_equal(w_load(t.ctx, eph, 1, 1, NULL), VIRTIO_TMEM_S_NO_POOL);
	assert_int_equal(wire_any(t.ctx, q), VIRTIO_TMEM_S_UNSUPP);
	assert_int_equal(tstats(t.client).pools, 0);
	pool = w_new_pool(t.ctx, 0);
	assert_int_equal(w_load(t.ctx, pool, 1, 1, NULL),
			 VIRTIO_TMEM_S_NOT_FOUND);
	tclient_close(&t);
}

/*
 * DEV-5: fewer than 8 writable bytes is a transport error: -EPROTO, the
 * request is not processed and no byte is written.
 */
static void test_dev5_short_in(void **state)
{
	static const struct {
		size_t split[4];
		unsigned int n;
	} ins[] = {
		{ { 0 }, 0 },				/* in_num = 0 */
		{ { 7 }, 1 },
		{ { 3, 4 }, 2 },
		{ { SEG_NULL, 0, 1 }, 3 },
		{ { 0 }, 1 },
		{ { SEG_NULL }, 1 },
	};
	unsigned char out[REQ_LEN + PAGE];
	struct virtio_tmem_req q;
	struct wire_result r;
	struct tclient t;
	uint32_t pool;
	size_t i, j, ilen;

	(void)state;
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);
	for (i = 0; i < ARRAY_SIZE(ins); i++) {
		for (ilen = 0, j = 0; j < ins[i].n; j++)
			ilen += ins[i].split[j] == SEG_NULL ? 0 :
				ins[i].split[j];
		/* STORE: must not be stored. */
		q = mkreq(VIRTIO_TMEM_OP_STORE, 0, pool, 1, (uint32_t)i);
		memcpy(out, &q, REQ_LEN);
		fill_page(out + REQ_LEN, PK_TEXT, i);
		r = wire_raw(t.ctx, out, sizeof(out), NULL, 0, ilen,
			     ins[i].split, ins[i].n);
		assert_int_equal(r.ret, -EPROTO);
		for (j = 0; j < ilen; j++)
			assert_int_equal(r.in[j], IN_FILL);
		free(r.in);
		assert_int_equal(w_load(t.ctx, pool, 1, (uint32_t)i, NULL),
				 VIRTIO_TMEM_S_NOT_FOUND);
		/* NEW_POOL: must not open a pool. */
		q = mkreq(VIRTIO_TMEM_OP_NEW_POOL, 0, 0, 0, 0);
		r = wire_raw(t.ctx, &q, REQ_LEN, NULL, 0, ilen, ins[i].split,
			     ins[i].n);
		assert_int_equal(r.ret, -EPROTO);
		free(r.in);
		/* DESTROY_POOL: must not destroy. */
		q = mkreq(VIRTIO_TMEM_OP_DESTROY_POOL, 0, pool, 0, 0);
		r = wire_raw(t.ctx, &q, REQ_LEN, NULL, 0, ilen, ins[i].split,
			     ins[i].n);
		assert_int_equal(r.ret, -EPROTO);
		free(r.in);
		/* Even garbage out with out_num = 0. */
		r = wire_raw(t.ctx, NULL, 0, NULL, 0, ilen, ins[i].split,
			     ins[i].n);
		assert_int_equal(r.ret, -EPROTO);
		free(r.in);
	}
	assert_int_equal(tstats(t.client).pools, 1);
	assert_int_equal(tstats(t.client).pages, 0);
	assert_int_equal(tstats(t.client).succ_stores, 0);
	tclient_close(&t);
}

/*
 * DEV-5, DEV-8: lengths that cannot be real (a sum that overflows, an
 * iovec far larger than any buffer) are refused before any byte of them
 * is touched; the bases here point at nothing.
 */
static void test_dev8_absurd_lengths(void **state)
{
	struct virtio_tmem_req q;
	struct virtio_tmem_resp resp;
	struct iovec out[3], in[2];
	struct tclient t;
	uint32_t pool;
	int ret;

	(void)state;
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);

	/* Writable lengths summing past SIZE_MAX: transport error. */
	q = mkreq(VIRTIO_TMEM_OP_INVALIDATE_PAGE, 0, pool, 0, 0);
	out[0] = (struct iovec){ &q, REQ_LEN };
	in[0] = (struct iovec){ NULL, SIZE_MAX };
	in[1] = (struct iovec){ &resp, RESP_LEN };
	ret = tmem_handle_request(t.ctx, out, 1, in, 2);
	assert_int_equal(ret, -EPROTO);

	/* Readable lengths summing past SIZE_MAX: INVALID, answered. */
	q = mkreq(VIRTIO_TMEM_OP_STORE, 0, pool, 0, 0);
	out[0] = (struct iovec){ &q, REQ_LEN };
	out[1] = (struct iovec){ NULL, SIZE_MAX - 8 };
	out[2] = (struct iovec){ NULL, 4096 };
	in[0] = (struct iovec){ &resp, RESP_LEN };
	memset(&resp, IN_FILL, sizeof(resp));
	ret = tmem_handle_request(t.ctx, out, 3, in, 1);
	assert_int_equal(ret, RESP_LEN);
	assert_int_equal(resp.status, VIRTIO_TMEM_S_INVALID);

	/* One huge readable iovec after the header: INVALID, never read. */
	out[1] = (struct iovec){ NULL, (size_t)1 << 40 };
	memset(&resp, IN_FILL, sizeof(resp));
	ret = tmem_handle_request(t.ctx, out, 2, in, 1);
	assert_int_equal(ret, RESP_LEN);
	assert_int_equal(resp.status, VIRTIO_TMEM_S_INVALID);
	assert_int_equal(tstats(t.client).pages, 0);
	tclient_close(&t);
}

/*
 * DEV-11 and DEV-16: a refused STORE leaves no copy (not even the older
 * one), and the budget holds through the wire.
 */
static void test_dev11_dev16_refused_store(void **state)
{
	struct tmem_client_config cfg = test_config(1ULL << 20);
	struct tmem_stats st;
	struct tclient t;
	uint32_t pool, i, n;
	int status = 0;

	(void)state;
	cfg.incompressible = TMEM_INCOMPRESSIBLE_REJECT;
	tclient_open(&t, &cfg);
	pool = w_new_pool(t.ctx, 0);
	/* Incompressible under REJECT: the old copy goes too. */
	assert_int_equal(w_store_gen(t.ctx, pool, 9, 0, PK_TEXT, 1), 0);
	assert_int_equal(w_store_gen(t.ctx, pool, 9, 0, PK_RANDOM, 1),
			 VIRTIO_TMEM_S_REJECTED);
	assert_int_equal(w_load(t.ctx, pool, 9, 0, NULL),
			 VIRTIO_TMEM_S_NOT_FOUND);
	/* Fill to the budget. */
	for (n = 0; n < 100000; n++) {
		status = w_store_gen(t.ctx, pool, 1, n, PK_TEXT, n);
		st = tstats(t.client);
		assert_true(st.host_bytes <= cfg.budget_bytes);
		if (status != VIRTIO_TMEM_S_OK)
			break;
	}
	assert_int_equal(status, VIRTIO_TMEM_S_REJECTED);
	assert_int_equal(w_load(t.ctx, pool, 1, n, NULL),
			 VIRTIO_TMEM_S_NOT_FOUND);
	/* Overwrites of held keys with bigger pages: refused ones drop. */
	for (i = 0; i < n; i += 3) {
		status = w_store_gen(t.ctx, pool, 1, i, PK_HALF, i);
		assert_true(tstats(t.client).host_bytes <= cfg.budget_bytes);
		if (status == VIRTIO_TMEM_S_OK) {
			w_load_expect(t.ctx, pool, 1, i, PK_HALF, i);
		} else {
			assert_int_equal(status, VIRTIO_TMEM_S_REJECTED);
			assert_int_equal(w_load(t.ctx, pool, 1, i, NULL),
					 VIRTIO_TMEM_S_NOT_FOUND);
		}
	}
	for (i = 0; i < n; i++)
		if (i % 3)
			w_load_expect(t.ctx, pool, 1, i, PK_TEXT, i);
	tclient_close(&t);
}

/*
 * DEV-15 and DEV-16: ephemeral pages make room for persistent ones; a
 * persistent page is never dropped; REJECTED only with nothing
 * ephemeral left.
 */
static void test_dev15_ephemeral_first(void **state)
{
	struct tmem_client_config cfg = test_config(2ULL << 20);
	struct tmem_stats st;
	struct tclient t;
	uint32_t eph, per, i, held = 0;
	int status = 0;

	(void)state;
	tclient_open(&t, &cfg);
	assert_int_equal(tmem_client_set_features(t.client, F_EPH), 0);
	eph = w_new_pool(t.ctx, VIRTIO_TMEM_POOL_EPHEMERAL);
	per = w_new_pool(t.ctx, 0);
	for (i = 0; i < 4000; i++)
		assert_int_equal(w_store_gen(t.ctx, eph, 0, i, PK_TEXT, i),
				 VIRTIO_TMEM_S_OK);
	assert_true(tstats(t.client).evictions > 0);
	for (i = 0; i < 20000; i++) {
		status = w_store_gen(t.ctx, per, 1, i, PK_TEXT, 50000 + i);
		st = tstats(t.client);
		assert_true(st.host_bytes <= cfg.budget_bytes);
		if (status != VIRTIO_TMEM_S_OK) {
			assert_int_equal(status, VIRTIO_TMEM_S_REJECTED);
			if (st.pages != held)
				fail_msg("DEV-15: persistent STORE rejected with %llu ephemeral pages held",
					 (unsigned long long)(st.pages - held));
			break;
		}
		held++;
	}
	assert_int_equal(status, VIRTIO_TMEM_S_REJECTED);
	for (i = 0; i < held; i++)
		w_load_expect(t.ctx, per, 1, i, PK_TEXT, 50000 + i);
	tclient_close(&t);
}

/*
 * One INVALIDATE_PAGES of @n indices on (@pool, @obj), the indices laid
 * out over iovecs of the lengths in @split (NULL: one buffer with the
 * header).  @count is what goes in req.index; @ilen the writable length.
 * Returns the status, INVALID checked through check_answer().
 */
static int w_inval_pages(struct tmem_ctx *ctx, uint32_t pool, uint64_t obj,
			 uint32_t count, const uint32_t *idx, unsigned int n,
			 const size_t *split, unsigned int nsplit, size_t ilen)
{
	struct virtio_tmem_req q = mkreq(VIRTIO_TMEM_OP_INVALIDATE_PAGES, 0,
					 pool, obj, count);
	size_t olen = REQ_LEN + n * sizeof(uint32_t);
	unsigned char *out = malloc(olen);
	struct wire_result r;
	int st;

	assert_non_null(out);
	memcpy(out, &q, REQ_LEN);
	for (unsigned int i = 0; i < n; i++) {
		uint32_t le = htole32(idx[i]);

		memcpy(out + REQ_LEN + i * sizeof(le), &le, sizeof(le));
	}
	r = wire_raw(ctx, out, olen, split, nsplit, ilen, NULL, 0);
	st = check_answer(&r, VIRTIO_TMEM_OP_INVALIDATE_PAGES);
	free(r.in);
	free(out);
	return st;
}

/*
 * DEV-35 (and DEV-6, DEV-7, DEV-12 for INVALIDATE_PAGES): every index of
 * the list dropped, nothing else; UNSUPP unless negotiated; INVALID for
 * a count out of range or a list of another length; NO_POOL drops
 * nothing.
 */
static void test_dev35_invalidate_pages(void **state)
{
	static const uint32_t list[] = { 9, 3, 5, 5, 100 };
	/* Header split after 10 bytes; the indices split mid-index. */
	static const size_t split[] = { 10, 14, 3, SEG_NULL, 7, 10 };
	uint32_t *all = malloc(VIRTIO_TMEM_INVALIDATE_PAGES_MAX *
			       sizeof(*all));
	struct tclient t;
	uint32_t pool, other;
	unsigned int i;

	(void)state;
	assert_non_null(all);
	open_client(&t, 0);
	pool = w_new_pool(t.ctx, 0);
	other = w_new_pool(t.ctx, 0);
	for (i = 0; i < 10; i++) {
		assert_int_equal(w_store_gen(t.ctx, pool, 1, i, PK_TEXT, i), 0);
		assert_int_equal(w_store_gen(t.ctx, pool, 2, i, PK_TEXT,
					     100 + i), 0);
		assert_int_equal(w_store_gen(t.ctx, other, 1, i, PK_TEXT,
					     200 + i), 0);
	}

	/* DEV-6: not negotiated (nor after a reset): UNSUPP, nothing goes. */
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 5, list, 5, NULL, 0,
				       RESP_LEN), VIRTIO_TMEM_S_UNSUPP);
	assert_int_equal(tstats(t.client).pages, 30);
	assert_int_equal(tmem_client_set_features(t.client,
				F_EPH | (1ULL << VIRTIO_TMEM_F_MQ)), 0);
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 5, list, 5, NULL, 0,
				       RESP_LEN), VIRTIO_TMEM_S_UNSUPP);
	assert_int_equal(tstats(t.client).pages, 30);
	assert_int_equal(tmem_client_set_features(t.client, F_INVP), 0);

	/* DEV-6: a count of 0 or above the maximum, a list of another length,
	 * a page in the writable part, flags: INVALID, nothing goes. */
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 0, list, 0, NULL, 0,
				       RESP_LEN), VIRTIO_TMEM_S_INVALID);
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 0, list, 1, NULL, 0,
				       RESP_LEN), VIRTIO_TMEM_S_INVALID);
	for (i = 0; i < VIRTIO_TMEM_INVALIDATE_PAGES_MAX; i++)
		all[i] = i % 10;
	assert_int_equal(w_inval_pages(t.ctx, pool, 1,
				       VIRTIO_TMEM_INVALIDATE_PAGES_MAX + 1,
				       all, VIRTIO_TMEM_INVALIDATE_PAGES_MAX,
				       NULL, 0, RESP_LEN),
			 VIRTIO_TMEM_S_INVALID);
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 0xffffffff, all,
				       VIRTIO_TMEM_INVALIDATE_PAGES_MAX, NULL,
				       0, RESP_LEN), VIRTIO_TMEM_S_INVALID);
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 5, list, 4, NULL, 0,
				       RESP_LEN), VIRTIO_TMEM_S_INVALID);
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 4, list, 5, NULL, 0,
				       RESP_LEN), VIRTIO_TMEM_S_INVALID);
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 5, list, 5, NULL, 0,
				       PAGE + RESP_LEN),
			 VIRTIO_TMEM_S_INVALID);
	assert_int_equal(wire_any(t.ctx, mkreq(VIRTIO_TMEM_OP_INVALIDATE_PAGES,
					       1, pool, 1, 1)),
			 VIRTIO_TMEM_S_INVALID);
	assert_int_equal(tstats(t.client).pages, 30);

	/* DEV-7: no such pool: NO_POOL, and no pool loses a page. */
	assert_int_equal(w_inval_pages(t.ctx, 0x7fffffff, 1, 5, list, 5,
				       NULL, 0, RESP_LEN),
			 VIRTIO_TMEM_S_NO_POOL);
	assert_int_equal(tstats(t.client).pages, 30);

	/* DEV-35: indices 3, 5, 9 of object 1 go (5 twice, 100 absent: OK),
	 * through a list split at odd places; nothing else goes. */
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 5, list, 5, split,
				       ARRAY_SIZE(split), RESP_LEN),
			 VIRTIO_TMEM_S_OK);
	assert_int_equal(tstats(t.client).pages, 27);
	for (i = 0; i < 10; i++) {
		if (i == 3 || i == 5 || i == 9)
			assert_int_equal(w_load(t.ctx, pool, 1, i, NULL),
					 VIRTIO_TMEM_S_NOT_FOUND);
		else
			w_load_expect(t.ctx, pool, 1, i, PK_TEXT, i);
		w_load_expect(t.ctx, pool, 2, i, PK_TEXT, 100 + i);
		w_load_expect(t.ctx, other, 1, i, PK_TEXT, 200 + i);
	}

	/* A full list of 1024 (every index of object 2, many times). */
	for (i = 0; i < VIRTIO_TMEM_INVALIDATE_PAGES_MAX; i++)
		all[i] = VIRTIO_TMEM_INVALIDATE_PAGES_MAX - 1 - i;
	assert_int_equal(w_inval_pages(t.ctx, pool, 2,
				       VIRTIO_TMEM_INVALIDATE_PAGES_MAX, all,
				       VIRTIO_TMEM_INVALIDATE_PAGES_MAX, NULL,
				       0, RESP_LEN), VIRTIO_TMEM_S_OK);
	assert_int_equal(tstats(t.client).pages, 17);
	for (i = 0; i < 10; i++) {
		assert_int_equal(w_load(t.ctx, pool, 2, i, NULL),
				 VIRTIO_TMEM_S_NOT_FOUND);
		w_load_expect(t.ctx, other, 1, i, PK_TEXT, 200 + i);
	}
	/* Stored again after the invalidate: held again. */
	assert_int_equal(w_store_gen(t.ctx, pool, 1, 3, PK_HALF, 7), 0);
	w_load_expect(t.ctx, pool, 1, 3, PK_HALF, 7);

	/* DEV-3: a reset forgets the feature. */
	assert_int_equal(tmem_client_reset(t.client), 0);
	assert_int_equal(w_inval_pages(t.ctx, pool, 1, 5, list, 5, NULL, 0,
				       RESP_LEN), VIRTIO_TMEM_S_UNSUPP);
	free(all);
	tclient_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_pool),
		cmocka_unit_test(test_page_opcodes),
		cmocka_unit_test(test_invalidate_pool),
		cmocka_unit_test(test_scatter_gather),
		cmocka_unit_test(test_header_split_all_opcodes),
		cmocka_unit_test(test_tiny_iovecs),
		cmocka_unit_test(test_dev6_unknown_opcode),
		cmocka_unit_test(test_dev7_no_pool),
		cmocka_unit_test(test_dev7_clients_isolated),
		cmocka_unit_test(test_dev6_lengths),
		cmocka_unit_test(test_dev6_flags),
		cmocka_unit_test(test_dev6_ephemeral_feature),
		cmocka_unit_test(test_dev3_reset),
		cmocka_unit_test(test_dev5_short_in),
		cmocka_unit_test(test_dev8_absurd_lengths),
		cmocka_unit_test(test_dev11_dev16_refused_store),
		cmocka_unit_test(test_dev15_ephemeral_first),
		cmocka_unit_test(test_dev35_invalidate_pages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
