/* SPDX-License-Identifier: MIT */
/*
 * The disk tier (tmem.h, struct tmem_client_config.backing_file): pages of
 * persistent pools are written back to a backing file when the budget
 * fills, read back on load, and never lost: not over budget, not when the
 * tier is full, not on a write error (the tier fails, the pages stay in
 * memory), not on a read error (the load says -EIO, the page stays).
 * Ephemeral pages never go to disk.  Invalidation frees disk space, the
 * cleaner compacts mostly-empty segments, reset empties the tier.
 *
 * Backing files live in a mkdtemp() directory under $TMPDIR (or /tmp),
 * removed at the end.  Without liburing (libtmem then answers -ENOTSUP to
 * a backing file) the binary exits 77 (SKIP), unless meson found liburing
 * (TMEM_TEST_TIER_EXPECTED=1): then -ENOTSUP is a failure.
 *
 * Which pages are on disk is not visible through the API; a test that
 * needs one injects TMEM_IO_READ errors and looks for a load that fails.
 *
 * TMEM_TEST_FILTER='*cleaner*' runs only the matching tests.  A test that
 * runs for a minute is taken as hung: the statistics are printed and the
 * binary exits 1.
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/loop.h>

#include "wire-test.h"
#include "tier_i.h"		/* tmem_tier_pin(), tmem_tier_read() */
#include "tmem_i.h"		/* handles and disk offsets of keys */

#ifndef TMEM_TEST_TIER_EXPECTED
#define TMEM_TEST_TIER_EXPECTED 1
#endif

#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define SEG		(64 * KiB)	/* segment size of most tests */
#define WAIT_SECONDS	5.0		/* for the background thread */

static char tier_dir[PATH_MAX / 2];
/* For the watchdog: the tier client of the running test, if any. */
static struct tmem_client *_Atomic watched_client;	/* leaves room for file names */
static unsigned int tier_seq;

/* ---- helpers ---------------------------------------------------------- */

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A fresh path in the test directory (the file does not exist). */
static void tier_file(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s-%u", tier_dir, name, tier_seq++);
}

static void make_file(const char *path, off_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static bool file_exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

static struct tmem_client_config tier_cfg(uint64_t budget, const char *path,
					  uint64_t size, uint32_t seg)
{
	struct tmem_client_config cfg = test_config(budget);

	cfg.backing_file = path;
	cfg.backing_size = size;
	cfg.segment_size = seg;
	return cfg;
}

struct tier {
	struct tclient t;
	char path[PATH_MAX];
	uint64_t budget, disk;
	uint32_t seg;
};

static void tier_open(struct tier *tr, const char *name, uint64_t budget,
		      uint64_t disk, uint32_t seg)
{
	struct tmem_client_config cfg;
	int ret;

	memset(tr, 0, sizeof(*tr));
	tier_file(tr->path, name);
	tr->budget = budget;
	tr->disk = disk;
	tr->seg = seg;
	cfg = tier_cfg(budget, tr->path, disk, seg);
	ret = tmem_client_new(&cfg, &tr->t.client);
	if (ret)
		fail_msg("tmem_client_new(budget %llu, tier %llu, segment %u): %d (%s)",
			 (unsigned long long)budget, (unsigned long long)disk,
			 seg, ret, tmem_strerror(ret));
	assert_int_equal(tmem_ctx_new(tr->t.client, &tr->t.ctx), 0);
	atomic_store(&watched_client, tr->t.client);
}

static void tier_close(struct tier *tr)
{
	atomic_store(&watched_client, NULL);
	tclient_close(&tr->t);
	unlink(tr->path);
}

static void print_stats(const char *what, const struct tmem_stats *st)
{
	print_message("%s: pages %llu host_bytes %llu/%llu compressed %llu "
		      "disk: size %llu seg %llu segments %llu pages %llu bytes %llu "
		      "written_back %llu reads %llu/%llu B writes %llu/%llu B "
		      "errors %llu cleaned %llu failed %llu; evictions %llu "
		      "failed_stores %llu\n", what,
		      (unsigned long long)st->pages,
		      (unsigned long long)st->host_bytes,
		      (unsigned long long)st->budget_bytes,
		      (unsigned long long)st->compressed_bytes,
		      (unsigned long long)st->disk_size,
		      (unsigned long long)st->disk_segment_size,
		      (unsigned long long)st->disk_segments,
		      (unsigned long long)st->disk_pages,
		      (unsigned long long)st->disk_bytes,
		      (unsigned long long)st->written_back,
		      (unsigned long long)st->disk_reads,
		      (unsigned long long)st->disk_read_bytes,
		      (unsigned long long)st->disk_writes,
		      (unsigned long long)st->disk_write_bytes,
		      (unsigned long long)st->disk_errors,
		      (unsigned long long)st->cleaned_segments,
		      (unsigned long long)st->disk_failed,
		      (unsigned long long)st->evictions,
		      (unsigned long long)st->failed_stores);
}

/*
 * Poll the statistics (into @st) until @cond holds; fail after
 * WAIT_SECONDS.  For state the background thread changes on its own.
 */
#define WAIT_STATS(client, st, cond, what)				\
	do {								\
		double t0_ = now_sec();					\
									\
		for (;;) {						\
			(st) = tstats(client);				\
			if (cond)					\
				break;					\
			if (now_sec() - t0_ > WAIT_SECONDS) {		\
				print_stats("timed out", &(st));	\
				fail_msg("no %s after %.0f s", what,	\
					 WAIT_SECONDS);			\
			}						\
			usleep(1000);					\
		}							\
	} while (0)

/*
 * Statistics once the background thread has stopped changing them (two
 * snapshots 20 ms apart agree), so that fields can be compared with each
 * other: tmem_client_stats() is not one atomic snapshot.
 */
static struct tmem_stats settled_stats(struct tmem_client *c)
{
	struct tmem_stats a = tstats(c), b;
	double t0 = now_sec();

	for (;;) {
		usleep(20000);
		b = tstats(c);
		if (memcmp(&a, &b, sizeof(a)) == 0)
			return b;
		if (now_sec() - t0 > WAIT_SECONDS) {
			print_stats("still changing", &b);
			fail_msg("statistics did not settle in %.0f s",
				 WAIT_SECONDS);
		}
		a = b;
	}
}

/* Cross-field invariants of settled tier statistics. */
static void check_tier_invariants(const struct tmem_stats *st, uint64_t disk,
				  uint32_t seg)
{
	if (st->disk_size != disk / seg * seg ||
	    st->disk_segment_size != seg ||
	    st->disk_pages > st->pages ||
	    st->disk_bytes > st->compressed_bytes ||
	    st->disk_segments * seg > st->disk_size ||
	    st->disk_bytes > st->disk_segments * seg ||
	    (st->disk_pages == 0) != (st->disk_segments == 0) ||
	    st->written_back < st->disk_pages ||
	    st->host_bytes > st->budget_bytes) {
		print_stats("inconsistent", st);
		fail_msg("tier statistics inconsistent (disk %llu, segment %u)",
			 (unsigned long long)disk, seg);
	}
}

static void check_budget(struct tmem_client *c)
{
	struct tmem_stats st = tstats(c);

	if (st.host_bytes > st.budget_bytes)
		fail_msg("host_bytes %llu > budget %llu (disk_pages %llu)",
			 (unsigned long long)st.host_bytes,
			 (unsigned long long)st.budget_bytes,
			 (unsigned long long)st.disk_pages);
}

/*
 * Page contents: words of a 32-word vocabulary with 0-7% short random
 * runs (LZ4: 1.8-2.0x), one page in 32 same-filled (index only, never on
 * disk).  Fully determined by the seed.
 */
#define KEY_OBJ(k)	(1 + ((uint64_t)(k) >> 10))
#define KEY_IDX(k)	((uint32_t)(k) & 1023)
#define TSEED(k, ver)	(((uint64_t)(k) << 16) | (ver))

static void tier_page(void *page, uint64_t seed)
{
	static const char *const words[32] = {
		"the ", "swap ", "page ", "host ", "guest ", "memory ",
		"store ", "load ", "pool ", "object ", "index ", "kernel ",
		"virtio ", "queue ", "budget ", "compressed ", "disk ", "tier ",
		"segment ", "cleaner ", "write ", "back ", "cold ", "ring ",
		"file ", "block ", "sector ", "slab ", "arena ", "shard ",
		"chunk ", "handle ",
	};
	unsigned char *p = page;
	uint64_t s = seed * 0x2545f4914f6cdd1dULL + 0x7a;
	uint64_t r = splitmix64(&s);
	unsigned int pct = (unsigned int)(r >> 8) % 8;
	size_t i = 0, n, j;

	if (r % 32 == 0) {
		fill_page(page, PK_WORD, seed);
		return;
	}
	while (i < PAGE) {
		r = splitmix64(&s);
		if (r % 100 < pct) {
			n = 4 + (r >> 8) % 8;
			for (j = 0; j < n && i < PAGE; j++)
				p[i++] = (unsigned char)splitmix64(&s);
		} else {
			const char *w = words[(r >> 8) % 32];

			n = strlen(w);
			if (n > PAGE - i)
				n = PAGE - i;
			memcpy(p + i, w, n);
			i += n;
		}
	}
}

static int tstore(struct tclient *t, uint32_t pool, uint32_t k, uint32_t ver)
{
	unsigned char page[PAGE];

	tier_page(page, TSEED(k, ver));
	return tmem_store(t->ctx, pool, KEY_OBJ(k), KEY_IDX(k), page);
}

static void tstore_ok(struct tclient *t, uint32_t pool, uint32_t k,
		      uint32_t ver)
{
	int ret = tstore(t, pool, k, ver);

	if (ret)
		fail_msg("store pool %u key %u: %d (%s)", pool, k, ret,
			 tmem_strerror(ret));
}

/* Load; when it returns 0 the bytes must be version @ver's. */
static int tload(struct tclient *t, uint32_t pool, uint32_t k, uint32_t ver)
{
	unsigned char page[PAGE], want[PAGE];
	int ret = tmem_load(t->ctx, pool, KEY_OBJ(k), KEY_IDX(k), page);

	if (ret == 0) {
		tier_page(want, TSEED(k, ver));
		if (memcmp(page, want, PAGE) != 0)
			fail_msg("pool %u key %u: loaded bytes are not version %u",
				 pool, k, ver);
	}
	return ret;
}

static void tload_ok(struct tclient *t, uint32_t pool, uint32_t k,
		     uint32_t ver)
{
	int ret = tload(t, pool, k, ver);

	if (ret)
		fail_msg("load pool %u key %u: %d (%s), want 0", pool, k, ret,
			 tmem_strerror(ret));
}

static void tload_miss(struct tclient *t, uint32_t pool, uint32_t k)
{
	unsigned char page[PAGE];
	int ret = tmem_load(t->ctx, pool, KEY_OBJ(k), KEY_IDX(k), page);

	if (ret != -ENOENT)
		fail_msg("load pool %u key %u: %d (%s), want -ENOENT", pool, k,
			 ret, tmem_strerror(ret));
}

/* Store keys [from, to) at version @ver, all must succeed, within budget. */
static void store_range(struct tclient *t, uint32_t pool, uint32_t from,
			uint32_t to, uint32_t ver)
{
	for (uint32_t k = from; k < to; k++) {
		tstore_ok(t, pool, k, ver);
		check_budget(t->client);
	}
}

static void load_range(struct tclient *t, uint32_t pool, uint32_t from,
		       uint32_t to, uint32_t ver)
{
	for (uint32_t k = from; k < to; k++)
		tload_ok(t, pool, k, ver);
}

/*
 * Store new keys from @from on until a store is refused (-ENOSPC), then
 * @extra more; every store returns 0 or -ENOSPC and the budget holds.
 * @held[k] records the acknowledged ones.  Returns the first refused key.
 */
static uint32_t store_until_enospc(struct tclient *t, uint32_t pool,
				   uint32_t from, uint32_t limit,
				   uint32_t extra, unsigned char *held)
{
	uint32_t k, first = UINT32_MAX;
	int ret;

	for (k = from; k < limit; k++) {
		if (first != UINT32_MAX && k >= first + extra)
			break;
		ret = tstore(t, pool, k, 1);
		check_budget(t->client);
		if (ret != 0 && ret != -ENOSPC)
			fail_msg("store key %u: %d (%s), want 0 or -ENOSPC", k,
				 ret, tmem_strerror(ret));
		held[k] = ret == 0;
		if (ret == -ENOSPC && first == UINT32_MAX)
			first = k;
	}
	if (first == UINT32_MAX) {
		struct tmem_stats st = tstats(t->client);

		print_stats("never refused", &st);
		fail_msg("stores %u..%u never returned -ENOSPC", from, limit);
	}
	return first;
}

/* Every acknowledged key loads back, every refused one misses. */
static void check_held(struct tclient *t, uint32_t pool, uint32_t n,
		       const unsigned char *held)
{
	for (uint32_t k = 0; k < n; k++) {
		if (held[k])
			tload_ok(t, pool, k, 1);
		else
			tload_miss(t, pool, k);
	}
}

/* One LOAD through the wire; returns the response status. */
static uint8_t wire_load(struct tmem_ctx *ctx, uint32_t pool, uint32_t k,
			 unsigned char *page)
{
	struct virtio_tmem_req req = {
		.opcode = VIRTIO_TMEM_OP_LOAD,
		.pool_id = htole32(pool),
		.object_id = htole64(KEY_OBJ(k)),
		.index = htole32(KEY_IDX(k)),
	};
	struct virtio_tmem_resp resp;
	struct iovec out = { &req, sizeof(req) };
	struct iovec in[2] = { { page, PAGE }, { &resp, sizeof(resp) } };

	memset(&resp, 0xee, sizeof(resp));
	assert_int_equal(tmem_handle_request(ctx, &out, 1, in, 2),
			 PAGE + sizeof(resp));
	return resp.status;
}

/* One STORE through the wire; returns the response status. */
static uint8_t wire_store(struct tmem_ctx *ctx, uint32_t pool, uint32_t k,
			  uint32_t ver)
{
	struct virtio_tmem_req req = {
		.opcode = VIRTIO_TMEM_OP_STORE,
		.pool_id = htole32(pool),
		.object_id = htole64(KEY_OBJ(k)),
		.index = htole32(KEY_IDX(k)),
	};
	unsigned char page[PAGE];
	struct virtio_tmem_resp resp;
	struct iovec out[2] = { { &req, sizeof(req) }, { page, PAGE } };
	struct iovec in = { &resp, sizeof(resp) };

	tier_page(page, TSEED(k, ver));
	memset(&resp, 0xee, sizeof(resp));
	assert_int_equal(tmem_handle_request(ctx, out, 2, &in, 1),
			 sizeof(resp));
	return resp.status;
}

/* ---- no tier ---------------------------------------------------------- */

static void test_no_tier(void **state)
{
	struct tmem_client_config cfg = test_config(4 * MiB);
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool;

	(void)state;
	tclient_open(&t, &cfg);
	assert_int_equal(tmem_client_inject_io_error(t.client, TMEM_IO_READ,
						     -EIO), -ENODEV);
	assert_int_equal(tmem_client_inject_io_error(t.client, TMEM_IO_WRITE,
						     -EIO), -ENODEV);
	assert_int_equal(tmem_client_inject_io_error(t.client,
			 TMEM_IO_READ | TMEM_IO_WRITE, -EIO), -ENODEV);
	assert_int_equal(tmem_client_inject_io_error(t.client, 0, 0), -ENODEV);

	/* Over budget without a tier: -ENOSPC, no disk statistics. */
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	unsigned char *held = calloc(8192, 1);

	assert_non_null(held);
	store_until_enospc(&t, pool, 0, 8192, 8, held);
	st = tstats(t.client);
	assert_int_equal(st.disk_size, 0);
	assert_int_equal(st.disk_segment_size, 0);
	assert_int_equal(st.disk_segments, 0);
	assert_int_equal(st.disk_pages, 0);
	assert_int_equal(st.disk_bytes, 0);
	assert_int_equal(st.written_back, 0);
	assert_int_equal(st.disk_reads + st.disk_writes + st.disk_errors, 0);
	assert_int_equal(st.cleaned_segments, 0);
	assert_int_equal(st.disk_failed, 0);
	free(held);
	tclient_close(&t);
}

/* ---- configuration ---------------------------------------------------- */

static int try_new(uint64_t budget, const char *path, uint64_t size,
		   uint32_t seg, uint8_t high, uint8_t low)
{
	struct tmem_client_config cfg = tier_cfg(budget, path, size, seg);
	struct tmem_client *c = NULL;
	int ret;

	cfg.writeback_high = high;
	cfg.writeback_low = low;
	ret = tmem_client_new(&cfg, &c);
	if (ret == 0)
		tmem_client_free(c);
	return ret;
}

#define EXPECT_NEW(want, ...)						\
	do {								\
		int r_ = try_new(__VA_ARGS__);				\
		if (r_ != (want))					\
			fail_msg("tmem_client_new(%s): %d (%s), want %d", \
				 #__VA_ARGS__, r_, tmem_strerror(r_),	\
				 (want));				\
	} while (0)

static void test_config_errors(void **state)
{
	static const uint32_t bad_seg[] = {
		100000, 3 * 65536, 65536 + 4096,	/* not powers of two */
		32768, 4096, 1,				/* below 64 KiB */
		32u << 20, 1u << 31,			/* above 16 MiB */
	};
	char big[PATH_MAX], small[PATH_MAX], ok[PATH_MAX], missing[PATH_MAX];
	char nodir[PATH_MAX + 16];
	const uint64_t gib = 1024 * MiB;

	(void)state;
	/* 256 MiB (sparse): room for 8 segments of 32 MiB, so only the
	 * segment size can be what is wrong. */
	tier_file(big, "cfg-big");
	make_file(big, 256 * MiB);
	for (size_t i = 0; i < sizeof(bad_seg) / sizeof(bad_seg[0]); i++)
		EXPECT_NEW(-EINVAL, gib, big, 0, bad_seg[i], 0, 0);
	EXPECT_NEW(0, gib, big, 0, 16u << 20, 0, 0);	/* both bounds ok */
	EXPECT_NEW(0, gib, big, 0, 64u << 10, 0, 0);

	/* Write-back thresholds: low < high <= 100. */
	EXPECT_NEW(-EINVAL, 16 * MiB, big, 0, SEG, 50, 50);
	EXPECT_NEW(-EINVAL, 16 * MiB, big, 0, SEG, 50, 60);
	EXPECT_NEW(-EINVAL, 16 * MiB, big, 0, SEG, 101, 80);
	EXPECT_NEW(0, 16 * MiB, big, 0, SEG, 100, 99);
	EXPECT_NEW(0, 16 * MiB, big, 0, SEG, 60, 10);
	/* 0: high 90, low 10 below high (half of it if high <= 10). */
	EXPECT_NEW(0, 16 * MiB, big, 0, SEG, 0, 85);
	EXPECT_NEW(-EINVAL, 16 * MiB, big, 0, SEG, 0, 90);
	EXPECT_NEW(0, 16 * MiB, big, 0, SEG, 50, 0);
	EXPECT_NEW(0, 16 * MiB, big, 0, SEG, 10, 0);
	EXPECT_NEW(0, 16 * MiB, big, 0, SEG, 4, 0);

	/* Fewer than 4 segments: given size (rounded down) or file size. */
	tier_file(ok, "cfg-size");
	EXPECT_NEW(-EINVAL, 16 * MiB, ok, 3 * SEG, SEG, 0, 0);
	EXPECT_NEW(-EINVAL, 16 * MiB, ok, 4 * SEG - 1, SEG, 0, 0);
	EXPECT_NEW(0, 16 * MiB, ok, 4 * SEG, SEG, 0, 0);
	tier_file(small, "cfg-small");
	make_file(small, 3 * SEG + 4095);
	EXPECT_NEW(-EINVAL, 16 * MiB, small, 0, SEG, 0, 0);
	make_file(small, 4 * SEG);
	EXPECT_NEW(0, 16 * MiB, small, 0, SEG, 0, 0);

	/* backing_size 0 needs an existing file, and does not create it. */
	tier_file(missing, "cfg-missing");
	EXPECT_NEW(-ENOENT, 16 * MiB, missing, 0, SEG, 0, 0);
	assert_false(file_exists(missing));
	/* A set size creates the file, but not its directory. */
	snprintf(nodir, sizeof(nodir), "%s/no-such-dir", missing);
	EXPECT_NEW(-ENOENT, 16 * MiB, nodir, 8 * SEG, SEG, 0, 0);
	assert_false(file_exists(missing));

	/* The budget must hold the tier's buffers: 5 segments. */
	EXPECT_NEW(-ENOSPC, 4 * MiB, big, 0, 1u << 20, 0, 0);
	EXPECT_NEW(-ENOSPC, 5 * MiB - 1, big, 0, 1u << 20, 0, 0);
	EXPECT_NEW(0, 16 * MiB, big, 0, 1u << 20, 0, 0);
	EXPECT_NEW(-ENOSPC, 5 * SEG - 1, big, 0, SEG, 0, 0);

	unlink(big);
	unlink(ok);
	unlink(small);
}

/* A set backing_size creates the file (0600), allocated to that size. */
static void test_create_file(void **state)
{
	char path[PATH_MAX];
	struct tmem_client_config cfg;
	struct tmem_client *c = NULL;
	struct tmem_stats st;
	struct stat sb;
	const uint64_t size = 8 * SEG + 1000;	/* 8 segments and a bit */

	(void)state;
	tier_file(path, "create");
	assert_false(file_exists(path));
	cfg = tier_cfg(16 * MiB, path, size, SEG);
	assert_int_equal(tmem_client_new(&cfg, &c), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 0177, 0);	/* at most 0600 */
	assert_int_equal(sb.st_size, size);
	/* fallocate()d, not sparse: a write never meets a full disk. */
	if ((uint64_t)sb.st_blocks * 512 < 8 * SEG)
		fail_msg("backing file has %llu bytes allocated, want >= %llu",
			 (unsigned long long)sb.st_blocks * 512,
			 (unsigned long long)(8 * SEG));
	st = tstats(c);
	assert_int_equal(st.disk_size, 8 * SEG);	/* whole segments */
	assert_int_equal(st.disk_segment_size, SEG);
	assert_int_equal(st.disk_segments, 0);
	assert_int_equal(st.disk_pages, 0);
	assert_int_equal(st.disk_failed, 0);
	tmem_client_free(c);
	/* Created by the client: removed with it (DEV-22). */
	assert_false(file_exists(path));

	/* backing_size 0 finds an existing file: its size, rounded down. */
	make_file(path, size);
	cfg = tier_cfg(16 * MiB, path, 0, SEG);
	assert_int_equal(tmem_client_new(&cfg, &c), 0);
	st = tstats(c);
	assert_int_equal(st.disk_size, 8 * SEG);
	tmem_client_free(c);
	/* Not created by the client: kept. */
	assert_true(file_exists(path));

	/* A larger backing_size grows the existing file. */
	cfg = tier_cfg(16 * MiB, path, 16 * SEG, SEG);
	assert_int_equal(tmem_client_new(&cfg, &c), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 16 * SEG);
	st = tstats(c);
	assert_int_equal(st.disk_size, 16 * SEG);
	tmem_client_free(c);

	/* Segment size 0 selects the default. */
	cfg = tier_cfg(16 * MiB, path, 0, 0);
	assert_int_equal(tmem_client_new(&cfg, &c), 0);
	st = tstats(c);
	assert_int_equal(st.disk_segment_size, TMEM_DEFAULT_SEGMENT_SIZE);
	assert_int_equal(st.disk_size, 16 * SEG / TMEM_DEFAULT_SEGMENT_SIZE *
			 TMEM_DEFAULT_SEGMENT_SIZE);
	tmem_client_free(c);
	unlink(path);
}

/* ---- write-back and read-back ---------------------------------------- */

/*
 * 8000 pages (~16 MiB compressed) into a 4 MiB budget with a 64 MiB tier:
 * every store succeeds, host_bytes stays within the budget after every
 * store, most pages end up on disk, and every page loads back (DEV-9,
 * DEV-16 with a tier).
 */
static void test_far_over_budget(void **state)
{
	const uint32_t n = 8000;
	struct tier tr;
	struct tmem_stats st;
	uint64_t reads0;
	uint32_t pool;

	(void)state;
	tier_open(&tr, "far", 4 * MiB, 64 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, n, 1);

	st = settled_stats(tr.t.client);
	print_stats("far over budget", &st);
	check_tier_invariants(&st, tr.disk, tr.seg);
	assert_int_equal(st.pages, n);
	assert_int_equal(st.succ_stores, n);
	assert_int_equal(st.failed_stores, 0);
	assert_int_equal(st.disk_errors, 0);
	assert_int_equal(st.disk_failed, 0);
	assert_true(st.disk_writes > 0);
	assert_true(st.written_back > 0);
	/* 4 MiB of memory holds at most ~2000 of these pages. */
	if (st.disk_pages < n / 2)
		fail_msg("only %llu of %u pages on disk",
			 (unsigned long long)st.disk_pages, n);
	/*
	 * Write-back goes a segment at a time, not page by page: the mean
	 * write is at least half a segment and at most one.
	 */
	if (st.disk_write_bytes < st.disk_writes * tr.seg / 2 ||
	    st.disk_write_bytes > st.disk_writes * tr.seg)
		fail_msg("%llu bytes in %llu writes: mean not in [%u, %u]",
			 (unsigned long long)st.disk_write_bytes,
			 (unsigned long long)st.disk_writes, tr.seg / 2,
			 tr.seg);
	/* Segments hold compressed pages: about 2 pages of 4 KiB per 4 KiB. */
	assert_true(st.disk_pages * PAGE > st.disk_segments * tr.seg);

	reads0 = st.disk_reads;
	load_range(&tr.t, pool, 0, n, 1);
	/* DEV-10: loading does not change what is held. */
	for (uint32_t k = n; k-- > 0;)
		if (k % 7 == 0)
			tload_ok(&tr.t, pool, k, 1);
	st = tstats(tr.t.client);
	assert_true(st.disk_reads > reads0);
	assert_true(st.disk_read_bytes > 0);
	assert_int_equal(st.pages, n);
	assert_int_equal(st.loads, n + (n + 6) / 7);
	assert_int_equal(st.disk_errors, 0);
	tier_close(&tr);
}

/*
 * Write-back starts at writeback_high percent of the budget, in the
 * background: at 60% of the budget nothing is written back with the
 * default (90%), everything needed with 50/30.
 */
static void check_watermark(uint8_t high, uint8_t low, bool expect_wb)
{
	struct tmem_client_config cfg;
	struct tclient t;
	struct tmem_stats st;
	char path[PATH_MAX];
	uint32_t pool, k;

	tier_file(path, "watermark");
	cfg = tier_cfg(4 * MiB, path, 16 * MiB, SEG);
	cfg.writeback_high = high;
	cfg.writeback_low = low;
	tclient_open(&t, &cfg);
	atomic_store(&watched_client, t.client);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	for (k = 0;; k++) {
		tstore_ok(&t, pool, k, 1);
		st = tstats(t.client);
		if (st.host_bytes >= 4 * MiB * 6 / 10 ||
		    st.written_back > 0)
			break;
	}
	if (expect_wb) {
		WAIT_STATS(t.client, st, st.written_back > 0 &&
			   st.disk_pages > 0, "write-back above the high mark");
	} else {
		st = settled_stats(t.client);
		if (st.written_back != 0) {
			print_stats("below the high mark", &st);
			fail_msg("pages written back at %llu of %llu host bytes",
				 (unsigned long long)st.host_bytes,
				 (unsigned long long)st.budget_bytes);
		}
	}
	load_range(&t, pool, 0, k + 1, 1);
	atomic_store(&watched_client, NULL);
	tclient_close(&t);
	unlink(path);
}

static void test_watermarks(void **state)
{
	(void)state;
	check_watermark(0, 0, false);
	check_watermark(50, 30, true);
}

/* Ephemeral pages are evicted, never written back. */
static void test_ephemeral_not_written_back(void **state)
{
	const uint32_t n = 3000;
	struct tier tr;
	struct tmem_stats st;
	uint32_t pool, got = 0;
	int ret;

	(void)state;
	tier_open(&tr, "eph", 2 * MiB, 16 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_EPHEMERAL);
	store_range(&tr.t, pool, 0, n, 1);
	st = settled_stats(tr.t.client);
	print_stats("ephemeral only", &st);
	assert_true(st.evictions > 0);
	assert_int_equal(st.disk_pages, 0);
	assert_int_equal(st.disk_bytes, 0);
	assert_int_equal(st.written_back, 0);
	assert_int_equal(st.disk_writes, 0);
	for (uint32_t k = 0; k < n; k++) {
		ret = tload(&tr.t, pool, k, 1);
		if (ret != 0 && ret != -ENOENT)
			fail_msg("ephemeral load %u: %d (%s)", k, ret,
				 tmem_strerror(ret));
		got += ret == 0;
	}
	assert_true(got > 0 && got < n);
	assert_int_equal(tstats(tr.t.client).disk_reads, 0);
	tier_close(&tr);
}

/*
 * Both kinds of pool over budget: only persistent pages go to disk.
 * With reads failing, a load of an ephemeral key never says -EIO; some
 * persistent ones do (those on disk), never more than disk_pages.
 */
static void test_ephemeral_and_persistent(void **state)
{
	const uint32_t n = 2500;
	struct tier tr;
	struct tmem_stats st;
	uint32_t pers, eph, eio = 0;
	int ret;

	(void)state;
	tier_open(&tr, "mixed", 2 * MiB, 16 * MiB, SEG);
	pers = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	eph = tpool_new(&tr.t, TMEM_POOL_EPHEMERAL);
	for (uint32_t k = 0; k < n; k++) {
		tstore_ok(&tr.t, pers, k, 1);
		tstore_ok(&tr.t, eph, k, 2);
		check_budget(tr.t.client);
	}
	st = settled_stats(tr.t.client);
	print_stats("mixed pools", &st);
	check_tier_invariants(&st, tr.disk, tr.seg);
	assert_true(st.disk_pages > 0);

	assert_int_equal(tmem_client_inject_io_error(tr.t.client, TMEM_IO_READ,
						     -EIO), 0);
	for (uint32_t k = 0; k < n; k++) {
		ret = tload(&tr.t, eph, k, 2);
		if (ret != 0 && ret != -ENOENT)
			fail_msg("ephemeral key %u with reads failing: %d (%s): was it on disk?",
				 k, ret, tmem_strerror(ret));
		ret = tload(&tr.t, pers, k, 1);
		if (ret != 0 && ret != -EIO)
			fail_msg("persistent key %u with reads failing: %d (%s)",
				 k, ret, tmem_strerror(ret));
		eio += ret == -EIO;
	}
	if (eio == 0 || eio > st.disk_pages)
		fail_msg("%u persistent loads failed with reads failing, %llu pages on disk",
			 eio, (unsigned long long)st.disk_pages);
	assert_int_equal(tmem_client_inject_io_error(tr.t.client, 0, 0), 0);
	load_range(&tr.t, pers, 0, n, 1);
	tier_close(&tr);
}

/*
 * Invalidating (by page, object, pool) or destroying every pool frees the
 * tier: no segment and no page left (DEV-12 with pages on disk); the
 * space is usable again.
 */
static void test_invalidate_frees_disk(void **state)
{
	struct tier tr;
	struct tmem_stats st;
	uint32_t a, b, c, k, dropped = 0;
	int ret;

	(void)state;
	tier_open(&tr, "inval", 2 * MiB, 16 * MiB, SEG);
	a = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	b = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	c = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, a, 0, 3072, 1);	/* objects 1..3 */
	store_range(&tr.t, b, 0, 1000, 1);
	store_range(&tr.t, c, 0, 1000, 1);
	st = settled_stats(tr.t.client);
	print_stats("before invalidation", &st);
	check_tier_invariants(&st, tr.disk, tr.seg);
	assert_true(st.disk_pages > 0);

	for (k = 0; k < 1024; k++)		/* object 1 page by page */
		assert_int_equal(tmem_invalidate_page(tr.t.ctx, a, KEY_OBJ(k),
						      KEY_IDX(k)), 1);
	for (k = 1024; k < 3072; k += 1024) {	/* objects 2 and 3 */
		ret = tmem_invalidate_object(tr.t.ctx, a, KEY_OBJ(k));
		assert_int_equal(ret, 1024);
		dropped += ret;
	}
	assert_int_equal(dropped, 2048);
	assert_int_equal(tmem_invalidate_pool(tr.t.client, b), 0);
	assert_int_equal(tmem_pool_destroy(tr.t.client, c), 0);

	WAIT_STATS(tr.t.client, st,
		   st.pages == 0 && st.disk_pages == 0 &&
		   st.disk_segments == 0 && st.disk_bytes == 0,
		   "empty tier after invalidating every page");
	for (k = 0; k < 3072; k += 97)
		tload_miss(&tr.t, a, k);
	for (k = 0; k < 1000; k += 97)
		tload_miss(&tr.t, b, k);

	/* The space is free again: as much again fits. */
	store_range(&tr.t, a, 0, 5000, 2);
	st = settled_stats(tr.t.client);
	assert_true(st.disk_pages > 0);
	load_range(&tr.t, a, 0, 5000, 2);
	tier_close(&tr);
}

/*
 * Pages dropped while the writer is busy with them: destroy the pool,
 * invalidate it or its objects right after going over budget (no
 * settling).  The tier empties all the same, and works on.
 */
static void test_drop_during_writeback(void **state)
{
	struct tier tr;
	struct tmem_stats st;
	uint32_t pool, k;

	(void)state;
	tier_open(&tr, "drop-busy", 2 * MiB, 16 * MiB, SEG);
	for (int round = 0; round < 3; round++) {
		pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
		store_range(&tr.t, pool, 0, 2500, 1);
		switch (round) {
		case 0:
			assert_int_equal(tmem_pool_destroy(tr.t.client, pool),
					 0);
			break;
		case 1:
			assert_int_equal(tmem_invalidate_pool(tr.t.client,
							      pool), 0);
			assert_int_equal(tmem_pool_destroy(tr.t.client, pool),
					 0);
			break;
		default:
			for (k = 0; k < 2500; k += 1024)
				assert_true(tmem_invalidate_object(tr.t.ctx,
					    pool, KEY_OBJ(k)) > 0);
			assert_int_equal(tmem_pool_destroy(tr.t.client, pool),
					 0);
			break;
		}
		WAIT_STATS(tr.t.client, st,
			   st.pages == 0 && st.disk_pages == 0 &&
			   st.disk_segments == 0 && st.disk_bytes == 0,
			   "empty tier after dropping pages being written back");
	}
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, 3000, 2);
	st = settled_stats(tr.t.client);
	assert_true(st.disk_pages > 0);
	assert_int_equal(st.disk_errors, 0);
	load_range(&tr.t, pool, 0, 3000, 2);
	tier_close(&tr);
}

/*
 * Keys whose page is on disk, found by failing reads: up to @max of them
 * among [0, n) (all at version @ver) into @out.  Loads that do not fail
 * must return the right bytes.  Returns how many were found.
 */
static uint32_t find_disk_keys(struct tclient *t, uint32_t pool, uint32_t n,
			       uint32_t ver, uint32_t *out, uint32_t max)
{
	uint32_t found = 0;
	int ret;

	assert_int_equal(tmem_client_inject_io_error(t->client, TMEM_IO_READ,
						     -EIO), 0);
	for (uint32_t k = 0; k < n && found < max; k++) {
		ret = tload(t, pool, k, ver);
		if (ret == -EIO)
			out[found++] = k;
		else if (ret != 0)
			fail_msg("load key %u with reads failing: %d (%s)", k,
				 ret, tmem_strerror(ret));
	}
	assert_int_equal(tmem_client_inject_io_error(t->client, 0, 0), 0);
	return found;
}

/* A key whose page is on disk, stored again: the new bytes load. */
static void test_overwrite_written_back(void **state)
{
	const uint32_t n = 3000;
	struct tier tr;
	struct tmem_stats st;
	uint32_t pool, keys[64], nk, i;

	(void)state;
	tier_open(&tr, "overwrite", 2 * MiB, 16 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, n, 1);
	settled_stats(tr.t.client);
	nk = find_disk_keys(&tr.t, pool, n, 1, keys, 64);
	if (nk == 0)
		fail_msg("no page of %u found on disk", n);
	for (i = 0; i < nk; i++)
		tstore_ok(&tr.t, pool, keys[i], 2);
	for (i = 0; i < nk; i++) {
		tload_ok(&tr.t, pool, keys[i], 2);
		/* its neighbours keep theirs */
		if (keys[i] + 1 < n && (i + 1 == nk || keys[i + 1] != keys[i] + 1))
			tload_ok(&tr.t, pool, keys[i] + 1, 1);
	}

	/* Every key again (the old copies on disk die), all new bytes. */
	store_range(&tr.t, pool, 0, n, 3);
	st = settled_stats(tr.t.client);
	check_tier_invariants(&st, tr.disk, tr.seg);
	assert_int_equal(st.pages, n);
	load_range(&tr.t, pool, 0, n, 3);
	tier_close(&tr);
}

/*
 * Read-ahead: loading written-back pages in key order (swap-in of
 * neighbouring slots) reads each extent once, not each page; and the
 * kept bytes never outlive their segment: after every page is dropped
 * and the same keys are stored again with new bytes (the segments
 * freed and reused, the context's read-ahead buffer still holding the
 * old ones), loads return the new bytes.  Random order stays right.
 */
static void test_readahead(void **state)
{
	const uint32_t n = 4000;
	struct tier tr;
	struct tmem_stats st0, st;
	uint64_t reads;
	uint32_t pool, k, ver;

	(void)state;
	tier_open(&tr, "readahead", 2 * MiB, 32 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	for (ver = 1; ver <= 2; ver++) {
		store_range(&tr.t, pool, 0, n, ver);
		st0 = settled_stats(tr.t.client);
		assert_true(st0.disk_pages >= n / 2);
		load_range(&tr.t, pool, 0, n, ver);
		st = tstats(tr.t.client);
		reads = st.disk_reads - st0.disk_reads;
		print_stats("sequential loads", &st);
		/* 64 KiB reads of ~2 KiB pages: far fewer reads than pages. */
		assert_true(reads > 0);
		assert_true(reads * 4 < st0.disk_pages);
		for (k = 0; k < n; k++)
			assert_int_equal(tmem_invalidate_page(tr.t.ctx, pool,
					 KEY_OBJ(k), KEY_IDX(k)), 1);
		WAIT_STATS(tr.t.client, st, st.disk_segments == 0,
			   "no empty tier after invalidating every page");
	}
	/* Random order, still right (mostly no read-ahead). */
	store_range(&tr.t, pool, 0, n, 3);
	settled_stats(tr.t.client);
	for (uint32_t i = 0; i < n; i++)
		tload_ok(&tr.t, pool, (i * 2654435761u) % n, 3);
	tier_close(&tr);
}

/*
 * Cleaner: fill 3/4 of the tier, invalidate all but one page in
 * @keep_one_in scattered over it, then store more than the free segments
 * and the budget can take (by @margin segments): the cleaner must move
 * the live pages out of the mostly-empty segments.  Every store
 * succeeds, every live page loads.
 */
static void check_cleaner(const char *name, uint32_t keep_one_in,
			  uint32_t margin)
{
	const uint64_t disk = 8 * MiB;
	const uint32_t limit = 40000;
	struct tier tr;
	struct tmem_stats st;
	uint32_t pool, n1, n2, k, extra;
	uint64_t avg, free_segs, s;
	unsigned char *keep;

	keep = calloc(limit, 1);
	assert_non_null(keep);
	tier_open(&tr, name, 2 * MiB, disk, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	for (k = 0;; k++) {
		assert_true(k < limit);
		tstore_ok(&tr.t, pool, k, 1);
		check_budget(tr.t.client);
		st = tstats(tr.t.client);
		if (st.disk_segments * SEG >= disk * 3 / 4)
			break;
	}
	n1 = k + 1;
	st = settled_stats(tr.t.client);
	print_stats("tier 3/4 full", &st);
	check_tier_invariants(&st, disk, SEG);
	avg = st.disk_bytes / st.disk_pages;	/* compressed bytes per page */

	for (k = 0; k < n1; k++) {
		s = k;
		keep[k] = splitmix64(&s) % keep_one_in == 0;
		if (!keep[k])
			assert_int_equal(tmem_invalidate_page(tr.t.ctx, pool,
					 KEY_OBJ(k), KEY_IDX(k)), 1);
	}
	st = settled_stats(tr.t.client);
	print_stats("invalidated", &st);
	check_tier_invariants(&st, disk, SEG);
	free_segs = disk / SEG - st.disk_segments;
	/* Precondition (1 in 4 kept): invalidation alone freed almost no
	 * segment. */
	if (keep_one_in <= 4 && free_segs > disk / SEG / 4 + 4)
		fail_msg("%llu segments free after invalidation: the pattern emptied segments",
			 (unsigned long long)free_segs);

	/* More than the free segments and the whole budget together. */
	extra = (uint32_t)((free_segs * SEG + tr.budget + margin * SEG) / avg);
	n2 = n1 + extra;
	assert_true(n2 <= limit);
	for (k = n1; k < n2; k++) {
		tstore_ok(&tr.t, pool, k, 1);
		check_budget(tr.t.client);
		keep[k] = 1;
	}
	st = settled_stats(tr.t.client);
	print_stats("after cleaning", &st);
	check_tier_invariants(&st, disk, SEG);
	assert_true(st.cleaned_segments > 0);
	assert_int_equal(st.disk_errors, 0);
	for (k = 0; k < n2; k++) {
		if (keep[k])
			tload_ok(&tr.t, pool, k, 1);
		else if (k % 13 == 0)
			tload_miss(&tr.t, pool, k);
	}
	free(keep);
	tier_close(&tr);
}

/* 3 of 4 pages invalidated: every segment about a quarter live. */
static void test_cleaner(void **state)
{
	(void)state;
	check_cleaner("cleaner", 4, 16);
}

/*
 * 31 of 32 invalidated: many segments with one or two live pages, so the
 * cleaner often picks a victim whose live data just fits the room left
 * in the segment it fills (while its dead pages do not).
 */
static void test_cleaner_sparse(void **state)
{
	(void)state;
	check_cleaner("cleaner-sparse", 32, 8);
}

/*
 * Pages of test_cleaner_room: keys 15 mod 16 are small (1000 random
 * bytes, then zeros: ~1 KiB compressed), the others random (kept raw,
 * 4 KiB).
 */
static void room_page(void *page, uint32_t k)
{
	uint64_t s = TSEED(k, 7);

	if (k % 16 == 15) {
		memset(page, 0, PAGE);
		fill_random(page, 1000, &s);
	} else {
		fill_page(page, PK_RANDOM, s);
	}
}

/*
 * The room left in the segment the cleaner fills: segments of big dead
 * pages with about one small live page each.  Cleaning them one after
 * the other fills the cleaner's segment 1 KiB at a time, so its room
 * falls below a big page's size while victims whose live page still
 * fits remain: those must be cleaned too (their dead pages need no
 * room), or at least skipped, never picked again and again.
 */
static void test_cleaner_room(void **state)
{
	const uint64_t disk = 16 * MiB;
	const uint32_t limit = 40000;
	unsigned char page[PAGE], got[PAGE];
	struct tier tr;
	struct tmem_stats st;
	uint32_t pool, n1, n2, k, extra;
	uint64_t free_segs;

	(void)state;
	tier_open(&tr, "cleaner-room", 2 * MiB, disk, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	for (k = 0;; k++) {
		assert_true(k < limit);
		room_page(page, k);
		assert_int_equal(tmem_store(tr.t.ctx, pool, KEY_OBJ(k),
					    KEY_IDX(k), page), 0);
		check_budget(tr.t.client);
		st = tstats(tr.t.client);
		if (st.disk_segments * SEG >= disk * 3 / 4)
			break;
	}
	n1 = k + 1;
	for (k = 0; k < n1; k++)
		if (k % 16 != 15)
			assert_int_equal(tmem_invalidate_page(tr.t.ctx, pool,
					 KEY_OBJ(k), KEY_IDX(k)), 1);
	st = settled_stats(tr.t.client);
	print_stats("small live pages left", &st);
	check_tier_invariants(&st, disk, SEG);
	free_segs = disk / SEG - st.disk_segments;

	/* Big pages: more than the free segments and the budget hold. */
	extra = (uint32_t)((free_segs * SEG + tr.budget + 16 * SEG) / PAGE);
	n2 = n1 + extra;
	for (k = n1; k < n2; k++) {
		fill_page(page, PK_RANDOM, TSEED(k, 7));
		assert_int_equal(tmem_store(tr.t.ctx, pool, KEY_OBJ(k),
					    KEY_IDX(k), page), 0);
		check_budget(tr.t.client);
	}
	st = settled_stats(tr.t.client);
	print_stats("after cleaning", &st);
	check_tier_invariants(&st, disk, SEG);
	assert_true(st.cleaned_segments > 0);
	for (k = 0; k < n2; k++) {
		if (k < n1 && k % 16 != 15)
			continue;
		if (k < n1)
			room_page(page, k);
		else
			fill_page(page, PK_RANDOM, TSEED(k, 7));
		assert_int_equal(tmem_load(tr.t.ctx, pool, KEY_OBJ(k),
					   KEY_IDX(k), got), 0);
		assert_memory_equal(got, page, PAGE);
	}
	tier_close(&tr);
}

/*
 * A full tier: stores end with -ENOSPC (in seconds, no hang), every
 * acknowledged page loads, refused keys miss (DEV-11, DEV-16).
 * Invalidating them all makes room again.
 */
static void test_tier_full(void **state)
{
	const uint32_t limit = 4000;
	struct tier tr;
	struct tmem_stats st;
	uint32_t pool, first, again = 0, nheld = 0;
	unsigned char *held;
	double t0, took;
	int ret;

	(void)state;
	held = calloc(limit, 1);
	assert_non_null(held);
	tier_open(&tr, "full", 1 * MiB, 4 * SEG, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	t0 = now_sec();
	first = store_until_enospc(&tr.t, pool, 0, limit, 64, held);
	took = now_sec() - t0;
	st = settled_stats(tr.t.client);
	print_stats("tier full", &st);
	print_message("first refused store: key %u, %.2f s\n", first, took);
	check_tier_invariants(&st, 4 * SEG, SEG);
	if (took > 20.0)
		fail_msg("%u stores into a full tier took %.1f s", first + 64,
			 took);
	assert_true(st.written_back > 0);	/* the tier was used */
	assert_true(st.failed_stores_budget > 0);
	assert_int_equal(st.disk_failed, 0);
	assert_int_equal(st.disk_errors, 0);
	for (uint32_t k = 0; k < first + 64; k++)
		nheld += held[k];
	assert_int_equal(st.pages, nheld);
	check_held(&tr.t, pool, first + 64, held);

	/* Drop everything: the tier empties and takes pages again. */
	for (uint32_t k = 0; k < first + 64; k++)
		assert_int_equal(tmem_invalidate_page(tr.t.ctx, pool,
				 KEY_OBJ(k), KEY_IDX(k)), held[k]);
	WAIT_STATS(tr.t.client, st, st.disk_pages == 0 && st.disk_segments == 0,
		   "empty tier");
	for (uint32_t k = limit; k < 2 * limit; k++) {
		ret = tstore(&tr.t, pool, k, 1);
		if (ret == -ENOSPC)
			break;
		assert_int_equal(ret, 0);
		again++;
	}
	if (again < nheld / 2)
		fail_msg("%u stores after emptying the tier, %u before", again,
			 nheld);
	free(held);
	tier_close(&tr);
}

/* ---- I/O errors ------------------------------------------------------- */

/*
 * Writes fail from the start: going over budget fails the tier
 * (disk_failed, disk_errors), stores are refused (-ENOSPC) instead of
 * waiting, no page is lost (DEV-15) and the tier takes nothing more, even
 * once writes work again, until reset.
 */
static void test_write_error(void **state)
{
	const uint32_t limit = 6000;
	struct tier tr;
	struct tmem_stats st, st2;
	uint32_t pool, first, refused = 0, nheld = 0, k;
	unsigned char *held;

	(void)state;
	held = calloc(limit, 1);
	assert_non_null(held);
	tier_open(&tr, "werr", 2 * MiB, 16 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	assert_int_equal(tmem_client_inject_io_error(tr.t.client,
						     TMEM_IO_WRITE, -EIO), 0);
	first = store_until_enospc(&tr.t, pool, 0, limit, 64, held);
	st = settled_stats(tr.t.client);
	print_stats("write error", &st);
	assert_int_equal(st.disk_failed, 1);
	assert_true(st.disk_errors >= 1);
	assert_int_equal(st.disk_write_bytes, 0);	/* nothing was written */
	assert_true(st.failed_stores_budget > 0);
	assert_true(st.host_bytes <= st.budget_bytes);
	for (k = 0; k < first + 64; k++)
		nheld += held[k];
	assert_int_equal(st.pages, nheld);
	check_held(&tr.t, pool, first + 64, held);
	/*
	 * The failed segment's pages stay in memory (disk_pages may count
	 * them: the tier keeps them in its buffer): they load with reads
	 * failing too.
	 */
	assert_int_equal(tmem_client_inject_io_error(tr.t.client,
			 TMEM_IO_READ | TMEM_IO_WRITE, -EIO), 0);
	check_held(&tr.t, pool, first + 64, held);
	assert_int_equal(tstats(tr.t.client).disk_reads, 0);

	/*
	 * Writes work again, but the tier stays failed until reset; stores
	 * through the wire that do not fit are REJECTED (DEV-18).
	 */
	assert_int_equal(tmem_client_inject_io_error(tr.t.client, 0, 0), 0);
	for (k = first + 64; k < first + 128 && k < limit; k++) {
		uint8_t status = wire_store(tr.t.ctx, pool, k, 1);

		assert_true(status == VIRTIO_TMEM_S_OK ||
			    status == VIRTIO_TMEM_S_REJECTED);
		held[k] = status == VIRTIO_TMEM_S_OK;
		refused += status == VIRTIO_TMEM_S_REJECTED;
		check_budget(tr.t.client);
	}
	assert_true(refused > 0);
	st2 = settled_stats(tr.t.client);
	assert_int_equal(st2.disk_failed, 1);
	assert_int_equal(st2.disk_pages, st.disk_pages);
	assert_int_equal(st2.disk_writes, st.disk_writes);
	assert_int_equal(st2.written_back, st.written_back);
	check_held(&tr.t, pool, k, held);

	/* Reset repairs the tier. */
	assert_int_equal(tmem_client_reset(tr.t.client), 0);
	st = tstats(tr.t.client);
	assert_int_equal(st.disk_failed, 0);
	assert_int_equal(st.disk_errors, 0);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, 3000, 2);
	st = settled_stats(tr.t.client);
	assert_true(st.disk_pages > 0);
	assert_int_equal(st.disk_failed, 0);
	load_range(&tr.t, pool, 0, 3000, 2);
	free(held);
	tier_close(&tr);
}

/*
 * Writes fail once pages are on disk: those keep loading (reads work),
 * new pages stay in memory, the budget refuses the rest.
 */
static void test_write_error_after_writeback(void **state)
{
	const uint32_t limit = 8000;
	struct tier tr;
	struct tmem_stats st;
	uint32_t pool, k, first, nheld = 0;
	unsigned char *held;

	(void)state;
	held = calloc(limit, 1);
	assert_non_null(held);
	tier_open(&tr, "werr2", 2 * MiB, 16 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	for (k = 0; k < 2500; k++) {
		tstore_ok(&tr.t, pool, k, 1);
		check_budget(tr.t.client);
		held[k] = 1;
	}
	st = settled_stats(tr.t.client);
	assert_true(st.disk_pages > 0);
	assert_int_equal(tmem_client_inject_io_error(tr.t.client,
						     TMEM_IO_WRITE, -EIO), 0);
	first = store_until_enospc(&tr.t, pool, 2500, limit, 64, held);
	st = settled_stats(tr.t.client);
	print_stats("write error after write-back", &st);
	assert_int_equal(st.disk_failed, 1);
	assert_true(st.disk_errors >= 1);
	assert_true(st.disk_pages > 0);
	for (k = 0; k < first + 64; k++)
		nheld += held[k];
	assert_int_equal(st.pages, nheld);
	check_held(&tr.t, pool, first + 64, held);
	st = tstats(tr.t.client);
	assert_true(st.disk_reads > 0);
	free(held);
	tier_close(&tr);
}

/*
 * A read error: tmem_load() says -EIO (the wire IOERR) whatever the
 * injected errno, the page stays stored and loads once reads work again.
 */
static void test_read_error(void **state)
{
	const uint32_t n = 3000;
	struct tier tr;
	struct tmem_stats st;
	unsigned char page[PAGE], want[PAGE];
	uint32_t pool, victim, nk;
	uint64_t errors0;

	(void)state;
	tier_open(&tr, "rerr", 2 * MiB, 16 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, n, 1);
	st = settled_stats(tr.t.client);
	assert_true(st.disk_pages > 0);
	errors0 = st.disk_errors;

	/* The oldest pages are the coldest: look from key 0 on. */
	assert_int_equal(tmem_client_inject_io_error(tr.t.client, TMEM_IO_READ,
						     -EIO), 0);
	for (victim = 0; victim < n; victim++) {
		int ret = tload(&tr.t, pool, victim, 1);

		if (ret == -EIO)
			break;
		if (ret != 0)
			fail_msg("load %u with reads failing: %d (%s)", victim,
				 ret, tmem_strerror(ret));
	}
	if (victim == n)
		fail_msg("no load failed with reads failing (%llu pages on disk)",
			 (unsigned long long)st.disk_pages);
	st = tstats(tr.t.client);
	assert_true(st.disk_errors > errors0);
	assert_int_equal(st.pages, n);
	assert_int_equal(tmem_load(tr.t.ctx, pool, KEY_OBJ(victim),
				   KEY_IDX(victim), page), -EIO);
	assert_int_equal(wire_load(tr.t.ctx, pool, victim, page),
			 VIRTIO_TMEM_S_IOERR);
	/* The documented -EIO, not the disk's errno. */
	assert_int_equal(tmem_client_inject_io_error(tr.t.client, TMEM_IO_READ,
						     -ENODATA), 0);
	assert_int_equal(tmem_load(tr.t.ctx, pool, KEY_OBJ(victim),
				   KEY_IDX(victim), page), -EIO);
	/* Writes only: reads work. */
	assert_int_equal(tmem_client_inject_io_error(tr.t.client, TMEM_IO_WRITE,
						     -EIO), 0);
	tload_ok(&tr.t, pool, victim, 1);

	assert_int_equal(tmem_client_inject_io_error(tr.t.client, 0, 0), 0);
	tload_ok(&tr.t, pool, victim, 1);
	memset(page, 0, PAGE);
	assert_int_equal(wire_load(tr.t.ctx, pool, victim, page),
			 VIRTIO_TMEM_S_OK);
	tier_page(want, TSEED(victim, 1));
	assert_memory_equal(page, want, PAGE);
	load_range(&tr.t, pool, 0, n, 1);

	/* Invalidating a page on disk needs no read. */
	nk = find_disk_keys(&tr.t, pool, n, 1, &victim, 1);
	assert_int_equal(nk, 1);
	assert_int_equal(tmem_client_inject_io_error(tr.t.client, TMEM_IO_READ,
						     -EIO), 0);
	assert_int_equal(tmem_invalidate_page(tr.t.ctx, pool, KEY_OBJ(victim),
					      KEY_IDX(victim)), 1);
	tload_miss(&tr.t, pool, victim);
	assert_int_equal(tmem_client_inject_io_error(tr.t.client, 0, 0), 0);
	st = tstats(tr.t.client);
	assert_int_equal(st.pages, n - 1);
	assert_int_equal(st.disk_failed, 0);	/* read errors do not fail it */
	tier_close(&tr);
}

/* ---- integrity: checksums, keys, one user (DEV-18, DEV-21) ----------- */

#define SEG_HDR		24	/* struct seg_hdr (tier_impl_i.h) before each page */

/* The handle under key @k, read under its shard's lock; 0 if none. */
static uint64_t key_handle(struct tmem_client *c, uint32_t pool, uint32_t k)
{
	struct tmem_shard *sh = tmem_shard_of(tmem_pool_shards(c, pool),
					      KEY_OBJ(k), KEY_IDX(k));
	uint32_t slot = KEY_IDX(k) % TMEM_CHUNK_PAGES;
	struct tmem_chunk *ch;
	uint64_t h = 0;

	pthread_mutex_lock(&sh->lock);
	ch = tmem_chunk_find(sh, KEY_OBJ(k), KEY_IDX(k) >> TMEM_CHUNK_SHIFT);
	if (ch && !(ch->wide & 1ull << slot))
		h = ch->h[slot];
	pthread_mutex_unlock(&sh->lock);
	return h;
}

static bool handle_on_disk(uint64_t h)
{
	return h && tmem_h_on_disk(h);
}

static void flip_byte(const char *path, uint64_t off)
{
	int fd = open(path, O_RDWR);
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0x40;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

/*
 * Keys among [0, n) whose page is in a segment written long ago (so the
 * load reads the file, not a segment buffer): segments fill in order, and
 * at most TIER_BUFS (4) of the newest can still be in buffers.
 */
static uint32_t old_disk_keys(struct tclient *t, uint32_t pool, uint32_t n,
			      uint32_t seg, uint32_t *out, uint32_t max)
{
	uint64_t top = 0, h;
	uint32_t found = 0;

	for (uint32_t k = 0; k < n; k++) {
		h = key_handle(t->client, pool, k);
		if (handle_on_disk(h) && tmem_h_disk_off(h) > top)
			top = tmem_h_disk_off(h);
	}
	for (uint32_t k = 0; k < n && found < max; k++) {
		h = key_handle(t->client, pool, k);
		if (handle_on_disk(h) && tmem_h_disk_off(h) / seg + 6 <
					 top / seg)
			out[found++] = k;
	}
	return found;
}

/*
 * One byte flipped in the file, under a live client, in the page's bytes,
 * its header's key or its checksum: that load answers -EIO (and IOERR on
 * the wire), never other bytes; every other page loads intact; the page
 * stays stored (DEV-18).
 */
static void test_corrupt_byte(void **state)
{
	const uint32_t n = 3000, want = 30;
	uint32_t keys[30], nk, pool, k, m = 0;
	unsigned char page[PAGE];
	bool bad[3000] = { false };
	struct tmem_stats st;
	struct tier tr;
	uint64_t errors0;

	(void)state;
	tier_open(&tr, "corrupt", 2 * MiB, 16 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, n, 1);
	st = settled_stats(tr.t.client);
	errors0 = st.disk_errors;
	nk = old_disk_keys(&tr.t, pool, n, SEG, keys, want);
	assert_int_equal(nk, want);
	for (uint32_t i = 0; i < nk; i++) {
		uint64_t h = key_handle(tr.t.client, pool, keys[i]);
		uint64_t off = tmem_h_disk_off(h);

		switch (i % 3) {
		case 0:		/* the compressed bytes */
			off += (i * 37) % tmem_h_len(h);
			break;
		case 1:		/* the key: object, index, pool, info */
			off -= SEG_HDR - (i % 16);
			break;
		default:	/* the checksum */
			off -= 8 - (i % 8);
			break;
		}
		flip_byte(tr.path, off);
		bad[keys[i]] = true;
	}
	for (k = 0; k < n; k++) {
		int ret = tload(&tr.t, pool, k, 1);	/* checks the bytes */

		if (bad[k] && ret != -EIO)
			fail_msg("corrupted key %u loaded: %d", k, ret);
		if (!bad[k] && ret)
			fail_msg("intact key %u: %d (%s)", k, ret,
				 tmem_strerror(ret));
		m += bad[k];
	}
	assert_int_equal(m, want);
	assert_int_equal(wire_load(tr.t.ctx, pool, keys[0], page),
			 VIRTIO_TMEM_S_IOERR);
	st = tstats(tr.t.client);
	assert_true(st.disk_errors >= errors0 + want);
	assert_int_equal(st.pages, n);
	assert_int_equal(st.disk_failed, 0);
	/* Stored again, the key has good bytes. */
	tstore_ok(&tr.t, pool, keys[0], 2);
	tload_ok(&tr.t, pool, keys[0], 2);
	tier_close(&tr);
}

/*
 * A handle read for another key (a stale slot: the segment was reused,
 * or the index is wrong) is -EIO, even with intact bytes.
 */
static void test_wrong_key(void **state)
{
	const uint32_t n = 3000;
	unsigned char page[PAGE], want[PAGE];
	struct tmem_client *c;
	struct tier tr;
	uint32_t pool, k;
	uint64_t h;

	(void)state;
	tier_open(&tr, "wrongkey", 2 * MiB, 16 * MiB, SEG);
	c = tr.t.client;
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, n, 1);
	settled_stats(c);
	assert_int_equal(old_disk_keys(&tr.t, pool, n, SEG, &k, 1), 1);
	h = key_handle(c, pool, k);
	tmem_tier_pin(c->tier, tmem_h_disk_off(h));
	assert_int_equal(tmem_tier_read(tr.t.ctx, pool, KEY_OBJ(k) + 1,
					KEY_IDX(k), h, page), -EIO);
	tmem_tier_pin(c->tier, tmem_h_disk_off(h));
	assert_int_equal(tmem_tier_read(tr.t.ctx, pool, KEY_OBJ(k),
					KEY_IDX(k) ^ 1, h, page), -EIO);
	tmem_tier_pin(c->tier, tmem_h_disk_off(h));
	assert_int_equal(tmem_tier_read(tr.t.ctx, pool + 1, KEY_OBJ(k),
					KEY_IDX(k), h, page), -EIO);
	/* The right key reads the right bytes through the same path. */
	tmem_tier_pin(c->tier, tmem_h_disk_off(h));
	assert_int_equal(tmem_tier_read(tr.t.ctx, pool, KEY_OBJ(k),
					KEY_IDX(k), h, page), 0);
	tier_page(want, TSEED(k, 1));
	assert_memory_equal(page, want, PAGE);
	load_range(&tr.t, pool, 0, n, 1);
	tier_close(&tr);
}

/*
 * A file in use by one client is refused to another (-EBUSY), whether
 * the first created it or not, and the refusal leaves the first
 * client's file and pages alone; once the first is gone, the file can be
 * used again (DEV-21).
 */
static void test_second_user(void **state)
{
	struct tmem_client_config cfg;
	struct tmem_client *c2 = NULL;
	struct tier tr;
	uint32_t pool;

	(void)state;
	tier_open(&tr, "locked", 2 * MiB, 16 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, 2000, 1);
	cfg = tier_cfg(2 * MiB, tr.path, 16 * MiB, SEG);
	assert_int_equal(tmem_client_new(&cfg, &c2), -EBUSY);
	cfg = tier_cfg(2 * MiB, tr.path, 0, SEG);
	assert_int_equal(tmem_client_new(&cfg, &c2), -EBUSY);
	assert_true(file_exists(tr.path));
	settled_stats(tr.t.client);
	load_range(&tr.t, pool, 0, 2000, 1);
	tier_close(&tr);

	/* An existing file: the same, and it is usable after. */
	make_file(tr.path, 16 * MiB);
	assert_int_equal(tmem_client_new(&cfg, &tr.t.client), 0);
	assert_int_equal(tmem_client_new(&cfg, &c2), -EBUSY);
	tmem_client_free(tr.t.client);
	assert_int_equal(tmem_client_new(&cfg, &c2), 0);
	tmem_client_free(c2);
	assert_true(file_exists(tr.path));
	unlink(tr.path);
}

/*
 * The cleaner moves a page with the checksum it had: a page corrupted on
 * disk before its segment is cleaned stays -EIO after the move, never
 * becomes "good" other bytes.  One kept page of every old segment is
 * corrupted, so that whichever of them the cleaner picks, it moves some
 * (12 pages of the first segments made it fail when it picked others).
 */
static void test_cleaner_keeps_corruption(void **state)
{
	const uint64_t disk = 8 * MiB;
	const uint32_t limit = 40000, nseg = 8 * MiB / SEG;
	uint32_t pool, n1, n2, k, cor[8 * MiB / SEG], nc = 0, moved = 0;
	uint64_t before[8 * MiB / SEG], s, free_segs, avg;
	unsigned char *keep, hit[8 * MiB / SEG] = { 0 };
	struct tmem_stats st;
	struct tier tr;

	(void)state;
	keep = calloc(limit, 1);
	assert_non_null(keep);
	tier_open(&tr, "clean-corrupt", 2 * MiB, disk, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	for (k = 0;; k++) {
		assert_true(k < limit);
		tstore_ok(&tr.t, pool, k, 1);
		st = tstats(tr.t.client);
		if (st.disk_segments * SEG >= disk * 3 / 4)
			break;
	}
	n1 = k + 1;
	st = settled_stats(tr.t.client);
	avg = st.disk_bytes / st.disk_pages;
	for (k = 0; k < n1; k++) {
		s = k;
		keep[k] = splitmix64(&s) % 4 == 0;
		if (!keep[k])
			assert_int_equal(tmem_invalidate_page(tr.t.ctx, pool,
					 KEY_OBJ(k), KEY_IDX(k)), 1);
	}
	st = settled_stats(tr.t.client);
	/*
	 * A kept page of each old segment (the first half of the keys: the
	 * newest segment may still be in the writer's buffer, which would
	 * overwrite the flip): corrupt one byte of it.
	 */
	for (k = 0; k < n1 / 2; k++) {
		uint64_t h = key_handle(tr.t.client, pool, k);
		uint64_t seg;

		if (!keep[k] || !handle_on_disk(h))
			continue;
		seg = tmem_h_disk_off(h) / SEG;
		assert_true(seg < nseg);
		if (hit[seg])
			continue;
		hit[seg] = 1;
		before[nc] = tmem_h_disk_off(h);
		flip_byte(tr.path, before[nc] + tmem_h_len(h) / 2);
		cor[nc++] = k;
	}
	assert_true(nc >= 12);
	free_segs = disk / SEG - st.disk_segments;
	n2 = n1 + (uint32_t)((free_segs * SEG + tr.budget + 8 * SEG) / avg);
	assert_true(n2 <= limit);
	for (k = n1; k < n2; k++) {
		tstore_ok(&tr.t, pool, k, 1);
		keep[k] = 1;
	}
	st = settled_stats(tr.t.client);
	assert_true(st.cleaned_segments > 0);
	for (uint32_t i = 0; i < nc; i++) {
		uint64_t h = key_handle(tr.t.client, pool, cor[i]);

		moved += handle_on_disk(h) && tmem_h_disk_off(h) != before[i];
		assert_int_equal(tload(&tr.t, pool, cor[i], 1), -EIO);
		keep[cor[i]] = 0;
	}
	if (!moved)
		fail_msg("the cleaner moved none of the corrupted pages");
	for (k = 0; k < n2; k++)
		if (keep[k])
			tload_ok(&tr.t, pool, k, 1);
	free(keep);
	tier_close(&tr);
}

/* ---- hygiene of the backing file (DEV-22) ---------------------------- */

static int try_path(const char *path, uint64_t size)
{
	struct tmem_client_config cfg = tier_cfg(2 * MiB, path, size, SEG);
	struct tmem_client *c = NULL;
	int ret = tmem_client_new(&cfg, &c);

	if (!ret)
		tmem_client_free(c);
	return ret;
}

/* A symbolic link is refused, dangling or not, and nothing is created. */
static void test_symlink_refused(void **state)
{
	char target[PATH_MAX], link[PATH_MAX];
	struct stat sb;

	(void)state;
	tier_file(target, "target");
	tier_file(link, "link");
	make_file(target, 16 * MiB);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(try_path(link, 0), -ELOOP);
	assert_int_equal(try_path(link, 32 * MiB), -ELOOP);
	assert_int_equal(stat(target, &sb), 0);
	assert_int_equal(sb.st_size, 16 * MiB);	/* not grown */
	unlink(target);
	/* Dangling: O_CREAT does not follow it either. */
	assert_int_equal(try_path(link, 16 * MiB), -ELOOP);
	assert_false(file_exists(target));
	unlink(link);
	assert_int_equal(try_path(target, 16 * MiB), 0);
	assert_false(file_exists(target));	/* created, then removed */
}

/*
 * A file others may read or write, or that belongs to another user, is
 * refused (-EPERM) and left as it was; 0600 of our own is taken.
 */
static void test_private_file(void **state)
{
	static const mode_t shared[] = { 0644, 0640, 0620, 0604, 0602, 0666 };
	char path[PATH_MAX];
	struct stat sb;

	(void)state;
	tier_file(path, "mode");
	make_file(path, 16 * MiB);
	for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++) {
		assert_int_equal(chmod(path, shared[i]), 0);
		if (try_path(path, 0) != -EPERM)
			fail_msg("mode %04o was not refused", shared[i]);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, shared[i]);
	}
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(try_path(path, 0), 0);
	assert_int_equal(chmod(path, 0700), 0);	/* x bits are no leak */
	assert_int_equal(try_path(path, 0), 0);
	if (geteuid() == 0) {
		/* Another user's file, even 0600. */
		assert_int_equal(chmod(path, 0600), 0);
		assert_int_equal(chown(path, 65534, (gid_t)-1), 0);
		assert_int_equal(try_path(path, 0), -EPERM);
	} else {
		print_message("not root: the owner check is not tested\n");
	}
	assert_true(file_exists(path));
	unlink(path);
}

/*
 * tmem_client_release_backing() (a process exiting without freeing the
 * client): the created file is gone at once, pages already on disk still
 * load, stores over the budget are refused rather than wait; free after.
 */
static void test_release_backing(void **state)
{
	const uint32_t n = 3000;
	struct tier tr;
	uint32_t pool, k;

	(void)state;
	tier_open(&tr, "release", 2 * MiB, 16 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, n, 1);
	settled_stats(tr.t.client);
	assert_int_equal(old_disk_keys(&tr.t, pool, n, SEG, &k, 1), 1);
	tmem_client_release_backing(tr.t.client);
	assert_false(file_exists(tr.path));
	tload_ok(&tr.t, pool, k, 1);
	load_range(&tr.t, pool, 0, n, 1);
	for (k = n; k < 2 * n && tstore(&tr.t, pool, k, 1) == 0; k++)
		;
	assert_true(k < 2 * n);		/* refused, not waiting forever */
	tier_close(&tr);

	/* An existing file is kept. */
	make_file(tr.path, 16 * MiB);
	assert_int_equal(try_path(tr.path, 0), 0);
	{
		struct tmem_client_config cfg = tier_cfg(2 * MiB, tr.path, 0,
							 SEG);
		struct tmem_client *c;

		assert_int_equal(tmem_client_new(&cfg, &c), 0);
		tmem_client_release_backing(c);
		assert_true(file_exists(tr.path));
		tmem_client_free(c);
	}
	assert_true(file_exists(tr.path));
	unlink(tr.path);
}

/*
 * A loop device of @sector-byte sectors over a new file of @size bytes;
 * its path in @dev and the file's in @file.  False (the test skips) when
 * this process may not make one.  It detaches itself (autoclear) when
 * loop_fd, held open until loop_detach(), closes: also if the test fails
 * or the process dies.
 */
static int loop_fd = -1;

static bool loop_attach(char *dev, char *file, uint64_t size,
			unsigned int sector)
{
	struct loop_config lc = {
		.block_size = sector,
		.info.lo_flags = LO_FLAGS_AUTOCLEAR,
	};
	int ctl, n, fd, lfd;

	tier_file(file, "loop-backing");
	make_file(file, size);
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		goto no;
	n = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (n < 0)
		goto no;
	snprintf(dev, PATH_MAX, "/dev/loop%d", n);
	lfd = open(dev, O_RDWR | O_CLOEXEC);
	fd = open(file, O_RDWR | O_CLOEXEC);
	if (lfd < 0 || fd < 0) {
		if (lfd >= 0)
			close(lfd);
		if (fd >= 0)
			close(fd);
		goto no;
	}
	lc.fd = fd;
	n = ioctl(lfd, LOOP_CONFIGURE, &lc);
	close(fd);
	if (n) {
		close(lfd);
		goto no;
	}
	if (loop_fd >= 0)
		close(loop_fd);		/* a failed test's */
	loop_fd = lfd;
	return true;
no:
	print_message("no loop device (%s): skipped\n", strerror(errno));
	unlink(file);
	return false;
}

static void loop_detach(const char *file)
{
	close(loop_fd);
	loop_fd = -1;
	unlink(file);
}

/* Bytes of @path in [0, @len) that are not 0. */
static uint64_t nonzero_bytes(const char *path, uint64_t len)
{
	static uint8_t buf[64 * 1024];
	uint64_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	for (uint64_t off = 0; off < len; off += sizeof(buf)) {
		assert_int_equal(pread(fd, buf, sizeof(buf), off), sizeof(buf));
		for (size_t i = 0; i < sizeof(buf); i++)
			n += buf[i] != 0;
	}
	close(fd);
	return n;
}

/*
 * A block device: its logical block size (512 here) is what loads align
 * to, not 4096: one load of a ~2 KiB page reads less than 4 KiB.  When
 * the client goes, the range it used is discarded (the loop device punches
 * it out of its file: zeros) and the device stays.
 */
static void test_block_device(void **state)
{
	const uint64_t size = 8 * MiB;
	const uint32_t n = 3000;
	char dev[PATH_MAX], file[PATH_MAX];
	struct tmem_client_config cfg;
	struct tmem_stats st;
	struct tier tr;
	uint64_t h, reads, len;
	uint32_t pool, k, keys[64], nk, i;

	(void)state;
	if (!loop_attach(dev, file, size, 512))
		skip();
	memset(&tr, 0, sizeof(tr));
	cfg = tier_cfg(2 * MiB, dev, 0, SEG);
	assert_int_equal(tmem_client_new(&cfg, &tr.t.client), 0);
	assert_int_equal(tmem_ctx_new(tr.t.client, &tr.t.ctx), 0);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, n, 1);
	st = settled_stats(tr.t.client);
	assert_int_equal(st.disk_size, size);
	assert_true(st.disk_writes > 6);
	/* Past the first segment: a first load near offset 0 reads ahead. */
	nk = old_disk_keys(&tr.t, pool, n, SEG, keys, 64);
	for (i = 0; i < nk; i++)
		if (tmem_h_disk_off(key_handle(tr.t.client, pool, keys[i])) >
		    2 * SEG)
			break;
	assert_true(i < nk);
	k = keys[i];
	h = key_handle(tr.t.client, pool, k);
	len = tmem_h_len(h);
	assert_true(len + SEG_HDR <= 3072);	/* tier_page(): ~2.1 KiB */
	reads = st.disk_read_bytes;
	tload_ok(&tr.t, pool, k, 1);
	reads = tstats(tr.t.client).disk_read_bytes - reads;
	if (reads % 512 || reads > (len + SEG_HDR + 511) / 512 * 512 + 512)
		fail_msg("one load of %llu bytes read %llu bytes",
			 (unsigned long long)len, (unsigned long long)reads);
	assert_true(nonzero_bytes(dev, size) > 0);
	tclient_close(&tr.t);
	assert_true(file_exists(dev));
	assert_int_equal(nonzero_bytes(dev, size), 0);
	loop_detach(file);
}

/* ---- reset ------------------------------------------------------------ */

static void test_reset(void **state)
{
	const uint32_t n = 3000;
	struct tier tr;
	struct tmem_stats fresh, st;
	uint32_t pool;

	(void)state;
	tier_open(&tr, "reset", 2 * MiB, 16 * MiB, SEG);
	fresh = tstats(tr.t.client);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	store_range(&tr.t, pool, 0, n, 1);
	load_range(&tr.t, pool, 0, n / 4, 1);	/* some disk reads */
	st = settled_stats(tr.t.client);
	assert_true(st.disk_pages > 0);
	assert_true(st.disk_reads > 0);

	assert_int_equal(tmem_client_reset(tr.t.client), 0);
	st = tstats(tr.t.client);
	print_stats("after reset", &st);
	assert_int_equal(st.pools, 0);
	assert_int_equal(st.pages, 0);
	assert_int_equal(st.compressed_bytes, 0);
	assert_int_equal(st.data_bytes, 0);
	assert_int_equal(st.host_bytes, fresh.host_bytes);
	assert_int_equal(st.disk_size, 16 * MiB);
	assert_int_equal(st.disk_segment_size, SEG);
	assert_int_equal(st.disk_segments, 0);
	assert_int_equal(st.disk_pages, 0);
	assert_int_equal(st.disk_bytes, 0);
	assert_int_equal(st.written_back, 0);
	assert_int_equal(st.disk_reads, 0);
	assert_int_equal(st.disk_read_bytes, 0);
	assert_int_equal(st.disk_writes, 0);
	assert_int_equal(st.disk_write_bytes, 0);
	assert_int_equal(st.disk_errors, 0);
	assert_int_equal(st.cleaned_segments, 0);
	assert_int_equal(st.disk_failed, 0);

	/* Reset while the writer is busy (no settling), a few times. */
	for (int round = 0; round < 3; round++) {
		pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
		store_range(&tr.t, pool, 0, 2000 + 500 * (uint32_t)round, 1);
		assert_int_equal(tmem_client_reset(tr.t.client), 0);
		st = tstats(tr.t.client);
		assert_int_equal(st.pages, 0);
		assert_int_equal(st.disk_pages, 0);
		assert_int_equal(st.disk_segments, 0);
		assert_int_equal(st.written_back, 0);
		assert_int_equal(st.host_bytes, fresh.host_bytes);
	}

	/* Works as before, over budget, twice the data this time. */
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	tload_miss(&tr.t, pool, 0);
	store_range(&tr.t, pool, 0, 2 * n, 2);
	st = settled_stats(tr.t.client);
	check_tier_invariants(&st, tr.disk, tr.seg);
	assert_true(st.disk_pages > 0);
	load_range(&tr.t, pool, 0, 2 * n, 2);
	tier_close(&tr);
}

/* ---- threads ---------------------------------------------------------- */

#define NTHREADS	3
#define TKEYS		1500	/* keys per thread */
#define TOPS		5000	/* operations per thread */

struct tworker {
	struct tmem_client *client;
	struct tmem_ctx *ctx;
	uint32_t pool, base;
	uint32_t ver[TKEYS];	/* last version stored (never reused) */
	unsigned char held[TKEYS];
	char err[256];
	pthread_t th;
};

static atomic_int workers_running;

#define WCHECK(w, cond, ...)						\
	do {								\
		if (!(cond)) {						\
			snprintf((w)->err, sizeof((w)->err), __VA_ARGS__); \
			goto out;					\
		}							\
	} while (0)

static void *tworker_main(void *arg)
{
	struct tworker *w = arg;
	unsigned char page[PAGE], want[PAGE];
	uint64_t s = 0x1234 + w->base;

	for (int op = 0; op < TOPS; op++) {
		uint64_t r = splitmix64(&s);
		uint32_t i = (uint32_t)(r >> 16) % TKEYS, k = w->base + i;
		int ret;

		switch (r % 20) {
		case 0 ... 10:		/* store (a new version) */
			tier_page(page, TSEED(k, w->ver[i] + 1));
			ret = tmem_store(w->ctx, w->pool, KEY_OBJ(k),
					 KEY_IDX(k), page);
			WCHECK(w, ret == 0, "store key %u: %d (%s)", k, ret,
			       tmem_strerror(ret));
			w->ver[i]++;
			w->held[i] = 1;
			break;
		case 11 ... 16:		/* load */
			ret = tmem_load(w->ctx, w->pool, KEY_OBJ(k),
					KEY_IDX(k), page);
			if (!w->held[i]) {
				WCHECK(w, ret == -ENOENT,
				       "load of absent key %u: %d", k, ret);
				break;
			}
			WCHECK(w, ret == 0, "load key %u: %d (%s)", k, ret,
			       tmem_strerror(ret));
			tier_page(want, TSEED(k, w->ver[i]));
			WCHECK(w, memcmp(page, want, PAGE) == 0,
			       "key %u: bytes are not version %u", k,
			       w->ver[i]);
			break;
		default:		/* invalidate */
			ret = tmem_invalidate_page(w->ctx, w->pool, KEY_OBJ(k),
						   KEY_IDX(k));
			WCHECK(w, ret == w->held[i],
			       "invalidate key %u: %d, held %d", k, ret,
			       w->held[i]);
			w->held[i] = 0;
			break;
		}
	}
out:
	atomic_fetch_sub(&workers_running, 1);
	return NULL;
}

/*
 * Threads with their own contexts store, load and invalidate their own
 * keys of one persistent pool, well over budget with the tier on: no
 * error, every load the last stored bytes, the budget holds throughout.
 */
static void test_threads(void **state)
{
	struct tier tr;
	struct tmem_stats st;
	struct tworker *w;
	uint32_t pool;
	int i;

	(void)state;
	tier_open(&tr, "threads", 2 * MiB, 32 * MiB, SEG);
	pool = tpool_new(&tr.t, TMEM_POOL_PERSISTENT);
	w = calloc(NTHREADS, sizeof(*w));
	assert_non_null(w);
	atomic_store(&workers_running, NTHREADS);
	for (i = 0; i < NTHREADS; i++) {
		w[i].client = tr.t.client;
		w[i].pool = pool;
		w[i].base = (uint32_t)i * 4096;
		assert_int_equal(tmem_ctx_new(tr.t.client, &w[i].ctx), 0);
	}
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&w[i].th, NULL, tworker_main,
						&w[i]), 0);
	while (atomic_load(&workers_running) > 0) {
		check_budget(tr.t.client);
		usleep(2000);
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(w[i].th, NULL);
	for (i = 0; i < NTHREADS; i++)
		if (w[i].err[0])
			fail_msg("thread %d: %s", i, w[i].err);

	st = settled_stats(tr.t.client);
	print_stats("threads", &st);
	check_tier_invariants(&st, tr.disk, tr.seg);
	assert_int_equal(st.failed_stores, 0);
	assert_int_equal(st.disk_errors, 0);
	assert_true(st.written_back > 0);
	for (i = 0; i < NTHREADS; i++) {
		for (uint32_t j = 0; j < TKEYS; j++) {
			uint32_t k = w[i].base + j;

			if (w[i].held[j])
				tload_ok(&tr.t, pool, k, w[i].ver[j]);
			else
				tload_miss(&tr.t, pool, k);
		}
		tmem_ctx_free(w[i].ctx);
	}
	free(w);
	tier_close(&tr);
}

/* ---- main ------------------------------------------------------------- */

/*
 * Watchdog: a test still running after WATCHDOG_SECONDS has hung (a
 * store waiting for a write-back that never comes, say).  Print the
 * client's statistics (twice, a second apart: counters still moving mean
 * a livelock) and exit, rather than leave meson to kill a silent process.
 */
static void remove_tier_dir(void);

#define WATCHDOG_SECONDS 60.0	/* TMEM_TEST_WATCHDOG overrides */
static double watchdog_seconds = WATCHDOG_SECONDS;
static _Atomic double test_started;	/* 0: between tests */

static void *watchdog_main(void *arg)
{
	(void)arg;
	for (;;) {
		double t0 = atomic_load(&test_started);
		struct tmem_client *c;
		struct tmem_stats st;

		usleep(100000);
		if (!t0 || now_sec() - t0 < watchdog_seconds)
			continue;
		fprintf(stdout, "WATCHDOG: a test has run for %.0f s\n",
			watchdog_seconds);
		c = atomic_load(&watched_client);
		for (int i = 0; c && i < 2; i++) {
			memset(&st, 0, sizeof(st));
			tmem_client_stats(c, &st);
			print_stats("WATCHDOG", &st);
			sleep(1);
		}
		fflush(stdout);
		remove_tier_dir();
		_exit(1);
	}
	return NULL;
}

static int test_setup(void **state)
{
	(void)state;
	atomic_store(&test_started, now_sec());
	return 0;
}

static int test_teardown(void **state)
{
	(void)state;
	print_message("(%.2f s)\n", now_sec() - atomic_load(&test_started));
	atomic_store(&test_started, 0);
	return 0;
}

static void remove_tier_dir(void)
{
	char path[PATH_MAX + 256];
	struct dirent *de;
	DIR *d = opendir(tier_dir);

	if (d) {
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", tier_dir,
				 de->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(tier_dir);
}

#define T(f) cmocka_unit_test_setup_teardown(f, test_setup, test_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_no_tier),
		T(test_config_errors),
		T(test_create_file),
		T(test_far_over_budget),
		T(test_watermarks),
		T(test_ephemeral_not_written_back),
		T(test_ephemeral_and_persistent),
		T(test_invalidate_frees_disk),
		T(test_drop_during_writeback),
		T(test_overwrite_written_back),
		T(test_readahead),
		T(test_cleaner),
		T(test_cleaner_sparse),
		T(test_tier_full),
		T(test_write_error),
		T(test_write_error_after_writeback),
		T(test_read_error),
		T(test_corrupt_byte),
		T(test_wrong_key),
		T(test_cleaner_keeps_corruption),
		T(test_second_user),
		T(test_symlink_refused),
		T(test_private_file),
		T(test_block_device),
		T(test_release_backing),
		T(test_reset),
		T(test_threads),
		/* Last: when it hangs, the watchdog ends the binary. */
		T(test_cleaner_room),
	};
	const char *tmp = getenv("TMPDIR");
	const char *filter = getenv("TMEM_TEST_FILTER");	/* e.g. "*cleaner*" */
	pthread_t watchdog;
	int ret;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(tier_dir, sizeof(tier_dir), "%s/test-tier-XXXXXX",
			     tmp) >= sizeof(tier_dir)) {
		fprintf(stderr, "TMPDIR too long\n");
		return 1;
	}
	if (!mkdtemp(tier_dir)) {
		perror("mkdtemp");
		return 1;
	}
	ret = tmem_test_probe_tier(tier_dir);
	if (ret == -ENOTSUP && !TMEM_TEST_TIER_EXPECTED) {
		printf("SKIP: libtmem was built without the disk tier (liburing)\n");
		remove_tier_dir();
		return T_EXIT_SKIP;
	}
	if (filter)
		cmocka_set_test_filter(filter);
	if (getenv("TMEM_TEST_WATCHDOG"))
		watchdog_seconds = atof(getenv("TMEM_TEST_WATCHDOG"));
	if (pthread_create(&watchdog, NULL, watchdog_main, NULL) == 0)
		pthread_detach(watchdog);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	remove_tier_dir();
	return ret;
}
