/* SPDX-License-Identifier: MIT */
/*
 * libtmem: migration of a client's pages to another client (LIBTMEM_0.6),
 * part of tmem.h's API: in its own header only to keep each file short.
 *
 * The source client keeps running while its pages are copied, as guest
 * RAM is in a live migration: tmem_save_start() marks every page as to
 * be sent, tmem_save_block() writes blocks of what is still to be sent
 * (pages as stored: LZ4 bytes, raw pages, same-filled words, pages of
 * the disk tier read back as they are on disk), and from the start on
 * every key stored, overwritten or invalidated is marked again, so a
 * later block carries its new copy or its removal.  Once the source
 * stops changing (its VM stopped), blocks until tmem_save_block()
 * returns 0, then tmem_save_end(), carry the rest.  The destination
 * gives each block to tmem_load_block() in order: it rebuilds pools,
 * ids, types and the index, and charges its own budget.  Nothing on the
 * source changes because of a migration: a failed or cancelled one
 * leaves it as it was (tmem_save_finish()).
 *
 * A block is self-contained and checked: a header with the stream
 * format's magic and version, the block's sequence number and length,
 * and an XXH3-64 of its contents.  tmem_load_block() refuses another
 * format version (-EPROTO), a bad checksum, a block out of sequence, a
 * truncated block or a malformed record (-EBADMSG), and a stream whose
 * end says the source held pages the destination did not get
 * (-EBADMSG).  Operation counters (succ_stores, loads, ...) are not
 * migrated: they count what happened on this client.
 *
 * Threads: the calls of one struct tmem_save (or tmem_load) are made
 * one at a time, from any thread; page operations and pool operations
 * of other threads may run meanwhile on the source (that is the point).
 * tmem_save_block() takes each shard's lock in turn, as a page
 * operation does, and reads pages of the disk tier synchronously on a
 * context of its own.  The destination client must not be used by
 * anything else until tmem_load_finish().
 */
#ifndef TMEM_MIGRATE_H
#define TMEM_MIGRATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tmem_client;
struct tmem_save;
struct tmem_load;

/* The stream format this library writes and reads. */
#define TMEM_MIGRATE_VERSION		1
/* A block's header, in bytes; a block is at most TMEM_MIGRATE_BLOCK_MAX. */
#define TMEM_MIGRATE_HDR_SIZE		32
#define TMEM_MIGRATE_BLOCK_MAX		(4u << 20)
/* tmem_save_block()'s buffer must have at least this many bytes. */
#define TMEM_MIGRATE_BLOCK_MIN		(64u << 10)

/**
 * tmem_save_start() - begin sending @client's pages: from now on every
 * change to a key is tracked.  One save at a time per client.
 * Returns 0 and sets *savep; -EBUSY while another save runs, -ENOMEM.
 */
int tmem_save_start(struct tmem_client *client, struct tmem_save **savep);

/**
 * tmem_save_block() - write the next block into @buf (@len bytes, at
 * least TMEM_MIGRATE_BLOCK_MIN, at most TMEM_MIGRATE_BLOCK_MAX used):
 * the pool table if it changed, then keys marked since they were last
 * sent, in index order, each with its page or its removal, until @buf
 * is full or every key was visited once since the last sweep began.
 * Returns the block's length; 0 when nothing was left to send (no block
 * written: everything sent is current); -EINVAL for a short @buf,
 * -EIO when a page of the disk tier cannot be read (the source keeps
 * it; the migration should fail), -ENOMEM.
 */
ssize_t tmem_save_block(struct tmem_save *save, void *buf, size_t len);

/**
 * tmem_save_pending() - bytes the keys still to be sent take (their
 * stored sizes, plus a record's overhead per key).  An estimate while
 * page operations run; exact when nothing changes the client.
 */
uint64_t tmem_save_pending(struct tmem_save *save);

/**
 * tmem_save_end() - the last block, after tmem_save_block() returned 0
 * with the client no longer changing: the pool table and the totals
 * the destination checks what it got against (pages, bytes).  Returns
 * its length, -EAGAIN when keys are still to be sent (call
 * tmem_save_block() first), -EINVAL for a short @buf.
 */
ssize_t tmem_save_end(struct tmem_save *save, void *buf, size_t len);

/**
 * tmem_save_finish() - stop tracking and free @save (NULL is ok).  The
 * client keeps every page, whether the migration succeeded or not.
 */
void tmem_save_finish(struct tmem_save *save);

/**
 * tmem_load_start() - make @client the destination of a stream: every
 * pool and page it held is dropped (as tmem_client_reset(), whose rules
 * apply: no other call on the client meanwhile).
 * Returns 0 and sets *loadp, or -ENOMEM.
 */
int tmem_load_start(struct tmem_client *client, struct tmem_load **loadp);

/**
 * tmem_load_block() - apply one block, as tmem_save_block() or
 * tmem_save_end() wrote it, of @len bytes.  Returns 0, 1 when it was the
 * stream's end and everything it announced arrived, or a negative errno
 * (@errbuf, when given, then holds the reason, one sentence):
 *   -EPROTO	not a stream block, or another format version
 *   -EBADMSG	checksum, sequence, length or record malformed; at the
 *		end, pages or bytes that did not arrive
 *   -ENOSPC	the destination's budget cannot hold the pages (the
 *		disk tier, if any, could not make room in time)
 *   -ERANGE	a pool id beyond the destination's max_pools
 *   -EINVAL	tmem_load_block() after the end, or after a failure
 *   -ENOMEM
 * After a failure the client holds part of the stream: the caller
 * resets it (or frees it) and the migration fails.
 */
int tmem_load_block(struct tmem_load *load, const void *buf, size_t len,
		    char *errbuf, size_t errlen);

/**
 * tmem_load_block_size() - the length of the block whose first
 * TMEM_MIGRATE_HDR_SIZE bytes are at @hdr: header and contents, at most
 * TMEM_MIGRATE_BLOCK_MAX; -EPROTO for something that is not a block
 * header of this version, -EBADMSG for a length out of range.  For a
 * caller that reads a stream: read the header, then the rest.
 */
ssize_t tmem_load_block_size(const void *hdr);

/* What a save or a load has done so far; each field read atomically. */
struct tmem_migrate_stats {
	uint64_t blocks;	/* written or applied */
	uint64_t bytes;		/* of those blocks, headers included */
	uint64_t pages;		/* pages sent or received (again: counted again) */
	uint64_t page_bytes;	/* their stored bytes */
	uint64_t drops;		/* keys removed: one per key, or per tombstone */
	uint64_t disk_reads;	/* pages read back from the disk tier to send */
	uint64_t sweeps;	/* walks over every pool that sent something
				 * (save): the passes of pre-copy */
};

/**
 * tmem_save_stats() / tmem_load_stats() - the figures of @save or
 * @load; may be called from any thread while the migration runs.
 */
void tmem_save_stats(struct tmem_save *save, struct tmem_migrate_stats *st);
void tmem_load_stats(struct tmem_load *load, struct tmem_migrate_stats *st);

/** tmem_load_finish() - free @load (NULL is ok); the client keeps its pages. */
void tmem_load_finish(struct tmem_load *load);

#ifdef __cplusplus
}
#endif

#endif /* TMEM_MIGRATE_H */
