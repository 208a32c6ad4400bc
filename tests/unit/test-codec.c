/* SPDX-License-Identifier: MIT */
/*
 * The codec layer (host-lib/src/codec_i.h) on its own: same-filled
 * detection, LZ4 within its cap, raw pages, and stored bytes that do not
 * make exactly one page refused with -EIO.
 */
#include <lz4.h>

#include "tmem-test.h"
#include "codec_i.h"

static unsigned char page[PAGE], out[PAGE];
static char cbuf[LZ4_COMPRESSBOUND(PAGE)];

static void test_same_filled(void **state)
{
	static const uint64_t words[] = {
		0, 1, 0xffffffffffffffffull, 0x0123456789abcdefull,
		0x8000000000000000ull, 0x5a5a5a5a5a5a5a5aull,
	};
	uint64_t w;

	(void)state;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		tmem_fill_word(page, words[i]);
		for (size_t off = 0; off < PAGE; off += 8)
			assert_memory_equal(page + off, &words[i], 8);
		w = ~words[i];
		assert_true(tmem_same_filled(page, &w));
		assert_true(w == words[i]);
	}
}

/* One byte off anywhere, the first word or the last, is not same-filled. */
static void test_not_same_filled(void **state)
{
	static const size_t offs[] = { 0, 7, 8, 2047, 4088, 4095 };
	uint64_t w = 42;

	(void)state;
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		tmem_fill_word(page, 0x1111111111111111ull);
		page[offs[i]] ^= 0x80;
		assert_false(tmem_same_filled(page, &w));
		assert_true(w == 42);	/* untouched on false */
	}
	fill_page(page, PK_TEXT, 3);
	assert_false(tmem_same_filled(page, &w));
}

static void test_lz4_round_trip(void **state)
{
	(void)state;
	for (uint64_t seed = 0; seed < 64; seed++) {
		enum page_kind kind = seed % 2 ? PK_TEXT : PK_SPARSE;
		int len;

		fill_page(page, kind, seed);
		len = tmem_compress(page, cbuf, PAGE);
		assert_true(len > 0 && len < PAGE);
		memset(out, 0xee, PAGE);
		assert_int_equal(tmem_decode_data(false, cbuf, len, out), 0);
		assert_memory_equal(out, page, PAGE);
	}
}

/* The cap is exact: the length itself fits, one byte less does not. */
static void test_cap(void **state)
{
	int len;

	(void)state;
	fill_page(page, PK_TEXT, 11);
	len = tmem_compress(page, cbuf, PAGE);
	assert_true(len > 1);
	assert_int_equal(tmem_compress(page, cbuf, len), len);
	assert_int_equal(tmem_compress(page, cbuf, len - 1), 0);
	/* Random bytes do not shrink below the default threshold. */
	fill_page(page, PK_RANDOM, 12);
	assert_int_equal(tmem_compress(page, cbuf,
				       TMEM_DEFAULT_COMPRESS_THRESHOLD), 0);
}

static void test_raw(void **state)
{
	(void)state;
	fill_page(page, PK_RANDOM, 5);
	memset(out, 0, PAGE);
	assert_int_equal(tmem_decode_data(true, page, PAGE, out), 0);
	assert_memory_equal(out, page, PAGE);
}

/*
 * Stored bytes that end early, are cut short, are garbage or decode to
 * less than a page are -EIO, never a page of other bytes.
 */
static void test_corrupt_rejected(void **state)
{
	static unsigned char half[PAGE / 2];
	uint64_t s = 99;
	int len;

	(void)state;
	fill_page(page, PK_TEXT, 21);
	len = tmem_compress(page, cbuf, PAGE);
	assert_true(len > 16);
	assert_int_equal(tmem_decode_data(false, cbuf, len - 1, out), -EIO);
	assert_int_equal(tmem_decode_data(false, cbuf, len / 2, out), -EIO);
	assert_int_equal(tmem_decode_data(false, cbuf, 1, out), -EIO);

	fill_random((unsigned char *)cbuf, 512, &s);
	assert_int_equal(tmem_decode_data(false, cbuf, 512, out), -EIO);

	fill_page(page, PK_TEXT, 22);
	memcpy(half, page, sizeof(half));
	len = LZ4_compress_default((const char *)half, cbuf, sizeof(half),
				   sizeof(cbuf));
	assert_true(len > 0);
	assert_int_equal(tmem_decode_data(false, cbuf, len, out), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_filled),
		cmocka_unit_test(test_not_same_filled),
		cmocka_unit_test(test_lz4_round_trip),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_raw),
		cmocka_unit_test(test_corrupt_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
