/* SPDX-License-Identifier: MIT */
/*
 * Page contents for the tests and benchmarks: the one generator the unit
 * tests, the fuzz targets, tmem-bench and the guest programs of the vm
 * tests and the swap benchmark share.  Every page is fully determined by
 * its seed, so a page can be regenerated to check it instead of kept.
 *
 * Freestanding apart from <stdint.h>, <stddef.h> and <string.h>: it is
 * built into libtmem's tests and into static guest programs alike.
 * (The guest module's debugfs self-test, guest-virtio-tmem/vtmem_test.c,
 * is kernel code and keeps its own.)  Define PAGE before including it.
 */
#ifndef VTMEM_PAGES_H
#define VTMEM_PAGES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* splitmix64: the generator every page below is drawn from. */
static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* One splitmix64 step from @x, without state: a hash of @x. */
static inline uint64_t splitmix64_of(uint64_t x)
{
	return splitmix64(&x);
}

/* @len incompressible bytes, eight from each step of @s. */
static inline void fill_random(void *page, size_t len, uint64_t *s)
{
	unsigned char *p = page;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		uint64_t v = splitmix64(s);

		memcpy(p + i, &v, 8);
	}
	for (; i < len; i++)
		p[i] = (unsigned char)splitmix64(s);
}

/* The host-side kinds: one per class of what a store must handle. */
enum page_kind {
	PK_RANDOM,		/* incompressible */
	PK_TEXT,		/* English-like words: compresses ~2-3x */
	PK_ZERO,		/* same-filled, 0 */
	PK_BYTE,		/* same-filled, one nonzero byte value */
	PK_WORD,		/* one 8-byte word repeated */
	PK_HALF,		/* first half random, second half zero */
	PK_SPARSE,		/* zero page with a few random bytes */
	PK_NR,
};

/*
 * Fill @page with content of @kind, fully determined by @seed; returns
 * 0, or -1 for a kind out of range (the page is then untouched).
 */
static inline int fill_page_kind(void *page, enum page_kind kind,
				 uint64_t seed)
{
	static const char *const words[] = {
		"the ", "swap ", "page ", "host ", "guest ", "memory ",
		"store ", "load ", "pool ", "object ", "index ", "kernel ",
		"virtio ", "queue ", "budget ", "compressed ",
	};
	unsigned char *p = page;
	uint64_t s = seed * 0x2545f4914f6cdd1dULL + kind;
	size_t i, n;
	uint64_t w;

	switch (kind) {
	case PK_RANDOM:
		fill_random(p, PAGE, &s);
		break;
	case PK_TEXT:
		for (i = 0; i < PAGE; i += n) {
			const char *word = words[splitmix64(&s) % 16];

			n = strlen(word);
			if (n > PAGE - i)
				n = PAGE - i;
			memcpy(p + i, word, n);
		}
		break;
	case PK_ZERO:
		memset(p, 0, PAGE);
		break;
	case PK_BYTE:
		memset(p, (int)(splitmix64(&s) % 255) + 1, PAGE);
		break;
	case PK_WORD:
		w = splitmix64(&s) | 1;
		for (i = 0; i < PAGE; i += 8)
			memcpy(p + i, &w, 8);
		break;
	case PK_HALF:
		fill_random(p, PAGE / 2, &s);
		memset(p + PAGE / 2, 0, PAGE / 2);
		break;
	case PK_SPARSE:
		memset(p, 0, PAGE);
		for (i = 0; i < 16; i++)
			p[splitmix64(&s) % PAGE] = (unsigned char)splitmix64(&s);
		break;
	default:
		return -1;
	}
	return 0;
}

/* A mixed workload: mostly compressible, some random, some same-filled. */
static inline enum page_kind kind_for(uint64_t n)
{
	static const enum page_kind mix[10] = {
		PK_TEXT, PK_TEXT, PK_RANDOM, PK_ZERO, PK_WORD,
		PK_HALF, PK_TEXT, PK_SPARSE, PK_BYTE, PK_RANDOM,
	};

	return mix[splitmix64(&n) % 10];
}

/*
 * The guest-side pages (tests/vm/guest/vtmem-memtest.c, the swap
 * benchmark's bench/guest/vtmem-bench-touch.c): a page of a workload,
 * keyed by (seed, idx, gen).  Word 0 is @magic with the generation in its
 * low 16 bits and word 1 the index, so a page returned for the wrong key
 * differs from the first bytes on.
 */
enum record_kind {
	REC_SAME,		/* same-filled, never zero */
	REC_RANDOM,		/* incompressible */
	REC_TEXT,		/* repeating 64-byte records: LZ4 ~4:1 */
};

/* The mixed workload: 1/16 same-filled, 3/16 random, the rest text. */
static inline enum record_kind record_kind_mixed(uint64_t seed,
						 unsigned long idx)
{
	switch (splitmix64_of(seed ^ idx) % 16) {
	case 0:
		return REC_SAME;
	case 1: case 2: case 3:
		return REC_RANDOM;
	default:
		return REC_TEXT;
	}
}

static inline void fill_record_page(uint64_t *w, enum record_kind kind,
				    uint64_t seed, unsigned long idx,
				    unsigned int gen, uint64_t magic)
{
	uint64_t key = splitmix64_of(seed * 31 + gen) ^
		       (idx * 0x100000001b3ULL);
	unsigned int i;

	switch (kind) {
	case REC_SAME:
		/* Never zero: the 6.12 swap layer keeps zero pages itself. */
		for (i = 0; i < PAGE / 8; i++)
			w[i] = key | 1;
		return;
	case REC_RANDOM:
		for (i = 0; i < PAGE / 8; i++)
			w[i] = splitmix64_of(key + i);
		break;
	case REC_TEXT:
		for (i = 0; i < PAGE / 8; i++) {
			if (i % 8 == 0)
				w[i] = splitmix64_of(key + i) &
				       0x0f0f0f0f0f0f0f0fULL;
			else
				w[i] = 0x2e6d656d74762d20ULL + (i % 8);
		}
		break;
	}
	w[0] = magic | (gen & 0xffff);
	w[1] = idx;
}

#endif
