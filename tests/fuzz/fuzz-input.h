/* SPDX-License-Identifier: MIT */
/*
 * What the libFuzzer targets of tests/fuzz/ share: reading the fuzz input a
 * byte at a time, a page's hash for the model, and (from
 * tests/common/vtmem-pages.h) the seeded generator of page contents.
 * Define PAGE before including it.
 */
#ifndef FUZZ_INPUT_H
#define FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "vtmem-pages.h"

struct input {
	const uint8_t *p;
	size_t n;
};

/* The next byte of the input, 0 once it is used up. */
static inline uint8_t next(struct input *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

/* FNV-1a over a page: what the model remembers of a stored page. */
static inline uint64_t hash_page(const uint8_t *p)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < PAGE; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

#endif
