/* SPDX-License-Identifier: MIT */
/*
 * The destination of a migration (tmem_migrate.h; the format:
 * migrate_i.h): every block checked (magic, version, sequence, length,
 * checksum) before a record of it applies; every field bounds-checked;
 * a pool's newer generation replaces what it had; pages are put in
 * slots as they arrive, charged to this client's budget.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

/* Header-only use of libxxhash, as index.c. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "migrate_i.h"

struct tmem_load {
	struct tmem_client *c;
	struct tmem_ctx *ctx;
	uint32_t seq;
	bool ended;
	int error;
	struct tmem_migrate_stats st;
	uint32_t *gen;			/* per pool id, as the stream said */
};

void tmem_load_stats(struct tmem_load *ld, struct tmem_migrate_stats *st)
{
	tmem_migrate_stats_copy(&ld->st, st);
}

/* A block being read: bounds checked at every field. */
struct rbuf {
	const uint8_t *p;
	size_t off, len;
	bool bad;
};

static const void *get(struct rbuf *r, size_t n)
{
	const void *v = r->p + r->off;

	if (r->bad || r->len - r->off < n) {
		r->bad = true;
		return NULL;
	}
	r->off += n;
	return v;
}

static uint8_t get8(struct rbuf *r)
{
	const uint8_t *v = get(r, 1);

	return v ? *v : 0;
}

static uint16_t get16(struct rbuf *r)
{
	const void *v = get(r, 2);
	uint16_t x = 0;

	if (v)
		memcpy(&x, v, 2);
	return le16toh(x);
}

static uint32_t get32(struct rbuf *r)
{
	const void *v = get(r, 4);
	uint32_t x = 0;

	if (v)
		memcpy(&x, v, 4);
	return le32toh(x);
}

static uint64_t get64(struct rbuf *r)
{
	const void *v = get(r, 8);
	uint64_t x = 0;

	if (v)
		memcpy(&x, v, 8);
	return le64toh(x);
}

ssize_t tmem_load_block_size(const void *hdr)
{
	const uint8_t *p = hdr;
	uint32_t magic, len;
	uint16_t version;

	memcpy(&magic, p, 4);
	memcpy(&version, p + 4, 2);
	memcpy(&len, p + 12, 4);
	if (le32toh(magic) != MIG_MAGIC || le16toh(version) != TMEM_MIGRATE_VERSION)
		return -EPROTO;
	len = le32toh(len);
	if (len > TMEM_MIGRATE_BLOCK_MAX - MIG_HDR)
		return -EBADMSG;
	return (ssize_t)(MIG_HDR + len);
}

int tmem_load_start(struct tmem_client *c, struct tmem_load **loadp)
{
	struct tmem_load *ld = tmem_zalloc_aligned(sizeof(*ld));
	int ret;

	if (!ld)
		return -ENOMEM;
	ld->c = c;
	ld->gen = tmem_zalloc_aligned(c->max_pools * sizeof(*ld->gen));
	ret = ld->gen ? tmem_ctx_new(c, &ld->ctx) : -ENOMEM;
	if (ret) {
		tmem_free(ld->gen);
		tmem_free(ld);
		return ret;
	}
	tmem_client_reset(c);
	*loadp = ld;
	return 0;
}

void tmem_load_finish(struct tmem_load *ld)
{
	if (!ld)
		return;
	tmem_ctx_free(ld->ctx);
	tmem_free(ld->gen);
	tmem_free(ld);
}

/*
 * Pool @id as of generation @gen: a newer generation than the one held
 * replaces it (its pages dropped).  1 when records of @gen apply, 0
 * when they are older (skipped), or -errno.
 */
static int pool_at(struct tmem_load *ld, uint32_t id, uint32_t gen,
		   uint8_t state, uint8_t type, struct tmem_why *why)
{
	int ret;

	if (id >= ld->c->max_pools && state == TMEM_POOL_FREE)
		return 0;		/* holds nothing: nothing to refuse */
	if (id >= ld->c->max_pools)
		return tmem_refuse(why, -ERANGE, "pool id %u of the stream is "
				   "beyond this client's max_pools (%u)", id,
				   ld->c->max_pools);
	if (state > TMEM_POOL_CLOSED || type > TMEM_POOL_EPHEMERAL || !gen)
		return tmem_refuse(why, -EBADMSG, "pool %u: state %u, type %u, "
				   "generation %u are not of a pool", id,
				   state, type, gen);
	if (gen < ld->gen[id])
		return 0;
	if (gen == ld->gen[id])
		return 1;
	ret = tmem_pool_apply(ld->c, id, state, type, gen);
	if (ret)
		return tmem_refuse(why, ret, "pool %u: %s", id,
				   ret == -ENOSPC ? "the budget cannot hold "
				   "its index" : "out of memory");
	ld->gen[id] = gen;
	return 1;
}

static int load_pools(struct tmem_load *ld, struct rbuf *r,
		      struct tmem_why *why)
{
	uint16_t n = get16(r);

	for (uint16_t i = 0; i < n && !r->bad; i++) {
		uint32_t id = get32(r), gen = get32(r);
		uint8_t state = get8(r), type = get8(r);
		int ret;

		if (r->bad)
			break;
		ret = pool_at(ld, id, gen, state, type, why);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int load_page(struct tmem_load *ld, uint32_t pool, uint64_t object,
		     uint32_t index, unsigned int kind, const uint8_t *data,
		     unsigned int len, struct tmem_why *why)
{
	struct tmem_stats st;
	uint64_t word = 0;
	unsigned int hk;
	int ret;

	switch (kind) {
	case K_LZ4:
		if (!len || len > TMEM_PAGE_SIZE)
			goto bad;
		hk = TMEM_H_LZ4;
		break;
	case K_RAW:
		if (len != TMEM_PAGE_SIZE)
			goto bad;
		hk = TMEM_H_RAW;
		break;
	case K_SAME:
		if (len != 4)
			goto bad;
		memcpy(&word, data, 4);
		word = le32toh((uint32_t)word);
		hk = TMEM_H_SAME;
		break;
	case K_WIDE:
		if (len != 8)
			goto bad;
		memcpy(&word, data, 8);
		word = le64toh(word);
		/* A wide word's halves differ: else it is not a wide slot. */
		if ((uint32_t)word == (uint32_t)(word >> 32))
			goto bad;
		hk = 0;
		break;
	default:
		goto bad;
	}
	ret = tmem_store_stored(ld->ctx, pool, object, index, hk, data, len,
				word);
	if (ret == -ENOSPC) {
		tmem_client_stats2(ld->c, &st, sizeof(st));
		return tmem_refuse(why, ret, "the budget (%llu bytes) cannot "
				   "hold the pages migrated: %llu bytes held "
				   "after %llu pages",
				   (unsigned long long)st.budget_bytes,
				   (unsigned long long)st.host_bytes,
				   (unsigned long long)st.pages);
	}
	if (ret)
		return tmem_refuse(why, ret, "pool %u: a page could not be "
				   "stored (%s)", pool, tmem_strerror(ret));
	TMEM_ADD(ld->st.pages, 1);
	TMEM_ADD(ld->st.page_bytes, len);
	return 0;
bad:
	return tmem_refuse(why, -EBADMSG, "pool %u, object %llu, index %u: "
			   "a page of kind %u and %u bytes", pool,
			   (unsigned long long)object, index, kind, len);
}

static int load_chunk(struct tmem_load *ld, struct rbuf *r,
		      struct tmem_why *why)
{
	uint32_t pool = get32(r), gen = get32(r);
	uint8_t type = get8(r);
	uint64_t object = get64(r);
	uint32_t base = get32(r);
	uint64_t drops = get64(r);
	uint8_t n = get8(r);
	int apply, ret;

	if (r->bad)
		return 0;
	if (base > UINT32_MAX >> TMEM_CHUNK_SHIFT)
		return tmem_refuse(why, -EBADMSG, "a chunk's base %u is beyond "
				   "32-bit indices", base);
	apply = pool_at(ld, pool, gen, TMEM_POOL_OPEN, type, why);
	if (apply < 0)
		return apply;
	for (uint32_t i = 0; apply && i < TMEM_CHUNK_PAGES; i++)
		if (drops & 1ull << i) {
			tmem_drop_key(ld->c, pool, object,
				      base << TMEM_CHUNK_SHIFT | i);
			TMEM_ADD(ld->st.drops, 1);
		}
	for (uint8_t i = 0; i < n; i++) {
		uint8_t slot = get8(r), kind = get8(r);
		uint16_t len = get16(r);
		const uint8_t *data = get(r, len);

		if (r->bad)
			return 0;
		if (slot >= TMEM_CHUNK_PAGES)
			return tmem_refuse(why, -EBADMSG, "a chunk's slot %u",
					   slot);
		if (!apply)
			continue;
		ret = load_page(ld, pool, object,
				base << TMEM_CHUNK_SHIFT | slot, kind, data,
				len, why);
		if (ret)
			return ret;
	}
	return 0;
}

static int load_tomb(struct tmem_load *ld, struct rbuf *r,
		     struct tmem_why *why)
{
	uint32_t pool = get32(r), gen = get32(r);
	uint64_t object = get64(r);
	uint32_t base = get32(r);

	if (r->bad)
		return 0;
	if (pool >= ld->c->max_pools || base > UINT32_MAX >> TMEM_CHUNK_SHIFT)
		return tmem_refuse(why, -EBADMSG, "a tombstone of pool %u, "
				   "base %u", pool, base);
	/* Of another generation: that pool was dropped or is not here yet. */
	if (gen != ld->gen[pool])
		return 0;
	for (uint32_t i = 0; i < TMEM_CHUNK_PAGES; i++)
		tmem_drop_key(ld->c, pool, object,
			      base << TMEM_CHUNK_SHIFT | i);
	TMEM_ADD(ld->st.drops, 1);
	return 0;
}

static int load_end(struct tmem_load *ld, struct rbuf *r,
		    struct tmem_why *why)
{
	uint64_t pages = get64(r), bytes = get64(r);
	uint64_t have_pages, have_bytes, have_eph;

	(void)get64(r);		/* ephemeral pages: evictable, not checked */
	if (r->bad)
		return 0;
	tmem_migrate_count(ld->c, &have_pages, &have_bytes, &have_eph);
	if (have_pages != pages || have_bytes != bytes)
		return tmem_refuse(why, -EBADMSG, "the stream ends with %llu "
				   "pages of %llu bytes in persistent pools, "
				   "but %llu pages of %llu bytes arrived",
				   (unsigned long long)pages,
				   (unsigned long long)bytes,
				   (unsigned long long)have_pages,
				   (unsigned long long)have_bytes);
	ld->ended = true;
	return 0;
}

/* The header of a block: 0 and the records' length, or -errno. */
static int check_header(struct tmem_load *ld, const uint8_t *buf, size_t len,
			uint16_t *flagsp, struct tmem_why *why)
{
	ssize_t size;
	uint32_t magic, seq;
	uint16_t version, flags;
	uint64_t check, reserved;

	if (len < MIG_HDR)
		return tmem_refuse(why, -EBADMSG, "a block of %zu bytes is "
				   "shorter than its header (%d)", len, MIG_HDR);
	memcpy(&magic, buf, 4);
	memcpy(&version, buf + 4, 2);
	memcpy(&flags, buf + 6, 2);
	memcpy(&seq, buf + 8, 4);
	memcpy(&check, buf + 16, 8);
	memcpy(&reserved, buf + 24, 8);
	if (le32toh(magic) != MIG_MAGIC)
		return tmem_refuse(why, -EPROTO, "not a virtio-tmem migration "
				   "stream (magic %#x)", le32toh(magic));
	if (le16toh(version) != TMEM_MIGRATE_VERSION)
		return tmem_refuse(why, -EPROTO, "stream format version %u; "
				   "this libtmem reads version %d",
				   le16toh(version), TMEM_MIGRATE_VERSION);
	size = tmem_load_block_size(buf);
	if (size < 0 || (size_t)size != len)
		return tmem_refuse(why, -EBADMSG, "a block of %zu bytes says "
				   "it has %zd", len, size);
	if (le32toh(seq) != ld->seq)
		return tmem_refuse(why, -EBADMSG, "block %u where block %u "
				   "was due (lost or reordered)",
				   le32toh(seq), ld->seq);
	if (le64toh(check) != XXH3_64bits(buf + MIG_HDR, len - MIG_HDR) || reserved)
		return tmem_refuse(why, -EBADMSG, "block %u: checksum "
				   "mismatch (corrupted)", ld->seq);
	*flagsp = le16toh(flags);
	return 0;
}

int tmem_load_block(struct tmem_load *ld, const void *buf, size_t len,
		    char *errbuf, size_t errlen)
{
	struct tmem_why why = { .buf = errbuf, .len = errlen };
	struct rbuf r = { .p = (const uint8_t *)buf + MIG_HDR };
	uint16_t flags = 0;
	int ret;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (ld->error || ld->ended)
		return tmem_refuse(&why, -EINVAL, "the stream %s already",
				   ld->ended ? "ended" : "failed");
	ret = check_header(ld, buf, len, &flags, &why);
	r.len = len >= MIG_HDR ? len - MIG_HDR : 0;
	while (!ret && r.off < r.len && !r.bad) {
		switch (get8(&r)) {
		case R_POOLS:
			ret = load_pools(ld, &r, &why);
			break;
		case R_CHUNK:
			ret = load_chunk(ld, &r, &why);
			break;
		case R_TOMB:
			ret = load_tomb(ld, &r, &why);
			break;
		case R_END:
			ret = load_end(ld, &r, &why);
			break;
		default:
			ret = tmem_refuse(&why, -EBADMSG, "block %u: record "
					  "type %u at byte %zu", ld->seq,
					  r.p[r.off - 1], r.off - 1);
		}
		if (!ret && ld->ended && r.off < r.len)
			ret = tmem_refuse(&why, -EBADMSG, "bytes after the "
					  "stream's end");
	}
	if (!ret && r.bad)
		ret = tmem_refuse(&why, -EBADMSG, "block %u: a record runs "
				  "past the block's end", ld->seq);
	if (!ret && ld->ended != !!(flags & MIG_END))
		ret = tmem_refuse(&why, -EBADMSG, "block %u: the end record "
				  "and the end flag disagree", ld->seq);
	if (ret) {
		ld->error = ret;
		return ret;
	}
	ld->seq++;
	TMEM_ADD(ld->st.blocks, 1);
	TMEM_ADD(ld->st.bytes, len);
	return ld->ended;
}
