/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous requests (tmem.h: tmem_submit_request(), the completion
 * fd, tmem_ctx_reap(), tmem_ctx_cancel()): what needs no I/O is answered
 * at once; a LOAD from the disk tier and a STORE waiting for the writer
 * stay pending without blocking the caller, the completion fd becomes
 * readable when they can finish, each is reaped once with its opaque
 * pointer, a store's wait for room is bounded (then REJECTED), and a
 * context takes no second request while one is pending (DEV-14).
 *
 * A hung disk is tmem_client_inject_io_hang(), a read whose submission
 * fails tmem_client_inject_io_error(TMEM_IO_READ_SUBMIT).  Backing files
 * live in a mkdtemp() directory under $TMPDIR (or /tmp).  Without
 * liburing the tier tests exit 77 (SKIP), unless meson found liburing
 * (TMEM_TEST_TIER_EXPECTED=1).
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "wire-test.h"

#ifndef TMEM_TEST_TIER_EXPECTED
#define TMEM_TEST_TIER_EXPECTED 1
#endif

#define KiB		(1ULL << 10)
#define MiB		(1ULL << 20)
#define SEG		(64 * KiB)
#define NKEYS		3000		/* ~4 MiB of text pages: most on disk */
#define LONG_MS		10000		/* "never" for a test */

static char tmp_dir[PATH_MAX / 2];
static unsigned int file_seq;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* True when the completion fd polls readable within @ms. */
static bool fd_ready(struct tmem_ctx *ctx, int ms)
{
	struct pollfd pfd = { .fd = tmem_ctx_completion_fd(ctx),
			      .events = POLLIN };

	return poll(&pfd, 1, ms) == 1;
}

/* One request in flight: its buffers stay put while it is pending. */
struct areq {
	struct virtio_tmem_req req;
	unsigned char page[PAGE];
	struct virtio_tmem_resp resp;
	struct iovec out[2], in[3];
	unsigned int out_num, in_num;
};

static void areq_prep(struct areq *a, uint8_t op, uint32_t pool,
		      uint32_t key, uint64_t seed)
{
	memset(a, 0, sizeof(*a));
	a->req.opcode = op;
	a->req.pool_id = htole32(pool);
	a->req.object_id = htole64(1 + key / 1024);
	a->req.index = htole32(key % 1024);
	a->resp.status = 0xee;
	a->out[0] = (struct iovec){ &a->req, sizeof(a->req) };
	a->out_num = 1;
	if (op == VIRTIO_TMEM_OP_STORE) {
		fill_page(a->page, PK_TEXT, seed);
		a->out[1] = (struct iovec){ a->page, PAGE };
		a->out_num = 2;
	} else if (op == VIRTIO_TMEM_OP_LOAD) {
		memset(a->page, IN_FILL, PAGE);
		a->in[a->in_num++] = (struct iovec){ a->page, PAGE };
	}
	a->in[a->in_num++] = (struct iovec){ &a->resp, sizeof(a->resp) };
}

static int areq_submit(struct tmem_ctx *ctx, struct areq *a)
{
	return tmem_submit_request(ctx, a->out, a->out_num, a->in, a->in_num,
				   a);
}

static size_t areq_len(const struct areq *a)
{
	return (a->req.opcode == VIRTIO_TMEM_OP_LOAD ? PAGE : 0) +
	       sizeof(a->resp);
}

/* Wait up to @ms for @a's completion; it must come exactly once. */
static void reap_one(struct tmem_ctx *ctx, struct areq *a, int ms)
{
	struct tmem_completion done[4];
	double end = now_ms() + ms;
	int n = 0;

	while (!n && now_ms() < end) {
		if (!fd_ready(ctx, (int)(end - now_ms()) + 1))
			continue;
		n = tmem_ctx_reap(ctx, done, 4);
	}
	if (n != 1)
		fail_msg("%d completions within %d ms, want 1", n, ms);
	assert_ptr_equal(done[0].opaque, a);
	assert_int_equal(done[0].len, areq_len(a));
	assert_int_equal(tmem_ctx_reap(ctx, done, 4), 0);
}

/* A synchronous request through the same context. */
static uint8_t sync_req(struct tmem_ctx *ctx, uint8_t op, uint32_t pool,
			uint32_t key, uint64_t seed, struct areq *a)
{
	areq_prep(a, op, pool, key, seed);
	assert_int_equal(tmem_handle_request(ctx, a->out, a->out_num, a->in,
					     a->in_num), areq_len(a));
	return a->resp.status;
}

static struct tclient tier_client(char *path, uint64_t budget,
				  uint32_t room_wait_ms)
{
	struct tmem_client_config cfg = test_config(budget);
	char why[TMEM_ERRBUF_SIZE];
	struct tclient t;
	int ret;

	snprintf(path, PATH_MAX, "%s/tier-%u", tmp_dir, file_seq++);
	cfg.backing_file = path;
	cfg.backing_size = 64 * MiB;
	cfg.segment_size = SEG;
	cfg.room_wait_ms = room_wait_ms;
	/* room_wait_ms is of the 0.2 layout: tmem_client_new() reads 0.1's. */
	ret = tmem_client_new2(&cfg, sizeof(cfg), &t.client, why,
			       sizeof(why));
	if (ret)
		fail_msg("tmem_client_new2: %d (%s): %s", ret,
			 tmem_strerror(ret), why);
	assert_int_equal(tmem_ctx_new(t.client, &t.ctx), 0);
	return t;
}

/*
 * Store NKEYS text pages synchronously: the early ones go to disk.  The
 * tests that fill this way use a long bound (LONG_MS): a loaded machine
 * may starve the writer for longer than the default.
 */
static uint32_t fill_tier(struct tclient *t)
{
	uint32_t pool = tpool_new(t, TMEM_POOL_PERSISTENT);
	struct areq a;

	for (uint32_t k = 0; k < NKEYS; k++)
		assert_int_equal(sync_req(t->ctx, VIRTIO_TMEM_OP_STORE, pool,
					  k, k, &a), VIRTIO_TMEM_S_OK);
	assert_true(tstats(t->client).disk_pages > NKEYS / 2);
	return pool;
}

/* With reads hung: the first key whose LOAD stays pending. */
static uint32_t pending_load(struct tclient *t, uint32_t pool,
			     struct areq *a)
{
	for (uint32_t k = 0; k < NKEYS; k++) {
		int ret;

		areq_prep(a, VIRTIO_TMEM_OP_LOAD, pool, k, 0);
		ret = areq_submit(t->ctx, a);
		if (ret == -EINPROGRESS)
			return k;
		assert_int_equal(ret, areq_len(a));
		assert_int_equal(a->resp.status, VIRTIO_TMEM_S_OK);
		assert_page_is(a->page, PK_TEXT, k);
	}
	fail_msg("no LOAD went to the disk");
	return 0;
}

static void test_no_io_at_once(void **state)
{
	struct tmem_client_config cfg = test_config(16 * MiB);
	struct tmem_completion done;
	struct tclient t;
	struct areq a;
	uint32_t pool;

	(void)state;
	tclient_open(&t, &cfg);
	pool = tpool_new(&t, TMEM_POOL_PERSISTENT);
	assert_true(tmem_ctx_completion_fd(t.ctx) >= 0);
	areq_prep(&a, VIRTIO_TMEM_OP_STORE, pool, 7, 7);
	assert_int_equal(areq_submit(t.ctx, &a), areq_len(&a));
	assert_int_equal(a.resp.status, VIRTIO_TMEM_S_OK);
	areq_prep(&a, VIRTIO_TMEM_OP_LOAD, pool, 7, 0);
	assert_int_equal(areq_submit(t.ctx, &a), areq_len(&a));
	assert_int_equal(a.resp.status, VIRTIO_TMEM_S_OK);
	assert_page_is(a.page, PK_TEXT, 7);
	/* Nothing pending: nothing to reap, no wakeup. */
	assert_false(fd_ready(t.ctx, 0));
	assert_int_equal(tmem_ctx_reap(t.ctx, &done, 1), 0);
	assert_int_equal(tmem_ctx_cancel(t.ctx, &done.opaque), 0);
	tclient_close(&t);
}

static void test_load_hung_then_done(void **state)
{
	char path[PATH_MAX];
	struct tclient t = tier_client(path, 1 * MiB, LONG_MS);
	uint32_t pool = fill_tier(&t), k;
	struct areq a, b;
	struct tmem_stats st;

	(void)state;
	assert_int_equal(tmem_client_inject_io_hang(t.client, TMEM_IO_READ), 0);
	k = pending_load(&t, pool, &a);
	/*
	 * Pending: the caller is free, the guest's page untouched.  Once
	 * reaped (readiness may be spurious), the fd stays quiet.
	 */
	assert_int_equal(tmem_ctx_reap(t.ctx, (struct tmem_completion[1]){},
				       1), 0);
	assert_false(fd_ready(t.ctx, 100));
	assert_int_equal(a.resp.status, 0xee);
	assert_int_equal(a.page[0], IN_FILL);
	/* One at a time: a later request waits (DEV-14). */
	areq_prep(&b, VIRTIO_TMEM_OP_STORE, pool, k, 99);
	assert_int_equal(areq_submit(t.ctx, &b), -EBUSY);
	assert_int_equal(tmem_client_inject_io_hang(t.client, 0), 0);
	/* Room for no completion: nothing taken, the wakeup kept. */
	assert_int_equal(tmem_ctx_reap(t.ctx, (struct tmem_completion[1]){},
				       0), 0);
	assert_true(fd_ready(t.ctx, 0));
	reap_one(t.ctx, &a, LONG_MS);
	assert_int_equal(a.resp.status, VIRTIO_TMEM_S_OK);
	assert_page_is(a.page, PK_TEXT, k);
	st = tstats(t.client);
	assert_true(st.disk_reads >= 1);
	/* Now the store is taken, and applied after the load. */
	assert_int_equal(areq_submit(t.ctx, &b), areq_len(&b));
	assert_int_equal(b.resp.status, VIRTIO_TMEM_S_OK);
	assert_int_equal(sync_req(t.ctx, VIRTIO_TMEM_OP_LOAD, pool, k, 0, &a),
			 VIRTIO_TMEM_S_OK);
	assert_page_is(a.page, PK_TEXT, 99);
	tclient_close(&t);
	unlink(path);
}

/* A hang of the library becomes this test's failure, not a stuck run. */
static void watchdog(int sig)
{
	static const char msg[] = "watchdog: a request never completed\n";
	ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);

	(void)sig;
	(void)n;
	_exit(1);
}

/*
 * A read whose submission fails ends the LOAD at once with IOERR, in
 * both modes: nothing will ever complete it later.  The read is not
 * issued afterwards either: later loads read their own pages.
 */
static void test_load_submit_fails(void **state)
{
	char path[PATH_MAX];
	struct tclient t = tier_client(path, 1 * MiB, LONG_MS);
	uint32_t pool = fill_tier(&t), k = 0, end;
	struct areq a;

	(void)state;
	signal(SIGALRM, watchdog);
	alarm(LONG_MS / 1000);
	assert_int_equal(tmem_client_inject_io_error(t.client,
						     TMEM_IO_READ_SUBMIT,
						     -EAGAIN), 0);
	/* Keys in memory load; the first on the disk fails at once. */
	do {
		assert_true(k < NKEYS);
		areq_prep(&a, VIRTIO_TMEM_OP_LOAD, pool, k++, 0);
		assert_int_equal(areq_submit(t.ctx, &a), areq_len(&a));
	} while (a.resp.status == VIRTIO_TMEM_S_OK);
	assert_int_equal(a.resp.status, VIRTIO_TMEM_S_IOERR);
	/* Nothing is left pending (the fd may be spuriously readable). */
	assert_int_equal(tmem_ctx_reap(t.ctx, (struct tmem_completion[1]){},
				       1), 0);
	/* Synchronously too. */
	do {
		assert_true(k < NKEYS);
		sync_req(t.ctx, VIRTIO_TMEM_OP_LOAD, pool, k++, 0, &a);
	} while (a.resp.status == VIRTIO_TMEM_S_OK);
	assert_int_equal(a.resp.status, VIRTIO_TMEM_S_IOERR);
	/*
	 * Had the failed reads stayed in the submission queue, the next
	 * submit would start them and a load take their completion for
	 * its own read's: IOERR.
	 */
	assert_int_equal(tmem_client_inject_io_error(t.client, 0, 0), 0);
	for (end = k + 40; k < end; k++) {
		assert_int_equal(sync_req(t.ctx, VIRTIO_TMEM_OP_LOAD, pool, k,
					  0, &a), VIRTIO_TMEM_S_OK);
		assert_page_is(a.page, PK_TEXT, k);
	}
	alarm(0);
	tclient_close(&t);
	unlink(path);
}

/* A split in-buffer: the page is scattered when the read completes. */
static void test_load_split_page(void **state)
{
	char path[PATH_MAX];
	struct tclient t = tier_client(path, 1 * MiB, LONG_MS);
	uint32_t pool = fill_tier(&t), k;
	unsigned char page[PAGE];
	struct areq a;

	(void)state;
	assert_int_equal(tmem_client_inject_io_hang(t.client, TMEM_IO_READ), 0);
	k = pending_load(&t, pool, &a);
	tmem_ctx_cancel(t.ctx, &(void *){ NULL });
	/* The same key again, its page in two pieces. */
	areq_prep(&a, VIRTIO_TMEM_OP_LOAD, pool, k, 0);
	a.in[0].iov_len = 1000;
	a.in[2] = a.in[1];
	a.in[1] = (struct iovec){ a.page + 1000, PAGE - 1000 };
	a.in_num = 3;
	assert_int_equal(areq_submit(t.ctx, &a), -EINPROGRESS);
	assert_int_equal(tmem_client_inject_io_hang(t.client, 0), 0);
	reap_one(t.ctx, &a, LONG_MS);
	assert_int_equal(a.resp.status, VIRTIO_TMEM_S_OK);
	memcpy(page, a.page, PAGE);
	assert_page_is(page, PK_TEXT, k);
	tclient_close(&t);
	unlink(path);
}

static void test_cancel_load(void **state)
{
	char path[PATH_MAX];
	struct tclient t = tier_client(path, 1 * MiB, LONG_MS);
	uint32_t pool = fill_tier(&t), k;
	void *opaque = NULL;
	struct areq a;

	(void)state;
	assert_int_equal(tmem_client_inject_io_hang(t.client, TMEM_IO_READ), 0);
	k = pending_load(&t, pool, &a);
	assert_int_equal(tmem_ctx_cancel(t.ctx, &opaque), 1);
	assert_ptr_equal(opaque, &a);
	assert_int_equal(tmem_ctx_cancel(t.ctx, &opaque), 0);
	assert_int_equal(tmem_client_inject_io_hang(t.client, 0), 0);
	/* Cancelled: never answered, its buffers never written. */
	assert_int_equal(tmem_ctx_reap(t.ctx, (struct tmem_completion[1]){},
				       1), 0);
	assert_int_equal(a.resp.status, 0xee);
	assert_int_equal(a.page[0], IN_FILL);
	/* The page is still held, and the segment still readable. */
	assert_int_equal(sync_req(t.ctx, VIRTIO_TMEM_OP_LOAD, pool, k, 0, &a),
			 VIRTIO_TMEM_S_OK);
	assert_page_is(a.page, PK_TEXT, k);
	/* Reset with a load pending drops it too. */
	assert_int_equal(tmem_client_inject_io_hang(t.client, TMEM_IO_READ), 0);
	pending_load(&t, pool, &a);
	assert_int_equal(tmem_client_reset(t.client), 0);
	assert_int_equal(tmem_ctx_cancel(t.ctx, &opaque), 0);
	tclient_close(&t);
	unlink(path);
}

/*
 * The writer is stuck in its write: stores over the budget wait at most
 * room_wait_ms, then are REJECTED and leave no copy (DEV-11).
 */
static void test_store_bounded_wait(void **state)
{
	const uint32_t wait_ms = 200;
	char path[PATH_MAX];
	struct tclient t = tier_client(path, 1 * MiB, wait_ms);
	uint32_t pool = tpool_new(&t, TMEM_POOL_PERSISTENT), k, pend = 0;
	uint32_t last;
	unsigned char *ok = calloc(NKEYS + 1, 1);
	struct tmem_stats st;
	double t0, waited;
	struct areq a;
	int ret = 0;

	(void)state;
	assert_non_null(ok);
	assert_int_equal(tmem_client_inject_io_hang(t.client, TMEM_IO_WRITE),
			 0);
	/*
	 * The writer's first passes still make room (pages move into the
	 * segment buffers, written later): a pending store may get it.
	 * Then it is stuck in the write, and the next one times out.
	 */
	for (k = 0; k < NKEYS; k++) {
		areq_prep(&a, VIRTIO_TMEM_OP_STORE, pool, k, k);
		ret = areq_submit(t.ctx, &a);
		t0 = now_ms();
		if (ret == -EINPROGRESS)
			reap_one(t.ctx, &a, LONG_MS);
		else
			assert_int_equal(ret, areq_len(&a));
		waited = now_ms() - t0;
		ok[k] = a.resp.status == VIRTIO_TMEM_S_OK;
		if (ret == -EINPROGRESS && !ok[k])
			break;
	}
	assert_int_equal(ret, -EINPROGRESS);
	pend = k;
	assert_int_equal(a.resp.status, VIRTIO_TMEM_S_REJECTED);
	print_message("store waited %.0f ms for room (bound %u ms)\n", waited,
		      wait_ms);
	if (waited < wait_ms * 0.9 || waited > 5000)
		fail_msg("REJECTED after %.0f ms, bound %u ms", waited,
			 wait_ms);
	st = tstats(t.client);
	assert_true(st.host_bytes <= st.budget_bytes);
	assert_true(st.failed_stores_budget >= 1);
	assert_int_equal(sync_req(t.ctx, VIRTIO_TMEM_OP_LOAD, pool, pend, 0,
				  &a), VIRTIO_TMEM_S_NOT_FOUND);
	/*
	 * The writer is still stuck in its write: later stores are answered
	 * at once (OK while some room is left, then REJECTED), none waits.
	 */
	t0 = now_ms();
	for (last = pend + 1; last < NKEYS; last++) {
		areq_prep(&a, VIRTIO_TMEM_OP_STORE, pool, last, last);
		assert_int_equal(areq_submit(t.ctx, &a), areq_len(&a));
		ok[last] = a.resp.status == VIRTIO_TMEM_S_OK;
		if (a.resp.status == VIRTIO_TMEM_S_REJECTED)
			break;
		assert_int_equal(a.resp.status, VIRTIO_TMEM_S_OK);
	}
	assert_true(last < NKEYS);
	assert_true(now_ms() - t0 < wait_ms / 2);
	/*
	 * The disk recovers: room again once the writer's pass is over (a
	 * store may still be refused before), and nothing answered OK is
	 * lost.
	 */
	assert_int_equal(tmem_client_inject_io_hang(t.client, 0), 0);
	t0 = now_ms();
	while (sync_req(t.ctx, VIRTIO_TMEM_OP_STORE, pool, pend, pend, &a) !=
	       VIRTIO_TMEM_S_OK) {
		assert_int_equal(a.resp.status, VIRTIO_TMEM_S_REJECTED);
		assert_true(now_ms() - t0 < LONG_MS);
		usleep(10000);
	}
	ok[pend] = 1;
	for (k = 0; k <= last; k++) {
		uint8_t s = sync_req(t.ctx, VIRTIO_TMEM_OP_LOAD, pool, k, 0,
				     &a);

		if (ok[k]) {
			assert_int_equal(s, VIRTIO_TMEM_S_OK);
			assert_page_is(a.page, PK_TEXT, k);
		} else {
			assert_int_equal(s, VIRTIO_TMEM_S_NOT_FOUND);
		}
	}
	free(ok);
	tclient_close(&t);
	unlink(path);
}

/* A store waiting for room that the writer makes in time answers OK. */
static void test_store_waits_then_ok(void **state)
{
	char path[PATH_MAX];
	struct tclient t = tier_client(path, 1 * MiB, LONG_MS);
	uint32_t pool = tpool_new(&t, TMEM_POOL_PERSISTENT), k;
	struct areq a;
	int ret = 0;

	(void)state;
	assert_int_equal(tmem_client_inject_io_hang(t.client, TMEM_IO_WRITE),
			 0);
	for (k = 0; k < NKEYS; k++) {
		areq_prep(&a, VIRTIO_TMEM_OP_STORE, pool, k, k);
		ret = areq_submit(t.ctx, &a);
		if (ret == -EINPROGRESS)
			break;
		assert_int_equal(a.resp.status, VIRTIO_TMEM_S_OK);
	}
	assert_int_equal(ret, -EINPROGRESS);
	assert_false(fd_ready(t.ctx, 100) &&
		     tmem_ctx_reap(t.ctx, (struct tmem_completion[1]){}, 1));
	assert_int_equal(tmem_client_inject_io_hang(t.client, 0), 0);
	reap_one(t.ctx, &a, LONG_MS);
	assert_int_equal(a.resp.status, VIRTIO_TMEM_S_OK);
	for (uint32_t i = 0; i <= k; i++) {
		assert_int_equal(sync_req(t.ctx, VIRTIO_TMEM_OP_LOAD, pool, i,
					  0, &a), VIRTIO_TMEM_S_OK);
		assert_page_is(a.page, PK_TEXT, i);
	}
	tclient_close(&t);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_io_at_once),
		cmocka_unit_test(test_load_hung_then_done),
		cmocka_unit_test(test_load_split_page),
		cmocka_unit_test(test_load_submit_fails),
		cmocka_unit_test(test_cancel_load),
		cmocka_unit_test(test_store_bounded_wait),
		cmocka_unit_test(test_store_waits_then_ok),
	};
	const char *tmp = getenv("TMPDIR");
	int ret;

	if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(tmp_dir, sizeof(tmp_dir), "%s/test-async-XXXXXX", tmp);
	if (!mkdtemp(tmp_dir)) {
		perror("mkdtemp");
		return 1;
	}
	ret = tmem_test_probe_tier(tmp_dir);
	if (ret) {
		rmdir(tmp_dir);
		if (ret == -ENOTSUP && !TMEM_TEST_TIER_EXPECTED) {
			printf("SKIP: libtmem built without a disk tier\n");
			return T_EXIT_SKIP;
		}
		fprintf(stderr, "disk tier: %d (%s)\n", ret, tmem_strerror(ret));
		return 1;
	}
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(tmp_dir);
	return ret;
}
