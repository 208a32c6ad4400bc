/* SPDX-License-Identifier: MIT */
/*
 * The RADOS segment store (host-lib/src/rados_i.h), and the disk tier on
 * it (tmem.h: rados_pool), against a real
 * single-node Ceph cluster, started by tests/unit/rados-run.sh with
 * scripts/ceph-cluster.sh:
 *   VTMEM_CEPH_DIR   the cluster's directory (ceph.conf, keyrings)
 *   VTMEM_CEPH_POOL  its pool
 *   VTMEM_CEPH_CTL   scripts/ceph-cluster.sh, to stop and start the OSD
 * The cluster has a cephx user client.vm1 whose caps allow rwx in
 * namespace vm1 of the pool only (rwx: the namespace's lock is a
 * class method).
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "rados_i.h"
#include "tmem-test.h"

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

/* Run @cmd with the cluster's configuration: its exit status. */
static int ceph_run(const char *cmd)
{
	char line[2048];

	snprintf(line, sizeof(line), "export CEPH_CONF='%s'; { %s; } >&2", conf,
		 cmd);
	return system(line);
}

/* A lock on t-excl's owner object, held by cookie @cookie (rados CLI). */
static void lock_as(const char *cookie)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "rados -p %s -N t-excl lock get tmem.owner "
		 "tmem --lock-cookie '%s'", pool, cookie);
	assert_int_equal(ceph_run(cmd), 0);
}

/* What libtmem's cookie for a process @pid of this host is. */
static void cookie_for(char *buf, size_t len, long pid)
{
	char host[64] = "", boot[40] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

	assert_non_null(f);
	assert_non_null(fgets(boot, sizeof(boot), f));
	fclose(f);
	boot[strcspn(boot, "\n")] = 0;
	gethostname(host, sizeof(host) - 1);
	snprintf(buf, len, "host=%s boot=%s pid=%ld", host, boot, pid);
}

/*
 * One client per namespace: a second open is refused (-EBUSY) while the
 * first holds it, and touches nothing; it succeeds once the first closed.
 * The lock of a process of this host that is gone is broken at open; a
 * holder elsewhere is not, and the refusal's command breaks it.
 */
static void test_exclusive(void **state)
{
	struct tmem_rados_config cfg = base_cfg("t-excl");
	struct tmem_why why = { why_buf, sizeof(why_buf) };
	struct tmem_rados *a = open_ns("t-excl"), *b = NULL;
	uint8_t buf[512] = { 3 }, back[512];
	char cookie[200], *cmd;
	pid_t dead;
	int st;

	(void)state;
	assert_int_equal(write_wait(a, 0, buf, sizeof(buf)), 0);
	why_buf[0] = 0;
	assert_int_equal(tmem_rados_open(&cfg, &b, &why), -EBUSY);
	assert_null(b);
	assert_non_null(strstr(why_buf, "held by another client"));
	assert_int_equal(read_wait(a, 0, 0, back, sizeof(back)), sizeof(back));
	tmem_rados_close(a);		/* unlocks; the objects stay */
	b = open_ns("t-excl");
	assert_int_equal(read_wait(b, 0, 0, back, sizeof(back)), sizeof(back));
	assert_memory_equal(back, buf, sizeof(buf));
	tmem_rados_close(b);

	/* A holder of this host and boot whose process is gone. */
	dead = fork();
	if (dead == 0)
		_exit(0);
	assert_int_equal(waitpid(dead, &st, 0), dead);
	cookie_for(cookie, sizeof(cookie), dead);
	lock_as(cookie);
	b = open_ns("t-excl");
	tmem_rados_close(b);

	/* One of another boot (or host): refused, broken by hand. */
	lock_as("host=elsewhere boot=00000000 pid=1");
	assert_int_equal(tmem_rados_open(&cfg, &b, &why), -EBUSY);
	assert_non_null(strstr(why_buf, "host=elsewhere"));
	cmd = strstr(why_buf, "break its lock: ");
	assert_non_null(cmd);
	assert_int_equal(ceph_run(cmd + strlen("break its lock: ")), 0);
	b = open_ns("t-excl");
	assert_int_equal(tmem_rados_scrub(b), 1);
	tmem_rados_close(b);
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

/* ---- the disk tier on RADOS (tmem.h: rados_pool) ---------------------- */

#define TIER_BUDGET	(4ull << 20)
#define TIER_PAGES	3000		/* ~2.5x the budget, as text */

static struct tmem_client_config tier_cfg(const char *ns)
{
	struct tmem_client_config cfg = test_config(TIER_BUDGET);

	cfg.rados_pool = pool;
	cfg.rados_namespace = ns;
	cfg.rados_conf = conf;
	cfg.backing_size = 64ull << 20;
	return cfg;
}

static void tier_open(struct tclient *t, const char *ns, uint32_t *pool_id)
{
	struct tmem_client_config cfg = tier_cfg(ns);
	int ret;

	ret = tmem_client_new2(&cfg, sizeof(cfg), &t->client, why_buf,
			       sizeof(why_buf));
	if (ret)
		fail_msg("tmem_client_new2(rados %s): %d: %s", ns, ret,
			 why_buf);
	assert_int_equal(tmem_ctx_new(t->client, &t->ctx), 0);
	*pool_id = tpool_new(t, TMEM_POOL_PERSISTENT);
}

/* Store TIER_PAGES text pages; the budget holds fewer: write-back. */
static void tier_fill(struct tclient *t, uint32_t pid)
{
	struct tmem_stats st;

	for (uint32_t i = 0; i < TIER_PAGES; i++)
		assert_int_equal(store_gen(t, pid, 1, i, PK_TEXT, i), 0);
	st = tstats(t->client);
	assert_int_equal(st.pages, TIER_PAGES);
	assert_true(st.written_back > 0);
	assert_true(st.disk_writes > 0);
	assert_true(st.disk_pages > 0);
	assert_true(st.host_bytes <= TIER_BUDGET);
	assert_int_equal(st.disk_failed, 0);
}

/* Segment objects left in namespace @ns: 0 once a client freed it. */
/* The objects of namespace @ns, counted by the rados tool. */
static int objects_left(const char *ns)
{
	char cmd[1024], line[256];
	int n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "CEPH_CONF='%s' rados -p %s -N %s ls", conf,
		 pool, ns);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		n++;
	assert_int_equal(pclose(p), 0);
	return n;
}

/*
 * Load key @i of @pid: true when it came back as stored, false for -EIO;
 * any other answer, or other bytes, fails the test.
 */
static bool load_or_eio(struct tclient *t, uint32_t pid, uint32_t i)
{
	uint8_t page[PAGE], want[PAGE];
	int ret = tmem_load(t->ctx, pid, 1, i, page);

	if (ret == -EIO)
		return false;
	assert_int_equal(ret, 0);
	fill_page(want, PK_TEXT, i);
	assert_memory_equal(page, want, PAGE);
	return true;
}

/*
 * Pages go to segment objects and come back byte for byte; invalidated
 * ones are gone; the client's end leaves no object of it on the cluster.
 */
static void test_tier_roundtrip(void **state)
{
	struct tclient t;
	struct tmem_stats st;
	uint32_t pid;

	(void)state;
	tier_open(&t, "t-tier", &pid);
	tier_fill(&t, pid);
	for (uint32_t i = 0; i < TIER_PAGES; i++)
		load_expect(&t, pid, 1, i, PK_TEXT, i);
	st = tstats(t.client);
	assert_true(st.disk_reads > 0);
	assert_int_equal(st.disk_errors, 0);
	for (uint32_t i = 0; i < TIER_PAGES; i += 2)
		assert_int_equal(tmem_invalidate_page(t.ctx, pid, 1, i), 1);
	for (uint32_t i = 0; i < TIER_PAGES; i++) {
		if (i % 2)
			load_expect(&t, pid, 1, i, PK_TEXT, i);
		else
			load_expect_miss(&t, pid, 1, i);
	}
	/*
	 * After a reset the namespace stays the client's: a second one is
	 * still refused, and the tier works again.
	 */
	tmem_client_reset(t.client);
	{
		struct tmem_rados_config cfg = base_cfg("t-tier");
		struct tmem_why why = { why_buf, sizeof(why_buf) };
		struct tmem_rados *r = NULL;

		assert_int_equal(tmem_rados_open(&cfg, &r, &why), -EBUSY);
	}
	pid = tpool_new(&t, TMEM_POOL_PERSISTENT);
	tier_fill(&t, pid);
	for (uint32_t i = 0; i < TIER_PAGES; i++)
		load_expect(&t, pid, 1, i, PK_TEXT, i);
	tclient_close(&t);
	assert_int_equal(objects_left("t-tier"), 0);
}

/*
 * A segment object replaced by another's bytes (valid headers and
 * checksums, other keys) or by garbage: its pages load as -EIO, never
 * as other bytes; the rest load as stored.
 */
static void test_tier_wrong_object(void **state)
{
	struct tclient t;
	uint8_t *seg = malloc(TMEM_DEFAULT_SEGMENT_SIZE);
	unsigned int eio = 0, ok = 0;
	char cmd[1500];
	uint32_t pid;
	FILE *f;

	(void)state;
	tier_open(&t, "t-wrong", &pid);
	tier_fill(&t, pid);
	/*
	 * Segment 1's bytes as segment 0, garbage as segment 2, by a writer
	 * that ignores the namespace's (advisory) lock: the rados tool.
	 */
	fill(seg, TMEM_DEFAULT_SEGMENT_SIZE, 5);
	snprintf(cmd, sizeof(cmd), "%s/garbage", dir);
	f = fopen(cmd, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(seg, 1, TMEM_DEFAULT_SEGMENT_SIZE, f),
			 TMEM_DEFAULT_SEGMENT_SIZE);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "rados -p %s -N t-wrong get seg.00000001 "
		 "'%s/seg1' && rados -p %s -N t-wrong put seg.00000000 "
		 "'%s/seg1' && rados -p %s -N t-wrong put seg.00000002 "
		 "'%s/garbage'", pool, dir, pool, dir, pool, dir);
	assert_int_equal(ceph_run(cmd), 0);
	for (uint32_t i = 0; i < TIER_PAGES; i++) {
		if (load_or_eio(&t, pid, i))
			ok++;
		else
			eio++;
	}
	assert_true(eio > 0);
	assert_true(ok > 0);
	assert_int_equal(tstats(t.client).disk_errors, eio);
	tclient_close(&t);
	free(seg);
}

/* Refusals at tmem_client_new2(): the cluster's, and the configuration's. */
static void test_tier_refused(void **state)
{
	struct tmem_client_config cfg = tier_cfg("vm2");
	struct tmem_client *c = NULL;

	(void)state;
	cfg.rados_user = "vm1";
	cfg.rados_keyring = keyring;
	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &c, why_buf,
					  sizeof(why_buf)), -EPERM);
	assert_null(c);
	assert_non_null(strstr(why_buf, "refused"));
	cfg.rados_namespace = "vm1";
	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &c, why_buf,
					  sizeof(why_buf)), 0);
	tmem_client_free(c);
	c = NULL;

	cfg = tier_cfg("t-cfg");
	cfg.backing_size = 0;
	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &c, why_buf,
					  sizeof(why_buf)), -EINVAL);
	assert_non_null(strstr(why_buf, "backing_size"));
	cfg = tier_cfg("t-cfg");
	cfg.rados_namespace = NULL;
	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &c, why_buf,
					  sizeof(why_buf)), -EINVAL);
	assert_non_null(strstr(why_buf, "rados_namespace"));
	cfg = tier_cfg("t-cfg");
	cfg.backing_file = "/tmp/x";
	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &c, why_buf,
					  sizeof(why_buf)), -EINVAL);
	assert_non_null(strstr(why_buf, "not both"));
	cfg = test_config(TIER_BUDGET);
	cfg.rados_user = "vm1";
	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &c, why_buf,
					  sizeof(why_buf)), -EINVAL);
	assert_non_null(strstr(why_buf, "rados_pool"));
	/* A 0.2 caller's configuration knows no RADOS fields: a file tier. */
	cfg = test_config(TIER_BUDGET);
	assert_int_equal(tmem_client_new2(&cfg, TMEM_CONFIG_SIZE_VER1, &c,
					  why_buf, sizeof(why_buf)), 0);
	assert_int_equal(tstats(c).disk_size, 0);
	tmem_client_free(c);
}

/*
 * The OSD lost while the client runs: loads of pages held there answer
 * -EIO (after the operation timeout), pages in memory load, stores that
 * would need the tier fail without losing a page, and once the OSD is
 * back every stored page loads as stored, the stranded segments are
 * written again and the tier takes stores past the budget again.
 */
static void test_tier_osd_lost(void **state)
{
	unsigned int eio = 0, mem_ok = 0, refused = 0;
	struct tclient t;
	uint32_t pid, stored = TIER_PAGES;
	uint64_t writes;
	double t0;

	(void)state;
	tier_open(&t, "t-lost", &pid);
	tier_fill(&t, pid);
	assert_int_equal(ctl_run("osd-stop"), 0);
	t0 = now_s();
	/* The newest pages are in memory, the oldest were written back. */
	for (uint32_t i = TIER_PAGES; i-- > 0 && eio < 2;) {
		if (load_or_eio(&t, pid, i))
			mem_ok++;
		else
			eio++;
	}
	assert_int_equal(eio, 2);
	assert_true(mem_ok > 0);
	/* More stores: write-back fails, the tier stops, stores refused. */
	for (uint32_t i = TIER_PAGES; i < 2 * TIER_PAGES && !refused; i++) {
		int ret = store_gen(&t, pid, 1, i, PK_TEXT, i);

		if (ret == -ENOSPC)
			refused++;
		else
			assert_int_equal(ret, 0);
		stored = i + (ret == 0);
	}
	assert_true(refused > 0);
	assert_int_equal(tstats(t.client).disk_failed, 1);
	print_message("osd lost: %u in-memory loads, %u -EIO, stores refused "
		      "after %u pages, %.1f s\n", mem_ok, eio, stored, now_s() - t0);
	assert_int_equal(ctl_run("osd-start"), 0);
	for (uint32_t i = 0; i < stored; i++)
		load_expect(&t, pid, 1, i, PK_TEXT, i);
	/*
	 * The writer writes the stranded segments again: the tier works
	 * again, and stores far past the budget are taken, none refused.
	 */
	t0 = now_s();
	while (tstats(t.client).disk_failed && now_s() - t0 < 90)
		usleep(100000);
	assert_int_equal(tstats(t.client).disk_failed, 0);
	writes = tstats(t.client).disk_writes;
	print_message("osd back: the tier writes again after %.1f s\n",
		      now_s() - t0);
	for (uint32_t i = 0; i < TIER_PAGES; i++)
		assert_int_equal(store_gen(&t, pid, 2, i, PK_TEXT, i), 0);
	assert_true(tstats(t.client).disk_writes > writes);
	for (uint32_t i = 0; i < stored; i++)
		load_expect(&t, pid, 1, i, PK_TEXT, i);
	for (uint32_t i = 0; i < TIER_PAGES; i++)
		load_expect(&t, pid, 2, i, PK_TEXT, i);
	tclient_close(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read),
		cmocka_unit_test(test_remove_scrub),
		cmocka_unit_test(test_namespace_refused),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_exclusive),
		cmocka_unit_test(test_osd_lost),
		cmocka_unit_test(test_tier_roundtrip),
		cmocka_unit_test(test_tier_wrong_object),
		cmocka_unit_test(test_tier_refused),
		cmocka_unit_test(test_tier_osd_lost),
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
