/* SPDX-License-Identifier: MIT */
/*
 * The disk tier of a build without liburing (meson picks this file
 * instead of tier_*.c): a client with a backing file is refused with
 * -ENOTSUP, so no disk handle exists and the rest is never reached.
 */
#include <errno.h>

#include "tier_i.h"
#include "tmem_i.h"

int tmem_tier_config_check(const struct tmem_client_config *cfg,
			   struct tmem_why *why)
{
	if (cfg->rados_pool)
		return tmem_refuse(why, -ENOTSUP, "rados_pool %s: libtmem built "
				   "without disk tier support (no liburing)",
				   cfg->rados_pool);
	return tmem_refuse(why, -ENOTSUP, "backing_file %s: libtmem built "
			   "without disk tier support (no liburing)",
			   cfg->backing_file);
}

int tmem_tier_new(struct tmem_client *c, struct tmem_why *why)
{
	(void)why;
	return c->cfg.backing_file || c->cfg.rados_pool ? -ENOTSUP : 0;
}

void tmem_tier_stop(struct tmem_client *c) { (void)c; }
int tmem_tier_restart(struct tmem_client *c) { (void)c; return 0; }
void tmem_tier_free(struct tmem_client *c) { (void)c; }
void tmem_tier_release(struct tmem_client *c) { (void)c; }

void tmem_tier_put(struct tmem_tier *t, uint64_t off, unsigned int len)
{
	(void)t; (void)off; (void)len;
}

void tmem_tier_pin(struct tmem_tier *t, uint64_t off) { (void)t; (void)off; }

int tmem_tier_read(struct tmem_ctx *ctx, uint32_t pool, uint64_t object,
		   uint32_t index, uint64_t h, void *page)
{
	(void)ctx; (void)pool; (void)object; (void)index; (void)h; (void)page;
	return -EIO;
}

int tmem_tier_read_stored(struct tmem_ctx *ctx, uint32_t pool,
			  uint64_t object, uint32_t index, uint64_t h,
			  void *dst)
{
	return tmem_tier_read(ctx, pool, object, index, h, dst);
}

bool tmem_tier_make_room(struct tmem_ctx *ctx) { (void)ctx; return false; }
void tmem_tier_kick(struct tmem_client *c) { (void)c; }
void tmem_tier_ctx_free(struct tmem_ctx *ctx) { (void)ctx; }

void tmem_tier_stats(struct tmem_client *c, struct tmem_stats *st)
{
	(void)c; (void)st;
}

uint64_t tmem_tier_fixed_bytes(struct tmem_client *c) { (void)c; return 0; }
void tmem_tier_set_budget(struct tmem_client *c) { (void)c; }
bool tmem_tier_reclaim(struct tmem_client *c) { (void)c; return false; }

int tmem_client_inject_io_error(struct tmem_client *c, unsigned int ops,
				int err)
{
	(void)c; (void)ops; (void)err;
	return -ENODEV;
}

int tmem_tier_read_poll(struct tmem_ctx *ctx) { (void)ctx; return -EIO; }
void tmem_tier_read_cancel(struct tmem_ctx *ctx) { (void)ctx; }
bool tmem_tier_room_ready(struct tmem_ctx *ctx) { (void)ctx; return true; }
bool tmem_tier_writer_in_io(struct tmem_client *c) { (void)c; return false; }
void tmem_tier_unwait(struct tmem_ctx *ctx) { (void)ctx; }

int tmem_tier_timer(struct tmem_ctx *ctx, uint64_t deadline_ns)
{
	(void)ctx; (void)deadline_ns;
	return -ENOTSUP;
}

int tmem_client_inject_io_hang(struct tmem_client *c, unsigned int ops)
{
	(void)c; (void)ops;
	return -ENODEV;
}
