/* SPDX-License-Identifier: MIT */
/*
 * Elastic memory (tmem.h: tmem_client_set_budget(), tmem_client_reclaim()):
 * a grown budget takes stores at once; a budget lowered below what is
 * held keeps every persistent page, never lets host_bytes grow
 * (DEV-25's library half: never above max(new budget, host bytes at the
 * shrink)), refuses every store at once while over it (DEV-25), even
 * one that fits in a freed slot and even with a disk tier whose writer
 * is stuck (no room wait), and comes back within the
 * budget by reclaim: ephemeral pages evicted, persistent ones written
 * back to the tier, or (with neither) only as pages are invalidated.
 * A thread changing the budget every millisecond while four others
 * store, load and invalidate loses no page and never goes over DEV-25's
 * bound as the resizer records it (see struct shared).
 *
 * Backing files live in a mkdtemp() directory under $TMPDIR (or /tmp).
 * Without liburing the tests that need a disk tier skip, unless meson
 * found liburing (TMEM_TEST_TIER_EXPECTED=1).
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "wire-test.h"

#ifndef TMEM_TEST_TIER_EXPECTED
#define TMEM_TEST_TIER_EXPECTED 1
#endif

#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define SEG		(64 * KiB)
#define KEY_OBJ(k)	(1 + ((uint64_t)(k) >> 10))
#define KEY_IDX(k)	((uint32_t)(k) & 1023)
#define SEED(k, ver)	(((uint64_t)(k) << 16) | (ver))

static char dir[PATH_MAX / 2];
static unsigned int file_seq;
static bool have_tier;

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Text mostly (2-3x), now and then an incompressible page. */
static enum page_kind key_kind(uint32_t k)
{
	return k % 8 == 7 ? PK_RANDOM : PK_TEXT;
}

static int kstore(struct tmem_ctx *ctx, uint32_t pool, uint32_t k,
		  uint32_t ver)
{
	unsigned char page[PAGE];

	fill_page(page, key_kind(k), SEED(k, ver));
	return tmem_store(ctx, pool, KEY_OBJ(k), KEY_IDX(k), page);
}

static void kload_ok(struct tmem_ctx *ctx, uint32_t pool, uint32_t k,
		     uint32_t ver)
{
	unsigned char page[PAGE];
	int ret = tmem_load(ctx, pool, KEY_OBJ(k), KEY_IDX(k), page);

	if (ret)
		fail_msg("load pool %u key %u: %d (%s)", pool, k, ret,
			 tmem_strerror(ret));
	assert_page_is(page, key_kind(k), SEED(k, ver));
}

static struct tmem_stats stats(struct tmem_client *c)
{
	struct tmem_stats st;

	memset(&st, 0xff, sizeof(st));
	assert_int_equal(tmem_client_stats2(c, &st, sizeof(st)), 0);
	return st;
}

static uint64_t host_bytes(struct tmem_client *c)
{
	return stats(c).host_bytes;
}

/* Store keys from @from on until host_bytes reaches @bytes; keys stored. */
static uint32_t fill_to(struct tclient *t, uint32_t pool, uint32_t from,
			uint64_t bytes)
{
	uint32_t k = from;

	while (host_bytes(t->client) < bytes) {
		int ret = kstore(t->ctx, pool, k, 1);

		if (ret)
			fail_msg("store key %u at %llu host bytes: %d (%s)", k,
				 (unsigned long long)host_bytes(t->client),
				 ret, tmem_strerror(ret));
		k++;
	}
	return k - from;
}

static void open_plain(struct tclient *t, uint64_t budget)
{
	struct tmem_client_config cfg = test_config(budget);

	tclient_open(t, &cfg);
}

/* A client with a disk tier of @disk bytes in the test directory. */
static void open_tier(struct tclient *t, char *path, uint64_t budget,
		      uint64_t disk, uint32_t room_wait_ms)
{
	struct tmem_client_config cfg = test_config(budget);
	char why[256];
	int ret;

	snprintf(path, PATH_MAX, "%s/tier-%u", dir, file_seq++);
	cfg.backing_file = path;
	cfg.backing_size = disk;
	cfg.segment_size = SEG;
	cfg.room_wait_ms = room_wait_ms;
	ret = tmem_client_new2(&cfg, sizeof(cfg), &t->client, why,
			       sizeof(why));
	if (ret)
		fail_msg("tmem_client_new2: %d: %s", ret, why);
	assert_int_equal(tmem_ctx_new(t->client, &t->ctx), 0);
}

static void close_tier(struct tclient *t, const char *path)
{
	tclient_close(t);
	unlink(path);
}

/* Reclaim until DONE or @seconds; the last result. */
static int reclaim_until_done(struct tmem_client *c, double seconds,
			      unsigned int *busyp)
{
	double end = now_sec() + seconds;
	int r;

	*busyp = 0;
	while ((r = tmem_client_reclaim(c, 256)) != TMEM_RECLAIM_DONE &&
	       now_sec() < end) {
		if (r == TMEM_RECLAIM_BUSY)
			++*busyp;
		usleep(2000);
	}
	return r;
}

/* ---- grow, refusals --------------------------------------------------- */

static void test_grow(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool, k = 0;
	int ret;

	(void)state;
	open_plain(&t, 1 * MiB);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	while ((ret = kstore(t.ctx, pool, k, 1)) == 0)
		k++;
	assert_int_equal(ret, -ENOSPC);
	assert_true(k > 10);
	/* Refused again: the budget is full. */
	assert_int_equal(kstore(t.ctx, pool, k, 1), -ENOSPC);
	assert_int_equal(tmem_client_set_budget(t.client, 4 * MiB, NULL, 0),
			 0);
	st = stats(t.client);
	assert_int_equal(st.budget_bytes, 4 * MiB);
	assert_int_equal(st.shrinking, 0);
	/* At once: the store refused before the grow now succeeds. */
	assert_int_equal(kstore(t.ctx, pool, k, 1), 0);
	kload_ok(t.ctx, pool, k, 1);
	assert_int_equal(tmem_client_reclaim(t.client, 16), TMEM_RECLAIM_DONE);
	tclient_close(&t);
}

static void test_refusals(void **state)
{
	struct tclient t;
	char why[256], path[PATH_MAX];
	uint64_t before;

	(void)state;
	open_plain(&t, 8 * MiB);
	tpool_new(&t, TMEM_POOL_PERSISTENT);
	memset(why, 'x', sizeof(why));
	assert_int_equal(tmem_client_set_budget(t.client, 0, why, sizeof(why)),
			 -EINVAL);
	assert_non_null(strstr(why, "budget_bytes must be set to more than 0"));
	/* A pool id's shards (about 8 KiB) stay until a reset. */
	assert_int_equal(tmem_client_set_budget(t.client, 4096, why,
						sizeof(why)), -ENOSPC);
	if (strncmp(why, "budget_bytes 4096 is below the ", 31))
		fail_msg("reason: %s", why);
	assert_non_null(strstr(why, "no reclaim can give back"));
	/* No buffer: the same answers. */
	assert_int_equal(tmem_client_set_budget(t.client, 4096, NULL, 0),
			 -ENOSPC);
	assert_int_equal(stats(t.client).budget_bytes, 8 * MiB);
	tclient_close(&t);

	if (!have_tier)
		return;
	/* The disk tier's buffers: 5 segments of 64 KiB and its tables. */
	open_tier(&t, path, 8 * MiB, 4 * MiB, 0);
	before = host_bytes(t.client);
	assert_true(before > 5 * SEG);
	assert_int_equal(tmem_client_set_budget(t.client, 5 * SEG, why,
						sizeof(why)), -ENOSPC);
	if (strncmp(why, "budget_bytes 327680 is below the ", 33))
		fail_msg("reason: %s", why);
	assert_non_null(strstr(why, "the disk tier's buffers"));
	print_message("refused: %s\n", why);
	assert_int_equal(stats(t.client).budget_bytes, 8 * MiB);
	/* The floor itself is a budget: nothing more fits, nothing lost. */
	assert_int_equal(tmem_client_set_budget(t.client, before, NULL, 0), 0);
	assert_int_equal(stats(t.client).budget_bytes, before);
	close_tier(&t, path);
}

/* ---- shrink: ephemeral and persistent --------------------------------- */

static void test_shrink_ephemeral(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pers, eph, np, ne;
	uint64_t hp, h, goal;
	unsigned int busy;
	double t0, dt;
	int r;

	(void)state;
	open_plain(&t, 16 * MiB);
	assert_int_equal(tmem_client_set_features(t.client, ~0ull), 0);
	pers = tpool_new(&t, TMEM_POOL_PERSISTENT);
	eph = tpool_new(&t, TMEM_POOL_EPHEMERAL);
	np = fill_to(&t, pers, 0, 4 * MiB);
	hp = host_bytes(t.client);
	ne = fill_to(&t, eph, 100000, 12 * MiB);
	h = host_bytes(t.client);
	goal = hp + (h - hp) / 3;
	assert_int_equal(tmem_client_set_budget(t.client, goal, NULL, 0), 0);
	st = stats(t.client);
	assert_int_equal(st.budget_bytes, goal);
	assert_int_equal(st.shrinking, 1);
	assert_int_equal(st.evictions, 0);
	t0 = now_sec();
	r = reclaim_until_done(t.client, 10, &busy);
	dt = now_sec() - t0;
	st = stats(t.client);
	if (r != TMEM_RECLAIM_DONE)
		fail_msg("reclaim: %d, host_bytes %llu over %llu", r,
			 (unsigned long long)st.host_bytes,
			 (unsigned long long)goal);
	assert_true(busy > 0);
	assert_true(st.host_bytes <= goal);
	assert_int_equal(st.shrinking, 0);
	assert_true(st.evictions > 0 && st.evictions < ne);
	print_message("ephemeral: %u persistent, %u ephemeral pages; %llu "
		      "evicted to go from %llu to %llu bytes in %.1f ms\n",
		      np, ne, (unsigned long long)st.evictions,
		      (unsigned long long)h, (unsigned long long)st.host_bytes,
		      dt * 1e3);
	/* Only ephemeral pages went: every persistent one is there. */
	for (uint32_t k = 0; k < np; k++)
		kload_ok(t.ctx, pers, k, 1);
	assert_int_equal(st.pages, np + ne - st.evictions);
	tclient_close(&t);
}

/* ---- shrink: disk tier ------------------------------------------------ */

static void test_shrink_tier(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	char path[PATH_MAX];
	uint32_t pool, n;
	unsigned int busy;
	uint64_t h0;
	double t0, dt;
	int r;

	(void)state;
	if (!have_tier)
		skip();
	open_tier(&t, path, 8 * MiB, 32 * MiB, 0);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	/* Under the high watermark (90%): nothing written back yet. */
	n = fill_to(&t, pool, 0, 6 * MiB);
	assert_int_equal(stats(t.client).written_back, 0);
	assert_int_equal(tmem_client_set_budget(t.client, 3 * MiB, NULL, 0),
			 0);
	h0 = host_bytes(t.client);
	t0 = now_sec();
	assert_int_equal(tmem_client_reclaim(t.client, 256),
			 TMEM_RECLAIM_BUSY);
	r = reclaim_until_done(t.client, 5, &busy);
	dt = now_sec() - t0;
	st = stats(t.client);
	print_message("tier: %.1f MiB given back in %.0f ms (%.0f MiB/s), "
		      "%llu pages written back\n",
		      (double)(h0 - st.host_bytes) / MiB, dt * 1e3,
		      (double)(h0 - st.host_bytes) / MiB / dt,
		      (unsigned long long)st.written_back);
	if (r != TMEM_RECLAIM_DONE)
		fail_msg("reclaim: %d after 5 s, host_bytes %llu, written "
			 "back %llu, disk_full %llu", r,
			 (unsigned long long)st.host_bytes,
			 (unsigned long long)st.written_back,
			 (unsigned long long)st.disk_full);
	assert_true(st.host_bytes <= 3 * MiB);
	assert_true(st.written_back > 0);
	assert_int_equal(st.disk_failed, 0);
	assert_int_equal(st.shrinking, 0);
	assert_int_equal(st.evictions, 0);
	for (uint32_t k = 0; k < n; k++)
		kload_ok(t.ctx, pool, k, 1);
	close_tier(&t, path);
}

/* One STORE through the wire; the response status. */
static uint8_t wire_store(struct tmem_ctx *ctx, uint32_t pool, uint32_t k)
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

	fill_page(page, PK_RANDOM, SEED(k, 2));
	memset(&resp, 0xee, sizeof(resp));
	assert_int_equal(tmem_handle_request(ctx, out, 2, &in, 1),
			 sizeof(resp));
	return resp.status;
}

/*
 * Shrinking with a tier whose writer is stuck in its write: a store over
 * the budget is refused at once, neither waiting room_wait_ms (5 s) on
 * the wire nor for the writer's pass in a direct call.
 */
static void test_shrink_no_room_wait(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	char path[PATH_MAX];
	uint64_t failed, h0;
	uint32_t pool, n, k;
	uint8_t status = 0;
	double t0, dt = 0;
	int ret = 0;

	(void)state;
	if (!have_tier)
		skip();
	open_tier(&t, path, 8 * MiB, 32 * MiB, 5000);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n = fill_to(&t, pool, 0, 6 * MiB);
	h0 = host_bytes(t.client);
	assert_int_equal(tmem_client_inject_io_hang(t.client, TMEM_IO_WRITE),
			 0);
	assert_int_equal(tmem_client_set_budget(t.client, 3 * MiB, NULL, 0),
			 0);
	failed = stats(t.client).failed_stores_budget;
	for (k = n; k < n + 200; k++) {
		t0 = now_sec();
		status = wire_store(t.ctx, pool, k);
		dt = now_sec() - t0;
		if (dt >= 0.1)
			fail_msg("wire store while shrinking: status %u after "
				 "%.1f ms", status, dt * 1e3);
		if (status == VIRTIO_TMEM_S_REJECTED)
			break;
		assert_int_equal(status, VIRTIO_TMEM_S_OK);
	}
	/* DEV-25: the very first, though it might fit in a free slot. */
	assert_int_equal(k, n);
	print_message("wire store %u while shrinking: status %u in %.2f ms\n",
		      k - n, status, dt * 1e3);
	assert_int_equal(status, VIRTIO_TMEM_S_REJECTED);
	for (k = n + 200; k < n + 400; k++) {
		t0 = now_sec();
		ret = kstore(t.ctx, pool, k, 1);
		dt = now_sec() - t0;
		if (dt >= 0.1)
			fail_msg("store while shrinking: %d after %.1f ms",
				 ret, dt * 1e3);
		if (ret == -ENOSPC)
			break;
		assert_int_equal(ret, 0);
	}
	assert_int_equal(ret, -ENOSPC);
	st = stats(t.client);
	assert_int_equal(st.failed_stores_budget, failed + 2);
	assert_int_equal(st.shrinking, 1);
	assert_true(st.host_bytes <= h0);
	/* The writer goes on once its write does. */
	assert_int_equal(tmem_client_inject_io_hang(t.client, 0), 0);
	for (uint32_t k = 0; k < n; k++)
		kload_ok(t.ctx, pool, k, 1);
	close_tier(&t, path);
}

/*
 * A hung disk: the writer waits for its write without end.  Reclaim
 * says STUCK within a few seconds (not BUSY forever, which would keep
 * the device from asking the guest); once the write goes on, BUSY or
 * DONE again, and every page loads.
 */
static void test_shrink_tier_hung(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	char path[PATH_MAX];
	uint32_t pool, n;
	unsigned int busy = 0;
	double t0, dt;
	int r;

	(void)state;
	if (!have_tier)
		skip();
	open_tier(&t, path, 8 * MiB, 32 * MiB, 0);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n = fill_to(&t, pool, 0, 6 * MiB);
	assert_int_equal(tmem_client_inject_io_hang(t.client, TMEM_IO_WRITE),
			 0);
	assert_int_equal(tmem_client_set_budget(t.client, 3 * MiB, NULL, 0),
			 0);
	t0 = now_sec();
	while ((r = tmem_client_reclaim(t.client, 256)) == TMEM_RECLAIM_BUSY &&
	       now_sec() < t0 + 10) {
		busy++;
		usleep(10000);
	}
	dt = now_sec() - t0;
	st = stats(t.client);
	print_message("hung tier: reclaim %d after %.2f s (%u BUSY), host_bytes "
		      "%llu\n", r, dt, busy,
		      (unsigned long long)st.host_bytes);
	assert_int_equal(r, TMEM_RECLAIM_STUCK);
	assert_true(dt < 5);
	assert_true(st.host_bytes > 3 * MiB);
	assert_int_equal(st.disk_failed, 0);
	/* Still STUCK while hung. */
	assert_int_equal(tmem_client_reclaim(t.client, 256),
			 TMEM_RECLAIM_STUCK);
	assert_int_equal(tmem_client_inject_io_hang(t.client, 0), 0);
	r = reclaim_until_done(t.client, 10, &busy);
	st = stats(t.client);
	if (r != TMEM_RECLAIM_DONE)
		fail_msg("reclaim after the hang: %d, host_bytes %llu", r,
			 (unsigned long long)st.host_bytes);
	assert_true(st.host_bytes <= 3 * MiB);
	assert_true(st.written_back > 0);
	for (uint32_t k = 0; k < n; k++)
		kload_ok(t.ctx, pool, k, 1);
	close_tier(&t, path);
}

/* ---- shrink: neither -------------------------------------------------- */

/* DEV-25: host_bytes never above max(budget, host bytes at the shrink). */
#define CHECK_BOUND(c, bound)						\
	do {								\
		uint64_t _h = host_bytes(c);				\
		if (_h > (bound))					\
			fail_msg("host_bytes %llu over %llu",		\
				 (unsigned long long)_h,		\
				 (unsigned long long)(bound));		\
	} while (0)

static void test_shrink_stuck(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pool, n, k, refused = 0, stored = 0;
	uint64_t h0, goal, bound, before, failed;
	unsigned char page[PAGE];
	int r, ret;

	(void)state;
	open_plain(&t, 8 * MiB);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n = fill_to(&t, pool, 0, 6 * MiB);
	h0 = host_bytes(t.client);
	goal = h0 / 2;
	bound = h0 > goal ? h0 : goal;
	assert_int_equal(tmem_client_set_budget(t.client, goal, NULL, 0), 0);
	assert_int_equal(tmem_client_reclaim(t.client, 256),
			 TMEM_RECLAIM_STUCK);
	CHECK_BOUND(t.client, bound);
	/*
	 * A quarter of the keys given back: slots free (compaction gives
	 * whole slabs back), but still over budget.
	 */
	for (k = 1; k < n; k += 4)
		assert_int_equal(tmem_invalidate_page(t.ctx, pool, KEY_OBJ(k),
						      KEY_IDX(k)), 1);
	st = stats(t.client);
	print_message("stuck: %llu host bytes after invalidating a quarter, "
		      "budget %llu\n", (unsigned long long)st.host_bytes,
		      (unsigned long long)goal);
	assert_true(st.host_bytes > goal);
	failed = st.failed_stores_budget;
	/*
	 * DEV-25: while over budget every store is refused, even one that
	 * fits in a slot just freed, new key or overwrite alike, and the
	 * old copy goes.
	 */
	for (k = 0; k < 400; k++) {
		uint32_t key = k % 4 == 3 ? n + k : k;

		before = host_bytes(t.client);
		ret = kstore(t.ctx, pool, key, 2);
		if (ret != -ENOSPC)
			fail_msg("store key %u while over budget (%llu host "
				 "bytes, budget %llu): %d", key,
				 (unsigned long long)before,
				 (unsigned long long)goal, ret);
		refused++;
		ret = tmem_load(t.ctx, pool, KEY_OBJ(key), KEY_IDX(key), page);
		assert_int_equal(ret, -ENOENT);
		CHECK_BOUND(t.client, bound);
		assert_true(host_bytes(t.client) <= before);
	}
	st = stats(t.client);
	print_message("stuck: %u of 400 stores refused, %u stored\n",
		      refused, stored);
	assert_int_equal(st.failed_stores_budget, failed + refused);
	assert_int_equal(st.shrinking, 1);
	/* Compacting the holes the drops left, then nothing. */
	while ((r = tmem_client_reclaim(t.client, 256)) == TMEM_RECLAIM_BUSY)
		;
	assert_int_equal(r, TMEM_RECLAIM_STUCK);
	/* The guest gives pages back: invalidations bring DONE. */
	r = TMEM_RECLAIM_STUCK;
	for (k = n; k-- > 0 && r != TMEM_RECLAIM_DONE;) {
		assert_true(tmem_invalidate_page(t.ctx, pool, KEY_OBJ(k),
						 KEY_IDX(k)) >= 0);
		CHECK_BOUND(t.client, bound);
		if (k % 16 == 0)
			r = tmem_client_reclaim(t.client, 256);
	}
	assert_int_equal(r, TMEM_RECLAIM_DONE);
	assert_true(k > 0);
	st = stats(t.client);
	assert_true(st.host_bytes <= goal);
	assert_int_equal(st.shrinking, 0);
	print_message("stuck: DONE after invalidating %u of %u keys\n",
		      n - k, n);
	/* What is left is all there: not the given back, nor the refused. */
	for (uint32_t i = 0; i < k; i++) {
		ret = tmem_load(t.ctx, pool, KEY_OBJ(i), KEY_IDX(i), page);
		if (i % 4 == 1 || (i < 400 && i % 4 != 3)) {
			assert_int_equal(ret, -ENOENT);
			continue;
		}
		kload_ok(t.ctx, pool, i, 1);
	}
	/* Within the budget: stores succeed again. */
	for (k = 0; k < 16; k++) {
		assert_int_equal(kstore(t.ctx, pool, k, 3), 0);
		stored++;
		kload_ok(t.ctx, pool, k, 3);
	}
	assert_true(host_bytes(t.client) <= goal);
	tclient_close(&t);
}

/* ---- STUCK only when nothing is left (DEV-26's library half) ---------- */

/* Reclaim until it is not BUSY; the result.  Never DONE here. */
static int reclaim_until_stuck(struct tmem_client *c, double seconds)
{
	double end = now_sec() + seconds;
	int r;

	while ((r = tmem_client_reclaim(c, 64)) == TMEM_RECLAIM_BUSY &&
	       now_sec() < end)
		usleep(2000);
	return r;
}

/*
 * Below what the persistent pages need, no tier: BUSY while ephemeral
 * pages are left, STUCK once every one of them is gone.
 */
static void test_stuck_after_every_ephemeral(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pers, eph, np, ne;
	unsigned char page[PAGE];
	int r;

	(void)state;
	open_plain(&t, 16 * MiB);
	assert_int_equal(tmem_client_set_features(t.client, ~0ull), 0);
	pers = tpool_new(&t, TMEM_POOL_PERSISTENT);
	eph = tpool_new(&t, TMEM_POOL_EPHEMERAL);
	np = fill_to(&t, pers, 0, 4 * MiB);
	ne = fill_to(&t, eph, 100000, 8 * MiB);
	assert_int_equal(tmem_client_set_budget(t.client, 2 * MiB, NULL, 0),
			 0);
	/* One step evicts about max_pages: not all of them at once. */
	assert_int_equal(tmem_client_reclaim(t.client, 64), TMEM_RECLAIM_BUSY);
	r = reclaim_until_stuck(t.client, 10);
	assert_int_equal(r, TMEM_RECLAIM_STUCK);
	st = stats(t.client);
	assert_int_equal(st.evictions, ne);
	assert_int_equal(st.pages, np);
	assert_int_equal(st.shrinking, 1);
	for (uint32_t k = 100000; k < 100000 + ne; k++)
		assert_int_equal(tmem_load(t.ctx, eph, KEY_OBJ(k), KEY_IDX(k),
					   page), -ENOENT);
	for (uint32_t k = 0; k < np; k++)
		kload_ok(t.ctx, pers, k, 1);
	tclient_close(&t);
}

/* A tier too small for what must go: STUCK only once it is full. */
static void test_stuck_when_tier_full(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	char path[PATH_MAX];
	uint32_t pool, n;
	int r;

	(void)state;
	if (!have_tier)
		skip();
	open_tier(&t, path, 8 * MiB, 8 * SEG, 0);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	n = fill_to(&t, pool, 0, 6 * MiB);
	assert_int_equal(tmem_client_set_budget(t.client, 2 * MiB, NULL, 0),
			 0);
	/*
	 * The writer may have filled the small tier while the keys were
	 * stored (it writes back ahead of the budget): then the first call
	 * is STUCK already (seen once on a loaded machine), else BUSY.
	 */
	r = tmem_client_reclaim(t.client, 64);
	assert_true(r == TMEM_RECLAIM_BUSY || r == TMEM_RECLAIM_STUCK);
	if (r == TMEM_RECLAIM_BUSY)
		r = reclaim_until_stuck(t.client, 10);
	st = stats(t.client);
	print_message("small tier: reclaim %d, %llu pages written back, "
		      "disk_full %llu, host_bytes %llu\n", r,
		      (unsigned long long)st.written_back,
		      (unsigned long long)st.disk_full,
		      (unsigned long long)st.host_bytes);
	assert_int_equal(r, TMEM_RECLAIM_STUCK);
	assert_int_equal(st.disk_full, 1);
	assert_true(st.disk_pages > 0);
	assert_int_equal(st.disk_failed, 0);
	for (uint32_t k = 0; k < n; k++)
		kload_ok(t.ctx, pool, k, 1);
	close_tier(&t, path);
}

/* ---- threads ---------------------------------------------------------- */

#define NWORKERS	4
#define NKEYS		1024		/* per worker */
#define T_BUDGET	(4 * MiB)
#define T_SECONDS	2.0

#define MAX_BOUNDS	(1u << 16)	/* 2 per change, >= 1 ms apart */

/*
 * DEV-25's bound, as the resizer knows it: bound[i] is in force from
 * its publication (nbounds = i + 1) until the next one's.  A change to
 * b publishes max(b, the bound in force) before it (covering the change
 * itself: what was used at a lowering is under the bound in force then)
 * and max(b, host_bytes read after it) once set: from then on a charge
 * is kept only if it fits the limit, and above it host_bytes only falls.
 */
struct shared {
	struct tmem_client *client;
	uint32_t pool;
	atomic_bool stop;
	atomic_int failed;
	char error[256];
	atomic_ulong loads_ok, refused, changes;
	_Atomic uint64_t bound[MAX_BOUNDS];
	atomic_uint nbounds;
};

struct worker {
	struct shared *sh;
	unsigned int id;
	unsigned int seen;		/* bounds published at the last check */
	uint32_t ver[NKEYS];		/* 0: the key holds nothing */
};

static void record(struct shared *sh, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void record(struct shared *sh, const char *fmt, ...)
{
	va_list ap;

	if (atomic_exchange(&sh->failed, 1))
		return;
	va_start(ap, fmt);
	vsnprintf(sh->error, sizeof(sh->error), fmt, ap);
	va_end(ap);
}

/* No cmocka in the threads: its longjmp is not theirs. */
static uint64_t host_bytes_quiet(struct tmem_client *c)
{
	struct tmem_stats st;

	if (tmem_client_stats2(c, &st, sizeof(st)))
		return UINT64_MAX;
	return st.host_bytes;
}

/*
 * The largest bound in force from the @from'th publication to a read of
 * host_bytes between two loads of nbounds, @n1 and @n2: a publication
 * after @n1 may be the one a change made before it took effect (odd
 * index), not the one made from host_bytes read after it, which may
 * already include what this read is to check.
 */
static uint64_t bound_since(struct shared *sh, unsigned int from,
			    unsigned int n1, unsigned int n2)
{
	uint64_t m = 0, v;

	for (unsigned int i = from ? from - 1 : 0; i < n2; i++) {
		if (i >= n1 && !(i & 1))
			continue;
		v = atomic_load(&sh->bound[i]);
		if (v > m)
			m = v;
	}
	return m;
}

/*
 * host_bytes against the bounds in force since the caller's last check.
 * A charge that a lowering overtook shows for a moment before it is
 * undone (tmem_charge()): over only if over on three reads 1 ms apart.
 */
static bool over_bound(struct shared *sh, unsigned int *seenp)
{
	unsigned int from = *seenp, n1 = 0, n2 = 0;
	uint64_t h = 0, bound = 0;

	for (int i = 0; i < 3; i++) {
		if (i)
			usleep(1000);
		n1 = atomic_load(&sh->nbounds);
		h = host_bytes_quiet(sh->client);
		n2 = atomic_load(&sh->nbounds);
		bound = bound_since(sh, from, n1, n2);
		if (h <= bound) {
			*seenp = n1;
			return false;
		}
	}
	record(sh, "host_bytes %llu over DEV-25's bound %llu (bounds %u..%u)",
	       (unsigned long long)h, (unsigned long long)bound, from, n2);
	return true;
}

static void publish_bound(struct shared *sh, uint64_t bound)
{
	unsigned int n = atomic_load(&sh->nbounds);

	if (n == MAX_BOUNDS) {
		record(sh, "more than %u bounds", MAX_BOUNDS);
		return;
	}
	atomic_store(&sh->bound[n], bound);
	atomic_store(&sh->nbounds, n + 1);
}

/* One operation on a random key of the worker's; false on a failure. */
static bool worker_op(struct worker *w, struct tmem_ctx *ctx, uint64_t r)
{
	struct shared *sh = w->sh;
	uint32_t i = (uint32_t)(r >> 8) % NKEYS;
	uint32_t k = w->id * NKEYS + i;
	unsigned char page[PAGE], want[PAGE];
	int ret;

	switch (r % 8) {
	case 0: case 1: case 2: case 3:
		ret = kstore(ctx, sh->pool, k, w->ver[i] + 1);
		if (ret && ret != -ENOSPC) {
			record(sh, "store key %u: %d", k, ret);
			return false;
		}
		/* A refused store drops the old copy: nothing stale. */
		w->ver[i] = ret ? 0 : w->ver[i] + 1;
		if (ret)
			atomic_fetch_add(&sh->refused, 1);
		return true;
	case 4: case 5: case 6:
		ret = tmem_load(ctx, sh->pool, KEY_OBJ(k), KEY_IDX(k), page);
		if (!w->ver[i] && ret == -ENOENT)
			return true;
		if (!w->ver[i] || ret) {
			record(sh, "load key %u (version %u): %d", k,
			       w->ver[i], ret);
			return false;
		}
		fill_page(want, key_kind(k), SEED(k, w->ver[i]));
		if (memcmp(page, want, PAGE)) {
			record(sh, "key %u: not version %u's bytes", k,
			       w->ver[i]);
			return false;
		}
		atomic_fetch_add(&sh->loads_ok, 1);
		return true;
	default:
		ret = tmem_invalidate_page(ctx, sh->pool, KEY_OBJ(k),
					   KEY_IDX(k));
		if (ret != (w->ver[i] ? 1 : 0)) {
			record(sh, "invalidate key %u (version %u): %d", k,
			       w->ver[i], ret);
			return false;
		}
		w->ver[i] = 0;
		return true;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct shared *sh = w->sh;
	uint64_t s = 0x9e3779b97f4a7c15ULL * (w->id + 1);
	struct tmem_ctx *ctx;

	if (tmem_ctx_new(sh->client, &ctx)) {
		record(sh, "tmem_ctx_new");
		return NULL;
	}
	for (unsigned long n = 0; !atomic_load(&sh->stop); n++)
		if (!worker_op(w, ctx, splitmix64(&s)) ||
		    (n % 32 == 0 && over_bound(sh, &w->seen)))
			break;
	/* Every key answers as it should, one last time. */
	for (uint32_t i = 0; i < NKEYS && !atomic_load(&sh->failed); i++)
		worker_op(w, ctx, (uint64_t)i << 8 | 4);
	tmem_ctx_free(ctx);
	return NULL;
}

/* The fifth thread: a new budget every millisecond, 1/4x to 2x. */
static void *resizer_main(void *arg)
{
	struct shared *sh = arg;
	uint64_t s = 42, lo = T_BUDGET / 4, hi = 2 * T_BUDGET;
	double end = now_sec() + T_SECONDS;
	unsigned int seen = 0;
	uint64_t cur, h;
	int ret;

	while (now_sec() < end && !atomic_load(&sh->failed)) {
		uint64_t b = lo + splitmix64(&s) % (hi - lo + 1);

		cur = atomic_load(&sh->bound[atomic_load(&sh->nbounds) - 1]);
		publish_bound(sh, b > cur ? b : cur);
		ret = tmem_client_set_budget(sh->client, b, NULL, 0);
		if (ret) {
			record(sh, "set_budget %llu: %d",
			       (unsigned long long)b, ret);
			break;
		}
		h = host_bytes_quiet(sh->client);
		publish_bound(sh, b > h ? b : h);

		ret = tmem_client_reclaim(sh->client, 64);
		if (ret < TMEM_RECLAIM_DONE || ret > TMEM_RECLAIM_STUCK) {
			record(sh, "reclaim: %d", ret);
			break;
		}
		if (over_bound(sh, &seen))
			break;
		atomic_fetch_add(&sh->changes, 1);
		usleep(1000);
	}
	atomic_store(&sh->stop, true);
	return NULL;
}

static void run_threads(struct tmem_client *client)
{
	static struct worker w[NWORKERS];
	static struct shared sh;
	pthread_t tid[NWORKERS], resizer;

	memset(&sh, 0, sizeof(sh));
	sh.client = client;
	sh.bound[0] = T_BUDGET;		/* the budget it opened with */
	sh.nbounds = 1;
	assert_int_equal(tmem_pool_new(client, TMEM_POOL_PERSISTENT, &sh.pool),
			 0);
	for (unsigned int i = 0; i < NWORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].sh = &sh;
		w[i].id = i;
		assert_int_equal(pthread_create(&tid[i], NULL, worker_main,
						&w[i]), 0);
	}
	assert_int_equal(pthread_create(&resizer, NULL, resizer_main, &sh), 0);
	pthread_join(resizer, NULL);
	for (unsigned int i = 0; i < NWORKERS; i++)
		pthread_join(tid[i], NULL);
	print_message("threads: %lu budget changes, %lu loads checked, %lu "
		      "stores refused\n", atomic_load(&sh.changes),
		      atomic_load(&sh.loads_ok), atomic_load(&sh.refused));
	if (atomic_load(&sh.failed))
		fail_msg("%s", sh.error);
	assert_true(atomic_load(&sh.changes) > 100);
	assert_true(atomic_load(&sh.loads_ok) > 1000);
	assert_true(host_bytes(client) <= sh.bound[sh.nbounds - 1]);
}

static void test_threads(void **state)
{
	struct tclient t;

	(void)state;
	open_plain(&t, T_BUDGET);
	run_threads(t.client);
	tclient_close(&t);
}

static void test_threads_tier(void **state)
{
	char path[PATH_MAX];
	struct tclient t;

	(void)state;
	if (!have_tier)
		skip();
	open_tier(&t, path, T_BUDGET, 16 * MiB, 0);
	run_threads(t.client);
	close_tier(&t, path);
}

/* ---- main ------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grow),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_shrink_ephemeral),
		cmocka_unit_test(test_shrink_tier),
		cmocka_unit_test(test_shrink_no_room_wait),
		cmocka_unit_test(test_shrink_tier_hung),
		cmocka_unit_test(test_shrink_stuck),
		cmocka_unit_test(test_stuck_after_every_ephemeral),
		cmocka_unit_test(test_stuck_when_tier_full),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_threads_tier),
	};
	const char *tmp = getenv("TMPDIR");
	int ret;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(dir, sizeof(dir), "%s/test-elastic-XXXXXX",
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
