/* SPDX-License-Identifier: MIT */
/*
 * The host-wide pool's ledger (tmem_ledger.h, host-lib/README.md
 * "Host-wide pool"): members join, update and leave; a second opener
 * sees the same pool; the total and a member's weight and cap change at
 * run time; the share function (src/ledger_i.h) alone; free bytes split
 * by weight among those that want more; three members of
 * weights 100/100/200 converge to 25/25/50% of the total, the grants
 * never summing above it; a pool not full lets a member grow to its
 * cap; four processes update at once while the parent checks the sum;
 * a killed, a stopped and a faked member (a live pid of another start
 * time) are reaped and their grants return; files that are not a
 * ledger, or not ours, are refused with the errno of tmem_ledger.h and
 * a reason naming the file; garbage member records and hostile values
 * are reaped or saturate, never overflow.
 *
 * Ledgers live in a mkdtemp() directory under $TMPDIR (or /tmp), set as
 * $VTMEM_LEDGER_DIR: never /run.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tmem-test.h"
#include "ledger-test.h"
#include "ledger_i.h"
#include "ledger_file_i.h"

#define MiB		(1ull << 20)
#define GiB		(1ull << 30)
#define USZ		sizeof(struct tmem_ledger_usage)
#define GSZ		sizeof(struct tmem_ledger_grant)

static char dir[PATH_MAX / 2];

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void path_of(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s.ledger", dir, name);
}

static struct tmem_ledger *lopen(const char *name, uint64_t total,
				 uint32_t stale_ms)
{
	struct tmem_ledger_config cfg = {
		.create_total = total,
		.stale_ms = stale_ms,
	};
	struct tmem_ledger *l = NULL;
	char why[TMEM_ERRBUF_SIZE] = "";
	int ret = tmem_ledger_open(name, &cfg, sizeof(cfg), &l, why,
				   sizeof(why));

	if (ret)
		fail_msg("open %s: %d: %s", name, ret, why);
	return l;
}

static void join(struct tmem_ledger *l, const char *id, uint32_t weight,
		 uint64_t cap)
{
	char why[TMEM_ERRBUF_SIZE] = "";
	int ret = tmem_ledger_join(l, id, "vm", weight, cap, why, sizeof(why));

	if (ret)
		fail_msg("join %s: %d: %s", id, ret, why);
}

static struct tmem_ledger_grant update(struct tmem_ledger *l, uint64_t held,
				       bool wants)
{
	struct tmem_ledger_usage u = {
		.held_bytes = held,
		.wants_more = wants,
	};
	struct tmem_ledger_grant g;
	int ret = tmem_ledger_update(l, &u, USZ, &g, GSZ);

	if (ret)
		fail_msg("update: %d (%s)", ret, strerror(-ret));
	assert_true(g.budget_bytes <= g.grant_bytes);
	assert_true(g.pool_granted <= g.pool_total);
	return g;
}

static struct tmem_ledger_info list(struct tmem_ledger *l,
				    struct tmem_ledger_member_info *m,
				    unsigned int *n)
{
	struct tmem_ledger_member_info spare[TMEM_LEDGER_MAX_MEMBERS];
	struct tmem_ledger_info info;
	unsigned int dummy;

	assert_int_equal(tmem_ledger_list(l, &info, sizeof(info),
					  m ? m : spare, sizeof(*spare),
					  TMEM_LEDGER_MAX_MEMBERS,
					  n ? n : &dummy), 0);
	return info;
}

/* The sum of the listed grants, exactly, against the total. */
static void assert_sum_within(struct tmem_ledger *l)
{
	struct tmem_ledger_member_info m[TMEM_LEDGER_MAX_MEMBERS];
	unsigned __int128 sum = 0;
	unsigned int n;
	struct tmem_ledger_info info = list(l, m, &n);

	for (unsigned int i = 0; i < n; i++) {
		sum += m[i].grant_bytes;
		if (m[i].cap_bytes)
			assert_true(m[i].grant_bytes <= m[i].cap_bytes);
	}
	if (sum > info.total_bytes)
		fail_msg("grants sum to %llu, above the total %llu",
			 (unsigned long long)sum,
			 (unsigned long long)info.total_bytes);
	assert_true(info.granted_bytes == (uint64_t)sum);
}

/* The mapping of a ledger file, to forge or break it. */
static void *map_file(const char *name, int *fdp)
{
	char path[PATH_MAX];
	void *p;

	path_of(path, sizeof(path), name);
	*fdp = open(path, O_RDWR);
	assert_true(*fdp >= 0);
	p = mmap(NULL, LEDGER_FILE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		 *fdp, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

static struct ledger_rec *records(void *map)
{
	return (struct ledger_rec *)((char *)map + LEDGER_HDR_SIZE);
}

/* The records of a ledger file, mapped into *@map. */
static struct ledger_rec *map_recs(const char *name, void **map, int *fdp)
{
	*map = map_file(name, fdp);
	return records(*map);
}

static void unmap_file(void *p, int fd)
{
	munmap(p, LEDGER_FILE_SIZE);
	close(fd);
}

/* ---- basics ------------------------------------------------------------ */

static void test_create_join_leave(void **state)
{
	struct tmem_ledger_member_info m[TMEM_LEDGER_MAX_MEMBERS];
	struct tmem_ledger_grant g;
	struct tmem_ledger_usage u = { 0 };
	struct tmem_ledger *l = NULL;
	char why[TMEM_ERRBUF_SIZE] = "", path[PATH_MAX];
	struct stat st;
	unsigned int n;

	(void)state;
	path_of(path, sizeof(path), "basic");
	/* Without create_total nothing is created. */
	assert_int_equal(tmem_ledger_open("basic", NULL, 0, &l, why,
					  sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, path));
	assert_int_equal(stat(path, &st), -1);

	l = lopen("basic", 1 * GiB, 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, LEDGER_FILE_SIZE);
	/* Allocated, not a hole (a full file system would SIGBUS later). */
	assert_true((uint64_t)st.st_blocks * 512 >= LEDGER_FILE_SIZE);
	assert_int_equal(tmem_ledger_update(l, &u, USZ, &g, GSZ), -ENOTCONN);
	assert_int_equal(tmem_ledger_leave(l), -ENOTCONN);

	join(l, "dev0", 0, 0);
	assert_int_equal(tmem_ledger_join(l, "dev1", NULL, 0, 0, why,
					  sizeof(why)), -EALREADY);
	g = update(l, 0, true);
	assert_int_equal(g.members, 1);
	assert_int_equal(g.weight, TMEM_LEDGER_DEFAULT_WEIGHT);
	assert_int_equal(g.share_bytes, 1 * GiB);
	assert_int_equal(g.pool_total, 1 * GiB);
	/* Alone and wanting more: the whole pool at once. */
	assert_int_equal(g.grant_bytes, 1 * GiB);
	assert_int_equal(g.pool_granted, 1 * GiB);
	assert_int_equal(g.full, 1);
	list(l, m, &n);
	assert_int_equal(n, 1);
	assert_string_equal(m[0].id, "dev0");
	assert_string_equal(m[0].vm, "vm");
	assert_int_equal(m[0].pid, getpid());
	assert_int_equal(m[0].grant_bytes, 1 * GiB);

	assert_int_equal(tmem_ledger_leave(l), 0);
	assert_int_equal(list(l, NULL, &n).granted_bytes, 0);
	assert_int_equal(n, 0);
	assert_int_equal(tmem_ledger_update(l, &u, USZ, &g, GSZ), -ENOTCONN);
	/* Join again, then close: close leaves. */
	join(l, "dev0", 0, 0);
	tmem_ledger_close(l);
	l = lopen("basic", 0, 0);
	assert_int_equal(list(l, NULL, &n).members, 0);
	tmem_ledger_close(l);
}

/* list()'s sizes: below VER0, VER0 itself, a larger stride zeroed. */
static void list_sizes(struct tmem_ledger *l)
{
	struct tmem_ledger_member_info m[1];
	struct tmem_ledger_info info[2];
	const size_t stride = sizeof(m[0]) + 16;
	unsigned char big[2 * (sizeof(m[0]) + 16)];
	unsigned int n;

	assert_int_equal(tmem_ledger_list(l, info, 16, m, sizeof(m[0]), 1,
					  &n), -EINVAL);
	assert_int_equal(tmem_ledger_list(l, info, sizeof(info[0]), m, 16, 1,
					  &n), -EINVAL);
	assert_int_equal(tmem_ledger_list(l, info, sizeof(info[0]), NULL, 0,
					  0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(tmem_ledger_list(l, info,
					  TMEM_LEDGER_INFO_SIZE_VER0, m,
					  TMEM_LEDGER_MEMBER_INFO_SIZE_VER0, 1,
					  &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(m[0].id, "x");
	memset(info, 0xa5, sizeof(info));
	memset(big, 0xa5, sizeof(big));
	assert_int_equal(tmem_ledger_list(l, info, sizeof(info),
					  (void *)big, stride, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(info[0].members, 1);
	for (size_t i = 0; i < sizeof(info[1]); i++)
		assert_int_equal(((unsigned char *)&info[1])[i], 0);
	memcpy(m, big, sizeof(m[0]));
	assert_string_equal(m[0].id, "x");
	assert_int_equal(m[0].weight, 1);
	for (size_t i = sizeof(m[0]); i < stride; i++)
		assert_int_equal(big[i], 0);
	/* The second element, beyond *n, untouched. */
	assert_int_equal(big[stride], 0xa5);
}

static void test_arguments(void **state)
{
	struct tmem_ledger_config cfg[2] = { { .create_total = GiB } };
	struct tmem_ledger_usage u[2] = { { 0 } };
	struct tmem_ledger_grant g[2];
	struct tmem_ledger *l = NULL;
	char why[TMEM_ERRBUF_SIZE] = "", name[80];

	(void)state;
	assert_int_equal(tmem_ledger_open(".hidden", &cfg[0], sizeof(cfg[0]),
					  &l, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, ".hidden"));
	assert_int_equal(tmem_ledger_open("a/b", &cfg[0], sizeof(cfg[0]), &l,
					  NULL, 0), -EINVAL);
	assert_int_equal(tmem_ledger_open("", &cfg[0], sizeof(cfg[0]), &l,
					  NULL, 0), -EINVAL);
	memset(name, 'n', 64);
	name[64] = '\0';
	assert_int_equal(tmem_ledger_open(name, &cfg[0], sizeof(cfg[0]), &l,
					  NULL, 0), -EINVAL);
	name[63] = '\0';
	assert_int_equal(tmem_ledger_open(name, &cfg[0], sizeof(cfg[0]), &l,
					  NULL, 0), 0);
	tmem_ledger_close(l);
	/* Sized struct: below VER0, a non-zero byte beyond ours. */
	assert_int_equal(tmem_ledger_open("args", &cfg[0], 8, &l, NULL, 0),
			 -EINVAL);
	((unsigned char *)&cfg[1])[0] = 1;
	assert_int_equal(tmem_ledger_open("args", &cfg[0], sizeof(cfg[0]) + 8,
					  &l, NULL, 0), -E2BIG);
	memset(&cfg[1], 0, sizeof(cfg[1]));
	/* stale_ms: 1000..600000 (0: the default). */
	cfg[0].stale_ms = TMEM_LEDGER_STALE_MIN_MS - 1;
	assert_int_equal(tmem_ledger_open("args", &cfg[0], sizeof(cfg[0]), &l,
					  why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "stale_ms 999"));
	cfg[0].stale_ms = TMEM_LEDGER_STALE_MAX_MS + 1;
	assert_int_equal(tmem_ledger_open("args", &cfg[0], sizeof(cfg[0]), &l,
					  NULL, 0), -EINVAL);
	cfg[0].stale_ms = 0;
	assert_int_equal(tmem_ledger_open("args", &cfg[0], sizeof(cfg),
					  &l, NULL, 0), 0);
	assert_int_equal(tmem_ledger_join(l, "bad\nid", NULL, 0, 0, why,
					  sizeof(why)), -EINVAL);
	assert_int_equal(tmem_ledger_join(l, "", NULL, 0, 0, NULL, 0),
			 -EINVAL);
	assert_int_equal(tmem_ledger_join(l, "x", NULL, 10001, 0, why,
					  sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "weight"));
	join(l, "x", 1, 0);
	assert_int_equal(tmem_ledger_update(l, &u[0], 16, &g[0], GSZ),
			 -EINVAL);
	assert_int_equal(tmem_ledger_update(l, &u[0], USZ, &g[0], 16),
			 -EINVAL);
	u[0].reserved = 1;
	assert_int_equal(tmem_ledger_update(l, &u[0], USZ, &g[0], GSZ),
			 -EINVAL);
	u[0].reserved = 0;
	((unsigned char *)&u[1])[3] = 1;
	assert_int_equal(tmem_ledger_update(l, &u[0], sizeof(u), &g[0], GSZ),
			 -E2BIG);
	memset(&u[1], 0, sizeof(u[1]));
	memset(g, 0xa5, sizeof(g));
	assert_int_equal(tmem_ledger_update(l, &u[0], sizeof(u), &g[0],
					    sizeof(g)), 0);
	for (size_t i = 0; i < sizeof(g[1]); i++)
		assert_int_equal(((unsigned char *)&g[1])[i], 0);
	assert_int_equal(g[0].weight, 1);
	assert_int_equal(tmem_ledger_set_total(l, 0), -EINVAL);
	list_sizes(l);
	assert_int_equal(tmem_ledger_set_member(l, "nobody", 5, UINT64_MAX),
			 -ENOENT);
	assert_int_equal(tmem_ledger_set_member(l, "x", 10001, UINT64_MAX),
			 -EINVAL);
	tmem_ledger_close(l);
	tmem_ledger_close(NULL);
}

static void test_second_opener(void **state)
{
	struct tmem_ledger *a = lopen("two", 3 * GiB, 0);
	/* Its create_total does not change the ledger's. */
	struct tmem_ledger *b = lopen("two", 5 * GiB, 0);
	struct tmem_ledger *c = lopen("two", 0, 0);
	char why[TMEM_ERRBUF_SIZE] = "";
	struct tmem_ledger_grant g;
	unsigned int n;

	(void)state;
	assert_int_equal(list(b, NULL, NULL).total_bytes, 3 * GiB);
	assert_int_equal(list(c, NULL, NULL).total_bytes, 3 * GiB);
	join(a, "one", 0, 0);
	assert_int_equal(tmem_ledger_join(b, "one", NULL, 0, 0, why,
					  sizeof(why)), -EEXIST);
	assert_non_null(strstr(why, "one"));
	join(b, "two", 0, 0);
	update(a, 0, true);
	g = update(b, 0, true);
	assert_int_equal(g.members, 2);
	assert_int_equal(g.share_bytes, 3 * GiB / 2);
	list(c, NULL, &n);
	assert_int_equal(n, 2);
	assert_sum_within(c);
	tmem_ledger_close(a);
	tmem_ledger_close(b);
	list(c, NULL, &n);
	assert_int_equal(n, 0);
	tmem_ledger_close(c);
}

static void test_set_total(void **state)
{
	struct tmem_ledger *a = lopen("total", 1 * GiB, 0);
	struct tmem_ledger *b = lopen("total", 0, 0);
	struct tmem_ledger_grant g;

	(void)state;
	join(a, "a", 0, 0);
	join(b, "b", 0, 0);
	for (int i = 0; i < 40; i++) {
		update(a, 0, true);
		update(b, 0, true);
	}
	assert_int_equal(list(a, NULL, NULL).granted_bytes, 1 * GiB);
	/* Anyone who opened it may grow it ... */
	struct tmem_ledger *tool = lopen("total", 0, 0);

	assert_int_equal(tmem_ledger_set_total(tool, 2 * GiB), 0);
	g = update(a, 0, true);
	assert_int_equal(g.pool_total, 2 * GiB);
	assert_int_equal(g.share_bytes, 1 * GiB);
	assert_true(g.grant_bytes > 512 * MiB);
	/* ... or lower it below the grants: each is cut to its share. */
	assert_int_equal(tmem_ledger_set_total(tool, 256 * MiB), 0);
	assert_sum_within(tool);
	g = update(b, 300 * MiB, true);
	assert_int_equal(g.pool_total, 256 * MiB);
	assert_true(g.grant_bytes <= 128 * MiB);
	assert_true(g.budget_bytes <= 128 * MiB);
	assert_sum_within(tool);
	tmem_ledger_close(a);
	tmem_ledger_close(b);
	tmem_ledger_close(tool);
}

static void test_set_member(void **state)
{
	struct tmem_ledger *a = lopen("member", 1 * GiB, 0);
	struct tmem_ledger *b = lopen("member", 0, 0);
	struct tmem_ledger *tool = lopen("member", 0, 0);
	struct tmem_ledger_member_info m[TMEM_LEDGER_MAX_MEMBERS];
	struct tmem_ledger_grant g;
	unsigned int n;

	(void)state;
	join(a, "a", 100, 0);
	join(b, "b", 100, 0);
	g = update(a, 0, true);
	assert_int_equal(g.share_bytes, 512 * MiB);
	/* Weight 300: a's share becomes 3/4 at its next update. */
	assert_int_equal(tmem_ledger_set_member(tool, "a", 300, UINT64_MAX), 0);
	g = update(a, 0, true);
	assert_int_equal(g.weight, 300);
	assert_int_equal(g.share_bytes, 768 * MiB);
	/* A cap below the grant cuts it at once, the budget follows. */
	assert_true(g.grant_bytes > 100 * MiB);
	assert_int_equal(tmem_ledger_set_member(tool, "a", 0, 100 * MiB), 0);
	list(tool, m, &n);
	assert_string_equal(m[0].id, "a");
	assert_int_equal(m[0].weight, 300);
	assert_int_equal(m[0].cap_bytes, 100 * MiB);
	assert_true(m[0].grant_bytes <= 100 * MiB);
	g = update(a, 0, true);
	assert_true(g.grant_bytes <= 100 * MiB);
	assert_int_equal(g.share_bytes, 100 * MiB);
	g = update(b, 0, true);
	assert_int_equal(g.share_bytes, 1 * GiB - 100 * MiB);
	/* Cap 0: no cap again. */
	assert_int_equal(tmem_ledger_set_member(tool, "a", 0, 0), 0);
	g = update(a, 0, true);
	assert_int_equal(g.share_bytes, 768 * MiB);
	tmem_ledger_close(a);
	tmem_ledger_close(b);
	tmem_ledger_close(tool);
}

/* ---- the share function ------------------------------------------------ */

static void shares(uint64_t total, const uint32_t *w, const uint64_t *cap,
		   uint64_t *share, unsigned int n)
{
	unsigned __int128 sum = 0, caps = 0;

	tmem_ledger_shares(total, w, cap, share, n);
	for (unsigned int i = 0; i < n; i++) {
		assert_true(share[i] <= cap[i]);
		sum += share[i];
		caps += cap[i];
	}
	/* Exactly the total, or every member at its cap. */
	assert_true(sum == (caps < total ? caps : total));
}

/* Three members' shares of @total, expected @a, @b, @c. */
static void expect3(uint64_t total, const uint32_t *w, const uint64_t *cap,
		    uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t s[3];

	shares(total, w, cap, s, 3);
	if (s[0] != a || s[1] != b || s[2] != c)
		fail_msg("shares of %llu: %llu %llu %llu, not %llu %llu %llu",
			 (unsigned long long)total, (unsigned long long)s[0],
			 (unsigned long long)s[1], (unsigned long long)s[2],
			 (unsigned long long)a, (unsigned long long)b,
			 (unsigned long long)c);
}

static void test_shares(void **state)
{
	uint32_t w[TMEM_LEDGER_MAX_MEMBERS];
	uint64_t cap[TMEM_LEDGER_MAX_MEMBERS], s[TMEM_LEDGER_MAX_MEMBERS];

	(void)state;
	/* Equal weights. */
	for (int i = 0; i < 3; i++) {
		w[i] = 100;
		cap[i] = 3000;
	}
	expect3(3000, w, cap, 1000, 1000, 1000);
	/* 100/100/200. */
	w[2] = 200;
	expect3(4000, w, cap, 1000, 1000, 2000);
	/* A cap below the fair part gives the rest to the others, by
	 * weight, and again when that lifts another above its cap. */
	cap[0] = 400;
	cap[1] = 10000;
	cap[2] = 10000;
	expect3(4000, w, cap, 400, 1200, 2400);
	cap[2] = 2000;
	expect3(4000, w, cap, 400, 1600, 2000);
	/* Every member at its cap: the rest stays unshared. */
	cap[1] = 500;
	expect3(4000, w, cap, 400, 500, 2000);
	/* One member. */
	cap[0] = 7777;
	shares(7777, w, cap, s, 1);
	assert_int_equal(s[0], 7777);
	/* The remainder of the division, a byte each. */
	cap[0] = cap[1] = cap[2] = 100;
	w[0] = w[1] = w[2] = 1;
	expect3(100, w, cap, 34, 33, 33);
	/* No overflow: the largest total and weights, 64 members. */
	for (int i = 0; i < TMEM_LEDGER_MAX_MEMBERS; i++) {
		w[i] = i % 2 ? TMEM_LEDGER_WEIGHT_MAX : 1;
		cap[i] = UINT64_MAX;
	}
	shares(UINT64_MAX, w, cap, s, TMEM_LEDGER_MAX_MEMBERS);
	assert_true(s[1] > s[0]);
	cap[5] = 12345;
	shares(UINT64_MAX, w, cap, s, TMEM_LEDGER_MAX_MEMBERS);
	assert_int_equal(s[5], 12345);
	shares(0, w, cap, s, TMEM_LEDGER_MAX_MEMBERS);
	assert_int_equal(s[0], 0);
}

/* ---- policy through the ledger ----------------------------------------- */

/*
 * Three members, weights 100/100/200, each always wanting more, their
 * held bytes following the budget with a lag (half the way a tick):
 * within 10% of 25/25/50% of the total after at most 10 ticks (README:
 * "Host-wide pool") and for the 300 after, the grants never
 * summing above the total, no grant above its cap, no held above its
 * grant.  Member 0 joins first and takes the whole pool before the others
 * come, so that they have to win it back.
 */
static void test_converge(void **state)
{
	const uint64_t total = 4 * GiB;
	const uint32_t weight[3] = { 100, 100, 200 };
	const double want[3] = { 0.25, 0.25, 0.50 };
	struct tmem_ledger *l[3];
	uint64_t held[3] = { 0 }, grant[3] = { 0 };
	struct tmem_ledger_grant g;
	int tick, done = -1;

	(void)state;
	for (int i = 0; i < 3; i++)
		l[i] = lopen("converge", total, 0);
	join(l[0], "m0", weight[0], 0);
	for (int t = 0; t < 10; t++) {
		g = update(l[0], held[0], true);
		held[0] += (g.budget_bytes - held[0]) / 2;
	}
	assert_int_equal(g.grant_bytes, total);
	join(l[1], "m1", weight[1], 0);
	join(l[2], "m2", weight[2], 0);
	for (tick = 0; tick < 300; tick++) {
		bool near = true;

		for (int i = 0; i < 3; i++) {
			g = update(l[i], held[i], true);
			grant[i] = g.grant_bytes;
			assert_true(held[i] <= g.grant_bytes);
			if (g.budget_bytes >= held[i])
				held[i] += (g.budget_bytes - held[i]) / 2;
			else
				held[i] -= (held[i] - g.budget_bytes) / 2;
		}
		assert_true((unsigned __int128)grant[0] + grant[1] + grant[2] <=
			    total);
		for (int i = 0; i < 3; i++)
			if (held[i] < (want[i] - 0.1 * want[i]) * total ||
			    held[i] > (want[i] + 0.1 * want[i]) * total)
				near = false;
		if (near && done < 0)
			done = tick;
		if (!near)
			done = -1;
	}
	print_message("converged (and stayed) after %d ticks: held %.3f %.3f "
		      "%.3f of the total\n", done + 1, (double)held[0] / total,
		      (double)held[1] / total, (double)held[2] / total);
	assert_true(done >= 0 && done + 1 <= 10);
	assert_sum_within(l[0]);
	for (int i = 0; i < 3; i++)
		tmem_ledger_close(l[i]);
}

/*
 * Free bytes split by weight among the members that want more: none
 * takes them all, however early it comes.
 */
static void test_split_free(void **state)
{
	struct tmem_ledger *l[3];
	const uint32_t weight[3] = { 100, 100, 200 };
	struct tmem_ledger_grant g[3];
	char id[8];

	(void)state;
	for (int i = 0; i < 3; i++) {
		l[i] = lopen("split", 4 * GiB, 0);
		snprintf(id, sizeof(id), "s%d", i);
		join(l[i], id, weight[i], 0);
	}
	for (int i = 0; i < 3; i++)
		g[i] = update(l[i], 0, true);
	/* 100 of 400, then 100 of 400 of the 3/4 left, then 200 of 400. */
	assert_int_equal(g[0].grant_bytes, 1 * GiB);
	assert_int_equal(g[1].grant_bytes, 3 * GiB / 4);
	assert_int_equal(g[2].grant_bytes, 9 * GiB / 8);
	assert_int_equal(g[2].full, 0);
	for (int i = 0; i < 3; i++)
		tmem_ledger_close(l[i]);
}

/* Without contention a member grows to its cap, an idle one gives back. */
static void test_grow_to_cap(void **state)
{
	struct tmem_ledger *a = lopen("cap", 1 * GiB, 0);
	struct tmem_ledger *b = lopen("cap", 0, 0);
	struct tmem_ledger_grant ga, gb;

	(void)state;
	join(a, "idle", 100, 0);
	join(b, "busy", 100, 700 * MiB);
	for (int i = 0; i < 20; i++) {
		ga = update(a, 10 * MiB, false);
		gb = update(b, 0, true);
	}
	/* The idle one: what it holds plus the headroom. */
	assert_int_equal(ga.grant_bytes, 10 * MiB + (ga.share_bytes >> 6));
	assert_int_equal(ga.budget_bytes, ga.grant_bytes);
	/* The busy one: its cap, past its share of 512 MiB. */
	assert_int_equal(gb.share_bytes, 512 * MiB);
	assert_int_equal(gb.grant_bytes, 700 * MiB);
	assert_int_equal(gb.budget_bytes, 700 * MiB);
	assert_int_equal(gb.contended, 0);
	/* Lift the cap: it grows into all the idle one does not use. */
	assert_int_equal(tmem_ledger_set_member(a, "busy", 0, 0), 0);
	for (int i = 0; i < 20; i++)
		gb = update(b, gb.budget_bytes, true);
	assert_int_equal(gb.grant_bytes, 1 * GiB - ga.grant_bytes);
	assert_int_equal(gb.full, 1);
	/* The idle one wakes up and wants its share: the busy one's budget
	 * drops to its share, its grant only as its held follows. */
	uint64_t held_b = gb.grant_bytes, held_a = 10 * MiB;

	for (int i = 0; i < 60; i++) {
		ga = update(a, held_a, true);
		gb = update(b, held_b, true);
		held_a = ga.budget_bytes;
		assert_true(gb.grant_bytes >= held_b ||
			    gb.grant_bytes == gb.budget_bytes);
		held_b = held_b > gb.budget_bytes ?
			 held_b - (held_b - gb.budget_bytes) / 4 : held_b;
	}
	assert_true(ga.grant_bytes >= 500 * MiB);
	assert_true(gb.budget_bytes >= 500 * MiB &&
		    gb.budget_bytes <= 524 * MiB);
	assert_sum_within(a);
	tmem_ledger_close(a);
	tmem_ledger_close(b);
}

/* ---- processes --------------------------------------------------------- */

/* A child: its own handle, updating for @secs; exits 0 if all was sane. */
static void child_loop(const char *name, int k, double secs)
{
	struct tmem_ledger_config cfg = { 0 };
	struct tmem_ledger *l;
	struct tmem_ledger_usage u = { 0 };
	struct tmem_ledger_grant g;
	double end = now_sec() + secs;
	char id[16];
	unsigned int seed = (unsigned int)getpid();

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (tmem_ledger_open(name, &cfg, sizeof(cfg), &l, NULL, 0))
		_exit(2);
	snprintf(id, sizeof(id), "c%d", k);
	if (tmem_ledger_join(l, id, NULL, 100 * (k + 1), 0, NULL, 0))
		_exit(3);
	while (now_sec() < end) {
		int ret;

		u.wants_more = rand_r(&seed) % 4 != 0;
		ret = tmem_ledger_update(l, &u, USZ, &g, GSZ);
		if (ret == -EAGAIN)
			continue;
		if (ret)
			_exit(4);
		if (g.budget_bytes > g.grant_bytes ||
		    g.pool_granted > g.pool_total)
			_exit(5);
		u.held_bytes = g.budget_bytes - (g.budget_bytes >> 3);
		usleep(1000);	/* the parent's list() is not starved */
	}
	tmem_ledger_close(l);
	_exit(0);
}

static void test_processes(void **state)
{
	struct tmem_ledger *l = lopen("procs", 2 * GiB, 0);
	pid_t pid[4];
	double end;
	int checks = 0, status, max_members = 0;

	(void)state;
	for (int k = 0; k < 4; k++) {
		pid[k] = fork();
		assert_true(pid[k] >= 0);
		if (!pid[k])
			child_loop("procs", k, 1.5);
	}
	/* Longer than the children: all four overlap within it. */
	end = now_sec() + 1.7;
	while (now_sec() < end) {
		unsigned int n;

		list(l, NULL, &n);
		assert_sum_within(l);
		if ((int)n > max_members)
			max_members = (int)n;
		if (++checks % 50 == 0)
			assert_int_equal(tmem_ledger_set_total(l, checks % 100 ?
						1 * GiB : 2 * GiB), 0);
	}
	for (int k = 0; k < 4; k++) {
		assert_int_equal(waitpid(pid[k], &status, 0), pid[k]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	print_message("%d checks of the sum while 4 processes updated\n",
		      checks);
	assert_int_equal(max_members, 4);
	assert_int_equal(list(l, NULL, NULL).members, 0);
	tmem_ledger_close(l);
}

static void kill_child(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* The next update reaps one member and its grant comes back. */
static void assert_reaped_one(struct tmem_ledger *l)
{
	struct tmem_ledger_grant g = update(l, 0, false);

	assert_int_equal(g.reaped, 1);
	assert_int_equal(g.members, 1);
	assert_int_equal(g.pool_granted, g.grant_bytes);
}

/* A child that joins, takes a grant, says so and waits to be killed. */
static pid_t member_child(const char *name, const char *id)
{
	int fds[2];
	char c;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct tmem_ledger *l = NULL;
		struct tmem_ledger_usage u = { .wants_more = 1 };
		struct tmem_ledger_grant g;

		/* Not left behind by a failed assertion of the parent. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		close(fds[0]);
		if (tmem_ledger_open(name, NULL, 0, &l, NULL, 0) ||
		    tmem_ledger_join(l, id, NULL, 0, 0, NULL, 0) ||
		    tmem_ledger_update(l, &u, USZ, &g, GSZ))
			_exit(1);
		if (write(fds[1], "j", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	if (read(fds[0], &c, 1) != 1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		fail_msg("member %s: the child failed", id);
	}
	close(fds[0]);
	return pid;
}

/*
 * Not an assertion: what one update costs, with 4 members in this
 * process, then with 3 in other processes (each checked with kill() and
 * its /proc/<pid>/stat at every update).
 */
static void test_update_cost(void **state)
{
	struct tmem_ledger *l[4];
	pid_t pid[3];
	double t0, t;
	const int rounds = 5000;
	char id[8];

	(void)state;
	for (int i = 0; i < 4; i++) {
		/* The largest stale_ms: a stalled machine reaps nobody. */
		l[i] = lopen("cost", 8 * GiB, TMEM_LEDGER_STALE_MAX_MS);
		snprintf(id, sizeof(id), "d%d", i);
		join(l[i], id, 100, 0);
	}
	t0 = now_sec();
	for (int r = 0; r < rounds; r++)
		update(l[r % 4], 0, r % 3 == 0);
	t = now_sec() - t0;
	print_message("tmem_ledger_update(): %.2f us a call, 4 members in "
		      "this process\n", t / rounds * 1e6);
	for (int i = 1; i < 4; i++)
		tmem_ledger_close(l[i]);
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "p%d", i);
		pid[i] = member_child("cost", id);
	}
	t0 = now_sec();
	for (int r = 0; r < rounds; r++)
		assert_int_equal(update(l[0], 0, r % 3 == 0).members, 4);
	t = now_sec() - t0;
	print_message("tmem_ledger_update(): %.2f us a call, 3 of 4 members "
		      "in other processes\n", t / rounds * 1e6);
	for (int i = 0; i < 3; i++) {
		kill_child(pid[i]);
	}
	tmem_ledger_close(l[0]);
}

/* A ledger with this process's member "parent" and a child's "child". */
static struct tmem_ledger *with_child(const char *name, uint32_t stale_ms,
				      pid_t *pid)
{
	struct tmem_ledger *l = lopen(name, 1 * GiB, stale_ms);

	join(l, "parent", 0, 0);
	update(l, 0, false);
	*pid = member_child(name, "child");
	return l;
}

static void test_crash(void **state)
{
	struct tmem_ledger_grant g;
	pid_t pid;
	struct tmem_ledger *l = with_child("crash", 1000, &pid);
	double t0;

	(void)state;
	/* Killed: reaped at once, by its pid. */
	assert_int_equal(list(l, NULL, NULL).members, 2);
	assert_true(list(l, NULL, NULL).granted_bytes > 100 * MiB);
	kill_child(pid);
	assert_reaped_one(l);
	/*
	 * Stopped: alive, its heartbeat ageing past stale_ms (1000), but
	 * it still holds its pages: it keeps its grant, for as long as it
	 * is stopped; killed while stopped, it is reaped at once.
	 */
	t0 = now_sec();
	pid = member_child("crash", "child");
	kill(pid, SIGSTOP);
	do {
		usleep(20000);
		g = update(l, 0, false);
		assert_int_equal(g.members, 2);
	} while (now_sec() - t0 < 1.5);
	assert_true(g.pool_granted > g.grant_bytes);
	kill_child(pid);
	assert_reaped_one(l);
	tmem_ledger_close(l);
}

/* A record with a live pid but another start time is a reused pid. */
static void test_pid_reuse(void **state)
{
	struct ledger_rec *recs;
	struct tmem_ledger_grant g;
	void *map;
	pid_t pid;
	struct tmem_ledger *l = with_child("reuse", 0, &pid);
	int fd;

	(void)state;
	recs = map_recs("reuse", &map, &fd);
	for (int i = 0; i < TMEM_LEDGER_MAX_MEMBERS; i++) {
		if (recs[i].state == LEDGER_LIVE &&
		    !strcmp(recs[i].id, "child")) {
			/* The right start time: it lives on. */
			assert_int_equal(recs[i].start_time,
					 tmem_ledger_start_time((uint32_t)pid));
			g = update(l, 0, false);
			assert_int_equal(g.members, 2);
			recs[i].start_time++;
		}
	}
	assert_reaped_one(l);
	unmap_file(map, fd);
	kill_child(pid);
	tmem_ledger_close(l);
}

/* ---- refused files ----------------------------------------------------- */

static void expect_refused(const char *name, int err, const char *words)
{
	struct tmem_ledger *l = NULL;
	char why[TMEM_ERRBUF_SIZE] = "", path[PATH_MAX];
	int ret = tmem_ledger_open(name, NULL, 0, &l, why, sizeof(why));

	path_of(path, sizeof(path), name);
	if (ret != err)
		fail_msg("%s: %d (%s), not %d", name, ret, why, err);
	assert_null(l);
	if (!strstr(why, path) || !strstr(why, words))
		fail_msg("%s: the reason \"%s\" does not name %s and \"%s\"",
			 name, why, path, words);
}

static void make_ledger(const char *name)
{
	tmem_ledger_close(lopen(name, 1 * GiB, 0));
}

/* A new ledger's header, mapped, to break. */
static struct ledger_hdr *fresh_header(const char *name, int *fdp)
{
	make_ledger(name);
	return map_file(name, fdp);
}

static void test_refused_files(void **state)
{
	char path[PATH_MAX], other[PATH_MAX];
	struct ledger_hdr *h;
	int fd;

	(void)state;
	/* Bad magic. */
	h = fresh_header("magic", &fd);
	h->magic = 0x1234;
	unmap_file(h, fd);
	expect_refused("magic", -EINVAL, "not a virtio-tmem ledger");
	/* Wrong size. */
	make_ledger("size");
	path_of(path, sizeof(path), "size");
	assert_int_equal(truncate(path, LEDGER_FILE_SIZE + 1), 0);
	expect_refused("size", -EINVAL, "bytes, not a virtio-tmem ledger");
	/* A checksum that does not match (a static field changed). */
	h = fresh_header("sum", &fd);
	h->name[0] ^= 1;
	unmap_file(h, fd);
	expect_refused("sum", -EBADMSG, "checksum");
	/* Another format version. */
	h = fresh_header("version", &fd);
	h->version = 1;
	unmap_file(h, fd);
	expect_refused("version", -EPROTO, "format version 1");
	/* A format-1 file: its size (a 256-byte header), magic, version 1. */
	make_ledger("format1");
	h = map_file("format1", &fd);
	h->version = 1;
	unmap_file(h, fd);
	path_of(path, sizeof(path), "format1");
	assert_int_equal(truncate(path, 256 + TMEM_LEDGER_MAX_MEMBERS *
				  sizeof(struct ledger_rec)), 0);
	expect_refused("format1", -EPROTO, "format version 1");
	/* A total of 0. */
	h = fresh_header("zero", &fd);
	h->total = 0;
	unmap_file(h, fd);
	expect_refused("zero", -EBADMSG, "total of 0");
	/* Mode 0644, 0640, 0604. */
	make_ledger("mode");
	path_of(path, sizeof(path), "mode");
	assert_int_equal(chmod(path, 0644), 0);
	expect_refused("mode", -EPERM, "0644");
	assert_int_equal(chmod(path, 0640), 0);
	expect_refused("mode", -EPERM, "group or others");
	assert_int_equal(chmod(path, 0604), 0);
	expect_refused("mode", -EPERM, "group or others");
	/* Another pool's file under this name. */
	make_ledger("pool-a");
	path_of(path, sizeof(path), "pool-a");
	path_of(other, sizeof(other), "pool-b");
	assert_int_equal(rename(path, other), 0);
	expect_refused("pool-b", -EINVAL, "holds pool pool-a, not pool-b");
	/* A symbolic link, even to a good ledger. */
	make_ledger("target");
	path_of(path, sizeof(path), "target");
	path_of(other, sizeof(other), "link");
	assert_int_equal(symlink(path, other), 0);
	expect_refused("link", -ELOOP, "symbolic link");
	/* Not a ledger at all, or not initialised within 1 s. */
	path_of(path, sizeof(path), "empty");
	fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
	assert_true(fd >= 0);
	close(fd);
	double t0 = now_sec();

	expect_refused("empty", -EINVAL, "no magic after waiting");
	assert_true(now_sec() - t0 >= 0.9);
	/* Another owner (as root only). */
	if (geteuid() == 0) {
		make_ledger("owner");
		path_of(path, sizeof(path), "owner");
		assert_int_equal(chown(path, 65534, 65534), 0);
		expect_refused("owner", -EPERM, "owned by uid 65534");
	} else {
		print_message("not root: the other owner's ledger not tried\n");
	}
}

/* In a child as nobody: open @name in @sub; 0 if it was @err, naming @words. */
static int open_as_nobody(const char *sub, const char *name, uint64_t total,
			  int err, const char *words)
{
	struct tmem_ledger_config cfg = { .dir = sub, .create_total = total };
	struct tmem_ledger *l = NULL;
	char why[TMEM_ERRBUF_SIZE] = "";
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (!pid) {
		if (setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(2);
		if (tmem_ledger_open(name, &cfg, sizeof(cfg), &l, why,
				     sizeof(why)) != err || l)
			_exit(3);
		_exit(strstr(why, sub) && strstr(why, words) ? 0 : 4);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/*
 * As root, in a directory of nobody's: root's 0600 file, which nobody's
 * open(2) is refused (EACCES), is -EPERM; nobody's creation in a 0500
 * directory is open(2)'s -EACCES, not "does not create it".
 */
static void test_other_user(void **state)
{
	char sub[PATH_MAX / 2 + 16], path[PATH_MAX], dst[PATH_MAX];

	(void)state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	snprintf(sub, sizeof(sub), "%s/nobody", dir);
	assert_int_equal(chmod(dir, 0711), 0);		/* nobody passes */
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(chown(sub, 65534, 65534), 0);
	make_ledger("root");
	path_of(path, sizeof(path), "root");
	snprintf(dst, sizeof(dst), "%s/root.ledger", sub);
	assert_int_equal(rename(path, dst), 0);
	assert_int_equal(open_as_nobody(sub, "root", 0, -EPERM,
					"owned by uid 0"), 0);
	assert_int_equal(chmod(sub, 0500), 0);
	assert_int_equal(open_as_nobody(sub, "new", GiB, -EACCES,
					"cannot create"), 0);
	assert_int_equal(chmod(dir, 0700), 0);
}

/*
 * A ledger removed under an open handle: its next call is -EIDRM (the
 * pool is gone).  A directory others may write is refused.
 */
static void test_removed_and_dir(void **state)
{
	struct tmem_ledger_config cfg = { .create_total = GiB };
	struct tmem_ledger *l = lopen("gone", 1 * GiB, 0), *m = NULL;
	struct tmem_ledger *tool = lopen("gone", 0, 0);
	char path[PATH_MAX], sub[PATH_MAX / 2 + 16];
	char why[TMEM_ERRBUF_SIZE] = "";
	unsigned int n;
	struct tmem_ledger_info info;

	(void)state;
	join(l, "a", 0, 0);
	path_of(path, sizeof(path), "gone");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(tmem_ledger_list(l, &info, sizeof(info), NULL, 0, 0,
					  &n), -EIDRM);
	assert_int_equal(tmem_ledger_set_total(l, GiB), -EIDRM);
	assert_int_equal(tmem_ledger_join(tool, "b", NULL, 0, 0, why,
					  sizeof(why)), -EIDRM);
	assert_non_null(strstr(why, "was removed: the pool is gone"));
	tmem_ledger_close(tool);
	tmem_ledger_close(l);
	snprintf(sub, sizeof(sub), "%s/open", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(chmod(sub, 0777), 0);
	cfg.dir = sub;
	assert_int_equal(tmem_ledger_open("d", &cfg, sizeof(cfg), &m, why,
					  sizeof(why)), -EPERM);
	assert_null(m);
	assert_non_null(strstr(why, sub));
	assert_non_null(strstr(why, "0777"));
	assert_int_equal(chmod(sub, 0700), 0);
	assert_int_equal(tmem_ledger_open("d", &cfg, sizeof(cfg), &m, why,
					  sizeof(why)), 0);
	tmem_ledger_close(m);
}

/* A creator that finds an empty file (its creator died) initialises it. */
static void test_empty_file_created(void **state)
{
	char path[PATH_MAX];
	int fd;

	(void)state;
	path_of(path, sizeof(path), "died");
	fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
	assert_true(fd >= 0);
	close(fd);
	struct tmem_ledger *l = lopen("died", 3 * GiB, 0);

	assert_int_equal(list(l, NULL, NULL).total_bytes, 3 * GiB);
	tmem_ledger_close(l);
}

/* Member @id of @l, its grant taken; the records of ledger @name mapped. */
static struct ledger_rec *joined_recs(struct tmem_ledger *l, const char *id,
				      const char *name, void **map, int *fdp)
{
	join(l, id, 0, 0);
	update(l, 0, true);
	return map_recs(name, map, fdp);
}

/* ---- hostile records --------------------------------------------------- */

static void forge(struct ledger_rec *r, const char *id, uint32_t weight,
		  uint64_t grant)
{
	memset(r, 0, sizeof(*r));
	r->pid = (uint32_t)getpid();
	r->start_time = tmem_ledger_start_time(r->pid);
	r->pidns = tmem_ledger_pidns();
	r->heartbeat_ns = tmem_ledger_now_ns();
	r->weight = weight;
	r->grant = grant;
	r->token = 42;
	snprintf(r->id, sizeof(r->id), "%s", id);
	r->state = LEDGER_LIVE;
}

static void test_garbage_records(void **state)
{
	struct tmem_ledger *l = lopen("garbage", 1 * GiB, 0);
	struct tmem_ledger_member_info m[TMEM_LEDGER_MAX_MEMBERS];
	struct ledger_rec *recs;
	struct tmem_ledger_grant g;
	unsigned int n;
	void *map;
	int fd;

	(void)state;
	recs = joined_recs(l, "good", "garbage", &map, &fd);
	/* Slot 0 is "good"; each of these must be reaped. */
	forge(&recs[1], "weight", 99999, 0);
	forge(&recs[2], "zero-weight", 0, 0);
	forge(&recs[3], "unterminated", 100, 0);
	memset(recs[3].id, 'A', sizeof(recs[3].id));
	forge(&recs[4], "pid3", 100, 0);
	recs[4].pid = 4194305;			/* above PID_MAX_LIMIT */
	forge(&recs[5], "pid", 100, 0);
	recs[5].pid = 0;			/* kill(0, 0): our group */
	forge(&recs[6], "pid2", 100, 0);
	recs[6].pid = UINT32_MAX;		/* kill(-1, 0): everyone */
	forge(&recs[7], "state", 100, 0);
	recs[7].state = 7;
	forge(&recs[8], "ctl\x01", 100, 0);
	forge(&recs[9], "future", 100, 0);
	recs[9].heartbeat_ns = UINT64_MAX;
	forge(&recs[10], "budget", 100, 10);
	recs[10].budget = 11;
	/* And one valid forged record, kept: the test can tell. */
	forge(&recs[11], "valid", 100, 0);
	/* A grant above the total is cut (a total may be lowered). */
	forge(&recs[12], "grant", 100, 2 * GiB);
	g = update(l, 0, true);
	assert_int_equal(g.reaped, 10);
	assert_int_equal(g.members, 3);
	list(l, m, &n);
	assert_int_equal(n, 3);
	assert_string_equal(m[0].id, "good");
	assert_string_equal(m[1].id, "valid");
	assert_string_equal(m[2].id, "grant");
	assert_true(m[2].grant_bytes <= m[2].share_bytes);
	for (int i = 1; i <= 10; i++)
		assert_int_equal(recs[i].state, LEDGER_FREE);
	assert_sum_within(l);
	unmap_file(map, fd);
	tmem_ledger_close(l);
}

/* The largest values anywhere: nothing overflows, the sum holds. */
static void test_hostile_values(void **state)
{
	struct tmem_ledger *l = lopen("hostile", 1 * GiB, 0);
	struct tmem_ledger *b = lopen("hostile", 0, 0);
	struct tmem_ledger_usage u = {
		.held_bytes = UINT64_MAX,
		.compressed_bytes = UINT64_MAX,
		.min_bytes = UINT64_MAX,
		.wants_more = 1,
	};
	struct tmem_ledger_grant g;
	struct ledger_rec *recs;
	struct ledger_hdr *h;
	int fd;

	(void)state;
	join(l, "a", TMEM_LEDGER_WEIGHT_MAX, UINT64_MAX - 1);
	join(b, "b", 1, 0);
	assert_int_equal(tmem_ledger_set_total(l, UINT64_MAX), 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(tmem_ledger_update(l, &u, USZ, &g, GSZ), 0);
		assert_true(g.budget_bytes <= g.grant_bytes);
		assert_true(g.pool_granted <= g.pool_total);
		assert_int_equal(tmem_ledger_update(b, &u, USZ, &g, GSZ), 0);
		assert_true(g.pool_granted <= g.pool_total);
		assert_sum_within(l);
	}
	/* Forged grants whose sum overflows 64 bits. */
	h = map_file("hostile", &fd);
	recs = records(h);
	forge(&recs[5], "big1", 1, UINT64_MAX - 1);
	forge(&recs[6], "big2", 1, UINT64_MAX - 1);
	recs[5].token = 43;
	u.wants_more = 0;
	u.held_bytes = 0;
	assert_int_equal(tmem_ledger_update(l, &u, USZ, &g, GSZ), 0);
	assert_int_equal(g.members, 4);
	assert_true(g.pool_granted <= g.pool_total);
	assert_sum_within(l);
	/* A small total under them again. */
	h->total = 1000;
	assert_int_equal(tmem_ledger_update(l, &u, USZ, &g, GSZ), 0);
	assert_int_equal(g.pool_total, 1000);
	assert_sum_within(l);
	unmap_file(h, fd);
	tmem_ledger_close(l);
	tmem_ledger_close(b);
}

/*
 * stale_ms is the creator's, kept in the header: an opener with a
 * smaller one does not reap a member its creator's would keep.
 */
static void test_stale_creator(void **state)
{
	struct tmem_ledger *l = lopen("stale", 1 * GiB, 0);
	struct tmem_ledger *tool = lopen("stale", 0, 1000);
	struct ledger_rec *recs;
	unsigned int n;
	void *map;
	int fd;

	(void)state;
	map = map_file("stale", &fd);
	assert_int_equal(((struct ledger_hdr *)map)->stale_ms,
			 TMEM_LEDGER_DEFAULT_STALE_MS);
	recs = records(map);
	/* A live process of ours with a known start time: its pid judges. */
	forge(&recs[0], "stopped", 100, 0);
	recs[0].heartbeat_ns -= 10000000000ull;		/* 10 s old: kept */
	list(tool, NULL, &n);
	assert_int_equal(n, 1);
	/* Its start time unknown, the heartbeat judges. */
	forge(&recs[0], "aging", 100, 0);
	recs[0].start_time = 0;
	recs[0].heartbeat_ns -= 2000000000ull;		/* 2 s old: kept */
	list(tool, NULL, &n);
	assert_int_equal(n, 1);
	recs[0].heartbeat_ns -= 2000000000ull;		/* 4 s old: reaped */
	list(tool, NULL, &n);
	assert_int_equal(n, 0);
	/* A heartbeat under 1 s in the future is kept, over it reaped. */
	forge(&recs[0], "ahead", 100, 0);
	recs[0].heartbeat_ns += 500000000ull;
	list(l, NULL, &n);
	assert_int_equal(n, 1);
	recs[0].heartbeat_ns += 1000000000ull;
	list(l, NULL, &n);
	assert_int_equal(n, 0);
	unmap_file(map, fd);
	tmem_ledger_close(tool);
	tmem_ledger_close(l);
}

/*
 * A start time of 0 is unknown, not another process's; a member of
 * another PID namespace is judged by its heartbeat alone.
 */
static void test_unknown_start(void **state)
{
	struct tmem_ledger *l = lopen("unknown", 1 * GiB, 0);
	struct ledger_rec *recs;
	unsigned int n;
	pid_t dead = fork();
	void *map;
	int fd;

	(void)state;
	assert_true(dead >= 0);
	if (!dead)
		_exit(0);
	assert_int_equal(waitpid(dead, NULL, 0), dead);
	recs = map_recs("unknown", &map, &fd);
	forge(&recs[0], "self0", 100, 0);		/* our pid */
	recs[0].start_time = 0;
	forge(&recs[1], "parent0", 100, 0);		/* a live pid */
	recs[1].pid = (uint32_t)getppid();
	recs[1].start_time = 0;
	recs[1].token = 43;
	forge(&recs[2], "elsewhere", 100, 0);		/* dead here */
	recs[2].pid = (uint32_t)dead;
	recs[2].pidns ^= 1;
	recs[2].token = 44;
	list(l, NULL, &n);
	assert_int_equal(n, 3);
	list(l, NULL, &n);
	assert_int_equal(n, 3);
	/* Elsewhere, a stale heartbeat is still reaped. */
	recs[2].heartbeat_ns -= 4000000000ull;
	list(l, NULL, &n);
	assert_int_equal(n, 2);
	unmap_file(map, fd);
	tmem_ledger_close(l);
}

/*
 * tmem_ledger_set_lock_timeout(): the calls but update wait that long
 * for a lock another open file holds, then -EAGAIN, changing nothing.
 */
static void test_lock_timeout(void **state)
{
	struct tmem_ledger *l = lopen("locktime", 1 * GiB, 0);
	struct tmem_ledger_info info;
	char path[PATH_MAX];
	unsigned int n;
	int fd;

	(void)state;
	assert_int_equal(tmem_ledger_set_lock_timeout(NULL, 10), -EINVAL);
	assert_int_equal(tmem_ledger_set_lock_timeout(l,
			 TMEM_LEDGER_LOCK_TIMEOUT_MAX_MS + 1), -EINVAL);
	assert_int_equal(tmem_ledger_set_lock_timeout(l, 20), 0);
	path_of(path, sizeof(path), "locktime");
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0);
	assert_int_equal(tmem_ledger_list(l, &info, sizeof(info), NULL, 0, 0,
					  &n), -EAGAIN);
	assert_int_equal(tmem_ledger_set_total(l, 2 * GiB), -EAGAIN);
	assert_int_equal(tmem_ledger_join(l, "a", NULL, 0, 0, NULL, 0),
			 -EAGAIN);
	assert_int_equal(flock(fd, LOCK_UN), 0);
	assert_int_equal(list(l, NULL, &n).total_bytes, 1 * GiB);
	assert_int_equal(n, 0);
	close(fd);
	tmem_ledger_close(l);
}

/* close() while another process holds the lock for 1.5 s still leaves. */
static void test_close_locked(void **state)
{
	struct tmem_ledger *l = lopen("closelock", 1 * GiB, 0);
	char path[PATH_MAX], c;
	unsigned int n;
	int fds[2];
	pid_t pid;

	(void)state;
	join(l, "a", 0, 0);
	path_of(path, sizeof(path), "closelock");
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		int fd = open(path, O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (fd < 0 || flock(fd, LOCK_EX) || write(fds[1], "l", 1) != 1)
			_exit(1);
		usleep(1500000);
		_exit(0);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	tmem_ledger_close(l);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	l = lopen("closelock", 0, 0);
	list(l, NULL, &n);
	assert_int_equal(n, 0);
	tmem_ledger_close(l);
}

/* A forged copy of our record elsewhere is another record, not ours. */
static void test_forged_self(void **state)
{
	struct tmem_ledger *l = lopen("selfcopy", 1 * GiB, 0);
	struct tmem_ledger_grant g;
	struct ledger_rec *recs;
	void *map;
	int fd;

	(void)state;
	recs = joined_recs(l, "me", "selfcopy", &map, &fd);
	assert_string_equal(recs[0].id, "me");
	memcpy(&recs[5], &recs[0], sizeof(recs[0]));
	recs[5].weight = 5000;
	g = update(l, 0, true);
	assert_int_equal(g.weight, TMEM_LEDGER_DEFAULT_WEIGHT);
	assert_int_equal(g.members, 2);
	/* A bad one is reaped, ours is kept. */
	recs[5].start_time++;
	g = update(l, 0, true);
	assert_int_equal(g.reaped, 1);
	assert_int_equal(g.members, 1);
	assert_int_equal(recs[5].state, LEDGER_FREE);
	assert_int_equal(recs[0].state, LEDGER_LIVE);
	unmap_file(map, fd);
	tmem_ledger_close(l);
}

/* ---- main -------------------------------------------------------------- */

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_join_leave),
		cmocka_unit_test(test_arguments),
		cmocka_unit_test(test_second_opener),
		cmocka_unit_test(test_set_total),
		cmocka_unit_test(test_set_member),
		cmocka_unit_test(test_shares),
		cmocka_unit_test(test_converge),
		cmocka_unit_test(test_split_free),
		cmocka_unit_test(test_grow_to_cap),
		cmocka_unit_test(test_update_cost),
		cmocka_unit_test(test_processes),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_pid_reuse),
		cmocka_unit_test(test_stale_creator),
		cmocka_unit_test(test_lock_timeout),
		cmocka_unit_test(test_unknown_start),
		cmocka_unit_test(test_close_locked),
		cmocka_unit_test(test_forged_self),
		cmocka_unit_test(test_refused_files),
		cmocka_unit_test(test_other_user),
		cmocka_unit_test(test_removed_and_dir),
		cmocka_unit_test(test_empty_file_created),
		cmocka_unit_test(test_garbage_records),
		cmocka_unit_test(test_hostile_values),
	};
	int ret;

	if (ledger_test_dir(dir, sizeof(dir), "tmem-ledger"))
		return 1;
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	ledger_test_rmdir(dir);
	return ret;
}
