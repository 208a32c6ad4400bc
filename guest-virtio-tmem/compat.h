/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The few kernel APIs virtio_tmem uses that differ between the kernels it
 * supports: 6.1 LTS (Debian bookworm), 6.12 LTS (bookworm-backports,
 * trixie) and 7.x (trixie-backports).  Everything else in the driver is the
 * same on all of them.
 *
 * Kbuild looks for each API in the kernel's headers and defines
 * VTMEM_HAVE_*, so this file tests features, not version numbers.
 */
#ifndef VTMEM_COMPAT_H
#define VTMEM_COMPAT_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/err.h>
#include <linux/fs.h>
#ifdef VTMEM_HAVE_HEX_H
#include <linux/hex.h>		/* bin2hex(); in kernel.h before */
#endif
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>
#include <linux/workqueue.h>

/*
 * VTMEM_HAVE_RW_PAGE (before 6.4): swap marks a device SWP_SYNCHRONOUS_IO
 * only if its disk has ->rw_page, which then carries swap's single-page
 * reads and writes.
 */

/*
 * Queue limits: since 6.9 passed to blk_alloc_disk() (VTMEM_HAVE_LIM_DISK);
 * since 6.11 features such as BLK_FEAT_SYNCHRONOUS live in them too.
 */
static inline struct gendisk *vtmem_alloc_disk(struct queue_limits *lim,
					       int node, bool sync)
{
#ifdef VTMEM_HAVE_LIM_DISK
#ifdef VTMEM_HAVE_BLK_FEAT
	if (sync)
		lim->features |= BLK_FEAT_SYNCHRONOUS;
#endif
	return blk_alloc_disk(lim, node);
#else
	struct gendisk *disk = blk_alloc_disk(node);
	struct request_queue *q;

	if (!disk)
		return ERR_PTR(-ENOMEM);
	q = disk->queue;
	blk_queue_logical_block_size(q, lim->logical_block_size);
	blk_queue_physical_block_size(q, lim->physical_block_size);
	blk_queue_io_min(q, lim->io_min);
	blk_queue_dma_alignment(q, lim->dma_alignment);
	blk_queue_max_discard_sectors(q, lim->max_hw_discard_sectors);
	blk_queue_max_write_zeroes_sectors(q, lim->max_write_zeroes_sectors);
	q->limits.discard_granularity = lim->discard_granularity;
	blk_queue_flag_set(QUEUE_FLAG_NONROT, q);
	blk_queue_flag_clear(QUEUE_FLAG_ADD_RANDOM, q);
	return disk;
#endif
}

/* 6.4 to 6.10: a queue flag. */
#ifdef VTMEM_HAVE_QUEUE_FLAG_SYNC
static inline void vtmem_disk_set_sync(struct gendisk *disk)
{
	blk_queue_flag_set(QUEUE_FLAG_SYNCHRONOUS, disk->queue);
}
#else
static inline void vtmem_disk_set_sync(struct gendisk *disk)
{
}
#endif

/*
 * The backing device, opened exclusively for reading and writing: a file
 * since 6.9 (VTMEM_HAVE_BDEV_FILE), before 6.5 a block_device and mode.
 */
struct vtmem_backing {
#ifdef VTMEM_HAVE_BDEV_FILE
	struct file *file;
#endif
	struct block_device *bdev;
};

static inline int vtmem_backing_open(struct vtmem_backing *b,
				     const char *path, void *holder)
{
#ifdef VTMEM_HAVE_BDEV_FILE
	struct file *file;

	file = bdev_file_open_by_path(path, BLK_OPEN_READ | BLK_OPEN_WRITE,
				      holder, NULL);
	if (IS_ERR(file))
		return PTR_ERR(file);
	b->file = file;
	b->bdev = file_bdev(file);
#else
	struct block_device *bdev;

	bdev = blkdev_get_by_path(path, FMODE_READ | FMODE_WRITE | FMODE_EXCL,
				  holder);
	if (IS_ERR(bdev))
		return PTR_ERR(bdev);
	b->bdev = bdev;
#endif
	return 0;
}

static inline void vtmem_backing_close(struct vtmem_backing *b)
{
	if (!b->bdev)
		return;
#ifdef VTMEM_HAVE_BDEV_FILE
	fput(b->file);
	b->file = NULL;
#else
	blkdev_put(b->bdev, FMODE_READ | FMODE_WRITE | FMODE_EXCL);
#endif
	b->bdev = NULL;
}

/* Since 6.11 virtio_find_vqs() takes one virtqueue_info per queue. */
static inline int vtmem_find_vqs(struct virtio_device *vdev, unsigned int n,
				 struct virtqueue *vqs[], vq_callback_t *cb,
				 const char * const names[])
{
#ifdef VTMEM_HAVE_VQ_INFO
	struct virtqueue_info *info;
	unsigned int i;
	int err;

	info = kcalloc(n, sizeof(*info), GFP_KERNEL);
	if (!info)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		info[i].name = names[i];
		info[i].callback = cb;
	}
	err = virtio_find_vqs(vdev, n, vqs, info, NULL);
	kfree(info);
	return err;
#else
	vq_callback_t **cbs;
	unsigned int i;
	int err;

	cbs = kcalloc(n, sizeof(*cbs), GFP_KERNEL);
	if (!cbs)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		cbs[i] = cb;
	err = virtio_find_vqs(vdev, n, vqs, cbs, names, NULL);
	kfree(cbs);
	return err;
#endif
}

/*
 * Since 6.14 freezing a queue also enters a memalloc_noio scope, whose
 * flags blk_mq_freeze_queue() returns and blk_mq_unfreeze_queue() takes
 * (VTMEM_HAVE_FREEZE_MEMFLAGS).
 */
static inline unsigned int vtmem_freeze_queue(struct request_queue *q)
{
#ifdef VTMEM_HAVE_FREEZE_MEMFLAGS
	return blk_mq_freeze_queue(q);
#else
	blk_mq_freeze_queue(q);
	return 0;
#endif
}

static inline void vtmem_unfreeze_queue(struct request_queue *q,
					unsigned int memflags)
{
#ifdef VTMEM_HAVE_FREEZE_MEMFLAGS
	blk_mq_unfreeze_queue(q, memflags);
#else
	blk_mq_unfreeze_queue(q);
#endif
}

/*
 * A queue frozen across suspend (freeze to restore) must not keep the
 * freezing task in a noio scope: the _nomemsave pair (6.15 and later,
 * VTMEM_HAVE_FREEZE_NOMEMSAVE), or on 6.14 the scope left at once.
 */
static inline void vtmem_freeze_queue_nomemsave(struct request_queue *q)
{
#if defined(VTMEM_HAVE_FREEZE_NOMEMSAVE)
	blk_mq_freeze_queue_nomemsave(q);
#elif defined(VTMEM_HAVE_FREEZE_MEMFLAGS)
	memalloc_noio_restore(blk_mq_freeze_queue(q));
#else
	blk_mq_freeze_queue(q);
#endif
}

static inline void vtmem_unfreeze_queue_nomemrestore(struct request_queue *q)
{
#if defined(VTMEM_HAVE_FREEZE_NOMEMSAVE)
	blk_mq_unfreeze_queue_nomemrestore(q);
#elif defined(VTMEM_HAVE_FREEZE_MEMFLAGS)
	blk_mq_unfreeze_queue(q, memalloc_noio_save());
#else
	blk_mq_unfreeze_queue(q);
#endif
}

/*
 * A workqueue bound to the CPU that queues the work, as alloc_workqueue()
 * made one by default before 7.x asked for WQ_PERCPU or WQ_UNBOUND to be
 * named (WQ_PERCPU exists since 6.17, VTMEM_HAVE_WQ_PERCPU).
 */
#ifdef VTMEM_HAVE_WQ_PERCPU
#define VTMEM_WQ_PERCPU WQ_PERCPU
#else
#define VTMEM_WQ_PERCPU 0
#endif

/*
 * kzalloc_obj(): the allocation sized by its own type, as checkpatch asks
 * for since 7.x; older kernels lack the macro.
 */
#ifndef kzalloc_obj
#define kzalloc_obj(P, GFP) kzalloc(sizeof(P), GFP)
#endif

#endif /* VTMEM_COMPAT_H */
