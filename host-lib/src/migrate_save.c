/* SPDX-License-Identifier: MIT */
/*
 * The source of a migration (tmem_migrate.h; the format: migrate_i.h).
 * It walks pool ids, their shards and each shard's table, and writes
 * what the index marked (index_track.c: a slot's change while the shard
 * tracks, a sent chunk freed) as records, under the shard's lock, as a
 * page operation takes it: a page is copied as stored; a page of the
 * disk tier has its segment pinned under the lock and is read after it,
 * into its place in the block.  A key changed after its record was
 * written is marked again and goes in a later block, so the last copy
 * of every key arrives last.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

/* Header-only use of libxxhash, as index.c. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "migrate_i.h"
#include "tier_i.h"

struct tmem_save {
	struct tmem_client *c;
	struct tmem_ctx *ctx;		/* its own: disk tier reads */
	uint32_t seq;
	/* The walk's cursor: pool id, shard, bucket of its table. */
	uint32_t pool, shard, bucket;
	uint64_t pools_sent;		/* pools_changes of the last table */
	bool table_sent;
	bool swept_any;			/* this sweep wrote a record */
	int error;			/* sticky: the save failed */
	struct tmem_migrate_stats st;
	/* The block's pinned disk tier pages, read after the lock. */
	struct save_read {
		uint32_t pool, index;
		uint64_t object, h;
		size_t off;
	} *reads;
	unsigned int nreads;
};

/* A block being written: records after the header. */
struct wbuf {
	uint8_t *p;
	size_t off, cap;
};

static size_t room(const struct wbuf *w)
{
	return w->cap - w->off;
}

static void put(struct wbuf *w, const void *v, size_t n)
{
	memcpy(w->p + w->off, v, n);
	w->off += n;
}

static void put8(struct wbuf *w, uint8_t v)
{
	put(w, &v, 1);
}

static void put16(struct wbuf *w, uint16_t v)
{
	v = htole16(v);
	put(w, &v, 2);
}

static void put32(struct wbuf *w, uint32_t v)
{
	v = htole32(v);
	put(w, &v, 4);
}

static void put64(struct wbuf *w, uint64_t v)
{
	v = htole64(v);
	put(w, &v, 8);
}

/* The pool table, under pools_lock: ids that were ever used. */
static void put_pools(struct tmem_save *sv, struct wbuf *w)
{
	struct tmem_client *c = sv->c;
	size_t at;
	uint16_t n = 0;

	pthread_mutex_lock(&c->pools_lock);
	put8(w, R_POOLS);
	at = w->off;
	put16(w, 0);
	for (uint32_t id = 0; id < c->max_pools; id++) {
		struct tmem_pool *pool = &c->pools[id];

		if (!pool->gen)
			continue;	/* never opened: FREE on both sides */
		put32(w, id);
		put32(w, pool->gen);
		put8(w, pool->state);
		put8(w, pool->type);
		n++;
	}
	n = htole16(n);
	memcpy(w->p + at, &n, 2);
	sv->pools_sent = c->pools_changes;
	sv->table_sent = true;
	pthread_mutex_unlock(&c->pools_lock);
}

static unsigned int page_kind(uint64_t h, bool wide, unsigned int *lenp)
{
	if (wide) {
		*lenp = 8;
		return K_WIDE;
	}
	if (tmem_h_type(h) == TMEM_H_SAME) {
		*lenp = 4;
		return K_SAME;
	}
	*lenp = tmem_h_len(h);
	return tmem_h_type(h) == TMEM_H_RAW ? K_RAW : K_LZ4;
}

/*
 * One chunk's marked slots, as many as fit (shard lock held): false
 * when the block is full before the chunk's end.
 */
static bool put_chunk(struct tmem_save *sv, struct tmem_shard *sh,
		      struct tmem_chunk *ch, struct wbuf *w)
{
	struct tmem_client *c = sv->c;
	size_t start = w->off, at;
	uint64_t drops = 0, sent = 0, dirty = ch->dirty;
	uint8_t n = 0;
	bool full = false;

	if (room(w) < CHUNK_REC)
		return false;
	put8(w, R_CHUNK);
	put32(w, sv->pool);
	put32(w, sh->gen);
	put8(w, sh->ephemeral ? TMEM_POOL_EPHEMERAL : TMEM_POOL_PERSISTENT);
	put64(w, ch->object);
	put32(w, ch->base);
	at = w->off;
	put64(w, 0);
	put8(w, 0);
	for (uint32_t i = 0; i < TMEM_CHUNK_PAGES; i++) {
		uint64_t bit = 1ull << i, h;
		unsigned int kind, len;
		bool wide;

		if (!(dirty & bit))
			continue;
		h = tmem_chunk_get(ch, i, &wide);
		if (!h) {
			drops |= bit;
			sent |= bit;
			continue;
		}
		kind = page_kind(h, wide, &len);
		if (room(w) < PAGE_REC + len ||
		    (!wide && tmem_h_on_disk(h) && sv->nreads == MAX_READS)) {
			full = true;
			break;
		}
		put8(w, i);
		put8(w, kind);
		put16(w, len);
		if (kind == K_WIDE) {
			put64(w, h);
		} else if (kind == K_SAME) {
			put32(w, h >> 32);
		} else if (tmem_h_on_disk(h)) {
			struct save_read *r = &sv->reads[sv->nreads++];

			tmem_tier_pin(c->tier, tmem_h_disk_off(h));
			*r = (struct save_read){
				.pool = sv->pool, .object = ch->object,
				.index = ch->base << TMEM_CHUNK_SHIFT | i,
				.h = h, .off = w->off,
			};
			w->off += len;
		} else {
			put(w, tmem_handle_data(&c->zs, h), len);
		}
		sent |= bit;
		n++;
		TMEM_ADD(sv->st.pages, 1);
		TMEM_ADD(sv->st.page_bytes, len);
	}
	if (!sent) {
		w->off = start;
		return false;
	}
	drops = htole64(drops);
	memcpy(w->p + at, &drops, 8);
	w->p[at + 8] = n;
	TMEM_ADD(sv->st.drops, __builtin_popcountll(drops));
	tmem_chunk_sent(sh, ch, sent);
	return !full;
}

/* A shard's tombstones, then its marked chunks from the cursor on. */
static bool put_shard(struct tmem_save *sv, struct tmem_shard *sh,
		      struct wbuf *w)
{
	struct tmem_chunk *ch = NULL;
	struct tmem_tomb *t;

	while (sh->tombs) {
		if (room(w) < TOMB_REC)
			return false;
		t = tmem_tomb_pop(sh);
		put8(w, R_TOMB);
		put32(w, sv->pool);
		put32(w, sh->gen);
		put64(w, t->object);
		put32(w, t->base);
		tmem_free(t);
		TMEM_ADD(sv->st.drops, 1);
	}
	if (!sh->ndirty)
		return true;
	while ((ch = tmem_shard_next_dirty(sh, &sv->bucket, ch)))
		if (!put_chunk(sv, sh, ch, w))
			return false;
	return true;
}

/* The pinned pages of the block, read into their places; unpinned. */
static int read_pinned(struct tmem_save *sv, uint8_t *p)
{
	int ret = 0;

	for (unsigned int i = 0; i < sv->nreads; i++) {
		struct save_read *r = &sv->reads[i];
		int err = tmem_tier_read_stored(sv->ctx, r->pool, r->object,
						r->index, r->h, p + r->off);

		TMEM_ADD(sv->st.disk_reads, 1);
		if (err && !ret)
			ret = err;
	}
	sv->nreads = 0;
	return ret;
}

/*
 * Walk from the cursor until the block is full or one sweep ended:
 * false when full.
 */
static bool walk(struct tmem_save *sv, struct wbuf *w, int *errp)
{
	struct tmem_client *c = sv->c;

	for (; sv->pool < c->max_pools; sv->pool++, sv->shard = 0) {
		struct tmem_shard *shards = tmem_pool_shards(c, sv->pool);

		for (; shards && sv->shard < TMEM_NR_SHARDS;
		     sv->shard++, sv->bucket = 0) {
			struct tmem_shard *sh = &shards[sv->shard];
			bool done;

			if (!TMEM_RD(sh->ndirty) && !TMEM_RD(sh->ntombs) &&
			    !TMEM_RD(sh->tomb_lost))
				continue;	/* a hint: the next sweep looks */
			pthread_mutex_lock(&sh->lock);
			done = put_shard(sv, sh, w);
			if (sh->tomb_lost)
				*errp = -ENOMEM;
			pthread_mutex_unlock(&sh->lock);
			if (*errp) {
				read_pinned(sv, w->p);
				return false;
			}
			sv->swept_any |= w->off != 0;
			*errp = read_pinned(sv, w->p);
			if (*errp || !done)
				return false;
		}
	}
	sv->pool = 0;
	sv->shard = 0;
	sv->bucket = 0;
	/* A sweep that found nothing to send is no pass. */
	if (sv->swept_any)
		TMEM_ADD(sv->st.sweeps, 1);
	sv->swept_any = false;
	return true;
}

static ssize_t seal(struct tmem_save *sv, uint8_t *buf, struct wbuf *w,
		    uint16_t flags)
{
	uint32_t v32;
	uint64_t v64;
	uint16_t v16;

	v32 = htole32(MIG_MAGIC);
	memcpy(buf, &v32, 4);
	v16 = htole16(TMEM_MIGRATE_VERSION);
	memcpy(buf + 4, &v16, 2);
	v16 = htole16(flags);
	memcpy(buf + 6, &v16, 2);
	v32 = htole32(sv->seq++);
	memcpy(buf + 8, &v32, 4);
	v32 = htole32((uint32_t)w->off);
	memcpy(buf + 12, &v32, 4);
	v64 = htole64(XXH3_64bits(w->p, w->off));
	memcpy(buf + 16, &v64, 8);
	memset(buf + 24, 0, 8);
	TMEM_ADD(sv->st.blocks, 1);
	TMEM_ADD(sv->st.bytes, MIG_HDR + w->off);
	return (ssize_t)(MIG_HDR + w->off);
}

static bool wbuf_init(struct wbuf *w, void *buf, size_t len)
{
	if (len < TMEM_MIGRATE_BLOCK_MIN)
		return false;
	if (len > TMEM_MIGRATE_BLOCK_MAX)
		len = TMEM_MIGRATE_BLOCK_MAX;
	w->p = (uint8_t *)buf + MIG_HDR;
	w->off = 0;
	w->cap = len - MIG_HDR;
	return true;
}

int tmem_save_start(struct tmem_client *c, struct tmem_save **savep)
{
	struct tmem_save *sv = tmem_zalloc_aligned(sizeof(*sv));
	int ret;

	if (!sv)
		return -ENOMEM;
	sv->c = c;
	sv->reads = tmem_malloc(MAX_READS * sizeof(*sv->reads));
	ret = sv->reads ? tmem_ctx_new(c, &sv->ctx) : -ENOMEM;
	if (ret) {
		tmem_free(sv->reads);
		tmem_free(sv);
		return ret;
	}
	pthread_mutex_lock(&c->save_lock);
	ret = c->saving ? -EBUSY : 0;
	if (!ret)
		tmem_client_track(c, true);
	pthread_mutex_unlock(&c->save_lock);
	if (ret) {
		tmem_ctx_free(sv->ctx);
		tmem_free(sv->reads);
		tmem_free(sv);
		return ret;
	}
	*savep = sv;
	return 0;
}

ssize_t tmem_save_block(struct tmem_save *sv, void *buf, size_t len)
{
	struct tmem_client *c = sv->c;
	struct wbuf w;
	int err = 0;

	if (!wbuf_init(&w, buf, len))
		return -EINVAL;
	if (sv->error)
		return sv->error;
	pthread_mutex_lock(&c->save_lock);
	if (!sv->table_sent || TMEM_RD(c->pools_changes) != sv->pools_sent)
		put_pools(sv, &w);
	/* A second sweep for what was marked behind the cursor. */
	for (int i = 0; i < 2 && walk(sv, &w, &err) && !w.off; i++)
		;
	pthread_mutex_unlock(&c->save_lock);
	if (err) {
		sv->error = err;
		return err;
	}
	return w.off ? seal(sv, buf, &w, 0) : 0;
}

uint64_t tmem_save_pending(struct tmem_save *sv)
{
	struct tmem_stats st;
	uint64_t keys = __atomic_load_n(&sv->c->track_pending,
					__ATOMIC_RELAXED);
	uint64_t per_page;

	/* Not during a reset, which frees the shards the stats read. */
	pthread_mutex_lock(&sv->c->save_lock);
	tmem_client_stats2(sv->c, &st, sizeof(st));
	pthread_mutex_unlock(&sv->c->save_lock);
	per_page = st.pages ? st.compressed_bytes / st.pages : 0;
	/* A chunk's record per 64 keys at most: its share is small. */
	return keys * (per_page + PAGE_REC + 1);
}

ssize_t tmem_save_end(struct tmem_save *sv, void *buf, size_t len)
{
	struct tmem_client *c = sv->c;
	uint64_t pages, bytes, eph;
	struct wbuf w;

	if (!wbuf_init(&w, buf, len))
		return -EINVAL;
	if (sv->error)
		return sv->error;
	pthread_mutex_lock(&c->save_lock);
	/*
	 * Counted first, then nothing marked: a change in between (a store
	 * of a queue still finishing) is sent first, not counted unsent.
	 */
	tmem_migrate_count(c, &pages, &bytes, &eph);
	if (__atomic_load_n(&c->track_pending, __ATOMIC_ACQUIRE)) {
		pthread_mutex_unlock(&c->save_lock);
		return -EAGAIN;
	}
	put_pools(sv, &w);
	put8(&w, R_END);
	put64(&w, pages);
	put64(&w, bytes);
	put64(&w, eph);
	pthread_mutex_unlock(&c->save_lock);
	return seal(sv, buf, &w, MIG_END);
}

void tmem_save_finish(struct tmem_save *sv)
{
	if (!sv)
		return;
	pthread_mutex_lock(&sv->c->save_lock);
	tmem_client_track(sv->c, false);
	pthread_mutex_unlock(&sv->c->save_lock);
	tmem_ctx_free(sv->ctx);
	tmem_free(sv->reads);
	tmem_free(sv);
}

void tmem_migrate_count(struct tmem_client *c, uint64_t *pages,
			uint64_t *bytes, uint64_t *eph)
{
	*pages = *bytes = *eph = 0;
	for (uint32_t id = 0; id < c->max_pools; id++) {
		struct tmem_shard *shards = tmem_pool_shards(c, id);
		bool ephemeral = TMEM_RD(c->pools[id].type) ==
				 TMEM_POOL_EPHEMERAL;

		for (unsigned int s = 0; shards && s < TMEM_NR_SHARDS; s++) {
			if (ephemeral) {
				*eph += TMEM_RD(shards[s].pages);
				continue;
			}
			*pages += TMEM_RD(shards[s].pages);
			*bytes += TMEM_RD(shards[s].compressed_bytes);
		}
	}
}

void tmem_migrate_stats_copy(const struct tmem_migrate_stats *src,
		       struct tmem_migrate_stats *dst)
{
	dst->blocks = TMEM_RD(src->blocks);
	dst->bytes = TMEM_RD(src->bytes);
	dst->pages = TMEM_RD(src->pages);
	dst->page_bytes = TMEM_RD(src->page_bytes);
	dst->drops = TMEM_RD(src->drops);
	dst->disk_reads = TMEM_RD(src->disk_reads);
	dst->sweeps = TMEM_RD(src->sweeps);
}

void tmem_save_stats(struct tmem_save *sv, struct tmem_migrate_stats *st)
{
	tmem_migrate_stats_copy(&sv->st, st);
}

