/* SPDX-License-Identifier: MIT */
/*
 * Scatter-gather helpers for the wire tests: every iovec gets its own
 * allocation with guard bytes on both sides, device-readable buffers are
 * checked to be unchanged, and device-writable ones are gathered back.
 */
#ifndef WIRE_TEST_H
#define WIRE_TEST_H

#include <endian.h>
#include <sys/uio.h>

#include "tmem-test.h"
#include "virtio_tmem.h"

#define GUARD		64
#define GUARD_BYTE	0xa5
#define IN_FILL		0x3c
#define MAX_SEGS	1024
#define REQ_LEN		sizeof(struct virtio_tmem_req)
#define RESP_LEN	sizeof(struct virtio_tmem_resp)

struct seg_buf {
	struct iovec iov[MAX_SEGS];
	unsigned char *mem[MAX_SEGS];	/* allocation, guard included */
	unsigned int n;
};

/*
 * Lay @len bytes of @data (NULL: IN_FILL) out over segments of the
 * lengths in @split (@nsplit of them; NULL: one segment, none if @len is
 * 0).  A split length of (size_t)-1 is a zero-length iovec whose base is
 * NULL; 0 is a zero-length iovec pointing at a guarded allocation.
 */
#define SEG_NULL ((size_t)-1)

static inline void seg_build(struct seg_buf *b, const void *data, size_t len,
			     const size_t *split, unsigned int nsplit)
{
	size_t one = len, off = 0;
	unsigned int i;

	if (!split) {
		split = &one;
		nsplit = len ? 1 : 0;
	}
	assert_true(nsplit <= MAX_SEGS);
	b->n = nsplit;
	for (i = 0; i < nsplit; i++) {
		size_t l = split[i] == SEG_NULL ? 0 : split[i];

		if (split[i] == SEG_NULL) {
			b->mem[i] = NULL;
			b->iov[i].iov_base = NULL;
			b->iov[i].iov_len = 0;
			continue;
		}
		b->mem[i] = malloc(l + 2 * GUARD);
		assert_non_null(b->mem[i]);
		memset(b->mem[i], GUARD_BYTE, l + 2 * GUARD);
		if (data)
			memcpy(b->mem[i] + GUARD, (const char *)data + off, l);
		else
			memset(b->mem[i] + GUARD, IN_FILL, l);
		b->iov[i].iov_base = b->mem[i] + GUARD;
		b->iov[i].iov_len = l;
		off += l;
	}
	assert_int_equal(off, len);
}

/* Check the guards, gather the contents into @out, free everything. */
static inline void seg_finish(struct seg_buf *b, void *out)
{
	size_t off = 0, j;
	unsigned int i;

	for (i = 0; i < b->n; i++) {
		size_t l = b->iov[i].iov_len;

		if (!b->mem[i])
			continue;
		for (j = 0; j < GUARD; j++) {
			if (b->mem[i][j] != GUARD_BYTE ||
			    b->mem[i][GUARD + l + j] != GUARD_BYTE)
				fail_msg("DEV-8: byte outside iovec %u (len %zu) written",
					 i, l);
		}
		if (out)
			memcpy((char *)out + off, b->mem[i] + GUARD, l);
		off += l;
		free(b->mem[i]);
	}
	b->n = 0;
}

struct wire_result {
	int ret;			/* tmem_handle_request() */
	struct virtio_tmem_resp resp;	/* the last 8 bytes of in */
	unsigned char *in;		/* gathered device-writable bytes */
	size_t in_len;
};

/*
 * Run one request: @out/@olen device-readable bytes split by @osplit,
 * @ilen device-writable bytes split by @isplit.  The caller frees
 * r->in.  Device-readable buffers must come back unchanged.
 */
static inline struct wire_result wire_raw(struct tmem_ctx *ctx,
					  const void *out, size_t olen,
					  const size_t *osplit,
					  unsigned int onum, size_t ilen,
					  const size_t *isplit,
					  unsigned int inum)
{
	struct seg_buf *ob = malloc(sizeof(*ob)), *ib = malloc(sizeof(*ib));
	unsigned char *ocopy = malloc(olen + 1);
	struct wire_result r;

	assert_non_null(ob);
	assert_non_null(ib);
	assert_non_null(ocopy);
	memset(&r, 0, sizeof(r));
	r.in = malloc(ilen + 1);
	assert_non_null(r.in);
	r.in_len = ilen;
	seg_build(ob, out, olen, osplit, onum);
	seg_build(ib, NULL, ilen, isplit, inum);
	r.ret = tmem_handle_request(ctx, ob->iov, ob->n, ib->iov, ib->n);
	seg_finish(ob, ocopy);
	if (olen && memcmp(ocopy, out, olen) != 0)
		fail_msg("device-readable buffer was modified");
	seg_finish(ib, r.in);
	if (ilen >= RESP_LEN)
		memcpy(&r.resp, r.in + ilen - RESP_LEN, RESP_LEN);
	free(ocopy);
	free(ob);
	free(ib);
	return r;
}

static inline struct virtio_tmem_req mkreq(uint8_t op, uint8_t flags,
					   uint32_t pool, uint64_t obj,
					   uint32_t idx)
{
	struct virtio_tmem_req q;

	memset(&q, 0, sizeof(q));
	q.opcode = op;
	q.flags = flags;
	q.pool_id = htole32(pool);
	q.object_id = htole64(obj);
	q.index = htole32(idx);
	return q;
}

/* Expected device-writable length for a well-formed request. */
static inline size_t in_len_for(uint8_t op)
{
	return op == VIRTIO_TMEM_OP_LOAD ? PAGE + RESP_LEN : RESP_LEN;
}

static inline size_t out_len_for(uint8_t op)
{
	return op == VIRTIO_TMEM_OP_STORE ? REQ_LEN + PAGE : REQ_LEN;
}

/*
 * DEV-4: one well-formed answer.  Checks the return value and the
 * reserved bytes; returns the status.
 */
static inline int check_answer(const struct wire_result *r, uint8_t op)
{
	if (r->ret < 0)
		fail_msg("tmem_handle_request: %d with %zu writable bytes",
			 r->ret, r->in_len);
	assert_true(r->resp.status <= VIRTIO_TMEM_S_IOERR);
	assert_int_equal(r->resp.reserved[0], 0);
	assert_int_equal(r->resp.reserved[1], 0);
	assert_int_equal(r->resp.reserved[2], 0);
	if (op != VIRTIO_TMEM_OP_NEW_POOL ||
	    r->resp.status != VIRTIO_TMEM_S_OK)
		assert_int_equal(le32toh(r->resp.pool_id), 0);
	if (op == VIRTIO_TMEM_OP_LOAD && r->resp.status == VIRTIO_TMEM_S_OK &&
	    r->in_len == PAGE + RESP_LEN) {
		assert_int_equal(r->ret, PAGE + RESP_LEN);
	} else {
		/*
		 * Bytes written for the used ring: the response alone, or
		 * the whole writable part up to the response.
		 */
		if (r->ret != (int)RESP_LEN && r->ret != (int)r->in_len)
			fail_msg("returned %d for %zu writable bytes", r->ret,
				 r->in_len);
	}
	return r->resp.status;
}

/* A well-formed request in the default layout: req | page -> page | resp. */
static inline int wire_op(struct tmem_ctx *ctx, struct virtio_tmem_req q,
			  const void *page_out, void *page_in,
			  uint32_t *new_pool)
{
	unsigned char *out = malloc(REQ_LEN + PAGE);
	size_t olen = out_len_for(q.opcode), ilen = in_len_for(q.opcode);
	size_t osplit[2] = { REQ_LEN, PAGE }, isplit[2] = { PAGE, RESP_LEN };
	struct wire_result r;
	int status;

	assert_non_null(out);
	memcpy(out, &q, REQ_LEN);
	if (q.opcode == VIRTIO_TMEM_OP_STORE && page_out)
		memcpy(out + REQ_LEN, page_out, PAGE);
	r = wire_raw(ctx, out, olen, osplit, olen > REQ_LEN ? 2 : 1,
		     ilen, ilen > RESP_LEN ? isplit : isplit + 1, ilen > RESP_LEN ? 2 : 1);
	status = check_answer(&r, q.opcode);
	if (page_in && q.opcode == VIRTIO_TMEM_OP_LOAD &&
	    status == VIRTIO_TMEM_S_OK)
		memcpy(page_in, r.in, PAGE);
	if (new_pool)
		*new_pool = le32toh(r.resp.pool_id);
	free(r.in);
	free(out);
	return status;
}

static inline uint32_t w_new_pool(struct tmem_ctx *ctx, uint8_t flags)
{
	uint32_t id = 0xdeadbeef;

	assert_int_equal(wire_op(ctx, mkreq(VIRTIO_TMEM_OP_NEW_POOL, flags,
					    0, 0, 0), NULL, NULL, &id),
			 VIRTIO_TMEM_S_OK);
	return id;
}

static inline int w_store(struct tmem_ctx *ctx, uint32_t pool, uint64_t obj,
			  uint32_t idx, const void *page)
{
	return wire_op(ctx, mkreq(VIRTIO_TMEM_OP_STORE, 0, pool, obj, idx),
		       page, NULL, NULL);
}

static inline int w_store_gen(struct tmem_ctx *ctx, uint32_t pool,
			      uint64_t obj, uint32_t idx, enum page_kind kind,
			      uint64_t seed)
{
	unsigned char page[PAGE];

	fill_page(page, kind, seed);
	return w_store(ctx, pool, obj, idx, page);
}

static inline int w_load(struct tmem_ctx *ctx, uint32_t pool, uint64_t obj,
			 uint32_t idx, void *page)
{
	return wire_op(ctx, mkreq(VIRTIO_TMEM_OP_LOAD, 0, pool, obj, idx),
		       NULL, page, NULL);
}

static inline void w_load_expect(struct tmem_ctx *ctx, uint32_t pool,
				 uint64_t obj, uint32_t idx,
				 enum page_kind kind, uint64_t seed)
{
	unsigned char page[PAGE];

	assert_int_equal(w_load(ctx, pool, obj, idx, page), VIRTIO_TMEM_S_OK);
	assert_page_is(page, kind, seed);
}

static inline int w_simple(struct tmem_ctx *ctx, uint8_t op, uint32_t pool,
			   uint64_t obj, uint32_t idx)
{
	return wire_op(ctx, mkreq(op, 0, pool, obj, idx), NULL, NULL, NULL);
}

#endif /* WIRE_TEST_H */
