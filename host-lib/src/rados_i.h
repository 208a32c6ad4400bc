/* SPDX-License-Identifier: MIT */
/*
 * The disk tier's segments as objects of a Ceph RADOS pool (librados):
 * segment N is the object "seg.N" (eight hex digits) in the client's own
 * namespace, written whole (rados_aio_write_full) and read at an offset
 * (rados_aio_read).  Every operation is asynchronous: its completion
 * makes an eventfd readable (a context's completion fd, or the writer's)
 * from librados's own thread, so no thread of the caller waits on the
 * network unless it chose to (tmem_rados_op_wait()).
 *
 * What this layer knows of the tier: nothing but segment numbers and
 * bytes.  The key and checksum before each page (struct seg_hdr) are the
 * tier's, checked by its read path as for the file: an object of another
 * client, or a stale one, is -EIO there, never other bytes.
 *
 * Isolation is the cluster's: a client reaches only the namespace it was
 * given, and a cephx user whose caps name one namespace
 * ("allow rw pool=P namespace=N") is refused by the OSDs anywhere else.
 * tmem_rados_open() locks the namespace's owner object (an exclusive
 * lock: one client per namespace) and writes it, so a user without
 * those rights, or a second client, is refused at open, not at the
 * first write-back; tmem_rados_disown() removes it, and the lock with it.
 *
 * Timeouts: operations fail with -ETIMEDOUT after timeout_s seconds
 * (rados_osd_op_timeout, rados_mon_op_timeout, client_mount_timeout),
 * so an unreachable cluster is an error, never a hang.
 */
#ifndef TMEM_RADOS_I_H
#define TMEM_RADOS_I_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "why_i.h"

struct tmem_rados;

struct tmem_rados_config {
	const char *pool;		/* required */
	const char *conf;		/* NULL: /etc/ceph/ceph.conf */
	const char *user;		/* cephx id without "client.", NULL: admin */
	const char *keyring;		/* NULL: the configuration's */
	const char *ns;			/* required, not empty */
	unsigned int timeout_s;		/* 0: TMEM_RADOS_TIMEOUT_S */
};

#define TMEM_RADOS_TIMEOUT_S	10
#define TMEM_RADOS_DEFAULT_CONF	"/etc/ceph/ceph.conf"

/* One asynchronous operation; the caller owns it until it completed. */
struct tmem_rados_op {
	void *comp;			/* rados_completion_t, or NULL: idle */
	int efd;			/* written once on completion, or -1 */
	_Atomic bool done;
	int res;			/* bytes read or 0, or -errno */
};

#ifdef TMEM_HAVE_RADOS
/*
 * Connect as @cfg->user to @cfg->pool and claim @cfg->ns: 0, or -errno
 * and why (unreachable, no such pool, refused by cephx, ...).
 */
int tmem_rados_open(const struct tmem_rados_config *cfg,
		    struct tmem_rados **rp, struct tmem_why *why);
/*
 * Wait for every operation in flight, tmem_rados_disown() (segment
 * objects stay), disconnect, free.
 */
void tmem_rados_close(struct tmem_rados *r);
/* Remove the owner object, and the lock with it: the namespace is free. */
void tmem_rados_disown(struct tmem_rados *r);

/* Start an operation on segment @segno; 0, or -errno (nothing started). */
int tmem_rados_write(struct tmem_rados *r, struct tmem_rados_op *op,
		     uint32_t segno, const void *buf, size_t len);
int tmem_rados_read(struct tmem_rados *r, struct tmem_rados_op *op,
		    uint32_t segno, uint64_t off, void *buf, size_t len);
int tmem_rados_remove(struct tmem_rados *r, struct tmem_rados_op *op,
		      uint32_t segno);

/* The operation completed: tmem_rados_op_finish() will not wait. */
static inline bool tmem_rados_op_done(struct tmem_rados_op *op)
{
	return atomic_load_explicit(&op->done, memory_order_acquire);
}

/*
 * Wait for the operation (if it has not completed), release it and
 * return its result: bytes read, 0 for a write or remove, or -errno
 * (-ENOENT: no such segment object).  The op is idle again.
 */
int tmem_rados_op_finish(struct tmem_rados_op *op);

/*
 * Remove every segment object of the namespace (the client's pages must
 * not outlive it on the cluster); the owner object and its lock stay
 * (tmem_rados_disown()).  Waits.  Returns the number of objects
 * removed, or -errno.
 */
int tmem_rados_scrub(struct tmem_rados *r);

#else /* !TMEM_HAVE_RADOS: a build without librados refuses at open. */
#include <errno.h>

static inline int tmem_rados_open(const struct tmem_rados_config *cfg,
				  struct tmem_rados **rp, struct tmem_why *why)
{
	(void)rp;
	return tmem_refuse(why, -ENOTSUP, "rados_pool %s: libtmem built "
			   "without the RADOS tier (no librados)", cfg->pool);
}
static inline void tmem_rados_close(struct tmem_rados *r) { (void)r; }
static inline void tmem_rados_disown(struct tmem_rados *r) { (void)r; }
static inline int tmem_rados_write(struct tmem_rados *r,
				   struct tmem_rados_op *op, uint32_t segno,
				   const void *buf, size_t len)
{
	(void)r; (void)op; (void)segno; (void)buf; (void)len;
	return -ENOTSUP;
}
static inline int tmem_rados_read(struct tmem_rados *r,
				  struct tmem_rados_op *op, uint32_t segno,
				  uint64_t off, void *buf, size_t len)
{
	(void)r; (void)op; (void)segno; (void)off; (void)buf; (void)len;
	return -ENOTSUP;
}
static inline bool tmem_rados_op_done(struct tmem_rados_op *op)
{
	(void)op;
	return true;
}
static inline int tmem_rados_op_finish(struct tmem_rados_op *op)
{
	return op->res;
}
static inline int tmem_rados_scrub(struct tmem_rados *r)
{
	(void)r;
	return 0;
}
#endif

#endif /* TMEM_RADOS_I_H */
