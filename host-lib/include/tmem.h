/* SPDX-License-Identifier: MIT */
/*
 * libtmem: a compressed, budgeted page store for transcendent memory.
 *
 * A client is one guest (one virtio-tmem device): its pools, its budget
 * and its statistics.  Pages are kept LZ4-compressed in a size-class
 * allocator over large arenas; same-filled pages keep no data at all.
 *
 * Threads: a struct tmem_ctx is per-thread working state (scratch
 * buffers).  Any number of contexts of one client may run page operations
 * concurrently, each from its own thread; no lock is global to the client
 * on the store/load path.  Pool operations (tmem_pool_*(),
 * tmem_invalidate_pool()) and tmem_client_stats() may run concurrently
 * with page operations.  tmem_client_reset() and tmem_client_free()
 * require that no other call on the client is in progress.
 *
 * Return values: every function that can fail returns 0 (or a
 * non-negative count where documented) on success and a negative errno on
 * failure.  errno is never read or set.
 */
#ifndef TMEM_H
#define TMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Version, as lz4.h has it.  MAJOR.MINOR names the newest symbol version
 * node of libtmem.map (LIBTMEM_0.6): a minor release adds entry points
 * and struct fields, never changes what an existing one does.
 */
#define TMEM_VERSION_MAJOR		0
#define TMEM_VERSION_MINOR		7
#define TMEM_VERSION_RELEASE		0
#define TMEM_VERSION_NUMBER		(TMEM_VERSION_MAJOR * 100 * 100 + \
					 TMEM_VERSION_MINOR * 100 + \
					 TMEM_VERSION_RELEASE)

/**
 * tmem_version_number() - TMEM_VERSION_NUMBER of the library running,
 * which may be newer than the header the caller was compiled with.
 * Since LIBTMEM_0.2.
 */
unsigned int tmem_version_number(void);

#define TMEM_PAGE_SIZE			4096

struct tmem_client;
struct tmem_ctx;

enum tmem_pool_type {
	TMEM_POOL_PERSISTENT = 0,	/* kept until invalidated */
	TMEM_POOL_EPHEMERAL = 1,	/* may be evicted at any time */
};

/* What to do with a page whose LZ4 output exceeds the threshold. */
enum tmem_incompressible {
	TMEM_INCOMPRESSIBLE_RAW = 0,	/* store it uncompressed */
	TMEM_INCOMPRESSIBLE_REJECT = 1,	/* refuse it (-E2BIG) */
};

/*
 * Structs that grow: struct tmem_client_config and struct tmem_stats get
 * new fields at their end only, and the calls that take them
 * (tmem_client_new2(), tmem_client_stats2()) are also given the size the
 * caller was compiled with, sizeof(*cfg), as openat2(2) and clone3(2)
 * are.  The library reads only the bytes the caller's size covers, and
 * fields beyond it take the value 0 (their default); it writes only
 * those bytes, and zero-fills what the caller has beyond its own struct.
 * So a caller built against an older tmem.h runs on a newer library and
 * the other way round.  A size below TMEM_CONFIG_SIZE_VER0 (or
 * TMEM_STATS_SIZE_VER0) is refused with -EINVAL, and a configuration
 * larger than the library's with a non-zero byte in the part it does
 * not know with -E2BIG: the caller asked for something this library
 * cannot do.  tmem_client_new() and tmem_client_stats(), of LIBTMEM_0.1,
 * take the VER0 layout without a size.  The sizes and offsets are those
 * of LP64 (x86_64, aarch64), the only ABI the library builds for.
 */
struct tmem_client_config {
	/* Hard cap on host bytes, data plus metadata.  Required, > 0. */
	uint64_t budget_bytes;
	/* Pools open at once; 0 selects TMEM_DEFAULT_MAX_POOLS. */
	uint32_t max_pools;
	/*
	 * A page whose compressed size exceeds this many bytes is
	 * incompressible; 0 selects TMEM_DEFAULT_COMPRESS_THRESHOLD.
	 * Must be <= TMEM_PAGE_SIZE.
	 */
	uint32_t compress_threshold;
	enum tmem_incompressible incompressible;
	/* The hole before the pointer, named (LP64).  Must be 0. */
	uint32_t reserved0;

	/*
	 * Disk tier (optional).  When the client's host bytes reach
	 * @writeback_high percent of the budget, a background thread packs
	 * the coldest compressed pages of persistent pools into segments of
	 * @segment_size bytes and writes them to @backing_file with io_uring
	 * (O_DIRECT where the file system allows), until @writeback_low
	 * percent; a store that finds the budget full waits for that instead
	 * of failing while the tier has room.  Loads read such pages back.
	 * The file's content means nothing after tmem_client_free(): the
	 * tier is swap space, not persistent storage.
	 *
	 * The file (a regular file or a block device) is opened with
	 * O_NOFOLLOW, must belong to the process's effective user and not
	 * be readable or writable by others (nor by its group, for a regular
	 * file), and is locked with an exclusive open file description lock
	 * for the client's life: one client per file.  Each page on it has
	 * its key and an XXH3 checksum beside it; a load that finds other
	 * bytes answers -EIO.  A file the client created is removed by
	 * tmem_client_free(); the range of a block device is discarded.
	 * O_DIRECT alignment is the device's logical block size or the file
	 * system's direct I/O alignment (statx), not a fixed 4096.
	 */
	const char *backing_file;	/* NULL: no disk tier */
	/*
	 * Bytes of the file to use.  0: the file's size (it must exist).
	 * Otherwise the file is created (mode 0600) if missing, and
	 * fallocate()d to this size so that a write never meets a full
	 * file system.  Rounded down to whole segments; at least
	 * TMEM_TIER_MIN_SEGMENTS of them.
	 */
	uint64_t backing_size;
	/* 0: TMEM_DEFAULT_SEGMENT_SIZE; else a power of two in
	 * [TMEM_MIN_SEGMENT_SIZE, TMEM_MAX_SEGMENT_SIZE]. */
	uint32_t segment_size;
	/*
	 * Percent of the budget, low < high <= 100.  0 selects
	 * TMEM_DEFAULT_WRITEBACK_HIGH, and for low 10 below high (half of
	 * high if that is 10 or less).
	 */
	uint8_t writeback_high;
	uint8_t writeback_low;
	/*
	 * No padding the library could not see: a field added later takes
	 * these bytes or goes after them.  Must be 0.
	 */
	uint16_t reserved;
	/*
	 * From 0.2 (TMEM_CONFIG_SIZE_VER1).  How long an asynchronous STORE
	 * (tmem_submit_request()) waits for the writer to make room before
	 * it is REJECTED; 0 selects TMEM_DEFAULT_ROOM_WAIT_MS, at most
	 * TMEM_MAX_ROOM_WAIT_MS.
	 */
	uint32_t room_wait_ms;
	uint32_t reserved2;		/* must be 0 */
	/*
	 * From 0.7 (TMEM_CONFIG_SIZE_VER2): the disk tier in a Ceph RADOS
	 * pool, not a file (README.md: RADOS tier); backing_size required;
	 * NULL conf: /etc/ceph/ceph.conf, NULL user (cephx id): admin.
	 */
	const char *rados_pool, *rados_namespace;
	const char *rados_conf, *rados_user, *rados_keyring;
};

/* The layouts of LIBTMEM_0.1 (the first sizes the library knows). */
#define TMEM_CONFIG_SIZE_VER0		48
/* And of LIBTMEM_0.2: room_wait_ms. */
#define TMEM_CONFIG_SIZE_VER1		56
#define TMEM_CONFIG_SIZE_VER2		96	/* 0.7: rados_* */
#define TMEM_STATS_SIZE_VER0		248
/* And of LIBTMEM_0.3: shrinking, disk_full. */
#define TMEM_STATS_SIZE_VER1		264

#define TMEM_DEFAULT_SEGMENT_SIZE	(256u << 10)
#define TMEM_MIN_SEGMENT_SIZE		(64u << 10)
#define TMEM_MAX_SEGMENT_SIZE		(16u << 20)
#define TMEM_TIER_MIN_SEGMENTS		4
#define TMEM_DEFAULT_WRITEBACK_HIGH	90

#define TMEM_DEFAULT_MAX_POOLS		16
#define TMEM_MAX_POOLS			1024
#define TMEM_DEFAULT_COMPRESS_THRESHOLD	3584

/* Room for any reason tmem_client_new2() gives, with its NUL. */
#define TMEM_ERRBUF_SIZE		512

/**
 * tmem_client_new2() - create a client with its own pools and budget.
 * @cfg:	the configuration, of @cfg_size bytes (sizeof(*cfg))
 * @clientp:	set to the client on success
 * @errbuf:	NULL, or @errlen bytes for the reason of a refusal
 *
 * Returns 0 and sets *clientp, or a negative errno; then, when @errbuf
 * is given, it holds one sentence (NUL-terminated, cut to @errlen) that
 * says which field or file is refused and by what rule, for a human.
 * When one field of @cfg is to blame the sentence starts with its name
 * and a space ("segment_size 100000 is not a power of 2 ..."; for the
 * file: "backing_file /x: in use by another process (locked)"), so that
 * a caller may replace the name with its own for that setting.
 *
 *   -EINVAL	a field out of its range, @cfg_size below
 *		TMEM_CONFIG_SIZE_VER0; with a disk tier also a file too
 *		small for TMEM_TIER_MIN_SEGMENTS segments, neither a
 *		regular file nor a block device, or with a direct I/O
 *		alignment over 64 KiB; tier fields without a backing_file
 *   -E2BIG	@cfg_size larger than this library's struct, with a
 *		non-zero byte beyond it
 *   -ENOMEM	the host could not allocate memory
 *   -ENOSPC	the budget cannot hold the disk tier's buffers, or the
 *		file system or device cannot hold backing_size
 *   -ENOENT, -EACCES, ...	open(2) or fallocate(2) of the backing file
 *   -ELOOP	the backing file is a symbolic link
 *   -EPERM	a backing file of another user, or one others may read or
 *		write (for a regular file, its group too); rados_user's
 *		cephx caps do not allow rw in rados_namespace
 *   -EBUSY	another client (in any process) holds the backing file
 *   -ENOTSUP	a backing file (rados_pool) without liburing (librados)
 *   or the error of io_uring_queue_init() or the cluster (-ETIMEDOUT).
 *
 * Since LIBTMEM_0.2.
 */
int tmem_client_new2(const struct tmem_client_config *cfg, size_t cfg_size,
		     struct tmem_client **clientp, char *errbuf,
		     size_t errlen);

/**
 * tmem_client_new() - tmem_client_new2() of a TMEM_CONFIG_SIZE_VER0
 * configuration, without a reason.  LIBTMEM_0.1.
 */
int tmem_client_new(const struct tmem_client_config *cfg,
		    struct tmem_client **clientp);

/** tmem_client_free() - drop every pool and free the client.  NULL is ok. */
void tmem_client_free(struct tmem_client *client);

/**
 * tmem_client_release_backing() - for a process that exits without
 * tmem_client_free() (QEMU does not unrealize devices at exit): stop the
 * disk tier's writer and remove the backing file if the client created
 * it, or discard the used range of a block device, as tmem_client_free()
 * would.  Loads of pages already in a created file still work (it
 * stays open); a block device's discarded pages answer -EIO; stores
 * over the budget are refused.  Afterwards the only call
 * allowed is tmem_client_free().  No-op without a disk tier.
 */
void tmem_client_release_backing(struct tmem_client *client);

/**
 * tmem_client_reset() - drop every pool and free every stored byte; the
 * client is as new (statistics counters included).  A request pending on
 * any of the client's contexts is dropped without a completion, as
 * tmem_ctx_cancel() would (its buffers are not touched afterwards), so
 * no call may be running on any of them meanwhile: QEMU quiesces each
 * queue first.  Returns 0.
 */
int tmem_client_reset(struct tmem_client *client);

/**
 * tmem_client_set_features() - tell the wire entry point which virtio
 * feature bits (VIRTIO_TMEM_F_*) the driver negotiated.  Returns 0.
 */
int tmem_client_set_features(struct tmem_client *client, uint64_t features);

/**
 * tmem_ctx_new() - per-thread working state for page operations.
 * Returns 0 and sets *ctxp, or -ENOMEM.
 */
int tmem_ctx_new(struct tmem_client *client, struct tmem_ctx **ctxp);

/** tmem_ctx_free() - free a context.  NULL is ok. */
void tmem_ctx_free(struct tmem_ctx *ctx);

/**
 * tmem_pool_new() - open a pool.
 * Returns 0 and sets *pool_idp; -ENOSPC when max_pools are open or the
 * budget cannot hold the pool's index (a few KiB, charged like any other
 * metadata), -ENOMEM, -EINVAL for an unknown type.
 */
int tmem_pool_new(struct tmem_client *client, enum tmem_pool_type type,
		  uint32_t *pool_idp);

/**
 * tmem_pool_destroy() - drop every page of a pool and close its id.
 * Returns 0 or -EBADF when @pool_id is not open.
 */
int tmem_pool_destroy(struct tmem_client *client, uint32_t pool_id);

/*
 * Page operations.  Errors shared by all of them:
 *   -EBADF      @pool_id is not an open pool of this client
 */

/**
 * tmem_store() - store one TMEM_PAGE_SIZE page under (pool, object, index).
 *
 * Returns 0 when the pool now holds exactly these bytes.  On any failure
 * the pool holds no copy for the key (an older copy is invalidated):
 *   -ENOSPC     over the client's budget (and nothing ephemeral to evict)
 *   -E2BIG      incompressible and the policy is TMEM_INCOMPRESSIBLE_REJECT
 *   -ESHUTDOWN  the pool was invalidated with tmem_invalidate_pool()
 *   -ENOMEM     the host could not allocate memory
 */
int tmem_store(struct tmem_ctx *ctx, uint32_t pool_id, uint64_t object,
	       uint32_t index, const void *page);

/**
 * tmem_load() - copy a stored page out; the pool keeps it.
 * Returns 0, -ENOENT when the key is not held (never after a successful
 * store to a persistent pool that was not invalidated), -EIO when stored
 * data could not be decoded or read back from the disk tier (the page
 * stays stored: a later load may succeed).
 */
int tmem_load(struct tmem_ctx *ctx, uint32_t pool_id, uint64_t object,
	      uint32_t index, void *page);

/**
 * tmem_invalidate_page() - forget one key.
 * Returns 1 if a page was dropped, 0 if the key was not held.
 */
int tmem_invalidate_page(struct tmem_ctx *ctx, uint32_t pool_id,
			 uint64_t object, uint32_t index);

/**
 * tmem_invalidate_object() - forget every page of one object.
 * Returns the number of pages dropped.
 */
int tmem_invalidate_object(struct tmem_ctx *ctx, uint32_t pool_id,
			   uint64_t object);

/**
 * tmem_invalidate_pool() - forget every page of a pool and refuse further
 * stores to it (-ESHUTDOWN) until it is destroyed; loads then miss.
 * This is frontswap's invalidate_area.  Returns 0, or -EBADF when
 * @pool_id is not open.
 */
int tmem_invalidate_pool(struct tmem_client *client, uint32_t pool_id);

/**
 * tmem_handle_request() - the wire entry point: one virtio-tmem request.
 *
 * @out_sg/@out_num: the device-readable buffers of one descriptor chain,
 * @in_sg/@in_num: its device-writable buffers, laid out as in
 * proto/virtio_tmem.h.  The request is validated, dispatched and its
 * struct virtio_tmem_resp written at the end of @in_sg; no byte outside
 * the given buffers is touched, whatever they contain.
 *
 * Returns the total length of @in_sg, which the device writes through to
 * its end (for the used ring), -EPROTO when @in_sg cannot even hold a
 * response or is longer than INT_MAX (a transport violation the caller
 * reports, e.g. with virtio_error()), or -EBUSY, without looking at the
 * request, while an asynchronous request of @ctx is pending.
 *
 * It is tmem_submit_request() followed, when the request is pending, by
 * a wait on the completion fd: it blocks for a disk read, and a STORE
 * waits for room at most room_wait_ms, then is answered REJECTED (0.1
 * waited without a limit).  For callers that may block.
 */
int tmem_handle_request(struct tmem_ctx *ctx,
			const struct iovec *out_sg, unsigned int out_num,
			const struct iovec *in_sg, unsigned int in_num);

/*
 * Asynchronous requests: the wire entry point for a caller that must
 * never block (QEMU's main loop or an IOThread).  A request that needs
 * neither disk I/O nor the disk tier's writer is answered at once, at
 * the cost of tmem_handle_request().  One that does (a LOAD of a page on
 * the disk tier, a STORE that found the budget full while the writer
 * can make room) stays pending: the context's completion fd becomes
 * readable when it may be finished, and tmem_ctx_reap() finishes it.
 *
 * A context has at most one pending request; the caller submits nothing
 * to it until that one was reaped or cancelled.  That is how requests
 * keep their order (SPEC DEV-14): a queue waits behind its pending
 * request.  A STORE waits for room at most the client's room_wait_ms
 * (TMEM_DEFAULT_ROOM_WAIT_MS), measured with an io_uring timeout on
 * the context's own ring, so the bound holds even when the writer is
 * stuck in I/O; then it is answered REJECTED and, as any failed store,
 * leaves no copy of the key.  When the writer was then waiting for its
 * own I/O, the context's later stores that need room are REJECTED at
 * once until that pass of the writer ends: a hung disk costs one bound,
 * not one per page.
 */
#define TMEM_DEFAULT_ROOM_WAIT_MS	1000
/*
 * Keep room_wait_ms below the time the guest driver waits for an answer
 * (io_timeout, 30 s by default; SPEC DRV-9): past it the guest resets
 * the device instead of receiving REJECTED.
 */
#define TMEM_MAX_ROOM_WAIT_MS		60000

struct tmem_completion {
	void *opaque;		/* as given to tmem_submit_request() */
	int len;		/* as tmem_handle_request() returns */
};

/**
 * tmem_ctx_completion_fd() - an fd (an eventfd) that polls readable when
 * tmem_ctx_reap() may have something to finish; the context owns it.
 * Readiness may be spurious: reaping then finds nothing.  Returns the fd.
 */
int tmem_ctx_completion_fd(struct tmem_ctx *ctx);

/**
 * tmem_submit_request() - tmem_handle_request() that does not wait.
 *
 * Returns what tmem_handle_request() returns when the request was
 * answered at once; -EINPROGRESS when it is pending: its answer comes
 * from tmem_ctx_reap() with @opaque, and until then the buffers (and the
 * iovec arrays) must stay valid and be left alone; -EBUSY, without
 * looking at the request, while another request of @ctx is pending.
 */
int tmem_submit_request(struct tmem_ctx *ctx,
			const struct iovec *out_sg, unsigned int out_num,
			const struct iovec *in_sg, unsigned int in_num,
			void *opaque);

/**
 * tmem_ctx_reap() - finish what can be finished of @ctx's pending
 * request, without waiting.  Writes up to @max (at least 1) completions
 * to @done, each request once, its response written as
 * tmem_handle_request() would.  Returns the number written (0 when
 * nothing finished); @max 0 returns 0 and leaves the completion fd as it
 * was.
 */
int tmem_ctx_reap(struct tmem_ctx *ctx, struct tmem_completion *done,
		  unsigned int max);

/**
 * tmem_ctx_cancel() - drop @ctx's pending request unanswered (a device
 * reset): its buffers are not touched afterwards, a pending STORE leaves
 * no copy of its key, a LOAD changes nothing.  A read already issued to
 * the disk is waited for (into the context's own buffer).  Returns 1
 * and sets *@opaquep when a request was pending, else 0.
 */
int tmem_ctx_cancel(struct tmem_ctx *ctx, void **opaquep);

struct tmem_stats {
	uint64_t budget_bytes;
	uint64_t pools;			/* open now */
	/* Operation counters, since creation or the last reset. */
	uint64_t succ_stores;
	uint64_t failed_stores;		/* sum of the three below */
	uint64_t failed_stores_budget;
	uint64_t failed_stores_incompressible;
	uint64_t failed_stores_other;	/* closed pool, ENOMEM, ... */
	uint64_t loads;			/* successful */
	uint64_t load_misses;
	uint64_t invalidates;		/* pages dropped by invalidation */
	uint64_t evictions;		/* ephemeral pages evicted */
	/* Current state. */
	uint64_t pages;			/* pages stored */
	uint64_t same_filled_pages;	/* of which keep no data */
	uint64_t raw_pages;		/* of which are kept uncompressed */
	uint64_t compressed_bytes;	/* sum of the stored sizes */
	uint64_t data_bytes;		/* allocator memory holding them */
	uint64_t meta_bytes;		/* index and allocator metadata */
	uint64_t host_bytes;		/* data_bytes + meta_bytes */

	/*
	 * Disk tier; all 0 without one.  pages and compressed_bytes above
	 * count pages of the tier too; data_bytes does not (meta_bytes
	 * includes the tier's segment buffers).
	 */
	uint64_t disk_size;		/* bytes of the file used for segments */
	uint64_t disk_segment_size;
	uint64_t disk_segments;		/* segments holding pages now */
	uint64_t disk_pages;		/* stored pages kept by the tier */
	uint64_t disk_bytes;		/* their compressed bytes; segment fill
					 * is disk_bytes / (disk_segments *
					 * disk_segment_size) */
	uint64_t written_back;		/* pages written back, ever */
	uint64_t disk_reads;		/* read and write requests issued */
	uint64_t disk_read_bytes;
	uint64_t disk_writes;
	uint64_t disk_write_bytes;
	uint64_t disk_errors;		/* failed reads and writes */
	uint64_t cleaned_segments;	/* segments emptied by the cleaner */
	uint64_t disk_failed;		/* 1 after a write error: no pages
					 * until reset (RADOS: rewritten) */

	/* From 0.3 (TMEM_STATS_SIZE_VER1). */
	uint64_t shrinking;		/* 1 while host_bytes is over a budget
					 * that tmem_client_set_budget()
					 * lowered; 0 once within it */
	uint64_t disk_full;		/* 1 while the tier has no segment
					 * free for more pages */
};

/**
 * tmem_client_stats2() - a snapshot of the client's counters into
 * @stats, of @size bytes (sizeof(*stats)).  Each field is read
 * atomically; the set is not a single atomic snapshot.  Returns 0, or
 * -EINVAL for a @size below TMEM_STATS_SIZE_VER0.  Since LIBTMEM_0.2.
 */
int tmem_client_stats2(struct tmem_client *client, struct tmem_stats *stats,
		       size_t size);

/**
 * tmem_client_stats() - tmem_client_stats2() into a TMEM_STATS_SIZE_VER0
 * struct.  Returns 0.  LIBTMEM_0.1.
 */
int tmem_client_stats(struct tmem_client *client, struct tmem_stats *stats);

/*
 * Elastic memory: the host changes what it lends at run time.
 */

/**
 * tmem_client_set_budget() - change the client's budget (budget_bytes)
 * while it runs.  Growing takes effect at once.  Shrinking below the
 * host bytes in use keeps every page (persistent pages are never
 * dropped): until host_bytes is within the new budget, every store is
 * refused at once (-ENOSPC, SPEC DEV-25; even one that would fit in a
 * slot an invalidation freed, so that a guest cannot refill what it
 * gives back; the key's old copy goes; no wait for the disk tier's
 * writer, whose pass may be long), the memory in use never
 * grows, and tmem_client_reclaim() gives memory back.  The disk tier's
 * watermarks are the same percentages of the new budget, and its
 * writer is woken.  May run concurrently with page operations.
 *
 * Returns 0; -EINVAL for 0; -ENOSPC for a budget below what the client
 * holds that no reclaim can give back (its disk tier's buffers, its
 * pool ids' shards, the allocator's arena maps).
 * @errbuf, when given, then holds the reason, as tmem_client_new2()'s.
 * Since LIBTMEM_0.3.
 */
int tmem_client_set_budget(struct tmem_client *client, uint64_t budget_bytes,
			   char *errbuf, size_t errlen);

/* What tmem_client_reclaim() found. */
enum tmem_reclaim {
	TMEM_RECLAIM_DONE = 0,	/* host_bytes is within the budget */
	/*
	 * Over it, and making progress: ephemeral pages were evicted, or
	 * the disk tier's writer is moving pages out.  Call again later.
	 */
	TMEM_RECLAIM_BUSY = 1,
	/*
	 * Over it, and nothing left that the library can do: no ephemeral
	 * page, and no disk tier, or one that is full (disk_full), failed
	 * (disk_failed), hung (its writer waiting for one I/O for more
	 * than 2 s across calls) or has no page in memory left to take.  Memory
	 * now comes back only as pages are invalidated (the guest giving
	 * pages back); calling again later is still right.
	 */
	TMEM_RECLAIM_STUCK = 2,
};

/**
 * tmem_client_reclaim() - one step of giving memory back while
 * host_bytes is over the budget: compaction, then up to @max_pages
 * ephemeral pages evicted (least recently used first, counted in
 * evictions), then the disk tier's writer woken to write back.  Never
 * waits for I/O; bounded by @max_pages.  May run concurrently with page
 * operations.  Returns a TMEM_RECLAIM_* value.  Since LIBTMEM_0.3.
 */
int tmem_client_reclaim(struct tmem_client *client, unsigned int max_pages);

/* Operations for tmem_client_inject_io_error(). */
#define TMEM_IO_READ		1u
#define TMEM_IO_WRITE		2u
#define TMEM_IO_READ_SUBMIT	4u	/* a read's io_uring_submit() */

/**
 * tmem_client_inject_io_error() - testing aid: make every disk tier read
 * (TMEM_IO_READ) and/or write (TMEM_IO_WRITE) in @ops fail with @err (a
 * negative errno) instead of being issued, as a failing disk would; with
 * TMEM_IO_READ_SUBMIT a read is prepared on the loading context's ring,
 * then its submission fails with @err, as io_uring_submit() can.  @ops 0
 * stops.  Returns 0, -EINVAL for an unknown bit or @err >= 0 with @ops,
 * or -ENODEV when the client has no disk tier.
 */
int tmem_client_inject_io_error(struct tmem_client *client, unsigned int ops,
				int err);

/**
 * tmem_client_inject_io_hang() - testing aid: hold every disk tier read
 * (TMEM_IO_READ) and/or write (TMEM_IO_WRITE) in @ops, as a hung disk
 * would, until called again without them; held I/O is then issued.  A
 * pending asynchronous load stays pending, the writer stops in its
 * write (so asynchronous stores over the budget time out), a
 * synchronous call that needs the I/O waits.  Returns 0, -EINVAL for an
 * unknown bit, or -ENODEV when the client has no disk tier.
 */
int tmem_client_inject_io_hang(struct tmem_client *client, unsigned int ops);

/** tmem_strerror() - a short name for a status returned by this library. */
const char *tmem_strerror(int err);

#ifdef __cplusplus
}
#endif

/*
 * The host-wide pool's ledger (LIBTMEM_0.4; its memory-pressure mode,
 * LIBTMEM_0.5), part of this API: in its own header only to keep each
 * file short.
 */
#include "tmem_ledger.h"
/* Migration of a client's pages (LIBTMEM_0.6). */
#include "tmem_migrate.h"

#endif /* TMEM_H */
