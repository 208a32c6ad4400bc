/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for tmem_handle_request().
 *
 * The input is a small program.  A 4-byte preamble configures two
 * clients (budget, incompressible policy and threshold, negotiated
 * features); then each request is encoded as
 *
 *   ctl  op  flags  pool  key  page-kind  page-seed  out-len  in-len
 *   nout nin  split bytes...
 *
 * and sent through iovecs of fuzz-chosen lengths (each its own heap
 * block, so ASan sees any byte touched outside them).  A model of each
 * client's pools checks every answer:
 *
 *  - -EPROTO exactly when fewer than 8 writable bytes are given, and
 *    then nothing is written (DEV-5);
 *  - otherwise a status within the defined set, written at the end of
 *    the writable part (DEV-4), and a return value <= the writable size;
 *  - a malformed request never answers OK and changes nothing (DEV-6);
 *  - for a well-formed request the exact expected status, and for LOAD
 *    exactly the bytes last stored under the key in this client's pool:
 *    never another client's page, never a refused or invalidated one
 *    (DEV-7, DEV-9..DEV-13);
 *  - host_bytes never exceeds the budget (DEV-16);
 *  - with an allocation failure injected into a request (bit 6 of its
 *    first byte), the same: ENOMEM may only turn into REJECTED, and
 *    LeakSanitizer checks the failure paths for leaks.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "tmem.h"
#include "tmem_i.h"		/* tmem_fault_inject() */
#include "virtio_tmem.h"

#define PAGE		VIRTIO_TMEM_PAGE_SIZE

#include "fuzz-input.h"

#define REQ_LEN		sizeof(struct virtio_tmem_req)
#define RESP_LEN	sizeof(struct virtio_tmem_resp)
#define MAX_POOLS	4
#define NOBJ		4
#define NIDX		8
#define NKEY		(NOBJ * NIDX)
#define MAX_SEGS	8
#define MAX_LEN		(REQ_LEN + 2 * PAGE)
#define IN_FILL		0x3c

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "fuzz-request: " __VA_ARGS__);	\
			fprintf(stderr, " [%s]\n", #cond);		\
			abort();					\
		}							\
	} while (0)

struct mpool {
	int open;		/* slot in use */
	int closed;		/* INVALIDATE_POOL'd */
	int ephemeral;
	uint32_t id;
	int held[NKEY];
	uint64_t hash[NKEY];
};

struct mclient {
	struct tmem_client *client;
	struct tmem_ctx *ctx;
	uint64_t budget;
	uint64_t features;
	struct mpool pool[MAX_POOLS];
};

/* Pages of every compressibility class, from two fuzz bytes. */
static void make_page(uint8_t *p, uint8_t kind, uint8_t seed,
		      const struct input *in)
{
	uint64_t s = seed * 7919u + kind;
	size_t i;

	switch (kind % 6) {
	case 0:
		memset(p, 0, PAGE);
		break;
	case 1:
		memset(p, seed, PAGE);
		break;
	case 2:
		fill_random(p, PAGE, &s);
		break;
	case 3:
		for (i = 0; i < PAGE; i++)
			p[i] = "tmem swap page "[(splitmix64(&s) % 15)];
		break;
	case 4:		/* half random */
		for (i = 0; i < PAGE / 2; i++)
			p[i] = (uint8_t)splitmix64(&s);
		memset(p + PAGE / 2, 0, PAGE / 2);
		break;
	default:	/* the rest of the input, tiled */
		for (i = 0; i < PAGE; i++)
			p[i] = in->n ? in->p[i % in->n] ^ seed : seed;
		break;
	}
}

static struct mpool *find_pool(struct mclient *c, uint32_t id)
{
	int i;

	for (i = 0; i < MAX_POOLS; i++)
		if (c->pool[i].open && c->pool[i].id == id)
			return &c->pool[i];
	return NULL;
}

static int open_pools(const struct mclient *c)
{
	int i, n = 0;

	for (i = 0; i < MAX_POOLS; i++)
		n += c->pool[i].open;
	return n;
}

/* Split @len bytes into @nseg iovecs of fuzz-chosen lengths. */
static unsigned int build_sg(struct iovec *iov, uint8_t **mem,
			     const uint8_t *data, size_t len,
			     unsigned int nseg, struct input *in)
{
	size_t off = 0, l;
	unsigned int i;

	for (i = 0; i < nseg; i++) {
		if (i == nseg - 1) {
			l = len - off;
		} else {
			uint8_t b = next(in);

			/* Mostly small cuts, sometimes a page-sized one. */
			l = b < 0xc0 ? b % 32 : (size_t)(b - 0xc0) * 128;
			if (l > len - off)
				l = len - off;
		}
		mem[i] = malloc(l ? l : 1);
		CHECK(mem[i] != NULL, "malloc");
		if (data)
			memcpy(mem[i], data + off, l);
		else
			memset(mem[i], IN_FILL, l);
		iov[i].iov_base = l || (nseg & 1) ? mem[i] : NULL;
		iov[i].iov_len = l;
		off += l;
	}
	return nseg;
}

static size_t gather(uint8_t *dst, const struct iovec *iov, uint8_t **mem,
		     unsigned int n)
{
	size_t off = 0;
	unsigned int i;

	for (i = 0; i < n; i++) {
		memcpy(dst + off, mem[i], iov[i].iov_len);
		off += iov[i].iov_len;
		free(mem[i]);
	}
	return off;
}

static const uint8_t opcodes[16] = {
	1, 2, 3, 4, 5, 6, 7, 3, 4, 3, 4, 5, 1, 0, 8, 0xff,
};

struct request {
	struct virtio_tmem_req q;
	uint32_t pool_id;
	int key;
	size_t olen, ilen;
	int wellformed;
	int reserved_set;	/* SPEC leaves reserved != 0 open */
	int nidx;		/* INVALIDATE_PAGES: indices in page[] */
	uint8_t page[PAGE];
};

static void expect_status(int got, int want, const struct request *r)
{
	CHECK(got == want, "opcode %u pool %#x key %d: status %d, want %d",
	      r->q.opcode, r->pool_id, r->key, got, want);
}

static void model_new_pool(struct mclient *c, const struct request *r,
			   const struct virtio_tmem_resp *resp)
{
	int eph = r->q.flags & VIRTIO_TMEM_POOL_EPHEMERAL;
	int st = resp->status, i;

	if (eph && !(c->features & (1ULL << VIRTIO_TMEM_F_EPHEMERAL))) {
		expect_status(st, VIRTIO_TMEM_S_UNSUPP, r);
		return;
	}
	if (open_pools(c) == MAX_POOLS) {
		expect_status(st, VIRTIO_TMEM_S_REJECTED, r);
		return;
	}
	/*
	 * A pool's own metadata is charged to the budget (DEV-16), so a
	 * NEW_POOL that does not fit is REJECTED too.
	 */
	if (st == VIRTIO_TMEM_S_REJECTED)
		return;
	expect_status(st, VIRTIO_TMEM_S_OK, r);
	CHECK(!find_pool(c, le32toh(resp->pool_id)),
	      "NEW_POOL returned open id %u", le32toh(resp->pool_id));
	for (i = 0; c->pool[i].open; i++)
		;
	memset(&c->pool[i], 0, sizeof(c->pool[i]));
	c->pool[i].open = 1;
	c->pool[i].ephemeral = !!eph;
	c->pool[i].id = le32toh(resp->pool_id);
}

/* Check a well-formed request's answer against the model and update it. */
static void model_apply(struct mclient *c, const struct request *r,
			const struct virtio_tmem_resp *resp,
			const uint8_t *inbuf)
{
	struct mpool *p = find_pool(c, r->pool_id);
	int st = resp->status, i, k = r->key;

	if (r->q.opcode == VIRTIO_TMEM_OP_NEW_POOL) {
		model_new_pool(c, r, resp);
		return;
	}
	if (!p) {
		expect_status(st, VIRTIO_TMEM_S_NO_POOL, r);
		return;
	}
	switch (r->q.opcode) {
	case VIRTIO_TMEM_OP_DESTROY_POOL:
		expect_status(st, VIRTIO_TMEM_S_OK, r);
		p->open = 0;
		break;
	case VIRTIO_TMEM_OP_STORE:
		if (p->closed) {
			expect_status(st, VIRTIO_TMEM_S_REJECTED, r);
			break;
		}
		CHECK(st == VIRTIO_TMEM_S_OK || st == VIRTIO_TMEM_S_REJECTED,
		      "STORE status %d", st);
		p->held[k] = st == VIRTIO_TMEM_S_OK;
		p->hash[k] = hash_page(r->page);
		break;
	case VIRTIO_TMEM_OP_LOAD:
		if (!p->held[k] || (p->ephemeral &&
				    st == VIRTIO_TMEM_S_NOT_FOUND)) {
			expect_status(st, VIRTIO_TMEM_S_NOT_FOUND, r);
			p->held[k] = 0;
			break;
		}
		expect_status(st, VIRTIO_TMEM_S_OK, r);
		CHECK(hash_page(inbuf) == p->hash[k],
		      "LOAD pool %u key %d: wrong bytes", r->pool_id, k);
		break;
	case VIRTIO_TMEM_OP_INVALIDATE_PAGE:
		expect_status(st, VIRTIO_TMEM_S_OK, r);
		p->held[k] = 0;
		break;
	case VIRTIO_TMEM_OP_INVALIDATE_OBJECT:
		expect_status(st, VIRTIO_TMEM_S_OK, r);
		for (i = 0; i < NIDX; i++)
			p->held[(k / NIDX) * NIDX + i] = 0;
		break;
	case VIRTIO_TMEM_OP_INVALIDATE_POOL:
		expect_status(st, VIRTIO_TMEM_S_OK, r);
		memset(p->held, 0, sizeof(p->held));
		p->closed = 1;
		break;
	case VIRTIO_TMEM_OP_INVALIDATE_PAGES:
		/* DEV-35: the indices in the page's place, key's object. */
		expect_status(st, VIRTIO_TMEM_S_OK, r);
		for (i = 0; i < r->nidx; i++) {
			uint32_t idx;

			memcpy(&idx, r->page + 4 * i, 4);
			idx = le32toh(idx);
			if (idx < NIDX)
				p->held[(k / NIDX) * NIDX + idx] = 0;
		}
		break;
	}
}

/* Decode one request from the input. */
static void decode(struct mclient *c, struct request *r, struct input *in)
{
	uint8_t op = next(in), flags = next(in), psel = next(in);
	uint8_t key = next(in), kind = next(in), seed = next(in);
	uint8_t olen = next(in), ilen = next(in);
	static const uint32_t odd_ids[4] = {
		MAX_POOLS, 0xffffffff, TMEM_MAX_POOLS, 0x80000000,
	};
	struct mpool *p = &c->pool[psel % MAX_POOLS];

	r->q = (struct virtio_tmem_req){ 0 };
	r->q.opcode = opcodes[op % 16];
	/* Mostly the right flags; sometimes anything. */
	if (op & 0x80)
		r->q.flags = flags;
	else if (r->q.opcode == VIRTIO_TMEM_OP_NEW_POOL)
		r->q.flags = flags & VIRTIO_TMEM_POOL_EPHEMERAL;
	if (psel < 0xe0)
		r->pool_id = p->open ? p->id : psel % 8;
	else
		r->pool_id = psel < 0xf0 ? odd_ids[psel % 4] : psel * 0x01010101u;
	r->key = key % NKEY;
	r->q.pool_id = htole32(r->pool_id);
	r->q.object_id = htole64(r->key / NIDX);
	r->q.index = htole32(r->key % NIDX);
	r->reserved_set = flags & 0x40 && !(op & 0x80);
	if (r->reserved_set)
		r->q.reserved1 = htole32(flags);
	make_page(r->page, kind, seed, in);
	r->nidx = 0;
	if (r->q.opcode == VIRTIO_TMEM_OP_INVALIDATE_PAGES) {
		/* 1 to 8 indices, mostly of held keys, where the page goes. */
		r->nidx = seed % 8 + 1;
		for (int i = 0; i < r->nidx; i++) {
			uint32_t idx = htole32(next(in) % (NIDX + 2));

			memcpy(r->page + 4 * i, &idx, 4);
		}
		r->q.index = htole32(seed & 0x80 ? (uint32_t)r->nidx :
						       seed * 0x01000193u);
	}

	r->olen = r->q.opcode == VIRTIO_TMEM_OP_STORE ? REQ_LEN + PAGE :
		  REQ_LEN + 4 * r->nidx;
	r->ilen = r->q.opcode == VIRTIO_TMEM_OP_LOAD ? PAGE + RESP_LEN : RESP_LEN;
	/* Lengths: exact below 0xe0, else one of a few wrong ones. */
	if (olen >= 0xe0)
		r->olen = (size_t)(olen - 0xe0) * 261 % (MAX_LEN + 1);
	if (ilen >= 0xe0)
		r->ilen = (size_t)(ilen - 0xe0) * 263 % (MAX_LEN + 1);
	if (r->q.opcode == VIRTIO_TMEM_OP_INVALIDATE_PAGES) {
		/* UNSUPP unless negotiated; a wrong count is INVALID. */
		r->wellformed = c->features &
				(1ULL << VIRTIO_TMEM_F_INVALIDATE_PAGES) &&
			le32toh(r->q.index) == (uint32_t)r->nidx &&
			r->olen == REQ_LEN + 4 * r->nidx &&
			r->ilen == RESP_LEN && !r->q.flags;
		return;
	}
	r->wellformed = r->q.opcode >= VIRTIO_TMEM_OP_NEW_POOL &&
		r->q.opcode <= VIRTIO_TMEM_OP_INVALIDATE_POOL &&
		r->olen == (r->q.opcode == VIRTIO_TMEM_OP_STORE ?
			    REQ_LEN + PAGE : REQ_LEN) &&
		r->ilen == (r->q.opcode == VIRTIO_TMEM_OP_LOAD ?
			    PAGE + RESP_LEN : RESP_LEN) &&
		(r->q.opcode == VIRTIO_TMEM_OP_NEW_POOL ?
		 !(r->q.flags & ~VIRTIO_TMEM_POOL_EPHEMERAL) : !r->q.flags);
}

static void run_one(struct mclient *c, struct input *in, uint8_t sel)
{
	static uint8_t out[MAX_LEN], inbuf[MAX_LEN];
	struct iovec oiov[MAX_SEGS], iiov[MAX_SEGS];
	uint8_t *omem[MAX_SEGS], *imem[MAX_SEGS];
	struct virtio_tmem_resp resp;
	struct request r;
	struct tmem_stats st;
	unsigned int on, inn;
	uint8_t nseg;
	size_t i;
	int ret;

	decode(c, &r, in);
	nseg = next(in);
	memcpy(out, &r.q, REQ_LEN);
	memcpy(out + REQ_LEN, r.page, PAGE);
	memset(out + REQ_LEN + PAGE, 0x77, MAX_LEN - REQ_LEN - PAGE);
	on = build_sg(oiov, omem, out, r.olen, nseg % MAX_SEGS, in);
	if (on == 0 && r.olen)
		r.olen = 0, r.wellformed = 0;
	inn = build_sg(iiov, imem, NULL, r.ilen, (nseg >> 4) % MAX_SEGS, in);
	if (inn == 0)
		r.ilen = 0, r.wellformed = 0;

	/* Sometimes one of the request's allocations fails: ENOMEM. */
	if (sel & 0x40)
		tmem_fault_inject((sel >> 1) & 0x1f);
	ret = tmem_handle_request(c->ctx, oiov, on, iiov, inn);
	tmem_fault_inject(-1);

	gather(out, oiov, omem, on);
	CHECK(memcmp(out, &r.q, r.olen < REQ_LEN ? r.olen : REQ_LEN) == 0,
	      "device-readable header modified");
	gather(inbuf, iiov, imem, inn);
	if (r.ilen < RESP_LEN) {
		CHECK(ret == -EPROTO, "%zu writable bytes: ret %d", r.ilen,
		      ret);
		for (i = 0; i < r.ilen; i++)
			CHECK(inbuf[i] == IN_FILL, "byte written on -EPROTO");
		return;
	}
	CHECK(ret >= (int)RESP_LEN && (size_t)ret <= r.ilen,
	      "ret %d for %zu writable bytes", ret, r.ilen);
	memcpy(&resp, inbuf + r.ilen - RESP_LEN, RESP_LEN);
	CHECK(resp.status <= VIRTIO_TMEM_S_IOERR, "status %u", resp.status);
	CHECK(resp.status != VIRTIO_TMEM_S_IOERR, "IOERR from memory");
	if (r.wellformed) {
		if (!(r.reserved_set && resp.status == VIRTIO_TMEM_S_INVALID))
			model_apply(c, &r, &resp, inbuf);
	} else {
		CHECK(resp.status != VIRTIO_TMEM_S_OK &&
		      resp.status != VIRTIO_TMEM_S_REJECTED &&
		      resp.status != VIRTIO_TMEM_S_NOT_FOUND,
		      "malformed request (op %u flags %#x out %zu in %zu) answered %u",
		      r.q.opcode, r.q.flags, r.olen, r.ilen, resp.status);
	}
	if (resp.status != VIRTIO_TMEM_S_OK ||
	    r.q.opcode != VIRTIO_TMEM_OP_NEW_POOL)
		CHECK(resp.pool_id == 0, "resp.pool_id %u",
		      le32toh(resp.pool_id));
	tmem_client_stats(c->client, &st);
	CHECK(st.host_bytes <= c->budget, "host_bytes %llu > budget %llu",
	      (unsigned long long)st.host_bytes,
	      (unsigned long long)c->budget);
	CHECK(st.pools == (uint64_t)open_pools(c), "pools %llu, model %d",
	      (unsigned long long)st.pools, open_pools(c));
}

/* LOAD through the wire, one iovec each way; returns the status. */
static int wire_load(struct mclient *c, uint32_t id, int k, uint8_t *inbuf)
{
	struct virtio_tmem_req q = { .opcode = VIRTIO_TMEM_OP_LOAD };
	struct virtio_tmem_resp resp;
	struct iovec o = { &q, REQ_LEN }, i = { inbuf, PAGE + RESP_LEN };
	int ret;

	q.pool_id = htole32(id);
	q.object_id = htole64(k / NIDX);
	q.index = htole32(k % NIDX);
	ret = tmem_handle_request(c->ctx, &o, 1, &i, 1);
	CHECK(ret >= (int)RESP_LEN, "final LOAD: ret %d", ret);
	memcpy(&resp, inbuf + PAGE, RESP_LEN);
	return resp.status;
}

/* Every key the model holds in a persistent pool must load back. */
static void final_check(struct mclient *c)
{
	static uint8_t inbuf[PAGE + RESP_LEN];
	int i, k, st;

	for (i = 0; i < MAX_POOLS; i++) {
		struct mpool *p = &c->pool[i];

		if (!p->open)
			continue;
		for (k = 0; k < NKEY; k++) {
			st = wire_load(c, p->id, k, inbuf);
			if (p->held[k] && !(p->ephemeral &&
					    st == VIRTIO_TMEM_S_NOT_FOUND)) {
				CHECK(st == VIRTIO_TMEM_S_OK, "final load: %d",
				      st);
				CHECK(hash_page(inbuf) == p->hash[k],
				      "final load: wrong bytes");
			} else {
				CHECK(st == VIRTIO_TMEM_S_NOT_FOUND,
				      "final load of absent key: %d", st);
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct mclient c[2];
	uint8_t b0 = next(&in), b1 = next(&in), b2 = next(&in);
	int i, steps;

	memset(c, 0, sizeof(c));
	for (i = 0; i < 2; i++) {
		struct tmem_client_config cfg = {
			/* 32 KiB .. 8 MiB: small enough to hit the cap. */
			.budget_bytes = 32768ULL << ((b0 >> (4 * i)) % 9),
			.max_pools = MAX_POOLS,
			.compress_threshold = (b1 & 0x0f) * 256,
			.incompressible = (b1 >> 4) & 1 ?
				TMEM_INCOMPRESSIBLE_REJECT :
				TMEM_INCOMPRESSIBLE_RAW,
		};

		c[i].budget = cfg.budget_bytes;
		CHECK(tmem_client_new(&cfg, &c[i].client) == 0, "client_new");
		CHECK(tmem_ctx_new(c[i].client, &c[i].ctx) == 0, "ctx_new");
		c[i].features = (b2 >> (2 * i)) & 3;
		if (b2 & (0x10 << i))
			c[i].features |= 1ULL << VIRTIO_TMEM_F_INVALIDATE_PAGES;
		tmem_client_set_features(c[i].client, c[i].features);
	}
	for (steps = 0; in.n && steps < 256; steps++) {
		uint8_t sel = next(&in);

		run_one(&c[sel & 1], &in, sel);
	}
	for (i = 0; i < 2; i++) {
		final_check(&c[i]);
		tmem_ctx_free(c[i].ctx);
		tmem_client_free(c[i].client);
	}
	return 0;
}
