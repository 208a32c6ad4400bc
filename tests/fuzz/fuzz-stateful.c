/* SPDX-License-Identifier: MIT */
/*
 * Stateful libFuzzer target for libtmem's API (tmem.h).
 *
 * fuzz-request.c attacks the wire format; this target attacks the state
 * machine under it: long sequences of NEW_POOL, DESTROY_POOL, STORE,
 * LOAD, the three INVALIDATEs and reset over a small budget, with and
 * without a disk tier, with disk I/O errors switched on and off, checked
 * against a model after every call:
 *
 *  - a LOAD after an OK STORE to a persistent pool returns exactly the
 *    stored bytes (DEV-9, DEV-11); -EIO only while disk reads fail;
 *  - a refused STORE leaves no copy (an older one is invalidated), and
 *    an invalidated, destroyed or reset key misses (DEV-10, DEV-12);
 *  - an ephemeral pool may miss, but never returns other bytes;
 *  - return values are exactly the documented ones (-EBADF for a pool
 *    not open, -ESHUTDOWN after INVALIDATE_POOL, the number of pages an
 *    invalidation dropped);
 *  - host_bytes never exceeds the budget (DEV-16), the pool count and
 *    the page count agree with the model.
 *
 * Input: two configuration bytes, then one operation per 1-5 bytes:
 *
 *   cfg0: bits 0-2 budget, bit 3 disk tier, bits 4-5 segment size
 *   cfg1: bits 0-3 compress threshold, bit 4 incompressible policy
 *   op:   bits 0-3 operation, bits 4-7 its argument (pool slot, type)
 *   then per operation: key, page kind, page seed
 *
 * A client without a tier is made per input.  Tier clients (a backing
 * file, an io_uring and a thread each) are too slow to make per input:
 * one per configuration is kept and tmem_client_reset() makes it as new
 * at the start of each input; the reset is thereby checked too (the
 * model starts empty).  Their backing files live in a mkdtemp()
 * directory under $TMPDIR and are unlinked as soon as they are open.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmem.h"

#define PAGE		TMEM_PAGE_SIZE

#include "fuzz-input.h"

#define MAX_POOLS	4
#define SLOTS		6	/* slots 4, 5: ids that are not open */
#define NOBJ		4
#define NIDX		8
#define NKEY		(NOBJ * NIDX)
#define MAX_STEPS	1024
#define TIER_CONFIGS	16

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "fuzz-stateful: " __VA_ARGS__);	\
			fprintf(stderr, " [%s]\n", #cond);		\
			abort();					\
		}							\
	} while (0)

enum op {
	OP_NEW_POOL, OP_DESTROY_POOL, OP_STORE, OP_STORE2, OP_STORE3,
	OP_LOAD, OP_LOAD2, OP_INV_PAGE, OP_INV_OBJECT, OP_INV_POOL,
	OP_RESET, OP_IO_ERROR, OP_NR
};

struct mpool {
	int open;
	int closed;		/* tmem_invalidate_pool()'d */
	int ephemeral;
	uint32_t id;
	uint8_t held[NKEY];
	uint64_t hash[NKEY];
};

struct model {
	struct tmem_client *client;
	struct tmem_ctx *ctx;
	uint64_t budget;
	int tier;
	unsigned int io_error;	/* TMEM_IO_* injected now */
	uint32_t stale_id;	/* an id that was open once */
	struct mpool pool[MAX_POOLS];
};

/* Pages of every compressibility class: same-filled to random. */
static void make_page(uint8_t *p, uint8_t kind, uint8_t seed)
{
	uint64_t s = seed * 7919u + kind;
	size_t i;

	switch (kind % 5) {
	case 0:
		memset(p, seed & 1 ? seed : 0, PAGE);
		break;
	case 1:
		fill_random(p, PAGE, &s);
		break;
	case 2:
		for (i = 0; i < PAGE; i++)
			p[i] = "tmem swap page "[(splitmix64(&s) % 15)];
		break;
	case 3:		/* random head, zero tail: compresses to about half */
		for (i = 0; i < PAGE; i++)
			p[i] = i < (size_t)(kind >> 3) * 128 ? (uint8_t)splitmix64(&s) : 0;
		break;
	default:	/* compressible, differing in one byte per seed */
		memset(p, 0x5a, PAGE);
		memcpy(p + (seed * 13) % (PAGE - 8), &s, 8);
		break;
	}
}

static int open_pools(const struct model *m)
{
	int i, n = 0;

	for (i = 0; i < MAX_POOLS; i++)
		n += m->pool[i].open;
	return n;
}

static struct mpool *find_pool(struct model *m, uint32_t id)
{
	int i;

	for (i = 0; i < MAX_POOLS; i++)
		if (m->pool[i].open && m->pool[i].id == id)
			return &m->pool[i];
	return NULL;
}

/* The pool id an operation names: an open pool's, or one that is not. */
static uint32_t pool_id(struct model *m, unsigned int slot)
{
	slot %= SLOTS;
	if (slot < MAX_POOLS && m->pool[slot].open)
		return m->pool[slot].id;
	if (slot == 4 && !find_pool(m, m->stale_id))
		return m->stale_id;
	return slot == 5 ? UINT32_MAX : TMEM_MAX_POOLS + slot;
}

static void check_stats(struct model *m)
{
	struct tmem_stats st;
	uint64_t persistent = 0, ephemeral = 0;
	int i, k;

	tmem_client_stats(m->client, &st);
	CHECK(st.host_bytes <= m->budget, "host_bytes %llu > budget %llu",
	      (unsigned long long)st.host_bytes,
	      (unsigned long long)m->budget);
	CHECK(st.pools == (uint64_t)open_pools(m), "pools %llu, model %d",
	      (unsigned long long)st.pools, open_pools(m));
	for (i = 0; i < MAX_POOLS; i++) {
		if (!m->pool[i].open)
			continue;
		for (k = 0; k < NKEY; k++) {
			if (m->pool[i].ephemeral)
				ephemeral += m->pool[i].held[k];
			else
				persistent += m->pool[i].held[k];
		}
	}
	CHECK(st.pages >= persistent && st.pages <= persistent + ephemeral,
	      "pages %llu, model %llu persistent + %llu ephemeral",
	      (unsigned long long)st.pages, (unsigned long long)persistent,
	      (unsigned long long)ephemeral);
}

static void do_new_pool(struct model *m, unsigned int arg)
{
	/* Mostly persistent (what reaches the tier), sometimes bad. */
	enum tmem_pool_type type = arg < 10 ? TMEM_POOL_PERSISTENT :
		arg < 15 ? TMEM_POOL_EPHEMERAL : (enum tmem_pool_type)7;
	uint32_t id;
	int ret, i;

	ret = tmem_pool_new(m->client, type, &id);
	if (type != TMEM_POOL_PERSISTENT && type != TMEM_POOL_EPHEMERAL) {
		CHECK(ret == -EINVAL, "pool_new(type 7): %d", ret);
		return;
	}
	if (open_pools(m) == MAX_POOLS) {
		CHECK(ret == -ENOSPC, "pool_new with %d open: %d", MAX_POOLS,
		      ret);
		return;
	}
	if (ret == -ENOSPC)	/* the pool's index did not fit the budget */
		return;
	CHECK(ret == 0, "pool_new: %d", ret);
	CHECK(!find_pool(m, id), "pool_new returned open id %u", id);
	for (i = 0; m->pool[i].open; i++)
		;
	memset(&m->pool[i], 0, sizeof(m->pool[i]));
	m->pool[i].open = 1;
	m->pool[i].ephemeral = type == TMEM_POOL_EPHEMERAL;
	m->pool[i].id = id;
}

static void do_store(struct model *m, struct mpool *p, uint32_t id, int k,
		     const uint8_t *page)
{
	int ret = tmem_store(m->ctx, id, k / NIDX, k % NIDX, page);

	if (!p) {
		CHECK(ret == -EBADF, "store to pool %u not open: %d", id, ret);
		return;
	}
	if (p->closed) {
		CHECK(ret == -ESHUTDOWN, "store to invalidated pool: %d", ret);
		return;
	}
	CHECK(ret == 0 || ret == -ENOSPC || ret == -E2BIG || ret == -ENOMEM,
	      "store: %d", ret);
	p->held[k] = ret == 0;
	p->hash[k] = hash_page(page);
}

static void do_load(struct model *m, struct mpool *p, uint32_t id, int k)
{
	static uint8_t page[PAGE];
	int ret;

	memset(page, 0xa5, PAGE);
	ret = tmem_load(m->ctx, id, k / NIDX, k % NIDX, page);
	if (!p) {
		CHECK(ret == -EBADF, "load from pool %u not open: %d", id, ret);
		return;
	}
	if (!p->held[k]) {
		CHECK(ret == -ENOENT, "load of key %d not held: %d", k, ret);
		return;
	}
	if (p->ephemeral && ret == -ENOENT) {
		p->held[k] = 0;		/* evicted */
		return;
	}
	/* A disk read that fails is -EIO; the page stays stored. */
	if (ret == -EIO && (m->io_error & TMEM_IO_READ) && !p->ephemeral)
		return;
	CHECK(ret == 0, "load of held key %d (pool %u%s): %d", k, id,
	      p->ephemeral ? ", ephemeral" : "", ret);
	CHECK(hash_page(page) == p->hash[k], "load of key %d: wrong bytes",
	      k);
}

static void do_invalidate(struct model *m, struct mpool *p, uint32_t id,
			  int op, int k)
{
	int ret, want = 0, i, lo = k, hi = k + 1;

	if (op == OP_INV_POOL) {
		ret = tmem_invalidate_pool(m->client, id);
		CHECK(ret == (p ? 0 : -EBADF), "invalidate_pool: %d", ret);
		if (p) {
			memset(p->held, 0, sizeof(p->held));
			p->closed = 1;
		}
		return;
	}
	if (op == OP_INV_PAGE) {
		ret = tmem_invalidate_page(m->ctx, id, k / NIDX, k % NIDX);
	} else {
		ret = tmem_invalidate_object(m->ctx, id, k / NIDX);
		lo = k / NIDX * NIDX;
		hi = lo + NIDX;
	}
	if (!p) {
		CHECK(ret == -EBADF, "invalidate in pool %u not open: %d", id,
		      ret);
		return;
	}
	for (i = lo; i < hi; i++) {
		want += p->held[i];
		p->held[i] = 0;
	}
	/* An ephemeral pool may have dropped some already. */
	CHECK(p->ephemeral ? ret >= 0 && ret <= want : ret == want,
	      "invalidate op %d key %d: %d, model %d", op, k, ret, want);
}

static void do_reset(struct model *m)
{
	struct tmem_stats st;

	CHECK(tmem_client_reset(m->client) == 0, "reset");
	memset(m->pool, 0, sizeof(m->pool));
	tmem_client_stats(m->client, &st);
	CHECK(st.pools == 0 && st.pages == 0 && st.succ_stores == 0 &&
	      st.compressed_bytes == 0 && st.disk_pages == 0,
	      "after reset: %llu pools, %llu pages, %llu stores",
	      (unsigned long long)st.pools, (unsigned long long)st.pages,
	      (unsigned long long)st.succ_stores);
	if (m->io_error)
		CHECK(tmem_client_inject_io_error(m->client, m->io_error,
						  -EIO) == 0, "inject");
}

static void step(struct model *m, struct input *in)
{
	static uint8_t page[PAGE];
	uint8_t b = next(in);
	unsigned int op = (b & 15) % OP_NR, arg = b >> 4;
	uint32_t id = pool_id(m, arg);
	struct mpool *p = find_pool(m, id);
	int k;

	switch (op) {
	case OP_NEW_POOL:
		do_new_pool(m, arg);
		break;
	case OP_DESTROY_POOL:
		CHECK(tmem_pool_destroy(m->client, id) == (p ? 0 : -EBADF),
		      "destroy pool %u", id);
		if (p) {
			p->open = 0;
			m->stale_id = id;
		}
		break;
	case OP_STORE:
	case OP_STORE2:
	case OP_STORE3:
		k = next(in) % NKEY;
		make_page(page, next(in), next(in));
		do_store(m, p, id, k, page);
		break;
	case OP_LOAD:
	case OP_LOAD2:
		do_load(m, p, id, next(in) % NKEY);
		break;
	case OP_INV_PAGE:
	case OP_INV_OBJECT:
	case OP_INV_POOL:
		do_invalidate(m, p, id, op, next(in) % NKEY);
		break;
	case OP_RESET:
		if (arg == 15)		/* rare: it forgets everything */
			do_reset(m);
		break;
	case OP_IO_ERROR:
		if (!m->tier)
			break;
		m->io_error = arg & (TMEM_IO_READ | TMEM_IO_WRITE);
		CHECK(tmem_client_inject_io_error(m->client, m->io_error,
						  -EIO) == 0, "inject");
		break;
	}
	check_stats(m);
}

/* Every key the model holds in a persistent pool loads back exactly. */
static void final_check(struct model *m)
{
	int i, k;

	if (m->io_error)
		CHECK(tmem_client_inject_io_error(m->client, 0, 0) == 0,
		      "inject");
	m->io_error = 0;
	for (i = 0; i < MAX_POOLS; i++)
		if (m->pool[i].open)
			for (k = 0; k < NKEY; k++)
				do_load(m, &m->pool[i], m->pool[i].id, k);
}

static struct tmem_client_config make_config(uint8_t cfg0, uint8_t cfg1)
{
	struct tmem_client_config cfg = {
		.max_pools = MAX_POOLS,
		.compress_threshold = (cfg1 & 15) * 256,
		.incompressible = cfg1 & 16 ? TMEM_INCOMPRESSIBLE_REJECT :
			TMEM_INCOMPRESSIBLE_RAW,
	};

	if (cfg0 & 8) {
		/* 5 segment buffers must fit, and room to spare. */
		cfg.segment_size = TMEM_MIN_SEGMENT_SIZE << ((cfg0 >> 4) & 1);
		cfg.budget_bytes = (6 + (cfg0 & 3) * 2) *
			(uint64_t)cfg.segment_size;
		cfg.backing_size = (TMEM_TIER_MIN_SEGMENTS + (cfg0 >> 5 & 1) * 12) *
			(uint64_t)cfg.segment_size;
	} else {
		/* 16 KiB .. 2 MiB: small enough to hit the cap. */
		cfg.budget_bytes = 16384ULL << (cfg0 & 7);
	}
	return cfg;
}

static char tier_dir[PATH_MAX / 2];

/* A cached tier client for this configuration, reset to as new. */
static int tier_client(struct model *m, uint8_t cfg0, uint8_t cfg1)
{
	static struct model cache[TIER_CONFIGS][2];
	unsigned int slot = (cfg0 & 3) | (cfg0 >> 4 & 3) << 2;
	struct model *c = &cache[slot][!!(cfg1 & 16)];
	struct tmem_client_config cfg = make_config(cfg0 & 0x3b, cfg1 & 16);
	char path[PATH_MAX];
	static unsigned int seq;
	int ret;

	if (!c->client) {
		if (!tier_dir[0]) {
			const char *tmp = getenv("TMPDIR");

			snprintf(tier_dir, sizeof(tier_dir), "%s/fuzz-tier-XXXXXX",
				 tmp && *tmp ? tmp : "/tmp");
			CHECK(mkdtemp(tier_dir) != NULL, "mkdtemp %s", tier_dir);
		}
		snprintf(path, sizeof(path), "%s/tier-%u", tier_dir, seq++);
		cfg.backing_file = path;
		ret = tmem_client_new(&cfg, &c->client);
		unlink(path);
		if (ret == -ENOTSUP)	/* built without liburing */
			return ret;
		CHECK(ret == 0, "tier client_new: %d", ret);
		CHECK(tmem_ctx_new(c->client, &c->ctx) == 0, "ctx_new");
		c->budget = cfg.budget_bytes;
		rmdir(tier_dir);	/* empty now; the files stay open */
		tier_dir[0] = 0;
	}
	m->client = c->client;
	m->ctx = c->ctx;
	m->budget = c->budget;
	m->tier = 1;
	do_reset(m);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct model m;
	uint8_t cfg0 = next(&in), cfg1 = next(&in);
	int steps;

	memset(&m, 0, sizeof(m));
	if (!(cfg0 & 8) || tier_client(&m, cfg0, cfg1)) {
		struct tmem_client_config cfg = make_config(cfg0 & ~8, cfg1);

		CHECK(tmem_client_new(&cfg, &m.client) == 0, "client_new");
		CHECK(tmem_ctx_new(m.client, &m.ctx) == 0, "ctx_new");
		m.budget = cfg.budget_bytes;
	}
	for (steps = 0; in.n && steps < MAX_STEPS; steps++)
		step(&m, &in);
	final_check(&m);
	if (m.tier) {
		if (m.io_error)
			tmem_client_inject_io_error(m.client, 0, 0);
		return 0;	/* kept for the next input */
	}
	tmem_ctx_free(m.ctx);
	tmem_client_free(m.client);
	return 0;
}
