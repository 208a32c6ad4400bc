/* SPDX-License-Identifier: MIT */
/*
 * Compaction (compact.c), a client of the index's iterator: called by a
 * store that is over budget and by the disk tier's writer, holding no
 * lock.  Returns true if at least one slab went back to the system.
 */
#ifndef TMEM_COMPACT_I_H
#define TMEM_COMPACT_I_H

#include <stdbool.h>

struct tmem_client;
struct tmem_ctx;

bool tmem_compact(struct tmem_client *c);
/*
 * @ctx freed a page's slot (invalidated or replaced): now and then this
 * compacts one shard, holding no lock on entry.
 */
void tmem_compact_freed(struct tmem_ctx *ctx);

#endif /* TMEM_COMPACT_I_H */
