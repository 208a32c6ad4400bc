/* SPDX-License-Identifier: MIT */
/*
 * The RADOS segment store (host-lib/src/rados_i.h) against a real
 * single-node Ceph cluster, started by tests/unit/rados-run.sh with
 * scripts/ceph-cluster.sh:
 *   VTMEM_CEPH_DIR   the cluster's directory (ceph.conf, keyrings)
 *   VTMEM_CEPH_POOL  its pool
 *   VTMEM_CEPH_CTL   scripts/ceph-cluster.sh, to stop and start the OSD
 * The cluster has a cephx user client.vm1 whose caps allow rw in
 * namespace vm1 of the pool only.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rados_i.h"

#define SEG	(1u << 20)

static char conf[512], keyring[512], why_buf[512];
static const char *pool, *ctl, *dir;

static struct tmem_rados_config base_cfg(const char *ns)
{
	struct tmem_rados_config cfg = {
		.pool = pool,
		.conf = conf,
		.ns = ns,
		.timeout_s = 5,
	};
	return cfg;
}

static struct tmem_rados *open_ns(const char *ns)
{
	struct tmem_rados_config cfg = base_cfg(ns);
	struct tmem_why why = { why_buf, sizeof(why_buf) };
	struct tmem_rados *r = NULL;
	int ret = tmem_rados_open(&cfg, &r, &why);

	if (ret)
		fail_msg("tmem_rados_open(%s): %d: %s", ns, ret, why_buf);
	return r;
}

static void fill(uint8_t *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed + (i >> 12));
}

static int write_wait(struct tmem_rados *r, uint32_t segno, const void *buf,
		      size_t len)
{
	struct tmem_rados_op op = { .efd = -1 };
	int ret = tmem_rados_write(r, &op, segno, buf, len);

	return ret ? ret : tmem_rados_op_finish(&op);
}

static int read_wait(struct tmem_rados *r, uint32_t segno, uint64_t off,
		     void *buf, size_t len)
{
	struct tmem_rados_op op = { .efd = -1 };
	int ret = tmem_rados_read(r, &op, segno, off, buf, len);

	return ret ? ret : tmem_rados_op_finish(&op);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A segment written whole reads back at any offset; the eventfd fires. */
static void test_write_read(void **state)
{
	uint8_t *seg = malloc(SEG), *back = malloc(4096 + 24);
	struct tmem_rados *r = open_ns("t-rw");
	struct tmem_rados_op op = { .efd = eventfd(0, EFD_CLOEXEC) };
	struct pollfd pfd = { .fd = op.efd, .events = POLLIN };
	eventfd_t n;

	(void)state;
	fill(seg, SEG, 7);
	assert_int_equal(tmem_rados_write(r, &op, 3, seg, SEG), 0);
	/* Completion comes through the eventfd, from librados's thread. */
	assert_int_equal(poll(&pfd, 1, 30000), 1);
	assert_true(tmem_rados_op_done(&op));
	assert_int_equal(tmem_rados_op_finish(&op), 0);
	assert_int_equal(eventfd_read(op.efd, &n), 0);
	assert_int_equal(n, 1);

	for (uint64_t off = 0; off + 4120 <= SEG; off += 262144 + 4097) {
		memset(back, 0, 4120);
		assert_int_equal(tmem_rados_read(r, &op, 3, off, back, 4120), 0);
		assert_int_equal(poll(&pfd, 1, 30000), 1);
		assert_int_equal(eventfd_read(op.efd, &n), 0);
		assert_int_equal(tmem_rados_op_finish(&op), 4120);
		assert_memory_equal(back, seg + off, 4120);
	}
	/* Past the end: a short read, which the tier's header check refuses. */
	assert_int_equal(read_wait(r, 3, SEG - 100, back, 4120), 100);
	/* Written whole: a shorter write replaces the object. */
	fill(seg, 8192, 9);
	assert_int_equal(write_wait(r, 3, seg, 8192), 0);
	assert_int_equal(read_wait(r, 3, 0, back, 4120), 4120);
	assert_memory_equal(back, seg, 4120);
	assert_int_equal(read_wait(r, 3, 8192, back, 4120), 0);
	/* A segment never written is no object. */
	assert_int_equal(read_wait(r, 4, 0, back, 4120), -ENOENT);
	close(op.efd);
	assert_int_equal(tmem_rados_scrub(r), 1);
	tmem_rados_close(r);
	free(seg);
	free(back);
}

/* Remove, and scrub: every segment object of the namespace, no other's. */
static void test_remove_scrub(void **state)
{
	struct tmem_rados *a = open_ns("t-scrub-a"), *b = open_ns("t-scrub-b");
	struct tmem_rados_op op = { .efd = -1 };
	uint8_t buf[4096], back[4096];

	(void)state;
	fill(buf, sizeof(buf), 1);
	for (uint32_t s = 0; s < 70; s++)	/* more than one batch */
		assert_int_equal(write_wait(a, s * 3, buf, sizeof(buf)), 0);
	assert_int_equal(write_wait(b, 0, buf, sizeof(buf)), 0);
	assert_int_equal(tmem_rados_remove(a, &op, 3), 0);
	assert_int_equal(tmem_rados_op_finish(&op), 0);
	assert_int_equal(read_wait(a, 3, 0, back, sizeof(back)), -ENOENT);
	assert_int_equal(tmem_rados_remove(a, &op, 3), 0);
	assert_int_equal(tmem_rados_op_finish(&op), -ENOENT);

	assert_int_equal(tmem_rados_scrub(a), 69);
	assert_int_equal(read_wait(a, 0, 0, back, sizeof(back)), -ENOENT);
	assert_int_equal(read_wait(a, 207, 0, back, sizeof(back)), -ENOENT);
	/* Same segment number, another namespace: untouched. */
	assert_int_equal(read_wait(b, 0, 0, back, sizeof(back)), 4096);
	assert_memory_equal(back, buf, sizeof(buf));
	assert_int_equal(tmem_rados_scrub(b), 1);
	tmem_rados_close(a);
	tmem_rados_close(b);
}

/*
 * Isolation is the cluster's: client.vm1 may write namespace vm1 only,
 * and opening namespace vm2 as client.vm1 is refused by the OSD (EPERM),
 * while the admin may open it.
 */
static void test_namespace_refused(void **state)
{
	struct tmem_rados_config cfg = base_cfg("vm2");
	struct tmem_why why = { why_buf, sizeof(why_buf) };
	struct tmem_rados *r = NULL;
	uint8_t buf[512] = { 1 };

	(void)state;
	cfg.user = "vm1";
	cfg.keyring = keyring;
	why_buf[0] = 0;
	assert_int_equal(tmem_rados_open(&cfg, &r, &why), -EPERM);
	assert_null(r);
	assert_non_null(strstr(why_buf, "refused"));
	assert_non_null(strstr(why_buf, "client.vm1"));

	cfg.ns = "vm1";
	assert_int_equal(tmem_rados_open(&cfg, &r, &why), 0);
	assert_int_equal(write_wait(r, 0, buf, sizeof(buf)), 0);
	assert_int_equal(tmem_rados_scrub(r), 1);
	tmem_rados_close(r);

	/* The same namespace as client.admin: the refusal was the caps'. */
	r = open_ns("vm2");
	tmem_rados_close(r);
}

/* Bad configurations: clear errors, nothing left behind. */
static void test_refusals(void **state)
{
	struct tmem_rados_config cfg = base_cfg("t-bad");
	struct tmem_why why = { why_buf, sizeof(why_buf) };
	struct tmem_rados *r = NULL;
	char dead[600];
	double t0;
	FILE *f;

	(void)state;
	cfg.pool = "no-such-pool";
	assert_int_equal(tmem_rados_open(&cfg, &r, &why), -ENOENT);
	assert_non_null(strstr(why_buf, "no such pool"));
	cfg.pool = pool;
	cfg.ns = "";
	assert_int_equal(tmem_rados_open(&cfg, &r, &why), -EINVAL);
	assert_non_null(strstr(why_buf, "rados_namespace"));
	cfg.ns = "t-bad";
	cfg.conf = "/nonexistent/ceph.conf";
	assert_true(tmem_rados_open(&cfg, &r, &why) < 0);
	assert_non_null(strstr(why_buf, "/nonexistent/ceph.conf"));

	/* A monitor nobody listens on: -ETIMEDOUT after timeout_s, no hang. */
	snprintf(dead, sizeof(dead), "%s/dead.conf", dir);
	f = fopen(dead, "w");
	assert_non_null(f);
	fprintf(f, "[global]\nmon host = v2:127.0.0.1:9\nkeyring = %s/keyring\n"
		"ms bind msgr1 = false\n", dir);
	fclose(f);
	cfg.conf = dead;
	cfg.timeout_s = 2;
	t0 = now_s();
	assert_true(tmem_rados_open(&cfg, &r, &why) < 0);
	assert_true(now_s() - t0 < 20);
	assert_non_null(strstr(why_buf, "cannot connect"));
	assert_null(r);
}

static int ctl_run(const char *what)
{
	char cmd[1200];

	snprintf(cmd, sizeof(cmd), "'%s' %s '%s' >&2", ctl, what, dir);
	return system(cmd);
}

/*
 * The OSD stopped: a read fails with -ETIMEDOUT within the timeout, and
 * the caller's thread waited only because it chose to; once the OSD is
 * back the same read returns the same bytes.
 */
static void test_osd_lost(void **state)
{
	struct tmem_rados *r = open_ns("t-osd");
	struct tmem_rados_op op = { .efd = -1 };
	uint8_t buf[8192], back[8192];
	double t0;
	int ret;

	(void)state;
	fill(buf, sizeof(buf), 3);
	assert_int_equal(write_wait(r, 1, buf, sizeof(buf)), 0);
	assert_int_equal(ctl_run("osd-stop"), 0);
	t0 = now_s();
	assert_int_equal(tmem_rados_read(r, &op, 1, 0, back, sizeof(back)), 0);
	/* Started without waiting; not done while the OSD is gone. */
	assert_true(now_s() - t0 < 1);
	usleep(200000);
	assert_false(tmem_rados_op_done(&op));
	ret = tmem_rados_op_finish(&op);
	assert_true(ret == -ETIMEDOUT || ret == -EIO);
	assert_true(now_s() - t0 < 30);
	assert_int_equal(ctl_run("osd-start"), 0);
	memset(back, 0, sizeof(back));
	assert_int_equal(read_wait(r, 1, 0, back, sizeof(back)), 8192);
	assert_memory_equal(back, buf, sizeof(buf));
	assert_int_equal(tmem_rados_scrub(r), 1);
	tmem_rados_close(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read),
		cmocka_unit_test(test_remove_scrub),
		cmocka_unit_test(test_namespace_refused),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_osd_lost),
	};

	dir = getenv("VTMEM_CEPH_DIR");
	pool = getenv("VTMEM_CEPH_POOL");
	ctl = getenv("VTMEM_CEPH_CTL");
	if (!dir || !pool || !ctl) {
		printf("SKIP: no cluster (run through tests/unit/rados-run.sh)\n");
		return 77;
	}
	snprintf(conf, sizeof(conf), "%s/ceph.conf", dir);
	snprintf(keyring, sizeof(keyring), "%s/client.vm1.keyring", dir);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
