// SPDX-License-Identifier: MIT
/*
 * vtmem-memtest: a guest workload that pushes anonymous memory through swap
 * and checks every byte it gets back.
 *
 * Every page gets content that is a pure function of (seed, generation,
 * page index), so a page that comes back from the wrong slot, from an older
 * store, or with any byte flipped is caught by a plain memcmp against a
 * freshly generated copy.  The page mix is chosen to exercise the host:
 * most pages compress well, some are same-filled (the host stores no data
 * for those), some are random (incompressible: the host may reject them).
 *
 *   vtmem-memtest mem [options]     anonymous memory, verified through swap
 *   vtmem-memtest mem --churn FILE  the same, rewriting and verifying pages
 *                                   until SIGUSR1 (the host migrates the VM
 *                                   meanwhile); after --hold FILE's hold if
 *                                   both are given
 *   vtmem-memtest blk DEV [options] O_DIRECT pattern on a block device
 *
 * Prints one JSON object on stdout; exit 0 only with 0 mismatches.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define MAX_REPORTS 10
#define MAX_PROGRESS 512

#include "vtmem-pages.h"	/* tests/common/: the pages' content */

struct opts {
	unsigned long mb;
	unsigned int seq_passes;
	unsigned int rand_passes;
	unsigned int rewrite;
	uint64_t seed;
	const char *mix;	/* "mixed", "text", "random" */
	const char *ready_file;	/* hold mode: touch this, wait for SIGUSR1 */
	const char *blk_op;	/* blk mode: "write", "verify", "zero" */
	const char *stop_file;	/* stop growing when this counter ... */
	unsigned long stop_at;	/* ... reaches this value */
	unsigned long blk_offset_mb;
	unsigned int free_verified;	/* last pass: drop each page once checked */
	double duration;	/* random passes until this many seconds */
	const char *churn_file;	/* churn mode: write our pid here, churn
				 * until SIGUSR1 */
};

struct stats {
	unsigned long pages;
	unsigned long verified;
	unsigned long mismatches;
	unsigned long reports;
	unsigned int passes;
	double write_s;
	double verify_s;
	/* --duration: pages verified by each second, on CLOCK_BOOTTIME */
	double t0;
	double prog_t[MAX_PROGRESS];
	unsigned long prog_n[MAX_PROGRESS];
	unsigned int nprog;
	double next_prog;
	/* --churn: each page's generation (rewritten pages move on) */
	unsigned char *gens;
	unsigned long churn_rounds;
	unsigned long churn_rewritten;	/* pages checked, then rewritten */
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The guest's /proc/uptime clock: the shell stamps checkpoints with it. */
static double uptime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * --duration: one sample a second of the pages verified so far, so that
 * the host can tell the workload's throughput in any window (before and
 * during a resize).  Checked every 256 pages.
 */
static void progress(struct stats *st)
{
	double t;

	if (!st->next_prog || st->verified % 256 ||
	    st->nprog >= MAX_PROGRESS)
		return;
	t = uptime();
	if (t < st->next_prog)
		return;
	st->prog_t[st->nprog] = t;
	st->prog_n[st->nprog++] = st->verified;
	st->next_prog = t + 1.0;
}

static enum record_kind kind_of(const struct opts *o, unsigned long idx)
{
	if (!strcmp(o->mix, "text"))
		return REC_TEXT;
	if (!strcmp(o->mix, "random"))
		return REC_RANDOM;
	return record_kind_mixed(o->seed, idx);
}

/* Word 0 of every page: "\0\0MVTMEM" and the generation. */
#define MEMTEST_MAGIC 0x4d454d54564d0000ULL

static void fill_page(const struct opts *o, uint64_t *w, unsigned long idx,
		      unsigned int gen)
{
	fill_record_page(w, kind_of(o, idx), o->seed, idx, gen, MEMTEST_MAGIC);
}

static void report(struct stats *st, unsigned long idx, const void *got,
		   const void *want)
{
	const unsigned char *g = got, *e = want;
	unsigned int off = 0;

	if (st->reports++ >= MAX_REPORTS)
		return;
	while (off < PAGE && g[off] == e[off])
		off++;
	fprintf(stderr,
		"MISMATCH page %lu offset %u: got %02x want %02x (first words %016llx %016llx)\n",
		idx, off, g[off], e[off],
		(unsigned long long)((const uint64_t *)got)[0],
		(unsigned long long)((const uint64_t *)got)[1]);
}

static void check_page(const struct opts *o, struct stats *st,
		       const unsigned char *p, unsigned long idx,
		       unsigned int gen, uint64_t *buf)
{
	fill_page(o, buf, idx, gen);
	if (memcmp(p, buf, PAGE)) {
		st->mismatches++;
		report(st, idx, p, buf);
	}
	st->verified++;
	progress(st);
}

/*
 * Pages rewritten in the rewrite pass get generation 2: odd pages.
 * --churn keeps each page's own generation instead.
 */
static unsigned int page_gen(const struct stats *st, unsigned long idx,
			     unsigned int rewritten)
{
	if (st->gens)
		return st->gens[idx];
	return rewritten && (idx & 1) ? 2 : 1;
}

static void verify_seq(const struct opts *o, struct stats *st,
		       unsigned char *mem, unsigned int rewritten,
		       uint64_t *buf, int drop)
{
	unsigned long i;

	for (i = 0; i < st->pages; i++) {
		check_page(o, st, mem + i * PAGE, i, page_gen(st, i, rewritten), buf);
		/*
		 * --free-verified: give each checked page back at once, so
		 * that this pass needs no memory and swaps nothing out: the
		 * swap device only sees loads (and the frees that follow).
		 */
		if (drop && i % 64 == 63)
			madvise(mem + (i - 63) * PAGE, 64 * PAGE, MADV_DONTNEED);
	}
	if (drop && i % 64)
		madvise(mem + (i - i % 64) * PAGE, (i % 64) * PAGE,
			MADV_DONTNEED);
	st->passes++;
}

/* A full permutation (odd stride mod a power of two >= pages). */
static void verify_random(const struct opts *o, struct stats *st,
			  unsigned char *mem, unsigned int rewritten,
			  unsigned int pass, uint64_t *buf)
{
	unsigned long n = 1, i, x, done = 0;
	uint64_t r = splitmix64_of(o->seed + 1000 + pass);
	unsigned long a = (r & ~3ul) | 1, c = (r >> 32) | 1;

	while (n < st->pages)
		n <<= 1;
	/* LCG with a % 4 == 1 and odd c has full period mod 2^k. */
	a = (a & ~3ul) | 1;
	for (i = 0, x = r & (n - 1); i < n; i++) {
		x = (a * x + c) & (n - 1);
		if (x >= st->pages)
			continue;
		check_page(o, st, mem + x * PAGE, x, page_gen(st, x, rewritten), buf);
		done++;
	}
	if (done != st->pages) {
		fprintf(stderr, "internal: random pass visited %lu of %lu\n",
			done, st->pages);
		st->mismatches++;
	}
	st->passes++;
}

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

/* Write our pid to @file (hold and churn modes: the caller signals it). */
static void write_pid(const char *file)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd >= 0) {
		dprintf(fd, "%d\n", getpid());
		close(fd);
	}
}

/*
 * Churn mode: until SIGUSR1, rounds over one page in eight (a slice that
 * moves on each round, so every page changes over eight rounds), in a
 * random order: each page is checked, then rewritten with its next
 * generation.  A store the host lost, or an older copy it gives back,
 * fails the check.  The signal is seen after any page.  Pages checked
 * here count in churn_rewritten, not in verified_pages (which stays
 * pages x passes).
 */
static void churn(const struct opts *o, struct stats *st, unsigned char *mem,
		  uint64_t *buf)
{
	unsigned long n = 1, i, x, r;

	/* After --hold, whose SIGUSR1 started this. */
	go = 0;
	signal(SIGUSR1, on_usr1);
	write_pid(o->churn_file);
	while (n < st->pages)
		n <<= 1;
	for (r = 0; !go; r++) {
		uint64_t s = splitmix64_of(o->seed + 5000 + r);
		unsigned long a = (s & ~3ul) | 1, c = (s >> 32) | 1;

		for (i = 0, x = s & (n - 1); i < n && !go; i++) {
			unsigned char g;

			x = (a * x + c) & (n - 1);
			if (x >= st->pages || x % 8 != r % 8)
				continue;
			g = st->gens[x] == 255 ? 1 : st->gens[x] + 1;
			fill_page(o, buf, x, st->gens[x]);
			if (memcmp(mem + x * PAGE, buf, PAGE)) {
				st->mismatches++;
				report(st, x, mem + x * PAGE, buf);
			}
			fill_page(o, (uint64_t *)(mem + x * PAGE), x, g);
			st->gens[x] = g;
			st->churn_rewritten++;
		}
		if (i == n)
			st->churn_rounds++;
	}
}

/* Hold mode: tell the caller the pages are out, wait until it is done. */
static void hold(const char *ready_file)
{
	sigset_t block, old;

	signal(SIGUSR1, on_usr1);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	write_pid(ready_file);
	while (!go)
		sigsuspend(&old);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static unsigned long read_counter(const char *path)
{
	char buf[32];
	ssize_t r;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return 0;
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return 0;
	buf[r] = '\0';
	return strtoul(buf, NULL, 10);
}

static int run_mem(const struct opts *o, struct stats *st)
{
	uint64_t *buf = aligned_alloc(PAGE, PAGE);
	unsigned char *mem;
	unsigned long i;
	unsigned int p, rewritten = 0;
	double t;

	st->pages = o->mb * 256;
	mem = mmap(NULL, st->pages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED || !buf) {
		perror("mmap");
		return -1;
	}
	if (o->churn_file) {
		st->gens = malloc(st->pages);
		if (!st->gens) {
			perror("malloc");
			return -1;
		}
		memset(st->gens, 1, st->pages);
	}
	t = now();
	for (i = 0; i < st->pages; i++) {
		/*
		 * --stop-when: grow only until the swap device has refused
		 * enough pages; without a backing disk a refused page stays
		 * in RAM, and growing on would only feed the OOM killer.
		 */
		if (o->stop_file && i % 64 == 0 &&
		    read_counter(o->stop_file) >= o->stop_at) {
			st->pages = i;
			break;
		}
		fill_page(o, (uint64_t *)(mem + i * PAGE), i, 1);
	}
	st->write_s = now() - t;

	t = now();
	if (o->duration > 0) {
		st->t0 = uptime();
		st->next_prog = st->t0;
	}
	for (p = 0; p < o->seq_passes || p < o->rand_passes; p++) {
		if (p < o->seq_passes)
			verify_seq(o, st, mem, rewritten, buf, 0);
		if (p < o->rand_passes)
			verify_random(o, st, mem, rewritten, p, buf);
	}
	if (o->rewrite) {
		/* Overwrite odd pages: a stale copy must never come back. */
		for (i = 1; i < st->pages; i += 2) {
			fill_page(o, (uint64_t *)(mem + i * PAGE), i, 2);
			if (st->gens)
				st->gens[i] = 2;
		}
		rewritten = 1;
		verify_random(o, st, mem, rewritten, 99, buf);
	}
	/* --duration: random passes until that many seconds have gone. */
	for (p = 0; o->duration > 0 && now() - t < o->duration; p++)
		verify_random(o, st, mem, rewritten, 200 + p, buf);
	st->next_prog = 0;
	if (o->ready_file)
		hold(o->ready_file);
	if (o->churn_file)
		churn(o, st, mem, buf);
	/* After a rewrite, a hold or churn: every page once more, in order. */
	if (o->rewrite || o->ready_file || o->churn_file)
		verify_seq(o, st, mem, rewritten, buf, o->free_verified);
	st->verify_s = now() - t;
	munmap(mem, o->mb * 256 * PAGE);
	free(st->gens);
	free(buf);
	return 0;
}

static int run_blk(const struct opts *o, const char *dev, struct stats *st)
{
	unsigned long chunk = 64, i, j, base = o->blk_offset_mb * 256;
	int writing = !strcmp(o->blk_op, "write");
	uint64_t *want = aligned_alloc(PAGE, PAGE);
	unsigned char *buf;
	double t = now();
	int fd;

	st->pages = o->mb * 256;
	fd = open(dev, (writing ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0 || !want || posix_memalign((void **)&buf, PAGE, chunk * PAGE)) {
		perror(dev);
		return -1;
	}
	for (i = 0; i < st->pages; i += chunk) {
		unsigned long n = st->pages - i < chunk ? st->pages - i : chunk;
		off_t off = (off_t)(base + i) * PAGE;
		ssize_t r;

		if (writing) {
			for (j = 0; j < n; j++)
				fill_page(o, (uint64_t *)(buf + j * PAGE), base + i + j, 1);
			r = pwrite(fd, buf, n * PAGE, off);
		} else {
			r = pread(fd, buf, n * PAGE, off);
		}
		if (r != (ssize_t)(n * PAGE)) {
			fprintf(stderr, "%s at page %lu: %s\n", o->blk_op, base + i,
				r < 0 ? strerror(errno) : "short transfer");
			close(fd);
			return -1;
		}
		if (writing)
			continue;
		for (j = 0; j < n; j++) {
			if (!strcmp(o->blk_op, "zero")) {
				static const unsigned char zero[PAGE];

				if (memcmp(buf + j * PAGE, zero, PAGE)) {
					st->mismatches++;
					report(st, base + i + j, buf + j * PAGE, zero);
				}
				st->verified++;
			} else {
				check_page(o, st, buf + j * PAGE, base + i + j, 1,
					   want);
			}
		}
	}
	if (writing && fsync(fd)) {
		perror("fsync");
		close(fd);
		return -1;
	}
	close(fd);
	st->passes = 1;
	*(writing ? &st->write_s : &st->verify_s) = now() - t;
	return 0;
}

/* ,"progress":[[uptime, pages verified], ...] */
static void print_progress(const struct stats *st)
{
	unsigned int i;

	if (!st->nprog)
		return;
	printf(",\"progress\":[");
	for (i = 0; i < st->nprog; i++)
		printf("%s[%.2f,%lu]", i ? "," : "", st->prog_t[i],
		       st->prog_n[i]);
	printf("]");
}

static void usage(void)
{
	fprintf(stderr,
		"usage: vtmem-memtest mem --mb N [--seq N] [--random N] [--rewrite]\n"
		"                         [--mix mixed|text|random] [--seed N] [--hold FILE]\n"
		"                         [--stop-when COUNTER_FILE=N] [--free-verified]\n"
		"                         [--duration SECONDS] [--churn FILE]\n"
		"       vtmem-memtest blk DEV --mb N --op write|verify|zero [--offset-mb N]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "mb", required_argument, NULL, 'm' },
		{ "seq", required_argument, NULL, 's' },
		{ "random", required_argument, NULL, 'r' },
		{ "rewrite", no_argument, NULL, 'w' },
		{ "seed", required_argument, NULL, 'S' },
		{ "mix", required_argument, NULL, 'x' },
		{ "hold", required_argument, NULL, 'h' },
		{ "op", required_argument, NULL, 'o' },
		{ "offset-mb", required_argument, NULL, 'O' },
		{ "stop-when", required_argument, NULL, 'W' },
		{ "free-verified", no_argument, NULL, 'F' },
		{ "duration", required_argument, NULL, 'D' },
		{ "churn", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 }
	};
	struct opts o = { .mb = 64, .seq_passes = 1, .rand_passes = 1,
			  .seed = 1, .mix = "mixed", .blk_op = "verify" };
	struct stats st = { 0 };
	const char *mode, *dev = NULL;
	int c, rc;

	if (argc < 2)
		usage();
	mode = argv[1];
	optind = 2;
	if (!strcmp(mode, "blk")) {
		if (argc < 3)
			usage();
		dev = argv[2];
		optind = 3;
	} else if (strcmp(mode, "mem")) {
		usage();
	}
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'm': o.mb = strtoul(optarg, NULL, 0); break;
		case 's': o.seq_passes = strtoul(optarg, NULL, 0); break;
		case 'r': o.rand_passes = strtoul(optarg, NULL, 0); break;
		case 'w': o.rewrite = 1; break;
		case 'S': o.seed = strtoull(optarg, NULL, 0); break;
		case 'x': o.mix = optarg; break;
		case 'h': o.ready_file = optarg; break;
		case 'o': o.blk_op = optarg; break;
		case 'O': o.blk_offset_mb = strtoul(optarg, NULL, 0); break;
		case 'F': o.free_verified = 1; break;
		case 'D': o.duration = strtod(optarg, NULL); break;
		case 'C': o.churn_file = optarg; break;
		case 'W': {
			char *eq = strrchr(optarg, '=');

			if (!eq)
				usage();
			*eq = '\0';
			o.stop_file = optarg;
			o.stop_at = strtoul(eq + 1, NULL, 0);
			break;
		}
		default: usage();
		}
	}
	rc = dev ? run_blk(&o, dev, &st) : run_mem(&o, &st);
	printf("{\"mode\":\"%s\",\"mb\":%lu,\"pages\":%lu,\"passes\":%u,"
	       "\"verified_pages\":%lu,\"mismatches\":%lu,\"error\":%s,"
	       "\"write_s\":%.2f,\"verify_s\":%.2f",
	       mode, o.mb, st.pages, st.passes, st.verified, st.mismatches,
	       rc ? "true" : "false", st.write_s, st.verify_s);
	if (o.churn_file)
		printf(",\"churn_rounds\":%lu,\"churn_rewritten\":%lu",
		       st.churn_rounds, st.churn_rewritten);
	print_progress(&st);
	printf("}\n");
	fflush(stdout);
	return rc || st.mismatches ? 1 : 0;
}
