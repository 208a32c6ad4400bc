/* SPDX-License-Identifier: MIT */
/*
 * tmem-bench: libtmem's store and load against raw LZ4 on the same
 * pages, with 1 and 2 threads, plus its memory overheads.  See --help.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lz4.h>

#include "tmem.h"

#define PAGE		TMEM_PAGE_SIZE
#define MAX_THREADS	2
#define FILE_PAGES	32	/* pages taken from one file at most */

#include "vtmem-pages.h"

enum corpus { CORPUS_FILES, CORPUS_RANDOM, CORPUS_ZERO };

struct opts {
	enum corpus corpus;
	size_t pages;
	uint64_t budget;
	int repeat;
	bool json;
	bool invalidate_object;
	unsigned int churn;		/* churn steps per live page */
	unsigned int churn_free;	/* free keys, % of the live pages */
};

struct corpus_fill {
	uint8_t *buf;
	size_t want, have;
};

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "tmem-bench: %s: %s\n", what,
		err < 0 ? tmem_strerror(err) : strerror(err));
	exit(1);
}

/* Up to FILE_PAGES pages of one file, its tail zero-padded as in RAM. */
static void take_file(struct corpus_fill *cf, const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
	int taken = 0;

	if (fd < 0)
		return;
	while (cf->have < cf->want && taken < FILE_PAGES) {
		uint8_t *p;
		ssize_t n;

		/* Every tenth page is a zero page. */
		if (cf->have % 10 == 9) {
			cf->have++;
			continue;
		}
		p = cf->buf + cf->have * PAGE;
		n = read(fd, p, PAGE);
		if (n <= 0)
			break;
		memset(p + n, 0, PAGE - n);
		cf->have++;
		taken++;
	}
	close(fd);
}

/* A sorted, depth-first walk: the same machine gives the same pages. */
static void walk(struct corpus_fill *cf, const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		const char *name = ents[i]->d_name;

		if (cf->have < cf->want && strcmp(name, ".") &&
		    strcmp(name, "..") &&
		    snprintf(path, sizeof(path), "%s/%s", dir, name) <
		    (int)sizeof(path) && !lstat(path, &st)) {
			if (S_ISDIR(st.st_mode))
				walk(cf, path);
			else if (S_ISREG(st.st_mode) && st.st_size > 0)
				take_file(cf, path);
		}
		free(ents[i]);
	}
	free(ents);
}

static uint8_t *corpus_load(const struct opts *o)
{
	struct corpus_fill cf = { .want = o->pages };
	uint64_t seed = 0;

	cf.buf = calloc(o->pages, PAGE);
	if (!cf.buf)
		die("corpus", ENOMEM);
	if (o->corpus == CORPUS_RANDOM) {
		fill_random(cf.buf, o->pages * PAGE, &seed);
	} else if (o->corpus == CORPUS_FILES) {
		walk(&cf, "/usr/lib");
		walk(&cf, "/usr/share");
		if (cf.have < cf.want) {
			fprintf(stderr, "tmem-bench: only %zu pages of files\n",
				cf.have);
			exit(1);
		}
	}
	return cf.buf;
}

/* Raw LZ4 over the pages: the reference the library is held to. */
struct lz4_ref {
	uint8_t *cbuf;		/* compressed pages, LZ4_COMPRESSBOUND apart */
	int *clen;
};

enum op { OP_LZ4_C, OP_LZ4_D, OP_STORE, OP_LOAD };
#define NR_OPS 4

/* One thread's share of a run. */
struct worker {
	struct tmem_client *client;
	struct lz4_ref *ref;
	pthread_barrier_t *start;
	const uint8_t *pages;
	size_t first, n;
	uint32_t pool;
	enum op op;
	int failed;
	double t0, t1;
	double cpu;			/* CPU seconds of this thread */
};

static double thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int lz4_one(struct worker *w, size_t i, uint8_t *out)
{
	const int bound = LZ4_COMPRESSBOUND(PAGE);
	size_t p = w->first + i;
	char *c = (char *)w->ref->cbuf + p * bound;

	if (w->op == OP_LZ4_C) {
		w->ref->clen[p] = LZ4_compress_default(
			(const char *)w->pages + p * PAGE, c, PAGE, bound);
		return w->ref->clen[p] <= 0;
	}
	return LZ4_decompress_safe(c, (char *)out, w->ref->clen[p],
				   PAGE) != PAGE;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	static __thread uint8_t out[PAGE];
	struct tmem_ctx *ctx = NULL;
	int ret;

	if (w->client && (ret = tmem_ctx_new(w->client, &ctx)))
		die("tmem_ctx_new", ret);
	pthread_barrier_wait(w->start);
	w->cpu = thread_cpu();
	w->t0 = now();
	for (size_t i = 0; i < w->n; i++) {
		/* Distinct keys per thread: object = first page's number. */
		if (w->op == OP_STORE)
			ret = tmem_store(ctx, w->pool, w->first, i,
					 w->pages + (w->first + i) * PAGE);
		else if (w->op == OP_LOAD)
			ret = tmem_load(ctx, w->pool, w->first, i, out);
		else
			ret = lz4_one(w, i, out);
		w->failed += ret != 0;
	}
	w->t1 = now();
	w->cpu = thread_cpu() - w->cpu;
	tmem_ctx_free(ctx);
	return NULL;
}

/*
 * Run @nthreads workers over all pages; returns the wall time, and adds
 * their CPU time to *cpup.
 */
static double run_threads(struct worker *proto, size_t n, int nthreads,
			  int *failed, double *cpup)
{
	struct worker w[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	pthread_barrier_t start;
	double t0 = 1e300, t1 = 0;

	pthread_barrier_init(&start, NULL, nthreads);
	for (int k = 0; k < nthreads; k++) {
		w[k] = *proto;
		w[k].start = &start;
		w[k].first = n * k / nthreads;
		w[k].n = n * (k + 1) / nthreads - w[k].first;
		if (pthread_create(&tid[k], NULL, worker_run, &w[k]))
			die("pthread_create", EAGAIN);
	}
	for (int k = 0; k < nthreads; k++) {
		pthread_join(tid[k], NULL);
		t0 = w[k].t0 < t0 ? w[k].t0 : t0;
		t1 = w[k].t1 > t1 ? w[k].t1 : t1;
		*failed += w[k].failed;
		*cpup += w[k].cpu;
	}
	pthread_barrier_destroy(&start);
	return t1 - t0;
}

/* Every page must come back byte for byte (not timed). */
static void verify(struct tmem_client *client, uint32_t pool,
		   const uint8_t *pages, size_t n)
{
	static uint8_t out[PAGE];
	struct tmem_ctx *ctx;
	int ret = tmem_ctx_new(client, &ctx);

	if (ret)
		die("tmem_ctx_new", ret);
	for (size_t i = 0; i < n; i++) {
		ret = tmem_load(ctx, pool, 0, i, out);
		if (ret) {
			fprintf(stderr, "tmem-bench: page %zu: ", i);
			die("verify: tmem_load", ret);
		}
		if (memcmp(out, pages + i * PAGE, PAGE))
			die("verify: page differs", EIO);
	}
	tmem_ctx_free(ctx);
}

/* Best (shortest) wall time of a measurement, and its CPU time. */
struct best {
	double wall, cpu;
};

/*
 * Steady-state churn, the way a swap device lives: a fixed number of live
 * pages (the page set's size) over a key space somewhat larger (the swap
 * area's free slots, --churn-free).  A step takes a random live key,
 * loads it (a swap-in), and either stores a new page over it or
 * invalidates it and stores the new page at the next free key after the
 * last one taken (a swap-out elsewhere: Linux's swap allocator also takes
 * slots in ascending order, cluster by cluster, wrapping around).  New
 * pages are random pages of the set, so the mix of sizes stays that of
 * the fresh store.  Steps go in rounds of CHURN_BATCH distinct keys: the
 * loads of a round, its invalidations and its stores are timed apart.
 */
#define CHURN_BATCH	1024

struct churn_result {
	struct best store, load, inval;	/* per round, summed */
	uint64_t stores, loads, invals;
	struct tmem_stats st;		/* at the end: steady state */
	int failed;
};

struct churn {
	struct tmem_ctx *ctx;
	uint32_t pool;
	const uint8_t *pages;
	size_t npages;			/* pages in the set */
	uint32_t *live;			/* keys with a page */
	uint32_t *content;		/* key -> page of the set, or FREE */
	size_t nlive, nkeys;
	uint32_t cursor;		/* where the next free key is looked for */
	uint64_t x;			/* xorshift state */
};

#define CHURN_KEY_FREE	UINT32_MAX

/* The next free key from the cursor on; there is one (nkeys > nlive). */
static uint32_t churn_free_key(struct churn *ch)
{
	while (ch->content[ch->cursor] != CHURN_KEY_FREE)
		ch->cursor = (ch->cursor + 1) % ch->nkeys;
	return ch->cursor;
}

static uint64_t churn_rand(struct churn *ch)
{
	ch->x ^= ch->x << 13, ch->x ^= ch->x >> 7, ch->x ^= ch->x << 17;
	return ch->x;
}

static int churn_store(struct churn *ch, uint32_t key)
{
	uint32_t p = churn_rand(ch) % ch->npages;

	ch->content[key] = p;
	return tmem_store(ch->ctx, ch->pool, 0, key, ch->pages + p * PAGE) != 0;
}

/* One round; adds its times and counts to @cr. */
/* Adds the wall and CPU time since @since to @acc. */
static void churn_time(struct best *acc, const struct best *since)
{
	acc->wall += now() - since->wall;
	acc->cpu += thread_cpu() - since->cpu;
}

static struct best churn_now(void)
{
	return (struct best){ now(), thread_cpu() };
}

static void churn_round(struct churn *ch, struct churn_result *cr,
			struct best t[3])
{
	static uint8_t out[PAGE];
	uint32_t *v = ch->live + ch->nlive - CHURN_BATCH;
	uint32_t key[CHURN_BATCH];
	bool moved[CHURN_BATCH];
	struct best t0;

	/* Pick CHURN_BATCH distinct live keys into the tail of live[]. */
	for (size_t j = 0; j < CHURN_BATCH; j++) {
		size_t i = churn_rand(ch) % (ch->nlive - j);
		uint32_t k = ch->live[i];

		ch->live[i] = ch->live[ch->nlive - 1 - j];
		ch->live[ch->nlive - 1 - j] = k;
	}
	t0 = churn_now();
	for (size_t j = 0; j < CHURN_BATCH; j++)
		cr->failed += tmem_load(ch->ctx, ch->pool, 0, v[j], out) != 0;
	churn_time(&t[1], &t0);
	for (size_t j = 0; j < CHURN_BATCH; j++) {
		moved[j] = churn_rand(ch) & 1;
		key[j] = v[j];
		if (moved[j]) {
			key[j] = churn_free_key(ch);
			ch->content[key[j]] = 0;	/* taken */
		}
	}
	t0 = churn_now();
	for (size_t j = 0; j < CHURN_BATCH; j++)
		if (moved[j])
			cr->failed += tmem_invalidate_page(ch->ctx, ch->pool, 0,
							   v[j]) != 1;
	churn_time(&t[2], &t0);
	for (size_t j = 0; j < CHURN_BATCH; j++)
		if (moved[j])
			ch->content[v[j]] = CHURN_KEY_FREE;
	t0 = churn_now();
	for (size_t j = 0; j < CHURN_BATCH; j++)
		cr->failed += churn_store(ch, key[j]);
	churn_time(&t[0], &t0);
	for (size_t j = 0; j < CHURN_BATCH; j++) {
		cr->invals += moved[j];
		v[j] = key[j];
	}
	cr->loads += CHURN_BATCH;
	cr->stores += CHURN_BATCH;
}

/* Every live key must hold its page, byte for byte (not timed). */
static void churn_verify(struct churn *ch)
{
	static uint8_t out[PAGE];

	for (size_t i = 0; i < ch->nlive; i++) {
		uint32_t k = ch->live[i];
		int ret = tmem_load(ch->ctx, ch->pool, 0, k, out);

		if (ret) {
			fprintf(stderr, "tmem-bench: churn key %u: ", k);
			die("tmem_load", ret);
		}
		if (memcmp(out, ch->pages + (size_t)ch->content[k] * PAGE, PAGE))
			die("churn: page differs", EIO);
	}
}

static void churn_keep(struct best *b, const struct best *t)
{
	if (b->wall == 0 || t->wall < b->wall)
		*b = *t;
}

/*
 * Fill o->pages keys in order (a fresh store, not timed), then churn
 * o->churn steps per live page; only the second half of the steps is
 * timed, when the store has reached its steady state.
 */
static void bench_churn(const struct opts *o, const uint8_t *pages,
			bool check, struct churn_result *cr)
{
	struct tmem_client_config cfg = { .budget_bytes = o->budget };
	size_t keys = o->pages + o->pages * o->churn_free / 100;
	size_t rounds = o->pages * o->churn / CHURN_BATCH;
	struct churn_result run = { 0 };
	struct tmem_client *client;
	struct churn ch = {
		.pages = pages, .npages = o->pages, .nlive = o->pages,
		.nkeys = keys, .x = 0x853c49e6748fea9bull,
	};
	struct best t[3] = { 0 };
	int ret;

	ch.live = malloc(o->pages * sizeof(uint32_t));
	ch.content = malloc(keys * sizeof(uint32_t));
	if (!ch.live || !ch.content)
		die("churn", ENOMEM);
	ret = tmem_client_new(&cfg, &client);
	if (!ret)
		ret = tmem_pool_new(client, TMEM_POOL_PERSISTENT, &ch.pool);
	if (!ret)
		ret = tmem_ctx_new(client, &ch.ctx);
	if (ret)
		die("churn client", ret);
	for (uint32_t k = 0; k < keys; k++) {
		ch.content[k] = CHURN_KEY_FREE;
		if (k < o->pages) {
			ch.live[k] = k;
			ch.content[k] = k;
			run.failed += tmem_store(ch.ctx, ch.pool, 0, k,
						 pages + (size_t)k * PAGE) != 0;
		}
	}
	for (size_t r = 0; r < rounds; r++) {
		if (r == rounds / 2) {
			memset(t, 0, sizeof(t));
			run.stores = run.loads = run.invals = 0;
		}
		churn_round(&ch, &run, t);
	}
	tmem_client_stats(client, &run.st);
	if (check)
		churn_verify(&ch);
	churn_keep(&cr->store, &t[0]);
	churn_keep(&cr->load, &t[1]);
	churn_keep(&cr->inval, &t[2]);
	cr->stores = run.stores;
	cr->loads = run.loads;
	cr->invals = run.invals;
	cr->st = run.st;
	cr->failed += run.failed;
	tmem_ctx_free(ch.ctx);
	tmem_client_free(client);
	free(ch.live);
	free(ch.content);
}

struct result {
	/* Per op and thread count; [OP_STORE][0] is the re-store. */
	struct best t[NR_OPS][MAX_THREADS + 1];
	uint64_t lz4_bytes;
	struct tmem_stats st;		/* after the 1-thread store */
	struct tmem_stats holes;	/* then half the keys invalidated */
	double refill;			/* bench_holes() */
	struct churn_result churn;
	int failed;
};

/* Run one measurement and keep it if it is the best so far. */
static void measure(struct worker *w, enum op op, size_t n, int nthreads,
		    int *failed, struct best *b)
{
	double cpu = 0, wall;

	w->op = op;
	wall = run_threads(w, n, nthreads, failed, &cpu);
	if (b->wall == 0 || wall < b->wall)
		*b = (struct best){ wall, cpu };
}

static void bench_lz4(const struct opts *o, struct worker *proto,
		      int nthreads, struct result *r)
{
	measure(proto, OP_LZ4_C, o->pages, nthreads, &r->failed,
		&r->t[OP_LZ4_C][nthreads]);
	measure(proto, OP_LZ4_D, o->pages, nthreads, &r->failed,
		&r->t[OP_LZ4_D][nthreads]);
}

/*
 * Invalidate a pseudo-random half of the keys: freed slots stay in their
 * slabs until new stores reuse them (no compaction), and this shows what
 * that costs.
 */
static void punch_holes(struct worker *w, size_t n, struct tmem_stats *st)
{
	uint64_t x = 0x2545f4914f6cdd1dull;
	struct tmem_ctx *ctx;
	int ret = tmem_ctx_new(w->client, &ctx);

	if (ret)
		die("tmem_ctx_new", ret);
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		if (x & 1)
			tmem_invalidate_page(ctx, w->pool, 0, i);
	}
	tmem_ctx_free(ctx);
	tmem_client_stats(w->client, st);
}

#define HOLES_BUDGET	(32ull << 20)

/* Store until the budget is full; returns pages stored (key = index). */
static size_t fill_budget(struct tmem_ctx *ctx, uint32_t pool, uint64_t obj,
			  const uint8_t *pages, size_t n, uint8_t *gen)
{
	uint64_t seed = obj;
	size_t i;

	for (i = 0; i < n; i++) {
		const uint8_t *p = pages ? pages + i * PAGE : gen;

		if (!pages)
			fill_random(gen, PAGE, &seed);
		if (tmem_store(ctx, pool, obj, i, p))
			break;
	}
	return i;
}

/*
 * Does memory freed by invalidations serve other size classes?  Fill a
 * budget (32 MiB, or half the set's LZ4 size if less) with the page set, invalidate a random half, then store
 * incompressible (4096-byte class) pages until the budget is full again:
 * refill_after_holes is the bytes they take over the compressed bytes
 * freed (about 1 with compaction, near 0 without).
 */
static double bench_holes(const struct opts *o, const uint8_t *pages,
			  uint64_t lz4_bytes)
{
	/* Half the page set's LZ4 size, so that the set fills it. */
	struct tmem_client_config cfg = {
		.budget_bytes = lz4_bytes / 2 < HOLES_BUDGET ?
				lz4_bytes / 2 + 1 : HOLES_BUDGET,
	};
	struct tmem_stats full, holes;
	struct worker w = { .pages = pages };
	static uint8_t gen[PAGE];
	struct tmem_ctx *ctx;
	size_t n, m;
	int ret;

	ret = tmem_client_new(&cfg, &w.client);
	if (!ret)
		ret = tmem_pool_new(w.client, TMEM_POOL_PERSISTENT, &w.pool);
	if (!ret)
		ret = tmem_ctx_new(w.client, &ctx);
	if (ret)
		die("holes client", ret);
	n = fill_budget(ctx, w.pool, 0, pages, o->pages, NULL);
	tmem_client_stats(w.client, &full);
	punch_holes(&w, n, &holes);
	m = fill_budget(ctx, w.pool, 1, NULL, o->pages, gen);
	tmem_ctx_free(ctx);
	tmem_client_free(w.client);
	return ratio((double)m * PAGE,
		     (double)(full.compressed_bytes - holes.compressed_bytes));
}

/*
 * One repetition of the libtmem runs with @nthreads, on a new client:
 * store (into fresh memory), load, and with 1 thread a second store of
 * the same keys, which overwrites and so recycles memory.
 */
static void bench_tmem(const struct opts *o, struct worker *proto,
		       int nthreads, bool check, struct result *r)
{
	struct tmem_client_config cfg = { .budget_bytes = o->budget };
	struct worker w = *proto;
	int ret, failed = 0;

	ret = tmem_client_new(&cfg, &w.client);
	if (!ret)
		ret = tmem_pool_new(w.client, TMEM_POOL_PERSISTENT, &w.pool);
	if (ret)
		die("tmem_client_new", ret);
	measure(&w, OP_STORE, o->pages, nthreads, &failed,
		&r->t[OP_STORE][nthreads]);
	if (nthreads == 1)
		tmem_client_stats(w.client, &r->st);
	if (check && !failed)
		verify(w.client, w.pool, w.pages, o->pages);
	measure(&w, OP_LOAD, o->pages, nthreads, &failed,
		&r->t[OP_LOAD][nthreads]);
	if (nthreads == 1) {
		measure(&w, OP_STORE, o->pages, 1, &failed,
			&r->t[OP_STORE][0]);
		punch_holes(&w, o->pages, &r->holes);
	}
	r->failed += failed;
	tmem_client_free(w.client);
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: tmem-bench [options]\n"
"Measures libtmem against raw LZ4 on one set of 4 KiB pages:\n"
"  LZ4_compress_default and LZ4_decompress_safe throughput, tmem_store\n"
"  and tmem_load throughput with 1 and 2 threads (distinct keys per\n"
"  thread, one persistent pool), host metadata bytes per stored page\n"
"  (meta_bytes / pages) and host bytes per compressed byte\n"
"  (data_bytes / compressed_bytes).  Throughput is GB/s of uncompressed\n"
"  pages (1 GB = 1e9 bytes).\n"
"\n"
"  Every measurement is repeated (--repeat) and the best run is\n"
"  reported; the runs are interleaved so that noise from the rest of the\n"
"  machine hits all of them alike.  Each libtmem run starts from a new\n"
"  client, so store_gbps includes faulting in fresh memory; restore_gbps\n"
"  stores the same keys again into the full client (memory recycled);\n"
"  *_holes are taken after invalidating half the keys at random;\n"
"  refill_after_holes: a budget (32 MiB, less for a small set) is filled\n"
"  and half its pages invalidated; then incompressible pages are stored\n"
"  until it is full again: their bytes over the compressed bytes freed\n"
"  (near 0 if freed slots served only their own size class).\n"
"  *_churn and churn_*: the swap-like steady state.  A client holds as\n"
"  many live pages as the set has, over a key space --churn-free\n"
"  percent larger; each step loads a random live key (a swap-in), then\n"
"  stores a random page of the set over it or, half the time,\n"
"  invalidates it and stores the page at the next free key (as swap\n"
"  allocates slots).  Steps go in rounds of %d distinct\n"
"  keys, loads, invalidations and stores timed apart; the figures are\n"
"  those of the second half of the steps, density at the end.  The\n"
"  live pages are verified byte for byte once (not timed).\n"
"  *_cpu ratios divide CPU time instead of wall time: robust when other\n"
"  work shares the CPUs.  Raw LZ4 with 2 threads (lz4_2t_vs_1t) shows\n"
"  what the machine gives 2 threads at all.  Loads are verified byte for\n"
"  byte once (not timed).  Exit status 1 if any operation failed.\n"
"\n"
"  --corpus=files|random|zero  page set (default files: up to %d pages\n"
"                    of each regular file under /usr/lib then /usr/share,\n"
"                    sorted walk, tails zero-padded, every 10th page zero)\n"
"  --pages=N         pages in the set (default 65536 = 256 MiB, at\n"
"                    least 2048)\n"
"  --budget=BYTES    client budget, suffix K/M/G allowed\n"
"                    (default 2 x the page set)\n"
"  --repeat=N        repetitions per measurement, best kept (default 3)\n"
"  --json            print one JSON object instead of a table\n"
"  --churn=N         steps per live page of the churn run (default 4;\n"
"                    the second half is measured)\n"
"  --churn-free=P    free keys of the churn run, percent of the live\n"
"                    pages (default 12)\n"
"  --invalidate-object  instead: fill the budget (default 1G) with zero\n"
"                    pages one per chunk (the metadata a guest gets for\n"
"                    the least data), then time INVALIDATE_OBJECT of an\n"
"                    absent object (--repeat x 256 calls; mean and max)\n"
"  --help            this text\n", CHURN_BATCH, FILE_PAGES);
}

static uint64_t parse_size(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);

	switch (*end) {
	case 'G': case 'g': v <<= 10; /* fall through */
	case 'M': case 'm': v <<= 10; /* fall through */
	case 'K': case 'k': v <<= 10; end++; break;
	}
	if (*end || !v) {
		fprintf(stderr, "tmem-bench: bad size '%s'\n", s);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{ "corpus", required_argument, NULL, 'c' },
		{ "pages", required_argument, NULL, 'p' },
		{ "budget", required_argument, NULL, 'b' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "invalidate-object", no_argument, NULL, 'i' },
		{ "churn", required_argument, NULL, 'C' },
		{ "churn-free", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*o = (struct opts){ CORPUS_FILES, 65536, 0, 3, false, false, 4, 12 };
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			if (!strcmp(optarg, "files"))
				o->corpus = CORPUS_FILES;
			else if (!strcmp(optarg, "random"))
				o->corpus = CORPUS_RANDOM;
			else if (!strcmp(optarg, "zero"))
				o->corpus = CORPUS_ZERO;
			else
				goto bad;
			break;
		case 'p': o->pages = parse_size(optarg); break;
		case 'b': o->budget = parse_size(optarg); break;
		case 'r': o->repeat = (int)parse_size(optarg); break;
		case 'j': o->json = true; break;
		case 'i': o->invalidate_object = true; break;
		case 'C': o->churn = (unsigned int)parse_size(optarg); break;
		case 'F': o->churn_free = (unsigned int)parse_size(optarg); break;
		case 'h': usage(stdout); exit(0);
		default: goto bad;
		}
	}
	if (optind == argc && o->pages >= 2 * CHURN_BATCH &&
	    o->pages <= UINT32_MAX / 2) {
		if (!o->budget)
			o->budget = o->invalidate_object ? 1ull << 30 :
				    (uint64_t)o->pages * PAGE * 2;
		return;
	}
bad:
	usage(stderr);
	exit(2);
}

struct metric {
	const char *name;
	double value;
	const char *what;
};

static const char *corpus_name(enum corpus c)
{
	return c == CORPUS_FILES ? "files" : c == CORPUS_RANDOM ? "random" :
	       "zero";
}


static double gbps(const struct opts *o, double seconds)
{
	return ratio((double)o->pages * PAGE / 1e9, seconds);
}

/* GB/s of @n pages in @seconds. */
static double cgbps(uint64_t n, double seconds)
{
	return ratio((double)n * PAGE / 1e9, seconds);
}

/* GB/s of wall time, and of CPU time (what one thread per core gives). */
#define WALL(op, n)	gbps(o, r->t[op][n].wall)
#define CPU(op, n)	gbps(o, r->t[op][n].cpu)

static void report(const struct opts *o, const struct result *r)
{
	const struct tmem_stats *st = &r->st;
	const struct churn_result *cr = &r->churn;
	const struct tmem_stats *cs = &cr->st;
	double s1 = WALL(OP_STORE, 1), s2 = WALL(OP_STORE, 2);
	double l1 = WALL(OP_LOAD, 1), l2 = WALL(OP_LOAD, 2);
	double c1 = WALL(OP_LZ4_C, 1), c2 = WALL(OP_LZ4_C, 2);
	double d1 = WALL(OP_LZ4_D, 1), d2 = WALL(OP_LZ4_D, 2);
	double rs = WALL(OP_STORE, 0);
	const struct metric m[] = {
		{ "pages", (double)o->pages, "pages in the set" },
		{ "repeat", o->repeat, "runs per measurement (best kept)" },
		{ "lz4_compress_gbps", c1, "raw LZ4_compress_default" },
		{ "lz4_decompress_gbps", d1, "raw LZ4_decompress_safe" },
		{ "store_gbps", s1, "tmem_store, 1 thread, fresh memory" },
		{ "load_gbps", l1, "tmem_load, 1 thread" },
		{ "store_gbps_2t", s2, "tmem_store, 2 threads" },
		{ "load_gbps_2t", l2, "tmem_load, 2 threads" },
		{ "restore_gbps", rs, "tmem_store over the same keys, 1 thread" },
		{ "lz4_compress_gbps_2t", c2, "raw LZ4, 2 threads (control)" },
		{ "lz4_decompress_gbps_2t", d2, "raw LZ4, 2 threads (control)" },
		{ "store_vs_lz4", ratio(s1, c1), "target >= 0.9" },
		{ "load_vs_lz4", ratio(l1, d1), "target >= 0.9" },
		{ "restore_vs_lz4", ratio(rs, c1), "" },
		{ "restore_vs_lz4_cpu", ratio(CPU(OP_STORE, 0), CPU(OP_LZ4_C, 1)),
		  "" },
		{ "store_vs_lz4_cpu", ratio(CPU(OP_STORE, 1), CPU(OP_LZ4_C, 1)),
		  "the same per CPU second (robust on a busy machine)" },
		{ "load_vs_lz4_cpu", ratio(CPU(OP_LOAD, 1), CPU(OP_LZ4_D, 1)),
		  "the same per CPU second" },
		{ "store_2t_vs_1t", ratio(s2, s1), "target >= 1.8" },
		{ "load_2t_vs_1t", ratio(l2, l1), "" },
		{ "lz4_2t_vs_1t", ratio(c2, c1),
		  "what this machine gives 2 threads" },
		{ "store_cpu_2t_vs_1t",
		  ratio(CPU(OP_STORE, 2), CPU(OP_STORE, 1)),
		  "per CPU second: 1.0 = no cost to sharing" },
		{ "lz4_cpu_2t_vs_1t", ratio(CPU(OP_LZ4_C, 2), CPU(OP_LZ4_C, 1)),
		  "the same for raw LZ4 (control)" },
		{ "meta_bytes_per_page", ratio(st->meta_bytes, st->pages),
		  "target <= 16" },
		{ "host_bytes_per_compressed_byte",
		  ratio(st->data_bytes, st->compressed_bytes),
		  "data_bytes / compressed_bytes, target <= 1.10" },
		{ "host_bytes_per_compressed_byte_holes",
		  ratio(r->holes.data_bytes, r->holes.compressed_bytes),
		  "the same after invalidating half the keys at random" },
		{ "meta_bytes_per_page_holes",
		  ratio(r->holes.meta_bytes, r->holes.pages), "" },
		{ "refill_after_holes", r->refill,
		  "freed bytes that other classes reuse (compaction)" },
		{ "host_bytes_per_compressed_byte_churn",
		  ratio(cs->data_bytes, cs->compressed_bytes),
		  "data_bytes / compressed_bytes, steady churn, target <= 1.15" },
		{ "meta_bytes_per_page_churn",
		  ratio(cs->meta_bytes, cs->pages), "steady churn, target <= 16" },
		{ "churn_store_gbps", cgbps(cr->stores, cr->store.wall),
		  "tmem_store during churn, 1 thread" },
		{ "churn_load_gbps", cgbps(cr->loads, cr->load.wall),
		  "tmem_load during churn, 1 thread" },
		{ "churn_store_pages_per_s", ratio(cr->stores, cr->store.wall),
		  "" },
		{ "churn_load_pages_per_s", ratio(cr->loads, cr->load.wall), "" },
		{ "churn_store_mbps", cgbps(cr->stores, cr->store.wall) * 1e3,
		  "MB/s of pages" },
		{ "churn_load_mbps", cgbps(cr->loads, cr->load.wall) * 1e3,
		  "MB/s of pages" },
		{ "churn_invalidate_pages_per_s",
		  ratio(cr->invals, cr->inval.wall), "" },
		{ "churn_store_vs_fresh",
		  ratio(cgbps(cr->stores, cr->store.wall), s1),
		  "churn_store_gbps / store_gbps, target >= 0.9" },
		{ "churn_store_vs_fresh_cpu",
		  ratio(cgbps(cr->stores, cr->store.cpu), CPU(OP_STORE, 1)),
		  "the same per CPU second" },
		{ "churn_store_vs_lz4",
		  ratio(cgbps(cr->stores, cr->store.wall), c1), "" },
		{ "churn_load_vs_lz4",
		  ratio(cgbps(cr->loads, cr->load.wall), d1), "" },
		{ "churn_pages", cs->pages, "live pages at the end" },
		{ "churn_compressed_bytes", cs->compressed_bytes, "" },
		{ "churn_data_bytes", cs->data_bytes, "" },
		{ "churn_meta_bytes", cs->meta_bytes, "" },
		{ "lz4_ratio", ratio((double)o->pages * PAGE, r->lz4_bytes),
		  "uncompressed / raw LZ4 bytes" },
		{ "stored_pages", st->pages, "" },
		{ "same_filled_pages", st->same_filled_pages, "" },
		{ "raw_pages", st->raw_pages, "" },
		{ "compressed_bytes", st->compressed_bytes, "" },
		{ "data_bytes", st->data_bytes, "" },
		{ "meta_bytes", st->meta_bytes, "" },
		{ "host_bytes", st->host_bytes, "" },
		{ "failed_ops", r->failed, "should be 0" },
		{ "online_cpus", sysconf(_SC_NPROCESSORS_ONLN), "" },
	};
	size_t n = sizeof(m) / sizeof(m[0]);

	if (o->json)
		printf("{\"corpus\": \"%s\"", corpus_name(o->corpus));
	else
		printf("%-32s %14s\n", "corpus", corpus_name(o->corpus));
	for (size_t i = 0; i < n; i++) {
		bool integral = m[i].value == (double)(uint64_t)m[i].value &&
				(m[i].value >= 1 || m[i].what[0] == 's');

		if (o->json)
			printf(integral ? ", \"%s\": %.0f" : ", \"%s\": %.4f",
			       m[i].name, m[i].value);
		else
			printf(integral ? "%-32s %14.0f  %s\n" :
			       "%-32s %14.4f  %s\n",
			       m[i].name, m[i].value, m[i].what);
	}
	if (o->json)
		printf("}\n");
}

/* Sum of the raw LZ4 sizes, for lz4_ratio. */
static uint64_t lz4_total(const struct lz4_ref *ref, size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += ref->clen[i];
	return sum;
}

/*
 * The worst case of INVALIDATE_OBJECT the guest can build: a budget
 * filled with sparse zero pages (a chunk each, no data), then an object
 * it never stored.  Its cost must not grow with what the pool holds.
 */
static int bench_invalidate_object(const struct opts *o)
{
	struct tmem_client_config cfg = {
		.budget_bytes = o->budget,
		.incompressible = TMEM_INCOMPRESSIBLE_RAW,
	};
	static const uint8_t zero[PAGE];
	struct tmem_client *client;
	struct tmem_ctx *ctx;
	struct tmem_stats st;
	double t0, fill, sum = 0, max = 0;
	uint64_t n = 0, calls = 0;
	uint32_t pool;
	int ret;

	if ((ret = tmem_client_new(&cfg, &client)) ||
	    (ret = tmem_ctx_new(client, &ctx)) ||
	    (ret = tmem_pool_new(client, TMEM_POOL_PERSISTENT, &pool)))
		die("client", -ret);
	t0 = now();
	while (!(ret = tmem_store(ctx, pool, n % 16, (uint32_t)(n / 16) << 6,
				  zero)))
		n++;
	fill = now() - t0;
	if (ret != -ENOSPC)
		die("store", -ret);
	for (int r = 0; r < o->repeat; r++) {
		for (int i = 0; i < 256; i++, calls++) {
			t0 = now();
			ret = tmem_invalidate_object(ctx, pool, 1000 + calls);
			t0 = now() - t0;
			if (ret)
				die("invalidate_object", ret < 0 ? -ret : EIO);
			sum += t0;
			max = t0 > max ? t0 : max;
		}
	}
	tmem_client_stats(client, &st);
	if (o->json)
		printf("{\"budget\": %llu, \"sparse_pages\": %llu, "
		       "\"fill_s\": %.3f, \"meta_bytes_per_page\": %.1f, "
		       "\"invalidate_object_absent_us\": %.3f, "
		       "\"invalidate_object_absent_max_us\": %.3f}\n",
		       (unsigned long long)o->budget,
		       (unsigned long long)st.pages, fill,
		       ratio(st.meta_bytes, st.pages), sum / calls * 1e6,
		       max * 1e6);
	else
		printf("%-36s %12llu\n%-36s %12llu  until the budget refused\n"
		       "%-36s %12.3f\n%-36s %12.1f\n%-36s %12.3f  mean of %llu\n"
		       "%-36s %12.3f\n",
		       "budget", (unsigned long long)o->budget,
		       "sparse_pages", (unsigned long long)st.pages,
		       "fill_s", fill,
		       "meta_bytes_per_page", ratio(st.meta_bytes, st.pages),
		       "invalidate_object_absent_us", sum / calls * 1e6,
		       (unsigned long long)calls,
		       "invalidate_object_absent_max_us", max * 1e6);
	tmem_ctx_free(ctx);
	tmem_client_free(client);
	return 0;
}

/*
 * The measurements are interleaved, one repetition of each in turn, so
 * that a disturbance from the rest of the machine hits all of them alike.
 */
int main(int argc, char **argv)
{
	struct result r = { 0 };
	struct lz4_ref ref;
	struct worker proto = { 0 };
	struct opts o;

	parse_args(argc, argv, &o);
	if (o.invalidate_object)
		return bench_invalidate_object(&o);
	proto.pages = corpus_load(&o);
	ref.cbuf = malloc(o.pages * LZ4_COMPRESSBOUND(PAGE));
	ref.clen = calloc(o.pages, sizeof(int));
	if (!ref.cbuf || !ref.clen)
		die("lz4 buffers", ENOMEM);
	/* Fault the output in first: raw LZ4 is measured at its best. */
	memset(ref.cbuf, 0xa5, o.pages * LZ4_COMPRESSBOUND(PAGE));
	proto.ref = &ref;
	for (int i = 0; i < o.repeat; i++) {
		for (int t = 1; t <= MAX_THREADS; t++) {
			bench_lz4(&o, &proto, t, &r);
			bench_tmem(&o, &proto, t, i == 0 && t == 1, &r);
		}
		bench_churn(&o, proto.pages, i == 0, &r.churn);
	}
	r.lz4_bytes = lz4_total(&ref, o.pages);
	r.refill = bench_holes(&o, proto.pages, r.lz4_bytes);
	r.failed += r.churn.failed;
	report(&o, &r);
	free(ref.cbuf);
	free(ref.clen);
	free((void *)proto.pages);
	return r.failed ? 1 : 0;
}
