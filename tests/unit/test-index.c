/* SPDX-License-Identifier: MIT */
/*
 * The index layer (host-lib/src/index_i.h) on its own, as a pure map:
 * keys map to the handles set, a replaced or dropped handle comes back
 * to the caller (never freed by the index: the handles here point at no
 * memory at all), the iterator offers each handle once with its key and
 * takes replacements, and every byte charged is given back.
 */
#include "tmem-test.h"
#include "index_i.h"

#define OBJ	0x1234567890ull

struct env {
	struct tmem_budget budget;
	struct tmem_shard *shards;
	/* Handles dropped through the callback, in order. */
	uint64_t dropped[4096];
	unsigned int ndropped;
	struct tmem_drop drop;
};

static void on_drop(void *arg, uint64_t h)
{
	struct env *e = arg;

	assert_true(h != 0);
	assert_true(e->ndropped < sizeof(e->dropped) / sizeof(e->dropped[0]));
	e->dropped[e->ndropped++] = h;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	e->budget.limit = 16ull << 20;
	e->shards = aligned_alloc(64, TMEM_NR_SHARDS * sizeof(*e->shards));
	if (!e->shards)
		return -1;
	tmem_shards_init(e->shards, 0x5eed);
	e->drop = (struct tmem_drop){ .fn = on_drop, .arg = e };
	assert_int_equal(tmem_shards_set_state(&e->budget, e->shards,
					       TMEM_POOL_OPEN, false, false, 1,
					       &e->drop), 0);
	*state = e;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;

	tmem_shards_fini(&e->budget, e->shards, &e->drop);
	/* Every chunk, object and table went back to the budget. */
	assert_true(atomic_load(&e->budget.used) == 0);
	free(e->shards);
	free(e);
	return 0;
}

/* A fake handle naming (object, index) in its location: no memory. */
static uint64_t fake(uint64_t object, uint32_t index)
{
	return tmem_h_make(TMEM_H_LZ4, 100, (object * 131 + index) & 0xffffff);
}

/* Set the entry of a key, inserting its chunk; returns the old entry. */
static uint64_t set(struct env *e, uint64_t object, uint32_t index,
		    uint64_t h, bool wide)
{
	struct tmem_shard *sh = tmem_shard_of(e->shards, object, index);
	uint32_t base = index >> TMEM_CHUNK_SHIFT;
	struct tmem_chunk *ch;
	struct tmem_obj *obj = NULL;
	uint64_t old;

	pthread_mutex_lock(&sh->lock);
	ch = tmem_chunk_find(sh, object, base);
	if (!ch) {
		assert_int_equal(tmem_chunk_alloc(&e->budget, &ch), 0);
		assert_int_equal(tmem_obj_alloc(&e->budget, &obj), 0);
		ch->object = object;
		ch->base = base;
		assert_int_equal(tmem_chunk_insert(&e->budget, sh, ch, &obj,
						   false), 0);
		assert_ptr_equal(tmem_chunk_find(sh, object, base), ch);
	}
	old = tmem_chunk_set(sh, ch, index % TMEM_CHUNK_PAGES, h, wide);
	pthread_mutex_unlock(&sh->lock);
	tmem_obj_free(&e->budget, obj);		/* unused: object known */
	return old;
}

/* The entry of a key: 0 when it has none. */
static uint64_t get(struct env *e, uint64_t object, uint32_t index,
		    bool *widep)
{
	struct tmem_shard *sh = tmem_shard_of(e->shards, object, index);
	struct tmem_chunk *ch;
	uint64_t h = 0;

	*widep = false;
	pthread_mutex_lock(&sh->lock);
	ch = tmem_chunk_find(sh, object, index >> TMEM_CHUNK_SHIFT);
	if (ch)
		h = tmem_chunk_get(ch, index % TMEM_CHUNK_PAGES, widep);
	pthread_mutex_unlock(&sh->lock);
	return h;
}

static uint64_t shard_pages(struct env *e)
{
	uint64_t n = 0;

	for (unsigned int s = 0; s < TMEM_NR_SHARDS; s++)
		n += e->shards[s].pages;
	return n;
}

static void test_map(void **state)
{
	struct env *e = *state;
	bool wide;

	for (uint32_t i = 0; i < 200; i++)
		assert_true(set(e, OBJ, i * 7, fake(OBJ, i * 7), false) == 0);
	assert_true(set(e, OBJ + 1, 0, fake(OBJ + 1, 0), false) == 0);
	for (uint32_t i = 0; i < 200; i++) {
		assert_true(get(e, OBJ, i * 7, &wide) == fake(OBJ, i * 7));
		assert_false(wide);
		assert_true(get(e, OBJ, i * 7 + 1, &wide) == 0);
	}
	assert_true(get(e, OBJ + 1, 0, &wide) == fake(OBJ + 1, 0));
	assert_true(get(e, OBJ + 2, 0, &wide) == 0);
	assert_true(shard_pages(e) == 201);
	/* Replacing hands the old handle back; nothing is dropped. */
	assert_true(set(e, OBJ, 7, tmem_h_same(5), false) == fake(OBJ, 7));
	assert_true(set(e, OBJ, 7, 0, false) == tmem_h_same(5));
	assert_true(get(e, OBJ, 7, &wide) == 0);
	assert_true(shard_pages(e) == 200);
	assert_int_equal(e->ndropped, 0);
}

/* A wide slot holds a word, not a handle: it comes back as same(0). */
static void test_wide(void **state)
{
	struct env *e = *state;
	uint64_t w = 0xfedcba9876543210ull;
	bool wide;

	assert_true(set(e, OBJ, 3, w, true) == 0);
	assert_true(get(e, OBJ, 3, &wide) == w);
	assert_true(wide);
	assert_true(set(e, OBJ, 3, fake(OBJ, 3), false) == tmem_h_same(0));
	assert_true(get(e, OBJ, 3, &wide) == fake(OBJ, 3));
	assert_false(wide);
}

/* Dropping a chunk hands each of its handles to the caller, once. */
static void test_chunk_drop(void **state)
{
	struct env *e = *state;
	struct tmem_shard *sh = tmem_shard_of(e->shards, OBJ, 64);
	struct tmem_chunk *ch;
	uint32_t n;
	bool wide;

	for (uint32_t i = 64; i < 128; i += 2)
		set(e, OBJ, i, fake(OBJ, i), false);
	set(e, OBJ, 65, 0x1111222233334444ull, true);
	pthread_mutex_lock(&sh->lock);
	ch = tmem_chunk_find(sh, OBJ, 1);
	assert_non_null(ch);
	n = tmem_chunk_drop(&e->budget, sh, ch, &e->drop);
	assert_null(tmem_chunk_find(sh, OBJ, 1));
	pthread_mutex_unlock(&sh->lock);
	assert_int_equal(n, 33);
	assert_int_equal(e->ndropped, 33);
	for (uint32_t i = 64, k = 0; i < 128; i += 2) {
		while (e->dropped[k] == tmem_h_same(0))
			k++;
		assert_true(e->dropped[k++] == fake(OBJ, i));
	}
	assert_true(get(e, OBJ, 64, &wide) == 0);
	assert_true(shard_pages(e) == 0);
}

/* An object's chunks in every shard, and nothing of another object. */
static void test_object_drop(void **state)
{
	struct env *e = *state;
	uint64_t visited = 0, n = 0;
	bool wide;

	for (uint32_t i = 0; i < 64 * 40; i += 16) {
		set(e, OBJ, i, fake(OBJ, i), false);
		set(e, OBJ + 1, i, fake(OBJ + 1, i), false);
	}
	for (unsigned int s = 0; s < TMEM_NR_SHARDS; s++) {
		pthread_mutex_lock(&e->shards[s].lock);
		n += tmem_object_drop(&e->budget, &e->shards[s], OBJ, &visited,
				      &e->drop);
		pthread_mutex_unlock(&e->shards[s].lock);
	}
	assert_true(n == 160);
	assert_true(visited == 40);
	assert_int_equal(e->ndropped, 160);
	for (uint32_t i = 0; i < 64 * 40; i += 16) {
		assert_true(get(e, OBJ, i, &wide) == 0);
		assert_true(get(e, OBJ + 1, i, &wide) == fake(OBJ + 1, i));
	}
}

/* Closing the pool drops everything through the caller. */
static void test_close(void **state)
{
	struct env *e = *state;

	for (uint32_t i = 0; i < 300; i++)
		set(e, OBJ + i % 3, i * 5, fake(OBJ + i % 3, i * 5), false);
	assert_true(tmem_shards_set_state(&e->budget, e->shards,
					  TMEM_POOL_CLOSED, false, false, 2,
					  &e->drop) == 300);
	assert_int_equal(e->ndropped, 300);
	assert_true(shard_pages(e) == 0);
	for (unsigned int s = 0; s < TMEM_NR_SHARDS; s++)
		assert_int_equal(e->shards[s].state, TMEM_POOL_CLOSED);
}

struct walk {
	unsigned int seen, stop_after;
	uint64_t object;
	uint32_t index[TMEM_CHUNK_PAGES * 4];
};

/* Offered each handle with its key; moves it to the disk form. */
static bool to_disk(void *arg, uint64_t object, uint32_t index, uint64_t *hp)
{
	struct walk *w = arg;

	assert_true(*hp == fake(object, index));
	w->object = object;
	w->index[w->seen++] = index;
	if (w->stop_after && w->seen == w->stop_after)
		return false;
	*hp = tmem_h_make_disk(TMEM_H_LZ4, tmem_h_len(*hp), index * 4096);
	return true;
}

static void test_iterator(void **state)
{
	struct env *e = *state;
	struct tmem_shard *sh = tmem_shard_of(e->shards, OBJ, 128);
	struct walk w = { 0 };
	struct tmem_chunk *ch;
	bool wide;

	for (uint32_t i = 128; i < 192; i += 3)
		set(e, OBJ, i, fake(OBJ, i), false);
	set(e, OBJ, 130, 0x0102030405060708ull, true);	/* not offered */
	pthread_mutex_lock(&sh->lock);
	ch = tmem_chunk_find(sh, OBJ, 2);
	assert_true(tmem_chunk_for_each(sh, ch, to_disk, &w));
	pthread_mutex_unlock(&sh->lock);
	assert_int_equal(w.seen, 22);
	assert_true(w.object == OBJ);
	for (unsigned int k = 0; k < w.seen; k++)
		assert_int_equal(w.index[k], 128 + 3 * k);
	for (uint32_t i = 128; i < 192; i += 3) {
		uint64_t h = get(e, OBJ, i, &wide);

		assert_true(tmem_h_on_disk(h));
		assert_true(tmem_h_disk_off(h) == i * 4096ull);
	}
	/* Replaced, accounted: the same pages, now on disk. */
	assert_true(sh->pages == 23);
	assert_true(sh->disk_pages == 22);
	assert_true(sh->disk_bytes == 22 * 100);
	assert_int_equal(e->ndropped, 0);
}

/* A callback returning false stops the walk there, that handle kept. */
static void test_iterator_stop(void **state)
{
	struct env *e = *state;
	struct walk w = { .stop_after = 3 };
	unsigned int total = 0;
	bool wide;

	for (uint32_t i = 0; i < 64 * 8; i += 8)
		set(e, OBJ, i, fake(OBJ, i), false);
	for (unsigned int s = 0; s < TMEM_NR_SHARDS && !total; s++) {
		struct tmem_shard *sh = &e->shards[s];

		if (!sh->pages)
			continue;
		pthread_mutex_lock(&sh->lock);
		assert_false(tmem_shard_for_each(sh, to_disk, &w));
		pthread_mutex_unlock(&sh->lock);
		total = w.seen;
	}
	assert_int_equal(total, 3);
	assert_true(tmem_h_on_disk(get(e, w.object, w.index[0], &wide)));
	assert_true(tmem_h_on_disk(get(e, w.object, w.index[1], &wide)));
	assert_true(get(e, w.object, w.index[2], &wide) ==
		    fake(w.object, w.index[2]));
}

/* Whole-shard walk: every handle of the shard, each once. */
static void test_shard_walk(void **state)
{
	struct env *e = *state;
	unsigned int offered = 0;

	for (uint32_t i = 0; i < 64 * 50; i += 5)
		set(e, OBJ + i % 7, i, fake(OBJ + i % 7, i), false);
	for (unsigned int s = 0; s < TMEM_NR_SHARDS; s++) {
		struct tmem_shard *sh = &e->shards[s];
		struct walk w = { 0 };

		pthread_mutex_lock(&sh->lock);
		assert_true(tmem_shard_for_each(sh, to_disk, &w));
		assert_true(w.seen == sh->pages);
		assert_true(sh->disk_pages == sh->pages);
		pthread_mutex_unlock(&sh->lock);
		offered += w.seen;
	}
	assert_int_equal(offered, 640);
}

/* Charges: a chunk is refused past the budget, and nothing leaks. */
static void test_budget(void **state)
{
	struct env *e = *state;
	struct tmem_chunk *ch[64];
	unsigned int n = 0;
	uint64_t used = atomic_load(&e->budget.used);

	e->budget.limit = used + 8 * tmem_heap_cost(sizeof(struct tmem_chunk));
	while (n < 64 && !tmem_chunk_alloc(&e->budget, &ch[n]))
		n++;
	assert_int_equal(n, 8);
	assert_int_equal(tmem_chunk_alloc(&e->budget, &ch[n]), -ENOSPC);
	while (n)
		tmem_chunk_free(&e->budget, ch[--n]);
	assert_true(atomic_load(&e->budget.used) == used);
	e->budget.limit = 16ull << 20;
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_map),
		T(test_wide),
		T(test_chunk_drop),
		T(test_object_drop),
		T(test_close),
		T(test_iterator),
		T(test_iterator_stop),
		T(test_shard_walk),
		T(test_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
