// SPDX-License-Identifier: MIT
/*
 * vtmem-bench-touch: the guest half of the swap benchmark (bench/vm/).
 *
 * Maps --mb MiB of anonymous memory (more than the guest's RAM, so that it
 * goes through swap), fills it in order (phase "fill"), then touches every
 * page --passes times (phase "touch"): in order (--pattern seq) or in a
 * pseudo-random permutation (--pattern random).  A touch verifies the page
 * against its expected content, then rewrites it with a new generation, so
 * every touch of a swapped-out page is one swap-in and, later, one swap-out
 * on every kind of swap device alike.
 *
 * Page content (--mix): "text" pages compress about 4:1 with LZ4; "mixed"
 * is 1/16 same-filled, 3/16 random (incompressible), 12/16 text.
 *
 * Prints one JSON object: per phase the guest's wall seconds and the
 * pswpin/pswpout deltas of /proc/vmstat (plus zswpin/zswpout: pages into
 * and out of zswap count as swapped).  Exit 1 on any wrong byte.
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096u

#include "vtmem-pages.h"	/* tests/common/: the pages' content */

static int mixed;
static uint64_t seed = 1;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void vmstat(unsigned long long *in, unsigned long long *out)
{
	char name[64];
	unsigned long long v;
	FILE *f = fopen("/proc/vmstat", "r");

	*in = *out = 0;
	if (!f)
		return;
	while (fscanf(f, "%63s %llu", name, &v) == 2) {
		/* Into zswap and out of it count as swapped too (zswap). */
		if (!strcmp(name, "pswpin") || !strcmp(name, "zswpin"))
			*in += v;
		else if (!strcmp(name, "pswpout") || !strcmp(name, "zswpout"))
			*out += v;
	}
	fclose(f);
}

/* Words 0 and 1 name the page and its generation: no two pages alike. */
#define BENCH_MAGIC 0x48434e4542540000ULL	/* "\0\0TBENCH" */

static void fill(uint64_t *w, unsigned long idx, unsigned int gen)
{
	fill_record_page(w, mixed ? record_kind_mixed(seed, idx) : REC_TEXT,
			 seed, idx, gen, BENCH_MAGIC);
}

struct phase {
	double s;
	unsigned long long in, out;
};

static void begin(struct phase *p)
{
	vmstat(&p->in, &p->out);
	p->s = now();
}

static void end(struct phase *p)
{
	unsigned long long in, out;

	p->s = now() - p->s;
	vmstat(&in, &out);
	p->in = in - p->in;
	p->out = out - p->out;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mb", required_argument, NULL, 'm' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "mix", required_argument, NULL, 'x' },
		{ "passes", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 }
	};
	unsigned long mb = 64, pages, i, n, x, mism = 0, touched = 0;
	const char *pattern = "seq", *mix = "text";
	unsigned int passes = 1, p;
	struct phase pf, pt;
	uint64_t *want;
	unsigned char *mem, *gen;
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'm': mb = strtoul(optarg, NULL, 0); break;
		case 'p': pattern = optarg; break;
		case 'x': mix = optarg; break;
		case 'n': passes = strtoul(optarg, NULL, 0); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: vtmem-bench-touch --mb N "
				"--pattern seq|random --mix text|mixed "
				"[--passes N] [--seed N]\n");
			return 2;
		}
	}
	mixed = !strcmp(mix, "mixed");
	pages = mb * 256;
	want = aligned_alloc(PAGE, PAGE);
	gen = calloc(pages, 1);
	mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED || !want || !gen) {
		perror("vtmem-bench-touch");
		return 1;
	}

	begin(&pf);
	for (i = 0; i < pages; i++) {
		gen[i] = 1;
		fill((uint64_t *)(mem + i * PAGE), i, 1);
	}
	end(&pf);

	begin(&pt);
	for (p = 0; p < passes; p++) {
		uint64_t r = splitmix64_of(seed + 1000 + p);
		/* LCG with a % 4 == 1 and odd c: a full permutation mod 2^k. */
		unsigned long a = (r & ~3ul) | 1, cc = (r >> 32) | 1;

		for (n = 1; n < pages; n <<= 1)
			;
		x = r & (n - 1);
		for (i = 0; i < (strcmp(pattern, "seq") ? n : pages); i++) {
			unsigned long idx = i;
			uint64_t *pg;

			if (strcmp(pattern, "seq")) {
				x = (a * x + cc) & (n - 1);
				if (x >= pages)
					continue;
				idx = x;
			}
			pg = (uint64_t *)(mem + idx * PAGE);
			fill(want, idx, gen[idx]);
			if (memcmp(pg, want, PAGE)) {
				if (mism++ < 5)
					fprintf(stderr, "MISMATCH page %lu\n",
						idx);
			}
			gen[idx] = gen[idx] % 250 + 1;
			fill(pg, idx, gen[idx]);
			touched++;
		}
	}
	end(&pt);

	/* Every page once more, not timed: nothing was lost on the way. */
	for (i = 0; i < pages; i++) {
		fill(want, i, gen[i]);
		if (memcmp(mem + i * PAGE, want, PAGE) && mism++ < 5)
			fprintf(stderr, "MISMATCH page %lu (final)\n", i);
	}

	printf("{\"pattern\":\"%s\",\"mix\":\"%s\",\"mb\":%lu,\"pages\":%lu,"
	       "\"passes\":%u,\"touched\":%lu,\"mismatches\":%lu,"
	       "\"fill_s\":%.3f,\"fill_pswpin\":%llu,\"fill_pswpout\":%llu,"
	       "\"touch_s\":%.3f,\"touch_pswpin\":%llu,\"touch_pswpout\":%llu}\n",
	       pattern, mix, mb, pages, passes, touched, mism,
	       pf.s, pf.in, pf.out, pt.s, pt.in, pt.out);
	return mism ? 1 : 0;
}
