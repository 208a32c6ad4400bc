/* SPDX-License-Identifier: MIT */
/*
 * The configuration and the ABI (tmem.h): every refusal of
 * tmem_client_new2() comes with one sentence naming the field or file
 * and the rule; the sized structs follow the openat2(2) rules; the 0.1
 * entry points of the shared library still take the 0.1 layout.
 *
 * Backing files live in a mkdtemp() directory under $TMPDIR (or /tmp).
 * Without liburing the disk tier cases are skipped (libtmem answers
 * -ENOTSUP, with its own reason), unless meson found liburing
 * (TMEM_TEST_TIER_EXPECTED=1).  The shared library's symbol versions are
 * checked through dlvsym() on $TMEM_TEST_SHARED_LIB (meson sets it);
 * without it that test is skipped.
 */
#define _GNU_SOURCE		/* dlvsym() */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmem-test.h"

#ifndef TMEM_TEST_TIER_EXPECTED
#define TMEM_TEST_TIER_EXPECTED 1
#endif

#define MiB		(1ULL << 20)
#define SEG		(256u << 10)	/* the default segment size */

static char dir[PATH_MAX / 2];
static bool have_tier;

static void path_in_dir(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", dir, name);
}

/* A file as libtmem takes it: ours, mode 0600, @size bytes (sparse). */
static void private_file(const char *path, uint64_t size)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	assert_int_equal(fchmod(fd, 0600), 0);
	close(fd);
}

/*
 * tmem_client_new2() must refuse @cfg with @want and a reason holding
 * every one of the NULL-terminated fragments; the first fragment is
 * where the reason must start.
 */
static void expect_refusal(const struct tmem_client_config *cfg, size_t size,
			   int want, ...)
{
	struct tmem_client *c = (struct tmem_client *)0x1;
	char why[TMEM_ERRBUF_SIZE];
	const char *frag;
	bool first = true;
	va_list ap;
	int ret;

	memset(why, 'x', sizeof(why));
	ret = tmem_client_new2(cfg, size, &c, why, sizeof(why));
	if (ret != want)
		fail_msg("tmem_client_new2: %d (%s), want %d; reason '%s'", ret,
			 tmem_strerror(ret), want, ret ? why : "");
	assert_ptr_equal(c, (struct tmem_client *)0x1);
	assert_non_null(memchr(why, '\0', sizeof(why)));
	va_start(ap, want);
	while ((frag = va_arg(ap, const char *))) {
		const char *at = strstr(why, frag);

		if (!at || (first && at != why))
			fail_msg("reason '%s' does not %s '%s'", why,
				 first ? "start with" : "hold", frag);
		first = false;
	}
	va_end(ap);
}

static struct tmem_client_config tier_config(uint64_t budget,
					     const char *path, uint64_t size)
{
	struct tmem_client_config cfg = test_config(budget);

	cfg.backing_file = path;
	cfg.backing_size = size;
	return cfg;
}

/* The fields of the client itself, and tier fields without a file. */
static void test_field_reasons(void **state)
{
	struct tmem_client_config cfg;

	(void)state;
	cfg = test_config(0);
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "budget_bytes ",
		       "more than 0", NULL);
	cfg = test_config(64 * MiB);
	cfg.max_pools = TMEM_MAX_POOLS + 1;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "max_pools 1025 ",
		       "limit of 1024", NULL);
	cfg = test_config(64 * MiB);
	cfg.compress_threshold = TMEM_PAGE_SIZE + 1;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "compress_threshold 4097 ",
		       "4096", NULL);
	cfg = test_config(64 * MiB);
	cfg.incompressible = (enum tmem_incompressible)7;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "incompressible 7 ",
		       "TMEM_INCOMPRESSIBLE_RAW", NULL);
	cfg = test_config(64 * MiB);
	cfg.reserved = 1;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "reserved ", "0", NULL);
	cfg = test_config(64 * MiB);
	cfg.reserved0 = 1;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "reserved0 ", "not 1",
		       NULL);
	cfg = test_config(64 * MiB);
	cfg.segment_size = 64 << 10;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "segment_size needs a "
		       "disk tier: set backing_file too", NULL);
	cfg = test_config(64 * MiB);
	cfg.writeback_low = 10;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "writeback_low needs a "
		       "disk tier", NULL);
	cfg = test_config(64 * MiB);
	cfg.backing_size = 16 * MiB;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "backing_size needs a "
		       "disk tier", NULL);
	expect_refusal(NULL, sizeof(cfg), -EINVAL, "no configuration", NULL);
}

/* A reason longer than the caller's buffer is cut, and terminated. */
static void test_reason_cut(void **state)
{
	struct tmem_client_config cfg = test_config(0);
	struct tmem_client *c = NULL;
	char why[8];

	(void)state;
	memset(why, 'x', sizeof(why));
	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &c, why, 8),
			 -EINVAL);
	assert_string_equal(why, "budget_");
	/* No buffer at all is fine. */
	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &c, NULL, 0),
			 -EINVAL);
	assert_null(c);
}

/* The tier's own fields: checked before any file is touched. */
static void test_tier_field_reasons(void **state)
{
	struct tmem_client_config cfg;
	char path[PATH_MAX];

	(void)state;
	if (!have_tier)
		skip();
	path_in_dir(path, "never-created");
	cfg = tier_config(64 * MiB, path, 0);
	cfg.segment_size = 100000;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "segment_size 100000 ",
		       "power of 2 between 65536 and 16777216", NULL);
	cfg = tier_config(64 * MiB, path, 0);
	cfg.writeback_high = 101;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "writeback_high 101 ",
		       "over 100", NULL);
	cfg = tier_config(64 * MiB, path, 0);
	cfg.writeback_high = 70;
	cfg.writeback_low = 75;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "writeback_low 75 ",
		       "not below writeback_high 70", NULL);
	cfg = tier_config(64 * MiB, path, 0);
	cfg.writeback_low = 95;
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "writeback_low 95 ",
		       "writeback_high 90 (0 selects 90)", NULL);
	cfg = tier_config(64 * MiB, path, 12345);
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "backing_size 12345 ",
		       "smaller than 4 segments of 262144 bytes (1048576 "
		       "bytes)", NULL);
	cfg = tier_config(64 * MiB, "", 0);
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "backing_file is empty",
		       NULL);
	/* The budget is checked before the file is created. */
	cfg = tier_config(1 * MiB, path, 4 * MiB);
	expect_refusal(&cfg, sizeof(cfg), -ENOSPC, "budget_bytes 1048576 ",
		       "disk tier's buffers (5 segments of 262144 bytes)",
		       NULL);
	assert_int_equal(access(path, F_OK), -1);
}

/* What the file is: one reason for each way it can be refused. */
static void test_file_reasons(void **state)
{
	struct tmem_client_config cfg;
	struct tmem_client *held = NULL;
	char path[PATH_MAX], link[PATH_MAX], want[PATH_MAX + 32];

	(void)state;
	if (!have_tier)
		skip();
	path_in_dir(path, "missing");
	snprintf(want, sizeof(want), "backing_file %s: ", path);
	cfg = tier_config(64 * MiB, path, 0);
	expect_refusal(&cfg, sizeof(cfg), -ENOENT, want, "No such file",
		       "without backing_size the file must exist", NULL);

	snprintf(want, sizeof(want), "backing_file %s: ", dir);
	cfg = tier_config(64 * MiB, dir, 0);
	expect_refusal(&cfg, sizeof(cfg), -EISDIR, want, "directory", NULL);

	cfg = tier_config(64 * MiB, "/dev/null", 0);
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, "backing_file /dev/null: ",
		       "neither a regular file nor a block device", NULL);

	path_in_dir(path, "small");
	private_file(path, 4 * SEG - 4096);
	snprintf(want, sizeof(want), "backing_file %s: ", path);
	cfg = tier_config(64 * MiB, path, 0);
	expect_refusal(&cfg, sizeof(cfg), -EINVAL, want, "its 1044480 bytes "
		       "are fewer than 4 segments of 262144 bytes", NULL);
	unlink(path);

	path_in_dir(path, "target");
	private_file(path, 16 * MiB);
	path_in_dir(link, "link");
	assert_int_equal(symlink(path, link), 0);
	snprintf(want, sizeof(want), "backing_file %s: ", link);
	cfg = tier_config(64 * MiB, link, 0);
	expect_refusal(&cfg, sizeof(cfg), -ELOOP, want, "a symbolic link",
		       NULL);
	unlink(link);

	assert_int_equal(chmod(path, 0640), 0);
	snprintf(want, sizeof(want), "backing_file %s: ", path);
	cfg = tier_config(64 * MiB, path, 0);
	expect_refusal(&cfg, sizeof(cfg), -EPERM, want, "mode 0640 lets its "
		       "group or others read or write it", NULL);
	assert_int_equal(chmod(path, 0600), 0);

	if (geteuid() == 0) {
		/* Only root can give a file to someone else. */
		assert_int_equal(chown(path, 1, -1), 0);
		expect_refusal(&cfg, sizeof(cfg), -EPERM, want, "owned by uid "
			       "1, not by this process (euid 0)", NULL);
		assert_int_equal(chown(path, 0, -1), 0);
	}

	assert_int_equal(tmem_client_new2(&cfg, sizeof(cfg), &held, NULL, 0),
			 0);
	expect_refusal(&cfg, sizeof(cfg), -EBUSY, want, "in use by another "
		       "process or client (locked)", NULL);
	tmem_client_free(held);
	unlink(path);
}

/* Built without liburing: the reason says so (and names the file). */
static void test_no_tier_reason(void **state)
{
	struct tmem_client_config cfg = tier_config(64 * MiB, "/x", 0);

	(void)state;
	if (have_tier)
		skip();
	expect_refusal(&cfg, sizeof(cfg), -ENOTSUP, "backing_file /x: ",
		       "libtmem built without disk tier support", NULL);
}

/* openat2(2)'s rules for the configuration's size. */
static void test_config_size(void **state)
{
	struct {
		struct tmem_client_config cfg;
		unsigned char newer[16];	/* a newer tmem.h's fields */
	} big = { .cfg = test_config(64 * MiB) };
	struct tmem_client *c = NULL;
	char why[TMEM_ERRBUF_SIZE], want[TMEM_ERRBUF_SIZE];

	(void)state;
	/* A struct that grew keeps the 0.1 layout at its start. */
	assert_true(sizeof(struct tmem_client_config) >= TMEM_CONFIG_SIZE_VER0);
	expect_refusal(&big.cfg, 0, -EINVAL, "the configuration's size, 0 "
		       "bytes, is below TMEM_CONFIG_SIZE_VER0 (48)", NULL);
	expect_refusal(&big.cfg, TMEM_CONFIG_SIZE_VER0 - 1, -EINVAL,
		       "the configuration's size, 47 bytes", NULL);
	/* The 0.1 layout's size: later fields take their defaults. */
	assert_int_equal(tmem_client_new2(&big.cfg, TMEM_CONFIG_SIZE_VER0, &c,
					  why, sizeof(why)), 0);
	tmem_client_free(c);
	/* Larger with zeroes: what this library knows is all there is. */
	assert_int_equal(tmem_client_new2(&big.cfg, sizeof(big), &c, why,
					  sizeof(why)), 0);
	tmem_client_free(c);
	big.newer[5] = 1;
	snprintf(want, sizeof(want), "the configuration has %zu bytes and "
		 "byte %zu is not 0, but this libtmem knows only %zu",
		 sizeof(big), sizeof(big.cfg) + 5, sizeof(big.cfg));
	expect_refusal(&big.cfg, sizeof(big), -E2BIG, want, NULL);
	/* Bytes past the given size are not the library's to read. */
	assert_int_equal(tmem_client_new2(&big.cfg, sizeof(big.cfg), &c, why,
					  sizeof(why)), 0);
	tmem_client_free(c);
}

/* Stats: only the caller's bytes written, a longer struct zero-filled. */
static void test_stats_size(void **state)
{
	struct tmem_client_config cfg = test_config(64 * MiB);
	struct {
		struct tmem_stats st;
		unsigned char newer[16];
	} big;
	struct tclient t;

	(void)state;
	assert_true(sizeof(struct tmem_stats) >= TMEM_STATS_SIZE_VER0);
	tclient_open(&t, &cfg);
	memset(&big, 0xa5, sizeof(big));
	assert_int_equal(tmem_client_stats2(t.client, &big.st,
					    TMEM_STATS_SIZE_VER0 - 8), -EINVAL);
	assert_int_equal(big.st.budget_bytes, 0xa5a5a5a5a5a5a5a5ULL);
	assert_int_equal(tmem_client_stats2(t.client, &big.st, sizeof(big)),
			 0);
	assert_int_equal(big.st.budget_bytes, 64 * MiB);
	for (size_t i = 0; i < sizeof(big.newer); i++)
		assert_int_equal(big.newer[i], 0);
	memset(&big, 0xa5, sizeof(big));
	assert_int_equal(tmem_client_stats2(t.client, &big.st,
					    sizeof(big.st)), 0);
	assert_int_equal(big.st.budget_bytes, 64 * MiB);
	assert_int_equal(big.newer[0], 0xa5);
	/* The 0.3 layout is this header's; 0.2's stops before shrinking. */
	assert_int_equal(sizeof(struct tmem_stats), TMEM_STATS_SIZE_VER1);
	assert_int_equal(offsetof(struct tmem_stats, shrinking),
			 TMEM_STATS_SIZE_VER0);
	assert_int_equal(offsetof(struct tmem_stats, disk_full) + 8,
			 TMEM_STATS_SIZE_VER1);
	memset(&big, 0xa5, sizeof(big));
	assert_int_equal(tmem_client_stats2(t.client, &big.st,
					    TMEM_STATS_SIZE_VER1), 0);
	assert_int_equal(big.st.shrinking, 0);
	assert_int_equal(big.st.disk_full, 0);
	assert_int_equal(big.newer[0], 0xa5);
	/* A VER0 caller's struct ends where its fields do. */
	memset(&big, 0xa5, sizeof(big));
	assert_int_equal(tmem_client_stats2(t.client, &big.st,
					    TMEM_STATS_SIZE_VER0), 0);
	assert_int_equal(big.st.budget_bytes, 64 * MiB);
	assert_int_equal(big.st.disk_failed, 0);
	assert_int_equal(big.st.shrinking, 0xa5a5a5a5a5a5a5a5ULL);
	assert_int_equal(big.st.disk_full, 0xa5a5a5a5a5a5a5a5ULL);
	/* Both report the live budget. */
	assert_int_equal(tmem_client_set_budget(t.client, 32 * MiB, NULL, 0),
			 0);
	assert_int_equal(tmem_client_stats2(t.client, &big.st,
					    TMEM_STATS_SIZE_VER0), 0);
	assert_int_equal(big.st.budget_bytes, 32 * MiB);
	assert_int_equal(tmem_client_stats2(t.client, &big.st,
					    TMEM_STATS_SIZE_VER1), 0);
	assert_int_equal(big.st.budget_bytes, 32 * MiB);
	assert_int_equal(big.st.shrinking, 0);
	tclient_close(&t);
}

static void test_version(void **state)
{
	(void)state;
	assert_int_equal(tmem_version_number(), TMEM_VERSION_NUMBER);
	assert_int_equal(TMEM_VERSION_NUMBER,
			 TMEM_VERSION_MAJOR * 10000 + TMEM_VERSION_MINOR * 100 +
			 TMEM_VERSION_RELEASE);
}

/*
 * The configuration as LIBTMEM_0.1's tmem.h declared it: the same bytes,
 * with padding where 0.2 has @reserved0 (a hole) and @reserved (the
 * tail).  A caller compiled against
 * it left the padding as whatever was on its stack.
 */
struct config_0_1 {
	uint64_t budget_bytes;
	uint32_t max_pools;
	uint32_t compress_threshold;
	enum tmem_incompressible incompressible;
	const char *backing_file;
	uint64_t backing_size;
	uint32_t segment_size;
	uint8_t writeback_high;
	uint8_t writeback_low;
};

typedef int new_0_1_fn(const struct config_0_1 *, struct tmem_client **);
typedef int stats_0_1_fn(struct tmem_client *, struct tmem_stats *);
typedef int new_0_2_fn(const struct tmem_client_config *, size_t,
		       struct tmem_client **, char *, size_t);
typedef void free_fn(struct tmem_client *);

/* The shared library: an old caller's binary still runs against it. */
static void test_shared_0_1(void **state)
{
	const char *so = getenv("TMEM_TEST_SHARED_LIB");
	struct config_0_1 old;
	struct tmem_stats st;
	struct tmem_client *c = NULL;
	new_0_1_fn *new_0_1;
	stats_0_1_fn *stats_0_1;
	new_0_2_fn *new_0_2;
	free_fn *free_0_1;
	void *h;

	(void)state;
	if (!so || !*so)
		skip();
	h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		fail_msg("dlopen %s: %s", so, dlerror());
	assert_int_equal(sizeof(old), TMEM_CONFIG_SIZE_VER0);
	new_0_1 = (new_0_1_fn *)dlvsym(h, "tmem_client_new", "LIBTMEM_0.1");
	stats_0_1 = (stats_0_1_fn *)dlvsym(h, "tmem_client_stats",
					   "LIBTMEM_0.1");
	free_0_1 = (free_fn *)dlvsym(h, "tmem_client_free", "LIBTMEM_0.1");
	new_0_2 = (new_0_2_fn *)dlvsym(h, "tmem_client_new2", "LIBTMEM_0.2");
	assert_non_null(new_0_1);
	assert_non_null(stats_0_1);
	assert_non_null(free_0_1);
	assert_non_null(new_0_2);
	/* A new entry point is not in the old node. */
	assert_null(dlvsym(h, "tmem_client_new2", "LIBTMEM_0.1"));
	assert_non_null(dlvsym(h, "tmem_version_number", "LIBTMEM_0.2"));
	/* 0.3's in their own node, not in 0.2's. */
	assert_non_null(dlvsym(h, "tmem_client_set_budget", "LIBTMEM_0.3"));
	assert_non_null(dlvsym(h, "tmem_client_reclaim", "LIBTMEM_0.3"));
	assert_null(dlvsym(h, "tmem_client_set_budget", "LIBTMEM_0.2"));
	assert_null(dlvsym(h, "tmem_client_reclaim", "LIBTMEM_0.2"));
	/* 0.4's, the ledger, likewise. */
	static const char *const ledger_calls[] = {
		"tmem_ledger_open", "tmem_ledger_close", "tmem_ledger_join",
		"tmem_ledger_leave", "tmem_ledger_set_total",
		"tmem_ledger_set_member", "tmem_ledger_update",
		"tmem_ledger_list",
	};
	for (size_t i = 0; i < sizeof(ledger_calls) / sizeof(ledger_calls[0]);
	     i++) {
		assert_non_null(dlvsym(h, ledger_calls[i], "LIBTMEM_0.4"));
		assert_null(dlvsym(h, ledger_calls[i], "LIBTMEM_0.3"));
	}
	/* 0.5's, the pressure mode, in its own node. */
	assert_non_null(dlvsym(h, "tmem_ledger_set_pressure", "LIBTMEM_0.5"));
	assert_non_null(dlvsym(h, "tmem_ledger_get_pressure", "LIBTMEM_0.5"));
	assert_null(dlvsym(h, "tmem_ledger_set_pressure", "LIBTMEM_0.4"));
	assert_null(dlvsym(h, "tmem_ledger_get_pressure", "LIBTMEM_0.4"));
	/* Internals stay internal. */
	assert_null(dlsym(h, "tmem_refuse"));
	assert_null(dlsym(h, "tmem_ledger_pressure_decide"));
	assert_null(dlsym(h, "tmem_ledger_psi_read"));
	assert_null(dlsym(h, "tmem_ledger_shares"));
	assert_null(dlsym(h, "tmem_ledger_scan"));

	memset(&old, 0xee, sizeof(old));	/* padding as on a stack */
	old.budget_bytes = 64 * MiB;
	old.max_pools = 0;
	old.compress_threshold = 0;
	old.incompressible = TMEM_INCOMPRESSIBLE_RAW;
	old.backing_file = NULL;
	old.backing_size = 0;
	old.segment_size = 0;
	old.writeback_high = 0;
	old.writeback_low = 0;
	assert_int_equal(new_0_1(&old, &c), 0);
	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(stats_0_1(c, &st), 0);
	assert_int_equal(st.budget_bytes, 64 * MiB);
	assert_int_equal(st.disk_failed, 0);
	free_0_1(c);
	old.budget_bytes = 0;
	assert_int_equal(new_0_1(&old, &c), -EINVAL);
	dlclose(h);
}

static int group_setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	struct tmem_client_config cfg;
	struct tmem_client *c = NULL;
	char path[PATH_MAX];
	int ret;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/tmem-config-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	/* Does this libtmem have a disk tier at all? */
	path_in_dir(path, "probe");
	cfg = tier_config(64 * MiB, path, 4 * SEG);
	ret = tmem_client_new2(&cfg, sizeof(cfg), &c, NULL, 0);
	tmem_client_free(c);
	unlink(path);
	have_tier = ret == 0;
	if (ret == -ENOTSUP && TMEM_TEST_TIER_EXPECTED) {
		fprintf(stderr, "libtmem has no disk tier, but meson found "
			"liburing\n");
		return -1;
	}
	return ret && ret != -ENOTSUP ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_field_reasons),
		cmocka_unit_test(test_reason_cut),
		cmocka_unit_test(test_tier_field_reasons),
		cmocka_unit_test(test_file_reasons),
		cmocka_unit_test(test_no_tier_reason),
		cmocka_unit_test(test_config_size),
		cmocka_unit_test(test_stats_size),
		cmocka_unit_test(test_version),
		cmocka_unit_test(test_shared_0_1),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
