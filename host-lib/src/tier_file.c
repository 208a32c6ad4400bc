/* SPDX-License-Identifier: MIT */
/*
 * The disk tier's backing file and life cycle: opening, checking and
 * locking the file (or connecting to the RADOS pool), sizing
 * and scrubbing it, creating, stopping, restarting and freeing the
 * tier, its statistics and the fault-injection switch for tests.
 */
#define _GNU_SOURCE		/* O_DIRECT, fallocate() */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <linux/fs.h>

#include "tier_impl_i.h"

static uint32_t tier_nsegs(const struct tmem_tier *t, uint64_t bytes)
{
	return bytes / t->seg_size > UINT32_MAX / 2 ? UINT32_MAX / 2 :
						    bytes / t->seg_size;
}

/* Charge the segment buffers and the per-segment arrays: 0 or -ENOSPC. */
static int tier_charge(struct tmem_client *c, struct tmem_tier *t,
		       uint32_t nsegs, struct tmem_why *why)
{
	size_t charge = (TIER_BUFS + 1) * (size_t)t->seg_size +
			tmem_heap_cost(nsegs * sizeof(*t->segs)) +
			tmem_heap_cost(nsegs * sizeof(*t->free));

	if (tmem_charge(&c->budget, 0, charge))
		return tmem_refuse(why, -ENOSPC, "budget_bytes %llu cannot "
				   "hold the disk tier's buffers (%d segments "
				   "of %u bytes) and its table of %u segments: "
				   "%zu bytes",
				   (unsigned long long)c->cfg.budget_bytes,
				   TIER_BUFS + 1, t->seg_size, nsegs, charge);
	t->charged = charge;
	return 0;
}

/* Say why the backing file was refused: "backing_file PATH: ...". */
#define file_refuse(t, why, err, fmt, ...)				\
	tmem_refuse(why, err, "backing_file %s: " fmt, (t)->path,	\
		    ##__VA_ARGS__)

/*
 * open(2) with O_DIRECT if the file system takes it; -errno on failure.
 * O_NOFOLLOW: a symbolic link is refused (-ELOOP), so that whoever may
 * write the directory cannot point the tier at another file.
 */
static int open_direct(struct tmem_tier *t, const char *path, int flags)
{
	int fd;

	flags |= O_RDWR | O_CLOEXEC | O_NOFOLLOW;
	fd = open(path, flags | O_DIRECT, 0600);
	t->direct = fd >= 0;
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags, 0600);
	return fd < 0 ? -errno : fd;
}

static int open_refuse(struct tmem_tier *t, bool sized, int err,
		       struct tmem_why *why)
{
	if (err == -ELOOP)
		return file_refuse(t, why, err, "a symbolic link (opened with "
				   "O_NOFOLLOW): name the file itself");
	return file_refuse(t, why, err, "%s%s", strerror(-err),
			   err == -ENOENT && !sized ?
			   " (without backing_size the file must exist)" : "");
}

/*
 * Guest memory lands in the file: it must be ours alone.  Owned by the
 * process's user and, for a regular file, neither readable nor writable
 * by group or others; a block device may be its group's (disk), never
 * others'.  -EPERM otherwise.
 */
static int check_private(struct tmem_tier *t, const struct stat *st,
			 struct tmem_why *why)
{
	mode_t shared = S_ISBLK(st->st_mode) ? S_IROTH | S_IWOTH :
			S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH;

	if (st->st_uid != geteuid())
		return file_refuse(t, why, -EPERM, "owned by uid %u, not by "
				   "this process (euid %u)",
				   (unsigned int)st->st_uid,
				   (unsigned int)geteuid());
	if (st->st_mode & shared)
		return file_refuse(t, why, -EPERM, "mode %04o lets %s read or "
				   "write it (chmod 0600)",
				   (unsigned int)(st->st_mode & 07777),
				   S_ISBLK(st->st_mode) ? "others" :
				   "its group or others");
	return 0;
}

/*
 * One user per file: an exclusive open file description lock over the
 * whole file, as QEMU locks its images (it conflicts with another open
 * of the file in this process too).  -EBUSY when someone holds one.
 */
static int lock_file(struct tmem_tier *t, struct tmem_why *why)
{
	struct flock fl = {
		.l_type = F_WRLCK,
		.l_whence = SEEK_SET,
	};

	if (!fcntl(t->fd, F_OFD_SETLK, &fl))
		return 0;
	if (errno == EAGAIN || errno == EACCES)
		return file_refuse(t, why, -EBUSY, "in use by another process "
				   "or client (locked)");
	return file_refuse(t, why, -errno, "fcntl(F_OFD_SETLK): %s",
			   strerror(errno));
}

/*
 * The alignment O_DIRECT wants of offsets, lengths and buffers: the
 * device's logical block size, or what statx() says of the file (Linux
 * 6.1+), else the file system's block size (a multiple of it).  Without
 * O_DIRECT any will do; the file system's block is still the unit it
 * reads in.  -EINVAL for one larger than we take.
 */
static int block_size(struct tmem_tier *t, const struct stat *st,
		      struct tmem_why *why)
{
	struct statvfs vfs;
	struct statx stx;
	int sector;

	if (S_ISBLK(st->st_mode)) {
		if (ioctl(t->fd, BLKSSZGET, &sector))
			return file_refuse(t, why, -errno, "BLKSSZGET: %s",
					   strerror(errno));
		t->block = sector;
	} else if (t->direct &&
		   !statx(t->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) &&
		   (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align) {
		t->block = stx.stx_dio_offset_align > stx.stx_dio_mem_align ?
			   stx.stx_dio_offset_align : stx.stx_dio_mem_align;
	} else {
		if (fstatvfs(t->fd, &vfs))
			return file_refuse(t, why, -errno, "fstatvfs: %s",
					   strerror(errno));
		t->block = vfs.f_bsize;
	}
	if (t->block < 512 || t->block > TIER_BLOCK_MAX ||
	    (t->block & (t->block - 1)))
		return file_refuse(t, why, -EINVAL, "its I/O alignment, %u "
				   "bytes, is not a power of 2 between 512 and "
				   "%u", t->block, TIER_BLOCK_MAX);
	return 0;
}

/* Bytes the file or device holds; -EINVAL for anything else. */
static int file_size(struct tmem_tier *t, const struct stat *st,
		     uint64_t *sizep, struct tmem_why *why)
{
	if (S_ISBLK(st->st_mode)) {
		t->blkdev = true;
		if (ioctl(t->fd, BLKGETSIZE64, sizep))
			return file_refuse(t, why, -errno, "BLKGETSIZE64: %s",
					   strerror(errno));
		return 0;
	}
	if (!S_ISREG(st->st_mode))
		return file_refuse(t, why, -EINVAL, "neither a regular file "
				   "nor a block device");
	*sizep = st->st_size;
	return 0;
}

/* Make a regular file @want bytes long, its blocks reserved. */
static int file_grow(struct tmem_tier *t, const struct stat *st,
		     uint64_t size, uint64_t want, struct tmem_why *why)
{
	if (!S_ISREG(st->st_mode))
		return file_refuse(t, why, -ENOSPC, "the device holds %llu "
				   "bytes, fewer than backing_size %llu",
				   (unsigned long long)size,
				   (unsigned long long)want);
	/* Reserve the blocks now: a write never meets a full disk. */
	if (!fallocate(t->fd, 0, 0, want))
		return 0;
	if (errno == EOPNOTSUPP && !ftruncate(t->fd, want))
		return 0;
	return file_refuse(t, why, -errno, "cannot allocate backing_size "
			   "%llu bytes: %s", (unsigned long long)want,
			   strerror(errno));
}

/*
 * Open (or create) and size the backing file; sets fd, direct, block,
 * nsegs, and created when the file is ours to remove.
 */
static int tier_open(struct tmem_tier *t, const struct tmem_client_config *cfg,
		     struct tmem_why *why)
{
	uint64_t size, want;
	struct stat st;
	int ret;

	t->fd = open_direct(t, cfg->backing_file, 0);
	if (t->fd == -ENOENT && cfg->backing_size) {
		t->fd = open_direct(t, cfg->backing_file, O_CREAT | O_EXCL);
		t->created = t->fd >= 0;
	}
	if (t->fd < 0)
		return open_refuse(t, cfg->backing_size, t->fd, why);
	if (fstat(t->fd, &st))
		return file_refuse(t, why, -errno, "fstat: %s",
				   strerror(errno));
	ret = file_size(t, &st, &size, why);
	if (!ret)
		ret = check_private(t, &st, why);
	if (!ret)
		ret = lock_file(t, why);
	if (!ret)
		ret = block_size(t, &st, why);
	if (ret)
		return ret;
	want = cfg->backing_size ? cfg->backing_size : size;
	if (want > size) {
		ret = file_grow(t, &st, size, want, why);
		if (ret)
			return ret;
	}
	if (want / t->seg_size < TMEM_TIER_MIN_SEGMENTS)
		return file_refuse(t, why, -EINVAL, "its %llu bytes are fewer "
				   "than %d segments of %u bytes (%llu bytes)",
				   (unsigned long long)want,
				   TMEM_TIER_MIN_SEGMENTS, t->seg_size,
				   TMEM_TIER_MIN_SEGMENTS *
				   (unsigned long long)t->seg_size);
	if (want >> TMEM_DISK_OFF_BITS)
		return file_refuse(t, why, -EINVAL, "its %llu bytes are over "
				   "the disk tier's limit of %llu",
				   (unsigned long long)want,
				   (1ull << TMEM_DISK_OFF_BITS) - 1);
	t->nsegs = tier_nsegs(t, want);
	return 0;
}

/*
 * Guest memory must not stay on the host's disk after the client: a file
 * we created is removed (if its name still names it), the range of a
 * block device we used is discarded (best effort: a device without
 * discard keeps the bytes).  A regular file the caller gave is the
 * caller's and stays as it is.
 */
static void tier_scrub(struct tmem_tier *t)
{
	uint64_t range[2] = { 0, (uint64_t)t->nsegs * t->seg_size };
	struct stat a, b;

	if (t->rados) {
		/* Every object of the namespace is ours (tmem.owner). */
		tmem_rados_scrub(t->rados);
		tmem_rados_disown(t->rados);
		return;
	}
	if (t->created && t->path && !fstat(t->fd, &a) &&
	    !fstatat(AT_FDCWD, t->path, &b, AT_SYMLINK_NOFOLLOW) &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		unlink(t->path);
	if (t->blkdev && range[1])
		ioctl(t->fd, BLKDISCARD, range);
}

/* Every segment free, the writer idle and its counters at 0. */
static void tier_clear(struct tmem_tier *t)
{
	for (uint32_t i = 0; i < t->nsegs; i++) {
		struct tier_seg *seg = &t->segs[i];

		atomic_store(&seg->ref, 0);
		atomic_store(&seg->live_bytes, 0);
		seg->used = 0;
		seg->state = SEG_FREE;
		seg->buf = -1;
		seg->gen++;		/* contexts' read-ahead is stale */
		t->free[i] = t->nsegs - 1 - i;	/* segment 0 first */
	}
	t->nfree = t->nsegs;
	for (int b = 0; b < TIER_BUFS; b++)
		t->buf_seg[b] = -1;
	t->fill = -1;
	t->cursor = 0;
	t->gen = 0;
	t->last_moved = t->room_wanted = t->draining = false;
	t->stalled = t->full = t->failed = t->stop = false;
	TMEM_WR(t->reads, 0);
	TMEM_WR(t->read_bytes, 0);
	TMEM_WR(t->writes, 0);
	TMEM_WR(t->write_bytes, 0);
	TMEM_WR(t->errors, 0);
	TMEM_WR(t->cleaned, 0);
}

static void tier_destroy(struct tmem_client *c, struct tmem_tier *t)
{
	if (t->ring.ring_fd >= 0)
		io_uring_queue_exit(&t->ring);
	if (t->fd >= 0) {
		tier_scrub(t);
		close(t->fd);
	}
	if (t->rados) {
		tier_scrub(t);
		tmem_rados_close(t->rados);
	}
	tmem_free(t->path);
	for (int b = 0; b < TIER_BUFS; b++)
		tmem_free(t->buf[b]);
	tmem_free(t->clean_buf);
	tmem_free(t->segs);
	tmem_free(t->free);
	if (t->charged)
		tmem_uncharge(&c->budget, 0, t->charged);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->wake);
	pthread_cond_destroy(&t->progress);
	pthread_cond_destroy(&t->unhang);
	tmem_free(t);
}

/* The segment table and buffers; -ENOMEM (tier_destroy() frees them). */
static int tier_alloc(struct tmem_tier *t)
{
	t->segs = tmem_malloc(t->nsegs * sizeof(*t->segs));
	t->free = tmem_malloc(t->nsegs * sizeof(*t->free));
	t->clean_buf = tmem_zalloc_align(t->seg_size, t->block);
	for (int b = 0; b < TIER_BUFS; b++)
		t->buf[b] = tmem_zalloc_align(t->seg_size, t->block);
	if (!t->segs || !t->free || !t->clean_buf)
		return -ENOMEM;
	for (int b = 0; b < TIER_BUFS; b++)
		if (!t->buf[b])
			return -ENOMEM;
	return 0;
}

/* The tier's segments as objects of a RADOS namespace (rados_pool). */
static int tier_open_rados(struct tmem_tier *t,
			   const struct tmem_client_config *cfg,
			   struct tmem_why *why)
{
	const struct tmem_rados_config rc = {
		.pool = cfg->rados_pool,
		.ns = cfg->rados_namespace,
		.conf = cfg->rados_conf,
		.user = cfg->rados_user,
		.keyring = cfg->rados_keyring,
	};

	t->block = 512;			/* no alignment: the sector we pad to */
	t->nsegs = tier_nsegs(t, cfg->backing_size);
	return tmem_rados_open(&rc, &t->rados, why);
}

int tmem_tier_new(struct tmem_client *c, struct tmem_why *why)
{
	const struct tmem_client_config *cfg = &c->cfg;
	unsigned int high, low;
	struct tmem_tier *t;
	int ret;

	if (!cfg->backing_file && !cfg->rados_pool)
		return 0;
	t = tmem_zalloc_aligned(sizeof(*t));
	if (!t)
		return tmem_refuse(why, -ENOMEM, "out of memory");
	t->c = c;
	t->fd = -1;
	t->ring.ring_fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->wake, NULL);
	pthread_cond_init(&t->progress, NULL);
	pthread_cond_init(&t->unhang, NULL);
	for (int b = 0; b < TIER_BUFS; b++)
		t->wop[b].efd = -1;
	t->clean_op.efd = -1;
	if (cfg->backing_file) {
		t->path = tmem_malloc(strlen(cfg->backing_file) + 1);
		if (!t->path) {
			ret = tmem_refuse(why, -ENOMEM, "out of memory");
			goto fail;
		}
		strcpy(t->path, cfg->backing_file);
	}
	tmem_tier_params(cfg, &t->seg_size, &high, &low);
	t->high_pct = high;
	t->low_pct = low;
	t->high = tmem_tier_percent_of(cfg->budget_bytes, high);
	t->low = tmem_tier_percent_of(cfg->budget_bytes, low);
	/*
	 * With a size, the budget is checked before the file is touched: a
	 * refusal for the budget then creates no file, and leaves an
	 * existing one alone.
	 */
	if (cfg->backing_size) {
		ret = tier_charge(c, t, tier_nsegs(t, cfg->backing_size), why);
		if (ret)
			goto fail;
	}
	ret = cfg->rados_pool ? tier_open_rados(t, cfg, why) :
				tier_open(t, cfg, why);
	if (ret)
		goto fail;
	if (!t->charged) {
		ret = tier_charge(c, t, t->nsegs, why);
		if (ret)
			goto fail;
	}
	ret = tier_alloc(t);
	if (ret) {
		tmem_refuse(why, ret, "out of memory for the disk tier's "
			    "buffers");
		goto fail;
	}
	ret = io_uring_queue_init(2 * TIER_BUFS, &t->ring, 0);
	if (ret) {
		t->ring.ring_fd = -1;
		tmem_refuse(why, ret, "the disk tier's io_uring_queue_init(): "
			    "%s", strerror(-ret));
		goto fail;
	}
	tier_clear(t);
	ret = tmem_tier_writer_start(t);
	if (ret) {
		tmem_refuse(why, ret, "the disk tier's writer thread: %s",
			    strerror(-ret));
		goto fail;
	}
	c->tier = t;
	return 0;
fail:
	tier_destroy(c, t);
	return ret;
}

void tmem_tier_stop(struct tmem_client *c)
{
	struct tmem_tier *t = c->tier;

	if (!t || !t->running)
		return;
	pthread_mutex_lock(&t->lock);
	t->stop = true;
	pthread_cond_signal(&t->wake);
	pthread_cond_broadcast(&t->progress);
	pthread_cond_broadcast(&t->unhang);
	tmem_tier_wake_locked(t, TIER_WAKE_ALL);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->running = false;
}

int tmem_tier_restart(struct tmem_client *c)
{
	struct tmem_tier *t = c->tier;

	if (!t)
		return 0;
	tier_clear(t);
	return tmem_tier_writer_start(t);
}

void tmem_tier_free(struct tmem_client *c)
{
	if (!c->tier)
		return;
	tmem_tier_stop(c);
	tier_destroy(c, c->tier);
	c->tier = NULL;
}

void tmem_tier_release(struct tmem_client *c)
{
	if (!c->tier)
		return;
	tmem_tier_stop(c);
	tier_scrub(c->tier);
}

uint64_t tmem_tier_fixed_bytes(struct tmem_client *c)
{
	return c->tier ? c->tier->charged : 0;
}

void tmem_tier_stats(struct tmem_client *c, struct tmem_stats *st)
{
	struct tmem_tier *t = c->tier;

	if (!t)
		return;
	st->disk_size = (uint64_t)t->nsegs * t->seg_size;
	st->disk_segment_size = t->seg_size;
	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < t->nsegs; i++) {
		const struct tier_seg *seg = &t->segs[i];
		/* Not counting the writer's own reference. */
		uint32_t held = atomic_load(&seg->ref) -
				(seg->state != SEG_DISK && seg->state != SEG_FREE);

		st->disk_segments += seg->state != SEG_FREE && held;
	}
	st->disk_failed = TMEM_RD(t->failed);
	st->disk_full = TMEM_RD(t->full);
	pthread_mutex_unlock(&t->lock);
	st->disk_reads = TMEM_RD(t->reads);
	st->disk_read_bytes = TMEM_RD(t->read_bytes);
	st->disk_writes = TMEM_RD(t->writes);
	st->disk_write_bytes = TMEM_RD(t->write_bytes);
	st->disk_errors = TMEM_RD(t->errors);
	st->cleaned_segments = TMEM_RD(t->cleaned);
}

int tmem_client_inject_io_error(struct tmem_client *c, unsigned int ops,
				int err)
{
	struct tmem_tier *t = c->tier;

	if (!t)
		return -ENODEV;
	if ((ops & ~(TMEM_IO_READ | TMEM_IO_WRITE | TMEM_IO_READ_SUBMIT)) ||
	    (ops && err >= 0))
		return -EINVAL;
	__atomic_store_n(&t->inject_err, err, __ATOMIC_RELAXED);
	__atomic_store_n(&t->inject_ops, ops, __ATOMIC_RELAXED);
	return 0;
}

int tmem_client_inject_io_hang(struct tmem_client *c, unsigned int ops)
{
	struct tmem_tier *t = c->tier;

	if (!t)
		return -ENODEV;
	if (ops & ~(TMEM_IO_READ | TMEM_IO_WRITE))
		return -EINVAL;
	pthread_mutex_lock(&t->lock);
	__atomic_store_n(&t->hang_ops, ops, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&t->unhang);
	/* Held reads of asynchronous loads are issued by their reap. */
	tmem_tier_wake_locked(t, TIER_WAKE_HANG);
	pthread_mutex_unlock(&t->lock);
	return 0;
}
