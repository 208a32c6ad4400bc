/* SPDX-License-Identifier: MIT */
/*
 * Clients, contexts, pools, statistics.
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include <lz4.h>

#include "virtio_tmem.h"
#include "tier_i.h"
#include "tmem_i.h"

#define SHARDS_SIZE	TMEM_SHARDS_SIZE
#define SHARDS_COST	TMEM_SHARDS_COST

/* The 0.1 layouts are frozen: a field added later goes after them. */
_Static_assert(offsetof(struct tmem_client_config, reserved0) == 20 &&
	       offsetof(struct tmem_client_config, backing_file) == 24,
	       "reserved0 is the 0.1 layout's hole, nothing more");
_Static_assert(sizeof(struct tmem_client_config) >= TMEM_CONFIG_SIZE_VER0 &&
	       offsetof(struct tmem_client_config, reserved) + 2 ==
	       TMEM_CONFIG_SIZE_VER0, "struct tmem_client_config VER0");
_Static_assert(offsetof(struct tmem_client_config, reserved2) + 4 ==
	       TMEM_CONFIG_SIZE_VER1, "struct tmem_client_config VER1");
_Static_assert(sizeof(struct tmem_client_config) == TMEM_CONFIG_SIZE_VER2 &&
	       offsetof(struct tmem_client_config, rados_keyring) + 8 ==
	       TMEM_CONFIG_SIZE_VER2, "struct tmem_client_config VER2");
_Static_assert(offsetof(struct tmem_stats, disk_failed) + 8 ==
	       TMEM_STATS_SIZE_VER0, "struct tmem_stats VER0");
_Static_assert(sizeof(struct tmem_stats) == TMEM_STATS_SIZE_VER1 &&
	       offsetof(struct tmem_stats, disk_full) + 8 ==
	       TMEM_STATS_SIZE_VER1, "struct tmem_stats VER1");

/*
 * The caller's configuration of @size bytes into @cfg, as the kernel's
 * copy_struct_from_user() does it: a shorter one leaves our later fields
 * 0, a longer one must have nothing but zeroes where we know no field.
 */
static int config_in(struct tmem_client_config *cfg,
		     const struct tmem_client_config *ucfg, size_t size,
		     struct tmem_why *why)
{
	const unsigned char *tail = (const unsigned char *)ucfg;

	if (!ucfg)
		return tmem_refuse(why, -EINVAL, "no configuration (NULL)");
	if (size < TMEM_CONFIG_SIZE_VER0)
		return tmem_refuse(why, -EINVAL, "the configuration's size, %zu "
				   "bytes, is below TMEM_CONFIG_SIZE_VER0 (%d)",
				   size, TMEM_CONFIG_SIZE_VER0);
	for (size_t i = sizeof(*cfg); i < size; i++)
		if (tail[i])
			return tmem_refuse(why, -E2BIG, "the configuration has "
					   "%zu bytes and byte %zu is not 0, but "
					   "this libtmem knows only %zu (a "
					   "field of a newer tmem.h)",
					   size, i, sizeof(*cfg));
	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg, ucfg, size < sizeof(*cfg) ? size : sizeof(*cfg));
	return 0;
}

/* A disk tier setting without a tier is a mistake, not a no-op. */
static int tier_fields_unused(const struct tmem_client_config *cfg,
			      struct tmem_why *why)
{
	const char *field = cfg->backing_size ? "backing_size" :
			    cfg->segment_size ? "segment_size" :
			    cfg->writeback_high ? "writeback_high" :
			    cfg->writeback_low ? "writeback_low" :
			    cfg->rados_namespace ? "rados_namespace" :
			    cfg->rados_conf ? "rados_conf" :
			    cfg->rados_user ? "rados_user" :
			    cfg->rados_keyring ? "rados_keyring" : NULL;

	if (field)
		return tmem_refuse(why, -EINVAL, "%s needs a disk tier: set "
				   "backing_file%s too", field,
				   !strncmp(field, "rados", 5) ? " or rados_pool" :
				   "");
	return 0;
}

static int config_check(const struct tmem_client_config *cfg,
			struct tmem_why *why)
{
	if (!cfg->budget_bytes)
		return tmem_refuse(why, -EINVAL, "budget_bytes must be set to "
				   "more than 0 bytes");
	if (cfg->max_pools > TMEM_MAX_POOLS)
		return tmem_refuse(why, -EINVAL, "max_pools %u is over the "
				   "limit of %d (0 selects %d)", cfg->max_pools,
				   TMEM_MAX_POOLS, TMEM_DEFAULT_MAX_POOLS);
	if (cfg->compress_threshold > TMEM_PAGE_SIZE)
		return tmem_refuse(why, -EINVAL, "compress_threshold %u is over "
				   "the page size, %d bytes (0 selects %d)",
				   cfg->compress_threshold, TMEM_PAGE_SIZE,
				   TMEM_DEFAULT_COMPRESS_THRESHOLD);
	if (cfg->room_wait_ms > TMEM_MAX_ROOM_WAIT_MS)
		return tmem_refuse(why, -EINVAL, "room_wait_ms %u is over the "
				   "limit of %d ms (0 selects %d)",
				   cfg->room_wait_ms, TMEM_MAX_ROOM_WAIT_MS,
				   TMEM_DEFAULT_ROOM_WAIT_MS);
	if (cfg->incompressible != TMEM_INCOMPRESSIBLE_RAW &&
	    cfg->incompressible != TMEM_INCOMPRESSIBLE_REJECT)
		return tmem_refuse(why, -EINVAL, "incompressible %d is neither "
				   "TMEM_INCOMPRESSIBLE_RAW nor "
				   "TMEM_INCOMPRESSIBLE_REJECT",
				   (int)cfg->incompressible);
	if (cfg->reserved0 || cfg->reserved || cfg->reserved2)
		return tmem_refuse(why, -EINVAL, "%s must be 0, not %u",
				   cfg->reserved0 ? "reserved0" :
				   cfg->reserved ? "reserved" : "reserved2",
				   cfg->reserved0 ? cfg->reserved0 :
				   cfg->reserved ? cfg->reserved :
				   cfg->reserved2);
	if (cfg->backing_file && cfg->rados_pool)
		return tmem_refuse(why, -EINVAL, "rados_pool %s and backing_file "
				   "%s: one disk tier, a file or a pool, not "
				   "both", cfg->rados_pool, cfg->backing_file);
	if (!cfg->backing_file && !cfg->rados_pool)
		return tier_fields_unused(cfg, why);
	return tmem_tier_config_check(cfg, why);
}

/* The index's hash seed: a guest must not be able to guess it. */
static int seed_draw(struct tmem_client *c)
{
	ssize_t n;

	do {
		n = getrandom(&c->hash_seed, sizeof(c->hash_seed), 0);
	} while (n < 0 && errno == EINTR);
	return n == sizeof(c->hash_seed) ? 0 : n < 0 ? -errno : -EIO;
}

static int client_new(const struct tmem_client_config *cfg,
		      struct tmem_client **clientp, struct tmem_why *why)
{
	struct tmem_client *c;
	int ret = config_check(cfg, why);

	if (ret)
		return ret;
	c = tmem_zalloc_aligned(sizeof(*c));
	if (!c)
		return tmem_refuse(why, -ENOMEM, "out of memory");
	c->cfg = *cfg;
	tmem_budget_set_limit(&c->budget, cfg->budget_bytes);
	ret = seed_draw(c);
	if (ret) {
		tmem_free(c);
		return tmem_refuse(why, ret, "getrandom() for the index's hash "
				   "seed: %s", strerror(-ret));
	}
	if (!c->cfg.max_pools)
		c->cfg.max_pools = TMEM_DEFAULT_MAX_POOLS;
	if (!c->cfg.compress_threshold)
		c->cfg.compress_threshold = TMEM_DEFAULT_COMPRESS_THRESHOLD;
	if (!c->cfg.room_wait_ms)
		c->cfg.room_wait_ms = TMEM_DEFAULT_ROOM_WAIT_MS;
	c->max_pools = c->cfg.max_pools;
	c->pools = tmem_zalloc_aligned(c->max_pools * sizeof(*c->pools));
	if (!c->pools) {
		tmem_free(c);
		return tmem_refuse(why, -ENOMEM, "out of memory");
	}
	pthread_mutex_init(&c->pools_lock, NULL);
	pthread_mutex_init(&c->ctx_lock, NULL);
	pthread_mutex_init(&c->compact_lock, NULL);
	pthread_mutex_init(&c->save_lock, NULL);
	tmem_zs_init(&c->zs, &c->budget);
	ret = tmem_tier_new(c, why);
	/* The names are the caller's: only tmem_tier_new() reads them. */
	c->cfg.backing_file = NULL;
	c->cfg.rados_pool = c->cfg.rados_namespace = NULL;
	c->cfg.rados_conf = c->cfg.rados_user = c->cfg.rados_keyring = NULL;
	if (ret) {
		tmem_client_free(c);
		return ret;
	}
	*clientp = c;
	return 0;
}

int tmem_client_new2(const struct tmem_client_config *ucfg, size_t cfg_size,
		     struct tmem_client **clientp, char *errbuf, size_t errlen)
{
	struct tmem_why why = { .buf = errbuf, .len = errlen };
	struct tmem_client_config cfg;
	int ret;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	ret = config_in(&cfg, ucfg, cfg_size, &why);
	if (ret)
		return ret;
	return client_new(&cfg, clientp, &why);
}

/*
 * LIBTMEM_0.1's callers did not know of @reserved: theirs is padding,
 * whatever bytes it holds.
 */
int tmem_client_new(const struct tmem_client_config *ucfg,
		    struct tmem_client **clientp)
{
	struct tmem_client_config cfg;
	int ret = config_in(&cfg, ucfg, TMEM_CONFIG_SIZE_VER0, NULL);

	if (ret)
		return ret;
	/* Padding in 0.1's tmem.h: whatever the caller's stack held. */
	cfg.reserved0 = 0;
	cfg.reserved = 0;
	return client_new(&cfg, clientp, NULL);
}

unsigned int tmem_version_number(void)
{
	return TMEM_VERSION_NUMBER;
}

/* Free a pool's shards; no other call may be in progress. */
static void pool_teardown(struct tmem_client *c, struct tmem_pool *pool)
{
	const struct tmem_drop drop = tmem_client_drop(c);

	if (pool->shards) {
		tmem_shards_fini(&c->budget, pool->shards, &drop);
		tmem_free(pool->shards);
		tmem_uncharge(&c->budget, 0, SHARDS_COST);
		pool->shards = NULL;
	}
	/* A save running across a reset: the destination drops the pool. */
	if (pool->state != TMEM_POOL_FREE) {
		pool->gen++;
		c->pools_changes++;
	}
	pool->state = TMEM_POOL_FREE;
}

static void ops_clear(struct tmem_ops *ops)
{
	uint64_t *v = (uint64_t *)ops;

	for (size_t i = 0; i < sizeof(*ops) / sizeof(*v); i++)
		TMEM_WR(v[i], 0);
}

/* Free every pool, page, spare chunk and arena; counters to zero. */
static void client_drop_all(struct tmem_client *c)
{
	for (uint32_t i = 0; i < c->max_pools; i++)
		pool_teardown(c, &c->pools[i]);
	for (struct tmem_ctx *ctx = c->ctxs; ctx; ctx = ctx->next) {
		tmem_async_drop(ctx);
		tmem_chunk_free(&c->budget, ctx->spare);
		ctx->spare = NULL;
		tmem_obj_free(&c->budget, ctx->spare_obj);
		ctx->spare_obj = NULL;
		ops_clear(&ctx->ops);
	}
	ops_clear(&c->retired);
	TMEM_WR(c->written_back, 0);
	TMEM_WR(c->reclaim_evictions, 0);
	tmem_zs_fini(&c->zs);
}

/*
 * As new: the configuration stays, but the negotiated features go, as a
 * virtio device reset drops them; the device sets them again.
 */
int tmem_client_reset(struct tmem_client *c)
{
	int ret;

	/*
	 * A save's block in another thread ends first (migrate_save.c);
	 * the tier stops before, so that a read of a hung disk the block
	 * waits for ends too.
	 */
	tmem_tier_stop(c);
	pthread_mutex_lock(&c->save_lock);
	client_drop_all(c);
	tmem_zs_init(&c->zs, &c->budget);
	c->compacted_freed = 0;
	c->compact_cursor = 0;
	c->compact_credit = 0;
	TMEM_WR(c->features, 0);
	ret = tmem_tier_restart(c);
	pthread_mutex_unlock(&c->save_lock);
	return ret;
}

void tmem_client_free(struct tmem_client *c)
{
	if (!c)
		return;
	tmem_tier_stop(c);
	client_drop_all(c);
	tmem_tier_free(c);
	/* Contexts still alive are detached; tmem_ctx_free() frees them. */
	for (struct tmem_ctx *ctx = c->ctxs; ctx; ctx = ctx->next)
		ctx->client = NULL;
	pthread_mutex_destroy(&c->pools_lock);
	pthread_mutex_destroy(&c->ctx_lock);
	pthread_mutex_destroy(&c->compact_lock);
	pthread_mutex_destroy(&c->save_lock);
	tmem_free(c->pools);
	tmem_free(c);
}

void tmem_client_release_backing(struct tmem_client *c)
{
	tmem_tier_release(c);
}

int tmem_client_set_features(struct tmem_client *c, uint64_t features)
{
	TMEM_WR(c->features, features);
	return 0;
}

int tmem_ctx_new(struct tmem_client *c, struct tmem_ctx **ctxp)
{
	struct tmem_ctx *ctx = tmem_zalloc_aligned(sizeof(*ctx));

	if (!ctx)
		return -ENOMEM;
	ctx->client = c;
	ctx->cbuf = tmem_malloc(LZ4_COMPRESSBOUND(TMEM_PAGE_SIZE));
	ctx->page = ctx->cbuf ? tmem_malloc(TMEM_PAGE_SIZE) : NULL;
	ctx->efd = ctx->page ? eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC) : -1;
	if (ctx->efd < 0) {
		int ret = ctx->page ? -errno : -ENOMEM;

		tmem_free(ctx->page);
		tmem_free(ctx->cbuf);
		tmem_free(ctx);
		return ret;
	}
	pthread_mutex_lock(&c->ctx_lock);
	ctx->next = c->ctxs;
	if (c->ctxs)
		c->ctxs->prev = ctx;
	c->ctxs = ctx;
	pthread_mutex_unlock(&c->ctx_lock);
	*ctxp = ctx;
	return 0;
}

/*
 * A pending request's tier state goes (its read waited for, its timer
 * disarmed); the wire layer's part is only the op.
 */
void tmem_async_drop(struct tmem_ctx *ctx)
{
	if (ctx->req.op == VIRTIO_TMEM_OP_LOAD)
		tmem_tier_read_cancel(ctx);
	else if (ctx->req.op)
		tmem_tier_timer(ctx, 0);
	tmem_tier_unwait(ctx);
	ctx->req.op = 0;
	ctx->stuck = false;
}

int tmem_ctx_completion_fd(struct tmem_ctx *ctx)
{
	return ctx->efd;
}

static void ops_fold(struct tmem_ops *dst, const struct tmem_ops *src)
{
	uint64_t *d = (uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;

	for (size_t i = 0; i < sizeof(*dst) / sizeof(*d); i++)
		__atomic_fetch_add(&d[i], TMEM_RD(s[i]), __ATOMIC_RELAXED);
}

void tmem_ctx_free(struct tmem_ctx *ctx)
{
	struct tmem_client *c;

	if (!ctx)
		return;
	c = ctx->client;
	if (c) {
		tmem_async_drop(ctx);
		pthread_mutex_lock(&c->ctx_lock);
		if (ctx->prev)
			ctx->prev->next = ctx->next;
		else
			c->ctxs = ctx->next;
		if (ctx->next)
			ctx->next->prev = ctx->prev;
		ops_fold(&c->retired, &ctx->ops);
		pthread_mutex_unlock(&c->ctx_lock);
		tmem_chunk_free(&c->budget, ctx->spare);
		tmem_obj_free(&c->budget, ctx->spare_obj);
	}
	tmem_tier_ctx_free(ctx);
	close(ctx->efd);
	tmem_free(ctx->page);
	tmem_free(ctx->cbuf);
	tmem_free(ctx);
}

/* Shards are never freed while the client is in use: no lock needed. */
static void stats_pool(struct tmem_client *c, uint32_t id,
		       struct tmem_stats *st)
{
	struct tmem_shard *shards = tmem_pool_shards(c, id);

	if (TMEM_RD(c->pools[id].state) != TMEM_POOL_FREE)
		st->pools++;
	for (unsigned int s = 0; shards && s < TMEM_NR_SHARDS; s++) {
		struct tmem_shard *sh = &shards[s];

		st->pages += TMEM_RD(sh->pages);
		st->same_filled_pages += TMEM_RD(sh->same_filled);
		st->raw_pages += TMEM_RD(sh->raw);
		st->compressed_bytes += TMEM_RD(sh->compressed_bytes);
		st->disk_pages += TMEM_RD(sh->disk_pages);
		st->disk_bytes += TMEM_RD(sh->disk_bytes);
	}
}

static void stats_ops(struct tmem_stats *st, const struct tmem_ops *ops)
{
	st->succ_stores += TMEM_RD(ops->succ_stores);
	st->failed_stores_budget += TMEM_RD(ops->failed_budget);
	st->failed_stores_incompressible +=
		TMEM_RD(ops->failed_incompressible);
	st->failed_stores_other += TMEM_RD(ops->failed_other);
	st->loads += TMEM_RD(ops->loads);
	st->load_misses += TMEM_RD(ops->load_misses);
	st->invalidates += TMEM_RD(ops->invalidates);
	st->evictions += TMEM_RD(ops->evictions);
}

static void client_stats(struct tmem_client *c, struct tmem_stats *st)
{
	memset(st, 0, sizeof(*st));
	for (uint32_t i = 0; i < c->max_pools; i++)
		stats_pool(c, i, st);
	pthread_mutex_lock(&c->ctx_lock);
	stats_ops(st, &c->retired);
	for (struct tmem_ctx *ctx = c->ctxs; ctx; ctx = ctx->next)
		stats_ops(st, &ctx->ops);
	pthread_mutex_unlock(&c->ctx_lock);
	st->failed_stores = st->failed_stores_budget +
			    st->failed_stores_incompressible +
			    st->failed_stores_other;
	st->data_bytes = atomic_load(&c->budget.data_bytes);
	st->meta_bytes = atomic_load(&c->budget.meta_bytes);
	st->written_back = TMEM_RD(c->written_back);
	st->evictions += TMEM_RD(c->reclaim_evictions);
	st->host_bytes = st->data_bytes + st->meta_bytes;
	/*
	 * The limit after the bytes: only a lowered budget puts host_bytes
	 * over it, so a grow in between cannot look like a shrink.
	 */
	st->budget_bytes = tmem_budget_limit(&c->budget);
	st->shrinking = st->host_bytes > st->budget_bytes;
	tmem_tier_stats(c, st);
}

/* Only the caller's @size bytes are written; ours beyond them are lost. */
int tmem_client_stats2(struct tmem_client *c, struct tmem_stats *ust,
		       size_t size)
{
	struct tmem_stats st;

	if (size < TMEM_STATS_SIZE_VER0)
		return -EINVAL;
	client_stats(c, &st);
	if (size > sizeof(st)) {
		memset((char *)ust + sizeof(st), 0, size - sizeof(st));
		size = sizeof(st);
	}
	memcpy(ust, &st, size);
	return 0;
}

int tmem_client_stats(struct tmem_client *c, struct tmem_stats *st)
{
	return tmem_client_stats2(c, st, TMEM_STATS_SIZE_VER0);
}

const char *tmem_strerror(int err)
{
	if (err >= 0)
		return "success";
	switch (-err) {
	case EINVAL:	return "EINVAL: invalid argument";
	case ENOMEM:	return "ENOMEM: host out of memory";
	case ENOSPC:	return "ENOSPC: over budget or no free pool";
	case E2BIG:	return "E2BIG: incompressible page";
	case ESHUTDOWN:	return "ESHUTDOWN: pool invalidated";
	case EBADF:	return "EBADF: no such pool";
	case ENOENT:	return "ENOENT: page not held";
	case EIO:	return "EIO: stored page unreadable";
	case EPROTO:	return "EPROTO: malformed descriptor chain";
	case EBUSY:	return "EBUSY: backing file in use by another client";
	case ELOOP:	return "ELOOP: backing file is a symbolic link";
	case EPERM:	return "EPERM: backing file not private to this user";
	default:	return "unknown error";
	}
}
