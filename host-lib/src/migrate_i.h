/* SPDX-License-Identifier: MIT */
/*
 * Migration of a client's pages (tmem_migrate.h): the stream format
 * that migrate_save.c writes and migrate_load.c reads.
 *
 * The source walks pool ids, their shards and each shard's table, and
 * writes what the index marked (index.c: a slot's change while the shard
 * tracks, a sent chunk freed) as records, under the shard's lock, as a
 * page operation takes it: a page is copied as stored; a page of the
 * disk tier has its segment pinned under the lock and is read after it,
 * into its place in the block.  A key changed after its record was
 * written is marked again and goes in a later block, so the last copy of
 * every key arrives last.  A pool's state changes bump its generation:
 * the destination drops what it had of an older one.
 *
 * A block (little-endian):
 *   header, TMEM_MIGRATE_HDR_SIZE bytes: magic "TMMG", u16 version,
 *     u16 flags (MIG_END), u32 sequence number (from 0), u32 length of
 *     the records, u64 XXH3-64 of the records, u64 reserved (0)
 *   records, each a u8 type and its fields:
 *     R_POOLS: u16 n, n x (u32 id, u32 gen, u8 state, u8 type)
 *     R_CHUNK: u32 pool, u32 gen, u8 type, u64 object, u32 base,
 *              u64 drops (slots now empty), u8 n,
 *              n x (u8 slot, u8 kind, u16 len, len bytes)
 *              kind K_LZ4 (1..4096 bytes), K_RAW (4096), K_SAME (u32
 *              word), K_WIDE (u64 word)
 *     R_TOMB:  u32 pool, u32 gen, u64 object, u32 base (64 keys gone)
 *     R_END:   u64 pages, u64 stored bytes (of persistent pools),
 *              u64 pages of ephemeral pools (not checked: evictable)
 */
#ifndef TMEM_MIGRATE_I_H
#define TMEM_MIGRATE_I_H

#include <stdint.h>

#include "tmem_i.h"

#define MIG_MAGIC		0x474d4d54u	/* "TMMG" read little-endian */
#define MIG_HDR		TMEM_MIGRATE_HDR_SIZE
#define MIG_END		1u

enum { R_POOLS = 1, R_CHUNK = 2, R_TOMB = 3, R_END = 4 };
enum { K_LZ4 = 1, K_RAW = 2, K_SAME = 3, K_WIDE = 4 };

#define POOL_REC	10
#define CHUNK_REC	31
#define PAGE_REC	4
#define TOMB_REC	21
#define END_REC		25
/* Disk tier reads one block may wait for (pinned segments). */
#define MAX_READS	4096

_Static_assert(TMEM_MIGRATE_BLOCK_MIN >= MIG_HDR + 3 + TMEM_MAX_POOLS *
	       POOL_REC + CHUNK_REC + PAGE_REC + TMEM_PAGE_SIZE,
	       "a block holds the pool table and one page");

/*
 * Pages and stored bytes of persistent pools, and pages of ephemeral
 * ones: what the end record says and the destination checks.
 */
void tmem_migrate_count(struct tmem_client *c, uint64_t *pages,
			uint64_t *bytes, uint64_t *eph);
/* A copy of @src, each field read atomically. */
void tmem_migrate_stats_copy(const struct tmem_migrate_stats *src,
			     struct tmem_migrate_stats *dst);

#endif /* TMEM_MIGRATE_I_H */
