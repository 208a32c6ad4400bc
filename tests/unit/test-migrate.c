/* SPDX-License-Identifier: MIT */
/*
 * Migration of a client's pages (tmem_migrate.h): a stream from one
 * client to another in the same process, block by block.  The round
 * trip of every kind of page, pool ids, types and states; keys changed,
 * invalidated, pools destroyed and reopened between blocks and by a
 * thread while the save runs; the disk tier's pages; a destination too
 * small; a cancelled save; and the stream refused when truncated,
 * corrupted, out of sequence, of another version or short of pages.
 */
#include <endian.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/types.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "tmem-test.h"
#include "migrate_i.h"

#define MiB		(1ull << 20)
#define BLOCK		(256u << 10)
#define NKEYS		3000

static char dir[PATH_MAX / 2];
static bool have_tier;
static unsigned int file_seq;

/* What a key should hold: 0 none, else 1 + kind, with its seed. */
struct model {
	uint8_t held[NKEYS];
	uint64_t seed[NKEYS];
};

static uint64_t key_obj(uint32_t k)
{
	return k / 200;		/* 200 indices per object: dense chunks */
}

static uint32_t key_idx(uint32_t k)
{
	return k % 200 + (k % 7 == 0 ? 1000 : 0);
}

static void model_store(struct tclient *t, struct model *m, uint32_t pool,
			uint32_t k, uint64_t seed)
{
	enum page_kind kind = kind_for(seed);
	int ret = store_gen(t, pool, key_obj(k), key_idx(k), kind, seed);

	if (ret == 0) {
		m->held[k] = 1 + kind;
		m->seed[k] = seed;
	} else {
		assert_int_equal(ret, -ENOSPC);
		m->held[k] = 0;
	}
}

static void model_check(struct tclient *t, const struct model *m,
			uint32_t pool)
{
	for (uint32_t k = 0; k < NKEYS; k++) {
		if (m->held[k])
			load_expect(t, pool, key_obj(k), key_idx(k),
				    m->held[k] - 1, m->seed[k]);
		else
			load_expect_miss(t, pool, key_obj(k), key_idx(k));
	}
}

static void open_client(struct tclient *t, uint64_t budget)
{
	struct tmem_client_config cfg = test_config(budget);

	tclient_open(t, &cfg);
}

/* Every block the save has now, applied at once; their count. */
static unsigned int pump(struct tmem_save *sv, struct tmem_load *ld,
			 uint8_t *buf)
{
	char why[256];
	unsigned int n = 0;
	ssize_t len;
	int ret;

	while ((len = tmem_save_block(sv, buf, BLOCK)) > 0) {
		ret = tmem_load_block(ld, buf, len, why, sizeof(why));
		if (ret != 0)
			fail_msg("block %u: %d: %s", n, ret, why);
		n++;
	}
	assert_int_equal(len, 0);
	return n;
}

static void finish(struct tmem_save *sv, struct tmem_load *ld, uint8_t *buf)
{
	char why[256];
	ssize_t len;
	int ret;

	pump(sv, ld, buf);
	assert_int_equal(tmem_save_pending(sv), 0);
	len = tmem_save_end(sv, buf, BLOCK);
	assert_true(len > 0);
	ret = tmem_load_block(ld, buf, len, why, sizeof(why));
	if (ret != 1)
		fail_msg("end: %d: %s", ret, why);
}

static void assert_same_stats(struct tmem_client *a, struct tmem_client *b)
{
	struct tmem_stats sa = tstats(a), sb = tstats(b);

	assert_int_equal(sa.pages, sb.pages);
	assert_int_equal(sa.compressed_bytes, sb.compressed_bytes);
	assert_int_equal(sa.same_filled_pages, sb.same_filled_pages);
	assert_int_equal(sa.raw_pages, sb.raw_pages);
	assert_int_equal(sa.pools, sb.pools);
}

/*
 * Every kind of page, ids and types of pools (one destroyed, one
 * invalidated, one ephemeral); sent as stored: the stream's page bytes
 * are the stored bytes, nothing compressed again.
 */
static void test_round_trip(void **state)
{
	struct tclient src, dst;
	struct tmem_save *sv;
	struct tmem_load *ld;
	struct tmem_migrate_stats ms;
	struct model m = { 0 }, e = { 0 };
	uint8_t *buf = malloc(BLOCK);
	uint32_t p0, p1, p2, p3, id;
	struct tmem_stats st;

	(void)state;
	assert_non_null(buf);
	open_client(&src, 64 * MiB);
	open_client(&dst, 64 * MiB);
	p0 = tpool_new(&src, TMEM_POOL_PERSISTENT);
	p1 = tpool_new(&src, TMEM_POOL_PERSISTENT);
	p2 = tpool_new(&src, TMEM_POOL_EPHEMERAL);
	p3 = tpool_new(&src, TMEM_POOL_PERSISTENT);
	for (uint32_t k = 0; k < NKEYS; k++) {
		model_store(&src, &m, p0, k, k * 7 + 1);
		model_store(&src, &e, p2, k, k * 13 + 5);
	}
	assert_int_equal(store_gen(&src, p1, 1, 1, PK_TEXT, 1), 0);
	assert_int_equal(tmem_pool_destroy(src.client, p1), 0);
	assert_int_equal(store_gen(&src, p3, 1, 1, PK_TEXT, 1), 0);
	assert_int_equal(tmem_invalidate_pool(src.client, p3), 0);
	/* Invalidated keys and an object. */
	for (uint32_t k = 0; k < NKEYS; k += 11) {
		assert_true(tmem_invalidate_page(src.ctx, p0, key_obj(k),
						 key_idx(k)) >= 0);
		m.held[k] = 0;
	}
	assert_true(tmem_invalidate_object(src.ctx, p0, 3) > 0);
	for (uint32_t k = 0; k < NKEYS; k++)
		if (key_obj(k) == 3)
			m.held[k] = 0;

	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_save_start(src.client, &(struct tmem_save *){0}),
			 -EBUSY);
	st = tstats(src.client);
	assert_true(tmem_save_pending(sv) >= st.compressed_bytes);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	finish(sv, ld, buf);
	tmem_save_stats(sv, &ms);
	/* Once each, as stored: page bytes are the stored bytes. */
	assert_int_equal(ms.pages, st.pages);
	assert_true(ms.page_bytes >= st.compressed_bytes &&
		    ms.page_bytes <= st.compressed_bytes +
				     8 * st.same_filled_pages);
	assert_true(ms.bytes <= st.compressed_bytes + 5 * st.pages +
		    (st.pages / 64 + 64) * CHUNK_REC + ms.blocks * 1024);
	assert_true(ms.sweeps >= 1);
	tmem_save_finish(sv);
	tmem_load_finish(ld);

	assert_same_stats(src.client, dst.client);
	model_check(&dst, &m, p0);
	/* Ephemeral pages may go, but never come back wrong. */
	for (uint32_t k = 0; k < NKEYS; k++) {
		unsigned char page[PAGE];

		if (tmem_load(dst.ctx, p2, key_obj(k), key_idx(k), page) == 0)
			assert_page_is(page, e.held[k] - 1, e.seed[k]);
	}
	/* The destroyed id is free again, the invalidated one closed. */
	assert_int_equal(store_gen(&dst, p1, 1, 1, PK_TEXT, 1), -EBADF);
	assert_int_equal(store_gen(&dst, p3, 1, 1, PK_TEXT, 1), -ESHUTDOWN);
	assert_int_equal(tmem_pool_new(dst.client, TMEM_POOL_PERSISTENT, &id),
			 0);
	assert_int_equal(id, p1);
	/* The source is as it was. */
	model_check(&src, &m, p0);
	tclient_close(&src);
	tclient_close(&dst);
	free(buf);
}

/*
 * Keys changed after they were sent go again; invalidated ones, whole
 * objects and a pool destroyed and reopened are dropped: the
 * destination ends as the source is.
 */
static void test_dirty(void **state)
{
	struct tclient src, dst;
	struct tmem_save *sv;
	struct tmem_load *ld;
	struct model m = { 0 }, n = { 0 };
	uint8_t *buf = malloc(BLOCK);
	struct tmem_migrate_stats ms;
	uint32_t p0, p1;
	char why[256];
	ssize_t len;

	(void)state;
	assert_non_null(buf);
	open_client(&src, 64 * MiB);
	open_client(&dst, 64 * MiB);
	p0 = tpool_new(&src, TMEM_POOL_PERSISTENT);
	p1 = tpool_new(&src, TMEM_POOL_PERSISTENT);
	for (uint32_t k = 0; k < NKEYS; k++) {
		model_store(&src, &m, p0, k, k + 1);
		model_store(&src, &n, p1, k, k + 2);
	}
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	/* Two blocks: part of the keys are sent. */
	for (int i = 0; i < 2; i++) {
		len = tmem_save_block(sv, buf, 64 << 10);
		assert_true(len > 0);
		assert_int_equal(tmem_load_block(ld, buf, len, why,
						 sizeof(why)), 0);
	}
	for (uint32_t k = 0; k < NKEYS; k += 3)
		model_store(&src, &m, p0, k, k + 100000);
	for (uint32_t k = 1; k < NKEYS; k += 5) {
		tmem_invalidate_page(src.ctx, p0, key_obj(k), key_idx(k));
		m.held[k] = 0;
	}
	/* Every key of object 0 (chunks freed: tombstones). */
	tmem_invalidate_object(src.ctx, p0, 0);
	for (uint32_t k = 0; k < NKEYS; k++)
		if (key_obj(k) == 0)
			m.held[k] = 0;
	pump(sv, ld, buf);
	/* An object sent whole, then freed whole: only tombstones tell. */
	assert_true(tmem_invalidate_object(src.ctx, p0, 1) > 0);
	for (uint32_t k = 0; k < NKEYS; k++)
		if (key_obj(k) == 1)
			m.held[k] = 0;
	/* A pool destroyed and its id opened again, then a few stores. */
	assert_int_equal(tmem_pool_destroy(src.client, p1), 0);
	assert_int_equal(tpool_new(&src, TMEM_POOL_PERSISTENT), p1);
	memset(&n, 0, sizeof(n));
	for (uint32_t k = 0; k < NKEYS; k += 9)
		model_store(&src, &n, p1, k, k + 7);
	/* And object 0 again, after its tombstones. */
	for (uint32_t k = 0; k < 200; k += 2)
		model_store(&src, &m, p0, k, k + 555);
	finish(sv, ld, buf);
	tmem_save_stats(sv, &ms);
	assert_true(ms.drops > 0);
	assert_true(ms.sweeps >= 2);
	tmem_save_finish(sv);
	tmem_load_finish(ld);
	assert_same_stats(src.client, dst.client);
	model_check(&dst, &m, p0);
	model_check(&dst, &n, p1);
	tclient_close(&src);
	tclient_close(&dst);
	free(buf);
}

struct churn {
	struct tclient t;
	struct model *m;
	uint32_t pool;
	volatile bool stop;
	unsigned long ops;
};

/* Another thread, as a guest's queue: stores and invalidations. */
static void *churn_run(void *arg)
{
	struct churn *ch = arg;
	uint64_t x = 12345;

	while (!ch->stop) {
		uint32_t k = splitmix64(&x) % NKEYS;

		if (splitmix64(&x) % 4) {
			model_store(&ch->t, ch->m, ch->pool, k,
				    splitmix64(&x) | 1);
		} else {
			tmem_invalidate_page(ch->t.ctx, ch->pool, key_obj(k),
					     key_idx(k));
			ch->m->held[k] = 0;
		}
		ch->ops++;
	}
	return NULL;
}

/* Page operations of another thread while blocks are written. */
static void test_concurrent(void **state)
{
	struct tclient src, dst;
	struct tmem_save *sv;
	struct tmem_load *ld;
	struct model m = { 0 };
	uint8_t *buf = malloc(BLOCK);
	struct churn ch = { .m = &m };
	pthread_t th;
	char why[256];
	ssize_t len;
	unsigned int blocks = 0;

	(void)state;
	assert_non_null(buf);
	open_client(&src, 64 * MiB);
	open_client(&dst, 64 * MiB);
	ch.t.client = src.client;
	assert_int_equal(tmem_ctx_new(src.client, &ch.t.ctx), 0);
	ch.pool = tpool_new(&src, TMEM_POOL_PERSISTENT);
	for (uint32_t k = 0; k < NKEYS; k++)
		model_store(&src, &m, ch.pool, k, k + 1);
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	assert_int_equal(pthread_create(&th, NULL, churn_run, &ch), 0);
	/* Small blocks, many sweeps, while the other thread writes. */
	for (int i = 0; i < 400; i++) {
		len = tmem_save_block(sv, buf, 64 << 10);
		assert_true(len >= 0);
		if (len) {
			assert_int_equal(tmem_load_block(ld, buf, len, why,
							 sizeof(why)), 0);
			blocks++;
		}
		usleep(200);
	}
	ch.stop = true;
	pthread_join(th, NULL);
	finish(sv, ld, buf);
	print_message("%u blocks while %lu operations ran\n", blocks, ch.ops);
	assert_true(ch.ops > 1000);
	tmem_save_finish(sv);
	tmem_load_finish(ld);
	assert_same_stats(src.client, dst.client);
	model_check(&dst, &m, ch.pool);
	tmem_ctx_free(ch.t.ctx);
	tclient_close(&src);
	tclient_close(&dst);
	free(buf);
}

/* Pages on the disk tier are read back and sent as stored. */
static void test_tier(void **state)
{
	struct tmem_client_config cfg = test_config(2 * MiB);
	struct tclient src, dst;
	struct tmem_save *sv;
	struct tmem_load *ld;
	struct tmem_migrate_stats ms;
	struct model m = { 0 };
	uint8_t *buf = malloc(BLOCK);
	char path[PATH_MAX], why[256];
	uint64_t on_disk;
	uint32_t pool;
	int ret;

	(void)state;
	if (!have_tier)
		skip();
	assert_non_null(buf);
	snprintf(path, sizeof(path), "%s/tier-%u", dir, file_seq++);
	cfg.backing_file = path;
	cfg.backing_size = 64 * MiB;
	cfg.segment_size = TMEM_MIN_SEGMENT_SIZE;
	cfg.room_wait_ms = 10000;
	ret = tmem_client_new2(&cfg, sizeof(cfg), &src.client, why,
			       sizeof(why));
	if (ret)
		fail_msg("tmem_client_new2: %d: %s", ret, why);
	assert_int_equal(tmem_ctx_new(src.client, &src.ctx), 0);
	open_client(&dst, 64 * MiB);
	pool = tpool_new(&src, TMEM_POOL_PERSISTENT);
	for (uint32_t k = 0; k < NKEYS; k++) {
		unsigned char page[PAGE];

		fill_page(page, PK_TEXT, k + 9);
		assert_int_equal(tmem_store(src.ctx, pool, key_obj(k),
					    key_idx(k), page), 0);
		m.held[k] = 1 + PK_TEXT;
		m.seed[k] = k + 9;
	}
	on_disk = tstats(src.client).disk_pages;
	assert_true(on_disk > NKEYS / 2);
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	finish(sv, ld, buf);
	tmem_save_stats(sv, &ms);
	/*
	 * Every page on the disk at the start was read back (pages are not
	 * promoted); the writer may write back more while the save runs,
	 * which then went from memory or from the disk.
	 */
	assert_true(ms.disk_reads >= on_disk);
	tmem_save_finish(sv);
	tmem_load_finish(ld);
	assert_same_stats(src.client, dst.client);
	assert_int_equal(tstats(dst.client).disk_pages, 0);
	model_check(&dst, &m, pool);
	model_check(&src, &m, pool);
	tclient_close(&src);
	tclient_close(&dst);
	unlink(path);
	free(buf);
}

/*
 * A source with NKEYS pages and one of its blocks: len, and the block
 * in *bufp (BLOCK bytes).  With @all, the whole stream into @blocks.
 */
struct stream {
	uint8_t *b[128];
	ssize_t len[128];
	unsigned int n;
	struct tclient src;
	uint32_t pool;
};

static void stream_make(struct stream *s, size_t block)
{
	struct tmem_save *sv;
	struct model m = { 0 };
	ssize_t len;

	memset(s, 0, sizeof(*s));
	open_client(&s->src, 64 * MiB);
	s->pool = tpool_new(&s->src, TMEM_POOL_PERSISTENT);
	for (uint32_t k = 0; k < NKEYS; k++)
		model_store(&s->src, &m, s->pool, k, k + 3);
	assert_int_equal(tmem_save_start(s->src.client, &sv), 0);
	do {
		assert_true(s->n < 128);
		s->b[s->n] = malloc(block);
		assert_non_null(s->b[s->n]);
		len = tmem_save_block(sv, s->b[s->n], block);
		if (!len)
			len = tmem_save_end(sv, s->b[s->n], block);
		assert_true(len > 0);
		s->len[s->n] = len;
	} while (!(le16toh(*(uint16_t *)(s->b[s->n++] + 6)) & MIG_END));
	tmem_save_finish(sv);
	assert_true(s->n >= 3);
}

static void stream_free(struct stream *s)
{
	for (unsigned int i = 0; i < s->n; i++)
		free(s->b[i]);
	tclient_close(&s->src);
}

/* Apply the stream's blocks but with @edit; the first failure. */
static int stream_apply(struct stream *s, struct tclient *dst, char *why,
			void (*edit)(struct stream *s, unsigned int i,
				     uint8_t *b, ssize_t *len))
{
	struct tmem_load *ld;
	int ret = 0;

	assert_int_equal(tmem_load_start(dst->client, &ld), 0);
	for (unsigned int i = 0; i < s->n && ret == 0; i++) {
		ssize_t len = s->len[i];
		uint8_t *b = malloc(BLOCK);

		assert_non_null(b);
		memcpy(b, s->b[i], len);
		if (edit)
			edit(s, i, b, &len);
		ret = len < 0 ? 0 : tmem_load_block(ld, b, len, why, 256);
		free(b);
	}
	tmem_load_finish(ld);
	return ret;
}

static void edit_truncate(struct stream *s, unsigned int i, uint8_t *b,
			  ssize_t *len)
{
	(void)s; (void)b;
	if (i == 1)
		*len -= 100;
}

static void edit_flip(struct stream *s, unsigned int i, uint8_t *b,
		      ssize_t *len)
{
	(void)s;
	if (i == 1)
		b[*len / 2] ^= 0x10;
}

static void edit_version(struct stream *s, unsigned int i, uint8_t *b,
			 ssize_t *len)
{
	(void)s; (void)len;
	if (i == 0)
		b[4] = TMEM_MIGRATE_VERSION + 1;
}

static void edit_magic(struct stream *s, unsigned int i, uint8_t *b,
		       ssize_t *len)
{
	(void)s; (void)len;
	if (i == 0)
		b[0] ^= 1;
}

static void edit_skip(struct stream *s, unsigned int i, uint8_t *b,
		      ssize_t *len)
{
	(void)s; (void)b;
	if (i == 1)
		*len = -1;	/* lost */
}

/* The last block's end record says one page more, checksum redone. */
static void edit_end(struct stream *s, unsigned int i, uint8_t *b,
		     ssize_t *len)
{
	uint64_t pages, check;

	if (i != s->n - 1)
		return;
	/* The end record is last: type, pages, bytes, ephemeral. */
	memcpy(&pages, b + *len - 24, 8);
	pages = htole64(le64toh(pages) + 1);
	memcpy(b + *len - 24, &pages, 8);
	check = htole64(XXH3_64bits(b + MIG_HDR, *len - MIG_HDR));
	memcpy(b + 16, &check, 8);
}

static void test_stream_refused(void **state)
{
	static const struct {
		void (*edit)(struct stream *, unsigned int, uint8_t *,
			     ssize_t *);
		int err;
		const char *why;
	} cases[] = {
		{ edit_truncate, -EBADMSG, "says it has" },
		{ edit_flip, -EBADMSG, "checksum" },
		{ edit_version, -EPROTO, "version" },
		{ edit_magic, -EPROTO, "not a virtio-tmem migration stream" },
		{ edit_skip, -EBADMSG, "lost or reordered" },
		{ edit_end, -EBADMSG, "arrived" },
	};
	struct stream s;
	struct tclient dst;
	char why[256];

	(void)state;
	stream_make(&s, BLOCK);
	open_client(&dst, 64 * MiB);
	assert_int_equal(stream_apply(&s, &dst, why, NULL), 1);
	assert_same_stats(s.src.client, dst.client);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int ret = stream_apply(&s, &dst, why, cases[i].edit);

		print_message("case %zu: %d: %s\n", i, ret, why);
		assert_int_equal(ret, cases[i].err);
		assert_non_null(strstr(why, cases[i].why));
	}
	/* The header alone, and a block shorter than that. */
	assert_int_equal(tmem_load_block_size(s.b[0]), s.len[0]);
	stream_free(&s);
	tclient_close(&dst);
}

/*
 * A destination whose budget cannot hold the pages: -ENOSPC with the
 * budget in the reason; the source keeps every page.
 */
static void test_too_small(void **state)
{
	struct stream s;
	struct tclient dst;
	struct model m = { 0 };
	char why[256];

	(void)state;
	stream_make(&s, BLOCK);
	open_client(&dst, 1 * MiB);
	assert_int_equal(stream_apply(&s, &dst, why, NULL), -ENOSPC);
	print_message("%s\n", why);
	assert_non_null(strstr(why, "budget"));
	assert_true(tstats(dst.client).host_bytes <= 1 * MiB);
	for (uint32_t k = 0; k < NKEYS; k++) {
		m.held[k] = 1 + kind_for(k + 3);
		m.seed[k] = k + 3;
	}
	model_check(&s.src, &m, s.pool);
	stream_free(&s);
	tclient_close(&dst);
}

/* A pool id beyond the destination's max_pools: -ERANGE. */
static void test_max_pools(void **state)
{
	struct tmem_client_config cfg = test_config(64 * MiB);
	struct tclient src, dst;
	struct tmem_save *sv;
	struct tmem_load *ld;
	uint8_t *buf = malloc(BLOCK);
	char why[256];
	ssize_t len;

	(void)state;
	cfg.max_pools = 8;
	open_client(&src, 64 * MiB);
	tclient_open(&dst, &cfg);
	for (int i = 0; i < 10; i++)
		tpool_new(&src, TMEM_POOL_PERSISTENT);
	assert_int_equal(store_gen(&src, 9, 1, 1, PK_TEXT, 1), 0);
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	len = tmem_save_block(sv, buf, BLOCK);
	assert_true(len > 0);
	assert_int_equal(tmem_load_block(ld, buf, len, why, sizeof(why)),
			 -ERANGE);
	assert_non_null(strstr(why, "max_pools"));
	/* Failed: nothing more is taken. */
	assert_int_equal(tmem_load_block(ld, buf, len, why, sizeof(why)),
			 -EINVAL);
	tmem_save_finish(sv);
	tmem_load_finish(ld);
	tclient_close(&src);
	tclient_close(&dst);
	free(buf);
}

/*
 * A save given up half way changes nothing on the source; the next one
 * starts over and carries everything.  tmem_save_end() wants every key
 * sent first.
 */
static void test_cancel(void **state)
{
	struct tclient src, dst;
	struct tmem_save *sv;
	struct tmem_load *ld;
	struct model m = { 0 };
	uint8_t *buf = malloc(BLOCK);
	uint32_t pool;

	(void)state;
	open_client(&src, 64 * MiB);
	open_client(&dst, 64 * MiB);
	pool = tpool_new(&src, TMEM_POOL_PERSISTENT);
	for (uint32_t k = 0; k < NKEYS; k++)
		model_store(&src, &m, pool, k, k + 5);
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_true(tmem_save_block(sv, buf, 64 << 10) > 0);
	assert_int_equal(tmem_save_end(sv, buf, BLOCK), -EAGAIN);
	assert_int_equal(tmem_save_block(sv, buf, 1000), -EINVAL);
	tmem_save_finish(sv);
	model_check(&src, &m, pool);
	for (uint32_t k = 0; k < NKEYS; k += 2)
		model_store(&src, &m, pool, k, k + 50);
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	finish(sv, ld, buf);
	tmem_save_finish(sv);
	tmem_load_finish(ld);
	assert_same_stats(src.client, dst.client);
	model_check(&dst, &m, pool);
	tclient_close(&src);
	tclient_close(&dst);
	free(buf);
}

/*
 * A tombstone that cannot be allocated (the host out of memory) would
 * leave stale keys on the destination: the save fails instead.
 */
static void test_tomb_lost(void **state)
{
	struct tclient src, dst;
	struct tmem_save *sv;
	struct tmem_load *ld;
	struct model m = { 0 };
	uint8_t *buf = malloc(BLOCK);
	uint32_t pool;

	(void)state;
	open_client(&src, 64 * MiB);
	open_client(&dst, 64 * MiB);
	pool = tpool_new(&src, TMEM_POOL_PERSISTENT);
	for (uint32_t k = 0; k < NKEYS; k++)
		model_store(&src, &m, pool, k, k + 5);
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	pump(sv, ld, buf);
	/* The object's chunks go; the first tombstone's allocation fails. */
	tmem_fault_inject(0);
	assert_true(tmem_invalidate_object(src.ctx, pool, 1) > 0);
	tmem_fault_inject(-1);
	assert_int_equal(tmem_save_block(sv, buf, BLOCK), -ENOMEM);
	assert_int_equal(tmem_save_block(sv, buf, BLOCK), -ENOMEM);
	tmem_save_finish(sv);
	tmem_load_finish(ld);
	/* The source keeps what it had, and a new save works. */
	for (uint32_t k = 0; k < NKEYS; k++)
		if (key_obj(k) == 1)
			m.held[k] = 0;
	model_check(&src, &m, pool);
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	finish(sv, ld, buf);
	tmem_save_finish(sv);
	tmem_load_finish(ld);
	model_check(&dst, &m, pool);
	tclient_close(&src);
	tclient_close(&dst);
	free(buf);
}

/* A device reset on the source while a save runs: all of it dropped. */
static void test_reset_during_save(void **state)
{
	struct tclient src, dst;
	struct tmem_save *sv;
	struct tmem_load *ld;
	struct model m = { 0 };
	uint8_t *buf = malloc(BLOCK);
	uint32_t pool;

	(void)state;
	open_client(&src, 64 * MiB);
	open_client(&dst, 64 * MiB);
	pool = tpool_new(&src, TMEM_POOL_PERSISTENT);
	for (uint32_t k = 0; k < NKEYS; k++)
		model_store(&src, &m, pool, k, k + 5);
	assert_int_equal(tmem_save_start(src.client, &sv), 0);
	assert_int_equal(tmem_load_start(dst.client, &ld), 0);
	pump(sv, ld, buf);
	assert_int_equal(tmem_client_reset(src.client), 0);
	memset(&m, 0, sizeof(m));
	assert_int_equal(tpool_new(&src, TMEM_POOL_PERSISTENT), pool);
	for (uint32_t k = 0; k < NKEYS; k += 4)
		model_store(&src, &m, pool, k, k + 77);
	finish(sv, ld, buf);
	tmem_save_finish(sv);
	tmem_load_finish(ld);
	assert_same_stats(src.client, dst.client);
	model_check(&dst, &m, pool);
	tclient_close(&src);
	tclient_close(&dst);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_dirty),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_tier),
		cmocka_unit_test(test_stream_refused),
		cmocka_unit_test(test_too_small),
		cmocka_unit_test(test_max_pools),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_reset_during_save),
		cmocka_unit_test(test_tomb_lost),
	};
	const char *tmp = getenv("TMPDIR");
	int ret;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/test-migrate-XXXXXX",
			     tmp) >= sizeof(dir) || !mkdtemp(dir)) {
		fprintf(stderr, "cannot make a directory under %s\n", tmp);
		return 1;
	}
	ret = tmem_test_probe_tier(dir);
	have_tier = ret == 0;
	if (ret && (ret != -ENOTSUP || TMEM_TEST_TIER_EXPECTED)) {
		fprintf(stderr, "disk tier probe: %d (%s)\n", ret,
			tmem_strerror(ret));
		rmdir(dir);
		return 1;
	}
	if (getenv("TMEM_TEST_FILTER"))
		cmocka_set_test_filter(getenv("TMEM_TEST_FILTER"));
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return ret;
}
