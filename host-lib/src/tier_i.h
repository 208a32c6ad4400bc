/* SPDX-License-Identifier: MIT */
/*
 * The disk tier as the layers above it see it: its life cycle (client
 * layer), and the read path, room and wake-up calls of the page
 * operations.  Built from tier_*.c with liburing, from tier_none.c
 * without (where a backing file is refused with -ENOTSUP).
 *
 * Lock order: shard -> tier lock; the tier never takes a shard lock
 * while it holds its own.
 */
#ifndef TMEM_TIER_I_H
#define TMEM_TIER_I_H

#include <stdbool.h>
#include <stdint.h>

#include "tier_space_i.h"
#include "why_i.h"

struct tmem_client;
struct tmem_client_config;
struct tmem_ctx;
struct tmem_stats;

/* A configuration with a backing_file: 0, or -errno and why. */
int tmem_tier_config_check(const struct tmem_client_config *cfg,
			   struct tmem_why *why);
/* Open the backing file and start the writer; no-op without one. */
int tmem_tier_new(struct tmem_client *c, struct tmem_why *why);
/* Stop the writer and wait for its I/O: before dropping all pages. */
void tmem_tier_stop(struct tmem_client *c);
/* After every page was dropped: all segments free, counters 0, restart. */
int tmem_tier_restart(struct tmem_client *c);
void tmem_tier_free(struct tmem_client *c);
/* Stop the writer, remove or discard the file now. */
void tmem_tier_release(struct tmem_client *c);
/*
 * Read a pinned (tmem_tier_pin()) disk handle's page of key (@pool,
 * @object, @index) back and unpin it; 0, or -EIO (unreadable, or what
 * was read is not that key's page: checksum or key mismatch).  With
 * ctx->nowait, a read it had to issue makes it answer -EINPROGRESS:
 * tmem_tier_read_poll() finishes it.
 */
int tmem_tier_read(struct tmem_ctx *ctx, uint32_t pool, uint64_t object,
		   uint32_t index, uint64_t h, void *page);
/*
 * tmem_tier_read() of the page's stored bytes, not decoded: the
 * tmem_h_len(@h) bytes into @dst, waiting for the read (migration).
 */
int tmem_tier_read_stored(struct tmem_ctx *ctx, uint32_t pool,
			  uint64_t object, uint32_t index, uint64_t h,
			  void *dst);
/* The nowait load's read: -EINPROGRESS, or tmem_tier_read()'s result. */
int tmem_tier_read_poll(struct tmem_ctx *ctx);
void tmem_tier_read_cancel(struct tmem_ctx *ctx);
/*
 * A store found the budget full: wait for write-back; false if none.
 * With ctx->nowait it only asks (ctx->room_wait, and the context is
 * woken after the writer's next pass) and returns false.
 */
bool tmem_tier_make_room(struct tmem_ctx *ctx);
/* A nowait store's room: the writer finished a pass, or never will. */
bool tmem_tier_room_ready(struct tmem_ctx *ctx);
/* The writer waits for its own I/O (not merely slow at its work). */
bool tmem_tier_writer_in_io(struct tmem_client *c);
/* Arm the context's timer at @deadline_ns (0: disarm); 0 or -errno. */
int tmem_tier_timer(struct tmem_ctx *ctx, uint64_t deadline_ns);
/* The context no longer waits for the tier: it is not woken any more. */
void tmem_tier_unwait(struct tmem_ctx *ctx);
/* A store went over the high watermark: wake the writer. */
void tmem_tier_kick(struct tmem_client *c);
void tmem_tier_ctx_free(struct tmem_ctx *ctx);
void tmem_tier_stats(struct tmem_client *c, struct tmem_stats *st);

/* Elastic memory (elastic.c). */
/* Bytes charged for the tier's buffers and tables: never reclaimed. */
uint64_t tmem_tier_fixed_bytes(struct tmem_client *c);
/*
 * The budget changed: the watermarks follow it (the same percentages),
 * and the writer is woken to try again.
 */
void tmem_tier_set_budget(struct tmem_client *c);
/*
 * Over budget: wake the writer if it can write back; true when it can
 * make progress (not failed, not full, not stalled, and persistent
 * pages in memory with data to write).  Never waits for it.
 */
bool tmem_tier_reclaim(struct tmem_client *c);

#endif /* TMEM_TIER_I_H */
