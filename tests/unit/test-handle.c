/* SPDX-License-Identifier: MIT */
/*
 * The handle layer (host-lib/src/handle_i.h) on its own: the encoding of
 * each kind (LZ4, RAW, same-filled, on disk) round trips and the kinds
 * never pass for one another; freeing gives the allocator's slot back;
 * loading rebuilds the page of each memory kind.
 */
#include "tmem-test.h"
#include "codec_i.h"
#include "handle_i.h"

#define LOC_MAX	((1ull << TMEM_LOC_BITS) - 1)
#define OFF_MAX	((1ull << TMEM_DISK_OFF_BITS) - 1)

static unsigned char page[PAGE], out[PAGE];

static void test_memory_kinds(void **state)
{
	static const uint64_t locs[] = { 0, 1, 0x3fff, 0x123456789ull, LOC_MAX };
	static const unsigned int lens[] = { 1, 2, 16, 17, 1000, 3584, 4095,
					     4096 };

	(void)state;
	for (size_t i = 0; i < sizeof(locs) / sizeof(locs[0]); i++) {
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			uint64_t h = tmem_h_make(TMEM_H_LZ4, lens[j], locs[i]);

			assert_true(h != 0);
			assert_int_equal(tmem_h_type(h), TMEM_H_LZ4);
			assert_int_equal(tmem_h_len(h), lens[j]);
			assert_true(tmem_h_loc(h) == locs[i]);
			assert_true(tmem_h_in_memory(h));
			assert_false(tmem_h_on_disk(h));
		}
		{
			uint64_t h = tmem_h_make(TMEM_H_RAW, PAGE, locs[i]);

			assert_int_equal(tmem_h_type(h), TMEM_H_RAW);
			assert_int_equal(tmem_h_len(h), PAGE);
			assert_true(tmem_h_loc(h) == locs[i]);
			assert_true(tmem_h_in_memory(h));
			assert_false(tmem_h_on_disk(h));
		}
	}
}

static void test_same_kind(void **state)
{
	static const uint32_t words[] = { 0, 1, 0x7fffffff, 0x80000000,
					  0xffffffff, 0xdeadbeef };

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		uint64_t h = tmem_h_same(words[i]);

		assert_true(h != 0);
		assert_int_equal(tmem_h_type(h), TMEM_H_SAME);
		assert_int_equal(tmem_h_len(h), 0);
		assert_true((uint32_t)(h >> 32) == words[i]);
		/* A word with its top bit set is still no disk handle. */
		assert_false(tmem_h_on_disk(h));
		assert_false(tmem_h_in_memory(h));
	}
}

static void test_disk_kind(void **state)
{
	static const uint64_t offs[] = { 24, 4096 + 24, 0x123456789abull,
					 OFF_MAX };
	static const unsigned int lens[] = { 1, 100, 3584, 4096 };

	(void)state;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			unsigned int type = lens[j] == PAGE ? TMEM_H_RAW :
							      TMEM_H_LZ4;
			uint64_t h = tmem_h_make_disk(type, lens[j], offs[i]);

			assert_true(tmem_h_on_disk(h));
			assert_false(tmem_h_in_memory(h));
			assert_int_equal(tmem_h_type(h), type);
			assert_int_equal(tmem_h_len(h), lens[j]);
			assert_true(tmem_h_disk_off(h) == offs[i]);
		}
	}
}

struct zs_env {
	struct tmem_budget budget;
	struct tmem_zs zs;
};

static int zs_setup(void **state)
{
	struct zs_env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	e->budget.limit = 64ull << 20;
	tmem_zs_init(&e->zs, &e->budget);
	*state = e;
	return 0;
}

static int zs_teardown(void **state)
{
	struct zs_env *e = *state;

	tmem_zs_fini(&e->zs);
	assert_true(atomic_load(&e->budget.used) == 0);
	free(e);
	return 0;
}

/* Put @len bytes of @src in a slot; its handle. */
static uint64_t put(struct zs_env *e, unsigned int type, const void *src,
		    unsigned int len)
{
	uint64_t loc;
	void *dst;

	assert_int_equal(tmem_zs_alloc(&e->zs, len, &loc, &dst), 0);
	memcpy(dst, src, len);
	return tmem_h_make(type, len, loc);
}

static void test_load_each_kind(void **state)
{
	struct zs_env *e = *state;
	char cbuf[PAGE];
	uint64_t h, w = 0x0123456789abcdefull;
	int len;

	fill_page(page, PK_TEXT, 7);
	len = tmem_compress(page, cbuf, PAGE);
	assert_true(len > 0);
	h = put(e, TMEM_H_LZ4, cbuf, len);
	memset(out, 0, PAGE);
	assert_int_equal(tmem_handle_load(&e->zs, h, false, out), 0);
	assert_memory_equal(out, page, PAGE);
	tmem_handle_free(&e->zs, NULL, h);

	fill_page(page, PK_RANDOM, 8);
	h = put(e, TMEM_H_RAW, page, PAGE);
	memset(out, 0, PAGE);
	assert_int_equal(tmem_handle_load(&e->zs, h, false, out), 0);
	assert_memory_equal(out, page, PAGE);
	tmem_handle_free(&e->zs, NULL, h);

	/* A same-filled handle: the 32-bit word twice in each 64 bits. */
	assert_int_equal(tmem_handle_load(&e->zs, tmem_h_same(0xdeadbeef),
					  false, out), 0);
	tmem_fill_word(page, 0xdeadbeefdeadbeefull);
	assert_memory_equal(out, page, PAGE);

	/* A wide slot: the entry is the 64-bit word itself. */
	assert_int_equal(tmem_handle_load(&e->zs, w, true, out), 0);
	tmem_fill_word(page, w);
	assert_memory_equal(out, page, PAGE);
}

/* LZ4 bytes that do not decode to a page load as -EIO. */
static void test_load_corrupt(void **state)
{
	struct zs_env *e = *state;
	char cbuf[PAGE];
	uint64_t h;
	int len;

	fill_page(page, PK_TEXT, 9);
	len = tmem_compress(page, cbuf, PAGE);
	assert_true(len > 2);
	/* The same bytes under a handle one byte short. */
	h = put(e, TMEM_H_LZ4, cbuf, len - 1);
	assert_int_equal(tmem_handle_load(&e->zs, h, false, out), -EIO);
	tmem_handle_free(&e->zs, NULL, h);
}

/*
 * Freeing a handle gives its slot back (the last one of a slab gives the
 * slab and its budget back); a same-filled handle or 0 holds nothing.
 * Disk handles are test-tier's: freeing one needs a tier.
 */
static void test_free_gives_back(void **state)
{
	struct zs_env *e = *state;
	uint64_t h[64], used;

	fill_page(page, PK_RANDOM, 10);
	for (unsigned int i = 0; i < 64; i++)
		h[i] = put(e, TMEM_H_LZ4, page, 100 + i * 16);
	used = atomic_load(&e->budget.used);
	assert_true(used > 0);
	tmem_handle_free(&e->zs, NULL, 0);
	tmem_handle_free(&e->zs, NULL, tmem_h_same(0x80000000));
	assert_true(atomic_load(&e->budget.used) == used);
	for (unsigned int i = 0; i < 64; i++)
		tmem_handle_free(&e->zs, NULL, h[i]);
	/* What stays is the allocator's free-extent stacks: metadata. */
	assert_true(atomic_load(&e->budget.data_bytes) == 0);
	assert_true(atomic_load(&e->budget.used) ==
		    atomic_load(&e->budget.meta_bytes));
	assert_true(atomic_load(&e->budget.used) < used);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memory_kinds),
		cmocka_unit_test(test_same_kind),
		cmocka_unit_test(test_disk_kind),
		cmocka_unit_test_setup_teardown(test_load_each_kind, zs_setup,
						zs_teardown),
		cmocka_unit_test_setup_teardown(test_load_corrupt, zs_setup,
						zs_teardown),
		cmocka_unit_test_setup_teardown(test_free_gives_back, zs_setup,
						zs_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
